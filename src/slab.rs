//! Closure records: the writable memory `ffi_closure_alloc` returns.
//!
//! Records come from one reserved address range, committed read-write in
//! chunks and never returned to the system, so that (a) "is this pointer
//! ours?" is a range check, and (b) reading the header of a freed record
//! (to diagnose a double free) never touches unmapped memory. Sizes are
//! rounded up to a power-of-two class (64 B .. 16 MiB); each class has a
//! free list.
#![allow(unsafe_code)]

use crate::map;
use std::io;

/// Smallest class: 2^6 = 64 bytes (an `ffi_closure` is 56).
pub const MIN_CLASS: u32 = 6;
/// Largest class: 2^24 = 16 MiB; larger requests fail with ENOMEM.
pub const MAX_CLASS: u32 = 24;
/// Bytes committed at a time.
const CHUNK: usize = 1 << 21;

/// The record arena.
pub struct Slab {
    base: usize,
    len: usize,
    /// Bytes handed out from the start of the range (bump pointer).
    used: usize,
    /// Bytes committed read-write from the start of the range.
    committed: usize,
    free: [Vec<usize>; (MAX_CLASS - MIN_CLASS + 1) as usize],
}

/// The size class for a request of `size` bytes, if we serve that size.
pub fn class_of(size: usize) -> Option<u32> {
    let c = size
        .max(1)
        .checked_next_power_of_two()?
        .trailing_zeros()
        .max(MIN_CLASS);
    (c <= MAX_CLASS).then_some(c)
}

impl Slab {
    pub const fn new() -> Slab {
        Slab {
            base: 0,
            len: 0,
            used: 0,
            committed: 0,
            free: [const { Vec::new() }; (MAX_CLASS - MIN_CLASS + 1) as usize],
        }
    }

    /// Whether `p` lies inside the arena's handed-out part.
    pub fn contains(&self, p: usize) -> bool {
        p >= self.base && p < self.base + self.used
    }

    /// A record of class `class`, aligned to its size (at most 4096);
    /// contents unspecified, as malloc's are.
    pub fn alloc(&mut self, class: u32) -> io::Result<usize> {
        let list = &mut self.free[(class - MIN_CLASS) as usize];
        if let Some(p) = list.pop() {
            return Ok(p);
        }
        if self.base == 0 {
            self.reserve()?;
        }
        let size = 1usize << class;
        // Classes are powers of two, so aligning the bump pointer to the
        // size keeps every record naturally aligned (and 16-byte aligned).
        let start = self.used.next_multiple_of(size.min(4096));
        let end = start + size;
        if end > self.len {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        while self.committed < end {
            let n = CHUNK
                .max((end - self.committed).next_multiple_of(CHUNK))
                .min(self.len - self.committed);
            map::commit_rw(self.base + self.committed, n)?;
            self.committed += n;
        }
        self.used = end;
        Ok(self.base + start)
    }

    /// Returns a record to its class's free list.
    pub fn free(&mut self, p: usize, class: u32) {
        self.free[(class - MIN_CLASS) as usize].push(p);
    }

    /// Reserves the arena: 64 GiB of address space where it is free. Under
    /// an address-space limit (RLIMIT_AS) the largest size that fits is
    /// found by halving, and only a quarter of it is kept (at least 64 MiB),
    /// so that trampoline regions (512 MiB each) still fit beside it.
    fn reserve(&mut self) -> io::Result<()> {
        const FULL: usize = 64 << 30;
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
        Ok(())
    }
}
