//! What the runtime needs per architecture, one module each; nothing else
//! in the runtime names an architecture, a register or a pointer width.
//!
//! Every architecture module provides:
//!
//! - `ARCH` (libffi's ABI numbering, statictramp-abi) and `RECORD` (the
//!   `ffi_closure` layout and our header in it, const-checked in
//!   statictramp-abi for every architecture);
//! - `DEFAULT_ABI`: libffi's `FFI_DEFAULT_ABI` there (scalar layouts come
//!   from `ARCH.scalar_layout`);
//! - `EntryData` (`#[repr(C)]`, what the assembly entries read from a
//!   compiled plan at the `PLAN_*` offsets of its layout.h), `EntryKind`
//!   (the entries, with `address()`), and `select_entry(sig, plan,
//!   generic)` (`generic`: an entry that calls the Rust dispatcher, which
//!   raw closures of a native raw API need);
//! - `FRAME_STACK_ARGS`, `FRAME_RET_BUF_PTR`: the two frame offsets the
//!   generic dispatcher needs besides the Plan's own;
//! - `tls`: `thread_pointer()`, `descriptor_offset()` (this thread's
//!   state word's offset from it, through the TLS descriptor) and
//!   `first_access()` (that offset, and whether it is the same in every
//!   thread), around which src/tls_word.rs caches the offset;
//! - `classic_trampoline(header)`: the `tramp[]` bytes for closures on
//!   foreign memory, and `sync_code(data, code, len)`, which makes such
//!   freshly written instructions visible to instruction fetch (at the
//!   written address and the caller's executable alias; libffi's arm and
//!   aarch64 ports clear the cache there).
//!
//! A port adds `asm/<arch>/` (with a layout.h defining the shared names
//! build.rs turns into `crate::layout`), `abi/src/<arch>/`, a module here,
//! and one line in build.rs's table (docs/design.md, "Porting").

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(target_arch = "x86")]
mod i386;
#[cfg(target_arch = "x86")]
pub use i386::*;

#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
compile_error!("statictramp has no port for this architecture yet (src/arch/)");
