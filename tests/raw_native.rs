//! Raw closures where libffi's raw API is native (i386,
//! `FFI_NATIVE_RAW_API == 1`): the handler gets the caller's argument area
//! as `ffi_raw[]` (a 4-byte slot per word), as libffi's
//! `ffi_closure_raw_SYSV` / `_THISCALL` give it; what libffi refuses is
//! refused (struct and long double arguments: FFI_BAD_TYPEDEF; ABIs other
//! than SYSV and THISCALL: FFI_BAD_ABI); Java raw closures get the Java
//! raw array (64-bit values in two slots), not `avalue[]`.
#![cfg(target_arch = "x86")]

use libffi_sys::*;
use statictramp::capi;
use statictramp::cif::FfiCif;
use std::os::raw::c_void;
use std::ptr::null_mut;

/// What a handler saw.
#[derive(Default)]
struct Seen {
    words: Vec<usize>,
    calls: u32,
}

unsafe extern "C-unwind" fn record(
    _cif: *mut FfiCif,
    ret: *mut c_void,
    raw: *mut usize,
    ud: *mut c_void,
) {
    // SAFETY: `ud` is the test's Seen; `raw` has at least 4 words for
    // every signature used here; the return buffer holds an ffi_arg.
    unsafe {
        let seen = &mut *(ud as *mut Seen);
        seen.calls += 1;
        seen.words = std::slice::from_raw_parts(raw, 4).to_vec();
        *(ret as *mut u32) = 0x5eed_0000 | seen.calls;
    }
}

type RawFn = unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut usize, *mut c_void);

fn cif(abi: ffi_abi, args: &mut [*mut ffi_type]) -> Box<ffi_cif> {
    // SAFETY: a zeroed cif is filled by ffi_prep_cif; the types are
    // libffi's statics, the array outlives the cif's use in each test.
    unsafe {
        let mut cif: Box<ffi_cif> = Box::new(std::mem::zeroed());
        let st = ffi_prep_cif(
            &mut *cif,
            abi,
            args.len() as u32,
            &raw mut ffi_type_uint32,
            args.as_mut_ptr(),
        );
        assert_eq!(st, ffi_status_FFI_OK);
        cif
    }
}

/// Allocates a raw closure and prepares it (`java`: the Java raw API).
fn prep(cif: &mut ffi_cif, seen: &mut Seen, java: bool) -> (u32, *mut c_void, *mut c_void) {
    let mut code = null_mut();
    // SAFETY: the public API; the closure is freed by the caller.
    unsafe {
        let cl = capi::ffi_closure_alloc(64, &mut code);
        assert!(!cl.is_null());
        let f: Option<RawFn> = Some(record);
        let ud = (seen as *mut Seen).cast();
        let cifp = (cif as *mut ffi_cif).cast();
        let st = if java {
            capi::ffi_prep_java_raw_closure_loc(cl.cast(), cifp, f, ud, code)
        } else {
            capi::ffi_prep_raw_closure_loc(cl.cast(), cifp, f, ud, code)
        };
        (st, cl, code)
    }
}

#[test]
fn sysv_raw_closure_gets_the_callers_stack() {
    let mut args = [
        &raw mut ffi_type_sint32,
        &raw mut ffi_type_sint64,
        &raw mut ffi_type_uint16,
    ];
    let mut c = cif(ffi_abi_FFI_SYSV, &mut args);
    let mut seen = Seen::default();
    let (st, cl, code) = prep(&mut c, &mut seen, false);
    assert_eq!(st, ffi_status_FFI_OK);
    // SAFETY: the closure's signature, cdecl.
    let f: extern "C" fn(i32, i64, u16) -> u32 = unsafe { std::mem::transmute(code) };
    assert_eq!(f(-7, 0x1122_3344_5566_7788, 0xbeef), 0x5eed_0001);
    assert_eq!(seen.words[0] as i32, -7);
    assert_eq!(seen.words[1], 0x5566_7788);
    assert_eq!(seen.words[2], 0x1122_3344);
    assert_eq!(seen.words[3] & 0xffff, 0xbeef);
    // SAFETY: allocated above.
    unsafe { capi::ffi_closure_free(cl) };
}

#[test]
fn thiscall_raw_closure_gets_ecx_first() {
    let mut args = [&raw mut ffi_type_sint32, &raw mut ffi_type_sint32];
    let mut c = cif(ffi_abi_FFI_THISCALL, &mut args);
    let mut seen = Seen::default();
    let (st, cl, code) = prep(&mut c, &mut seen, false);
    assert_eq!(st, ffi_status_FFI_OK);
    // SAFETY: the closure's signature: the first argument in ecx, the
    // second on the stack, popped by the callee.
    let f: extern "thiscall" fn(i32, i32) -> u32 = unsafe { std::mem::transmute(code) };
    assert_eq!(f(41, -2), 0x5eed_0001);
    assert_eq!(seen.words[0] as i32, 41);
    assert_eq!(seen.words[1] as i32, -2);
    assert_eq!(
        f(1, 2),
        0x5eed_0002,
        "the stack is balanced after the first call"
    );
    // SAFETY: allocated above.
    unsafe { capi::ffi_closure_free(cl) };
}

#[test]
fn java_raw_closure_gets_two_slots_per_64_bit_value() {
    let mut args = [
        &raw mut ffi_type_sint64,
        &raw mut ffi_type_sint32,
        &raw mut ffi_type_float,
    ];
    let mut c = cif(ffi_abi_FFI_SYSV, &mut args);
    let mut seen = Seen::default();
    let (st, cl, code) = prep(&mut c, &mut seen, true);
    assert_eq!(st, ffi_status_FFI_OK);
    // SAFETY: the closure's signature, cdecl.
    let f: extern "C" fn(i64, i32, f32) -> u32 = unsafe { std::mem::transmute(code) };
    assert_eq!(f(-2, 9, 1.5), 0x5eed_0001);
    assert_eq!(seen.words[0] as u32, (-2i64) as u32);
    assert_eq!(seen.words[1] as u32, ((-2i64) >> 32) as u32);
    assert_eq!(seen.words[2] as i32, 9);
    assert_eq!(f32::from_bits(seen.words[3] as u32), 1.5);
    // SAFETY: allocated above.
    unsafe { capi::ffi_closure_free(cl) };
}

#[test]
fn raw_closures_refuse_what_libffi_refuses() {
    let mut seen = Seen::default();
    // A long double argument: FFI_BAD_TYPEDEF.
    let mut args = [&raw mut ffi_type_longdouble];
    let mut c = cif(ffi_abi_FFI_SYSV, &mut args);
    let (st, cl, _) = prep(&mut c, &mut seen, false);
    assert_eq!(st, ffi_status_FFI_BAD_TYPEDEF);
    // SAFETY: allocated by prep.
    unsafe { capi::ffi_closure_free(cl) };
    // STDCALL: FFI_BAD_ABI.
    let mut args = [&raw mut ffi_type_sint32];
    let mut c = cif(ffi_abi_FFI_STDCALL, &mut args);
    let (st, cl, _) = prep(&mut c, &mut seen, false);
    assert_eq!(st, ffi_status_FFI_BAD_ABI);
    // SAFETY: allocated by prep.
    unsafe { capi::ffi_closure_free(cl) };
    assert_eq!(seen.calls, 0);
}
