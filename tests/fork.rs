//! fork() in a multi-threaded process while other threads allocate, prepare
//! and free closures: the child must be able to use the closure API (its
//! global locks must not be inherited held by a thread that no longer
//! exists), and a program's own fork handlers must not deadlock against
//! ours.
mod support;

use libffi_sys::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::*;

const FFI_OK: u32 = 0;

/// Forks the test makes (each child must finish).
const FORKS: usize = 300;
/// How long one child may take before it counts as deadlocked.
const CHILD_LIMIT: Duration = Duration::from_secs(20);

/// Allocates `n` closures of `int(int,int)` on `cif`, calls each, frees
/// them; returns false on a failure or wrong result. Enough closures that
/// the thread cache refills from and spills to the global pool.
fn churn(cif: *mut ffi_cif, n: usize, tag: i32) -> bool {
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        let Some((cl, code)) = alloc(0) else {
            return false;
        };
        // SAFETY: a record from ffi_closure_alloc, an `int(int,int)` cif
        // that lives forever, and its handler.
        if unsafe { prep(cl, cif, Some(add_plus_ud), ud(i as u64), code) } != FFI_OK {
            return false;
        }
        live.push((cl, code, i as i32));
    }
    let mut ok = true;
    for &(cl, code, i) in &live {
        // SAFETY: prepared above with this signature.
        ok &= unsafe { call_ii(code, tag, 1) } == tag + 1 + i;
        // SAFETY: allocated above, freed once.
        unsafe { free(cl) };
    }
    ok
}

/// What a forked child does: closures on this thread (refills and spills
/// through the global pool), a signature never seen before (the plan
/// table), a new thread (its live counter), the live count (all counters).
/// No Rust thread spawn, no printing: only what a C child would use.
/// Exits 0 on success, 1 on a wrong result; never returns.
fn child() -> ! {
    let fresh_cif = cif_int_int_int();
    let mut ok = churn(fresh_cif, 300, 7);
    // A thread made with pthread_create, as a C program would: Rust's own
    // thread spawn takes a lock of the standard library (its stack-overflow
    // bookkeeping) that another parent thread may have held at fork.
    extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
        let ok = churn(cif_int_int_int(), 100, 9);
        std::ptr::without_provenance_mut(usize::from(ok))
    }
    let mut t: libc::pthread_t = 0;
    let mut ret: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: a thread running an `extern "C"` function with no argument,
    // joined right after.
    let rc = unsafe {
        libc::pthread_create(&mut t, std::ptr::null(), thread_main, std::ptr::null_mut())
    };
    // SAFETY: `t` was created above and is joined once.
    ok &= rc == 0 && unsafe { libc::pthread_join(t, &mut ret) } == 0 && ret.addr() == 1;
    let (live, _) = statictramp::closure::stats();
    ok &= live < 1_000_000;
    // SAFETY: _exit ends the child without running the parent's atexit
    // handlers or flushing its stdio buffers twice.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

#[test]
fn a_child_forked_while_other_threads_use_closures_can_use_them_too() {
    let stop = Arc::new(AtomicBool::new(false));
    // Threads that take the global locks as often as they can: batches
    // through the global pool, new signatures, threads coming and going.
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let cif = cif_int_int_int();
                    assert!(churn(cif, 200, w), "worker {w}: wrong result");
                    // A cif lives forever; pass it as an address.
                    let addr = cif as usize;
                    let t = std::thread::spawn(move || churn(addr as *mut ffi_cif, 40, 3));
                    assert!(t.join().unwrap(), "worker {w}'s thread: wrong result");
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));

    let mut hung = Vec::new();
    for n in 0..FORKS {
        // SAFETY: the child only uses the closure API, malloc and thread
        // creation (all usable after fork in glibc once no lock is
        // inherited held), then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child();
        }
        let start = Instant::now();
        let status = loop {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
            if r == pid {
                break Some(st);
            }
            if start.elapsed() > CHILD_LIMIT {
                // SAFETY: killing and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut st, 0);
                }
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        match status {
            None => hung.push(n),
            Some(st) => assert!(
                libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                "child {n} failed: wait status {st:#x}"
            ),
        }
        if hung.len() >= 3 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rounds: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        hung.is_empty(),
        "children {hung:?} did not finish within {CHILD_LIMIT:?}: deadlocked on a lock \
         another thread held at fork (workers ran {rounds} rounds)"
    );
    assert!(rounds > 0, "the worker threads never ran");
}

/// compat/c/fork_order.c, built once per test run.
fn fork_order() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        statictramp_testkit::build_c(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "fork_order",
            &["-O1", "-Wall", "-pthread"],
            &["-lffi"],
        )
    })
}

#[test]
fn a_program_fork_handler_taken_while_allocating_does_not_deadlock_ours() {
    let mut child = Command::new(fork_order())
        .env("LD_PRELOAD", statictramp_testkit::preload())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fork_order");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait fork_order") {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("fork_order output");
    let stdout = statictramp_testkit::text(&out.stdout);
    let stderr = statictramp_testkit::text(&out.stderr);
    let Some(status) = status else {
        panic!("fork_order hung (a fork handler deadlock)\n{stdout}{stderr}");
    };
    assert!(
        status.success() && stdout.starts_with("ok forks=2000 "),
        "fork_order failed: {status:?}\n{stdout}{stderr}"
    );
}
