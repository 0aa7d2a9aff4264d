//! The `statictramp` command line: argument dispatch and the exit-status
//! convention shared by the subcommands.

mod bench;
mod check;
mod elf;
mod json;
mod library;
mod run;

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
       statictramp bench [--quick] [--out DIR] [--libffi36 PREFIX] [--lib PATH]
                         [--no-callgrind] [--scale N]
       statictramp --version | --help

  run     run CMD with statictramp's closures preloaded (LD_PRELOAD) over
          libffi's; CMD's exit status and signals pass through
            --strict    first make writable+executable memory impossible for
                        CMD (PR_SET_MDWE + a seccomp filter)
            --lib PATH  the preload library to use (default: $STATICTRAMP_LIB,
                        else next to this binary, else ../lib/statictramp)
            --no-preload  run CMD on its own libffi (with --strict: shows
                        what strict mode does to libffi's closures)
  check   describe this machine: page size, map limits, strict mode, the
          trampoline pools, the preload library; call one closure per ABI
            --json      machine-readable output
  bench   build the C driver compat/bench/bench.c and measure libffi's closure
          API on three backends in one run: the system libffi, libffi 3.6
          (static trampolines) and statictramp (preloaded); every result is
          checked, and the numbers are compared with statictramp's targets
            --quick     small counts (about a minute or less), still all checks
            --out DIR   also write DIR/bench.md and DIR/bench.svg
            --libffi36 PREFIX  libffi 3.6 install (default: $STATICTRAMP_LIBFFI36,
                        else target/libffi-3.6 from scripts/build-libffi36)
            --lib PATH  the preload library (found like `run` does)
            --no-callgrind  skip instruction counts (no valgrind needed)
            --scale N   live closures of the big scale run (default 16M;
                        --quick: 100k); suffixes k and M
";

/// Runs the command line `args` (without the program name) and returns the
/// exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return EXIT_USAGE;
    };
    let rest = &args[1..];
    match cmd.to_str() {
        Some("run") => run::main(rest),
        Some("check") => check::main(rest),
        Some("bench") => bench::main(rest),
        // Used by `check` in a child process: arming strict mode is
        // irreversible, so it is probed in a process of its own.
        Some(check::STRICT_PROBE) => check::strict_probe(),
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
