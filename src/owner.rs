//! Whose is this pointer? Classifies the pointers C callers hand to
//! `ffi_closure_free` and `ffi_prep_closure_loc`, and code addresses handed
//! to `statictramp_owns_code`. Takes no lock: the slots handed out and the
//! record arena only grow, and records stay mapped for the process's life,
//! so reading a header is always defined (its words are atomics).
#![allow(unsafe_code)]

use crate::layout::HDR_SIZE;
use crate::record::{self, FREED, IDLE, MAGIC_FREED, MAGIC_LIVE};
use crate::slab;
use crate::table::{self, Slot};
use std::sync::atomic::Ordering;

/// What a pointer handed to us turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// A live record of ours, served by this slot, of this size class.
    Live { slot: Slot, class: u32 },
    /// One of our records that was already freed.
    Freed,
    /// Inside our records but not a live record start (interior pointer,
    /// a slot's record that was never allocated, or corrupt).
    Corrupt,
    /// Not our memory.
    Foreign,
}

/// Classifies a pointer a C caller handed us.
#[inline]
pub fn owner(p: usize) -> Owner {
    let handed_out = table::handed_out();
    if let Some(slot) = Slot::from_record(p, handed_out) {
        // A slot's own record.
        // SAFETY: the record of a handed-out slot is committed read-write
        // and never unmapped.
        let c = unsafe { record::header(p) }.closure.load(Ordering::Acquire);
        return match c {
            _ if c == p => Owner::Live { slot, class: 0 },
            FREED => Owner::Freed,
            // IDLE: handed out but never allocated; anything else: the
            // forwarding header of a larger record, which no caller has.
            _ => Owner::Corrupt,
        };
    }
    owner_elsewhere(p, handed_out)
}

/// Whether `p` is a live `ffi_closure`-sized record of ours (a slot's own
/// record whose `closure` word names itself): prep's common case, tested
/// with a range check (a loop over the regions for mapped slots), a
/// division by a constant and one load. Anything else goes to [`owner`].
/// (Free makes the same test with its compare-and-swap.)
#[inline(always)]
pub fn live_own_record(p: usize) -> bool {
    Slot::from_record(p, table::handed_out()).is_some()
        // SAFETY: the record of a handed-out slot is committed read-write
        // and never unmapped.
        && unsafe { record::header(p) }.closure.load(Ordering::Acquire) == p
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
    if p % align_of::<usize>() != 0 {
        // Records are aligned (and a header may only be read aligned).
        return Owner::Corrupt;
    }
    // A larger record from the arena.
    // SAFETY: [p, p + HDR_SIZE) lies in the record arena, which is
    // committed read-write and never unmapped, and `p` is aligned; the
    // header's words are atomics, so reading a record another thread is
    // writing is defined (possibly garbage if `p` is an interior pointer:
    // the forwarder check below catches that).
    let h = unsafe { record::large_header(p) };
    let meta = h.meta.load(Ordering::Acquire);
    let (magic, class) = (meta >> 8, (meta & 0xff) as u32);
    if magic == MAGIC_FREED {
        return Owner::Freed;
    }
    if magic != MAGIC_LIVE || class == 0 {
        return Owner::Corrupt;
    }
    let fwd = h.forwarder.load(Ordering::Acquire);
    let Some(slot) = Slot::from_record(fwd, handed_out) else {
        return Owner::Corrupt;
    };
    // SAFETY: a handed-out slot's own record is committed and never unmapped.
    if unsafe { record::header(fwd) }
        .closure
        .load(Ordering::Acquire)
        != p
    {
        return Owner::Corrupt;
    }
    Owner::Live { slot, class }
}

/// Whether `code` is the code address of a live closure of ours.
pub fn owns_code(code: usize) -> bool {
    match Slot::from_code(code, table::handed_out()) {
        Some(slot) => {
            // SAFETY: a handed-out slot's record is committed and never unmapped.
            let c = unsafe { record::header(slot.record()) }
                .closure
                .load(Ordering::Acquire);
            c != IDLE && c != FREED
        }
        None => false,
    }
}
