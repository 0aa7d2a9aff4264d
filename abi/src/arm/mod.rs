//! 32-bit arm (armhf, Linux): what is known before its port lands.
//! Classification comes with the port; the record layout is fixed now so
//! that the arch-neutral runtime is checked against it.

use crate::Kind;
use crate::record::RecordLayout;

/// libffi src/arm/ffitarget.h:84 (not FFI_EXEC_TRAMPOLINE_TABLE, not
/// _WIN32): `#define FFI_TRAMPOLINE_SIZE 12`; :68
/// `#define FFI_NATIVE_RAW_API 0`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 4,
    tramp_size: 12,
    native_raw_api: false,
};

/// The (size, alignment) the AAPCS (armhf) ABI gives a scalar kind (libffi's
/// predefined `ffi_type`s there); `None` for aggregates and void.
pub const fn standard_layout(kind: &Kind) -> Option<(u64, u64)> {
    Some(match kind {
        Kind::U8 | Kind::S8 => (1, 1),
        Kind::U16 | Kind::S16 => (2, 2),
        Kind::U32 | Kind::S32 | Kind::Float | Kind::Pointer => (4, 4),
        Kind::U64 | Kind::S64 | Kind::Double => (8, 8),
        // AAPCS: long double is double.
        Kind::LongDouble => (8, 8),
        Kind::Void | Kind::Struct(_) | Kind::Complex(_) => return None,
    })
}
