//! The command line of `statictramp-bench`, and how much it runs.

use super::MILLION;
use super::arch::Arch;
use std::ffi::OsString;
use std::path::PathBuf;

pub(super) const USAGE: &str = "\
usage: statictramp-bench [--target TRIPLE] [--quick] [--out DIR]
                         [--libffi36 PREFIX] [--lib PATH] [--no-callgrind]
                         [--scale N]
       statictramp-bench --help

Builds the C driver bench/bench.c and measures libffi's closure API on three
backends in one run: the system libffi, libffi 3.6 (static trampolines) and
statictramp (preloaded); every result is checked, and the numbers are
compared with statictramp's targets. scripts/bench builds what it needs and
runs it with --out docs.

  --target TRIPLE  x86_64-unknown-linux-gnu (default) or
              i686-unknown-linux-gnu: 32-bit programs, run natively (the
              driver built by $CC_i686_unknown_linux_gnu, default
              i686-linux-gnu-gcc, against libffi:i386; one more signature,
              FFI_REGISTER int(int,int))
  --quick     small counts (about a minute or less), still all checks
  --out DIR   also write DIR/bench.md and DIR/bench.svg (i686:
              DIR/bench-i686.md and DIR/bench-i686.svg)
  --libffi36 PREFIX  libffi 3.6 install for the target (default:
              $STATICTRAMP_LIBFFI36, else target/libffi-3.6, i686:
              target/libffi-3.6-i686, from scripts/build-libffi36)
  --lib PATH  the preload library of the target's word size (default:
              $STATICTRAMP_LIB, else next to this binary, else
              ../lib/statictramp; as `statictramp run`)
  --no-callgrind  skip instruction counts (no valgrind needed)
  --scale N   live closures of the big scale run (default 16M, i686: 1M;
              --quick: 100k); suffixes k and M
";

/// The parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Options {
    pub(super) help: bool,
    /// The target triple (`None`: the host's).
    pub(super) target: Option<String>,
    pub(super) quick: bool,
    pub(super) out: Option<PathBuf>,
    pub(super) libffi36: Option<PathBuf>,
    pub(super) lib: Option<PathBuf>,
    pub(super) no_callgrind: bool,
    pub(super) scale: Option<u64>,
}

/// `16M`, `100k`, `1000000`.
pub(super) fn parse_count(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1_000),
        b'M' | b'm' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    let n: u64 = digits.replace('_', "").parse().ok()?;
    n.checked_mul(mult).filter(|&n| n > 0)
}

pub(super) fn parse(args: &[OsString]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    let text = |a: &OsString| {
        a.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("argument {a:?} is not UTF-8"))
    };
    while i < args.len() {
        let a = text(&args[i])?;
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            i += 1;
            args.get(i)
                .map(text)
                .transpose()?
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "-h" | "--help" => o.help = true,
            "--quick" => o.quick = true,
            "--no-callgrind" => o.no_callgrind = true,
            "--target" => {
                let t = value("a target triple")?;
                Arch::find(Some(&t))?;
                o.target = Some(t);
            }
            "--out" => o.out = Some(value("a directory")?.into()),
            "--libffi36" => o.libffi36 = Some(value("a prefix")?.into()),
            "--lib" => o.lib = Some(value("a path")?.into()),
            "--scale" => {
                let v = value("a count")?;
                o.scale = Some(parse_count(&v).ok_or_else(|| format!("--scale: bad count {v:?}"))?);
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
        i += 1;
    }
    Ok(o)
}

/// How much to run.
pub(super) struct Plan {
    /// Timing rounds; each runs every backend once, in rotating order.
    pub(super) rounds: usize,
    /// Timed repetitions inside one driver process (BENCH_REPS).
    pub(super) reps: u32,
    pub(super) call_iters: u64,
    pub(super) cycle_iters: u64,
    pub(super) thread_iters: u64,
    pub(super) callgrind_iters: u64,
    /// (live closures, rounds)
    pub(super) scales: Vec<(u64, usize)>,
}

impl Plan {
    pub(super) fn new(o: &Options, arch: &Arch) -> Plan {
        if o.quick {
            return Plan {
                rounds: 2,
                reps: 3,
                call_iters: 200_000,
                cycle_iters: 50_000,
                thread_iters: 50_000,
                callgrind_iters: 20_000,
                scales: vec![(o.scale.unwrap_or(100_000), 1)],
            };
        }
        let big = o.scale.unwrap_or(arch.big_scale);
        let scales = if big <= MILLION {
            vec![(big, 3)]
        } else {
            vec![(MILLION, 3), (big, 1)]
        };
        Plan {
            rounds: 5,
            reps: 3,
            call_iters: 2_000_000,
            cycle_iters: 500_000,
            thread_iters: 500_000,
            callgrind_iters: 200_000,
            scales,
        }
    }
}
