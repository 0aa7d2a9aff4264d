//! aarch64: what is known before its port lands. Classification comes with
//! the port; the record layout is fixed now so that the arch-neutral
//! runtime is checked against it.

use crate::Kind;
use crate::record::RecordLayout;

/// libffi src/aarch64/ffitarget.h:73 (not FFI_EXEC_TRAMPOLINE_TABLE):
/// `#define FFI_TRAMPOLINE_SIZE 24`; :61 `#define FFI_NATIVE_RAW_API 0`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 8,
    tramp_size: 24,
    native_raw_api: false,
};

/// The (size, alignment) the AAPCS64 (Linux) ABI gives a scalar kind (libffi's
/// predefined `ffi_type`s there); `None` for aggregates and void.
pub const fn standard_layout(kind: &Kind) -> Option<(u64, u64)> {
    Some(match kind {
        Kind::U8 | Kind::S8 => (1, 1),
        Kind::U16 | Kind::S16 => (2, 2),
        Kind::U32 | Kind::S32 | Kind::Float => (4, 4),
        Kind::U64 | Kind::S64 | Kind::Double | Kind::Pointer => (8, 8),
        // IEEE binary128 on Linux.
        Kind::LongDouble => (16, 16),
        Kind::Void | Kind::Struct(_) | Kind::Complex(_) => return None,
    })
}
