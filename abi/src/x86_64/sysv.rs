//! x86_64 System V classification (psABI 1.0, §3.2.3 "Parameter Passing"),
//! exactly as libffi implements it for `FFI_UNIX64`.
//!
//! Line references are to libffi 3.5.2/3.6.0 as bundled in `libffi-sys`
//! 4.2.2: `src/x86/ffi64.c` (`classify_argument`, `examine_argument`,
//! `ffi_prep_cif_machdep`, `ffi_call_int`, `ffi_closure_unix64_inner`) and
//! `src/x86/unix64.S` (the closure's `load_table`). The classification code
//! is the same in libffi 3.4.4 (Debian 12's). Where libffi's own closure and
//! its `ffi_call` disagree (eightbytes of class NO_CLASS, below), a Plan
//! follows `ffi_call`: the caller decides what is in the registers.
//!
//! # Classification
//! Each eightbyte of a value gets a class (`ffi64.c:174-376`):
//! integers and pointers INTEGER, `float`/`double` SSE, `long double`
//! X87+X87UP, `_Complex float` one SSE eightbyte holding both halves (two if
//! it starts inside an eightbyte), `_Complex double` two SSE eightbytes,
//! `_Complex long double` COMPLEX_X87. A struct merges the classes of its
//! elements per eightbyte (`merge`, `ffi64.c:126-164`); a struct larger
//! than 16 bytes is MEMORY (libffi: `> 32` bytes at `ffi64.c:250`, and more
//! than two eightbytes fail the "first SSE, rest SSEUP" test at
//! `ffi64.c:286-298` because no libffi type produces SSEUP on an x87
//! `long double` target), as is any eightbyte merged to MEMORY
//! (`ffi64.c:305-306`).
//!
//! ## Stated layouts
//! A struct's `size` and `alignment` are taken as stated (libffi computes
//! them only for a struct of size 0), and its elements are placed the way
//! libffi's `classify_argument` walks them, not where the client's layout
//! has them (`classify_at`):
//! - the walk starts at the struct's own offset within its eightbyte
//!   (`byte_offset % 8`, passed down), and each element goes at
//!   `FFI_ALIGN(offset, element alignment)` after the previous one's end
//!   ([`crate::types::ffi_align`]), whatever the struct's stated alignment
//!   or packing: a `_pack_ = 1` struct {char, int, double} is classified as
//!   if its int were at 4 and its double at 8;
//! - union members and bitfields (CPython's ctypes lists each as an
//!   element) are therefore walked one after the other;
//! - the struct has `(size + byte_offset + 7) / 8` eightbytes; classes
//!   that fall beyond them are dropped (`ffi64.c:270-276`), so elements the
//!   walk places past the stated size do not count;
//! - an element of alignment 0 restarts the walk at offset 0 (`FFI_ALIGN`
//!   of anything by 0 is 0; ctypes gives a structure without `_fields_`
//!   a zeroed, void `ffi_type`), and `void` elements and structs of size 0
//!   contribute NO_CLASS;
//! - an eightbyte that no element reaches stays NO_CLASS: it takes no
//!   register, and `ffi_call` sends nothing for it (`ffi64.c:676-677`).
//!   libffi's closure would still consume a GPR for it
//!   (`ffi64.c:924-959`); we follow `ffi_call`, so such bytes are
//!   unspecified. Likewise an eightbyte holding only a `float` at its start
//!   is sent as 4 bytes (`ffi64.c:707-709`).
//!
//! libffi's distinctions INTEGERSI/INTEGER and SSESF/SSEDF/SSE only choose
//! move widths inside libffi; every one of them counts as one GPR or one SSE
//! register (`ffi64.c:395-416`) and merges within its family, so this
//! module keeps just INTEGER and SSE. SSEUP never occurs (it comes only
//! from binary128 `long double`, `ffi64.c:230-233`, which `Kind` cannot
//! express).
//!
//! # Arguments
//! An argument whose class is MEMORY, or that contains X87/X87UP/
//! COMPLEX_X87 (`ffi64.c:410-413`), or that needs more GPRs or SSE registers
//! than remain (`ffi64.c:907-909`), goes on the stack as a whole, aligned to
//! `max(8, align)` with its stated alignment (`ffi64.c:911-920`); later
//! arguments may still use registers. Register arguments take the next
//! GPRs (rdi, rsi, rdx, rcx, r8, r9) and SSE registers (xmm0..7) in
//! eightbyte order, NO_CLASS eightbytes taking none (`ffi64.c:664-715`).
//! Where every eightbyte is in one register file, in consecutive registers,
//! we use [`ArgLoc::Frame`] (libffi points into its register save area
//! for one register or two GPRs, `ffi64.c:924-939`; two SSE registers are
//! adjacent in our frame too, where libffi copies them); anything else (an
//! INTEGER+SSE mix, a NO_CLASS eightbyte) is gathered into a 16-byte scratch
//! area (`ffi64.c:941-959`).
//!
//! # Return
//! See [`ret_loc`].
//!
//! # Errors
//! Every type must pass [`crate::Type::validate`] and have the standard
//! x86_64 scalar layouts ([`super::check_standard`]), else
//! [`ClassifyError::BadType`]. A `void` argument is refused with
//! [`ClassifyError::Unsupported`]`("void argument")`; libffi does not
//! reject one but classifies it as a NO_CLASS eightbyte
//! (`ffi64.c:260-262`) which its closure and `ffi_call` then disagree on
//! (the closure still consumes a GPR, `ffi64.c:934-937`).
use super::frame::{RET_RAX, RET_RDX, RET_XMM0, RET_XMM1, SYSV_GPRS, SYSV_SSES, gpr, sse};
use super::{check_signature, finish, gather_dst, int_ext, to_u32};
use crate::types::ffi_align;
use crate::{ArgLoc, ClassifyError, Ext, Kind, Piece, Plan, RetLoc, RetMove, Signature, Type};

/// The psABI class of one eightbyte (the subset libffi can produce for
/// the types `Kind` can express).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegClass {
    NoClass,
    Integer,
    Sse,
    X87,
    X87Up,
    ComplexX87,
    Memory,
}

/// psABI §3.2.3 merge rules, in libffi's order (`ffi64.c:126-164`).
fn merge(a: RegClass, b: RegClass) -> RegClass {
    use RegClass::*;
    if a == b {
        return a; // rule 1
    }
    match (a, b) {
        (NoClass, x) | (x, NoClass) => x,       // rule 2
        (Memory, _) | (_, Memory) => Memory,    // rule 3
        (Integer, _) | (_, Integer) => Integer, // rule 4
        (X87 | X87Up | ComplexX87, _) | (_, X87 | X87Up | ComplexX87) => Memory, // rule 5
        _ => Sse,                               // rule 6
    }
}

/// libffi's `MAX_CLASSES` (`ffi64.c:101`): the eightbytes one value can
/// have in registers, and the size of its class arrays.
const MAX_CLASSES: usize = 4;

type Classes = [RegClass; MAX_CLASSES];

/// libffi's `classify_argument(t, classes, byte_offset)`
/// (`ffi64.c:174-376`), step for step: fills `classes` and returns how many
/// eightbytes it classified, 0 for MEMORY. `byte_offset` is where `t`
/// starts within its first eightbyte (0 at the top level, `offset % 8`
/// for an element).
fn classify_at(t: &Type, classes: &mut Classes, byte_offset: u64) -> usize {
    use RegClass::*;
    match &t.kind {
        // `ffi64.c:258-263`.
        Kind::Void => {
            classes[0] = NoClass;
            1
        }
        // `ffi64.c:219-226`: one class, whatever the offset.
        Kind::Float | Kind::Double => {
            classes[0] = Sse;
            1
        }
        // `ffi64.c:227-240`.
        Kind::LongDouble => {
            classes[0] = X87;
            classes[1] = X87Up;
            2
        }
        // `ffi64.c:335-372`.
        Kind::Complex(elem) => match elem.kind {
            Kind::Float if byte_offset % 8 != 0 => {
                classes[0] = Sse;
                classes[1] = Sse;
                2
            }
            Kind::Float => {
                classes[0] = Sse;
                1
            }
            Kind::Double => {
                classes[0] = Sse;
                classes[1] = Sse;
                2
            }
            _ => {
                classes[0] = ComplexX87;
                1
            }
        },
        Kind::Struct(elems) => classify_struct(t.size, elems, classes, byte_offset),
        // Integers and pointers (`ffi64.c:180-218`): the eightbytes from
        // `byte_offset` to its end. A scalar of standard layout that libffi's
        // walk placed at a multiple of its alignment never crosses one.
        _ => {
            let end = byte_offset + t.size;
            debug_assert!(end <= 16, "integer of {} bytes at {byte_offset}", t.size);
            classes[0] = Integer;
            if end <= 8 {
                1
            } else {
                classes[1] = Integer;
                2
            }
        }
    }
}

/// The `FFI_TYPE_STRUCT` case of `classify_argument` (`ffi64.c:241-333`) for
/// a struct of stated `size` with `elems`, starting at `byte_offset`.
fn classify_struct(size: u64, elems: &[Type], classes: &mut Classes, byte_offset: u64) -> usize {
    use RegClass::*;
    // `ffi64.c:250`.
    if size > 32 {
        return 0;
    }
    let words = (size + byte_offset).div_ceil(8);
    // `ffi64.c:286-298`: more than two eightbytes are MEMORY unless they are
    // SSE followed by SSEUP, which no type here produces. libffi decides it
    // after the merge below, which can only return MEMORY earlier; deciding
    // first also avoids libffi's overrun of its 4-entry class array by a
    // 5-eightbyte struct (32 bytes starting inside an eightbyte).
    if words > 2 {
        return 0;
    }
    // `ffi64.c:256-263`: zero-sized, at the start of an eightbyte.
    if words == 0 {
        classes[0] = NoClass;
        return 1;
    }
    let words = words as usize;
    classes[..words].fill(NoClass);
    // `ffi64.c:266-284`: the walk. Offsets stay far below overflow: at most
    // MAX_ELEMENTS elements of at most MAX_SIZE bytes each.
    let mut off = byte_offset;
    for e in elems {
        off = ffi_align(off, e.align);
        let mut sub = [NoClass; MAX_CLASSES];
        let num = classify_at(e, &mut sub, off % 8);
        if num == 0 {
            return 0;
        }
        let pos = off / 8;
        for (i, c) in sub.iter().take(num).enumerate() {
            // Classes beyond the struct's eightbytes are dropped.
            match usize::try_from(pos + i as u64) {
                Ok(w) if w < words => classes[w] = merge(*c, classes[w]),
                _ => break,
            }
        }
        off += e.size;
    }
    // `ffi64.c:300-330`, post-merger cleanup: a MEMORY eightbyte makes the
    // whole value MEMORY. (Its SSEUP and X87UP rules look only at
    // eightbytes 2 and up, which a value of two eightbytes does not have.)
    if classes[..words].contains(&Memory) {
        return 0;
    }
    words
}

/// The classes of each eightbyte of `t` (`classify_argument` at offset 0),
/// or `None` for MEMORY.
pub(crate) fn classify_type(t: &Type) -> Option<Vec<RegClass>> {
    let mut classes = [RegClass::NoClass; MAX_CLASSES];
    match classify_at(t, &mut classes, 0) {
        0 => None,
        n => Some(classes[..n].to_vec()),
    }
}

/// What `examine_argument(t, classes, in_return, ...)` (`ffi64.c:382-422`)
/// answers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Examined {
    /// Eightbytes in registers, 0 for memory. Some eightbyte of class X87,
    /// X87UP or COMPLEX_X87 makes it 0 for an argument, and 1 for a return
    /// (`ffi64.c:410-413`: `return in_return != 0`).
    n: usize,
    /// Classes of the eightbytes (as `classify_argument` left them).
    classes: Vec<RegClass>,
    /// GPRs and SSE registers needed (for an argument in registers).
    ngpr: u32,
    nsse: u32,
}

fn examine(t: &Type, in_return: bool) -> Examined {
    let classes = classify_type(t).unwrap_or_default();
    let (mut ngpr, mut nsse) = (0, 0);
    for c in &classes {
        match c {
            RegClass::Integer => ngpr += 1,
            RegClass::Sse => nsse += 1,
            RegClass::NoClass | RegClass::Memory => {}
            RegClass::X87 | RegClass::X87Up | RegClass::ComplexX87 => {
                return Examined {
                    n: usize::from(in_return),
                    classes,
                    ngpr: 0,
                    nsse: 0,
                };
            }
        }
    }
    Examined {
        n: classes.len(),
        classes,
        ngpr,
        nsse,
    }
}

/// Bytes of a `size`-byte value that fall in eightbyte `word`.
fn word_len(size: u64, word: usize) -> u32 {
    size.saturating_sub(8 * word as u64).min(8) as u32
}

/// How a value of type `t` is returned (`ffi64.c:451-576` for the choice,
/// `unix64.S:332-409` for how the closure loads the registers). A
/// [`RetLoc::Memory`] answer means the hidden pointer takes `rdi`.
///
/// - `void`: nothing.
/// - Integers and pointers: `rax`, `len` = the type's size, sign-extended
///   for `int8/16/32`, zero-extended otherwise. libffi's closure does
///   `movzbl`/`movsbl`/`movl`/`movq` (`unix64.S:336-363`), i.e. it extends
///   only to 32 bits; we extend to 64, which agrees on every bit a caller
///   may look at, and does not depend on the handler writing a full
///   `ffi_arg`.
/// - `float`: `xmm0`, 4 bytes (`movd`, `unix64.S:364-367`); `double`:
///   `xmm0`, 8 bytes.
/// - `long double`: `st(0)` ([`RetLoc::X87`], `unix64.S:372-375`).
/// - `_Complex float`: both halves in `xmm0` (`ffi64.c:548-550`);
///   `_Complex double`: `xmm0`, `xmm1` (`ffi64.c:551-553`);
///   `_Complex long double`: `st(0)`, `st(1)` ([`RetLoc::X87Pair`],
///   `ffi64.c:561`, `unix64.S:376-380`).
/// - Structs of MEMORY class: hidden pointer in `rdi`, echoed in `rax`
///   (`ffi64.c:503-510`, `ffi64.c:890-898`).
/// - Other structs (`ffi64.c:511-531`), by their stated size and the
///   classes of eightbytes 0 and 1: 4 bytes with SSE first: `xmm0`; 8
///   bytes: `xmm0` if the first eightbyte is SSE, else `rax`; any other
///   size: eightbyte 0 in `xmm0` if it is SSE, else `rax`, and eightbyte 1
///   in `xmm0`/`xmm1` if it is SSE, else `rax`/`rdx` (the second register
///   of the pair). Each move has `len` = the struct's bytes in that
///   eightbyte, zero-extended. libffi decides by eightbyte 0 and 1, not by
///   register counts: a NO_CLASS eightbyte still comes back in `rax`/`rdx`
///   (libffi's `ffi_call` reads the whole pair and keeps `size` bytes).
/// - Quirk: a struct with an X87 class (`struct { long double }`, possibly
///   nested) is returned by libffi in **`rax:rdx`**, not `st(0)` as the
///   psABI and GCC do: `examine_argument` answers 1 for it
///   (`ffi64.c:410-413`), `classes[0]` is not SSE, and the size is 16, so
///   `ffi_prep_cif_machdep` picks `UNIX64_RET_ST_RAX_RDX` (`ffi64.c:520-530`).
///   libffi's `ffi_call` reads it back from the same registers
///   (`unix64.S:201-204`), so we mirror it.
pub(crate) fn ret_loc(t: &Type) -> RetLoc {
    let mv = |at: u32, len: u32, ext: Ext, dst: u32| RetMove { at, len, ext, dst };
    match &t.kind {
        Kind::Void => RetLoc::Void,
        Kind::Float => RetLoc::Regs(vec![mv(0, 4, Ext::Zero, RET_XMM0)]),
        Kind::Double => RetLoc::Regs(vec![mv(0, 8, Ext::Zero, RET_XMM0)]),
        Kind::LongDouble => RetLoc::X87,
        Kind::Complex(elem) => match elem.kind {
            Kind::Float => RetLoc::Regs(vec![mv(0, 8, Ext::Zero, RET_XMM0)]),
            Kind::Double => RetLoc::Regs(vec![
                mv(0, 8, Ext::Zero, RET_XMM0),
                mv(8, 8, Ext::Zero, RET_XMM1),
            ]),
            _ => RetLoc::X87Pair,
        },
        Kind::Struct(_) => {
            let ex = examine(t, true);
            if ex.n == 0 {
                return RetLoc::Memory {
                    ptr: gpr(0),
                    echo: RET_RAX,
                };
            }
            let sse0 = ex.classes[0] == RegClass::Sse;
            let sse1 = ex.n == 2 && ex.classes[1] == RegClass::Sse;
            // UNIX64_RET_XMM32 / XMM64 / INT64 take one register; the
            // UNIX64_RET_ST_* pairs two.
            let regs = match (t.size, sse0, sse1) {
                (4, true, _) | (8, true, _) => [RET_XMM0, RET_XMM1],
                (8, false, _) => [RET_RAX, RET_RDX],
                (_, true, true) => [RET_XMM0, RET_XMM1],
                (_, true, false) => [RET_XMM0, RET_RAX],
                (_, false, true) => [RET_RAX, RET_XMM0],
                (_, false, false) => [RET_RAX, RET_RDX],
            };
            RetLoc::Regs(
                regs.iter()
                    .enumerate()
                    .filter(|&(w, _)| word_len(t.size, w) > 0)
                    .map(|(w, &dst)| mv(8 * w as u32, word_len(t.size, w), Ext::Zero, dst))
                    .collect(),
            )
        }
        // Integers and pointers.
        kind => RetLoc::Regs(vec![mv(0, t.size as u32, int_ext(kind), RET_RAX)]),
    }
}

/// Where an argument in registers is (`ffi64.c:664-715` for what
/// `ffi_call` puts where): the eightbytes in order, each from the next
/// register of its class, NO_CLASS ones from none. `ngpr`/`nsse` are the
/// registers used before it.
fn reg_arg(
    t: &Type,
    classes: &[RegClass],
    ngpr: u32,
    nsse: u32,
    gather: impl FnOnce() -> Result<u32, ClassifyError>,
) -> Result<ArgLoc, ClassifyError> {
    let (mut gi, mut si) = (ngpr, nsse);
    let pieces: Vec<Piece> = classes
        .iter()
        .enumerate()
        .filter_map(|(w, c)| {
            let src = match c {
                RegClass::Integer => {
                    gi += 1;
                    gpr(gi - 1)
                }
                RegClass::Sse => {
                    si += 1;
                    sse(si - 1)
                }
                _ => return None,
            };
            Some(Piece {
                src,
                at: 8 * w as u32,
                len: word_len(t.size, w),
            })
        })
        .collect();
    // Every eightbyte in one register file, consecutive: the value lies
    // in the frame as it is.
    let whole = pieces.len() == classes.len()
        && (gi == ngpr || si == nsse)
        && pieces.iter().all(|p| p.src == pieces[0].src + p.at);
    if whole && !pieces.is_empty() {
        Ok(ArgLoc::Frame(pieces[0].src))
    } else {
        Ok(ArgLoc::Gather {
            dst: gather()?,
            pieces,
        })
    }
}

/// Classifies `sig` for x86_64 System V (see the module docs).
pub fn classify(sig: &Signature) -> Result<Plan, ClassifyError> {
    check_signature(&sig.args, &sig.ret)?;

    let ret = ret_loc(&sig.ret);
    // Registers used so far; the hidden return pointer takes rdi.
    let mut ngpr: u32 = u32::from(matches!(ret, RetLoc::Memory { .. }));
    let mut nsse: u32 = 0;
    let mut stack: u64 = 0;
    let mut ngather: u64 = 0;
    let mut args = Vec::with_capacity(sig.args.len());

    for t in &sig.args {
        let ex = examine(t, false);
        if ex.n == 0 || ngpr + ex.ngpr > SYSV_GPRS || nsse + ex.nsse > SYSV_SSES {
            // The whole argument on the stack (`ffi64.c:907-921`).
            let off = stack.next_multiple_of(t.align.max(8));
            args.push(ArgLoc::Stack(to_u32(off)?));
            stack = off + t.size;
            continue;
        }
        let loc = reg_arg(t, &ex.classes, ngpr, nsse, || {
            ngather += 1;
            gather_dst(sig.args.len(), ngather - 1)
        })?;
        ngpr += ex.ngpr;
        nsse += ex.nsse;
        args.push(loc);
    }

    finish(args, ret, &sig.ret, ngather)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Abi, TypeError};

    use crate::x86_64::test_types::{cx, st};
    fn sig(args: Vec<Type>, ret: Type) -> Signature {
        Signature {
            abi: Abi::SysV64,
            args,
            ret,
        }
    }
    fn plan(args: Vec<Type>, ret: Type) -> Plan {
        classify(&sig(args, ret)).unwrap()
    }
    fn args_of(args: Vec<Type>) -> Vec<ArgLoc> {
        plan(args, Type::VOID).args
    }
    fn ret_of(ret: Type) -> RetLoc {
        plan(vec![], ret).ret
    }
    fn mv(at: u32, len: u32, ext: Ext, dst: u32) -> RetMove {
        RetMove { at, len, ext, dst }
    }
    fn regs(moves: &[RetMove]) -> RetLoc {
        RetLoc::Regs(moves.to_vec())
    }
    fn pc(src: u32, at: u32, len: u32) -> Piece {
        Piece { src, at, len }
    }
    use ArgLoc::{Frame, Gather, Stack};

    const ALL_SCALARS: [Type; 13] = [
        Type::U8,
        Type::S8,
        Type::U16,
        Type::S16,
        Type::U32,
        Type::S32,
        Type::U64,
        Type::S64,
        Type::POINTER,
        Type::FLOAT,
        Type::DOUBLE,
        Type::LONGDOUBLE,
        Type::VOID,
    ];

    // ---- merge rules (psABI §3.2.3 "4. b", ffi64.c:126-164) ----

    #[test]
    fn merge_rules() {
        use RegClass::*;
        assert_eq!(merge(Sse, Sse), Sse); // rule 1
        assert_eq!(merge(NoClass, Sse), Sse); // rule 2
        assert_eq!(merge(Integer, NoClass), Integer);
        assert_eq!(merge(Memory, Integer), Memory); // rule 3
        assert_eq!(merge(Sse, Memory), Memory);
        assert_eq!(merge(Sse, Integer), Integer); // rule 4
        assert_eq!(merge(Integer, Sse), Integer);
        assert_eq!(merge(X87, Sse), Memory); // rule 5
        assert_eq!(merge(Sse, X87Up), Memory);
        assert_eq!(merge(ComplexX87, Sse), Memory);
        assert_eq!(merge(X87, X87Up), Memory);
        // Rule 4 is checked before rule 5, as in libffi.
        assert_eq!(merge(X87, Integer), Integer);
    }

    // ---- eightbyte classification (psABI §3.2.3, ffi64.c:174-376) ----

    #[test]
    fn classify_scalars() {
        use RegClass::*;
        for t in [
            Type::U8,
            Type::S8,
            Type::U16,
            Type::S16,
            Type::U32,
            Type::S32,
            Type::U64,
            Type::S64,
            Type::POINTER,
        ] {
            assert_eq!(classify_type(&t), Some(vec![Integer]), "{t:?}");
        }
        assert_eq!(classify_type(&Type::FLOAT), Some(vec![Sse]));
        assert_eq!(classify_type(&Type::DOUBLE), Some(vec![Sse]));
        assert_eq!(classify_type(&Type::LONGDOUBLE), Some(vec![X87, X87Up]));
        assert_eq!(classify_type(&cx(Type::FLOAT)), Some(vec![Sse]));
        assert_eq!(classify_type(&cx(Type::DOUBLE)), Some(vec![Sse, Sse]));
        assert_eq!(classify_type(&cx(Type::LONGDOUBLE)), Some(vec![ComplexX87]));
    }

    #[test]
    fn classify_structs() {
        use RegClass::*;
        let f = Type::FLOAT;
        let d = Type::DOUBLE;
        let i = Type::S32;
        // {float, float, float}: 12 bytes, SSE SSE.
        assert_eq!(
            classify_type(&st(vec![f.clone(), f.clone(), f.clone()])),
            Some(vec![Sse, Sse])
        );
        // {float, int}: both in one eightbyte, INTEGER wins (rule 4).
        assert_eq!(
            classify_type(&st(vec![f.clone(), i.clone()])),
            Some(vec![Integer])
        );
        // {int, float, double}: INTEGER, SSE.
        assert_eq!(
            classify_type(&st(vec![i.clone(), f.clone(), d.clone()])),
            Some(vec![Integer, Sse])
        );
        // {double, int}: SSE, INTEGER (the second eightbyte is int + 4 padding bytes).
        assert_eq!(
            classify_type(&st(vec![d.clone(), i.clone()])),
            Some(vec![Sse, Integer])
        );
        // Padding between fields: {char, <pad 7>, double}.
        assert_eq!(
            classify_type(&st(vec![Type::U8, d.clone()])),
            Some(vec![Integer, Sse])
        );
        // Nested: {{float}, {float, int}} -> 12 bytes: SSE (two floats), INTEGER.
        let nested = st(vec![st(vec![f.clone()]), st(vec![f.clone(), i.clone()])]);
        assert_eq!(nested.size, 12);
        assert_eq!(classify_type(&nested), Some(vec![Sse, Integer]));
        // Nested struct straddling eightbytes: {int, {float, float}, int}.
        let straddle = st(vec![i.clone(), st(vec![f.clone(), f.clone()]), i.clone()]);
        assert_eq!(straddle.size, 16);
        assert_eq!(classify_type(&straddle), Some(vec![Integer, Integer]));
        let straddle2 = st(vec![f.clone(), st(vec![f.clone(), f.clone()]), f.clone()]);
        assert_eq!(classify_type(&straddle2), Some(vec![Sse, Sse]));
        // _Complex float at offset 4 straddles (ffi64.c:351-357).
        let cf4 = st(vec![f.clone(), cx(f.clone())]);
        assert_eq!(cf4.size, 12);
        assert_eq!(classify_type(&cf4), Some(vec![Sse, Sse]));
        let icf = st(vec![i.clone(), cx(f.clone())]);
        assert_eq!(classify_type(&icf), Some(vec![Integer, Sse]));
        // {_Complex double}: SSE SSE.
        assert_eq!(
            classify_type(&st(vec![cx(d.clone())])),
            Some(vec![Sse, Sse])
        );
        // 16 bytes of integers: INTEGER INTEGER; 17+ bytes: MEMORY.
        assert_eq!(
            classify_type(&st(vec![Type::U64, Type::U64])),
            Some(vec![Integer, Integer])
        );
        assert_eq!(
            classify_type(&st(vec![Type::U64, Type::U64, Type::U8])),
            None
        );
        // All-SSE structs over 16 bytes are MEMORY too (no SSEUP, ffi64.c:286-298).
        assert_eq!(
            classify_type(&st(vec![d.clone(), d.clone(), d.clone()])),
            None
        );
        assert_eq!(classify_type(&st(vec![f.clone(); 5])), None);
        // Over 32 bytes (ffi64.c:250).
        assert_eq!(classify_type(&st(vec![d.clone(); 5])), None);
        // {long double}: X87 X87UP (memory as an argument, see below).
        assert_eq!(
            classify_type(&st(vec![Type::LONGDOUBLE])),
            Some(vec![X87, X87Up])
        );
        assert_eq!(
            classify_type(&st(vec![st(vec![Type::LONGDOUBLE])])),
            Some(vec![X87, X87Up])
        );
        // Long double plus anything is > 16 bytes: MEMORY.
        assert_eq!(classify_type(&st(vec![Type::LONGDOUBLE, Type::U8])), None);
        assert_eq!(classify_type(&st(vec![Type::U8, Type::LONGDOUBLE])), None);
        assert_eq!(classify_type(&st(vec![cx(Type::LONGDOUBLE)])), None);
        // Tiny structs.
        assert_eq!(classify_type(&st(vec![Type::U8])), Some(vec![Integer]));
        assert_eq!(
            classify_type(&st(vec![Type::U8, Type::U8, Type::U8])),
            Some(vec![Integer])
        );
    }

    // ---- scalar arguments (psABI §3.2.3 "Passing": INTEGER -> next GPR,
    // SSE -> next vector register; X87 -> memory) ----

    #[test]
    fn scalar_args_each_in_first_register() {
        for t in [
            Type::U8,
            Type::S8,
            Type::U16,
            Type::S16,
            Type::U32,
            Type::S32,
            Type::U64,
            Type::S64,
            Type::POINTER,
        ] {
            let p = plan(vec![t.clone()], Type::VOID);
            assert_eq!(p.args, vec![Frame(gpr(0))], "{t:?}");
        }
        assert_eq!(args_of(vec![Type::FLOAT]), vec![Frame(sse(0))]);
        assert_eq!(args_of(vec![Type::DOUBLE]), vec![Frame(sse(0))]);
        // long double: X87 -> memory (ffi64.c:410-413), 16-aligned.
        assert_eq!(args_of(vec![Type::LONGDOUBLE]), vec![Stack(0)]);
    }

    #[test]
    fn gprs_and_sses_are_counted_independently() {
        // psABI: INTEGER takes "the next available register of the sequence
        // %rdi, %rsi, ...", SSE "the next available vector register";
        // the two counters are independent (ffi64.c:597-598).
        let a = args_of(vec![
            Type::S32,
            Type::DOUBLE,
            Type::POINTER,
            Type::FLOAT,
            Type::U8,
            Type::DOUBLE,
        ]);
        assert_eq!(
            a,
            vec![
                Frame(gpr(0)),
                Frame(sse(0)),
                Frame(gpr(1)),
                Frame(sse(1)),
                Frame(gpr(2)),
                Frame(sse(2))
            ]
        );
    }

    #[test]
    fn seventh_integer_goes_to_stack() {
        // 6 GPRs (ffi64.c:41, 907-909); stack slots in order (ffi64.c:911-920).
        let a = args_of(vec![Type::S64; 8]);
        let mut want: Vec<ArgLoc> = (0..6).map(|i| Frame(gpr(i))).collect();
        want.push(Stack(0));
        want.push(Stack(8));
        assert_eq!(a, want);
    }

    #[test]
    fn ninth_double_goes_to_stack() {
        // 8 SSE registers (ffi64.c:42); GPRs are still free for the int.
        let mut args = vec![Type::DOUBLE; 10];
        args.push(Type::S32);
        let a = args_of(args);
        let mut want: Vec<ArgLoc> = (0..8).map(|i| Frame(sse(i))).collect();
        want.extend([Stack(0), Stack(8), Frame(gpr(0))]);
        assert_eq!(a, want);
    }

    #[test]
    fn small_stack_args_take_8_byte_slots() {
        // Every stack argument is at least 8-aligned (ffi64.c:913-915).
        let mut args = vec![Type::POINTER; 6];
        args.extend([Type::U8, Type::S16, Type::FLOAT, Type::U32]);
        let mut fl = vec![Type::DOUBLE; 8];
        fl.append(&mut args);
        let a = args_of(fl);
        // The float finds no SSE register left either: 8 doubles took them.
        assert_eq!(a[14..], [Stack(0), Stack(8), Stack(16), Stack(24)]);
    }

    #[test]
    fn long_double_stack_alignment() {
        // Stack arguments aligned to max(8, align) (ffi64.c:911-918): long
        // double (X87, memory) is 16-aligned.
        // int (rdi), long double (stack 0..16), int (rsi), long double at 16.
        assert_eq!(
            args_of(vec![
                Type::S32,
                Type::LONGDOUBLE,
                Type::S32,
                Type::LONGDOUBLE
            ]),
            vec![Frame(gpr(0)), Stack(0), Frame(gpr(1)), Stack(16)]
        );
        // A stack int first pushes the next long double to 16.
        let mut args = vec![Type::S64; 7];
        args.push(Type::LONGDOUBLE);
        args.push(Type::S64);
        args.push(Type::LONGDOUBLE);
        let a = args_of(args);
        assert_eq!(a[6..], [Stack(0), Stack(16), Stack(32), Stack(48)]);
        // struct {long double} on the stack is 16-aligned too.
        let mut args = vec![Type::S64; 7];
        args.push(st(vec![Type::LONGDOUBLE]));
        assert_eq!(args_of(args)[6..], [Stack(0), Stack(16)]);
    }

    // ---- struct arguments ----

    #[test]
    fn struct_in_one_or_two_gprs() {
        // INTEGER(+INTEGER) structs point straight into consecutive saved
        // GPRs (ffi64.c:924-937).
        let two_ints = st(vec![Type::S32, Type::S32]);
        let twelve = st(vec![Type::S32, Type::S32, Type::S32]);
        let sixteen = st(vec![Type::U64, Type::U64]);
        assert_eq!(
            args_of(vec![two_ints, Type::S8, twelve, sixteen]),
            vec![Frame(gpr(0)), Frame(gpr(1)), Frame(gpr(2)), Frame(gpr(4))]
        );
    }

    #[test]
    fn struct_in_sse_registers() {
        // SSE(+SSE): one xmm (ffi64.c:929-932), or two that are adjacent in
        // our frame (libffi copies those, ffi64.c:941-959).
        let fff = st(vec![Type::FLOAT; 3]);
        let dd = st(vec![Type::DOUBLE, Type::DOUBLE]);
        let ff = st(vec![Type::FLOAT, Type::FLOAT]);
        assert_eq!(
            args_of(vec![fff, Type::DOUBLE, dd, ff]),
            vec![Frame(sse(0)), Frame(sse(2)), Frame(sse(3)), Frame(sse(5))]
        );
    }

    #[test]
    fn mixed_structs_are_gathered() {
        // INTEGER+SSE mixes are reassembled in scratch (ffi64.c:941-959),
        // eightbyte by eightbyte, each from its own register sequence.
        let di = st(vec![Type::DOUBLE, Type::S32]); // SSE, INTEGER; 16 bytes
        let id = st(vec![Type::S32, Type::DOUBLE]); // INTEGER, SSE; 16 bytes
        let fi_d = st(vec![Type::S64, Type::FLOAT]); // INTEGER, SSE; 16 bytes
        let p = plan(vec![Type::S32, di, id, Type::FLOAT, fi_d], Type::VOID);
        // avalue[] is 5 * 8 = 40 bytes; gather areas at 40, 56, 72.
        assert_eq!(
            p.args,
            vec![
                Frame(gpr(0)),
                Gather {
                    dst: 40,
                    pieces: vec![pc(sse(0), 0, 8), pc(gpr(1), 8, 8)]
                },
                Gather {
                    dst: 56,
                    pieces: vec![pc(gpr(2), 0, 8), pc(sse(1), 8, 8)]
                },
                Frame(sse(2)),
                Gather {
                    dst: 72,
                    pieces: vec![pc(gpr(3), 0, 8), pc(sse(3), 8, 8)]
                },
            ]
        );
        // ret_buf after the gathers: 88 -> 96; 32 bytes; scratch 128.
        assert_eq!(p.ret_buf, 96);
        assert_eq!(p.scratch_size, 128);
        assert_eq!(p.callee_pop, 0);
    }

    #[test]
    fn twelve_byte_mixed_struct_pieces_cover_only_its_bytes() {
        // The last piece only covers the value's bytes (size 12 -> 4).
        // ({double, int} is 16 bytes with tail padding.) A 12-byte mix needs
        // 4-byte alignment: {float, float, int} = SSE, INTEGER.
        let ffi = st(vec![Type::FLOAT, Type::FLOAT, Type::S32]);
        assert_eq!(ffi.size, 12);
        let p = plan(vec![ffi], Type::VOID);
        assert_eq!(
            p.args,
            vec![Gather {
                dst: 8,
                pieces: vec![pc(sse(0), 0, 8), pc(gpr(0), 8, 4)]
            }]
        );
        // {int, int, float}: INTEGER, SSE with a 4-byte second piece.
        let iif = st(vec![Type::S32, Type::S32, Type::FLOAT]);
        let p = plan(vec![iif], Type::VOID);
        assert_eq!(
            p.args,
            vec![Gather {
                dst: 8,
                pieces: vec![pc(gpr(0), 0, 8), pc(sse(0), 8, 4)]
            }]
        );
        // 8 (avalue) + 16 (gather) = 24 -> ret_buf 32, scratch 64.
        assert_eq!((p.ret_buf, p.scratch_size), (32, 64));
    }

    #[test]
    fn memory_structs_go_on_the_stack() {
        // psABI: MEMORY class -> stack; > 16 bytes is MEMORY (ffi64.c:250,
        // 286-298); X87 classes are memory for arguments (ffi64.c:410-413).
        let big = st(vec![Type::U64, Type::U64, Type::U64]); // 24 bytes
        let with_ld = st(vec![Type::LONGDOUBLE]); // X87 -> memory as an argument
        let ld_plus = st(vec![Type::U8, Type::LONGDOUBLE]); // 32 bytes, align 16
        assert_eq!(
            args_of(vec![big, Type::S32, with_ld, ld_plus, Type::DOUBLE]),
            vec![Stack(0), Frame(gpr(0)), Stack(32), Stack(48), Frame(sse(0))]
        );
    }

    #[test]
    fn struct_needing_two_gprs_with_one_left_goes_to_stack() {
        // psABI: "If there are no registers available for any eightbyte of
        // an argument, the whole argument is passed on the stack"; later
        // arguments still use the remaining registers (ffi64.c:907-909).
        let pair = st(vec![Type::U64, Type::U64]);
        let mut args = vec![Type::S64; 5];
        args.push(pair);
        args.push(Type::S32);
        let a = args_of(args);
        assert_eq!(a[5..], [Stack(0), Frame(gpr(5))]);
    }

    #[test]
    fn mixed_struct_needs_both_kinds_available() {
        // 5 GPRs used, 8 SSE used: {long, double} needs 1+1 -> stack; a
        // later int still takes r9.
        let mix = st(vec![Type::S64, Type::DOUBLE]);
        let mut args = vec![Type::S64; 5];
        args.extend(vec![Type::DOUBLE; 8]);
        args.push(mix.clone());
        args.push(Type::S32);
        let a = args_of(args);
        assert_eq!(a[13..], [Stack(0), Frame(gpr(5))]);
        // With 7 SSE used it fits.
        let mut args = vec![Type::S64; 5];
        args.extend(vec![Type::DOUBLE; 7]);
        args.push(mix);
        let p = plan(args, Type::VOID);
        assert_eq!(
            p.args[12],
            Gather {
                dst: 13 * 8,
                pieces: vec![pc(gpr(5), 0, 8), pc(sse(7), 8, 8)]
            }
        );
    }

    #[test]
    fn sse_pair_with_one_sse_left_goes_to_stack() {
        let dd = st(vec![Type::DOUBLE, Type::DOUBLE]);
        let mut args = vec![Type::DOUBLE; 7];
        args.push(dd);
        args.push(Type::FLOAT);
        let a = args_of(args);
        assert_eq!(a[7..], [Stack(0), Frame(sse(7))]);
    }

    #[test]
    fn complex_args() {
        // _Complex float: one SSE eightbyte holding both halves; _Complex
        // double: two SSE; _Complex long double: COMPLEX_X87 -> memory.
        assert_eq!(
            args_of(vec![
                cx(Type::FLOAT),
                cx(Type::DOUBLE),
                cx(Type::LONGDOUBLE),
                Type::S8,
                cx(Type::FLOAT)
            ]),
            vec![
                Frame(sse(0)),
                Frame(sse(1)),
                Stack(0),
                Frame(gpr(0)),
                Frame(sse(3))
            ]
        );
        // Complex long double on the stack is 16-aligned, 32 bytes long.
        let mut args = vec![Type::S64; 7];
        args.push(cx(Type::LONGDOUBLE));
        args.push(Type::S64);
        assert_eq!(args_of(args)[6..], [Stack(0), Stack(16), Stack(48)]);
    }

    #[test]
    fn many_arg_spills() {
        // psABI: each class spills separately once its registers run out.
        // 20 mixed args: ints and doubles interleaved.
        let args: Vec<Type> = (0..20)
            .map(|i| if i % 2 == 0 { Type::S32 } else { Type::DOUBLE })
            .collect();
        let a = args_of(args);
        // ints: indexes 0,2,..,10 in gprs 0..6; 12,14,16,18 on the stack.
        // doubles: 1,3,..,15 in sse 0..8; 17,19 on the stack.
        for k in 0..6 {
            assert_eq!(a[2 * k], Frame(gpr(k as u32)));
        }
        for k in 0..8 {
            assert_eq!(a[2 * k + 1], Frame(sse(k as u32)));
        }
        assert_eq!(a[12], Stack(0));
        assert_eq!(a[14], Stack(8));
        assert_eq!(a[16], Stack(16));
        assert_eq!(a[17], Stack(24));
        assert_eq!(a[18], Stack(32));
        assert_eq!(a[19], Stack(40));
        let p = plan(vec![Type::S32; 20], Type::VOID);
        assert_eq!(p.ret_buf, 160);
        assert_eq!(p.scratch_size, 192);
    }

    // ---- returns (psABI §3.2.3 "Returning of Values") ----

    #[test]
    fn scalar_returns() {
        // ffi64.c:451-500 and the closure loads at unix64.S:336-375.
        use Ext::{Sign, Zero};
        assert_eq!(ret_of(Type::VOID), RetLoc::Void);
        assert_eq!(ret_of(Type::U8), regs(&[mv(0, 1, Zero, RET_RAX)]));
        assert_eq!(ret_of(Type::S8), regs(&[mv(0, 1, Sign, RET_RAX)]));
        assert_eq!(ret_of(Type::U16), regs(&[mv(0, 2, Zero, RET_RAX)]));
        assert_eq!(ret_of(Type::S16), regs(&[mv(0, 2, Sign, RET_RAX)]));
        assert_eq!(ret_of(Type::U32), regs(&[mv(0, 4, Zero, RET_RAX)]));
        assert_eq!(ret_of(Type::S32), regs(&[mv(0, 4, Sign, RET_RAX)]));
        assert_eq!(ret_of(Type::U64), regs(&[mv(0, 8, Zero, RET_RAX)]));
        assert_eq!(ret_of(Type::S64), regs(&[mv(0, 8, Zero, RET_RAX)]));
        assert_eq!(ret_of(Type::POINTER), regs(&[mv(0, 8, Zero, RET_RAX)]));
        assert_eq!(ret_of(Type::FLOAT), regs(&[mv(0, 4, Zero, RET_XMM0)]));
        assert_eq!(ret_of(Type::DOUBLE), regs(&[mv(0, 8, Zero, RET_XMM0)]));
        assert_eq!(ret_of(Type::LONGDOUBLE), RetLoc::X87);
    }

    #[test]
    fn complex_returns() {
        // ffi64.c:548-561.
        assert_eq!(
            ret_of(cx(Type::FLOAT)),
            regs(&[mv(0, 8, Ext::Zero, RET_XMM0)])
        );
        assert_eq!(
            ret_of(cx(Type::DOUBLE)),
            regs(&[mv(0, 8, Ext::Zero, RET_XMM0), mv(8, 8, Ext::Zero, RET_XMM1)])
        );
        let p = plan(vec![Type::S32], cx(Type::LONGDOUBLE));
        assert_eq!(p.ret, RetLoc::X87Pair);
        assert_eq!(p.ret.kind(), crate::RetKind::X87Pair);
        // Complex long double does not take a hidden pointer.
        assert_eq!(p.args, vec![Frame(gpr(0))]);
        // The buffer holds 32 bytes.
        assert_eq!((p.ret_buf, p.scratch_size), (16, 48));
    }

    #[test]
    fn struct_returns_in_registers() {
        // psABI "Returning of Values": INTEGER -> rax, rdx; SSE -> xmm0,
        // xmm1 (ffi64.c:513-531).
        use Ext::Zero;
        let z = Zero;
        // {char}: rax, 1 byte.
        assert_eq!(ret_of(st(vec![Type::U8])), regs(&[mv(0, 1, z, RET_RAX)]));
        // {char, char, char}: 3 bytes.
        assert_eq!(ret_of(st(vec![Type::U8; 3])), regs(&[mv(0, 3, z, RET_RAX)]));
        // {float}: xmm0, 4 bytes (UNIX64_RET_XMM32, ffi64.c:515-516).
        assert_eq!(
            ret_of(st(vec![Type::FLOAT])),
            regs(&[mv(0, 4, z, RET_XMM0)])
        );
        // {float, float}: xmm0, 8 bytes.
        assert_eq!(
            ret_of(st(vec![Type::FLOAT; 2])),
            regs(&[mv(0, 8, z, RET_XMM0)])
        );
        // {float, float, float}: xmm0 8 + xmm1 4.
        assert_eq!(
            ret_of(st(vec![Type::FLOAT; 3])),
            regs(&[mv(0, 8, z, RET_XMM0), mv(8, 4, z, RET_XMM1)])
        );
        // {double, int}: SSE then INTEGER -> xmm0, rax (ffi64.c:524-525).
        assert_eq!(
            ret_of(st(vec![Type::DOUBLE, Type::S32])),
            regs(&[mv(0, 8, z, RET_XMM0), mv(8, 8, z, RET_RAX)])
        );
        // {int, double}: INTEGER then SSE -> rax, xmm0 (ffi64.c:526-527).
        assert_eq!(
            ret_of(st(vec![Type::S32, Type::DOUBLE])),
            regs(&[mv(0, 8, z, RET_RAX), mv(8, 8, z, RET_XMM0)])
        );
        // {int, int, int}: rax 8 + rdx 4.
        assert_eq!(
            ret_of(st(vec![Type::S32; 3])),
            regs(&[mv(0, 8, z, RET_RAX), mv(8, 4, z, RET_RDX)])
        );
        // {long, long}: rax, rdx.
        assert_eq!(
            ret_of(st(vec![Type::S64; 2])),
            regs(&[mv(0, 8, z, RET_RAX), mv(8, 8, z, RET_RDX)])
        );
        // {double, double}: xmm0, xmm1.
        assert_eq!(
            ret_of(st(vec![Type::DOUBLE; 2])),
            regs(&[mv(0, 8, z, RET_XMM0), mv(8, 8, z, RET_XMM1)])
        );
        // {float, float, int}: 12 bytes, xmm0 then rax with 4 bytes.
        assert_eq!(
            ret_of(st(vec![Type::FLOAT, Type::FLOAT, Type::S32])),
            regs(&[mv(0, 8, z, RET_XMM0), mv(8, 4, z, RET_RAX)])
        );
        // Nested {{double}, {float}}: 16 bytes, xmm0, xmm1 (8: tail padding).
        assert_eq!(
            ret_of(st(vec![st(vec![Type::DOUBLE]), st(vec![Type::FLOAT])])),
            regs(&[mv(0, 8, z, RET_XMM0), mv(8, 8, z, RET_XMM1)])
        );
        // {_Complex float}: xmm0 8 bytes.
        assert_eq!(
            ret_of(st(vec![cx(Type::FLOAT)])),
            regs(&[mv(0, 8, z, RET_XMM0)])
        );
    }

    #[test]
    fn struct_of_long_double_returns_in_rax_rdx_like_libffi() {
        // ffi64.c:410-413 + 513-530: UNIX64_RET_ST_RAX_RDX (not st(0)).
        let z = Ext::Zero;
        let want = regs(&[mv(0, 8, z, RET_RAX), mv(8, 8, z, RET_RDX)]);
        assert_eq!(ret_of(st(vec![Type::LONGDOUBLE])), want);
        assert_eq!(ret_of(st(vec![st(vec![Type::LONGDOUBLE])])), want);
        // And no hidden pointer: the first argument is in rdi.
        let p = plan(vec![Type::S32], st(vec![Type::LONGDOUBLE]));
        assert_eq!(p.args, vec![Frame(gpr(0))]);
    }

    #[test]
    fn memory_return_shifts_integer_args() {
        // psABI: MEMORY return -> hidden pointer in %rdi, returned in %rax
        // (ffi64.c:503-510, 890-898).
        let big = st(vec![Type::U64; 3]);
        let mut args = vec![Type::S32; 6];
        args.push(Type::DOUBLE);
        let p = plan(args, big);
        assert_eq!(
            p.ret,
            RetLoc::Memory {
                ptr: gpr(0),
                echo: RET_RAX
            }
        );
        assert_eq!(p.ret.kind(), crate::RetKind::Regs);
        let mut want: Vec<ArgLoc> = (1..6).map(|i| Frame(gpr(i))).collect();
        want.push(Stack(0));
        want.push(Frame(sse(0)));
        assert_eq!(p.args, want);
        // 7 * 8 = 56 -> ret_buf 64; still a 32-byte buffer.
        assert_eq!((p.ret_buf, p.scratch_size), (64, 96));
    }

    #[test]
    fn memory_returns() {
        // Struct returns of MEMORY class (ffi64.c:503-510).
        let mem = RetLoc::Memory {
            ptr: gpr(0),
            echo: RET_RAX,
        };
        assert_eq!(ret_of(st(vec![Type::U8; 17])), mem);
        assert_eq!(ret_of(st(vec![Type::DOUBLE; 3])), mem);
        assert_eq!(ret_of(st(vec![Type::LONGDOUBLE, Type::S32])), mem);
        assert_eq!(ret_of(st(vec![cx(Type::LONGDOUBLE)])), mem);
        assert_eq!(ret_of(st(vec![cx(Type::DOUBLE), Type::U8])), mem);
        // A two-GPR struct argument after the hidden pointer.
        let p = plan(vec![st(vec![Type::S64; 2])], st(vec![Type::S64; 4]));
        assert_eq!(p.args, vec![Frame(gpr(1))]);
        // The hidden pointer counts against the 6 GPRs: 5 remain.
        let mut args = vec![Type::S64; 4];
        args.push(st(vec![Type::S64; 2]));
        args.push(Type::S64);
        let p = plan(args, st(vec![Type::S64; 4]));
        assert_eq!(p.args[4..], [Stack(0), Frame(gpr(5))]);
    }

    #[test]
    fn scratch_layout() {
        // plan.rs: avalue[] at 0, gathers, 16-aligned >= 32-byte return
        // buffer, total a multiple of 16.
        // No args: ret_buf at 0, 32 bytes.
        let p = plan(vec![], Type::VOID);
        assert_eq!((p.ret_buf, p.scratch_size, p.callee_pop), (0, 32, 0));
        // One arg: avalue 8 -> ret_buf 16, scratch 48.
        let p = plan(vec![Type::S32], Type::S32);
        assert_eq!((p.ret_buf, p.scratch_size), (16, 48));
        // Two args: 16 -> 16, 48.
        let p = plan(vec![Type::S32, Type::S32], Type::LONGDOUBLE);
        assert_eq!((p.ret_buf, p.scratch_size), (16, 48));
        // Three args: 24 -> 32, 64.
        let p = plan(vec![Type::S32; 3], Type::VOID);
        assert_eq!((p.ret_buf, p.scratch_size), (32, 64));
        // Every plan: scratch is a multiple of 16 and the buffer >= 32 bytes.
        for n in 0..12 {
            for r in ALL_SCALARS {
                let p = plan(vec![Type::DOUBLE; n], r);
                assert_eq!(p.scratch_size % 16, 0);
                assert_eq!(p.ret_buf % 16, 0);
                assert!(p.scratch_size >= p.ret_buf + 32);
                assert!(p.ret_buf as usize >= 8 * n);
            }
        }
    }

    #[test]
    fn full_plan_example() {
        // int f(char, struct{double,int}, long double, float) -- exact plan.
        let p = plan(
            vec![
                Type::S8,
                st(vec![Type::DOUBLE, Type::S32]),
                Type::LONGDOUBLE,
                Type::FLOAT,
            ],
            Type::S32,
        );
        assert_eq!(
            p,
            Plan {
                args: vec![
                    Frame(gpr(0)),
                    Gather {
                        dst: 32,
                        pieces: vec![pc(sse(0), 0, 8), pc(gpr(1), 8, 8)]
                    },
                    Stack(0),
                    Frame(sse(1)),
                ],
                ret: regs(&[mv(0, 4, Ext::Sign, RET_RAX)]),
                ret_buf: 48,
                scratch_size: 80,
                callee_pop: 0,
            }
        );
    }

    #[test]
    fn errors() {
        // Type::validate -> BadType; void argument -> Unsupported (module docs).
        assert_eq!(
            classify(&sig(vec![Type::VOID], Type::VOID)),
            Err(ClassifyError::Unsupported("void argument"))
        );
        // A scalar element of non-standard layout.
        let bad = Type {
            kind: Kind::Struct(vec![Type {
                align: 1,
                ..Type::U32
            }]),
            size: 4,
            align: 1,
        };
        assert!(matches!(
            classify(&sig(vec![bad.clone()], Type::VOID)),
            Err(ClassifyError::BadType(TypeError::LayoutMismatch { .. }))
        ));
        assert!(matches!(
            classify(&sig(vec![], bad)),
            Err(ClassifyError::BadType(_))
        ));
        let odd = Type {
            kind: Kind::S32,
            size: 8,
            align: 8,
        };
        assert!(matches!(
            classify(&sig(vec![odd], Type::VOID)),
            Err(ClassifyError::BadType(_))
        ));
        let bad_align = Type {
            kind: Kind::U8,
            size: 1,
            align: 3,
        };
        assert_eq!(
            classify(&sig(vec![], bad_align)),
            Err(ClassifyError::BadType(TypeError::BadAlign(3)))
        );
    }

    // ---- stated layouts: packed structs, unions, bitfields (module docs,
    // "Stated layouts"). Expected values are worked out by hand from
    // libffi's classify_argument walk; the layouts are those CPython's
    // ctypes states (Modules/_ctypes/stgdict.c). ----

    /// A ctypes `_pack_ = 1` structure: fields back to back, alignment 1.
    fn packed(elems: Vec<Type>) -> Type {
        let size = elems.iter().map(|e| e.size).sum();
        Type::aggregate(elems, size, 1).unwrap()
    }
    /// A ctypes Union: every member an element; size the largest member
    /// rounded up to the largest alignment.
    fn union(elems: Vec<Type>) -> Type {
        let align = elems.iter().map(|e| e.align).max().unwrap();
        let size = elems.iter().map(|e| e.size).max().unwrap();
        Type::aggregate(elems, size.next_multiple_of(align), align).unwrap()
    }
    /// A ctypes array field of a struct of at most 16 bytes: a struct of
    /// `n` copies (stgdict.c, bpo-22273).
    fn array(t: Type, n: usize) -> Type {
        let (size, align) = (t.size * n as u64, t.align);
        Type::aggregate(vec![t; n], size, align).unwrap()
    }
    fn classes(t: &Type) -> Option<Vec<RegClass>> {
        classify_type(t)
    }

    #[test]
    fn ffi_align_is_libffis() {
        use crate::types::ffi_align;
        // ((v - 1) | (a - 1)) + 1 (include/ffi_common.h).
        assert_eq!(ffi_align(0, 8), 0);
        assert_eq!(ffi_align(1, 4), 4);
        assert_eq!(ffi_align(4, 4), 4);
        assert_eq!(ffi_align(9, 8), 16);
        assert_eq!(ffi_align(5, 1), 5);
        // Alignment 0 restarts at 0.
        assert_eq!(ffi_align(12, 0), 0);
        assert_eq!(ffi_align(0, 0), 0);
    }

    #[test]
    fn packed_13_byte_struct() {
        // ctypes: class P(Structure): _pack_ = 1; _fields_ = [c_char, c_int,
        // c_double] -> 13 bytes, alignment 1, fields at 0, 1, 5. libffi's
        // walk puts the int at FFI_ALIGN(1, 4) = 4 and the double at 8:
        // INTEGER, SSE. (GCC passes a packed struct with unaligned fields in
        // memory; libffi's ffi_call sends these registers, and all 13 bytes
        // travel in them as raw eightbytes.)
        use RegClass::*;
        let p = packed(vec![Type::S8, Type::S32, Type::DOUBLE]);
        assert_eq!((p.size, p.align), (13, 1));
        assert_eq!(classes(&p), Some(vec![Integer, Sse]));
        let plan = plan(vec![p.clone(), Type::S32, p.clone()], p.clone());
        assert_eq!(
            plan.args,
            vec![
                Gather {
                    dst: 24,
                    pieces: vec![pc(gpr(0), 0, 8), pc(sse(0), 8, 5)]
                },
                Frame(gpr(1)),
                Gather {
                    dst: 40,
                    pieces: vec![pc(gpr(2), 0, 8), pc(sse(1), 8, 5)]
                },
            ]
        );
        // Return: eightbyte 0 not SSE, 1 SSE -> UNIX64_RET_ST_RAX_XMM0 with
        // 13 bytes (ffi64.c:511-531).
        assert_eq!(
            plan.ret,
            regs(&[mv(0, 8, Ext::Zero, RET_RAX), mv(8, 5, Ext::Zero, RET_XMM0)])
        );
        // Elements the walk places past the stated size are dropped
        // (ffi64.c:270-276): {char, double, int} packed is 13 bytes, the int
        // walks to 16.
        let p2 = packed(vec![Type::S8, Type::DOUBLE, Type::S32]);
        assert_eq!(classes(&p2), Some(vec![Integer, Sse]));
    }

    #[test]
    fn packed_structs_over_16_bytes_are_memory() {
        // 33 bytes (> 32, ffi64.c:250) and 17 bytes (3 eightbytes without
        // SSEUP, ffi64.c:286-298): MEMORY, on the stack 8-aligned (stated
        // alignment 1), and returned through the hidden pointer.
        let p33 = packed(vec![
            Type::S8,
            Type::DOUBLE,
            Type::DOUBLE,
            Type::DOUBLE,
            Type::DOUBLE,
        ]);
        let p17 = packed(vec![Type::S8, Type::DOUBLE, Type::DOUBLE]);
        assert_eq!((p33.size, p17.size), (33, 17));
        assert_eq!(classes(&p33), None);
        assert_eq!(classes(&p17), None);
        let p = plan(vec![p33.clone(), Type::S8, p17.clone(), p33.clone()], p33);
        assert_eq!(p.args, vec![Stack(0), Frame(gpr(1)), Stack(40), Stack(64)]);
        assert_eq!(
            p.ret,
            RetLoc::Memory {
                ptr: gpr(0),
                echo: RET_RAX
            }
        );
    }

    #[test]
    fn unions_are_walked_member_after_member() {
        use RegClass::*;
        // union {int; double}: the double walks to 8, past the 8 bytes:
        // INTEGER (as GCC also says), one GPR.
        let id = union(vec![Type::S32, Type::DOUBLE]);
        assert_eq!((id.size, id.align), (8, 8));
        assert_eq!(classes(&id), Some(vec![Integer]));
        // union {double; int}: only the double counts: SSE, where GCC says
        // INTEGER. libffi's ffi_call sends it in xmm, so we read xmm.
        let di = union(vec![Type::DOUBLE, Type::S32]);
        assert_eq!(classes(&di), Some(vec![Sse]));
        assert_eq!(
            args_of(vec![id.clone(), di.clone(), id.clone()]),
            vec![Frame(gpr(0)), Frame(sse(0)), Frame(gpr(1))]
        );
        assert_eq!(ret_of(id), regs(&[mv(0, 8, Ext::Zero, RET_RAX)]));
        assert_eq!(ret_of(di), regs(&[mv(0, 8, Ext::Zero, RET_XMM0)]));
        // union {char[3]; short}: the array a 3-byte struct at 0, the short
        // at FFI_ALIGN(3, 2) = 4; 4 bytes, INTEGER, in rax.
        let cs = union(vec![array(Type::S8, 3), Type::S16]);
        assert_eq!((cs.size, cs.align), (4, 2));
        assert_eq!(classes(&cs), Some(vec![Integer]));
        assert_eq!(ret_of(cs), regs(&[mv(0, 4, Ext::Zero, RET_RAX)]));
        // union {float; int}: INTEGER (rule 4), 4 bytes in rax.
        let fi = union(vec![Type::FLOAT, Type::S32]);
        assert_eq!(classes(&fi), Some(vec![Integer]));
        assert_eq!(ret_of(fi), regs(&[mv(0, 4, Ext::Zero, RET_RAX)]));
        // union {float; double}: SSE; 8 bytes in xmm0.
        let fd = union(vec![Type::FLOAT, Type::DOUBLE]);
        assert_eq!(classes(&fd), Some(vec![Sse]));
        assert_eq!(ret_of(fd), regs(&[mv(0, 8, Ext::Zero, RET_XMM0)]));
        // union {double; long long[2]}: the array at 8 fills eightbyte 1:
        // SSE, INTEGER; returned in xmm0, rax (UNIX64_RET_ST_XMM0_RAX).
        let dl = union(vec![Type::DOUBLE, array(Type::S64, 2)]);
        assert_eq!((dl.size, dl.align), (16, 8));
        assert_eq!(classes(&dl), Some(vec![Sse, Integer]));
        assert_eq!(
            ret_of(dl.clone()),
            regs(&[mv(0, 8, Ext::Zero, RET_XMM0), mv(8, 8, Ext::Zero, RET_RAX)])
        );
        assert_eq!(
            args_of(vec![dl]),
            vec![Gather {
                dst: 8,
                pieces: vec![pc(sse(0), 0, 8), pc(gpr(0), 8, 8)]
            }]
        );
        // union {int; int[4]}: 16 bytes, alignment 4; the array walks from
        // 4, so it spans 3 eightbytes: MEMORY (ffi64.c:286-298), on the
        // stack, though GCC passes it in two GPRs.
        let i4 = union(vec![Type::S32, array(Type::S32, 4)]);
        assert_eq!((i4.size, i4.align), (16, 4));
        assert_eq!(classes(&i4), None);
        assert_eq!(
            args_of(vec![i4.clone(), Type::S32]),
            vec![Stack(0), Frame(gpr(0))]
        );
        assert_eq!(
            ret_of(i4),
            RetLoc::Memory {
                ptr: gpr(0),
                echo: RET_RAX
            }
        );
    }

    #[test]
    fn bitfield_structs() {
        use RegClass::*;
        // ctypes lists every bitfield as an element of its declared type;
        // the struct's size is that of the storage the bits share.
        // struct {unsigned a:3, b:5, c:24}: 4 bytes, elements 3 x uint32;
        // the walk puts them at 0, 4, 8: INTEGER, one GPR, rax.
        let bits = Type::aggregate(vec![Type::U32; 3], 4, 4).unwrap();
        assert_eq!(classes(&bits), Some(vec![Integer]));
        assert_eq!(args_of(vec![bits.clone()]), vec![Frame(gpr(0))]);
        assert_eq!(ret_of(bits), regs(&[mv(0, 4, Ext::Zero, RET_RAX)]));
        // struct {float f; int a:3, b:3; float g}: ctypes puts a, b in one
        // int at 4 and g at 8 (12 bytes); the walk puts b at 8 and g at 12,
        // so eightbyte 1 is INTEGER: two GPRs (GCC: INTEGER, SSE).
        let fbg =
            Type::aggregate(vec![Type::FLOAT, Type::S32, Type::S32, Type::FLOAT], 12, 4).unwrap();
        assert_eq!(classes(&fbg), Some(vec![Integer, Integer]));
        assert_eq!(args_of(vec![fbg.clone()]), vec![Frame(gpr(0))]);
        assert_eq!(
            ret_of(fbg),
            regs(&[mv(0, 8, Ext::Zero, RET_RAX), mv(8, 4, Ext::Zero, RET_RDX)])
        );
        // struct {double x; uint64 a:1, b:63}: 16 bytes; b walks to 16 and
        // is dropped: SSE, INTEGER.
        let xab = Type::aggregate(vec![Type::DOUBLE, Type::U64, Type::U64], 16, 8).unwrap();
        assert_eq!(classes(&xab), Some(vec![Sse, Integer]));
    }

    #[test]
    fn stated_size_beyond_the_elements_leaves_no_class_eightbytes() {
        use RegClass::*;
        // {char} stated as 16 bytes, 8-aligned: INTEGER, NO_CLASS. ffi_call
        // sends one GPR (a NO_CLASS eightbyte takes no register,
        // ffi64.c:676-677), so the next argument is in rsi, and the value
        // is gathered (its second eightbyte unspecified).
        let c16 = Type::aggregate(vec![Type::U8], 16, 8).unwrap();
        assert_eq!(classes(&c16), Some(vec![Integer, NoClass]));
        assert_eq!(
            args_of(vec![c16.clone(), Type::S32]),
            vec![
                Gather {
                    dst: 16,
                    pieces: vec![pc(gpr(0), 0, 8)]
                },
                Frame(gpr(1))
            ]
        );
        // Returned as UNIX64_RET_ST_RAX_RDX, 16 bytes: libffi picks the pair
        // by eightbytes 0 and 1, not by register counts.
        assert_eq!(
            ret_of(c16),
            regs(&[mv(0, 8, Ext::Zero, RET_RAX), mv(8, 8, Ext::Zero, RET_RDX)])
        );
        // {double} as 16 bytes: SSE, NO_CLASS -> xmm0 (+ rax on return).
        let d16 = Type::aggregate(vec![Type::DOUBLE], 16, 8).unwrap();
        assert_eq!(classes(&d16), Some(vec![Sse, NoClass]));
        assert_eq!(
            args_of(vec![d16.clone(), Type::DOUBLE]),
            vec![
                Gather {
                    dst: 16,
                    pieces: vec![pc(sse(0), 0, 8)]
                },
                Frame(sse(1))
            ]
        );
        assert_eq!(
            ret_of(d16),
            regs(&[mv(0, 8, Ext::Zero, RET_XMM0), mv(8, 8, Ext::Zero, RET_RAX)])
        );
        // No elements at all, 8 bytes: one NO_CLASS eightbyte, no register.
        let none = Type::aggregate(vec![], 8, 8).unwrap();
        assert_eq!(classes(&none), Some(vec![NoClass]));
        assert_eq!(
            args_of(vec![none.clone(), Type::S32]),
            vec![
                Gather {
                    dst: 16,
                    pieces: vec![]
                },
                Frame(gpr(0))
            ]
        );
        assert_eq!(ret_of(none), regs(&[mv(0, 8, Ext::Zero, RET_RAX)]));
        // {char, long double} stated as 16 bytes: the long double walks to
        // 16 and is dropped.
        let cl = Type::aggregate(vec![Type::U8, Type::LONGDOUBLE], 16, 16).unwrap();
        assert_eq!(classes(&cl), Some(vec![Integer, NoClass]));
    }

    #[test]
    fn zero_sized_and_void_elements() {
        use RegClass::*;
        // ctypes: a Structure without _fields_ has a zeroed ffi_type (void,
        // size 0, alignment 0); as a field it is NO_CLASS, and alignment 0
        // restarts the walk at offset 0 (FFI_ALIGN(v, 0) == 0).
        let e = Type {
            kind: Kind::Void,
            size: 0,
            align: 0,
        };
        let s = Type::aggregate(vec![e.clone(), Type::S32], 4, 4).unwrap();
        assert_eq!(classes(&s), Some(vec![Integer]));
        // {int64, E, double}, 16 bytes: after E the double walks to 0 and
        // merges into eightbyte 0; eightbyte 1 stays NO_CLASS.
        let s2 = Type::aggregate(vec![Type::S64, e, Type::DOUBLE], 16, 8).unwrap();
        assert_eq!(classes(&s2), Some(vec![Integer, NoClass]));
        // A structure with `_fields_ = []` (size 0, alignment 1) as a field:
        // NO_CLASS; the walk goes on.
        let z = Type::aggregate(vec![], 0, 1);
        assert!(z.is_err(), "not as an argument");
        let z = Type {
            kind: Kind::Struct(vec![]),
            size: 0,
            align: 1,
        };
        let s3 = Type::aggregate(vec![Type::DOUBLE, z.clone(), Type::S32], 16, 8).unwrap();
        assert_eq!(classes(&s3), Some(vec![Sse, Integer]));
        // A struct stated as 0 bytes at the start of an eightbyte is
        // NO_CLASS (ffi64.c:256-263); inside an eightbyte it has one, and
        // its elements are walked (ffi64.c:244-246): Z = {int} stated 0.
        let zi = Type {
            kind: Kind::Struct(vec![Type::S32]),
            size: 0,
            align: 1,
        };
        let at0 = Type::aggregate(vec![Type::DOUBLE, zi.clone()], 8, 8).unwrap();
        assert_eq!(classes(&at0), Some(vec![Sse]));
        let at4 = Type::aggregate(vec![Type::FLOAT, zi], 8, 4).unwrap();
        assert_eq!(classes(&at4), Some(vec![Integer]));
        // libffi's own ffi_type_void (size 1, alignment 1) as an element.
        let v = Type::aggregate(vec![Type::S32, Type::VOID], 8, 4).unwrap();
        assert_eq!(classes(&v), Some(vec![Integer]));
    }

    #[test]
    fn nested_structs_walk_from_their_offset_in_the_eightbyte() {
        use RegClass::*;
        // Packed {char, {int, int}}: 9 bytes. The inner struct (alignment
        // 4) walks to 4 and is classified from byte_offset 4: its second int
        // at 8 lands in eightbyte 1: INTEGER, INTEGER.
        let ii = st(vec![Type::S32, Type::S32]);
        let p = packed(vec![Type::S8, ii]);
        assert_eq!(p.size, 9);
        assert_eq!(classes(&p), Some(vec![Integer, Integer]));
        assert_eq!(args_of(vec![p]), vec![Frame(gpr(0))]);
        // Packed {int, {float, float, float}}: 16 bytes; the inner struct at
        // 4 spans (12 + 4) / 8 = 2 eightbytes: INTEGER (int + float), SSE.
        let fff = st(vec![Type::FLOAT; 3]);
        let p = packed(vec![Type::S32, fff]);
        assert_eq!(classes(&p), Some(vec![Integer, Sse]));
        // Packed {char, {double, double}} is 17 bytes: memory anyway. But a
        // 16-byte inner struct of alignment 4 at 4, inside 16 stated bytes
        // (a union), spans 3 eightbytes: MEMORY for the whole.
        let i4 = st(vec![Type::S32; 4]);
        let u = Type::aggregate(vec![Type::S32, i4], 16, 4).unwrap();
        assert_eq!(classes(&u), None);
        // A _Complex float walked to offset 4 straddles: SSE, SSE
        // (ffi64.c:351-357), merged with the char: INTEGER, SSE.
        let p = Type::aggregate(vec![Type::U8, cx(Type::FLOAT)], 9, 1).unwrap();
        assert_eq!(classes(&p), Some(vec![Integer, Sse]));
    }

    #[test]
    fn x87_class_after_sse_returns_in_xmm0_rax() {
        // {double, N} with N = {long double} stated 8-aligned: N walks to 8,
        // X87 lands in eightbyte 1, X87UP is dropped: SSE, X87. As an
        // argument: memory (ffi64.c:410-413). As a return, examine_argument
        // answers 1 and eightbyte 0 is SSE: UNIX64_RET_ST_XMM0_RAX.
        use RegClass::*;
        let n = Type::aggregate(vec![Type::LONGDOUBLE], 16, 8).unwrap();
        let t = Type::aggregate(vec![Type::DOUBLE, n], 16, 8).unwrap();
        assert_eq!(classes(&t), Some(vec![Sse, X87]));
        assert_eq!(args_of(vec![t.clone()]), vec![Stack(0)]);
        let p = plan(vec![Type::S32], t);
        assert_eq!(
            p.ret,
            regs(&[mv(0, 8, Ext::Zero, RET_XMM0), mv(8, 8, Ext::Zero, RET_RAX)])
        );
        assert_eq!(p.args, vec![Frame(gpr(0))]);
    }

    #[test]
    fn stated_alignment_places_stack_arguments() {
        // Stack arguments use the stated alignment (max 8): a packed struct
        // takes 8-byte slots, a struct stated 32-aligned goes to a multiple
        // of 32.
        let p9 = packed(vec![Type::S8, Type::S64]);
        let a32 = Type::aggregate(vec![Type::DOUBLE; 5], 40, 32).unwrap();
        let mut args = vec![Type::S64; 6];
        args.extend([p9.clone(), p9, a32, Type::S8]);
        assert_eq!(
            args_of(args)[6..],
            [Stack(0), Stack(16), Stack(32), Stack(72)]
        );
    }

    #[test]
    fn dispatch_through_crate_classify() {
        let s = sig(vec![Type::S32], Type::DOUBLE);
        assert_eq!(crate::classify(&s), classify(&s));
    }
}
