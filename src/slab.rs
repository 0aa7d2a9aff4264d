//! Large closure records: the writable memory `ffi_closure_alloc` returns
//! for requests larger than an `ffi_closure`.
//!
//! Size classes: class 0 is exactly an `ffi_closure` (CLOSURE_SIZE: 56
//! bytes on x86_64) — what
//! nearly every client asks for; those records are the trampoline slots'
//! own (src/table.rs) and never come from here. Classes 1.. are powers of
//! two from 64 bytes to 16 MiB, each aligned to its size (at most a page),
//! taken from one reserved address range, committed read-write in chunks
//! and never returned to the system, so that (a) "is this pointer ours?" is
//! a range check that needs no lock ([`contains`]), and (b) reading the
//! header of a freed record (to diagnose a double free) never touches
//! unmapped memory. Each class has a first-in first-out queue of freed
//! records, reused after the quarantine (src/quarantine.rs) like every
//! other queue of freed items: a late second free of a record keeps
//! hitting a freed header (diagnosed) for at least `QUARANTINE` further
//! frees of its class instead of freeing the closure of the record's next
//! owner.
#![allow(unsafe_code)]

use crate::layout::CLOSURE_SIZE;
use crate::map;
use crate::quarantine;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// log2 of the smallest class above an `ffi_closure`: the power of two
/// above CLOSURE_SIZE (64 bytes on x86_64, 32 on arm).
const FIRST_SHIFT: u32 = (CLOSURE_SIZE + 1).next_power_of_two().trailing_zeros();
/// Largest record: 16 MiB; larger requests fail with ENOMEM.
pub const MAX_SIZE: usize = 1 << 24;
/// Number of size classes: CLOSURE_SIZE, then 2^FIRST_SHIFT .. MAX_SIZE.
pub const CLASSES: usize = (MAX_SIZE.trailing_zeros() - FIRST_SHIFT + 2) as usize;
/// Bytes committed at a time (one huge page).
const CHUNK: usize = 1 << 21;
/// Arena bytes after which new chunks are backed by transparent huge pages
/// where the system allows it (`madvise` mode): a process with a few
/// closures keeps 4 KiB pages (no 2 MiB of RSS for 50 records), one with
/// hundreds of thousands takes one page fault per 2 MiB of records instead
/// of 512, and fewer TLB misses when it calls and frees them.
const HUGE_FROM: usize = 8 << 20;

/// Bytes of a record of class `class`.
pub const fn class_size(class: u32) -> usize {
    if class == 0 {
        CLOSURE_SIZE
    } else {
        1 << (FIRST_SHIFT + class - 1)
    }
}

/// The size class for a request of `size` bytes, if we serve that size.
pub fn class_of(size: usize) -> Option<u32> {
    if size <= CLOSURE_SIZE {
        return Some(0);
    }
    if size > MAX_SIZE {
        return None;
    }
    // CLOSURE_SIZE+1 ..= 2^FIRST_SHIFT -> 1, then one class per doubling.
    Some(size.next_power_of_two().trailing_zeros() - FIRST_SHIFT + 1)
}

/// The arena's address range and how much of it is handed out, readable
/// without the allocator's lock (base and length are set once; `USED` only
/// grows, and is published after the record it covers is committed).
static BASE: AtomicUsize = AtomicUsize::new(0);
static USED: AtomicUsize = AtomicUsize::new(0);

/// Whether `[p, p + len)` lies inside the arena's handed-out part: the
/// bytes are committed read-write and stay mapped for the process's life.
pub fn contains(p: usize, len: usize) -> bool {
    let base = BASE.load(Ordering::Acquire);
    base != 0
        && p >= base
        && p.checked_add(len)
            .is_some_and(|end| end <= base + USED.load(Ordering::Acquire))
}

/// The record arena.
pub struct Slab {
    base: usize,
    len: usize,
    /// Bytes handed out from the start of the range (bump pointer).
    used: usize,
    /// Bytes committed read-write from the start of the range.
    committed: usize,
    /// Freed records of each class, oldest first.
    free: [VecDeque<usize>; CLASSES],
}

impl Slab {
    pub const fn new() -> Slab {
        Slab {
            base: 0,
            len: 0,
            used: 0,
            committed: 0,
            free: [const { VecDeque::new() }; CLASSES],
        }
    }

    /// A record of class `class`; contents unspecified, as malloc's are.
    /// A freed one after the quarantine, else a fresh one, else (the arena
    /// is full) the oldest freed one.
    pub fn alloc(&mut self, class: u32) -> io::Result<usize> {
        let free = &mut self.free[class as usize];
        if let Some(p) = quarantine::reusable(free) {
            return Ok(p);
        }
        match self.fresh(class) {
            Ok(p) => Ok(p),
            Err(e) => quarantine::last_resort(&mut self.free[class as usize]).ok_or(e),
        }
    }

    /// A record of class `class` never handed out before.
    fn fresh(&mut self, class: u32) -> io::Result<usize> {
        if self.base == 0 {
            self.reserve()?;
        }
        // Class 0 records are the slots' own (src/table.rs), never these.
        debug_assert!(class != 0, "ffi_closure-sized records come from the slots");
        let size = class_size(class);
        // Classes are aligned to their size (up to a page), as malloc's are.
        let align = size.min(4096);
        let start = self.used.next_multiple_of(align);
        let end = start + size;
        if end > self.len {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        while self.committed < end {
            let n = CHUNK
                .max((end - self.committed).next_multiple_of(CHUNK))
                .min(self.len - self.committed);
            map::commit_rw(self.base + self.committed, n)?;
            if self.committed >= HUGE_FROM {
                map::advise_huge(self.base + self.committed, n);
            }
            self.committed += n;
        }
        self.used = end;
        USED.store(end, Ordering::Release);
        Ok(self.base + start)
    }

    /// Queues a freed record of `class` for reuse after the quarantine.
    pub fn free(&mut self, p: usize, class: u32) {
        self.free[class as usize].push_back(p);
    }

    /// Reserves the arena: 64 GiB of address space where it is free (1 GiB
    /// in a 32-bit address space). Under
    /// an address-space limit (RLIMIT_AS) the largest size that fits is
    /// found by halving, and only a quarter of it is kept (at least 64 MiB),
    /// so that trampoline regions (2 * REC_DIST of address space each: 448 MiB
    /// on x86_64) still fit beside it.
    fn reserve(&mut self) -> io::Result<()> {
        // 64 GiB where the address space has room (64-bit), else 1 GiB.
        const FULL: usize = if usize::BITS >= 64 {
            (64u64 << 30) as usize
        } else {
            1 << 30
        };
        const MIN: usize = 64 << 20;
        let mut len = FULL;
        let base = loop {
            match map::reserve(len, 1 << 21) {
                Ok(base) => break base,
                Err(e) if len <= MIN => return Err(e),
                Err(_) => len /= 2,
            }
        };
        let (base, len) = if len == FULL || len <= MIN {
            (base, len)
        } else {
            map::release(base, len);
            let small = (len / 4).max(MIN);
            (map::reserve(small, 1 << 21)?, small)
        };
        self.base = base;
        self.len = len;
        BASE.store(base, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(class_of(0), Some(0));
        assert_eq!(class_of(CLOSURE_SIZE), Some(0));
        assert_eq!(class_of(CLOSURE_SIZE + 1), Some(1));
        assert_eq!(class_size(1), 1 << FIRST_SHIFT);
        assert!(class_size(1) > CLOSURE_SIZE && class_size(1) <= 2 * CLOSURE_SIZE);
        assert_eq!(class_of(class_size(1) + 1), Some(2));
        assert_eq!(class_size(2), 2 << FIRST_SHIFT);
        assert_eq!(class_of(MAX_SIZE), Some(CLASSES as u32 - 1));
        assert_eq!(class_size(CLASSES as u32 - 1), MAX_SIZE);
        assert_eq!(class_of(MAX_SIZE + 1), None);
        for s in [1, CLOSURE_SIZE, CLOSURE_SIZE + 1, 100, 4096, 5000, 1 << 20] {
            let c = class_of(s).unwrap();
            assert!(class_size(c) >= s, "{s}");
            assert!(c == 0 || class_size(c) < 2 * s.max(33), "{s}");
        }
    }
}
