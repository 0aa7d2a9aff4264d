//! i386 (x86-32) conventions: every ABI libffi has there: `FFI_SYSV`,
//! `FFI_STDCALL`, `FFI_THISCALL`, `FFI_FASTCALL`, `FFI_MS_CDECL`,
//! `FFI_PASCAL` and `FFI_REGISTER`.
//!
//! The rules follow the compilers, not libffi's i386 closures, where the
//! two disagree (docs/design.md, "i386 classification", lists each case):
//! GCC for the C conventions, the Delphi Language Guide for PASCAL and
//! REGISTER. [`conv`] is the table, [`args`] places the arguments,
//! [`ret`] the return value. Structs are never split over registers
//! on i386: a struct argument is on the stack byte for byte, so a stated
//! layout (packed, union, bitfields; see "Stated struct layouts") needs
//! nothing but its stated size, alignment and, for FASTCALL/THISCALL
//! register counting, whether GCC would give it a float mode.
//!
//! **Variadic cifs** are classified as fixed ones: libffi defines no
//! `FFI_TARGET_SPECIFIC_VARIADIC` for x86, so `ffi_prep_cif_var` leaves
//! an i386 cif exactly as `ffi_prep_cif` would (`ffi_prep_cif_machdep`
//! alone, `src/prep_cif.c:236`), and a closure cannot tell them apart;
//! libffi's closures treat them as fixed too. For SYSV and MS_CDECL that
//! is what GCC does with a variadic function. GCC compiles a variadic
//! `stdcall`/`fastcall`/`thiscall` function as caller-pops with every
//! argument on the stack, which no cif can describe.

pub mod args;
pub mod conv;
pub mod frame;
pub mod ret;

use crate::Kind;
use crate::record::RecordLayout;
use crate::{Abi, ClassifyError, Plan, RetLoc, Signature, Type};

/// libffi src/x86/ffitarget.h:150-151 (not X86_64):
/// `#define FFI_TRAMPOLINE_SIZE 16`, `#define FFI_NATIVE_RAW_API 1`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 4,
    tramp_size: 16,
    native_raw_api: true,
};

/// The constants asm/i386/layout.h must define with exactly these values
/// besides the record's ([`RecordLayout::asm_constants`] of [`RECORD`];
/// build.rs checks both before assembling): the entries' register frame
/// ([`frame`]) and the dispatcher's return codes ([`crate::RetKind`];
/// i386 has no `X87Pair`).
pub const ASM_CONSTANTS: &[(&str, u64)] = &[
    ("FRAME_EAX", frame::EAX as u64),
    ("FRAME_EDX", frame::EDX as u64),
    ("FRAME_ECX", frame::ECX as u64),
    ("FRAME_STACK_PTR", frame::STACK_PTR as u64),
    ("FRAME_RET_EAX", frame::RET_EAX as u64),
    ("FRAME_RET_EDX", frame::RET_EDX as u64),
    ("FRAME_SIZE", frame::FRAME_SIZE as u64),
    ("RET_KIND_REGS", crate::RetKind::Regs as u64),
    ("RET_KIND_X87", crate::RetKind::X87 as u64),
    ("RET_KIND_X87_FLOAT", crate::RetKind::X87Float as u64),
    ("RET_KIND_X87_DOUBLE", crate::RetKind::X87Double as u64),
];

/// Maps libffi's i386 `ffi_abi` numbering on hosts other than Windows
/// (libffi 3.6 src/x86/ffitarget.h:117-126: `FFI_FIRST_ABI = 0,
/// FFI_SYSV = 1, FFI_THISCALL = 3, FFI_FASTCALL = 4, FFI_STDCALL = 5,
/// FFI_PASCAL = 6, FFI_REGISTER = 7, FFI_MS_CDECL = 8, FFI_LAST_ABI`).
/// 2 is unused there: `ffi_prep_cif` lets it through its range check and
/// `ffi_prep_cif_machdep` answers `FFI_BAD_ABI` (src/x86/ffi.c:69-81).
/// (The X86_WIN32 numbering, lines 105-115, is another platform's.)
pub fn abi_from_ffi(abi: u32) -> Option<Abi> {
    match abi {
        1 => Some(Abi::I386SysV),
        3 => Some(Abi::I386ThisCall),
        4 => Some(Abi::I386FastCall),
        5 => Some(Abi::I386StdCall),
        6 => Some(Abi::I386Pascal),
        7 => Some(Abi::I386Register),
        8 => Some(Abi::I386MsCdecl),
        _ => None,
    }
}

/// The (size, alignment) the i386 System V ABI gives a scalar kind (libffi's
/// predefined `ffi_type`s there); `None` for aggregates and void.
pub const fn standard_layout(kind: &Kind) -> Option<(u64, u64)> {
    Some(match kind {
        Kind::U8 | Kind::S8 => (1, 1),
        Kind::U16 | Kind::S16 => (2, 2),
        Kind::U32 | Kind::S32 | Kind::Float | Kind::Pointer => (4, 4),
        // The i386 System V ABI aligns 8-byte scalars to 4 inside structs,
        // and libffi's types.c measures alignment that way.
        Kind::U64 | Kind::S64 | Kind::Double => (8, 4),
        Kind::LongDouble => (12, 4),
        Kind::Void | Kind::Struct(_) | Kind::Complex(_) => return None,
    })
}

/// libffi's predefined types whose i386 layout differs from the x86_64
/// one the `Type` constants carry (`Type::U8` .. `Type::S32` and
/// `Type::FLOAT` are the same on both).
pub mod types {
    use crate::{Kind, Type};

    const fn t(kind: Kind, size: u64, align: u64) -> Type {
        Type { kind, size, align }
    }
    pub const U64: Type = t(Kind::U64, 8, 4);
    pub const S64: Type = t(Kind::S64, 8, 4);
    pub const DOUBLE: Type = t(Kind::Double, 8, 4);
    /// x87 80-bit extended precision stored in 12 bytes.
    pub const LONGDOUBLE: Type = t(Kind::LongDouble, 12, 4);
    pub const POINTER: Type = t(Kind::Pointer, 4, 4);
}

/// Size of the return buffer: the value rounded up to 16 bytes, at least
/// 16 (the dispatcher zeroes 16 before the handler runs; a handler writes
/// at most an `ffi_arg`, 4 bytes, for a pointer or memory return).
fn ret_buf_len(ret: &Type, loc: &RetLoc) -> u64 {
    match loc {
        RetLoc::Regs(_) | RetLoc::X87 | RetLoc::X87Float | RetLoc::X87Double => {
            ret.size.next_multiple_of(16).max(16)
        }
        RetLoc::Void | RetLoc::Memory { .. } | RetLoc::MemoryStack { .. } | RetLoc::X87Pair => 16,
    }
}

/// Classifies `sig` for its i386 ABI.
///
/// # Errors
/// [`ClassifyError::BadType`] for a malformed type or a scalar without its
/// i386 layout ([`standard_layout`]: e.g. an x86_64 `Type::DOUBLE`,
/// 8-aligned); [`ClassifyError::Unsupported`] for a `void` argument, an
/// ABI of another architecture, or stack offsets past 4 GiB.
pub fn classify(sig: &Signature) -> Result<Plan, ClassifyError> {
    let conv = conv::conv(sig.abi).ok_or(ClassifyError::Unsupported("not an i386 ABI"))?;
    crate::check::check_signature(&sig.args, &sig.ret, standard_layout)?;
    let placed = args::place(&conv, &sig.args, ret::ret(&conv, &sig.ret))?;
    let len = ret_buf_len(&sig.ret, &placed.ret);
    crate::scratch::finish(
        u64::from(RECORD.word),
        placed.args,
        placed.ret,
        len,
        0,
        placed.callee_pop,
    )
}

#[cfg(test)]
mod tests;
