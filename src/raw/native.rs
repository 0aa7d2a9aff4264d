//! Raw closures where `FFI_NATIVE_RAW_API` is 1 (i386; src/raw/mod.rs):
//! `ffi_raw_closure` has the layout of `ffi_closure` (no `translate_args`,
//! `this_closure`), and the raw handler gets the caller's argument area as
//! `ffi_raw[]` (libffi src/x86/ffi.c `ffi_prep_raw_closure_loc`, sysv.S
//! `ffi_closure_raw_SYSV` / `_THISCALL`). Here the closure is prepared with
//! a plan whose `RawMode` tells the dispatcher to pass the raw arguments;
//! the handler sits in the closure's own `fun` field, as libffi keeps it.
//!
//! Refused as libffi refuses them: struct and long double arguments
//! (FFI_BAD_TYPEDEF), ABIs other than the architecture's
//! `NATIVE_RAW_ABIS` (FFI_BAD_ABI: libffi takes SYSV and THISCALL).
//!
//! Java raw closures: libffi's own, on a native raw API, store the Java
//! handler over the translating one (the two share the `fun` field) and so
//! call it with `avalue[]`. Ours give it the Java raw array libffi's
//! `ffi_java_ptrarray_to_raw` builds (RawMode::Java), and refuse struct and
//! complex arguments as on every architecture.
#![allow(unsafe_code)]

use super::{RawFun, RawMode, RawPrepError, check_args, check_java};
use crate::arch;
use crate::cif::{self, FfiCif, Fun, code};
use crate::closure::PrepError;
use crate::record::TRAMP_SIZE;
use std::mem::offset_of;
use std::os::raw::c_void;

/// libffi's `ffi_raw_closure` / `ffi_java_raw_closure` with
/// `FFI_NATIVE_RAW_API == 1`.
#[repr(C)]
pub struct FfiRawClosure {
    pub tramp: [u8; TRAMP_SIZE],
    pub cif: *mut FfiCif,
    pub fun: Option<RawFun>,
    pub user_data: *mut c_void,
}

const _: () = {
    let r = arch::RECORD;
    assert!(r.native_raw_api && r.raw_translate_args().is_none());
    assert!(offset_of!(FfiRawClosure, cif) == r.raw_cif() as usize);
    assert!(offset_of!(FfiRawClosure, fun) == r.raw_fun() as usize);
    assert!(offset_of!(FfiRawClosure, user_data) == r.raw_user_data() as usize);
    assert!(size_of::<FfiRawClosure>() == r.raw_size() as usize);
    // The raw closure is prepared as an ffi_closure: same fields, same places.
    assert!(r.raw_cif() == r.closure_cif());
    assert!(r.raw_fun() == r.closure_fun());
    assert!(r.raw_user_data() == r.closure_user_data());
};

/// Prepares `cl` with a plan of `mode` and the raw handler in its `fun`.
///
/// # Safety
/// As `ffi_prep_closure_loc`, with `cl` sized for an `ffi_raw_closure`.
unsafe fn prep_native(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: RawFun,
    user_data: *mut c_void,
    codeloc: *mut c_void,
    mode: RawMode,
) -> Result<(), RawPrepError> {
    // SAFETY: a raw handler and an ordinary one differ only in the type of
    // their third (pointer) argument; the dispatcher calls it as a RawFun
    // (src/raw/mod.rs `call`) because the plan's mode says so.
    let as_fun = unsafe { std::mem::transmute::<RawFun, Fun>(fun) };
    // SAFETY: forwarded contract.
    unsafe { crate::closure::prep_mode(cl.cast(), cif, as_fun, user_data, codeloc, mode) }
        .map_err(RawPrepError::Prep)
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
    // SAFETY: the caller guarantees `cif` is NULL or a readable cif.
    let sig = unsafe { cif::read_cif(cif) }.map_err(|e| RawPrepError::Prep(PrepError::Cif(e)))?;
    // SAFETY: read_cif accepted the cif: nargs types, each readable.
    let refused = (0..sig.args.len()).any(|i| unsafe {
        matches!(
            (**(*cif).arg_types.add(i)).type_,
            code::STRUCT | code::LONGDOUBLE
        )
    });
    if refused {
        return Err(RawPrepError::BadType(
            "struct or long double argument in a raw closure",
        ));
    }
    if !arch::NATIVE_RAW_ABIS.contains(&sig.abi) {
        return Err(RawPrepError::BadAbi);
    }
    // SAFETY: forwarded contract.
    unsafe { prep_native(cl, cif, fun, user_data, codeloc, RawMode::Native) }
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
    unsafe { prep_native(cl, cif, fun, user_data, codeloc, RawMode::Java) }
}
