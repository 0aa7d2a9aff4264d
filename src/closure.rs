//! Closure records and their life cycle: allocate, prepare, free.
//!
//! A record is laid out like libffi's `ffi_closure` on x86_64
//! (`tramp[FFI_TRAMPOLINE_SIZE = 32]`, `cif`, `fun`, `user_data`; see
//! libffi src/x86/ffitarget.h, FFI_TRAMPOLINE_SIZE) so clients that read or
//! embed it keep working. Our bookkeeping, the [`Header`], lives in
//! `tramp[]`; the trampoline slot computes its record's address and jumps
//! through that header.
//!
//! Closures prepared on memory we did not allocate (clients bringing their
//! own executable memory, as libffi allows) get a classic trampoline written
//! into their `tramp[]` — the caller owns that memory's permissions — which
//! loads a separately allocated header and enters the same entries.
#![allow(unsafe_code)]

use crate::cif::{self, FfiCif, Fun, Status};
use crate::layout::{
    CLOSURE_CIF, CLOSURE_FUN, CLOSURE_SIZE, CLOSURE_USER_DATA, HDR_CLOSURE, HDR_ENTRY, HDR_MAGIC,
    HDR_PLAN, HDR_SIZE, HDR_SLOT,
};
use crate::plan::{self, Compiled};
use crate::slab::{self, Slab};
use crate::table::{self, QUARANTINE, Slot, SlotError, Slots};
use crate::thread_cache::{self, Pair};
use std::collections::HashMap;
use std::mem::offset_of;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// libffi's `ffi_closure` on x86_64.
#[repr(C)]
pub struct FfiClosure {
    pub tramp: [u8; 32],
    pub cif: *mut FfiCif,
    pub fun: Option<Fun>,
    pub user_data: *mut c_void,
}

/// Our bookkeeping at the start of `tramp[]`: what the trampoline's data
/// word points at and the entries read.
#[repr(C)]
pub struct Header {
    /// Entry the trampoline jumps to (`jmp *HDR_ENTRY(%r10)`).
    pub entry: AtomicUsize,
    /// The compiled plan (null before prep).
    pub plan: AtomicPtr<Compiled>,
    /// The `ffi_closure` whose cif, fun and user_data the entry uses.
    pub closure: AtomicPtr<FfiClosure>,
    /// Global slot index (records we allocated).
    pub slot: AtomicU32,
    /// `magic << 8 | size class`.
    pub meta: AtomicU32,
}

const _: () = {
    assert!(offset_of!(Header, entry) == HDR_ENTRY);
    assert!(offset_of!(Header, plan) == HDR_PLAN);
    assert!(offset_of!(Header, closure) == HDR_CLOSURE);
    assert!(offset_of!(Header, slot) == HDR_SLOT);
    assert!(offset_of!(Header, meta) == HDR_MAGIC);
    assert!(size_of::<Header>() == HDR_SIZE);
    assert!(HDR_SIZE <= 32); // fits in tramp[FFI_TRAMPOLINE_SIZE]
    assert!(offset_of!(FfiClosure, cif) == CLOSURE_CIF);
    assert!(offset_of!(FfiClosure, fun) == CLOSURE_FUN);
    assert!(offset_of!(FfiClosure, user_data) == CLOSURE_USER_DATA);
    assert!(size_of::<FfiClosure>() == CLOSURE_SIZE);
};

const MAGIC_LIVE: u32 = 0x53_54_4c; // "STL"
const MAGIC_FREED: u32 = 0x53_54_46; // "STF"

unsafe extern "C" {
    fn statictramp_entry_trap();
}

fn trap_entry() -> usize {
    statictramp_entry_trap as *const () as usize
}

/// Whether a header belongs to a freed closure (for the trap's diagnostic).
pub fn is_freed(h: &Header) -> bool {
    h.meta.load(Ordering::Acquire) >> 8 == MAGIC_FREED
}

struct Alloc {
    slots: Slots,
    slab: Slab,
    /// Freed `ffi_closure`-sized closures (slot + its own record), reused
    /// first-in first-out after the quarantine, like the slot queue.
    pairs0: FreedList,
}

/// Class-0 records not in use (freed, or handed to a thread that exited
/// before allocating them), first in first out, linked through their
/// headers' `plan` word: no entry reads it while the header's entry is the
/// trap, which reads only `meta`. Intrusive, so returning a million
/// closures allocates and copies nothing; a record's slot is its header's
/// `slot`. Each record enters the list once per free (the free's
/// compare-and-swap from LIVE) or once when its thread exits, so none is
/// linked twice; a client that prepares a closure while another thread
/// frees it could still write a linked node's `plan`, so `pop_front`
/// checks each node before handing it out.
struct FreedList {
    head: usize,
    tail: usize,
    len: usize,
}

impl FreedList {
    const fn new() -> FreedList {
        FreedList {
            head: 0,
            tail: 0,
            len: 0,
        }
    }

    /// The `plan` word of a freed class-0 record's header, used as its link.
    fn link(rec: usize) -> &'static AtomicPtr<Compiled> {
        // SAFETY: only records of ours are linked (a handed-out slot's own
        // record, not in use), committed read-write and never unmapped;
        // `pop_front` checks a node is one before following its link.
        unsafe { &(*(rec as *const Header)).plan }
    }

    fn push_back(&mut self, p: Pair) {
        Self::link(p.rec).store(ptr::null_mut(), Ordering::Relaxed);
        if self.tail == 0 {
            self.head = p.rec;
        } else {
            Self::link(self.tail).store(p.rec as *mut Compiled, Ordering::Relaxed);
        }
        self.tail = p.rec;
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<Pair> {
        if self.head == 0 {
            return None;
        }
        let rec = self.head;
        // A node must be the start of a handed-out slot's own record whose
        // header names that slot and is not live (freed, or never
        // allocated). Anything else means a node's link was overwritten: a
        // prep raced a free of the same closure.
        let slot = Slot::from_record(rec, table::handed_out()).filter(|s| {
            // SAFETY: a handed-out slot's own record, committed and never
            // unmapped.
            let h = unsafe { &*(rec as *const Header) };
            let meta = h.meta.load(Ordering::Relaxed);
            h.slot.load(Ordering::Relaxed) == s.0 && (meta == 0 || meta == MAGIC_FREED << 8)
        });
        let Some(slot) = slot else {
            crate::dispatch::diag(&format!(
                "the pool of freed closures is corrupt at {rec:#x}: a closure was written after it was freed (ffi_prep_closure_loc racing ffi_closure_free?); aborting"
            ));
            std::process::abort();
        };
        self.head = Self::link(rec).swap(ptr::null_mut(), Ordering::Relaxed) as usize;
        if self.head == 0 {
            self.tail = 0;
        }
        self.len -= 1;
        Some(Pair { slot, rec })
    }

    fn len(&self) -> usize {
        self.len
    }
}

fn state() -> MutexGuard<'static, Alloc> {
    static STATE: OnceLock<Mutex<Alloc>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            crate::fork::register();
            Mutex::new(Alloc {
                slots: Slots::new(),
                slab: Slab::new(),
                pairs0: FreedList::new(),
            })
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The allocator's lock, held across fork (src/fork.rs).
pub(crate) fn lock_state_for_fork() -> Box<dyn std::any::Any> {
    Box::new(state())
}

/// The foreign-header table's lock, held across fork (src/fork.rs).
pub(crate) fn lock_foreign_for_fork() -> Box<dyn std::any::Any> {
    Box::new(foreign_headers().lock().unwrap_or_else(|e| e.into_inner()))
}

/// Pairs a thread takes from, or gives back to, the global pool at once.
pub const CACHE_BATCH: usize = thread_cache::BATCH;

/// Why `alloc` failed.
#[derive(Debug)]
pub enum AllocError {
    /// No size class serves this size.
    TooLarge(usize),
    /// Out of trampoline slots (address space, map count, memory).
    Slots(SlotError),
    /// Out of record memory.
    Records(std::io::Error),
}

impl Alloc {
    /// A slot and a record of `class`, or neither. Class 0 reuses a freed
    /// pair once more than QUARANTINE wait behind it, and, when memory runs
    /// out, any freed pair before failing.
    fn pair(&mut self, class: u32) -> Result<Pair, AllocError> {
        if class == 0 && self.pairs0.len() > QUARANTINE {
            if let Some(p) = self.pairs0.pop_front() {
                return Ok(p);
            }
        }
        let slot = match self.slots.take() {
            Ok(s) => s,
            Err(e) if class == 0 => return self.pairs0.pop_front().ok_or(AllocError::Slots(e)),
            Err(e) => return Err(AllocError::Slots(e)),
        };
        if class == 0 {
            // The slot's own record. A fresh one is zeroed: give it a header
            // that traps and names its slot now, so that a call through its
            // code before it is allocated gets the trap's diagnostic, and the
            // free list can read its slot whichever way it comes back.
            let rec = slot.record();
            // SAFETY: a handed-out slot's own record is committed read-write,
            // never unmapped, and idle (not handed to any caller).
            let h = unsafe { &*(rec as *const Header) };
            h.entry.store(trap_entry(), Ordering::Relaxed);
            h.closure.store(rec as *mut FfiClosure, Ordering::Relaxed);
            h.slot.store(slot.0, Ordering::Relaxed);
            // Never allocated: neither live nor freed. (A slot freed from a
            // larger class has FREED | class here.)
            h.meta.store(0, Ordering::Relaxed);
            return Ok(Pair { slot, rec });
        }
        match self.slab.alloc(class) {
            Ok(rec) => Ok(Pair { slot, rec }),
            Err(e) => {
                self.slots.give_back(slot);
                Err(AllocError::Records(e))
            }
        }
    }

    fn give_back(&mut self, p: Pair, class: u32) {
        if class == 0 {
            self.pairs0.push_back(p);
        } else {
            self.slots.give_back(p.slot);
            self.slab.free(p.rec, class);
        }
    }
}

/// Fills a thread cache with up to BATCH class-0 pairs (at least one, or
/// the error).
#[cold]
#[inline(never)]
fn refill(fresh: &mut Vec<Pair>) -> Result<(), AllocError> {
    let mut st = state();
    let start = fresh.len();
    for i in 0..thread_cache::BATCH {
        match st.pair(0) {
            Ok(p) => fresh.push(p),
            Err(e) if i == 0 => return Err(e),
            Err(_) => break,
        }
    }
    // The cache pops from the end: reversed, the batch is handed out in
    // the order it came (ascending addresses for fresh slots), so records
    // allocated, and later freed, in a row are touched in one direction.
    fresh[start..].reverse();
    Ok(())
}

/// Gives class-0 pairs back to the global allocator (a thread's hoard, or
/// its whole cache when it exits). Their headers already trap.
pub(crate) fn return_pairs(pairs: &[Pair]) {
    if pairs.is_empty() {
        return;
    }
    let mut st = state();
    for &p in pairs {
        st.pairs0.push_back(p);
    }
}

/// Allocates a record of at least `size` bytes and a trampoline slot for it.
/// Returns (record, code address). Before prep, calling the code aborts with
/// a diagnostic. An `ffi_closure`-sized record comes from this thread's
/// cache without a lock.
#[inline]
pub fn alloc(size: usize) -> Result<(*mut FfiClosure, usize), AllocError> {
    if size <= CLOSURE_SIZE {
        // From this thread's cache, which counts it live.
        match thread_cache::take(refill) {
            Some(Ok(pair)) => return Ok(start(pair, 0)),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    alloc_global(size)
}

/// [`alloc`] from the global allocator (larger records, or no thread cache).
#[inline(never)]
fn alloc_global(size: usize) -> Result<(*mut FfiClosure, usize), AllocError> {
    let class = slab::class_of(size).ok_or(AllocError::TooLarge(size))?;
    let pair = state().pair(class)?;
    thread_cache::count(1);
    Ok(start(pair, class))
}

/// Gives an allocated pair its live header; returns (record, code address).
#[inline(always)]
fn start(pair: Pair, class: u32) -> (*mut FfiClosure, usize) {
    let Pair { slot, rec } = pair;
    let c = rec as *mut FfiClosure;
    let header = |h: &Header| {
        h.entry.store(trap_entry(), Ordering::Relaxed);
        h.plan.store(ptr::null_mut(), Ordering::Relaxed);
        h.closure.store(c, Ordering::Relaxed);
        h.slot.store(slot.0, Ordering::Relaxed);
        h.meta.store(MAGIC_LIVE << 8 | class, Ordering::Release);
    };
    // SAFETY: `rec` is a record of at least CLOSURE_SIZE writable, 8-byte
    // aligned bytes that nothing else references (fresh, or freed and
    // quarantined: its header traps, and no live closure points at it).
    // For a larger class, the slot's own record (equally ours and idle)
    // becomes the header the trampoline jumps through, naming `rec`.
    unsafe {
        if class == 0 {
            // The slot's own record already has the header a class-0
            // closure needs: the trap entry (set when it was handed out or
            // freed), itself as `closure`, its slot. Only the magic changes.
            (*(c as *const Header))
                .meta
                .store(MAGIC_LIVE << 8, Ordering::Relaxed);
        } else {
            // Field by field with atomic stores: `owner` may read these
            // headers from another thread at any time.
            header(&*(c as *const Header));
            header(&*(slot.record() as *const Header));
        }
        (*c).cif = ptr::null_mut();
        (*c).fun = None;
        (*c).user_data = ptr::null_mut();
    }
    (c, slot.code())
}

/// What a pointer handed to us turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// A live record of ours, on this slot.
    Live(Slot),
    /// One of our records that was already freed.
    Freed,
    /// Inside our record arena but not a record start (corrupt or interior).
    Corrupt,
    /// Not our memory.
    Foreign,
}

/// Classifies a pointer a C caller handed us. Takes no lock: the slots
/// handed out and the record arena only grow, and records stay mapped.
#[inline]
pub fn owner(p: *const c_void) -> Owner {
    let p = p as usize;
    let handed_out = table::handed_out();
    if let Some(slot) = Slot::from_record(p, handed_out) {
        // A slot's own record.
        // SAFETY: the record of a handed-out slot is committed read-write
        // and never unmapped; the words are atomics.
        let h = unsafe { &*(p as *const Header) };
        let meta = h.meta.load(Ordering::Acquire);
        return match meta >> 8 {
            MAGIC_FREED => Owner::Freed,
            // Class 0 only: with a larger class this record is the slot's
            // forwarding header, never handed to the caller.
            MAGIC_LIVE if meta & 0xff == 0 && h.slot.load(Ordering::Acquire) == slot.0 => {
                Owner::Live(slot)
            }
            _ => Owner::Corrupt,
        };
    }
    owner_elsewhere(p, handed_out)
}

/// Whether `p` is a live `ffi_closure`-sized record of ours (a slot's own
/// record with magic LIVE and class 0): prep's common case, tested with a
/// range check (a loop over the regions for mapped slots), a division by a
/// constant and two loads. Anything else (larger records, freed, foreign,
/// corrupt) goes to [`owner`]. (Free makes the same test with its
/// compare-and-swap.)
#[inline(always)]
fn live_own_record(p: usize) -> bool {
    let Some(slot) = Slot::from_record(p, table::handed_out()) else {
        return false;
    };
    // SAFETY: the record of a handed-out slot is committed read-write and
    // never unmapped; the words are atomics.
    let h = unsafe { &*(p as *const Header) };
    h.meta.load(Ordering::Acquire) == MAGIC_LIVE << 8 && h.slot.load(Ordering::Relaxed) == slot.0
}

/// [`owner`] for pointers that are not the start of a handed-out slot's
/// own record: interior pointers, larger records from the arena, foreign
/// memory.
#[inline(never)]
fn owner_elsewhere(p: usize, handed_out: u32) -> Owner {
    if table::in_records(p) {
        // Inside the slots' records, but not at the start of a handed-out
        // slot's record: an interior pointer.
        return Owner::Corrupt;
    }
    if !slab::contains(p, HDR_SIZE) {
        return Owner::Foreign;
    }
    if p % 8 != 0 {
        // Records are 8-aligned (and a header may only be read aligned).
        return Owner::Corrupt;
    }
    // A larger record from the arena.
    // SAFETY: [p, p + HDR_SIZE) lies in the record arena, which is committed
    // read-write and never unmapped, and `p` is 8-aligned; the header's
    // words are atomics, written only with atomic stores, so reading a
    // record another thread is writing is defined (possibly garbage if `p`
    // is an interior pointer: the slot check below catches that).
    let h = unsafe { &*(p as *const Header) };
    let meta = h.meta.load(Ordering::Acquire);
    let slot = Slot(h.slot.load(Ordering::Acquire));
    if meta >> 8 == MAGIC_FREED {
        return Owner::Freed;
    }
    if meta >> 8 != MAGIC_LIVE || meta & 0xff == 0 || slot.0 >= handed_out {
        return Owner::Corrupt;
    }
    // SAFETY: a handed-out slot's record is committed and never unmapped.
    let fwd = unsafe { &*(slot.record() as *const Header) };
    if fwd.closure.load(Ordering::Acquire) as usize != p || fwd.meta.load(Ordering::Acquire) != meta
    {
        return Owner::Corrupt;
    }
    Owner::Live(slot)
}

/// Frees a closure: the header its slot jumps through traps from now on,
/// so calls through the stale code pointer abort with a diagnostic until
/// the slot is reused (after the quarantine). Two frees of one record race
/// safely: exactly one wins, the other sees `Freed`.
#[inline]
pub fn free(p: *mut c_void) -> Owner {
    let Some(slot) = Slot::from_record(p as usize, table::handed_out()) else {
        return free_other(p);
    };
    // SAFETY: the start of a handed-out slot's own record: committed
    // read-write, never unmapped; the header's words are atomics.
    let h = unsafe { &*(p as *const Header) };
    // The check that this is a live class-0 closure and the step that
    // frees it are one compare-and-swap from LIVE to FREED: the one locked
    // instruction of alloc/free. Of two threads racing to free one
    // closure exactly one succeeds and the other gets the double-free
    // diagnostic (via `free_other`), so a pair is never queued twice (the
    // global pool links freed records through their headers; a pair
    // queued twice would corrupt it). Going straight to it, instead of a
    // load and then the compare-and-swap, touches the record once (free at
    // 1 M live 14.5 -> 14.2 ns, before the ascending hand-out order in
    // `refill`). Measured instead and dropped: a plain store here plus
    // compare-and-swaps when a freed pair is reused and when it is queued
    // globally (16.8 ns against 14.5).
    if h.meta
        .compare_exchange(
            MAGIC_LIVE << 8,
            MAGIC_FREED << 8,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // Freed already, a larger record's forwarding header, or corrupt.
        return free_other(p);
    }
    if h.slot.load(Ordering::Relaxed) != slot.0 {
        // Live-looking but not this slot's: corrupt. Leave it as it was.
        h.meta.store(MAGIC_LIVE << 8, Ordering::Release);
        return Owner::Corrupt;
    }
    h.entry.store(trap_entry(), Ordering::Release);
    // Into this thread's cache (which stops counting it), or back to the
    // global allocator (uncounted here).
    let pair = Pair {
        slot,
        rec: p as usize,
    };
    if let Err(pair) = thread_cache::give(pair, return_pairs) {
        give_back_global(pair, 0);
    }
    Owner::Live(slot)
}

/// [`free`] of anything but a live class-0 record: a larger record, or a
/// pointer to refuse or forward.
#[inline(never)]
fn free_other(p: *mut c_void) -> Owner {
    let o = owner(p);
    let Owner::Live(slot) = o else { return o };
    // SAFETY: `p` was a live record (checked above), so its header is ours.
    let h = unsafe { &*(p as *const Header) };
    let meta = h.meta.load(Ordering::Acquire);
    let class = meta & 0xff;
    if class == 0 {
        // Not live when `free`'s compare-and-swap looked, live now: another
        // thread reallocated it in between, so this pointer had already been
        // freed when the caller passed it (a legitimate free sees the record live
        // throughout: the caller owns it). Report the double free; the new
        // owner's closure is left alone.
        return Owner::Freed;
    }
    // As in `free`: the compare-and-swap expects LIVE.
    if meta >> 8 != MAGIC_LIVE
        || h.meta
            .compare_exchange(
                meta,
                MAGIC_FREED << 8 | class,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
    {
        return Owner::Freed;
    }
    free_large(
        Pair {
            slot,
            rec: p as usize,
        },
        class,
    );
    o
}

/// The rest of freeing a record of class >= 1 (its meta already FREED):
/// the slot's own record, its forwarding header, traps from now on.
#[inline(never)]
fn free_large(pair: Pair, class: u32) {
    // SAFETY: the slot's own record is ours, committed and never unmapped.
    let jump = unsafe { &*(pair.slot.record() as *const Header) };
    jump.entry.store(trap_entry(), Ordering::Release);
    jump.plan.store(ptr::null_mut(), Ordering::Release);
    jump.meta.store(MAGIC_FREED << 8 | class, Ordering::Release);
    give_back_global(pair, class);
}

/// Returns a freed pair to the global allocator, uncounting it here.
#[inline(never)]
fn give_back_global(pair: Pair, class: u32) {
    thread_cache::count(-1);
    state().give_back(pair, class);
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
    /// A pointer into our arena that is not a live record.
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

/// Headers of closures prepared on foreign memory, by closure address.
/// Re-preparing the same memory reuses its header; headers are never freed
/// (we cannot know when the client frees its memory), 32 bytes each.
fn foreign_headers() -> &'static Mutex<HashMap<usize, &'static Header>> {
    static H: OnceLock<Mutex<HashMap<usize, &'static Header>>> = OnceLock::new();
    H.get_or_init(|| {
        crate::fork::register();
        Mutex::new(HashMap::new())
    })
}

/// The classic trampoline written into a foreign closure's `tramp[]`:
///
/// ```text
///   f3 0f 1e fa        endbr64
///   49 ba <imm64>      movabs $header, %r10
///   41 ff 22           jmpq *(%r10)          ; header->entry
///   cc ...             int3 padding to 32 bytes
/// ```
///
/// Absolute, so it works at whatever address (alias) the client executes it.
pub fn classic_trampoline(header: usize) -> [u8; 32] {
    let mut t = [0xccu8; 32];
    t[..4].copy_from_slice(&[0xf3, 0x0f, 0x1e, 0xfa]);
    t[4..6].copy_from_slice(&[0x49, 0xba]);
    t[6..14].copy_from_slice(&(header as u64).to_le_bytes());
    t[14..17].copy_from_slice(&[0x41, 0xff, 0x22]);
    t
}

/// Prepares a closure: libffi's `ffi_prep_closure_loc`.
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
    unsafe { prep_compiled(closure, compiled, cif, fun, user_data) }
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
    // SAFETY: forwarded contract.
    unsafe { prep_compiled(closure, compiled, cif, fun, user_data) }
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
) -> Result<(), PrepError> {
    let Some(fun) = fun else {
        return Err(if closure.is_null() {
            PrepError::NullClosure
        } else {
            PrepError::NullFun
        });
    };
    if !live_own_record(closure as usize) {
        // SAFETY: forwarded contract.
        return unsafe { prep_other(closure, compiled, cif, fun, user_data) };
    }
    // SAFETY: a live class-0 record of ours: writable, and its header (at
    // its start) is the one its slot jumps through.
    unsafe {
        publish(
            closure,
            &*(closure as *const Header),
            compiled,
            cif,
            fun,
            user_data,
        )
    };
    Ok(())
}

/// Fills a closure's public fields, then the header its code jumps
/// through: the plan, and last the entry, so that a concurrent caller sees
/// a complete closure.
///
/// # Safety
/// `closure` is writable memory of at least sizeof(ffi_closure) bytes.
#[inline(always)]
unsafe fn publish(
    closure: *mut FfiClosure,
    h: &Header,
    compiled: &'static Compiled,
    cif: *mut FfiCif,
    fun: Fun,
    user_data: *mut c_void,
) {
    // SAFETY: per the contract.
    unsafe {
        (*closure).cif = cif;
        (*closure).fun = Some(fun);
        (*closure).user_data = user_data;
    }
    h.plan
        .store((compiled as *const Compiled).cast_mut(), Ordering::Release);
    h.entry.store(compiled.entry_addr, Ordering::Release);
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
) -> Result<(), PrepError> {
    if closure.is_null() {
        return Err(PrepError::NullClosure);
    }
    match owner(closure.cast()) {
        Owner::Live(slot) => {
            // SAFETY: a live record of ours: writable; the header its slot
            // jumps through is the slot's own record, committed and never
            // unmapped.
            unsafe {
                let h = &*(slot.record() as *const Header);
                publish(closure, h, compiled, cif, fun, user_data);
            }
            Ok(())
        }
        Owner::Freed => Err(PrepError::Freed),
        Owner::Corrupt => Err(PrepError::Corrupt),
        // SAFETY: forwarded contract (foreign memory the caller owns).
        Owner::Foreign => unsafe { prep_foreign(closure, compiled, cif, fun, user_data) },
    }
}

/// Prepares a closure on memory we did not allocate: a classic trampoline
/// in its `tramp[]` jumps through a header of ours.
///
/// # Safety
/// `closure` is writable memory of at least sizeof(ffi_closure) bytes that
/// the caller owns (and executes at its own code address).
#[inline(never)]
unsafe fn prep_foreign(
    closure: *mut FfiClosure,
    compiled: &'static Compiled,
    cif: *mut FfiCif,
    fun: Fun,
    user_data: *mut c_void,
) -> Result<(), PrepError> {
    let mut map = foreign_headers().lock().unwrap_or_else(|e| e.into_inner());
    let h: &'static Header = map.entry(closure as usize).or_insert_with(|| {
        Box::leak(Box::new(Header {
            entry: AtomicUsize::new(trap_entry()),
            plan: AtomicPtr::new(ptr::null_mut()),
            closure: AtomicPtr::new(closure),
            slot: AtomicU32::new(u32::MAX),
            meta: AtomicU32::new(0),
        }))
    });
    // SAFETY: the caller guarantees `closure` is writable memory of
    // at least sizeof(ffi_closure) bytes that it owns.
    unsafe {
        publish(closure, h, compiled, cif, fun, user_data);
        ptr::write_volatile(
            &raw mut (*closure).tramp,
            classic_trampoline(h as *const Header as usize),
        );
    }
    Ok(())
}

/// Live closures and slots ever handed out (for `statictramp check` and tests).
pub fn stats() -> (usize, u32) {
    (thread_cache::live(), table::handed_out())
}

/// Whether `code` is the code address of a live closure of ours.
pub fn owns_code(code: usize) -> bool {
    match Slot::from_code(code, table::handed_out()) {
        Some(slot) => {
            // SAFETY: a handed-out slot's record is committed and never unmapped.
            let h = unsafe { &*(slot.record() as *const Header) };
            h.meta.load(Ordering::Acquire) >> 8 == MAGIC_LIVE
        }
        None => false,
    }
}
