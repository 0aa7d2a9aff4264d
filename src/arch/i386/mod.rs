//! i386 (x86-32): everything the arch-neutral runtime needs from this
//! architecture (the interface is listed in src/arch/mod.rs). Its
//! classification is statictramp-abi's `i386` module, its assembly is
//! asm/i386/: one register-free slot for every convention (the closure
//! arrives on the stack), a generic entry that hands the Plan to the Rust
//! dispatcher, and fast entries that call the handler themselves.
#![allow(unsafe_code)]

pub mod tls;

use crate::layout::{
    FAST_AVALUE, FAST_BUF_PTR, FAST_MAX_ARGS, FAST_POP_4, FAST_POP_COUNT, FAST_POP_N,
    FAST_POP_NONE, FAST_RESERVE, FAST_RET_COUNT, FAST_RET_DOUBLE, FAST_RET_FLOAT, FAST_RET_I32,
    FAST_RET_I64, FAST_RET_LDOUBLE, FAST_RET_MEM, FAST_RET_S8, FAST_RET_S16, FAST_RET_U8,
    FAST_RET_U16, FAST_RET_VOID, FAST_SAVED_EAX, FAST_SAVED_ECX, FAST_SAVED_EDX, FAST_UNROLLED_MAX,
    FRAME_RET_EAX, FRAME_STACK_PTR, HDR_ENTRY, PLAN_FAST_OFFS, PLAN_FAST_RVALUE, PLAN_FAST_TARGET,
    PLAN_NARGS, PLAN_POP, PLAN_SCRATCH,
};
use crate::record::TRAMP_SIZE;
use statictramp_abi::i386::frame;
use statictramp_abi::{Abi, Arch, ArgLoc, Ext, Plan, RecordLayout, RetLoc, Signature};
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

/// What the i386 entries read from a compiled plan, at the `PLAN_*`
/// offsets of asm/i386/layout.h (checked below).
#[repr(C)]
pub struct EntryData {
    /// Generic entry: bytes of scratch it reserves (multiple of 16).
    pub scratch: u32,
    /// Bytes of the caller's stack arguments the entry pops on return.
    pub callee_pop: u32,
    /// Fast entries: the number of arguments.
    pub nargs: u32,
    /// Fast entries: ebp-relative offset of the word holding rvalue (the
    /// entry's buffer pointer, or the caller's hidden pointer).
    pub fast_rvalue: i32,
    /// Fast entries: the return sequence (statictramp_i386_fast_ret_table).
    pub fast_target: usize,
    /// Fast entries: each argument's address relative to the entry's ebp
    /// (negative: a saved register; 16 and up: the caller's stack).
    pub fast_offs: [i16; FAST_MAX_ARGS],
}

const _: () = {
    assert!(offset_of!(EntryData, scratch) == PLAN_SCRATCH);
    assert!(offset_of!(EntryData, callee_pop) == PLAN_POP);
    assert!(offset_of!(EntryData, nargs) == PLAN_NARGS);
    assert!(offset_of!(EntryData, fast_rvalue) == PLAN_FAST_RVALUE);
    assert!(offset_of!(EntryData, fast_target) == PLAN_FAST_TARGET);
    assert!(offset_of!(EntryData, fast_offs) == PLAN_FAST_OFFS);
    // The fast frame holds avalue[FAST_MAX_ARGS] below its four locals.
    assert!(FAST_AVALUE - 16 + 4 * FAST_MAX_ARGS + FAST_BUF_PTR <= FAST_RESERVE);
};

/// The entries (asm/i386/).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `statictramp_entry_i386`: every convention, table driven (calls
    /// the Rust dispatcher).
    Generic,
    /// `statictramp_entry_i386_fast`: whole arguments, a fast return.
    Fast,
    /// `statictramp_entry_i386_fast{n}`: as `Fast` with n arguments
    /// (n <= FAST_UNROLLED_MAX) and the return not in memory.
    Unrolled(u8),
    /// `statictramp_entry_i386_void0`: no arguments, no value, no pop.
    Void0,
}

unsafe extern "C" {
    fn statictramp_entry_i386();
    fn statictramp_entry_i386_fast();
    fn statictramp_entry_i386_fast0();
    fn statictramp_entry_i386_fast1();
    fn statictramp_entry_i386_fast2();
    fn statictramp_entry_i386_fast3();
    fn statictramp_entry_i386_fast4();
    fn statictramp_entry_i386_void0();
    /// The fast entries' return sequences: FAST_RET_COUNT * FAST_POP_COUNT
    /// offsets from the table itself (asm/i386/entry_fast.S).
    static statictramp_i386_fast_ret_table: [i32; FAST_RET_COUNT * FAST_POP_COUNT];
}

impl EntryKind {
    /// The entry's address, stored in closure headers.
    pub fn address(self) -> usize {
        const UNROLLED: [unsafe extern "C" fn(); FAST_UNROLLED_MAX + 1] = [
            statictramp_entry_i386_fast0,
            statictramp_entry_i386_fast1,
            statictramp_entry_i386_fast2,
            statictramp_entry_i386_fast3,
            statictramp_entry_i386_fast4,
        ];
        match self {
            EntryKind::Generic => statictramp_entry_i386 as *const () as usize,
            EntryKind::Fast => statictramp_entry_i386_fast as *const () as usize,
            EntryKind::Unrolled(n) => UNROLLED[usize::from(n)] as *const () as usize,
            EntryKind::Void0 => statictramp_entry_i386_void0 as *const () as usize,
        }
    }
}

/// The address of the return sequence for return code `ret` (FAST_RET_*)
/// and pop code `pop` (FAST_POP_*).
fn fast_target(ret: usize, pop: usize) -> usize {
    let index = pop * FAST_RET_COUNT + ret;
    let table = (&raw const statictramp_i386_fast_ret_table) as usize;
    // SAFETY: the table is FAST_RET_COUNT * FAST_POP_COUNT read-only i32s
    // in our image (the assembler checks its size), and `index` is below
    // that (the slice index panics otherwise).
    let off = unsafe { (*(&raw const statictramp_i386_fast_ret_table))[index] };
    table.wrapping_add_signed(off as isize)
}

/// The fast entries' ebp-relative address of a saved register (`frame`
/// offset of eax, edx or ecx).
fn saved_register(frame_off: u32) -> Option<i16> {
    let below = match frame_off {
        frame::EAX => FAST_SAVED_EAX,
        frame::EDX => FAST_SAVED_EDX,
        frame::ECX => FAST_SAVED_ECX,
        _ => return None,
    };
    Some(-(below as i16))
}

/// Stack arguments start above the saved ebp, the slot's two words and
/// the return address.
fn stack_slot(off: u32) -> Option<i16> {
    i16::try_from(u64::from(off) + 16).ok()
}

/// The fast return code of a plan's return and the ebp-relative word
/// holding rvalue, if a fast entry can deliver it.
fn fast_ret(ret: &RetLoc) -> Option<(usize, i32)> {
    let buffer = -(FAST_BUF_PTR as i32);
    let code = match ret {
        RetLoc::Void => FAST_RET_VOID,
        RetLoc::X87Float => FAST_RET_FLOAT,
        RetLoc::X87Double => FAST_RET_DOUBLE,
        RetLoc::X87 => FAST_RET_LDOUBLE,
        RetLoc::Regs(moves) => match moves.as_slice() {
            [m] if m.at == 0 && m.dst == frame::RET_EAX => match (m.len, m.ext) {
                (1, Ext::Zero) => FAST_RET_U8,
                (1, Ext::Sign) => FAST_RET_S8,
                (2, Ext::Zero) => FAST_RET_U16,
                (2, Ext::Sign) => FAST_RET_S16,
                (4, _) => FAST_RET_I32,
                _ => return None,
            },
            [lo, hi]
                if (lo.at, lo.len, lo.dst) == (0, 4, frame::RET_EAX)
                    && (hi.at, hi.len, hi.dst) == (4, 4, frame::RET_EDX) =>
            {
                FAST_RET_I64
            }
            _ => return None,
        },
        RetLoc::Memory { ptr, echo } if *echo == frame::RET_EAX => {
            return Some((FAST_RET_MEM, i32::from(saved_register(*ptr)?)));
        }
        RetLoc::MemoryStack { ptr, echo } if *echo == frame::RET_EAX => {
            return Some((FAST_RET_MEM, i32::from(stack_slot(*ptr)?)));
        }
        _ => return None,
    };
    Some((code, buffer))
}

/// Picks the entry for a classified signature and builds what it reads;
/// with `generic`, the entry that calls the Rust dispatcher.
pub fn select_entry(_sig: &Signature, plan: &Plan, generic: bool) -> (EntryData, EntryKind) {
    let mut data = EntryData {
        scratch: plan.scratch_size,
        callee_pop: plan.callee_pop,
        nargs: plan.args.len() as u32,
        fast_rvalue: 0,
        fast_target: 0,
        fast_offs: [0; FAST_MAX_ARGS],
    };
    let offs: Option<Vec<i16>> = plan
        .args
        .iter()
        .map(|loc| match *loc {
            ArgLoc::Frame(off) => saved_register(off),
            ArgLoc::Stack(off) => stack_slot(off),
            _ => None,
        })
        .collect();
    let (Some(offs), Some((ret, rvalue)), false) = (offs, fast_ret(&plan.ret), generic) else {
        return (data, EntryKind::Generic);
    };
    if offs.len() > FAST_MAX_ARGS {
        return (data, EntryKind::Generic);
    }
    let pop = match plan.callee_pop {
        0 => FAST_POP_NONE,
        4 => FAST_POP_4,
        _ => FAST_POP_N,
    };
    data.fast_offs[..offs.len()].copy_from_slice(&offs);
    data.fast_rvalue = rvalue;
    data.fast_target = fast_target(ret, pop);
    let kind = if offs.is_empty() && ret == FAST_RET_VOID && pop == FAST_POP_NONE {
        EntryKind::Void0
    } else if offs.len() <= FAST_UNROLLED_MAX && ret != FAST_RET_MEM {
        EntryKind::Unrolled(offs.len() as u8)
    } else {
        EntryKind::Fast
    };
    (data, kind)
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
///   50                 pushl %eax              ; the caller's eax (the entry reloads it)
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

#[cfg(test)]
mod tests {
    use super::*;
    use statictramp_abi::Type;

    fn select(abi: Abi, args: Vec<Type>, ret: Type, generic: bool) -> (EntryData, EntryKind) {
        let sig = Signature { abi, args, ret };
        let plan = statictramp_abi::classify(&sig).expect("classify");
        select_entry(&sig, &plan, generic)
    }

    #[test]
    fn every_return_sequence_is_an_endbr32_landing_pad() {
        let mut seen = std::collections::HashSet::new();
        for pop in 0..FAST_POP_COUNT {
            for ret in 0..FAST_RET_COUNT {
                let at = fast_target(ret, pop);
                // SAFETY: the sequences are code in this image (mapped
                // readable and executable); 4 bytes are inside one.
                let head = unsafe { *(at as *const [u8; 4]) };
                assert_eq!(head, [0xf3, 0x0f, 0x1e, 0xfb], "ret {ret} pop {pop}");
                assert!(seen.insert(at), "ret {ret} pop {pop} shares a sequence");
            }
        }
    }

    #[test]
    fn plans_get_the_entry_their_shape_allows() {
        let pair = Type::aggregate(vec![Type::S32, Type::S32], 8, 4).unwrap();
        // void(void): void0, whatever the convention.
        for abi in [Abi::I386SysV, Abi::I386StdCall, Abi::I386Register] {
            let (_, k) = select(abi, vec![], Type::VOID, false);
            assert_eq!(k, EntryKind::Void0, "{abi:?}");
        }
        // int(int,int), SYSV: both on the stack, no pop.
        let (d, k) = select(Abi::I386SysV, vec![Type::S32; 2], Type::S32, false);
        assert_eq!(k, EntryKind::Unrolled(2));
        assert_eq!(&d.fast_offs[..2], &[16, 20]);
        assert_eq!(d.fast_target, fast_target(FAST_RET_I32, FAST_POP_NONE));
        // REGISTER: eax and edx, saved below ebp.
        let (d, k) = select(Abi::I386Register, vec![Type::S32; 2], Type::S32, false);
        assert_eq!(k, EntryKind::Unrolled(2));
        assert_eq!(
            &d.fast_offs[..2],
            &[-(FAST_SAVED_EAX as i16), -(FAST_SAVED_EDX as i16)]
        );
        // STDCALL pops its 8 bytes with the PLAN_POP sequence.
        let (d, _) = select(Abi::I386StdCall, vec![Type::S32; 2], Type::S32, false);
        assert_eq!(d.fast_target, fast_target(FAST_RET_I32, FAST_POP_N));
        assert_eq!(d.callee_pop, 8);
        // A struct return: the hidden pointer on the stack, `ret $4`, the
        // looping entry (the unrolled ones have no memory return).
        let (d, k) = select(Abi::I386SysV, vec![pair.clone()], pair, false);
        assert_eq!(k, EntryKind::Fast);
        assert_eq!(d.fast_rvalue, 16);
        assert_eq!(d.fast_offs[0], 20);
        assert_eq!(d.fast_target, fast_target(FAST_RET_MEM, FAST_POP_4));
        // x87 and 64-bit returns.
        let (d, _) = select(Abi::I386SysV, vec![], crate::types::DOUBLE, false);
        assert_eq!(d.fast_target, fast_target(FAST_RET_DOUBLE, FAST_POP_NONE));
        let (d, _) = select(Abi::I386SysV, vec![], crate::types::S64, false);
        assert_eq!(d.fast_target, fast_target(FAST_RET_I64, FAST_POP_NONE));
        let (d, _) = select(Abi::I386SysV, vec![], Type::S8, false);
        assert_eq!(d.fast_target, fast_target(FAST_RET_S8, FAST_POP_NONE));
        // Past FAST_MAX_ARGS, or when asked: the generic entry.
        let (_, k) = select(
            Abi::I386SysV,
            vec![Type::S32; FAST_MAX_ARGS],
            Type::S32,
            false,
        );
        assert_eq!(k, EntryKind::Fast);
        let (_, k) = select(
            Abi::I386SysV,
            vec![Type::S32; FAST_MAX_ARGS + 1],
            Type::S32,
            false,
        );
        assert_eq!(k, EntryKind::Generic);
        let (_, k) = select(Abi::I386SysV, vec![Type::S32; 2], Type::S32, true);
        assert_eq!(k, EntryKind::Generic);
    }
}
