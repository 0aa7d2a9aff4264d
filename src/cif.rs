//! Reading libffi's C `ffi_cif` and `ffi_type` into a [`Signature`].
//!
//! Only the public fields are read (`abi`, `nargs`, `arg_types`, `rtype`,
//! and each type's `size`, `alignment`, `type`, `elements`); never
//! `cif->flags`, whose meaning differs between libffi versions. Every
//! pointer is checked for NULL and every type validated, so a malformed cif
//! gets `FFI_BAD_TYPEDEF` / `FFI_BAD_ABI` instead of a crash where that is
//! detectable.
//!
//! A struct's size and alignment are read as stated, as libffi's
//! `ffi_prep_cif` takes them (it computes them only for a struct of size
//! 0): CPython's ctypes states packed, union and bitfield layouts that way.
//! See `Type::validate` for what is refused.
#![allow(unsafe_code)]

use crate::arch;
use statictramp_abi::{Abi, Kind, Signature, Type, TypeError};
use std::os::raw::c_void;

/// libffi's `ffi_type` (include/ffi.h.in).
#[repr(C)]
pub struct FfiType {
    pub size: usize,
    pub alignment: u16,
    pub type_: u16,
    pub elements: *mut *mut FfiType,
}

/// libffi's `ffi_cif` (public fields; libffi may append private ones).
#[repr(C)]
pub struct FfiCif {
    pub abi: u32,
    pub nargs: u32,
    pub arg_types: *mut *mut FfiType,
    pub rtype: *mut FfiType,
    pub bytes: u32,
    pub flags: u32,
}

/// libffi's `ffi_status`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    BadTypedef = 1,
    BadAbi = 2,
    BadArgType = 3,
}

impl Status {
    /// libffi's name for the status (`FFI_BAD_ABI`, ...).
    pub fn libffi_name(self) -> &'static str {
        match self {
            Status::Ok => "FFI_OK",
            Status::BadTypedef => "FFI_BAD_TYPEDEF",
            Status::BadAbi => "FFI_BAD_ABI",
            Status::BadArgType => "FFI_BAD_ARGTYPE",
        }
    }
}

/// libffi type codes.
pub mod code {
    pub const VOID: u16 = 0;
    pub const INT: u16 = 1;
    pub const FLOAT: u16 = 2;
    pub const DOUBLE: u16 = 3;
    pub const LONGDOUBLE: u16 = 4;
    pub const UINT8: u16 = 5;
    pub const SINT8: u16 = 6;
    pub const UINT16: u16 = 7;
    pub const SINT16: u16 = 8;
    pub const UINT32: u16 = 9;
    pub const SINT32: u16 = 10;
    pub const UINT64: u16 = 11;
    pub const SINT64: u16 = 12;
    pub const STRUCT: u16 = 13;
    pub const POINTER: u16 = 14;
    pub const COMPLEX: u16 = 15;
}

/// Most arguments we accept; more is a corrupt cif (libffi has no limit,
/// but it `alloca`s `avalue` on every call).
pub const MAX_ARGS: u32 = 4096;
/// Most elements in one struct.
pub const MAX_ELEMENTS: usize = 1 << 16;

/// Why a cif cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CifError {
    NullCif,
    BadAbi(u32),
    BadType(TypeError),
    NullType,
    TooManyArgs(u32),
}

impl CifError {
    /// The libffi status for this error.
    pub fn status(&self) -> Status {
        match self {
            CifError::NullCif => Status::BadArgType,
            CifError::BadAbi(_) => Status::BadAbi,
            CifError::BadType(_) | CifError::NullType | CifError::TooManyArgs(_) => {
                Status::BadTypedef
            }
        }
    }
}

impl core::fmt::Display for CifError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CifError::NullCif => write!(f, "cif is NULL"),
            CifError::BadAbi(a) => write!(f, "ABI {a} is not supported on this architecture"),
            CifError::BadType(e) => write!(f, "bad ffi_type: {e}"),
            CifError::NullType => write!(f, "NULL ffi_type"),
            CifError::TooManyArgs(n) => write!(f, "{n} arguments (at most {MAX_ARGS})"),
        }
    }
}

/// Reads the signature a cif describes.
///
/// # Safety
/// `cif` must be NULL or point to a readable `ffi_cif` whose type pointers
/// are NULL or point to readable `ffi_type`s (as any libffi cif does).
pub unsafe fn read_cif(cif: *const FfiCif) -> Result<Signature, CifError> {
    if cif.is_null() {
        return Err(CifError::NullCif);
    }
    // SAFETY: caller guarantees a readable cif.
    let cif = unsafe { &*cif };
    let abi = Abi::from_ffi(arch::ARCH, cif.abi).ok_or(CifError::BadAbi(cif.abi))?;
    if cif.nargs > MAX_ARGS {
        return Err(CifError::TooManyArgs(cif.nargs));
    }
    if cif.nargs > 0 && cif.arg_types.is_null() {
        return Err(CifError::NullType);
    }
    let mut args = Vec::with_capacity(cif.nargs as usize);
    for i in 0..cif.nargs as usize {
        // SAFETY: arg_types has nargs entries (libffi's contract).
        let t = unsafe { *cif.arg_types.add(i) };
        // SAFETY: caller guarantees readable types.
        let t = unsafe { read_type(t, 0)? };
        if t.kind == Kind::Void {
            return Err(CifError::BadType(TypeError::VoidArgument));
        }
        args.push(t);
    }
    // SAFETY: as above.
    let ret = unsafe { read_type(cif.rtype, 0)? };
    Ok(Signature { abi, args, ret })
}

/// Whether `cif` describes exactly `sig`: true iff [`read_cif`] would
/// return `Ok(sig)` for it. Reads the same fields, allocates nothing: the
/// prep fast path uses it to confirm a cached plan.
///
/// # Safety
/// As [`read_cif`].
pub unsafe fn describes(cif: *const FfiCif, sig: &Signature) -> bool {
    if cif.is_null() {
        return false;
    }
    // SAFETY: caller guarantees a readable cif.
    let cif = unsafe { &*cif };
    if Abi::from_ffi(arch::ARCH, cif.abi) != Some(sig.abi) || cif.nargs as usize != sig.args.len() {
        return false;
    }
    if cif.nargs > 0 && cif.arg_types.is_null() {
        return false;
    }
    sig.args.iter().enumerate().all(|(i, ty)| {
        // SAFETY: arg_types has nargs entries; types are readable (caller).
        unsafe { type_matches(*cif.arg_types.add(i), ty, 0) }
    })
    // SAFETY: as above.
    && unsafe { type_matches(cif.rtype, &sig.ret, 0) }
}

/// The type code `read_type` reads as `kind` (FFI_TYPE_INT reads as
/// SINT32, so it is compared as SINT32), for a comparison of two integers.
fn code_of(kind: &Kind) -> u16 {
    match kind {
        Kind::Void => code::VOID,
        Kind::U8 => code::UINT8,
        Kind::S8 => code::SINT8,
        Kind::U16 => code::UINT16,
        Kind::S16 => code::SINT16,
        Kind::U32 => code::UINT32,
        Kind::S32 => code::SINT32,
        Kind::U64 => code::UINT64,
        Kind::S64 => code::SINT64,
        Kind::Float => code::FLOAT,
        Kind::Double => code::DOUBLE,
        Kind::LongDouble => code::LONGDOUBLE,
        Kind::Pointer => code::POINTER,
        Kind::Struct(_) => code::STRUCT,
        Kind::Complex(_) => code::COMPLEX,
    }
}

/// Whether [`read_type`] would read `t` as `ty` (which it accepted before).
///
/// # Safety
/// As [`read_type`].
unsafe fn type_matches(t: *const FfiType, ty: &Type, depth: usize) -> bool {
    if t.is_null() || depth > statictramp_abi::types::MAX_DEPTH {
        return false;
    }
    // SAFETY: caller guarantees a readable ffi_type.
    let ft = unsafe { &*t };
    let got = if ft.type_ == code::INT {
        code::SINT32
    } else {
        ft.type_
    };
    if got != code_of(&ty.kind) {
        return false;
    }
    if got == code::VOID && depth == 0 {
        // read_type ignores a void return type's size and alignment, but
        // refuses size 0.
        return ft.size != 0;
    }
    if ft.size as u64 != ty.size || u64::from(ft.alignment) != ty.align {
        return false;
    }
    match &ty.kind {
        Kind::Struct(elems) => {
            !ft.elements.is_null()
                && elems.iter().enumerate().all(|(i, e)| {
                    // SAFETY: NULL-terminated elements: entries before the
                    // first NULL are readable, and `all` stops at a mismatch
                    // (a NULL entry never matches).
                    unsafe { type_matches(*ft.elements.add(i), e, depth + 1) }
                })
                // SAFETY: all elems.len() entries were non-NULL, so the
                // terminator slot is part of the array.
                && unsafe { (*ft.elements.add(elems.len())).is_null() }
        }
        Kind::Complex(elem) => {
            // SAFETY: a non-NULL elements array has at least its first entry.
            !ft.elements.is_null() && unsafe { type_matches(*ft.elements, elem, depth + 1) }
        }
        _ => true,
    }
}

/// Reads one `ffi_type` (recursively); at depth 0 (an argument or return
/// type) it also validates it (`Type::validate`, which checks the elements
/// too).
///
/// A struct's size and alignment are read as stated. A `void` element keeps
/// its stated size and alignment (CPython's ctypes gives a structure without
/// `_fields_` a zeroed `ffi_type`: void, size 0, alignment 0, which libffi's
/// classifier walks with `FFI_ALIGN(offset, 0) == 0`); a `void` argument or
/// return type reads as [`Type::VOID`], unless its size is 0: libffi's
/// `ffi_prep_cif` refuses that one (`initialize_aggregate` finds no
/// elements), so a cif holding it was not prepared by libffi (found by the
/// differential fuzzer: ctypes' zeroed `ffi_type` as a return type).
///
/// # Safety
/// `t` must be NULL or point to a readable `ffi_type`, recursively.
pub unsafe fn read_type(t: *const FfiType, depth: usize) -> Result<Type, CifError> {
    if t.is_null() {
        return Err(CifError::NullType);
    }
    if depth > statictramp_abi::types::MAX_DEPTH {
        return Err(CifError::BadType(TypeError::TooDeep));
    }
    // SAFETY: caller guarantees a readable ffi_type.
    let ft = unsafe { &*t };
    // libffi's predefined scalar types: this architecture's layouts.
    let scalar = |kind: Kind| {
        let (size, align) = arch::ARCH
            .scalar_layout(&kind)
            .expect("a scalar kind has a layout");
        Ok(Type { kind, size, align })
    };
    let ty = match ft.type_ {
        code::VOID if depth == 0 && ft.size == 0 => Err(CifError::BadType(TypeError::ZeroSize)),
        code::VOID if depth == 0 => Ok(Type::VOID),
        code::VOID => Ok(Type {
            kind: Kind::Void,
            size: ft.size as u64,
            align: u64::from(ft.alignment),
        }),
        code::INT | code::SINT32 => scalar(Kind::S32),
        code::UINT32 => scalar(Kind::U32),
        code::UINT8 => scalar(Kind::U8),
        code::SINT8 => scalar(Kind::S8),
        code::UINT16 => scalar(Kind::U16),
        code::SINT16 => scalar(Kind::S16),
        code::UINT64 => scalar(Kind::U64),
        code::SINT64 => scalar(Kind::S64),
        code::POINTER => scalar(Kind::Pointer),
        code::FLOAT => scalar(Kind::Float),
        code::DOUBLE => scalar(Kind::Double),
        code::LONGDOUBLE => scalar(Kind::LongDouble),
        code::STRUCT | code::COMPLEX => {
            if ft.elements.is_null() {
                return Err(CifError::NullType);
            }
            let mut elems = Vec::new();
            loop {
                if elems.len() >= MAX_ELEMENTS {
                    return Err(CifError::BadType(TypeError::TooLarge(elems.len() as u64)));
                }
                // SAFETY: `elements` is a NULL-terminated array (libffi's contract).
                let e = unsafe { *ft.elements.add(elems.len()) };
                if e.is_null() {
                    break;
                }
                // SAFETY: as for `t`.
                elems.push(unsafe { read_type(e, depth + 1)? });
            }
            if ft.type_ == code::COMPLEX {
                let elem = elems
                    .into_iter()
                    .next()
                    .ok_or(CifError::BadType(TypeError::BadComplex))?;
                Type::complex(elem).map_err(CifError::BadType)
            } else {
                Ok(Type {
                    kind: Kind::Struct(elems),
                    size: ft.size as u64,
                    align: u64::from(ft.alignment),
                })
            }
        }
        other => Err(CifError::BadType(TypeError::UnknownCode(other))),
    }?;
    // Scalars: libffi's predefined types carry these exact sizes; a type
    // claiming otherwise is corrupt.
    if !matches!(ty.kind, Kind::Struct(_) | Kind::Void)
        && (ft.size as u64 != ty.size || u64::from(ft.alignment) != ty.align)
    {
        return Err(CifError::BadType(TypeError::LayoutMismatch {
            stated_size: ft.size as u64,
            stated_align: u64::from(ft.alignment),
            size: ty.size,
            align: ty.align,
        }));
    }
    if depth == 0 {
        ty.validate().map_err(CifError::BadType)?;
    }
    Ok(ty)
}

/// The handler libffi calls: `fun(cif, ret, avalue, user_data)`. C-unwind:
/// a C++ handler may throw through the entry.
pub type Fun = unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut *mut c_void, *mut c_void);
