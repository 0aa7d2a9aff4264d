//! The case generator: a random signature (ABI, argument and return types,
//! a fixed/variadic split) and random values for it, from a seed. One
//! generator for every runner: the deterministic run here and, later, the
//! libFuzzer target (which will feed its bytes through the same `Rng`).

/// A tiny deterministic generator (xorshift64*): the same seed gives the
/// same cases on every machine and build.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// libffi's type codes, as the runtime reads them from a cif.
pub use statictramp::cif::code;

/// A type of a case, laid out by the C rules of this target (x86_64 and
/// i386 System V: what libffi's `ffi_prep_cif` computes, checked by the
/// runner against libffi's own answer).
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
    Struct(Vec<Ty>),
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
    pub fn size(&self) -> usize {
        self.layout().0
    }
    pub fn align(&self) -> usize {
        self.layout().1
    }
    /// (size, alignment) by the C rules.
    pub fn layout(&self) -> (usize, usize) {
        match self {
            Ty::Void => (1, 1),
            Ty::Scalar { size, align, .. } => (*size, *align),
            Ty::Complex(e) => (2 * e.size(), e.align()),
            Ty::Struct(elems) => {
                let mut off: usize = 0;
                let mut align: usize = 1;
                for e in elems {
                    let (s, a) = e.layout();
                    off = off.next_multiple_of(a) + s;
                    align = align.max(a);
                }
                (off.next_multiple_of(align).max(1), align)
            }
        }
    }
    /// The bytes of a value of this type that carry it (1) and padding
    /// (0): long double's 6 unused bytes and struct padding are not
    /// compared.
    pub fn mask(&self) -> Vec<u8> {
        let mut m = vec![0u8; self.size()];
        self.fill_mask(&mut m, 0);
        m
    }
    fn fill_mask(&self, m: &mut [u8], at: usize) {
        match self {
            Ty::Void => {}
            Ty::Scalar {
                code: code::LONGDOUBLE,
                ..
            } => m[at..at + 10].fill(1),
            Ty::Scalar { size, .. } => m[at..at + size].fill(1),
            Ty::Complex(e) => {
                e.fill_mask(m, at);
                e.fill_mask(m, at + e.size());
            }
            Ty::Struct(elems) => {
                let mut off: usize = 0;
                for e in elems {
                    off = off.next_multiple_of(e.align());
                    e.fill_mask(m, at + off);
                    off += e.size();
                }
            }
        }
    }
    /// A C-like spelling, for reports.
    pub fn describe(&self) -> String {
        match self {
            Ty::Void => "void".into(),
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
            Ty::Struct(elems) => format!(
                "struct{{{}}}",
                elems.iter().map(Ty::describe).collect::<Vec<_>>().join(",")
            ),
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

const INTS: [u16; 9] = [
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

fn scalar(r: &mut Rng, x87: bool, complex: bool) -> Ty {
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

fn ty(r: &mut Rng, depth: u32, x87: bool, complex: bool) -> Ty {
    if depth < 2 && r.chance(4) {
        let n = 1 + r.below(6) as usize;
        let mut elems = Vec::new();
        for _ in 0..n {
            let e = ty(r, depth + 1, x87, complex);
            // Arrays in structs are repeated elements to libffi.
            let times = if r.chance(5) { 1 + r.below(4) } else { 1 };
            for _ in 0..times {
                elems.push(e.clone());
            }
        }
        Ty::Struct(elems)
    } else {
        scalar(r, x87, complex)
    }
}

/// A variadic argument: what C's default promotions leave (no float, no
/// integer narrower than int, which libffi refuses or promotes).
fn variadic(r: &mut Rng) -> Ty {
    match r.below(6) {
        0 => Ty::scalar(code::SINT32),
        1 => Ty::scalar(code::UINT64),
        2 => Ty::scalar(code::DOUBLE),
        3 => Ty::scalar(code::POINTER),
        4 => Ty::scalar(code::SINT64),
        _ => Ty::Struct(vec![Ty::scalar(code::SINT32), Ty::scalar(code::DOUBLE)]),
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

fn value(r: &mut Rng, t: &Ty) -> Vec<u8> {
    let mut v: Vec<u8> = (0..t.size()).map(|_| r.next() as u8).collect();
    // Padding bytes are zero in what the handler writes back, so that the
    // caller's copy compares equal whatever it does with padding.
    for (b, m) in v.iter_mut().zip(t.mask()) {
        if m == 0 {
            *b = 0;
        }
    }
    v
}

/// The case numbered `index` of the run seeded `seed`.
pub fn case(target: &Target, seed: u64, index: u64) -> Case {
    let mut r = Rng::new(seed ^ index.wrapping_mul(0x0100_0000_01b3).rotate_left(17));
    let abi = target.abis[r.below(target.abis.len() as u64) as usize];
    let (x87, complex) = ((target.x87_ok)(abi), (target.complex_ok)(abi));
    let nargs = match r.below(10) {
        0..=5 => r.below(6) as usize,
        6..=8 => r.below(16) as usize,
        _ => r.below(33) as usize,
    };
    let variadic_split = r.chance(8) && nargs > 0;
    let nfixed = variadic_split.then(|| 1 + r.below(nargs as u64) as usize);
    let args: Vec<Ty> = (0..nargs)
        .map(|i| match nfixed {
            Some(n) if i >= n => variadic(&mut r),
            _ => ty(&mut r, 0, x87, complex),
        })
        .collect();
    let ret = if r.chance(6) {
        Ty::Void
    } else {
        ty(&mut r, 0, x87, complex)
    };
    let arg_vals = args.iter().map(|t| value(&mut r, t)).collect();
    let mut ret_val = if ret == Ty::Void {
        Vec::new()
    } else {
        value(&mut r, &ret)
    };
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
    Case {
        abi,
        nfixed,
        args,
        ret,
        arg_vals,
        ret_val,
    }
}
