//! Per-thread caches of (trampoline slot, record) pairs, so that the common
//! `ffi_closure_alloc` / `ffi_closure_free` of an `ffi_closure`-sized record
//! take no lock and make no system call.
//!
//! A thread takes fresh pairs from the global pool in batches of
//! [`BATCH`] (one lock per batch) and keeps the pairs it frees in a FIFO
//! queue, reused after the quarantine (src/quarantine.rs). A thread that
//! hoards more than [`HOARD`] freed pairs recycles a batch into the pool; a
//! thread that exits recycles everything.
//!
//! Live-closure counts are kept per thread (a plain store, no atomic
//! read-modify-write on a shared cache line) and summed on demand.

use crate::pool::{self, Pair};
use crate::quarantine::{self, Fifo, QUARANTINE};
use crate::table::Slot;
use crate::thread_state;
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering};

use pool::BATCH;
/// Freed pairs a thread keeps before recycling a batch into the pool.
pub const HOARD: usize = QUARANTINE + 4 * BATCH;

/// A fixed-capacity FIFO of pairs: no allocation, no growth checks.
struct Ring {
    buf: [Pair; RING],
    head: usize,
    len: usize,
}

/// Ring capacity: a power of two above HOARD + 1.
const RING: usize = 256;
const _: () = assert!(RING.is_power_of_two() && RING > HOARD + 1);

impl Ring {
    const fn new() -> Ring {
        Ring {
            buf: [Pair {
                slot: Slot(0),
                rec: 0,
            }; RING],
            head: 0,
            len: 0,
        }
    }

    fn push_back(&mut self, p: Pair) {
        debug_assert!(self.len < RING);
        self.buf[(self.head + self.len) & (RING - 1)] = p;
        self.len += 1;
    }

    /// The oldest `n` (at most len) pairs, as up to two slices.
    fn oldest(&self, n: usize) -> (&[Pair], &[Pair]) {
        let n = n.min(self.len);
        let first = n.min(RING - self.head);
        (
            &self.buf[self.head..self.head + first],
            &self.buf[..n - first],
        )
    }

    fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) & (RING - 1);
        self.len -= n;
    }
}

impl Fifo for Ring {
    type Item = Pair;

    fn len(&self) -> usize {
        self.len
    }

    fn pop_front(&mut self) -> Option<Pair> {
        if self.len == 0 {
            return None;
        }
        let p = self.buf[self.head];
        self.head = (self.head + 1) & (RING - 1);
        self.len -= 1;
        Some(p)
    }
}

/// One thread's pairs (part of its [`thread_state::ThreadState`]).
pub struct Cache {
    fresh: Vec<Pair>,
    freed: Ring,
    /// This thread's closures allocated minus freed (any class).
    live: &'static AtomicIsize,
}

impl Drop for Cache {
    fn drop(&mut self) {
        let (a, b) = self.freed.oldest(RING);
        let pairs: Vec<Pair> = self
            .fresh
            .drain(..)
            .chain(a.iter().copied())
            .chain(b.iter().copied())
            .collect();
        pool::recycle_batch(&pairs);
        retire_counter(self.live);
    }
}

/// Runs `f` on this thread's cache; `None` if the cache cannot be used
/// (the thread is exiting, or we are re-entered, e.g. from a signal
/// handler): the caller then takes the global path.
#[inline(always)]
fn with<R>(f: impl FnOnce(&mut Cache) -> R) -> Option<R> {
    thread_state::with(|s| f(&mut s.cache))
}

/// A pair for a new closure: a quarantined freed one, a fresh one, or a
/// batch from `refill` (called with the thread's fresh list, to push onto).
/// `None`: no cache here (see [`with`]). `Some(Err)`: refill failed.
/// A pair taken this way counts as a live closure of this thread.
#[inline]
pub fn take<E>(refill: impl FnOnce(&mut Vec<Pair>) -> Result<(), E>) -> Option<Result<Pair, E>> {
    with(|c| {
        let p = c.take(refill)?;
        c.count(1);
        Ok(p)
    })
}

impl Cache {
    /// An empty cache with its own live counter.
    pub fn new() -> Cache {
        Cache {
            fresh: Vec::new(),
            freed: Ring::new(),
            live: counter(),
        }
    }

    #[inline]
    fn take<E>(&mut self, refill: impl FnOnce(&mut Vec<Pair>) -> Result<(), E>) -> Result<Pair, E> {
        if let Some(p) = quarantine::reusable(&mut self.freed) {
            return Ok(p);
        }
        if self.fresh.is_empty() {
            if let Err(e) = refill(&mut self.fresh) {
                return quarantine::last_resort(&mut self.freed).ok_or(e);
            }
        }
        // A successful refill pushed at least one pair.
        Ok(self.fresh.pop().expect("refill produced a pair"))
    }

    #[inline]
    fn count(&mut self, delta: isize) {
        let ctr = self.live;
        // Only this thread writes its counter: load + store, no lock prefix.
        ctr.store(ctr.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
        crate::stats::counted(delta);
    }
}

/// Recycles a freed pair into this thread's cache. Returns it back if
/// there is no cache here; recycles a batch of the oldest into the pool
/// when the thread hoards too many. The pair stops counting as a live
/// closure of this thread.
#[inline]
pub fn recycle(p: Pair) -> Result<(), Pair> {
    with(|c| {
        c.count(-1);
        c.freed.push_back(p);
        if c.freed.len() > HOARD {
            // The oldest BATCH, handed over in place (no copy, no allocation).
            let (a, b) = c.freed.oldest(BATCH);
            pool::recycle_batch(a);
            pool::recycle_batch(b);
            c.freed.drop_front(BATCH);
        }
    })
    .ok_or(p)
}

/// Counters of threads that exited, folded into one number, and counters
/// free for reuse by new threads.
static RETIRED: AtomicIsize = AtomicIsize::new(0);
static COUNTERS: Mutex<Vec<&'static AtomicIsize>> = Mutex::new(Vec::new());
static SPARE: Mutex<Vec<&'static AtomicIsize>> = Mutex::new(Vec::new());

/// The live-count registry's locks, held across fork (src/fork.rs).
pub(crate) fn lock_counters_for_fork() -> Box<dyn std::any::Any> {
    Box::new(crate::lock::lock(&COUNTERS))
}

/// See [`lock_counters_for_fork`].
pub(crate) fn lock_spare_for_fork() -> Box<dyn std::any::Any> {
    Box::new(crate::lock::lock(&SPARE))
}

fn counter() -> &'static AtomicIsize {
    crate::fork::register();
    let spare = crate::lock::lock(&SPARE).pop();
    let c = spare.unwrap_or_else(|| Box::leak(Box::new(AtomicIsize::new(0))));
    crate::lock::lock(&COUNTERS).push(c);
    c
}

fn retire_counter(c: &'static AtomicIsize) {
    let mut all = crate::lock::lock(&COUNTERS);
    RETIRED.fetch_add(c.swap(0, Ordering::AcqRel), Ordering::AcqRel);
    all.retain(|x| !std::ptr::eq(*x, c));
    crate::lock::lock(&SPARE).push(c);
}

/// Adds `delta` to this thread's live count (or to the retired total when
/// the thread has no cache any more).
pub fn count(delta: isize) {
    let done = with(|c| c.count(delta));
    if done.is_none() {
        RETIRED.fetch_add(delta, Ordering::AcqRel);
        crate::stats::counted(delta);
    }
}

/// Closures allocated and not freed, over all threads.
pub fn live() -> usize {
    let all = crate::lock::lock(&COUNTERS);
    let sum: isize = all.iter().map(|c| c.load(Ordering::Acquire)).sum::<isize>()
        + RETIRED.load(Ordering::Acquire);
    sum.max(0) as usize
}
