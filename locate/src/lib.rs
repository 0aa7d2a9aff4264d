//! Finding statictramp's preload library, for the programs that put it in
//! front of others: the `statictramp` command (`run`, `check`) and the
//! benchmark (`statictramp-bench`). Both look in the same places, in the
//! same order, and refuse a library the program could not load.
#![forbid(unsafe_code)]

pub mod elf;
pub mod library;
