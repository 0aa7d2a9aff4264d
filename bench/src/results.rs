//! What was measured: per backend, the best of all runs.

use super::MILLION;
use super::driver::Lines;

#[derive(Clone, Debug, Default)]
pub(super) struct Scale {
    pub(super) n: u64,
    pub(super) made: u64,
    pub(super) stopped: Option<String>,
    /// The process had as many mappings as vm.max_map_count allows.
    pub(super) map_limit: bool,
    pub(super) alloc_prep_ns: f64,
    pub(super) call_ns: f64,
    pub(super) free_ns: f64,
    pub(super) vmas_added: f64,
    pub(super) rss: f64,
    pub(super) anon: f64,
    pub(super) file: f64,
    pub(super) shmem: f64,
}

impl Scale {
    pub(super) fn from_lines(n: u64, l: &Lines) -> Result<Scale, String> {
        Ok(Scale {
            n,
            made: l.num("scale_made")? as u64,
            stopped: l.text("scale_stopped"),
            map_limit: l.num("scale_max_map_count_reached")? > 0.0,
            alloc_prep_ns: l.num("scale_alloc_prep_ns")?,
            call_ns: l.num("scale_call_ns")?,
            free_ns: l.num("scale_free_ns")?,
            vmas_added: l.num("scale_vmas_added")?,
            rss: l.num("scale_rss_bytes_per_closure")?,
            anon: l.num("scale_rss_anon_bytes_per_closure")?,
            file: l.num("scale_rss_file_bytes_per_closure")?,
            shmem: l.num("scale_rss_shmem_bytes_per_closure")?,
        })
    }
    pub(super) fn vmas_per_million(&self) -> f64 {
        self.vmas_added * MILLION as f64 / self.made.max(1) as f64
    }
    /// Keeps the better timings of two runs of the same count.
    pub(super) fn merge(&mut self, o: Scale) {
        self.alloc_prep_ns = self.alloc_prep_ns.min(o.alloc_prep_ns);
        self.call_ns = self.call_ns.min(o.call_ns);
        self.free_ns = self.free_ns.min(o.free_ns);
    }
}

/// One row of a scale table.
pub(super) type ScaleMetric = fn(&Scale) -> f64;

/// Everything measured for one backend; per signature in `Arch::sigs`
/// order, not a finite number where not measured.
pub(super) struct Res {
    pub(super) call_ns: Vec<f64>,
    pub(super) floor_ns: Vec<f64>,
    pub(super) ir: Option<Vec<f64>>,
    pub(super) cycle_ns: f64,
    /// The cycle's parts, each timed alone (the driver's `parts`):
    /// alloc+free, prep, call through one closure, call through 65 in turn.
    pub(super) parts_ns: [f64; 4],
    pub(super) thr_cps: f64,
    pub(super) thr_ns: f64,
    pub(super) scales: Vec<Scale>,
}

impl Res {
    pub(super) fn new(nsigs: usize) -> Res {
        Res {
            call_ns: vec![f64::INFINITY; nsigs],
            floor_ns: vec![f64::INFINITY; nsigs],
            ir: None,
            cycle_ns: f64::INFINITY,
            parts_ns: [f64::INFINITY; 4],
            thr_cps: 0.0,
            thr_ns: f64::INFINITY,
            scales: Vec::new(),
        }
    }
}

/// Keeps the smaller value of each pair (NaN, not measured, never wins).
pub(super) fn min_into(acc: &mut [f64], v: &[f64]) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a = a.min(x);
    }
}
