//! A Rust program that uses statictramp's Rust API and also links libffi
//! (through libffi-sys) keeps libffi's own closure API: the crate exports
//! libffi's C names only with its `capi` feature, which this program does
//! not ask for. Exits non-zero if `ffi_closure_alloc` turns out to be ours.
//!
//! Run it with the crate alone, so that no other workspace member turns the
//! feature on: `cargo run --release -p statictramp --example rust_user`
//! (scripts/test.sh does).

use statictramp::{Closure, DEFAULT_ABI, Type};
use std::ffi::CStr;
use std::ptr;

fn main() {
    let add = Closure::new(
        DEFAULT_ABI,
        vec![Type::S32, Type::S32],
        Type::S32,
        |args, ret| {
            let (a, b): (i32, i32) = (args.get(0).unwrap(), args.get(1).unwrap());
            ret.set(a + b).unwrap();
        },
    )
    .expect("statictramp closure");
    // SAFETY: the closure's signature is int(int, int) in the C calling convention.
    let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(add.code_ptr()) };
    assert_eq!(f(2, 40), 42, "statictramp's Rust API");

    let mut code = ptr::null_mut();
    // SAFETY: libffi's ffi_closure_alloc with a writable code pointer.
    let cl =
        unsafe { libffi_sys::ffi_closure_alloc(size_of::<libffi_sys::ffi_closure>(), &mut code) };
    assert!(!cl.is_null(), "libffi's ffi_closure_alloc failed");
    let ours = statictramp::closure::owns_code(code as usize);
    // Which object defines the ffi_closure_alloc this program calls.
    // SAFETY: Dl_info is a plain C struct of pointers; all-zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr on a function address, writing into `info`.
    let found = unsafe { libc::dladdr(libffi_sys::ffi_closure_alloc as *const _, &mut info) };
    let object = if found != 0 && !info.dli_fname.is_null() {
        // SAFETY: dladdr's file name is a NUL-terminated string.
        unsafe { CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned()
    } else {
        "?".into()
    };
    // SAFETY: the closure came from libffi's ffi_closure_alloc above.
    unsafe { libffi_sys::ffi_closure_free(cl) };
    if ours || !object.contains("libffi") {
        eprintln!(
            "rust_user: ffi_closure_alloc is statictramp's (defined in {object}, code ours: {ours}): \
             the crate exported libffi's names without the capi feature"
        );
        std::process::exit(1);
    }
    println!(
        "rust_user: statictramp's Rust API works and ffi_closure_alloc is libffi's ({object})"
    );
}
