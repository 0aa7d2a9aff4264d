//! The thread-state word (src/thread_state.rs) on x86_64 Linux.
#![allow(unsafe_code)]

/// The address of this thread's `statictramp_thread_state` word.
#[inline(always)]
pub fn word() -> *mut usize {
    let p: usize;
    // SAFETY: on x86_64 Linux %fs:0 holds the thread pointer itself (the
    // TLS ABI's TCB self-pointer), and the GOT entry named by
    // @gottpoff holds the offset of `statictramp_thread_state` (an 8-byte
    // .tbss object, asm/x86_64/tls.S) from it, fixed when the object was
    // loaded. The sum is this thread's copy of the word. Reads only memory
    // that is constant for the thread, so `pure` lets the compiler reuse it.
    unsafe {
        std::arch::asm!(
            "movq %fs:0, {p}",
            "addq statictramp_thread_state@gottpoff(%rip), {p}",
            p = out(reg) p,
            options(att_syntax, pure, readonly, nostack),
        );
    }
    p as *mut usize
}
