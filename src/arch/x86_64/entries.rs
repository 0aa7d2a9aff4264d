//! Which x86_64 entry serves a plan, and what that entry reads from it.
//!
//! The generic entries (`statictramp_entry_sysv`, `statictramp_entry_win64`)
//! call the Rust dispatcher, which reads the full `Plan`. The specialized
//! System V entries (fast, void0, regs0..6; asm/x86_64/entry_sysv.S) read
//! only [`EntryData`] and call the handler themselves; prep picks one when
//! the signature's shape allows it.
#![allow(unsafe_code)]

use crate::layout::{
    FAST_MAX_ARGS, FAST_RET_COUNT, FAST_RET_DOUBLE, FAST_RET_FLOAT, FAST_RET_I64, FAST_RET_MEM,
    FAST_RET_RAX_RDX, FAST_RET_RAX_XMM0, FAST_RET_S8, FAST_RET_S16, FAST_RET_S32, FAST_RET_U8,
    FAST_RET_U16, FAST_RET_U32, FAST_RET_VOID, FAST_RET_XMM0_RAX, FAST_RET_XMM0_XMM1,
    FAST_SAVE_GPR, FAST_SAVE_SSE, FRAME_SIZE, PLAN_FAST_OFFS, PLAN_FAST_RET, PLAN_FAST_SAVE,
    PLAN_FAST_TARGET, PLAN_NARGS, PLAN_RET_BUF, PLAN_SCRATCH, REGS_MAX_ARGS,
};
use statictramp_abi::x86_64::frame;
use statictramp_abi::{Abi, ArgLoc, Ext, Plan, RetLoc, Signature};
use std::mem::offset_of;

/// Which assembly entry serves a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `statictramp_entry_sysv`: table-driven, any SysV signature.
    SysV,
    /// `statictramp_entry_sysv_fast`: whole arguments in registers or on
    /// the stack, a return of at most two whole eightbytes or in memory.
    SysVFast,
    /// `statictramp_entry_sysv_void0`: `void (void)`.
    SysVVoid0,
    /// `statictramp_entry_sysv_regs{n}`: n (at most REGS_MAX_ARGS)
    /// arguments, argument i whole in the i-th integer register, and a
    /// return the fast entry loads from a buffer.
    SysVRegs(u8),
    /// `statictramp_entry_win64`.
    Win64,
}

unsafe extern "C" {
    fn statictramp_entry_sysv();
    fn statictramp_entry_sysv_fast();
    fn statictramp_entry_sysv_void0();
    fn statictramp_entry_sysv_regs0();
    fn statictramp_entry_sysv_regs1();
    fn statictramp_entry_sysv_regs2();
    fn statictramp_entry_sysv_regs3();
    fn statictramp_entry_sysv_regs4();
    fn statictramp_entry_sysv_regs5();
    fn statictramp_entry_sysv_regs6();
    fn statictramp_entry_win64();
    /// The fast entry's return sequences: `FAST_RET_COUNT` offsets from the
    /// table itself (asm/x86_64/entry_sysv.S).
    static statictramp_fast_ret_table: [i32; FAST_RET_COUNT];
}

/// The address of the fast entry's return sequence for `code` (FAST_RET_*).
fn fast_target(code: u32) -> usize {
    let table = (&raw const statictramp_fast_ret_table) as usize;
    // SAFETY: the table is FAST_RET_COUNT read-only i32s in our image, and
    // every code fast_ret() produces is below FAST_RET_COUNT (asserted by
    // the assembler's size check and the index here).
    let off = unsafe { statictramp_fast_ret_table[code as usize] };
    table.wrapping_add_signed(off as isize)
}

impl EntryKind {
    /// The entry's address, stored in closure headers.
    pub fn address(self) -> usize {
        match self {
            EntryKind::SysV => statictramp_entry_sysv as *const () as usize,
            EntryKind::SysVFast => statictramp_entry_sysv_fast as *const () as usize,
            EntryKind::SysVVoid0 => statictramp_entry_sysv_void0 as *const () as usize,
            EntryKind::SysVRegs(n) => {
                const REGS: [unsafe extern "C" fn(); REGS_MAX_ARGS + 1] = [
                    statictramp_entry_sysv_regs0,
                    statictramp_entry_sysv_regs1,
                    statictramp_entry_sysv_regs2,
                    statictramp_entry_sysv_regs3,
                    statictramp_entry_sysv_regs4,
                    statictramp_entry_sysv_regs5,
                    statictramp_entry_sysv_regs6,
                ];
                REGS[usize::from(n)] as *const () as usize
            }
            EntryKind::Win64 => statictramp_entry_win64 as *const () as usize,
        }
    }
}

/// What the x86_64 entries read from a compiled plan, at the `PLAN_*`
/// offsets of asm/x86_64/layout.h (checked below). It is the first field
/// of the runtime's `Compiled`, so the entries find it at the plan pointer.
#[repr(C)]
pub struct EntryData {
    /// Bytes of scratch the entry reserves (multiple of 16).
    pub scratch: u32,
    /// Number of arguments.
    pub nargs: u32,
    /// Offset of the return buffer in scratch.
    pub ret_buf: u32,
    /// Fast entry: how to load the return value (FAST_RET_*).
    pub fast_ret: u32,
    /// Fast entry: which register files to save (FAST_SAVE_* bits).
    pub fast_save: u32,
    /// Fast entry: address of the return sequence for `fast_ret`.
    pub fast_target: usize,
    /// Fast entry: each argument's address relative to the entry's rbp
    /// (negative: in the saved-register frame; 16 and up: caller's stack).
    pub fast_offs: [i16; FAST_MAX_ARGS],
}

const _: () = {
    assert!(offset_of!(EntryData, scratch) == PLAN_SCRATCH);
    assert!(offset_of!(EntryData, nargs) == PLAN_NARGS);
    assert!(offset_of!(EntryData, ret_buf) == PLAN_RET_BUF);
    assert!(offset_of!(EntryData, fast_ret) == PLAN_FAST_RET);
    assert!(offset_of!(EntryData, fast_save) == PLAN_FAST_SAVE);
    assert!(offset_of!(EntryData, fast_target) == PLAN_FAST_TARGET);
    assert!(offset_of!(EntryData, fast_offs) == PLAN_FAST_OFFS);
};

/// The fast entry's return code for a plan's return, if it has one.
fn fast_ret(ret: &RetLoc) -> Option<u32> {
    use frame::{RET_RAX, RET_RDX, RET_XMM0, RET_XMM1};
    let code = match ret {
        RetLoc::Void => FAST_RET_VOID,
        RetLoc::Memory { ptr, echo } if *ptr == frame::GPR && *echo == RET_RAX => FAST_RET_MEM,
        RetLoc::Regs(moves) if moves.len() == 1 => {
            let m = moves[0];
            match (m.at, m.dst, m.len, m.ext) {
                (0, RET_RAX, 8, _) => FAST_RET_I64,
                (0, RET_RAX, 4, Ext::Sign) => FAST_RET_S32,
                (0, RET_RAX, 4, Ext::Zero) => FAST_RET_U32,
                (0, RET_RAX, 2, Ext::Sign) => FAST_RET_S16,
                (0, RET_RAX, 2, Ext::Zero) => FAST_RET_U16,
                (0, RET_RAX, 1, Ext::Sign) => FAST_RET_S8,
                (0, RET_RAX, 1, Ext::Zero) => FAST_RET_U8,
                (0, RET_XMM0, 8, _) => FAST_RET_DOUBLE,
                (0, RET_XMM0, 4, _) => FAST_RET_FLOAT,
                _ => return None,
            }
        }
        // Two whole eightbytes, in buffer order.
        RetLoc::Regs(moves) if moves.len() == 2 => {
            let (a, b) = (moves[0], moves[1]);
            if (a.at, a.len, b.at, b.len) != (0, 8, 8, 8) {
                return None;
            }
            match (a.dst, b.dst) {
                (RET_RAX, RET_RDX) => FAST_RET_RAX_RDX,
                (RET_XMM0, RET_XMM1) => FAST_RET_XMM0_XMM1,
                (RET_RAX, RET_XMM0) => FAST_RET_RAX_XMM0,
                (RET_XMM0, RET_RAX) => FAST_RET_XMM0_RAX,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(code as u32)
}

/// The fast entry's rbp-relative address of an argument, and the register
/// file it needs saved, if the fast entry can pass it.
fn fast_arg(loc: &ArgLoc) -> Option<(i16, u32)> {
    match *loc {
        ArgLoc::Frame(off) => {
            let save = if off < frame::SSE {
                FAST_SAVE_GPR
            } else {
                FAST_SAVE_SSE
            };
            Some((
                i16::try_from(off as i64 - FRAME_SIZE as i64).ok()?,
                save as u32,
            ))
        }
        // Stack arguments start above the saved rbp and the return address.
        ArgLoc::Stack(off) => Some((i16::try_from(off as i64 + 16).ok()?, 0)),
        _ => None,
    }
}

/// Picks the entry for a classified signature and builds what it reads.
pub fn select(sig: &Signature, plan: &Plan) -> (EntryData, EntryKind) {
    let mut fast_offs = [0i16; FAST_MAX_ARGS];
    let mut fast_save = 0u32;
    let mut fast = sig.abi == Abi::SysV64 && plan.args.len() <= FAST_MAX_ARGS;
    for (i, loc) in plan.args.iter().enumerate() {
        match fast_arg(loc) {
            Some((off, save)) if fast => {
                fast_offs[i] = off;
                fast_save |= save;
            }
            _ => fast = false,
        }
    }
    let ret_code = fast_ret(&plan.ret);
    if ret_code == Some(FAST_RET_MEM as u32) {
        fast_save |= FAST_SAVE_GPR as u32; // the hidden pointer is in rdi
    }
    let void0 = plan.args.is_empty() && plan.ret == RetLoc::Void;
    // Argument i whole in the i-th integer register, for every i (one
    // eightbyte each: a 16-byte struct also starts at its register's
    // slot but takes the next one too): the fast entry's avalue[] with
    // the addresses fixed.
    let in_order = plan.args.len() <= REGS_MAX_ARGS
        && plan.args.len() == sig.args.len()
        && plan
            .args
            .iter()
            .zip(&sig.args)
            .enumerate()
            .all(|(i, (loc, t))| *loc == ArgLoc::Frame(frame::GPR + 8 * i as u32) && t.size <= 8);
    let entry = match (sig.abi, fast, ret_code) {
        (Abi::SysV64, true, Some(_)) if void0 => EntryKind::SysVVoid0,
        (Abi::SysV64, true, Some(r)) if in_order && r != FAST_RET_MEM as u32 => {
            EntryKind::SysVRegs(plan.args.len() as u8)
        }
        (Abi::SysV64, true, Some(_)) => EntryKind::SysVFast,
        (Abi::SysV64, _, _) => EntryKind::SysV,
        (Abi::Win64 | Abi::GnuW64, _, _) => EntryKind::Win64,
        (other, _, _) => unreachable!("plan::intern refuses {other:?} on x86_64"),
    };
    let data = EntryData {
        scratch: plan.scratch_size,
        nargs: plan.args.len() as u32,
        ret_buf: plan.ret_buf,
        fast_ret: ret_code.unwrap_or(0),
        fast_save,
        fast_target: fast_target(ret_code.unwrap_or(0)),
        fast_offs,
    };
    (data, entry)
}
