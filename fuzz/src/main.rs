//! `statictramp-difffuzz`: random signatures and values (generate.rs) called
//! through libffi's `ffi_call` into a statictramp closure whose handler
//! checks every argument byte and writes a return value the caller then
//! checks; optionally the same case through libffi's own closures, whose
//! verdict must agree.
//!
//! ```text
//! statictramp-difffuzz --libffi PATH [--seed S] [--cases N] [--case I] [--compare-libffi]
//! ```
//!
//! PATH: the libffi.so whose `ffi_prep_cif` and `ffi_call` are the caller
//! (libffi 3.6, scripts/build-libffi36: Debian's 3.4.4 `ffi_call`
//! corrupts xmm0 for some INTEGER+SSE structs in r9). It is dlopened
//! privately, so statictramp's closure functions (called here through the
//! crate, not by their C names) and libffi's never meet. On a failure it
//! prints the seed, the case and the command that replays it.
#![allow(unsafe_code)]

mod generate;

use generate::{Case, Target, Ty, code};
use statictramp::capi;
use statictramp::cif::{FfiCif, FfiType};
use statictramp::record::FfiClosure;
use std::ffi::{CString, c_void};
use std::process::ExitCode;

type PrepCif = unsafe extern "C" fn(*mut FfiCif, u32, u32, *mut FfiType, *mut *mut FfiType) -> u32;
type PrepCifVar =
    unsafe extern "C" fn(*mut FfiCif, u32, u32, u32, *mut FfiType, *mut *mut FfiType) -> u32;
type Call = unsafe extern "C" fn(*mut FfiCif, *const c_void, *mut c_void, *mut *mut c_void);
type Handler = unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut *mut c_void, *mut c_void);
type Alloc = unsafe extern "C" fn(usize, *mut *mut c_void) -> *mut c_void;
type PrepClosure =
    unsafe extern "C" fn(*mut FfiClosure, *mut FfiCif, Handler, *mut c_void, *mut c_void) -> u32;
type Free = unsafe extern "C" fn(*mut c_void);

/// libffi's entry points, from the dlopened library.
struct Libffi {
    prep_cif: PrepCif,
    prep_cif_var: PrepCifVar,
    call: Call,
    closure_alloc: Alloc,
    prep_closure_loc: PrepClosure,
    closure_free: Free,
}

impl Libffi {
    fn open(path: &str) -> Result<Libffi, String> {
        let c = CString::new(path).map_err(|_| "bad path".to_string())?;
        // SAFETY: dlopen with a NUL-terminated path; RTLD_LOCAL keeps its
        // symbols out of the global scope.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            return Err(format!("cannot dlopen {path}"));
        }
        let sym = |name: &str| -> Result<usize, String> {
            let n = CString::new(name).unwrap();
            // SAFETY: dlsym on a live handle with a NUL-terminated name.
            let p = unsafe { libc::dlsym(h, n.as_ptr()) } as usize;
            if p == 0 {
                Err(format!("{path} has no {name}"))
            } else {
                Ok(p)
            }
        };
        // SAFETY: each symbol is libffi's function of the named signature
        // (ffi.h), transmuted from its non-null address.
        unsafe {
            Ok(Libffi {
                prep_cif: std::mem::transmute::<usize, PrepCif>(sym("ffi_prep_cif")?),
                prep_cif_var: std::mem::transmute::<usize, PrepCifVar>(sym("ffi_prep_cif_var")?),
                call: std::mem::transmute::<usize, Call>(sym("ffi_call")?),
                closure_alloc: std::mem::transmute::<usize, Alloc>(sym("ffi_closure_alloc")?),
                prep_closure_loc: std::mem::transmute::<usize, PrepClosure>(sym(
                    "ffi_prep_closure_loc",
                )?),
                closure_free: std::mem::transmute::<usize, Free>(sym("ffi_closure_free")?),
            })
        }
    }
}

/// `ffi_type`s built for one case; they live as long as the case.
#[derive(Default)]
struct Types {
    // Boxed: libffi keeps pointers to them while the Vec grows (an inner
    // Vec's buffer, as in `lists`, does not move either).
    #[allow(clippy::vec_box)]
    types: Vec<Box<FfiType>>,
    lists: Vec<Vec<*mut FfiType>>,
}

impl Types {
    fn build(&mut self, t: &Ty) -> *mut FfiType {
        let (size, align, type_, elems) = match t {
            Ty::Void => (1, 1, code::VOID, None),
            Ty::Scalar { code, size, align } => (*size, *align, *code, None),
            Ty::Complex(e) => (
                t.size(),
                t.align(),
                code::COMPLEX,
                Some(vec![self.build(e)]),
            ),
            // libffi computes a struct's layout: size 0 until prepared.
            Ty::Struct(es) => (
                0,
                0,
                code::STRUCT,
                Some(es.iter().map(|e| self.build(e)).collect()),
            ),
        };
        let elements = match elems {
            Some(mut v) => {
                v.push(std::ptr::null_mut());
                self.lists.push(v);
                self.lists.last_mut().unwrap().as_mut_ptr()
            }
            None => std::ptr::null_mut(),
        };
        self.types.push(Box::new(FfiType {
            size,
            alignment: align as u16,
            type_,
            elements,
        }));
        &mut **self.types.last_mut().unwrap() as *mut FfiType
    }
}

/// Bytes of libffi's `ffi_arg` (a pointer's width on these targets).
const FFI_ARG: usize = std::mem::size_of::<usize>();

/// What the handler checks and records for one call.
struct Expect<'a> {
    case: &'a Case,
    calls: u32,
    mismatches: Vec<String>,
}

fn is_int(t: &Ty) -> Option<bool> {
    match t {
        Ty::Scalar { code, .. } => match *code {
            code::SINT8 | code::SINT16 | code::SINT32 | code::SINT64 => Some(true),
            code::UINT8 | code::UINT16 | code::UINT32 | code::UINT64 | code::POINTER => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The handler of every closure: checks each argument against the case,
/// writes the case's return value (integers widened to ffi_arg, as
/// libffi's closure contract asks).
unsafe extern "C-unwind" fn handler(
    _cif: *mut FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: user_data is the &mut Expect the runner passed for this call.
    let e = unsafe { &mut *(ud as *mut Expect) };
    e.calls += 1;
    for (i, (t, want)) in e.case.args.iter().zip(&e.case.arg_vals).enumerate() {
        // SAFETY: libffi passes nargs valid pointers to values of the types.
        let got = unsafe { std::slice::from_raw_parts(*args.add(i) as *const u8, want.len()) };
        for (k, m) in t.mask().iter().enumerate() {
            if *m == 1 && got[k] != want[k] {
                e.mismatches.push(format!(
                    "argument {i} ({}) byte {k}: got {:#04x}, want {:#04x}",
                    t.describe(),
                    got[k],
                    want[k]
                ));
                break;
            }
        }
    }
    let v = &e.case.ret_val;
    match is_int(&e.case.ret) {
        Some(signed) if v.len() < FFI_ARG => {
            let mut raw = [0u8; FFI_ARG];
            raw[..v.len()].copy_from_slice(v);
            let neg = signed && v[v.len() - 1] & 0x80 != 0;
            raw[v.len()..].fill(if neg { 0xff } else { 0 });
            // SAFETY: ret has room for an ffi_arg (libffi's contract).
            unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), ret as *mut u8, FFI_ARG) };
        }
        // SAFETY: ret has room for the return type.
        _ => unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), ret as *mut u8, v.len()) },
    }
}

/// The verdict on one case through one backend.
#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    /// The backend's prep refused (status).
    Refused(u32),
    Wrong(Vec<String>),
}

/// Allocates, prepares and calls a closure for `case` through `backend`
/// (`None`: statictramp, else libffi's own), with libffi's ffi_call.
fn run_one(ffi: &Libffi, cif: &mut FfiCif, case: &Case, own: bool) -> Verdict {
    let mut code: *mut c_void = std::ptr::null_mut();
    // SAFETY: the closure functions with their documented arguments; the
    // closure is freed before returning.
    let cl = unsafe {
        if own {
            (ffi.closure_alloc)(std::mem::size_of::<FfiClosure>(), &mut code)
        } else {
            capi::ffi_closure_alloc(std::mem::size_of::<FfiClosure>(), &mut code)
        }
    } as *mut FfiClosure;
    if cl.is_null() {
        return Verdict::Wrong(vec!["ffi_closure_alloc failed".into()]);
    }
    let mut expect = Expect {
        case,
        calls: 0,
        mismatches: Vec::new(),
    };
    let ud = &mut expect as *mut Expect as *mut c_void;
    // SAFETY: a live closure record, a prepared cif that outlives it.
    let st = unsafe {
        if own {
            (ffi.prep_closure_loc)(cl, cif, handler, ud, code)
        } else {
            capi::ffi_prep_closure_loc(cl, cif, Some(handler), ud, code)
        }
    };
    if st != 0 {
        // SAFETY: freeing what the same backend allocated.
        unsafe {
            if own {
                (ffi.closure_free)(cl.cast())
            } else {
                capi::ffi_closure_free(cl.cast())
            }
        };
        return Verdict::Refused(st);
    }
    let mut vals: Vec<Vec<u8>> = case
        .arg_vals
        .iter()
        .map(|v| {
            let mut b = v.clone();
            b.resize(v.len().max(16), 0);
            b
        })
        .collect();
    let mut avalue: Vec<*mut c_void> = vals.iter_mut().map(|v| v.as_mut_ptr().cast()).collect();
    let mut rbuf = vec![0xa5u8; case.ret.size().max(16) + 32];
    // SAFETY: a prepared cif, the closure's code, a return buffer larger
    // than the type and ffi_arg, and nargs argument pointers.
    unsafe { (ffi.call)(cif, code, rbuf.as_mut_ptr().cast(), avalue.as_mut_ptr()) };
    // SAFETY: as above.
    unsafe {
        if own {
            (ffi.closure_free)(cl.cast())
        } else {
            capi::ffi_closure_free(cl.cast())
        }
    };
    let mut wrong = expect.mismatches;
    if expect.calls != 1 {
        wrong.push(format!("the handler ran {} times", expect.calls));
    }
    if case.ret != Ty::Void {
        let mask = case.ret.mask();
        let want = &case.ret_val;
        if let Some(k) = (0..want.len()).find(|&k| mask[k] == 1 && rbuf[k] != want[k]) {
            wrong.push(format!(
                "return ({}) byte {k}: got {:#04x}, want {:#04x}",
                case.ret.describe(),
                rbuf[k],
                want[k]
            ));
        }
    }
    if wrong.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Wrong(wrong)
    }
}

/// Prepares the cif of a case with libffi; `Err(status)` if libffi
/// refuses it, `Err` text if libffi's struct layout differs from ours.
fn prep(ffi: &Libffi, types: &mut Types, case: &Case, cif: &mut FfiCif) -> Result<(), String> {
    let mut args: Vec<*mut FfiType> = case.args.iter().map(|t| types.build(t)).collect();
    let rtype = types.build(&case.ret);
    let argp = args.as_mut_ptr();
    types.lists.push(args);
    let n = case.args.len() as u32;
    // SAFETY: a zeroed cif, types that live in `types` for the case.
    let st = unsafe {
        match case.nfixed {
            Some(f) => (ffi.prep_cif_var)(cif, case.abi, f as u32, n, rtype, argp),
            None => (ffi.prep_cif)(cif, case.abi, n, rtype, argp),
        }
    };
    if st != 0 {
        return Err(format!("libffi's ffi_prep_cif refused it (status {st})"));
    }
    for (i, t) in case.args.iter().enumerate() {
        // SAFETY: the prepared cif's argument types.
        let lt = unsafe { &**cif.arg_types.add(i) };
        if (lt.size, lt.alignment as usize) != t.layout() {
            return Err(format!(
                "generator bug: argument {i} {} laid out {}/{} by libffi, {:?} here",
                t.describe(),
                lt.size,
                lt.alignment,
                t.layout()
            ));
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
fn target() -> Target {
    // libffi's x86_64 ABI numbers: FFI_UNIX64 2, FFI_WIN64 3, FFI_GNUW64 4.
    Target {
        abis: &[2, 2, 2, 3, 4],
        x87_ok: |abi| abi == 2,
        complex_ok: |abi| abi == 2,
    }
}

#[cfg(target_arch = "x86")]
fn target() -> Target {
    // libffi's i386 ABI numbers (ffitarget.h, not X86_WIN32): FFI_SYSV 1,
    // FFI_STDCALL 5, FFI_MS_CDECL 8.
    // Not THISCALL, FASTCALL, PASCAL or REGISTER: libffi's ffi_call is
    // wrong for many of their signatures (docs/design.md, "libffi's i386
    // closures: what they get wrong"); tests/i386_callers.rs checks those
    // with compiled callers instead.
    Target {
        abis: &[1, 1, 5, 8],
        x87_ok: |_| true,
        complex_ok: |_| true,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let Some(lib) = opt("--libffi") else {
        eprintln!(
            "usage: statictramp-difffuzz --libffi PATH [--seed S] [--cases N] [--case I] [--compare-libffi]"
        );
        return ExitCode::from(2);
    };
    let seed: u64 = opt("--seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    let cases: u64 = opt("--cases")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let only: Option<u64> = opt("--case").and_then(|s| s.parse().ok());
    let compare = args.iter().any(|a| a == "--compare-libffi");
    let ffi = match Libffi::open(&lib) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("statictramp-difffuzz: {e}");
            return ExitCode::from(2);
        }
    };
    let t = target();
    let range = match only {
        Some(i) => i..i + 1,
        None => 0..cases,
    };
    let (mut ok, mut refused_by_libffi, mut failed, mut disagree) = (0u64, 0u64, 0u64, 0u64);
    for i in range {
        let case = generate::case(&t, seed, i);
        let mut types = Types::default();
        let mut cif_buf = [0u64; 16];
        // SAFETY: a zeroed, aligned buffer larger than libffi's ffi_cif.
        let cif = unsafe { &mut *(cif_buf.as_mut_ptr() as *mut FfiCif) };
        match prep(&ffi, &mut types, &case, cif) {
            Ok(()) => {}
            Err(e) if e.starts_with("libffi's") => {
                refused_by_libffi += 1;
                if only.is_some() {
                    println!("case {i}: {}: {e}", case.describe());
                }
                continue;
            }
            Err(e) => {
                failed += 1;
                println!("case {i}: {}: {e}", case.describe());
                continue;
            }
        }
        let ours = run_one(&ffi, cif, &case, false);
        let verdict_ok = ours == Verdict::Ok;
        if !verdict_ok || only.is_some() {
            println!("case {i}: {}: statictramp: {ours:?}", case.describe());
        }
        if verdict_ok {
            ok += 1;
        } else {
            failed += 1;
            println!(
                "  reproduce: cargo run --release -p statictramp-fuzz -- --libffi {lib} --seed {seed} --case {i}"
            );
        }
        if compare {
            let theirs = run_one(&ffi, cif, &case, true);
            if (theirs == Verdict::Ok) != verdict_ok {
                disagree += 1;
                println!(
                    "case {i}: {}: libffi's own closure: {theirs:?}, statictramp: {ours:?}",
                    case.describe()
                );
            }
        }
    }
    println!(
        "seed {seed}: {ok} cases passed, {failed} failed, {refused_by_libffi} refused by libffi's \
         ffi_prep_cif{}",
        if compare {
            format!(", {disagree} where libffi's own closures disagree")
        } else {
            String::new()
        }
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
