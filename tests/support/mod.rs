//! Helpers shared by tests/lifecycle.rs, tests/wx.rs and tests/scale.rs:
//! cifs and handlers, child processes that are expected to crash, and
//! /proc/self/maps.
//!
//! Each integration test crate includes this module and uses a different
//! subset of it.
#![allow(dead_code)]

use libffi_sys::*;
use statictramp::capi;
use statictramp::cif::FfiCif;
use statictramp::closure::FfiClosure;
use std::io::Read;
use std::os::raw::c_void;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The handler type statictramp's `ffi_prep_closure_loc` takes.
pub type Handler =
    unsafe extern "C-unwind" fn(*mut FfiCif, *mut c_void, *mut *mut c_void, *mut c_void);

/// A prepared libffi cif that lives for the rest of the process (closures
/// keep a pointer to it).
pub fn leak_cif(rtype: *mut ffi_type, args: &[*mut ffi_type]) -> *mut ffi_cif {
    let types: &'static mut [*mut ffi_type] = Box::leak(args.to_vec().into_boxed_slice());
    // SAFETY: ffi_cif is plain old data; ffi_prep_cif fills it in.
    let cif: &'static mut ffi_cif = Box::leak(Box::new(unsafe { std::mem::zeroed() }));
    // SAFETY: `cif` and `types` live forever; the types are libffi's.
    let st = unsafe {
        ffi_prep_cif(
            cif,
            ffi_abi_FFI_DEFAULT_ABI,
            types.len() as u32,
            rtype,
            types.as_mut_ptr(),
        )
    };
    assert_eq!(st, ffi_status_FFI_OK, "ffi_prep_cif");
    cif
}

/// `int (int, int)`.
pub fn cif_int_int_int() -> *mut ffi_cif {
    // SAFETY: taking the address of libffi's type descriptors.
    leak_cif(
        &raw mut ffi_type_sint32,
        &[&raw mut ffi_type_sint32, &raw mut ffi_type_sint32],
    )
}

/// `uint64_t (uint64_t)`.
pub fn cif_u64_u64() -> *mut ffi_cif {
    // SAFETY: taking the address of libffi's type descriptors.
    leak_cif(&raw mut ffi_type_uint64, &[&raw mut ffi_type_uint64])
}

/// Handler for `int (int, int)`: `a + b + (int)user_data`.
pub unsafe extern "C-unwind" fn add_plus_ud(
    _cif: *mut FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: called by statictramp with two int arguments and an ffi_arg
    // sized return buffer.
    unsafe {
        let a = *(*args.add(0) as *const i32);
        let b = *(*args.add(1) as *const i32);
        let v = a.wrapping_add(b).wrapping_add(ud as usize as i32);
        *(ret as *mut ffi_arg) = v as i64 as ffi_arg;
    }
}

/// Handler for `int (int, int)`: `a * b - (int)user_data` (a different
/// handler, to check that re-prep switches handlers).
pub unsafe extern "C-unwind" fn mul_minus_ud(
    _cif: *mut FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: as for `add_plus_ud`.
    unsafe {
        let a = *(*args.add(0) as *const i32);
        let b = *(*args.add(1) as *const i32);
        let v = a.wrapping_mul(b).wrapping_sub(ud as usize as i32);
        *(ret as *mut ffi_arg) = v as i64 as ffi_arg;
    }
}

/// Handler for `uint64_t (uint64_t x)`: `user_data + x`.
pub unsafe extern "C-unwind" fn ud_plus_x(
    _cif: *mut FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: called by statictramp with one uint64_t argument.
    unsafe {
        let x = *(*args.add(0) as *const u64);
        *(ret as *mut u64) = (ud as u64).wrapping_add(x);
    }
}

/// Calls code of type `int (int, int)` directly.
///
/// # Safety
/// `code` must be a prepared closure of that type.
pub unsafe fn call_ii(code: *mut c_void, a: i32, b: i32) -> i32 {
    // SAFETY: per the contract.
    let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(code) };
    f(a, b)
}

/// Calls code of type `int (int, int)` through libffi's `ffi_call`.
///
/// # Safety
/// `code` must be a prepared closure of that type; `cif` describes it.
pub unsafe fn ffi_call_ii(cif: *mut ffi_cif, code: *mut c_void, a: i32, b: i32) -> i32 {
    let mut ret: ffi_arg = 0;
    let (mut a, mut b) = (a, b);
    let mut av = [(&raw mut a).cast::<c_void>(), (&raw mut b).cast()];
    // SAFETY: per the contract.
    unsafe {
        ffi_call(
            cif,
            Some(std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(
                code,
            )),
            (&raw mut ret).cast(),
            av.as_mut_ptr(),
        )
    };
    ret as i32
}

/// Calls code of type `uint64_t (uint64_t)` directly.
///
/// # Safety
/// `code` must be a prepared closure of that type.
pub unsafe fn call_u64(code: *mut c_void, x: u64) -> u64 {
    // SAFETY: per the contract.
    let f: extern "C" fn(u64) -> u64 = unsafe { std::mem::transmute(code) };
    f(x)
}

/// `ffi_closure_alloc(size, &code)`: (record, code), or None with errno.
pub fn alloc(size: usize) -> Option<(*mut c_void, *mut c_void)> {
    let mut code: *mut c_void = std::ptr::null_mut();
    // SAFETY: `code` is writable.
    let cl = unsafe { capi::ffi_closure_alloc(size, &mut code) };
    if cl.is_null() {
        None
    } else {
        assert!(
            !code.is_null(),
            "ffi_closure_alloc returned a record without code"
        );
        Some((cl, code))
    }
}

/// `ffi_prep_closure_loc`, returning the raw status.
///
/// # Safety
/// As `ffi_prep_closure_loc`.
pub unsafe fn prep(
    cl: *mut c_void,
    cif: *mut ffi_cif,
    fun: Option<Handler>,
    ud: *mut c_void,
    code: *mut c_void,
) -> u32 {
    // SAFETY: forwarded.
    unsafe {
        capi::ffi_prep_closure_loc(cl.cast::<FfiClosure>(), cif.cast::<FfiCif>(), fun, ud, code)
    }
}

/// `ffi_closure_free`.
///
/// # Safety
/// As `ffi_closure_free`.
pub unsafe fn free(cl: *mut c_void) {
    // SAFETY: forwarded.
    unsafe { capi::ffi_closure_free(cl) }
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets errno (so a test can tell that a call set it).
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

// ---- child processes --------------------------------------------------

/// Environment variable that tells a re-executed test binary which crashing
/// (or resource-limited) part of a test to run.
pub const CHILD_ENV: &str = "STATICTRAMP_TEST_CHILD";

/// Whether this process is a child started by [`run_child`] for `mode`.
pub fn is_child(mode: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|m| m == mode)
}

/// What a child process did.
pub struct ChildOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ChildOutput {
    /// What the child printed after `REPORT ` on each stdout line that has
    /// it (the harness may print before it on the same line).
    pub fn reports(&self) -> Vec<&str> {
        const TAG: &str = "REPORT ";
        self.stdout
            .lines()
            .filter_map(|l| l.find(TAG).map(|at| &l[at + TAG.len()..]))
            .collect()
    }

    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {:?} (signal {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.status.signal(),
            self.stdout,
            self.stderr
        )
    }
}

/// Checks that a child passed and printed at least one report, and shows
/// its reports (each prefixed by `what`) and how long it took.
pub fn show_reports(out: &ChildOutput, what: &str) {
    assert_child_passed(out);
    let reports = out.reports();
    for line in &reports {
        println!("{what}: {line}");
    }
    println!("{what}: child took {:?}", out.elapsed);
    assert!(
        !reports.is_empty(),
        "child printed no report\n{}",
        out.describe()
    );
}

/// Re-runs this test binary for the single test `test` (its full name, as
/// `--exact` wants it) with [`CHILD_ENV`] = `mode`; kills it after `limit`.
pub fn run_child(test: &str, mode: &str, limit: Duration) -> ChildOutput {
    run_child_via(None, &[], test, mode, limit)
}

/// As [`run_child`], started as `launcher <this binary> ...` when a
/// launcher (e.g. the dynamic loader) is given, with environment changes
/// `env` (`None` removes the variable).
pub fn run_child_via(
    launcher: Option<&str>,
    env: &[(&str, Option<&str>)],
    test: &str,
    mode: &str,
    limit: Duration,
) -> ChildOutput {
    let exe = std::env::current_exe().expect("current_exe");
    let start = Instant::now();
    let mut cmd = match launcher {
        Some(l) => {
            let mut c = Command::new(l);
            c.arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let st = child.wait().expect("wait for killed child");
            let so = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
            let se = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
            panic!("child {test} ({mode}) took longer than {limit:?}; killed ({st:?})\n{so}\n{se}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    ChildOutput {
        status,
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        elapsed,
    }
}

/// Asserts that the child died of SIGABRT and wrote `needle` to stderr.
pub fn assert_aborted_with(out: &ChildOutput, needle: &str) {
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "child should have died of SIGABRT\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(needle),
        "child's stderr should contain {needle:?}\n{}",
        out.describe()
    );
}

/// The dynamic loader this process was started with (the file mapped at
/// AT_BASE).
pub fn dynamic_loader() -> String {
    // SAFETY: getauxval has no preconditions.
    let base = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
    assert_ne!(base, 0, "no dynamic loader (static binary?)");
    maps()
        .into_iter()
        .find(|m| m.contains(base))
        .expect("AT_BASE is mapped")
        .path
}

/// Asserts that the child exited with status 0 (its test passed).
pub fn assert_child_passed(out: &ChildOutput) {
    assert!(
        out.status.success(),
        "child test failed\n{}",
        out.describe()
    );
}

// ---- /proc/self/maps ----------------------------------------------------

/// One line of /proc/self/maps.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub shared: bool,
    pub offset: u64,
    pub dev: String,
    pub inode: u64,
    pub path: String,
    pub line: String,
}

impl Mapping {
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.start && addr < self.end
    }

    /// The file range `[offset, offset + len)` this mapping shows.
    pub fn file_range(&self) -> (u64, u64) {
        (self.offset, self.offset + (self.end - self.start) as u64)
    }

    /// Whether two mappings show overlapping bytes of the same file.
    pub fn same_file_overlap(&self, other: &Mapping) -> bool {
        if self.inode == 0 || self.inode != other.inode || self.dev != other.dev {
            return false;
        }
        let (a0, a1) = self.file_range();
        let (b0, b1) = other.file_range();
        a0 < b1 && b0 < a1
    }
}

fn parse_line(line: &str) -> Mapping {
    let mut it = line.split_ascii_whitespace();
    let range = it.next().expect("range");
    let perms = it.next().expect("perms").as_bytes();
    let offset = u64::from_str_radix(it.next().expect("offset"), 16).expect("offset hex");
    let dev = it.next().expect("dev").to_string();
    let inode: u64 = it.next().expect("inode").parse().expect("inode decimal");
    let path = it.collect::<Vec<_>>().join(" ");
    let (s, e) = range.split_once('-').expect("range dash");
    Mapping {
        start: usize::from_str_radix(s, 16).unwrap(),
        end: usize::from_str_radix(e, 16).unwrap(),
        read: perms[0] == b'r',
        write: perms[1] == b'w',
        exec: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        dev,
        inode,
        path,
        line: line.to_string(),
    }
}

/// This process's mappings.
pub fn maps() -> Vec<Mapping> {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .filter(|l| !l.is_empty())
        .map(parse_line)
        .collect()
}

/// Number of VMAs (lines of /proc/self/maps), counted through a fixed
/// buffer: a process that has used up its map count may not be able to
/// allocate the whole text (a 32-bit thread's malloc arena grows by new
/// mappings).
pub fn vma_count() -> usize {
    let mut f = std::fs::File::open("/proc/self/maps").expect("open /proc/self/maps");
    let mut buf = [0u8; 16384];
    let mut lines = 0;
    loop {
        let n = f.read(&mut buf).expect("read /proc/self/maps");
        if n == 0 {
            return lines;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
}

/// A field of /proc/self/status in kB (e.g. "VmSize").
pub fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let num = rest.trim().trim_end_matches("kB").trim();
            return num.parse().expect("status number");
        }
    }
    panic!("no {field} in /proc/self/status");
}

/// Release builds run the full sizes the README promises; debug builds
/// scale counts down by this factor.
pub fn scaled(n: usize, debug_divisor: usize) -> usize {
    if cfg!(debug_assertions) {
        (n / debug_divisor).max(1)
    } else {
        n
    }
}

/// A user-data pointer carrying the number `n` (never dereferenced); `n`
/// must fit a pointer.
pub fn ud(n: u64) -> *mut c_void {
    let n =
        usize::try_from(n).unwrap_or_else(|_| panic!("user data {n:#x} does not fit a pointer"));
    std::ptr::without_provenance_mut(n)
}

/// User data with the pointer's second-highest bit set (1 << 62 on a
/// 64-bit target, 1 << 30 on a 32-bit one): a value no narrower copy of
/// the pointer would keep.
pub const BIG_UD: u64 = 1 << (usize::BITS - 2);

// ---- the map count ------------------------------------------------------

/// Fills this process's map count (vm.max_map_count) with single anonymous
/// pages that cannot merge (PROT_READ and PROT_NONE in turn) until mmap
/// fails; returns their addresses.
pub fn fill_map_count() -> Vec<usize> {
    let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(65530);
    let mut pages: Vec<usize> = Vec::with_capacity(max + 16);
    loop {
        let prot = if pages.len() % 2 == 0 {
            libc::PROT_READ
        } else {
            libc::PROT_NONE
        };
        // SAFETY: a fresh anonymous mapping the kernel places; it overlaps
        // nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return pages;
        }
        pages.push(p as usize);
        assert!(pages.len() <= max + 16, "mmap never failed");
    }
}

/// Unmaps `k` of the filler pages (from the middle, so that no two freed
/// neighbours merge with anything), leaving room for about `k` mappings.
pub fn unmap_fillers(pages: &mut Vec<usize>, k: usize) {
    for _ in 0..k {
        let p = pages.remove(pages.len() / 2);
        // SAFETY: a page fill_map_count mapped, unmapped once (removed from
        // the list here).
        assert_eq!(unsafe { libc::munmap(p as *mut c_void, 4096) }, 0);
    }
}
