//! What differs between the targets the benchmark runs for: the host's
//! x86_64, and i686 (32-bit programs, run natively on an x86_64 machine):
//! the signatures, the compiler of the driver, where libffi 3.6 and the
//! preload library are, the file names of the report and the targets.

use super::{MILLION, SIGS, Sig};

/// The host (x86_64) target triple.
pub(super) const HOST: &str = "x86_64-unknown-linux-gnu";
/// The i686 target triple.
pub(super) const I686: &str = "i686-unknown-linux-gnu";

/// One target the benchmark knows.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Arch {
    pub(super) triple: &'static str,
    /// The signatures the driver measures, in its `SIGS` order.
    pub(super) sigs: &'static [Sig],
    /// The compiler of the driver: this environment variable (as the
    /// `cc` crate names it), else the default.
    pub(super) cc_var: &'static str,
    pub(super) cc_default: &'static str,
    /// libffi 3.6's prefix under the target directory (scripts/build-libffi36).
    pub(super) libffi36_dir: &'static str,
    /// The preload library relative to the target directory, for the
    /// message when it is missing.
    pub(super) preload_hint: &'static str,
    /// `DIR/STEM.md` and `DIR/STEM.svg`.
    pub(super) out_stem: &'static str,
    /// The big scale run's default size: 16 M on x86_64; 1 M on i686 (the
    /// issue's target there, and 16 M closures do not fit every backend in
    /// a 32-bit address space).
    pub(super) big_scale: u64,
    /// For the report.
    pub(super) bits: u32,
}

pub(super) const ARCHES: [Arch; 2] = [
    Arch {
        triple: HOST,
        sigs: SIGS.split_at(6).0,
        cc_var: "CC",
        cc_default: "cc",
        libffi36_dir: "libffi-3.6",
        preload_hint: "scripts/build-preload",
        out_stem: "bench",
        big_scale: super::SIXTEEN_M,
        bits: 64,
    },
    Arch {
        triple: I686,
        sigs: &SIGS,
        cc_var: "CC_i686_unknown_linux_gnu",
        cc_default: "i686-linux-gnu-gcc",
        libffi36_dir: "libffi-3.6-i686",
        preload_hint: "scripts/build-preload --target i686-unknown-linux-gnu",
        out_stem: "bench-i686",
        big_scale: MILLION,
        bits: 32,
    },
];

impl Arch {
    /// The target named `triple` (`None`: the host's).
    pub(super) fn find(triple: Option<&str>) -> Result<&'static Arch, String> {
        let t = triple.unwrap_or(HOST);
        ARCHES.iter().find(|a| a.triple == t).ok_or_else(|| {
            let known: Vec<&str> = ARCHES.iter().map(|a| a.triple).collect();
            format!("unknown target {t:?} (known: {})", known.join(", "))
        })
    }

    pub(super) fn is_host(&self) -> bool {
        self.triple == HOST
    }

    /// The highest ratio of statictramp's net instructions per call to
    /// libffi 3.6's that meets the target for signature `k`: x86_64 allows
    /// 1/2 for void(void) (nothing to marshal, so little to save), 1/3
    /// elsewhere; the i386 issue asks 1/3 for every FFI_SYSV signature and
    /// for FFI_REGISTER int(int,int).
    pub(super) fn ir_limit(&self, k: usize) -> (f64, &'static str) {
        if self.is_host() && self.sigs[k].key == "v_v" {
            (0.5, "1/2")
        } else {
            (1.0 / 3.0, "1/3")
        }
    }
}
