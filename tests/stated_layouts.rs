//! Structs whose `ffi_type` states a size and alignment other than the C
//! layout of its elements, as CPython's ctypes builds them
//! (`Modules/_ctypes/stgdict.c`): `_pack_` structures, unions (every member
//! an element) and structures with bitfields (every bitfield an element of
//! its declared type). libffi's `ffi_prep_cif` takes such a layout as
//! stated and its `ffi_call` passes the value by libffi's own walk of the
//! elements; the system libffi's `ffi_call` calls our closures here with
//! them as arguments and returns, and every byte the caller's value carries
//! must reach the handler, and every byte of the return value the caller.
//!
//! Before statictramp accepted stated layouts, every `Prepared::new` here
//! failed: `ffi_prep_closure_loc` answered FFI_BAD_TYPEDEF.
//!
//! Signatures keep INTEGER+SSE structs out of r9 after an SSE argument:
//! libffi 3.4.4's `ffi_call` itself clobbers xmm0 there (see
//! `common::libffi344_clobbers_xmm0`, which does not model stated layouts).
// Stated layouts under the x86_64 conventions; i386 has abi/xcheck/i386.
#![cfg(target_arch = "x86_64")]
#![allow(clippy::missing_safety_doc)]

mod common;

use T::*;
use common::*;

/// `_pack_ = 1` {char, int, double}: 13 bytes; libffi's walk puts the int
/// at 4 and the double at 8: INTEGER, SSE.
fn packed13() -> T {
    packed("packed{char,int,double}", &[S8, S32, F64])
}

/// `_pack_ = 1` {char, double x 4}: 33 bytes, MEMORY.
fn packed33() -> T {
    packed("packed{char,double[4]}", &[S8, F64, F64, F64, F64])
}

/// `_pack_ = 1` {char, double, double}: 17 bytes, MEMORY.
fn packed17() -> T {
    packed("packed{char,double,double}", &[S8, F64, F64])
}

/// `_pack_ = 1` {char, long long}: 9 bytes, INTEGER, INTEGER.
fn packed9() -> T {
    packed("packed{char,llong}", &[S8, S64])
}

/// `_pack_ = 1` {char, short}: 3 bytes.
fn packed3() -> T {
    packed("packed{char,short}", &[S8, S16])
}

/// `_pack_ = 1` {char, {int, int}}: 9 bytes; the inner struct walks from 4.
fn packed_nested() -> T {
    packed("packed{char,{int,int}}", &[S8, st(&[S32, S32])])
}

/// `_pack_ = 1` {int, {float, float, float}}: 16 bytes, INTEGER, SSE.
fn packed_ifff() -> T {
    packed(
        "packed{int,{float,float,float}}",
        &[S32, st(&[F32, F32, F32])],
    )
}

/// union {int; double}: INTEGER.
fn union_id() -> T {
    union("union{int,double}", &[S32, F64])
}

/// union {double; int}: SSE (the int walks past the 8 bytes), in xmm
/// where a C compiler would use a GPR.
fn union_di() -> T {
    union("union{double,int}", &[F64, S32])
}

/// union {char[3]; short}: 4 bytes, INTEGER.
fn union_cs() -> T {
    union("union{char[3],short}", &[array(S8, 3), S16])
}

/// union {double; long long[2]}: 16 bytes, SSE, INTEGER.
fn union_dl() -> T {
    union("union{double,llong[2]}", &[F64, array(S64, 2)])
}

/// union {int; int[4]}: the array walks from 4 over three eightbytes:
/// MEMORY (a C compiler would use two GPRs).
fn union_i4() -> T {
    union("union{int,int[4]}", &[S32, array(S32, 4)])
}

/// union {float; double}: its eightbyte holds only a float at offset 0 in
/// libffi's walk (SSESF), so libffi's `ffi_call` sends only bytes 0..4 as
/// an argument (ffi64.c: `memcpy(&reg_args->sse[ssecount++].i32, a, 4)`);
/// all 8 come back as a return.
fn union_fd() -> T {
    lay_data("union{float,double}", &[F32, F64], 8, 8, 0..4)
}

/// struct {unsigned a:3, b:5, c:24}: one uint32 of storage, three elements.
fn bits_u32() -> T {
    lay("bits{u32 a:3,b:5,c:24}", &[U32, U32, U32], 4, 4)
}

/// struct {float f; int a:3, b:3; float g}: ctypes puts a and b in one int
/// at 4 and g at 8 (12 bytes); libffi's walk puts b at 8 and g at 12:
/// INTEGER, INTEGER.
fn bits_fabg() -> T {
    lay(
        "bits{float,int a:3,b:3,float}",
        &[F32, S32, S32, F32],
        12,
        4,
    )
}

/// struct {double x; uint64 a:1, b:63}: 16 bytes, SSE, INTEGER.
fn bits_xab() -> T {
    lay("bits{double,u64 a:1,b:63}", &[F64, U64, U64], 16, 8)
}

/// `_pack_ = 1` struct {uint8 a:4, b:4; int x}: 5 bytes.
fn bits_packed() -> T {
    lay("packed bits{u8 a:4,b:4,int}", &[U8, U8, S32], 5, 1)
}

/// A ctypes structure without `_fields_` (a zeroed, void `ffi_type`) as
/// the first field of {E e; int x}.
fn ctypes_empty_field() -> T {
    lay("{E,int}", &[Zeroed, S32], 4, 4)
}

/// {long long; E; double}: alignment 0 restarts libffi's walk at 0, so the
/// double merges into eightbyte 0 and eightbyte 1 is NO_CLASS: `ffi_call`
/// sends one GPR and nothing for bytes 8..16 (libffi's own closure would
/// take two GPRs and misread every later integer argument).
fn ctypes_empty_restart() -> T {
    lay_data("{llong,E,double}", &[S64, Zeroed, F64], 16, 8, 0..8)
}

/// {char} stated as 16 bytes, 8-aligned: INTEGER, NO_CLASS.
fn wide_char() -> T {
    lay_data("{char}/16", &[U8], 16, 8, 0..1)
}

/// `_pack_ = 1` {char, {int, int}} whose inner struct's `ffi_type` was left
/// at size 0 (a client that relied on `ffi_prep_cif` to lay it out):
/// `ffi_prep_cif` lays out only argument and return types, so libffi walks
/// the inner struct as size 0, alignment 0: INTEGER, NO_CLASS, one GPR.
fn packed_unlaid_nested() -> T {
    let unlaid = lay("{int,int} of size 0", &[S32, S32], 0, 0);
    lay_data("packed{char,unlaid}", &[S8, unlaid], 9, 1, 0..8)
}

fn all_types() -> Vec<T> {
    vec![
        packed13(),
        packed33(),
        packed17(),
        packed9(),
        packed3(),
        packed_nested(),
        packed_ifff(),
        union_id(),
        union_di(),
        union_cs(),
        union_dl(),
        union_i4(),
        union_fd(),
        bits_u32(),
        bits_fabg(),
        bits_xab(),
        bits_packed(),
        ctypes_empty_field(),
        ctypes_empty_restart(),
        wide_char(),
        packed_unlaid_nested(),
    ]
}

#[test]
fn stated_layouts_as_the_only_argument_and_return() {
    for t in all_types() {
        check_all(&[
            Sig::sysv(std::slice::from_ref(&t), t.clone()),
            Sig::sysv(std::slice::from_ref(&t), S32),
            Sig::sysv(&[], t.clone()),
        ]);
    }
}

#[test]
fn stated_layouts_between_scalars() {
    // Registers taken by a stated layout decide where the next arguments
    // are; each type between integers and floats, returned too.
    for t in all_types() {
        check_all(&[
            Sig::sysv(&[S32, t.clone(), F64, t.clone(), S8, F32], t.clone()),
            Sig::sysv(&[t.clone(), S64, t.clone(), F64, U16], F64),
            Sig::sysv(&[F32, F64, t.clone(), Ptr], U8),
        ]);
    }
}

#[test]
fn stated_layouts_when_registers_run_out() {
    // A struct needing more registers than remain goes to the stack whole
    // (at its stated alignment, at least 8); later arguments still use
    // registers.
    for t in all_types() {
        let mut five = rep(S64, 5);
        five.extend([t.clone(), S32, t.clone()]);
        let mut seven = rep(F64, 7);
        seven.extend([t.clone(), F32, t.clone(), S32]);
        let mut eight = rep(F64, 8);
        eight.extend([t.clone(), S32, F32]);
        let mut six = rep(S64, 6);
        six.extend([t.clone(), F64, t.clone()]);
        check_all(&[
            Sig::sysv(&five, t.clone()),
            Sig::sysv(&seven, S64),
            Sig::sysv(&eight, t.clone()),
            Sig::sysv(&six, S16),
        ]);
    }
}

#[test]
fn stated_layouts_mixed() {
    check_all(&[
        Sig::sysv(
            &[packed13(), union_id(), bits_u32(), union_di(), packed9()],
            packed13(),
        ),
        Sig::sysv(
            &[union_dl(), bits_fabg(), packed_ifff(), union_fd(), S32],
            union_dl(),
        ),
        Sig::sysv(
            &[
                ctypes_empty_restart(),
                S32,
                wide_char(),
                S32,
                union_i4(),
                S8,
            ],
            bits_xab(),
        ),
        Sig::sysv(
            &[packed33(), bits_packed(), packed17(), packed3(), F64],
            packed33(),
        ),
    ]);
}

#[test]
fn stated_layouts_win64() {
    // FFI_WIN64 / FFI_GNUW64 go by the stated size alone: 1, 2, 4, 8 bytes
    // by value, else by reference (ffiw64.c).
    for abi in [WIN64, GNUW64] {
        for t in all_types() {
            check_all(&[
                Sig::new(abi, &[t.clone(), S32, t.clone(), F64, t.clone()], t.clone()),
                Sig::new(abi, &[F32, t.clone()], S64),
            ]);
        }
        check_all(&[Sig::new(
            abi,
            &[packed13(), union_id(), bits_u32(), union_fd(), packed3()],
            union_id(),
        )]);
    }
}

#[test]
fn a_cif_reprepared_with_another_stated_layout_gets_a_new_plan() {
    // Plans are cached per thread by cif address and confirmed by comparing
    // the cif's types with the cached signature; a struct of stated layout
    // must be compared by its stated size and alignment and its elements.
    let elems = [S8, S32, F64];
    let as_24 = lay("{char,int,double}/24", &elems, 24, 8); // MEMORY
    let as_16 = lay("{char,int,double}/16", &elems, 16, 1); // INTEGER, SSE
    // {double, E, long long}: E (alignment 0) restarts the walk, the long
    // long merges into eightbyte 0: INTEGER. With libffi's ffi_type_void
    // (size 1, alignment 1) the long long walks to 16: SSE.
    let zeroed_void = lay_data("{double,E,llong}", &[F64, Zeroed, S64], 16, 8, 0..8);
    let libffi_void = lay_data("{double,void,llong}", &[F64, Void, S64], 16, 8, 0..8);
    let sigs = [
        Sig::sysv(&[packed13(), S32], packed13()),
        Sig::sysv(&[as_24.clone(), S32], as_24),
        Sig::sysv(&[packed13(), S32], packed13()),
        Sig::sysv(&[as_16.clone(), S32], as_16),
        Sig::sysv(&[st(&elems), S32], st(&elems)),
        Sig::sysv(&[zeroed_void.clone(), S32], S32),
        Sig::sysv(&[libffi_void.clone(), S32], S32),
        Sig::sysv(&[packed13(), S32], packed13()),
    ];
    let mut p = Prepared::new(&sigs[0]);
    p.check();
    for s in &sigs[1..] {
        p.reprep(s);
        p.check();
    }
}
