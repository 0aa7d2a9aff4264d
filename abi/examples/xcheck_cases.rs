//! Generates `cases.h` for the libffi cross-check in `abi/xcheck/`: random
//! signatures as C `ffi_type`s, each with the Plan this crate computes.
//!
//! Usage: `cargo run -p statictramp-abi --example xcheck_cases -- [N] [SEED]`
//! (see `abi/xcheck/run.sh`).
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
    fn pick(&mut self, ts: &[Type]) -> Type {
        ts[self.below(ts.len() as u64) as usize].clone()
    }
}

fn is_x87(t: &Type) -> bool {
    match &t.kind {
        Kind::LongDouble => true,
        Kind::Complex(e) => e.kind == Kind::LongDouble,
        _ => false,
    }
}

fn scalar(r: &mut Rng, allow_x87: bool) -> Type {
    let all = [
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
        Type::FLOAT,
        Type::DOUBLE,
        Type::LONGDOUBLE,
        Type::complex(Type::FLOAT).unwrap(),
        Type::complex(Type::DOUBLE).unwrap(),
        Type::complex(Type::LONGDOUBLE).unwrap(),
    ];
    loop {
        let t = r.pick(&all);
        if allow_x87 || !is_x87(&t) {
            return t;
        }
    }
}

fn ty(r: &mut Rng, depth: u32) -> Type {
    if depth < 2 && r.below(3) == 0 {
        let n = if r.below(3) != 0 {
            1 + r.below(3)
        } else {
            1 + r.below(4)
        };
        let small = [
            Type::U8,
            Type::S16,
            Type::U32,
            Type::FLOAT,
            Type::FLOAT,
            Type::S8,
            Type::DOUBLE,
            Type::POINTER,
        ];
        let small_only = r.below(2) == 0;
        let elems = (0..n)
            .map(|_| {
                if !small_only || (depth == 0 && r.below(5) == 0) {
                    ty(r, depth + 1)
                } else if r.below(8) == 0 {
                    Type::complex(Type::FLOAT).unwrap()
                } else {
                    r.pick(&small)
                }
            })
            .collect();
        Type::structure(elems).unwrap()
    } else {
        // x87 types are rare inside structs.
        let allow = depth == 0 || r.below(6) == 0;
        scalar(r, allow)
    }
}

struct Emitter {
    out: String,
    n: usize,
}

impl Emitter {
    fn ty(&mut self, t: &Type) -> String {
        let name = match &t.kind {
            Kind::Void => "void",
            Kind::U8 => "uint8",
            Kind::S8 => "sint8",
            Kind::U16 => "uint16",
            Kind::S16 => "sint16",
            Kind::U32 => "uint32",
            Kind::S32 => "sint32",
            Kind::U64 => "uint64",
            Kind::S64 => "sint64",
            Kind::Float => "float",
            Kind::Double => "double",
            Kind::LongDouble => "longdouble",
            Kind::Pointer => "pointer",
            Kind::Complex(e) => match e.kind {
                Kind::Float => "complex_float",
                Kind::Double => "complex_double",
                _ => "complex_longdouble",
            },
            Kind::Struct(es) => {
                let names: Vec<String> = es.iter().map(|e| self.ty(e)).collect();
                let id = self.n;
                self.n += 1;
                let o = &mut self.out;
                writeln!(
                    o,
                    "static ffi_type *el_{id}[] = {{{}, NULL}};",
                    names.join(", ")
                )
                .unwrap();
                writeln!(
                    o,
                    "static ffi_type st_{id} = {{0, 0, FFI_TYPE_STRUCT, el_{id}}};"
                )
                .unwrap();
                return format!("&st_{id}");
            }
        };
        format!("&ffi_type_{name}")
    }
}

/// Marks the bytes of `t` that hold data (not padding, not the 6 unused
/// bytes of an x87 `long double`).
fn mask(t: &Type, off: u64, m: &mut [u8]) {
    match &t.kind {
        Kind::Struct(es) => {
            for (e, o) in es.iter().zip(t.field_offsets()) {
                mask(e, off + o, m)
            }
        }
        Kind::Complex(e) => {
            mask(e, off, m);
            mask(e, off + e.size, m)
        }
        Kind::Void => {}
        _ => {
            let n = if t.kind == Kind::LongDouble {
                10
            } else {
                t.size
            };
            m[off as usize..(off + n) as usize].fill(b'x');
        }
    }
}

fn mask_str(t: &Type) -> String {
    let mut m = vec![b'.'; t.size as usize];
    mask(t, 0, &mut m);
    format!("\"{}\"", String::from_utf8(m).unwrap())
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let ncase: usize = argv.next().map_or(3000, |s| s.parse().unwrap());
    let seed: u64 = argv.next().map_or(1, |s| s.parse().unwrap());
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut e = Emitter {
        out: String::new(),
        n: 0,
    };
    let mut cases = Vec::new();
    for c in 0..ncase {
        let abi = match (c % 3, r.below(2)) {
            (0 | 1, _) => Abi::SysV64,
            (_, 0) => Abi::Win64,
            _ => Abi::GnuW64,
        };
        let args: Vec<Type> = (0..r.below(16)).map(|_| ty(&mut r, 0)).collect();
        let ret = if r.below(6) == 0 {
            Type::VOID
        } else {
            ty(&mut r, 0)
        };
        // libffi's ffi_call aborts on an FFI_WIN64 long double return
        // (win64.S:110-112), so it cannot be checked this way.
        if abi == Abi::Win64 && ret.kind == Kind::LongDouble {
            continue;
        }
        let sig = Signature { abi, args, ret };
        let plan = classify(&sig).unwrap();
        let anames: String = sig.args.iter().map(|a| e.ty(a) + ", ").collect();
        let rname = e.ty(&sig.ret);
        let i = cases.len();
        writeln!(e.out, "static ffi_type *args_{i}[] = {{{anames}NULL}};").unwrap();
        let mut locs = String::new();
        for (a, l) in sig.args.iter().zip(&plan.args) {
            let (k, off, pieces) = match l {
                ArgLoc::Frame(o) => (0, *o, &[][..]),
                ArgLoc::Stack(o) => (1, *o, &[][..]),
                ArgLoc::FramePtr(o) => (2, *o, &[][..]),
                ArgLoc::StackPtr(o) => (3, *o, &[][..]),
                ArgLoc::Gather { dst, pieces } => (4, *dst, &pieces[..]),
            };
            let ps: String = pieces
                .iter()
                .map(|p| format!("{{{},{},{}}},", p.src, p.at, p.len))
                .collect();
            let (n, size, align, m) = (pieces.len(), a.size, a.align, mask_str(a));
            write!(locs, "{{{k},{off},{n},{size},{align},{{{ps}}},{m}}},").unwrap();
        }
        let (rk, moves, ptr, echo) = match &plan.ret {
            RetLoc::Void => (0, &[][..], 0, 0),
            RetLoc::Regs(m) => (1, &m[..], 0, 0),
            RetLoc::Memory { ptr, echo } => (2, &[][..], *ptr, *echo),
            RetLoc::X87 => (3, &[][..], 0, 0),
            RetLoc::X87Pair => (4, &[][..], 0, 0),
        };
        let ms: String = moves
            .iter()
            .map(|m| {
                format!(
                    "{{{},{},{},{}}},",
                    m.at,
                    m.len,
                    u32::from(m.ext == Ext::Sign),
                    m.dst
                )
            })
            .collect();
        let abin = match sig.abi {
            Abi::SysV64 => "FFI_UNIX64",
            Abi::Win64 => "FFI_WIN64",
            Abi::GnuW64 => "FFI_GNUW64",
        };
        cases.push(format!(
            "{{{abin}, {}, args_{i}, {rname}, {{{locs}}}, {rk}, {}, {{{ms}}}, {ptr}, {echo}, {}, {}, {}, {}, {}}}",
            sig.args.len(),
            moves.len(),
            sig.ret.size,
            sig.ret.align,
            plan.ret_buf,
            plan.scratch_size,
            mask_str(&sig.ret)
        ));
    }
    print!("{}", e.out);
    println!(
        "static struct tcase cases[] = {{\n{}\n}};",
        cases.join(",\n")
    );
    println!("#define NCASES {}", cases.len());
}
