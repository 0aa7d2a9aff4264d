//! Closure records: libffi's `ffi_closure` as this architecture lays it out,
//! the [`Header`] statictramp keeps in its `tramp[]`, what each header word
//! means in each state of a closure's life, and the order in which prep
//! publishes a closure to callers on other CPUs.
//!
//! The layout numbers come from `statictramp_abi::<arch>::RECORD` (checked
//! for every architecture when that crate compiles) and from the assembly's
//! layout header; the `const` assertions below tie the Rust structs to both.
//!
//! # The header: three words in `tramp[]`
//!
//! | word      | read by                        | meaning                           |
//! |-----------|--------------------------------|-----------------------------------|
//! | `entry`   | the slot (an indirect jump)    | code to run: an entry or the trap |
//! | `plan`    | the entries                    | the compiled plan (after prep)    |
//! | `closure` | the entries, ownership checks  | the closure the entry serves      |
//!
//! A slot's own record (every slot owns the record at a fixed distance; the
//! slot number follows from the record's address) goes through these
//! states, told apart by the `closure` word alone:
//!
//! - **idle** (`closure == 0`): handed out to a thread cache or the global
//!   pool, never allocated, or given back unallocated. `entry` is the trap.
//! - **live** (`closure == the record itself`): allocated. `entry` is the
//!   trap until prep stores the real entry.
//! - **forwarding** (`closure ==` a larger record from the arena): the slot
//!   serves a record of a larger size class (see [`LargeHeader`]).
//! - **freed** (`closure == FREED`): `entry` is the trap; while the record
//!   waits in the global pool its `plan` word links it to the next one. A
//!   slot freed from a larger record and handed out again for an
//!   `ffi_closure`-sized one keeps `FREED` until it is allocated, so a
//!   free of such a never-allocated record reports a double free rather
//!   than "not a closure".
//!
//! Headers of closures prepared on foreign memory live on the heap and are
//! always "live" (their `closure` names the foreign memory).
//!
//! # Publication protocol (all architectures)
//!
//! A closure may be called on another CPU the moment prep returns, and the
//! caller's CPU reads the header with no lock. Prep therefore writes, in
//! this order: the record's `cif`, `fun` and `user_data`; the header's
//! `plan`; and last the header's `entry`, with **release** semantics
//! ([`publish`]). A call reads `entry` first (the slot's indirect jump) and
//! only then `plan`, `closure` and the closure's fields. Each port makes
//! that first read an **acquire** (or orders the later reads after it by an
//! address dependency), so every write before the release is visible:
//!
//! - x86_64, i386: every load is an acquire under TSO; the slot's plain
//!   `jmp *entry` suffices.
//! - aarch64: `ldar` for the entry word in the slot, or an artificial
//!   address dependency from the loaded entry to the entry's later loads
//!   (`eor xN, x16, x16; add x17, x17, xN`). The branch to the loaded entry
//!   (`br x16`) is only a control dependency and orders no later load.
//! - arm: `ldr` then `dmb ish`, or an artificial address dependency as on
//!   aarch64, before the entry's loads.
//!
//! The same pairing covers the trap: free stores the trap entry with
//! release after its compare-and-swap, and a new owner's alloc stores the
//! trap entry before the record is handed to it (so a stale real entry left
//! by a client's prep racing its own free never survives into the next
//! owner's closure). Rust readers (ownership checks) load with acquire.
//!
//! A call that races a free of the same closure (the client's misuse, as
//! in libffi) may enter the real entry after the free stored `FREED` in the
//! `closure` word and before it stored the trap entry; the entry then reads
//! the closure's fields near address 1 and faults (SIGSEGV) instead of
//! printing the trap's diagnostic. The same holds for a stale real entry
//! left by a prep racing a free, until the record is reused. Neither runs
//! another closure's handler.
#![allow(unsafe_code)]

use crate::arch;
use crate::cif::{FfiCif, Fun};
use crate::layout::{CLOSURE_CIF, CLOSURE_FUN, CLOSURE_SIZE, CLOSURE_USER_DATA};
use crate::layout::{HDR_CLOSURE, HDR_ENTRY, HDR_PLAN, HDR_SIZE};
use crate::plan::Compiled;
use std::mem::offset_of;
use std::os::raw::c_void;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// `FFI_TRAMPOLINE_SIZE` of this architecture.
pub const TRAMP_SIZE: usize = arch::RECORD.tramp_size as usize;

/// libffi's `ffi_closure` on this architecture (`aligned (8)` in C).
#[repr(C, align(8))]
pub struct FfiClosure {
    pub tramp: [u8; TRAMP_SIZE],
    pub cif: *mut FfiCif,
    pub fun: Option<Fun>,
    pub user_data: *mut c_void,
}

/// Our bookkeeping at the start of `tramp[]` (module docs).
#[repr(C)]
pub struct Header {
    /// Entry the slot jumps to.
    pub entry: AtomicUsize,
    /// The compiled plan (after prep); a freed record's link in the pool.
    pub plan: AtomicPtr<Compiled>,
    /// The closure the entry serves, or [`IDLE`] / [`FREED`].
    pub closure: AtomicUsize,
}

/// `closure` word of a slot's own record that was never allocated.
pub const IDLE: usize = 0;
/// `closure` word of a freed record (not a valid record address: records
/// are 8-aligned).
pub const FREED: usize = 1;

/// The header of a record of a larger size class (from the arena), in its
/// own `tramp[]`. Nothing jumps through it: its slot's own record forwards
/// to it (`closure` word = this record), and the entries read the plan from
/// there.
#[repr(C)]
pub struct LargeHeader {
    /// The slot's own record that forwards here.
    pub forwarder: AtomicUsize,
    /// `magic << 8 | size class`.
    pub meta: AtomicUsize,
    /// Unused (zero).
    pub spare: AtomicUsize,
}

/// [`LargeHeader::meta`] magic of a live larger record ("STL").
pub const MAGIC_LIVE: usize = 0x53_54_4c;
/// ... of a freed one ("STF").
pub const MAGIC_FREED: usize = 0x53_54_46;

const _: () = {
    let r = arch::RECORD;
    // The assembly's header (layout.h) agrees with statictramp-abi's
    // layout for this architecture, and both with the Rust structs.
    assert!(HDR_ENTRY == r.hdr_entry() as usize && offset_of!(Header, entry) == HDR_ENTRY);
    assert!(HDR_PLAN == r.hdr_plan() as usize && offset_of!(Header, plan) == HDR_PLAN);
    assert!(HDR_CLOSURE == r.hdr_closure() as usize && offset_of!(Header, closure) == HDR_CLOSURE);
    assert!(HDR_SIZE == r.hdr_size() as usize && size_of::<Header>() == HDR_SIZE);
    assert!(size_of::<LargeHeader>() == HDR_SIZE);
    assert!(HDR_SIZE <= TRAMP_SIZE);
    assert!(size_of::<usize>() == r.word as usize);
    assert!(CLOSURE_CIF == r.closure_cif() as usize && offset_of!(FfiClosure, cif) == CLOSURE_CIF);
    assert!(CLOSURE_FUN == r.closure_fun() as usize && offset_of!(FfiClosure, fun) == CLOSURE_FUN);
    assert!(
        CLOSURE_USER_DATA == r.closure_user_data() as usize
            && offset_of!(FfiClosure, user_data) == CLOSURE_USER_DATA
    );
    assert!(CLOSURE_SIZE == r.closure_size() as usize && size_of::<FfiClosure>() == CLOSURE_SIZE);
    assert!(align_of::<FfiClosure>() == r.closure_align() as usize);
};

unsafe extern "C" {
    /// The trap every closure that must not run jumps to (asm/<arch>/).
    fn statictramp_entry_trap();
}

/// The trap entry's address.
#[inline(always)]
pub fn trap_entry() -> usize {
    statictramp_entry_trap as *const () as usize
}

/// The header at the start of a record.
///
/// # Safety
/// `rec` is a record of ours (a handed-out slot's own record, or a record
/// from the arena, or a heap header): at least HDR_SIZE bytes, aligned,
/// committed read-write and never unmapped. The words are atomics, so
/// concurrent access is defined.
#[inline(always)]
pub unsafe fn header<'a>(rec: usize) -> &'a Header {
    // SAFETY: per the contract.
    unsafe { &*(rec as *const Header) }
}

/// The [`LargeHeader`] at the start of a record from the arena.
///
/// # Safety
/// As [`header`], for a record inside the arena's handed-out part.
#[inline(always)]
pub unsafe fn large_header<'a>(rec: usize) -> &'a LargeHeader {
    // SAFETY: per the contract.
    unsafe { &*(rec as *const LargeHeader) }
}

/// Whether a header belongs to a freed closure (for the trap's diagnostic).
pub fn is_freed(h: &Header) -> bool {
    h.closure.load(Ordering::Acquire) == FREED
}

/// Fills a closure's public fields, then the header its code jumps
/// through: the plan, and last the entry, with release (module docs: the
/// publication protocol), so that a caller on any CPU sees a complete
/// closure.
///
/// # Safety
/// `closure` is writable memory of at least sizeof(ffi_closure) bytes.
#[inline(always)]
pub unsafe fn publish(
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
