//! What the built libraries declare to the dynamic linker and to other
//! links, read with binutils (`readelf`, `nm`):
//!
//! - the CET marking (`.note.gnu.property`, x86 feature bits): the preload
//!   library (`$STATICTRAMP_PRELOAD`) and the cdylib must be marked SHSTK,
//!   or loading them turns shadow stacks off for the whole process; IBT
//!   only if every exported function begins with the landing pad
//!   (`endbr64`, `endbr32` on i386). Each object assembled from the
//!   architecture's asm/<arch>/ must carry IBT and SHSTK itself, so that a
//!   CET-built program linking the staticlib is not unmarked by them;
//! - the cdylib exports no internal `statictramp_*` symbol (the entries'
//!   dispatcher and trap function would otherwise be interposable): only
//!   `statictramp_owns_code`.
//!
//! The cdylib and the staticlib are the ones cargo built for this test run
//! (beside the test binary); the preload library comes from
//! STATICTRAMP_PRELOAD (scripts/test.sh builds and sets it). Missing tools
//! or files fail the tests.

use statictramp_testkit::*;
use std::process::Command;

/// Runs a binutils tool and returns its stdout; failure fails the test.
fn tool(name: &str, args: &[&str], file: &std::path::Path) -> String {
    let out = output(Command::new(name).args(args).arg(file));
    assert!(
        out.status.success(),
        "{name} {args:?} {} failed (binutils installed?): {}",
        file.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The x86 feature bits of `readelf -n` output ("x86 feature: IBT, SHSTK"),
/// one set per `File:` (an archive has one per member; a library one).
fn x86_features(notes: &str) -> Vec<(String, Vec<String>)> {
    let mut files: Vec<(String, Vec<String>)> = Vec::new();
    let mut current = String::new();
    for line in notes.lines() {
        if let Some(f) = line.strip_prefix("File: ") {
            current = f.to_string();
        }
        if let Some((_, bits)) = line.split_once("Properties: x86 feature: ") {
            files.push((
                current.clone(),
                bits.split(',').map(|b| b.trim().to_string()).collect(),
            ));
        }
    }
    files
}

/// The features a shared object is marked with (none if unmarked).
fn library_features(lib: &std::path::Path) -> Vec<String> {
    let notes = tool("readelf", &["-nW"], lib);
    let mut f = x86_features(&notes);
    assert!(
        f.len() <= 1,
        "{}: several feature notes:\n{notes}",
        lib.display()
    );
    f.pop().map(|(_, bits)| bits).unwrap_or_default()
}

/// The IBT landing pad that begins every indirect-branch target.
#[cfg(target_arch = "x86_64")]
const ENDBR: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa]; // endbr64
#[cfg(target_arch = "x86")]
const ENDBR: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfb]; // endbr32

/// Exported functions (`nm -D --defined-only`, type T) that do not begin
/// with [`ENDBR`], found by reading the first 4 bytes at each symbol's
/// file offset (through the section headers).
fn exported_without_endbr(lib: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(lib).unwrap();
    // .text's address and file offset from `readelf -SW`.
    let sections = tool("readelf", &["-SW"], lib);
    let text_line = sections
        .lines()
        .find(|l| l.contains(" .text "))
        .unwrap_or_else(|| panic!("no .text in {}:\n{sections}", lib.display()));
    let f: Vec<&str> = text_line
        .split(']')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    // Name Type Address Off Size ...
    let addr = u64::from_str_radix(f[2], 16).unwrap();
    let off = u64::from_str_radix(f[3], 16).unwrap();
    let size = u64::from_str_radix(f[4], 16).unwrap();
    let syms = tool("nm", &["-D", "--defined-only"], lib);
    let mut missing = Vec::new();
    for l in syms.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() != 3 || !w[1].eq_ignore_ascii_case("t") {
            continue;
        }
        let a = u64::from_str_radix(w[0], 16).unwrap();
        assert!(
            a >= addr && a < addr + size,
            "{} at {a:#x} is outside .text",
            w[2]
        );
        let at = (a - addr + off) as usize;
        if bytes[at..at + 4] != ENDBR {
            missing.push(w[2].to_string());
        }
    }
    missing
}

/// SHSTK always; IBT exactly when every exported function is a landing pad.
fn assert_cet_marked(lib: &std::path::Path) {
    let bits = library_features(lib);
    assert!(
        bits.iter().any(|b| b == "SHSTK"),
        "{} is not marked SHSTK (x86 feature: {bits:?}); loading it would turn shadow \
         stacks off for the whole process",
        lib.display()
    );
    let no_endbr = exported_without_endbr(lib);
    if bits.iter().any(|b| b == "IBT") {
        assert!(
            no_endbr.is_empty(),
            "{} claims IBT but these exported functions do not begin with endbr: {no_endbr:?}",
            lib.display()
        );
    } else {
        // Not claimed: because some indirect-branch target really lacks a
        // landing pad (Rust code is not built with -Zcf-protection). If this
        // ever fails, IBT can be claimed too.
        assert!(
            !no_endbr.is_empty(),
            "every exported function of {} begins with endbr: check the rest and mark it IBT",
            lib.display()
        );
    }
}

#[test]
fn preload_library_is_marked_for_shadow_stacks() {
    assert_cet_marked(&preload());
}

#[test]
fn cdylib_is_marked_for_shadow_stacks() {
    assert_cet_marked(&built_library("libstatictramp.so"));
}

/// Every object assembled from asm/<arch>/*.S is in the staticlib as
/// `<hash>-<stem>.o` and carries IBT and SHSTK.
#[test]
fn assembled_objects_carry_ibt_and_shstk() {
    let lib = built_library("libstatictramp.a");
    let notes = tool("readelf", &["-nW"], &lib);
    let marked = x86_features(&notes);
    let dir = repo_root().join(statictramp::layout::ASM_DIR);
    let mut stems: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "S").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    stems.sort();
    assert!(!stems.is_empty(), "no .S files in {}", dir.display());
    for stem in &stems {
        let suffix = format!("-{stem}.o)");
        let found: Vec<&(String, Vec<String>)> = marked
            .iter()
            .filter(|(f, _)| f.ends_with(&suffix))
            .collect();
        assert!(
            found.len() == 1,
            "{stem}.S: expected one member *{suffix} with an x86 feature note in {}; notes:\n{notes}",
            lib.display()
        );
        let bits = &found[0].1;
        assert!(
            bits.iter().any(|b| b == "IBT") && bits.iter().any(|b| b == "SHSTK"),
            "{stem}.S is marked {bits:?}, not IBT and SHSTK"
        );
    }
}

#[test]
fn cdylib_exports_no_internal_symbols() {
    let lib = built_library("libstatictramp.so");
    let syms = tool("nm", &["-D", "--defined-only"], &lib);
    let ours: Vec<&str> = syms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|s| s.starts_with("statictramp"))
        .collect();
    assert_eq!(
        ours,
        ["statictramp_owns_code"],
        "{} exports internal symbols; all dynamic symbols:\n{syms}",
        lib.display()
    );
}
