//! Compiled plans: a classified signature plus the few fields the assembly
//! entries read, interned so that each signature is classified once.
#![allow(unsafe_code)]

use crate::arch;
use crate::cif::{self, CifError, FfiCif};
use crate::raw::RawMode;
use crate::thread_state;
use statictramp_abi::{ClassifyError, Plan, Signature};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// A plan ready for the entries: what this architecture's assembly reads
/// (first, so the entries find it at the plan pointer), the entry chosen,
/// and the full classification for the generic dispatcher.
#[repr(C)]
pub struct Compiled {
    /// Read by the assembly entries (src/arch/<arch>/).
    pub asm: arch::EntryData,
    /// The entry this plan uses.
    pub entry: arch::EntryKind,
    /// Its address (`entry.address()`), what prep stores in headers.
    pub entry_addr: usize,
    /// The full classification, for the generic dispatcher.
    pub plan: Plan,
    /// What the handler receives (raw closures of a native raw API).
    pub raw: RawMode,
    /// The signature it was made for.
    pub sig: Signature,
}

const _: () = assert!(std::mem::offset_of!(Compiled, asm) == 0);

impl Compiled {
    /// Picks the plan's entry and builds what it reads.
    pub fn new(sig: Signature, plan: Plan, raw: RawMode) -> Compiled {
        // Only the generic entries hand raw arguments over (the dispatcher
        // does it).
        let generic = raw != RawMode::Cooked || generic_entries_only();
        let (asm, entry) = arch::select_entry(&sig, &plan, generic);
        Compiled {
            asm,
            entry,
            entry_addr: entry.address(),
            plan,
            raw,
            sig,
        }
    }
}

/// `STATICTRAMP_ENTRY=generic` in the environment: every plan takes the
/// architecture's generic entry (the Rust dispatcher) instead of a fast
/// one, so that tests can run the same callers through both. Read once;
/// any other value is reported and ignored.
fn generic_entries_only() -> bool {
    static GENERIC: OnceLock<bool> = OnceLock::new();
    *GENERIC.get_or_init(|| match std::env::var_os("STATICTRAMP_ENTRY") {
        None => false,
        Some(v) if v == "generic" => {
            if crate::dispatch::debug_enabled() {
                crate::dispatch::diag(
                    "STATICTRAMP_ENTRY=generic: every closure takes the generic entry",
                );
            }
            true
        }
        Some(v) if v == "fast" => false,
        Some(v) => {
            crate::dispatch::diag(&format!(
                "STATICTRAMP_ENTRY={} ignored: use `generic` (every closure through the \
                 generic entry) or `fast` (the default)",
                v.to_string_lossy()
            ));
            false
        }
    })
}

type Interned = HashMap<(Signature, RawMode), &'static Compiled>;

fn interned() -> &'static Mutex<Interned> {
    static PLANS: OnceLock<Mutex<Interned>> = OnceLock::new();
    PLANS.get_or_init(|| {
        crate::fork::register();
        Mutex::new(HashMap::new())
    })
}

/// The plan table's lock, held across fork (src/fork.rs).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(crate::lock::lock(interned()))
}

/// The compiled plan for `sig`, classified on first use and shared by every
/// closure of the same signature. Plans live for the rest of the process.
pub fn intern(sig: Signature) -> Result<&'static Compiled, ClassifyError> {
    intern_mode(sig, RawMode::Cooked)
}

/// [`intern`] for closures whose handler receives `raw` arguments.
pub fn intern_mode(sig: Signature, raw: RawMode) -> Result<&'static Compiled, ClassifyError> {
    let mut map = crate::lock::lock(interned());
    let key = (sig, raw);
    if let Some(c) = map.get(&key) {
        return Ok(c);
    }
    let sig = key.0;
    if sig.abi.arch() != arch::ARCH {
        return Err(ClassifyError::Unsupported("ABI of another architecture"));
    }
    let plan = statictramp_abi::classify(&sig)?;
    let compiled: &'static Compiled = Box::leak(Box::new(Compiled::new(sig.clone(), plan, raw)));
    map.insert((sig, raw), compiled);
    Ok(compiled)
}

/// Why a cif has no plan.
#[derive(Debug)]
pub enum CifPlanError {
    Cif(CifError),
    Classify(ClassifyError),
}

/// Plans found by cif address, per thread, direct-mapped. A hit is
/// confirmed before use, because the cif at an address may have been
/// rewritten, or freed and reused for another signature: for signatures of
/// up to [`FP_TYPES`] scalar types, by comparing each type's raw fields with
/// those seen when the entry was made (a few loads per type); otherwise by
/// [`cif::describes`]. Either way no allocation, hashing or lock.
const CIF_CACHE: usize = 16;
/// Types (arguments + return) a fingerprint holds.
const FP_TYPES: usize = 8;

#[derive(Clone, Copy)]
struct Entry {
    cif: usize,
    plan: usize,
    abi: u32,
    nargs: u32,
    /// Types fingerprinted (nargs + 1), or 0: confirm with `describes`.
    fp_len: usize,
    /// Per type: (size, alignment | type << 16).
    fp: [(usize, u32); FP_TYPES],
}

const EMPTY: Entry = Entry {
    cif: 0,
    plan: 0,
    abi: 0,
    nargs: 0,
    fp_len: 0,
    fp: [(0, 0); FP_TYPES],
};

/// One thread's plans by cif address (part of its
/// [`crate::thread_state::ThreadState`]).
pub(crate) struct CifCache([Entry; CIF_CACHE]);

impl CifCache {
    pub(crate) const fn new() -> CifCache {
        CifCache([EMPTY; CIF_CACHE])
    }
}

/// The raw fields of a type that decide how `read_type` reads a scalar.
fn raw(t: &cif::FfiType) -> (usize, u32) {
    (t.size, u32::from(t.alignment) | u32::from(t.type_) << 16)
}

/// The fingerprint of a cif whose types are all scalars (no struct or
/// complex code), or `None`.
///
/// # Safety
/// `cif` is a readable cif that `read_cif` accepted.
unsafe fn fingerprint(cif: &FfiCif) -> Option<[(usize, u32); FP_TYPES]> {
    let n = cif.nargs as usize;
    if n + 1 > FP_TYPES {
        return None;
    }
    let mut fp = [(0, 0); FP_TYPES];
    for (i, slot) in fp.iter_mut().enumerate().take(n + 1) {
        // SAFETY: read_cif accepted the cif: arg_types has nargs non-NULL
        // entries and rtype is non-NULL, all readable.
        let t = unsafe {
            &*if i < n {
                *cif.arg_types.add(i)
            } else {
                cif.rtype
            }
        };
        // `read_type` ignores `elements` for every other code.
        if t.type_ == cif::code::STRUCT || t.type_ == cif::code::COMPLEX {
            return None;
        }
        *slot = raw(t);
    }
    Some(fp)
}

/// Whether `cif` still has the fingerprinted types of `e`.
///
/// # Safety
/// `cif` is a readable cif (as `read_cif` requires).
#[inline(always)]
unsafe fn same_types(cif: &FfiCif, e: &Entry) -> bool {
    if cif.abi != e.abi || cif.nargs != e.nargs {
        return false;
    }
    let n = e.nargs as usize;
    let args = cif.arg_types;
    if n > 0 && args.is_null() {
        return false;
    }
    // A hand-written loop: the iterator form cost about 25 instructions a
    // type on this path (every prep of a cached signature runs it).
    let mut i = 0;
    while i <= n {
        // SAFETY: arg_types has nargs entries (non-NULL, checked above);
        // index n is the return type.
        let t = if i < n {
            unsafe { *args.add(i) }
        } else {
            cif.rtype
        };
        if t.is_null() {
            return false;
        }
        // SAFETY: a non-NULL type pointer of a readable cif points to a
        // readable ffi_type.
        let t = unsafe { &*t };
        // Same size, alignment and code, and the code is not an aggregate
        // (the fingerprint holds none): `read_type` reads nothing else.
        if raw(t) != e.fp[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The compiled plan for a libffi cif.
///
/// # Safety
/// As [`cif::read_cif`].
#[inline]
pub unsafe fn for_cif(cif: *const FfiCif) -> Result<&'static Compiled, CifPlanError> {
    let key = cif as usize;
    let idx = (key >> 4) % CIF_CACHE;
    let cached = thread_state::with(|t| {
        let e = &t.plans.0[idx];
        if e.cif != key || key == 0 {
            return None;
        }
        // SAFETY: only pointers to leaked (immortal) Compiled plans are stored.
        let c: &'static Compiled = unsafe { &*(e.plan as *const Compiled) };
        let hit = if e.fp_len > 0 {
            // SAFETY: `cif` is non-NULL (it equals a stored key) and readable.
            unsafe { same_types(&*cif, e) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { describes(cif, &c.sig) }
        };
        hit.then_some(c)
    });
    if let Some(Some(c)) = cached {
        return Ok(c);
    }
    // SAFETY: forwarded contract.
    unsafe { for_cif_slow(cif, key, idx) }
}

/// [`cif::describes`], kept out of line: only signatures with aggregates
/// or more than FP_TYPES types need it.
#[inline(never)]
unsafe fn describes(cif: *const FfiCif, sig: &Signature) -> bool {
    // SAFETY: forwarded contract.
    unsafe { cif::describes(cif, sig) }
}

/// A cache miss: read and classify (or find the interned plan), then cache.
///
/// # Safety
/// As [`cif::read_cif`].
#[cold]
#[inline(never)]
unsafe fn for_cif_slow(
    cif: *const FfiCif,
    key: usize,
    idx: usize,
) -> Result<&'static Compiled, CifPlanError> {
    // SAFETY: forwarded contract.
    let sig = unsafe { cif::read_cif(cif) }.map_err(CifPlanError::Cif)?;
    let c = intern(sig).map_err(CifPlanError::Classify)?;
    // SAFETY: read_cif accepted `cif`, so it is non-NULL and readable.
    let cif = unsafe { &*cif };
    // SAFETY: as above.
    let fp = unsafe { fingerprint(cif) };
    let e = Entry {
        cif: key,
        plan: c as *const Compiled as usize,
        abi: cif.abi,
        nargs: cif.nargs,
        fp_len: if fp.is_some() {
            cif.nargs as usize + 1
        } else {
            0
        },
        fp: fp.unwrap_or([(0, 0); FP_TYPES]),
    };
    thread_state::with(|t| t.plans.0[idx] = e);
    Ok(c)
}
