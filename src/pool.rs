//! The global pool: trampoline slots, the record arena and the freed
//! `ffi_closure`-sized closures, behind one lock. Threads take from it in
//! batches ([`refill`]) and give back in batches ([`recycle_batch`]); the
//! per-thread caches in front of it (src/thread_cache.rs) serve the common
//! alloc and free without the lock.
//!
//! "Recycle" is the one name for giving a freed (or never used) closure
//! back for reuse, at every level: a thread cache, this pool, the slot
//! queue. Reuse follows the quarantine (src/quarantine.rs).
#![allow(unsafe_code)]

use crate::lock::Guard;
use crate::quarantine::{self, Fifo};
use crate::record::{self, FREED, IDLE};
use crate::slab::Slab;
use crate::table::{self, Slot, SlotError, Slots};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

/// A trampoline slot and a record it serves: its own record for an
/// `ffi_closure`-sized closure (class 0), or one from the arena.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    pub slot: Slot,
    pub rec: usize,
}

/// Pairs a thread takes from, or gives back to, the pool at once.
pub const BATCH: usize = 32;

/// Why no pair could be had.
#[derive(Debug)]
pub enum AllocError {
    /// No size class serves this size.
    TooLarge(usize),
    /// Out of trampoline slots (address space, map count, memory).
    Slots(SlotError),
    /// Out of record memory.
    Records(std::io::Error),
}

struct Pool {
    slots: Slots,
    slab: Slab,
    /// Freed (or returned unallocated) class-0 pairs.
    freed: FreedList,
}

/// Class-0 records not in use (freed, or handed to a thread that exited
/// before allocating them), first in first out, linked through their
/// headers' `plan` word: no entry reads it while the header's entry is the
/// trap. Intrusive, so recycling a million closures allocates and copies
/// nothing; a record's slot follows from its address. Each record enters
/// the list once per free (the free's compare-and-swap from live) or once
/// when its thread exits, so none is linked twice; a client that prepares
/// a closure while another thread frees it could still write a linked
/// node's `plan`, so `pop_front` checks each node before following it.
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
    fn link(rec: usize) -> &'static AtomicPtr<crate::plan::Compiled> {
        // SAFETY: only records of ours are linked (a handed-out slot's own
        // record, not in use), committed read-write and never unmapped;
        // `pop_front` checks a node is one before following its link.
        unsafe { &record::header(rec).plan }
    }

    fn push_back(&mut self, p: Pair) {
        Self::link(p.rec).store(ptr::null_mut(), Ordering::Relaxed);
        if self.tail == 0 {
            self.head = p.rec;
        } else {
            Self::link(self.tail).store(p.rec as *mut _, Ordering::Relaxed);
        }
        self.tail = p.rec;
        self.len += 1;
    }
}

impl Fifo for FreedList {
    type Item = Pair;

    fn len(&self) -> usize {
        self.len
    }

    fn pop_front(&mut self) -> Option<Pair> {
        if self.head == 0 {
            return None;
        }
        let rec = self.head;
        // A node must be the start of a handed-out slot's own record that
        // is not live (freed, or never allocated). Anything else means a
        // node's link was overwritten: a prep raced a free of the same
        // closure.
        let slot = Slot::from_record(rec, table::handed_out()).filter(|_| {
            // SAFETY: a handed-out slot's own record, committed and never
            // unmapped.
            let c = unsafe { record::header(rec) }
                .closure
                .load(Ordering::Relaxed);
            c == FREED || c == IDLE
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
}

fn pool() -> Guard<'static, Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    crate::lock::lock(POOL.get_or_init(|| {
        crate::fork::register();
        Mutex::new(Pool {
            slots: Slots::new(),
            slab: Slab::new(),
            freed: FreedList::new(),
        })
    }))
}

/// The pool's lock, held across fork (src/fork.rs).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(pool())
}

impl Pool {
    /// A slot and a record of `class`, or neither. Class 0 reuses a freed
    /// pair after the quarantine.
    fn pair(&mut self, class: u32) -> Result<Pair, AllocError> {
        if class == 0 {
            if let Some(p) = quarantine::reusable(&mut self.freed) {
                return Ok(p);
            }
        }
        let slot = match self.slots.take() {
            Ok(s) => s,
            Err(e) if class == 0 => {
                return quarantine::last_resort(&mut self.freed).ok_or(AllocError::Slots(e));
            }
            Err(e) => return Err(AllocError::Slots(e)),
        };
        if class == 0 {
            // The slot's own record. A fresh one is zeroed, which reads as
            // idle with a null entry: give it the trap entry now, so that a
            // call through its code before it is allocated gets the trap's
            // diagnostic. (A slot recycled from a larger class already has
            // the trap and FREED.)
            let rec = slot.record();
            // SAFETY: a handed-out slot's own record is committed
            // read-write, never unmapped, and idle (no caller has it).
            unsafe { record::header(rec) }
                .entry
                .store(record::trap_entry(), Ordering::Release);
            return Ok(Pair { slot, rec });
        }
        match self.slab.alloc(class) {
            Ok(rec) => Ok(Pair { slot, rec }),
            Err(e) => {
                self.slots.recycle(slot);
                Err(AllocError::Records(e))
            }
        }
    }

    fn recycle(&mut self, p: Pair, class: u32) {
        if class == 0 {
            self.freed.push_back(p);
        } else {
            self.slots.recycle(p.slot);
            self.slab.free(p.rec, class);
        }
    }
}

/// A pair of `class` from the pool (larger records, or a thread without a
/// cache).
pub fn take(class: u32) -> Result<Pair, AllocError> {
    pool().pair(class)
}

/// Fills a thread cache with up to BATCH class-0 pairs (at least one, or
/// the error).
#[cold]
#[inline(never)]
pub fn refill(fresh: &mut Vec<Pair>) -> Result<(), AllocError> {
    let mut pool = pool();
    let start = fresh.len();
    for i in 0..BATCH {
        match pool.pair(0) {
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

/// Recycles one freed pair of `class` into the pool. Its header already
/// traps.
#[inline(never)]
pub fn recycle(pair: Pair, class: u32) {
    pool().recycle(pair, class);
}

/// Recycles class-0 pairs into the pool (a thread's hoard, or its whole
/// cache when it exits). Their headers already trap.
pub fn recycle_batch(pairs: &[Pair]) {
    if pairs.is_empty() {
        return;
    }
    let mut pool = pool();
    for &p in pairs {
        pool.freed.push_back(p);
    }
}
