//! i386 (x86-32): what is known before its port lands. Classification of
//! its conventions comes with the port; the record layout is fixed now so
//! that the arch-neutral runtime is checked against it.

use crate::record::RecordLayout;

/// libffi src/x86/ffitarget.h:150-151 (not X86_64):
/// `#define FFI_TRAMPOLINE_SIZE 16`, `#define FFI_NATIVE_RAW_API 1`.
pub const RECORD: RecordLayout = RecordLayout {
    word: 4,
    tramp_size: 16,
    native_raw_api: true,
};
