//! Closures prepared on memory we did not allocate: legacy clients that
//! bring their own executable memory, as libffi allows. Their `tramp[]`
//! gets a classic trampoline (src/arch/<arch>/), written by the client's
//! permissions, not ours, that loads the address of a header of ours and
//! enters the same entries as our slots.
//!
//! Headers are kept per closure address and reused when the same memory
//! is prepared again; they are never freed (we cannot know when the client
//! frees its memory): three words each.
#![allow(unsafe_code)]

use crate::arch;
use crate::cif::{FfiCif, Fun};
use crate::plan::Compiled;
use crate::record::{self, FfiClosure, Header, TRAMP_SIZE};
use std::collections::HashMap;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize};
use std::sync::{Mutex, OnceLock};

fn headers() -> &'static Mutex<HashMap<usize, &'static Header>> {
    static H: OnceLock<Mutex<HashMap<usize, &'static Header>>> = OnceLock::new();
    H.get_or_init(|| {
        crate::fork::register();
        Mutex::new(HashMap::new())
    })
}

/// The foreign-header table's lock, held across fork (src/fork.rs).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(crate::lock::lock(headers()))
}

/// Prepares a closure on memory we did not allocate, which the caller
/// executes at `codeloc` (its executable alias of `closure`, or `closure`
/// itself; NULL counts as `closure`).
///
/// # Safety
/// `closure` is writable memory of at least sizeof(ffi_closure) bytes that
/// the caller owns, and `codeloc` is NULL or the address it executes that
/// memory's `tramp[]` at.
#[inline(never)]
pub unsafe fn prep(
    closure: *mut FfiClosure,
    codeloc: *mut c_void,
    compiled: &'static Compiled,
    cif: *mut FfiCif,
    fun: Fun,
    user_data: *mut c_void,
) {
    let mut map = crate::lock::lock(headers());
    let h: &'static Header = map.entry(closure as usize).or_insert_with(|| {
        Box::leak(Box::new(Header {
            entry: AtomicUsize::new(record::trap_entry()),
            plan: AtomicPtr::new(ptr::null_mut()),
            closure: AtomicUsize::new(closure as usize),
        }))
    });
    // SAFETY: the caller guarantees `closure` is writable memory of at
    // least sizeof(ffi_closure) bytes that it owns.
    unsafe {
        record::publish(closure, h, compiled, cif, fun, user_data);
        ptr::write_volatile(
            &raw mut (*closure).tramp,
            arch::classic_trampoline(h as *const Header as usize),
        );
    }
    // Instructions just written as data: make them visible to instruction
    // fetch at both addresses (a no-op where caches are coherent: x86).
    let code = if codeloc.is_null() {
        closure.cast()
    } else {
        codeloc
    };
    arch::sync_code(closure.cast(), code.cast(), TRAMP_SIZE);
}
