//! x86_64 conventions: System V (libffi `FFI_UNIX64`) and Microsoft x64
//! (`FFI_WIN64`/`FFI_EFI64`, `FFI_GNUW64`).

pub mod frame;
pub mod sysv;
pub mod win64;
