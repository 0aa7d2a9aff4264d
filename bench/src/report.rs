//! The report: its tables, printed as text and written as Markdown.

use super::arch::Arch;
use super::backend::Backend;
use super::options::Plan;
use super::results::{Res, Scale, ScaleMetric, min_into};
use super::table::{Table, count, num, ratio};
use super::{BACKENDS, Which};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The head of a table with one column per backend and their ratios to
/// libffi 3.6.
const BACKEND_HEAD: [&str; 6] = [
    "metric",
    "system",
    "libffi-3.6",
    "statictramp",
    "system/3.6",
    "statictramp/3.6",
];

/// A row of a `BACKEND_HEAD` table: `v` in `BACKENDS` order, then system
/// and statictramp as ratios to libffi 3.6.
fn backend_row(what: &str, v: &[f64]) -> Vec<String> {
    vec![
        what.to_string(),
        num(v[0]),
        num(v[1]),
        num(v[2]),
        ratio(v[0], v[1]),
        ratio(v[2], v[1]),
    ]
}

pub(super) struct Report {
    pub(super) arch: &'static Arch,
    pub(super) command: String,
    pub(super) quick: bool,
    pub(super) plan: Plan,
    pub(super) machine: Vec<(String, String)>,
    pub(super) backends: Vec<Backend>,
    pub(super) res: Vec<Res>,
    pub(super) floor_ir: Option<Vec<f64>>,
    pub(super) lib36_version: String,
    pub(super) callgrind_dir: Option<PathBuf>,
}

impl Report {
    pub(super) fn r(&self, w: Which) -> &Res {
        &self.res[w.index()]
    }

    /// Instructions per call of backend `w` (NaN where not measured).
    pub(super) fn ir(&self, w: Which) -> Vec<f64> {
        self.r(w)
            .ir
            .clone()
            .unwrap_or_else(|| vec![f64::NAN; self.arch.sigs.len()])
    }

    /// The floor (handler called directly), best of all processes.
    pub(super) fn floor_ns(&self) -> Vec<f64> {
        let mut f = vec![f64::INFINITY; self.arch.sigs.len()];
        for r in &self.res {
            min_into(&mut f, &r.floor_ns);
        }
        f
    }

    fn backend_table(&self) -> Table {
        let mut t = Table::new(
            "Backends",
            "What the driver's `info` found in each configuration (checked before measuring).",
            &[
                "backend",
                "closure API from",
                "libffi (ffi_prep_cif)",
                "trampolines",
                "closure code in",
            ],
        );
        for b in &self.backends {
            let g = |k: &str| b.info.get(k).map_or_else(|| "?".into(), |v| relative(v));
            let mut tramp = g("trampoline");
            if b.which == Which::Libffi36 {
                tramp.push_str(&format!(
                    " (libffi {}, ffi_get_version() says {})",
                    self.lib36_version,
                    g("libffi_version")
                ));
            }
            t.row(vec![
                b.which.name().into(),
                g("closure_api_provider"),
                g("libffi"),
                tramp,
                g("code_map"),
            ]);
        }
        t
    }

    fn ns_table(&self) -> Table {
        let p = &self.plan;
        let mut t = Table::new(
            "ns per call",
            format!(
                "Typed direct call through the closure's code pointer, {} calls per timed run, \
                 best of {} runs x {} rounds (backends interleaved). floor = the same handler \
                 called directly with a prebuilt avalue[]; net = call - floor. Ratios are to \
                 libffi 3.6.",
                p.call_iters, p.reps, p.rounds
            ),
            &[
                "signature",
                "floor",
                "system",
                "libffi-3.6",
                "statictramp",
                "system/3.6",
                "statictramp/3.6",
                "statictramp/3.6 net",
            ],
        );
        let f = self.floor_ns();
        let (a, b, c) = (
            self.r(Which::System),
            self.r(Which::Libffi36),
            self.r(Which::Statictramp),
        );
        for (k, s) in self.arch.sigs.iter().enumerate() {
            t.row(vec![
                s.name.into(),
                num(f[k]),
                num(a.call_ns[k]),
                num(b.call_ns[k]),
                num(c.call_ns[k]),
                ratio(a.call_ns[k], b.call_ns[k]),
                ratio(c.call_ns[k], b.call_ns[k]),
                ratio(c.call_ns[k] - f[k], b.call_ns[k] - f[k]),
            ]);
        }
        t
    }

    fn ir_table(&self) -> Option<Table> {
        let fl = self.floor_ir.as_ref()?;
        let (a, b, c) = (
            self.ir(Which::System),
            self.ir(Which::Libffi36),
            self.ir(Which::Statictramp),
        );
        let mut t = Table::new(
            "Instructions per call (callgrind)",
            format!(
                "valgrind --tool=callgrind --toggle-collect=measure_loop: instructions executed \
                 in the driver's call loop, divided by the {} calls (loop, argument setup and \
                 handler included). floor = the same loop calling the handler directly with a \
                 prebuilt avalue[]; net = total - floor: what the closure mechanism costs.",
                self.plan.callgrind_iters
            ),
            &[
                "signature",
                "floor",
                "system",
                "libffi-3.6",
                "statictramp",
                "system net",
                "libffi-3.6 net",
                "statictramp net",
                "statictramp/3.6",
                "statictramp/3.6 net",
            ],
        );
        for (k, s) in self.arch.sigs.iter().enumerate() {
            t.row(vec![
                s.name.into(),
                num(fl[k]),
                num(a[k]),
                num(b[k]),
                num(c[k]),
                num(a[k] - fl[k]),
                num(b[k] - fl[k]),
                num(c[k] - fl[k]),
                ratio(c[k], b[k]),
                ratio(c[k] - fl[k], b[k] - fl[k]),
            ]);
        }
        Some(t)
    }

    fn cycle_table(&self) -> Table {
        let p = &self.plan;
        let mut t = Table::new(
            "Allocate, prepare, call, free",
            format!(
                "ffi_closure_alloc + ffi_prep_closure_loc + one call + ffi_closure_free, \
                 int(int,int): {} cycles per timed run, best of {} runs x {} rounds; 2 threads: \
                 {} cycles each, best of {} rounds. The parts are timed alone in loops of as many: \
                 alloc+free; prep of one closure again and again; calls through one closure; calls \
                 through 65 closures in turn, the order in which the cycle meets code addresses \
                 when freed closures come back first-in first-out after 64 newer frees \
                 (statictramp's quarantine; branch predictors learn a period of 65 only partly).",
                p.cycle_iters, p.reps, p.rounds, p.thread_iters, p.rounds
            ),
            &BACKEND_HEAD,
        );
        let row = |what: &str, f: &dyn Fn(&Res) -> f64| {
            let v: Vec<f64> = BACKENDS.iter().map(|&w| f(self.r(w))).collect();
            backend_row(what, &v)
        };
        t.row(row("cycle ns", &|r| r.cycle_ns));
        for (i, what) in [
            "parts, each alone: alloc+free ns",
            "parts: prep ns (one closure, again)",
            "parts: call ns (one closure)",
            "parts: call ns (65 closures in turn)",
        ]
        .into_iter()
        .enumerate()
        {
            t.row(row(what, &|r| r.parts_ns[i]));
        }
        t.row(row("2 threads: cycles per second (total)", &|r| r.thr_cps));
        t.row(row("2 threads: ns per cycle per thread", &|r| r.thr_ns));
        t
    }

    fn scale_tables(&self) -> Vec<Table> {
        let mut out = Vec::new();
        for (k, &(n, runs)) in self.plan.scales.iter().enumerate() {
            let mut t = Table::new(
                format!("{} live closures", count(n)),
                format!(
                    "Allocate and prepare {n} closures (int(int) each, with its own user_data), \
                     keep them alive, call each once (results checked), free them all. VMAs and \
                     RSS: /proc/self/maps lines and /proc/self/status before and with the \
                     closures alive.{}",
                    if runs > 1 {
                        format!(" Times: best of {runs} runs.")
                    } else {
                        String::new()
                    }
                ),
                &BACKEND_HEAD,
            );
            let s: Vec<&Scale> = BACKENDS.iter().map(|&w| &self.r(w).scales[k]).collect();
            let made: Vec<String> = s
                .iter()
                .map(|s| match &s.stopped {
                    Some(_) => format!("{} (stopped)", s.made),
                    None => s.made.to_string(),
                })
                .collect();
            for (w, s) in BACKENDS.iter().zip(&s) {
                if let Some(why) = &s.stopped {
                    let _ = write!(
                        t.note,
                        " {} stopped at {} closures: {}{}.",
                        w.name(),
                        s.made,
                        why_short(why),
                        if s.map_limit {
                            " (the process reached vm.max_map_count)"
                        } else {
                            ""
                        }
                    );
                }
            }
            t.row(vec![
                "closures made".into(),
                made[0].clone(),
                made[1].clone(),
                made[2].clone(),
                String::new(),
                String::new(),
            ]);
            let rows: [(&str, ScaleMetric); 9] = [
                ("alloc+prep ns", |s| s.alloc_prep_ns),
                ("free ns", |s| s.free_ns),
                ("call ns (each closure once)", |s| s.call_ns),
                ("VMAs added", |s| s.vmas_added),
                ("VMAs per million closures", Scale::vmas_per_million),
                ("RSS bytes per closure", |s| s.rss),
                ("  of which anonymous", |s| s.anon),
                ("  of which file", |s| s.file),
                ("  of which shmem", |s| s.shmem),
            ];
            for (what, f) in rows {
                let v: Vec<f64> = s.iter().map(|s| f(s)).collect();
                t.row(backend_row(what, &v));
            }
            out.push(t);
        }
        out
    }

    fn tables(&self) -> Vec<Table> {
        let mut v = vec![self.backend_table(), self.ns_table()];
        v.extend(self.ir_table());
        v.push(self.cycle_table());
        v.extend(self.scale_tables());
        v.push(self.target_table());
        v
    }

    pub(super) fn text(&self) -> String {
        let mut s = String::new();
        for t in self.tables() {
            s.push_str(&t.text());
        }
        if let Some(d) = &self.callgrind_dir {
            let _ = writeln!(
                s,
                "\ncallgrind output: {}/callgrind-<backend>.out.<1..{}> (one per signature \
                 measured, in the order above; e.g. callgrind_annotate --inclusive=yes FILE)",
                d.display(),
                self.arch.sigs.len()
            );
        }
        s
    }

    pub(super) fn markdown(&self) -> String {
        let a = self.arch;
        let (title, rerun) = if a.is_host() {
            (String::new(), "scripts/bench".to_string())
        } else {
            (
                format!(" ({}, {}-bit)", a.triple, a.bits),
                format!("scripts/bench --target {}", a.triple),
            )
        };
        let mut s = format!("# statictramp benchmark{title}\n\n");
        let _ = writeln!(
            s,
            "Generated by `{}`; rerun with `{rerun}` (which builds what is needed and \
             runs `statictramp-bench --out docs`). The driver is `bench/bench.c`: it \
             uses only libffi's public API, so one binary measures the system libffi, libffi \
             3.6 (`LD_LIBRARY_PATH`) and statictramp (`LD_PRELOAD`). Every call's result is \
             checked.\n",
            relative(&self.command)
        );
        let _ = write!(
            s,
            "![instructions and ns per call]({}.svg)\n\n## Machine\n\n| | |\n|---|---|\n",
            a.out_stem
        );
        for (k, v) in &self.machine {
            let _ = writeln!(s, "| {k} | {} |", v.replace('|', "\\|"));
        }
        s.push('\n');
        for t in self.tables() {
            s.push_str(&t.markdown());
        }
        s.push_str(
            "## Notes\n\n\
             - Instruction counts are repeatable (the same binaries give the same counts on \
             any x86_64 machine); times depend on the machine and its load. Timed runs \
             rotate the order of the backends in every round and keep the best value.\n\
             - The floor runs the same loop shape as the closure loop, with the handler \
             called directly; net numbers subtract it, so they are what the closure \
             mechanism adds (trampoline, argument marshalling, return value).\n\
             - The libffi 3.6 backend is libffi 3.6.0 as vendored in the libffi-sys crate \
             (its `libffi.pc` says 3.6.0; its `ffi_get_version()` still returns 3.5.2), \
             configured with its default static trampolines.\n\
             - `scale` counts VMAs as lines of /proc/self/maps and RSS from \
             /proc/self/status; the driver's own arrays are allocated and touched before \
             the first snapshot.\n",
        );
        if !a.is_host() {
            s.push_str(
                "- i686: the driver is built by the i686 cross compiler against Debian's \
                 libffi:i386 and runs natively; the preload library and libffi 3.6 are their \
                 i686 builds. `long` is 32 bits here, so `struct{long,long}` is 8 bytes and \
                 returned through a hidden pointer, `struct{5 long}` is 20 bytes; every \
                 argument is on the stack.\n\
                 - `int(int,int) FFI_REGISTER`: the cif is prepared with FFI_REGISTER and the \
                 driver calls the closure through a `regparm(3), stdcall` function pointer \
                 (the same layout when all arguments fit in eax, edx, ecx); its floor is \
                 int(int,int)'s. It is n/a for the system libffi when that is older than 3.5 \
                 (3.4.4 crashes on every FFI_REGISTER closure).\n\
                 - The targets are the i386 issue's: instructions per call net <= 1/3 of libffi \
                 3.6's for every signature, the cycle and 1 M live closures as on x86_64 (no \
                 ns-per-call or 16 M targets).\n",
            );
        }
        s
    }
}

/// `v` with the current directory's prefix removed from the paths in it, so
/// that reports written into a source tree name no machine-specific paths.
fn relative(v: &str) -> String {
    match std::env::current_dir() {
        Ok(d) if d.as_os_str().len() > 1 => {
            let prefix = format!("{}/", d.display());
            v.replace(&prefix, "")
        }
        _ => v.to_string(),
    }
}

/// The first clause of a driver `stopped` line, without the count.
pub(super) fn why_short(why: &str) -> String {
    why.split_once(' ')
        .map_or(why, |(_, rest)| rest)
        .to_string()
}
