//! libffi's raw closure API on x86_64, where `FFI_NATIVE_RAW_API` is 0
//! (src/x86/ffitarget.h): a raw closure is an ordinary closure whose handler
//! translates `avalue[]` into a raw argument array and calls the client's
//! raw handler, exactly as libffi's src/raw_api.c (`ffi_translate_args`,
//! `ffi_ptrarray_to_raw`) and src/java_raw_api.c (`ffi_java_translate_args`,
//! `ffi_java_ptrarray_to_raw`) do.
#![allow(unsafe_code)]

use crate::cif::{FfiCif, FfiType, code};
use std::os::raw::c_void;
use std::ptr;

/// libffi's `ffi_raw_closure` / `ffi_java_raw_closure` (same layout) with
/// `FFI_NATIVE_RAW_API == 0`.
#[repr(C)]
pub struct FfiRawClosure {
    pub tramp: [u8; 32],
    pub cif: *mut FfiCif,
    pub translate_args: *mut c_void,
    pub this_closure: *mut c_void,
    pub fun: Option<RawFun>,
    pub user_data: *mut c_void,
}

/// A raw handler: `fun(cif, ret, raw_args, user_data)`.
pub type RawFun = unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut u64, *mut c_void);

/// Size of one `ffi_raw` / `ffi_java_raw` slot on x86_64 (FFI_SIZEOF_ARG,
/// FFI_SIZEOF_JAVA_RAW both 8).
const RAW: usize = 8;

/// The type code of argument `i`.
///
/// # Safety
/// `cif` is a cif that read_cif accepted.
unsafe fn arg_type(cif: *const FfiCif, i: usize) -> &'static FfiType {
    // SAFETY: read_cif validated nargs, arg_types and every type at prep.
    unsafe { &**(*cif).arg_types.add(i) }
}

/// Raw slots `ffi_ptrarray_to_raw` uses for one argument.
fn raw_slots(t: &FfiType) -> usize {
    match t.type_ {
        code::STRUCT | code::COMPLEX => 1,
        _ => t.size.div_ceil(RAW),
    }
}

/// Java raw slots for one argument (`ffi_java_raw_size`): 64-bit values
/// take two slots even though a slot is 8 bytes wide.
fn java_slots(t: &FfiType) -> usize {
    match t.type_ {
        code::UINT64 | code::SINT64 | code::DOUBLE => 2,
        _ => 1,
    }
}

/// Whether a cif can be used with the Java raw API: libffi aborts at call
/// time on struct and complex arguments; we refuse them at prep instead.
///
/// # Safety
/// `cif` is a cif that read_cif accepted.
pub unsafe fn java_compatible(cif: *const FfiCif) -> bool {
    // SAFETY: as documented.
    unsafe {
        (0..(*cif).nargs as usize)
            .all(|i| !matches!(arg_type(cif, i).type_, code::STRUCT | code::COMPLEX))
    }
}

/// Stores the integer, 64-bit and pointer arguments the way both
/// `ffi_ptrarray_to_raw` and `ffi_java_ptrarray_to_raw` do (widened to a
/// full slot, signed types sign-extended). Returns false for other types.
///
/// # Safety
/// `arg` points at a value of type `t`; `dst` is a writable slot.
unsafe fn put_word(t: &FfiType, arg: *mut c_void, dst: *mut u64) -> bool {
    // SAFETY: per the contract.
    unsafe {
        *dst = match t.type_ {
            code::UINT8 => u64::from(*(arg as *const u8)),
            code::SINT8 => i64::from(*(arg as *const i8)) as u64,
            code::UINT16 => u64::from(*(arg as *const u16)),
            code::SINT16 => i64::from(*(arg as *const i16)) as u64,
            code::UINT32 => u64::from(*(arg as *const u32)),
            code::SINT32 | code::INT => i64::from(*(arg as *const i32)) as u64,
            code::UINT64 | code::SINT64 | code::DOUBLE | code::POINTER => *(arg as *const u64),
            _ => return false,
        };
    }
    true
}

/// Converts one argument as `ffi_ptrarray_to_raw` does; returns slots used.
///
/// # Safety
/// `arg` points at a value of type `t`; `raw` has room for the slots.
unsafe fn put_raw(t: &FfiType, arg: *mut c_void, raw: *mut u64) -> usize {
    // SAFETY: per the contract.
    unsafe {
        if !put_word(t, arg, raw) {
            match t.type_ {
                // Structs and complex values are passed by address.
                code::STRUCT | code::COMPLEX => *raw = arg as u64,
                // float, long double: the bytes, slot-aligned.
                _ => ptr::copy_nonoverlapping(arg as *const u8, raw as *mut u8, t.size),
            }
        }
    }
    raw_slots(t)
}

/// Converts one argument as `ffi_java_ptrarray_to_raw` does; returns how
/// far libffi advances (64-bit values take two slots; types it does not
/// handle are neither written nor advanced over: FFI_ASSERT(0) there).
///
/// # Safety
/// As [`put_raw`].
unsafe fn put_java(t: &FfiType, arg: *mut c_void, raw: *mut u64) -> usize {
    // SAFETY: per the contract.
    unsafe {
        if put_word(t, arg, raw) {
            java_slots(t)
        } else if t.type_ == code::FLOAT {
            ptr::copy_nonoverlapping(arg as *const u8, raw as *mut u8, 4);
            1
        } else {
            0
        }
    }
}

/// Scratch for the raw array: kept on the stack for up to this many slots.
const STACK_SLOTS: usize = 32;

/// Calls `f` with a zeroed buffer of `n` raw slots (stack for small `n`).
fn with_raw_buf<R>(n: usize, f: impl FnOnce(*mut u64) -> R) -> R {
    if n <= STACK_SLOTS {
        let mut buf = [0u64; STACK_SLOTS];
        f(buf.as_mut_ptr())
    } else {
        let mut v = vec![0u64; n];
        f(v.as_mut_ptr())
    }
}

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
    slots: fn(&FfiType) -> usize,
    put: unsafe fn(&FfiType, *mut c_void, *mut u64) -> usize,
) {
    // SAFETY: per the contract.
    unsafe {
        let cl = &*(user_data as *const FfiRawClosure);
        let nargs = (*cif).nargs as usize;
        let n: usize = (0..nargs).map(|i| slots(arg_type(cif, i))).sum();
        with_raw_buf(n, |raw| {
            let mut at = 0;
            for i in 0..nargs {
                at += put(arg_type(cif, i), *avalue.add(i), raw.add(at));
            }
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
pub unsafe extern "C-unwind" fn translate_raw(
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
pub unsafe extern "C-unwind" fn translate_java(
    cif: *mut FfiCif,
    ret: *mut c_void,
    avalue: *mut *mut c_void,
    user_data: *mut c_void,
) {
    // SAFETY: forwarded contract.
    unsafe { translate(cif, ret, avalue, user_data, java_slots, put_java) }
}
