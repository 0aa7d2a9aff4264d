//! Trampoline tables: which code slots exist, where each slot's data word
//! is, and handing slots out.
//!
//! A slot is named by a global index. Indices `0..IMAGE_SLOTS` are the
//! in-image pool (code in the library's .text, data words in its .bss);
//! the next ones are mapped regions, each `2 * DATA_DIST` bytes of reserved
//! address space: template copies fill the lower half one after another,
//! and each copy's data words sit DATA_DIST above the copy, 8 bytes apart
//! (slot j of a copy reads copy + DATA_DIST + 8 j), so the data half grows
//! as one writable mapping of which only the words are ever touched.
//!
//! ```text
//! region base                       base + DATA_DIST            base + 2*DATA_DIST
//! | copy 0 | copy 1 | ... (R+X, file) | data 0 | data 1 | ... (RW, anonymous) |
//! ```
#![allow(unsafe_code)]

use crate::layout::{
    DATA_DIST, DATA_STRIDE, IMAGE_SLOTS, SLOT, TEMPLATE_ALIGN, TEMPLATE_BYTES, TEMPLATE_SLOTS,
};
use crate::map;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

unsafe extern "C" {
    static statictramp_image_table: u8;
    static statictramp_image_data: u8;
}

/// Freed slots wait in a FIFO queue and are reused only while more than
/// this many are waiting: a stale code pointer keeps hitting the freed-slot
/// sentinel (diagnostic + abort) for at least this many further frees,
/// instead of running the next closure allocated. Costs at most this many
/// extra slots.
pub const QUARANTINE: usize = 64;

/// Slots per mapped region.
pub const REGION_SLOTS: usize = DATA_DIST / SLOT;
/// Most mapped regions (each holds REGION_SLOTS = 16 M slots).
pub const MAX_REGIONS: usize = 64;

/// Base addresses of mapped regions, published once each is reserved;
/// read without locks to map a code address back to its slot.
static REGIONS: [AtomicUsize; MAX_REGIONS] = [const { AtomicUsize::new(0) }; MAX_REGIONS];

/// Slots ever handed out, published for lock-free lookups (it only grows).
static HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// Slots ever handed out: every index below is a real, mapped slot.
pub fn handed_out() -> u32 {
    HANDED_OUT.load(Ordering::Acquire)
}

/// A trampoline slot: its global index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(pub u32);

fn image_code() -> usize {
    (&raw const statictramp_image_table) as usize
}

fn image_data() -> usize {
    (&raw const statictramp_image_data) as usize
}

impl Slot {
    /// Address of the slot's code: what callers call.
    pub fn code(self) -> usize {
        let i = self.0 as usize;
        if i < IMAGE_SLOTS {
            image_code() + i * SLOT
        } else {
            let r = (i - IMAGE_SLOTS) / REGION_SLOTS;
            let s = (i - IMAGE_SLOTS) % REGION_SLOTS;
            REGIONS[r].load(Ordering::Acquire) + s * SLOT
        }
    }

    /// The slot's data word: the header its trampoline loads into r10.
    pub fn data_word(self) -> &'static AtomicPtr<u8> {
        let i = self.0 as usize;
        let addr = if i < IMAGE_SLOTS {
            image_data() + i * DATA_STRIDE
        } else {
            // Slot j of its copy reads (copy + DATA_DIST + j * DATA_STRIDE).
            let j = (i - IMAGE_SLOTS) % TEMPLATE_SLOTS;
            self.code() + DATA_DIST - j * (SLOT - DATA_STRIDE)
        };
        // SAFETY: every slot handed out by `Slots` has its data word in
        // committed read-write memory (the image's .bss or a committed part
        // of a region's data half) that is never unmapped, 8-byte aligned.
        unsafe { &*(addr as *const AtomicPtr<u8>) }
    }

    /// The slot whose code starts at `code`, if `code` is one of ours and
    /// `in_use` slots have been handed out up to it.
    pub fn from_code(code: usize, handed_out: u32) -> Option<Slot> {
        let ic = image_code();
        let found = if code >= ic && code < ic + IMAGE_SLOTS * SLOT {
            Some((code - ic) / SLOT).filter(|_| (code - ic) % SLOT == 0)
        } else {
            REGIONS.iter().enumerate().find_map(|(r, base)| {
                let b = base.load(Ordering::Acquire);
                (b != 0 && code >= b && code < b + DATA_DIST && (code - b) % SLOT == 0)
                    .then(|| IMAGE_SLOTS + r * REGION_SLOTS + (code - b) / SLOT)
            })
        };
        found.map(|i| Slot(i as u32)).filter(|s| s.0 < handed_out)
    }
}

/// Hands out slots: the in-image pool first, then mapped regions.
/// Not thread-safe by itself; the closure allocator serialises access.
pub struct Slots {
    /// Freed slots, reused first-in first-out after the quarantine.
    free: VecDeque<Slot>,
    /// Slots ever handed out: the next fresh index.
    next: u32,
    /// Slots whose code and data are mapped and ready (a multiple of
    /// TEMPLATE_SLOTS beyond the in-image pool).
    ready: u32,
    /// What every fresh data word is set to (the freed-slot sentinel).
    sentinel: *mut u8,
}

// SAFETY: `sentinel` points at a static header; Slots is only used under
// the allocator's mutex.
unsafe impl Send for Slots {}

/// Why no slot could be had.
#[derive(Debug)]
pub enum SlotError {
    /// Address space, map count or memory ran out.
    Exhausted(io::Error),
}

impl Slots {
    pub const fn new(sentinel: *mut u8) -> Slots {
        Slots {
            free: VecDeque::new(),
            next: 0,
            ready: 0,
            sentinel,
        }
    }

    /// Slots ever handed out (fresh indices below this exist).
    pub fn handed_out(&self) -> u32 {
        self.next
    }

    /// Number of slots in use.
    pub fn live(&self) -> usize {
        self.next as usize - self.free.len()
    }

    /// Takes a slot; its data word holds the sentinel.
    pub fn take(&mut self) -> Result<Slot, SlotError> {
        if self.free.len() > QUARANTINE {
            if let Some(s) = self.free.pop_front() {
                return Ok(s);
            }
        }
        if self.ready == 0 {
            // First use: the in-image pool. Point every data word at the
            // sentinel so that no slot ever jumps through a null header.
            for i in 0..IMAGE_SLOTS as u32 {
                Slot(i).data_word().store(self.sentinel, Ordering::Relaxed);
            }
            self.ready = IMAGE_SLOTS as u32;
        }
        if self.next == self.ready {
            if let Err(e) = self.grow() {
                // Out of fresh slots: the quarantine yields before we fail.
                return self.free.pop_front().ok_or(e);
            }
        }
        let s = Slot(self.next);
        self.next += 1;
        HANDED_OUT.store(self.next, Ordering::Release);
        Ok(s)
    }

    /// Returns a slot; the caller has already pointed its data word at the sentinel.
    pub fn give_back(&mut self, s: Slot) {
        self.free.push_back(s);
    }

    /// Maps one more template copy (and its data) at the end of the last
    /// region, reserving a new region when the last one is full.
    fn grow(&mut self) -> Result<(), SlotError> {
        let mapped = self.ready as usize - IMAGE_SLOTS;
        let r = mapped / REGION_SLOTS;
        let within = mapped % REGION_SLOTS; // the region stays reserved after a failure
        if r >= MAX_REGIONS {
            return Err(SlotError::Exhausted(io::Error::other(
                "all trampoline regions are full",
            )));
        }
        if REGIONS[r].load(Ordering::Acquire) == 0 {
            let base = map::reserve(2 * DATA_DIST, TEMPLATE_ALIGN).map_err(SlotError::Exhausted)?;
            REGIONS[r].store(base, Ordering::Release);
        }
        let base = REGIONS[r].load(Ordering::Acquire);
        let code = base + within * SLOT;
        let data = code + DATA_DIST;
        map::commit_rw(data, TEMPLATE_BYTES).map_err(SlotError::Exhausted)?;
        // Data words first, so that no mapped slot is ever without a header.
        let words = data as *mut AtomicPtr<u8>;
        for i in 0..TEMPLATE_SLOTS {
            // SAFETY: `data` was just committed read-write, TEMPLATE_BYTES
            // long; slot i's word is at i * DATA_STRIDE.
            unsafe { (*words.byte_add(i * DATA_STRIDE)).store(self.sentinel, Ordering::Relaxed) };
        }
        map::map_template_copy(code).map_err(SlotError::Exhausted)?;
        self.ready += TEMPLATE_SLOTS as u32;
        Ok(())
    }
}

/// Address ranges of trampoline code: (start, length) of the in-image
/// table and every mapped region's code half. For diagnostics and tests.
pub fn code_ranges() -> Vec<(usize, usize)> {
    let mut v = vec![(image_code(), IMAGE_SLOTS * SLOT)];
    for base in &REGIONS {
        let b = base.load(Ordering::Acquire);
        if b != 0 {
            v.push((b, DATA_DIST));
        }
    }
    v
}
