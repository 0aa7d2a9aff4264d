//! The thread-state word (src/thread_state.rs) on x86_64 Linux:
//! `statictramp_thread_state`, an 8-byte .tbss object (asm/x86_64/tls.S),
//! reached through a TLS descriptor.
//!
//! Why a descriptor and not the initial-exec model: initial-exec makes the
//! library DF_STATIC_TLS, and a dlopen then fails ("cannot allocate memory
//! in static TLS block") once other objects have used up glibc's small
//! surplus of static TLS, which must hold the library's whole TLS block
//! (Rust's std included, 0xd0 bytes in the preload library), not just this
//! word. Why the offset is cached when it is static (see [`word`]): calling
//! the descriptor on every access made the alloc/prep/call/free cycle about
//! 3 ns slower than initial-exec (of ~23); with the cached offset it is as
//! fast, within the noise.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

/// What [`TLS_OFFSET`] holds before the first access has looked at the
/// TLS descriptor. Odd, like [`DYNAMIC`]: the offset of the 8-aligned word
/// never is.
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
/// The word is reached through a TLS descriptor (the x86_64 "gnu2"
/// dialect, [`descriptor_offset`]), so the library needs no static TLS (it
/// is not DF_STATIC_TLS) and a dlopen succeeds even when other objects have
/// used up glibc's surplus. When the first access finds the offset the same
/// in every thread (static TLS: loaded at startup, dlopened while the
/// surplus had room, or linked into an executable), the offset is kept in
/// [`TLS_OFFSET`] and later accesses cost about what initial-exec costs: a
/// load, a test and an add to the thread pointer, no call.
#[inline(always)]
pub fn word() -> *mut usize {
    let off = TLS_OFFSET.load(Ordering::Relaxed);
    if off & 1 == 0 {
        return thread_pointer().wrapping_add(off) as *mut usize;
    }
    word_slow(off)
}

/// [`word`] when the offset is not (yet) known to be static: out of line,
/// so that the descriptor call's clobbers do not shape the hot callers
/// (measured: the alloc/prep/call/free cycle 0.5 ns faster than with this
/// path inlined).
#[cold]
#[inline(never)]
fn word_slow(off: usize) -> *mut usize {
    if off == DYNAMIC {
        return thread_pointer().wrapping_add(descriptor_offset()) as *mut usize;
    }
    learn_offset()
}

/// The thread pointer.
#[inline(always)]
fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86_64 Linux %fs:0 holds the thread pointer itself (the
    // TLS ABI's TCB self-pointer). It is constant for the thread, so `pure`
    // lets the compiler reuse it.
    unsafe {
        std::arch::asm!(
            "movq %fs:0, {tp}",
            tp = out(reg) tp,
            options(att_syntax, pure, readonly, nostack, preserves_flags),
        );
    }
    tp
}

// The descriptor access, in [`descriptor_offset`] and [`learn_offset`]:
// the R_X86_64_TLSDESC pair that `@tlsdesc` names holds a resolver
// function and its argument, filled in by the dynamic linker; called with
// rax = the pair's address, the resolver returns the offset of this
// thread's copy of `statictramp_thread_state` (an 8-byte .tbss object,
// asm/x86_64/tls.S) from the thread pointer: a constant when the TLS block
// is static, else found in (on a thread's first access, allocated into)
// the thread's dynamic TLS. In an executable the linker rewrites the
// `leaq` to load the constant offset and the call to a nop. Not `nostack`:
// the call pushes a return address. Clobbers: the descriptor ABI promises
// that only rax changes, but a glibc without the fix for its bug 31372
// (upstream 2.40; Debian 12's 2.36 lacks it) calls C code on the
// allocating path saving only the integer registers, so the call is
// declared as a C call. The memory it may write (the new block) is not
// reachable by Rust code until it returns, so the block counts as
// `readonly`.

/// The word's offset from the thread pointer, through the descriptor.
#[inline(always)]
fn descriptor_offset() -> usize {
    let off: usize;
    // SAFETY: the descriptor access described above.
    unsafe {
        std::arch::asm!(
            "leaq statictramp_thread_state@tlsdesc(%rip), %rax",
            "call *statictramp_thread_state@tlscall(%rax)",
            out("rax") off,
            clobber_abi("C"),
            options(att_syntax, readonly),
        );
    }
    off
}

/// [`word`] at the first access: through the descriptor, recording in
/// [`TLS_OFFSET`] whether the offset is static.
#[cold]
#[inline(never)]
fn learn_offset() -> *mut usize {
    let (desc, off): (usize, usize);
    // SAFETY: the descriptor access described above; r12 (callee-saved,
    // so the call leaves it) keeps the pair's address for `classify`.
    unsafe {
        std::arch::asm!(
            "leaq statictramp_thread_state@tlsdesc(%rip), %rax",
            "movq %rax, %r12",
            "call *statictramp_thread_state@tlscall(%rax)",
            out("rax") off,
            out("r12") desc,
            clobber_abi("C"),
            options(att_syntax, readonly),
        );
    }
    let class = classify(desc, off);
    TLS_OFFSET.store(class, Ordering::Relaxed);
    if crate::dispatch::debug_enabled() {
        crate::dispatch::diag(if class == DYNAMIC {
            "thread-state word: in dynamic TLS (a TLS descriptor call per access)"
        } else {
            "thread-state word: at a static TLS offset (cached; no call per access)"
        });
    }
    thread_pointer().wrapping_add(off) as *mut usize
}

/// What [`TLS_OFFSET`] should hold, given the descriptor's address `desc`
/// and the offset `off` it returned: `off` if it is the same in every
/// thread, else [`DYNAMIC`].
///
/// Static when the linker relaxed the access (an executable: `desc` is
/// then the offset itself, negative, where a descriptor's address is a
/// user-space address, positive), or when the resolver the dynamic linker
/// put in the descriptor only returns the descriptor's argument
/// (`mov 8(%rax), %rax; ret`: glibc's `_dl_tlsdesc_return`, musl's
/// `__tlsdesc_static`, used for static TLS) and that argument is `off`.
/// A resolved descriptor is never changed again (a lazily bound one is
/// resolved by its first call, before this reads it).
fn classify(desc: usize, off: usize) -> usize {
    if (desc as isize) < 0 {
        return off;
    }
    // SAFETY: `desc` is the address of this library's descriptor, two
    // words in its GOT, which stays mapped and readable.
    let (resolver, arg) = unsafe { (*(desc as *const usize), *((desc + 8) as *const usize)) };
    // SAFETY: the resolver is a function of the dynamic linker, whose code
    // is mapped readable (ELF text segments are R+X); its first 5 bytes
    // are read, 9 if it begins with endbr64.
    if arg == off && unsafe { returns_its_argument(resolver as *const u8) } {
        off
    } else {
        DYNAMIC
    }
}

/// Whether the code at `f` is `[endbr64;] mov 8(%rax), %rax; ret`.
///
/// # Safety
/// `f` must point to readable code of at least 5 bytes (9 if it begins
/// with endbr64).
unsafe fn returns_its_argument(f: *const u8) -> bool {
    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    const RET_ARG: [u8; 5] = [0x48, 0x8b, 0x40, 0x08, 0xc3];
    // SAFETY: per the contract.
    unsafe {
        let at = |p: *const u8, n: usize| std::slice::from_raw_parts(p, n);
        let body = if at(f, 4) == ENDBR64 { f.add(4) } else { f };
        at(body, 5) == RET_ARG
    }
}
