//! libffi's closure API as C exports: `ffi_closure_alloc`,
//! `ffi_closure_free`, `ffi_prep_closure`, `ffi_prep_closure_loc`,
//! `ffi_prep_raw_closure`, `ffi_prep_raw_closure_loc`,
//! `ffi_prep_java_raw_closure`, `ffi_prep_java_raw_closure_loc`.
//!
//! The functions exist in every build; they are exported under libffi's
//! names only with the `capi` feature, which the C library crate
//! (`capi/`: libstatictramp.so, libstatictramp.a, and from it the preload
//! library) turns on. A Rust program that depends on this crate and links
//! libffi therefore keeps libffi's closure API unless it asks for ours.
//!
//! Loaded with LD_PRELOAD (or linked ahead of -lffi) these replace libffi's
//! definitions; `ffi_prep_cif` and `ffi_call` stay libffi's. The preload
//! library built by scripts/build-preload gives them libffi's version node
//! LIBFFI_CLOSURE_8.0.
//!
//! Status codes follow libffi: FFI_OK, FFI_BAD_TYPEDEF for malformed types,
//! FFI_BAD_ABI for ABIs this architecture lacks, FFI_BAD_ARGTYPE for NULL or
//! stale closure pointers. With STATICTRAMP_DEBUG set in the environment,
//! every refusal is also explained on stderr.
//!
//! # Signals
//!
//! Calling a prepared closure through its code pointer is
//! async-signal-safe (no lock, allocation, system call or thread-local
//! storage on the call path), also when the signal interrupted one of the
//! functions below on the same thread. The functions below are not: from
//! a signal handler they can deadlock on a lock the interrupted thread
//! holds (the pool lock during a cache refill or spill and around every
//! larger record; the plan-table lock at a thread's first prep of a
//! signature) or re-enter malloc. docs/design.md, "Signals and
//! async-signal safety"; tests/signals.rs.
//!
//! # Stale pointers
//!
//! A freed closure's record and code address are reused only after the
//! quarantine (src/quarantine.rs): more than 64 later frees queued behind
//! it (the freeing thread's, for an `ffi_closure`-sized record; its size
//! class's, for a larger one), or earlier when fresh memory runs out.
//! Until then a call through the code aborts with a diagnostic, a second
//! free aborts as a double free and a prep returns FFI_BAD_ARGTYPE; after
//! it the pointer is the new owner's (a stale call runs, and a stale free
//! frees, the new closure). docs/design.md, "Stale pointers: the
//! guarantee"; tests/stale.rs.
#![allow(unsafe_code)]

use crate::cif::{FfiCif, Fun, Status};
use crate::closure;
use crate::dispatch::{debug_enabled, diag};
use crate::owner::Owner;
use crate::raw::{self, FfiRawClosure, RawFun};
use crate::record::FfiClosure;
use std::os::raw::c_void;
use std::sync::OnceLock;

/// Registers the fork handlers and opens the template's image file when the
/// library is loaded (see src/fork.rs and src/map/source.rs for why load
/// time). Kept in the module of the C exports so that linking any of them
/// from the staticlib links this too; only in the C library (the `capi`
/// feature): a Rust program using the crate registers lazily instead.
#[cfg(feature = "capi")]
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER_FORK_HANDLERS_AT_LOAD: extern "C" fn() = {
    extern "C" fn at_load() {
        crate::fork::register();
        crate::map::open_image_at_load();
        crate::stats::init_at_load();
    }
    at_load
};

#[cold]
#[inline(never)]
fn refuse(what: &str, why: &dyn std::fmt::Display, status: Status) -> u32 {
    crate::stats::refused(status.libffi_name(), why);
    if debug_enabled() {
        diag(&format!("{what}: {why} (returning {status:?})"));
    }
    status as u32
}

/// `void *ffi_closure_alloc(size_t size, void **code)`: writable memory of
/// at least `size` bytes laid out as an `ffi_closure`, and in `*code` the
/// address to call. NULL (errno ENOMEM or EINVAL) on failure. Not
/// async-signal-safe (module docs, "Signals").
///
/// # Safety
/// `code` must be NULL or writable.
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_closure_alloc(size: usize, code: *mut *mut c_void) -> *mut c_void {
    if code.is_null() {
        set_errno(libc::EINVAL);
        return std::ptr::null_mut();
    }
    match closure::alloc(size) {
        Ok((rec, entry)) => {
            // SAFETY: `code` is non-null and writable per the contract.
            unsafe { *code = entry as *mut c_void };
            rec.cast()
        }
        Err(e) => alloc_failed(size, e),
    }
}

/// `ffi_closure_alloc` failed: NULL with errno ENOMEM.
#[cold]
#[inline(never)]
fn alloc_failed(size: usize, e: closure::AllocError) -> *mut c_void {
    crate::stats::alloc_failed();
    if debug_enabled() {
        diag(&format!("ffi_closure_alloc({size}): {e:?}"));
    }
    set_errno(libc::ENOMEM);
    std::ptr::null_mut()
}

fn set_errno(e: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

type FreeFn = unsafe extern "C" fn(*mut c_void);

/// The next definition of `ffi_closure_free` after ours (libffi's, when
/// both are loaded), for pointers libffi allocated.
fn next_free() -> Option<FreeFn> {
    static NEXT: OnceLock<usize> = OnceLock::new();
    let p = *NEXT.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"ffi_closure_free".as_ptr()) } as usize;
        if p == ffi_closure_free as *const () as usize {
            0
        } else {
            p
        }
    });
    // SAFETY: a non-null result of dlsym for `ffi_closure_free` is a
    // function with this signature.
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, FreeFn>(p) })
}

/// `void ffi_closure_free(void *)`. Our records go back to the pool (their
/// code then traps until reused, after the quarantine: module docs, "Stale
/// pointers"); pointers from another libffi are handed to its
/// `ffi_closure_free`; a double free is reported and aborts. Not
/// async-signal-safe.
///
/// # Safety
/// `ptr` must be NULL or a pointer from an `ffi_closure_alloc`.
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_closure_free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    match closure::free(ptr) {
        Owner::Live { .. } => {}
        // SAFETY: forwarded contract.
        other => unsafe { free_refused(ptr, other) },
    }
}

/// `ffi_closure_free` of a pointer that is not a live record of ours.
///
/// # Safety
/// As [`ffi_closure_free`].
#[cold]
#[inline(never)]
unsafe fn free_refused(ptr: *mut c_void, owner: Owner) {
    match owner {
        Owner::Live { .. } => {}
        Owner::Freed => {
            diag(&format!(
                "ffi_closure_free({ptr:p}): double free of a closure; aborting"
            ));
            std::process::abort();
        }
        Owner::Corrupt => {
            diag(&format!(
                "ffi_closure_free({ptr:p}): not a closure from ffi_closure_alloc (interior pointer or corrupt record); aborting"
            ));
            std::process::abort();
        }
        Owner::Foreign => match next_free() {
            // SAFETY: the pointer was not allocated by us; the next
            // ffi_closure_free in the link order owns it.
            Some(f) => unsafe { f(ptr) },
            None => diag(&format!(
                "ffi_closure_free({ptr:p}): not allocated by statictramp and no other libffi is loaded; ignored"
            )),
        },
    }
}

/// `ffi_status ffi_prep_closure_loc(ffi_closure*, ffi_cif*, fun, void *user_data, void *codeloc)`.
///
/// For records from `ffi_closure_alloc`, `codeloc` is not needed (the code
/// address was fixed at allocation) and is ignored, as libffi's static
/// trampolines do. For other memory, a classic trampoline is written into
/// `closure->tramp`, to be executed at `codeloc` (the caller's alias).
/// Not async-signal-safe (module docs, "Signals"); the closure it prepared
/// may be called from a signal handler.
///
/// # Safety
/// As libffi's: `closure` from ffi_closure_alloc or writable memory the
/// caller owns; `cif` a prepared cif outliving the closure.
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_prep_closure_loc(
    closure: *mut FfiClosure,
    cif: *mut FfiCif,
    fun: Option<Fun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> u32 {
    // SAFETY: forwarded contract.
    match unsafe { closure::prep(closure, cif, fun, user_data, codeloc) } {
        Ok(()) => Status::Ok as u32,
        Err(e) => refuse("ffi_prep_closure_loc", &e, e.status()),
    }
}

/// `ffi_status ffi_prep_closure(ffi_closure*, ffi_cif*, fun, void *user_data)`:
/// libffi's deprecated form, `ffi_prep_closure_loc(closure, ..., closure)`.
///
/// # Safety
/// As [`ffi_prep_closure_loc`].
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_prep_closure(
    closure: *mut FfiClosure,
    cif: *mut FfiCif,
    fun: Option<Fun>,
    user_data: *mut c_void,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { ffi_prep_closure_loc(closure, cif, fun, user_data, closure.cast()) }
}

/// The raw preps' common tail: libffi's status, or a refusal explained.
fn raw_status(what: &str, r: Result<(), raw::RawPrepError>) -> u32 {
    match r {
        Ok(()) => Status::Ok as u32,
        Err(e) => refuse(what, &e, e.status()),
    }
}

/// `ffi_status ffi_prep_raw_closure_loc(ffi_raw_closure*, ffi_cif*, fun, void*, void *codeloc)`.
///
/// # Safety
/// As [`ffi_prep_closure_loc`].
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_prep_raw_closure_loc(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: Option<RawFun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> u32 {
    raw_status(
        "ffi_prep_raw_closure_loc",
        // SAFETY: forwarded contract.
        unsafe { raw::prep_raw(cl, cif, fun, user_data, codeloc) },
    )
}

/// `ffi_status ffi_prep_raw_closure(ffi_raw_closure*, ffi_cif*, fun, void*)`.
///
/// # Safety
/// As [`ffi_prep_closure_loc`].
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_prep_raw_closure(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: Option<RawFun>,
    user_data: *mut c_void,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { ffi_prep_raw_closure_loc(cl, cif, fun, user_data, cl.cast()) }
}

/// `ffi_status ffi_prep_java_raw_closure_loc(ffi_java_raw_closure*, ffi_cif*, fun, void*, void *codeloc)`.
/// Struct and complex arguments, on which libffi aborts at call time, are
/// refused with FFI_BAD_TYPEDEF.
///
/// # Safety
/// As [`ffi_prep_closure_loc`].
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_prep_java_raw_closure_loc(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: Option<RawFun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> u32 {
    raw_status(
        "ffi_prep_java_raw_closure_loc",
        // SAFETY: forwarded contract.
        unsafe { raw::prep_java(cl, cif, fun, user_data, codeloc) },
    )
}

/// `ffi_status ffi_prep_java_raw_closure(ffi_java_raw_closure*, ffi_cif*, fun, void*)`.
///
/// # Safety
/// As [`ffi_prep_closure_loc`].
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub unsafe extern "C" fn ffi_prep_java_raw_closure(
    cl: *mut FfiRawClosure,
    cif: *mut FfiCif,
    fun: Option<RawFun>,
    user_data: *mut c_void,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { ffi_prep_java_raw_closure_loc(cl, cif, fun, user_data, cl.cast()) }
}

/// `int statictramp_owns_code(const void *code)`: 1 if `code` is the code
/// address of a live statictramp closure, else 0. Lets programs (and the
/// README's demo) check that their callbacks run on statictramp.
#[cfg_attr(feature = "capi", unsafe(no_mangle))]
pub extern "C" fn statictramp_owns_code(code: *const c_void) -> i32 {
    i32::from(closure::owns_code(code as usize))
}
