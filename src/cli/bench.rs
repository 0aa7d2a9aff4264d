//! `statictramp bench [--quick] [--out DIR] [--libffi36 PREFIX] [--lib PATH]
//! [--no-callgrind] [--scale N]`
//!
//! Builds the C driver compat/bench/bench.c (embedded in this binary; it uses
//! only libffi's public API) and runs it, in one invocation, against three
//! backends of libffi's closure API:
//!
//! - `system`: the system libffi alone;
//! - `libffi-3.6`: libffi 3.6 with static trampolines, built from the source
//!   vendored in libffi-sys (scripts/build-libffi36), bound through
//!   `LD_LIBRARY_PATH`;
//! - `statictramp`: the preload library over the system libffi.
//!
//! Before measuring, the driver's `info` proves which object serves the
//! closure API in each configuration (and that 3.6's closures really use
//! static trampolines). Timed runs are repeated in rounds that rotate the
//! order of the backends, so that noise hits all of them alike; the best
//! value of all rounds is kept. Instruction counts come from callgrind,
//! collected only inside the driver's `measure_loop`. Every call's result is
//! checked by the driver: a wrong result or a crash fails the command; unmet
//! performance targets do not.

use super::library;
use super::{EXIT_OWN_ERROR, EXIT_USAGE};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Instant, SystemTime};

/// The driver, compiled on first use (and whenever it changes).
const SOURCE: &str = include_str!("../../compat/bench/bench.c");

const USAGE: &str = "usage: statictramp bench [--quick] [--out DIR] [--libffi36 PREFIX] [--lib PATH] \
                     [--no-callgrind] [--scale N]";

/// The signatures the driver measures, in its `SIGS` order.
struct Sig {
    key: &'static str,
    name: &'static str,
    /// A short label for the chart.
    short: &'static str,
}

const SIGS: [Sig; 6] = [
    Sig {
        key: "v_v",
        name: "void(void)",
        short: "void(void)",
    },
    Sig {
        key: "i_ii",
        name: "int(int,int)",
        short: "int(int,int)",
    },
    Sig {
        key: "d_4d4i",
        name: "double(4 double,4 int)",
        short: "double(4d,4i)",
    },
    Sig {
        key: "s16_s16",
        name: "struct{long,long}(struct{long,long})",
        short: "s16(s16)",
    },
    Sig {
        key: "i_s40",
        name: "int(struct{5 long})",
        short: "int(s40)",
    },
    Sig {
        key: "l_8l4d",
        name: "long(8 long,4 double)",
        short: "long(8l,4d)",
    },
];
const NSIGS: usize = SIGS.len();

/// The parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    quick: bool,
    out: Option<PathBuf>,
    libffi36: Option<PathBuf>,
    lib: Option<PathBuf>,
    no_callgrind: bool,
    scale: Option<u64>,
}

/// `16M`, `100k`, `1000000`.
fn parse_count(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1_000),
        b'M' | b'm' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits.replace('_', "").parse().ok()?;
    n.checked_mul(mult).filter(|&n| n > 0)
}

fn parse(args: &[OsString]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    let text = |a: &OsString| {
        a.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("argument {a:?} is not UTF-8"))
    };
    while i < args.len() {
        let a = text(&args[i])?;
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            i += 1;
            args.get(i)
                .map(text)
                .transpose()?
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "--quick" => o.quick = true,
            "--no-callgrind" => o.no_callgrind = true,
            "--out" => o.out = Some(value("a directory")?.into()),
            "--libffi36" => o.libffi36 = Some(value("a prefix")?.into()),
            "--lib" => o.lib = Some(value("a path")?.into()),
            "--scale" => {
                let v = value("a count")?;
                o.scale = Some(parse_count(&v).ok_or_else(|| format!("--scale: bad count {v:?}"))?);
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
        i += 1;
    }
    Ok(o)
}

/// How much to run.
struct Plan {
    /// Timing rounds; each runs every backend once, in rotating order.
    rounds: usize,
    /// Timed repetitions inside one driver process (BENCH_REPS).
    reps: u32,
    call_iters: u64,
    cycle_iters: u64,
    thread_iters: u64,
    callgrind_iters: u64,
    /// (live closures, rounds)
    scales: Vec<(u64, usize)>,
}

const MILLION: u64 = 1_000_000;
const SIXTEEN_M: u64 = 16 * 1024 * 1024;

impl Plan {
    fn new(o: &Options) -> Plan {
        if o.quick {
            return Plan {
                rounds: 2,
                reps: 3,
                call_iters: 200_000,
                cycle_iters: 50_000,
                thread_iters: 50_000,
                callgrind_iters: 20_000,
                scales: vec![(o.scale.unwrap_or(100_000), 1)],
            };
        }
        let big = o.scale.unwrap_or(SIXTEEN_M);
        let scales = if big <= MILLION {
            vec![(big, 3)]
        } else {
            vec![(MILLION, 3), (big, 1)]
        };
        Plan {
            rounds: 5,
            reps: 3,
            call_iters: 2_000_000,
            cycle_iters: 500_000,
            thread_iters: 500_000,
            callgrind_iters: 200_000,
            scales,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    System,
    Libffi36,
    Statictramp,
}

const BACKENDS: [Which; 3] = [Which::System, Which::Libffi36, Which::Statictramp];

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::System => "system",
            Which::Libffi36 => "libffi-3.6",
            Which::Statictramp => "statictramp",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// A backend: the environment the driver runs in, and what `info` said.
struct Backend {
    which: Which,
    env: Vec<(&'static str, OsString)>,
    info: BTreeMap<String, String>,
}

/// The driver's output: one `key value...` line per fact.
struct Lines(Vec<Vec<String>>);

impl Lines {
    fn parse(text: &str) -> Lines {
        Lines(
            text.lines()
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .filter(|v| !v.is_empty())
                .collect(),
        )
    }
    fn all(&self, key: &str) -> impl Iterator<Item = &[String]> {
        self.0.iter().filter(move |l| l[0] == key).map(|l| &l[1..])
    }
    fn get(&self, key: &str) -> Option<&[String]> {
        self.all(key).next()
    }
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| v.join(" "))
    }
    fn num(&self, key: &str) -> Result<f64, String> {
        self.get(key)
            .and_then(|v| v.first())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("the driver printed no number for {key}"))
    }
    /// `KEY SIG VALUE` lines, in SIGS order.
    fn per_sig(&self, key: &str) -> Result<[f64; NSIGS], String> {
        let mut v = [f64::NAN; NSIGS];
        for l in self.all(key) {
            if let (Some(k), Some(x)) = (SIGS.iter().position(|s| s.key == l[0]), l.get(1)) {
                v[k] = x
                    .parse()
                    .map_err(|_| format!("bad number in {key} {l:?}"))?;
            }
        }
        match v.iter().position(|x| x.is_nan()) {
            Some(k) => Err(format!("the driver printed no {key} for {}", SIGS[k].key)),
            None => Ok(v),
        }
    }
}

/// The compiled driver and where its outputs go.
struct Driver {
    exe: PathBuf,
    work: PathBuf,
    reps: u32,
}

fn describe_status(out: &Output) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (out.status.code(), out.status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("crashed: signal {s}"),
        _ => "failed".into(),
    }
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Driver {
    fn command(&self, b: &Backend, prefix: &[OsString], args: &[String]) -> Command {
        let mut c = match prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        c.args(args)
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH")
            .env("BENCH_REPS", self.reps.to_string());
        for (k, v) in &b.env {
            c.env(k, v);
        }
        c
    }

    fn run_with(&self, b: &Backend, prefix: &[OsString], args: &[String]) -> Result<Lines, String> {
        let shown = format!("{} bench {}", b.which.name(), args.join(" "));
        let out = self
            .command(b, prefix, args)
            .output()
            .map_err(|e| format!("{shown}: cannot run the driver: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{shown}: {}\n{}",
                describe_status(&out),
                tail(&out.stderr, 20)
            ));
        }
        Ok(Lines::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    fn run(&self, b: &Backend, args: &[&str]) -> Result<Lines, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.run_with(b, &[], &args)
    }

    /// Instructions per iteration of `measure_loop` for every signature:
    /// one callgrind run, one dump per signature (--dump-after).
    fn callgrind(&self, b: &Backend, floor: bool, n: u64) -> Result<[f64; NSIGS], String> {
        let name = format!(
            "callgrind-{}{}.out",
            b.which.name(),
            if floor { "-floor" } else { "" }
        );
        let file = self.work.join(&name);
        for k in 0..=NSIGS {
            let _ = std::fs::remove_file(dump_file(&file, k));
        }
        let prefix: Vec<OsString> = vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "--toggle-collect=measure_loop".into(),
            "--dump-after=measure_loop".into(),
            format!("--callgrind-out-file={}", file.display()).into(),
        ];
        let sub = if floor { "floorloop" } else { "loop" };
        self.run_with(b, &prefix, &[sub.into(), "all".into(), n.to_string()])?;
        let mut v = [0f64; NSIGS];
        for (k, slot) in v.iter_mut().enumerate() {
            let f = dump_file(&file, k + 1);
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("callgrind output {}: {e}", f.display()))?;
            let total: f64 = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("totals:")
                        .or_else(|| l.strip_prefix("summary:"))
                })
                .and_then(|t| t.split_whitespace().next())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("no totals in {}", f.display()))?;
            *slot = total / n as f64;
        }
        Ok(v)
    }
}

/// callgrind's dump files: F.1, F.2, ... (F itself is the rest at exit).
fn dump_file(file: &Path, k: usize) -> PathBuf {
    if k == 0 {
        return file.to_path_buf();
    }
    let mut s = file.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

/// The cache directory: `statictramp-bench` in the cargo target directory
/// this binary was built in, else in $TMPDIR (per user).
fn cache_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    if let Some(target) = exe
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .filter(|t| t.join("CACHEDIR.TAG").is_file())
    {
        return target.join("statictramp-bench");
    }
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    std::env::temp_dir().join(format!("statictramp-bench-{uid}"))
}

/// The C compiler: `$CC` (may carry arguments) or `cc`.
fn compiler() -> Vec<String> {
    let cc = std::env::var("CC")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "cc".into());
    cc.split_whitespace().map(str::to_string).collect()
}

fn first_line(cmd: &[String], arg: &str) -> Option<String> {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg(arg)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let s = if s.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        s.into_owned()
    };
    s.lines().next().map(|l| l.trim().to_string())
}

/// Compiles the driver into the cache (keyed by source and compiler).
fn build_driver(cc: &[String], reps: u32) -> Result<Driver, String> {
    use std::hash::{Hash, Hasher};
    let version = first_line(cc, "--version").ok_or_else(|| {
        format!(
            "no C compiler: `{}` cannot be run (install one, e.g. `apt-get install gcc \
             libffi-dev`, or set CC)",
            cc.join(" ")
        )
    })?;
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut h = std::hash::DefaultHasher::new();
    (SOURCE, cc, &version).hash(&mut h);
    let exe = dir.join(format!("bench-{:016x}", h.finish()));
    if !exe.is_file() {
        // Kept beside the binary, so that callgrind_annotate can show it.
        let src = dir.join(format!("bench-{:016x}.c", h.finish()));
        let tmp = dir.join(format!("bench.{}.tmp", std::process::id()));
        let src_tmp = dir.join(format!("bench.{}.c", std::process::id()));
        std::fs::write(&src_tmp, SOURCE)
            .and_then(|()| std::fs::rename(&src_tmp, &src))
            .map_err(|e| format!("{}: {e}", src.display()))?;
        let out = Command::new(&cc[0])
            .args(&cc[1..])
            .args(["-O2", "-g", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .args(["-lffi", "-lpthread", "-ldl"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cc[0]))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "compiling the benchmark driver with `{}` failed (needs libffi's header and \
                 library: `apt-get install libffi-dev`):\n{}",
                cc.join(" "),
                tail(&out.stderr, 20)
            ));
        }
        std::fs::rename(&tmp, &exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    }
    let work = dir.join("last-run");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    Ok(Driver { exe, work, reps })
}

/// The libffi 3.6 install prefix: --libffi36, $STATICTRAMP_LIBFFI36, else
/// target/libffi-3.6 (where scripts/build-libffi36 puts it) beside this
/// binary's target directory or this source tree's.
fn find_libffi36(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let env = std::env::var_os("STATICTRAMP_LIBFFI36")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let candidates: Vec<(PathBuf, &str)> = match (explicit, env) {
        (Some(p), _) => vec![(p.to_path_buf(), "--libffi36")],
        (None, Some(p)) => vec![(p, "$STATICTRAMP_LIBFFI36")],
        (None, None) => {
            let mut v = Vec::new();
            if let Some(t) = std::env::current_exe()
                .ok()
                .as_deref()
                .and_then(Path::parent)
                .and_then(Path::parent)
            {
                v.push((t.join("libffi-3.6"), "beside the binary's target directory"));
            }
            if let Some(m) = option_env!("CARGO_MANIFEST_DIR") {
                v.push((Path::new(m).join("target/libffi-3.6"), "the source tree"));
            }
            v
        }
    };
    for (p, _) in &candidates {
        if p.join("lib/libffi.so.8").is_file() {
            return Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|(p, how)| format!("    {}/lib/libffi.so.8 ({how})", p.display()))
        .collect();
    Err(format!(
        "libffi 3.6 was not found; looked for:\n{}\nbuild it with scripts/build-libffi36 (from the \
         source vendored in libffi-sys), or name its prefix with --libffi36 PREFIX or \
         STATICTRAMP_LIBFFI36=PREFIX",
        looked.join("\n")
    ))
}

/// Checks that `info` shows the backend we meant to measure.
fn verify_info(b: &Backend, prefix36: &Path, preload: &Path) -> Result<(), String> {
    let i = &b.info;
    let get = |k: &str| i.get(k).map(String::as_str).unwrap_or("?");
    let provider = get("closure_api_provider");
    let fail = |why: String| {
        Err(format!(
            "{}: {why} (closure API from {provider}, libffi {}, trampoline {})",
            b.which.name(),
            get("libffi"),
            get("trampoline")
        ))
    };
    let lib36 = prefix36.join("lib");
    match b.which {
        Which::System => {
            if Path::new(provider).starts_with(&lib36) || get("statictramp_owns_code") != "absent" {
                return fail("the system configuration is not served by the system libffi".into());
            }
            if provider != get("libffi") {
                return fail(
                    "ffi_closure_alloc and ffi_prep_cif come from different objects".into(),
                );
            }
        }
        Which::Libffi36 => {
            if !Path::new(provider).starts_with(&lib36) {
                return fail(format!(
                    "ffi_closure_alloc is not bound to libffi 3.6 in {}",
                    lib36.display()
                ));
            }
            if get("trampoline") != "static" {
                return fail(
                    "libffi 3.6 does not use static trampolines here (was it configured \
                     without them?)"
                        .into(),
                );
            }
        }
        Which::Statictramp => {
            if Path::new(provider) != preload || get("statictramp_owns_code") != "1" {
                return fail(format!(
                    "the closure API is not served by the preload library {}",
                    preload.display()
                ));
            }
            if get("trampoline") != "static" {
                return fail("the closure code is not in a static trampoline".into());
            }
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Default)]
struct Scale {
    n: u64,
    made: u64,
    stopped: Option<String>,
    /// The process had as many mappings as vm.max_map_count allows.
    map_limit: bool,
    alloc_prep_ns: f64,
    call_ns: f64,
    free_ns: f64,
    vmas_added: f64,
    rss: f64,
    anon: f64,
    file: f64,
    shmem: f64,
}

impl Scale {
    fn from_lines(n: u64, l: &Lines) -> Result<Scale, String> {
        Ok(Scale {
            n,
            made: l.num("scale_made")? as u64,
            stopped: l.text("scale_stopped"),
            map_limit: l.num("scale_max_map_count_reached")? > 0.0,
            alloc_prep_ns: l.num("scale_alloc_prep_ns")?,
            call_ns: l.num("scale_call_ns")?,
            free_ns: l.num("scale_free_ns")?,
            vmas_added: l.num("scale_vmas_added")?,
            rss: l.num("scale_rss_bytes_per_closure")?,
            anon: l.num("scale_rss_anon_bytes_per_closure")?,
            file: l.num("scale_rss_file_bytes_per_closure")?,
            shmem: l.num("scale_rss_shmem_bytes_per_closure")?,
        })
    }
    fn vmas_per_million(&self) -> f64 {
        self.vmas_added * MILLION as f64 / self.made.max(1) as f64
    }
    /// Keeps the better timings of two runs of the same count.
    fn merge(&mut self, o: Scale) {
        self.alloc_prep_ns = self.alloc_prep_ns.min(o.alloc_prep_ns);
        self.call_ns = self.call_ns.min(o.call_ns);
        self.free_ns = self.free_ns.min(o.free_ns);
    }
}

/// One row of a scale table.
type ScaleMetric = fn(&Scale) -> f64;

/// Everything measured for one backend.
struct Res {
    call_ns: [f64; NSIGS],
    floor_ns: [f64; NSIGS],
    ir: Option<[f64; NSIGS]>,
    cycle_ns: f64,
    thr_cps: f64,
    thr_ns: f64,
    scales: Vec<Scale>,
}

impl Res {
    fn new() -> Res {
        Res {
            call_ns: [f64::INFINITY; NSIGS],
            floor_ns: [f64::INFINITY; NSIGS],
            ir: None,
            cycle_ns: f64::INFINITY,
            thr_cps: 0.0,
            thr_ns: f64::INFINITY,
            scales: Vec::new(),
        }
    }
}

fn min_into(acc: &mut [f64; NSIGS], v: [f64; NSIGS]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a = a.min(x);
    }
}

/// A table printed as aligned text and written as Markdown.
struct Table {
    title: String,
    note: String,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: impl Into<String>, note: impl Into<String>, head: &[&str]) -> Table {
        Table {
            title: title.into(),
            note: note.into(),
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }
    /// Columns of numbers (right-aligned; text is left-aligned).
    fn numeric(&self) -> Vec<bool> {
        (0..self.head.len())
            .map(|k| {
                k > 0
                    && self.rows.iter().all(|r| {
                        r[k].is_empty()
                            || r[k] == "n/a"
                            || r[k].starts_with(|c: char| c.is_ascii_digit() || c == '-')
                    })
            })
            .collect()
    }
    fn text(&self) -> String {
        let mut w: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (k, c) in r.iter().enumerate() {
                w[k] = w[k].max(c.chars().count());
            }
        }
        let numeric = self.numeric();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (k, c) in cells.iter().enumerate() {
                let pad = " ".repeat(w[k] - c.chars().count());
                if k > 0 {
                    s.push_str("  ");
                }
                if numeric[k] {
                    s.push_str(&pad);
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&pad);
                }
            }
            s.trim_end().to_string()
        };
        let mut s = format!("\n== {}\n", self.title);
        if !self.note.is_empty() {
            s.push_str(&self.note);
            s.push('\n');
        }
        s.push_str(&line(&self.head));
        s.push('\n');
        for r in &self.rows {
            s.push_str(&line(r));
            s.push('\n');
        }
        s
    }
    fn markdown(&self) -> String {
        let esc = |c: &String| c.replace('|', "\\|");
        let mut s = format!("## {}\n\n", self.title);
        if !self.note.is_empty() {
            s.push_str(&self.note);
            s.push_str("\n\n");
        }
        let cells: Vec<String> = self.head.iter().map(esc).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
        let align: Vec<&str> = self
            .numeric()
            .iter()
            .map(|&n| if n { "---:" } else { "---" })
            .collect();
        let _ = writeln!(s, "|{}|", align.join("|"));
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(esc).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s.push('\n');
        s
    }
}

/// A number with a precision that suits its size.
fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ratio(x: f64, base: f64) -> String {
    if x.is_finite() && base.is_finite() && base > 0.0 {
        format!("{:.2}x", x / base)
    } else {
        "n/a".into()
    }
}

fn count(n: u64) -> String {
    if n >= MILLION && n % MILLION == 0 {
        format!("{} M", n / MILLION)
    } else if n == SIXTEEN_M {
        "16 M".into()
    } else if n >= MILLION && n % 100_000 == 0 {
        format!("{}.{} M", n / MILLION, n % MILLION / 100_000)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{} k", n / 1000)
    } else {
        n.to_string()
    }
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// UTC date and time, without a date library.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Facts about the machine for the report.
fn machine(cc: &[String], callgrind: bool) -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut v = vec![
        ("CPU".to_string(), format!("{cpu} ({cores} CPUs available)")),
        (
            "kernel".into(),
            read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        ),
        (
            "vm.max_map_count".into(),
            read_trim("/proc/sys/vm/max_map_count").unwrap_or_else(|| "unknown".into()),
        ),
        ("date".into(), utc_now()),
        (
            "C compiler".into(),
            first_line(cc, "--version").unwrap_or_default(),
        ),
    ];
    if callgrind {
        v.push((
            "valgrind".into(),
            first_line(&["valgrind".into()], "--version").unwrap_or_default(),
        ));
    }
    if let Some(rev) = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
    {
        v.push(("commit (of the current directory)".into(), rev));
    }
    v
}

/// One target: what, the measured value, the goal, met or not (None: not
/// measured in this run).
struct Target {
    what: String,
    value: String,
    goal: String,
    met: Option<bool>,
}

struct Report {
    command: String,
    quick: bool,
    plan: Plan,
    machine: Vec<(String, String)>,
    backends: Vec<Backend>,
    res: Vec<Res>,
    floor_ir: Option<[f64; NSIGS]>,
    lib36_version: String,
    callgrind_dir: Option<PathBuf>,
}

impl Report {
    fn r(&self, w: Which) -> &Res {
        &self.res[w.index()]
    }

    /// The floor (handler called directly), best of all processes.
    fn floor_ns(&self) -> [f64; NSIGS] {
        let mut f = [f64::INFINITY; NSIGS];
        for r in &self.res {
            min_into(&mut f, r.floor_ns);
        }
        f
    }

    fn backend_table(&self) -> Table {
        let mut t = Table::new(
            "Backends",
            "What the driver's `info` found in each configuration (checked before measuring).",
            &[
                "backend",
                "closure API from",
                "libffi (ffi_prep_cif)",
                "trampolines",
                "closure code in",
            ],
        );
        for b in &self.backends {
            let g = |k: &str| b.info.get(k).map_or_else(|| "?".into(), |v| relative(v));
            let mut tramp = g("trampoline");
            if b.which == Which::Libffi36 {
                tramp.push_str(&format!(
                    " (libffi {}, ffi_get_version() says {})",
                    self.lib36_version,
                    g("libffi_version")
                ));
            }
            t.row(vec![
                b.which.name().into(),
                g("closure_api_provider"),
                g("libffi"),
                tramp,
                g("code_map"),
            ]);
        }
        t
    }

    fn ns_table(&self) -> Table {
        let p = &self.plan;
        let mut t = Table::new(
            "ns per call",
            format!(
                "Typed direct call through the closure's code pointer, {} calls per timed run, \
                 best of {} runs x {} rounds (backends interleaved). floor = the same handler \
                 called directly with a prebuilt avalue[]; net = call - floor. Ratios are to \
                 libffi 3.6.",
                p.call_iters, p.reps, p.rounds
            ),
            &[
                "signature",
                "floor",
                "system",
                "libffi-3.6",
                "statictramp",
                "system/3.6",
                "statictramp/3.6",
                "statictramp/3.6 net",
            ],
        );
        let f = self.floor_ns();
        let (a, b, c) = (
            self.r(Which::System),
            self.r(Which::Libffi36),
            self.r(Which::Statictramp),
        );
        for (k, s) in SIGS.iter().enumerate() {
            t.row(vec![
                s.name.into(),
                num(f[k]),
                num(a.call_ns[k]),
                num(b.call_ns[k]),
                num(c.call_ns[k]),
                ratio(a.call_ns[k], b.call_ns[k]),
                ratio(c.call_ns[k], b.call_ns[k]),
                ratio(c.call_ns[k] - f[k], b.call_ns[k] - f[k]),
            ]);
        }
        t
    }

    fn ir_table(&self) -> Option<Table> {
        let fl = self.floor_ir?;
        let ir = |w: Which| self.r(w).ir.unwrap_or([f64::NAN; NSIGS]);
        let (a, b, c) = (
            ir(Which::System),
            ir(Which::Libffi36),
            ir(Which::Statictramp),
        );
        let mut t = Table::new(
            "Instructions per call (callgrind)",
            format!(
                "valgrind --tool=callgrind --toggle-collect=measure_loop: instructions executed \
                 in the driver's call loop, divided by the {} calls (loop, argument setup and \
                 handler included). floor = the same loop calling the handler directly with a \
                 prebuilt avalue[]; net = total - floor: what the closure mechanism costs.",
                self.plan.callgrind_iters
            ),
            &[
                "signature",
                "floor",
                "system",
                "libffi-3.6",
                "statictramp",
                "system net",
                "libffi-3.6 net",
                "statictramp net",
                "statictramp/3.6",
                "statictramp/3.6 net",
            ],
        );
        for (k, s) in SIGS.iter().enumerate() {
            t.row(vec![
                s.name.into(),
                num(fl[k]),
                num(a[k]),
                num(b[k]),
                num(c[k]),
                num(a[k] - fl[k]),
                num(b[k] - fl[k]),
                num(c[k] - fl[k]),
                ratio(c[k], b[k]),
                ratio(c[k] - fl[k], b[k] - fl[k]),
            ]);
        }
        Some(t)
    }

    fn cycle_table(&self) -> Table {
        let p = &self.plan;
        let mut t = Table::new(
            "Allocate, prepare, call, free",
            format!(
                "ffi_closure_alloc + ffi_prep_closure_loc + one call + ffi_closure_free, \
                 int(int,int): {} cycles per timed run, best of {} runs x {} rounds; 2 threads: \
                 {} cycles each, best of {} rounds.",
                p.cycle_iters, p.reps, p.rounds, p.thread_iters, p.rounds
            ),
            &[
                "metric",
                "system",
                "libffi-3.6",
                "statictramp",
                "system/3.6",
                "statictramp/3.6",
            ],
        );
        let row = |what: &str, f: &dyn Fn(&Res) -> f64| {
            let v: Vec<f64> = BACKENDS.iter().map(|&w| f(self.r(w))).collect();
            vec![
                what.to_string(),
                num(v[0]),
                num(v[1]),
                num(v[2]),
                ratio(v[0], v[1]),
                ratio(v[2], v[1]),
            ]
        };
        t.row(row("cycle ns", &|r| r.cycle_ns));
        t.row(row("2 threads: cycles per second (total)", &|r| r.thr_cps));
        t.row(row("2 threads: ns per cycle per thread", &|r| r.thr_ns));
        t
    }

    fn scale_tables(&self) -> Vec<Table> {
        let mut out = Vec::new();
        for (k, &(n, runs)) in self.plan.scales.iter().enumerate() {
            let mut t = Table::new(
                format!("{} live closures", count(n)),
                format!(
                    "Allocate and prepare {n} closures (int(int) each, with its own user_data), \
                     keep them alive, call each once (results checked), free them all. VMAs and \
                     RSS: /proc/self/maps lines and /proc/self/status before and with the \
                     closures alive.{}",
                    if runs > 1 {
                        format!(" Times: best of {runs} runs.")
                    } else {
                        String::new()
                    }
                ),
                &[
                    "metric",
                    "system",
                    "libffi-3.6",
                    "statictramp",
                    "system/3.6",
                    "statictramp/3.6",
                ],
            );
            let s: Vec<&Scale> = BACKENDS.iter().map(|&w| &self.r(w).scales[k]).collect();
            let made: Vec<String> = s
                .iter()
                .map(|s| match &s.stopped {
                    Some(_) => format!("{} (stopped)", s.made),
                    None => s.made.to_string(),
                })
                .collect();
            for (w, s) in BACKENDS.iter().zip(&s) {
                if let Some(why) = &s.stopped {
                    let _ = write!(
                        t.note,
                        " {} stopped at {} closures: {}{}.",
                        w.name(),
                        s.made,
                        why_short(why),
                        if s.map_limit {
                            " (the process reached vm.max_map_count)"
                        } else {
                            ""
                        }
                    );
                }
            }
            t.row(vec![
                "closures made".into(),
                made[0].clone(),
                made[1].clone(),
                made[2].clone(),
                String::new(),
                String::new(),
            ]);
            let rows: [(&str, ScaleMetric); 9] = [
                ("alloc+prep ns", |s| s.alloc_prep_ns),
                ("free ns", |s| s.free_ns),
                ("call ns (each closure once)", |s| s.call_ns),
                ("VMAs added", |s| s.vmas_added),
                ("VMAs per million closures", Scale::vmas_per_million),
                ("RSS bytes per closure", |s| s.rss),
                ("  of which anonymous", |s| s.anon),
                ("  of which file", |s| s.file),
                ("  of which shmem", |s| s.shmem),
            ];
            for (what, f) in rows {
                let v: Vec<f64> = s.iter().map(|s| f(s)).collect();
                t.row(vec![
                    what.into(),
                    num(v[0]),
                    num(v[1]),
                    num(v[2]),
                    ratio(v[0], v[1]),
                    ratio(v[2], v[1]),
                ]);
            }
            out.push(t);
        }
        out
    }

    fn targets(&self) -> Vec<Target> {
        let mut v = Vec::new();
        let (b, c) = (self.r(Which::Libffi36), self.r(Which::Statictramp));
        match (self.floor_ir, b.ir, c.ir) {
            (Some(fl), Some(bi), Some(ci)) => {
                for (k, s) in SIGS.iter().enumerate() {
                    let limit = if k == 0 { 0.5 } else { 1.0 / 3.0 };
                    let r = (ci[k] - fl[k]) / (bi[k] - fl[k]);
                    v.push(Target {
                        what: format!("instructions/call, {} (net)", s.name),
                        value: format!(
                            "{} vs {} = {r:.2}x",
                            num(ci[k] - fl[k]),
                            num(bi[k] - fl[k])
                        ),
                        goal: format!("<= {} of libffi 3.6", if k == 0 { "1/2" } else { "1/3" }),
                        met: Some(r <= limit + 1e-9),
                    });
                }
            }
            _ => v.push(Target {
                what: "instructions/call".into(),
                value: "not measured (--no-callgrind)".into(),
                goal: "<= 1/3 of libffi 3.6 (void(void): 1/2)".into(),
                met: None,
            }),
        }
        let f = self.floor_ns();
        for (k, s) in SIGS.iter().enumerate() {
            let r = (c.call_ns[k] - f[k]) / (b.call_ns[k] - f[k]);
            v.push(Target {
                what: format!("ns/call, {} (net)", s.name),
                value: format!(
                    "{} vs {} = {r:.2}x",
                    num(c.call_ns[k] - f[k]),
                    num(b.call_ns[k] - f[k])
                ),
                goal: "<= 0.5x libffi 3.6".into(),
                met: Some(r <= 0.5),
            });
        }
        v.push(Target {
            what: "alloc+prep+call+free cycle".into(),
            value: format!("{} ns", num(c.cycle_ns)),
            goal: "<= 25 ns".into(),
            met: Some(c.cycle_ns <= 25.0),
        });
        if let Some(s) = c.scales.first() {
            let at = if s.n == MILLION {
                String::new()
            } else {
                format!(" (measured at {})", count(s.n))
            };
            v.push(Target {
                what: format!("alloc+prep at 1 M live{at}"),
                value: format!("{} ns", num(s.alloc_prep_ns)),
                goal: "<= 40 ns".into(),
                met: Some(s.alloc_prep_ns <= 40.0),
            });
            v.push(Target {
                what: format!("free at 1 M live{at}"),
                value: format!("{} ns", num(s.free_ns)),
                goal: "<= 15 ns".into(),
                met: Some(s.free_ns <= 15.0),
            });
        }
        let big = c.scales.iter().find(|s| s.n >= SIXTEEN_M);
        let limit = read_trim("/proc/sys/vm/max_map_count").unwrap_or_else(|| "?".into());
        let under = if limit == "65530" {
            "the default vm.max_map_count (65530)".to_string()
        } else {
            format!("vm.max_map_count {limit} (not the default 65530)")
        };
        match big {
            Some(s) => {
                v.push(Target {
                    what: format!("{} live closures under {under}", count(s.n)),
                    value: match &s.stopped {
                        Some(why) => format!("stopped at {}: {}", s.made, why_short(why)),
                        None => format!("{} made", s.made),
                    },
                    goal: "all made".into(),
                    met: Some(s.stopped.is_none() && s.made == s.n),
                });
                v.push(Target {
                    what: format!("VMAs per million at {}", count(s.n)),
                    value: num(s.vmas_per_million()),
                    goal: "<= 64".into(),
                    met: Some(s.vmas_per_million() <= 64.0),
                });
                v.push(Target {
                    what: format!("RSS bytes per closure at {}", count(s.n)),
                    value: num(s.rss),
                    goal: "<= 80".into(),
                    met: Some(s.rss <= 80.0),
                });
            }
            None => v.push(Target {
                what: "16 M live closures, VMAs per million, RSS per closure".into(),
                value: format!(
                    "not measured ({})",
                    if self.quick {
                        "--quick"
                    } else {
                        "--scale below 16 M"
                    }
                ),
                goal: "all made, <= 64 VMAs per million, <= 80 bytes".into(),
                met: None,
            }),
        }
        v
    }

    fn target_table(&self) -> Table {
        let mut t = Table::new(
            "Targets (statictramp)",
            "Judged on statictramp's numbers above; net = minus the floor. Unmet targets do \
             not fail the command.",
            &["target", "measured", "goal", "status"],
        );
        for x in self.targets() {
            t.row(vec![
                x.what,
                x.value,
                x.goal,
                match x.met {
                    Some(true) => "met".into(),
                    Some(false) => "NOT met".into(),
                    None => "not measured".into(),
                },
            ]);
        }
        t
    }

    fn tables(&self) -> Vec<Table> {
        let mut v = vec![self.backend_table(), self.ns_table()];
        v.extend(self.ir_table());
        v.push(self.cycle_table());
        v.extend(self.scale_tables());
        v.push(self.target_table());
        v
    }

    fn text(&self) -> String {
        let mut s = String::new();
        for t in self.tables() {
            s.push_str(&t.text());
        }
        if let Some(d) = &self.callgrind_dir {
            let _ = writeln!(
                s,
                "\ncallgrind output: {}/callgrind-<backend>.out.<1..6> (one per signature, in \
                 the order above; e.g. callgrind_annotate --inclusive=yes FILE)",
                d.display()
            );
        }
        s
    }

    fn markdown(&self) -> String {
        let mut s = String::from("# statictramp benchmark\n\n");
        let _ = writeln!(
            s,
            "Generated by `{}`; rerun with `scripts/bench` (which builds what is needed and \
             runs `statictramp bench --out docs`). The driver is `compat/bench/bench.c`: it \
             uses only libffi's public API, so one binary measures the system libffi, libffi \
             3.6 (`LD_LIBRARY_PATH`) and statictramp (`LD_PRELOAD`). Every call's result is \
             checked.\n",
            relative(&self.command)
        );
        s.push_str(
            "![instructions and ns per call](bench.svg)\n\n## Machine\n\n| | |\n|---|---|\n",
        );
        for (k, v) in &self.machine {
            let _ = writeln!(s, "| {k} | {} |", v.replace('|', "\\|"));
        }
        s.push('\n');
        for t in self.tables() {
            s.push_str(&t.markdown());
        }
        s.push_str(
            "## Notes\n\n\
             - Instruction counts are repeatable (the same binaries give the same counts on \
             any x86_64 machine); times depend on the machine and its load. Timed runs \
             rotate the order of the backends in every round and keep the best value.\n\
             - The floor runs the same loop shape as the closure loop, with the handler \
             called directly; net numbers subtract it, so they are what the closure \
             mechanism adds (trampoline, argument marshalling, return value).\n\
             - The libffi 3.6 backend is libffi 3.6.0 as vendored in the libffi-sys crate \
             (its `libffi.pc` says 3.6.0; its `ffi_get_version()` still returns 3.5.2), \
             configured with its default static trampolines.\n\
             - `scale` counts VMAs as lines of /proc/self/maps and RSS from \
             /proc/self/status; the driver's own arrays are allocated and touched before \
             the first snapshot.\n",
        );
        s
    }
}

/// `v` with the current directory's prefix removed from the paths in it, so
/// that reports written into a source tree name no machine-specific paths.
fn relative(v: &str) -> String {
    match std::env::current_dir() {
        Ok(d) if d.as_os_str().len() > 1 => {
            let prefix = format!("{}/", d.display());
            v.replace(&prefix, "")
        }
        _ => v.to_string(),
    }
}

/// The first clause of a driver `stopped` line, without the count.
fn why_short(why: &str) -> String {
    why.split_once(' ')
        .map_or(why, |(_, rest)| rest)
        .to_string()
}

/// XML text escaping.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const COLORS: [(&str, &str); 4] = [
    ("floor (no closure)", "#9e9e9e"),
    ("system libffi", "#d95f02"),
    ("libffi 3.6", "#7570b3"),
    ("statictramp", "#1b9e77"),
];

/// A "nice" axis maximum and tick step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// One panel of grouped bars: per signature, floor and the three backends.
fn svg_panel(
    s: &mut String,
    y0: f64,
    (title, unit, decimals): (&str, &str, usize),
    data: &[[f64; NSIGS]; 4],
) {
    let (left, width, height) = (70.0, 840.0, 260.0);
    let vmax = data
        .iter()
        .flat_map(|d| d.iter())
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    let (top, step) = axis(vmax);
    let base = y0 + 40.0 + height;
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        y0 + 22.0,
        xml(title)
    );
    let mut tick = 0.0;
    while tick <= top + step * 0.01 {
        let y = base - tick / top * height;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left + width,
            left - 6.0,
            y + 4.0,
            if step >= 1.0 {
                format!("{tick:.0}")
            } else {
                format!("{tick:.1}")
            }
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" font-size="12" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        base - height / 2.0,
        base - height / 2.0,
        xml(unit)
    );
    let group = width / NSIGS as f64;
    let bar = (group - 24.0) / 4.0;
    for (k, sig) in SIGS.iter().enumerate() {
        let gx = left + group * k as f64 + 12.0;
        for (j, (_, color)) in COLORS.iter().enumerate() {
            let v = data[j][k];
            if !v.is_finite() {
                continue;
            }
            let h = v / top * height;
            let x = gx + bar * j as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                base - h,
                bar - 2.0,
                x + (bar - 2.0) / 2.0,
                base - h - 3.0,
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.decimals$}")
                }
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            gx + bar * 2.0,
            base + 18.0,
            xml(sig.short)
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{base:.1}" x2="{}" y2="{base:.1}" stroke="black"/>"#,
        left + width
    );
}

fn svg(rep: &Report) -> String {
    let mut panels: Vec<(&str, &str, usize, [[f64; NSIGS]; 4])> = Vec::new();
    let ir = |w: Which| rep.r(w).ir.unwrap_or([f64::NAN; NSIGS]);
    if let Some(fl) = rep.floor_ir {
        panels.push((
            "Instructions per closure call (callgrind; lower is better)",
            "instructions per call",
            0,
            [
                fl,
                ir(Which::System),
                ir(Which::Libffi36),
                ir(Which::Statictramp),
            ],
        ));
    }
    panels.push((
        "Nanoseconds per closure call (best of all runs; lower is better)",
        "ns per call",
        1,
        [
            rep.floor_ns(),
            rep.r(Which::System).call_ns,
            rep.r(Which::Libffi36).call_ns,
            rep.r(Which::Statictramp).call_ns,
        ],
    ));
    let panel_h = 340.0;
    let legend_y = 30.0 + panel_h * panels.len() as f64;
    let total_h = legend_y + 60.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="940" height="{total_h:.0}" viewBox="0 0 940 {total_h:.0}" font-family="DejaVu Sans, Verdana, sans-serif">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="white"/><text x="470" y="20" font-size="13" text-anchor="middle" fill="#444">{}</text>"##,
        xml(&format!(
            "statictramp bench: {} ({})",
            rep.machine
                .iter()
                .find(|(k, _)| k == "date")
                .map_or("", |(_, v)| v.as_str()),
            rep.machine.first().map_or("", |(_, v)| v.as_str())
        ))
    );
    for (k, (title, unit, decimals, data)) in panels.iter().enumerate() {
        svg_panel(
            &mut s,
            30.0 + panel_h * k as f64,
            (title, unit, *decimals),
            data,
        );
    }
    for (j, (name, color)) in COLORS.iter().enumerate() {
        let x = 70.0 + 200.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{legend_y}" width="14" height="14" fill="{color}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            x + 20.0,
            legend_y + 12.0,
            xml(name)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="70" y="{}" font-size="11" fill="#444">s16 = struct{{long,long}} in and out by value; s40 = struct{{5 long}} by value; d/i/l = double/int/long arguments.</text>"##,
        legend_y + 40.0
    );
    s.push_str("</svg>\n");
    s
}

/// Runs one step, printing its name and time on stderr.
fn step<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let t = Instant::now();
    eprint!("statictramp bench: {what} ...");
    let r = f();
    match &r {
        Ok(_) => eprintln!(" {:.1} s", t.elapsed().as_secs_f64()),
        Err(_) => eprintln!(" failed"),
    }
    r
}

fn measure(o: &Options, cmdline: String) -> Result<Report, (i32, String)> {
    let own = |e: String| (EXIT_OWN_ERROR, e);
    let plan = Plan::new(o);
    let callgrind = !o.no_callgrind;
    // Everything needed, before anything runs.
    let cc = compiler();
    if callgrind && first_line(&["valgrind".into()], "--version").is_none() {
        return Err(own(
            "valgrind is not installed (needed for instruction counts): `apt-get install \
             valgrind`, or pass --no-callgrind"
                .into(),
        ));
    }
    let prefix36 = find_libffi36(o.libffi36.as_deref()).map_err(own)?;
    let preload = library::find(o.lib.as_deref())
        .map_err(|e| own(e.to_string()))?
        .path;
    let driver = build_driver(&cc, plan.reps).map_err(own)?;
    let lib36_version = std::fs::read_to_string(prefix36.join("lib/pkgconfig/libffi.pc"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "?".into());

    let mut backends: Vec<Backend> = BACKENDS
        .iter()
        .map(|&which| Backend {
            which,
            env: match which {
                Which::System => vec![],
                Which::Libffi36 => vec![("LD_LIBRARY_PATH", prefix36.join("lib").into())],
                Which::Statictramp => vec![("LD_PRELOAD", preload.clone().into())],
            },
            info: BTreeMap::new(),
        })
        .collect();
    let fail = |e: String| (1, e);
    step("checking the three backends (info)", || {
        for b in backends.iter_mut() {
            let l = driver.run(b, &["info"])?;
            b.info =
                l.0.iter()
                    .map(|v| (v[0].clone(), v[1..].join(" ")))
                    .collect();
            verify_info(b, &prefix36, &preload)?;
        }
        Ok(())
    })
    .map_err(fail)?;

    let mut res: Vec<Res> = BACKENDS.iter().map(|_| Res::new()).collect();
    let it = |n: u64| n.to_string();
    for round in 0..plan.rounds {
        step(
            &format!(
                "timing round {}/{}: calls, cycle, 2 threads",
                round + 1,
                plan.rounds
            ),
            || {
                for k in 0..BACKENDS.len() {
                    let b = &backends[(k + round) % BACKENDS.len()];
                    let r = &mut res[b.which.index()];
                    let l = driver.run(b, &["calls", &it(plan.call_iters)])?;
                    min_into(&mut r.call_ns, l.per_sig("call")?);
                    min_into(&mut r.floor_ns, l.per_sig("floor")?);
                    let l = driver.run(b, &["cycle", &it(plan.cycle_iters)])?;
                    r.cycle_ns = r.cycle_ns.min(l.num("cycle")?);
                    let l = driver.run(b, &["threads", "2", &it(plan.thread_iters)])?;
                    let cps = l.num("threads_cycles_per_sec")?;
                    if cps > r.thr_cps {
                        r.thr_cps = cps;
                        r.thr_ns = l.num("threads_ns_per_cycle_per_thread")?;
                    }
                }
                Ok(())
            },
        )
        .map_err(fail)?;
    }

    let mut floor_ir = None;
    if callgrind {
        step("callgrind: instructions per call", || {
            for b in &backends {
                // The backend under valgrind must be the one `info` saw.
                let prefix: Vec<OsString> = vec!["valgrind".into(), "-q".into()];
                let l = driver.run_with(b, &prefix, &["info".into()])?;
                for key in ["closure_api_provider", "trampoline"] {
                    if l.text(key).as_ref() != b.info.get(key) {
                        return Err(format!(
                            "{}: under valgrind, {key} is {:?}, not {:?}",
                            b.which.name(),
                            l.text(key),
                            b.info.get(key)
                        ));
                    }
                }
                res[b.which.index()].ir = Some(driver.callgrind(b, false, plan.callgrind_iters)?);
            }
            floor_ir = Some(driver.callgrind(&backends[0], true, plan.callgrind_iters)?);
            Ok(())
        })
        .map_err(fail)?;
    }

    for &(n, runs) in &plan.scales {
        for run in 0..runs {
            step(
                &format!("{} live closures, run {}/{runs}", count(n), run + 1),
                || {
                    for k in 0..BACKENDS.len() {
                        let b = &backends[(k + run) % BACKENDS.len()];
                        let l = driver.run(b, &["scale", &it(n)])?;
                        let s = Scale::from_lines(n, &l)?;
                        let r = &mut res[b.which.index()];
                        match r.scales.iter_mut().find(|x| x.n == n) {
                            Some(x) => x.merge(s),
                            None => r.scales.push(s),
                        }
                    }
                    Ok(())
                },
            )
            .map_err(fail)?;
        }
    }

    Ok(Report {
        command: cmdline,
        quick: o.quick,
        machine: machine(&cc, callgrind),
        plan,
        backends,
        res,
        floor_ir,
        lib36_version,
        callgrind_dir: callgrind.then(|| driver.work.clone()),
    })
}

fn write_out(dir: &Path, rep: &Report) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, text) in [("bench.md", rep.markdown()), ("bench.svg", svg(rep))] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("statictramp bench: wrote {}", p.display());
    }
    Ok(())
}

pub fn main(args: &[OsString]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("statictramp bench: {e}\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let mut cmdline = String::from("statictramp bench");
    for a in args {
        cmdline.push(' ');
        cmdline.push_str(&a.to_string_lossy());
    }
    let started = Instant::now();
    let rep = match measure(&opts, cmdline) {
        Ok(r) => r,
        Err((code, e)) => {
            eprintln!("statictramp bench: {e}");
            return code;
        }
    };
    print!("{}", rep.text());
    if let Some(dir) = &opts.out {
        if let Err(e) = write_out(dir, &rep) {
            eprintln!("statictramp bench: {e}");
            return EXIT_OWN_ERROR;
        }
    }
    eprintln!(
        "statictramp bench: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse(&os(&[
            "--quick",
            "--out",
            "d",
            "--libffi36=/p",
            "--no-callgrind",
            "--scale",
            "16M",
        ]))
        .unwrap();
        assert_eq!(
            o,
            Options {
                quick: true,
                out: Some("d".into()),
                libffi36: Some("/p".into()),
                lib: None,
                no_callgrind: true,
                scale: Some(16_000_000),
            }
        );
        assert!(parse(&os(&["--bogus"])).is_err());
        assert!(parse(&os(&["--out"])).is_err());
        assert!(parse(&os(&["--scale", "x"])).is_err());
        assert_eq!(parse_count("100k"), Some(100_000));
        assert_eq!(parse_count("16777216"), Some(SIXTEEN_M));
        assert_eq!(parse_count("0"), None);
    }

    #[test]
    fn lines_and_axis() {
        let l = Lines::parse("call v_v 1.5\ncall i_ii 2\nscale_made 7\n");
        assert_eq!(l.num("scale_made").unwrap(), 7.0);
        assert!(l.per_sig("call").is_err()); // not every signature
        assert_eq!(axis(93.0), (100.0, 20.0));
        assert_eq!(axis(335.0), (400.0, 100.0));
        assert_eq!(count(SIXTEEN_M), "16 M");
        assert_eq!(count(MILLION), "1 M");
        assert_eq!(count(100_000), "100 k");
        assert_eq!(count(4_300_000), "4.3 M");
    }
}
