//! `statictramp`: run programs on statictramp, and check this machine.
//!
//! ```text
//! statictramp run [--strict] [--lib PATH] [--] CMD [ARGS...]
//! statictramp check [--json]
//! ```
//!
//! `run` puts the preload library (libffi's closure API on static
//! trampolines) in front of CMD with `LD_PRELOAD`, optionally arms strict W^X
//! mode (src/strict.rs), and then *becomes* CMD with execve, so CMD's exit
//! status and signals are the command's own. Errors of our own exit with 125
//! (like `env`/`timeout`), a command that cannot be executed with 126, one
//! that is not found with 127.
//!
//! `check` describes what statictramp finds on this machine and calls one
//! closure per ABI; it exits 1 if any check failed.

// The binary's modules live outside src/bin (every file there would be a
// binary of its own) and outside the library (libseccomp must stay out of
// the cdylib and staticlib).
#[path = "../strict.rs"]
mod strict;

#[path = "../cli/mod.rs"]
mod cli;

fn main() {
    std::process::exit(cli::main(std::env::args_os().skip(1).collect()));
}
