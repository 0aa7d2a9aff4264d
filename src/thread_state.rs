//! This thread's state: its cache of (slot, record) pairs and its cache of
//! plans by cif address, reached through one TLS word
//! (`statictramp_thread_state`, defined in the assembly of each
//! architecture and reached by `crate::tls_word::word`: a TLS descriptor
//! whose offset is cached when it is static, src/tls_word.rs; the access
//! itself is src/arch/<arch>/tls.rs).
//!
//! Why not `thread_local!`: in a shared object (the preload library, or the
//! staticlib linked into a Python extension) Rust's thread locals use the
//! general-dynamic model, a call to `__tls_get_addr` per access; the
//! alloc/prep/free cycle made three. The word needs no static TLS (see the
//! architecture's module for how it is reached and why).
//!
//! The word is 0 until the thread first needs its state, then points at a
//! heap-allocated [`ThreadState`], and is set to [`DEAD`] when a
//! `thread_local!` guard tears the state down at thread exit (so closures
//! allocated or freed by later destructors take the global path instead of
//! building a new state that nothing would free).
//!
//! The closure API is not async-signal-safe (neither is libffi's, which
//! takes a mutex): a signal handler that allocates or frees closures may
//! deadlock on the global lock if the signal interrupted this thread while
//! it held it. The busy flag only keeps such a re-entry from making a
//! second `&mut` to the state: a re-entered [`with`] answers `None` and the
//! caller takes the global path.
#![allow(unsafe_code)]

use crate::plan::CifCache;
use crate::thread_cache::Cache;
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, Ordering, compiler_fence};

/// What the TLS word holds after the thread's state was torn down, and
/// while it is being created (so a signal handler arriving then takes the
/// global path instead of creating a second state).
const DEAD: usize = 1;

/// Per-thread state. Lives on the heap for the thread's lifetime.
pub struct ThreadState {
    /// Set while a [`with`] closure runs on this state. Outside `inner`, so
    /// that a re-entered `with` reads it through a shared reference that
    /// does not overlap the outer call's `&mut` to `inner`.
    busy: AtomicBool,
    inner: UnsafeCell<Inner>,
}

/// What [`with`] lends out.
pub struct Inner {
    /// Pairs this thread may allocate or has freed.
    pub cache: Cache,
    /// Plans found by cif address.
    pub plans: CifCache,
}

/// The address of this thread's TLS word (how to reach it is the
/// architecture's: src/arch/<arch>/).
#[inline(always)]
fn word() -> *mut usize {
    crate::tls_word::word()
}

/// Runs `f` on this thread's state, creating it on first use. `None` when
/// the thread's state is gone (thread exit), being created, or busy
/// (re-entered from a signal handler).
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&mut Inner) -> R) -> Option<R> {
    let w = word();
    // SAFETY: `w` is this thread's TLS word; only this thread accesses it.
    let mut p = unsafe { *w };
    if p <= DEAD {
        if p == DEAD {
            return None;
        }
        p = create()?;
    }
    // SAFETY: `p` came from Box::into_raw in `create` and stays valid until
    // the guard's drop, which first sets the word to DEAD. Only `busy` is
    // reached through this shared reference.
    let s = unsafe { &*(p as *const ThreadState) };
    if s.busy.load(Ordering::Relaxed) {
        return None;
    }
    s.busy.store(true, Ordering::Relaxed);
    // The flag must be in memory before the body's accesses, in the order a
    // signal handler on this thread would observe.
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the only `&mut` to `inner`: a re-entrant call on this thread
    // sees `busy` and returns without making one, and no other thread has
    // this state's address.
    let r = f(unsafe { &mut *s.inner.get() });
    compiler_fence(Ordering::SeqCst);
    s.busy.store(false, Ordering::Relaxed);
    Some(r)
}

/// Tears the state down at thread exit.
struct Guard(Cell<usize>);

impl Drop for Guard {
    fn drop(&mut self) {
        let p = self.0.replace(0);
        if p == 0 {
            return;
        }
        // SAFETY: this thread's TLS word; from now on `with` answers None.
        unsafe { *word() = DEAD };
        // SAFETY: `p` came from Box::into_raw in `create`, and the word no
        // longer names it, so no other reference to it can be made.
        drop(unsafe { Box::from_raw(p as *mut ThreadState) });
    }
}

thread_local! {
    static GUARD: Guard = const { Guard(Cell::new(0)) };
}

/// Creates this thread's state and registers its teardown.
#[cold]
#[inline(never)]
fn create() -> Option<usize> {
    // SAFETY: this thread's TLS word. DEAD until the state is ready: a
    // signal handler that allocates meanwhile takes the global path.
    unsafe { *word() = DEAD };
    let p = Box::into_raw(Box::new(ThreadState {
        busy: AtomicBool::new(false),
        inner: UnsafeCell::new(Inner {
            cache: Cache::new(),
            plans: CifCache::new(),
        }),
    })) as usize;
    if GUARD.try_with(|g| g.0.set(p)).is_err() {
        // The thread is exiting and its thread locals are gone: no state.
        // SAFETY: `p` is the box made above, never published. The word
        // stays DEAD.
        drop(unsafe { Box::from_raw(p as *mut ThreadState) });
        return None;
    }
    // SAFETY: this thread's TLS word.
    unsafe { *word() = p };
    Some(p)
}
