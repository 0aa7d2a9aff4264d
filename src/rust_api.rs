//! The safe Rust API: closures without libffi.
//!
//! ```
//! use statictramp::{Closure, DEFAULT_ABI, Type};
//! let add = Closure::new(DEFAULT_ABI, vec![Type::S32, Type::S32], Type::S32, |args, ret| {
//!     let (a, b): (i32, i32) = (args.get(0).unwrap(), args.get(1).unwrap());
//!     ret.set(a + b).unwrap();
//! })
//! .unwrap();
//! // SAFETY: the closure's signature is int(int, int) in the C calling convention.
//! let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(add.code_ptr()) };
//! assert_eq!(f(2, 40), 42);
//! ```
#![allow(unsafe_code)]

use crate::closure::{self, AllocError, PrepError};
use crate::record::FfiClosure;
use statictramp_abi::{Abi, Kind, Signature, Type};
use std::os::raw::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Why a closure could not be made.
#[derive(Debug)]
pub enum Error {
    Alloc(AllocError),
    Prep(PrepError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Alloc(e) => write!(f, "cannot allocate a closure: {e:?}"),
            Error::Prep(e) => write!(f, "cannot prepare the closure: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// A scalar type that crosses the closure boundary by value.
pub trait Scalar: Copy {
    /// Whether a value of this Rust type may be read from / written to a
    /// slot of libffi kind `k`.
    fn matches(k: &Kind) -> bool;
}

macro_rules! scalar {
    ($($t:ty => $k:path;)*) => {$(
        impl Scalar for $t {
            fn matches(k: &Kind) -> bool { matches!(k, $k) }
        }
    )*};
}

scalar! {
    u8 => Kind::U8; i8 => Kind::S8; u16 => Kind::U16; i16 => Kind::S16;
    u32 => Kind::U32; i32 => Kind::S32; u64 => Kind::U64; i64 => Kind::S64;
    f32 => Kind::Float; f64 => Kind::Double;
    *const c_void => Kind::Pointer; *mut c_void => Kind::Pointer;
}

/// The arguments of one call.
pub struct Args<'a> {
    sig: &'a Signature,
    avalue: *const *const u8,
}

impl Args<'_> {
    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.sig.args.len()
    }

    /// Whether the signature has no arguments.
    pub fn is_empty(&self) -> bool {
        self.sig.args.is_empty()
    }

    /// Argument `i` as `T`, if it exists and has that type.
    pub fn get<T: Scalar>(&self, i: usize) -> Option<T> {
        let t = self.sig.args.get(i)?;
        if !T::matches(&t.kind) {
            return None;
        }
        // SAFETY: avalue[i] points at a live value of argument i's type,
        // which T matches.
        Some(unsafe { (*self.avalue.add(i) as *const T).read_unaligned() })
    }

    /// The bytes of argument `i` (any type, e.g. a struct).
    pub fn bytes(&self, i: usize) -> Option<&[u8]> {
        let t = self.sig.args.get(i)?;
        // SAFETY: avalue[i] points at `t.size` bytes valid for this call.
        Some(unsafe { std::slice::from_raw_parts(*self.avalue.add(i), t.size as usize) })
    }
}

/// The return value of one call.
pub struct Ret<'a> {
    ty: &'a Type,
    ptr: *mut u8,
}

impl Ret<'_> {
    /// Sets the return value; `None` if the signature returns another type.
    pub fn set<T: Scalar>(&mut self, v: T) -> Option<()> {
        if !T::matches(&self.ty.kind) {
            return None;
        }
        // SAFETY: the return buffer holds at least a value of the return
        // type, which T matches.
        unsafe { (self.ptr as *mut T).write_unaligned(v) };
        Some(())
    }

    /// Sets the return value from its bytes; `None` unless `bytes` has
    /// exactly the return type's size.
    pub fn set_bytes(&mut self, bytes: &[u8]) -> Option<()> {
        if self.ty.kind == Kind::Void || bytes.len() as u64 != self.ty.size {
            return None;
        }
        // SAFETY: the buffer holds `ty.size` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr, bytes.len()) };
        Some(())
    }
}

type Handler = dyn Fn(&Args<'_>, &mut Ret<'_>) + Send + Sync;

struct State {
    sig: Signature,
    handler: Box<Handler>,
}

/// A callable function pointer that runs a Rust closure.
pub struct Closure {
    rec: *mut FfiClosure,
    code: usize,
    state: *mut State,
}

// SAFETY: the record is only written at creation and drop (&mut self); the
// handler is Send + Sync.
unsafe impl Send for Closure {}
// SAFETY: as above.
unsafe impl Sync for Closure {}

unsafe extern "C-unwind" fn call_handler(
    _cif: *mut crate::cif::FfiCif,
    ret: *mut c_void,
    avalue: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: `ud` is the State of a live Closure (freed only after the
    // record, so never while callable).
    let st = unsafe { &*(ud as *const State) };
    let args = Args {
        sig: &st.sig,
        avalue: avalue as *const *const u8,
    };
    let mut r = Ret {
        ty: &st.sig.ret,
        ptr: ret.cast(),
    };
    // A panic must not unwind into the C caller.
    if catch_unwind(AssertUnwindSafe(|| (st.handler)(&args, &mut r))).is_err() {
        crate::dispatch::diag("a Rust closure handler panicked; aborting");
        std::process::abort();
    }
}

impl Closure {
    /// Makes a closure of signature `ret (args...)` under `abi` that runs
    /// `handler`.
    pub fn new<F>(abi: Abi, args: Vec<Type>, ret: Type, handler: F) -> Result<Closure, Error>
    where
        F: Fn(&Args<'_>, &mut Ret<'_>) + Send + Sync + 'static,
    {
        let sig = Signature { abi, args, ret };
        let (rec, code) = closure::alloc(size_of::<FfiClosure>()).map_err(Error::Alloc)?;
        let state = Box::into_raw(Box::new(State {
            sig: sig.clone(),
            handler: Box::new(handler),
        }));
        // SAFETY: `rec` is a fresh record; `state` lives until drop.
        let r = unsafe {
            closure::prep_signature(
                rec,
                sig,
                std::ptr::null_mut(),
                Some(call_handler),
                state.cast(),
            )
        };
        if let Err(e) = r {
            closure::free(rec.cast());
            // SAFETY: `state` came from Box::into_raw above and is unused.
            drop(unsafe { Box::from_raw(state) });
            return Err(Error::Prep(e));
        }
        Ok(Closure { rec, code, state })
    }

    /// The address to call, with the signature the closure was made for.
    pub fn code_ptr(&self) -> *const c_void {
        self.code as *const c_void
    }
}

impl Drop for Closure {
    fn drop(&mut self) {
        closure::free(self.rec.cast());
        // SAFETY: the record is freed, so the handler cannot be entered
        // through it again; `state` came from Box::into_raw.
        drop(unsafe { Box::from_raw(self.state) });
    }
}
