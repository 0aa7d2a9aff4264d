//! `statictramp check [--json]`: what statictramp finds on this machine.
//!
//! Each check is a row: name, status (ok / warn / FAIL), a human detail and a
//! machine-readable value. Warnings are conditions statictramp works under
//! but a user should know of (no MDWE, no preload library built yet);
//! failures are things that do not work. Exit status 1 if any row failed.

use super::json::Json;
use crate::mixed;
use crate::strict;
use statictramp::{Abi, Closure, TemplateSource, Type};
use statictramp_locate::library;
use std::ffi::OsString;
use std::fmt;
use std::process::Command;

/// Hidden subcommand: arm strict mode in this (child) process and test it.
pub const STRICT_PROBE: &str = "__strict-probe";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

struct Row {
    name: String,
    status: Status,
    detail: String,
    value: Json,
}

fn row(
    name: impl Into<String>,
    status: Status,
    detail: impl Into<String>,
    value: impl Into<Json>,
) -> Row {
    Row {
        name: name.into(),
        status,
        detail: detail.into(),
        value: value.into(),
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn platform() -> Row {
    let kernel = read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    let p = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    let supported = cfg!(all(target_arch = "x86_64", target_os = "linux"));
    row(
        "platform",
        if supported { Status::Ok } else { Status::Fail },
        format!("{p}, kernel {kernel}"),
        Json::Obj(vec![("target", p.into()), ("kernel", kernel.into())]),
    )
}

fn page_size() -> Row {
    let ps = statictramp::page_size();
    row("page size", Status::Ok, format!("{ps} bytes"), ps)
}

fn map_count() -> Row {
    let limit: Option<u64> = read_trim("/proc/sys/vm/max_map_count").and_then(|s| s.parse().ok());
    let used = std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .ok();
    let detail = match (limit, used) {
        (Some(l), Some(u)) => format!("vm.max_map_count {l}, this process uses {u}"),
        _ => "cannot read /proc/sys/vm/max_map_count or /proc/self/maps".into(),
    };
    let status = if limit.is_some() {
        Status::Ok
    } else {
        Status::Warn
    };
    row(
        "map count",
        status,
        detail,
        Json::Obj(vec![("limit", limit.into()), ("used", used.into())]),
    )
}

fn address_space() -> Row {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut rl) };
    if r != 0 || rl.rlim_cur == libc::RLIM_INFINITY {
        return row(
            "address space",
            Status::Ok,
            "RLIMIT_AS unlimited",
            Json::Null,
        );
    }
    row(
        "address space",
        Status::Warn,
        format!(
            "RLIMIT_AS {} MiB: the closure arena reserves less, so fewer closures fit",
            rl.rlim_cur >> 20
        ),
        rl.rlim_cur,
    )
}

/// The argument/return types of the per-ABI call: integers and doubles in
/// alternation, five of them, so that Win64 puts the last one on the stack.
fn abi_sig() -> Vec<Type> {
    vec![Type::S64, Type::DOUBLE, Type::S32, Type::DOUBLE, Type::S64]
}

fn abi_handler(args: &statictramp::Args<'_>, ret: &mut statictramp::Ret<'_>) {
    let a: i64 = args.get(0).unwrap_or(0);
    let b: f64 = args.get(1).unwrap_or(0.0);
    let c: i32 = args.get(2).unwrap_or(0);
    let d: f64 = args.get(3).unwrap_or(0.0);
    let e: i64 = args.get(4).unwrap_or(0);
    let _ = ret.set(a as f64 + 2.0 * b + 3.0 * c as f64 + 4.0 * d + 5.0 * e as f64);
}

/// Makes a closure under `abi` and calls it the way a C caller of that ABI
/// would; returns what it computed.
fn call_abi(abi: Abi) -> Result<f64, String> {
    let c = Closure::new(abi, abi_sig(), Type::DOUBLE, abi_handler).map_err(|e| e.to_string())?;
    let (a, b, cc, d, e) = (1_000_000_007i64, 0.5f64, -3i32, 0.25f64, -(1i64 << 40));
    #[cfg(target_arch = "x86_64")]
    let got = match abi {
        Abi::SysV64 => {
            // SAFETY: the closure was made for double(long, double, int,
            // double, long) in the System V ABI, which `f` declares.
            let f: extern "sysv64" fn(i64, f64, i32, f64, i64) -> f64 =
                unsafe { std::mem::transmute(c.code_ptr()) };
            f(a, b, cc, d, e)
        }
        Abi::Win64 | Abi::GnuW64 => {
            // SAFETY: as above, in the Microsoft x64 convention (GNUW64
            // differs only for long double, which this signature lacks).
            let f: extern "win64" fn(i64, f64, i32, f64, i64) -> f64 =
                unsafe { std::mem::transmute(c.code_ptr()) };
            f(a, b, cc, d, e)
        }
        // Other architectures' ABIs, once the enum has them.
        #[allow(unreachable_patterns)]
        _ => return Err(format!("{abi:?} cannot be called from Rust on this target")),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let got = return Err(format!("{abi:?}: no caller for this target yet"));
    let want = a as f64 + 2.0 * b + 3.0 * cc as f64 + 4.0 * d + 5.0 * e as f64;
    if got.to_bits() == want.to_bits() {
        Ok(got)
    } else {
        Err(format!("returned {got}, expected {want}"))
    }
}

fn abis() -> &'static [Abi] {
    if cfg!(target_arch = "x86_64") {
        &[Abi::SysV64, Abi::Win64, Abi::GnuW64]
    } else {
        &[]
    }
}

fn closure_calls() -> Vec<Row> {
    abis()
        .iter()
        .map(|&abi| {
            let name = match abi {
                Abi::SysV64 => "closure call: unix64",
                Abi::Win64 => "closure call: win64",
                Abi::GnuW64 => "closure call: gnuw64",
                #[allow(unreachable_patterns)]
                _ => "closure call",
            };
            match call_abi(abi) {
                Ok(v) => row(
                    name,
                    Status::Ok,
                    format!("double(long, double, int, double, long) = {v}"),
                    true,
                ),
                Err(e) => row(name, Status::Fail, e, false),
            }
        })
        .collect()
}

/// Fills the in-image pool and goes on into a mapped pool, calling every
/// closure; reports where mapped code came from.
fn pools() -> Row {
    let (live0, _) = statictramp::closure::stats();
    let n = statictramp::layout::IMAGE_SLOTS + 64;
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        match Closure::new(Abi::SysV64, vec![Type::S32], Type::S32, move |a, r| {
            let x: i32 = a.get(0).unwrap_or(0);
            let _ = r.set(x ^ i as i32);
        }) {
            Ok(c) => v.push(c),
            Err(e) => return row("pools", Status::Fail, format!("closure {i}: {e}"), false),
        }
    }
    for (i, c) in v.iter().enumerate() {
        // SAFETY: each closure is int(int) in the System V ABI.
        let f: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(c.code_ptr()) };
        if f(0x5a5a) != 0x5a5a ^ i as i32 {
            return row(
                "pools",
                Status::Fail,
                format!("closure {i} returned a wrong value"),
                false,
            );
        }
    }
    let (live, handed) = statictramp::closure::stats();
    let source = match statictramp::template_source() {
        Some(TemplateSource::Image { offset }) => format!("the image file (offset {offset:#x})"),
        Some(TemplateSource::Memfd) => "a sealed memfd".into(),
        None => "nothing (no mapped pool was needed)".into(),
    };
    let detail = format!(
        "{n} closures called: {} in the in-image pool, the rest in a pool mapped from {source}",
        statictramp::layout::IMAGE_SLOTS
    );
    drop(v);
    row(
        "pools",
        Status::Ok,
        detail,
        Json::Obj(vec![
            ("image_slots", statictramp::layout::IMAGE_SLOTS.into()),
            ("mapped_from", source.into()),
            ("closures_made", n.into()),
            ("live_before", live0.into()),
            ("live_after_alloc", live.into()),
            ("slots_handed_out", handed.into()),
        ]),
    )
}

fn preload_library() -> Row {
    match library::find(None) {
        Ok(l) if l.versioned => row(
            "preload library",
            Status::Ok,
            format!("{} ({})", l.path.display(), l.how),
            l.path.display().to_string(),
        ),
        Ok(l) => row(
            "preload library",
            Status::Warn,
            format!(
                "{} ({}): without libffi's symbol versions; scripts/build-preload makes {}",
                l.path.display(),
                l.how,
                library::PRELOAD
            ),
            l.path.display().to_string(),
        ),
        Err(e) => row("preload library", Status::Warn, format!("{e}"), Json::Null),
    }
}

/// The preload library for programs of the other word size (32-bit on a
/// 64-bit machine), checked to load in that size's ld.so, and the
/// `LD_PRELOAD` entry that serves process trees of both sizes
/// (mixed.rs); no rows where this machine has no other size.
fn other_size() -> Vec<Row> {
    const LIB: &str = "preload library, other size";
    const MIXED: &str = "mixed 32/64-bit trees";
    let Some((exe, this)) = std::env::current_exe()
        .ok()
        .and_then(|e| library::target_of(&e).map(|t| (e, t)))
    else {
        return Vec::new();
    };
    let Some(other) = mixed::companion(this) else {
        return Vec::new();
    };
    let Some(ld) = mixed::loader(other).filter(|l| l.exists()) else {
        return vec![row(
            LIB,
            Status::Ok,
            format!("no {other} dynamic loader here: {other} programs cannot run"),
            Json::Null,
        )];
    };
    let lib = match library::find_for(&[], Some((other, &exe))) {
        Ok(l) => l,
        Err(e) => return vec![row(LIB, Status::Warn, format!("{e}"), Json::Null)],
    };
    let loads = Command::new(ld)
        .arg("--list")
        .arg(&lib.path)
        .env_remove("LD_PRELOAD")
        .output();
    match loads {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return vec![row(
                LIB,
                Status::Fail,
                format!(
                    "{}: {} --list fails: {}",
                    lib.path.display(),
                    ld.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                lib.path.display().to_string(),
            )];
        }
        Err(e) => {
            return vec![row(
                LIB,
                Status::Fail,
                format!("cannot run {}: {e}", ld.display()),
                lib.path.display().to_string(),
            )];
        }
    }
    let mut rows = vec![row(
        LIB,
        Status::Ok,
        format!(
            "{other}: {} ({}); loads in {}",
            lib.path.display(),
            lib.how,
            ld.display()
        ),
        lib.path.display().to_string(),
    )];
    if let Ok(main) = library::find_for(&[], Some((this, &exe))) {
        rows.push(
            match mixed::preload_entry([(this, &main.path), (other, &lib.path)]) {
                Ok(entry) => row(
                    MIXED,
                    Status::Ok,
                    format!(
                        "`statictramp run` sets LD_PRELOAD={}: each program gets its size's library",
                        entry.to_string_lossy()
                    ),
                    entry.to_string_lossy().into_owned(),
                ),
                Err(mixed::NotMixed(why)) => row(
                    MIXED,
                    Status::Warn,
                    format!("programs of the command's size only: {why}"),
                    Json::Null,
                ),
            },
        );
    }
    rows
}

/// How the strict probe prints a code route: `route: <name> open|closed
/// <detail>`.
const ROUTE_PREFIX: &str = "route: ";

/// The code routes in the strict probe's output: one row for each route
/// this kernel leaves open (a warning naming the setting that closes it),
/// one for those closed.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn code_routes(probe: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut closed = Vec::new();
    let mut all = Vec::new();
    for line in probe.lines() {
        let Some(rest) = line.strip_prefix(ROUTE_PREFIX) else {
            continue;
        };
        let mut w = rest.splitn(3, ' ');
        let (Some(name), Some(state)) = (w.next(), w.next()) else {
            continue;
        };
        let detail = w.next().unwrap_or("").trim();
        let about = crate::routes::about(name);
        all.push(Json::Obj(vec![
            ("route", name.to_string().into()),
            ("open", (state == "open").into()),
            ("detail", detail.to_string().into()),
            (
                "closed_by",
                about.map(|a| a.closed_by).unwrap_or("").to_string().into(),
            ),
        ]));
        if state == "open" {
            let (what, by) = about.map(|a| (a.what, a.closed_by)).unwrap_or(("", ""));
            rows.push(row(
                format!("strict: {name}"),
                Status::Warn,
                format!("OPEN: {what}; closed by {by}"),
                Json::Null,
            ));
        } else {
            closed.push(format!("{name} ({detail})"));
        }
    }
    if all.is_empty() {
        return rows;
    }
    rows.push(row(
        "strict: closed routes",
        Status::Ok,
        closed.join("; "),
        Json::Arr(all),
    ));
    rows
}

/// Runs the strict probe in a child process and reports it: the mode
/// itself, then its code routes.
fn strict_mode() -> Vec<Row> {
    let (mode, probe) = strict_mode_row();
    let mut rows = vec![mode];
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    rows.extend(code_routes(&probe));
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    let _ = probe;
    rows
}

/// The strict-mode row, and the probe's whole output.
fn strict_mode_row() -> (Row, String) {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return (
                row(
                    "strict mode",
                    Status::Fail,
                    format!("cannot find this binary: {e}"),
                    false,
                ),
                String::new(),
            );
        }
    };
    let out = match Command::new(exe).arg(STRICT_PROBE).output() {
        Ok(o) => o,
        Err(e) => {
            return (
                row(
                    "strict mode",
                    Status::Fail,
                    format!("cannot start the probe: {e}"),
                    false,
                ),
                String::new(),
            );
        }
    };
    let probe = String::from_utf8_lossy(&out.stdout).to_string();
    // The mode's own lines; the code routes get rows of their own.
    let text = probe
        .lines()
        .filter(|l| !l.starts_with(ROUTE_PREFIX))
        .collect::<Vec<_>>()
        .join("\n");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let mdwe = text
        .lines()
        .find_map(|l| l.strip_prefix("mdwe: "))
        .unwrap_or("unknown")
        .to_string();
    let landlock = text
        .lines()
        .find_map(|l| l.strip_prefix("landlock: "))
        .unwrap_or("unknown")
        .to_string();
    let value = Json::Obj(vec![
        ("available", out.status.success().into()),
        ("mdwe", mdwe.clone().into()),
        ("landlock", landlock.clone().into()),
    ]);
    if !out.status.success() {
        let why = if err.is_empty() { text } else { err };
        return (
            row(
                "strict mode",
                Status::Fail,
                format!("unavailable: {why}"),
                value,
            ),
            probe,
        );
    }
    let status = if mdwe == "on" && landlock == "on" {
        Status::Ok
    } else {
        Status::Warn
    };
    (
        row("strict mode", status, text.replace('\n', "; "), value),
        probe,
    )
}

/// The child side of [`strict_mode`]: arm, check that W+X and anonymous
/// executable memory are refused, and that closures (including a mapped
/// pool) still work. Prints `key: value` lines; exit 0 if all held.
pub fn strict_probe() -> i32 {
    let armed = match strict::arm() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match &armed.mdwe {
        Ok(()) => println!("mdwe: on"),
        Err(why) => println!("mdwe: off ({why})"),
    }
    let mut ok = strict::seccomp_filtered();
    println!(
        "seccomp: {} for {}",
        if ok { "on" } else { "NOT in /proc/self/status" },
        armed.arches.join(", ")
    );
    // SAFETY: an anonymous mapping request; it is unmapped if it succeeds.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        println!(
            "anonymous executable mmap: refused ({})",
            std::io::Error::last_os_error()
        );
    } else {
        println!("anonymous executable mmap: ALLOWED");
        // SAFETY: `p` is the 4096-byte mapping made above.
        unsafe { libc::munmap(p, 4096) };
        ok = false;
    }
    match &armed.landlock {
        Ok(()) => println!("landlock: on"),
        Err(why) => println!("landlock: off ({why})"),
    }
    let r = pools();
    println!("closures under strict mode: {} ({})", r.status, r.detail);
    ok &= r.status == Status::Ok;
    // Last: some routes rewrite this process's own code.
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    for route in crate::routes::try_all() {
        let state = if route.open { "open" } else { "closed" };
        println!("{ROUTE_PREFIX}{} {state} {}", route.name, route.detail);
    }
    if ok { 0 } else { 1 }
}

pub fn main(args: &[OsString]) -> i32 {
    let mut json = false;
    for a in args {
        match a.to_str() {
            Some("--json") => json = true,
            _ => {
                eprintln!(
                    "statictramp check: unknown argument {a:?}\nusage: statictramp check [--json]"
                );
                return super::EXIT_USAGE;
            }
        }
    }
    let mut rows = vec![platform(), page_size(), map_count(), address_space()];
    rows.extend(closure_calls());
    rows.push(pools());
    rows.extend(strict_mode());
    rows.push(preload_library());
    rows.extend(other_size());
    let failed = rows.iter().any(|r| r.status == Status::Fail);
    if json {
        let checks = rows
            .iter()
            .map(|r| {
                Json::Obj(vec![
                    ("name", r.name.clone().into()),
                    ("status", r.status.to_string().to_lowercase().into()),
                    ("detail", r.detail.clone().into()),
                    ("value", r.value.clone()),
                ])
            })
            .collect();
        let doc = Json::Obj(vec![
            ("statictramp", env!("CARGO_PKG_VERSION").into()),
            ("ok", (!failed).into()),
            ("checks", Json::Arr(checks)),
        ]);
        println!("{doc}");
    } else {
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &rows {
            println!("{:<w$}  {:<4}  {}", r.name, r.status, r.detail);
        }
        println!(
            "{}",
            if failed {
                "some checks FAILED"
            } else {
                "all checks passed"
            }
        );
    }
    i32::from(failed)
}
