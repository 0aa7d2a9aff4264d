//! The address of this thread's state word (src/thread_state.rs):
//! `statictramp_thread_state`, a pointer-sized .tbss object of each
//! architecture's assembly, reached through a TLS descriptor, with its
//! offset from the thread pointer cached when it is the same in every
//! thread.
//!
//! Why a descriptor and not the initial-exec model: initial-exec makes the
//! library DF_STATIC_TLS, and a dlopen then fails ("cannot allocate memory
//! in static TLS block") once other objects have used up glibc's small
//! surplus of static TLS, which must hold the library's whole TLS block
//! (Rust's std included, 0xd0 bytes in the x86_64 preload library), not
//! just this word. Why the offset is cached when it is static: calling the
//! descriptor on every access made the x86_64 alloc/prep/call/free cycle
//! about 3 ns slower than initial-exec (of ~23); with the cached offset it
//! is as fast, within the noise.
//!
//! The cache is the same on every architecture; each port
//! (`crate::arch::tls`) provides the three things that differ: the thread
//! pointer, the descriptor call, and how the first access tells a static
//! offset from a dynamic one.
#![allow(unsafe_code)]

use crate::arch::tls;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What [`TLS_OFFSET`] holds before the first access has looked at the
/// TLS descriptor. Odd, like [`DYNAMIC`]: the offset of the word (aligned
/// to its size) never is.
const UNKNOWN: usize = 1;
/// What [`TLS_OFFSET`] holds when the word's offset differs per thread
/// (the library's TLS block is dynamically allocated).
const DYNAMIC: usize = 3;

/// The offset of the TLS word from the thread pointer when it is the same
/// in every thread (the library's TLS block is in static TLS), learned at
/// the first access; else [`UNKNOWN`] or [`DYNAMIC`].
static TLS_OFFSET: AtomicUsize = AtomicUsize::new(UNKNOWN);

/// The address of this thread's TLS word.
///
/// When the first access finds the offset the same in every thread
/// (static TLS: loaded at startup, dlopened while the surplus had room, or
/// linked into an executable), later accesses cost about what initial-exec
/// costs: a load, a test and an add to the thread pointer, no call.
#[inline(always)]
pub fn word() -> *mut usize {
    let off = TLS_OFFSET.load(Ordering::Relaxed);
    if off & 1 == 0 {
        return tls::thread_pointer().wrapping_add(off) as *mut usize;
    }
    word_slow(off)
}

/// [`word`] when the offset is not (yet) known to be static: out of line,
/// so that the descriptor call's clobbers do not shape the hot callers
/// (measured on x86_64: the alloc/prep/call/free cycle 0.5 ns faster than
/// with this path inlined).
#[cold]
#[inline(never)]
fn word_slow(off: usize) -> *mut usize {
    if off == DYNAMIC {
        return tls::thread_pointer().wrapping_add(tls::descriptor_offset()) as *mut usize;
    }
    learn_offset()
}

/// [`word`] at the first access: through the descriptor, recording in
/// [`TLS_OFFSET`] whether the offset is static.
#[cold]
#[inline(never)]
fn learn_offset() -> *mut usize {
    let (off, is_static) = tls::first_access();
    let class = if is_static { off } else { DYNAMIC };
    TLS_OFFSET.store(class, Ordering::Relaxed);
    if crate::dispatch::debug_enabled() {
        crate::dispatch::diag(if class == DYNAMIC {
            "thread-state word: in dynamic TLS (a TLS descriptor call per access)"
        } else {
            "thread-state word: at a static TLS offset (cached; no call per access)"
        });
    }
    tls::thread_pointer().wrapping_add(off) as *mut usize
}

/// Whether the resolved TLS descriptor at `desc` (two words in this
/// library's GOT: the resolver and its argument) gives the same offset in
/// every thread: its resolver is the dynamic linker's static-TLS one,
/// which only returns its argument (`returns_its_argument` recognises it:
/// glibc's `_dl_tlsdesc_return`, musl's `__tlsdesc_static`), and that
/// argument is `off`. A resolved descriptor is never changed again (a
/// lazily bound one is resolved by its first call, before this reads it).
///
/// # Safety
/// `desc` must be the address of this library's descriptor (not a
/// relaxed, link-time offset), and `returns_its_argument` must only read
/// the resolver's first bytes, which the dynamic linker's text provides.
pub unsafe fn static_descriptor(
    desc: usize,
    off: usize,
    returns_its_argument: unsafe fn(*const u8) -> bool,
) -> bool {
    // SAFETY: per the contract, `desc` points at the descriptor's two
    // words in the GOT, which stays mapped and readable.
    let (resolver, arg) = unsafe {
        (
            *(desc as *const usize),
            *((desc + size_of::<usize>()) as *const usize),
        )
    };
    // SAFETY: the resolver is a function of the dynamic linker, whose code
    // is mapped readable (ELF text segments are R+X).
    arg == off && unsafe { returns_its_argument(resolver as *const u8) }
}

/// Whether the code at `f` is `body`, optionally after a 4-byte `endbr`
/// landing pad.
///
/// # Safety
/// `f` must point to readable code of at least `body.len()` bytes, or 4
/// more if it begins with `endbr`.
pub unsafe fn code_is(f: *const u8, endbr: [u8; 4], body: &[u8]) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let at = |p: *const u8, n: usize| std::slice::from_raw_parts(p, n);
        let start = if at(f, 4) == endbr { f.add(4) } else { f };
        at(start, body.len()) == body
    }
}
