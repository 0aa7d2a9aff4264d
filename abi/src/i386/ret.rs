//! How a value comes back on i386, per convention ([`super::conv`]).
//!
//! - `void`: nothing.
//! - Integers and pointers of at most 4 bytes: eax, read with the type's
//!   size and sign- or zero-extended (libffi's closures do
//!   `movsbl`/`movzwl`/..., `sysv.S` `load_table2`; GCC and Delphi leave
//!   the upper bits undefined, so extending is right for both).
//! - 64-bit integers: eax (low half), edx (high half).
//! - `float`, `double`, `long double`: `st(0)` (`flds`, `fldl`, `fldt`:
//!   [`RetLoc::X87Float`], [`RetLoc::X87Double`], [`RetLoc::X87`]), as GCC
//!   and Delphi (real results in ST(0)) do.
//! - `_Complex float` in eax:edx, `_Complex double` and `_Complex long
//!   double` through a hidden pointer (GCC: SCmode is not an aggregate and
//!   is returned like a 64-bit integer, larger complex modes are over 12
//!   bytes and go in memory, `ix86_return_in_memory`; libffi:
//!   `X86_RET_INT64` and `do_struct`, `ffi.c:152-177`). Pascal has no
//!   complex types, so PASCAL and REGISTER do the same.
//! - C conventions ([`StructRet::HiddenFirst`]): every struct, whatever
//!   its size, through a hidden pointer (GCC on Linux returns every
//!   aggregate in memory: `-fpcc-struct-return` is the i386 Linux default,
//!   with `ms_abi` too; libffi, not being X86_WIN32 or X86_DARWIN, takes
//!   the `do_struct` path for every struct, `ffi.c:119-151`).
//! - Pascal conventions ([`StructRet::SmallOrHiddenLast`]): a struct of
//!   1, 2 or 4 bytes in al/ax/eax (zero-extended), any other through a
//!   hidden pointer (the Delphi Language Guide, "Function results":
//!   record, set and static-array results of one, two or four bytes come
//!   back in AL, AX or EAX, larger ones through an extra var parameter
//!   the caller passes after the declared ones).
//!
//! The hidden pointer goes back in eax in every convention (GCC's callees
//! do `movl ptr, %eax`; libffi's closures load `rettemp[0]`,
//! `ffi.c:476-483`; Delphi callers ignore eax).

use super::conv::{Conv, StructRet};
use super::frame::{RET_EAX, RET_EDX};
use crate::{Ext, Kind, RetLoc, RetMove, Type};

/// What a return type needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ret {
    /// Delivered by the entry as this says.
    Value(RetLoc),
    /// Written through a hidden pointer the caller passes; where the
    /// pointer is depends on the arguments ([`super::args`]).
    Hidden,
}

fn mv(at: u32, len: u32, ext: Ext, dst: u32) -> RetMove {
    RetMove { at, len, ext, dst }
}

/// eax from bytes 0..4, edx from bytes 4..8 of the return buffer.
fn eax_edx() -> RetLoc {
    RetLoc::Regs(vec![
        mv(0, 4, Ext::Zero, RET_EAX),
        mv(4, 4, Ext::Zero, RET_EDX),
    ])
}

/// How `conv` returns a value of type `t`.
pub(crate) fn ret(conv: &Conv, t: &Type) -> Ret {
    let eax = |ext| Ret::Value(RetLoc::Regs(vec![mv(0, t.size as u32, ext, RET_EAX)]));
    match &t.kind {
        Kind::Void => Ret::Value(RetLoc::Void),
        Kind::Float => Ret::Value(RetLoc::X87Float),
        Kind::Double => Ret::Value(RetLoc::X87Double),
        Kind::LongDouble => Ret::Value(RetLoc::X87),
        Kind::U64 | Kind::S64 => Ret::Value(eax_edx()),
        Kind::U8 | Kind::U16 | Kind::U32 | Kind::Pointer => eax(Ext::Zero),
        Kind::S8 | Kind::S16 | Kind::S32 => eax(Ext::Sign),
        // GCC: SCmode is returned like a 64-bit integer, larger complex
        // modes in memory; no Pascal compiler has complex types.
        Kind::Complex(elem) if elem.kind == Kind::Float => Ret::Value(eax_edx()),
        Kind::Complex(_) => Ret::Hidden,
        Kind::Struct(_) => match conv.sret {
            StructRet::HiddenFirst => Ret::Hidden,
            StructRet::SmallOrHiddenLast if matches!(t.size, 1 | 2 | 4) => eax(Ext::Zero),
            StructRet::SmallOrHiddenLast => Ret::Hidden,
        },
    }
}
