//! Compiled plans: a classified signature plus the few fields the assembly
//! entries read, interned so that each signature is classified once.
#![allow(unsafe_code)]

use crate::cif::{self, CifError, FfiCif};
use crate::layout::{
    FAST_MAX_ARGS, FAST_RET_COUNT, FAST_RET_DOUBLE, FAST_RET_FLOAT, FAST_RET_I64, FAST_RET_MEM,
    FAST_RET_RAX_RDX, FAST_RET_RAX_XMM0, FAST_RET_S8, FAST_RET_S16, FAST_RET_S32, FAST_RET_U8,
    FAST_RET_U16, FAST_RET_U32, FAST_RET_VOID, FAST_RET_XMM0_RAX, FAST_RET_XMM0_XMM1,
    FAST_SAVE_GPR, FAST_SAVE_SSE, FRAME_SIZE, PLAN_FAST_OFFS, PLAN_FAST_RET, PLAN_FAST_SAVE,
    PLAN_FAST_TARGET, PLAN_NARGS, PLAN_RET_BUF, PLAN_SCRATCH, REGS_MAX_ARGS,
};
use crate::thread_state;
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
    /// Fast entry: which register files to save (FAST_SAVE_* bits).
    pub fast_save: u32,
    /// Fast entry: address of the return sequence for `fast_ret`.
    pub fast_target: usize,
    /// Fast entry: each argument's address relative to the entry's rbp
    /// (negative: in the saved-register frame; 16 and up: caller's stack).
    pub fast_offs: [i16; FAST_MAX_ARGS],
    /// The entry this plan uses.
    pub entry: EntryKind,
    /// Its address (`entry.address()`), what prep stores in headers.
    pub entry_addr: usize,
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
    assert!(offset_of!(Compiled, fast_save) == PLAN_FAST_SAVE);
    assert!(offset_of!(Compiled, fast_target) == PLAN_FAST_TARGET);
    assert!(offset_of!(Compiled, fast_offs) == PLAN_FAST_OFFS);
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

impl Compiled {
    /// Builds the entry-facing form of a plan and picks its entry.
    pub fn new(sig: Signature, plan: Plan) -> Compiled {
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
                .all(|(i, (loc, t))| {
                    *loc == ArgLoc::Frame(frame::GPR + 8 * i as u32) && t.size <= 8
                });
        let entry = match (sig.abi, fast, ret_code) {
            (Abi::SysV64, true, Some(_)) if void0 => EntryKind::SysVVoid0,
            (Abi::SysV64, true, Some(r)) if in_order && r != FAST_RET_MEM as u32 => {
                EntryKind::SysVRegs(plan.args.len() as u8)
            }
            (Abi::SysV64, true, Some(_)) => EntryKind::SysVFast,
            (Abi::SysV64, _, _) => EntryKind::SysV,
            (Abi::Win64 | Abi::GnuW64, _, _) => EntryKind::Win64,
        };
        Compiled {
            scratch: plan.scratch_size,
            nargs: plan.args.len() as u32,
            ret_buf: plan.ret_buf,
            fast_ret: ret_code.unwrap_or(0),
            fast_save,
            fast_target: fast_target(ret_code.unwrap_or(0)),
            fast_offs,
            entry,
            entry_addr: entry.address(),
            plan,
            sig,
        }
    }
}

type Interned = HashMap<Signature, &'static Compiled>;

fn interned() -> &'static Mutex<Interned> {
    static PLANS: OnceLock<Mutex<Interned>> = OnceLock::new();
    PLANS.get_or_init(|| {
        crate::fork::register();
        Mutex::new(HashMap::new())
    })
}

/// The plan table's lock, held across fork (src/fork.rs).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(interned().lock().unwrap_or_else(|e| e.into_inner()))
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

/// Why a cif has no plan.
#[derive(Debug)]
pub enum CifPlanError {
    Cif(CifError),
    Classify(ClassifyError),
}

/// Plans found by cif address, per thread, direct-mapped. A hit is
/// confirmed before use, because the cif at an address may have been
/// rewritten, or freed and reused for another signature: for signatures of
/// up to [`FP_TYPES`] scalar types, by comparing each type's raw fields with
/// those seen when the entry was made (a few loads per type); otherwise by
/// [`cif::describes`]. Either way no allocation, hashing or lock.
const CIF_CACHE: usize = 16;
/// Types (arguments + return) a fingerprint holds.
const FP_TYPES: usize = 8;

#[derive(Clone, Copy)]
struct Entry {
    cif: usize,
    plan: usize,
    abi: u32,
    nargs: u32,
    /// Types fingerprinted (nargs + 1), or 0: confirm with `describes`.
    fp_len: usize,
    /// Per type: (size, alignment | type << 16).
    fp: [(usize, u32); FP_TYPES],
}

const EMPTY: Entry = Entry {
    cif: 0,
    plan: 0,
    abi: 0,
    nargs: 0,
    fp_len: 0,
    fp: [(0, 0); FP_TYPES],
};

/// One thread's plans by cif address (part of its
/// [`crate::thread_state::ThreadState`]).
pub(crate) struct CifCache([Entry; CIF_CACHE]);

impl CifCache {
    pub(crate) const fn new() -> CifCache {
        CifCache([EMPTY; CIF_CACHE])
    }
}

/// The raw fields of a type that decide how `read_type` reads a scalar.
fn raw(t: &cif::FfiType) -> (usize, u32) {
    (t.size, u32::from(t.alignment) | u32::from(t.type_) << 16)
}

/// The fingerprint of a cif whose types are all scalars (no struct or
/// complex code), or `None`.
///
/// # Safety
/// `cif` is a readable cif that `read_cif` accepted.
unsafe fn fingerprint(cif: &FfiCif) -> Option<[(usize, u32); FP_TYPES]> {
    let n = cif.nargs as usize;
    if n + 1 > FP_TYPES {
        return None;
    }
    let mut fp = [(0, 0); FP_TYPES];
    for (i, slot) in fp.iter_mut().enumerate().take(n + 1) {
        // SAFETY: read_cif accepted the cif: arg_types has nargs non-NULL
        // entries and rtype is non-NULL, all readable.
        let t = unsafe {
            &*if i < n {
                *cif.arg_types.add(i)
            } else {
                cif.rtype
            }
        };
        // `read_type` ignores `elements` for every other code.
        if t.type_ == cif::code::STRUCT || t.type_ == cif::code::COMPLEX {
            return None;
        }
        *slot = raw(t);
    }
    Some(fp)
}

/// Whether `cif` still has the fingerprinted types of `e`.
///
/// # Safety
/// `cif` is a readable cif (as `read_cif` requires).
#[inline(always)]
unsafe fn same_types(cif: &FfiCif, e: &Entry) -> bool {
    if cif.abi != e.abi || cif.nargs != e.nargs {
        return false;
    }
    let n = e.nargs as usize;
    let args = cif.arg_types;
    if n > 0 && args.is_null() {
        return false;
    }
    // A hand-written loop: the iterator form cost about 25 instructions a
    // type on this path (every prep of a cached signature runs it).
    let mut i = 0;
    while i <= n {
        // SAFETY: arg_types has nargs entries (non-NULL, checked above);
        // index n is the return type.
        let t = if i < n {
            unsafe { *args.add(i) }
        } else {
            cif.rtype
        };
        if t.is_null() {
            return false;
        }
        // SAFETY: a non-NULL type pointer of a readable cif points to a
        // readable ffi_type.
        let t = unsafe { &*t };
        // Same size, alignment and code, and the code is not an aggregate
        // (the fingerprint holds none): `read_type` reads nothing else.
        if raw(t) != e.fp[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The compiled plan for a libffi cif.
///
/// # Safety
/// As [`cif::read_cif`].
#[inline]
pub unsafe fn for_cif(cif: *const FfiCif) -> Result<&'static Compiled, CifPlanError> {
    let key = cif as usize;
    let idx = (key >> 4) % CIF_CACHE;
    let cached = thread_state::with(|t| {
        let e = &t.plans.0[idx];
        if e.cif != key || key == 0 {
            return None;
        }
        // SAFETY: only pointers to leaked (immortal) Compiled plans are stored.
        let c: &'static Compiled = unsafe { &*(e.plan as *const Compiled) };
        let hit = if e.fp_len > 0 {
            // SAFETY: `cif` is non-NULL (it equals a stored key) and readable.
            unsafe { same_types(&*cif, e) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { describes(cif, &c.sig) }
        };
        hit.then_some(c)
    });
    if let Some(Some(c)) = cached {
        return Ok(c);
    }
    // SAFETY: forwarded contract.
    unsafe { for_cif_slow(cif, key, idx) }
}

/// [`cif::describes`], kept out of line: only signatures with aggregates
/// or more than FP_TYPES types need it.
#[inline(never)]
unsafe fn describes(cif: *const FfiCif, sig: &Signature) -> bool {
    // SAFETY: forwarded contract.
    unsafe { cif::describes(cif, sig) }
}

/// A cache miss: read and classify (or find the interned plan), then cache.
///
/// # Safety
/// As [`cif::read_cif`].
#[cold]
#[inline(never)]
unsafe fn for_cif_slow(
    cif: *const FfiCif,
    key: usize,
    idx: usize,
) -> Result<&'static Compiled, CifPlanError> {
    // SAFETY: forwarded contract.
    let sig = unsafe { cif::read_cif(cif) }.map_err(CifPlanError::Cif)?;
    let c = intern(sig).map_err(CifPlanError::Classify)?;
    // SAFETY: read_cif accepted `cif`, so it is non-NULL and readable.
    let cif = unsafe { &*cif };
    // SAFETY: as above.
    let fp = unsafe { fingerprint(cif) };
    let e = Entry {
        cif: key,
        plan: c as *const Compiled as usize,
        abi: cif.abi,
        nargs: cif.nargs,
        fp_len: if fp.is_some() {
            cif.nargs as usize + 1
        } else {
            0
        },
        fp: fp.unwrap_or([(0, 0); FP_TYPES]),
    };
    thread_state::with(|t| t.plans.0[idx] = e);
    Ok(c)
}
