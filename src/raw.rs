//! libffi's raw closure API where `FFI_NATIVE_RAW_API` is 0 (every
//! architecture but i386; statictramp-abi's `RecordLayout`): a raw closure
//! is an ordinary closure whose handler translates `avalue[]` into a raw
//! argument array and calls the client's raw handler, exactly as libffi's
//! src/raw_api.c (`ffi_translate_args`, `ffi_ptrarray_to_raw`) and
//! src/java_raw_api.c (`ffi_java_translate_args`,
//! `ffi_java_ptrarray_to_raw`) do. A raw slot (`ffi_raw`, `ffi_java_raw`)
//! is `FFI_SIZEOF_ARG` bytes: a pointer's width on every architecture we
//! ship, so a slot is a `usize` here.
#![allow(unsafe_code)]

use crate::arch;
use crate::cif::{FfiCif, FfiType, code};
use crate::record::TRAMP_SIZE;
use std::mem::offset_of;
use std::os::raw::c_void;
use std::ptr;

// A native raw API (i386) hands the raw handler the caller's argument area
// from an entry of its own; that port brings it.
const _: () = assert!(
    !arch::RECORD.native_raw_api,
    "this architecture's raw API is native: its raw entries come with its port"
);

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

/// A raw slot: `ffi_raw` / `ffi_java_raw` (`FFI_SIZEOF_ARG` bytes).
type Slot = usize;

/// A raw handler: `fun(cif, ret, raw_args, user_data)`.
pub type RawFun = unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut Slot, *mut c_void);

/// Bytes of one raw slot.
const RAW: usize = size_of::<Slot>();

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
/// take two slots even where a slot is 8 bytes wide.
fn java_slots(t: &FfiType) -> usize {
    match t.type_ {
        code::UINT64 | code::SINT64 | code::DOUBLE => 2,
        _ => t.size.div_ceil(RAW).max(1),
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

/// Stores the integers of up to 32 bits and pointers the way both
/// `ffi_ptrarray_to_raw` and `ffi_java_ptrarray_to_raw` do (`raw->uint`,
/// `raw->sint`, `raw->ptr`: widened to a full slot, signed types
/// sign-extended). Returns false for other types.
///
/// # Safety
/// `arg` points at a value of type `t`; `dst` is a writable slot.
unsafe fn put_word(t: &FfiType, arg: *mut c_void, dst: *mut Slot) -> bool {
    // SAFETY: per the contract.
    unsafe {
        *dst = match t.type_ {
            code::UINT8 => Slot::from(*(arg as *const u8)),
            code::SINT8 => isize::from(*(arg as *const i8)) as Slot,
            code::UINT16 => Slot::from(*(arg as *const u16)),
            code::SINT16 => isize::from(*(arg as *const i16)) as Slot,
            code::UINT32 => *(arg as *const u32) as Slot,
            code::SINT32 => *(arg as *const i32) as isize as Slot,
            code::POINTER => *(arg as *const Slot),
            _ => return false,
        };
    }
    true
}

/// `memcpy(raw, arg, size)`: libffi's default case; returns the slots it
/// advances over (the size rounded up to slots).
///
/// # Safety
/// `arg` has `t.size` readable bytes; `raw` has room for them.
unsafe fn put_bytes(t: &FfiType, arg: *mut c_void, raw: *mut Slot) -> usize {
    // SAFETY: per the contract.
    unsafe { ptr::copy_nonoverlapping(arg as *const u8, raw as *mut u8, t.size) };
    t.size.div_ceil(RAW)
}

/// Converts one argument as `ffi_ptrarray_to_raw` does; returns slots used.
///
/// # Safety
/// `arg` points at a value of type `t`; `raw` has room for the slots.
unsafe fn put_raw(t: &FfiType, arg: *mut c_void, raw: *mut Slot) -> usize {
    // SAFETY: per the contract.
    unsafe {
        if put_word(t, arg, raw) {
            return 1;
        }
        match t.type_ {
            // Structs and complex values are passed by address.
            code::STRUCT | code::COMPLEX => {
                *raw = arg as Slot;
                1
            }
            // 64-bit integers, float, double, long double: the bytes.
            _ => put_bytes(t, arg, raw),
        }
    }
}

/// Converts one argument as `ffi_java_ptrarray_to_raw` does; returns how
/// far libffi advances (64-bit values take two slots; with 8-byte slots,
/// types it does not handle are neither written nor advanced over:
/// FFI_ASSERT(0) there).
///
/// # Safety
/// As [`put_raw`].
unsafe fn put_java(t: &FfiType, arg: *mut c_void, raw: *mut Slot) -> usize {
    // SAFETY: per the contract.
    unsafe {
        if put_word(t, arg, raw) {
            return 1;
        }
        match t.type_ {
            code::FLOAT => {
                ptr::copy_nonoverlapping(arg as *const u8, raw as *mut u8, 4);
                1
            }
            code::UINT64 | code::SINT64 | code::DOUBLE => {
                ptr::copy_nonoverlapping(arg as *const u8, raw as *mut u8, 8);
                2
            }
            _ if RAW == 8 => 0,
            _ => put_bytes(t, arg, raw),
        }
    }
}

/// Scratch for the raw array: kept on the stack for up to this many slots.
const STACK_SLOTS: usize = 32;

/// Calls `f` with a zeroed buffer of `n` raw slots (stack for small `n`).
fn with_raw_buf<R>(n: usize, f: impl FnOnce(*mut Slot) -> R) -> R {
    if n <= STACK_SLOTS {
        let mut buf = [0 as Slot; STACK_SLOTS];
        f(buf.as_mut_ptr())
    } else {
        let mut v = vec![0 as Slot; n];
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
    put: unsafe fn(&FfiType, *mut c_void, *mut Slot) -> usize,
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
