//! Stale pointers: the guarantee of docs/design.md ("Stale pointers: the
//! guarantee"), tested at its boundary. A freed record waits in a
//! first-in first-out queue (src/quarantine.rs) and is handed out again
//! only once more than QUARANTINE (64) freed records wait behind it in
//! that queue: the freeing thread's cache for an `ffi_closure`-sized
//! record, the arena's queue of its size class (and the slot queue) for a
//! larger one. Until then a call through its code pointer aborts with the
//! trap's diagnostic and a second free aborts as a double free; after it,
//! the record (and its code address) belongs to its next owner: a stale
//! call reaches the new closure (or its trap before the new owner's prep)
//! and a stale free frees the new owner's closure, which the new owner's
//! own free then reports as a double free. A record freed by a thread
//! that exits waits in the global pool under the same rule.
//!
//! Each case runs in a child process on fresh threads (whose caches start
//! empty, so queue positions are known).
mod support;

use statictramp::quarantine::QUARANTINE;
use std::os::raw::c_void;
use std::sync::OnceLock;
use std::time::Duration;
use support::*;

const CHILD_LIMIT: Duration = Duration::from_secs(60);
/// A larger record (the arena's smallest class above `ffi_closure`).
const LARGE: usize = 100;

/// How a child case must end.
enum Ends {
    /// Killed by SIGABRT with this diagnostic on stderr.
    Aborts(&'static str),
    /// Exits successfully.
    Passes,
}

/// Runs `case` in a child process (the test `test` re-executed, the test's
/// name as the child mode) and checks that it printed `progress` (so it got
/// as far as the point under test) and ended as `ends`.
fn in_child(test: &str, case: impl FnOnce(), progress: &str, ends: Ends) {
    if is_child(test) {
        return case();
    }
    let out = run_child(test, test, CHILD_LIMIT);
    if let Ends::Passes = ends {
        assert_child_passed(&out);
    }
    assert!(out.stderr.contains(progress), "{}", out.describe());
    if let Ends::Aborts(diagnostic) = ends {
        assert_aborted_with(&out, diagnostic);
    }
}

fn cif() -> *mut libffi_sys::ffi_cif {
    static CIF: OnceLock<usize> = OnceLock::new();
    *CIF.get_or_init(|| cif_int_int_int() as usize) as *mut _
}

/// A prepared `int (int, int)` closure returning `a + b + tag`.
fn make(size: usize, tag: i32) -> (*mut c_void, *mut c_void) {
    let (cl, code) = alloc(size).expect("alloc");
    // SAFETY: a fresh closure; the cif lives forever.
    let st = unsafe { prep(cl, cif(), Some(add_plus_ud), ud(tag as u64), code) };
    assert_eq!(st, 0);
    // SAFETY: prepared above.
    assert_eq!(unsafe { call_ii(code, 1, 2) }, 3 + tag);
    (cl, code)
}

/// Allocates, prepares, calls and frees `n` closures of `size`, checking
/// that none is the record `x`.
fn newer_frees(size: usize, n: usize, x: *mut c_void) {
    for k in 0..n {
        let (cl, _) = make(size, 100 + k as i32);
        assert_ne!(cl, x, "the freed record came back after {k} newer frees");
        // SAFETY: live, freed once.
        unsafe { free(cl) };
    }
}

/// On this (fresh) thread: a closure X of `size` is made, called and
/// freed, then `newer` closures of the same size are made and freed
/// (none is X). With `mapped`, the in-image slots are used up first, so
/// that X is a mapped slot. Returns X's record and code, and what was
/// kept to use up the image.
fn freed_then(size: usize, newer: usize, mapped: bool) -> (*mut c_void, *mut c_void, Vec<usize>) {
    let keep: Vec<usize> = if mapped {
        (0..statictramp::layout::IMAGE_SLOTS + 64)
            .map(|_| alloc(0).expect("alloc").0 as usize)
            .collect()
    } else {
        Vec::new()
    };
    let (x, code) = make(size, 1);
    // SAFETY: live, freed once.
    unsafe { free(x) };
    newer_frees(size, newer, x);
    eprintln!("child: {newer} newer frees done");
    (x, code, keep)
}

/// Runs `f` on a fresh thread (an empty thread cache) and waits for it.
fn on_fresh_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().expect("child thread panicked");
}

/// Within the window: the allocation after QUARANTINE - 1 newer frees is
/// another record, and a call through the stale code aborts.
fn stale_call_within_window(size: usize, mapped: bool) {
    on_fresh_thread(move || {
        let (x, code, _keep) = freed_then(size, QUARANTINE - 1, mapped);
        let (next, _) = alloc(size).expect("alloc");
        assert_ne!(next, x, "reused after only QUARANTINE - 1 newer frees");
        eprintln!("child: next allocation is another record; calling the stale code");
        // SAFETY: deliberately a freed closure's code: must abort.
        let r = unsafe { call_ii(code, 1, 2) };
        eprintln!("child: stale call returned {r}");
    });
}

#[test]
fn stale_call_before_the_64th_newer_free_aborts() {
    in_child(
        "stale_call_before_the_64th_newer_free_aborts",
        || stale_call_within_window(0, false),
        "next allocation is another record",
        Ends::Aborts("a freed closure was called"),
    );
}

#[test]
fn stale_call_before_the_64th_newer_free_aborts_mapped_slot() {
    in_child(
        "stale_call_before_the_64th_newer_free_aborts_mapped_slot",
        || stale_call_within_window(0, true),
        "next allocation is another record",
        Ends::Aborts("a freed closure was called"),
    );
}

#[test]
fn stale_call_before_the_64th_newer_free_aborts_large_record() {
    in_child(
        "stale_call_before_the_64th_newer_free_aborts_large_record",
        || stale_call_within_window(LARGE, false),
        "next allocation is another record",
        Ends::Aborts("a freed closure was called"),
    );
}

fn second_free_within_window(size: usize) {
    on_fresh_thread(move || {
        let (x, _, _) = freed_then(size, QUARANTINE - 1, false);
        eprintln!("child: freeing the stale record again");
        // SAFETY: deliberately a second free: must abort.
        unsafe { free(x) };
        eprintln!("child: second free returned");
    });
}

#[test]
fn second_free_before_the_64th_newer_free_aborts() {
    in_child(
        "second_free_before_the_64th_newer_free_aborts",
        || second_free_within_window(0),
        "63 newer frees done",
        Ends::Aborts("double free of a closure"),
    );
}

#[test]
fn second_free_before_the_64th_newer_free_aborts_large_record() {
    in_child(
        "second_free_before_the_64th_newer_free_aborts_large_record",
        || second_free_within_window(LARGE),
        "63 newer frees done",
        Ends::Aborts("double free of a closure"),
    );
}

/// After the window: the allocation after QUARANTINE newer frees is X
/// again, at the same code address. Before its new owner prepares it, a
/// stale call traps as "called before prep".
fn reuse_unprepared(size: usize) {
    on_fresh_thread(move || {
        let (x, code, _) = freed_then(size, QUARANTINE, false);
        let (next, next_code) = alloc(size).expect("alloc");
        assert_eq!(next, x, "not reused after QUARANTINE newer frees");
        assert_eq!(next_code, code, "reused record, other code address");
        eprintln!("child: reused at the 64th newer free; calling the stale code");
        // SAFETY: deliberately the stale code of a reused, unprepared
        // closure: must abort.
        let r = unsafe { call_ii(code, 1, 2) };
        eprintln!("child: stale call returned {r}");
    });
}

#[test]
fn after_64_newer_frees_the_record_is_reused_and_traps_until_prep() {
    in_child(
        "after_64_newer_frees_the_record_is_reused_and_traps_until_prep",
        || reuse_unprepared(0),
        "reused at the 64th newer free",
        Ends::Aborts("called before ffi_prep_closure_loc prepared it"),
    );
}

#[test]
fn after_64_newer_frees_the_record_is_reused_and_traps_until_prep_large_record() {
    in_child(
        "after_64_newer_frees_the_record_is_reused_and_traps_until_prep_large_record",
        || reuse_unprepared(LARGE),
        "reused at the 64th newer free",
        Ends::Aborts("called before ffi_prep_closure_loc prepared it"),
    );
}

/// After the window, once the new owner prepared the record: a stale call
/// runs the new closure, and a stale free frees it (indistinguishable from
/// the new owner's own free); the new owner's free then aborts as a
/// double free.
fn reuse_prepared(size: usize) {
    on_fresh_thread(move || {
        let (x, code, _) = freed_then(size, QUARANTINE, false);
        let (next, next_code) = alloc(size).expect("alloc");
        assert_eq!((next, next_code), (x, code), "not reused at the 64th free");
        // SAFETY: the new owner's closure, prepared with another handler.
        let st = unsafe { prep(next, cif(), Some(mul_minus_ud), ud(7), next_code) };
        assert_eq!(st, 0);
        // SAFETY: the stale code pointer, now the new owner's closure.
        let r = unsafe { call_ii(code, 6, 5) };
        assert_eq!(
            r,
            6 * 5 - 7,
            "a stale call after reuse runs the new closure"
        );
        eprintln!("child: stale call reached the new closure");
        // SAFETY: the stale second free: after reuse it frees the new
        // owner's closure (what this test shows).
        unsafe { free(x) };
        assert_eq!(
            statictramp::capi::statictramp_owns_code(next_code),
            0,
            "the stale free freed the new owner's closure"
        );
        eprintln!("child: stale free freed the new owner's closure; new owner frees");
        // SAFETY: deliberately the new owner's (now second) free: aborts.
        unsafe { free(next) };
        eprintln!("child: new owner's free returned");
    });
}

#[test]
fn after_reuse_stale_call_and_free_reach_the_new_owner() {
    in_child(
        "after_reuse_stale_call_and_free_reach_the_new_owner",
        || reuse_prepared(0),
        "stale free freed the new owner's closure",
        Ends::Aborts("double free of a closure"),
    );
}

#[test]
fn after_reuse_stale_call_and_free_reach_the_new_owner_large_record() {
    in_child(
        "after_reuse_stale_call_and_free_reach_the_new_owner_large_record",
        || reuse_prepared(LARGE),
        "stale free freed the new owner's closure",
        Ends::Aborts("double free of a closure"),
    );
}

/// A closure allocated on thread A and freed on thread B waits in B's
/// cache: A's frees do not count towards its quarantine (A never gets it
/// back), B's do. `reuse`: B makes the 64th newer free and gets the record
/// back; else A calls the stale code after its 500 frees and B's 63.
fn across_threads(reuse: bool) {
    let (to_b, b_rx) = std::sync::mpsc::channel::<usize>();
    let (to_a, a_rx) = std::sync::mpsc::channel::<()>();
    let b = std::thread::spawn(move || {
        let x = b_rx.recv().unwrap() as *mut c_void;
        // SAFETY: A's live closure, handed over; freed once.
        unsafe { free(x) };
        to_a.send(()).unwrap();
        b_rx.recv().unwrap(); // A is done with its frees.
        newer_frees(0, QUARANTINE - 1, x);
        if reuse {
            newer_frees(0, 1, x);
            let (next, _) = alloc(0).expect("alloc");
            assert_eq!(next, x, "B did not get the record back at its 64th free");
            eprintln!("child: B got the record back at its 64th newer free");
        }
        to_a.send(()).unwrap();
    });
    on_fresh_thread(move || {
        let (x, code) = make(0, 1);
        to_b.send(x as usize).unwrap();
        a_rx.recv().unwrap();
        newer_frees(0, 500, x);
        eprintln!("child: A made 500 newer frees without getting the record");
        to_b.send(0).unwrap();
        a_rx.recv().unwrap();
        if !reuse {
            // SAFETY: deliberately the stale code: must abort.
            let r = unsafe { call_ii(code, 1, 2) };
            eprintln!("child: stale call returned {r}");
        }
    });
    b.join().expect("thread B panicked");
}

#[test]
fn freed_by_another_thread_the_stale_call_aborts_after_563_newer_frees() {
    in_child(
        "freed_by_another_thread_the_stale_call_aborts_after_563_newer_frees",
        || across_threads(false),
        "A made 500 newer frees",
        Ends::Aborts("a freed closure was called"),
    );
}

#[test]
fn freed_by_another_thread_the_record_returns_to_that_thread() {
    in_child(
        "freed_by_another_thread_the_record_returns_to_that_thread",
        || across_threads(true),
        "B got the record back at its 64th newer free",
        Ends::Passes,
    );
}

/// A record freed by a thread that then exits goes to the global pool
/// (behind the thread's unallocated pairs) and is handed out by a refill
/// only once more than QUARANTINE records are queued behind it there.
/// Records reach the pool in batches of 32 (a thread's cache spills its
/// oldest 32 when it hoards more than 192), so the test brings the count
/// behind it to 32 (not reused by another thread's next 64 allocations)
/// and then to 64 (reused, by the 32nd allocation of the next refill).
fn freed_by_an_exiting_thread() {
    use std::sync::mpsc::channel;
    let x = std::thread::spawn(|| {
        let (x, _) = make(0, 1);
        // SAFETY: live, freed once; the thread then exits.
        unsafe { free(x) };
        x as usize
    })
    .join()
    .expect("thread B panicked");
    let (to_a, a_rx) = channel::<()>();
    let (to_c, c_rx) = channel::<()>();
    std::thread::scope(|s| {
        // A: 225 closures held, then freed: its cache spills 32 at its
        // 193rd free and 32 more at its 225th.
        s.spawn(move || {
            let held: Vec<_> = (0..225).map(|i| make(0, i).0).collect();
            assert!(held.iter().all(|&c| c as usize != x), "reused by A");
            for &c in &held[..193] {
                // SAFETY: live, freed once.
                unsafe { free(c) };
            }
            to_c.send(()).unwrap();
            a_rx.recv().unwrap();
            for &c in &held[193..] {
                // SAFETY: live, freed once.
                unsafe { free(c) };
            }
            to_c.send(()).unwrap();
            a_rx.recv().unwrap(); // C is done; exiting now changes nothing.
        });
        // C: allocates while 32, then 64 records wait behind X.
        s.spawn(move || {
            c_rx.recv().unwrap();
            let first: Vec<_> = (0..64).map(|_| alloc(0).expect("alloc").0).collect();
            assert!(
                first.iter().all(|&c| c as usize != x),
                "reused with only 32 records queued behind it"
            );
            eprintln!("child: 32 queued behind: not reused by 64 allocations");
            to_a.send(()).unwrap();
            c_rx.recv().unwrap();
            let next: Vec<_> = (0..32).map(|_| alloc(0).expect("alloc").0).collect();
            let at = next.iter().position(|&c| c as usize == x);
            assert_eq!(at, Some(31), "64 queued behind: the refill's 32nd pair");
            eprintln!("child: 64 queued behind: reused by the next refill");
            to_a.send(()).unwrap();
        });
    });
}

#[test]
fn freed_by_an_exiting_thread_the_record_waits_in_the_global_pool() {
    in_child(
        "freed_by_an_exiting_thread_the_record_waits_in_the_global_pool",
        freed_by_an_exiting_thread,
        "64 queued behind: reused by the next refill",
        Ends::Passes,
    );
}
