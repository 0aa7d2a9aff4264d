//! The thread-state word's access on i386 Linux (the cache around it is
//! src/tls_word.rs): `statictramp_thread_state`, a 4-byte .tbss object
//! reached through a TLS descriptor (asm/i386/tls.S), and how the first
//! access tells a static offset.
//!
//! What differs from x86_64: user-space addresses may have the top bit set
//! in a 32-bit process (libraries are mapped near 0xf7000000), so a
//! descriptor's address cannot be told from a relaxed (negative) offset by
//! its sign. The linker's relaxation is read from the code instead: in an
//! executable it rewrites the descriptor call at `statictramp_tls_call`
//! (`ff 10`, `call *(%eax)`) to a 2-byte nop.
#![allow(unsafe_code)]

use crate::tls_word::{code_is, static_descriptor};

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

/// The thread pointer.
#[inline(always)]
pub fn thread_pointer() -> usize {
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
pub fn descriptor_offset() -> usize {
    // SAFETY: an assembly function with no arguments that follows the C
    // calling convention; the memory the descriptor may allocate is not
    // reachable by Rust code until it returns.
    unsafe { statictramp_tls_offset() }
}

/// The first access: the word's offset through the descriptor, and
/// whether it is the same in every thread: the linker relaxed the access
/// (an executable, whose TLS is always static), or the descriptor is the
/// dynamic linker's static-TLS one (glibc's i386 `_dl_tlsdesc_return`,
/// `mov 4(%eax), %eax; ret`).
pub fn first_access() -> (usize, bool) {
    let off = descriptor_offset();
    if relaxed() {
        return (off, true);
    }
    // SAFETY: an assembly function with no arguments (C convention).
    let desc = unsafe { statictramp_tls_descriptor() };
    // SAFETY: not relaxed, so `desc` is this library's descriptor;
    // `returns_its_argument` reads at most 8 bytes of the resolver.
    (off, unsafe {
        static_descriptor(desc, off, returns_its_argument)
    })
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
    // SAFETY: per the contract.
    unsafe { code_is(f, ENDBR32, &[0x8b, 0x40, 0x04, 0xc3]) }
}
