//! x86_64 conventions: System V (libffi `FFI_UNIX64`) and Microsoft x64
//! (`FFI_WIN64`/`FFI_EFI64`, `FFI_GNUW64`).

pub mod frame;
pub mod sysv;
pub mod win64;

use crate::record::RecordLayout;
use crate::{Abi, ArgLoc, ClassifyError, Kind, Plan, RetLoc, Type};

/// libffi src/x86/ffitarget.h:145-146 (X86_64):
/// `#define FFI_TRAMPOLINE_SIZE 32`, `#define FFI_NATIVE_RAW_API 0`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 8,
    tramp_size: 32,
    native_raw_api: false,
};

/// The constants asm/x86_64/layout.h must define with exactly these
/// values besides the record's ([`RecordLayout::asm_constants`] of
/// [`RECORD`]; build.rs checks both before assembling): the entries'
/// register frame ([`frame`]) and the dispatcher's return codes
/// ([`crate::RetKind`]).
pub const ASM_CONSTANTS: &[(&str, u64)] = &[
    ("FRAME_GPR", frame::GPR as u64),
    ("FRAME_SSE", frame::SSE as u64),
    ("FRAME_RET_RAX", frame::RET_RAX as u64),
    ("FRAME_RET_RDX", frame::RET_RDX as u64),
    ("FRAME_RET_XMM0", frame::RET_XMM0 as u64),
    ("FRAME_RET_XMM1", frame::RET_XMM1 as u64),
    ("FRAME_STACK_PTR", frame::STACK_PTR as u64),
    ("FRAME_SIZE", frame::FRAME_SIZE as u64),
    ("RET_KIND_REGS", crate::RetKind::Regs as u64),
    ("RET_KIND_X87", crate::RetKind::X87 as u64),
    ("RET_KIND_X87_PAIR", crate::RetKind::X87Pair as u64),
];

/// Maps libffi's x86_64 `ffi_abi` numbering (src/x86/ffitarget.h,
/// non-Windows hosts: `FFI_FIRST_ABI = 1, FFI_UNIX64 = 2, FFI_WIN64 =
/// FFI_EFI64 = 3, FFI_GNUW64 = 4, FFI_LAST_ABI = 5`).
pub fn abi_from_ffi(abi: u32) -> Option<Abi> {
    match abi {
        2 => Some(Abi::SysV64),
        3 => Some(Abi::Win64),
        4 => Some(Abi::GnuW64),
        _ => None,
    }
}

/// The (size, alignment) every x86_64 ABI gives a scalar kind (libffi's
/// predefined `ffi_type`s there); `None` for aggregates and void.
pub const fn standard_layout(kind: &Kind) -> Option<(u64, u64)> {
    Some(match kind {
        Kind::U8 | Kind::S8 => (1, 1),
        Kind::U16 | Kind::S16 => (2, 2),
        Kind::U32 | Kind::S32 | Kind::Float => (4, 4),
        Kind::U64 | Kind::S64 | Kind::Double | Kind::Pointer => (8, 8),
        Kind::LongDouble => (16, 16),
        Kind::Void | Kind::Struct(_) | Kind::Complex(_) => return None,
    })
}

/// Validates the return type and every argument type, then checks the
/// x86_64 scalar layouts ([`crate::check::check_signature`] with
/// [`standard_layout`]). A `void` argument is refused with
/// [`ClassifyError::Unsupported`]`("void argument")`.
pub(crate) fn check_signature(args: &[Type], ret: &Type) -> Result<(), ClassifyError> {
    crate::check::check_signature(args, ret, standard_layout)
}

/// Size of the return buffer: at least 32 bytes (a `_Complex long double`,
/// and never less than an `ffi_arg`), else the value rounded up to 16.
pub(crate) fn ret_buf_len(ret: &Type, loc: &RetLoc) -> u64 {
    match loc {
        RetLoc::Regs(_) | RetLoc::X87 | RetLoc::X87Pair | RetLoc::X87Float | RetLoc::X87Double => {
            ret.size.next_multiple_of(16).max(32)
        }
        RetLoc::Void | RetLoc::Memory { .. } | RetLoc::MemoryStack { .. } => 32,
    }
}

/// Lays out scratch and assembles the [`Plan`] ([`crate::scratch::finish`]):
/// `avalue[]` at 0 (8 bytes per argument), `ngather` 16-byte gather areas
/// right after it (their offsets, [`gather_dst`], are already in `args`),
/// then the 16-aligned return buffer. No x86_64 callee pops anything.
pub(crate) fn finish(
    args: Vec<ArgLoc>,
    ret: RetLoc,
    ret_ty: &Type,
    ngather: u64,
) -> Result<Plan, ClassifyError> {
    let len = ret_buf_len(ret_ty, &ret);
    crate::scratch::finish(u64::from(RECORD.word), args, ret, len, ngather, 0)
}

/// Scratch offset of gather area `g` for a signature with `nargs` arguments.
pub(crate) fn gather_dst(nargs: usize, g: u64) -> Result<u32, ClassifyError> {
    crate::scratch::gather_dst(u64::from(RECORD.word), nargs, g)
}

pub(crate) use crate::scratch::to_u32;

/// Zero/sign extension for a scalar returned in a register: `Sign` for the
/// signed kinds narrower than a register, `Zero` for everything else (a
/// full 8-byte value needs no extension).
pub(crate) fn int_ext(kind: &Kind) -> crate::Ext {
    match kind {
        Kind::S8 | Kind::S16 | Kind::S32 => crate::Ext::Sign,
        _ => crate::Ext::Zero,
    }
}

/// Shorthands shared by the classifier tests.
#[cfg(test)]
pub(crate) mod test_types {
    use crate::Type;

    /// A struct of `elems` (panics on a malformed one).
    pub fn st(elems: Vec<Type>) -> Type {
        Type::structure(elems).unwrap()
    }

    /// `_Complex t`.
    pub fn cx(t: Type) -> Type {
        Type::complex(t).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TypeError;

    fn check_standard(t: &Type) -> Result<(), ClassifyError> {
        crate::check::check_standard(t, standard_layout)
    }

    #[test]
    fn nonstandard_scalar_is_bad_type() {
        let odd = Type {
            kind: Kind::U8,
            size: 3,
            align: 1,
        };
        assert_eq!(
            check_standard(&odd),
            Err(ClassifyError::BadType(TypeError::LayoutMismatch {
                stated_size: 3,
                stated_align: 1,
                size: 1,
                align: 1
            }))
        );
        // Inside a struct too.
        let s = Type::structure(vec![
            Type::U32,
            Type {
                kind: Kind::Double,
                size: 8,
                align: 4,
            },
        ])
        .unwrap();
        assert!(matches!(check_standard(&s), Err(ClassifyError::BadType(_))));
        // A complex whose size is not twice its element.
        let c = Type {
            kind: Kind::Complex(Box::new(Type::FLOAT)),
            size: 4,
            align: 4,
        };
        assert!(matches!(check_standard(&c), Err(ClassifyError::BadType(_))));
        assert_eq!(
            check_standard(&Type::complex(Type::LONGDOUBLE).unwrap()),
            Ok(())
        );
        assert_eq!(check_standard(&Type::VOID), Ok(()));
    }

    #[test]
    fn void_argument_refused() {
        assert_eq!(
            check_signature(&[Type::S32, Type::VOID], &Type::VOID),
            Err(ClassifyError::Unsupported("void argument"))
        );
    }

    #[test]
    fn invalid_types_are_bad_type() {
        // What libffi's ffi_type_test asserts of argument and return types:
        // nonzero size and alignment (src/debug.c:55-56).
        let empty = Type {
            kind: Kind::Struct(vec![]),
            size: 0,
            align: 1,
        };
        assert_eq!(
            check_signature(std::slice::from_ref(&empty), &Type::VOID),
            Err(ClassifyError::BadType(TypeError::ZeroSize))
        );
        assert_eq!(
            check_signature(&[], &empty),
            Err(ClassifyError::BadType(TypeError::ZeroSize))
        );
        let align0 = Type {
            kind: Kind::Struct(vec![Type::U8]),
            size: 1,
            align: 0,
        };
        assert_eq!(
            check_signature(&[align0], &Type::VOID),
            Err(ClassifyError::BadType(TypeError::BadAlign(0)))
        );
        // Alignment not a power of two, at any depth.
        let align3 = Type {
            kind: Kind::Struct(vec![Type::U8; 3]),
            size: 3,
            align: 3,
        };
        assert_eq!(
            check_signature(&[], &align3),
            Err(ClassifyError::BadType(TypeError::BadAlign(3)))
        );
        let nested = Type::aggregate(vec![Type::U32], 4, 4).unwrap();
        let nested_bad = Type {
            kind: Kind::Struct(vec![Type::U8, align3]),
            size: 4,
            align: 1,
        };
        assert!(check_signature(&[nested], &Type::VOID).is_ok());
        assert_eq!(
            check_signature(&[nested_bad], &Type::VOID),
            Err(ClassifyError::BadType(TypeError::BadAlign(3)))
        );
        // Too large, too deep.
        let huge = Type {
            kind: Kind::Struct(vec![Type::U8]),
            size: crate::types::MAX_SIZE + 1,
            align: 1,
        };
        assert!(matches!(
            check_signature(&[huge], &Type::VOID),
            Err(ClassifyError::BadType(TypeError::TooLarge(_)))
        ));
        let mut deep = Type::U8;
        for _ in 0..=crate::types::MAX_DEPTH {
            deep = Type {
                kind: Kind::Struct(vec![deep]),
                size: 1,
                align: 1,
            };
        }
        assert_eq!(
            check_signature(&[deep], &Type::VOID),
            Err(ClassifyError::BadType(TypeError::TooDeep))
        );
    }

    #[test]
    fn stated_layouts_are_accepted() {
        // libffi takes a struct's nonzero size and alignment as stated
        // (ffi_prep_cif lays out only structs of size 0): smaller or larger
        // than the elements' C layout, and elements of size 0, alignment 0
        // or type void (a ctypes Structure without _fields_).
        let zeroed_void = Type {
            kind: Kind::Void,
            size: 0,
            align: 0,
        };
        let empty = Type::aggregate(vec![], 0, 1);
        assert_eq!(empty, Err(TypeError::ZeroSize));
        let nested_empty = Type {
            kind: Kind::Struct(vec![]),
            size: 0,
            align: 1,
        };
        for t in [
            Type::aggregate(vec![Type::U8, Type::S32, Type::DOUBLE], 13, 1).unwrap(),
            Type::aggregate(vec![Type::S32, Type::DOUBLE], 8, 8).unwrap(),
            Type::aggregate(vec![Type::U32; 3], 4, 4).unwrap(),
            Type::aggregate(vec![Type::U8], 64, 32).unwrap(),
            Type::aggregate(vec![zeroed_void.clone(), Type::S32], 4, 4).unwrap(),
            Type::aggregate(vec![nested_empty.clone(), Type::S32], 4, 4).unwrap(),
            Type::aggregate(vec![Type::VOID], 8, 8).unwrap(),
            Type::aggregate(vec![], 8, 8).unwrap(),
        ] {
            assert_eq!(
                check_signature(std::slice::from_ref(&t), &t),
                Ok(()),
                "{t:?}"
            );
        }
    }
}
