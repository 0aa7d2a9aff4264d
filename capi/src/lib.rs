//! statictramp as a C library: `libstatictramp.so` and `libstatictramp.a`
//! export libffi's closure API (`ffi_closure_alloc`, `ffi_closure_free`,
//! `ffi_prep_closure`, `ffi_prep_closure_loc`, the raw and Java raw
//! variants) and `statictramp_owns_code`.
//!
//! The functions live in the Rust crate (`statictramp::capi`); this crate
//! only turns on their C names (the `capi` feature) and builds the C
//! artefacts, so that Rust users of `statictramp` do not export libffi's
//! symbols by accident. scripts/build-preload links the staticlib into the
//! LD_PRELOAD library with libffi's symbol versions.

pub use runtime::capi::*;
