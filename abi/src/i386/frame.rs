//! The register save frame of the i386 entries, as byte offsets from the
//! frame base (its lowest address). Classification produces these
//! offsets; asm/i386/layout.h repeats them as `FRAME_*` for the entries,
//! and the runtime's build.rs refuses to assemble if the two disagree
//! ([`super::ASM_CONSTANTS`]).
//!
//! ```text
//!  offset  frame (written by the entry)
//!   0      eax      REGISTER's 1st register argument
//!   4      edx      REGISTER's 2nd, FASTCALL's 2nd
//!   8      ecx      REGISTER's 3rd, FASTCALL's and THISCALL's 1st
//!  12      pointer to the caller's first stack argument slot
//!  16..24  ret slot: eax (the dispatcher writes a u64; the entry loads
//!          the low 4 bytes)
//!  24..32  ret slot: edx (likewise)
//!  32      FRAME_SIZE
//! ```
//!
//! The caller's stack as a Plan sees it (`ArgLoc::Stack(off)`,
//! `RetLoc::MemoryStack { ptr, .. }`: offsets from the word above the
//! return address; the trampoline's own words are the entry's business
//! and appear nowhere in a Plan):
//!
//! ```text
//!  higher addresses
//!    ...
//!    stack argument area      offsets 0 .. N (N = the caller's bytes;
//!                             the callee pops Plan::callee_pop of them)
//!    <- *FRAME_STACK_PTR      offset 0: the word above the return address
//!    return address
//!  lower addresses
//! ```
//!
//! Arguments in registers sit in their 4-byte slot as the register held
//! them (a `char` in cl is byte 0 of the ecx slot, little-endian).

/// Saved argument registers.
pub const EAX: u32 = 0;
pub const EDX: u32 = 4;
pub const ECX: u32 = 8;
/// Where the entry stores the address of the first stack argument slot.
pub const STACK_PTR: u32 = 12;
/// Return slots, 8 bytes each (the dispatcher's `RetMove` writes a `u64`).
pub const RET_EAX: u32 = 16;
pub const RET_EDX: u32 = 24;
pub const FRAME_SIZE: u32 = 32;

/// Argument registers per convention, in the order arguments take them.
/// `FFI_REGISTER` (Borland/Delphi `register`): eax, edx, ecx.
pub const REGISTER_REGS: [u32; 3] = [EAX, EDX, ECX];
/// `FFI_FASTCALL` (GCC's and MSVC's `fastcall`): ecx, edx.
pub const FASTCALL_REGS: [u32; 2] = [ECX, EDX];
/// `FFI_THISCALL` (`thiscall`): ecx.
pub const THISCALL_REGS: [u32; 1] = [ECX];

/// Bytes of one stack slot: every stack argument takes a whole number of
/// them.
pub const SLOT: u64 = 4;
