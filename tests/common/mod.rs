//! Shared helpers for the integration tests that call statictramp closures
//! through libffi's `ffi_call` (the system libffi, via `libffi-sys`).
//!
//! - [`T`]: a small type language that builds libffi `ffi_type`s and knows
//!   each type's C layout and which of its bytes are significant (not
//!   padding, not the 6 unused bytes of an x87 `long double`).
//! - "Graffiti" values: byte `k` of argument `i` is `(i + 1 + k / 16) << 4 |
//!   k & 15` (mod 256), so a misplaced byte says where it came from.
//! - [`Prepared`]: a cif from libffi's `ffi_prep_cif[_var]` plus one of our
//!   closures whose handler ([`record`]) copies every argument's bytes and
//!   returns a value computed from all of them; [`Prepared::check`] calls it
//!   through `ffi_call` and compares every significant byte of every
//!   argument and of the return value.
#![allow(dead_code, clippy::missing_safety_doc)]

use libffi_sys::*;
use statictramp::capi;
use statictramp::cif::FfiCif;
use std::fmt;
use std::os::raw::c_void;
use std::ptr;

// libffi-sys declares these only with its "complex" feature; libffi.so.8
// exports them (version node LIBFFI_COMPLEX_8.0).
#[link(name = "ffi")]
unsafe extern "C" {
    pub static mut ffi_type_complex_float: ffi_type;
    pub static mut ffi_type_complex_double: ffi_type;
    pub static mut ffi_type_complex_longdouble: ffi_type;
}

pub const UNIX64: ffi_abi = ffi_abi_FFI_UNIX64;
pub const WIN64: ffi_abi = ffi_abi_FFI_WIN64;
pub const GNUW64: ffi_abi = ffi_abi_FFI_GNUW64;

/// A C type. `Int` is libffi's `FFI_TYPE_INT` (code 1), a 4-byte signed int
/// that no predefined `ffi_type` carries.
#[derive(Clone, Debug, PartialEq)]
pub enum T {
    /// A struct with a stated size and alignment (see [`Lay`]).
    Lay(Box<Lay>),
    /// The zeroed `ffi_type` CPython's ctypes gives a structure without
    /// `_fields_` (void, size 0, alignment 0); an element only.
    Zeroed,
    Void,
    U8,
    S8,
    U16,
    S16,
    U32,
    S32,
    Int,
    U64,
    S64,
    F32,
    F64,
    LD,
    Ptr,
    St(Vec<T>),
    Cx(Box<T>),
}

pub fn st(fields: &[T]) -> T {
    T::St(fields.to_vec())
}

/// A struct whose `ffi_type` states its size and alignment (libffi takes
/// them as they are), as CPython's ctypes builds one for a packed struct,
/// a union or a struct with bitfields: `elems` are the `ffi_type`
/// elements, `data` the bytes a caller's value carries through the call
/// (the fields' bytes in the client's own layout, minus any that libffi's
/// `ffi_call` itself does not send).
#[derive(Clone, Debug, PartialEq)]
pub struct Lay {
    pub name: String,
    pub elems: Vec<T>,
    pub size: usize,
    pub align: usize,
    pub data: Vec<bool>,
}

/// A stated layout whose every byte is data.
pub fn lay(name: &str, elems: &[T], size: usize, align: usize) -> T {
    lay_data(name, elems, size, align, 0..size)
}

/// A stated layout whose data are the bytes in `data`.
pub fn lay_data(
    name: &str,
    elems: &[T],
    size: usize,
    align: usize,
    data: std::ops::Range<usize>,
) -> T {
    let mut d = vec![false; size];
    d[data].fill(true);
    T::Lay(Box::new(Lay {
        name: name.into(),
        elems: elems.to_vec(),
        size,
        align,
        data: d,
    }))
}

/// A ctypes `_pack_ = 1` structure of `fields`: back to back, alignment 1.
pub fn packed(name: &str, fields: &[T]) -> T {
    let size = fields.iter().map(T::size).sum();
    lay(name, fields, size, 1)
}

/// A ctypes `Union` of `members`: each member an element, the size the
/// largest member's rounded up to the largest alignment; every byte data.
pub fn union(name: &str, members: &[T]) -> T {
    let align = members.iter().map(T::align).max().unwrap_or(1);
    let size = members.iter().map(T::size).max().unwrap_or(0);
    lay(name, members, size.next_multiple_of(align), align)
}

/// How ctypes represents an array field `t[n]` of a struct of at most 16
/// bytes: a struct of `n` copies, with the array's size and `t`'s alignment.
pub fn array(t: T, n: usize) -> T {
    let (size, align) = (t.size() * n, t.align());
    lay(&format!("{t}[{n}]"), &rep(t, n), size, align)
}

/// `n` copies of `t`.
pub fn rep(t: T, n: usize) -> Vec<T> {
    vec![t; n]
}

pub fn cx(elem: T) -> T {
    T::Cx(Box::new(elem))
}

/// Every scalar argument type. (`Int`, `FFI_TYPE_INT`, is a return type
/// only: libffi's x86_64 `classify_argument` aborts on it.)
pub const SCALARS: [T; 12] = [
    T::U8,
    T::S8,
    T::U16,
    T::S16,
    T::U32,
    T::S32,
    T::U64,
    T::S64,
    T::F32,
    T::F64,
    T::LD,
    T::Ptr,
];

/// One scalar inside a value: byte offset, significant length, kind.
#[derive(Clone, Copy, Debug)]
pub struct Leaf<'a> {
    pub off: usize,
    pub len: usize,
    pub ty: &'a T,
}

impl T {
    pub fn size(&self) -> usize {
        match self {
            T::Void | T::U8 | T::S8 => 1,
            T::U16 | T::S16 => 2,
            T::U32 | T::S32 | T::Int | T::F32 => 4,
            T::U64 | T::S64 | T::F64 | T::Ptr => 8,
            T::LD => 16,
            T::Cx(e) => 2 * e.size(),
            T::Lay(l) => l.size,
            T::Zeroed => 0,
            T::St(f) => {
                let mut off = 0usize;
                for t in f {
                    off = off.next_multiple_of(t.align()) + t.size();
                }
                off.next_multiple_of(self.align())
            }
        }
    }

    pub fn align(&self) -> usize {
        match self {
            T::Cx(e) => e.align(),
            T::Lay(l) => l.align,
            T::Zeroed => 0,
            T::St(f) => f.iter().map(T::align).max().unwrap_or(1),
            t => t.size(),
        }
    }

    /// Byte offsets of a struct's fields.
    pub fn offsets(&self) -> Vec<usize> {
        let T::St(f) = self else { return vec![] };
        let mut off = 0usize;
        f.iter()
            .map(|t| {
                off = off.next_multiple_of(t.align());
                let at = off;
                off += t.size();
                at
            })
            .collect()
    }

    /// The scalars inside, at their offsets.
    pub fn leaves(&self) -> Vec<Leaf<'_>> {
        let mut out = Vec::new();
        self.leaves_at(0, &mut out);
        out
    }

    fn leaves_at<'a>(&'a self, base: usize, out: &mut Vec<Leaf<'a>>) {
        match self {
            T::Void | T::Zeroed => {}
            // Data bytes, one leaf each.
            T::Lay(l) => {
                for (k, _) in l.data.iter().enumerate().filter(|(_, d)| **d) {
                    out.push(Leaf {
                        off: base + k,
                        len: 1,
                        ty: &T::U8,
                    });
                }
            }
            T::St(f) => {
                for (t, off) in f.iter().zip(self.offsets()) {
                    t.leaves_at(base + off, out);
                }
            }
            T::Cx(e) => {
                e.leaves_at(base, out);
                e.leaves_at(base + e.size(), out);
            }
            T::LD => out.push(Leaf {
                off: base,
                len: 10,
                ty: self,
            }),
            t => out.push(Leaf {
                off: base,
                len: t.size(),
                ty: self,
            }),
        }
    }

    /// Which bytes carry a value (not padding).
    pub fn mask(&self) -> Vec<bool> {
        let mut m = vec![false; if *self == T::Void { 0 } else { self.size() }];
        for l in self.leaves() {
            m[l.off..l.off + l.len].fill(true);
        }
        m
    }

    /// `Some(signed)` for integers narrower than an `ffi_arg`, which libffi
    /// returns widened to 64 bits.
    pub fn narrow_int(&self) -> Option<bool> {
        match self {
            T::U8 | T::U16 | T::U32 => Some(false),
            T::S8 | T::S16 | T::S32 | T::Int => Some(true),
            _ => None,
        }
    }

    /// A libffi `ffi_type` for this type. Structs are leaked (tests only).
    pub fn ffi(&self) -> *mut ffi_type {
        {
            match self {
                T::Void => &raw mut ffi_type_void,
                T::U8 => &raw mut ffi_type_uint8,
                T::S8 => &raw mut ffi_type_sint8,
                T::U16 => &raw mut ffi_type_uint16,
                T::S16 => &raw mut ffi_type_sint16,
                T::U32 => &raw mut ffi_type_uint32,
                T::S32 => &raw mut ffi_type_sint32,
                T::U64 => &raw mut ffi_type_uint64,
                T::S64 => &raw mut ffi_type_sint64,
                T::F32 => &raw mut ffi_type_float,
                T::F64 => &raw mut ffi_type_double,
                T::LD => &raw mut ffi_type_longdouble,
                T::Ptr => &raw mut ffi_type_pointer,
                T::Int => leak(ffi_type {
                    size: 4,
                    alignment: 4,
                    type_: 1, // FFI_TYPE_INT
                    elements: ptr::null_mut(),
                }),
                T::Zeroed => leak(ffi_type {
                    size: 0,
                    alignment: 0,
                    type_: 0, // FFI_TYPE_VOID
                    elements: ptr::null_mut(),
                }),
                T::Lay(l) => {
                    let mut elems: Vec<*mut ffi_type> =
                        l.elems.iter().map(T::ffi_laid_out).collect();
                    elems.push(ptr::null_mut());
                    let elements = Box::leak(elems.into_boxed_slice()).as_mut_ptr();
                    leak(ffi_type {
                        size: l.size,
                        alignment: l.align as u16,
                        type_: 13, // FFI_TYPE_STRUCT
                        elements,
                    })
                }
                T::Cx(e) => match **e {
                    T::F32 => &raw mut ffi_type_complex_float,
                    T::F64 => &raw mut ffi_type_complex_double,
                    T::LD => &raw mut ffi_type_complex_longdouble,
                    _ => panic!("complex of {e}"),
                },
                T::St(f) => {
                    let mut elems: Vec<*mut ffi_type> = f.iter().map(T::ffi).collect();
                    elems.push(ptr::null_mut());
                    let elements = Box::leak(elems.into_boxed_slice()).as_mut_ptr();
                    leak(ffi_type {
                        size: 0,
                        alignment: 0,
                        type_: 13, // FFI_TYPE_STRUCT
                        elements,
                    })
                }
            }
        }
    }
}

impl T {
    /// [`T::ffi`] with every struct's size and alignment filled in, as
    /// CPython's ctypes has them for a field's type. Inside a struct of
    /// stated (nonzero) size this matters: `ffi_prep_cif` lays out only
    /// argument and return types of size 0, never their elements, so an
    /// element of size 0 stays so (and libffi classifies it as such).
    pub fn ffi_laid_out(&self) -> *mut ffi_type {
        match self {
            T::St(f) => {
                let mut elems: Vec<*mut ffi_type> = f.iter().map(T::ffi_laid_out).collect();
                elems.push(ptr::null_mut());
                let elements = Box::leak(elems.into_boxed_slice()).as_mut_ptr();
                leak(ffi_type {
                    size: self.size(),
                    alignment: self.align() as u16,
                    type_: 13, // FFI_TYPE_STRUCT
                    elements,
                })
            }
            t => t.ffi(),
        }
    }
}

fn leak(t: ffi_type) -> *mut ffi_type {
    Box::leak(Box::new(t))
}

impl fmt::Display for T {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            T::Void => "void",
            T::U8 => "u8",
            T::S8 => "s8",
            T::U16 => "u16",
            T::S16 => "s16",
            T::U32 => "u32",
            T::S32 => "s32",
            T::Int => "int",
            T::U64 => "u64",
            T::S64 => "s64",
            T::F32 => "float",
            T::F64 => "double",
            T::LD => "ldouble",
            T::Ptr => "ptr",
            T::Cx(e) => return write!(f, "complex {e}"),
            T::Lay(l) => return f.write_str(&l.name),
            T::Zeroed => "zeroed",
            T::St(fields) => {
                write!(f, "{{")?;
                for (i, t) in fields.iter().enumerate() {
                    write!(f, "{}{t}", if i > 0 { "," } else { "" })?;
                }
                return write!(f, "}}");
            }
        };
        f.write_str(s)
    }
}

/// A signature: ABI, argument types, return type and, for variadic cifs,
/// the number of fixed arguments.
#[derive(Clone, Debug)]
pub struct Sig {
    pub abi: ffi_abi,
    pub args: Vec<T>,
    pub ret: T,
    pub nfixed: Option<usize>,
}

impl Sig {
    pub fn new(abi: ffi_abi, args: &[T], ret: T) -> Sig {
        Sig {
            abi,
            args: args.to_vec(),
            ret,
            nfixed: None,
        }
    }
    pub fn sysv(args: &[T], ret: T) -> Sig {
        Sig::new(UNIX64, args, ret)
    }
    pub fn variadic(abi: ffi_abi, fixed: &[T], var: &[T], ret: T) -> Sig {
        let mut s = Sig::new(abi, fixed, ret);
        s.args.extend_from_slice(var);
        s.nfixed = Some(fixed.len());
        s
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abi = match self.abi {
            UNIX64 => "sysv",
            WIN64 => "win64",
            GNUW64 => "gnuw64",
            _ => "?",
        };
        write!(f, "[{abi}] {} (", self.ret)?;
        for (i, t) in self.args.iter().enumerate() {
            if Some(i) == self.nfixed {
                write!(f, "{}... ", if i > 0 { "," } else { "" })?;
            } else if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{t}")?;
        }
        write!(f, ")")
    }
}

/// 16-aligned bytes.
pub struct Buf {
    words: Vec<u128>,
    len: usize,
}

impl Buf {
    pub fn new(bytes: &[u8]) -> Buf {
        let mut b = Buf::filled(bytes.len(), 0);
        b.bytes_mut().copy_from_slice(bytes);
        b
    }
    pub fn filled(len: usize, byte: u8) -> Buf {
        let mut b = Buf {
            words: vec![0; len.div_ceil(16).max(1)],
            len,
        };
        b.bytes_mut().fill(byte);
        b
    }
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.len) }
    }
    pub fn ptr(&mut self) -> *mut c_void {
        self.words.as_mut_ptr().cast()
    }
    /// Reads the bytes as a `V` (which must be no larger).
    pub fn read<V: Copy>(&self) -> V {
        assert!(size_of::<V>() <= self.words.len() * 16);
        // SAFETY: in bounds; 16-aligned storage; callers pick plain-data V.
        unsafe { ptr::read(self.words.as_ptr().cast()) }
    }
}

/// Graffiti bytes for field `field`; `invert` flips every bit (a second,
/// equally readable pattern).
pub fn graffiti(field: usize, len: usize, invert: bool) -> Vec<u8> {
    (0..len)
        .map(|k| {
            let b = ((((field + k / 16) & 15) << 4) | (k & 15)) as u8;
            if invert { !b } else { b }
        })
        .collect()
}

/// Makes every x87 `long double` inside well-formed (integer bit set,
/// exponent neither 0 nor all ones), so loading it onto the x87 stack and
/// storing it back keeps its bits.
pub fn sanitize(t: &T, bytes: &mut [u8]) {
    for l in t.leaves() {
        if *l.ty == T::LD {
            bytes[l.off + 7] |= 0x80;
            bytes[l.off + 9] = (bytes[l.off + 9] & 0xbf) | 0x20;
        }
    }
}

/// The graffiti value for argument `i` of type `t`.
pub fn arg_value(i: usize, t: &T, invert: bool) -> Vec<u8> {
    let mut v = graffiti(i + 1, t.size(), invert);
    sanitize(t, &mut v);
    v
}

/// The value the handler returns: graffiti of field 14 mixed with a
/// position-sensitive hash of every significant argument byte, so a return
/// is only right if the handler saw the right arguments.
pub fn ret_value(ret: &T, args: &[T], got: &[Vec<u8>]) -> Vec<u8> {
    if *ret == T::Void {
        return vec![];
    }
    let mut h = args.len() as u8;
    for (t, bytes) in args.iter().zip(got) {
        for (b, m) in bytes.iter().zip(t.mask()) {
            if m {
                h = h.wrapping_mul(31).wrapping_add(*b);
            }
        }
    }
    let mut v: Vec<u8> = graffiti(14, ret.size(), false)
        .iter()
        .map(|b| b ^ h)
        .collect();
    sanitize(ret, &mut v);
    v
}

/// `v` (a narrow integer's bytes) widened to an `ffi_arg`.
pub fn widen(v: &[u8], signed: bool) -> Vec<u8> {
    let neg = signed && v[v.len() - 1] & 0x80 != 0;
    let mut w = [if neg { 0xff } else { 0 }; 8];
    w[..v.len()].copy_from_slice(v);
    w.to_vec()
}

/// What the closure's handler saw.
pub struct Ctx {
    pub args: Vec<T>,
    pub ret: T,
    pub calls: usize,
    pub got: Vec<Vec<u8>>,
    pub cif: *mut c_void,
    pub rvalue: *mut c_void,
    /// Write only the return type's bytes, not a whole `ffi_arg`.
    pub narrow_ret: bool,
}

/// The handler of every harness closure: records each argument's bytes and
/// writes [`ret_value`] (a whole `ffi_arg` for narrow integers, as libffi
/// asks of handlers). Never panics (it runs inside a foreign frame).
pub unsafe extern "C-unwind" fn record(
    cif: *mut FfiCif,
    ret: *mut c_void,
    av: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: `ud` is the Ctx the harness passed; avalue has one pointer
    // per argument, each to a value of the argument's type.
    unsafe {
        let ctx = &mut *(ud as *mut Ctx);
        ctx.calls += 1;
        ctx.cif = cif.cast();
        ctx.rvalue = ret;
        ctx.got = ctx
            .args
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let p = *av.add(i) as *const u8;
                if p.is_null() {
                    vec![]
                } else {
                    std::slice::from_raw_parts(p, t.size()).to_vec()
                }
            })
            .collect();
        let mut r = ret_value(&ctx.ret, &ctx.args, &ctx.got);
        if let (Some(signed), false) = (ctx.ret.narrow_int(), ctx.narrow_ret) {
            r = widen(&r, signed);
        }
        ptr::copy_nonoverlapping(r.as_ptr(), ret.cast::<u8>(), r.len());
    }
}

pub fn hex(b: &[u8], mask: &[bool]) -> String {
    b.iter()
        .zip(mask.iter().chain(std::iter::repeat(&true)))
        .map(|(b, m)| if *m { format!("{b:02x}") } else { "..".into() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares the significant bytes of `got` with `want`.
pub fn same(want: &[u8], got: &[u8], mask: &[bool]) -> bool {
    want.len() == got.len()
        && mask
            .iter()
            .enumerate()
            .all(|(i, m)| !m || want[i] == got[i])
}

/// How a harness closure is allocated and prepared.
#[derive(Clone, Copy, Debug)]
pub enum Prep {
    /// `ffi_closure_alloc(sizeof(ffi_closure))` + `ffi_prep_closure_loc`.
    Loc,
    /// `ffi_prep_closure` (the deprecated form without codeloc).
    NonLoc,
    /// `ffi_closure_alloc(sizeof(ffi_closure) + extra)` + `ffi_prep_closure_loc`.
    Extra(usize),
}

/// A libffi cif and one of our closures for it, with a recording handler.
pub struct Prepared {
    pub sig: Sig,
    pub cif: Box<ffi_cif>,
    pub atypes: Vec<*mut ffi_type>,
    pub rtype: *mut ffi_type,
    pub closure: *mut ffi_closure,
    pub code: *mut c_void,
    pub ctx: *mut Ctx,
}

/// libffi's `ffi_prep_cif` / `ffi_prep_cif_var` for `sig`.
pub fn prep_cif(sig: &Sig) -> (Box<ffi_cif>, Vec<*mut ffi_type>, *mut ffi_type) {
    let mut atypes: Vec<*mut ffi_type> = sig.args.iter().map(T::ffi).collect();
    let rtype = sig.ret.ffi();
    // SAFETY: a zeroed cif is what ffi_prep_cif fills in; the type arrays
    // live as long as the returned Vec (and the leaked types forever).
    let mut cif: Box<ffi_cif> = Box::new(unsafe { std::mem::zeroed() });
    let n = sig.args.len() as u32;
    let st = unsafe {
        match sig.nfixed {
            None => ffi_prep_cif(&mut *cif, sig.abi, n, rtype, atypes.as_mut_ptr()),
            Some(k) => {
                ffi_prep_cif_var(&mut *cif, sig.abi, k as u32, n, rtype, atypes.as_mut_ptr())
            }
        }
    };
    assert_eq!(st, ffi_status_FFI_OK, "libffi ffi_prep_cif refused {sig}");
    // Our layout agrees with libffi's.
    for (t, &p) in sig
        .args
        .iter()
        .chain([&sig.ret])
        .zip(atypes.iter().chain([&rtype]))
    {
        // SAFETY: prepared types.
        let (size, align) = unsafe { ((*p).size, (*p).alignment as usize) };
        if *t != T::Void {
            assert_eq!((size, align), (t.size(), t.align()), "layout of {t}");
        }
    }
    (cif, atypes, rtype)
}

impl Prepared {
    pub fn new(sig: &Sig) -> Prepared {
        Prepared::with(sig, Prep::Loc)
    }

    pub fn with(sig: &Sig, how: Prep) -> Prepared {
        let (mut cif, atypes, rtype) = prep_cif(sig);
        let ctx = Box::into_raw(Box::new(Ctx {
            args: sig.args.clone(),
            ret: sig.ret.clone(),
            calls: 0,
            got: vec![],
            cif: ptr::null_mut(),
            rvalue: ptr::null_mut(),
            narrow_ret: false,
        }));
        let size = size_of::<ffi_closure>()
            + match how {
                Prep::Extra(n) => n,
                _ => 0,
            };
        let mut code = ptr::null_mut();
        // SAFETY: the C API's contract: a cif that outlives the closure
        // (boxed in Prepared), a handler of libffi's type, our Ctx.
        unsafe {
            let cl = capi::ffi_closure_alloc(size, &mut code) as *mut ffi_closure;
            assert!(
                !cl.is_null() && !code.is_null(),
                "ffi_closure_alloc({size})"
            );
            let cifp = (&raw mut *cif).cast::<FfiCif>();
            let st = match how {
                Prep::NonLoc => capi::ffi_prep_closure(cl.cast(), cifp, Some(record), ctx.cast()),
                _ => capi::ffi_prep_closure_loc(cl.cast(), cifp, Some(record), ctx.cast(), code),
            };
            assert_eq!(st, 0, "ffi_prep_closure_loc refused {sig}");
            Prepared {
                sig: sig.clone(),
                cif,
                atypes,
                rtype,
                closure: cl,
                code,
                ctx,
            }
        }
    }

    /// Prepares the same cif (same address) again with `sig`'s types
    /// through libffi's `ffi_prep_cif`, and the same closure on it: a plan
    /// cached for the cif's address must not outlive the types it was made
    /// for.
    pub fn reprep(&mut self, sig: &Sig) {
        assert!(sig.nfixed.is_none(), "reprep takes a fixed-argument cif");
        let mut atypes: Vec<*mut ffi_type> = sig.args.iter().map(T::ffi).collect();
        let rtype = sig.ret.ffi();
        // SAFETY: the cif box is ours; the new type arrays are kept in self.
        let st = unsafe {
            ffi_prep_cif(
                &mut *self.cif,
                sig.abi,
                sig.args.len() as u32,
                rtype,
                atypes.as_mut_ptr(),
            )
        };
        assert_eq!(st, ffi_status_FFI_OK, "libffi ffi_prep_cif refused {sig}");
        self.atypes = atypes;
        self.rtype = rtype;
        self.sig = sig.clone();
        let ctx = self.ctx();
        ctx.args = sig.args.clone();
        ctx.ret = sig.ret.clone();
        // SAFETY: our closure, re-prepared on the cif it already had.
        let st = unsafe {
            let cifp = (&raw mut *self.cif).cast::<FfiCif>();
            capi::ffi_prep_closure_loc(
                self.closure.cast(),
                cifp,
                Some(record),
                self.ctx.cast(),
                self.code,
            )
        };
        assert_eq!(st, 0, "ffi_prep_closure_loc refused {sig}");
    }

    #[allow(clippy::mut_from_ref)]
    pub fn ctx(&self) -> &mut Ctx {
        // SAFETY: the Ctx lives until drop; the handler only runs inside
        // calls made through `self`, never concurrently with this borrow.
        unsafe { &mut *self.ctx }
    }

    /// The graffiti argument values.
    pub fn values(&self, invert: bool) -> Vec<Buf> {
        let args = &self.sig.args;
        args.iter()
            .enumerate()
            .map(|(i, t)| Buf::new(&arg_value(i, t, invert)))
            .collect()
    }

    /// Calls the closure through libffi's `ffi_call` with `vals`; returns
    /// the return buffer (prefilled with 0xa5).
    pub fn ffi_call(&self, vals: &mut [Buf]) -> Buf {
        let mut av: Vec<*mut c_void> = vals.iter_mut().map(Buf::ptr).collect();
        let mut rbuf = Buf::filled(self.sig.ret.size().max(8).next_multiple_of(16) + 16, 0xa5);
        // SAFETY: the cif describes the closure; avalue and rvalue are
        // sized for it.
        unsafe {
            let cif = (&raw const *self.cif).cast_mut();
            let f = std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(self.code);
            ffi_call(cif, Some(f), rbuf.ptr(), av.as_mut_ptr());
        }
        rbuf
    }

    /// Checks what the handler saw against `vals` and the return value
    /// the caller got, `rbuf` (from ffi_call: narrow integers widened, or
    /// from a direct call: `widened == false`). Errors describe every
    /// mismatch.
    pub fn verify(&self, vals: &[Buf], rbuf: &[u8], widened: bool) -> Result<(), String> {
        let ctx = self.ctx();
        let mut errs = Vec::new();
        if ctx.calls != 1 {
            errs.push(format!("handler ran {} times, want 1", ctx.calls));
        } else {
            if ctx.cif != (&raw const *self.cif).cast_mut().cast() {
                errs.push("handler got a different cif".into());
            }
            for (i, (t, v)) in self.sig.args.iter().zip(vals).enumerate() {
                let m = t.mask();
                if !same(v.bytes(), &ctx.got[i], &m) {
                    errs.push(format!(
                        "arg {i} ({t}): want {}, got {}",
                        hex(v.bytes(), &m),
                        hex(&ctx.got[i], &m)
                    ));
                }
            }
        }
        let sent: Vec<Vec<u8>> = vals.iter().map(|v| v.bytes().to_vec()).collect();
        let mut want = ret_value(&self.sig.ret, &self.sig.args, &sent);
        let mut mask = self.sig.ret.mask();
        if let (Some(signed), true) = (self.sig.ret.narrow_int(), widened) {
            want = widen(&want, signed);
            mask = vec![true; 8];
        }
        let got = &rbuf[..want.len()];
        if !same(&want, got, &mask) {
            errs.push(format!(
                "return ({}): want {}, got {}",
                self.sig.ret,
                hex(&want, &mask),
                hex(got, &mask)
            ));
        }
        ctx.calls = 0;
        if errs.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", self.sig, errs.join("; ")))
        }
    }

    /// One ffi_call with graffiti (`invert` picks the pattern), verified.
    pub fn try_check(&self, invert: bool) -> Result<(), String> {
        let mut vals = self.values(invert);
        let r = self.ffi_call(&mut vals);
        self.verify(&vals, r.bytes(), true)
    }

    /// Two verified ffi_calls, with both graffiti patterns.
    pub fn check(&self) {
        for invert in [false, true] {
            if let Err(e) = self.try_check(invert) {
                panic!("{e}");
            }
        }
    }

    /// Calls the closure with `call(code, values)` (a direct call from
    /// Rust with the real types) and verifies arguments and the return
    /// value `R` (whose size must be the return type's).
    pub fn direct<R: Copy>(&self, call: impl Fn(*mut c_void, &[Buf]) -> R) {
        let rsize = if self.sig.ret == T::Void {
            0
        } else {
            self.sig.ret.size()
        };
        assert_eq!(size_of::<R>(), rsize, "return type size for {}", self.sig);
        for invert in [false, true] {
            let vals = self.values(invert);
            let r = call(self.code, &vals);
            // SAFETY: viewing a Copy value's bytes.
            let rb = unsafe { std::slice::from_raw_parts((&raw const r).cast::<u8>(), rsize) };
            if let Err(e) = self.verify(&vals, rb, false) {
                panic!("direct call: {e}");
            }
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: our closure, freed once; the Ctx came from Box::into_raw.
        unsafe {
            capi::ffi_closure_free(self.closure.cast());
            drop(Box::from_raw(self.ctx));
        }
    }
}

/// Prepares and checks each signature (two ffi_calls each).
pub fn check_all(sigs: &[Sig]) {
    for s in sigs {
        Prepared::new(s).check();
    }
}

/// Whether libffi 3.4.4's `ffi_call` itself corrupts this System V call:
/// `ffi_call_int` (src/x86/ffi64.c) copies an INTEGER eightbyte with
/// `memcpy(&reg_args->gpr[gprcount], a, size)` where `size` is the rest of
/// the struct (up to 16 bytes), so a struct whose first eightbyte goes in
/// the last GPR (r9) and whose second is SSE spills its second eightbyte
/// over `sse[0]`, clobbering xmm0 when an earlier argument uses it (fixed
/// in libffi 3.5 with `size <= 8 ? size : 8`). Independent of statictramp's
/// classifier: a minimal psABI classification.
pub fn libffi344_clobbers_xmm0(sig: &Sig) -> bool {
    if sig.abi != UNIX64 {
        return false;
    }
    let mut gpr = usize::from(matches!(&sig.ret, T::St(_)) && eightbytes(&sig.ret).is_none());
    let mut sse = 0;
    for t in &sig.args {
        let Some(cls) = eightbytes(t) else { continue };
        if cls.contains(&Cls::X87) {
            continue;
        }
        let g = cls.iter().filter(|c| **c == Cls::Int).count();
        let s = cls.iter().filter(|c| **c == Cls::Sse).count();
        if gpr + g > 6 || sse + s > 8 {
            continue;
        }
        if cls.len() == 2 && cls[0] == Cls::Int && cls[1] == Cls::Sse && gpr == 5 && sse > 0 {
            return true;
        }
        gpr += g;
        sse += s;
    }
    false
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cls {
    None,
    Int,
    Sse,
    X87,
    Mem,
}

/// psABI eightbyte classes of a value; `None` for MEMORY.
fn eightbytes(t: &T) -> Option<Vec<Cls>> {
    // Stated layouts are classified by libffi's walk, which this model
    // does not follow; their tests keep INTEGER+SSE ones out of r9.
    if t.size() > 16 || matches!(t, T::Lay(_)) {
        return None;
    }
    let mut cls = vec![Cls::None; t.size().div_ceil(8)];
    for l in t.leaves() {
        let c = match l.ty {
            T::F32 | T::F64 => Cls::Sse,
            T::LD => Cls::X87,
            _ => Cls::Int,
        };
        let w = l.off / 8;
        let words: &[usize] = if *l.ty == T::LD { &[w, w + 1] } else { &[w] };
        for &w in words {
            let old = cls[w];
            cls[w] = match (old, c) {
                (a, b) if a == b => a,
                (Cls::None, x) | (x, Cls::None) => x,
                (Cls::Mem, _) | (_, Cls::Mem) => Cls::Mem,
                (Cls::Int, _) | (_, Cls::Int) => Cls::Int,
                (Cls::X87, _) | (_, Cls::X87) => Cls::Mem,
                _ => Cls::Sse,
            };
        }
    }
    if cls.contains(&Cls::Mem) {
        None
    } else {
        Some(cls)
    }
}

/// A deterministic xorshift64* generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, X>(&mut self, xs: &'a [X]) -> &'a X {
        &xs[self.below(xs.len())]
    }
}
