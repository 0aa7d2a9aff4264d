//! The quarantine: when a freed closure (or slot) may be reused.
//!
//! Freed items wait in first-in first-out queues: each thread's cache, the
//! global pool of `ffi_closure`-sized closures, the global queue of slots
//! freed from larger records, and the arena's queue of freed larger
//! records of each size class (src/slab.rs). An item is reused only while more
//! than [`QUARANTINE`] freed items wait behind it, so a stale code pointer
//! keeps hitting the trap (diagnostic + abort) for at least that many
//! further frees instead of running the next closure allocated. When fresh
//! items run out, the quarantine yields before allocation fails. No
//! allocator with finite slots can rule reuse out forever; this one costs
//! at most `QUARANTINE` extra items per queue.
//!
//! This module is the one place the rule is written; every queue of freed
//! items implements [`Fifo`] and takes from it through [`reusable`] and
//! [`last_resort`].

/// Freed items that must wait behind one before it is reused.
pub const QUARANTINE: usize = 64;

/// A first-in first-out queue of freed items.
pub trait Fifo {
    type Item;
    fn len(&self) -> usize;
    fn pop_front(&mut self) -> Option<Self::Item>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The oldest freed item, if more than [`QUARANTINE`] wait behind it.
#[inline(always)]
pub fn reusable<Q: Fifo>(q: &mut Q) -> Option<Q::Item> {
    if q.len() > QUARANTINE {
        q.pop_front()
    } else {
        None
    }
}

/// The oldest freed item regardless of the quarantine: only when fresh
/// items ran out and the alternative is failing the allocation.
#[inline]
pub fn last_resort<Q: Fifo>(q: &mut Q) -> Option<Q::Item> {
    q.pop_front()
}

impl<T> Fifo for std::collections::VecDeque<T> {
    type Item = T;
    fn len(&self) -> usize {
        std::collections::VecDeque::len(self)
    }
    fn pop_front(&mut self) -> Option<T> {
        std::collections::VecDeque::pop_front(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn reuse_waits_for_the_quarantine() {
        let mut q: VecDeque<usize> = (0..QUARANTINE).collect();
        assert_eq!(
            reusable(&mut q),
            None,
            "only QUARANTINE wait: none is reusable"
        );
        q.push_back(QUARANTINE);
        assert_eq!(
            reusable(&mut q),
            Some(0),
            "the oldest, once more wait behind it"
        );
        assert_eq!(reusable(&mut q), None);
        assert_eq!(last_resort(&mut q), Some(1));
    }
}
