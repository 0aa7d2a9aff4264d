//! The case generator: a random signature (ABI, argument and return types,
//! a fixed/variadic split) and random values for it, drawn from a
//! [`Source`]: the seeded generator of the deterministic run or the bytes
//! of a libFuzzer input. Structs are laid out by libffi (size 0 in their
//! `ffi_type`) or state their layout as CPython's ctypes builds it
//! (ctypes.rs: packed, unions, bitfields, arrays, zero-sized members).

use crate::ctypes;
pub use crate::source::{Rng, Source};

/// libffi's type codes, as the runtime reads them from a cif.
pub use statictramp::cif::code;

/// A type of a case, laid out by the C rules of this target (x86_64 and
/// i386 System V: what libffi's `ffi_prep_cif` computes, checked by the
/// runner against libffi's own answer) or as its `ffi_type` states.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Void,
    Scalar {
        code: u16,
        size: usize,
        align: usize,
    },
    /// `_Complex` of a floating scalar.
    Complex(Box<Ty>),
    /// A struct. `stated`: the size and alignment its `ffi_type` states
    /// (ctypes states them for every Structure and Union; libffi takes
    /// them as they are); `None`: size 0 in the `ffi_type`, laid out by
    /// `ffi_prep_cif`.
    Struct {
        elems: Vec<Ty>,
        stated: Option<(usize, usize)>,
    },
    /// A ctypes Structure without `_fields_` as a member: a zeroed
    /// `ffi_type` (size 0, alignment 0, `FFI_TYPE_VOID`, no element list).
    Zeroed,
}

/// What libffi's walk puts in a byte: nothing, integer, floating (SSE)
/// or x87 data.
const DATA_NONE: u8 = 0;
const DATA_INT: u8 = 1;
const DATA_SSE: u8 = 2;
const DATA_X87: u8 = 3;

/// libffi's `FFI_ALIGN(v, a)`; an alignment of 0 gives 0 (the walk
/// restarts at 0 after a zeroed element).
pub fn ffi_align(v: usize, a: usize) -> usize {
    v.wrapping_add(a).wrapping_sub(1) & !a.wrapping_sub(1)
}

/// The layout libffi's `initialize_aggregate` computes for `elems`.
pub fn c_layout(elems: &[Ty]) -> (usize, usize) {
    let mut off: usize = 0;
    let mut align: usize = 0;
    for e in elems {
        let (s, a) = e.layout();
        off = ffi_align(off, a) + s;
        align = align.max(a);
    }
    (ffi_align(off, align), align)
}

impl Ty {
    /// A scalar as this target lays it out (x86_64; i386: 8-byte scalars
    /// 4-aligned, pointers 4 bytes, long double 12 bytes 4-aligned).
    pub fn scalar(code: u16) -> Ty {
        let i386 = cfg!(target_arch = "x86");
        let (size, align) = match code {
            code::UINT8 | code::SINT8 => (1, 1),
            code::UINT16 | code::SINT16 => (2, 2),
            code::UINT32 | code::SINT32 | code::FLOAT => (4, 4),
            code::POINTER if i386 => (4, 4),
            code::UINT64 | code::SINT64 | code::DOUBLE if i386 => (8, 4),
            code::UINT64 | code::SINT64 | code::DOUBLE | code::POINTER => (8, 8),
            code::LONGDOUBLE if i386 => (12, 4),
            code::LONGDOUBLE => (16, 16),
            _ => unreachable!("not a scalar code {code}"),
        };
        Ty::Scalar { code, size, align }
    }
    /// A struct laid out by libffi.
    pub fn natural(elems: Vec<Ty>) -> Ty {
        Ty::Struct {
            elems,
            stated: None,
        }
    }
    pub fn size(&self) -> usize {
        self.layout().0
    }
    pub fn align(&self) -> usize {
        self.layout().1
    }
    /// (size, alignment): as stated, else by the C rules (libffi's
    /// `initialize_aggregate`).
    pub fn layout(&self) -> (usize, usize) {
        match self {
            Ty::Void => (1, 1),
            Ty::Zeroed => (0, 0),
            Ty::Scalar { size, align, .. } => (*size, *align),
            Ty::Complex(e) => (2 * e.size(), e.align()),
            Ty::Struct {
                stated: Some(l), ..
            } => *l,
            Ty::Struct {
                elems,
                stated: None,
            } => c_layout(elems),
        }
    }
    /// The size its `ffi_type` carries before `ffi_prep_cif` (0 for a
    /// struct libffi lays out).
    fn ffi_size(&self) -> usize {
        match self {
            Ty::Struct { stated: None, .. } => 0,
            _ => self.size(),
        }
    }
    /// Whether `ffi_prep_cif` refuses this type as an argument or return:
    /// it lays out a type of size 0 (`initialize_aggregate`), recursing
    /// into elements of size 0, and refuses one without an element list
    /// or whose size comes out 0. So a zero-sized ctypes type passed by
    /// value, or a zero-sized member of a struct libffi lays out, is
    /// refused; inside a struct of stated layout one is not looked at.
    pub fn refused_by_libffi(&self) -> bool {
        self.ffi_size() == 0 && self.aggregate_fails()
    }
    fn aggregate_fails(&self) -> bool {
        match self {
            Ty::Struct { elems, .. } => {
                elems
                    .iter()
                    .any(|e| e.ffi_size() == 0 && e.aggregate_fails())
                    || c_layout(elems).0 == 0
            }
            Ty::Zeroed => true,
            // Void is ffi_type_void (size 1); scalars are never size 0.
            _ => false,
        }
    }
    /// The bytes where libffi's `classify_argument` walk puts data (1),
    /// the rest 0: each element at `FFI_ALIGN(offset, alignment)` from the
    /// struct's offset in its eightbyte, classes beyond the struct's
    /// eightbytes dropped, not padding and not long double's 6 unused
    /// bytes. For a struct of C layout the walk is its layout.
    pub fn mask(&self) -> Vec<u8> {
        self.walk()
            .iter()
            .map(|&k| u8::from(k != DATA_NONE))
            .collect()
    }
    /// The bytes of an argument of this type that libffi's `ffi_call`
    /// sends, which a closure must deliver: for a struct of C layout its
    /// layout without padding ([`Ty::mask`]). For a struct of stated
    /// layout, all of them where it goes whole (in memory: by Win64's and
    /// i386's rules, over 16 bytes or with an x87 class on UNIX64);
    /// otherwise (`regs_by_walk`: UNIX64, up to 16 bytes) per eightbyte as
    /// the walk classes it: one with integer data whole (INTEGER), one
    /// with only a float at its start 4 bytes (SSESF), one with other
    /// floating data 8 bytes (SSE), one without data nothing (NO_CLASS);
    /// all of them are what `ffi_call` copies for those classes
    /// (`ffi_call_int`), and so are the value's bytes in memory. So a
    /// packed struct's bytes in an INTEGER eightbyte are compared even
    /// where the walk puts no element.
    pub fn sent_mask(&self, regs_by_walk: bool) -> Vec<u8> {
        let walk = self.walk();
        let n = walk.len();
        if !matches!(
            self,
            Ty::Struct {
                stated: Some(_),
                ..
            }
        ) {
            return self.mask();
        }
        if !regs_by_walk || n > 16 || walk.contains(&DATA_X87) {
            return vec![1; n];
        }
        let mut m = vec![0u8; n];
        for (k, w) in walk.chunks(8).enumerate() {
            // INTEGER, or SSE with data past a lone float's 4 bytes.
            let len = if w.contains(&DATA_INT) || w.iter().skip(4).any(|&d| d == DATA_SSE) {
                8
            } else if w.contains(&DATA_SSE) {
                4
            } else {
                0
            };
            let lo = 8 * k;
            m[lo..(lo + len).min(n)].fill(1);
        }
        m
    }
    /// What the walk puts in each byte (`DATA_*`).
    fn walk(&self) -> Vec<u8> {
        let mut m = vec![DATA_NONE; self.size()];
        let n = m.len();
        self.fill_mask(&mut m, 0, 0, n);
        m
    }
    /// The bytes of a returned value the caller gets: a struct of stated
    /// layout whole (`ffi_call` stores the return registers and copies
    /// the whole size; a memory return is written in place), else as an
    /// argument.
    pub fn ret_mask(&self) -> Vec<u8> {
        match self {
            Ty::Struct {
                stated: Some(_), ..
            } => vec![1u8; self.size()],
            _ => self.mask(),
        }
    }
    fn fill_mask(&self, m: &mut [u8], at: usize, lo: usize, hi: usize) {
        match self {
            Ty::Void | Ty::Zeroed => {}
            Ty::Scalar { code, size, .. } => {
                let (n, data) = match *code {
                    code::LONGDOUBLE => (10, DATA_X87),
                    code::FLOAT | code::DOUBLE => (*size, DATA_SSE),
                    _ => (*size, DATA_INT),
                };
                let end = (at + n).min(hi).min(m.len());
                if at.max(lo) < end {
                    m[at.max(lo)..end].fill(data);
                }
            }
            Ty::Complex(e) => {
                e.fill_mask(m, at, lo, hi);
                e.fill_mask(m, at + e.size(), lo, hi);
            }
            Ty::Struct { elems, .. } => {
                let r = at % 8;
                let start = at - r;
                let words = (self.size() + r).div_ceil(8);
                let (lo, hi) = (lo.max(start), hi.min(start + 8 * words));
                let mut off = r;
                for e in elems {
                    off = ffi_align(off, e.align());
                    e.fill_mask(m, start + off, lo, hi);
                    off += e.size();
                }
            }
        }
    }
    /// A C-like spelling, for reports.
    pub fn describe(&self) -> String {
        match self {
            Ty::Void => "void".into(),
            Ty::Zeroed => "E0".into(),
            Ty::Scalar { code, .. } => match *code {
                code::FLOAT => "float",
                code::DOUBLE => "double",
                code::LONGDOUBLE => "long double",
                code::UINT8 => "u8",
                code::SINT8 => "s8",
                code::UINT16 => "u16",
                code::SINT16 => "s16",
                code::UINT32 => "u32",
                code::SINT32 => "s32",
                code::UINT64 => "u64",
                code::SINT64 => "s64",
                code::POINTER => "void*",
                _ => "?",
            }
            .into(),
            Ty::Complex(e) => format!("_Complex {}", e.describe()),
            Ty::Struct { elems, stated } => {
                let inner = elems.iter().map(Ty::describe).collect::<Vec<_>>().join(",");
                match stated {
                    None => format!("struct{{{inner}}}"),
                    Some((s, a)) => format!("struct/{s}/{a}{{{inner}}}"),
                }
            }
        }
    }
}

/// What a target's libffi accepts, for the generator.
#[derive(Clone, Copy)]
pub struct Target {
    /// ABI numbers to draw from (libffi's values here).
    pub abis: &'static [u32],
    /// Whether `long double` and complex types are allowed with ABI `abi`.
    pub x87_ok: fn(u32) -> bool,
    pub complex_ok: fn(u32) -> bool,
    /// Whether `ffi_call` passes a small struct by the classes of libffi's
    /// walk with ABI `abi` (UNIX64), rather than whole ([`Ty::sent_mask`]).
    pub regs_by_walk: fn(u32) -> bool,
}

/// One case: a signature and the values of one call.
#[derive(Debug)]
pub struct Case {
    pub abi: u32,
    /// Fixed arguments (the rest are variadic); `None`: not variadic.
    pub nfixed: Option<usize>,
    pub args: Vec<Ty>,
    pub ret: Ty,
    /// One value per argument (bytes, size of the type) and the return's.
    pub arg_vals: Vec<Vec<u8>>,
    pub ret_val: Vec<u8>,
    /// The bytes compared: [`Ty::sent_mask`] per argument, [`Ty::ret_mask`].
    pub arg_masks: Vec<Vec<u8>>,
    pub ret_mask: Vec<u8>,
    /// libffi's `ffi_prep_cif` must refuse the signature (a zero-sized
    /// type by value), and so must statictramp's `ffi_prep_closure_loc`.
    pub refused: bool,
}

impl Case {
    pub fn describe(&self) -> String {
        let mut args: Vec<String> = self.args.iter().map(Ty::describe).collect();
        if let Some(n) = self.nfixed {
            args.insert(n, "...".into());
        }
        format!(
            "abi {}: {}({})",
            self.abi,
            self.ret.describe(),
            args.join(", ")
        )
    }
}

pub const INTS: [u16; 9] = [
    code::UINT8,
    code::SINT8,
    code::UINT16,
    code::SINT16,
    code::UINT32,
    code::SINT32,
    code::UINT64,
    code::SINT64,
    code::POINTER,
];

fn scalar(r: &mut dyn Source, x87: bool, complex: bool) -> Ty {
    match r.below(16) {
        0..=8 => Ty::scalar(INTS[r.below(INTS.len() as u64) as usize]),
        9 | 10 => Ty::scalar(code::FLOAT),
        11 | 12 => Ty::scalar(code::DOUBLE),
        13 if x87 => Ty::scalar(code::LONGDOUBLE),
        14 | 15 if complex => {
            let e = match r.below(3) {
                0 => code::FLOAT,
                1 => code::DOUBLE,
                _ if x87 => code::LONGDOUBLE,
                _ => code::DOUBLE,
            };
            Ty::Complex(Box::new(Ty::scalar(e)))
        }
        _ => Ty::scalar(code::SINT32),
    }
}

fn ty(r: &mut dyn Source, depth: u32, x87: bool, complex: bool) -> Ty {
    if depth < 2 && r.chance(4) {
        // One struct in three as ctypes states it.
        if r.chance(3) {
            return ctypes::structure(r, depth, x87);
        }
        let n = 1 + r.below(6) as usize;
        let mut elems = Vec::new();
        for _ in 0..n {
            let e = ty(r, depth + 1, x87, complex);
            // Arrays in structs are repeated elements to libffi.
            let times = if r.chance(5) { 1 + r.below(4) } else { 1 } as usize;
            elems.extend(std::iter::repeat_n(e, times));
        }
        // Rarely a zero-sized member, which libffi's layout refuses.
        if r.chance(1024) {
            let at = r.below(elems.len() as u64 + 1) as usize;
            elems.insert(at, ctypes::zero_sized(r));
        }
        Ty::natural(elems)
    } else {
        scalar(r, x87, complex)
    }
}

/// A variadic argument: what C's default promotions leave (no float, no
/// integer narrower than int, which libffi refuses or promotes).
fn variadic(r: &mut dyn Source) -> Ty {
    match r.below(6) {
        0 => Ty::scalar(code::SINT32),
        1 => Ty::scalar(code::UINT64),
        2 => Ty::scalar(code::DOUBLE),
        3 => Ty::scalar(code::POINTER),
        4 => Ty::scalar(code::SINT64),
        _ => Ty::natural(vec![Ty::scalar(code::SINT32), Ty::scalar(code::DOUBLE)]),
    }
}

/// Makes a NaN in `v` (a little-endian float or double) quiet.
fn quiet_nan(v: &mut [u8], float: bool) {
    if float {
        let x = u32::from_le_bytes(v[..4].try_into().unwrap());
        if x & 0x7f80_0000 == 0x7f80_0000 && x & 0x007f_ffff != 0 {
            v[..4].copy_from_slice(&(x | 0x0040_0000).to_le_bytes());
        }
    } else {
        let x = u64::from_le_bytes(v[..8].try_into().unwrap());
        if x & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000 && x & 0x000f_ffff_ffff_ffff != 0 {
            v[..8].copy_from_slice(&(x | 0x0008_0000_0000_0000).to_le_bytes());
        }
    }
}

/// Random bytes where `mask` is 1, zero elsewhere (what the handler
/// writes back is then equal whatever the caller does with the rest).
fn value(r: &mut dyn Source, mask: &[u8]) -> Vec<u8> {
    mask.iter()
        .map(|&m| {
            let b = r.below(256) as u8;
            if m == 1 { b } else { 0 }
        })
        .collect()
}

/// The case numbered `index` of the run seeded `seed`.
pub fn case(target: &Target, seed: u64, index: u64) -> Case {
    case_from(target, &mut Rng::new(case_seed(seed, index)))
}

/// The generator's seed for case `index` of the run seeded `seed`.
pub fn case_seed(seed: u64, index: u64) -> u64 {
    seed ^ index.wrapping_mul(0x0100_0000_01b3).rotate_left(17)
}

/// A case from the decisions `r` gives.
pub fn case_from(target: &Target, r: &mut dyn Source) -> Case {
    let abi = target.abis[r.below(target.abis.len() as u64) as usize];
    let (x87, complex) = ((target.x87_ok)(abi), (target.complex_ok)(abi));
    let nargs = match r.below(10) {
        0..=5 => r.below(6) as usize,
        6..=8 => r.below(16) as usize,
        _ => r.below(33) as usize,
    };
    let variadic_split = r.chance(8) && nargs > 0;
    let nfixed = variadic_split.then(|| 1 + r.below(nargs as u64) as usize);
    let mut args: Vec<Ty> = (0..nargs)
        .map(|i| match nfixed {
            Some(n) if i >= n => variadic(r),
            _ => ty(r, 0, x87, complex),
        })
        .collect();
    let mut ret = if r.chance(6) {
        Ty::Void
    } else {
        ty(r, 0, x87, complex)
    };
    // Rarely a zero-sized ctypes type by value (an empty Structure, a
    // Structure without fields): libffi's ffi_prep_cif refuses it.
    if r.chance(256) {
        let z = ctypes::zero_sized(r);
        match nfixed.unwrap_or(nargs) {
            0 => ret = z,
            n => args[r.below(n as u64) as usize] = z,
        }
    }
    let by_walk = (target.regs_by_walk)(abi);
    let arg_masks: Vec<Vec<u8>> = args.iter().map(|t| t.sent_mask(by_walk)).collect();
    let ret_mask = if ret == Ty::Void {
        Vec::new()
    } else {
        ret.ret_mask()
    };
    let arg_vals = arg_masks.iter().map(|m| value(r, m)).collect();
    let mut ret_val = value(r, &ret_mask);
    // i386 returns float and double on the x87 stack, and loading a
    // signaling NaN there quiets it (sets the mantissa's top bit), in
    // every backend and in compiled code alike: return quiet NaNs only.
    if cfg!(target_arch = "x86") {
        if let Ty::Scalar {
            code: c @ (code::FLOAT | code::DOUBLE),
            ..
        } = ret
        {
            quiet_nan(&mut ret_val, c == code::FLOAT);
        }
    }
    let refused = ret.refused_by_libffi() || args.iter().any(Ty::refused_by_libffi);
    Case {
        abi,
        nfixed,
        args,
        ret,
        arg_vals,
        ret_val,
        arg_masks,
        ret_mask,
        refused,
    }
}
