//! fork() while other threads use closures.
//!
//! fork copies only the calling thread. A global lock that another thread
//! held at that moment stays locked forever in the child, and the child's
//! first refill, spill, new signature or new thread would hang on it
//! (tests/fork.rs hung 3 children in 81 forks without this). So, as glibc
//! does for malloc, `pthread_atfork` handlers take every global lock of the
//! library before fork, in the order the library itself nests them, and
//! release them after it in both processes.
//!
//! The handlers are registered when the library is loaded (an ELF
//! constructor in src/capi.rs), so that handlers a program registers later
//! run before ours in the prepare phase: our locks are taken last, as
//! glibc takes malloc's. A program that takes its own lock in a prepare
//! handler and allocates closures while holding that lock would otherwise
//! deadlock against our prepare (tests/fork.rs, compat/c/fork_order.c).
//! Handlers registered before the library was loaded (a program that
//! dlopens it after calling pthread_atfork) cannot be ordered this way.
//! Where the constructor is not linked in (a Rust program using the crate
//! without the `capi` feature), `register` runs where each global lock is
//! first created.
//!
//! The child keeps the forking thread's own state (cache, plans); the
//! caches of threads that do not exist in the child are lost with those
//! threads' memory (their slots leak, nothing dangles).
#![allow(unsafe_code)]

use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    /// The guards `prepare` took, dropped by `release`. Fork handlers run
    /// on the forking thread (in the child, the only thread, with the same
    /// thread-local storage).
    static HELD: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Before fork: every global lock, outermost first (the allocator state
/// before the template file, which it takes while growing; the live-count
/// registry before its spare list).
extern "C" fn prepare() {
    // HELD is reached before any lock is taken: its first use on a thread
    // registers a thread-local destructor, which takes the dynamic
    // loader's lock, and a thread inside dlopen may hold that lock while
    // waiting for one of ours. If this thread's locals are gone (fork from
    // a thread-local destructor), no lock is taken: no protection, but no
    // deadlock.
    let _ = HELD.try_with(|h| {
        let held: Vec<Box<dyn Any>> = vec![
            crate::pool::lock_for_fork(),
            crate::map::lock_for_fork(),
            crate::plan::lock_for_fork(),
            crate::foreign::lock_for_fork(),
            crate::thread_cache::lock_counters_for_fork(),
            crate::thread_cache::lock_spare_for_fork(),
        ];
        *h.borrow_mut() = held;
    });
}

/// After fork, in the parent and in the child: release them.
extern "C" fn release() {
    let _ = HELD.try_with(|h| h.borrow_mut().clear());
}

/// After fork, in the child: release them, and let STATICTRAMP_STATS count
/// the child's own work (src/stats.rs).
extern "C" fn release_in_child() {
    release();
    crate::stats::reset_in_child();
}

/// Installs the handlers once per process: at load time (the constructor
/// in src/capi.rs), and as a fallback where the global locks are first
/// used.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers three `extern "C" fn()` handlers that live as
        // long as the library (it is never unloaded: its trampolines may
        // still be called).
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release_in_child)) };
        if rc != 0 {
            crate::dispatch::diag(&format!(
                "pthread_atfork failed ({rc}): a child forked while another thread holds a statictramp lock could hang"
            ));
        }
    });
}
