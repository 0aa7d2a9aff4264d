//! The preload library loaded late, with dlopen, by a program that does not
//! link it: its TLS word (asm/<arch>/tls.S, src/thread_state.rs), reached
//! through a TLS descriptor, lives in glibc's surplus static TLS when there
//! is room, else in dynamically allocated TLS, and dlopen must set it up in
//! threads that already exist as well as in later ones.
//!
//! compat/c/dlopen_check.c (linked with -lffi -ldl -lpthread only) dlopens
//! `$STATICTRAMP_PRELOAD` with RTLD_NOW | RTLD_LOCAL (no LD_PRELOAD), takes
//! the closure API from that handle, and runs alloc + prep + call + free
//! cycles in the main thread, 4 threads created after the dlopen and 1
//! created before it, checking every result; the threads then exit.
//!
//! A second run first uses up glibc's surplus static TLS with other
//! objects' initial-exec blocks (compat/c/tls_hog.c, as Python extensions
//! loaded earlier may have): the library must still load and serve
//! closures. An initial-exec library (DF_STATIC_TLS) is refused there with
//! "cannot allocate memory in static TLS block".
//!
//! A third test reads the ELF dynamic sections of the preload library and
//! the cdylib: no DF_STATIC_TLS in DT_FLAGS and no initial-exec relocation
//! (R_X86_64_TPOFF64, R_386_TLS_TPOFF), so both load wherever TLS can be
//! allocated.
//!
//! Needs `STATICTRAMP_PRELOAD` (scripts/test.sh sets it to the library
//! scripts/build-preload made), a C compiler and libffi-dev; fails loudly
//! without them.

use statictramp_testkit::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Threads that run the cycles: main, 1 created before the dlopen, 4 after.
const THREADS: u64 = 6;
/// Cycles per thread (CYCLES in dlopen_check.c).
const CYCLES_PER_THREAD: u64 = 20_000;
/// Closures held at once by the main thread after the others exited (POST).
const POST: u64 = 2_000;

/// compat/c/dlopen_check.c, built once per test run.
fn dlopen_check() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_c(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "dlopen_check",
            &["-O1", "-g", "-Wall", "-Wextra", "-pthread"],
            &["-lffi", "-ldl", "-lpthread"],
        )
    })
}

/// Runs dlopen_check on `lib` with `args` after it, without LD_PRELOAD.
fn run(lib: &Path, args: &[PathBuf]) -> std::process::Output {
    output(
        Command::new(dlopen_check())
            .arg(lib)
            .args(args)
            .env_remove("LD_PRELOAD")
            .env_remove("LD_DEBUG")
            .env_remove("GLIBC_TUNABLES")
            .env("STATICTRAMP_DEBUG", "1"),
    )
}

/// The line STATICTRAMP_DEBUG prints when the library first reaches its
/// thread-state word: how it reaches it.
const TLS_PATH: &str = "statictramp: thread-state word: ";

/// Asserts how the dlopened library reached its thread-state word: at a
/// static offset (`static_tls`), or through the descriptor into dynamic TLS.
fn assert_tls_path(out: &std::process::Output, static_tls: bool) {
    let stderr = text(&out.stderr);
    let want = if static_tls {
        "at a static TLS offset"
    } else {
        "in dynamic TLS"
    };
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(TLS_PATH)).collect();
    // One line per thread that got there first, before the answer was
    // stored (threads start together): all must agree.
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.contains(want)),
        "expected `{TLS_PATH}{want} ...` lines only:\n{stderr}"
    );
}

/// dlopen_check's arguments that use up the surplus static TLS first:
/// `--fill-static-tls PROBE HOG...` with hogs of 64 KiB down to 16 bytes
/// (each loaded if it fits, so what is left ends up under 16 bytes) and a
/// 16-byte probe that must then be refused.
fn fill_static_tls_args() -> &'static [PathBuf] {
    static ARGS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    ARGS.get_or_init(|| {
        let hog = |size: u32, out: &str| {
            build_c_as(
                Path::new(env!("CARGO_TARGET_TMPDIR")),
                "tls_hog",
                out,
                &["-shared", "-fPIC", "-O1", &format!("-DHOG_SIZE={size}")],
                &[],
            )
        };
        let mut args = vec![
            PathBuf::from("--fill-static-tls"),
            hog(16, "tls_hog_probe.so"),
        ];
        for k in (4..=16).rev() {
            args.push(hog(1 << k, &format!("tls_hog_{}.so", 1u32 << k)));
        }
        args
    })
}

/// Asserts that dlopen_check succeeded and printed the expected summary.
fn assert_served(lib: &Path, out: &std::process::Output) {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dlopen_check {} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        lib.display(),
        out.status
    );
    let Some(ok) = stdout.lines().find(|l| l.starts_with("ok ")) else {
        panic!("no `ok` line from dlopen_check:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    let fields: BTreeMap<&str, u64> = ok
        .split_whitespace()
        .skip(1)
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let want: BTreeMap<&str, u64> = [
        ("cycles", THREADS * CYCLES_PER_THREAD),
        ("threads", THREADS),
        ("post", POST),
    ]
    .into();
    assert_eq!(fields, want, "summary line: {ok}");
    let other_stderr = stderr.lines().any(|l| !l.starts_with(TLS_PATH));
    assert!(
        !stdout.contains("FAIL") && !other_stderr,
        "unexpected output:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn dlopened_library_serves_closures_in_threads_before_and_after_dlopen() {
    let lib = preload();
    let out = run(&lib, &[]);
    assert_served(&lib, &out);
    // With room in static TLS, every thread finds the word at one offset.
    assert_tls_path(&out, true);
}

/// Other objects have taken all of glibc's surplus static TLS before the
/// library is dlopened (dlopen_check proves it: a 16-byte initial-exec
/// block no longer fits): it must still load and serve closures in threads.
#[test]
fn dlopened_library_loads_when_static_tls_is_used_up() {
    let lib = preload();
    let out = run(&lib, fill_static_tls_args());
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("static_tls filled ") && l.ends_with(" probe=refused")),
        "dlopen_check did not use up static TLS first:\nstdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert_served(&lib, &out);
    assert_tls_path(&out, false);
}

/// The program's own checks hold: a missing library fails loudly (status 2
/// with dlerror's message), and so does one already loaded (LD_PRELOAD), which
/// would not be a late load.
#[test]
fn dlopen_check_refuses_what_would_not_test_a_late_load() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-library.so");
    let out = run(&missing, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("dlopen(") && text(&out.stderr).contains("no-such-library.so"),
        "{}",
        text(&out.stderr)
    );

    let lib = preload();
    let out = output(
        Command::new(dlopen_check())
            .arg(&lib)
            .env("LD_PRELOAD", &lib),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already loaded"),
        "{}",
        text(&out.stderr)
    );
}

/// ELF constants (elf.h).
const PT_DYNAMIC: u32 = 2;
const PT_TLS: u32 = 7;
const DT_NULL: u64 = 0;
const DT_FLAGS: u64 = 30;
const DF_STATIC_TLS: u64 = 0x10;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// What the test needs from a little-endian ELF shared object of this
/// target's class (ELF64 on a 64-bit target, ELF32 on a 32-bit one):
/// its machine, DT_FLAGS (None when absent) and the PT_TLS segment's
/// memory size (None when absent).
struct Elf {
    machine: u16,
    flags: Option<u64>,
    tls: Option<u64>,
}

fn read_elf(b: &[u8]) -> Elf {
    let class = if usize::BITS == 64 {
        ELFCLASS64
    } else {
        ELFCLASS32
    };
    assert!(
        b.len() >= 52 && b[..4] == *b"\x7fELF" && b[4] == class && b[5] == 1,
        "not a little-endian ELF file of class {class} (this target's)"
    );
    // A word of the file's class at `off`.
    let word = |off: usize| {
        if class == ELFCLASS64 {
            u64_at(b, off)
        } else {
            u64::from(u32_at(b, off))
        }
    };
    // e_phoff, e_phentsize, e_phnum; p_offset, p_filesz, p_memsz; d_tag, d_val.
    let (phoff, phentsize, phnum) = if class == ELFCLASS64 {
        (0x20, 0x36, 0x38)
    } else {
        (0x1c, 0x2a, 0x2c)
    };
    let (p_offset, p_filesz, p_memsz) = if class == ELFCLASS64 {
        (8, 32, 40)
    } else {
        (4, 16, 20)
    };
    let wsize = if class == ELFCLASS64 { 8 } else { 4 };
    let phoff = word(phoff) as usize;
    let phentsize = u16_at(b, phentsize) as usize;
    let phnum = u16_at(b, phnum) as usize;
    let mut elf = Elf {
        machine: u16_at(b, 0x12),
        flags: None,
        tls: None,
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (offset, filesz, memsz) = (
            word(ph + p_offset) as usize,
            word(ph + p_filesz) as usize,
            word(ph + p_memsz),
        );
        match u32_at(b, ph) {
            PT_TLS => elf.tls = Some(memsz),
            PT_DYNAMIC => {
                for e in (offset..offset + filesz).step_by(2 * wsize) {
                    let tag = word(e);
                    if tag == DT_NULL {
                        break;
                    }
                    if tag == DT_FLAGS {
                        elf.flags = Some(word(e + wsize));
                    }
                }
            }
            _ => {}
        }
    }
    elf
}

/// The dynamic relocations of a machine that `readelf -rW` names: those
/// of the initial-exec TLS model (a prefix) and the TLS descriptor's.
fn tls_relocations(machine: u16) -> (&'static str, &'static str) {
    match machine {
        EM_X86_64 => ("R_X86_64_TPOFF", "R_X86_64_TLSDESC"),
        EM_386 => ("R_386_TLS_TPOFF", "R_386_TLS_DESC"),
        m => panic!("ELF machine {m}: no TLS relocation names known"),
    }
}

/// The library needs no static TLS: no DF_STATIC_TLS, no initial-exec
/// relocation (x86_64 R_X86_64_TPOFF64/32, i386 R_386_TLS_TPOFF/32); its
/// TLS word is reached through a TLS descriptor (R_X86_64_TLSDESC,
/// R_386_TLS_DESC), which glibc resolves to static TLS when there is room
/// and to dynamic TLS otherwise.
fn assert_needs_no_static_tls(lib: &Path) {
    let bytes = std::fs::read(lib).unwrap_or_else(|e| panic!("cannot read {}: {e}", lib.display()));
    let elf = read_elf(&bytes);
    let tls = elf
        .tls
        .unwrap_or_else(|| panic!("{} has no PT_TLS segment", lib.display()));
    assert!(
        tls >= size_of::<usize>() as u64,
        "PT_TLS of {} is {tls} bytes, too small for the thread-state word",
        lib.display()
    );
    let flags = elf.flags.unwrap_or(0);
    assert!(
        flags & DF_STATIC_TLS == 0,
        "{}: DT_FLAGS = {flags:#x} has DF_STATIC_TLS ({DF_STATIC_TLS:#x}): a dlopen fails once \
         other objects have used up the surplus static TLS (PT_TLS is {tls:#x} bytes)",
        lib.display()
    );
    let out = output(Command::new("readelf").arg("-rW").arg(lib));
    assert!(
        out.status.success(),
        "readelf -rW {} failed (binutils installed?): {}",
        lib.display(),
        text(&out.stderr)
    );
    let relocs = text(&out.stdout);
    let (initial_exec, descriptor) = tls_relocations(elf.machine);
    let ie: Vec<&str> = relocs
        .lines()
        .filter(|l| l.contains(initial_exec))
        .collect();
    assert!(
        ie.is_empty(),
        "{} has initial-exec TLS relocations:\n{}",
        lib.display(),
        ie.join("\n")
    );
    assert!(
        relocs.contains(descriptor),
        "{} has no TLS descriptor relocation ({descriptor}): how is the thread-state word reached?",
        lib.display()
    );
    eprintln!(
        "{}: PT_TLS {tls:#x} bytes, DT_FLAGS {flags:#x}",
        lib.display()
    );
}

#[test]
fn preload_library_needs_no_static_tls() {
    assert_needs_no_static_tls(&preload());
}

#[test]
fn cdylib_needs_no_static_tls() {
    assert_needs_no_static_tls(&built_library("libstatictramp.so"));
}
