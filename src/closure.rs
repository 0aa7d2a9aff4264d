//! The life cycle of a closure: allocate, prepare, free.
//!
//! An `ffi_closure`-sized closure (class 0, what nearly every client asks
//! for) is a trampoline slot's own record, taken from this thread's cache
//! without a lock; larger ones (classes 1.., from the arena) are served
//! through their slot's own record, which forwards to them. The states a
//! record goes through and the order in which prep publishes it are in
//! src/record.rs; reuse after free follows src/quarantine.rs; ownership
//! checks are in src/owner.rs; foreign memory is src/foreign.rs.
#![allow(unsafe_code)]

use crate::cif::{self, FfiCif, Fun, Status};
use crate::layout::CLOSURE_SIZE;
use crate::owner::{self, Owner};
use crate::plan::{self, Compiled};
use crate::pool::{self, Pair};
use crate::record::{self, FREED, MAGIC_FREED, MAGIC_LIVE};
use crate::slab;
use crate::table::{self, Slot};
use crate::thread_cache;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::Ordering;

pub use crate::pool::AllocError;
pub use crate::record::{FfiClosure, is_freed};

/// Pairs a thread takes from, or gives back to, the global pool at once.
pub const CACHE_BATCH: usize = pool::BATCH;

/// Allocates a record of at least `size` bytes and a trampoline slot for it.
/// Returns (record, code address). Before prep, calling the code aborts with
/// a diagnostic. An `ffi_closure`-sized record comes from this thread's
/// cache without a lock.
#[inline]
pub fn alloc(size: usize) -> Result<(*mut FfiClosure, usize), AllocError> {
    if size <= CLOSURE_SIZE {
        // From this thread's cache, which counts it live.
        match thread_cache::take(pool::refill) {
            Some(Ok(pair)) => return Ok(start_own(pair)),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    alloc_global(size)
}

/// [`alloc`] from the global pool (larger records, or no thread cache).
#[inline(never)]
fn alloc_global(size: usize) -> Result<(*mut FfiClosure, usize), AllocError> {
    let class = slab::class_of(size).ok_or(AllocError::TooLarge(size))?;
    let pair = pool::take(class)?;
    thread_cache::count(1);
    Ok(if class == 0 {
        start_own(pair)
    } else {
        start_large(pair, class)
    })
}

/// Makes a slot's own record a live class-0 closure; returns (record, code).
#[inline(always)]
fn start_own(pair: Pair) -> (*mut FfiClosure, usize) {
    let Pair { slot, rec } = pair;
    let c = rec as *mut FfiClosure;
    // SAFETY: a handed-out slot's own record: committed read-write, never
    // unmapped, and idle or freed (no caller has it).
    let h = unsafe { record::header(rec) };
    // The trap entry first: a client's prep that raced its own free may
    // have left a real entry on this record after the free's trap store;
    // this owner's code must trap until its own prep.
    h.entry.store(record::trap_entry(), Ordering::Relaxed);
    h.closure.store(rec, Ordering::Release);
    // SAFETY: as above; the public fields are plain memory of the record.
    unsafe {
        (*c).cif = ptr::null_mut();
        (*c).fun = None;
        (*c).user_data = ptr::null_mut();
    }
    (c, slot.code())
}

/// Makes a record from the arena a live closure of `class`, forwarded to
/// by its slot's own record; returns (record, code).
#[cold]
#[inline(never)]
fn start_large(pair: Pair, class: u32) -> (*mut FfiClosure, usize) {
    let Pair { slot, rec } = pair;
    let fwd = slot.record();
    // SAFETY: `rec` is a record of the arena (at least CLOSURE_SIZE bytes,
    // aligned, committed, never unmapped) that no caller has; `fwd` is the
    // slot's own record, equally ours and idle. Header words are written
    // with atomic stores: `owner` may read them from another thread.
    unsafe {
        let large = record::large_header(rec);
        large.forwarder.store(fwd, Ordering::Relaxed);
        large.spare.store(0, Ordering::Relaxed);
        large
            .meta
            .store(MAGIC_LIVE << 8 | class as usize, Ordering::Release);
        let h = record::header(fwd);
        h.entry.store(record::trap_entry(), Ordering::Relaxed);
        h.plan.store(ptr::null_mut(), Ordering::Relaxed);
        h.closure.store(rec, Ordering::Release);
        let c = rec as *mut FfiClosure;
        (*c).cif = ptr::null_mut();
        (*c).fun = None;
        (*c).user_data = ptr::null_mut();
    }
    (rec as *mut FfiClosure, slot.code())
}

/// Frees a closure: the header its slot jumps through traps from now on,
/// so calls through the stale code pointer abort with a diagnostic until
/// the slot is reused (after the quarantine). Two frees of one record race
/// safely: exactly one wins, the other sees `Freed`.
#[inline]
pub fn free(p: *mut c_void) -> Owner {
    let p = p as usize;
    let Some(slot) = Slot::from_record(p, table::handed_out()) else {
        return free_other(p);
    };
    // SAFETY: the start of a handed-out slot's own record: committed
    // read-write, never unmapped; the header's words are atomics.
    let h = unsafe { record::header(p) };
    // The check that this is a live class-0 closure and the step that
    // frees it are one compare-and-swap of the `closure` word from the
    // record itself (live) to FREED: the one locked instruction of
    // alloc/free. Of two threads racing to free one closure exactly one
    // succeeds and the other gets the double-free diagnostic (via
    // `free_other`), so a pair is never queued twice (the pool links freed
    // records through their headers; a pair queued twice would corrupt
    // it). Measured and dropped: a plain store here plus compare-and-swaps
    // when a freed pair is reused and when it is queued globally (free at
    // 1 M live 16.8 ns against 14.5).
    if h.closure
        .compare_exchange(p, FREED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Freed already, never allocated, a forwarding header, or corrupt.
        return free_other(p);
    }
    h.entry.store(record::trap_entry(), Ordering::Release);
    // Into this thread's cache (which stops counting it), or back to the
    // pool (uncounted here).
    if let Err(pair) = thread_cache::recycle(Pair { slot, rec: p }) {
        thread_cache::count(-1);
        pool::recycle(pair, 0);
    }
    Owner::Live { slot, class: 0 }
}

/// [`free`] of anything but a live class-0 record: a larger record, or a
/// pointer to refuse or forward.
#[inline(never)]
fn free_other(p: usize) -> Owner {
    let o = owner::owner(p);
    let Owner::Live { slot, class } = o else {
        return o;
    };
    if class == 0 {
        // Not live when `free`'s compare-and-swap looked, live now: another
        // thread reallocated it in between, so this pointer had already been
        // freed when the caller passed it (a legitimate free sees the record
        // live throughout: the caller owns it). Report the double free; the
        // new owner's closure is left alone.
        return Owner::Freed;
    }
    free_large(p, slot, class)
}

/// The rest of [`free_other`] for a record of the arena that `owner` found
/// live on `slot` (a look that may be stale by now).
#[inline(never)]
fn free_large(p: usize, slot: Slot, class: u32) -> Owner {
    // SAFETY: the slot's own record is ours, committed and never unmapped.
    let h = unsafe { record::header(slot.record()) };
    // As in `free`: the deciding step is one compare-and-swap of the
    // `closure` word of the header the slot jumps through, from this
    // record to FREED. Of two racing frees exactly one gets through, and a
    // stale free whose `owner` look saw `p` on this slot before `p` was
    // freed and handed out again (with another slot) fails here instead of
    // freeing the new owner's closure (unless the record came back on the
    // same slot, which the slot quarantine puts 64 frees later).
    if h.closure
        .compare_exchange(p, FREED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Owner::Freed;
    }
    // SAFETY: `p` is a record of the arena (checked by `owner`), and ours
    // alone now: its slot no longer names it.
    let large = unsafe { record::large_header(p) };
    large
        .meta
        .store(MAGIC_FREED << 8 | class as usize, Ordering::Release);
    // The slot's own record, its forwarding header, traps from now on.
    h.entry.store(record::trap_entry(), Ordering::Release);
    thread_cache::count(-1);
    pool::recycle(Pair { slot, rec: p }, class);
    Owner::Live { slot, class }
}

/// Why prep failed, with libffi's status.
#[derive(Debug)]
pub enum PrepError {
    NullClosure,
    NullFun,
    Cif(cif::CifError),
    Classify(statictramp_abi::ClassifyError),
    /// The record was freed.
    Freed,
    /// A pointer into our records that is not a live record.
    Corrupt,
}

impl PrepError {
    pub fn status(&self) -> Status {
        match self {
            PrepError::NullClosure | PrepError::NullFun | PrepError::Freed | PrepError::Corrupt => {
                Status::BadArgType
            }
            PrepError::Cif(e) => e.status(),
            PrepError::Classify(_) => Status::BadTypedef,
        }
    }
}

impl core::fmt::Display for PrepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PrepError::NullClosure => write!(f, "closure is NULL"),
            PrepError::NullFun => write!(f, "handler function is NULL"),
            PrepError::Cif(e) => write!(f, "{e}"),
            PrepError::Classify(e) => write!(f, "{e}"),
            PrepError::Freed => write!(f, "closure was already freed"),
            PrepError::Corrupt => write!(
                f,
                "pointer is inside statictramp's records but not a live closure"
            ),
        }
    }
}

/// Prepares a closure: libffi's `ffi_prep_closure_loc`. `codeloc` matters
/// only for foreign memory (where the caller executes its `tramp[]`); our
/// records' code address was fixed at allocation.
///
/// # Safety
/// `closure` must be NULL, a record from [`alloc`], or writable memory of
/// at least `sizeof(ffi_closure)` bytes that the caller will execute at
/// `codeloc` (foreign memory). `cif` must be NULL or a libffi cif that
/// outlives the closure.
#[inline]
pub unsafe fn prep(
    closure: *mut FfiClosure,
    cif: *mut FfiCif,
    fun: Option<Fun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> Result<(), PrepError> {
    if closure.is_null() {
        return Err(PrepError::NullClosure);
    }
    // SAFETY: the caller guarantees `cif` is NULL or a readable cif.
    let compiled = unsafe { plan::for_cif(cif) }.map_err(|e| match e {
        plan::CifPlanError::Cif(e) => PrepError::Cif(e),
        plan::CifPlanError::Classify(e) => PrepError::Classify(e),
    })?;
    // SAFETY: forwarded contract.
    unsafe { prep_compiled(closure, compiled, cif, fun, user_data, codeloc) }
}

/// Prepares a closure whose handler receives `raw` arguments instead of
/// `avalue[]` (src/raw/native.rs).
///
/// # Safety
/// As [`prep`]; `fun` has the raw handler's signature when `raw` is not
/// `Cooked` (stored in the closure's `fun` field, called by the dispatcher
/// with the raw arguments).
#[cfg(native_raw_api)]
pub unsafe fn prep_mode(
    closure: *mut FfiClosure,
    cif: *mut FfiCif,
    fun: Fun,
    user_data: *mut c_void,
    codeloc: *mut c_void,
    raw: crate::raw::RawMode,
) -> Result<(), PrepError> {
    if closure.is_null() {
        return Err(PrepError::NullClosure);
    }
    // SAFETY: the caller guarantees `cif` is NULL or a readable cif.
    let sig = unsafe { cif::read_cif(cif) }.map_err(PrepError::Cif)?;
    let compiled = plan::intern_mode(sig, raw).map_err(PrepError::Classify)?;
    // SAFETY: forwarded contract.
    unsafe { prep_compiled(closure, compiled, cif, Some(fun), user_data, codeloc) }
}

/// Prepares a closure for a signature given directly; `cif` is only handed
/// to the handler (the Rust API passes null).
///
/// # Safety
/// As [`prep`].
pub unsafe fn prep_signature(
    closure: *mut FfiClosure,
    sig: statictramp_abi::Signature,
    cif: *mut FfiCif,
    fun: Option<Fun>,
    user_data: *mut c_void,
) -> Result<(), PrepError> {
    let compiled = plan::intern(sig).map_err(PrepError::Classify)?;
    // SAFETY: forwarded contract (foreign memory executes in place).
    unsafe { prep_compiled(closure, compiled, cif, fun, user_data, closure.cast()) }
}

/// Prepares a closure with a plan already found.
///
/// # Safety
/// As [`prep`].
#[inline]
unsafe fn prep_compiled(
    closure: *mut FfiClosure,
    compiled: &'static Compiled,
    cif: *mut FfiCif,
    fun: Option<Fun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> Result<(), PrepError> {
    let Some(fun) = fun else {
        return Err(if closure.is_null() {
            PrepError::NullClosure
        } else {
            PrepError::NullFun
        });
    };
    if !owner::live_own_record(closure as usize) {
        // SAFETY: forwarded contract.
        return unsafe { prep_other(closure, compiled, cif, fun, user_data, codeloc) };
    }
    // SAFETY: a live class-0 record of ours: writable, and its header (at
    // its start) is the one its slot jumps through.
    unsafe {
        record::publish(
            closure,
            record::header(closure as usize),
            compiled,
            cif,
            fun,
            user_data,
        )
    };
    Ok(())
}

/// [`prep_compiled`] for anything but a live class-0 record: a larger
/// record (whose slot's own record is the header), foreign memory, or a
/// pointer to refuse.
///
/// # Safety
/// As [`prep`].
#[inline(never)]
unsafe fn prep_other(
    closure: *mut FfiClosure,
    compiled: &'static Compiled,
    cif: *mut FfiCif,
    fun: Fun,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> Result<(), PrepError> {
    if closure.is_null() {
        return Err(PrepError::NullClosure);
    }
    match owner::owner(closure as usize) {
        // SAFETY: a live record of ours: writable; the header its slot
        // jumps through is the slot's own record, committed and never
        // unmapped (the record itself for class 0).
        Owner::Live { slot, .. } => unsafe {
            let h = record::header(slot.record());
            record::publish(closure, h, compiled, cif, fun, user_data);
            Ok(())
        },
        Owner::Freed => Err(PrepError::Freed),
        Owner::Corrupt => Err(PrepError::Corrupt),
        Owner::Foreign => {
            // SAFETY: forwarded contract (foreign memory the caller owns).
            unsafe { crate::foreign::prep(closure, codeloc, compiled, cif, fun, user_data) };
            Ok(())
        }
    }
}

/// Live closures and slots ever handed out (for `statictramp check` and tests).
pub fn stats() -> (usize, u32) {
    (thread_cache::live(), table::handed_out())
}

/// Whether `code` is the code address of a live closure of ours.
pub fn owns_code(code: usize) -> bool {
    owner::owns_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quarantine::QUARANTINE;
    use statictramp_abi::{Signature, Type};

    unsafe extern "C-unwind" fn handler(
        _cif: *mut FfiCif,
        _ret: *mut c_void,
        _args: *mut *mut c_void,
        _ud: *mut c_void,
    ) {
    }

    /// A stale second free of a larger record, whose ownership look saw
    /// the record live on its old slot before the first free, and which
    /// reaches its decision after the record was allocated again (on
    /// another slot): reported as a double free, and the new owner's
    /// closure stays live.
    #[test]
    fn a_stale_free_of_a_reallocated_large_record_is_a_double_free() {
        let size = 2 * CLOSURE_SIZE;
        // A slot freed ahead of the record's (from a record of another
        // class), so that when the record's quarantine ends the slot queue
        // hands out that one, not the record's old slot.
        let (ahead, _) = alloc(4 * CLOSURE_SIZE).unwrap();
        let (p, _) = alloc(size).unwrap();
        let p = p as usize;
        let Owner::Live { slot: old, class } = owner::owner(p) else {
            panic!("a fresh large record is live");
        };
        assert!(class > 0);
        assert!(matches!(free(ahead.cast()), Owner::Live { .. }));
        assert!(matches!(free(p as *mut c_void), Owner::Live { .. }));
        // QUARANTINE newer frees of the class, then the record comes back.
        let newer: Vec<_> = (0..QUARANTINE).map(|_| alloc(size).unwrap().0).collect();
        assert!(newer.iter().all(|&r| r as usize != p), "reused too early");
        for r in newer {
            assert!(matches!(free(r.cast()), Owner::Live { .. }));
        }
        let (again, _) = alloc(size).unwrap();
        assert_eq!(again as usize, p, "the arena hands the record out again");
        let Owner::Live { slot: new, .. } = owner::owner(p) else {
            panic!("the reallocated record is live");
        };
        assert_ne!(new, old, "the record comes back on another slot");
        assert_eq!(free_large(p, old, class), Owner::Freed);
        assert_eq!(
            owner::owner(p),
            Owner::Live { slot: new, class },
            "the new owner's closure must stay live"
        );
        assert!(matches!(free(p as *mut c_void), Owner::Live { .. }));
    }

    /// A client's prep racing its own free can store a real entry after
    /// the free's trap store (its live check passed before the free). That
    /// record must not keep the real entry when it is handed to its next
    /// owner: a call before the new owner's prep would run the entry with
    /// `fun == NULL`. The race's outcome is produced here directly.
    #[test]
    fn alloc_stores_the_trap_entry_over_a_stale_real_entry() {
        let sig = Signature {
            abi: crate::DEFAULT_ABI,
            args: vec![Type::S32],
            ret: Type::S32,
        };
        let (rec, _) = alloc(0).unwrap();
        // SAFETY: a fresh record of ours; the handler ignores its arguments.
        unsafe { prep_signature(rec, sig, ptr::null_mut(), Some(handler), ptr::null_mut()) }
            .unwrap();
        // SAFETY: a record of ours (allocated above): committed and never
        // unmapped.
        let h = unsafe { record::header(rec as usize) };
        let real = h.entry.load(Ordering::Acquire);
        assert_ne!(real, record::trap_entry());
        assert!(matches!(free(rec.cast()), Owner::Live { .. }));
        assert_eq!(h.entry.load(Ordering::Acquire), record::trap_entry());
        // The racing prep's late store.
        h.entry.store(real, Ordering::Release);
        // Free more than QUARANTINE others behind it, then allocate until
        // the record comes back.
        let others: Vec<_> = (0..=QUARANTINE).map(|_| alloc(0).unwrap().0).collect();
        for r in others {
            assert!(matches!(free(r.cast()), Owner::Live { .. }));
        }
        let mut held = Vec::new();
        let reused = (0..4 * QUARANTINE + 4 * CACHE_BATCH).any(|_| {
            let (r, _) = alloc(0).unwrap();
            held.push(r);
            r == rec
        });
        assert!(reused, "the freed record was not reused");
        assert_eq!(
            h.entry.load(Ordering::Acquire),
            record::trap_entry(),
            "a reallocated record must trap until its new owner prepares it"
        );
        for r in held {
            assert!(matches!(free(r.cast()), Owner::Live { .. }));
        }
    }
}
