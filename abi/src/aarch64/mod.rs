//! aarch64: what is known before its port lands. Classification comes with
//! the port; the record layout is fixed now so that the arch-neutral
//! runtime is checked against it.

use crate::record::RecordLayout;

/// libffi src/aarch64/ffitarget.h:73 (not FFI_EXEC_TRAMPOLINE_TABLE):
/// `#define FFI_TRAMPOLINE_SIZE 24`; :61 `#define FFI_NATIVE_RAW_API 0`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 8,
    tramp_size: 24,
    native_raw_api: false,
};
