//! The seven i386 conventions as data: which registers arguments take and
//! by what rule, the order of the stack arguments, who pops them, and how
//! a struct comes back. [`super::args`] and [`super::ret`] apply it.
//!
//! | ABI | registers | stack order | callee pops | struct return |
//! |---|---|---|---|---|
//! | `FFI_SYSV` | none | right to left | hidden pointer only (`ret $4`) | hidden pointer, first stack slot |
//! | `FFI_MS_CDECL` | none | right to left | nothing | hidden pointer, first stack slot |
//! | `FFI_STDCALL` | none | right to left | everything | hidden pointer, first stack slot |
//! | `FFI_FASTCALL` | ecx, edx (GCC rule) | right to left | its stack arguments | hidden pointer in ecx |
//! | `FFI_THISCALL` | ecx (GCC rule) | right to left | its stack arguments | hidden pointer in ecx |
//! | `FFI_PASCAL` | none | left to right | everything | 1, 2, 4 bytes in eax, else hidden pointer last |
//! | `FFI_REGISTER` | eax, edx, ecx (Delphi rule) | left to right | everything | 1, 2, 4 bytes in eax, else hidden pointer last |
//!
//! Sources: the C conventions as GCC 12 (`gcc -m32`, this machine's
//! Debian 12 compiler) emits them for `cdecl`, `__attribute__((ms_abi))`,
//! `stdcall`, `fastcall` and `thiscall` callers and callees (GCC's
//! `ix86_return_pops_args`, `ix86_keep_aggregate_return_pointer`,
//! `function_arg_32`/`function_arg_advance_32`); PASCAL and REGISTER as
//! the Delphi Language Guide ("Program control": parameters, function
//! results) describes them: no C compiler emits these two.

use super::frame::{FASTCALL_REGS, REGISTER_REGS, THISCALL_REGS};
use crate::Abi;

/// Which arguments take the convention's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegRule {
    /// GCC's `fastcall`/`thiscall` (`function_arg_32` and
    /// `function_arg_advance_32` in gcc/config/i386/i386.cc): an integer
    /// or pointer of at most 4 bytes takes the next register while one
    /// remains. A 64-bit integer, and a struct whose GCC machine mode is
    /// an integer mode or BLKmode, goes on the stack but uses up
    /// `ceil(size / 4)` registers (all that remain if fewer); `float`,
    /// `double`, `long double`, complex types and structs of one
    /// floating-point member (SF/DF/XF/SC/DC/XC mode) use none.
    Gcc,
    /// Delphi `register`: the first three parameters that qualify go in
    /// eax, edx, ecx; integers and pointers of at most 4 bytes qualify,
    /// reals, Int64 and structured types do not, and a parameter that does
    /// not qualify takes no register (later ones still may).
    Delphi,
}

/// The order of the stack arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// C: pushed right to left, the first argument nearest the return
    /// address (offset 0).
    RightToLeft,
    /// Pascal: pushed left to right, the last argument nearest the return
    /// address.
    LeftToRight,
}

/// How a struct (or a complex type too large for eax:edx) comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StructRet {
    /// GCC: every struct through a hidden pointer passed as an implicit
    /// first argument (the first argument register if the convention has
    /// any, else the first stack slot), returned in eax.
    HiddenFirst,
    /// Delphi: a record of 1, 2 or 4 bytes in al/ax/eax, any other through
    /// a hidden pointer passed as an extra parameter after the declared
    /// ones (so in the next free register, or pushed last: offset 0).
    SmallOrHiddenLast,
}

/// What the callee pops when it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pop {
    /// Nothing: the caller cleans up.
    Nothing,
    /// Only a hidden return pointer passed on the stack (`ret $4`).
    HiddenPtr,
    /// Every stack argument, a hidden return pointer on the stack included.
    All,
}

/// One convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Conv {
    /// Argument registers (frame offsets), in the order they are taken.
    pub regs: &'static [u32],
    pub rule: RegRule,
    pub order: Order,
    pub pop: Pop,
    pub sret: StructRet,
}

/// The convention of an i386 ABI; `None` for another architecture's.
pub(crate) fn conv(abi: Abi) -> Option<Conv> {
    use Order::*;
    use Pop::*;
    use RegRule::*;
    use StructRet::*;
    let c = |regs, rule, order, pop, sret| Conv {
        regs,
        rule,
        order,
        pop,
        sret,
    };
    Some(match abi {
        // gcc -m32: a struct-returning cdecl function ends in `ret $4`.
        Abi::I386SysV => c(&[], Gcc, RightToLeft, HiddenPtr, HiddenFirst),
        // gcc -m32 `ms_abi`: plain `ret` (ix86_keep_aggregate_return_pointer
        // keeps the pointer for MS_ABI); every struct still in memory.
        Abi::I386MsCdecl => c(&[], Gcc, RightToLeft, Nothing, HiddenFirst),
        // gcc -m32 `stdcall`: `ret $N` counts the hidden pointer.
        Abi::I386StdCall => c(&[], Gcc, RightToLeft, All, HiddenFirst),
        Abi::I386FastCall => c(&FASTCALL_REGS, Gcc, RightToLeft, All, HiddenFirst),
        Abi::I386ThisCall => c(&THISCALL_REGS, Gcc, RightToLeft, All, HiddenFirst),
        // Delphi: every convention but cdecl has the callee remove its
        // parameters from the stack.
        Abi::I386Pascal => c(&[], Delphi, LeftToRight, All, SmallOrHiddenLast),
        Abi::I386Register => c(&REGISTER_REGS, Delphi, LeftToRight, All, SmallOrHiddenLast),
        Abi::SysV64 | Abi::Win64 | Abi::GnuW64 => return None,
    })
}
