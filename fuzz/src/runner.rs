//! One case through the caller's `ffi_call` into a statictramp closure and,
//! optionally, into libffi's own closure on the same prepared cif. The
//! handler of both checks every argument byte the caller sends and writes
//! the case's return value, which the caller then checks.

use crate::generate::{Case, Ty, code};
use crate::libffi::{Libffi, UNIX64};
use statictramp::capi;
use statictramp::cif::{FfiCif, FfiType};
use statictramp::record::FfiClosure;
use std::ffi::c_void;

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
            // ctypes' Structure without _fields_: all zero, no elements.
            Ty::Zeroed => (0, 0, code::VOID, None),
            Ty::Scalar { code, size, align } => (*size, *align, *code, None),
            Ty::Complex(e) => (
                t.size(),
                t.align(),
                code::COMPLEX,
                Some(vec![self.build(e)]),
            ),
            // libffi computes a struct's layout when its size is 0.
            Ty::Struct { elems, stated } => {
                let (size, align) = stated.unwrap_or((0, 0));
                let list = elems.iter().map(|e| self.build(e)).collect();
                (size, align, code::STRUCT, Some(list))
            }
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
    /// The argument list and return type of `case`, built afresh.
    fn signature(&mut self, case: &Case) -> (*mut *mut FfiType, *mut FfiType) {
        let mut args: Vec<*mut FfiType> = case.args.iter().map(|t| self.build(t)).collect();
        let rtype = self.build(&case.ret);
        let argp = args.as_mut_ptr();
        self.lists.push(args);
        (argp, rtype)
    }
}

/// A zeroed buffer larger than libffi's `ffi_cif` (which has more fields
/// than the ones statictramp reads).
#[repr(C, align(16))]
struct CifBuf([u64; 16]);

impl CifBuf {
    fn cif(&mut self) -> &mut FfiCif {
        // SAFETY: a zeroed, 16-aligned buffer larger than libffi's ffi_cif;
        // FfiCif is its prefix and all-zero bytes are a valid FfiCif.
        unsafe { &mut *(self.0.as_mut_ptr() as *mut FfiCif) }
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

/// The handler of every closure: checks each argument against the case
/// (the bytes of its mask), writes the case's return value (integers
/// widened to ffi_arg, as libffi's closure contract asks).
unsafe extern "C-unwind" fn handler(
    _cif: *mut FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: user_data is the &mut Expect the runner passed for this call.
    let e = unsafe { &mut *(ud as *mut Expect) };
    e.calls += 1;
    let c = e.case;
    for (i, ((t, want), mask)) in c.args.iter().zip(&c.arg_vals).zip(&c.arg_masks).enumerate() {
        // SAFETY: libffi passes nargs valid pointers to values of the types.
        let got = unsafe { std::slice::from_raw_parts(*args.add(i) as *const u8, want.len()) };
        if let Some(k) = (0..want.len()).find(|&k| mask[k] == 1 && got[k] != want[k]) {
            e.mismatches.push(format!(
                "argument {i} ({}) byte {k}: got {:#04x}, want {:#04x}",
                t.describe(),
                got[k],
                want[k]
            ));
        }
    }
    let v = &c.ret_val;
    match is_int(&c.ret) {
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
pub enum Verdict {
    Ok,
    /// The backend's prep refused (status).
    Refused(u32),
    Wrong(Vec<String>),
}

/// Allocates, prepares and calls a closure for `case` through statictramp
/// (`own` false) or libffi's own closures, with libffi's `ffi_call`.
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
    let free = |cl: *mut FfiClosure| {
        // SAFETY: freeing what the same backend allocated, once.
        unsafe {
            if own {
                (ffi.closure_free)(cl.cast())
            } else {
                capi::ffi_closure_free(cl.cast())
            }
        }
    };
    if st != 0 {
        free(cl);
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
    // than the type and ffi_arg, and nargs argument pointers (each buffer
    // at least 16 bytes: ffi_call reads whole eightbytes of a struct).
    unsafe { (ffi.call)(cif, code, rbuf.as_mut_ptr().cast(), avalue.as_mut_ptr()) };
    free(cl);
    let mut wrong = expect.mismatches;
    if expect.calls != 1 {
        wrong.push(format!("the handler ran {} times", expect.calls));
    }
    if case.ret != Ty::Void {
        let (mask, want) = (&case.ret_mask, &case.ret_val);
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

/// Prepares the cif of a case with libffi: `Ok(false)` if libffi's
/// `ffi_prep_cif` refused it, `Err` if libffi laid out an argument
/// differently from the generator (a generator bug).
fn prep(ffi: &Libffi, types: &mut Types, case: &Case, cif: &mut FfiCif) -> Result<bool, String> {
    let (argp, rtype) = types.signature(case);
    let n = case.args.len() as u32;
    // SAFETY: a zeroed cif, types that live in `types` for the case.
    let st = unsafe {
        match case.nfixed {
            Some(f) => (ffi.prep_cif_var)(cif, case.abi, f as u32, n, rtype, argp),
            None => (ffi.prep_cif)(cif, case.abi, n, rtype, argp),
        }
    };
    if st != 0 {
        return Ok(false);
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
    Ok(true)
}

/// statictramp's `ffi_prep_closure_loc` on the case's signature as the
/// client built it (fresh types, which libffi's failed `ffi_prep_cif` did
/// not touch), in a cif filled in by hand: its status.
fn statictramp_prep_status(case: &Case) -> u32 {
    let mut types = Types::default();
    let (arg_types, rtype) = types.signature(case);
    let mut buf = CifBuf([0; 16]);
    let cif = buf.cif();
    cif.abi = case.abi;
    cif.nargs = case.args.len() as u32;
    cif.arg_types = arg_types;
    cif.rtype = rtype;
    let mut code: *mut c_void = std::ptr::null_mut();
    // SAFETY: the closure functions with their documented arguments; the
    // closure is freed before returning and never called.
    unsafe {
        let cl = capi::ffi_closure_alloc(std::mem::size_of::<FfiClosure>(), &mut code)
            as *mut FfiClosure;
        if cl.is_null() {
            return u32::MAX;
        }
        let st = capi::ffi_prep_closure_loc(cl, cif, Some(handler), std::ptr::null_mut(), code);
        capi::ffi_closure_free(cl.cast());
        st
    }
}

/// A struct argument libffi's own closure reads wrongly while `ffi_call`
/// and statictramp agree: on UNIX64, a struct in registers one of whose
/// eightbytes libffi's walk leaves empty (NO_CLASS); `ffi_call` sends
/// nothing for it, libffi's closure still takes a register for it
/// (`ffi_closure_unix64_inner`) and misreads the arguments after it
/// (docs/design.md, "Stated struct layouts").
fn no_class_struct_arg(case: &Case) -> Option<usize> {
    if case.abi != UNIX64 {
        return None;
    }
    case.args.iter().zip(&case.arg_masks).position(|(t, m)| {
        matches!(t, Ty::Struct { .. })
            && (1..=16).contains(&t.size())
            && m.chunks(8).any(|w| w.iter().all(|&b| b == 0))
    })
}

/// How libffi's own closure's verdict compares with statictramp's.
#[derive(Debug, PartialEq)]
pub enum Agreement {
    /// Not compared (no `--compare-libffi`, or the case was refused).
    NotCompared,
    Same,
    /// libffi's own closure fails where statictramp passes, by its known
    /// NO_CLASS defect (the argument's index).
    KnownLibffiDefect(usize),
    /// Any other difference: reported as a failure.
    Differs(String),
}

/// The result of one case.
#[derive(Debug)]
pub struct Outcome {
    /// What is wrong with statictramp or with the generator's model of
    /// libffi; empty if the case passed.
    pub failures: Vec<String>,
    /// libffi's `ffi_prep_cif` refused the case, as the generator expected,
    /// and statictramp's `ffi_prep_closure_loc` refused it too.
    pub refused: bool,
    pub agreement: Agreement,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && !matches!(self.agreement, Agreement::Differs(_))
    }
}

/// Runs `case`: libffi prepares the cif, its `ffi_call` calls a statictramp
/// closure and (with `compare`) libffi's own closure. A case the generator
/// expects libffi to refuse must be refused by libffi's `ffi_prep_cif` and
/// by statictramp's `ffi_prep_closure_loc`.
pub fn run_case(ffi: &Libffi, case: &Case, compare: bool) -> Outcome {
    let mut out = Outcome {
        failures: Vec::new(),
        refused: false,
        agreement: Agreement::NotCompared,
    };
    let mut types = Types::default();
    let mut buf = CifBuf([0; 16]);
    let cif = buf.cif();
    match prep(ffi, &mut types, case, cif) {
        Err(e) => out.failures.push(e),
        Ok(false) if case.refused => {
            let st = statictramp_prep_status(case);
            if st == 0 {
                out.failures.push(
                    "libffi's ffi_prep_cif refused it, statictramp's ffi_prep_closure_loc \
                     accepted it"
                        .into(),
                );
            } else {
                out.refused = true;
            }
        }
        Ok(false) => out
            .failures
            .push("generator bug: libffi's ffi_prep_cif refused it unexpectedly".into()),
        Ok(true) if case.refused => out
            .failures
            .push("generator bug: libffi's ffi_prep_cif accepted it, refusal expected".into()),
        Ok(true) => {
            let ours = run_one(ffi, cif, case, false);
            if ours != Verdict::Ok {
                out.failures.push(format!("statictramp: {ours:?}"));
            }
            if compare {
                let theirs = run_one(ffi, cif, case, true);
                out.agreement = if (theirs == Verdict::Ok) == (ours == Verdict::Ok) {
                    Agreement::Same
                } else if let (Verdict::Ok, Verdict::Wrong(_), Some(i)) =
                    (&ours, &theirs, no_class_struct_arg(case))
                {
                    Agreement::KnownLibffiDefect(i)
                } else {
                    Agreement::Differs(format!(
                        "libffi's own closure: {theirs:?}, statictramp: {ours:?}"
                    ))
                };
            }
        }
    }
    out
}
