//! i386 classification tests. The expected locations of the C conventions
//! are what GCC 12 (`gcc -m32`) emits: callers compiled with
//! `-O1 -mno-push-args -maccumulate-outgoing-args` (each argument stored at
//! its offset from esp, or loaded into its register, before the call) and
//! callees' `ret $N`; the probes are described in docs/design.md ("i386
//! classification"). PASCAL and REGISTER follow the Delphi Language Guide.

use super::frame::{EAX, ECX, EDX, RET_EAX, RET_EDX};
use super::types::{DOUBLE, LONGDOUBLE, POINTER, S64, U64};
use super::*;
use crate::{Arch, ArgLoc, Ext, RetKind, RetMove, TypeError, classify};
use ArgLoc::{Frame, Stack};

const ALL: [Abi; 7] = [
    Abi::I386SysV,
    Abi::I386StdCall,
    Abi::I386ThisCall,
    Abi::I386FastCall,
    Abi::I386MsCdecl,
    Abi::I386Pascal,
    Abi::I386Register,
];
/// The conventions that follow GCC (C callers).
const C_ABIS: [Abi; 5] = [
    Abi::I386SysV,
    Abi::I386StdCall,
    Abi::I386ThisCall,
    Abi::I386FastCall,
    Abi::I386MsCdecl,
];

fn plan(abi: Abi, args: Vec<Type>, ret: Type) -> Plan {
    classify(&Signature { abi, args, ret }).unwrap()
}
fn st(elems: Vec<Type>) -> Type {
    Type::structure(elems).unwrap()
}
fn cx(t: Type) -> Type {
    Type::complex(t).unwrap()
}
fn mv(at: u32, len: u32, ext: Ext, dst: u32) -> RetMove {
    RetMove { at, len, ext, dst }
}
fn eax(len: u32, ext: Ext) -> RetLoc {
    RetLoc::Regs(vec![mv(0, len, ext, RET_EAX)])
}
fn eax_edx() -> RetLoc {
    RetLoc::Regs(vec![
        mv(0, 4, Ext::Zero, RET_EAX),
        mv(4, 4, Ext::Zero, RET_EDX),
    ])
}
const MEM_STACK: RetLoc = RetLoc::MemoryStack {
    ptr: 0,
    echo: RET_EAX,
};
const fn mem_reg(reg: u32) -> RetLoc {
    RetLoc::Memory {
        ptr: reg,
        echo: RET_EAX,
    }
}

// The struct types of the GCC probes.
fn si() -> Type {
    st(vec![Type::S32])
}
fn sf() -> Type {
    st(vec![Type::FLOAT])
}
fn sd() -> Type {
    st(vec![DOUBLE])
}
fn s1() -> Type {
    st(vec![Type::S8])
}
fn s3() -> Type {
    st(vec![Type::S8; 3])
}
fn s8() -> Type {
    st(vec![Type::S32, Type::S32])
}
fn sld() -> Type {
    st(vec![LONGDOUBLE])
}
/// `struct __attribute__((aligned(16))) { int a; }`.
fn sa16() -> Type {
    Type::aggregate(vec![Type::S32], 16, 16).unwrap()
}

// ---- numbering, constants, layout checks ----

#[test]
fn ffi_abi_numbering() {
    // libffi 3.6 src/x86/ffitarget.h:117-126.
    let want = [
        (1, Abi::I386SysV),
        (3, Abi::I386ThisCall),
        (4, Abi::I386FastCall),
        (5, Abi::I386StdCall),
        (6, Abi::I386Pascal),
        (7, Abi::I386Register),
        (8, Abi::I386MsCdecl),
    ];
    for (n, abi) in want {
        assert_eq!(abi_from_ffi(n), Some(abi));
        assert_eq!(Abi::from_ffi(Arch::I386, n), Some(abi));
        assert_eq!(abi.arch(), Arch::I386);
    }
    for n in [0, 2, 9, 100] {
        assert_eq!(Abi::from_ffi(Arch::I386, n), None, "{n}");
    }
    // x86_64's numbers stay x86_64's.
    assert_eq!(Abi::from_ffi(Arch::X86_64, 1), None);
    assert_eq!(Abi::from_ffi(Arch::X86_64, 2), Some(Abi::SysV64));
    assert_eq!(Abi::SysV64.arch(), Arch::X86_64);
    assert_eq!(
        super::classify(&Signature {
            abi: Abi::SysV64,
            args: vec![],
            ret: Type::VOID
        }),
        Err(ClassifyError::Unsupported("not an i386 ABI"))
    );
}

#[test]
fn asm_constants() {
    // What build.rs checks layout.h against: the record's and the arch's.
    let record = RECORD.asm_constants();
    let get = |name: &str| {
        record
            .iter()
            .chain(ASM_CONSTANTS)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    for (name, v) in [
        ("HDR_ENTRY", 0),
        ("HDR_PLAN", 4),
        ("HDR_CLOSURE", 8),
        ("HDR_SIZE", 12),
        ("CLOSURE_CIF", 16),
        ("CLOSURE_FUN", 20),
        ("CLOSURE_USER_DATA", 24),
        ("CLOSURE_SIZE", 32),
        ("FRAME_EAX", 0),
        ("FRAME_EDX", 4),
        ("FRAME_ECX", 8),
        ("FRAME_STACK_PTR", 12),
        ("FRAME_RET_EAX", 16),
        ("FRAME_RET_EDX", 24),
        ("FRAME_SIZE", 32),
        ("RET_KIND_REGS", 0),
        ("RET_KIND_X87", 1),
        ("RET_KIND_X87_FLOAT", 3),
        ("RET_KIND_X87_DOUBLE", 4),
    ] {
        assert_eq!(get(name), v, "{name}");
    }
    assert_eq!(RetLoc::X87Float.kind(), RetKind::X87Float);
    assert_eq!(RetLoc::X87Double.kind(), RetKind::X87Double);
    assert_eq!(MEM_STACK.kind(), RetKind::Regs);
}

#[test]
fn scalar_layouts_are_i386s() {
    for abi in ALL {
        // x86_64's 8-aligned double and 8-byte pointer are not i386 types.
        for (bad, size, align) in [
            (Type::DOUBLE, 8, 4),
            (Type::POINTER, 4, 4),
            (Type::LONGDOUBLE, 12, 4),
            (Type::U64, 8, 4),
        ] {
            let sig = Signature {
                abi,
                args: vec![bad.clone()],
                ret: Type::VOID,
            };
            assert_eq!(
                classify(&sig),
                Err(ClassifyError::BadType(TypeError::LayoutMismatch {
                    stated_size: bad.size,
                    stated_align: bad.align,
                    size,
                    align
                }))
            );
            let in_struct = Signature {
                abi,
                args: vec![],
                ret: st(vec![Type::S32, bad]),
            };
            assert!(matches!(
                classify(&in_struct),
                Err(ClassifyError::BadType(_))
            ));
        }
        let fine = vec![U64, S64, DOUBLE, LONGDOUBLE, POINTER, cx(LONGDOUBLE)];
        assert_eq!(cx(LONGDOUBLE).size, 24);
        assert!(
            classify(&Signature {
                abi,
                args: fine,
                ret: cx(DOUBLE)
            })
            .is_ok()
        );
        assert_eq!(
            classify(&Signature {
                abi,
                args: vec![Type::S32, Type::VOID],
                ret: Type::VOID
            }),
            Err(ClassifyError::Unsupported("void argument"))
        );
    }
}

// ---- scratch ----

#[test]
fn scratch_has_four_byte_avalue_entries() {
    for abi in ALL {
        let p = plan(abi, vec![], Type::VOID);
        assert_eq!((p.ret_buf, p.scratch_size), (0, 16), "{abi:?}");
        let p = plan(abi, vec![Type::S32; 3], Type::S32);
        assert_eq!((p.ret_buf, p.scratch_size), (16, 32), "{abi:?}");
        let p = plan(abi, vec![Type::S32; 5], LONGDOUBLE);
        assert_eq!((p.ret_buf, p.scratch_size), (32, 48), "{abi:?}");
        let p = plan(abi, vec![Type::S32; 4], st(vec![Type::U8; 40]));
        assert_eq!((p.ret_buf, p.scratch_size), (16, 32), "{abi:?}");
        assert_eq!(p.scratch_size % 16, 0);
    }
}

#[test]
fn zero_arguments() {
    for abi in ALL {
        let p = plan(abi, vec![], Type::VOID);
        assert_eq!((p.args.len(), &p.ret, p.callee_pop), (0, &RetLoc::Void, 0));
        let p = plan(abi, vec![], Type::S32);
        assert_eq!((p.ret, p.callee_pop), (eax(4, Ext::Sign), 0));
    }
    // A struct return with no arguments: only the hidden pointer.
    let ret = s8();
    assert_eq!(plan(Abi::I386SysV, vec![], ret.clone()).callee_pop, 4);
    assert_eq!(plan(Abi::I386MsCdecl, vec![], ret.clone()).callee_pop, 0);
    assert_eq!(plan(Abi::I386StdCall, vec![], ret.clone()).callee_pop, 4);
    let p = plan(Abi::I386FastCall, vec![], ret.clone());
    assert_eq!((p.ret, p.callee_pop), (mem_reg(ECX), 0));
    let p = plan(Abi::I386ThisCall, vec![], ret.clone());
    assert_eq!((p.ret, p.callee_pop), (mem_reg(ECX), 0));
    let p = plan(Abi::I386Pascal, vec![], ret.clone());
    assert_eq!((p.ret, p.callee_pop), (MEM_STACK, 4));
    let p = plan(Abi::I386Register, vec![], ret);
    assert_eq!((p.ret, p.callee_pop), (mem_reg(EAX), 0));
}

// ---- returns ----

#[test]
fn scalar_returns_every_abi() {
    for abi in ALL {
        let r = |t: Type| plan(abi, vec![], t).ret;
        assert_eq!(r(Type::U8), eax(1, Ext::Zero));
        assert_eq!(r(Type::S8), eax(1, Ext::Sign));
        assert_eq!(r(Type::U16), eax(2, Ext::Zero));
        assert_eq!(r(Type::S16), eax(2, Ext::Sign));
        assert_eq!(r(Type::U32), eax(4, Ext::Zero));
        assert_eq!(r(Type::S32), eax(4, Ext::Sign));
        assert_eq!(r(POINTER), eax(4, Ext::Zero));
        // 64-bit integers in edx:eax.
        assert_eq!(r(U64), eax_edx());
        assert_eq!(r(S64), eax_edx());
        // Reals on the x87 stack: flds, fldl, fldt.
        assert_eq!(r(Type::FLOAT), RetLoc::X87Float);
        assert_eq!(r(DOUBLE), RetLoc::X87Double);
        assert_eq!(r(LONGDOUBLE), RetLoc::X87);
        assert_eq!(r(Type::VOID), RetLoc::Void);
        // None of these pops anything without arguments.
        assert_eq!(plan(abi, vec![], LONGDOUBLE).callee_pop, 0);
    }
}

#[test]
fn c_struct_and_complex_returns() {
    // gcc -m32: every struct through the hidden pointer, whatever its size
    // (1, 2, 3, 4, 8, 12 bytes, a struct of one float or double);
    // _Complex float in edx:eax; _Complex double and long double through
    // the pointer.
    let structs = [
        s1(),
        st(vec![Type::S16]),
        s3(),
        si(),
        s8(),
        st(vec![Type::S32; 3]),
        sf(),
        sd(),
        sld(),
    ];
    for abi in C_ABIS {
        let hidden = match abi {
            Abi::I386FastCall | Abi::I386ThisCall => mem_reg(ECX),
            _ => MEM_STACK,
        };
        for t in &structs {
            assert_eq!(plan(abi, vec![], t.clone()).ret, hidden, "{abi:?} {t:?}");
        }
        assert_eq!(plan(abi, vec![], cx(Type::FLOAT)).ret, eax_edx());
        assert_eq!(plan(abi, vec![], cx(DOUBLE)).ret, hidden);
        assert_eq!(plan(abi, vec![], cx(LONGDOUBLE)).ret, hidden);
    }
}

#[test]
fn c_struct_return_pops() {
    // Measured callees `struct S f(int x)` and, for
    // fastcall/thiscall, `struct S f(int x, int y)`.
    let ret = st(vec![Type::S32; 3]);
    let one = vec![Type::S32];
    let two = vec![Type::S32, Type::S32];
    // cdecl: ret $4; the argument after the pointer.
    let p = plan(Abi::I386SysV, one.clone(), ret.clone());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Stack(4)], MEM_STACK, 4)
    );
    // ms_abi: ret.
    let p = plan(Abi::I386MsCdecl, one.clone(), ret.clone());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Stack(4)], MEM_STACK, 0)
    );
    // stdcall: ret $8.
    let p = plan(Abi::I386StdCall, one, ret.clone());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Stack(4)], MEM_STACK, 8)
    );
    // fastcall: pointer in ecx, x in edx, y on the stack; ret $4.
    let p = plan(Abi::I386FastCall, two.clone(), ret.clone());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Frame(EDX), Stack(0)], mem_reg(ECX), 4)
    );
    // thiscall: pointer in ecx, `this` and y on the stack; ret $8.
    let p = plan(Abi::I386ThisCall, two, ret);
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Stack(0), Stack(4)], mem_reg(ECX), 8)
    );
    // _Complex double: the pointer like a struct's (measured: stdcall
    // ret $8, fastcall ret, thiscall ret $4, cdecl ret $4, ms_abi ret).
    for (abi, pop) in [
        (Abi::I386StdCall, 8),
        (Abi::I386FastCall, 0),
        (Abi::I386ThisCall, 4),
        (Abi::I386SysV, 4),
        (Abi::I386MsCdecl, 0),
    ] {
        assert_eq!(
            plan(abi, vec![Type::S32], cx(DOUBLE)).callee_pop,
            pop,
            "{abi:?}"
        );
    }
    // _Complex float in edx:eax pops only stdcall's argument.
    assert_eq!(
        plan(Abi::I386StdCall, vec![Type::S32], cx(Type::FLOAT)).callee_pop,
        4
    );
    assert_eq!(
        plan(Abi::I386SysV, vec![Type::S32], cx(Type::FLOAT)).callee_pop,
        0
    );
}

#[test]
fn pascal_struct_returns() {
    // Delphi: records of 1, 2, 4 bytes in al/ax/eax; others through a
    // pointer passed after the declared parameters.
    for abi in [Abi::I386Pascal, Abi::I386Register] {
        let r = |t: Type| plan(abi, vec![], t).ret;
        assert_eq!(r(s1()), eax(1, Ext::Zero));
        assert_eq!(r(st(vec![Type::U8, Type::U8])), eax(2, Ext::Zero));
        assert_eq!(r(si()), eax(4, Ext::Zero));
        assert_eq!(r(sf()), eax(4, Ext::Zero));
        let hidden = if abi == Abi::I386Pascal {
            MEM_STACK
        } else {
            mem_reg(EAX)
        };
        for t in [s3(), s8(), sd(), sld(), cx(DOUBLE), cx(LONGDOUBLE)] {
            assert_eq!(r(t.clone()), hidden, "{abi:?} {t:?}");
        }
        // No Pascal compiler has complex types: _Complex float as in C.
        assert_eq!(r(cx(Type::FLOAT)), eax_edx());
    }
    // PASCAL: the pointer is pushed last, so it is at offset 0 and the
    // arguments move up; the callee pops it with them.
    let p = plan(Abi::I386Pascal, vec![Type::S32, Type::S32], s8());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Stack(8), Stack(4)], MEM_STACK, 12)
    );
    // REGISTER: the pointer takes the register after the declared
    // parameters' ...
    let p = plan(Abi::I386Register, vec![Type::S32], s8());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Frame(EAX)], mem_reg(EDX), 0)
    );
    let p = plan(Abi::I386Register, vec![Type::S32, DOUBLE, Type::S32], s8());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (vec![Frame(EAX), Stack(0), Frame(EDX)], mem_reg(ECX), 8)
    );
    // ... or, with all three taken, the last stack slot pushed.
    let p = plan(Abi::I386Register, vec![Type::S32; 4], s8());
    assert_eq!(
        (p.args, p.ret, p.callee_pop),
        (
            vec![Frame(EAX), Frame(EDX), Frame(ECX), Stack(4)],
            MEM_STACK,
            8
        )
    );
}

// ---- cdecl-like stack layouts ----

#[test]
fn stack_offsets_right_to_left() {
    // Every argument at the next multiple of 4: a double or long long at
    // 4 (i386 System V), a 3-byte struct in 4 bytes, a long double in 12.
    let args = vec![
        Type::S8,
        DOUBLE,
        s3(),
        LONGDOUBLE,
        S64,
        Type::U16,
        cx(Type::FLOAT),
        POINTER,
        Type::FLOAT,
    ];
    let want = vec![
        Stack(0),
        Stack(4),
        Stack(12),
        Stack(16),
        Stack(28),
        Stack(36),
        Stack(40),
        Stack(48),
        Stack(52),
    ];
    for (abi, pop) in [
        (Abi::I386SysV, 0),
        (Abi::I386MsCdecl, 0),
        (Abi::I386StdCall, 56),
    ] {
        let p = plan(abi, args.clone(), Type::VOID);
        assert_eq!((&p.args, p.callee_pop), (&want, pop), "{abi:?}");
    }
    // A struct stated 16-aligned is not aligned on the stack (measured:
    // st_c_sa_i `ret $24`: char at 0, the struct at 4, int at 20).
    let p = plan(
        Abi::I386StdCall,
        vec![Type::S8, sa16(), Type::S32],
        Type::S32,
    );
    assert_eq!(
        (p.args, p.callee_pop),
        (vec![Stack(0), Stack(4), Stack(20)], 24)
    );
    // stdcall pops (measured): (long double, int) ret $16, (long long, int,
    // int) ret $16, (T, char, T) with T = char[3] ret $12.
    for (args, pop) in [
        (vec![LONGDOUBLE, Type::S32], 16),
        (vec![S64, Type::S32, Type::S32], 16),
        (vec![s3(), Type::S8, s3()], 12),
    ] {
        assert_eq!(plan(Abi::I386StdCall, args, Type::S32).callee_pop, pop);
    }
}

#[test]
fn structs_are_passed_by_value_byte_for_byte() {
    // Stated layouts need only their size: a packed 13-byte struct takes
    // 16 bytes, a union its stated size.
    let packed = Type::aggregate(vec![Type::S8, Type::S32, DOUBLE], 13, 1).unwrap();
    let union = Type::aggregate(vec![DOUBLE, Type::S32], 8, 4).unwrap();
    for abi in ALL {
        let p = plan(
            abi,
            vec![packed.clone(), union.clone(), Type::S8],
            Type::VOID,
        );
        let want = match abi {
            Abi::I386Pascal => vec![Stack(12), Stack(4), Stack(0)],
            Abi::I386Register => vec![Stack(8), Stack(0), Frame(EAX)],
            // fastcall: the union uses up edx (13 bytes already took both);
            // thiscall alike.
            Abi::I386FastCall | Abi::I386ThisCall => vec![Stack(0), Stack(16), Stack(24)],
            _ => vec![Stack(0), Stack(16), Stack(24)],
        };
        assert_eq!(p.args, want, "{abi:?}");
    }
}

// ---- fastcall and thiscall: GCC's register rule ----

/// What `gcc -m32` does with `void f(ARGS)` (the caller probes of
/// docs/design.md, "i386 classification"): the location of every argument
/// and the bytes the callee pops.
struct Probe {
    name: &'static str,
    args: Vec<Type>,
    fastcall: (Vec<ArgLoc>, u32),
    thiscall: (Vec<ArgLoc>, u32),
}

fn probes() -> Vec<Probe> {
    let i = Type::S32;
    let p = |name, args, fastcall, thiscall| Probe {
        name,
        args,
        fastcall,
        thiscall,
    };
    let (c, e) = (Frame(ECX), Frame(EDX));
    vec![
        // A 4-byte struct goes on the stack but uses up ecx (fastcall: the
        // next int in edx; thiscall: nothing left).
        p(
            "si_i_i",
            vec![si(), i.clone(), i.clone()],
            (vec![Stack(0), e.clone(), Stack(4)], 8),
            (vec![Stack(0), Stack(4), Stack(8)], 12),
        ),
        // A struct of one float or double uses none.
        p(
            "sf_i_i",
            vec![sf(), i.clone(), i.clone()],
            (vec![Stack(0), c.clone(), e.clone()], 4),
            (vec![Stack(0), c.clone(), Stack(4)], 8),
        ),
        p(
            "sd_i_i",
            vec![sd(), i.clone(), i.clone()],
            (vec![Stack(0), c.clone(), e.clone()], 8),
            (vec![Stack(0), c.clone(), Stack(8)], 12),
        ),
        p(
            "sld_i_i",
            vec![sld(), i.clone(), i.clone()],
            (vec![Stack(0), c.clone(), e.clone()], 12),
            (vec![Stack(0), c.clone(), Stack(12)], 16),
        ),
        p(
            "s3_i_i",
            vec![s3(), i.clone(), i.clone()],
            (vec![Stack(0), e.clone(), Stack(4)], 8),
            (vec![Stack(0), Stack(4), Stack(8)], 12),
        ),
        p(
            "s1_i_i",
            vec![s1(), i.clone(), i.clone()],
            (vec![Stack(0), e.clone(), Stack(4)], 8),
            (vec![Stack(0), Stack(4), Stack(8)], 12),
        ),
        // 64-bit integers and 8-byte structs use up both.
        p(
            "ll_i",
            vec![S64, i.clone()],
            (vec![Stack(0), Stack(8)], 12),
            (vec![Stack(0), Stack(8)], 12),
        ),
        p(
            "i_ll_i",
            vec![i.clone(), S64, i.clone()],
            (vec![c.clone(), Stack(0), Stack(8)], 12),
            (vec![c.clone(), Stack(0), Stack(8)], 12),
        ),
        p(
            "s8_i",
            vec![s8(), i.clone()],
            (vec![Stack(0), Stack(8)], 12),
            (vec![Stack(0), Stack(8)], 12),
        ),
        p(
            "i_s8_i",
            vec![i.clone(), s8(), i.clone()],
            (vec![c.clone(), Stack(0), Stack(8)], 12),
            (vec![c.clone(), Stack(0), Stack(8)], 12),
        ),
        p(
            "i_si_i",
            vec![i.clone(), si(), i.clone()],
            (vec![c.clone(), Stack(0), Stack(4)], 8),
            (vec![c.clone(), Stack(0), Stack(4)], 8),
        ),
        // Reals and complex values are skipped.
        p(
            "d_i_i",
            vec![DOUBLE, i.clone(), i.clone()],
            (vec![Stack(0), c.clone(), e.clone()], 8),
            (vec![Stack(0), c.clone(), Stack(8)], 12),
        ),
        p(
            "f_i_i",
            vec![Type::FLOAT, i.clone(), i.clone()],
            (vec![Stack(0), c.clone(), e.clone()], 4),
            (vec![Stack(0), c.clone(), Stack(4)], 8),
        ),
        p(
            "ld_i_i",
            vec![LONGDOUBLE, i.clone(), i.clone()],
            (vec![Stack(0), c.clone(), e.clone()], 12),
            (vec![Stack(0), c.clone(), Stack(12)], 16),
        ),
        p(
            "cf_i_i",
            vec![cx(Type::FLOAT), i.clone(), i.clone()],
            (vec![Stack(0), c.clone(), e.clone()], 8),
            (vec![Stack(0), c.clone(), Stack(8)], 12),
        ),
        // Small integers take registers too.
        p(
            "c_s_i",
            vec![Type::S8, Type::S16, i.clone()],
            (vec![c.clone(), e.clone(), Stack(0)], 4),
            (vec![c.clone(), Stack(0), Stack(4)], 8),
        ),
        p(
            "i_i_i_i",
            vec![i.clone(), i.clone(), i.clone(), i.clone()],
            (vec![c.clone(), e.clone(), Stack(0), Stack(4)], 8),
            (vec![c.clone(), Stack(0), Stack(4), Stack(8)], 12),
        ),
        // libffi's bhaible test-callback `T (T, char, T)`, T = char[3]
        // (measured: fastcall ret $8, thiscall ret $12).
        p(
            "t_c_t",
            vec![s3(), Type::S8, s3()],
            (vec![Stack(0), e.clone(), Stack(4)], 8),
            (vec![Stack(0), Stack(4), Stack(8)], 12),
        ),
        // A struct stated 16-aligned: 16 bytes, no alignment, uses up
        // every register (measured: fastcall and thiscall ret $20).
        p(
            "c_sa_i",
            vec![Type::S8, sa16(), i.clone()],
            (vec![c.clone(), Stack(0), Stack(16)], 20),
            (vec![c, Stack(0), Stack(16)], 20),
        ),
    ]
}

#[test]
fn fastcall_and_thiscall_follow_gcc() {
    for pr in probes() {
        for (abi, (want, pop)) in [
            (Abi::I386FastCall, &pr.fastcall),
            (Abi::I386ThisCall, &pr.thiscall),
        ] {
            let p = plan(abi, pr.args.clone(), Type::S32);
            assert_eq!((&p.args, p.callee_pop), (want, *pop), "{abi:?} {}", pr.name);
        }
    }
}

#[test]
fn gcc_float_modes() {
    // A struct takes a float mode through a member of its whole size.
    assert!(args::gcc_float_mode(&sf()));
    assert!(args::gcc_float_mode(&st(vec![sd()])));
    assert!(args::gcc_float_mode(&st(vec![cx(Type::FLOAT)])));
    // Zero-sized members (ctypes' empty structures) do not count.
    let zeroed = Type {
        kind: Kind::Void,
        size: 0,
        align: 0,
    };
    assert!(args::gcc_float_mode(
        &Type::aggregate(vec![zeroed, Type::FLOAT], 4, 4).unwrap()
    ));
    // Two floats, a union of float and int, a padded float: integer modes.
    assert!(!args::gcc_float_mode(&st(vec![Type::FLOAT, Type::FLOAT])));
    assert!(!args::gcc_float_mode(
        &Type::aggregate(vec![Type::FLOAT, Type::S32], 4, 4).unwrap()
    ));
    assert!(!args::gcc_float_mode(
        &Type::aggregate(vec![Type::FLOAT], 8, 4).unwrap()
    ));
    assert!(!args::gcc_float_mode(&si()));
    // So a union of float and int uses up a fastcall register.
    let u = Type::aggregate(vec![Type::FLOAT, Type::S32], 4, 4).unwrap();
    let p = plan(Abi::I386FastCall, vec![u, Type::S32], Type::VOID);
    assert_eq!(p.args, vec![Stack(0), Frame(EDX)]);
}

#[test]
fn register_only_conventions_use_no_register_for_others() {
    // cdecl, ms_abi, stdcall, pascal: every argument on the stack.
    for abi in [
        Abi::I386SysV,
        Abi::I386MsCdecl,
        Abi::I386StdCall,
        Abi::I386Pascal,
    ] {
        let p = plan(abi, vec![Type::S32, POINTER, Type::U8], Type::VOID);
        assert!(p.args.iter().all(|l| matches!(l, Stack(_))), "{abi:?}");
    }
}

// ---- PASCAL and REGISTER ----

#[test]
fn pascal_pushes_left_to_right() {
    // The last argument nearest the return address; the callee pops all.
    let p = plan(
        Abi::I386Pascal,
        vec![Type::S32, Type::S32, Type::S32],
        Type::VOID,
    );
    assert_eq!(
        (p.args, p.callee_pop),
        (vec![Stack(8), Stack(4), Stack(0)], 12)
    );
    // Sizes rounded up to 4 (Delphi: a byte or word takes a double word;
    // Extended 12 bytes), no alignment.
    let p = plan(
        Abi::I386Pascal,
        vec![Type::S8, DOUBLE, LONGDOUBLE, s3(), S64],
        Type::VOID,
    );
    assert_eq!(
        (p.args, p.callee_pop),
        (
            vec![Stack(32), Stack(24), Stack(12), Stack(8), Stack(0)],
            36
        )
    );
}

#[test]
fn register_takes_the_first_three_that_qualify() {
    // eax, edx, ecx in order, the rest pushed left to right.
    let p = plan(Abi::I386Register, vec![Type::S32; 5], Type::S32);
    assert_eq!(
        (p.args, p.callee_pop),
        (
            vec![Frame(EAX), Frame(EDX), Frame(ECX), Stack(4), Stack(0)],
            8
        )
    );
    // Reals, Int64, structs and complex values do not qualify and take no
    // register; later integers still do.
    let p = plan(
        Abi::I386Register,
        vec![
            DOUBLE,
            Type::U8,
            S64,
            Type::S16,
            Type::FLOAT,
            si(),
            POINTER,
            Type::S32,
            cx(Type::FLOAT),
        ],
        Type::VOID,
    );
    assert_eq!(
        (p.args, p.callee_pop),
        (
            vec![
                Stack(28),
                Frame(EAX),
                Stack(20),
                Frame(EDX),
                Stack(16),
                Stack(12),
                Frame(ECX),
                Stack(8),
                Stack(0)
            ],
            36
        )
    );
    // All in registers: nothing to pop.
    let p = plan(Abi::I386Register, vec![Type::S32; 3], Type::S32);
    assert_eq!(p.callee_pop, 0);
    let p = plan(Abi::I386Register, vec![DOUBLE, S64], Type::VOID);
    assert_eq!((p.args, p.callee_pop), (vec![Stack(8), Stack(0)], 16));
}

#[test]
fn variadic_cifs_are_fixed_ones() {
    // A variadic cif carries nothing a closure can read that a fixed one
    // does not: the same signature gives the same plan (cdecl's variadic
    // layout is its fixed layout).
    let p = plan(Abi::I386SysV, vec![POINTER, DOUBLE, Type::S32], Type::S32);
    assert_eq!(p.args, vec![Stack(0), Stack(4), Stack(12)]);
    assert_eq!(p.callee_pop, 0);
}
