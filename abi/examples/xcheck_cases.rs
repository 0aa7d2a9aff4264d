//! Generates `cases.h` for the libffi cross-check in `abi/xcheck/`: random
//! signatures as C `ffi_type`s, each with the Plan this crate computes.
//!
//! Besides C-layout structs (which libffi's `ffi_prep_cif` lays out), about
//! one struct in three states its own size and alignment, as CPython's
//! ctypes does (libffi takes them as stated): packed (`_pack_ = 1`),
//! unions, bitfield-like storage shared by several elements, and layouts
//! stated larger or smaller than the elements' C layout, with the odd
//! element ctypes makes (a zeroed void `ffi_type`, an empty struct).
//! Elements of such a struct have their layouts filled in, as ctypes has
//! them (`ffi_prep_cif` lays out only argument and return types).
//!
//! Usage: `cargo run -p statictramp-abi --example xcheck_cases -- [N] [SEED]`
//! (see `abi/xcheck/run.sh`).
use statictramp_abi::types::ffi_align;
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
        let natural = Type::structure(elems).unwrap();
        if r.below(3) == 0 {
            stated(r, natural)
        } else {
            natural
        }
    } else {
        // x87 types are rare inside structs.
        let allow = depth == 0 || r.below(6) == 0;
        scalar(r, allow)
    }
}

/// A struct with the elements of `natural` (plus, at times, an element
/// ctypes makes) and a size and alignment stated as a client might: packed,
/// a union, storage shared by bitfields, or simply larger or smaller.
/// Alignments stay at most 16: libffi places stack arguments at absolute
/// addresses, which agree with offsets from a 16-aligned stack only up to
/// 16.
fn stated(r: &mut Rng, natural: Type) -> Type {
    let Kind::Struct(mut elems) = natural.kind else {
        unreachable!()
    };
    match r.below(8) {
        // A ctypes structure without _fields_: void, size 0, alignment 0.
        0 => elems.insert(
            r.below(elems.len() as u64 + 1) as usize,
            Type {
                kind: Kind::Void,
                size: 0,
                align: 0,
            },
        ),
        // A ctypes structure with `_fields_ = []`.
        1 => elems.insert(
            r.below(elems.len() as u64 + 1) as usize,
            Type {
                kind: Kind::Struct(vec![]),
                size: 0,
                align: 1,
            },
        ),
        _ => {}
    }
    let sum: u64 = elems.iter().map(|e| e.size).sum();
    let max_size = elems.iter().map(|e| e.size).max().unwrap_or(0);
    let max_align = elems.iter().map(|e| e.align).max().unwrap_or(1).max(1);
    let (size, align) = match r.below(5) {
        // _pack_ = 1: back to back.
        0 => (sum, 1),
        // A union of the elements.
        1 => (max_size.next_multiple_of(max_align), max_align),
        // Bitfields: the elements share storage the size of the largest.
        2 => (max_size.max(1), max_align),
        // Stated larger, up to 16-aligned.
        3 => {
            let align = max_align.max(1 << r.below(5));
            ((natural.size + r.below(17)).next_multiple_of(align), align)
        }
        // Stated smaller, alignment possibly smaller too.
        _ => (
            1 + r.below(natural.size),
            1 << r.below(u64::from(max_align.trailing_zeros()) + 1),
        ),
    };
    Type::aggregate(elems, size.max(1), align).unwrap()
}

struct Emitter {
    out: String,
    n: usize,
}

impl Emitter {
    /// The C expression for a pointer to `t`'s `ffi_type`. Structs of C
    /// layout are left at size 0 for `ffi_prep_cif` to lay out, except
    /// inside a struct of stated layout (`laid`), where libffi would not.
    fn ty(&mut self, t: &Type, laid: bool) -> String {
        let name = match &t.kind {
            Kind::Void if (t.size, t.align) != (1, 1) => {
                let id = self.n;
                self.n += 1;
                let (size, align) = (t.size, t.align);
                writeln!(
                    self.out,
                    "static ffi_type zv_{id} = {{{size}, {align}, FFI_TYPE_VOID, NULL}};"
                )
                .unwrap();
                return format!("&zv_{id}");
            }
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
                // ffi_prep_cif lays out a struct of size 0 and, recursively,
                // its elements of size 0 (refusing one that stays 0).
                let natural = Type::structure(es.clone()).ok() == Some(t.clone())
                    && es.iter().all(|e| e.size > 0);
                let inner_laid = laid || !natural;
                let names: Vec<String> = es.iter().map(|e| self.ty(e, inner_laid)).collect();
                let id = self.n;
                self.n += 1;
                let (size, align) = if inner_laid {
                    (t.size, t.align)
                } else {
                    (0, 0)
                };
                let o = &mut self.out;
                let mut list = names.join(", ");
                if !list.is_empty() {
                    list.push_str(", ");
                }
                writeln!(o, "static ffi_type *el_{id}[] = {{{list}NULL}};").unwrap();
                writeln!(
                    o,
                    "static ffi_type st_{id} = {{{size}, {align}, FFI_TYPE_STRUCT, el_{id}}};"
                )
                .unwrap();
                return format!("&st_{id}");
            }
        };
        format!("&ffi_type_{name}")
    }
}

/// Marks the bytes of `t`, placed at `at`, that hold data as libffi's
/// `classify_argument` walks the value (each element at
/// `FFI_ALIGN(offset, alignment)` from the struct's offset in its
/// eightbyte), within `lo..hi`: the eightbytes of the enclosing structs
/// (libffi drops classes beyond them). Padding and the 6 unused bytes of an
/// x87 `long double` are not marked. These are bytes libffi's `ffi_call`
/// sends whether the value goes in registers (every classified eightbyte:
/// whole, or its first 4 bytes if it holds only a `float` there) or in
/// memory (all of it); so the harness compares exactly them.
fn mask(t: &Type, at: u64, lo: u64, hi: u64, m: &mut [u8]) {
    match &t.kind {
        Kind::Struct(es) => {
            let r = at % 8;
            let start = at - r;
            let words = (t.size + r).div_ceil(8);
            let (lo, hi) = (lo.max(start), hi.min(start + 8 * words));
            let mut off = r;
            for e in es {
                off = ffi_align(off, e.align);
                mask(e, start + off, lo, hi, m);
                off += e.size;
            }
        }
        Kind::Complex(e) => {
            mask(e, at, lo, hi, m);
            mask(e, at + e.size, lo, hi, m)
        }
        Kind::Void => {}
        _ => {
            let n = if t.kind == Kind::LongDouble {
                10
            } else {
                t.size
            };
            let end = (at + n).min(hi).min(m.len() as u64);
            for b in at.max(lo)..end {
                m[b as usize] = b'x';
            }
        }
    }
}

fn mask_str(t: &Type) -> String {
    let mut m = vec![b'.'; t.size as usize];
    mask(t, 0, 0, t.size, &mut m);
    format!("\"{}\"", String::from_utf8(m).unwrap())
}

/// The bytes of a returned struct the caller gets: all of them, padding too
/// (libffi's `ffi_call` stores the return registers and copies the whole
/// size; a memory return is written in place).
fn ret_mask_str(t: &Type) -> String {
    match t.kind {
        Kind::Struct(_) => format!("\"{}\"", "x".repeat(t.size as usize)),
        _ => mask_str(t),
    }
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
        let anames: String = sig.args.iter().map(|a| e.ty(a, false) + ", ").collect();
        let rname = e.ty(&sig.ret, false);
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
            other => unreachable!("not an x86_64 return: {other:?}"),
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
            other => unreachable!("not an x86_64 ABI: {other:?}"),
        };
        cases.push(format!(
            "{{{abin}, {}, args_{i}, {rname}, {{{locs}}}, {rk}, {}, {{{ms}}}, {ptr}, {echo}, {}, {}, {}, {}, {}}}",
            sig.args.len(),
            moves.len(),
            sig.ret.size,
            sig.ret.align,
            plan.ret_buf,
            plan.scratch_size,
            ret_mask_str(&sig.ret)
        ));
    }
    print!("{}", e.out);
    println!(
        "static struct tcase cases[] = {{\n{}\n}};",
        cases.join(",\n")
    );
    println!("#define NCASES {}", cases.len());
}
