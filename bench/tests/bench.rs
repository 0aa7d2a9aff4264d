//! `statictramp-bench --quick`, end to end: every table and row is printed,
//! every number parses, the three backends are the ones named (the
//! statictramp row is served by the preload library, libffi 3.6 by static
//! trampolines), and `--out` writes bench.md and bench.svg. Missing pieces
//! are errors with a way to get them.
//!
//! Needs `STATICTRAMP_PRELOAD` (scripts/test.sh sets it to what
//! scripts/build-preload made), libffi 3.6 (built here with
//! scripts/build-libffi36 if it is not there yet), a C compiler and
//! libffi-dev, and valgrind for the instruction counts (required).

use statictramp_testkit::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_statictramp-bench");

const SIG_NAMES: [&str; 6] = [
    "void(void)",
    "int(int,int)",
    "double(4 double,4 int)",
    "struct{long,long}(struct{long,long})",
    "int(struct{5 long})",
    "long(8 long,4 double)",
];

/// The libffi 3.6 prefix, built by scripts/build-libffi36 if needed.
fn libffi36() -> PathBuf {
    let root = repo_root();
    let out = output(Command::new(root.join("scripts/build-libffi36")).current_dir(root));
    assert!(
        out.status.success(),
        "scripts/build-libffi36 failed (it needs make, python3 and the libffi-sys source \
         cargo fetched):\n{}",
        text(&out.stderr)
    );
    PathBuf::from(text(&out.stdout).trim())
}

/// valgrind is required: the instruction counts are half of what the
/// benchmark reports (scripts/test.sh installs it).
fn require_valgrind() {
    let ok = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "valgrind is not installed: apt-get install valgrind (scripts/test.sh installs it)"
    );
}

fn bench() -> Command {
    let mut c = Command::new(BENCH);
    c.env_remove("LD_PRELOAD")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("STATICTRAMP_LIBFFI36")
        .env_remove("STATICTRAMP_LIB");
    c
}

/// The text of section `title` (`== title` up to the next `== `).
fn section<'a>(out: &'a str, title: &str) -> &'a str {
    let head = format!("\n== {title}\n");
    let start = out
        .find(&head)
        .unwrap_or_else(|| panic!("no section {title:?} in:\n{out}"))
        + head.len();
    let rest = &out[start..];
    &rest[..rest.find("\n== ").unwrap_or(rest.len())]
}

/// The cells after `label` in the row of `sec` that starts with it.
fn row<'a>(sec: &'a str, label: &str) -> Vec<&'a str> {
    let line = sec
        .lines()
        .find(|l| {
            l.strip_prefix(label)
                .is_some_and(|r| r.is_empty() || r.starts_with("  "))
        })
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{sec}"));
    line[label.len()..].split_whitespace().collect()
}

/// Parses `n` numbers (a trailing `x` allowed, as in ratios), each > 0.
fn numbers(cells: &[&str], n: usize, what: &str) -> Vec<f64> {
    assert_eq!(cells.len(), n, "{what}: expected {n} cells, got {cells:?}");
    cells
        .iter()
        .map(|c| {
            let v: f64 = c
                .trim_end_matches('x')
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {c:?} is not a number"));
            assert!(v.is_finite() && v > 0.0, "{what}: {v} is not positive");
            v
        })
        .collect()
}

#[test]
fn quick_bench_reports_every_row_for_the_right_backends() {
    let preload = preload();
    let prefix = libffi36();
    require_valgrind();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-quick");
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = bench();
    cmd.args(["--quick", "--scale", "20k", "--lib"])
        .arg(&preload)
        .arg("--libffi36")
        .arg(&prefix)
        .arg("--out")
        .arg(&dir);
    let out = output(&mut cmd);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "statictramp-bench failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let stdout = format!("\n{stdout}");

    // The backends are the ones named.
    let b = section(&stdout, "Backends");
    let lib_name = preload.canonicalize().unwrap();
    let lib_name = lib_name.file_name().unwrap().to_str().unwrap();
    let st = b.lines().find(|l| l.starts_with("statictramp ")).unwrap();
    assert!(
        st.contains(lib_name) && st.contains("static"),
        "statictramp backend: {st}"
    );
    let l36 = b.lines().find(|l| l.starts_with("libffi-3.6 ")).unwrap();
    assert!(
        l36.contains("static (libffi 3.6"),
        "libffi 3.6 backend: {l36}"
    );
    let sys = b.lines().find(|l| l.starts_with("system ")).unwrap();
    assert!(
        !sys.contains(lib_name) && !sys.contains("libffi-3.6"),
        "system backend: {sys}"
    );

    // floor, 3 backends, 3 ratios.
    let ns = section(&stdout, "ns per call");
    for s in SIG_NAMES {
        numbers(&row(ns, s), 7, s);
    }
    let ir = section(&stdout, "Instructions per call (callgrind)");
    for s in SIG_NAMES {
        let cells = row(ir, s);
        let v = numbers(&cells, 9, s);
        // Every backend executes more than the floor.
        assert!(v[1] > v[0] && v[2] > v[0] && v[3] > v[0], "{s}: {cells:?}");
    }
    let cyc = section(&stdout, "Allocate, prepare, call, free");
    for r in [
        "cycle ns",
        "2 threads: cycles per second (total)",
        "2 threads: ns per cycle per thread",
    ] {
        numbers(&row(cyc, r), 5, r);
    }
    let sc = section(&stdout, "20 k live closures");
    assert_eq!(row(sc, "closures made"), ["20000", "20000", "20000"]);
    for r in [
        "alloc+prep ns",
        "free ns",
        "call ns (each closure once)",
        "VMAs per million closures",
        "RSS bytes per closure",
    ] {
        let cells = row(sc, r);
        assert_eq!(cells.len(), 5, "{r}: {cells:?}");
    }
    let t = section(&stdout, "Targets (statictramp)");
    let targets: Vec<&str> = t.lines().skip(2).take_while(|l| !l.is_empty()).collect();
    assert!(targets.len() >= 13, "targets:\n{t}");
    for l in targets {
        assert!(
            l.ends_with("met") || l.ends_with("not measured"),
            "target row without a verdict: {l}"
        );
    }

    let md = std::fs::read_to_string(dir.join("bench.md")).expect("bench.md written");
    for title in [
        "## Machine",
        "## Backends",
        "## ns per call",
        "## Targets (statictramp)",
        "vm.max_map_count",
    ] {
        assert!(md.contains(title), "bench.md lacks {title}");
    }
    let svg = std::fs::read_to_string(dir.join("bench.svg")).expect("bench.svg written");
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("statictramp") && svg.contains("libffi 3.6"));
}

#[test]
fn missing_pieces_are_errors_that_say_what_to_do() {
    let out = output(
        bench()
            .args(["--quick", "--no-callgrind", "--libffi36"])
            .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-libffi")),
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("scripts/build-libffi36"));

    let out = output(bench().args(["--quick", "--lib", "/nonexistent/libx.so"]));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));

    let out = output(bench().arg("--bogus"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage: statictramp-bench"));
}
