//! `STATICTRAMP_STATS=1` (src/stats.rs): the one summary line at exit,
//! checked against compat/c/stats_probe.c's known work, run against the
//! system libffi under the preload library (STATICTRAMP_PRELOAD).

use statictramp_testkit::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn probe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_c(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "stats_probe",
            &["-O1", "-Wall", "-Wextra", "-Werror"],
            &["-lffi"],
        )
    })
}

fn run(stats: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(probe());
    c.args(args)
        .env("LD_PRELOAD", preload())
        .env_remove("STATICTRAMP_STATS");
    if let Some(v) = stats {
        c.env("STATICTRAMP_STATS", v);
    }
    let out = c.output().expect("run stats_probe");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("probe ok"),
        "stats_probe failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `statictramp: stats: pid N: ...` lines of stderr, without the pid.
fn stats_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("statictramp: stats: pid "))
        .map(|l| l.split_once(": ").expect("pid: rest").1.to_string())
        .collect()
}

#[test]
fn summary_line_counts_what_the_program_did() {
    let out = run(Some("1"), &[]);
    let lines = stats_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert!(
        l.starts_with(
            "6 closures allocated, 4 freed, 5 live at peak, 0 pools mapped, \
             0 allocations failed, 1 prep refused (FFI_BAD_ABI 1: "
        ),
        "{l}"
    );
}

#[test]
fn a_forked_child_counts_its_own_work() {
    let out = run(Some("1"), &["fork"]);
    let mut lines = stats_lines(&out);
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "2 closures allocated, 2 freed, 4 live at peak, 0 pools mapped, \
         0 allocations failed, 0 preps refused"
    );
    assert!(
        lines[1].starts_with("6 closures allocated, 4 freed"),
        "{lines:?}"
    );
}

#[test]
fn no_line_unless_asked() {
    for stats in [None, Some(""), Some("0")] {
        let out = run(stats, &[]);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("stats:"),
            "STATICTRAMP_STATS={stats:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
