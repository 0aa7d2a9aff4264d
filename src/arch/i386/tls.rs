//! The thread-state word (src/thread_state.rs) on i386 Linux:
//! `statictramp_thread_state`, a 4-byte .tbss object reached through a TLS
//! descriptor (asm/i386/tls.S), with its offset cached when it is the same
//! in every thread, as on x86_64 (src/arch/x86_64/tls.rs says why a
//! descriptor and why the cache).
//!
//! What differs from x86_64: user-space addresses may have the top bit set
//! in a 32-bit process (libraries are mapped near 0xf7000000), so a
//! descriptor's address cannot be told from a relaxed (negative) offset by
//! its sign. The linker's relaxation is read from the code instead: in an
//! executable it rewrites the descriptor call at `statictramp_tls_call`
//! (`ff 10`, `call *(%eax)`) to a 2-byte nop.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

/// What [`TLS_OFFSET`] holds before the first access has looked at the
/// TLS descriptor. Odd, like [`DYNAMIC`]: the offset of the 4-aligned word
/// never is.
const UNKNOWN: usize = 1;
/// What [`TLS_OFFSET`] holds when the word's offset differs per thread
/// (the library's TLS block is dynamically allocated).
const DYNAMIC: usize = 3;

/// The offset of the TLS word from the thread pointer when it is the same
/// in every thread (the library's TLS block is in static TLS), learned at
/// the first access; else [`UNKNOWN`] or [`DYNAMIC`].
static TLS_OFFSET: AtomicUsize = AtomicUsize::new(UNKNOWN);

unsafe extern "C" {
    /// This thread's word's offset from the thread pointer, through the
    /// descriptor (asm/i386/tls.S; clobbers eax, ecx, edx: a C call).
    fn statictramp_tls_offset() -> usize;
    /// The descriptor's address (or, where the linker relaxed the access,
    /// the constant offset).
    fn statictramp_tls_descriptor() -> usize;
    /// The descriptor call inside `statictramp_tls_offset`: its first two
    /// bytes.
    static statictramp_tls_call: [u8; 2];
}

/// The address of this thread's TLS word: the thread pointer plus the
/// cached offset when it is static (a load, a test and an add, no call),
/// else through the descriptor.
#[inline(always)]
pub fn word() -> *mut usize {
    let off = TLS_OFFSET.load(Ordering::Relaxed);
    if off & 1 == 0 {
        return thread_pointer().wrapping_add(off) as *mut usize;
    }
    word_slow(off)
}

/// [`word`] when the offset is not (yet) known to be static, out of line
/// as on x86_64.
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
    // SAFETY: on i386 Linux %gs:0 holds the thread pointer itself (the TLS
    // ABI's TCB self-pointer). It is constant for the thread, so `pure`
    // lets the compiler reuse it.
    unsafe {
        std::arch::asm!(
            "movl %gs:0, {tp}",
            tp = out(reg) tp,
            options(att_syntax, pure, readonly, nostack, preserves_flags),
        );
    }
    tp
}

/// The word's offset from the thread pointer, through the descriptor.
#[inline(always)]
fn descriptor_offset() -> usize {
    // SAFETY: an assembly function with no arguments that follows the C
    // calling convention; the memory the descriptor may allocate is not
    // reachable by Rust code until it returns.
    unsafe { statictramp_tls_offset() }
}

/// [`word`] at the first access: through the descriptor, recording in
/// [`TLS_OFFSET`] whether the offset is static.
#[cold]
#[inline(never)]
fn learn_offset() -> *mut usize {
    let off = descriptor_offset();
    let class = classify(off);
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

/// What [`TLS_OFFSET`] should hold, given the offset `off` the descriptor
/// returned: `off` if it is the same in every thread, else [`DYNAMIC`].
///
/// Static when the linker relaxed the access (an executable, whose TLS is
/// always static), or when the resolver the dynamic linker put in the
/// descriptor only returns the descriptor's argument (`mov 4(%eax), %eax;
/// ret`: glibc's i386 `_dl_tlsdesc_return`, used for static TLS) and that
/// argument is `off`. A resolved descriptor is never changed again (a
/// lazily bound one is resolved by its first call, before this reads it).
fn classify(off: usize) -> usize {
    if relaxed() {
        return off;
    }
    // SAFETY: an assembly function with no arguments (C convention).
    let desc = unsafe { statictramp_tls_descriptor() };
    // SAFETY: not relaxed, so `desc` is the address of this library's
    // descriptor, two words in its GOT, which stays mapped and readable.
    let (resolver, arg) = unsafe { (*(desc as *const usize), *((desc + 4) as *const usize)) };
    // SAFETY: the resolver is a function of the dynamic linker, whose code
    // is mapped readable (ELF text segments are R+X); its first 4 bytes
    // are read, 8 if it begins with endbr32.
    if arg == off && unsafe { returns_its_argument(resolver as *const u8) } {
        off
    } else {
        DYNAMIC
    }
}

/// Whether the linker rewrote the descriptor call (`ff 10`, `call
/// *(%eax)`) of `statictramp_tls_offset`: then the library is part of an
/// executable and the offset a link-time constant.
fn relaxed() -> bool {
    // SAFETY: two bytes of our own code, which is mapped readable.
    let call = unsafe { std::ptr::read_volatile(&raw const statictramp_tls_call) };
    call != [0xff, 0x10]
}

/// Whether the code at `f` is `[endbr32;] mov 4(%eax), %eax; ret`.
///
/// # Safety
/// `f` must point to readable code of at least 4 bytes (8 if it begins
/// with endbr32).
unsafe fn returns_its_argument(f: *const u8) -> bool {
    const ENDBR32: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfb];
    const RET_ARG: [u8; 4] = [0x8b, 0x40, 0x04, 0xc3];
    // SAFETY: per the contract.
    unsafe {
        let at = |p: *const u8, n: usize| std::slice::from_raw_parts(p, n);
        let body = if at(f, 4) == ENDBR32 { f.add(4) } else { f };
        at(body, 4) == RET_ARG
    }
}
