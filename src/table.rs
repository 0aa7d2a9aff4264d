//! Trampoline tables: which code slots exist, where each slot's record
//! is, and handing slots out.
//!
//! A slot is named by a global index. Indices `0..IMAGE_SLOTS` are the
//! in-image pool (code in the library's .text, records in its .bss); the
//! next ones are mapped regions, each `2 * REC_DIST` bytes of reserved
//! address space. Template copies go into the lower half RECORDS_BYTES
//! apart (the hole after each copy's code is released, so it is no VMA),
//! and each copy's records sit REC_DIST above the copy, so the records of a
//! region grow as one read-write mapping:
//!
//! ```text
//! base               base + RECORDS_BYTES          base + REC_DIST              base + 2*REC_DIST
//! | copy 0 | hole    | copy 1 | hole    | ...     | records 0 | records 1 | ... (RW, anonymous) |
//! ```
//!
//! Slot j of copy k has its code at `base + k*RECORDS_BYTES + SLOT_SIZE*j`
//! and its record at `base + REC_DIST + k*RECORDS_BYTES + REC_STRIDE*j`
//! (16 and 56 bytes on x86_64): the slot computes
//! that address PC-relatively, so a record is found without a load and
//! without a separate data word.
#![allow(unsafe_code)]

use crate::layout::{
    GROUP_BYTES, IMAGE_BYTES, IMAGE_SLOTS, REC_DIST, REC_STRIDE, RECORDS_BYTES, REGION_COPIES,
    SLOT, SLOTS_PER_GROUP, TEMPLATE_ALIGN, TEMPLATE_BYTES, TEMPLATE_SLOTS,
};
use crate::map;
use crate::quarantine;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

unsafe extern "C" {
    static statictramp_image_table: u8;
    static statictramp_image_records: u8;
}

/// Slots per mapped region.
pub const REGION_SLOTS: usize = REGION_COPIES * TEMPLATE_SLOTS;
/// Most mapped regions (each holds REGION_SLOTS = 4 M slots).
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

fn image_records() -> usize {
    (&raw const statictramp_image_records) as usize
}

/// Offset of slot `j`'s code from the start of its table. Slots come in
/// groups of SLOTS_PER_GROUP, GROUP_BYTES apart: an architecture whose
/// slots need a helper shared in each page (a literal pool, a PC thunk)
/// fills the rest of each group with it; x86_64 (one slot per group) and
/// i386 (a page of slots, each with its own PC thunk) need none.
// With one slot per group (x86_64) the arithmetic folds away; clippy sees
// the `% 1`.
#[allow(clippy::modulo_one)]
fn code_offset(j: usize) -> usize {
    (j / SLOTS_PER_GROUP) * GROUP_BYTES + (j % SLOTS_PER_GROUP) * SLOT
}

/// The index of the slot whose code starts `off` bytes into a table of
/// `count` slots, if one does.
#[allow(clippy::modulo_one)]
fn code_index(off: usize, count: usize) -> Option<usize> {
    let (g, r) = (off / GROUP_BYTES, off % GROUP_BYTES);
    let j = g * SLOTS_PER_GROUP + r / SLOT;
    (r % SLOT == 0 && r / SLOT < SLOTS_PER_GROUP && j < count).then_some(j)
}

/// Where a mapped slot is: its region's base, its copy and its index in it.
fn locate(i: usize) -> (usize, usize, usize) {
    let m = i - IMAGE_SLOTS;
    let base = REGIONS[m / REGION_SLOTS].load(Ordering::Acquire);
    let within = m % REGION_SLOTS;
    (base, within / TEMPLATE_SLOTS, within % TEMPLATE_SLOTS)
}

impl Slot {
    /// Address of the slot's code: what callers call.
    pub fn code(self) -> usize {
        let i = self.0 as usize;
        if i < IMAGE_SLOTS {
            image_code() + code_offset(i)
        } else {
            let (base, k, j) = locate(i);
            base + k * RECORDS_BYTES + code_offset(j)
        }
    }

    /// Address of the slot's record: the `ffi_closure` whose header (in its
    /// `tramp[]`) the slot's code jumps through. Committed read-write and
    /// never unmapped for every slot handed out.
    pub fn record(self) -> usize {
        let i = self.0 as usize;
        if i < IMAGE_SLOTS {
            image_records() + i * REC_STRIDE
        } else {
            let (base, k, j) = locate(i);
            base + REC_DIST + k * RECORDS_BYTES + j * REC_STRIDE
        }
    }

    /// The slot whose code starts at `code`, if `code` is one of ours and
    /// the slot has been handed out (`handed_out` slots so far).
    pub fn from_code(code: usize, handed_out: u32) -> Option<Slot> {
        let off = code.wrapping_sub(image_code());
        let found = if off < IMAGE_BYTES {
            code_index(off, IMAGE_SLOTS)
        } else {
            let (r, k, within) = in_copy(code, 0)?;
            (within < TEMPLATE_BYTES)
                .then(|| code_index(within, TEMPLATE_SLOTS))
                .flatten()
                .map(|j| global_index(r, k, j))
        };
        found.map(|i| Slot(i as u32)).filter(|s| s.0 < handed_out)
    }

    /// The slot whose record starts at `rec`, if `rec` is one of ours and
    /// the slot has been handed out.
    pub fn from_record(rec: usize, handed_out: u32) -> Option<Slot> {
        let off = rec.wrapping_sub(image_records());
        let found = if off < IMAGE_SLOTS * REC_STRIDE {
            Some(off / REC_STRIDE).filter(|i| i * REC_STRIDE == off)
        } else {
            let (r, k, within) = in_copy(rec, REC_DIST)?;
            (within < TEMPLATE_SLOTS * REC_STRIDE && within % REC_STRIDE == 0)
                .then(|| global_index(r, k, within / REC_STRIDE))
        };
        found.map(|i| Slot(i as u32)).filter(|s| s.0 < handed_out)
    }
}

/// Whether `addr` lies in the records of the in-image pool or of a mapped
/// region (a record start or not).
pub fn in_records(addr: usize) -> bool {
    let ir = image_records();
    addr.wrapping_sub(ir) < IMAGE_SLOTS * REC_STRIDE || region_of(addr, REC_DIST).is_some()
}

/// The region whose part starting `offset` above its base (0: code, REC_DIST:
/// records) contains `addr`, and `addr`'s offset in that part. Regions are
/// reserved in index order, so the first empty entry ends the search.
fn region_of(addr: usize, offset: usize) -> Option<(usize, usize)> {
    for (r, base) in REGIONS.iter().enumerate() {
        let b = base.load(Ordering::Acquire);
        if b == 0 {
            return None;
        }
        let off = addr.wrapping_sub(b + offset);
        if off < REC_DIST {
            return Some((r, off));
        }
    }
    None
}

/// Where `addr` is in a mapped region's part starting `offset` above its
/// base (0: code, REC_DIST: records): the region, the copy, and the offset
/// within that copy's stride.
fn in_copy(addr: usize, offset: usize) -> Option<(usize, usize, usize)> {
    let (r, off) = region_of(addr, offset)?;
    Some((r, off / RECORDS_BYTES, off % RECORDS_BYTES))
}

/// The global index of slot `j` of copy `k` of region `r`.
fn global_index(r: usize, k: usize, j: usize) -> usize {
    IMAGE_SLOTS + r * REGION_SLOTS + k * TEMPLATE_SLOTS + j
}

/// Hands out slots: the in-image pool first, then mapped regions.
/// Not thread-safe by itself; the closure allocator serialises access.
pub struct Slots {
    /// Slots freed from larger records, reused first-in first-out after
    /// the quarantine (src/quarantine.rs).
    free: VecDeque<Slot>,
    /// Slots ever handed out: the next fresh index.
    next: u32,
    /// Slots whose code and records are mapped and ready (a multiple of
    /// TEMPLATE_SLOTS beyond the in-image pool).
    ready: u32,
    /// End of the committed records in the current region (0: none yet).
    committed: usize,
}

/// Huge page size the record halves are aligned and committed to.
const HUGE: usize = 2 << 20;

/// Why no slot could be had.
#[derive(Debug)]
pub enum SlotError {
    /// Address space, map count or memory ran out.
    Exhausted(io::Error),
}

impl Slots {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Slots {
        Slots {
            free: VecDeque::new(),
            next: 0,
            ready: IMAGE_SLOTS as u32,
            committed: 0,
        }
    }

    /// Takes a slot: a fresh one (its record is zeroed memory), or a freed
    /// one after the quarantine (its record's header traps).
    pub fn take(&mut self) -> Result<Slot, SlotError> {
        if let Some(s) = quarantine::reusable(&mut self.free) {
            return Ok(s);
        }
        if self.next == self.ready {
            if let Err(e) = self.grow() {
                return quarantine::last_resort(&mut self.free).ok_or(e);
            }
        }
        let s = Slot(self.next);
        self.next += 1;
        HANDED_OUT.store(self.next, Ordering::Release);
        Ok(s)
    }

    /// Recycles a slot; the caller has already made its record's header trap.
    pub fn recycle(&mut self, s: Slot) {
        self.free.push_back(s);
    }

    /// Maps one more template copy (and commits its records) at the end of
    /// the last region, reserving a new region when the last one is full.
    fn grow(&mut self) -> Result<(), SlotError> {
        let mapped = self.ready as usize - IMAGE_SLOTS;
        let r = mapped / REGION_SLOTS;
        let k = (mapped % REGION_SLOTS) / TEMPLATE_SLOTS; // the region stays reserved after a failure
        if r >= MAX_REGIONS {
            return Err(SlotError::Exhausted(io::Error::other(
                "all trampoline regions are full",
            )));
        }
        if REGIONS[r].load(Ordering::Acquire) == 0 {
            // 2 MiB-aligned, so that the record half can use huge pages.
            let base = map::reserve(2 * REC_DIST, HUGE.max(TEMPLATE_ALIGN))
                .map_err(SlotError::Exhausted)?;
            REGIONS[r].store(base, Ordering::Release);
        }
        let base = REGIONS[r].load(Ordering::Acquire);
        let code = base + k * RECORDS_BYTES;
        let records = code + REC_DIST;
        // Records first, so that no mapped slot is ever without one. They
        // stay untouched (not resident) until their slots are used; past the
        // first few copies, transparent huge pages back them (one fault per
        // 2 MiB and fewer TLB misses for processes with many closures).
        // Committed up to the next 2 MiB boundary (the records half is one
        // mapping, so this only moves its end), so that a huge page can
        // back the records about to be used.
        let end = (records + RECORDS_BYTES)
            .next_multiple_of(HUGE)
            .min(base + 2 * REC_DIST);
        if k == 0 {
            self.committed = 0; // a new region
        }
        let from = self.committed.max(records);
        if end > from {
            map::commit_rw(from, end - from).map_err(SlotError::Exhausted)?;
            if mapped / TEMPLATE_SLOTS >= 4 {
                map::advise_huge(from, end - from);
            }
            self.committed = end;
        }
        map::map_template_copy(code).map_err(SlotError::Exhausted)?;
        crate::stats::pool_mapped();
        // The rest of this copy's stride holds nothing: give it back, so
        // that it is a hole rather than a reserved VMA between two copies.
        map::release(code + TEMPLATE_BYTES, RECORDS_BYTES - TEMPLATE_BYTES);
        self.ready += TEMPLATE_SLOTS as u32;
        Ok(())
    }
}

/// Address ranges of trampoline code: (start, length) of the in-image
/// table and every mapped region's code half (copies and the holes between
/// them). For diagnostics and tests.
pub fn code_ranges() -> Vec<(usize, usize)> {
    let mut v = vec![(image_code(), IMAGE_BYTES)];
    for base in &REGIONS {
        let b = base.load(Ordering::Acquire);
        if b != 0 {
            v.push((b, REC_DIST));
        }
    }
    v
}
