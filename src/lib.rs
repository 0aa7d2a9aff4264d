//! statictramp: libffi's closure API on static trampoline tables.
//!
//! Trampoline code comes from the library image (or copies of its template
//! mapped from the file or a sealed memfd) and is never writable; the data
//! each slot loads lives in pages that are never executable. No memory is
//! ever writable and executable at once, not even through a second mapping.
//!
//! Three ways in:
//! - the C exports of [`capi`] (`ffi_closure_alloc`, `ffi_prep_closure_loc`, ...),
//!   exported under libffi's names only with the `capi` feature: the C
//!   library crate `statictramp-capi` (libstatictramp.so / .a) turns it on;
//!   used through `LD_PRELOAD` or by linking the staticlib ahead of `-lffi`;
//! - the safe Rust API [`Closure`], which needs no libffi;
//! - the `statictramp` command (package `statictramp-cli` of the workspace),
//!   which runs programs with the preload library, optionally in strict W^X
//!   mode.
//!
//! Unsafe code is confined to the modules that map memory, talk to the
//! assembly or export C symbols; each says why its unsafe code is sound.
#![deny(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!("statictramp supports Linux only (so far)");

mod arch;
pub mod cif;
pub mod closure;
mod dispatch;
mod foreign;
pub(crate) mod fork;
pub mod layout;
mod lock;
mod map;
pub mod owner;
pub mod plan;
mod pool;
pub mod quarantine;
mod raw;
pub mod record;
mod rust_api;
mod slab;
mod stats;
pub mod table;
mod thread_cache;
mod thread_state;
mod tls_word;
pub mod types;

pub mod capi;

pub use map::{Source as TemplateSource, current_source as template_source, page_size};
pub use rust_api::{Args, Closure, Error, Ret, Scalar};
pub use statictramp_abi::{Abi, Kind, Signature, Type};

/// libffi's `FFI_DEFAULT_ABI` on this architecture.
pub const DEFAULT_ABI: Abi = arch::DEFAULT_ABI;
