//! Microsoft x64 classification as libffi implements it (`src/x86/ffiw64.c`)
//! for `FFI_WIN64` (= `FFI_EFI64`) and `FFI_GNUW64`.
//!
//! Line references are to libffi 3.5.2/3.6.0 as bundled in `libffi-sys`
//! 4.2.2: `src/x86/ffiw64.c` (`ffi_prep_cif_machdep[_efi64]`,
//! `ffi_call_int`, `ffi_closure_win64_inner`) and `src/x86/win64.S`
//! (`ffi_call_win64`'s return table and `ffi_closure_win64`). We classify
//! these ABIs on a System V host (statictramp's targets), where
//! `FFI_TYPE_LONGDOUBLE` is 4, distinct from `FFI_TYPE_DOUBLE`
//! (`include/ffi.h.in:64-68`), and `ffi_type_longdouble` is 16 bytes.
//!
//! # Arguments (`ffiw64.c:357-376`)
//! Argument slot `n` (counting the hidden return pointer, if any, as slot
//! 0) is `rcx`, `rdx`, `r8`, `r9` for `n < 4` (`gpr(n)` in our frame), else
//! the stack word at `WIN64_HOME + 8 * (n - 4)` (libffi's `frame->args[n]`,
//! which starts at the home area).
//! - `float` and `double` (the *kinds*, not structs of them): `xmm{n}`
//!   (`sse(n)`) for `n < 4`, else the stack slot (`ffiw64.c:363-369`).
//! - Any other type of size 1, 2, 4 or 8 (integers, pointers, such structs,
//!   `_Complex float`): by value in the slot (`ffiw64.c:370-371`).
//! - Everything else by reference, the slot holding a pointer
//!   (`ffiw64.c:372-373`): structs of other sizes, `_Complex double`,
//!   `_Complex long double`, and **`long double` under both `FFI_WIN64` and
//!   `FFI_GNUW64`**: the test at `ffiw64.c:363` is on the type code, and a
//!   16-byte `long double` (code 4) falls through to the size test. libffi's
//!   `ffi_call` agrees (`ffiw64.c:198-214` passes `avalue[i]` for sizes
//!   other than 1, 2, 4, 8).
//!
//! Variadic cifs need nothing special: the caller puts a variadic `float`/
//! `double` in both the xmm and the general register, so reading xmm is
//! right (and libffi's closure ignores `nfixedargs` too).
//!
//! # Return (`ffiw64.c:68-98`, `ffiw64.c:346-355`, `win64.S:232-234`)
//! - `void`: nothing.
//! - Structs and complex types of size 1, 2, 4, 8: `rax`, zero-extended from
//!   the value's size (`ffiw64.c:78-96`; so `_Complex float` comes back in
//!   `rax`).
//! - Other structs and complex types, and `long double` under
//!   `FFI_GNUW64` (`ffiw64.c:73-76`): hidden pointer in slot 0 (`rcx`),
//!   shifting every argument by one slot, echoed in `rax`
//!   (`ffiw64.c:350-355`).
//! - `float`: `xmm0` (4 bytes); `double`: `xmm0` (8 bytes).
//! - Integers and pointers: `rax`, `len` = the type's size, sign-extended
//!   for `int8/16/32`, else zero-extended. libffi's closure instead loads
//!   the first 8 bytes of the return buffer into both `rax` and `xmm0`
//!   unconverted (`win64.S:232-234`), relying on the handler to have
//!   written a full, extended `ffi_arg`; for such a handler the result is
//!   the same, and for one that writes only the type's bytes ours is still
//!   right where libffi's upper bits would be garbage. The ABI leaves the
//!   bits above the type undefined, and libffi's `ffi_call` re-extends
//!   them itself (`win64.S:100-140`).
//! - `long double` under `FFI_WIN64`: `cif->flags` stays
//!   `FFI_TYPE_LONGDOUBLE` (`ffiw64.c:73-77` only changes it for
//!   `FFI_GNUW64`), so no hidden pointer; libffi's closure returns the first
//!   8 bytes of the 16-byte value in `rax` and `xmm0` (`win64.S:232-234`),
//!   and we mirror exactly that. (libffi's own `ffi_call` of such a cif
//!   aborts: flag 4 hits the `FFI_TYPE_DOUBLE + 1` entry, `win64.S:110-112`;
//!   so no libffi caller can observe the value.)
//!
//! # Errors
//! As for System V: [`ClassifyError::BadType`] for malformed or
//! non-standard types, [`ClassifyError::Unsupported`]`("void argument")`
//! for a `void` argument (libffi would pass a 1-byte nothing by value).
use super::frame::{RET_RAX, RET_XMM0, WIN64_HOME, WIN64_REG_ARGS, gpr, sse};
use super::{check_signature, finish, int_ext, to_u32};
use crate::{Abi, ArgLoc, ClassifyError, Ext, Kind, Plan, RetLoc, RetMove, Signature, Type};

/// Stack offset of argument slot `n >= 4`.
fn stack_slot(n: u64) -> Result<u32, ClassifyError> {
    to_u32(u64::from(WIN64_HOME) + 8 * (n - u64::from(WIN64_REG_ARGS)))
}

/// Whether libffi passes (and returns) a value of this size in a register.
fn by_value_size(size: u64) -> bool {
    matches!(size, 1 | 2 | 4 | 8)
}

/// How a value of type `t` comes back under `abi` (see the module docs).
pub(crate) fn ret_loc(abi: Abi, t: &Type) -> RetLoc {
    let mv = |len: u64, ext: Ext, dst: u32| RetMove {
        at: 0,
        len: len as u32,
        ext,
        dst,
    };
    let memory = RetLoc::Memory {
        ptr: gpr(0),
        echo: RET_RAX,
    };
    match &t.kind {
        Kind::Void => RetLoc::Void,
        Kind::Float => RetLoc::Regs(vec![mv(4, Ext::Zero, RET_XMM0)]),
        Kind::Double => RetLoc::Regs(vec![mv(8, Ext::Zero, RET_XMM0)]),
        // ffiw64.c:73-77.
        Kind::LongDouble if abi == Abi::GnuW64 => memory,
        Kind::LongDouble => {
            RetLoc::Regs(vec![mv(8, Ext::Zero, RET_RAX), mv(8, Ext::Zero, RET_XMM0)])
        }
        // ffiw64.c:78-96.
        Kind::Struct(_) | Kind::Complex(_) if by_value_size(t.size) => {
            RetLoc::Regs(vec![mv(t.size, Ext::Zero, RET_RAX)])
        }
        Kind::Struct(_) | Kind::Complex(_) => memory,
        kind => RetLoc::Regs(vec![mv(t.size, int_ext(kind), RET_RAX)]),
    }
}

/// Classifies `sig` for `FFI_WIN64` or `FFI_GNUW64` (see the module docs).
pub fn classify(sig: &Signature) -> Result<Plan, ClassifyError> {
    if !matches!(sig.abi, Abi::Win64 | Abi::GnuW64) {
        return Err(ClassifyError::Unsupported("not a Win64 ABI"));
    }
    check_signature(&sig.args, &sig.ret)?;

    let ret = ret_loc(sig.abi, &sig.ret);
    // The hidden return pointer takes slot 0 (ffiw64.c:350-355).
    let first = u64::from(matches!(ret, RetLoc::Memory { .. }));
    let regs = u64::from(WIN64_REG_ARGS);

    let args = sig
        .args
        .iter()
        .zip(first..)
        .map(|(t, n)| {
            let in_reg = n < regs;
            let reg = n as u32;
            Ok(match t.kind {
                Kind::Float | Kind::Double if in_reg => ArgLoc::Frame(sse(reg)),
                Kind::Float | Kind::Double => ArgLoc::Stack(stack_slot(n)?),
                _ if by_value_size(t.size) && in_reg => ArgLoc::Frame(gpr(reg)),
                _ if by_value_size(t.size) => ArgLoc::Stack(stack_slot(n)?),
                _ if in_reg => ArgLoc::FramePtr(gpr(reg)),
                _ => ArgLoc::StackPtr(stack_slot(n)?),
            })
        })
        .collect::<Result<Vec<_>, ClassifyError>>()?;

    finish(args, ret, &sig.ret, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ArgLoc::{Frame, FramePtr, Stack, StackPtr};

    use crate::x86_64::test_types::{cx, st};
    fn plan_for(abi: Abi, args: Vec<Type>, ret: Type) -> Plan {
        classify(&Signature { abi, args, ret }).unwrap()
    }
    /// Runs `check` for both ABIs: they differ only in `long double` returns.
    fn both(args: Vec<Type>, ret: Type, check: impl Fn(&Plan)) {
        let w = plan_for(Abi::Win64, args.clone(), ret.clone());
        let g = plan_for(Abi::GnuW64, args, ret);
        assert_eq!(w, g);
        check(&w);
    }
    fn args_of(args: Vec<Type>) -> Vec<ArgLoc> {
        let w = plan_for(Abi::Win64, args.clone(), Type::VOID);
        assert_eq!(w, plan_for(Abi::GnuW64, args, Type::VOID));
        w.args
    }
    fn ret_of(abi: Abi, ret: Type) -> RetLoc {
        plan_for(abi, vec![], ret).ret
    }
    fn rax(len: u32, ext: Ext) -> RetLoc {
        RetLoc::Regs(vec![RetMove {
            at: 0,
            len,
            ext,
            dst: RET_RAX,
        }])
    }
    fn xmm0(len: u32) -> RetLoc {
        RetLoc::Regs(vec![RetMove {
            at: 0,
            len,
            ext: Ext::Zero,
            dst: RET_XMM0,
        }])
    }
    const MEM: RetLoc = RetLoc::Memory {
        ptr: gpr(0),
        echo: RET_RAX,
    };

    #[test]
    fn scalar_args_by_slot() {
        // ffiw64.c:363-371: slot n is gpr(n) or, for float/double, sse(n).
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
            assert_eq!(args_of(vec![t.clone()]), vec![Frame(gpr(0))], "{t:?}");
        }
        assert_eq!(args_of(vec![Type::FLOAT]), vec![Frame(sse(0))]);
        assert_eq!(args_of(vec![Type::DOUBLE]), vec![Frame(sse(0))]);
        // Slots are positional: an int after a double takes slot 1 (rdx), a
        // double after two ints xmm2.
        assert_eq!(
            args_of(vec![Type::DOUBLE, Type::S32, Type::FLOAT, Type::POINTER]),
            vec![Frame(sse(0)), Frame(gpr(1)), Frame(sse(2)), Frame(gpr(3))]
        );
    }

    #[test]
    fn long_double_args_by_reference_in_both_abis() {
        // Type code 4 != FFI_TYPE_DOUBLE, size 16: by reference
        // (ffiw64.c:363, 370-373), for FFI_WIN64 and FFI_GNUW64 alike.
        let mut args = vec![Type::LONGDOUBLE, Type::S32, Type::LONGDOUBLE, Type::DOUBLE];
        args.extend([Type::LONGDOUBLE, Type::LONGDOUBLE]);
        assert_eq!(
            args_of(args),
            vec![
                FramePtr(gpr(0)),
                Frame(gpr(1)),
                FramePtr(gpr(2)),
                Frame(sse(3)),
                StackPtr(32),
                StackPtr(40)
            ]
        );
    }

    #[test]
    fn struct_args_by_value_or_reference() {
        // Sizes 1, 2, 4, 8 by value; everything else by reference.
        let s1 = st(vec![Type::U8]);
        let s2 = st(vec![Type::U8, Type::U8]);
        let s3 = st(vec![Type::U8; 3]);
        let s4 = st(vec![Type::FLOAT]); // struct of a float: a GPR, not xmm
        assert_eq!(
            args_of(vec![s1, s2, s3, s4]),
            vec![
                Frame(gpr(0)),
                Frame(gpr(1)),
                FramePtr(gpr(2)),
                Frame(gpr(3))
            ]
        );
        let s8 = st(vec![Type::DOUBLE]); // struct of a double: a GPR
        let s6 = st(vec![Type::U16; 3]);
        let s12 = st(vec![Type::FLOAT; 3]);
        let s16 = st(vec![Type::U64; 2]);
        let s24 = st(vec![Type::U64; 3]);
        assert_eq!(
            args_of(vec![s8, s6, s12, s16, s24, st(vec![Type::U32, Type::U32])]),
            vec![
                Frame(gpr(0)),
                FramePtr(gpr(1)),
                FramePtr(gpr(2)),
                FramePtr(gpr(3)),
                StackPtr(32),
                Stack(40)
            ]
        );
    }

    #[test]
    fn complex_args() {
        // _Complex float is 8 bytes and not FLOAT/DOUBLE: by value in a GPR;
        // _Complex double and long double by reference.
        assert_eq!(
            args_of(vec![
                cx(Type::FLOAT),
                cx(Type::DOUBLE),
                cx(Type::LONGDOUBLE),
                cx(Type::FLOAT)
            ]),
            vec![
                Frame(gpr(0)),
                FramePtr(gpr(1)),
                FramePtr(gpr(2)),
                Frame(gpr(3))
            ]
        );
        assert_eq!(
            args_of(
                vec![Type::S8; 4]
                    .into_iter()
                    .chain([cx(Type::FLOAT), cx(Type::DOUBLE)])
                    .collect()
            ),
            vec![
                Frame(gpr(0)),
                Frame(gpr(1)),
                Frame(gpr(2)),
                Frame(gpr(3)),
                Stack(32),
                StackPtr(40)
            ]
        );
    }

    #[test]
    fn stack_offsets() {
        // Slot n >= 4 at WIN64_HOME + 8 * (n - 4); every kind takes 8 bytes,
        // long double included (it is a pointer).
        let args = vec![
            Type::S32,
            Type::S32,
            Type::S32,
            Type::S32,
            Type::U8,
            Type::DOUBLE,
            Type::FLOAT,
            Type::LONGDOUBLE,
            Type::S64,
            st(vec![Type::U8; 5]),
            st(vec![Type::U16; 2]),
        ];
        assert_eq!(
            args_of(args)[4..],
            [
                Stack(32),
                Stack(40),
                Stack(48),
                StackPtr(56),
                Stack(64),
                StackPtr(72),
                Stack(80)
            ]
        );
    }

    #[test]
    fn many_args() {
        let p = plan_for(Abi::Win64, vec![Type::DOUBLE; 20], Type::DOUBLE);
        for (i, a) in p.args.iter().enumerate() {
            let want = if i < 4 {
                Frame(sse(i as u32))
            } else {
                Stack(32 + 8 * (i as u32 - 4))
            };
            assert_eq!(*a, want);
        }
        // avalue 160 -> ret_buf 160, scratch 192.
        assert_eq!((p.ret_buf, p.scratch_size, p.callee_pop), (160, 192, 0));
    }

    #[test]
    fn hidden_return_pointer_shifts_slots() {
        // ffiw64.c:104 and 350-355: slot 0 is the pointer.
        let big = st(vec![Type::U64; 3]);
        both(
            vec![
                Type::DOUBLE,
                Type::S32,
                Type::FLOAT,
                Type::S64,
                Type::DOUBLE,
            ],
            big,
            |p| {
                assert_eq!(p.ret, MEM);
                assert_eq!(
                    p.args,
                    vec![
                        Frame(sse(1)),
                        Frame(gpr(2)),
                        Frame(sse(3)),
                        Stack(32),
                        Stack(40)
                    ]
                );
                // 5 * 8 = 40 -> ret_buf 48, 32 bytes -> scratch 80.
                assert_eq!((p.ret_buf, p.scratch_size), (48, 80));
            },
        );
        // A 3-byte struct return also goes through memory.
        both(vec![Type::LONGDOUBLE; 4], st(vec![Type::U8; 3]), |p| {
            assert_eq!(p.ret, MEM);
            assert_eq!(
                p.args,
                vec![
                    FramePtr(gpr(1)),
                    FramePtr(gpr(2)),
                    FramePtr(gpr(3)),
                    StackPtr(32)
                ]
            );
        });
    }

    #[test]
    fn scalar_returns() {
        use Ext::{Sign, Zero};
        for abi in [Abi::Win64, Abi::GnuW64] {
            assert_eq!(ret_of(abi, Type::VOID), RetLoc::Void);
            assert_eq!(ret_of(abi, Type::U8), rax(1, Zero));
            assert_eq!(ret_of(abi, Type::S8), rax(1, Sign));
            assert_eq!(ret_of(abi, Type::U16), rax(2, Zero));
            assert_eq!(ret_of(abi, Type::S16), rax(2, Sign));
            assert_eq!(ret_of(abi, Type::U32), rax(4, Zero));
            assert_eq!(ret_of(abi, Type::S32), rax(4, Sign));
            assert_eq!(ret_of(abi, Type::U64), rax(8, Zero));
            assert_eq!(ret_of(abi, Type::S64), rax(8, Zero));
            assert_eq!(ret_of(abi, Type::POINTER), rax(8, Zero));
            assert_eq!(ret_of(abi, Type::FLOAT), xmm0(4));
            assert_eq!(ret_of(abi, Type::DOUBLE), xmm0(8));
        }
    }

    #[test]
    fn long_double_return_differs_between_abis() {
        // FFI_GNUW64: like a struct, by hidden pointer (ffiw64.c:73-76).
        let p = plan_for(Abi::GnuW64, vec![Type::DOUBLE], Type::LONGDOUBLE);
        assert_eq!(p.ret, MEM);
        assert_eq!(p.args, vec![Frame(sse(1))]);
        // FFI_WIN64: flags stay FFI_TYPE_LONGDOUBLE, no hidden pointer; the
        // closure loads the first 8 bytes into rax and xmm0 (win64.S:232-234).
        let p = plan_for(Abi::Win64, vec![Type::DOUBLE], Type::LONGDOUBLE);
        assert_eq!(
            p.ret,
            RetLoc::Regs(vec![
                RetMove {
                    at: 0,
                    len: 8,
                    ext: Ext::Zero,
                    dst: RET_RAX
                },
                RetMove {
                    at: 0,
                    len: 8,
                    ext: Ext::Zero,
                    dst: RET_XMM0
                },
            ])
        );
        assert_eq!(p.args, vec![Frame(sse(0))]);
        assert_eq!((p.ret_buf, p.scratch_size), (16, 48));
    }

    #[test]
    fn struct_and_complex_returns() {
        use Ext::Zero;
        for abi in [Abi::Win64, Abi::GnuW64] {
            // ffiw64.c:78-96: sizes 1, 2, 4, 8 in rax, zero-extended.
            assert_eq!(ret_of(abi, st(vec![Type::S8])), rax(1, Zero));
            assert_eq!(ret_of(abi, st(vec![Type::S16])), rax(2, Zero));
            assert_eq!(ret_of(abi, st(vec![Type::U8, Type::U8])), rax(2, Zero));
            assert_eq!(ret_of(abi, st(vec![Type::FLOAT])), rax(4, Zero));
            assert_eq!(ret_of(abi, st(vec![Type::DOUBLE])), rax(8, Zero));
            assert_eq!(
                ret_of(abi, st(vec![Type::FLOAT, Type::FLOAT])),
                rax(8, Zero)
            );
            assert_eq!(ret_of(abi, cx(Type::FLOAT)), rax(8, Zero));
            // Everything else through memory.
            assert_eq!(ret_of(abi, st(vec![Type::U8; 3])), MEM);
            assert_eq!(ret_of(abi, st(vec![Type::U16; 3])), MEM);
            assert_eq!(ret_of(abi, st(vec![Type::U8; 7])), MEM);
            assert_eq!(ret_of(abi, st(vec![Type::FLOAT; 3])), MEM);
            assert_eq!(ret_of(abi, st(vec![Type::U64; 2])), MEM);
            assert_eq!(ret_of(abi, st(vec![Type::LONGDOUBLE])), MEM);
            assert_eq!(ret_of(abi, cx(Type::DOUBLE)), MEM);
            assert_eq!(ret_of(abi, cx(Type::LONGDOUBLE)), MEM);
        }
    }

    #[test]
    fn full_plan_example() {
        // struct{u64,u64,u64} f(float, struct{char[3]}, int, double, long double)
        let p = plan_for(
            Abi::GnuW64,
            vec![
                Type::FLOAT,
                st(vec![Type::U8; 3]),
                Type::S32,
                Type::DOUBLE,
                Type::LONGDOUBLE,
            ],
            st(vec![Type::U64; 3]),
        );
        assert_eq!(
            p,
            Plan {
                args: vec![
                    Frame(sse(1)),
                    FramePtr(gpr(2)),
                    Frame(gpr(3)),
                    Stack(32),
                    StackPtr(40)
                ],
                ret: MEM,
                ret_buf: 48,
                scratch_size: 80,
                callee_pop: 0,
            }
        );
    }

    #[test]
    fn stated_layouts_go_by_size() {
        // ffiw64.c decides by the stated size alone (by value if 1, 2, 4 or
        // 8 bytes, else by reference; the same for returns), so packed
        // structs, unions and bitfield structs (as CPython's ctypes states
        // them) need nothing else.
        let packed13 = Type::aggregate(vec![Type::S8, Type::S32, Type::DOUBLE], 13, 1).unwrap();
        let packed3 = Type::aggregate(vec![Type::S8, Type::S16], 3, 1).unwrap();
        let packed33 = Type::aggregate(
            vec![
                Type::S8,
                Type::DOUBLE,
                Type::DOUBLE,
                Type::DOUBLE,
                Type::DOUBLE,
            ],
            33,
            1,
        )
        .unwrap();
        let union_id = Type::aggregate(vec![Type::S32, Type::DOUBLE], 8, 8).unwrap();
        let union_fd = Type::aggregate(vec![Type::FLOAT, Type::DOUBLE], 8, 8).unwrap();
        let bits = Type::aggregate(vec![Type::U32; 3], 4, 4).unwrap();
        let packed2 = Type::aggregate(vec![Type::S8, Type::S8], 2, 1).unwrap();
        assert_eq!(
            args_of(vec![
                packed13.clone(),
                union_id.clone(),
                bits.clone(),
                union_fd.clone(),
                packed3,
                packed2.clone(),
                packed33.clone(),
            ]),
            vec![
                FramePtr(gpr(0)),
                Frame(gpr(1)),
                Frame(gpr(2)),
                Frame(gpr(3)),
                StackPtr(32),
                Stack(40),
                StackPtr(48)
            ]
        );
        for abi in [Abi::Win64, Abi::GnuW64] {
            assert_eq!(ret_of(abi, union_id.clone()), rax(8, Ext::Zero));
            assert_eq!(ret_of(abi, union_fd.clone()), rax(8, Ext::Zero));
            assert_eq!(ret_of(abi, bits.clone()), rax(4, Ext::Zero));
            assert_eq!(ret_of(abi, packed2.clone()), rax(2, Ext::Zero));
            assert_eq!(ret_of(abi, packed13.clone()), MEM);
            assert_eq!(ret_of(abi, packed33.clone()), MEM);
        }
        // A memory return shifts the arguments by one slot.
        let p = plan_for(Abi::Win64, vec![union_id], packed13);
        assert_eq!(p.args, vec![Frame(gpr(1))]);
    }

    #[test]
    fn errors() {
        let e = classify(&Signature {
            abi: Abi::Win64,
            args: vec![Type::VOID],
            ret: Type::VOID,
        });
        assert_eq!(e, Err(ClassifyError::Unsupported("void argument")));
        // A scalar must have its standard layout; a struct of size 0 is
        // not an argument.
        for bad in [
            Type {
                kind: Kind::Struct(vec![
                    Type::U8,
                    Type {
                        size: 2,
                        ..Type::U32
                    },
                ]),
                size: 5,
                align: 1,
            },
            Type {
                kind: Kind::Struct(vec![]),
                size: 0,
                align: 1,
            },
        ] {
            let e = classify(&Signature {
                abi: Abi::GnuW64,
                args: vec![bad],
                ret: Type::VOID,
            });
            assert!(matches!(e, Err(ClassifyError::BadType(_))), "{e:?}");
        }
        let e = classify(&Signature {
            abi: Abi::SysV64,
            args: vec![],
            ret: Type::VOID,
        });
        assert_eq!(e, Err(ClassifyError::Unsupported("not a Win64 ABI")));
    }

    #[test]
    fn dispatch_through_crate_classify() {
        for abi in [Abi::Win64, Abi::GnuW64] {
            let s = Signature {
                abi,
                args: vec![Type::S32, Type::LONGDOUBLE],
                ret: Type::LONGDOUBLE,
            };
            assert_eq!(crate::classify(&s), classify(&s));
        }
    }
}
