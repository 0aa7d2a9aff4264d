//! i386 (x86-32): what is known before its port lands. Classification of
//! its conventions comes with the port; the record layout is fixed now so
//! that the arch-neutral runtime is checked against it.

use crate::Kind;
use crate::record::RecordLayout;

/// libffi src/x86/ffitarget.h:150-151 (not X86_64):
/// `#define FFI_TRAMPOLINE_SIZE 16`, `#define FFI_NATIVE_RAW_API 1`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 4,
    tramp_size: 16,
    native_raw_api: true,
};

/// The (size, alignment) the i386 System V ABI gives a scalar kind (libffi's
/// predefined `ffi_type`s there); `None` for aggregates and void.
pub fn standard_layout(kind: &Kind) -> Option<(u64, u64)> {
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
