//! `statictramp-difffuzz`: random signatures and values (generate.rs) called
//! through libffi's `ffi_call` into a statictramp closure whose handler
//! checks every argument byte and writes a return value the caller then
//! checks; optionally the same case through libffi's own closures, whose
//! verdict must agree (runner.rs).
//!
//! ```text
//! statictramp-difffuzz --libffi PATH [--seed S] [--cases N] [--case I] [--compare-libffi]
//! statictramp-difffuzz --libffi PATH --input FILE [--compare-libffi]
//! statictramp-difffuzz --write-seeds DIR [--seed S] [--cases N | --case I]
//! ```
//!
//! PATH: the libffi.so whose `ffi_prep_cif` and `ffi_call` are the caller
//! (libffi 3.6, scripts/build-libffi36: Debian's 3.4.4 `ffi_call`
//! corrupts xmm0 for some INTEGER+SSE structs in r9). On a failure it
//! prints the seed, the case and the command that replays it.
//! `--input FILE` runs the case a libFuzzer input decodes to (a crash
//! artifact of fuzz_targets/difffuzz_case.rs), described.
//! `--write-seeds DIR` writes cases 0..N (or case I) of seed S as
//! libFuzzer inputs named `seedS-caseI` (the seed corpus: fuzz/write-seeds.sh).

use statictramp_fuzz::generate::{self, Case};
use statictramp_fuzz::libffi::{Libffi, target};
use statictramp_fuzz::runner::{Agreement, run_case};
use statictramp_fuzz::source::{Bytes, Recorder, Rng};
use std::process::ExitCode;

const USAGE: &str = "usage: statictramp-difffuzz --libffi PATH [--seed S] [--cases N] [--case I] \
                     [--input FILE] [--compare-libffi] | --write-seeds DIR [--seed S] [--cases N | --case I]";

/// Counts over a run.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    refused: u64,
    known: u64,
    disagree: u64,
}

/// Runs one case, prints what is wrong (or everything, with `verbose`).
fn check(
    ffi: &Libffi,
    case: &Case,
    compare: bool,
    verbose: bool,
    name: &str,
    replay: &str,
    t: &mut Tally,
) {
    let out = run_case(ffi, case, compare);
    if verbose || !out.passed() {
        println!("{name}: {}", case.describe());
        for f in &out.failures {
            println!("  {f}");
        }
        if out.refused {
            println!("  refused by libffi's ffi_prep_cif and statictramp's ffi_prep_closure_loc");
        }
        match &out.agreement {
            Agreement::Differs(d) => println!("  {d}"),
            Agreement::KnownLibffiDefect(i) => println!(
                "  libffi's own closure misreads it (argument {i} has a NO_CLASS eightbyte)"
            ),
            _ => {}
        }
    }
    if !out.failures.is_empty() {
        t.failed += 1;
        println!("  reproduce: {replay}");
    } else if out.refused {
        t.refused += 1;
    } else {
        t.ok += 1;
    }
    match out.agreement {
        Agreement::KnownLibffiDefect(_) => t.known += 1,
        Agreement::Differs(_) => t.disagree += 1,
        _ => {}
    }
}

fn write_seeds(dir: &str, seed: u64, cases: std::ops::Range<u64>) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("statictramp-difffuzz: {dir}: {e}");
        return ExitCode::from(2);
    }
    let t = target();
    let n = cases.end - cases.start;
    for i in cases {
        let mut rec = Recorder {
            inner: Rng::new(generate::case_seed(seed, i)),
            bytes: Vec::new(),
        };
        let case = generate::case_from(&t, &mut rec);
        // The input must decode to the same case.
        let again = generate::case_from(&t, &mut Bytes::new(&rec.bytes));
        assert_eq!(
            format!("{case:?}"),
            format!("{again:?}"),
            "recorded input of case {i}"
        );
        let path = format!("{dir}/seed{seed}-case{i}");
        if let Err(e) = std::fs::write(&path, &rec.bytes) {
            eprintln!("statictramp-difffuzz: {path}: {e}");
            return ExitCode::from(2);
        }
    }
    println!("wrote {n} inputs to {dir}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let seed: u64 = opt("--seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    let cases: u64 = opt("--cases")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let only: Option<u64> = opt("--case").and_then(|s| s.parse().ok());
    let range = match only {
        Some(i) => i..i + 1,
        None => 0..cases,
    };
    if let Some(dir) = opt("--write-seeds") {
        return write_seeds(&dir, seed, range);
    }
    let Some(lib) = opt("--libffi") else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let compare = args.iter().any(|a| a == "--compare-libffi");
    let ffi = match Libffi::open(&lib) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("statictramp-difffuzz: {e}");
            return ExitCode::from(2);
        }
    };
    let t = target();
    let mut tally = Tally::default();
    let cmp = if compare { " --compare-libffi" } else { "" };
    if let Some(file) = opt("--input") {
        let data = match std::fs::read(&file) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("statictramp-difffuzz: {file}: {e}");
                return ExitCode::from(2);
            }
        };
        let case = generate::case_from(&t, &mut Bytes::new(&data));
        let replay = format!(
            "cargo run --release -p statictramp-fuzz -- --libffi {lib} --input {file}{cmp}"
        );
        check(&ffi, &case, compare, true, &file, &replay, &mut tally);
        println!("{case:#?}");
    } else {
        for i in range {
            let case = generate::case(&t, seed, i);
            let replay = format!(
                "cargo run --release -p statictramp-fuzz -- --libffi {lib} --seed {seed} --case {i}{cmp}"
            );
            check(
                &ffi,
                &case,
                compare,
                only.is_some(),
                &format!("case {i}"),
                &replay,
                &mut tally,
            );
        }
    }
    println!(
        "seed {seed}: {} cases passed, {} failed, {} refused by libffi's ffi_prep_cif and \
         statictramp alike{}",
        tally.ok,
        tally.failed,
        tally.refused,
        if compare {
            format!(
                ", {} where libffi's own closures disagree, {} where they fail by libffi's \
                 known NO_CLASS defect",
                tally.disagree, tally.known
            )
        } else {
            String::new()
        }
    );
    if tally.failed > 0 || tally.disagree > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
