//! x86_64: everything the arch-neutral runtime needs from this
//! architecture (the interface is listed in src/arch/mod.rs). Its
//! classification is statictramp-abi's `x86_64` module, its assembly is
//! asm/x86_64/.

mod entries;
pub mod tls;

pub use entries::{EntryData, EntryKind, select as select_entry};

use crate::layout::FRAME_STACK_PTR;
use crate::record::TRAMP_SIZE;
use statictramp_abi::x86_64::frame;
use statictramp_abi::{Abi, Arch, RecordLayout};

/// This architecture, for libffi's ABI numbering.
pub const ARCH: Arch = Arch::X86_64;
/// Its `ffi_closure` layout (statictramp-abi, ffitarget.h cited there).
pub const RECORD: RecordLayout = statictramp_abi::x86_64::RECORD;
/// libffi's `FFI_DEFAULT_ABI` here (`FFI_UNIX64`).
pub const DEFAULT_ABI: Abi = Abi::SysV64;

/// Offset in the entries' register frame of the pointer to the caller's
/// first stack argument (the dispatcher reads stack arguments from there).
pub const FRAME_STACK_ARGS: usize = FRAME_STACK_PTR;
/// Offset in the frame of the return slot that gets the return buffer's
/// address for values returned on the x87 stack (`RetKind::X87*`).
pub const FRAME_RET_BUF_PTR: usize = frame::RET_RAX as usize;

/// Makes `len` bytes of instructions just written at `data` visible to
/// instruction fetch at `data` and at `code` (an executable alias of the
/// same memory, or `data` itself). Nothing to do on x86: its instruction
/// caches are coherent with stores, and the jump into the code serializes.
#[inline(always)]
pub fn sync_code(_data: *const u8, _code: *const u8, _len: usize) {}

/// The classic trampoline written into a foreign closure's `tramp[]`
/// (src/foreign.rs):
///
/// ```text
///   f3 0f 1e fa        endbr64
///   49 ba <imm64>      movabs $header, %r10
///   41 ff 22           jmpq *(%r10)          ; header->entry
///   cc ...             int3 padding to FFI_TRAMPOLINE_SIZE
/// ```
///
/// Absolute, so it works at whatever address (alias) the client executes it.
pub fn classic_trampoline(header: usize) -> [u8; TRAMP_SIZE] {
    let mut t = [0xccu8; TRAMP_SIZE];
    t[..4].copy_from_slice(&[0xf3, 0x0f, 0x1e, 0xfa]);
    t[4..6].copy_from_slice(&[0x49, 0xba]);
    t[6..14].copy_from_slice(&(header as u64).to_le_bytes());
    t[14..17].copy_from_slice(&[0x41, 0xff, 0x22]);
    t
}
