//! The register save frame of the x86_64 entries, as byte offsets from the
//! frame base (the lowest address, 16-byte aligned). Classification
//! produces these offsets; asm/x86_64/layout.h repeats them as `FRAME_*`
//! for the entries, and the runtime's build.rs refuses to assemble if the
//! two disagree ([`super::ASM_CONSTANTS`]).
//!
//! ```text
//!  offset  SysV entry        Win64 entry
//!   0..48  rdi rsi rdx rcx r8 r9   rcx rdx r8 r9 (0..32)
//!  48..112 xmm0..xmm7 (low 8 bytes each)   xmm0..xmm3 (48..80)
//! 112      ret slot: rax
//! 120      ret slot: rdx
//! 128      ret slot: xmm0 (low 8 bytes)
//! 136      ret slot: xmm1 (low 8 bytes)
//! 144      pointer to the caller's first stack argument slot
//! 152      padding
//! 160      FRAME_SIZE
//! ```

/// Offset of saved integer argument register `i` (SysV: rdi, rsi, rdx, rcx,
/// r8, r9; Win64: rcx, rdx, r8, r9).
pub const fn gpr(i: u32) -> u32 {
    GPR + 8 * i
}

/// Offset of the low 8 bytes of saved `xmm{i}`.
pub const fn sse(i: u32) -> u32 {
    SSE + 8 * i
}

pub const GPR: u32 = 0;
pub const SSE: u32 = 48;
pub const RET_RAX: u32 = 112;
pub const RET_RDX: u32 = 120;
pub const RET_XMM0: u32 = 128;
pub const RET_XMM1: u32 = 136;
pub const STACK_PTR: u32 = 144;
pub const FRAME_SIZE: u32 = 160;

/// Integer argument registers per convention.
pub const SYSV_GPRS: u32 = 6;
pub const SYSV_SSES: u32 = 8;
pub const WIN64_REG_ARGS: u32 = 4;
/// Win64 callers reserve 32 bytes of home space above the return address;
/// stack argument 5 is at offset 32 from the first stack slot.
pub const WIN64_HOME: u32 = 32;
