//! This thread's state: its cache of (slot, record) pairs and its cache of
//! plans by cif address, reached through one TLS word
//! (`statictramp_thread_state`, asm/x86_64/tls.S) read with a TLS
//! descriptor.
//!
//! Why not `thread_local!`: in a shared object (the preload library, or the
//! staticlib linked into a Python extension) Rust's thread locals use the
//! general-dynamic model, a call to `__tls_get_addr` per access; the
//! alloc/prep/free cycle made three. The descriptor costs five instructions
//! when the library's TLS is static (three in an executable, where the
//! linker relaxes it), about twenty when it is dynamic. Why not the
//! initial-exec model (two instructions): it makes the library
//! DF_STATIC_TLS, and a dlopen then fails ("cannot allocate memory in
//! static TLS block") once other objects have used up glibc's small surplus
//! of static TLS, which must hold the library's whole TLS block (Rust's
//! std included, 0xd0 bytes in the preload library), not just this word.
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

/// The address of this thread's TLS word.
#[inline(always)]
fn word() -> *mut usize {
    let p: usize;
    // SAFETY: a TLS descriptor access (the x86_64 "gnu2" dialect): the
    // R_X86_64_TLSDESC pair that `@tlsdesc` names holds a resolver function
    // and its argument, filled in by the dynamic linker; called with rax =
    // the pair, it returns the offset of this thread's copy of
    // `statictramp_thread_state` (an 8-byte .tbss object, asm/x86_64/tls.S)
    // from the thread pointer, which %fs:0 holds (the TLS ABI's TCB
    // self-pointer). The resolver returns a constant offset when the
    // module's TLS is static (loaded at startup, or dlopened while glibc's
    // surplus had room) and otherwise finds (on a thread's first access,
    // allocates) the dynamic block. In an executable the linker relaxes the
    // sequence to a constant. Not `nostack`: the call pushes a return
    // address. Clobbers: the descriptor ABI promises that only rax changes,
    // but a glibc without the fix for its bug 31372 (upstream 2.40; Debian
    // 12's 2.36 lacks it) calls C code on the allocating path saving only
    // the integer registers, so the call is declared as a C call. The memory it may write (the new block) is not reachable by
    // Rust code until it returns, so the block counts as `readonly`, and
    // `pure` lets the compiler reuse the address within a thread.
    unsafe {
        std::arch::asm!(
            "leaq statictramp_thread_state@tlsdesc(%rip), %rax",
            "call *statictramp_thread_state@tlscall(%rax)",
            "addq %fs:0, %rax",
            out("rax") p,
            clobber_abi("C"),
            options(att_syntax, pure, readonly),
        );
    }
    p as *mut usize
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
