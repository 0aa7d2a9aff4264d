//! The safe Rust API: closures made and called without libffi, in the
//! architecture's default convention with its own scalar layouts
//! (`statictramp::types`); the Win64 test is x86_64's.
use statictramp::{Abi, Closure, DEFAULT_ABI, Type, types};
use std::os::raw::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Tests here count live closures, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn int_closure_runs_and_captures() {
    let _serial = serial();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let c = Closure::new(
        DEFAULT_ABI,
        vec![types::S32, types::S32],
        types::S32,
        move |args, ret| {
            seen.fetch_add(1, Ordering::Relaxed);
            let a: i32 = args.get(0).unwrap();
            let b: i32 = args.get(1).unwrap();
            ret.set(a * b).unwrap();
        },
    )
    .unwrap();
    // SAFETY: the closure's signature is int(int, int), C convention.
    let f = unsafe {
        std::mem::transmute::<*const c_void, extern "C" fn(i32, i32) -> i32>(c.code_ptr())
    };
    assert_eq!(f(6, 7), 42);
    assert_eq!(f(-3, 5), -15);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[test]
fn type_checks_refuse_mismatches() {
    let _serial = serial();
    let c = Closure::new(
        DEFAULT_ABI,
        vec![types::DOUBLE, types::U8],
        types::FLOAT,
        |args, ret| {
            assert_eq!(args.len(), 2);
            assert!(
                args.get::<i32>(0).is_none(),
                "double read as i32 must be refused"
            );
            assert!(args.get::<f64>(2).is_none(), "out of range index");
            assert!(
                ret.set(1.0f64).is_none(),
                "f64 into a float return must be refused"
            );
            assert!(
                ret.set_bytes(&[0; 8]).is_none(),
                "wrong byte count must be refused"
            );
            let x: f64 = args.get(0).unwrap();
            let k: u8 = args.get(1).unwrap();
            assert_eq!(args.bytes(1).unwrap(), &[k]);
            ret.set((x * f64::from(k)) as f32).unwrap();
        },
    )
    .unwrap();
    // SAFETY: float(double, unsigned char), C convention.
    let f = unsafe {
        std::mem::transmute::<*const c_void, extern "C" fn(f64, u8) -> f32>(c.code_ptr())
    };
    assert_eq!(f(1.5, 200), 300.0);
}

/// Every scalar of `statictramp::types` as an argument, called directly
/// with the Rust type of the same C type, and as a return.
#[test]
fn every_scalar_type_of_this_architecture() {
    let _serial = serial();
    let args = vec![
        types::U8,
        types::S8,
        types::U16,
        types::S16,
        types::U32,
        types::S32,
        types::U64,
        types::S64,
        types::FLOAT,
        types::DOUBLE,
        types::POINTER,
    ];
    let c = Closure::new(DEFAULT_ABI, args, types::DOUBLE, |args, ret| {
        let p: *const c_void = args.get(10).unwrap();
        let v = f64::from(args.get::<u8>(0).unwrap())
            + f64::from(args.get::<i8>(1).unwrap()) * 10.0
            + f64::from(args.get::<u16>(2).unwrap()) * 100.0
            + f64::from(args.get::<i16>(3).unwrap()) * 1e3
            + f64::from(args.get::<u32>(4).unwrap()) * 1e4
            + f64::from(args.get::<i32>(5).unwrap()) * 1e5
            + args.get::<u64>(6).unwrap() as f64
            + args.get::<i64>(7).unwrap() as f64
            + f64::from(args.get::<f32>(8).unwrap())
            + args.get::<f64>(9).unwrap()
            + p as usize as f64;
        ret.set(v).unwrap();
    })
    .unwrap();
    type F = extern "C" fn(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, *const c_void) -> f64;
    // SAFETY: the closure's signature, C convention.
    let f = unsafe { std::mem::transmute::<*const c_void, F>(c.code_ptr()) };
    let p = std::ptr::without_provenance::<c_void>(0x1234);
    let got = f(1, -2, 3, -4, 5, -6, 1 << 40, -(1 << 41), 0.5, 0.25, p);
    let want = 1.0 - 20.0 + 300.0 - 4e3 + 5e4 - 6e5 + (1u64 << 40) as f64 - (1u64 << 41) as f64
        + 0.75
        + 4660.0;
    assert_eq!(got, want);

    // And each one as the return type.
    macro_rules! ret_of {
        ($t:expr, $rust:ty, $v:expr) => {{
            let c = Closure::new(DEFAULT_ABI, vec![], $t, |_, ret| {
                ret.set::<$rust>($v).unwrap()
            })
            .unwrap();
            // SAFETY: the closure's signature, C convention.
            let f = unsafe {
                std::mem::transmute::<*const c_void, extern "C" fn() -> $rust>(c.code_ptr())
            };
            assert_eq!(f(), $v, "{:?}", $t);
        }};
    }
    ret_of!(types::U8, u8, 0xfe);
    ret_of!(types::S8, i8, -3);
    ret_of!(types::U16, u16, 0xfedc);
    ret_of!(types::S16, i16, -300);
    ret_of!(types::U32, u32, 0xfedc_ba98);
    ret_of!(types::S32, i32, -70_000);
    ret_of!(types::U64, u64, 0xfedc_ba98_7654_3210);
    ret_of!(types::S64, i64, -(1 << 50));
    ret_of!(types::FLOAT, f32, 1.5);
    ret_of!(types::DOUBLE, f64, -2.75);
    ret_of!(
        types::POINTER,
        *const c_void,
        std::ptr::without_provenance(0x5678)
    );
}

/// A scalar stated with another architecture's layout (x86_64's 8-aligned
/// `double` on i386, i386's 4-aligned one on x86_64) is a bad type here.
#[test]
fn a_scalar_with_another_layout_is_refused() {
    let _serial = serial();
    let other = Type {
        align: if types::DOUBLE.align == 8 { 4 } else { 8 },
        ..types::DOUBLE
    };
    let e = Closure::new(DEFAULT_ABI, vec![other], types::VOID, |_, _| {})
        .err()
        .expect("refused");
    assert!(e.to_string().contains("bad type"), "{e}");
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mixed {
    a: i32,
    b: f32,
    c: f64,
}

#[test]
fn struct_by_value_in_and_out_via_bytes() {
    let _serial = serial();
    let t = Type::structure(vec![types::S32, types::FLOAT, types::DOUBLE]).unwrap();
    assert_eq!(t.size as usize, size_of::<Mixed>());
    let c = Closure::new(DEFAULT_ABI, vec![t.clone(), types::S64], t, |args, ret| {
        let bytes = args.bytes(0).unwrap();
        assert_eq!(bytes.len(), 16);
        // SAFETY: 16 bytes laid out as Mixed.
        let m: Mixed = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let k: i64 = args.get(1).unwrap();
        let out = Mixed {
            a: m.a + k as i32,
            b: m.b * 2.0,
            c: m.c + 0.25,
        };
        // SAFETY: Mixed is plain old data.
        let raw: [u8; 16] = unsafe { std::mem::transmute(out) };
        ret.set_bytes(&raw).unwrap();
    })
    .unwrap();
    // SAFETY: Mixed(Mixed, long long), C convention.
    let f = unsafe {
        std::mem::transmute::<*const c_void, extern "C" fn(Mixed, i64) -> Mixed>(c.code_ptr())
    };
    assert_eq!(
        f(
            Mixed {
                a: 1,
                b: 2.5,
                c: 3.0
            },
            10
        ),
        Mixed {
            a: 11,
            b: 5.0,
            c: 3.25
        }
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn win64_closure_called_with_the_microsoft_convention() {
    let _serial = serial();
    let c = Closure::new(
        Abi::Win64,
        vec![
            Type::S32,
            Type::DOUBLE,
            Type::S64,
            Type::FLOAT,
            Type::S32,
            Type::DOUBLE,
        ],
        Type::DOUBLE,
        |args, ret| {
            let v = f64::from(args.get::<i32>(0).unwrap())
                + args.get::<f64>(1).unwrap()
                + args.get::<i64>(2).unwrap() as f64
                + f64::from(args.get::<f32>(3).unwrap())
                + f64::from(args.get::<i32>(4).unwrap())
                + args.get::<f64>(5).unwrap();
            ret.set(v).unwrap();
        },
    )
    .unwrap();
    // SAFETY: double(int, double, long long, float, int, double), Microsoft x64.
    let f = unsafe {
        std::mem::transmute::<*const c_void, extern "win64" fn(i32, f64, i64, f32, i32, f64) -> f64>(
            c.code_ptr(),
        )
    };
    assert_eq!(f(1, 2.5, 30, 0.25, 400, 5000.0), 5433.75);
}

#[test]
fn dropped_closures_release_their_slots() {
    let _serial = serial();
    let (live_before, _) = statictramp::closure::stats();
    let made: Vec<Closure> = (0..100)
        .map(|i| {
            Closure::new(DEFAULT_ABI, vec![], types::S64, move |_, ret| {
                ret.set(i as i64).unwrap();
            })
            .unwrap()
        })
        .collect();
    for (i, c) in made.iter().enumerate() {
        // SAFETY: long long(void), C convention.
        let f =
            unsafe { std::mem::transmute::<*const c_void, extern "C" fn() -> i64>(c.code_ptr()) };
        assert_eq!(f(), i as i64);
    }
    let (live_during, _) = statictramp::closure::stats();
    assert!(live_during >= live_before + 100);
    drop(made);
    let (live_after, _) = statictramp::closure::stats();
    assert!(
        live_after <= live_during - 100,
        "{live_after} live after dropping 100 of {live_during}"
    );
}

#[test]
fn bad_signatures_are_errors() {
    let _serial = serial();
    // Alignment not a power of two; size 0; a scalar of non-standard size.
    for bad in [
        Type {
            kind: statictramp::Kind::Struct(vec![types::S32]),
            size: 4,
            align: 3,
        },
        Type {
            kind: statictramp::Kind::Struct(vec![]),
            size: 0,
            align: 1,
        },
        Type {
            kind: statictramp::Kind::Struct(vec![Type {
                size: 3,
                ..types::S32
            }]),
            size: 4,
            align: 4,
        },
    ] {
        assert!(
            Closure::new(DEFAULT_ABI, vec![bad.clone()], types::VOID, |_, _| {}).is_err(),
            "{bad:?}"
        );
    }
    assert!(Closure::new(DEFAULT_ABI, vec![types::VOID], types::VOID, |_, _| {}).is_err());
    // A stated layout other than the elements' C layout is not an error
    // (libffi takes it as stated): {int} stated as 3 bytes.
    let stated = Type {
        kind: statictramp::Kind::Struct(vec![types::S32]),
        size: 3,
        align: 4,
    };
    assert!(Closure::new(DEFAULT_ABI, vec![stated], types::VOID, |_, _| {}).is_ok());
}

#[test]
fn another_architectures_abi_is_refused() {
    let _serial = serial();
    // statictramp-abi classifies every architecture's conventions on any
    // host, but only this architecture's entries can run a plan.
    let foreign = if cfg!(target_arch = "x86") {
        Abi::SysV64
    } else {
        Abi::I386SysV
    };
    let e = Closure::new(foreign, vec![types::S32], types::S32, |_, _| {})
        .err()
        .expect("refused");
    assert!(e.to_string().contains("ABI of another architecture"), "{e}");
}

#[test]
fn freed_slots_are_quarantined_before_reuse() {
    let _serial = serial();
    let make = || Closure::new(DEFAULT_ABI, vec![], types::VOID, |_, _| {}).unwrap();
    let first = make();
    let stale = first.code_ptr() as usize;
    drop(first);
    assert_eq!(
        statictramp::capi::statictramp_owns_code(stale as *const c_void),
        0
    );
    // Until QUARANTINE later frees queue up behind it, the freed slot is not
    // handed out again: a stale pointer keeps trapping instead of running a
    // new closure.
    let later: Vec<Closure> = (0..3 * statictramp::quarantine::QUARANTINE)
        .map(|_| make())
        .collect();
    assert!(
        later.iter().all(|c| c.code_ptr() as usize != stale),
        "freed slot reused too early"
    );
    assert_eq!(
        statictramp::capi::statictramp_owns_code(stale as *const c_void),
        0
    );
}
