//! libFuzzer target: the input's bytes are the generator's decisions
//! (source.rs `Bytes`), decoded into one case by the same generator the
//! deterministic run uses, and run as it runs them (runner.rs): libffi's
//! `ffi_call` into a statictramp closure and into libffi's own. Any
//! failure, or a disagreement libffi's known defects do not explain,
//! aborts with the case described.
//!
//! The caller's libffi (libffi 3.6) is dlopened from the path in
//! `STATICTRAMP_FUZZ_LIBFFI` (fuzz/campaign.sh sets it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use statictramp_fuzz::generate::case_from;
use statictramp_fuzz::libffi::{Libffi, target};
use statictramp_fuzz::runner::run_case;
use statictramp_fuzz::source::Bytes;
use std::sync::OnceLock;

fn libffi() -> &'static Libffi {
    static LIBFFI: OnceLock<Libffi> = OnceLock::new();
    LIBFFI.get_or_init(|| {
        let path = std::env::var("STATICTRAMP_FUZZ_LIBFFI")
            .expect("set STATICTRAMP_FUZZ_LIBFFI to libffi 3.6's libffi.so.8");
        Libffi::open(&path).unwrap_or_else(|e| panic!("{e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let case = case_from(&target(), &mut Bytes::new(data));
    let out = run_case(libffi(), &case, true);
    assert!(out.passed(), "{}: {out:?}", case.describe());
});
