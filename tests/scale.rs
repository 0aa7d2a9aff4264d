//! Scale, threads and exhaustion: a million live closures, two threads
//! churning closures concurrently, and allocation until the address space
//! (RLIMIT_AS) or the map count (vm.max_map_count) runs out, in child
//! processes, checking that the closures made before keep working.
mod support;

use statictramp::capi;
use std::collections::VecDeque;
use std::os::raw::c_void;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use support::*;

/// The tests here measure VMAs and slot reuse; keep them apart.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// Allocates and prepares `uint64_t (uint64_t x)` returning `tag + x`.
fn make(
    cif: *mut libffi_sys::ffi_cif,
    size: usize,
    tag: u64,
) -> Option<(*mut c_void, *mut c_void)> {
    let (cl, code) = alloc(size)?;
    let st = unsafe { prep(cl, cif, Some(ud_plus_x), ud(tag), code) };
    assert_eq!(st, 0, "prep tag={tag}");
    Some((cl, code))
}

#[test]
fn million_live_closures() {
    let _g = serial();
    let n = scaled(1_000_000, 10);
    let cif = cif_u64_u64();
    let vmas_before = vma_count();
    let (live0, handed0) = statictramp::closure::stats();

    let t = Instant::now();
    let mut cls = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    for i in 0..n {
        let (cl, code) =
            make(cif, 0, i as u64).unwrap_or_else(|| panic!("closure {i}: errno {}", errno()));
        cls.push(cl);
        codes.push(code);
    }
    let t_alloc = t.elapsed();

    let t = Instant::now();
    for (i, &code) in codes.iter().enumerate() {
        let r = unsafe { call_u64(code, 7) };
        assert_eq!(r, i as u64 + 7, "closure {i} at {code:p}");
    }
    let t_call = t.elapsed();
    // And through libffi's ffi_call, every 97th plus first and last.
    for i in (0..n).step_by(97).chain([0, n - 1]) {
        let mut x: u64 = 1000;
        let mut ret: u64 = 0;
        let mut av = [(&raw mut x).cast::<c_void>()];
        unsafe {
            libffi_sys::ffi_call(
                cif,
                Some(std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(
                    codes[i],
                )),
                (&raw mut ret).cast(),
                av.as_mut_ptr(),
            )
        };
        assert_eq!(ret, i as u64 + 1000, "ffi_call closure {i}");
    }

    let vmas_after = vma_count();
    let (live1, handed1) = statictramp::closure::stats();
    assert_eq!(live1 - live0, n, "live closures");
    println!(
        "{n} closures: alloc+prep {t_alloc:?} ({:.0} ns each), {n} direct calls {t_call:?} ({:.1} ns each)",
        t_alloc.as_nanos() as f64 / n as f64,
        t_call.as_nanos() as f64 / n as f64
    );
    println!(
        "VMAs: {vmas_before} before, {vmas_after} with {n} live closures (+{}); slots handed out {handed0} -> {handed1}",
        vmas_after as i64 - vmas_before as i64
    );
    assert!(
        vmas_after < vmas_before + 200,
        "{n} closures added {} VMAs",
        vmas_after - vmas_before
    );

    // Every closure has its own code and record.
    let mut sorted: Vec<usize> = codes.iter().map(|&c| c as usize).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "duplicate code addresses");
    let mut recs: Vec<usize> = cls.iter().map(|&c| c as usize).collect();
    recs.sort_unstable();
    recs.dedup();
    assert_eq!(recs.len(), n, "duplicate records");
    for i in (0..n).step_by(9973) {
        assert_eq!(capi::statictramp_owns_code(codes[i]), 1, "owns closure {i}");
    }

    let t = Instant::now();
    for &cl in &cls {
        unsafe { free(cl) };
    }
    let t_free = t.elapsed();
    assert_eq!(
        statictramp::closure::stats().0,
        live0,
        "live closures after free"
    );
    for i in (0..n).step_by(9973) {
        assert_eq!(
            capi::statictramp_owns_code(codes[i]),
            0,
            "freed closure {i}"
        );
    }

    // Allocate them all again: every slot is reused, none is fresh.
    let t = Instant::now();
    let mut cls2 = Vec::with_capacity(n);
    let mut codes2 = Vec::with_capacity(n);
    for i in 0..n {
        let tag = (n - i) as u64 * 3;
        let (cl, code) = make(cif, 0, tag).unwrap_or_else(|| panic!("re-alloc {i}"));
        cls2.push(cl);
        codes2.push(code);
    }
    let t_realloc = t.elapsed();
    // Freed slots are reused, except the last QUARANTINE freed on this
    // thread and the last QUARANTINE in the global pool (where the thread
    // returned the rest), which stay trapping while fresh slots stand in.
    let q = statictramp::quarantine::QUARANTINE;
    assert_eq!(
        statictramp::closure::stats().1 as usize,
        handed1 as usize + 2 * q,
        "re-allocation took more fresh slots than the quarantine holds"
    );
    let freed: std::collections::HashSet<usize> = sorted.iter().copied().collect();
    let reused = codes2
        .iter()
        .filter(|&&c| freed.contains(&(c as usize)))
        .count();
    assert_eq!(
        reused,
        n - 2 * q,
        "re-allocated code addresses should be the freed ones"
    );
    for (i, &code) in codes2.iter().enumerate() {
        assert_eq!(
            unsafe { call_u64(code, 1) },
            (n - i) as u64 * 3 + 1,
            "re-allocated closure {i}"
        );
    }
    assert!(vma_count() < vmas_before + 200, "VMAs grew on reuse");
    for &cl in &cls2 {
        unsafe { free(cl) };
    }
    println!("free {n}: {t_free:?}; re-alloc+prep {n}: {t_realloc:?}");
}

/// One thread's churn: allocate, prep, call, keep a rolling window of live
/// closures, call and free the oldest. Every closure's user data names its
/// thread and sequence number.
fn churn(thread: u64, cycles: usize, window: usize) -> (usize, usize) {
    let cif = cif_u64_u64();
    let mut live: VecDeque<(u64, *mut c_void, *mut c_void)> = VecDeque::with_capacity(window + 1);
    let mut calls = 0;
    let mut rng = thread.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..cycles as u64 {
        // The thread in the pointer-sized user data's top byte.
        let tag = (thread << (usize::BITS - 8)) | i;
        // Mix record size classes: 64, 128 and 256 bytes.
        let size = [0usize, 100, 200][(i % 3) as usize];
        let (cl, code) = make(cif, size, tag)
            .unwrap_or_else(|| panic!("thread {thread} cycle {i}: errno {}", errno()));
        assert_eq!(
            unsafe { call_u64(code, 5) },
            tag + 5,
            "thread {thread}: new closure {i}"
        );
        calls += 1;
        live.push_back((tag, cl, code));
        // A random live one.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let (tag_r, _, code_r) = live[(rng % live.len() as u64) as usize];
        assert_eq!(
            unsafe { call_u64(code_r, 9) },
            tag_r + 9,
            "thread {thread}: live closure {tag_r:#x}"
        );
        calls += 1;
        if live.len() > window {
            let (tag_o, cl_o, code_o) = live.pop_front().unwrap();
            assert_eq!(
                unsafe { call_u64(code_o, 1) },
                tag_o + 1,
                "thread {thread}: oldest closure {tag_o:#x}"
            );
            calls += 1;
            unsafe { free(cl_o) };
        }
    }
    for (tag, cl, code) in live.drain(..) {
        assert_eq!(
            unsafe { call_u64(code, 2) },
            tag + 2,
            "thread {thread}: final closure {tag:#x}"
        );
        calls += 1;
        unsafe { free(cl) };
    }
    (cycles, calls)
}

#[test]
fn two_threads_allocate_call_free_concurrently() {
    let _g = serial();
    let cycles = scaled(200_000, 10);
    let t = Instant::now();
    let handles: Vec<_> = (1..=2u64)
        .map(|th| std::thread::spawn(move || churn(th, cycles, 1000)))
        .collect();
    // Meanwhile this thread keeps calling a closure of its own.
    let cif = cif_u64_u64();
    let (cl, code) = make(cif, 0, 77).unwrap();
    let mut own_calls = 0u64;
    while !handles.iter().all(|h| h.is_finished()) {
        assert_eq!(unsafe { call_u64(code, own_calls) }, 77 + own_calls);
        own_calls += 1;
    }
    unsafe { free(cl) };
    let mut total = 0;
    for h in handles {
        let (c, calls) = h.join().expect("churn thread panicked");
        assert_eq!(c, cycles);
        total += calls;
    }
    println!(
        "2 threads x {cycles} cycles (window 1000): {total} checked calls, {own_calls} calls from the main thread, {:?}",
        t.elapsed()
    );
}

// ---- exhaustion, in child processes ------------------------------------

const MIB: u64 = 1 << 20;

/// Allocates closures until ffi_closure_alloc fails (or `cap`), checking
/// errno; returns them.
fn allocate_until_null(
    cif: *mut libffi_sys::ffi_cif,
    out: &mut Vec<(*mut c_void, *mut c_void)>,
    cap: usize,
) -> bool {
    while out.len() < cap {
        set_errno(0);
        match alloc(0) {
            Some((cl, code)) => {
                let st = unsafe { prep(cl, cif, Some(ud_plus_x), ud(out.len() as u64), code) };
                assert_eq!(st, 0, "prep closure {}", out.len());
                out.push((cl, code));
            }
            None => {
                assert_eq!(
                    errno(),
                    libc::ENOMEM,
                    "errno after ffi_closure_alloc failed at closure {}",
                    out.len()
                );
                return true;
            }
        }
    }
    false
}

/// Calls every closure (or a sample of large sets) and checks its result.
fn verify(v: &[(*mut c_void, *mut c_void)], what: &str) {
    let n = v.len();
    let step = if n > 200_000 { 97 } else { 1 };
    for i in (0..n).step_by(step).chain([0, n - 1]) {
        assert_eq!(
            unsafe { call_u64(v[i].1, 11) },
            i as u64 + 11,
            "{what}: closure {i}"
        );
    }
}

/// RLIMIT_AS = VmSize + `headroom` bytes, set before the first statictramp
/// allocation of this (child) process; then allocate until NULL.
fn address_space_child(headroom: u64, cap: usize) -> (usize, bool) {
    let cif = cif_u64_u64();
    let mut v = Vec::with_capacity(cap);
    println!("REPORT start: VmSize {} kB", status_kb("VmSize"));
    let vm = status_kb("VmSize") * 1024;
    let lim = libc::rlimit64 {
        rlim_cur: vm + headroom,
        rlim_max: vm + headroom,
    };
    assert_eq!(
        unsafe { libc::setrlimit64(libc::RLIMIT_AS, &lim) },
        0,
        "setrlimit"
    );
    let t = Instant::now();
    let exhausted = allocate_until_null(cif, &mut v, cap);
    let n = v.len();
    println!(
        "REPORT RLIMIT_AS = VmSize + {} MiB: {n} closures {} in {:?}; VmSize now {} kB",
        headroom / MIB,
        if exhausted {
            "before ENOMEM"
        } else {
            "(cap reached, no ENOMEM)"
        },
        t.elapsed(),
        status_kb("VmSize")
    );
    assert!(n > 0, "not even one closure");
    verify(&v, "after allocation stopped");
    if exhausted {
        // Still failing cleanly, and a freed closure can be allocated again.
        assert!(
            alloc(0).is_none(),
            "allocation succeeded right after ENOMEM"
        );
        let (last_cl, _) = v.pop().unwrap();
        unsafe { free(last_cl) };
        let (cl, code) = alloc(0).expect("re-allocation of a freed closure after ENOMEM");
        unsafe { assert_eq!(prep(cl, cif, Some(ud_plus_x), ud((n - 1) as u64), code), 0) };
        v.push((cl, code));
        verify(&v, "after free + re-alloc");
    }
    (n, exhausted)
}

#[test]
fn exhaust_address_space() {
    if is_child("rlimit_as") {
        let (n, exhausted) = address_space_child(300 * MIB, 8_000_000);
        assert!(exhausted, "no ENOMEM within {n} closures");
        return;
    }
    let out = run_child("exhaust_address_space", "rlimit_as", CHILD_LIMIT);
    show_reports(&out, "RLIMIT_AS + 300 MiB");
}

#[test]
fn address_space_limit_leaves_room_for_mapped_pools() {
    // With 1.25 GiB of address space left, room for a 512 MiB trampoline
    // region exists: more closures than the 1024-slot in-image pool must be
    // possible.
    if is_child("rlimit_as_large") {
        let (n, _) = address_space_child(1280 * MIB, scaled(400_000, 4));
        assert!(
            n > statictramp::layout::IMAGE_SLOTS,
            "only {n} closures with 1.25 GiB of address space left: no trampoline region could be reserved"
        );
        return;
    }
    let out = run_child(
        "address_space_limit_leaves_room_for_mapped_pools",
        "rlimit_as_large",
        CHILD_LIMIT,
    );
    show_reports(&out, "RLIMIT_AS + 1.25 GiB");
}

#[test]
fn exhaust_map_count() {
    if is_child("map_count") {
        let cif = cif_u64_u64();
        let mut v = Vec::with_capacity(4_000_000);
        println!("REPORT start: {} VMAs", vma_count());
        let t = Instant::now();
        let mut pages = fill_map_count();
        let full = vma_count();
        let t_fill = t.elapsed();
        // Leave room for a few mappings.
        unmap_fillers(&mut pages, 10);
        let t = Instant::now();
        let exhausted = allocate_until_null(cif, &mut v, 4_000_000);
        let n = v.len();
        println!(
            "REPORT {} filler pages ({} VMAs when full, filled in {t_fill:?}); 10 unmapped: {n} closures {} in {:?}",
            pages.len(),
            full,
            if exhausted {
                "before ENOMEM"
            } else {
                "(cap reached, no ENOMEM)"
            },
            t.elapsed()
        );
        assert!(exhausted, "no ENOMEM within the cap");
        assert!(n > 0, "not even one closure");
        verify(&v, "after ENOMEM");
        // More room: allocation resumes, old and new closures work.
        unmap_fillers(&mut pages, 30);
        let again = allocate_until_null(cif, &mut v, 4_000_000);
        println!(
            "REPORT 30 more unmapped: {} closures in all ({} more), ENOMEM again: {again}",
            v.len(),
            v.len() - n
        );
        assert!(
            v.len() > n,
            "allocation did not resume after map slots were freed"
        );
        verify(&v, "after resuming");
        for p in pages.drain(..) {
            // SAFETY: a filler page fill_map_count mapped, unmapped once.
            unsafe { libc::munmap(p as *mut c_void, 4096) };
        }
        verify(&v, "after unmapping the filler");
        return;
    }
    let out = run_child("exhaust_map_count", "map_count", CHILD_LIMIT);
    show_reports(&out, "map count");
}

/// A thread's cached pairs go back to the global pool when it exits, and
/// closures freed on another thread than the one that made them are
/// counted right: nothing is lost or counted twice.
#[test]
fn thread_caches_return_everything_on_exit() {
    let _g = serial();
    let cif = cif_u64_u64();
    let cif_addr = cif as usize;
    let (live0, _) = statictramp::closure::stats();
    // A thread makes 5000 closures and frees half of them, then exits with
    // a full cache; the other half is freed here.
    let kept: Vec<(usize, usize)> = std::thread::spawn(move || {
        let cif = cif_addr as *mut libffi_sys::ffi_cif;
        let mut v: Vec<(usize, usize)> = (0..5000u64)
            .map(|i| {
                let (cl, code) = make(cif, 0, i).expect("alloc in thread");
                (cl as usize, code as usize)
            })
            .collect();
        for (cl, _) in v.drain(2500..) {
            unsafe { free(cl as *mut c_void) };
        }
        v
    })
    .join()
    .unwrap();
    assert_eq!(
        statictramp::closure::stats().0,
        live0 + 2500,
        "live after the thread exited"
    );
    for (i, &(_, code)) in kept.iter().enumerate() {
        assert_eq!(unsafe { call_u64(code as *mut c_void, 7) }, i as u64 + 7);
    }
    for &(cl, _) in &kept {
        unsafe { free(cl as *mut c_void) };
    }
    assert_eq!(
        statictramp::closure::stats().0,
        live0,
        "live after freeing the rest here"
    );
    // The exited thread's pairs are reusable: 5000 more closures need no
    // fresh slots beyond the quarantines (this thread's and the pool's).
    let (_, handed) = statictramp::closure::stats();
    let again: Vec<_> = (0..5000u64).map(|i| make(cif, 0, i).unwrap()).collect();
    let (_, handed2) = statictramp::closure::stats();
    // Allowed: the two quarantines, and one refill batch left unused in
    // this thread's cache.
    let q = statictramp::quarantine::QUARANTINE as u32;
    let batch = statictramp::closure::CACHE_BATCH as u32;
    assert!(
        handed2 <= handed + 2 * q + batch,
        "5000 re-allocations took {} fresh slots; the exited thread's cache was lost?",
        handed2 - handed
    );
    for (cl, _) in again {
        unsafe { free(cl) };
    }
}

/// Installs a seccomp filter that kills the process on every system call
/// but those in `allowed` (numbers of this target's native system-call ABI).
/// A plain classic-BPF program, so that the library's tests need no
/// libseccomp (the CLI alone uses it).
fn allow_only(allowed: &[libc::c_long]) {
    // struct seccomp_data: int nr at offset 0.
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let mut prog = vec![stmt(LD_W_ABS, 0)];
    for &nr in allowed {
        // Equal: fall through to the ALLOW below; else skip it.
        prog.push(libc::sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: nr as u32,
        });
        prog.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    }
    prog.push(stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; the kernel copies the program.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog,
            ),
            0,
            "seccomp: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Steady-state alloc + prep + call + free makes no system call: in a child,
/// after a warm-up, a seccomp filter kills the process on any system call
/// but write and exit; 20 000 cycles must still run.
#[test]
fn alloc_prep_call_free_make_no_system_calls() {
    if is_child("no_syscalls") {
        let cif = cif_u64_u64();
        let cycle = |i: u64| {
            let (cl, code) = make(cif, 0, i).expect("alloc");
            assert_eq!(unsafe { call_u64(code, 1) }, i + 1);
            unsafe { free(cl) };
        };
        for i in 0..1000 {
            cycle(i);
        }
        allow_only(&[
            libc::SYS_write,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_rt_sigreturn,
        ]);
        for i in 0..20_000 {
            cycle(i);
        }
        println!("20000 cycles without a system call");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // Straight to exit_group: the test harness's own teardown makes
        // system calls the filter would (rightly) kill.
        unsafe { libc::_exit(0) };
    }
    let out = run_child(
        "alloc_prep_call_free_make_no_system_calls",
        "no_syscalls",
        CHILD_LIMIT,
    );
    assert_child_passed(&out);
    assert!(
        out.stdout.contains("20000 cycles without a system call"),
        "{}",
        out.describe()
    );
}
