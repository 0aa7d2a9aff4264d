//! `statictramp-bench [--target TRIPLE] [--quick] [--out DIR] [--libffi36 PREFIX]
//! [--lib PATH] [--no-callgrind] [--scale N]`, run by scripts/bench.
//!
//! `--target i686-unknown-linux-gnu` measures 32-bit programs: the driver is
//! built by i686-linux-gnu-gcc against libffi:i386 and run natively, with
//! libffi 3.6 for i686 and the i686 preload library, and one more
//! signature, FFI_REGISTER int(int,int); the report goes to bench-i686.md.
//!
//! Builds the C driver bench.c (embedded in this binary; it uses
//! only libffi's public API) and runs it, in one invocation, against three
//! backends of libffi's closure API:
//!
//! - `system`: the system libffi alone;
//! - `libffi-3.6`: libffi 3.6 with static trampolines, built from the source
//!   vendored in libffi-sys (scripts/build-libffi36), bound through
//!   `LD_LIBRARY_PATH`;
//! - `statictramp`: the preload library over the system libffi.
//!
//! Before measuring, the driver's `info` proves which object serves the
//! closure API in each configuration (and that 3.6's closures really use
//! static trampolines). Timed runs are repeated in rounds that rotate the
//! order of the backends, so that noise hits all of them alike; the best
//! value of all rounds is kept. Instruction counts come from callgrind,
//! collected only inside the driver's `measure_loop`. Every call's result is
//! checked by the driver: a wrong result or a crash fails the command; unmet
//! performance targets do not.

mod arch;
mod backend;
mod callgrind;
mod driver;
mod machine;
mod options;
mod report;
mod results;
mod svg;
mod table;
mod targets;

use arch::Arch;
use backend::{Backend, find_libffi36, verify_info};
use callgrind::valgrind_version;
use driver::{build_driver, compiler};
use machine::machine;
use options::{Options, Plan, USAGE, parse};
use report::Report;
use results::{Res, Scale, min_into};
use statictramp_locate::library;
use std::collections::BTreeMap;

/// The driver's `parts` keys, in `Res::parts_ns` order.
const PARTS: [&str; 4] = [
    "parts_alloc_free",
    "parts_prep",
    "parts_call_same",
    "parts_call_turns",
];
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;
use table::count;

/// The signatures the driver can measure, in its `SIGS` order (each target
/// measures a prefix of them: [`Arch::sigs`]).
#[derive(Debug, PartialEq, Eq)]
struct Sig {
    key: &'static str,
    name: &'static str,
    /// A short label for the chart.
    short: &'static str,
    /// libffi's closures for it crash before 3.5 (3.4.4 crashes on every
    /// FFI_REGISTER closure): not measured on such a system libffi.
    needs_libffi35: bool,
}

const SIGS: [Sig; 7] = [
    Sig {
        key: "v_v",
        name: "void(void)",
        short: "void(void)",
        needs_libffi35: false,
    },
    Sig {
        key: "i_ii",
        name: "int(int,int)",
        short: "int(int,int)",
        needs_libffi35: false,
    },
    Sig {
        key: "d_4d4i",
        name: "double(4 double,4 int)",
        short: "double(4d,4i)",
        needs_libffi35: false,
    },
    Sig {
        key: "s16_s16",
        name: "struct{long,long}(struct{long,long})",
        short: "s16(s16)",
        needs_libffi35: false,
    },
    Sig {
        key: "i_s40",
        name: "int(struct{5 long})",
        short: "int(s40)",
        needs_libffi35: false,
    },
    Sig {
        key: "l_8l4d",
        name: "long(8 long,4 double)",
        short: "long(8l,4d)",
        needs_libffi35: false,
    },
    // i386 only.
    Sig {
        key: "i_ii_reg",
        name: "int(int,int) FFI_REGISTER",
        short: "int(int,int) REG",
        needs_libffi35: true,
    },
];

/// Exit status when the benchmark cannot run or a check fails (the
/// `statictramp` command's convention for errors of its own).
const EXIT_OWN_ERROR: i32 = 125;
/// Wrong usage.
const EXIT_USAGE: i32 = 2;

const MILLION: u64 = 1_000_000;
const SIXTEEN_M: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    System,
    Libffi36,
    Statictramp,
}

const BACKENDS: [Which; 3] = [Which::System, Which::Libffi36, Which::Statictramp];

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::System => "system",
            Which::Libffi36 => "libffi-3.6",
            Which::Statictramp => "statictramp",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The items of `v` in order, starting at `start` (modulo its length) and
/// wrapping around: each round gives another backend the first turn.
fn rotated<T>(v: &[T], start: usize) -> impl Iterator<Item = &T> {
    (0..v.len()).map(move |k| &v[(k + start) % v.len()])
}

/// `create_dir_all`, with the path in the error.
fn create_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The cargo target directory this binary was built in, if it is in one:
/// the parent of the directory that holds it.
fn exe_target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.parent()?.parent().map(Path::to_path_buf)
}

/// Runs one step, printing its name and time on stderr.
fn step<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let t = Instant::now();
    eprint!("statictramp-bench: {what} ...");
    let r = f();
    match &r {
        Ok(_) => eprintln!(" {:.1} s", t.elapsed().as_secs_f64()),
        Err(_) => eprintln!(" failed"),
    }
    r
}

fn measure(o: &Options, cmdline: String) -> Result<Report, (i32, String)> {
    let own = |e: String| (EXIT_OWN_ERROR, e);
    let arch = Arch::find(o.target.as_deref()).map_err(|e| (EXIT_USAGE, e))?;
    let sigs = arch.sigs;
    let plan = Plan::new(o, arch);
    let callgrind = !o.no_callgrind;
    // Everything needed, before anything runs.
    let cc = compiler(arch);
    if callgrind && valgrind_version().is_none() {
        return Err(own(
            "valgrind is not installed (needed for instruction counts): `apt-get install \
             valgrind`, or pass --no-callgrind"
                .into(),
        ));
    }
    let prefix36 = find_libffi36(o.libffi36.as_deref(), arch.libffi36_dir).map_err(own)?;
    let driver = build_driver(&cc, arch, plan.reps).map_err(own)?;
    // The preload library of the driver's ELF class and machine.
    let explicit: Vec<PathBuf> = o.lib.iter().cloned().collect();
    let want = library::target_of(driver.exe()).map(|t| (t, driver.exe()));
    let preload = library::find_for(&explicit, want)
        .map_err(|e| own(format!("{e} (build it with {})", arch.preload_hint)))?
        .path;
    let lib36_version = std::fs::read_to_string(prefix36.join("lib/pkgconfig/libffi.pc"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "?".into());

    let mut backends: Vec<Backend> = BACKENDS
        .iter()
        .map(|&which| Backend {
            which,
            env: match which {
                Which::System => vec![],
                Which::Libffi36 => vec![("LD_LIBRARY_PATH", prefix36.join("lib").into())],
                Which::Statictramp => vec![("LD_PRELOAD", preload.clone().into())],
            },
            info: BTreeMap::new(),
            skip: Vec::new(),
        })
        .collect();
    let fail = |e: String| (1, e);
    step("checking the three backends (info)", || {
        for b in backends.iter_mut() {
            let l = driver.run(b, &["info"])?;
            b.info =
                l.0.iter()
                    .map(|v| (v[0].clone(), v[1..].join(" ")))
                    .collect();
            verify_info(b, &prefix36, &preload)?;
            // A libffi before 3.5 serving the closures (only the system
            // one can be) crashes on some of them: those are not measured.
            let before35 =
                b.info.get("libffi_version").map(String::as_str) == Some("unknown(before-3.5)");
            if b.which == Which::System && before35 {
                b.skip = sigs
                    .iter()
                    .filter(|s| s.needs_libffi35)
                    .map(|s| s.key)
                    .collect();
            }
        }
        Ok(())
    })
    .map_err(fail)?;

    let mut res: Vec<Res> = BACKENDS.iter().map(|_| Res::new(sigs.len())).collect();
    let it = |n: u64| n.to_string();
    for round in 0..plan.rounds {
        step(
            &format!(
                "timing round {}/{}: calls, cycle, its parts, 2 threads",
                round + 1,
                plan.rounds
            ),
            || {
                for b in rotated(&backends, round) {
                    let r = &mut res[b.which.index()];
                    let l = driver.run(b, &["calls", &it(plan.call_iters)])?;
                    min_into(&mut r.call_ns, &l.per_sig("call", sigs, &b.skip)?);
                    min_into(&mut r.floor_ns, &l.per_sig("floor", sigs, &b.skip)?);
                    let l = driver.run(b, &["cycle", &it(plan.cycle_iters)])?;
                    r.cycle_ns = r.cycle_ns.min(l.num("cycle")?);
                    let l = driver.run(b, &["parts", &it(plan.cycle_iters)])?;
                    for (best, key) in r.parts_ns.iter_mut().zip(PARTS) {
                        *best = best.min(l.num(key)?);
                    }
                    let l = driver.run(b, &["threads", "2", &it(plan.thread_iters)])?;
                    let cps = l.num("threads_cycles_per_sec")?;
                    if cps > r.thr_cps {
                        r.thr_cps = cps;
                        r.thr_ns = l.num("threads_ns_per_cycle_per_thread")?;
                    }
                }
                Ok(())
            },
        )
        .map_err(fail)?;
    }

    let mut floor_ir = None;
    if callgrind {
        step("callgrind: instructions per call", || {
            for b in &backends {
                // The backend under valgrind must be the one `info` saw.
                driver.check_under_valgrind(b)?;
                res[b.which.index()].ir = Some(driver.callgrind(b, false, plan.callgrind_iters)?);
            }
            floor_ir = Some(driver.callgrind(&backends[0], true, plan.callgrind_iters)?);
            Ok(())
        })
        .map_err(fail)?;
    }

    for &(n, runs) in &plan.scales {
        for run in 0..runs {
            step(
                &format!("{} live closures, run {}/{runs}", count(n), run + 1),
                || {
                    for b in rotated(&backends, run) {
                        let l = driver.run(b, &["scale", &it(n)])?;
                        let s = Scale::from_lines(n, &l)?;
                        let r = &mut res[b.which.index()];
                        match r.scales.iter_mut().find(|x| x.n == n) {
                            Some(x) => x.merge(s),
                            None => r.scales.push(s),
                        }
                    }
                    Ok(())
                },
            )
            .map_err(fail)?;
        }
    }

    Ok(Report {
        arch,
        command: cmdline,
        quick: o.quick,
        machine: machine(&cc, callgrind),
        plan,
        backends,
        res,
        floor_ir,
        lib36_version,
        callgrind_dir: callgrind.then(|| driver.work.clone()),
    })
}

fn write_out(dir: &Path, rep: &Report) -> Result<(), String> {
    create_dir(dir)?;
    let stem = rep.arch.out_stem;
    for (ext, text) in [("md", rep.markdown()), ("svg", svg::svg(rep))] {
        let p = dir.join(format!("{stem}.{ext}"));
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("statictramp-bench: wrote {}", p.display());
    }
    Ok(())
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(run(&args));
}

fn run(args: &[OsString]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprint!("statictramp-bench: {e}\n\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    if opts.help {
        print!("{USAGE}");
        return 0;
    }
    let mut cmdline = String::from("statictramp-bench");
    for a in args {
        cmdline.push(' ');
        cmdline.push_str(&a.to_string_lossy());
    }
    let started = Instant::now();
    let rep = match measure(&opts, cmdline) {
        Ok(r) => r,
        Err((code, e)) => {
            eprintln!("statictramp-bench: {e}");
            return code;
        }
    };
    print!("{}", rep.text());
    if let Some(dir) = &opts.out {
        if let Err(e) = write_out(dir, &rep) {
            eprintln!("statictramp-bench: {e}");
            return EXIT_OWN_ERROR;
        }
    }
    eprintln!(
        "statictramp-bench: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    0
}

#[cfg(test)]
mod tests {
    use super::driver::Lines;
    use super::options::parse_count;
    use super::svg::axis;
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse(&os(&[
            "--quick",
            "--out",
            "d",
            "--libffi36=/p",
            "--no-callgrind",
            "--scale",
            "16M",
        ]))
        .unwrap();
        assert_eq!(
            o,
            Options {
                help: false,
                target: None,
                quick: true,
                out: Some("d".into()),
                libffi36: Some("/p".into()),
                lib: None,
                no_callgrind: true,
                scale: Some(16_000_000),
            }
        );
        assert!(parse(&os(&["--help"])).unwrap().help);
        assert!(parse(&os(&["--bogus"])).is_err());
        assert!(parse(&os(&["--out"])).is_err());
        assert!(parse(&os(&["--scale", "x"])).is_err());
        assert!(parse(&os(&["--target", "sparc-sun-solaris"])).is_err());
        let o = parse(&os(&["--target", "i686-unknown-linux-gnu"])).unwrap();
        let arch = Arch::find(o.target.as_deref()).unwrap();
        assert_eq!(arch.out_stem, "bench-i686");
        assert_eq!(arch.sigs.len(), 7);
        assert_eq!(arch.sigs[6].key, "i_ii_reg");
        // i686's big scale run is 1 M (three runs), x86_64's 16 M.
        assert_eq!(Plan::new(&o, arch).scales, vec![(MILLION, 3)]);
        let host = Arch::find(None).unwrap();
        assert_eq!(host.sigs.len(), 6);
        assert!(host.sigs.iter().all(|s| !s.needs_libffi35));
        assert_eq!(
            Plan::new(&Options::default(), host).scales.last(),
            Some(&(SIXTEEN_M, 1))
        );
        assert_eq!(host.ir_limit(0).1, "1/2");
        assert_eq!(arch.ir_limit(0).1, "1/3");
        assert_eq!(parse_count("100k"), Some(100_000));
        assert_eq!(parse_count("16777216"), Some(SIXTEEN_M));
        assert_eq!(parse_count("0"), None);
    }

    #[test]
    fn lines_and_axis() {
        let l = Lines::parse("call v_v 1.5\ncall i_ii 2\nscale_made 7\n");
        assert_eq!(l.num("scale_made").unwrap(), 7.0);
        assert!(l.per_sig("call", &SIGS, &[]).is_err()); // not every signature
        let v = l.per_sig("call", &SIGS[..2], &[]).unwrap();
        assert_eq!(v, [1.5, 2.0]);
        let v = l.per_sig("call", &SIGS[..3], &["d_4d4i"]).unwrap();
        assert!(v[2].is_nan());
        assert_eq!(axis(93.0), (100.0, 20.0));
        assert_eq!(axis(335.0), (400.0, 100.0));
        assert_eq!(count(SIXTEEN_M), "16 M");
        assert_eq!(count(MILLION), "1 M");
        assert_eq!(count(100_000), "100 k");
        assert_eq!(count(4_300_000), "4.3 M");
    }
}
