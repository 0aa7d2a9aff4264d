//! Compiled plans: a classified signature plus the few fields the assembly
//! entries read, interned so that each signature is classified once.
#![allow(unsafe_code)]

use crate::layout::{
    FAST_MAX_ARGS, FAST_RET_DOUBLE, FAST_RET_FLOAT, FAST_RET_I64, FAST_RET_S8, FAST_RET_S16,
    FAST_RET_S32, FAST_RET_U8, FAST_RET_U16, FAST_RET_U32, FAST_RET_VOID, PLAN_FAST_OFFS,
    PLAN_FAST_RET, PLAN_NARGS, PLAN_RET_BUF, PLAN_SCRATCH,
};
use statictramp_abi::x86_64::frame;
use statictramp_abi::{Abi, ArgLoc, ClassifyError, Ext, Plan, RetLoc, Signature};
use std::collections::HashMap;
use std::mem::offset_of;
use std::sync::{Mutex, OnceLock};

/// Which assembly entry serves a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `statictramp_entry_sysv`: table-driven, any SysV signature.
    SysV,
    /// `statictramp_entry_sysv_fast`: registers only, scalar or void return.
    SysVFast,
    /// `statictramp_entry_win64`.
    Win64,
}

unsafe extern "C" {
    fn statictramp_entry_sysv();
    fn statictramp_entry_sysv_fast();
    fn statictramp_entry_win64();
}

impl EntryKind {
    /// The entry's address, stored in closure headers.
    pub fn address(self) -> usize {
        match self {
            EntryKind::SysV => statictramp_entry_sysv as *const () as usize,
            EntryKind::SysVFast => statictramp_entry_sysv_fast as *const () as usize,
            EntryKind::Win64 => statictramp_entry_win64 as *const () as usize,
        }
    }
}

/// A plan ready for the entries. The leading `#[repr(C)]` fields are read by
/// the assembly at the offsets layout.h gives (checked below).
#[repr(C)]
pub struct Compiled {
    /// Bytes of scratch the entry reserves (multiple of 16).
    pub scratch: u32,
    /// Number of arguments.
    pub nargs: u32,
    /// Offset of the return buffer in scratch.
    pub ret_buf: u32,
    /// Fast entry: how to load the return value (FAST_RET_*).
    pub fast_ret: u32,
    /// Fast entry: frame offset of each argument.
    pub fast_offs: [u8; FAST_MAX_ARGS],
    /// The entry this plan uses.
    pub entry: EntryKind,
    /// The full classification, for the generic dispatcher.
    pub plan: Plan,
    /// The signature it was made for.
    pub sig: Signature,
}

const _: () = {
    assert!(offset_of!(Compiled, scratch) == PLAN_SCRATCH);
    assert!(offset_of!(Compiled, nargs) == PLAN_NARGS);
    assert!(offset_of!(Compiled, ret_buf) == PLAN_RET_BUF);
    assert!(offset_of!(Compiled, fast_ret) == PLAN_FAST_RET);
    assert!(offset_of!(Compiled, fast_offs) == PLAN_FAST_OFFS);
};

/// The fast entry's return code for a plan's return, if it has one.
fn fast_ret(ret: &RetLoc) -> Option<u32> {
    let code = match ret {
        RetLoc::Void => FAST_RET_VOID,
        RetLoc::Regs(moves) if moves.len() == 1 => {
            let m = moves[0];
            match (m.dst, m.len, m.ext) {
                (frame::RET_RAX, 8, _) => FAST_RET_I64,
                (frame::RET_RAX, 4, Ext::Sign) => FAST_RET_S32,
                (frame::RET_RAX, 4, Ext::Zero) => FAST_RET_U32,
                (frame::RET_RAX, 2, Ext::Sign) => FAST_RET_S16,
                (frame::RET_RAX, 2, Ext::Zero) => FAST_RET_U16,
                (frame::RET_RAX, 1, Ext::Sign) => FAST_RET_S8,
                (frame::RET_RAX, 1, Ext::Zero) => FAST_RET_U8,
                (frame::RET_XMM0, 8, _) => FAST_RET_DOUBLE,
                (frame::RET_XMM0, 4, _) => FAST_RET_FLOAT,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(code as u32)
}

impl Compiled {
    /// Builds the entry-facing form of a plan and picks its entry.
    pub fn new(sig: Signature, plan: Plan) -> Compiled {
        let mut fast_offs = [0u8; FAST_MAX_ARGS];
        let mut fast = sig.abi == Abi::SysV64 && plan.args.len() <= FAST_MAX_ARGS;
        for (i, loc) in plan.args.iter().enumerate() {
            match loc {
                ArgLoc::Frame(off) if fast && *off < 256 => fast_offs[i] = *off as u8,
                _ => fast = false,
            }
        }
        let ret_code = fast_ret(&plan.ret);
        let entry = match (sig.abi, fast, ret_code) {
            (Abi::SysV64, true, Some(_)) => EntryKind::SysVFast,
            (Abi::SysV64, _, _) => EntryKind::SysV,
            (Abi::Win64 | Abi::GnuW64, _, _) => EntryKind::Win64,
        };
        Compiled {
            scratch: plan.scratch_size,
            nargs: plan.args.len() as u32,
            ret_buf: plan.ret_buf,
            fast_ret: ret_code.unwrap_or(0),
            fast_offs,
            entry,
            plan,
            sig,
        }
    }
}

type Interned = HashMap<Signature, &'static Compiled>;

fn interned() -> &'static Mutex<Interned> {
    static PLANS: OnceLock<Mutex<Interned>> = OnceLock::new();
    PLANS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The compiled plan for `sig`, classified on first use and shared by every
/// closure of the same signature. Plans live for the rest of the process.
pub fn intern(sig: Signature) -> Result<&'static Compiled, ClassifyError> {
    let mut map = interned().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = map.get(&sig) {
        return Ok(c);
    }
    let plan = statictramp_abi::classify(&sig)?;
    let compiled: &'static Compiled = Box::leak(Box::new(Compiled::new(sig.clone(), plan)));
    map.insert(sig, compiled);
    Ok(compiled)
}

/// Number of distinct signatures seen.
pub fn interned_count() -> usize {
    interned().lock().unwrap_or_else(|e| e.into_inner()).len()
}
