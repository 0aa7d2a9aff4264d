//! i386 closures called the way real code calls them, not through libffi's
//! `ffi_call` (which is wrong for several i386 conventions: docs/design.md,
//! "libffi's i386 closures: what they get wrong").
//!
//! The programs are compat/c/i386_callers.h's: for each of libffi's seven
//! x86-32 ABIs and many signatures, a closure made with the public libffi
//! API is called by a GCC-compiled caller of the matching function type
//! (`gcc`), by the hand-written caller in compat/c/i386_asm_callers.S that
//! also checks the callee-saved registers, the callee pop, the x87 depth
//! and the stack above the arguments, at four stack alignments (`asm`), and
//! the asm caller's image is checked against GCC-compiled callees (`ref`).
//! Each (case, caller) runs in its own process; the program exits non-zero
//! on any mismatch and prints a pass count per ABI.
//!
//! - The fixed cases (compat/c/i386_callers.c, written by
//!   compat/c/gen_i386_callers.py, checked to be current) and random ones
//!   (seeds 1 and 2, or those in STATICTRAMP_I386_SEEDS, comma-separated)
//!   run under `LD_PRELOAD=$STATICTRAMP_PRELOAD`, which must be the i686
//!   preload library when the tests run for i686: every case must pass
//!   with every caller, and `statictramp_owns_code` must claim every
//!   closure.
//! - The `ref` caller alone, without the preload: the images the generator
//!   writes are what GCC expects (no closure involved); and `--self-test`:
//!   the asm caller reports each of six wrongs of two wrong callees.
//!
//! The C compiler: `CC_i686_unknown_linux_gnu` (scripts/lib/cross-target
//! exports it), else `CC`, else `i686-linux-gnu-gcc` from Debian's
//! gcc-i686-linux-gnu, else `cc`; what it builds must be an ELF32 i386
//! program. libffi-dev for i386 provides <ffi.h> and -lffi.
#![cfg(target_arch = "x86")]

use statictramp_testkit::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// libffi's x86-32 ABIs as the programs name them.
const ABIS: [&str; 7] = [
    "FFI_SYSV",
    "FFI_STDCALL",
    "FFI_THISCALL",
    "FFI_FASTCALL",
    "FFI_MS_CDECL",
    "FFI_PASCAL",
    "FFI_REGISTER",
];

/// The gcc callers compare the stack pointer before and after their call,
/// which needs it to stay put in their body (accumulated outgoing
/// arguments) and a frame pointer; the asm caller addresses its global
/// absolutely (no PIE).
const FLAGS: [&str; 9] = [
    "-std=gnu11",
    "-O2",
    "-g",
    "-Wall",
    "-Wextra",
    "-fno-omit-frame-pointer",
    "-maccumulate-outgoing-args",
    "-fno-pie",
    "-no-pie",
];
const LIBS: [&str; 2] = ["-lffi", "-ldl"];

fn tmpdir() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

fn c_dir() -> PathBuf {
    repo_root().join("compat/c")
}

/// The C compiler for i686 programs (see the module comment).
fn target_cc() -> OsString {
    for var in ["CC_i686_unknown_linux_gnu", "CC"] {
        if let Some(cc) = std::env::var_os(var) {
            return cc;
        }
    }
    let debian = "i686-linux-gnu-gcc";
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(debian).is_file()));
    if on_path { debian.into() } else { "cc".into() }
}

/// Panics unless `file` is an ELF32 i386 object (a host compiler or a
/// 64-bit library picked up by mistake would otherwise fail obscurely).
fn assert_elf32_i386(file: &Path, what: &str) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let ok = bytes.len() > 20
        && bytes[..4] == *b"\x7fELF"
        && bytes[4] == 1
        && u16::from_le_bytes([bytes[18], bytes[19]]) == 3;
    assert!(
        ok,
        "{what} {} is not an ELF32 i386 file: set CC_i686_unknown_linux_gnu \
         (scripts/lib/cross-target i686-unknown-linux-gnu) and STATICTRAMP_PRELOAD \
         to the i686 preload library",
        file.display()
    );
}

/// Builds `source` (a generated cases file) with the runtime and the asm
/// caller into the test's directory as `out`.
fn build(source: &Path, out: &str) -> PathBuf {
    let dir = c_dir();
    let rt = dir.join("i386_callers_rt.c");
    let asm = dir.join("i386_asm_callers.S");
    let include = format!("-I{}", dir.display());
    let mut flags = FLAGS.to_vec();
    flags.push(&include);
    let exe = build_program(
        &target_cc(),
        tmpdir(),
        out,
        &[source, &rt, &asm],
        &flags,
        &LIBS,
    );
    assert_elf32_i386(&exe, "the compiled program");
    exe
}

/// The fixed cases, built once.
fn fixed() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| build(&c_dir().join("i386_callers.c"), "i386_callers"))
}

/// Runs compat/c/gen_i386_callers.py with `args`; its output.
fn generate(args: &[&str]) -> String {
    let out = output(
        Command::new("python3")
            .arg(c_dir().join("gen_i386_callers.py"))
            .args(args),
    );
    assert!(
        out.status.success(),
        "gen_i386_callers.py {args:?} failed\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// What a run printed.
#[derive(Debug, Default)]
struct Summary {
    /// ABI -> (cases, cases passed by every caller).
    abis: BTreeMap<String, (usize, usize)>,
    /// (closures claimed, closures made), if statictramp_owns_code exists.
    owners: Option<(usize, usize)>,
    result_ok: bool,
    fails: Vec<String>,
}

fn parse(stdout: &str) -> Summary {
    let mut s = Summary::default();
    let ratio = |w: &str| -> (usize, usize) {
        let (a, b) = w
            .split_once('/')
            .unwrap_or_else(|| panic!("not a ratio: {w}"));
        (a.parse().unwrap(), b.parse().unwrap())
    };
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["FAIL", ..] => s.fails.push(line.to_string()),
            ["abi", name, "cases", n, .., "pass", p] => {
                let (passed, total) = ratio(p);
                assert_eq!(total, n.parse::<usize>().unwrap(), "{line}");
                s.abis.insert(name.to_string(), (total, passed));
            }
            ["owners", "statictramp", r] => s.owners = Some(ratio(r)),
            ["result", "ok"] => s.result_ok = true,
            _ => {}
        }
    }
    s
}

/// Runs `exe` with `args`, under the i686 preload library if `preload`.
fn run(exe: &Path, args: &[&str], preload: bool) -> (bool, String, Summary) {
    run_env(exe, args, preload, &[])
}

/// As [`run`], with `env` added to the environment.
fn run_env(
    exe: &Path,
    args: &[&str],
    preload: bool,
    env: &[(&str, &str)],
) -> (bool, String, Summary) {
    let mut cmd = Command::new(exe);
    cmd.args(args).envs(env.iter().copied());
    if preload {
        let lib = statictramp_testkit::preload();
        assert_elf32_i386(&lib, "STATICTRAMP_PRELOAD");
        cmd.env("LD_PRELOAD", lib);
    }
    let out = output(&mut cmd);
    let stdout = text(&out.stdout);
    let summary = parse(&stdout);
    (
        out.status.success(),
        format!("{stdout}{}", text(&out.stderr)),
        summary,
    )
}

/// Asserts a run under the preload: every case of every ABI passed with
/// every caller, and statictramp served every closure (two per case: the
/// gcc and the asm caller's).
fn assert_all_served(exe: &Path) {
    assert_all_served_env(exe, &[]);
}

/// As [`assert_all_served`], with `env` added to the environment.
fn assert_all_served_env(exe: &Path, env: &[(&str, &str)]) {
    let (ok, all, s) = run_env(exe, &["--require-statictramp"], true, env);
    let shown: Vec<&str> = s.fails.iter().take(60).map(String::as_str).collect();
    assert!(
        ok && s.result_ok && s.fails.is_empty(),
        "{} failures, the first:\n{}\n{}",
        s.fails.len(),
        shown.join("\n"),
        all.lines()
            .filter(|l| !l.starts_with("FAIL"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut cases = 0;
    for abi in ABIS {
        let (n, passed) = s.abis[abi];
        assert!(n > 0 && passed == n, "{abi}: {passed}/{n}");
        cases += n;
    }
    assert_eq!(
        s.owners,
        Some((2 * cases, 2 * cases)),
        "closures claimed/made"
    );
}

#[test]
fn generated_file_is_current() {
    let want = generate(&[]);
    let have = std::fs::read_to_string(c_dir().join("i386_callers.c")).unwrap();
    assert!(
        want == have,
        "compat/c/i386_callers.c is not what compat/c/gen_i386_callers.py writes: \
         run `compat/c/gen_i386_callers.py > compat/c/i386_callers.c`"
    );
}

#[test]
fn reference_callees_take_the_images() {
    let (ok, all, s) = run(fixed(), &["--caller", "ref"], false);
    assert!(ok && s.result_ok, "{all}");
    for abi in ABIS {
        let (n, passed) = s.abis[abi];
        assert!(n > 0 && passed == n, "{abi}: {passed}/{n}\n{all}");
    }
}

#[test]
fn asm_caller_checks_can_fail() {
    // Two wrong callees: clobbered ebx and ebp, a wrong pop, the direction
    // flag left set, a value left on the x87 stack, the caller's stack
    // written.
    let (ok, all, _) = run(fixed(), &["--self-test"], false);
    assert!(ok && all.contains("self-test 6/6 wrongs reported"), "{all}");
}

#[test]
fn fixed_cases_under_preload() {
    assert_all_served(fixed());
}

/// The same callers with every closure on the generic entry (the Rust
/// dispatcher) rather than the fast entries most of these plans get.
#[test]
fn fixed_cases_under_preload_generic_entry() {
    let env = [("STATICTRAMP_ENTRY", "generic"), ("STATICTRAMP_DEBUG", "1")];
    let (_, all, _) = run_env(fixed(), &["--require-statictramp"], true, &env);
    assert!(
        all.contains(
            "statictramp: STATICTRAMP_ENTRY=generic: every closure takes the generic entry"
        ),
        "the library did not take STATICTRAMP_ENTRY=generic:\n{all}"
    );
    assert_all_served_env(fixed(), &env);
}

#[test]
fn random_cases_under_preload() {
    let seeds = std::env::var("STATICTRAMP_I386_SEEDS").unwrap_or_else(|_| "1,2".into());
    for seed in seeds.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = format!("i386_random_{seed}");
        let src = tmpdir().join(format!("{name}.{}.c", std::process::id()));
        std::fs::write(&src, generate(&["--random", seed, "--count", "30"])).unwrap();
        let exe = build(&src, &name);
        std::fs::remove_file(&src).unwrap();
        assert_all_served(&exe);
    }
}
