//! Raw and Java raw closures on every architecture: the handler reads its
//! raw array with libffi's own converters (`ffi_raw_to_ptrarray`,
//! `ffi_java_raw_to_ptrarray`, exported by libffi.so.8 on every
//! architecture), so the array statictramp passes must be laid out as
//! libffi lays it out there: on x86_64 a translated array of 8-byte
//! slots, on i386 (a native raw API) the caller's own argument area for
//! raw closures and `ffi_java_ptrarray_to_raw`'s array for Java ones.
//! Called directly from Rust and through libffi's `ffi_call`.
//! (tests/calls.rs compares whole raw arrays for the x86_64 conventions.)
#![allow(deprecated)]
mod support;

use libffi_sys::*;
use statictramp::capi;
use statictramp::cif::FfiCif;
use std::os::raw::c_void;
use std::ptr::null_mut;
use support::*;

/// The closure's signature:
/// `double f(int8_t, uint16_t, int32_t, int64_t, float, double, void *)`.
type F = extern "C" fn(i8, u16, i32, i64, f32, f64, *const c_void) -> f64;
const NARGS: usize = 7;

/// What `f` computes from its arguments (exact in a double for the values
/// used here).
fn value(a: i8, b: u16, c: i32, d: i64, e: f32, g: f64, p: usize) -> f64 {
    f64::from(a)
        + f64::from(b) * 2.0
        + f64::from(c) * 3.0
        + d as f64 * 4.0
        + f64::from(e) * 5.0
        + g * 6.0
        + p as f64 * 7.0
}

fn cif() -> *mut ffi_cif {
    // SAFETY: taking the addresses of libffi's type descriptors.
    leak_cif(
        &raw mut ffi_type_double,
        &[
            &raw mut ffi_type_sint8,
            &raw mut ffi_type_uint16,
            &raw mut ffi_type_sint32,
            &raw mut ffi_type_sint64,
            &raw mut ffi_type_float,
            &raw mut ffi_type_double,
            &raw mut ffi_type_pointer,
        ],
    )
}

/// The raw handler: `user_data` says which converter gives back the
/// argument pointers (non-null: the Java one).
unsafe extern "C-unwind" fn read_raw(
    cif: *mut FfiCif,
    ret: *mut c_void,
    raw: *mut usize,
    ud: *mut c_void,
) {
    let mut av = [null_mut::<c_void>(); NARGS];
    // SAFETY: `cif` is the closure's (a libffi cif, read only), `raw` the
    // raw array statictramp built for it, `av` has room for every argument
    // pointer; each then points at a value of its type.
    unsafe {
        if ud.is_null() {
            ffi_raw_to_ptrarray(cif.cast(), raw.cast(), av.as_mut_ptr());
        } else {
            ffi_java_raw_to_ptrarray(cif.cast(), raw.cast(), av.as_mut_ptr());
        }
        let v = value(
            *(av[0] as *const i8),
            *(av[1] as *const u16),
            *(av[2] as *const i32),
            (av[3] as *const i64).read_unaligned(),
            *(av[4] as *const f32),
            (av[5] as *const f64).read_unaligned(),
            *(av[6] as *const usize),
        );
        *(ret as *mut f64) = v;
    }
}

/// Prepares a raw (`java` false) or Java raw closure of [`F`]'s signature
/// with `_loc` or without, and checks calls from Rust and from ffi_call.
fn check(java: bool, loc: bool) {
    let what = format!(
        "{}raw closure{}",
        if java { "Java " } else { "" },
        if loc { " (_loc)" } else { "" }
    );
    let cif = cif();
    let (cl, code) = alloc(size_of::<ffi_raw_closure>()).expect("alloc");
    let ud = if java { ud(1) } else { null_mut() };
    let cifp = cif.cast::<FfiCif>();
    // SAFETY: a fresh record sized for a raw closure, a cif that lives
    // forever, a handler of the raw type.
    let st = unsafe {
        match (java, loc) {
            (false, true) => {
                capi::ffi_prep_raw_closure_loc(cl.cast(), cifp, Some(read_raw), ud, code)
            }
            (false, false) => capi::ffi_prep_raw_closure(cl.cast(), cifp, Some(read_raw), ud),
            (true, true) => {
                capi::ffi_prep_java_raw_closure_loc(cl.cast(), cifp, Some(read_raw), ud, code)
            }
            (true, false) => capi::ffi_prep_java_raw_closure(cl.cast(), cifp, Some(read_raw), ud),
        }
    };
    assert_eq!(st, 0, "{what}: prep");
    // SAFETY: the closure's signature is F's.
    let f = unsafe { std::mem::transmute::<*mut c_void, F>(code) };
    let p = std::ptr::without_provenance::<c_void>(0x1234);
    for (a, b, c, d, e, g) in [
        (
            -7i8,
            65_000u16,
            -123_456i32,
            -(1i64 << 40) - 3,
            1.5f32,
            -2.25f64,
        ),
        (127, 1, i32::MAX, 1 << 50, -0.5, 1e10),
    ] {
        let want = value(a, b, c, d, e, g, 0x1234);
        assert_eq!(f(a, b, c, d, e, g, p), want, "{what}: direct call");

        let (mut a, mut b, mut c, mut d, mut e, mut g, mut p) = (a, b, c, d, e, g, p);
        let mut av: [*mut c_void; NARGS] = [
            (&raw mut a).cast(),
            (&raw mut b).cast(),
            (&raw mut c).cast(),
            (&raw mut d).cast(),
            (&raw mut e).cast(),
            (&raw mut g).cast(),
            (&raw mut p).cast(),
        ];
        let mut r = 0f64;
        // SAFETY: the cif describes the closure; av points at one value of
        // each argument type; r has room for the double.
        unsafe {
            ffi_call(
                cif,
                Some(std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(
                    code,
                )),
                (&raw mut r).cast(),
                av.as_mut_ptr(),
            )
        };
        assert_eq!(r, want, "{what}: ffi_call");
    }
    // SAFETY: the record from alloc above, no longer called.
    unsafe { free(cl) };
}

#[test]
fn raw_closures_read_with_libffis_converter() {
    check(false, true);
    check(false, false);
}

#[test]
fn java_raw_closures_read_with_libffis_converter() {
    check(true, true);
    check(true, false);
}
