//! Thread stress: several threads allocate, prepare, call, re-prepare and
//! free closures, and hand them to each other through a shared mailbox, so
//! that closures are called and freed by threads other than the one that
//! allocated them. Every call proves its identity: the caller passes the
//! id and generation it means to reach, the handler compares them with the
//! closure's own user data, and calls are counted on both sides per closure
//! (compared when the closure is freed) and in total. Three signatures
//! (integers, doubles, a struct by value both ways) run different entries;
//! a sampler reads /proc/self/maps throughout and fails on any mapping
//! that is writable and executable, or writable over an executable file
//! range.
//!
//! Size: `STATICTRAMP_STRESS_OPS` operations in all (alloc, prep, closure
//! call and free count one each; default 10 000 000, about a second) over
//! `STATICTRAMP_STRESS_THREADS` threads (default 4). scripts/stress runs
//! this test with a large count.
mod support;

use libffi_sys::*;
use statictramp::cif::FfiCif;
use std::os::raw::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use support::*;

const SIGS: usize = 3;
/// Closures a thread holds at most.
const HOLD: usize = 48;
/// Mailbox slots closures are handed through.
const MAILBOX: usize = 64;
/// Closures every thread calls concurrently for the whole run.
const SHARED: usize = 8;

/// What a closure's user data points to: who it is, and its calls.
struct Meta {
    id: u64,
    /// Bumped by every re-prep (only the owner re-preps).
    generation: AtomicU32,
    /// Index of its signature in `cifs()`.
    sig: AtomicU32,
    /// Thread that allocated it.
    creator: u32,
    /// Calls the handler saw through this closure with the right identity.
    handler_calls: AtomicU64,
    /// Calls callers made through this closure.
    caller_calls: AtomicU64,
}

/// Calls that reached a handler with the wrong identity (or wrong cif).
static MISROUTED: AtomicU64 = AtomicU64::new(0);
/// All handler calls with the right identity, and all caller calls.
static HANDLER_TOTAL: AtomicU64 = AtomicU64::new(0);

#[repr(C)]
#[derive(Clone, Copy)]
struct In {
    id: u64,
    generation: u32,
    y: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Out {
    id: u64,
    x: f64,
    generation: u32,
}

/// The three cifs: `u64 (u64 id, u32 gen, i16 k)`, `double (double x,
/// u64 id, float gen)`, `struct Out (struct In, i32 k)`.
fn cifs() -> &'static [usize; SIGS] {
    static CIFS: OnceLock<[usize; SIGS]> = OnceLock::new();
    CIFS.get_or_init(|| {
        let st_in = leak_struct(
            &[
                &raw mut ffi_type_uint64,
                &raw mut ffi_type_uint32,
                &raw mut ffi_type_float,
            ],
            size_of::<In>(),
        );
        let st_out = leak_struct(
            &[
                &raw mut ffi_type_uint64,
                &raw mut ffi_type_double,
                &raw mut ffi_type_uint32,
            ],
            size_of::<Out>(),
        );
        [
            leak_cif(
                &raw mut ffi_type_uint64,
                &[
                    &raw mut ffi_type_uint64,
                    &raw mut ffi_type_uint32,
                    &raw mut ffi_type_sint16,
                ],
            ) as usize,
            leak_cif(
                &raw mut ffi_type_double,
                &[
                    &raw mut ffi_type_double,
                    &raw mut ffi_type_uint64,
                    &raw mut ffi_type_float,
                ],
            ) as usize,
            leak_cif(st_out, &[st_in, &raw mut ffi_type_sint32]) as usize,
        ]
    })
}

/// A struct `ffi_type` of `fields`, checked (by a throwaway cif) to have
/// the size of the Rust struct it describes.
fn leak_struct(fields: &[*mut ffi_type], rust_size: usize) -> *mut ffi_type {
    let mut elems = fields.to_vec();
    elems.push(null_mut());
    let elems: &'static mut [*mut ffi_type] = Box::leak(elems.into_boxed_slice());
    let t: &'static mut ffi_type = Box::leak(Box::new(ffi_type {
        size: 0,
        alignment: 0,
        type_: FFI_TYPE_STRUCT,
        elements: elems.as_mut_ptr(),
    }));
    let t: *mut ffi_type = t;
    // ffi_prep_cif fills in the struct's size and alignment.
    leak_cif(t, &[]);
    // SAFETY: `t` was leaked above and is only read here.
    assert_eq!(unsafe { (*t).size }, rust_size, "struct layout of the test");
    t
}

/// The handler of all three signatures: checks the identity the caller
/// passed against the closure's own, counts, and answers from the
/// closure's own identity (so a misrouted call also returns a wrong value).
unsafe extern "C-unwind" fn handler(
    cif: *mut FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: `ud` is the Meta of the closure called (kept alive by its
    // owner until after its free); the arguments and return buffer are
    // those of the signature the Meta names, which the check below
    // confirms through the cif pointer before anything else is read.
    unsafe {
        let m = &*(ud as *const Meta);
        let sig = m.sig.load(Ordering::Relaxed) as usize;
        let generation = m.generation.load(Ordering::Relaxed);
        if cif as usize != cifs()[sig] {
            MISROUTED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let ok = match sig {
            0 => {
                let id = *(*args.add(0) as *const u64);
                let g = *(*args.add(1) as *const u32);
                let k = *(*args.add(2) as *const i16);
                *(ret as *mut u64) = answer_int(m.id, generation, k);
                id == m.id && g == generation
            }
            1 => {
                let x = *(*args.add(0) as *const f64);
                let id = *(*args.add(1) as *const u64);
                let g = *(*args.add(2) as *const f32);
                *(ret as *mut f64) = answer_double(x, m.id, generation);
                id == m.id && g == generation as f32
            }
            _ => {
                let a = *(*args.add(0) as *const In);
                let k = *(*args.add(1) as *const i32);
                *(ret as *mut Out) = answer_struct(m.id, generation, a.y, k);
                a.id == m.id && a.generation == generation
            }
        };
        if ok {
            m.handler_calls.fetch_add(1, Ordering::Relaxed);
            HANDLER_TOTAL.fetch_add(1, Ordering::Relaxed);
        } else {
            MISROUTED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn answer_int(id: u64, generation: u32, k: i16) -> u64 {
    id.rotate_left(17) ^ (u64::from(generation) << 3) ^ (k as u64)
}

fn answer_double(x: f64, id: u64, generation: u32) -> f64 {
    x * 2.0 + (id % 1000) as f64 + f64::from(generation % 1000) / 1024.0
}

fn answer_struct(id: u64, generation: u32, y: f32, k: i32) -> Out {
    Out {
        id: id ^ k as u64,
        x: f64::from(y) * 3.0,
        generation: generation.wrapping_add(1),
    }
}

/// Generations stay exactly representable as a float.
const GEN_MASK: u32 = (1 << 20) - 1;

/// A closure as its current owner holds it.
struct Owned {
    cl: *mut c_void,
    code: *mut c_void,
    meta: *const Meta,
}

// SAFETY: an Owned is moved between threads whole (through the mailbox's
// atomic swap, which publishes the closure and its Meta); only its holder
// uses the pointers.
unsafe impl Send for Owned {}

impl Owned {
    fn meta(&self) -> &Meta {
        // SAFETY: the Meta lives until the holder frees the closure.
        unsafe { &*self.meta }
    }

    /// Calls the closure through its code pointer as its C type, checking
    /// the answer.
    fn call(&self, salt: u64) {
        let m = self.meta();
        let sig = m.sig.load(Ordering::Relaxed) as usize;
        let g = m.generation.load(Ordering::Relaxed);
        m.caller_calls.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the code is a prepared closure of signature `sig` (its
        // owner prepared it so, or it is a shared closure never re-prepared).
        unsafe {
            match sig {
                0 => {
                    let f: extern "C" fn(u64, u32, i16) -> u64 = std::mem::transmute(self.code);
                    let k = salt as i16;
                    let r = f(m.id, g, k);
                    assert_eq!(r, answer_int(m.id, g, k), "closure {} (ints)", m.id);
                }
                1 => {
                    let f: extern "C" fn(f64, u64, f32) -> f64 = std::mem::transmute(self.code);
                    let x = (salt % 4096) as f64 * 0.5;
                    let r = f(x, m.id, g as f32);
                    assert_eq!(r, answer_double(x, m.id, g), "closure {} (doubles)", m.id);
                }
                _ => {
                    let f: extern "C" fn(In, i32) -> Out = std::mem::transmute(self.code);
                    let y = (salt % 512) as f32 * 0.25;
                    let k = salt as i32;
                    let a = In {
                        id: m.id,
                        generation: g,
                        y,
                    };
                    let r = f(a, k);
                    assert_eq!(r, answer_struct(m.id, g, y, k), "closure {} (struct)", m.id);
                }
            }
        }
    }
}

/// Per-thread counts, summed at the end.
#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    allocs: u64,
    large_allocs: u64,
    preps: u64,
    repreps: u64,
    calls: u64,
    foreign_calls: u64,
    shared_calls: u64,
    frees: u64,
    foreign_frees: u64,
    handed_in: u64,
}

impl Counts {
    fn ops(&self) -> u64 {
        self.allocs + self.preps + self.calls + self.frees
    }

    fn add(&mut self, o: &Counts) {
        self.allocs += o.allocs;
        self.large_allocs += o.large_allocs;
        self.preps += o.preps;
        self.repreps += o.repreps;
        self.calls += o.calls;
        self.foreign_calls += o.foreign_calls;
        self.shared_calls += o.shared_calls;
        self.frees += o.frees;
        self.foreign_frees += o.foreign_frees;
        self.handed_in += o.handed_in;
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn prep_as(o: &Owned, sig: usize) {
    let m = o.meta();
    m.sig.store(sig as u32, Ordering::Relaxed);
    let cif = cifs()[sig] as *mut ffi_cif;
    // SAFETY: `o.cl` is a live closure this thread holds; the cif lives
    // forever; the handler serves all three signatures.
    let st = unsafe { prep(o.cl, cif, Some(handler), o.meta as *mut c_void, o.code) };
    assert_eq!(st, 0, "prep of closure {}", m.id);
}

/// Allocates and prepares a new closure of a random signature.
fn make(thread: u32, size: usize, sig: usize) -> Owned {
    let (cl, code) = alloc(size).unwrap_or_else(|| panic!("alloc({size}): errno {}", errno()));
    let meta = Box::into_raw(Box::new(Meta {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        generation: AtomicU32::new(0),
        sig: AtomicU32::new(sig as u32),
        creator: thread,
        handler_calls: AtomicU64::new(0),
        caller_calls: AtomicU64::new(0),
    }));
    let o = Owned { cl, code, meta };
    prep_as(&o, sig);
    o
}

/// Checks a closure's call counts on both sides, frees it and its Meta.
fn retire(o: Owned) {
    let m = o.meta();
    let (h, c) = (
        m.handler_calls.load(Ordering::Acquire),
        m.caller_calls.load(Ordering::Acquire),
    );
    assert_eq!(
        h, c,
        "closure {}: handler saw {h} calls, callers made {c}",
        m.id
    );
    // SAFETY: a live closure this thread holds; nobody else has it.
    unsafe { free(o.cl) };
    // SAFETY: the Meta was boxed by `make`; its closure is freed, so no
    // call can reach it any more.
    drop(unsafe { Box::from_raw(o.meta as *mut Meta) });
}

struct Shared {
    mailbox: Vec<AtomicPtr<Owned>>,
    shared: Vec<Owned>,
}

// SAFETY: the shared closures are only called (never re-prepared or freed)
// while threads run; the mailbox holds boxed Owned moved by atomic swaps.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn worker(thread: u32, ops: u64, sh: &Shared) -> Counts {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(thread) << 32 | 1);
    let mut held: Vec<Owned> = Vec::with_capacity(HOLD + 1);
    let mut n = Counts::default();
    while n.ops() < ops {
        let r = xorshift(&mut rng);
        match r % 16 {
            0..=3 if held.len() < HOLD => {
                let large = r >> 8 & 7 == 0;
                let size = if large { 100 } else { 0 };
                let o = make(thread, size, (r >> 12) as usize % SIGS);
                n.allocs += 1;
                n.large_allocs += u64::from(large);
                n.preps += 1;
                o.call(r >> 20);
                n.calls += 1;
                held.push(o);
            }
            4..=8 if !held.is_empty() => {
                let o = &held[(r >> 8) as usize % held.len()];
                o.call(r >> 24);
                n.calls += 1;
                n.foreign_calls += u64::from(o.meta().creator != thread);
            }
            9..=10 => {
                sh.shared[(r >> 8) as usize % SHARED].call(r >> 24);
                n.calls += 1;
                n.shared_calls += 1;
            }
            11 if !held.is_empty() => {
                let o = &held[(r >> 8) as usize % held.len()];
                let m = o.meta();
                let g = m.generation.load(Ordering::Relaxed).wrapping_add(1) & GEN_MASK;
                m.generation.store(g, Ordering::Relaxed);
                prep_as(o, (r >> 16) as usize % SIGS);
                n.preps += 1;
                n.repreps += 1;
                o.call(r >> 24);
                n.calls += 1;
            }
            12..=13 if !held.is_empty() => {
                let i = (r >> 8) as usize % held.len();
                let o = Box::into_raw(Box::new(held.swap_remove(i)));
                let got = sh.mailbox[(r >> 20) as usize % MAILBOX].swap(o, Ordering::AcqRel);
                if !got.is_null() {
                    // SAFETY: boxed by the thread that put it there; the
                    // swap made this thread its only holder.
                    let o = *unsafe { Box::from_raw(got) };
                    n.handed_in += 1;
                    o.call(r >> 28);
                    n.calls += 1;
                    n.foreign_calls += u64::from(o.meta().creator != thread);
                    held.push(o);
                }
            }
            _ if !held.is_empty() => {
                let o = held.swap_remove((r >> 8) as usize % held.len());
                o.call(r >> 24);
                n.calls += 1;
                n.foreign_frees += u64::from(o.meta().creator != thread);
                retire(o);
                n.frees += 1;
            }
            _ => {}
        }
    }
    for o in held.drain(..) {
        o.call(7);
        n.calls += 1;
        retire(o);
        n.frees += 1;
    }
    n
}

/// Samples /proc/self/maps until `stop`; returns the number of samples.
/// Fails on a writable and executable mapping, or a writable mapping of
/// a file range that is also mapped executable.
fn sample_maps(stop: &AtomicBool) -> usize {
    let mut samples = 0;
    loop {
        let done = stop.load(Ordering::Acquire);
        let maps = maps();
        for m in &maps {
            assert!(
                !(m.write && m.exec),
                "writable and executable mapping: {}",
                m.line
            );
        }
        for x in maps.iter().filter(|m| m.exec && m.inode != 0) {
            for w in maps.iter().filter(|m| m.write) {
                assert!(
                    !x.same_file_overlap(w),
                    "writable alias of executable file range:\n  {}\n  {}",
                    x.line,
                    w.line
                );
            }
        }
        samples += 1;
        if done {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[test]
fn threads_share_call_reprep_and_free_each_others_closures() {
    let ops = env_number("STATICTRAMP_STRESS_OPS", scaled(10_000_000, 50) as u64);
    let threads = env_number("STATICTRAMP_STRESS_THREADS", 4).max(2) as u32;
    cifs();
    let sh = Arc::new(Shared {
        mailbox: (0..MAILBOX).map(|_| AtomicPtr::new(null_mut())).collect(),
        shared: (0..SHARED).map(|i| make(0, 0, i % SIGS)).collect(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || sample_maps(&stop))
    };
    let started = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let handles: Vec<_> = (1..=threads)
        .map(|th| {
            let sh = sh.clone();
            let started = started.clone();
            std::thread::spawn(move || {
                // Start together, so that the threads overlap.
                started.fetch_add(1, Ordering::AcqRel);
                while started.load(Ordering::Acquire) < threads as usize {
                    std::hint::spin_loop();
                }
                worker(th, ops / u64::from(threads), &sh)
            })
        })
        .collect();
    let mut total = Counts::default();
    for h in handles {
        total.add(&h.join().expect("stress thread panicked"));
    }
    let elapsed = t.elapsed();
    stop.store(true, Ordering::Release);
    let samples = sampler.join().expect("maps sampler panicked");

    // What is still in the mailbox, then the shared closures.
    let mut leftover = 0;
    for slot in &sh.mailbox {
        let p = slot.swap(null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: boxed by a worker; all workers have exited.
            let o = *unsafe { Box::from_raw(p) };
            o.call(3);
            total.calls += 1;
            retire(o);
            total.frees += 1;
            leftover += 1;
        }
    }
    let sh = Arc::try_unwrap(sh).unwrap_or_else(|_| panic!("workers still hold the shared state"));
    let shared_ids: Vec<u64> = sh.shared.iter().map(|o| o.meta().id).collect();
    for o in sh.shared {
        retire(o);
    }

    assert_eq!(MISROUTED.load(Ordering::Acquire), 0, "misrouted calls");
    assert_eq!(
        HANDLER_TOTAL.load(Ordering::Acquire),
        total.calls,
        "calls made and calls the handlers saw"
    );
    assert_eq!(
        total.allocs + SHARED as u64,
        total.frees + SHARED as u64,
        "every closure allocated was freed once"
    );
    // The run exercised what it claims to.
    assert!(
        total.foreign_calls > 0,
        "no closure called by another thread"
    );
    assert!(
        total.foreign_frees > 0,
        "no closure freed by another thread"
    );
    assert!(total.repreps > 0 && total.large_allocs > 0 && total.handed_in > 0);
    assert!(samples >= 2, "maps sampled only {samples} times");
    let ops = total.ops();
    println!(
        "REPORT stress: {threads} threads, {ops} ops ({} allocs, {} large, {} preps incl. {} re-preps, {} calls checked (\
         {} by a thread other than the allocator, {} on {} shared closures), {} frees ({} by another thread), \
         {} hand-overs, {leftover} left in the mailbox) in {elapsed:.2?}: {:.2} M ops/s; {samples} maps samples, \
         no W+X; shared ids {shared_ids:?}",
        total.allocs,
        total.large_allocs,
        total.preps,
        total.repreps,
        total.calls,
        total.foreign_calls,
        total.shared_calls,
        SHARED,
        total.frees,
        total.foreign_frees,
        total.handed_in,
        ops as f64 / elapsed.as_secs_f64() / 1e6,
    );
}
