//! Helpers for the integration tests that run programs (the CLI, the
//! benchmark, C probes, the preload library), in every package of the
//! workspace: running a command, reading its output, compiling the C
//! programs of compat/c, and the preload library from STATICTRAMP_PRELOAD.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` to completion; a command that cannot start fails the test.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The repository (workspace) root.
pub fn repo_root() -> &'static Path {
    // This crate sits one level below the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ has a parent directory")
}

/// The preload library scripts/build-preload made, from STATICTRAMP_PRELOAD
/// (absolute). Missing: the test fails and says how to build it.
pub fn preload() -> PathBuf {
    let Some(p) = std::env::var_os("STATICTRAMP_PRELOAD") else {
        panic!(
            "STATICTRAMP_PRELOAD is not set, so the LD_PRELOAD library cannot be tested. \
             Run scripts/test.sh (it builds the library and runs all tests), or: \
             STATICTRAMP_PRELOAD=$(scripts/build-preload) cargo test --release"
        );
    };
    let p = PathBuf::from(p);
    p.canonicalize().unwrap_or_else(|e| {
        panic!(
            "STATICTRAMP_PRELOAD={}: {e}; build it with scripts/build-preload (scripts/test.sh does)",
            p.display()
        )
    })
}

/// The C compiler for the target the tests are built for, chosen as the
/// `cc` crate chooses it for a target build: `CC_<target>`, then
/// `CC_<target with underscores>` (scripts/lib/cross-target sets
/// `CC_i686_unknown_linux_gnu`), `TARGET_CC`, `CC`, else `cc`.
pub fn c_compiler() -> std::ffi::OsString {
    let target = env!("STATICTRAMP_TESTKIT_TARGET");
    [
        format!("CC_{target}"),
        format!("CC_{}", target.replace('-', "_")),
        "TARGET_CC".to_string(),
        "CC".to_string(),
    ]
    .iter()
    .find_map(std::env::var_os)
    .unwrap_or_else(|| "cc".into())
}

/// The ELF class (1: 32-bit, 2: 64-bit) of the file at `path`.
fn elf_class(path: &Path) -> Option<u8> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() > 4 && bytes[..4] == *b"\x7fELF").then(|| bytes[4])
}

/// Compiles `compat/c/<name>.c` with the target's C compiler ([`c_compiler`]) into
/// `dir` (the calling test's `CARGO_TARGET_TMPDIR`, which cargo gives only
/// to integration tests) as `<name>`, with `flags` before and `libs` after
/// the source, and returns the executable. A compile failure fails
/// the test and names what to install. Built under a private name and then
/// renamed, because concurrent test runs may share the directory; callers
/// keep the result in a `OnceLock` to build once per run.
pub fn build_c(dir: &Path, name: &str, flags: &[&str], libs: &[&str]) -> PathBuf {
    build_c_as(dir, name, name, flags, libs)
}

/// As [`build_c`], writing the output as `out` (for several builds of one
/// source, e.g. shared objects with different `-D` flags).
pub fn build_c_as(dir: &Path, name: &str, out: &str, flags: &[&str], libs: &[&str]) -> PathBuf {
    let src = repo_root().join("compat/c").join(format!("{name}.c"));
    let cc = c_compiler();
    let exe = build_program(&cc, dir, out, &[src.as_path()], flags, libs);
    // A program of another class than the tests' would test nothing here
    // (a preload library of the wrong class is ignored by ld.so).
    let want = if usize::BITS == 64 { 2 } else { 1 };
    assert_eq!(
        elf_class(&exe),
        Some(want),
        "{cc:?} built {} for another word size than the tests' target ({}); set CC_{}",
        exe.display(),
        env!("STATICTRAMP_TESTKIT_TARGET"),
        env!("STATICTRAMP_TESTKIT_TARGET").replace('-', "_")
    );
    exe
}

/// Compiles and links `sources` (C or assembly) with the C compiler `cc`
/// into `dir` as `out`, as [`build_c_as`] does one file of compat/c.
pub fn build_program(
    cc: &OsStr,
    dir: &Path,
    out: &str,
    sources: &[&Path],
    flags: &[&str],
    libs: &[&str],
) -> PathBuf {
    let exe = dir.join(out);
    let tmp = dir.join(format!("{out}.{}", std::process::id()));
    let res = output(
        Command::new(cc)
            .args(flags)
            .arg("-o")
            .arg(&tmp)
            .args(sources)
            .args(libs),
    );
    assert!(
        res.status.success(),
        "compiling {sources:?} with {cc:?} failed (is libffi-dev installed? scripts/test.sh installs it)\n{}{}",
        text(&res.stdout),
        text(&res.stderr)
    );
    std::fs::rename(&tmp, &exe).unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
    exe
}

/// The library file `name` (`libstatictramp.so`, the cdylib, or
/// `libstatictramp.a`) that the C library crate (capi/) built for this
/// test run: `cargo test --workspace` builds it into
/// `target/<profile>/deps/`, next to the test binaries, before the tests;
/// the copies in `target/<profile>/` are only refreshed by `cargo build`.
pub fn built_library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let p = exe.parent().expect("test binary's directory").join(name);
    assert!(
        p.is_file(),
        "{} was not built (`cargo test --workspace` builds it: the capi/ crate)",
        p.display()
    );
    p
}
