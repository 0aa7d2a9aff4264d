//! The Rust side of the generic entries: build `avalue[]` from the saved
//! registers and the caller's stack as the plan says, call the handler,
//! load the return slots.
//!
//! No classification, allocation, locking or system call happens here: the
//! plan was made at prep time and the entry reserved all scratch memory.
#![allow(unsafe_code)]

use crate::arch::{FRAME_RET_BUF_PTR, FRAME_STACK_ARGS};
use crate::raw::RawMode;
use crate::record::{self, FfiClosure, Header};
use statictramp_abi::{ArgLoc, Ext, RetLoc};
use std::os::raw::c_void;
use std::ptr;

/// Reads `len` (1..=8) bytes at `p` and widens them to 64 bits.
///
/// # Safety
/// `p` must be valid for reading `len` bytes.
unsafe fn load_ext(p: *const u8, len: u32, ext: Ext) -> u64 {
    // The common widths as single loads: a variable-length copy is a call
    // to memcpy where the compiler does not inline it (i686: 21
    // instructions on every integer return).
    // SAFETY: caller guarantees `len` readable bytes.
    let v = unsafe {
        match len {
            1 => u64::from(*p),
            2 => u64::from(ptr::read_unaligned(p as *const u16)),
            4 => u64::from(ptr::read_unaligned(p as *const u32)),
            8 => ptr::read_unaligned(p as *const u64),
            _ => {
                let mut buf = [0u8; 8];
                ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), len.min(8) as usize);
                u64::from_le_bytes(buf)
            }
        }
    };
    match ext {
        Ext::Zero => v,
        Ext::Sign => {
            let shift = 64 - 8 * len.min(8);
            (((v << shift) as i64) >> shift) as u64
        }
    }
}

/// Called by the generic entries of every architecture (x86_64:
/// `statictramp_entry_sysv`, `statictramp_entry_win64`). Returns the
/// `RetKind` the entry uses to load the return value.
///
/// # Safety
/// Only the entries call this: `frame` is their register frame with the
/// argument registers saved and the stack-argument pointer set; `header` is a prepared
/// closure's header; `scratch` has the plan's `scratch_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn statictramp_dispatch(
    frame: *mut u8,
    header: *const Header,
    scratch: *mut u8,
) -> u32 {
    // SAFETY: per the contract above; the plan pointer of a prepared header
    // is an interned plan that lives forever.
    unsafe {
        let h = &*header;
        let compiled = &*h.plan.load(std::sync::atomic::Ordering::Acquire);
        let plan = &compiled.plan;
        let closure = h.closure.load(std::sync::atomic::Ordering::Acquire) as *const FfiClosure;
        let stack = *(frame.add(FRAME_STACK_ARGS) as *const *mut u8);
        let avalue = scratch as *mut *mut c_void;
        for (i, loc) in plan.args.iter().enumerate() {
            let p: *mut u8 = match loc {
                ArgLoc::Frame(off) => frame.add(*off as usize),
                ArgLoc::Stack(off) => stack.add(*off as usize),
                ArgLoc::FramePtr(off) => *(frame.add(*off as usize) as *const *mut u8),
                ArgLoc::StackPtr(off) => *(stack.add(*off as usize) as *const *mut u8),
                ArgLoc::Gather { dst, pieces } => {
                    let d = scratch.add(*dst as usize);
                    for pc in pieces {
                        ptr::copy_nonoverlapping(
                            frame.add(pc.src as usize),
                            d.add(pc.at as usize),
                            pc.len as usize,
                        );
                    }
                    d
                }
            };
            *avalue.add(i) = p.cast();
        }
        let rvalue: *mut u8 = match &plan.ret {
            RetLoc::Memory { ptr: slot, echo } => {
                let p = *(frame.add(*slot as usize) as *const *mut u8);
                *(frame.add(*echo as usize) as *mut *mut u8) = p;
                p
            }
            RetLoc::MemoryStack { ptr: slot, echo } => {
                let p = *(stack.add(*slot as usize) as *const *mut u8);
                *(frame.add(*echo as usize) as *mut *mut u8) = p;
                p
            }
            _ => {
                let b = scratch.add(plan.ret_buf as usize);
                // A handler returning a small integer may write only its
                // low bytes; the rest of the ffi_arg reads as zero.
                ptr::write_bytes(b, 0, 16);
                b
            }
        };
        let c = &*closure;
        let fun = c.fun.expect("prepared closure has a handler");
        match compiled.raw {
            RawMode::Cooked => fun(c.cif, rvalue.cast(), avalue, c.user_data),
            mode => crate::raw::call(mode, plan, c, rvalue.cast(), avalue, stack),
        }
        match &plan.ret {
            RetLoc::Regs(moves) => {
                for m in moves {
                    let v = load_ext(rvalue.add(m.at as usize), m.len, m.ext);
                    *(frame.add(m.dst as usize) as *mut u64) = v;
                }
            }
            RetLoc::X87 | RetLoc::X87Pair | RetLoc::X87Float | RetLoc::X87Double => {
                *(frame.add(FRAME_RET_BUF_PTR) as *mut *mut u8) = rvalue;
            }
            RetLoc::Void | RetLoc::Memory { .. } | RetLoc::MemoryStack { .. } => {}
        }
        plan.ret.kind() as u32
    }
}

/// Whether `STATICTRAMP_DEBUG` is set: refusals, failed allocations and
/// how the thread-state word is reached are then explained on stderr.
pub fn debug_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("STATICTRAMP_DEBUG").is_some())
}

/// Writes one diagnostic line to stderr with a single write(2).
pub fn diag(msg: &str) {
    let line = format!("statictramp: {msg}\n");
    // SAFETY: writing a valid buffer to fd 2.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Called by `statictramp_entry_trap` for closures that must not run.
///
/// # Safety
/// `header` is the header the trampoline loaded.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn statictramp_trap(header: *const Header) -> ! {
    // SAFETY: the trap entry is only reached through a slot, whose record
    // (the header) is committed and never unmapped.
    if record::is_freed(unsafe { &*header }) {
        diag(
            "a freed closure was called (its code pointer was passed to ffi_closure_free before this call); aborting",
        );
    } else {
        diag("a closure was called before ffi_prep_closure_loc prepared it; aborting");
    }
    std::process::abort()
}
