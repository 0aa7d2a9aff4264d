//! The caller's libffi: `ffi_prep_cif`, `ffi_call` and libffi's own closure
//! functions, from a libffi.so dlopened privately (RTLD_LOCAL), so that
//! statictramp's closure functions (called through the crate, not by their
//! C names) and libffi's never meet in one symbol scope.

use crate::generate::Target;
use statictramp::cif::{FfiCif, FfiType};
use statictramp::record::FfiClosure;
use std::ffi::{CString, c_void};

pub type PrepCif =
    unsafe extern "C" fn(*mut FfiCif, u32, u32, *mut FfiType, *mut *mut FfiType) -> u32;
pub type PrepCifVar =
    unsafe extern "C" fn(*mut FfiCif, u32, u32, u32, *mut FfiType, *mut *mut FfiType) -> u32;
pub type Call = unsafe extern "C" fn(*mut FfiCif, *const c_void, *mut c_void, *mut *mut c_void);
pub type Handler =
    unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut *mut c_void, *mut c_void);
pub type Alloc = unsafe extern "C" fn(usize, *mut *mut c_void) -> *mut c_void;
pub type PrepClosure =
    unsafe extern "C" fn(*mut FfiClosure, *mut FfiCif, Handler, *mut c_void, *mut c_void) -> u32;
pub type Free = unsafe extern "C" fn(*mut c_void);

/// libffi's entry points, from the dlopened library.
pub struct Libffi {
    pub prep_cif: PrepCif,
    pub prep_cif_var: PrepCifVar,
    pub call: Call,
    pub closure_alloc: Alloc,
    pub prep_closure_loc: PrepClosure,
    pub closure_free: Free,
}

impl Libffi {
    pub fn open(path: &str) -> Result<Libffi, String> {
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

/// libffi's x86_64 ABI number FFI_UNIX64.
pub const UNIX64: u32 = 2;

/// The ABIs and types this target's libffi takes.
#[cfg(target_arch = "x86_64")]
pub fn target() -> Target {
    // libffi's x86_64 ABI numbers: FFI_UNIX64 2, FFI_WIN64 3, FFI_GNUW64 4.
    Target {
        abis: &[UNIX64, UNIX64, UNIX64, 3, 4],
        x87_ok: |abi| abi == UNIX64,
        complex_ok: |abi| abi == UNIX64,
        regs_by_walk: |abi| abi == UNIX64,
    }
}

/// The ABIs and types this target's libffi takes.
#[cfg(target_arch = "x86")]
pub fn target() -> Target {
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
        regs_by_walk: |_| false,
    }
}
