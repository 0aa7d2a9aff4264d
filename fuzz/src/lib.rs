//! The differential fuzzer's parts, shared by its two runners: the
//! deterministic one (`statictramp-difffuzz`, src/main.rs) and the
//! libFuzzer target (`fuzz_targets/difffuzz_case.rs`).
//!
//! - source.rs: where the generator's decisions come from (a seeded
//!   generator, or a fuzzer input's bytes);
//! - generate.rs: signatures and values of a case; ctypes.rs: structs as
//!   ctypes states them;
//! - libffi.rs: the caller's libffi, dlopened;
//! - runner.rs: one case through statictramp's closures and libffi's own.
#![allow(unsafe_code)]

pub mod ctypes;
pub mod generate;
pub mod libffi;
pub mod runner;
pub mod source;
