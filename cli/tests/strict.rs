//! Strict W^X mode and the `statictramp` CLI, end to end.
//!
//! compat/c/wx_probe.c (built against the system libffi) tries every way of
//! getting writable+executable or anonymous executable memory, and makes a
//! libffi closure. Run through `statictramp run --strict`, every way must be
//! refused, the system libffi's closures must fail (proof that the mode is
//! strict), and with statictramp preloaded they must work.
//!
//! Needs `STATICTRAMP_PRELOAD` (set by scripts/test.sh to the library
//! scripts/build-preload made), a C compiler and libffi-dev; fails loudly
//! without them.

use statictramp_testkit::*;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const CLI: &str = env!("CARGO_BIN_EXE_statictramp");

/// `statictramp` with the library named explicitly (the test binary's
/// directory is not where the CLI looks by default).
fn cli() -> Command {
    let mut c = Command::new(CLI);
    c.env("STATICTRAMP_LIB", preload()).env_remove("LD_PRELOAD");
    c
}

/// compat/c/wx_probe.c built against the system libffi, once per test run.
fn probe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_c(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "wx_probe",
            &["-O1", "-Wall"],
            &["-lffi"],
        )
    })
}

/// Parses wx_probe's `<name> allowed|refused <errno>` lines (a line may
/// start with other output: the test harness's, under a prefilter).
fn results(out: &Output) -> BTreeMap<String, String> {
    let mut r = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = w.iter().position(|t| *t == "allowed" || *t == "refused") {
            if i > 0 {
                r.insert(w[i - 1].to_string(), w[i..].join(" "));
            }
        }
    }
    r
}

/// Ways that must be refused under strict mode.
const FORBIDDEN: &[&str] = &[
    "mmap-anon-rx",
    "mmap-anon-rwx",
    "mprotect-rw-to-rx",
    "pkey-mprotect-rw-to-rx",
    "memfd-shared-rx",
    "memfd-shared-validate-rx",
    "memfd-private-rwx",
    "file-private-rwx",
    "shmat-exec",
    "personality-read-implies-exec",
    #[cfg(target_arch = "x86_64")]
    "i386-mmap2-anon-rx",
    #[cfg(target_arch = "x86_64")]
    "i386-mprotect-rx",
    #[cfg(target_arch = "x86_64")]
    "i386-old-mmap",
    #[cfg(target_arch = "x86_64")]
    "i386-ipc-shmat-exec",
    #[cfg(target_arch = "x86_64")]
    "x32-mmap-anon-rx",
];

/// Ways that must stay open (programs and the dynamic loader need them).
const ALLOWED: &[&str] = &[
    "file-private-rx",
    "anon-rw",
    "shmat-rw",
    "personality-query",
];

fn assert_strict(r: &BTreeMap<String, String>, how: &str) {
    for name in FORBIDDEN {
        assert_eq!(
            r.get(*name).map(String::as_str),
            Some("refused EPERM"),
            "{how}: {name}; all: {r:#?}"
        );
    }
    for name in ALLOWED {
        assert_eq!(
            r.get(*name).map(String::as_str),
            Some("allowed"),
            "{how}: {name}; all: {r:#?}"
        );
    }
}

#[test]
fn without_strict_mode_the_probe_gets_wx_memory() {
    // The control: shows the probe really makes each attempt (on a machine
    // that already forbids W+X this would fail, and say so).
    let out = output(Command::new(probe()).arg("wx"));
    assert!(out.status.success());
    let r = results(&out);
    for name in [
        "mmap-anon-rx",
        "mmap-anon-rwx",
        "mprotect-rw-to-rx",
        "memfd-shared-rx",
        "shmat-exec",
    ] {
        assert_eq!(
            r.get(name).map(String::as_str),
            Some("allowed"),
            "{name} (does this machine already forbid W+X?)"
        );
    }
    for name in ALLOWED {
        assert_eq!(r.get(*name).map(String::as_str), Some("allowed"), "{name}");
    }
}

#[test]
fn strict_mode_refuses_every_way_to_wx_memory() {
    let out = output(
        cli()
            .args(["run", "--strict", "--no-preload", "--"])
            .arg(probe())
            .arg("wx"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_strict(&results(&out), "strict, no preload");
    // And the same with statictramp loaded into the process.
    let out = output(cli().args(["run", "--strict", "--"]).arg(probe()).arg("wx"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_strict(&results(&out), "strict + preload");
}

#[test]
fn system_libffi_closures_fail_in_strict_mode_and_ours_work() {
    let run = |args: &[&str]| {
        let out = output(cli().args(args).arg(probe()).arg("closure"));
        (
            out.status.code(),
            text(&out.stdout).trim().to_string(),
            text(&out.stderr),
        )
    };
    // Control: the system libffi alone makes working closures.
    let out = output(Command::new(probe()).arg("closure"));
    assert_eq!(text(&out.stdout).trim(), "closure ok 1042 1073");
    // Strict mode without statictramp: libffi cannot get W+X memory.
    let (code, stdout, stderr) = run(&["run", "--strict", "--no-preload", "--"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(3), "closure alloc-failed"),
        "{stderr}"
    );
    // Strict mode with statictramp preloaded: the same program works.
    let (code, stdout, stderr) = run(&["run", "--strict", "--"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "closure ok 1042 1073"),
        "{stderr}"
    );
    // And preloaded without strict mode.
    let (code, stdout, stderr) = run(&["run", "--"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "closure ok 1042 1073"),
        "{stderr}"
    );
}

#[test]
fn python_ctypes_callbacks_need_statictramp_in_strict_mode() {
    let script = "import ctypes\n\
                  f = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x * 3)\n\
                  print(f(14))\n";
    let py = |args: &[&str]| output(cli().args(args).args(["python3", "-c", script]));
    let out = py(&["run", "--strict", "--no-preload", "--"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("MemoryError"),
        "{}",
        text(&out.stderr)
    );
    let out = py(&["run", "--strict", "--"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "42");
}

#[test]
fn run_passes_exit_status_and_signals_through() {
    let out = output(cli().args(["run", "--", "sh", "-c", "exit 7"]));
    assert_eq!(out.status.code(), Some(7));
    let out = output(cli().args(["run", "--strict", "--", "sh", "-c", "kill -SEGV $$"]));
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
    // The command's arguments are its own, even ones that look like ours.
    let out = output(cli().args(["run", "echo", "--strict", "--lib", "x"]));
    assert_eq!(text(&out.stdout), "--strict --lib x\n");
    // LD_PRELOAD: ours first, then what was there.
    let out = output(
        cli()
            .env("LD_PRELOAD", "")
            .args(["run", "sh", "-c", "echo $LD_PRELOAD"]),
    );
    assert_eq!(
        text(&out.stdout).trim(),
        std::fs::canonicalize(preload()).unwrap().to_str().unwrap()
    );
}

#[test]
fn run_errors_are_clear() {
    let check = |cmd: &mut Command, code: i32, msg: &str| {
        let out = output(cmd);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(msg), "expected {msg:?} in {err:?}");
    };
    check(
        cli().args(["run", "--", "statictramp-no-such-command"]),
        127,
        "command not found",
    );
    let plain = write_tmp("not-executable", b"#!/bin/sh\nexit 0\n");
    check(cli().args(["run", "--"]).arg(&plain), 126, "not executable");
    check(
        Command::new(CLI)
            .env("STATICTRAMP_LIB", "/nonexistent/lib.so")
            .args(["run", "true"]),
        125,
        "does not exist",
    );
    check(
        Command::new(CLI)
            .env("STATICTRAMP_LIB", "/etc/hostname")
            .args(["run", "true"]),
        125,
        "is not an ELF file",
    );
    check(cli().args(["run"]), 2, "no command given");
    check(
        cli().args(["run", "--frobnicate", "true"]),
        2,
        "unknown option",
    );
    check(cli().args(["frobnicate"]), 2, "unknown command");
    check(cli().args(["check", "--frobnicate"]), 2, "unknown argument");
}

/// A program of the wrong class for the library: the loader would skip the
/// library silently, so `run` must refuse.
#[test]
fn run_refuses_a_library_of_another_architecture() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let fake = dir.join("elf32-i386-program");
    let mut h = vec![0u8; 64];
    h[..8].copy_from_slice(b"\x7fELF\x01\x01\x01\0");
    h[16] = 2; // ET_EXEC
    h[18] = 3; // EM_386
    std::fs::write(&fake, &h).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = output(cli().args(["run", "--"]).arg(&fake));
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("32-bit i386 program") && err.contains("64-bit x86_64"),
        "{err}"
    );
}

#[test]
fn check_reports_this_machine() {
    let out = output(cli().args(["check"]));
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}{}", text(&out.stderr));
    for name in [
        "page size",
        "map count",
        "closure call: unix64",
        "closure call: win64",
        "pools",
        "strict mode",
    ] {
        assert!(
            t.lines().any(|l| l.starts_with(name)),
            "no {name:?} row in\n{t}"
        );
    }
    assert!(t.ends_with("all checks passed\n"), "{t}");
    // --json, validated by Python's parser and checked field by field.
    let out = output(cli().args(["check", "--json"]));
    assert!(out.status.success());
    let summary = output(
        Command::new("python3")
            .args([
                "-c",
                "import json,sys; d=json.load(sys.stdin); \
                 print(d['ok'], *sorted(c['name'] + '=' + c['status'] for c in d['checks']), sep='\\n')",
            ])
            .stdin(std::fs::File::open(write_tmp("check.json", &out.stdout)).unwrap()),
    );
    let s = text(&summary.stdout);
    assert!(
        summary.status.success(),
        "invalid JSON: {}",
        text(&summary.stderr)
    );
    assert!(s.starts_with("True\n"), "{s}");
    for want in [
        "closure call: unix64=ok",
        "closure call: win64=ok",
        "closure call: gnuw64=ok",
        "pools=ok",
        "page size=ok",
    ] {
        assert!(s.lines().any(|l| l == want), "no {want:?} in {s}");
    }
    let strict = s.lines().find(|l| l.starts_with("strict mode=")).unwrap();
    assert!(
        strict == "strict mode=ok" || strict == "strict mode=warn",
        "{s}"
    );
}

fn write_tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Stands in for a restrictive environment when the test binary is
/// re-executed with `STRICT_TEST_PREFILTER` set: installs a seccomp filter
/// that makes the kernel look as if it lacked seccomp (`no-seccomp`), MDWE
/// (`no-mdwe`) or Landlock (`no-landlock`), then executes the CLI with the arguments in
/// `STRICT_TEST_ARGS` (separated by \x1f). Without the variable it does
/// nothing.
#[test]
fn prefilter_child() {
    use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
    use std::os::unix::process::CommandExt;
    let Ok(what) = std::env::var("STRICT_TEST_PREFILTER") else {
        return;
    };
    let einval = ScmpAction::Errno(libc::EINVAL);
    let prctl = ScmpSyscall::from_name("prctl").unwrap();
    let arg0 = |v: u64| [ScmpArgCompare::new(0, ScmpCompareOp::Equal, v)];
    let mut f = ScmpFilterContext::new(ScmpAction::Allow).unwrap();
    // Let the probe's i386 and x32 calls through to the filter under test
    // (libseccomp kills calls of ABIs a filter does not list).
    #[cfg(target_arch = "x86_64")]
    f.add_arch(libseccomp::ScmpArch::X86)
        .unwrap()
        .add_arch(libseccomp::ScmpArch::X32)
        .unwrap();
    match what.as_str() {
        "no-seccomp" => {
            f.add_rule(einval, ScmpSyscall::from_name("seccomp").unwrap())
                .unwrap();
            f.add_rule_conditional(einval, prctl, &arg0(libc::PR_SET_SECCOMP as u64))
                .unwrap();
        }
        "no-mdwe" => {
            f.add_rule_conditional(einval, prctl, &arg0(65)).unwrap(); // PR_SET_MDWE
            f.add_rule_conditional(einval, prctl, &arg0(66)).unwrap(); // PR_GET_MDWE
        }
        "no-landlock" => {
            // What a kernel without Landlock (before 5.13) answers.
            let enosys = ScmpAction::Errno(libc::ENOSYS);
            f.add_rule(
                enosys,
                ScmpSyscall::from_name("landlock_create_ruleset").unwrap(),
            )
            .unwrap();
        }
        other => panic!("unknown STRICT_TEST_PREFILTER {other}"),
    }
    f.load().unwrap();
    let args = std::env::var("STRICT_TEST_ARGS").unwrap();
    let err = Command::new(CLI)
        .args(args.split('\x1f'))
        .env_remove("STRICT_TEST_PREFILTER")
        .exec();
    panic!("exec {CLI}: {err}");
}

fn under_prefilter(what: &str, args: &[&str]) -> Output {
    output(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "prefilter_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("STRICT_TEST_PREFILTER", what)
            .env("STRICT_TEST_ARGS", args.join("\x1f"))
            .env("STATICTRAMP_LIB", preload()),
    )
}

#[test]
fn strict_mode_unavailable_is_an_error_that_says_why() {
    let out = under_prefilter("no-seccomp", &["run", "--strict", "--", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("strict mode unavailable") && err.contains("seccomp"),
        "{err}"
    );
    // `check` reports it as a failure, with the reason.
    let out = under_prefilter("no-seccomp", &["check"]);
    let t = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let row = t
        .lines()
        .find(|l| l.starts_with("strict mode"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(row.contains("FAIL") && row.contains("unavailable"), "{row}");
}

#[test]
fn without_mdwe_the_seccomp_filter_alone_still_refuses() {
    let probe = probe().to_str().unwrap().to_string();
    let out = under_prefilter(
        "no-mdwe",
        &["run", "--strict", "--no-preload", "--", &probe, "wx"],
    );
    assert!(
        out.status.success(),
        "{:?} {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("strict mode without MDWE"),
        "{}",
        text(&out.stderr)
    );
    assert_strict(&results(&out), "strict without MDWE");
    let out = under_prefilter("no-mdwe", &["check"]);
    let t = text(&out.stdout);
    let row = t
        .lines()
        .find(|l| l.starts_with("strict mode"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(row.contains("warn") && row.contains("mdwe: off"), "{row}");
}

/// execve itself would map an executable stack for such a program, where no
/// filter sees it; strict mode refuses to start it (directly or as a
/// script's interpreter), and without --strict it runs.
#[test]
fn strict_mode_refuses_programs_that_want_an_executable_stack() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = write_tmp("execstack.c", b"int main(void) { return 0; }\n");
    let exe = dir.join(format!("execstack.{}", std::process::id()));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let out = output(
        Command::new(&cc)
            .args(["-z", "execstack", "-o"])
            .arg(&exe)
            .arg(&src),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = output(cli().args(["run", "--strict", "--"]).arg(&exe));
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("asks for an executable stack"),
        "{}",
        text(&out.stderr)
    );
    let script = write_tmp("execstack.sh", format!("#!{}\n", exe.display()).as_bytes());
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = output(cli().args(["run", "--strict", "--"]).arg(&script));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    let out = output(cli().args(["run", "--"]).arg(&exe));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// A 32-bit x86 program: `run` picks the i386 preload library
/// (STATICTRAMP_PRELOAD_I686, scripts/test.sh builds it with
/// `scripts/build-preload --target i686-unknown-linux-gnu`) among the
/// libraries named, and `run --strict` refuses the i386 system calls that
/// would make W+X memory, from a 32-bit probe, while statictramp's closures
/// work there.
#[cfg(target_arch = "x86_64")]
#[test]
fn run_serves_and_strictly_confines_32_bit_programs() {
    let lib32 = std::env::var_os("STATICTRAMP_PRELOAD_I686")
        .map(PathBuf::from)
        .expect(
            "STATICTRAMP_PRELOAD_I686 is not set: build the i686 preload library with \
         scripts/build-preload --target i686-unknown-linux-gnu (scripts/test.sh does)",
        );
    let src = repo_root().join("compat/c/wx_probe.c");
    let probe32 = statictramp_testkit::build_program(
        std::ffi::OsStr::new("i686-linux-gnu-gcc"),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "wx_probe32",
        &[src.as_path()],
        &["-O1", "-Wall"],
        &["-lffi"],
    );
    let libs = std::env::join_paths([preload(), lib32.clone()]).unwrap();
    let run = |args: &[&str], what: &str| {
        let mut c = Command::new(CLI);
        c.env("STATICTRAMP_LIB", &libs).env_remove("LD_PRELOAD");
        output(c.args(args).arg(&probe32).arg(what))
    };
    // Strict: every way to W+X is refused from the 32-bit program too.
    let out = run(&["run", "--strict", "--"], "wx");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = results(&out);
    for name in [
        "mmap-anon-rx",
        "mmap-anon-rwx",
        "mprotect-rw-to-rx",
        "memfd-shared-rx",
    ] {
        assert_eq!(
            r.get(name).map(String::as_str),
            Some("refused EPERM"),
            "32-bit, strict: {name}; all: {r:#?}"
        );
    }
    // The code routes strict mode closes are closed for it too (its
    // ptrace pokes write 4-byte words; its system calls are i386's).
    let out = run(&["run", "--strict", "--"], "code");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_routes_closed(&routes(&out), "32-bit, strict");
    // And statictramp's closures (the i386 library, chosen for the 32-bit
    // program out of both named) work under it.
    let out = run(&["run", "--strict", "--"], "closure");
    assert_eq!(
        text(&out.stdout).trim(),
        "closure ok 1042 1073",
        "{}",
        text(&out.stderr)
    );
    // A process tree of both word sizes: a 64-bit shell starts the 64-bit
    // and the 32-bit probe, strict, and each gets the library of its class
    // through one LD_PRELOAD entry with $LIB (cli/src/mixed.rs) in a fresh
    // per-user directory; no ld.so complains about the other class.
    let runtime =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("xdg-{}", std::process::id()));
    std::fs::create_dir_all(&runtime).unwrap();
    let script = format!(
        "echo \"$LD_PRELOAD\"; {} closure && {} closure",
        probe().display(),
        probe32.display()
    );
    let tree = || {
        let mut c = Command::new(CLI);
        c.env("STATICTRAMP_LIB", &libs)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("LD_PRELOAD");
        output(c.args(["run", "--strict", "--", "sh", "-c", &script]))
    };
    for round in ["made", "reused"] {
        let out = tree();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{round}: {stdout}{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            3,
            "{round}: LD_PRELOAD and two closure lines expected:\n{stdout}{stderr}"
        );
        let want_entry = runtime.join("statictramp");
        assert!(
            lines[0].starts_with(want_entry.to_str().unwrap())
                && lines[0].ends_with("/$LIB/libstatictramp-preload.so"),
            "{round}: LD_PRELOAD={}",
            lines[0]
        );
        assert_eq!(lines[1..], ["closure ok 1042 1073"; 2], "{round}: {stderr}");
        assert!(
            !stderr.contains("ELF class") && !stderr.contains("cannot be preloaded"),
            "{round}: {stderr}"
        );
    }
    // A directory others can write is not used: a note, and CMD's class only.
    let open_dir = runtime.join("open");
    std::fs::create_dir_all(open_dir.join("statictramp")).unwrap();
    std::fs::set_permissions(
        open_dir.join("statictramp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut c = Command::new(CLI);
    c.env("STATICTRAMP_LIB", &libs)
        .env("XDG_RUNTIME_DIR", &open_dir)
        .env_remove("LD_PRELOAD");
    let out = output(c.args(["run", "--", "sh", "-c", "echo $LD_PRELOAD"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        std::fs::canonicalize(preload()).unwrap().to_str().unwrap()
    );
    assert!(
        text(&out.stderr).contains("32-bit i386 programs that")
            && text(&out.stderr).contains("only it can write"),
        "{}",
        text(&out.stderr)
    );
    // `check` finds the i386 library (named), sees it load in the 32-bit
    // ld.so, and reports the mixed-tree LD_PRELOAD entry.
    let mut c = Command::new(CLI);
    c.env("STATICTRAMP_LIB", &libs)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("LD_PRELOAD");
    let out = output(c.args(["check"]));
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}{}", text(&out.stderr));
    let line = |name: &str| {
        t.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} row in\n{t}"))
            .to_string()
    };
    let lib_row = line("preload library, other size");
    assert!(
        lib_row.contains("  ok  32-bit i386: ")
            && lib_row.contains(&*std::fs::canonicalize(&lib32).unwrap().to_string_lossy())
            && lib_row.contains("loads in /lib/ld-linux.so.2"),
        "{t}"
    );
    assert!(
        line("mixed 32/64-bit trees").contains("/$LIB/libstatictramp-preload.so"),
        "{t}"
    );
    // Only the 64-bit library named: refused, saying why.
    let mut c = Command::new(CLI);
    c.env("STATICTRAMP_LIB", preload()).env_remove("LD_PRELOAD");
    let out = output(c.args(["run", "--"]).arg(&probe32).arg("closure"));
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("32-bit i386 program"),
        "{}",
        text(&out.stderr)
    );
}

/// Parses `wx_probe code`'s `<route> open|closed <why>` lines.
fn routes(out: &Output) -> BTreeMap<String, (bool, String)> {
    let mut r = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        let mut w = line.splitn(3, ' ');
        if let (Some(name), Some(state)) = (w.next(), w.next()) {
            if state == "open" || state == "closed" {
                let why = w.next().unwrap_or("").to_string();
                r.insert(name.to_string(), (state == "open", why));
            }
        }
    }
    r
}

/// Routes strict mode closes, with the error each must fail with: the
/// Landlock layer refuses the open of /proc/self/mem (EACCES), the seccomp
/// filter the rest (EPERM).
const CLOSED_BY_STRICT: &[(&str, &str)] = &[
    ("proc-self-mem", "Permission denied"),
    ("ptrace-poke-child", "Operation not permitted"),
    ("userfaultfd-memfd", "Operation not permitted"),
    ("userfaultfd-dev", "Operation not permitted"),
];

/// Routes no strict-mode layer can close (docs/design.md, "Strict mode:
/// what it cannot stop"): open on a kernel without the settings `check`
/// names.
const OPEN_UNDER_STRICT: &[&str] = &[
    "memfd-alias",
    "file-write",
    "new-file-code",
    "new-file-exec",
    "memfd-fexecve",
    "memfd-execve-procfd",
];

/// Routes the kernel closes by itself: their writes honour page protection.
const CLOSED_BY_KERNEL: &[&str] = &["process-vm-writev", "io-uring-read-into-code", "mremap-rx"];

fn assert_routes_closed(r: &BTreeMap<String, (bool, String)>, how: &str) {
    for (name, why) in CLOSED_BY_STRICT {
        assert_eq!(
            r.get(*name),
            Some(&(false, why.to_string())),
            "{how}: {name}; all: {r:#?}"
        );
    }
    for name in CLOSED_BY_KERNEL {
        assert!(
            matches!(r.get(*name), Some((false, _))),
            "{how}: {name}; all: {r:#?}"
        );
    }
}

#[test]
fn without_strict_mode_every_code_route_is_open() {
    // The control: each route really makes code that runs (so a "closed"
    // under strict mode is strict mode's doing). This machine's kernel has
    // none of the settings that would close them (vm.memfd_noexec 0, no
    // IPE, /tmp executable); the test says which if it does.
    let r = routes(&output(Command::new(probe()).arg("code")));
    for name in CLOSED_BY_STRICT
        .iter()
        .map(|c| c.0)
        .chain(OPEN_UNDER_STRICT.iter().copied())
    {
        assert_eq!(
            r.get(name).map(|v| v.0),
            Some(true),
            "{name} is not open without strict mode: {:?}",
            r.get(name)
        );
    }
    for name in CLOSED_BY_KERNEL {
        assert!(matches!(r.get(*name), Some((false, _))), "{name}: {r:#?}");
    }
    assert_eq!(
        r.len(),
        CLOSED_BY_STRICT.len() + OPEN_UNDER_STRICT.len() + CLOSED_BY_KERNEL.len(),
        "{r:#?}"
    );
}

#[test]
fn strict_mode_closes_the_code_routes_it_can() {
    for args in [&["--no-preload", "--"][..], &["--"][..]] {
        let out = output(
            cli()
                .args(["run", "--strict"])
                .args(args)
                .arg(probe())
                .arg("code"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let r = routes(&out);
        assert_routes_closed(&r, &format!("run --strict {args:?}"));
        for name in OPEN_UNDER_STRICT {
            assert_eq!(r.get(*name).map(|v| v.0), Some(true), "{name}: {r:#?}");
        }
    }
}

#[test]
fn check_reports_the_code_routes_the_probe_finds_open() {
    // Two implementations, one in C (wx_probe) and one in the CLI
    // (cli/src/routes.rs), must find the same routes open under strict
    // mode on this kernel, and `check` must name each open one.
    let probe_out = output(
        cli()
            .args(["run", "--strict", "--no-preload", "--"])
            .arg(probe())
            .arg("code"),
    );
    let probe_routes = routes(&probe_out);
    let out = output(cli().args(["check"]));
    let t = text(&out.stdout);
    assert!(out.status.success(), "{t}{}", text(&out.stderr));
    let mut checked = 0;
    for (name, (open, _)) in &probe_routes {
        if CLOSED_BY_KERNEL.contains(&name.as_str()) {
            continue; // wx_probe's own extra evidence; check does not run these
        }
        let row = format!("strict: {name} ");
        let listed_open = t
            .lines()
            .any(|l| l.starts_with(&row) && l.contains("OPEN: "));
        assert_eq!(
            listed_open, *open,
            "{name}: probe open={open}, check says\n{t}"
        );
        if !open {
            let closed = t
                .lines()
                .find(|l| l.starts_with("strict: closed routes"))
                .unwrap_or_else(|| panic!("no closed-routes row in\n{t}"));
            assert!(closed.contains(&format!("{name} (")), "{name}: {closed}");
        }
        checked += 1;
    }
    assert_eq!(checked, CLOSED_BY_STRICT.len() + OPEN_UNDER_STRICT.len());
    let mode = t.lines().find(|l| l.starts_with("strict mode")).unwrap();
    assert!(mode.contains("landlock: on"), "{mode}");
}

/// Ordinary programs keep working under strict mode with all its layers
/// (the Landlock layer refuses writes under /proc; the filter refuses
/// ptrace pokes and userfaultfd): Python with GLib (PyGObject's callbacks
/// are libffi closures), Ruby (Fiddle closures), Perl. Each script checks
/// its own results and prints one line. Needs Debian's python3-gi, ruby and
/// perl (scripts/test.sh installs them); fails loudly without them.
#[test]
fn python_glib_ruby_and_perl_run_under_strict_mode() {
    let dir = repo_root().join("compat/programs");
    let cases: [(&str, &str, &str); 3] = [
        ("/usr/bin/python3", "glib_callbacks.py", "python+glib ok "),
        ("ruby", "fiddle_qsort.rb", "ruby ok "),
        ("perl", "perl_basics.pl", "perl ok "),
    ];
    for (interp, script, want) in cases {
        let out = output(
            cli()
                .args(["run", "--strict", "--", "timeout", "120", interp])
                .arg(dir.join(script)),
        );
        let t = text(&out.stdout);
        assert!(
            out.status.success() && t.starts_with(want),
            "{interp} {script} under run --strict: {:?}\n{t}{}",
            out.status,
            text(&out.stderr)
        );
        let n: u64 = t[want.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(n > 1000, "{script}: too few callbacks: {t}");
    }
    // The control: Ruby's Fiddle closures come from libffi's closure API,
    // which cannot work under strict mode without statictramp (Fiddle does
    // not check for a failed ffi_closure_alloc and crashes).
    let out = output(
        cli()
            .args([
                "run",
                "--strict",
                "--no-preload",
                "--",
                "timeout",
                "120",
                "ruby",
            ])
            .arg(dir.join("fiddle_qsort.rb")),
    );
    assert!(
        !out.status.success() && !text(&out.stdout).starts_with("ruby ok"),
        "Fiddle closures worked under strict mode without statictramp?"
    );
}

#[test]
fn without_landlock_strict_mode_still_arms_and_check_reports_proc_mem_open() {
    let probe = probe().to_str().unwrap().to_string();
    let out = under_prefilter(
        "no-landlock",
        &["run", "--strict", "--no-preload", "--", &probe, "code"],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{:?} {err}", out.status);
    assert!(
        err.contains("strict mode without Landlock") && err.contains("5.13"),
        "{err}"
    );
    let r = routes(&out);
    // The seccomp layer's routes stay closed; /proc/self/mem is open.
    for (name, _) in &CLOSED_BY_STRICT[1..] {
        assert_eq!(r.get(*name).map(|v| v.0), Some(false), "{name}: {r:#?}");
    }
    assert_eq!(CLOSED_BY_STRICT[0].0, "proc-self-mem");
    assert_eq!(r.get("proc-self-mem").map(|v| v.0), Some(true), "{r:#?}");
    // `check` warns, says why, and names what closes the route.
    let out = under_prefilter("no-landlock", &["check"]);
    let t = text(&out.stdout);
    let mode = t
        .lines()
        .find(|l| l.starts_with("strict mode"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        mode.contains("warn") && mode.contains("landlock: off") && mode.contains("5.13"),
        "{mode}"
    );
    let row = t
        .lines()
        .find(|l| l.starts_with("strict: proc-self-mem "))
        .unwrap_or_else(|| panic!("no open proc-self-mem row in\n{t}"));
    assert!(
        row.contains("OPEN") && row.contains("proc_mem.force_override=never"),
        "{row}"
    );
}
