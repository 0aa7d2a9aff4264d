//! `statictramp`: run programs on statictramp, and check this machine.
//!
//! ```text
//! statictramp run [--strict] [--lib PATH] [--] CMD [ARGS...]
//! statictramp check [--json]
//! ```
//!
//! `run` puts the preload library (libffi's closure API on static
//! trampolines) in front of CMD with `LD_PRELOAD`, optionally arms strict W^X
//! mode (strict.rs), and then *becomes* CMD with execve, so CMD's exit
//! status and signals are the command's own. Errors of our own exit with 125
//! (like `env`/`timeout`), a command that cannot be executed with 126, one
//! that is not found with 127.
//!
//! `check` describes what statictramp finds on this machine and calls one
//! closure per ABI; it exits 1 if any check failed.
//!
//! This file holds the argument dispatch and the exit-status convention
//! shared by the subcommands. The benchmark is a program of its own
//! (`statictramp-bench`, bench/ in the workspace).

mod check;
mod json;
mod landlock;
mod mixed;
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
mod routes;
mod run;
mod strict;

use std::ffi::OsString;

/// Exit status for errors of statictramp itself (not of the command run).
pub const EXIT_OWN_ERROR: i32 = 125;
/// The command exists but cannot be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Wrong usage.
pub const EXIT_USAGE: i32 = 2;

const USAGE: &str = "\
usage: statictramp run [--strict] [--lib PATH | --no-preload] [--] CMD [ARGS...]
       statictramp check [--json]
       statictramp --version | --help

  run     run CMD with statictramp's closures preloaded (LD_PRELOAD) over
          libffi's; CMD's exit status and signals pass through
            --strict    first make writable+executable memory impossible for
                        CMD (PR_SET_MDWE + a seccomp filter)
            --lib PATH  the preload library to use (default: $STATICTRAMP_LIB,
                        else next to this binary, else ../lib/statictramp);
                        give it once per word size: the one of CMD's
                        ELF class (32-bit or 64-bit) is used
            --no-preload  run CMD on its own libffi (with --strict: shows
                        what strict mode does to libffi's closures)
  check   describe this machine: page size, map limits, strict mode, the
          trampoline pools, the preload library; call one closure per ABI
            --json      machine-readable output
";

fn main() {
    std::process::exit(dispatch(std::env::args_os().skip(1).collect()));
}

/// Runs the command line `args` (without the program name) and returns the
/// exit status.
fn dispatch(args: Vec<OsString>) -> i32 {
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return EXIT_USAGE;
    };
    let rest = &args[1..];
    match cmd.to_str() {
        Some("run") => run::main(rest),
        Some("check") => check::main(rest),
        // Used by `check` in a child process: arming strict mode is
        // irreversible, so it is probed in a process of its own.
        Some(check::STRICT_PROBE) => check::strict_probe(),
        // A copy of this program, executed by a code route of the strict
        // probe, proves it ran.
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        Some(routes::EXIT_ROUTE) => routes::EXIT_MARK,
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            0
        }
        Some("-V" | "--version") => {
            println!("statictramp {}", env!("CARGO_PKG_VERSION"));
            0
        }
        _ => {
            eprintln!("statictramp: unknown command {:?}\n", cmd);
            eprint!("{USAGE}");
            EXIT_USAGE
        }
    }
}
