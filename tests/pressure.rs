//! Exhaustion under pressure: several threads churn closures while the
//! address space (RLIMIT_AS, set to leave half a trampoline region) or the map count (vm.max_map_count, filled
//! with single pages as tests/scale.rs does) runs out, in child processes.
//! Every failed `ffi_closure_alloc` must return NULL with errno ENOMEM;
//! at every failure the thread calls all its live closures; it then frees
//! some and must be able to allocate again at once; at the end all
//! threads' closures are called again from the main thread, freed, the
//! limit is lifted (filler unmapped) and allocation must work again.
//! Failed allocations (faults injected) are counted and reported.
mod support;

use std::os::raw::c_void;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::*;

const THREADS: u64 = 4;
/// Failed allocations each thread must see (and recover from).
const FAULTS_PER_THREAD: u64 = 20;
/// Closures a thread may hold (preallocated: under RLIMIT_AS the heap may
/// not grow).
const CAP: usize = 300_000;
const RUN_LIMIT: Duration = Duration::from_secs(20);
const CHILD_LIMIT: Duration = Duration::from_secs(90);

/// (record, code, tag) as plain addresses, so they can cross threads.
type Live = Vec<(usize, usize, u64)>;

/// What one thread saw.
struct Churned {
    live: Live,
    allocated: u64,
    faults: u64,
    /// Failures while the thread held no closure to free.
    empty_faults: u64,
    recoveries: u64,
    calls: u64,
}

fn call_all(live: &Live, what: &str) -> u64 {
    for &(_, code, tag) in live {
        // SAFETY: every entry is a live closure `u64 (u64)` returning tag + x.
        let r = unsafe { call_u64(code as *mut c_void, 3) };
        assert_eq!(r, tag + 3, "{what}: closure {tag:#x}");
    }
    live.len() as u64
}

/// One thread: allocate and keep closures until allocation fails; at each
/// failure check errno, call every live closure, free a quarter of them
/// and allocate again at once (which must succeed). Stops after
/// FAULTS_PER_THREAD failures or when `stop` is set.
fn churn(thread: u64, go: &Barrier, stop: &AtomicBool) -> Churned {
    let cif = cif_u64_u64();
    let mut live: Live = Vec::with_capacity(CAP);
    let mut c = Churned {
        live: Vec::new(),
        allocated: 0,
        faults: 0,
        empty_faults: 0,
        recoveries: 0,
        calls: 0,
    };
    let mut n = 0u64;
    let make = |live: &mut Live, n: &mut u64| -> bool {
        set_errno(0);
        let Some((cl, code)) = alloc(0) else {
            assert_eq!(errno(), libc::ENOMEM, "thread {thread}: errno after NULL");
            return false;
        };
        // The thread in the top byte of a pointer-sized tag (32-bit targets too).
        let tag = thread << (usize::BITS - 8) | *n;
        *n += 1;
        // SAFETY: a fresh closure, a cif that lives forever.
        let st = unsafe { prep(cl, cif, Some(ud_plus_x), ud(tag), code) };
        assert_eq!(st, 0, "prep under pressure");
        // SAFETY: prepared above.
        assert_eq!(unsafe { call_u64(code, 1) }, tag + 1);
        live.push((cl as usize, code as usize, tag));
        true
    };
    go.wait();
    while c.faults < FAULTS_PER_THREAD && !stop.load(Ordering::Relaxed) {
        assert!(
            live.len() < CAP,
            "thread {thread}: {CAP} closures and no ENOMEM"
        );
        if make(&mut live, &mut n) {
            c.allocated += 1;
            continue;
        }
        c.faults += 1;
        c.calls += call_all(&live, "live closures at ENOMEM");
        if live.is_empty() {
            // Other threads hold every slot: nothing of ours to free.
            c.empty_faults += 1;
            std::thread::yield_now();
            continue;
        }
        // Free a quarter, at least one (every closure called once more
        // before its free).
        let freed = (live.len() / 4).max(1);
        let keep = live.len() - freed;
        for (cl, code, tag) in live.drain(keep..) {
            // SAFETY: live closures of this thread, freed once.
            unsafe {
                assert_eq!(call_u64(code as *mut c_void, 2), tag + 2);
                free(cl as *mut c_void);
            }
        }
        assert!(
            make(&mut live, &mut n),
            "thread {thread}: no allocation right after freeing {} closures (fault {}, {} live)",
            freed,
            c.faults,
            live.len()
        );
        c.allocated += 1;
        c.recoveries += 1;
    }
    c.live = live;
    c
}

/// Runs THREADS churning threads; `limit` is applied (by the main thread)
/// after they started and before they allocate. Returns their results.
fn churn_under(limit: impl FnOnce()) -> Vec<Churned> {
    let go = Barrier::new(THREADS as usize + 1);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..=THREADS)
            .map(|t| {
                let (go, stop) = (&go, &stop);
                s.spawn(move || churn(t, go, stop))
            })
            .collect();
        limit();
        go.wait();
        let t = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            if t.elapsed() > RUN_LIMIT {
                stop.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("churn thread panicked"))
            .collect()
    })
}

/// Reports, then checks every thread's closures from this thread and
/// frees them.
fn check_and_free(results: Vec<Churned>, what: &str, elapsed: Duration) {
    let faults: u64 = results.iter().map(|c| c.faults).sum();
    let allocated: u64 = results.iter().map(|c| c.allocated).sum();
    let recoveries: u64 = results.iter().map(|c| c.recoveries).sum();
    let empty: u64 = results.iter().map(|c| c.empty_faults).sum();
    let mut calls: u64 = results.iter().map(|c| c.calls).sum();
    let live: usize = results.iter().map(|c| c.live.len()).sum();
    for c in &results {
        calls += call_all(&c.live, "after the threads stopped");
    }
    println!(
        "REPORT {what}: {THREADS} threads, {allocated} closures allocated, {faults} allocations failed (ENOMEM), \
         {recoveries} recovered right after frees ({empty} with nothing to free), {live} live at the end, {calls} calls of live closures checked, in {elapsed:.2?}"
    );
    for (i, c) in results.iter().enumerate() {
        assert!(
            c.faults >= FAULTS_PER_THREAD,
            "thread {}: only {} failed allocations before the time limit",
            i + 1,
            c.faults
        );
    }
    for c in results {
        for (cl, _, _) in c.live {
            // SAFETY: live closures, freed once.
            unsafe { free(cl as *mut c_void) };
        }
    }
}

/// After the limit is lifted: new closures can be had and work.
fn allocate_again(what: &str) {
    let cif = cif_u64_u64();
    let mut v = Vec::new();
    for i in 0..2000u64 {
        let (cl, code) = alloc(0).unwrap_or_else(|| panic!("{what}: alloc {i}: errno {}", errno()));
        // SAFETY: a fresh closure.
        assert_eq!(unsafe { prep(cl, cif, Some(ud_plus_x), ud(i), code) }, 0);
        v.push((cl, code));
    }
    for (i, &(cl, code)) in v.iter().enumerate() {
        // SAFETY: prepared above; freed once.
        unsafe {
            assert_eq!(call_u64(code, 4), i as u64 + 4);
            free(cl);
        }
    }
    println!("REPORT {what}: 2000 closures allocated, called and freed");
}

#[test]
fn threads_churn_into_an_address_space_limit() {
    if is_child("pressure_as") {
        let t = Instant::now();
        let results = churn_under(|| {
            // Half a trampoline region's address space: no region fits,
            // the in-image slots are all there is.
            let vm = status_kb("VmSize") * 1024;
            let lim = libc::rlimit64 {
                rlim_cur: vm + statictramp::layout::REC_DIST as u64,
                rlim_max: libc::RLIM64_INFINITY,
            };
            // SAFETY: setting this process's own limit.
            assert_eq!(unsafe { libc::setrlimit64(libc::RLIMIT_AS, &lim) }, 0);
        });
        check_and_free(
            results,
            &format!(
                "RLIMIT_AS = VmSize + {} MiB",
                statictramp::layout::REC_DIST >> 20
            ),
            t.elapsed(),
        );
        let lim = libc::rlimit64 {
            rlim_cur: libc::RLIM64_INFINITY,
            rlim_max: libc::RLIM64_INFINITY,
        };
        // SAFETY: as above (the hard limit was left unlimited).
        assert_eq!(unsafe { libc::setrlimit64(libc::RLIMIT_AS, &lim) }, 0);
        allocate_again("limit lifted");
        return;
    }
    let out = run_child(
        "threads_churn_into_an_address_space_limit",
        "pressure_as",
        CHILD_LIMIT,
    );
    show_reports(&out, "address space");
}

#[test]
fn threads_churn_into_the_map_count() {
    if is_child("pressure_maps") {
        let mut pages = Vec::new();
        let t = Instant::now();
        let results = churn_under(|| {
            // Fill the map count, then leave room for a few mappings.
            pages = fill_map_count();
            unmap_fillers(&mut pages, 6);
        });
        check_and_free(
            results,
            &format!("map count filled ({} filler pages, 6 freed)", pages.len()),
            t.elapsed(),
        );
        for p in pages.drain(..) {
            // SAFETY: the filler pages.
            unsafe { libc::munmap(p as *mut c_void, 4096) };
        }
        allocate_again("filler unmapped");
        return;
    }
    let out = run_child(
        "threads_churn_into_the_map_count",
        "pressure_maps",
        CHILD_LIMIT,
    );
    show_reports(&out, "map count");
}
