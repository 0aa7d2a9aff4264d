//! libffi's raw closure API (`ffi_prep_raw_closure_loc`,
//! `ffi_prep_java_raw_closure_loc`): the conversions both kinds share, and
//! the closure layout and prep of this architecture's kind:
//!
//! - `FFI_NATIVE_RAW_API == 0` (every architecture but i386; translated.rs):
//!   a raw closure is an ordinary closure whose handler translates
//!   `avalue[]` into a raw array, as libffi's src/raw_api.c does;
//! - `FFI_NATIVE_RAW_API == 1` (i386; native.rs): the raw handler gets the
//!   caller's argument area itself, and `ffi_raw_closure` has the layout of
//!   `ffi_closure`.
//!
//! build.rs sets `cfg(native_raw_api)` from statictramp-abi's
//! `RecordLayout` of the target. A raw slot (`ffi_raw`, `ffi_java_raw`) is
//! `FFI_SIZEOF_ARG` bytes: a pointer's width on every architecture we
//! ship, so a slot is a `usize` here.
#![allow(unsafe_code)]

use crate::cif::{FfiCif, FfiType, Status, code};
use crate::closure::PrepError;
use std::os::raw::c_void;
use std::ptr;

#[cfg(native_raw_api)]
mod native;
#[cfg(native_raw_api)]
pub use native::*;
#[cfg(not(native_raw_api))]
mod translated;
#[cfg(not(native_raw_api))]
pub use translated::*;

/// What the handler of a prepared closure receives instead of `avalue[]`
/// (part of a compiled plan; only a native raw API makes the last two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RawMode {
    /// `avalue[]`: an ordinary closure (or a translated raw one).
    Cooked,
    /// The caller's argument area as `ffi_raw[]` (native raw API).
    #[cfg_attr(not(native_raw_api), allow(dead_code))]
    Native,
    /// A Java raw array translated from `avalue[]` (native raw API: its
    /// `ffi_java_raw_closure` has no room for a translating handler).
    #[cfg_attr(not(native_raw_api), allow(dead_code))]
    Java,
}

/// Calls a raw closure's handler (stored in the closure's `fun` field) the
/// way `mode` says: with the caller's argument area itself where every
/// argument lies there in raw order (libffi's i386 raw closures pass the
/// stack), else with a raw array built from `avalue` as libffi's
/// `ffi_ptrarray_to_raw` builds it (e.g. THISCALL's register argument
/// first); Java closures get `ffi_java_ptrarray_to_raw`'s array.
///
/// # Safety
/// The dispatcher's state for a prepared closure of this mode: `avalue`
/// built per `plan`, `stack` the caller's first stack argument.
pub(crate) unsafe fn call(
    mode: RawMode,
    plan: &statictramp_abi::Plan,
    c: &crate::record::FfiClosure,
    rvalue: *mut c_void,
    avalue: *mut *mut c_void,
    stack: *mut u8,
) {
    // SAFETY: per the contract: the handler stored at prep has the raw
    // signature (a pointer in the same argument position).
    unsafe {
        let fun: RawFun = std::mem::transmute(c.fun.expect("prepared closure has a handler"));
        let cif = c.cif;
        match mode {
            RawMode::Native if in_raw_order(plan, cif) => {
                fun(cif, rvalue, stack.cast(), c.user_data)
            }
            RawMode::Native => with_raw_args(cif, avalue, raw_slots, put_raw, |raw| {
                fun(cif, rvalue, raw, c.user_data)
            }),
            RawMode::Java => with_raw_args(cif, avalue, java_slots, put_java, |raw| {
                fun(cif, rvalue, raw, c.user_data)
            }),
            RawMode::Cooked => unreachable!("cooked closures are called directly"),
        }
    }
}

/// Whether every argument lies on the caller's stack where the raw array
/// would put it (consecutive, each taking its raw slots).
///
/// # Safety
/// `cif` is the closure's validated cif.
unsafe fn in_raw_order(plan: &statictramp_abi::Plan, cif: *mut FfiCif) -> bool {
    let mut at = 0u32;
    plan.args.iter().enumerate().all(|(i, loc)| {
        // SAFETY: per the contract.
        let t = unsafe { arg_type(cif, i) };
        let here = *loc == statictramp_abi::ArgLoc::Stack(at);
        at += (raw_slots(t) * RAW) as u32;
        here
    })
}

/// Why a raw prep failed, with libffi's status.
#[derive(Debug)]
pub enum RawPrepError {
    Prep(PrepError),
    /// A type the raw API does not take (libffi: FFI_BAD_TYPEDEF).
    BadType(&'static str),
    /// An ABI the raw API does not take (libffi: FFI_BAD_ABI).
    #[cfg_attr(not(native_raw_api), allow(dead_code))]
    BadAbi,
}

impl RawPrepError {
    pub fn status(&self) -> Status {
        match self {
            RawPrepError::Prep(e) => e.status(),
            RawPrepError::BadType(_) => Status::BadTypedef,
            RawPrepError::BadAbi => Status::BadAbi,
        }
    }
}

impl core::fmt::Display for RawPrepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RawPrepError::Prep(e) => write!(f, "{e}"),
            RawPrepError::BadType(why) => write!(f, "{why}"),
            RawPrepError::BadAbi => write!(f, "ABI not supported by raw closures"),
        }
    }
}

/// A raw slot: `ffi_raw` / `ffi_java_raw` (`FFI_SIZEOF_ARG` bytes).
pub type Slot = usize;

/// A raw handler: `fun(cif, ret, raw_args, user_data)`.
pub type RawFun = unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut Slot, *mut c_void);

/// Bytes of one raw slot.
pub const RAW: usize = size_of::<Slot>();

/// The type code of argument `i`.
///
/// # Safety
/// `cif` is a cif that read_cif accepted.
pub(crate) unsafe fn arg_type(cif: *const FfiCif, i: usize) -> &'static FfiType {
    // SAFETY: read_cif validated nargs, arg_types and every type at prep.
    unsafe { &**(*cif).arg_types.add(i) }
}

/// Raw slots `ffi_ptrarray_to_raw` uses for one argument.
pub(crate) fn raw_slots(t: &FfiType) -> usize {
    match t.type_ {
        code::STRUCT | code::COMPLEX => 1,
        _ => t.size.div_ceil(RAW),
    }
}

/// Java raw slots for one argument (`ffi_java_raw_size`): 64-bit values
/// take two slots even where a slot is 8 bytes wide.
pub(crate) fn java_slots(t: &FfiType) -> usize {
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
pub(crate) unsafe fn put_word(t: &FfiType, arg: *mut c_void, dst: *mut Slot) -> bool {
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
pub(crate) unsafe fn put_bytes(t: &FfiType, arg: *mut c_void, raw: *mut Slot) -> usize {
    // SAFETY: per the contract.
    unsafe { ptr::copy_nonoverlapping(arg as *const u8, raw as *mut u8, t.size) };
    t.size.div_ceil(RAW)
}

/// Converts one argument as `ffi_ptrarray_to_raw` does; returns slots used.
///
/// # Safety
/// `arg` points at a value of type `t`; `raw` has room for the slots.
pub(crate) unsafe fn put_raw(t: &FfiType, arg: *mut c_void, raw: *mut Slot) -> usize {
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
pub(crate) unsafe fn put_java(t: &FfiType, arg: *mut c_void, raw: *mut Slot) -> usize {
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
pub(crate) fn with_raw_buf<R>(n: usize, f: impl FnOnce(*mut Slot) -> R) -> R {
    if n <= STACK_SLOTS {
        let mut buf = [0 as Slot; STACK_SLOTS];
        f(buf.as_mut_ptr())
    } else {
        let mut v = vec![0 as Slot; n];
        f(v.as_mut_ptr())
    }
}

/// Builds the raw array of `cif`'s arguments (sized by `slots`, filled by
/// `put` from `avalue`) and runs `f` on it.
///
/// # Safety
/// The cif was validated at prep; `avalue` has `nargs` entries.
pub(crate) unsafe fn with_raw_args<R>(
    cif: *mut FfiCif,
    avalue: *mut *mut c_void,
    slots: fn(&FfiType) -> usize,
    put: unsafe fn(&FfiType, *mut c_void, *mut Slot) -> usize,
    f: impl FnOnce(*mut Slot) -> R,
) -> R {
    // SAFETY: per the contract.
    unsafe {
        let nargs = (*cif).nargs as usize;
        let n: usize = (0..nargs).map(|i| slots(arg_type(cif, i))).sum();
        with_raw_buf(n, |raw| {
            let mut at = 0;
            for i in 0..nargs {
                at += put(arg_type(cif, i), *avalue.add(i), raw.add(at));
            }
            f(raw)
        })
    }
}

/// The checks every raw prep makes first: a closure and a handler.
pub(crate) fn check_args(cl: *const c_void, fun: Option<RawFun>) -> Result<RawFun, RawPrepError> {
    match fun {
        Some(f) if !cl.is_null() => Ok(f),
        _ if cl.is_null() => Err(RawPrepError::Prep(PrepError::NullClosure)),
        _ => Err(RawPrepError::Prep(PrepError::NullFun)),
    }
}

/// Refuses Java raw closures with struct or complex arguments, on which
/// libffi aborts at call time (FFI_ASSERT), at prep instead.
///
/// # Safety
/// `cif` is NULL or a readable cif.
pub(crate) unsafe fn check_java(cif: *mut FfiCif) -> Result<(), RawPrepError> {
    // SAFETY: forwarded contract.
    unsafe { crate::cif::read_cif(cif) }.map_err(|e| RawPrepError::Prep(PrepError::Cif(e)))?;
    // SAFETY: read_cif accepted the cif just above.
    if unsafe { java_compatible(cif) } {
        Ok(())
    } else {
        Err(RawPrepError::BadType(
            "struct or complex argument in a Java raw closure",
        ))
    }
}
