//! Generates `cases.c` for the i386 cross-check in `abi/xcheck/i386/`:
//! random signatures under all seven i386 ABIs, each with the Plan this
//! crate computes and a C caller that GCC compiles for that convention.
//!
//! Every argument and return value is a static C object of the signature's
//! type (natural, packed, `aligned(16)` structs and unions included), so
//! the bytes the caller sends are those of a real C value. The callers:
//! - `FFI_SYSV`, `FFI_MS_CDECL`, `FFI_STDCALL`, `FFI_FASTCALL`,
//!   `FFI_THISCALL`: a call through a pointer of the C function type with
//!   no attribute, `ms_abi`, `stdcall`, `fastcall`, `thiscall`.
//! - `FFI_PASCAL` (no C compiler has it): `stdcall` with the parameters in
//!   reverse order, which has PASCAL's stack layout and pop; a record
//!   result of 1, 2 or 4 bytes is declared as an unsigned integer of that
//!   size (Delphi returns it in al/ax/eax), any other through GCC's hidden
//!   pointer at offset 0, which is where Delphi's extra last parameter is.
//! - `FFI_REGISTER`: `regparm(K), stdcall` with the (at most three)
//!   register parameters first, then, if the result needs a pointer, that
//!   pointer as an explicit parameter (a register one if a register is
//!   left, else the first stack one), then the stack parameters in reverse.
//!   This restates the Delphi rules independently of the classifier: the
//!   first three integers or pointers of at most 4 bytes take eax, edx,
//!   ecx.
//!
//! Under `XCHECK_LIBFFI` it also defines each case's libffi cif (types with
//! their stated size and alignment, as ctypes gives them), so that the same
//! callers can call libffi's own closures instead.
//!
//! Usage: `cargo run -p statictramp-abi --example xcheck_i386_cases -- [N] [SEED]`
//! (see `abi/xcheck/i386/run.sh`).
use statictramp_abi::i386::types as t32;
use statictramp_abi::{Abi, ArgLoc, Ext, Kind, RetLoc, Signature, Type, classify};
use std::fmt::Write;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// How a struct is laid out in C.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Natural,
    Packed,
    Aligned16,
    Union,
}

/// A type as both the classifier and C see it.
#[derive(Clone)]
struct CTy {
    ty: Type,
    /// The C type name.
    c: String,
    /// A C expression for a pointer to its libffi `ffi_type`.
    ffi: String,
    /// Struct members (empty for scalars) and their C offsets.
    elems: Vec<(CTy, u64)>,
    shape: Shape,
}

impl CTy {
    fn scalar(ty: Type, c: &str, ffi: &str) -> CTy {
        CTy {
            ty,
            c: c.to_string(),
            ffi: format!("&ffi_type_{ffi}"),
            elems: vec![],
            shape: Shape::Natural,
        }
    }
}

fn scalars() -> Vec<CTy> {
    let s = CTy::scalar;
    vec![
        s(Type::U8, "unsigned char", "uint8"),
        s(Type::S8, "signed char", "sint8"),
        s(Type::U16, "unsigned short", "uint16"),
        s(Type::S16, "short", "sint16"),
        s(Type::U32, "unsigned int", "uint32"),
        s(Type::S32, "int", "sint32"),
        s(t32::U64, "unsigned long long", "uint64"),
        s(t32::S64, "long long", "sint64"),
        s(t32::POINTER, "void *", "pointer"),
        s(Type::FLOAT, "float", "float"),
        s(t32::DOUBLE, "double", "double"),
        s(t32::LONGDOUBLE, "long double", "longdouble"),
        s(
            Type::complex(Type::FLOAT).unwrap(),
            "_Complex float",
            "complex_float",
        ),
        s(
            Type::complex(t32::DOUBLE).unwrap(),
            "_Complex double",
            "complex_double",
        ),
        s(
            Type::complex(t32::LONGDOUBLE).unwrap(),
            "_Complex long double",
            "complex_longdouble",
        ),
    ]
}

struct Gen {
    rng: Rng,
    decls: String,
    /// libffi `ffi_type`s of the structs (for `XCHECK_LIBFFI`).
    ffi_decls: String,
    nstruct: usize,
    scalars: Vec<CTy>,
}

impl Gen {
    fn scalar(&mut self) -> CTy {
        let i = self.rng.below(self.scalars.len() as u64) as usize;
        self.scalars[i].clone()
    }

    /// Members GCC treats specially in fastcall/thiscall counting: one
    /// floating member (a float mode), a few small integers.
    fn small_member(&mut self) -> CTy {
        let i = [0, 1, 2, 3, 5, 9, 9, 10, 11, 12][self.rng.below(10) as usize];
        self.scalars[i].clone()
    }

    fn ty(&mut self, depth: u32) -> CTy {
        if depth >= 2 || self.rng.below(5) >= 2 {
            return self.scalar();
        }
        let max = if self.rng.below(2) == 0 { 1 } else { 4 };
        let n = 1 + self.rng.below(max);
        let small = self.rng.below(2) == 0;
        let elems: Vec<CTy> = (0..n)
            .map(|_| {
                if small {
                    self.small_member()
                } else {
                    self.ty(depth + 1)
                }
            })
            .collect();
        let shape = match self.rng.below(10) {
            0 => Shape::Packed,
            1 => Shape::Aligned16,
            // A union of one member is, in a libffi type, a struct of it
            // (GCC gives that union an integer mode even for a float
            // member: docs/design.md).
            2 if n > 1 => Shape::Union,
            _ => Shape::Natural,
        };
        self.structure(elems, shape)
    }

    fn structure(&mut self, elems: Vec<CTy>, shape: Shape) -> CTy {
        let tys: Vec<Type> = elems.iter().map(|e| e.ty.clone()).collect();
        let natural = Type::structure(tys.clone()).unwrap();
        let mut offs = Vec::new();
        let mut off: u64 = 0;
        for e in &elems {
            let at = match shape {
                Shape::Union => 0,
                Shape::Packed => off,
                Shape::Natural | Shape::Aligned16 => off.next_multiple_of(e.ty.align),
            };
            offs.push(at);
            off = at + e.ty.size;
        }
        let max_align = tys.iter().map(|t| t.align).max().unwrap();
        let max_size = tys.iter().map(|t| t.size).max().unwrap();
        let ty = match shape {
            Shape::Natural => natural,
            Shape::Packed => Type::aggregate(tys, off, 1).unwrap(),
            Shape::Aligned16 => {
                Type::aggregate(tys, natural.size.next_multiple_of(16), 16).unwrap()
            }
            Shape::Union => {
                Type::aggregate(tys, max_size.next_multiple_of(max_align), max_align).unwrap()
            }
        };
        let id = self.nstruct;
        self.nstruct += 1;
        let (kw, attr) = match shape {
            Shape::Natural => ("struct", ""),
            Shape::Packed => ("struct", " __attribute__((packed))"),
            Shape::Aligned16 => ("struct", " __attribute__((aligned(16)))"),
            Shape::Union => ("union", ""),
        };
        let c = format!("{kw} s{id}");
        let mut d = format!("{c} {{");
        for (i, e) in elems.iter().enumerate() {
            write!(d, " {} f{i};", e.c).unwrap();
        }
        writeln!(self.decls, "{d} }}{attr};").unwrap();
        writeln!(
            self.decls,
            "_Static_assert(sizeof({c}) == {} && _Alignof({c}) == {}, \"layout of {c}\");",
            ty.size, ty.align
        )
        .unwrap();
        // Stated size and alignment, as ctypes gives them.
        let els: String = elems.iter().map(|e| format!("{}, ", e.ffi)).collect();
        writeln!(self.ffi_decls, "static ffi_type *fe{id}[] = {{{els}NULL}};").unwrap();
        writeln!(
            self.ffi_decls,
            "static ffi_type ft{id} = {{{}, {}, FFI_TYPE_STRUCT, fe{id}}};",
            ty.size, ty.align
        )
        .unwrap();
        CTy {
            ty,
            c,
            ffi: format!("&ft{id}"),
            elems: elems.into_iter().zip(offs).collect(),
            shape,
        }
    }

    /// A C initializer for a value of `t`.
    fn init(&mut self, t: &CTy) -> String {
        if !t.elems.is_empty() {
            let n = if t.shape == Shape::Union {
                1
            } else {
                t.elems.len()
            };
            let elems: Vec<CTy> = t.elems[..n].iter().map(|(e, _)| e.clone()).collect();
            let parts: Vec<String> = elems.iter().map(|e| self.init(e)).collect();
            return format!("{{{}}}", parts.join(", "));
        }
        let r = self.rng.below(1 << 40) | 0x0101_0101;
        let f = (self.rng.below(4000) as f64 - 2000.0) / 8.0 + 0.125;
        let g = (self.rng.below(4000) as f64 - 2000.0) / 4.0 + 0.5;
        match &t.ty.kind {
            Kind::U8 | Kind::S8 => format!("({})0x{:x}", t.c, r & 0xff),
            Kind::U16 | Kind::S16 => format!("({})0x{:x}", t.c, r & 0xffff),
            Kind::U32 | Kind::S32 => format!("({})0x{:x}u", t.c, r & 0xffff_ffff),
            Kind::U64 | Kind::S64 => {
                format!("({})0x{:x}{:08x}ull", t.c, r & 0xffff, r & 0xffff_ffff)
            }
            Kind::Pointer => format!("(void *)0x{:x}u", r & 0xffff_ffff),
            Kind::Float => format!("{f:?}f"),
            Kind::Double => format!("{f:?}"),
            Kind::LongDouble => format!("{f:?}L"),
            Kind::Complex(e) => {
                let (s, c) = match e.kind {
                    Kind::Float => ("f", "float"),
                    Kind::Double => ("", "double"),
                    _ => ("L", "long double"),
                };
                format!("__builtin_complex(({c}){f:?}{s}, ({c}){g:?}{s})")
            }
            Kind::Void | Kind::Struct(_) => unreachable!(),
        }
    }
}

/// Marks the bytes of `t` (at `at`) that hold its value: not padding, not
/// the 2 unused bytes of a 12-byte `long double`, only a union's first
/// member (the one its initializer sets).
fn mask(t: &CTy, at: u64, m: &mut [u8]) {
    if !t.elems.is_empty() {
        let n = if t.shape == Shape::Union {
            1
        } else {
            t.elems.len()
        };
        for (e, off) in &t.elems[..n] {
            mask(e, at + off, m);
        }
        return;
    }
    match &t.ty.kind {
        Kind::LongDouble => m[at as usize..at as usize + 10].fill(b'x'),
        Kind::Complex(e) if e.kind == Kind::LongDouble => {
            m[at as usize..at as usize + 10].fill(b'x');
            m[at as usize + 12..at as usize + 22].fill(b'x');
        }
        _ => m[at as usize..(at + t.ty.size) as usize].fill(b'x'),
    }
}

fn mask_str(t: &CTy) -> String {
    let mut m = vec![b'.'; t.ty.size as usize];
    mask(t, 0, &mut m);
    String::from_utf8(m).unwrap()
}

/// An integer or pointer of at most 4 bytes: what takes a register.
fn eligible(t: &Type) -> bool {
    matches!(
        t.kind,
        Kind::U8 | Kind::S8 | Kind::U16 | Kind::S16 | Kind::U32 | Kind::S32 | Kind::Pointer
    )
}

/// Delphi returns a record of 1, 2 or 4 bytes in al/ax/eax.
fn small_record(t: &Type) -> bool {
    matches!(t.kind, Kind::Struct(_)) && matches!(t.size, 1 | 2 | 4)
}

/// A C parameter of the caller's declaration: argument `i`, or the
/// explicit result pointer.
enum Param {
    Arg(usize),
    RetPtr,
}

/// How the C caller declares the function for `abi`: attribute, return
/// type, parameters in C order.
fn c_decl(abi: Abi, args: &[CTy], ret: &CTy) -> (String, String, Vec<Param>) {
    let in_order = || (0..args.len()).map(Param::Arg).collect::<Vec<_>>();
    let small_ret = |t: &CTy| {
        if small_record(&t.ty) {
            format!("uint{}_t", 8 * t.ty.size)
        } else {
            t.c.clone()
        }
    };
    match abi {
        Abi::I386SysV => (String::new(), ret.c.clone(), in_order()),
        Abi::I386MsCdecl => ("__attribute__((ms_abi))".into(), ret.c.clone(), in_order()),
        Abi::I386StdCall => ("__attribute__((stdcall))".into(), ret.c.clone(), in_order()),
        Abi::I386FastCall => (
            "__attribute__((fastcall))".into(),
            ret.c.clone(),
            in_order(),
        ),
        Abi::I386ThisCall => (
            "__attribute__((thiscall))".into(),
            ret.c.clone(),
            in_order(),
        ),
        Abi::I386Pascal => {
            let params = (0..args.len()).rev().map(Param::Arg).collect();
            ("__attribute__((stdcall))".into(), small_ret(ret), params)
        }
        Abi::I386Register => {
            let regs: Vec<usize> = (0..args.len())
                .filter(|&i| eligible(&args[i].ty))
                .take(3)
                .collect();
            let hidden = match &ret.ty.kind {
                Kind::Struct(_) => !small_record(&ret.ty),
                Kind::Complex(e) => e.kind != Kind::Float,
                _ => false,
            };
            let mut params: Vec<Param> = regs.iter().map(|&i| Param::Arg(i)).collect();
            let mut k = regs.len();
            if hidden {
                params.push(Param::RetPtr);
                k = (k + 1).min(3);
            }
            params.extend(
                (0..args.len())
                    .rev()
                    .filter(|i| !regs.contains(i))
                    .map(Param::Arg),
            );
            let r = if hidden {
                "void".into()
            } else {
                small_ret(ret)
            };
            (format!("__attribute__((regparm({k}), stdcall))"), r, params)
        }
        Abi::SysV64 | Abi::Win64 | Abi::GnuW64 => unreachable!(),
    }
}

const ABIS: [(Abi, &str); 7] = [
    (Abi::I386SysV, "SYSV"),
    (Abi::I386StdCall, "STDCALL"),
    (Abi::I386ThisCall, "THISCALL"),
    (Abi::I386FastCall, "FASTCALL"),
    (Abi::I386MsCdecl, "MS_CDECL"),
    (Abi::I386Pascal, "PASCAL"),
    (Abi::I386Register, "REGISTER"),
];

fn main() {
    let mut argv = std::env::args().skip(1);
    let ncase: usize = argv.next().map_or(2000, |s| s.parse().unwrap());
    let seed: u64 = argv.next().map_or(1, |s| s.parse().unwrap());
    let mut g = Gen {
        rng: Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d)),
        decls: String::new(),
        ffi_decls: String::new(),
        nstruct: 0,
        scalars: scalars(),
    };
    let void = CTy::scalar(Type::VOID, "void", "void");
    let mut ffi_cases = Vec::new();
    let mut body = String::new();
    let mut table = Vec::new();
    for k in 0..ncase {
        let (abi, abi_name) = ABIS[k % ABIS.len()];
        let nargs = g.rng.below(9) as usize;
        let args: Vec<CTy> = (0..nargs).map(|_| g.ty(0)).collect();
        let ret = if g.rng.below(6) == 0 {
            void.clone()
        } else {
            g.ty(0)
        };
        let sig = Signature {
            abi,
            args: args.iter().map(|a| a.ty.clone()).collect(),
            ret: ret.ty.clone(),
        };
        let plan = classify(&sig).unwrap();

        // The libffi cif.
        let ats: String = args.iter().map(|a| format!("{}, ", a.ffi)).collect();
        writeln!(g.ffi_decls, "static ffi_type *at{k}[] = {{{ats}NULL}};").unwrap();
        ffi_cases.push(format!("{{FFI_{abi_name}, at{k}, {}}}", ret.ffi));

        // The values.
        for (i, a) in args.iter().enumerate() {
            let v = g.init(a);
            writeln!(body, "static {} a{k}_{i} = {v};", a.c).unwrap();
        }
        let has_ret = ret.ty.kind != Kind::Void;
        if has_ret {
            let v = g.init(&ret);
            writeln!(body, "static {} r{k} = {v};", ret.c).unwrap();
            writeln!(body, "static {} got{k};", ret.c).unwrap();
        }

        // The caller.
        let (attr, cret, params) = c_decl(abi, &args, &ret);
        let ptypes: Vec<String> = params
            .iter()
            .map(|p| match p {
                Param::Arg(i) => args[*i].c.clone(),
                Param::RetPtr => format!("{} *", ret.c),
            })
            .collect();
        let pvals: Vec<String> = params
            .iter()
            .map(|p| match p {
                Param::Arg(i) => format!("a{k}_{i}"),
                Param::RetPtr => format!("&got{k}"),
            })
            .collect();
        let explicit_ptr = params.iter().any(|p| matches!(p, Param::RetPtr));
        let ptypes = if ptypes.is_empty() {
            "void".to_string()
        } else {
            ptypes.join(", ")
        };
        writeln!(body, "static void call{k}(void *fn) {{").unwrap();
        writeln!(body, "  typedef {cret} ({attr} *F)({ptypes});").unwrap();
        writeln!(body, "  unsigned long sp0, sp1;").unwrap();
        if explicit_ptr {
            writeln!(body, "  expect_ptr = &got{k};").unwrap();
        }
        writeln!(
            body,
            "  __asm__ volatile(\"movl %%esp, %0\" : \"=r\"(sp0));"
        )
        .unwrap();
        let call = format!("((F)fn)({})", pvals.join(", "));
        if !has_ret || explicit_ptr {
            writeln!(body, "  {call};").unwrap();
        } else if cret != ret.c {
            // A small record declared as an integer.
            writeln!(body, "  {cret} v = {call};").unwrap();
        } else {
            writeln!(body, "  got{k} = {call};").unwrap();
        }
        writeln!(
            body,
            "  __asm__ volatile(\"movl %%esp, %0\" : \"=r\"(sp1));"
        )
        .unwrap();
        if has_ret && !explicit_ptr && cret != ret.c {
            writeln!(body, "  memcpy(&got{k}, &v, sizeof got{k});").unwrap();
        }
        writeln!(body, "  check_call({k}, sp1 - sp0);").unwrap();
        if has_ret {
            writeln!(body, "  check_ret({k}, &got{k});").unwrap();
        }
        writeln!(body, "}}").unwrap();

        // The Plan.
        let mut locs = String::new();
        for (i, (a, l)) in args.iter().zip(&plan.args).enumerate() {
            let (kind, off) = match l {
                ArgLoc::Frame(o) => (0, *o),
                ArgLoc::Stack(o) => (1, *o),
                other => panic!("i386 plans hold no {other:?}"),
            };
            write!(
                locs,
                "{{{kind}, {off}, {}, &a{k}_{i}, \"{}\"}}, ",
                a.ty.size,
                mask_str(a)
            )
            .unwrap();
        }
        let (rk, moves, ptr, echo) = match &plan.ret {
            RetLoc::Void => (0, &[][..], 0, 0),
            RetLoc::Regs(m) => (1, &m[..], 0, 0),
            RetLoc::Memory { ptr, echo } => (2, &[][..], *ptr, *echo),
            RetLoc::X87 => (3, &[][..], 0, 0),
            RetLoc::MemoryStack { ptr, echo } => (5, &[][..], *ptr, *echo),
            RetLoc::X87Float => (6, &[][..], 0, 0),
            RetLoc::X87Double => (7, &[][..], 0, 0),
            other => panic!("i386 plans return no {other:?}"),
        };
        let ms: String = moves
            .iter()
            .map(|m| {
                let sign = u32::from(m.ext == Ext::Sign);
                format!("{{{}, {}, {sign}, {}}}, ", m.at, m.len, m.dst)
            })
            .collect();
        let (rval, rmask) = if has_ret {
            (format!("&r{k}"), mask_str(&ret))
        } else {
            ("0".into(), String::new())
        };
        table.push(format!(
            "{{\"{abi_name}\", call{k}, {nargs}, {{{locs}}}, {rk}, {}, {{{ms}}}, {ptr}, {echo}, {}, {rval}, {}, \"{rmask}\"}}",
            moves.len(),
            plan.callee_pop,
            if has_ret { ret.ty.size } else { 0 },
        ));
    }
    print!("{}", g.decls);
    print!("{body}");
    println!(
        "static const struct tcase cases[] = {{\n{}\n}};",
        table.join(",\n")
    );
    println!("#define NCASES {}", table.len());
    println!("#ifdef XCHECK_LIBFFI");
    print!("{}", g.ffi_decls);
    println!(
        "static const struct ffi_case ffi_cases[] = {{\n{}\n}};",
        ffi_cases.join(",\n")
    );
    println!("#endif");
}
