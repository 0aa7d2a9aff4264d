//! Closure life cycle through the C API: bad input, allocation corner
//! cases, foreign pointers, misuse that must abort (in child processes),
//! closures prepared on memory statictramp does not own, re-prep.
mod support;

use libffi_sys::*;
use statictramp::capi;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use support::*;

const FFI_OK: u32 = 0;
const FFI_BAD_TYPEDEF: u32 = 1;
const FFI_BAD_ABI: u32 = 2;
const FFI_BAD_ARGTYPE: u32 = 3;

/// Tests here free records and check what happens to them afterwards; a
/// record freed by one test must not be reused by another meanwhile.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const CHILD_LIMIT: Duration = Duration::from_secs(60);

fn h(f: Handler) -> Option<Handler> {
    Some(f)
}

#[test]
fn null_cif_closure_or_handler_is_bad_argtype() {
    let _g = serial();
    let cif = cif_int_int_int();
    let (cl, code) = alloc(size_of::<ffi_closure>()).expect("alloc");
    unsafe {
        assert_eq!(
            prep(cl, null_mut(), h(add_plus_ud), null_mut(), code),
            FFI_BAD_ARGTYPE,
            "NULL cif"
        );
        assert_eq!(
            prep(null_mut(), cif, h(add_plus_ud), null_mut(), code),
            FFI_BAD_ARGTYPE,
            "NULL closure"
        );
        assert_eq!(
            prep(null_mut(), null_mut(), None, null_mut(), null_mut()),
            FFI_BAD_ARGTYPE,
            "all NULL"
        );
        assert_eq!(
            prep(cl, cif, None, null_mut(), code),
            FFI_BAD_ARGTYPE,
            "NULL fun"
        );
        // ffi_prep_closure (no _loc) takes the same path.
        assert_eq!(
            capi::ffi_prep_closure(cl.cast(), cif.cast(), None, null_mut()),
            FFI_BAD_ARGTYPE,
            "ffi_prep_closure with NULL fun"
        );
        // An interior pointer into a record is not a closure.
        let interior = cl.byte_add(8);
        assert_eq!(
            prep(interior, cif, h(add_plus_ud), null_mut(), code),
            FFI_BAD_ARGTYPE,
            "interior pointer"
        );
        // The refusals left the closure usable.
        assert_eq!(prep(cl, cif, h(add_plus_ud), ud(5), code), FFI_OK);
        assert_eq!(call_ii(code, 2, 3), 10);
        free(cl);
    }
}

/// libffi's ABI numbers on this architecture (libffi-sys mirrors each
/// ffitarget.h): the named ones are accepted, everything else is
/// FFI_BAD_ABI: `FFI_FIRST_ABI`, `FFI_LAST_ABI` and beyond, and on i386
/// the unused 2 (ffi_prep_cif lets it through its range check,
/// ffi_prep_cif_machdep refuses it).
#[cfg(target_arch = "x86_64")]
const ABIS: (&[u32], &[u32]) = (
    &[
        0,
        ffi_abi_FFI_FIRST_ABI,
        ffi_abi_FFI_LAST_ABI,
        6,
        99,
        u32::MAX,
    ],
    &[ffi_abi_FFI_UNIX64, ffi_abi_FFI_WIN64, ffi_abi_FFI_GNUW64],
);
#[cfg(target_arch = "x86")]
const ABIS: (&[u32], &[u32]) = (
    &[ffi_abi_FFI_FIRST_ABI, 2, ffi_abi_FFI_LAST_ABI, 99, u32::MAX],
    &[
        ffi_abi_FFI_SYSV,
        ffi_abi_FFI_THISCALL,
        ffi_abi_FFI_FASTCALL,
        ffi_abi_FFI_STDCALL,
        ffi_abi_FFI_PASCAL,
        ffi_abi_FFI_REGISTER,
        ffi_abi_FFI_MS_CDECL,
    ],
);

#[test]
fn unknown_abi_is_bad_abi() {
    let _g = serial();
    let (refused, accepted) = ABIS;
    let (cl, code) = alloc(size_of::<ffi_closure>()).expect("alloc");
    for &abi in refused {
        let cif = cif_int_int_int();
        unsafe {
            (*cif).abi = abi;
            assert_eq!(
                prep(cl, cif, h(add_plus_ud), null_mut(), code),
                FFI_BAD_ABI,
                "abi {abi}"
            );
        }
    }
    // Every ABI libffi knows here is accepted.
    for &abi in accepted {
        let cif = cif_int_int_int();
        unsafe {
            (*cif).abi = abi;
            assert_eq!(
                prep(cl, cif, h(add_plus_ud), null_mut(), code),
                FFI_OK,
                "abi {abi}"
            );
        }
    }
    // Back to the default ABI and callable.
    let cif = cif_int_int_int();
    unsafe {
        assert_eq!(prep(cl, cif, h(add_plus_ud), null_mut(), code), FFI_OK);
        assert_eq!(ffi_call_ii(cif, code, 40, 2), 42);
        free(cl);
    }
}

/// A cif written by hand (ffi_prep_cif would refuse most of these).
fn raw_cif(nargs: u32, arg_types: *mut *mut ffi_type, rtype: *mut ffi_type) -> ffi_cif {
    let mut cif: ffi_cif = unsafe { std::mem::zeroed() };
    cif.abi = ffi_abi_FFI_DEFAULT_ABI;
    cif.nargs = nargs;
    cif.arg_types = arg_types;
    cif.rtype = rtype;
    cif
}

fn leak_type(
    size: usize,
    alignment: u16,
    type_: u16,
    elements: *mut *mut ffi_type,
) -> *mut ffi_type {
    Box::into_raw(Box::new(ffi_type {
        size,
        alignment,
        type_,
        elements,
    }))
}

fn leak_elems(v: &[*mut ffi_type]) -> *mut *mut ffi_type {
    let mut v = v.to_vec();
    v.push(null_mut());
    Box::leak(v.into_boxed_slice()).as_mut_ptr()
}

/// `v`, alive for the rest of the process (cifs and types that closures
/// point to). scripts/lib/lsan.supp names this helper: LeakSanitizer
/// reports such values once no pointer to them is left.
fn leak_value<T>(v: T) -> &'static mut T {
    Box::leak(Box::new(v))
}

#[test]
fn malformed_types_are_bad_typedef() {
    let _g = serial();
    let (cl, code) = alloc(size_of::<ffi_closure>()).expect("alloc");
    unsafe {
        let s32 = &raw mut ffi_type_sint32;
        let void = &raw mut ffi_type_void;
        let struct_null_elems = leak_type(8, 8, FFI_TYPE_STRUCT, null_mut());
        let two_ints = leak_elems(&[s32, s32]);
        let struct_empty = leak_type(0, 1, FFI_TYPE_STRUCT, leak_elems(&[]));
        let struct_size_0 = leak_type(0, 4, FFI_TYPE_STRUCT, two_ints);
        let struct_align_0 = leak_type(8, 0, FFI_TYPE_STRUCT, two_ints);
        let struct_align_3 = leak_type(8, 3, FFI_TYPE_STRUCT, two_ints);
        let nested_null_elems = leak_type(
            16,
            8,
            FFI_TYPE_STRUCT,
            leak_elems(&[s32, struct_null_elems]),
        );
        let nested_align_12 = leak_type(
            16,
            8,
            FFI_TYPE_STRUCT,
            leak_elems(&[s32, leak_type(8, 12, FFI_TYPE_STRUCT, two_ints)]),
        );
        let nested_int_size_8 = leak_type(
            16,
            8,
            FFI_TYPE_STRUCT,
            leak_elems(&[s32, leak_type(8, 8, FFI_TYPE_SINT32, null_mut())]),
        );
        // A struct that contains itself: libffi would recurse forever.
        let cyclic = leak_type(8, 8, FFI_TYPE_STRUCT, null_mut());
        (*cyclic).elements = leak_elems(&[s32, cyclic]);
        let code77 = leak_type(4, 4, 77, null_mut());
        let int_size_8 = leak_type(8, 8, FFI_TYPE_SINT32, null_mut());
        let complex_int = leak_type(8, 4, FFI_TYPE_COMPLEX, leak_elems(&[s32]));
        // ctypes' type for a Structure without _fields_: all zero (void,
        // size 0, alignment 0, no elements).
        let zeroed = leak_type(0, 0, FFI_TYPE_VOID, null_mut());

        let one = |t: *mut ffi_type| leak_elems(&[t]);
        let cases: Vec<(&str, ffi_cif)> = vec![
            (
                "struct with NULL elements (arg)",
                raw_cif(1, one(struct_null_elems), s32),
            ),
            (
                "struct with NULL elements (ret)",
                raw_cif(0, null_mut(), struct_null_elems),
            ),
            // ffi_prep_cif lays out a struct of size 0 and refuses it when
            // it stays 0; one of size 0 with elements was never prepared.
            ("empty struct", raw_cif(1, one(struct_empty), s32)),
            ("empty struct (ret)", raw_cif(0, null_mut(), struct_empty)),
            ("{int,int} of size 0", raw_cif(1, one(struct_size_0), s32)),
            // libffi's ffi_type_test (src/debug.c) asserts alignment > 0.
            ("struct alignment 0", raw_cif(1, one(struct_align_0), s32)),
            ("struct alignment 3", raw_cif(1, one(struct_align_3), s32)),
            (
                "struct alignment 3 (ret)",
                raw_cif(0, null_mut(), struct_align_3),
            ),
            (
                "nested struct with NULL elements",
                raw_cif(1, one(nested_null_elems), s32),
            ),
            (
                "nested struct alignment 12",
                raw_cif(1, one(nested_align_12), s32),
            ),
            (
                "nested sint32 claiming size 8",
                raw_cif(1, one(nested_int_size_8), s32),
            ),
            ("cyclic struct", raw_cif(1, one(cyclic), s32)),
            ("cyclic struct (ret)", raw_cif(0, null_mut(), cyclic)),
            ("type code 77 (arg)", raw_cif(1, one(code77), s32)),
            ("type code 77 (ret)", raw_cif(0, null_mut(), code77)),
            ("sint32 claiming size 8", raw_cif(1, one(int_size_8), s32)),
            ("complex int", raw_cif(1, one(complex_int), s32)),
            ("NULL rtype", raw_cif(0, null_mut(), null_mut())),
            ("NULL rtype with args", raw_cif(1, one(s32), null_mut())),
            (
                "NULL argument type",
                raw_cif(2, leak_elems(&[s32, null_mut()]), s32),
            ),
            ("nargs 3, arg_types NULL", raw_cif(3, null_mut(), s32)),
            (
                "nargs 1<<20, arg_types NULL",
                raw_cif(1 << 20, null_mut(), s32),
            ),
            (
                "nargs u32::MAX, arg_types NULL",
                raw_cif(u32::MAX, null_mut(), s32),
            ),
            // ffi_prep_cif refuses a return type of size 0 whatever its
            // code (found by fuzz/: we used to read it as void).
            ("zeroed void type (ret)", raw_cif(0, null_mut(), zeroed)),
            ("zeroed void type (arg)", raw_cif(1, one(zeroed), s32)),
            ("void argument", raw_cif(1, one(void), s32)),
            (
                "void second argument",
                raw_cif(2, leak_elems(&[s32, void]), s32),
            ),
        ];
        for (what, cif) in cases {
            let cif = leak_value(cif);
            assert_eq!(
                prep(cl, cif, h(add_plus_ud), null_mut(), code),
                FFI_BAD_TYPEDEF,
                "{what}"
            );
        }
        // Control: the same machinery accepts a well-formed hand-written cif.
        let good = leak_value(raw_cif(2, leak_elems(&[s32, s32]), s32));
        assert_eq!(
            prep(cl, good, h(add_plus_ud), null_mut(), code),
            FFI_OK,
            "well-formed raw cif"
        );
        assert_eq!(call_ii(code, 20, 22), 42);
        free(cl);
    }
}

#[test]
fn stated_struct_layouts_are_accepted() {
    // libffi's ffi_prep_cif takes a struct's nonzero size and alignment as
    // stated (it lays out only structs of size 0), and CPython's ctypes
    // states packed, union and bitfield layouts that way: each of these is
    // FFI_OK (tests/stated_layouts.rs calls such closures).
    let _g = serial();
    let (cl, code) = alloc(size_of::<ffi_closure>()).expect("alloc");
    unsafe {
        let s32 = &raw mut ffi_type_sint32;
        let d = &raw mut ffi_type_double;
        let void = &raw mut ffi_type_void;
        let two_ints = leak_elems(&[s32, s32]);
        let size_12 = leak_type(12, 4, FFI_TYPE_STRUCT, two_ints);
        let size_4 = leak_type(4, 4, FFI_TYPE_STRUCT, two_ints);
        let align_8 = leak_type(8, 8, FFI_TYPE_STRUCT, two_ints);
        let packed_13 = leak_type(
            13,
            1,
            FFI_TYPE_STRUCT,
            leak_elems(&[&raw mut ffi_type_sint8, s32, d]),
        );
        let void_member = leak_type(4, 4, FFI_TYPE_STRUCT, leak_elems(&[s32, void]));
        let zeroed_void = leak_type(0, 0, FFI_TYPE_VOID, null_mut());
        let ctypes_no_fields = leak_type(4, 4, FFI_TYPE_STRUCT, leak_elems(&[zeroed_void, s32]));
        let no_elements = leak_type(8, 8, FFI_TYPE_STRUCT, leak_elems(&[]));
        let nested = leak_type(16, 8, FFI_TYPE_STRUCT, leak_elems(&[d, size_12]));
        let one = |t: *mut ffi_type| leak_elems(&[t]);
        for (what, cif) in [
            ("{int,int} of size 12", raw_cif(1, one(size_12), s32)),
            ("{int,int} of size 4", raw_cif(1, one(size_4), s32)),
            ("{int,int} aligned 8", raw_cif(1, one(align_8), s32)),
            (
                "{int,int} of size 12 (ret)",
                raw_cif(0, null_mut(), size_12),
            ),
            ("packed {char,int,double}", raw_cif(1, one(packed_13), s32)),
            (
                "packed {char,int,double} (ret)",
                raw_cif(0, null_mut(), packed_13),
            ),
            ("{int, void}", raw_cif(1, one(void_member), s32)),
            (
                "{ctypes structure without _fields_, int}",
                raw_cif(1, one(ctypes_no_fields), s32),
            ),
            ("no elements, size 8", raw_cif(1, one(no_elements), s32)),
            ("nested stated layout", raw_cif(1, one(nested), s32)),
        ] {
            let cif = leak_value(cif);
            assert_eq!(
                prep(cl, cif, h(add_plus_ud), null_mut(), code),
                FFI_OK,
                "{what}"
            );
        }
        free(cl);
    }
}

#[test]
fn alloc_size_zero_works() {
    let _g = serial();
    let (cl, code) = alloc(0).expect("ffi_closure_alloc(0) must succeed");
    let cif = cif_int_int_int();
    unsafe {
        assert_eq!(prep(cl, cif, h(add_plus_ud), ud(100), code), FFI_OK);
        assert_eq!(call_ii(code, 1, 2), 103);
        assert_eq!(ffi_call_ii(cif, code, -1, -2), 97);
        free(cl);
    }
}

#[test]
fn alloc_large_record_is_fully_writable() {
    let _g = serial();
    let cif = cif_int_int_int();
    for size in [57usize, 100, 4096 + 100, 1 << 20, 1 << 24] {
        let (cl, code) = alloc(size).unwrap_or_else(|| panic!("ffi_closure_alloc({size})"));
        assert_eq!(
            cl as usize % 16,
            0,
            "record of {size} bytes is not 16-byte aligned"
        );
        unsafe {
            assert_eq!(prep(cl, cif, h(add_plus_ud), ud(7), code), FFI_OK);
            // The bytes past the ffi_closure are the client's.
            let head = size_of::<ffi_closure>();
            let tail = std::slice::from_raw_parts_mut(cl.cast::<u8>().add(head), size - head);
            for (i, b) in tail.iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            assert_eq!(call_ii(code, 1, 2), 10, "size {size}");
            assert!(
                tail.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
                "size {size}: tail clobbered"
            );
            free(cl);
        }
    }
}

#[test]
fn alloc_huge_size_is_enomem() {
    if is_child("huge") {
        // Far beyond the largest class (16 MiB) on any word size.
        let huge = if usize::BITS >= 64 {
            (1u64 << 40) as usize
        } else {
            1 << 30
        };
        for size in [usize::MAX, usize::MAX / 2 + 2, huge, (1 << 24) + 1] {
            set_errno(0);
            let mut code: *mut c_void = null_mut();
            let cl = unsafe { capi::ffi_closure_alloc(size, &mut code) };
            assert!(cl.is_null(), "ffi_closure_alloc({size:#x}) should fail");
            assert_eq!(
                errno(),
                libc::ENOMEM,
                "errno after ffi_closure_alloc({size:#x})"
            );
        }
        // Nothing leaked: ordinary allocation still works.
        let (cl, code) = alloc(0).expect("alloc after failures");
        unsafe {
            assert_eq!(
                prep(cl, cif_int_int_int(), h(add_plus_ud), null_mut(), code),
                FFI_OK
            );
            assert_eq!(call_ii(code, 3, 4), 7);
            free(cl);
        }
        return;
    }
    // In a child: a panic inside an extern "C" export would abort the whole
    // test binary.
    let out = run_child("alloc_huge_size_is_enomem", "huge", CHILD_LIMIT);
    assert_child_passed(&out);
}

#[test]
fn alloc_with_null_code_is_null() {
    let _g = serial();
    set_errno(0);
    let cl = unsafe { capi::ffi_closure_alloc(64, null_mut()) };
    assert!(cl.is_null());
    assert_eq!(errno(), libc::EINVAL);
}

#[test]
fn free_null_is_noop() {
    let _g = serial();
    unsafe {
        capi::ffi_closure_free(null_mut());
        capi::ffi_closure_free(null_mut());
    }
    let (cl, code) = alloc(0).expect("alloc");
    unsafe {
        assert_eq!(
            prep(cl, cif_int_int_int(), h(add_plus_ud), null_mut(), code),
            FFI_OK
        );
        assert_eq!(call_ii(code, 1, 1), 2);
        free(cl);
    }
}

type AllocFn = unsafe extern "C" fn(usize, *mut *mut c_void) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type PrepLocFn = unsafe extern "C" fn(
    *mut ffi_closure,
    *mut ffi_cif,
    Option<unsafe extern "C" fn(*mut ffi_cif, *mut c_void, *mut *mut c_void, *mut c_void)>,
    *mut c_void,
    *mut c_void,
) -> ffi_status;

unsafe extern "C" fn libffi_handler(
    _cif: *mut ffi_cif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    unsafe { add_plus_ud(null_mut(), ret, args, ud) }
}

/// libffi's own definitions (ours interpose them in this binary).
fn libffi_fns() -> (AllocFn, FreeFn, PrepLocFn) {
    unsafe {
        let h = libc::dlopen(c"libffi.so.8".as_ptr(), libc::RTLD_NOW);
        assert!(!h.is_null(), "dlopen libffi.so.8");
        let a = libc::dlsym(h, c"ffi_closure_alloc".as_ptr());
        let f = libc::dlsym(h, c"ffi_closure_free".as_ptr());
        let p = libc::dlsym(h, c"ffi_prep_closure_loc".as_ptr());
        assert!(
            !a.is_null() && !f.is_null() && !p.is_null(),
            "dlsym libffi closure API"
        );
        assert_ne!(
            a as usize,
            capi::ffi_closure_alloc as *const () as usize,
            "dlsym found our own ffi_closure_alloc"
        );
        assert_ne!(
            f as usize,
            capi::ffi_closure_free as *const () as usize,
            "dlsym found our own ffi_closure_free"
        );
        (
            std::mem::transmute::<*mut c_void, AllocFn>(a),
            std::mem::transmute::<*mut c_void, FreeFn>(f),
            std::mem::transmute::<*mut c_void, PrepLocFn>(p),
        )
    }
}

#[test]
fn free_forwards_foreign_libffi_closure() {
    let _g = serial();
    let (lf_alloc, _lf_free, lf_prep) = libffi_fns();
    let cif = cif_int_int_int();
    unsafe {
        // A closure from the system libffi works on its own.
        let mut code_a: *mut c_void = null_mut();
        let a = lf_alloc(size_of::<ffi_closure>(), &mut code_a);
        assert!(!a.is_null(), "libffi's ffi_closure_alloc");
        assert_eq!(
            capi::statictramp_owns_code(code_a),
            0,
            "libffi's code is not ours"
        );
        assert_eq!(
            lf_prep(a.cast(), cif, Some(libffi_handler), ud(11), code_a),
            ffi_status_FFI_OK
        );
        assert_eq!(call_ii(code_a, 1, 2), 14);

        // Our ffi_closure_free must hand it to libffi's: then libffi's
        // allocator gets the same chunk back for the next request of that
        // size. Had we ignored it, the chunk would stay in use; had we
        // freed it ourselves, we would have crashed or corrupted our lists.
        capi::ffi_closure_free(a);
        let mut code_b: *mut c_void = null_mut();
        let b = lf_alloc(size_of::<ffi_closure>(), &mut code_b);
        assert!(!b.is_null(), "libffi can allocate after our free");
        assert_eq!(
            b, a,
            "libffi did not get its closure back: ffi_closure_free did not forward it"
        );
        assert_eq!(
            lf_prep(b.cast(), cif, Some(libffi_handler), ud(20), code_b),
            ffi_status_FFI_OK
        );
        assert_eq!(call_ii(code_b, 1, 2), 23);

        // Many rounds: nothing grows, nothing crashes.
        for i in 0..1000 {
            let mut c: *mut c_void = null_mut();
            let p = lf_alloc(size_of::<ffi_closure>(), &mut c);
            assert!(!p.is_null());
            assert_ne!(
                p, b,
                "round {i}: a live libffi closure was handed out twice"
            );
            capi::ffi_closure_free(p);
        }
        capi::ffi_closure_free(b);

        // Our own closures are unaffected.
        let (cl, code) = alloc(0).expect("alloc");
        assert_eq!(prep(cl, cif, h(add_plus_ud), null_mut(), code), FFI_OK);
        assert_eq!(call_ii(code, 4, 5), 9);
        free(cl);
    }
}

/// A prepared closure `int (int, int)` returning `a + b + tag`, forcing a
/// mapped slot (beyond the in-image pool) when `mapped`.
fn prepared(tag: u64, mapped: bool) -> (*mut c_void, *mut c_void, Vec<*mut c_void>) {
    let mut keep = Vec::new();
    if mapped {
        // The in-image pool has 1024 slots; take them all.
        for _ in 0..1100 {
            keep.push(alloc(0).expect("alloc").0);
        }
    }
    let (cl, code) = alloc(0).expect("alloc");
    unsafe {
        assert_eq!(
            prep(cl, cif_int_int_int(), h(add_plus_ud), ud(tag), code),
            FFI_OK
        );
        assert_eq!(call_ii(code, 1, 2), 3 + tag as i32);
    }
    (cl, code, keep)
}

#[test]
fn double_free_aborts() {
    if is_child("double_free") {
        let (cl, _code, _keep) = prepared(0, false);
        unsafe {
            free(cl);
            eprintln!("child: first free done");
            free(cl);
        }
        eprintln!("child: second free returned");
        return;
    }
    let out = run_child("double_free_aborts", "double_free", CHILD_LIMIT);
    assert!(
        out.stderr.contains("child: first free done"),
        "{}",
        out.describe()
    );
    assert_aborted_with(&out, "double free of a closure");
}

#[test]
fn free_of_interior_pointer_aborts() {
    if is_child("interior_free") {
        let (cl, _code, _keep) = prepared(0, false);
        unsafe { free(cl.byte_add(16)) };
        eprintln!("child: interior free returned");
        return;
    }
    let out = run_child(
        "free_of_interior_pointer_aborts",
        "interior_free",
        CHILD_LIMIT,
    );
    assert_aborted_with(&out, "not a closure from ffi_closure_alloc");
}

fn call_after_free_child(mapped: bool) {
    let (cl, code, _keep) = prepared(1, mapped);
    eprintln!("child: closure at {code:p} works");
    unsafe {
        free(cl);
        let r = call_ii(code, 1, 2);
        eprintln!("child: freed closure returned {r}");
    }
}

#[test]
fn call_after_free_aborts() {
    if is_child("call_after_free") {
        return call_after_free_child(false);
    }
    let out = run_child("call_after_free_aborts", "call_after_free", CHILD_LIMIT);
    assert!(out.stderr.contains("works"), "{}", out.describe());
    assert_aborted_with(&out, "freed closure was called");
}

#[test]
fn call_after_free_aborts_mapped_slot() {
    if is_child("call_after_free_mapped") {
        return call_after_free_child(true);
    }
    let out = run_child(
        "call_after_free_aborts_mapped_slot",
        "call_after_free_mapped",
        CHILD_LIMIT,
    );
    assert!(out.stderr.contains("works"), "{}", out.describe());
    assert_aborted_with(&out, "freed closure was called");
}

fn call_before_prep_child(mapped: bool) {
    let mut keep = Vec::new();
    if mapped {
        for _ in 0..1100 {
            keep.push(alloc(0).expect("alloc").0);
        }
    }
    let (_cl, code) = alloc(0).expect("alloc");
    eprintln!("child: calling unprepared closure at {code:p}");
    let r = unsafe { call_ii(code, 1, 2) };
    eprintln!("child: unprepared closure returned {r}");
}

#[test]
fn call_before_prep_aborts() {
    if is_child("call_before_prep") {
        return call_before_prep_child(false);
    }
    let out = run_child("call_before_prep_aborts", "call_before_prep", CHILD_LIMIT);
    assert_aborted_with(&out, "called before ffi_prep_closure_loc prepared it");
}

#[test]
fn call_before_prep_aborts_mapped_slot() {
    if is_child("call_before_prep_mapped") {
        return call_before_prep_child(true);
    }
    let out = run_child(
        "call_before_prep_aborts_mapped_slot",
        "call_before_prep_mapped",
        CHILD_LIMIT,
    );
    assert_aborted_with(&out, "called before ffi_prep_closure_loc prepared it");
}

#[test]
fn call_after_failed_prep_aborts() {
    // A prep that fails must not leave a half-prepared closure behind.
    if is_child("call_after_failed_prep") {
        let (cl, code) = alloc(0).expect("alloc");
        let cif = cif_int_int_int();
        unsafe {
            (*cif).abi = 99;
            assert_eq!(prep(cl, cif, h(add_plus_ud), null_mut(), code), FFI_BAD_ABI);
            let r = call_ii(code, 1, 2);
            eprintln!("child: closure returned {r}");
        }
        return;
    }
    let out = run_child(
        "call_after_failed_prep_aborts",
        "call_after_failed_prep",
        CHILD_LIMIT,
    );
    assert_aborted_with(&out, "called before ffi_prep_closure_loc prepared it");
}

/// Memory the test maps itself: never writable and executable at once.
struct Page(*mut u8, usize);

impl Page {
    fn new() -> Page {
        let len = statictramp::page_size();
        let p = unsafe {
            libc::mmap(
                null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Page(p.cast(), len)
    }
    fn protect(&self, prot: i32) {
        assert_eq!(
            unsafe { libc::mprotect(self.0.cast(), self.1, prot) },
            0,
            "mprotect {prot:#x}"
        );
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.0.cast(), self.1) };
    }
}

/// The header address the classic trampoline at `tramp` embeds (the
/// `tramp[]` bytes src/arch/<arch>/mod.rs `classic_trampoline` writes),
/// after checking its encoding, which is the architecture's own.
///
/// # Safety
/// `tramp` must point to `TRAMP_SIZE` readable bytes.
#[cfg(target_arch = "x86_64")]
unsafe fn classic_header(tramp: *const u8) -> usize {
    // SAFETY: per the contract.
    let t = unsafe { std::slice::from_raw_parts(tramp, statictramp::record::TRAMP_SIZE) };
    assert_eq!(
        &t[..6],
        &[0xf3, 0x0f, 0x1e, 0xfa, 0x49, 0xba],
        "endbr64; movabs $imm64, %r10"
    );
    assert_eq!(&t[14..17], &[0x41, 0xff, 0x22], "jmp *(%r10)");
    assert!(
        t[17..].iter().all(|&b| b == 0xcc),
        "int3 padding: {:02x?}",
        &t[17..]
    );
    u64::from_le_bytes(t[6..14].try_into().unwrap()) as usize
}

/// i386: register-free like the slots (`endbr32; pushl $header; pushl
/// %eax; jmp *header->entry`), 16 bytes.
///
/// # Safety
/// `tramp` must point to `TRAMP_SIZE` readable bytes.
#[cfg(target_arch = "x86")]
unsafe fn classic_header(tramp: *const u8) -> usize {
    // SAFETY: per the contract.
    let t = unsafe { std::slice::from_raw_parts(tramp, statictramp::record::TRAMP_SIZE) };
    assert_eq!(t.len(), 16);
    assert_eq!(
        &t[..5],
        &[0xf3, 0x0f, 0x1e, 0xfb, 0x68],
        "endbr32; pushl $imm32"
    );
    let header = u32::from_le_bytes(t[5..9].try_into().unwrap()) as usize;
    assert_eq!(&t[9..12], &[0x50, 0xff, 0x25], "pushl %eax; jmp *abs32");
    assert_eq!(
        u32::from_le_bytes(t[12..16].try_into().unwrap()) as usize,
        header + statictramp::layout::HDR_ENTRY,
        "the jump goes through the header's entry word"
    );
    header
}

#[test]
fn prep_on_foreign_memory_writes_classic_trampoline() {
    let _g = serial();
    let page = Page::new();
    let mem = page.0.cast::<c_void>();
    let cif = cif_int_int_int();
    unsafe {
        assert_eq!(prep(mem, cif, h(add_plus_ud), ud(1000), mem), FFI_OK);
        let header1 = classic_header(page.0);
        assert_ne!(header1, 0);
        // The libffi fields are filled in.
        let c = &*(mem as *const ffi_closure);
        assert_eq!(c.cif, cif);
        assert_eq!(c.user_data as usize, 1000);

        // Execute it: read + execute, never writable at the same time.
        page.protect(libc::PROT_READ | libc::PROT_EXEC);
        assert_eq!(ffi_call_ii(cif, mem, 1, 2), 1003);
        assert_eq!(call_ii(mem, -5, 5), 1000);
        assert_eq!(
            capi::statictramp_owns_code(mem),
            0,
            "foreign memory is not statictramp's code"
        );

        // Re-prep with other user data and another handler.
        page.protect(libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(prep(mem, cif, h(mul_minus_ud), ud(2000), mem), FFI_OK);
        let header2 = classic_header(page.0);
        assert_eq!(
            header1, header2,
            "re-prep of the same memory reuses its header"
        );
        page.protect(libc::PROT_READ | libc::PROT_EXEC);
        assert_eq!(ffi_call_ii(cif, mem, 6, 7), 42 - 2000);
        assert_eq!(call_ii(mem, 100, 30), 1000);

        // And once more with the first handler.
        page.protect(libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(prep(mem, cif, h(add_plus_ud), ud(3), mem), FFI_OK);
        page.protect(libc::PROT_READ | libc::PROT_EXEC);
        assert_eq!(call_ii(mem, 1, 1), 5);
    }
}

#[test]
fn prep_on_foreign_memory_at_an_offset_in_the_page() {
    // Closures embedded in a client's structure need not be page aligned.
    let _g = serial();
    let page = Page::new();
    let cif = cif_int_int_int();
    unsafe {
        let mems: Vec<*mut c_void> = (0..8).map(|i| page.0.add(64 * i + 8).cast()).collect();
        for (i, &m) in mems.iter().enumerate() {
            assert_eq!(
                prep(m, cif, h(add_plus_ud), (i * 10) as *mut c_void, m),
                FFI_OK
            );
        }
        page.protect(libc::PROT_READ | libc::PROT_EXEC);
        for (i, &m) in mems.iter().enumerate() {
            assert_eq!(call_ii(m, 1, 2), 3 + (i * 10) as i32, "closure {i}");
        }
    }
}

#[test]
fn prep_on_freed_record_is_bad_argtype() {
    let _g = serial();
    let cif = cif_int_int_int();
    let (cl, code) = alloc(0).expect("alloc");
    unsafe {
        assert_eq!(prep(cl, cif, h(add_plus_ud), null_mut(), code), FFI_OK);
        free(cl);
        assert_eq!(
            prep(cl, cif, h(add_plus_ud), null_mut(), code),
            FFI_BAD_ARGTYPE
        );
        assert_eq!(capi::statictramp_owns_code(code), 0);
        // Neither the record nor the slot comes back on the next
        // allocation: they wait in the quarantine together, so the stale
        // code pointer keeps trapping and the stale record keeps reading as
        // freed.
        let (cl2, code2) = alloc(0).expect("alloc");
        assert_ne!(
            cl2, cl,
            "freed record must be quarantined, not reused at once"
        );
        assert_eq!(
            prep(cl, cif, h(add_plus_ud), null_mut(), code),
            FFI_BAD_ARGTYPE
        );
        assert_ne!(
            code2, code,
            "freed slot must be quarantined, not reused at once"
        );
        assert_eq!(capi::statictramp_owns_code(code), 0);
        assert_eq!(prep(cl2, cif, h(add_plus_ud), ud(9), code2), FFI_OK);
        assert_eq!(call_ii(code2, 1, 2), 12);
        free(cl2);
    }
}

#[test]
fn reprep_live_closure_switches_cif_and_handler() {
    let _g = serial();
    let cif_ii = cif_int_int_int();
    let cif_u = cif_u64_u64();
    let (cl, code) = alloc(0).expect("alloc");
    unsafe {
        assert_eq!(prep(cl, cif_ii, h(add_plus_ud), ud(1), code), FFI_OK);
        assert_eq!(call_ii(code, 10, 20), 31);
        assert_eq!(prep(cl, cif_ii, h(mul_minus_ud), ud(1), code), FFI_OK);
        assert_eq!(call_ii(code, 10, 20), 199);
        assert_eq!(ffi_call_ii(cif_ii, code, 3, 3), 8);
        assert_eq!(prep(cl, cif_u, h(ud_plus_x), ud(BIG_UD), code), FFI_OK);
        assert_eq!(call_u64(code, 5 << 32), BIG_UD + (5 << 32));
        let c = &*(cl as *const ffi_closure);
        assert_eq!(c.cif, cif_u);
        assert_eq!(c.user_data as u64, BIG_UD);

        // A failed re-prep leaves the previous preparation in place.
        let bad = cif_int_int_int();
        (*bad).abi = 0;
        assert_eq!(prep(cl, bad, h(add_plus_ud), null_mut(), code), FFI_BAD_ABI);
        assert_eq!(prep(cl, cif_ii, None, null_mut(), code), FFI_BAD_ARGTYPE);
        assert_eq!(
            call_u64(code, 6),
            BIG_UD + 6,
            "failed re-prep changed the closure"
        );

        // Back to int(int,int).
        assert_eq!(prep(cl, cif_ii, h(add_plus_ud), null_mut(), code), FFI_OK);
        assert_eq!(ffi_call_ii(cif_ii, code, 20, 22), 42);
        free(cl);
    }
}

#[test]
fn reprep_while_other_thread_calls() {
    // A live closure re-prepared (same cif, new user data) while another
    // thread keeps calling it: every call sees one whole preparation.
    let _g = serial();
    let cif = cif_int_int_int();
    let (cl, code) = alloc(0).expect("alloc");
    unsafe { assert_eq!(prep(cl, cif, h(add_plus_ud), null_mut(), code), FFI_OK) };
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let calls = std::sync::Arc::new(AtomicU64::new(0));
    let code_u = code as usize;
    let (s2, c2) = (stop.clone(), calls.clone());
    let caller = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            let r = unsafe { call_ii(code_u as *mut c_void, 0, 0) };
            assert!((0..1000).contains(&r), "call saw user data {r}");
            c2.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Re-prep until both sides have done plenty (bounded in time).
    let start = std::time::Instant::now();
    let mut i = 0u64;
    while (i < 20_000 || calls.load(Ordering::Relaxed) < 20_000)
        && start.elapsed() < std::time::Duration::from_secs(10)
    {
        unsafe { assert_eq!(prep(cl, cif, h(add_plus_ud), ud(i % 1000), code), FFI_OK) };
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    caller.join().expect("caller thread");
    assert!(
        calls.load(Ordering::Relaxed) > 0,
        "the caller thread never ran"
    );
    unsafe { free(cl) };
}

/// Handler for `double (double x)`: `x * 2 + 1`.
unsafe extern "C-unwind" fn twice_plus_one(
    _cif: *mut statictramp::cif::FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _ud: *mut c_void,
) {
    // SAFETY: called with one double argument and a double return buffer.
    unsafe { *(ret as *mut f64) = *(*args as *const f64) * 2.0 + 1.0 };
}

/// Handler for `double (struct { T a, b })` with T = double: `a - b`.
unsafe extern "C-unwind" fn pair_diff_f64(
    _cif: *mut statictramp::cif::FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _ud: *mut c_void,
) {
    // SAFETY: called with one struct { double, double } argument.
    unsafe {
        let p = *args as *const f64;
        *(ret as *mut f64) = *p - *p.add(1);
    }
}

/// Handler for `int64_t (struct { int64_t a, b })`: `a - b`.
unsafe extern "C-unwind" fn pair_diff_i64(
    _cif: *mut statictramp::cif::FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _ud: *mut c_void,
) {
    // SAFETY: called with one struct { int64_t, int64_t } argument.
    unsafe {
        let p = *args as *const i64;
        *(ret as *mut i64) = *p - *p.add(1);
    }
}

/// Plans are cached per cif address; a cif rewritten in place (same
/// address, same arg_types array, even the same struct ffi_type with new
/// elements) must get the plan of its new signature, never the cached one.
#[test]
fn a_cif_rewritten_in_place_gets_its_new_plan() {
    let _g = serial();
    // SAFETY: libffi's predefined types are statics; the cif, the argument
    // array and the struct type are leaked, so they outlive every closure;
    // each closure is called with the signature its cif had at prep.
    unsafe {
        let cif: *mut ffi_cif = leak_value(std::mem::zeroed());
        let args_ptr: *mut *mut ffi_type = leak_value([null_mut::<ffi_type>(); 2]).as_mut_ptr();
        let prep_cif = move |n: u32, rtype: *mut ffi_type| {
            let st = ffi_prep_cif(cif, ffi_abi_FFI_DEFAULT_ABI, n, rtype, args_ptr);
            assert_eq!(st, ffi_status_FFI_OK);
        };
        let mut keep = Vec::new();

        // int (int, int)
        args_ptr.write(&raw mut ffi_type_sint32);
        args_ptr.add(1).write(&raw mut ffi_type_sint32);
        prep_cif(2, &raw mut ffi_type_sint32);
        let (cl, code) = alloc(0).unwrap();
        assert_eq!(prep(cl, cif, h(add_plus_ud), ud(5), code), FFI_OK);
        assert_eq!(call_ii(code, 30, 7), 42);
        keep.push(cl);
        // Same again: a cache hit, same result.
        let (cl, code) = alloc(0).unwrap();
        assert_eq!(prep(cl, cif, h(add_plus_ud), ud(6), code), FFI_OK);
        assert_eq!(call_ii(code, 30, 7), 43);
        keep.push(cl);

        // uint64_t (uint64_t): fewer arguments, same address.
        *args_ptr = &raw mut ffi_type_uint64;
        prep_cif(1, &raw mut ffi_type_uint64);
        let (cl, code) = alloc(0).unwrap();
        assert_eq!(prep(cl, cif, h(ud_plus_x), ud(BIG_UD), code), FFI_OK);
        assert_eq!(call_u64(code, 3 << 40), BIG_UD + (3 << 40));
        keep.push(cl);

        // double (double): same count, same array, new types (an SSE
        // argument and return where the cached plan has integer ones).
        *args_ptr = &raw mut ffi_type_double;
        prep_cif(1, &raw mut ffi_type_double);
        let (cl, code) = alloc(0).unwrap();
        assert_eq!(prep(cl, cif, h(twice_plus_one), null_mut(), code), FFI_OK);
        let f: extern "C" fn(f64) -> f64 = std::mem::transmute(code);
        assert_eq!(f(20.25), 41.5);
        keep.push(cl);

        // A struct type whose elements change in place: first
        // { int64, int64 } (INTEGER class), then { double, double } (SSE).
        let elems: &'static mut [*mut ffi_type; 3] = leak_value([
            &raw mut ffi_type_sint64,
            &raw mut ffi_type_sint64,
            null_mut(),
        ]);
        let st: *mut ffi_type = leak_value(ffi_type {
            size: 0,
            alignment: 0,
            type_: FFI_TYPE_STRUCT,
            elements: elems.as_mut_ptr(),
        });
        *args_ptr = st;
        prep_cif(1, &raw mut ffi_type_sint64);
        let (cl, code) = alloc(0).unwrap();
        assert_eq!(prep(cl, cif, h(pair_diff_i64), null_mut(), code), FFI_OK);
        #[repr(C)]
        struct I2(i64, i64);
        let f: extern "C" fn(I2) -> i64 = std::mem::transmute(code);
        assert_eq!(f(I2(50, 8)), 42);
        keep.push(cl);

        *elems = [
            &raw mut ffi_type_double,
            &raw mut ffi_type_double,
            null_mut(),
        ];
        (*st).size = 0;
        (*st).alignment = 0;
        prep_cif(1, &raw mut ffi_type_double);
        let (cl, code) = alloc(0).unwrap();
        assert_eq!(prep(cl, cif, h(pair_diff_f64), null_mut(), code), FFI_OK);
        #[repr(C)]
        struct D2(f64, f64);
        let f: extern "C" fn(D2) -> f64 = std::mem::transmute(code);
        assert_eq!(f(D2(50.5, 8.25)), 42.25);
        keep.push(cl);

        // FFI_TYPE_INT reads as sint32: a different raw type code for the
        // same signature still gets a working plan.
        let int_t: *mut ffi_type = leak_value(ffi_type {
            size: 4,
            alignment: 4,
            type_: FFI_TYPE_INT,
            elements: null_mut(),
        });
        args_ptr.write(&raw mut ffi_type_sint32);
        args_ptr.add(1).write(&raw mut ffi_type_sint32);
        prep_cif(2, &raw mut ffi_type_sint32);
        *args_ptr.add(1) = int_t;
        let (cl, code) = alloc(0).unwrap();
        assert_eq!(prep(cl, cif, h(add_plus_ud), ud(0), code), FFI_OK);
        assert_eq!(call_ii(code, 40, 2), 42);
        keep.push(cl);

        for cl in keep {
            free(cl);
        }
    }
}
