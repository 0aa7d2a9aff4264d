//! The LD_PRELOAD library (scripts/build-preload) over the system libffi.
//!
//! compat/c/bind_check.c is compiled against the system libffi (`-lffi`)
//! and run three ways:
//! - with `LD_PRELOAD=$STATICTRAMP_PRELOAD`: every closure symbol libffi
//!   has must resolve into the preload library (dladdr), every closure call must
//!   return the right value and `statictramp_owns_code` must claim each
//!   closure's code;
//! - the same with `LD_DEBUG=bindings`: the dynamic linker must report each
//!   symbol bound to the preload library with libffi's version node
//!   `[LIBFFI_CLOSURE_8.0]` (glibc prints the version the *reference* asks
//!   for, and would bind it to an unversioned definition too; that the
//!   library *defines* the symbols in that node is checked with nm below);
//! - without the preload (control): the symbols resolve into libffi.so.8
//!   and the same calls give the same values.
//!
//! The library's exports are checked with `nm -D --with-symbol-versions`
//! and its segments with `readelf -lW`.
//!
//! STATICTRAMP_PRELOAD must name the library; scripts/test.sh builds it and
//! sets it. Without it these tests fail rather than pass vacuously.

use statictramp_testkit::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The closure API the preload library exports, all in libffi's version
/// node LIBFFI_CLOSURE_8.0.
const CLOSURE_API: [&str; 8] = [
    "ffi_closure_alloc",
    "ffi_closure_free",
    "ffi_prep_closure",
    "ffi_prep_closure_loc",
    "ffi_prep_raw_closure",
    "ffi_prep_raw_closure_loc",
    "ffi_prep_java_raw_closure",
    "ffi_prep_java_raw_closure_loc",
];
const LIBFFI_NODE: &str = "LIBFFI_CLOSURE_8.0";

/// libffi has the Java raw closures only where its raw API is not native
/// (`FFI_NATIVE_RAW_API`; i386's ffi.h does not declare them and its
/// libffi.so.8 does not export them), so bind_check uses them only there.
fn java_raw_in_libffi() -> bool {
    libffi_sys::FFI_NATIVE_RAW_API == 0
}

/// The part of [`CLOSURE_API`] libffi itself has here: what bind_check
/// binds.
fn libffi_closure_api() -> Vec<&'static str> {
    CLOSURE_API
        .into_iter()
        .filter(|s| java_raw_in_libffi() || !s.contains("java"))
        .collect()
}
const OUR_NODE: &str = "STATICTRAMP_0.1";

/// The closures bind_check asks `statictramp_owns_code` about while live
/// (the Java raw ones only where libffi has them).
const LIVE_CLOSURES: [&str; 7] = [
    "prep_closure_loc",
    "prep_closure",
    "struct_by_value",
    "prep_raw_closure_loc",
    "prep_raw_closure",
    "prep_java_raw_closure_loc",
    "prep_java_raw_closure",
];

/// compat/c/bind_check.c built against the system libffi, once per test run.
fn bind_check() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    // PIE, so that the addresses bind_check takes of libffi's functions
    // are those of the definitions the dynamic linker picked (not PLT
    // stubs inside the executable).
    EXE.get_or_init(|| {
        build_c(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "bind_check",
            &["-O1", "-g", "-Wall", "-Wextra", "-fPIE", "-pie"],
            &["-lffi", "-ldl"],
        )
    })
}

/// What one run of bind_check reported.
#[derive(Debug)]
struct Report {
    /// symbol name -> object that defines it (dladdr's dli_fname).
    symbols: BTreeMap<String, String>,
    /// check name -> whole line, for those that failed.
    failed: Vec<String>,
    /// number of `check` lines.
    checks: usize,
    /// closure label -> "1", "0" or "absent".
    owns: BTreeMap<String, String>,
    /// the `done <failures>` line was printed.
    done: bool,
    stdout: String,
    stderr: String,
    success: bool,
}

/// Runs bind_check with `preload` in LD_PRELOAD (or none) and extra env.
fn run_bind_check(preload: Option<&Path>, env: &[(&str, &str)]) -> Report {
    let mut cmd = Command::new(bind_check());
    cmd.env_remove("LD_PRELOAD").env_remove("LD_DEBUG");
    if let Some(p) = preload {
        cmd.env("LD_PRELOAD", p);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output(&mut cmd);
    let stdout = text(&out.stdout);
    let mut r = Report {
        symbols: BTreeMap::new(),
        failed: Vec::new(),
        checks: 0,
        owns: BTreeMap::new(),
        done: false,
        stderr: text(&out.stderr),
        success: out.status.success(),
        stdout: String::new(),
    };
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["symbol", name, rest @ ..] => {
                r.symbols.insert(name.to_string(), rest.join(" "));
            }
            ["check", _, status, ..] => {
                r.checks += 1;
                if *status != "ok" {
                    r.failed.push(line.to_string());
                }
            }
            ["owns", label, value] => {
                r.owns.insert(label.to_string(), value.to_string());
            }
            ["done", _] => r.done = true,
            _ => {}
        }
    }
    r.stdout = stdout;
    r
}

/// How many checks bind_check makes at least: 23, and 7 more with the
/// Java raw closures.
fn min_checks() -> usize {
    if java_raw_in_libffi() { 30 } else { 23 }
}

/// The closure calls of a run all returned the expected values.
fn assert_calls_ok(r: &Report, how: &str) {
    assert!(
        r.done && r.success && r.failed.is_empty() && r.checks >= min_checks(),
        "bind_check {how}: exit success {}, {} checks, failed: {:#?}\nstdout:\n{}\nstderr:\n{}",
        r.success,
        r.checks,
        r.failed,
        r.stdout,
        r.stderr
    );
}

fn same_file(a: &str, b: &Path) -> bool {
    Path::new(a).canonicalize().is_ok_and(|a| a == b)
}

#[test]
fn closure_api_resolves_into_statictramp_under_ld_preload() {
    let lib = preload();
    let r = run_bind_check(Some(&lib), &[]);
    assert_calls_ok(&r, "under LD_PRELOAD");
    for sym in libffi_closure_api() {
        let at = r
            .symbols
            .get(sym)
            .unwrap_or_else(|| panic!("bind_check did not report {sym}:\n{}", r.stdout));
        assert!(
            same_file(at, &lib),
            "{sym} resolved into {at}, not into {} (LD_PRELOAD did not take)",
            lib.display()
        );
    }
    for label in LIVE_CLOSURES
        .into_iter()
        .filter(|l| java_raw_in_libffi() || !l.contains("java"))
    {
        assert_eq!(
            r.owns.get(label).map(String::as_str),
            Some("1"),
            "statictramp_owns_code(code of the {label} closure) should be 1\n{}",
            r.stdout
        );
    }
    assert_eq!(
        r.owns.get("freed").map(String::as_str),
        Some("0"),
        "statictramp_owns_code of a freed closure's code should be 0\n{}",
        r.stdout
    );
}

#[test]
fn ld_debug_bindings_show_libffi_version_node() {
    let lib = preload();
    let r = run_bind_check(Some(&lib), &[("LD_DEBUG", "bindings")]);
    assert_calls_ok(&r, "under LD_PRELOAD with LD_DEBUG=bindings");
    let exe = bind_check().canonicalize().unwrap();
    // `binding file <from> [0] to <to> [0]: normal symbol `name' [VERSION]`
    let mut bound: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for line in r.stderr.lines() {
        let Some((_, rest)) = line.split_once("binding file ") else {
            continue;
        };
        let Some((from, rest)) = rest.split_once(" [") else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(" to ") else {
            continue;
        };
        let Some((to, rest)) = rest.split_once(" [") else {
            continue;
        };
        let Some((_, rest)) = rest.split_once("symbol `") else {
            continue;
        };
        let Some((name, version)) = rest.split_once('\'') else {
            continue;
        };
        if !Path::new(from).canonicalize().is_ok_and(|f| f == exe) {
            continue;
        }
        let to = Path::new(to)
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from(to));
        bound
            .entry(name.to_string())
            .or_default()
            .push((to, version.trim().to_string()));
    }
    let want_version = format!("[{LIBFFI_NODE}]");
    for sym in libffi_closure_api() {
        let b = bound.get(sym).unwrap_or_else(|| {
            panic!(
                "LD_DEBUG=bindings shows no binding of {sym} from bind_check; bindings seen: {:#?}",
                bound.keys().collect::<Vec<_>>()
            )
        });
        for (to, version) in b {
            assert!(
                to == &lib && version == &want_version,
                "{sym} bound to {} {version}, expected {} {want_version}",
                to.display(),
                lib.display()
            );
        }
    }
    // ffi_call itself stays libffi's.
    let call = bound.get("ffi_call").expect("a binding of ffi_call");
    assert!(
        call.iter().all(|(to, _)| to
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libffi.so"))),
        "ffi_call should bind to libffi: {call:?}"
    );
}

#[test]
fn control_without_preload_uses_system_libffi() {
    // Needs no preload library, but is only meaningful next to the others.
    let r = run_bind_check(None, &[]);
    assert_calls_ok(&r, "without LD_PRELOAD (system libffi)");
    for sym in libffi_closure_api() {
        let at = r
            .symbols
            .get(sym)
            .unwrap_or_else(|| panic!("bind_check did not report {sym}:\n{}", r.stdout));
        let name = Path::new(at)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            name.starts_with("libffi.so.8"),
            "without LD_PRELOAD, {sym} should come from libffi.so.8, not {at}"
        );
    }
    for (label, value) in &r.owns {
        assert_eq!(
            value, "absent",
            "without statictramp, statictramp_owns_code must not exist ({label})"
        );
    }
}

/// What `file` says of a shared object of this target: class, machine.
#[cfg(target_arch = "x86_64")]
const FILE_SAYS: (&str, &str) = ("ELF 64-bit LSB shared object", "x86-64");
#[cfg(target_arch = "x86")]
const FILE_SAYS: (&str, &str) = ("ELF 32-bit LSB shared object", "Intel 80386");

#[test]
fn preload_library_exports_exactly_the_closure_api_with_versions() {
    let lib = preload();
    let out = output(
        Command::new("nm")
            .args(["-D", "--defined-only", "--with-symbol-versions"])
            .arg(&lib),
    );
    assert!(out.status.success(), "nm failed: {}", text(&out.stderr));
    let mut symbols = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    for line in text(&out.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [_, "A", node] => {
                nodes.insert(node.to_string());
            }
            [_, _, sym] => {
                symbols.insert(sym.to_string());
            }
            _ => panic!("unexpected nm line: {line:?}"),
        }
    }
    let mut want: BTreeSet<String> = CLOSURE_API
        .iter()
        .map(|s| format!("{s}@@{LIBFFI_NODE}"))
        .collect();
    want.insert(format!("statictramp_owns_code@@{OUR_NODE}"));
    assert_eq!(symbols, want, "dynamic symbols of {}", lib.display());
    let want_nodes: BTreeSet<String> = [LIBFFI_NODE, OUR_NODE].map(String::from).into();
    assert_eq!(nodes, want_nodes, "version nodes of {}", lib.display());

    // It is a shared object of this target's class and machine.
    let out = output(Command::new("file").arg("-L").arg(&lib));
    let desc = text(&out.stdout);
    let (class, machine) = FILE_SAYS;
    assert!(
        desc.contains(class) && desc.contains(machine),
        "file says: {desc}"
    );
}

#[test]
fn preload_library_has_no_writable_executable_segment() {
    let lib = preload();
    let out = output(Command::new("readelf").args(["-lW"]).arg(&lib));
    assert!(
        out.status.success(),
        "readelf failed: {}",
        text(&out.stderr)
    );
    let segments = text(&out.stdout);
    let mut loads = 0;
    let mut stack = false;
    for line in segments.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // Type Offset VirtAddr PhysAddr FileSiz MemSiz Flg... Align
        let Some(&kind) = words.first() else { continue };
        if kind != "LOAD" && kind != "GNU_STACK" {
            continue;
        }
        let flags: String = words[6..words.len() - 1].concat();
        assert!(
            !(flags.contains('W') && flags.contains('E')),
            "writable and executable segment in {}:\n{line}",
            lib.display()
        );
        if kind == "LOAD" {
            loads += 1;
        } else {
            stack = true;
            assert!(!flags.contains('E'), "executable stack requested: {line}");
        }
    }
    assert!(loads >= 2, "no LOAD segments?\n{segments}");
    assert!(
        stack,
        "no GNU_STACK note (executable stack by default)\n{segments}"
    );
}
