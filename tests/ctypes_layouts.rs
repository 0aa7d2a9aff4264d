//! CPython ctypes callbacks taking `_pack_ = 1` structures (13 and 33
//! bytes), unions of int and double and bitfield structures, under the
//! preload library: compat/python/ctypes_layouts.py makes each CFUNCTYPE
//! callback, checks with `statictramp_owns_code` that statictramp serves
//! it, calls it through libffi's `ffi_call` and compares every argument and
//! return value.
//!
//! ctypes states these types' sizes and alignments in their `ffi_type`;
//! before statictramp took stated layouts as libffi does, making the first
//! callback raised "RuntimeError: ffi_prep_closure failed with 1".
//!
//! Needs `python3` on PATH and STATICTRAMP_PRELOAD (scripts/test.sh sets
//! both up); without them the tests fail rather than pass vacuously.
// Runs the machine's python3, a 64-bit program, under the preload library.
#![cfg(target_arch = "x86_64")]

use statictramp_testkit::*;
use std::process::Command;

const SCRIPT: &str = "compat/python/ctypes_layouts.py";

fn python(preload: Option<&std::path::Path>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join(SCRIPT))
        .args(args)
        .env_remove("LD_PRELOAD");
    if let Some(p) = preload {
        cmd.env("LD_PRELOAD", p);
    }
    let out = output(&mut cmd);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn ctypes_packed_union_and_bitfield_callbacks_under_the_preload_library() {
    let lib = preload();
    let (ok, stdout, stderr) = python(Some(&lib), &[]);
    assert!(
        ok && stdout.contains("11 callbacks (statictramp)") && stdout.contains("all correct"),
        "{SCRIPT} under LD_PRELOAD={} failed\nstdout:\n{stdout}\nstderr:\n{stderr}",
        lib.display()
    );
}

#[test]
fn control_the_same_callbacks_with_the_system_libffi() {
    // The script's expectations are libffi's: with the system libffi's own
    // closures (no preload) every value is the same.
    let (ok, stdout, stderr) = python(None, &["--system"]);
    assert!(
        ok && stdout.contains("11 callbacks (the system libffi)"),
        "{SCRIPT} --system failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // And without --system the script refuses to run without statictramp,
    // so the preload test above cannot pass on libffi's closures.
    let (ok, _, stderr) = python(None, &[]);
    assert!(
        !ok && stderr.contains("statictramp is not loaded"),
        "{SCRIPT} without the preload library must fail: {stderr}"
    );
}
