//! Raw closures where `FFI_NATIVE_RAW_API` is 0 (src/raw/mod.rs): an
//! ordinary closure whose handler translates `avalue[]` into a raw argument
//! array and calls the client's raw handler, exactly as libffi's
//! src/raw_api.c (`ffi_translate_args`, `ffi_ptrarray_to_raw`) and
//! src/java_raw_api.c (`ffi_java_translate_args`,
//! `ffi_java_ptrarray_to_raw`) do.
#![allow(unsafe_code)]

use super::{
    RawFun, RawPrepError, Slot, check_args, check_java, java_slots, put_java, put_raw, raw_slots,
    with_raw_args,
};
use crate::arch;
use crate::cif::{FfiCif, Fun};
use crate::record::TRAMP_SIZE;
use std::mem::offset_of;
use std::os::raw::c_void;

/// libffi's `ffi_raw_closure` / `ffi_java_raw_closure` (same layout) with
/// `FFI_NATIVE_RAW_API == 0`.
#[repr(C)]
pub struct FfiRawClosure {
    pub tramp: [u8; TRAMP_SIZE],
    pub cif: *mut FfiCif,
    pub translate_args: *mut c_void,
    pub this_closure: *mut c_void,
    pub fun: Option<RawFun>,
    pub user_data: *mut c_void,
}

const _: () = {
    let r = arch::RECORD;
    assert!(offset_of!(FfiRawClosure, cif) == r.raw_cif() as usize);
    assert!(
        matches!(r.raw_translate_args(), Some(o) if o as usize == offset_of!(FfiRawClosure, translate_args))
    );
    assert!(offset_of!(FfiRawClosure, fun) == r.raw_fun() as usize);
    assert!(offset_of!(FfiRawClosure, user_data) == r.raw_user_data() as usize);
    assert!(size_of::<FfiRawClosure>() == r.raw_size() as usize);
};

/// Builds the raw array (sized by `slots`, filled by `put`) and calls the
/// raw closure's handler with it.
///
/// # Safety
/// `user_data` is a prepared raw closure, the cif was validated at prep,
/// `avalue` has `nargs` entries.
unsafe fn translate(
    cif: *mut FfiCif,
    ret: *mut c_void,
    avalue: *mut *mut c_void,
    user_data: *mut c_void,
    slots: fn(&crate::cif::FfiType) -> usize,
    put: unsafe fn(&crate::cif::FfiType, *mut c_void, *mut Slot) -> usize,
) {
    // SAFETY: per the contract.
    unsafe {
        let cl = &*(user_data as *const FfiRawClosure);
        with_raw_args(cif, avalue, slots, put, |raw| {
            let fun = cl.fun.expect("raw closure has a handler");
            fun(cif, ret, raw, cl.user_data);
        })
    }
}

/// The handler installed by `ffi_prep_raw_closure_loc` (libffi's
/// `ffi_translate_args`). `user_data` is the raw closure itself.
///
/// # Safety
/// Called by the dispatcher with a prepared raw closure as `user_data`.
unsafe extern "C-unwind" fn translate_raw(
    cif: *mut FfiCif,
    ret: *mut c_void,
    avalue: *mut *mut c_void,
    user_data: *mut c_void,
) {
    // SAFETY: forwarded contract.
    unsafe { translate(cif, ret, avalue, user_data, raw_slots, put_raw) }
}

/// The handler installed by `ffi_prep_java_raw_closure_loc` (libffi's
/// `ffi_java_translate_args`; on little-endian targets the return value
/// needs no conversion). Struct and complex arguments were refused at prep.
///
/// # Safety
/// As [`translate_raw`].
unsafe extern "C-unwind" fn translate_java(
    cif: *mut FfiCif,
    ret: *mut c_void,
    avalue: *mut *mut c_void,
    user_data: *mut c_void,
) {
    // SAFETY: forwarded contract.
    unsafe { translate(cif, ret, avalue, user_data, java_slots, put_java) }
}

/// Prepares `cl` as an ordinary closure whose handler is `translate` with
/// the closure itself as user data, then stores the client's raw handler
/// (libffi src/raw_api.c, src/java_raw_api.c).
///
/// # Safety
/// As `ffi_prep_closure_loc`, with `cl` sized for an `ffi_raw_closure`.
unsafe fn prep_translated(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: RawFun,
    user_data: *mut c_void,
    codeloc: *mut c_void,
    translate: Fun,
) -> Result<(), RawPrepError> {
    // SAFETY: forwarded contract.
    unsafe { crate::closure::prep(cl.cast(), cif, Some(translate), cl.cast(), codeloc) }
        .map_err(RawPrepError::Prep)?;
    // SAFETY: `cl` is writable and at least an ffi_raw_closure.
    unsafe {
        (*cl).fun = Some(fun);
        (*cl).user_data = user_data;
    }
    Ok(())
}

/// `ffi_prep_raw_closure_loc`.
///
/// # Safety
/// As `ffi_prep_closure_loc`, with `cl` sized for an `ffi_raw_closure`.
pub unsafe fn prep_raw(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: Option<RawFun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> Result<(), RawPrepError> {
    let fun = check_args(cl.cast(), fun)?;
    // SAFETY: forwarded contract.
    unsafe { prep_translated(cl, cif, fun, user_data, codeloc, translate_raw) }
}

/// `ffi_prep_java_raw_closure_loc`: struct and complex arguments are
/// refused (libffi aborts on them at call time).
///
/// # Safety
/// As `ffi_prep_closure_loc`, with `cl` sized for an `ffi_java_raw_closure`.
pub unsafe fn prep_java(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: Option<RawFun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> Result<(), RawPrepError> {
    let fun = check_args(cl.cast(), fun)?;
    // SAFETY: forwarded contract.
    unsafe { check_java(cif)? };
    // SAFETY: forwarded contract.
    unsafe { prep_translated(cl, cif, fun, user_data, codeloc, translate_java) }
}
