//! Calling a prepared closure from a signal handler that interrupted the
//! same thread inside `ffi_closure_alloc`, `ffi_prep_closure_loc` or
//! `ffi_closure_free` (docs/design.md, "Signals and async-signal safety").
//!
//! A worker thread runs alloc / prep / call / free in a tight loop, setting
//! a "where am I" marker around each entry point; a POSIX timer sends it
//! SIGUSR1 every 50 us (SIGEV_THREAD_ID: delivered at whatever instruction
//! the worker is at when the timer interrupt or the IPI comes) and the main
//! thread adds bursts of `pthread_kill`. The handler reads the marker, calls a closure
//! prepared before the run directly through its code pointer (not through
//! `ffi_call`, which is not async-signal-safe) and checks the result. The
//! loop mixes `ffi_closure`-sized records (thread cache), larger ones
//! (the global pool, under its lock) and 32 cifs of one signature, more
//! than the per-thread plan cache holds (so one prep in four misses it and
//! takes the plan table's lock). The run ends when every window was hit often enough;
//! it must hit each at least [`MIN_HITS`] times. It runs in a child process
//! with a time limit, so a call path that took a lock held by the
//! interrupted code fails as a hang instead of hanging the test run.
mod support;

use statictramp::capi;
use statictramp::closure::FfiClosure;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, compiler_fence};
use std::time::{Duration, Instant};
use support::*;

/// Where the worker is: 0 outside the API, else `1 + 2 * entry + large`.
static WHERE: AtomicU32 = AtomicU32::new(0);
const ENTRIES: [&str; 3] = [
    "ffi_closure_alloc",
    "ffi_prep_closure_loc",
    "ffi_closure_free",
];
const WINDOWS: usize = 2 * ENTRIES.len();
/// Signals handled, by the window they interrupted (index 0: outside).
static HITS: [AtomicU64; WINDOWS + 1] = [const { AtomicU64::new(0) }; WINDOWS + 1];
/// Calls from the handler that returned a wrong value.
static BAD: AtomicU64 = AtomicU64::new(0);
/// The code of the closure the handler calls: `u64 (u64 x)`, TAG + x.
static CODE: AtomicUsize = AtomicUsize::new(0);
/// Fits a 32-bit pointer (the user data carries it).
const TAG: u64 = 0x5157_0000;

/// Hits every window should reach before the run stops.
const TARGET_HITS: u64 = 500;
/// Hits every window must reach for the test to pass.
const MIN_HITS: u64 = 50;
const RUN_LIMIT: Duration = Duration::from_secs(8);

extern "C" fn on_sigusr1(_sig: c_int) {
    let w = WHERE.load(Ordering::Relaxed) as usize;
    let code = CODE.load(Ordering::Relaxed);
    // SAFETY: CODE is a closure of type `u64 (u64)` prepared before the
    // signal was installed and never freed while signals are sent.
    let f: extern "C" fn(u64) -> u64 = unsafe { std::mem::transmute(code) };
    let x = HITS[w].load(Ordering::Relaxed);
    if f(x) == TAG + x {
        HITS[w].fetch_add(1, Ordering::Relaxed);
    } else {
        BAD.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sets the marker for the call that follows (compiler fences: the
/// handler runs on this thread, so program order is what it observes).
#[inline(always)]
fn mark(w: u32) {
    compiler_fence(Ordering::SeqCst);
    WHERE.store(w, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
}

fn window_hits() -> Vec<u64> {
    HITS.iter().map(|h| h.load(Ordering::Relaxed)).collect()
}

fn done(hits: &[u64]) -> bool {
    hits[1..].iter().all(|&h| h >= TARGET_HITS)
}

/// The worker's loop: alloc, prep, call, free until `stop`. Returns the
/// iterations done.
fn churn(cifs: &[usize], stop: &AtomicBool) -> u64 {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let large = u32::from(i % 4 == 3);
        let size = if large == 1 { 100 } else { 0 };
        let mut code: *mut c_void = std::ptr::null_mut();
        mark(1 + large);
        // SAFETY: `code` is writable.
        let cl = unsafe { capi::ffi_closure_alloc(size, &mut code) };
        mark(0);
        assert!(!cl.is_null(), "alloc failed: errno {}", errno());
        // A new cif every 4th iteration: a plan-cache miss then.
        let cif = cifs[(i / 4 % cifs.len() as u64) as usize] as *mut libffi_sys::ffi_cif;
        mark(3 + large);
        // SAFETY: a fresh closure, a cif that lives forever.
        let st = unsafe {
            capi::ffi_prep_closure_loc(
                cl.cast::<FfiClosure>(),
                cif.cast(),
                Some(ud_plus_x),
                ud(i),
                code,
            )
        };
        mark(0);
        assert_eq!(st, 0, "prep");
        // SAFETY: prepared above as `u64 (u64)`.
        assert_eq!(unsafe { call_u64(code, 5) }, i + 5, "closure {i}");
        mark(5 + large);
        // SAFETY: live, freed once.
        unsafe { capi::ffi_closure_free(cl) };
        mark(0);
        i += 1;
    }
    i
}

/// A POSIX timer sending SIGUSR1 to one thread every 50 us until dropped.
struct ThreadTimer(libc::timer_t);

impl ThreadTimer {
    fn start(tid: libc::pid_t) -> ThreadTimer {
        // SAFETY: a zeroed sigevent is valid; the fields set are those
        // SIGEV_THREAD_ID reads; `timer` receives the new timer's id.
        unsafe {
            let mut sev: libc::sigevent = std::mem::zeroed();
            sev.sigev_notify = libc::SIGEV_THREAD_ID;
            sev.sigev_signo = libc::SIGUSR1;
            sev.sigev_notify_thread_id = tid;
            let mut timer: libc::timer_t = std::ptr::null_mut();
            let r = libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut timer);
            assert_eq!(r, 0, "timer_create: errno {}", errno());
            let every = libc::timespec {
                tv_sec: 0,
                tv_nsec: 50_000,
            };
            let its = libc::itimerspec {
                it_interval: every,
                it_value: every,
            };
            let r = libc::timer_settime(timer, 0, &its, std::ptr::null_mut());
            assert_eq!(r, 0, "timer_settime: errno {}", errno());
            ThreadTimer(timer)
        }
    }
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: a timer created by `start`, deleted once.
        unsafe { libc::timer_delete(self.0) };
    }
}

fn child() {
    // Addresses: raw pointers are not Send.
    let cifs: Vec<usize> = (0..32).map(|_| cif_u64_u64() as usize).collect();
    let (cl, code) = alloc(0).expect("alloc");
    // SAFETY: a fresh closure; the cif lives forever.
    assert_eq!(
        unsafe { prep(cl, cifs[0] as *mut _, Some(ud_plus_x), ud(TAG), code) },
        0
    );
    CODE.store(code as usize, Ordering::Release);

    // SAFETY: installing a handler that only calls a prepared closure and
    // touches atomics; sigaction is given a fully initialised struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as extern "C" fn(c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }

    let stop = AtomicBool::new(false);
    let tid = AtomicU64::new(0);
    let kernel_tid = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let t = Instant::now();
    let (iterations, hits) = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            // SAFETY: pthread_self and gettid have no preconditions.
            unsafe {
                kernel_tid.store(libc::gettid() as u64, Ordering::Release);
                tid.store(libc::pthread_self() as u64, Ordering::Release);
            }
            churn(&cifs, &stop)
        });
        while tid.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        let target = tid.load(Ordering::Acquire) as libc::pthread_t;
        let timer = ThreadTimer::start(kernel_tid.load(Ordering::Acquire) as libc::pid_t);
        let mut hits = window_hits();
        while !done(&hits) && t.elapsed() < RUN_LIMIT {
            for _ in 0..4 {
                // SAFETY: the worker thread runs until `stop` is set below.
                let r = unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                assert_eq!(r, 0, "pthread_kill");
                sent.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_micros(200));
            hits = window_hits();
        }
        drop(timer);
        stop.store(true, Ordering::Relaxed);
        (worker.join().expect("worker panicked"), hits)
    });
    let elapsed = t.elapsed();
    let handled: u64 = hits.iter().sum();
    println!(
        "REPORT {iterations} alloc/prep/call/free iterations, a 50 us timer and {} pthread_kill, {handled} signals handled, in {elapsed:.2?}",
        sent.load(Ordering::Relaxed)
    );
    println!("REPORT outside the API: {} signals", hits[0]);
    for (e, name) in ENTRIES.iter().enumerate() {
        println!(
            "REPORT inside {name}: {} (ffi_closure-sized record), {} (larger record, global pool)",
            hits[1 + 2 * e],
            hits[2 + 2 * e]
        );
    }
    assert_eq!(
        BAD.load(Ordering::Relaxed),
        0,
        "wrong results in the handler"
    );
    for (w, &h) in hits.iter().enumerate().skip(1) {
        assert!(
            h >= MIN_HITS,
            "window {} ({}, {}) hit only {h} times",
            w,
            ENTRIES[(w - 1) / 2],
            if (w - 1) % 2 == 1 { "large" } else { "small" }
        );
    }
    // SAFETY: no more signals are sent; the closure is live.
    unsafe { free(cl) };
}

#[test]
fn closure_called_from_a_signal_handler_inside_alloc_prep_and_free() {
    if is_child("signals") {
        return child();
    }
    let out = run_child(
        "closure_called_from_a_signal_handler_inside_alloc_prep_and_free",
        "signals",
        Duration::from_secs(60),
    );
    assert_child_passed(&out);
    let reports = out.reports();
    assert!(!reports.is_empty(), "no report\n{}", out.describe());
    for r in reports {
        println!("signals: {r}");
    }
}

// ---- a handler that allocates, re-entering the API --------------------

/// Live closures of the re-entry worker (record addresses; 0: none).
static WORKER_LIVE: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];
/// Set once the worker's cache is in its steady state: every allocation
/// reuses one of its own freed records, so it never takes the pool lock.
static STEADY: AtomicBool = AtomicBool::new(false);
/// Closures the handler allocated, prepared, called and freed, by the
/// window its signal interrupted.
static REENTERED: [AtomicU64; WINDOWS + 1] = [const { AtomicU64::new(0) }; WINDOWS + 1];
/// Handler allocations that returned a record the worker holds live.
static DUPLICATES: AtomicU64 = AtomicU64::new(0);
/// The cif the handler prepares with (the worker's).
static REENTER_CIF: AtomicUsize = AtomicUsize::new(0);

/// Allocates, prepares, calls and frees a closure, only while the worker
/// is inside ffi_closure_alloc, ffi_prep_closure_loc or ffi_closure_free
/// and its cache is steady: there it holds no lock and is not in malloc,
/// which is when the design says re-entry works (the busy thread cache
/// sends the handler to the global pool).
extern "C" fn reenter_on_sigusr1(_sig: c_int) {
    // A handler must leave errno as it found it: the interrupted thread
    // may be about to read it.
    // SAFETY: __errno_location returns this thread's errno, always valid.
    let saved = unsafe { *libc::__errno_location() };
    reenter();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

fn reenter() {
    let w = WHERE.load(Ordering::Relaxed) as usize;
    if w == 0 || !STEADY.load(Ordering::Relaxed) {
        return;
    }
    let mut code: *mut c_void = std::ptr::null_mut();
    // SAFETY: `code` is writable; the API re-entered from the interrupted
    // thread's handler, in the windows described above.
    let cl = unsafe { capi::ffi_closure_alloc(0, &mut code) };
    if cl.is_null() {
        BAD.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if WORKER_LIVE
        .iter()
        .any(|l| l.load(Ordering::Relaxed) == cl as usize)
    {
        DUPLICATES.fetch_add(1, Ordering::Relaxed);
        return; // Do not free the worker's closure.
    }
    let tag = 0x4000 + w as u64;
    // SAFETY: a fresh closure; the cif lives forever.
    let st = unsafe {
        capi::ffi_prep_closure_loc(
            cl.cast::<FfiClosure>(),
            REENTER_CIF.load(Ordering::Relaxed) as *mut _,
            Some(ud_plus_x),
            ud(tag),
            code,
        )
    };
    // SAFETY: prepared above when st == 0; freed once.
    let ok = st == 0 && unsafe { call_u64(code, 9) } == tag + 9;
    // SAFETY: the handler's own closure, freed once.
    unsafe { capi::ffi_closure_free(cl) };
    if ok {
        REENTERED[w].fetch_add(1, Ordering::Relaxed);
    } else {
        BAD.fetch_add(1, Ordering::Relaxed);
    }
}

/// The re-entry worker: one signature, `ffi_closure`-sized records, 8
/// live at a time (published in WORKER_LIVE).
fn steady_churn(cif: usize, stop: &AtomicBool) -> u64 {
    let mut live: std::collections::VecDeque<(usize, usize, u64)> = Default::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut code: *mut c_void = std::ptr::null_mut();
        mark(1);
        // SAFETY: `code` is writable.
        let cl = unsafe { capi::ffi_closure_alloc(0, &mut code) };
        mark(0);
        assert!(!cl.is_null(), "alloc failed");
        mark(3);
        // SAFETY: a fresh closure, a cif that lives forever.
        let st = unsafe {
            capi::ffi_prep_closure_loc(
                cl.cast::<FfiClosure>(),
                cif as *mut _,
                Some(ud_plus_x),
                ud(i),
                code,
            )
        };
        mark(0);
        assert_eq!(st, 0, "prep");
        WORKER_LIVE[(i % 8) as usize].store(cl as usize, Ordering::Relaxed);
        live.push_back((cl as usize, code as usize, i));
        if live.len() == 8 {
            let (old, old_code, tag) = live.pop_front().unwrap();
            // SAFETY: a live closure `u64 (u64)` of this thread.
            assert_eq!(unsafe { call_u64(old_code as *mut c_void, 5) }, tag + 5);
            WORKER_LIVE[(tag % 8) as usize].store(0, Ordering::Relaxed);
            mark(5);
            // SAFETY: live, freed once.
            unsafe { capi::ffi_closure_free(old as *mut c_void) };
            mark(0);
        }
        i += 1;
        // From about the 73rd free on, more than QUARANTINE (64) freed
        // records wait in the cache and each allocation reuses the oldest.
        if i == 1000 {
            STEADY.store(true, Ordering::Relaxed);
        }
    }
    for (cl, _, tag) in live {
        WORKER_LIVE[(tag % 8) as usize].store(0, Ordering::Relaxed);
        // SAFETY: live, freed once.
        unsafe { capi::ffi_closure_free(cl as *mut c_void) };
    }
    i
}

fn reenter_child() {
    let cif = cif_u64_u64() as usize;
    REENTER_CIF.store(cif, Ordering::Release);
    // SAFETY: as in `child`, with the re-entering handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = reenter_on_sigusr1 as extern "C" fn(c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let stop = AtomicBool::new(false);
    let kernel_tid = AtomicU64::new(0);
    let t = Instant::now();
    let reentered = || -> Vec<u64> {
        REENTERED
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .collect()
    };
    let (iterations, counts) = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            // SAFETY: gettid has no preconditions.
            kernel_tid.store(unsafe { libc::gettid() } as u64, Ordering::Release);
            steady_churn(cif, &stop)
        });
        while kernel_tid.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        let timer = ThreadTimer::start(kernel_tid.load(Ordering::Acquire) as libc::pid_t);
        let mut counts = reentered();
        while [1, 3, 5].iter().any(|&w| counts[w] < TARGET_HITS) && t.elapsed() < RUN_LIMIT {
            std::thread::sleep(Duration::from_millis(2));
            counts = reentered();
        }
        drop(timer);
        stop.store(true, Ordering::Relaxed);
        (worker.join().expect("worker panicked"), counts)
    });
    println!(
        "REPORT re-entry: {iterations} worker iterations in {:.2?}; closures allocated, prepared, called and freed by the handler inside ffi_closure_alloc {}, ffi_prep_closure_loc {}, ffi_closure_free {}; {} duplicates, {} failures",
        t.elapsed(),
        counts[1],
        counts[3],
        counts[5],
        DUPLICATES.load(Ordering::Relaxed),
        BAD.load(Ordering::Relaxed)
    );
    assert_eq!(
        DUPLICATES.load(Ordering::Relaxed),
        0,
        "a pair handed out twice"
    );
    assert_eq!(
        BAD.load(Ordering::Relaxed),
        0,
        "failed calls in the handler"
    );
    for w in [1, 3, 5] {
        assert!(
            counts[w] >= MIN_HITS,
            "only {} re-entries inside {}",
            counts[w],
            ENTRIES[(w - 1) / 2]
        );
    }
    // The allocator is still sound: 2000 distinct closures that work.
    let mut seen = std::collections::HashSet::new();
    let made: Vec<_> = (0..2000u64)
        .map(|i| {
            let (cl, code) = alloc(0).expect("alloc after the run");
            assert!(seen.insert(cl as usize), "record {cl:p} handed out twice");
            // SAFETY: a fresh closure; the cif lives forever.
            assert_eq!(
                unsafe { prep(cl, cif as *mut _, Some(ud_plus_x), ud(i), code) },
                0
            );
            (cl, code, i)
        })
        .collect();
    for (cl, code, i) in made {
        // SAFETY: prepared above; freed once.
        unsafe {
            assert_eq!(call_u64(code, 1), i + 1);
            free(cl);
        }
    }
}

#[test]
fn a_handler_may_allocate_while_the_thread_is_in_the_lock_free_fast_path() {
    if is_child("signals_reenter") {
        return reenter_child();
    }
    let out = run_child(
        "a_handler_may_allocate_while_the_thread_is_in_the_lock_free_fast_path",
        "signals_reenter",
        Duration::from_secs(60),
    );
    assert_child_passed(&out);
    let report = *out
        .reports()
        .first()
        .unwrap_or_else(|| panic!("no report\n{}", out.describe()));
    println!("signals: {report}");
}
