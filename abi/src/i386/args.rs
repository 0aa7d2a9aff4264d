//! Where each argument is, and where the hidden return pointer is, under an
//! i386 convention ([`super::conv`]); and how many stack bytes the callee
//! pops.
//!
//! Two passes, because a Pascal convention's hidden pointer comes after
//! the declared parameters: its register (or stack slot) is known only once
//! they have taken theirs, and on the stack it is the last word pushed,
//! which moves every other stack argument.
//!
//! 1. Registers, in argument order (the hidden pointer first for the C
//!    conventions, last for the Pascal ones), by the convention's
//!    [`RegRule`].
//! 2. Stack offsets. Every stack argument takes its size rounded up to 4
//!    bytes, at the next multiple of 4 whatever its alignment (the i386
//!    System V ABI: a `double` or `long long` at any multiple of 4; a
//!    struct too, even one stated 16-aligned: GCC since 4.6 and clang
//!    align a stack argument to 16 only if it holds an SSE vector,
//!    `_Float128` or `_Decimal128`, none of which a libffi type can hold;
//!    libffi 16-aligns such structs, docs/design.md lists it). Right to
//!    left: the hidden pointer (if on the stack) at 0, then the arguments
//!    in order. Left to right: the hidden pointer at 0, then the arguments
//!    from the last to the first.

use super::conv::{Conv, Order, Pop, RegRule, StructRet};
use super::frame::{RET_EAX, SLOT};
use super::ret::Ret;
use crate::scratch::to_u32;
use crate::{ArgLoc, ClassifyError, Kind, RetLoc, Type};

/// The arguments' locations, the return delivery and the callee's pop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    pub args: Vec<ArgLoc>,
    pub ret: RetLoc,
    pub callee_pop: u32,
}

/// Whether `t` may go in an argument register: an integer or pointer of at
/// most 4 bytes (GCC: QImode, HImode, SImode scalars; Delphi: ordinals and
/// pointers; libffi's closures: `z <= FFI_SIZEOF_ARG`, not a struct, not
/// `float`, `ffi.c:498-500`).
fn eligible(t: &Type) -> bool {
    matches!(
        t.kind,
        Kind::U8 | Kind::S8 | Kind::U16 | Kind::S16 | Kind::U32 | Kind::S32 | Kind::Pointer
    )
}

/// Whether GCC gives `t` a floating-point machine mode (SF, DF, XF, SC,
/// DC, XC): the floating kinds, and a struct whose one member of nonzero
/// size fills it and has such a mode (gcc/stor-layout.cc
/// `compute_record_mode`: a record takes the mode of a field as large as
/// itself; otherwise an integer mode of its size, or BLKmode). A struct
/// with several members of nonzero size (a union as ctypes lists it, or
/// bitfields sharing storage) gets an integer mode or BLKmode, as GCC gives
/// a union (a union never takes a float mode).
pub(crate) fn gcc_float_mode(t: &Type) -> bool {
    match &t.kind {
        Kind::Float | Kind::Double | Kind::LongDouble | Kind::Complex(_) => true,
        Kind::Struct(elems) => {
            let mut sized = elems.iter().filter(|e| e.size > 0);
            match (sized.next(), sized.next()) {
                (Some(only), None) => only.size == t.size && gcc_float_mode(only),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Registers GCC's `function_arg_advance_32` uses up for an argument that
/// does not go in one (it still goes on the stack): `ceil(size / 4)` for a
/// 64-bit integer or a struct of integer mode or BLKmode, none for the
/// floating kinds and float-mode structs.
fn gcc_words_used(t: &Type) -> usize {
    let uses = match t.kind {
        Kind::U64 | Kind::S64 => true,
        Kind::Struct(_) => !gcc_float_mode(t),
        _ => false,
    };
    if uses {
        t.size.div_ceil(SLOT) as usize
    } else {
        0
    }
}

/// Bytes a stack argument of `size` bytes takes.
fn slot_bytes(size: u64) -> u64 {
    size.next_multiple_of(SLOT)
}

/// Places `args` and the hidden return pointer (if `ret` needs one) under
/// `conv`.
pub(crate) fn place(conv: &Conv, args: &[Type], ret: Ret) -> Result<Placed, ClassifyError> {
    let regs = conv.regs;
    let hidden = ret == Ret::Hidden;

    // Pass 1: registers. `next` is the next register's index; GCC's
    // `cum->nregs` is `regs.len() - next`.
    let mut next = 0;
    let mut ptr_reg = None;
    if hidden && conv.sret == StructRet::HiddenFirst && !regs.is_empty() {
        // GCC passes the hidden pointer as an implicit first argument: a
        // pointer, so the first register (fastcall: ecx, edx left for the
        // arguments; thiscall: ecx, and `this` goes on the stack).
        ptr_reg = Some(regs[0]);
        next = 1;
    }
    let mut in_reg: Vec<Option<u32>> = Vec::with_capacity(args.len());
    for t in args {
        if eligible(t) && next < regs.len() {
            in_reg.push(Some(regs[next]));
            next += 1;
            continue;
        }
        if conv.rule == RegRule::Gcc {
            next = (next + gcc_words_used(t)).min(regs.len());
        }
        in_reg.push(None);
    }
    if hidden && conv.sret == StructRet::SmallOrHiddenLast && next < regs.len() {
        // Delphi: an extra pointer parameter after the declared ones.
        ptr_reg = Some(regs[next]);
    }
    let ptr_on_stack = hidden && ptr_reg.is_none();

    // Pass 2: stack offsets.
    let mut locs = vec![ArgLoc::Stack(0); args.len()];
    let mut off: u64 = if ptr_on_stack { SLOT } else { 0 };
    let order: Vec<usize> = match conv.order {
        Order::RightToLeft => (0..args.len()).collect(),
        Order::LeftToRight => (0..args.len()).rev().collect(),
    };
    for i in order {
        let t = &args[i];
        locs[i] = match in_reg[i] {
            Some(reg) => ArgLoc::Frame(reg),
            None => {
                let at = to_u32(off)?;
                off += slot_bytes(t.size);
                ArgLoc::Stack(at)
            }
        };
    }
    let end = to_u32(off)?;

    let ret = match (ret, ptr_reg) {
        (Ret::Value(loc), _) => loc,
        (Ret::Hidden, Some(reg)) => RetLoc::Memory {
            ptr: reg,
            echo: RET_EAX,
        },
        (Ret::Hidden, None) => RetLoc::MemoryStack {
            ptr: 0,
            echo: RET_EAX,
        },
    };
    let callee_pop = match conv.pop {
        Pop::All => end,
        Pop::HiddenPtr if ptr_on_stack => SLOT as u32,
        Pop::HiddenPtr | Pop::Nothing => 0,
    };
    Ok(Placed {
        args: locs,
        ret,
        callee_pop,
    })
}
