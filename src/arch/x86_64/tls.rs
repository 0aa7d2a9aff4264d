//! The thread-state word's access on x86_64 Linux (the cache around it is
//! src/tls_word.rs): `statictramp_thread_state`, an 8-byte .tbss object
//! (asm/x86_64/tls.S), reached through a TLS descriptor (the "gnu2"
//! dialect), and how the first access tells a static offset.
#![allow(unsafe_code)]

use crate::tls_word::{code_is, static_descriptor};

/// The thread pointer.
#[inline(always)]
pub fn thread_pointer() -> usize {
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

// The descriptor access, in [`descriptor_offset`] and [`first_access`]:
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
pub fn descriptor_offset() -> usize {
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

/// The first access: the word's offset through the descriptor, and
/// whether it is the same in every thread.
pub fn first_access() -> (usize, bool) {
    let (desc, off): (usize, usize);
    // SAFETY: the descriptor access described above; r12 (callee-saved,
    // so the call leaves it) keeps the pair's address for `is_static`.
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
    (off, is_static(desc, off))
}

/// Whether the offset `off` the descriptor at `desc` returned is the same
/// in every thread: the linker relaxed the access (an executable: `desc` is
/// then the offset itself, negative, where a descriptor's address is a
/// user-space address, positive), or the descriptor is the dynamic
/// linker's static-TLS one.
fn is_static(desc: usize, off: usize) -> bool {
    if (desc as isize) < 0 {
        return true;
    }
    // SAFETY: not relaxed, so `desc` is this library's descriptor;
    // `returns_its_argument` reads at most 9 bytes of the resolver.
    unsafe { static_descriptor(desc, off, returns_its_argument) }
}

/// Whether the code at `f` is `[endbr64;] mov 8(%rax), %rax; ret`.
///
/// # Safety
/// `f` must point to readable code of at least 5 bytes (9 if it begins
/// with endbr64).
unsafe fn returns_its_argument(f: *const u8) -> bool {
    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    // SAFETY: per the contract.
    unsafe { code_is(f, ENDBR64, &[0x48, 0x8b, 0x40, 0x08, 0xc3]) }
}
