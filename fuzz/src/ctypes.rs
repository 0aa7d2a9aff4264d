//! Structs as CPython's ctypes describes them to libffi
//! (`Modules/_ctypes/stgdict.c` and `cfield.c`, 3.11): every Structure and
//! Union states its size and alignment, computed by ctypes' own rules
//! (`_pack_`, union members overlapping, GCC-style bitfield storage), and
//! lists one element per field: a bitfield as its declared type, a union
//! member as itself, an array as a struct of its elements when the whole
//! is at most 16 bytes and as a pointer otherwise. Zero-sized members are
//! what ctypes makes of a Structure without `_fields_` (a zeroed
//! `ffi_type`), of `_fields_ = []` (size 0, alignment 1, no elements) and
//! of a zero-length array (size 0, no elements).

use crate::generate::{INTS, Ty, code};
use crate::source::Source;

/// One entry of `_fields_`.
enum Field {
    Plain(Ty),
    Array(Ty, usize),
    /// An integer type and its width in bits.
    Bits(Ty, usize),
}

/// ctypes' `sizeof` and `alignment` of a field's type (the stated layout
/// of a nested Structure; 0/0 for one without `_fields_`).
fn ctype_layout(f: &Field) -> (usize, usize) {
    match f {
        Field::Plain(t) | Field::Bits(t, _) => t.layout(),
        Field::Array(t, n) => (n * t.size(), t.align()),
    }
}

/// The layout `PyCStructUnionType_update_stgdict` computes (no base
/// class; GCC bitfield rules, little-endian) and the `ffi_type` elements
/// it lists.
fn stgdict(fields: &[Field], pack: usize, union: bool) -> Ty {
    let (mut size, mut offset, mut align) = (0usize, 0usize, 0usize);
    let (mut total_align, mut union_size) = (1usize, 0usize);
    // The open bitfield's storage in bits and the next bit in it.
    let (mut field_bits, mut bitofs) = (0usize, 0usize);
    for f in fields {
        let (fsize, falign) = ctype_layout(f);
        let bitsize = match f {
            Field::Bits(_, b) => *b,
            _ => 0,
        };
        if union {
            size = 0;
            offset = 0;
            align = 0;
        }
        // PyCField_FromDesc.
        if bitsize > 0
            && field_bits > 0
            && fsize * 8 <= field_bits
            && bitofs + bitsize <= field_bits
        {
            // Continue the open storage.
            bitofs += bitsize;
        } else if bitsize > 0
            && field_bits > 0
            && fsize * 8 >= field_bits
            && bitofs + bitsize <= fsize * 8
        {
            // Expand the open storage to this type.
            offset += fsize - field_bits / 8;
            size += fsize - field_bits / 8;
            field_bits = fsize * 8;
            bitofs += bitsize;
        } else {
            // A new bitfield, or not one.
            bitofs = bitsize;
            field_bits = if bitsize > 0 { fsize * 8 } else { 0 };
            let a = if pack > 0 { pack.min(falign) } else { falign };
            if a > 0 && offset % a != 0 {
                let delta = a - offset % a;
                size += delta;
                offset += delta;
            }
            size += fsize;
            offset += fsize;
            align = a;
        }
        if union {
            union_size = union_size.max(size);
        }
        total_align = total_align.max(align);
    }
    if union {
        size = union_size;
    }
    size = size.div_ceil(total_align) * total_align;
    // Arrays: real elements only in a struct of at most 16 bytes (bpo-22273).
    let arrays_inline = size <= 16;
    let elems = fields
        .iter()
        .map(|f| match f {
            Field::Plain(t) | Field::Bits(t, _) => t.clone(),
            Field::Array(t, n) if arrays_inline => Ty::Struct {
                elems: vec![t.clone(); *n],
                stated: Some((n * t.size(), t.align())),
            },
            Field::Array(..) => Ty::scalar(code::POINTER),
        })
        .collect();
    Ty::Struct {
        elems,
        stated: Some((size, total_align)),
    }
}

/// A zero-sized ctypes type: a Structure without `_fields_`, one with
/// `_fields_ = []`, or a zero-length array of int inside a small struct.
pub fn zero_sized(r: &mut dyn Source) -> Ty {
    match r.below(3) {
        0 => Ty::Zeroed,
        1 => Ty::Struct {
            elems: Vec::new(),
            stated: Some((0, 1)),
        },
        _ => Ty::Struct {
            elems: Vec::new(),
            stated: Some((0, 4)),
        },
    }
}

/// A ctypes scalar: c_int8 ... c_uint64, c_void_p, c_float, c_double and,
/// where the ABI has it, c_longdouble.
fn ctype_scalar(r: &mut dyn Source, x87: bool) -> Ty {
    match r.below(16) {
        0..=9 => Ty::scalar(INTS[r.below(INTS.len() as u64) as usize]),
        10..=11 => Ty::scalar(code::FLOAT),
        12..=13 => Ty::scalar(code::DOUBLE),
        14 if x87 => Ty::scalar(code::LONGDOUBLE),
        _ => Ty::scalar(code::SINT32),
    }
}

/// A random ctypes Structure or Union: plain, `_pack_` 1, 2 or 4, a
/// Union, or a Structure with bitfields (packed at times).
pub fn structure(r: &mut dyn Source, depth: u32, x87: bool) -> Ty {
    let kind = r.below(4);
    let pack = match kind {
        1 => [1, 2, 4][r.below(3) as usize],
        3 if r.chance(3) => 1,
        _ => 0,
    };
    let union = kind == 2;
    let n = 1 + r.below(5) as usize;
    let fields: Vec<Field> = (0..n)
        .map(|_| {
            if kind == 3 && !r.chance(3) {
                // Integer types only (not c_void_p).
                let t = Ty::scalar(INTS[r.below(8) as usize]);
                let bits = 1 + r.below(t.size() as u64 * 8) as usize;
                return Field::Bits(t, bits);
            }
            match r.below(16) {
                0 => Field::Plain(Ty::Zeroed),
                1 => Field::Plain(Ty::Struct {
                    elems: Vec::new(),
                    stated: Some((0, 1)),
                }),
                2 | 3 => {
                    let e = if depth < 1 && r.chance(4) {
                        structure(r, depth + 1, x87)
                    } else {
                        ctype_scalar(r, x87)
                    };
                    // Zero-length arrays now and then.
                    let n = if r.chance(8) { 0 } else { 1 + r.below(4) };
                    Field::Array(e, n as usize)
                }
                4 | 5 if depth < 1 => Field::Plain(structure(r, depth + 1, x87)),
                _ => Field::Plain(ctype_scalar(r, x87)),
            }
        })
        .collect();
    stgdict(&fields, pack, union)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(code: u16) -> Ty {
        Ty::scalar(code)
    }
    fn plain(codes: &[u16]) -> Vec<Field> {
        codes.iter().map(|&c| Field::Plain(s(c))).collect()
    }
    fn bits(list: &[(u16, usize)]) -> Vec<Field> {
        list.iter().map(|&(c, b)| Field::Bits(s(c), b)).collect()
    }
    fn layout(fields: &[Field], pack: usize, union: bool) -> (usize, usize) {
        stgdict(fields, pack, union).layout()
    }

    /// Sizes and alignments CPython 3.11's ctypes gives (`sizeof` and
    /// `alignment` of each Structure or Union, asked of python3 3.11 on
    /// x86_64 Linux).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn layouts_are_ctypes_own() {
        use code::*;
        let empty = Ty::Struct {
            elems: Vec::new(),
            stated: Some((0, 1)),
        };
        // _pack_ = 1 {c_char, c_int, c_double}
        assert_eq!(layout(&plain(&[SINT8, SINT32, DOUBLE]), 1, false), (13, 1));
        // _pack_ = 2 {c_char, c_double}
        assert_eq!(layout(&plain(&[SINT8, DOUBLE]), 2, false), (10, 2));
        // {c_uint32 a:3, b:5, c:24}
        assert_eq!(
            layout(&bits(&[(UINT32, 3), (UINT32, 5), (UINT32, 24)]), 0, false),
            (4, 4)
        );
        // {c_float f; c_int a:3, b:3; c_float g}
        let mut f = plain(&[FLOAT]);
        f.extend(bits(&[(SINT32, 3), (SINT32, 3)]));
        f.extend(plain(&[FLOAT]));
        assert_eq!(layout(&f, 0, false), (12, 4));
        // _pack_ = 1 {c_uint8 a:4, b:4; c_int x}
        let mut f = bits(&[(UINT8, 4), (UINT8, 4)]);
        f.extend(plain(&[SINT32]));
        assert_eq!(layout(&f, 1, false), (5, 1));
        // {c_uint8 a:4; c_uint16 b:4}: the storage expands, alignment stays.
        assert_eq!(layout(&bits(&[(UINT8, 4), (UINT16, 4)]), 0, false), (2, 1));
        // {c_int16 a:9; c_int32 b:20}
        assert_eq!(
            layout(&bits(&[(SINT16, 9), (SINT32, 20)]), 0, false),
            (4, 2)
        );
        // {c_uint8 a:7; c_uint8 b:3}: a new storage unit.
        assert_eq!(layout(&bits(&[(UINT8, 7), (UINT8, 3)]), 0, false), (2, 1));
        // {c_double x; c_uint64 a:1, b:63}
        let mut f = plain(&[DOUBLE]);
        f.extend(bits(&[(UINT64, 1), (UINT64, 63)]));
        assert_eq!(layout(&f, 0, false), (16, 8));
        // Union {c_int; c_double}, Union {c_char * 3; c_short}
        assert_eq!(layout(&plain(&[SINT32, DOUBLE]), 0, true), (8, 8));
        let f = vec![Field::Array(s(SINT8), 3), Field::Plain(s(SINT16))];
        assert_eq!(layout(&f, 0, true), (4, 2));
        // {E e; c_int x} with E a Structure without _fields_.
        let f = vec![Field::Plain(Ty::Zeroed), Field::Plain(s(SINT32))];
        assert_eq!(layout(&f, 0, false), (4, 4));
        // {E2 e; c_char x} with E2._fields_ = [].
        let f = vec![Field::Plain(empty), Field::Plain(s(SINT8))];
        assert_eq!(layout(&f, 0, false), (1, 1));
        // {c_int * 0; c_char} and {c_char; c_int * 0}
        let f = vec![Field::Array(s(SINT32), 0), Field::Plain(s(SINT8))];
        assert_eq!(layout(&f, 0, false), (4, 4));
        let f = vec![Field::Plain(s(SINT8)), Field::Array(s(SINT32), 0)];
        assert_eq!(layout(&f, 0, false), (4, 4));
    }

    /// The `ffi_type` elements: an array is a struct of its elements in a
    /// struct of at most 16 bytes, a pointer in a larger one.
    #[test]
    fn arrays_are_elements_or_a_pointer() {
        let small = stgdict(&[Field::Array(s(code::UINT16), 3)], 0, false);
        let Ty::Struct { elems, .. } = &small else {
            unreachable!()
        };
        assert_eq!(
            elems[0],
            Ty::Struct {
                elems: vec![s(code::UINT16); 3],
                stated: Some((6, 2)),
            }
        );
        let big = stgdict(&[Field::Array(s(code::UINT16), 9)], 0, false);
        let Ty::Struct { elems, stated } = &big else {
            unreachable!()
        };
        assert_eq!(
            (elems[0].clone(), *stated),
            (s(code::POINTER), Some((18, 2)))
        );
    }
}
