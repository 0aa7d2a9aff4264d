//! 32-bit arm (armhf, Linux): what is known before its port lands.
//! Classification comes with the port; the record layout is fixed now so
//! that the arch-neutral runtime is checked against it.

use crate::record::RecordLayout;

/// libffi src/arm/ffitarget.h:84 (not FFI_EXEC_TRAMPOLINE_TABLE, not
/// _WIN32): `#define FFI_TRAMPOLINE_SIZE 12`; :68
/// `#define FFI_NATIVE_RAW_API 0`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 4,
    tramp_size: 12,
    native_raw_api: false,
};
