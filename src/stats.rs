//! `STATICTRAMP_STATS=1`: one summary line on stderr when the process
//! exits, saying what statictramp did for it:
//!
//! ```text
//! statictramp: stats: pid 4242: 1213 closures allocated, 1213 freed, 57 live at peak,
//!   2 pools mapped, 0 allocations failed, 1 prep refused (FFI_BAD_TYPEDEF 1: ...)
//! ```
//!
//! (one line; wrapped here). It proves which backend served a program's
//! closures (a ctypes test run under the preload library shows closures
//! allocated; without it there is no line) and what was refused and why.
//!
//! Cost: nothing on the call path, which never counts. Allocation, free
//! and prep test one flag (a relaxed load of a static, set once at load)
//! and count only when it is on; the counting itself is out of line.
//! Closures are counted where the runtime keeps its live counts (every API);
//! refusals and failed allocations at the C API (src/capi.rs).

#![allow(unsafe_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

static ON: AtomicBool = AtomicBool::new(false);

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static POOLS: AtomicUsize = AtomicUsize::new(0);
static ALLOC_FAILED: AtomicUsize = AtomicUsize::new(0);

/// Refusals: (libffi status name, count, the first reason given).
static REFUSED: Mutex<Vec<(&'static str, usize, String)>> = Mutex::new(Vec::new());

/// Whether the counters run (`STATICTRAMP_STATS` set to anything but
/// empty or `0`).
#[inline(always)]
pub fn on() -> bool {
    ON.load(Relaxed)
}

/// Reads the environment once, at load, and arranges the exit line.
/// (Called by the C library's constructor only: the `capi` feature.)
#[cfg_attr(not(feature = "capi"), allow(dead_code))]
pub fn init_at_load() {
    let wanted = std::env::var_os("STATICTRAMP_STATS").is_some_and(|v| !v.is_empty() && v != "0");
    if wanted && !ON.swap(true, Relaxed) {
        // SAFETY: `report` is an extern "C" fn with no arguments that
        // only formats and writes a line.
        if unsafe { libc::atexit(report) } != 0 {
            crate::dispatch::diag("STATICTRAMP_STATS: atexit failed; no summary at exit");
        }
    }
}

/// A closure was allocated (`delta` 1) or freed (-1): called where the
/// runtime keeps its live counts (src/thread_cache.rs), for closures of
/// every size and every API.
#[inline(always)]
pub fn counted(delta: isize) {
    if on() {
        if delta > 0 {
            count_allocated();
        } else {
            count_freed();
        }
    }
}

#[cold]
#[inline(never)]
fn count_allocated() {
    ALLOCATED.fetch_add(1, Relaxed);
    let live = LIVE.fetch_add(1, Relaxed) + 1;
    PEAK.fetch_max(live, Relaxed);
}

#[cold]
#[inline(never)]
fn count_freed() {
    FREED.fetch_add(1, Relaxed);
    // Never below zero: closures allocated before the flag was read (none
    // in practice: it is read at load) are not counted live.
    let _ = LIVE.fetch_update(Relaxed, Relaxed, |l| l.checked_sub(1));
}

/// A pool (a template copy and its records) was mapped.
pub fn pool_mapped() {
    if on() {
        POOLS.fetch_add(1, Relaxed);
    }
}

/// An allocation failed.
pub fn alloc_failed() {
    if on() {
        ALLOC_FAILED.fetch_add(1, Relaxed);
    }
}

/// A prep was refused with libffi status `status` because of `why`.
pub fn refused(status: &'static str, why: &dyn std::fmt::Display) {
    if !on() {
        return;
    }
    let mut r = crate::lock::lock(&REFUSED);
    match r.iter_mut().find(|(s, _, _)| *s == status) {
        Some((_, n, _)) => *n += 1,
        None => r.push((status, 1, why.to_string())),
    }
}

/// In a child after fork: its own counts start from what it inherited
/// alive (its closures are the parent's copies), nothing else.
pub fn reset_in_child() {
    if !on() {
        return;
    }
    let live = LIVE.load(Relaxed);
    ALLOCATED.store(0, Relaxed);
    FREED.store(0, Relaxed);
    PEAK.store(live, Relaxed);
    POOLS.store(0, Relaxed);
    ALLOC_FAILED.store(0, Relaxed);
    // The lock may have been held by a thread that does not exist here.
    if let Ok(mut r) = REFUSED.try_lock() {
        r.clear();
    }
}

/// The summary line, from the counters now.
#[cfg_attr(not(feature = "capi"), allow(dead_code))]
pub fn line() -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let refused = match REFUSED.try_lock() {
        Ok(r) => {
            let total: usize = r.iter().map(|(_, n, _)| n).sum();
            let detail: Vec<String> = r
                .iter()
                .map(|(s, n, why)| format!("{s} {n}: {why}"))
                .collect();
            if detail.is_empty() {
                plural(total, "prep refused", "preps refused")
            } else {
                format!(
                    "{} ({})",
                    plural(total, "prep refused", "preps refused"),
                    detail.join("; ")
                )
            }
        }
        Err(_) => "preps refused: unknown (lock busy)".into(),
    };
    format!(
        "stats: pid {}: {} allocated, {} freed, {} live at peak, {} mapped, {}, {}",
        std::process::id(),
        plural(ALLOCATED.load(Relaxed), "closure", "closures"),
        FREED.load(Relaxed),
        PEAK.load(Relaxed),
        plural(POOLS.load(Relaxed), "pool", "pools"),
        plural(
            ALLOC_FAILED.load(Relaxed),
            "allocation failed",
            "allocations failed"
        ),
        refused
    )
}

#[cfg_attr(not(feature = "capi"), allow(dead_code))]
extern "C" fn report() {
    crate::dispatch::diag(&line());
}
