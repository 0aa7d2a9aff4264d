//! A closure whose scratch does not fit in what is left of a thread's stack
//! must die on the stack's guard page, not write below it.
//!
//! The generic entries (x86_64: statictramp_entry_sysv,
//! statictramp_entry_win64; i386: statictramp_entry_i386) reserve the
//! plan's scratch (avalue[] and more: up to ~33 KiB for 4096 arguments on
//! x86_64) below their frame. Subtracting it from rsp in one step could
//! move the stack pointer past a one-page guard into whatever is mapped
//! below; the entries probe each page on the way down instead.
//!
//! The test, in a child process (the good outcome is a crash):
//! 1. calibrates on a thread with a large stack: a closure of NARGS
//!    `long long` arguments called through libffi's `ffi_call` records where its
//!    caller's stack arguments start (avalue[first stack argument]) and
//!    where the entry's scratch ends (avalue itself), relative to a local
//!    of the calling thread function;
//! 2. maps [sentinel: 256 KiB, filled with a pattern][guard page,
//!    PROT_NONE][stack] and runs the same function on a thread with that
//!    stack (pthread_attr_setstack), sized so that `ffi_call` fits with a
//!    page to spare (room for the entry's frame) but the entry's scratch
//!    would end more than two pages below the guard, inside the sentinel;
//! 3. a SIGSEGV handler on an alternate stack reports the fault address and
//!    whether the sentinel is intact, then the signal kills the child.
//!
//! Passes when the child dies of SIGSEGV with the fault in the guard page
//! and the sentinel intact. Without probing, the entry's call to the
//! dispatcher and the dispatcher's writes land in the sentinel.
mod support;

use libffi_sys::*;
use std::os::raw::{c_int, c_void};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

/// Arguments of the closure: `long long`s, 4000 on a 64-bit target
/// (avalue[] alone is 32 000 bytes), the most a cif may have (4096) on a
/// 32-bit one, where avalue[] takes 16 KiB: the largest scratch there.
const NARGS: usize = {
    let n = 32_000 / size_of::<*const c_void>();
    let max = statictramp::cif::MAX_ARGS as usize;
    if n < max { n } else { max }
};
/// The tight stack's size is a multiple of this, so that its top has the
/// calibration stack's alignment modulo this and glibc lays out the TCB
/// and static TLS at the top of both alike (it aligns them down to the
/// static TLS alignment, tens of bytes).
const TOP_ALIGN: usize = 256;
/// Bytes of the sentinel mapping below the guard page.
const SENTINEL: usize = 256 * 1024;
/// What the sentinel is filled with (neither 0 nor a likely address byte).
const PATTERN: u8 = 0xa5;
/// Stack of the calibration thread.
const BIG_STACK: usize = 1024 * 1024;
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// Written by the handler during calibration: avalue (the bottom of the
/// entry's scratch) and the address of the first stack argument.
static SCRATCH_AT: AtomicUsize = AtomicUsize::new(0);
static CALLER_ARGS_AT: AtomicUsize = AtomicUsize::new(0);
/// The guard page and the sentinel, for the signal handler.
static GUARD: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static SENT: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// `long long f(long long a0, ...)`: returns the sum of `a[i] * (i + 1)`;
/// user_data is the index of the first argument passed on the stack.
unsafe extern "C-unwind" fn handler(
    _cif: *mut statictramp::cif::FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: statictramp passes NARGS argument pointers to i64 values and
    // an 8-byte return buffer.
    unsafe {
        SCRATCH_AT.store(args as usize, Ordering::Relaxed);
        CALLER_ARGS_AT.store(*args.add(ud as usize) as usize, Ordering::Relaxed);
        let mut sum = 0i64;
        for i in 0..NARGS {
            sum = sum.wrapping_add((*(*args.add(i) as *const i64)).wrapping_mul(i as i64 + 1));
        }
        *(ret as *mut i64) = sum;
    }
}

fn expected_sum() -> i64 {
    (0..NARGS as i64).fold(0i64, |s, i| s.wrapping_add((i * 7 - 3).wrapping_mul(i + 1)))
}

/// What a thread runs: ffi_call of the closure; `marker` receives the
/// address of a local of this function, `result` the returned value.
struct Job {
    cif: *mut ffi_cif,
    code: *mut c_void,
    marker: AtomicUsize,
    result: AtomicI64,
}

extern "C" fn run_job(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Job the creating thread keeps alive until join.
    let job = unsafe { &*(p as *const Job) };
    alt_stack_for_this_thread();
    let mut values: Vec<i64> = (0..NARGS as i64).map(|i| i * 7 - 3).collect();
    let mut avalue: Vec<*mut c_void> = values.iter_mut().map(|v| (v as *mut i64).cast()).collect();
    let mut ret = 0i64;
    let marker = 0u8;
    job.marker.store(
        std::hint::black_box(&marker) as *const u8 as usize,
        Ordering::Relaxed,
    );
    // SAFETY: `code` is a prepared closure of the cif's type; avalue and
    // values live across the call.
    unsafe {
        ffi_call(
            job.cif,
            Some(std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(
                job.code,
            )),
            (&raw mut ret).cast(),
            avalue.as_mut_ptr(),
        )
    };
    std::hint::black_box(&marker);
    job.result.store(ret, Ordering::Relaxed);
    std::ptr::null_mut()
}

/// An alternate signal stack, so the SIGSEGV handler runs when the
/// thread's own stack is exhausted.
fn alt_stack_for_this_thread() {
    let size = 64 * 1024;
    let mem = map(size);
    let ss = libc::stack_t {
        ss_sp: mem.cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `ss` describes a mapping that is never unmapped.
    let rc = unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaltstack");
}

/// A private anonymous read-write mapping of `len` bytes.
fn map(len: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap {len}");
    p.cast()
}

/// Runs `job` on a new thread whose stack is `[stack, stack + len)`.
fn run_on_stack(job: &Job, stack: *mut u8, len: usize) {
    // SAFETY: plain pthread calls on a zeroed attribute object that
    // pthread_attr_init initialises; the stack mapping outlives the thread,
    // which is joined before `job` goes away.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_attr_init(&mut attr), 0);
        assert_eq!(
            libc::pthread_attr_setstack(&mut attr, stack.cast(), len),
            0,
            "pthread_attr_setstack({len})"
        );
        let mut t: libc::pthread_t = 0;
        assert_eq!(
            libc::pthread_create(&mut t, &attr, run_job, job as *const Job as *mut c_void),
            0
        );
        assert_eq!(libc::pthread_join(t, std::ptr::null_mut()), 0);
        libc::pthread_attr_destroy(&mut attr);
    }
}

fn sentinel_intact() -> bool {
    let (lo, hi) = (
        SENT[0].load(Ordering::Relaxed),
        SENT[1].load(Ordering::Relaxed),
    );
    // SAFETY: the sentinel mapping is readable and never unmapped.
    (lo..hi).all(|a| unsafe { *(a as *const u8) } == PATTERN)
}

/// Appends `v` in hex to `buf` at `*n` (no allocation: used in the handler).
fn put_hex(buf: &mut [u8], n: &mut usize, v: usize) {
    for s in b"0x" {
        buf[*n] = *s;
        *n += 1;
    }
    for shift in (0..usize::BITS as usize / 4).rev() {
        buf[*n] = b"0123456789abcdef"[(v >> (shift * 4)) & 15];
        *n += 1;
    }
}

fn put(buf: &mut [u8], n: &mut usize, s: &[u8]) {
    buf[*n..*n + s.len()].copy_from_slice(s);
    *n += s.len();
}

/// Reports the fault and the sentinel's state with one write(2), then
/// returns: SA_RESETHAND restored the default action, so the faulting
/// access kills the process with SIGSEGV.
extern "C" fn on_segv(_sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    let in_guard =
        addr >= GUARD[0].load(Ordering::Relaxed) && addr < GUARD[1].load(Ordering::Relaxed);
    let mut buf = [0u8; 160];
    let mut n = 0;
    put(&mut buf, &mut n, b"child: SIGSEGV at ");
    put_hex(&mut buf, &mut n, addr);
    put(
        &mut buf,
        &mut n,
        if in_guard {
            b", in the guard page"
        } else {
            b", NOT in the guard page"
        },
    );
    put(
        &mut buf,
        &mut n,
        if sentinel_intact() {
            b"; sentinel intact\n"
        } else {
            b"; sentinel CORRUPTED\n"
        },
    );
    // SAFETY: writing a valid buffer to fd 2 (async-signal-safe).
    unsafe { libc::write(2, buf.as_ptr().cast(), n) };
}

fn install_segv_handler() {
    // SAFETY: installing a handler that only reads memory and writes(2).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = on_segv;
        sa.sa_sigaction = f as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()), 0);
    }
}

/// The child: calibrate, then call on the tight stack (see the module doc).
fn child(abi: ffi_abi, first_stack_arg: usize) {
    let page = statictramp::page_size();
    // SAFETY: taking the address of libffi's type descriptor.
    let long = &raw mut ffi_type_sint64;
    let cif = {
        let types: &'static mut [*mut ffi_type] = Box::leak(vec![long; NARGS].into_boxed_slice());
        // SAFETY: ffi_cif is plain old data that ffi_prep_cif fills in.
        let cif: &'static mut ffi_cif = Box::leak(Box::new(unsafe { std::mem::zeroed() }));
        // SAFETY: `cif` and `types` live forever.
        let st = unsafe { ffi_prep_cif(cif, abi, NARGS as u32, long, types.as_mut_ptr()) };
        assert_eq!(st, ffi_status_FFI_OK, "ffi_prep_cif");
        cif as *mut ffi_cif
    };
    let (cl, code) = alloc(std::mem::size_of::<ffi_closure>()).expect("ffi_closure_alloc");
    // SAFETY: a record from ffi_closure_alloc, a cif that lives forever.
    let st = unsafe {
        prep(
            cl,
            cif,
            Some(handler as Handler),
            first_stack_arg as *mut c_void,
            code,
        )
    };
    assert_eq!(st, ffi_status_FFI_OK, "ffi_prep_closure_loc");

    // 1. Calibration on a large stack.
    let job = Job {
        cif,
        code,
        marker: AtomicUsize::new(0),
        result: AtomicI64::new(0),
    };
    let big = map(BIG_STACK);
    run_on_stack(&job, big, BIG_STACK);
    assert_eq!(job.result.load(Ordering::Relaxed), expected_sum());
    let marker = job.marker.load(Ordering::Relaxed);
    let above = big as usize + BIG_STACK - marker; // thread start-up, TCB
    let caller = marker - CALLER_ARGS_AT.load(Ordering::Relaxed); // ffi_call's arguments
    let whole = marker - SCRATCH_AT.load(Ordering::Relaxed); // down to the end of scratch
    eprintln!(
        "child: calibrated: {above} bytes above the thread function, ffi_call's arguments \
         {caller} bytes below it, the entry's scratch ends {whole} bytes below it"
    );
    assert!(
        whole > caller + 3 * page + TOP_ALIGN,
        "the scratch ({} bytes) is too small for this test",
        whole - caller
    );

    // 2. The tight stack: ffi_call fits with a page to spare, for the
    // entry's frame; the scratch would end more than two pages below the
    // guard.
    let len = (above + caller + page).next_multiple_of(TOP_ALIGN);
    let region = map(SENTINEL + page + len);
    // SAFETY: the first SENTINEL bytes of the fresh mapping.
    unsafe { std::ptr::write_bytes(region, PATTERN, SENTINEL) };
    let guard = region as usize + SENTINEL;
    // SAFETY: one page of our own mapping becomes inaccessible.
    let rc = unsafe { libc::mprotect(guard as *mut c_void, page, libc::PROT_NONE) };
    assert_eq!(rc, 0, "mprotect guard");
    SENT[0].store(region as usize, Ordering::Relaxed);
    SENT[1].store(guard, Ordering::Relaxed);
    GUARD[0].store(guard, Ordering::Relaxed);
    GUARD[1].store(guard + page, Ordering::Relaxed);
    let stack = (guard + page) as *mut u8;
    let remaining = len - above;
    assert!(remaining >= caller + page && whole > remaining + 2 * page);
    install_segv_handler();
    eprintln!(
        "child: stack {len} bytes at {stack:p}, guard page at {guard:#x}, sentinel below it; \
         {remaining} bytes left below the thread function; calling"
    );
    let job = Job {
        cif,
        code,
        marker: AtomicUsize::new(0),
        result: AtomicI64::new(0),
    };
    run_on_stack(&job, stack, len);
    eprintln!(
        "child: the call returned {} (sentinel {})",
        job.result.load(Ordering::Relaxed),
        if sentinel_intact() {
            "intact"
        } else {
            "CORRUPTED"
        }
    );
}

fn check(test: &str, mode: &str) {
    let out = run_child(test, mode, CHILD_LIMIT);
    assert!(
        out.stderr.contains("child: stack") && out.stderr.contains("calling"),
        "the child did not get to the call\n{}",
        out.describe()
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "the child should have died of SIGSEGV\n{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains(", in the guard page; sentinel intact\n"),
        "the fault must be in the guard page, with nothing written below it\n{}",
        out.describe()
    );
}

/// The default convention's generic entry (x86_64 System V: six register
/// arguments; i386 SYSV: none).
#[test]
fn sysv_entry_hits_the_guard_page_when_scratch_overflows_the_stack() {
    if is_child("probe_sysv") {
        let register_args = if cfg!(target_arch = "x86_64") { 6 } else { 0 };
        child(ffi_abi_FFI_DEFAULT_ABI, register_args);
        return;
    }
    check(
        "sysv_entry_hits_the_guard_page_when_scratch_overflows_the_stack",
        "probe_sysv",
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn win64_entry_hits_the_guard_page_when_scratch_overflows_the_stack() {
    if is_child("probe_win64") {
        child(ffi_abi_FFI_WIN64, 4);
        return;
    }
    check(
        "win64_entry_hits_the_guard_page_when_scratch_overflows_the_stack",
        "probe_win64",
    );
}
