//! i386 (x86-32): everything the arch-neutral runtime needs from this
//! architecture (the interface is listed in src/arch/mod.rs). Its
//! classification is statictramp-abi's `i386` module, its assembly is
//! asm/i386/: one register-free slot for every convention (the closure
//! arrives on the stack) and one entry that reads the Plan.
#![allow(unsafe_code)]

mod tls;

pub use tls::word as tls_word;

use crate::layout::{FRAME_RET_EAX, FRAME_STACK_PTR, HDR_ENTRY, PLAN_POP, PLAN_SCRATCH};
use crate::record::TRAMP_SIZE;
use statictramp_abi::{Abi, Arch, Plan, RecordLayout, Signature};
use std::mem::offset_of;

/// This architecture, for libffi's ABI numbering.
pub const ARCH: Arch = Arch::I386;
/// Its `ffi_closure` layout (statictramp-abi, ffitarget.h cited there).
pub const RECORD: RecordLayout = statictramp_abi::i386::RECORD;
/// libffi's `FFI_DEFAULT_ABI` here (`FFI_SYSV`).
pub const DEFAULT_ABI: Abi = Abi::I386SysV;

/// The ABIs libffi's native raw closures take (src/x86/ffi.c
/// `ffi_prep_raw_closure_loc`: FFI_SYSV and FFI_THISCALL; FFI_BAD_ABI
/// otherwise).
pub const NATIVE_RAW_ABIS: &[Abi] = &[Abi::I386SysV, Abi::I386ThisCall];

/// Offset in the entry's register frame of the pointer to the caller's
/// first stack argument.
pub const FRAME_STACK_ARGS: usize = FRAME_STACK_PTR;
/// Offset in the frame of the return slot that gets the return buffer's
/// address for values returned on the x87 stack.
pub const FRAME_RET_BUF_PTR: usize = FRAME_RET_EAX;

/// What the i386 entry reads from a compiled plan, at the `PLAN_*` offsets
/// of asm/i386/layout.h (checked below).
#[repr(C)]
pub struct EntryData {
    /// Bytes of scratch the entry reserves (multiple of 16).
    pub scratch: u32,
    /// Bytes of the caller's stack arguments the entry pops on return.
    pub callee_pop: u32,
}

const _: () = {
    assert!(offset_of!(EntryData, scratch) == PLAN_SCRATCH);
    assert!(offset_of!(EntryData, callee_pop) == PLAN_POP);
};

/// The entries (asm/i386/).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `statictramp_entry_i386`: every convention, table driven.
    Generic,
}

unsafe extern "C" {
    fn statictramp_entry_i386();
}

impl EntryKind {
    /// The entry's address, stored in closure headers.
    pub fn address(self) -> usize {
        match self {
            EntryKind::Generic => statictramp_entry_i386 as *const () as usize,
        }
    }
}

/// Picks the entry for a classified signature and builds what it reads
/// (the one entry is generic, as `_generic` may ask).
pub fn select_entry(_sig: &Signature, plan: &Plan, _generic: bool) -> (EntryData, EntryKind) {
    (
        EntryData {
            scratch: plan.scratch_size,
            callee_pop: plan.callee_pop,
        },
        EntryKind::Generic,
    )
}

/// Makes instructions just written at `data` visible to instruction fetch
/// at `data` and `code`: nothing to do on x86 (coherent caches; the jump
/// into the code serializes).
#[inline(always)]
pub fn sync_code(_data: *const u8, _code: *const u8, _len: usize) {}

/// The classic trampoline written into a foreign closure's `tramp[]`
/// (src/foreign.rs): register-free like the slots, it builds the same two
/// stack words (table.S) and jumps through the header's entry word:
///
/// ```text
///   f3 0f 1e fb        endbr32
///   68 <imm32>         pushl $header
///   50                 pushl %eax              ; the scratch word (any value)
///   ff 25 <abs32>      jmp *header->entry
/// ```
///
/// Exactly FFI_TRAMPOLINE_SIZE (16) bytes; absolute, so it works at
/// whatever address (alias) the client executes it.
pub fn classic_trampoline(header: usize) -> [u8; TRAMP_SIZE] {
    let mut t = [0xccu8; TRAMP_SIZE];
    t[..4].copy_from_slice(&[0xf3, 0x0f, 0x1e, 0xfb]);
    t[4] = 0x68;
    t[5..9].copy_from_slice(&(header as u32).to_le_bytes());
    t[9] = 0x50;
    t[10..12].copy_from_slice(&[0xff, 0x25]);
    t[12..16].copy_from_slice(&((header + HDR_ENTRY) as u32).to_le_bytes());
    t
}
