//! W^X: with enough closures to need mapped trampoline pools beyond the
//! in-image one, no memory is writable and executable, closure code lives
//! only in read + execute file-backed mappings (the image or the sealed
//! template memfd), and no writable mapping aliases any executable file
//! range. Also `statictramp_owns_code` for live, freed and foreign pointers.
mod support;

use statictramp::capi;
use statictramp::layout::{IMAGE_SLOTS, REC_DIST};
use std::collections::BTreeSet;
use std::os::raw::c_void;
use std::os::unix::process::ExitStatusExt;
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard};
use support::*;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closures of type `uint64_t (uint64_t)` returning `index + x`.
struct Batch {
    cl: Vec<*mut c_void>,
    code: Vec<*mut c_void>,
}

impl Batch {
    fn new(n: usize) -> Batch {
        let cif = cif_u64_u64();
        let mut b = Batch {
            cl: Vec::with_capacity(n),
            code: Vec::with_capacity(n),
        };
        for i in 0..n {
            let (cl, code) = alloc(0).unwrap_or_else(|| panic!("alloc {i}: errno {}", errno()));
            let st = unsafe { prep(cl, cif, Some(ud_plus_x), ud(i as u64), code) };
            assert_eq!(st, 0, "prep {i}");
            b.cl.push(cl);
            b.code.push(code);
        }
        b
    }

    fn check_sample(&self) {
        let n = self.code.len();
        for i in (0..n).step_by(97).chain([0, n - 1]) {
            assert_eq!(
                unsafe { call_u64(self.code[i], 3) },
                i as u64 + 3,
                "closure {i}"
            );
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for &c in &self.cl {
            unsafe { free(c) };
        }
    }
}

/// The file statictramp's code was loaded from (this test binary): the
/// path of the mapping holding `ffi_closure_alloc`. Not /proc/self/exe,
/// which names the dynamic loader when the binary is run through it.
fn image_path(maps: &[Mapping]) -> String {
    let f = capi::ffi_closure_alloc as *const () as usize;
    find(maps, f)
        .expect("ffi_closure_alloc is mapped")
        .path
        .clone()
}

const MEMFD_NAME: &str = "/memfd:statictramp-template";

fn find(maps: &[Mapping], addr: usize) -> Option<&Mapping> {
    maps.iter().find(|m| m.contains(addr))
}

/// All W^X properties of the current address space for these closures.
/// Returns the number of distinct executable mappings holding their code.
fn check_wx(batch: &Batch, when: &str) -> usize {
    let maps = maps();
    let exe = image_path(&maps);
    let mut errors = Vec::new();

    // 1. Nothing writable and executable, anywhere in the process.
    for m in &maps {
        if m.write && m.exec {
            errors.push(format!("writable and executable: {}", m.line));
        }
    }

    // 2. Every closure's code is in a read + execute, not writable, file
    //    backed mapping of the image or the template memfd; every record
    //    and every mapped slot's record is in memory that is not
    //    executable.
    let image = statictramp::table::code_ranges()[0];
    let mut code_maps = BTreeSet::new();
    let mut mapped_slots = 0;
    for (i, (&code, &cl)) in batch.code.iter().zip(&batch.cl).enumerate() {
        let code = code as usize;
        let Some(m) = find(&maps, code) else {
            errors.push(format!("closure {i}: code {code:#x} is not mapped"));
            continue;
        };
        if code_maps.insert(m.start) {
            let r_x_private = m.read && m.exec && !m.write && !m.shared;
            if !r_x_private {
                errors.push(format!("closure {i}: code mapping is not r-xp: {}", m.line));
            }
            if m.inode == 0 || !(m.path == exe || m.path.starts_with(MEMFD_NAME)) {
                errors.push(format!(
                    "closure {i}: code mapping is not the image or the template memfd: {}",
                    m.line
                ));
            }
        }
        match find(&maps, cl as usize) {
            Some(r) if r.read && r.write && !r.exec => {}
            other => errors.push(format!("closure {i}: record {cl:p} in {other:?}")),
        }
        if !(image.0..image.0 + image.1).contains(&code) {
            // A mapped template copy: the closure's record is its slot's
            // own record, in the region's record half, REC_DIST above the
            // copy, in anonymous read-write memory.
            mapped_slots += 1;
            let handed_out = statictramp::closure::stats().1;
            let slot = statictramp::table::Slot::from_code(code, handed_out).expect("our slot");
            if slot.record() != cl as usize {
                errors.push(format!(
                    "closure {i}: record {cl:p} is not its slot's record"
                ));
            }
            match find(&maps, cl as usize) {
                Some(d) if d.read && d.write && !d.exec && d.inode == 0 => {}
                other => errors.push(format!("closure {i}: record of {code:#x} in {other:?}")),
            }
        }
    }

    // 3. No writable alias: no writable mapping shows bytes of a file
    //    range that is mapped executable.
    for x in maps.iter().filter(|m| m.exec && m.inode != 0) {
        for w in maps.iter().filter(|m| m.write) {
            if x.same_file_overlap(w) {
                errors.push(format!(
                    "writable alias of executable file range:\n  {}\n  {}",
                    x.line, w.line
                ));
            }
        }
    }
    // ... and descriptors on the code's files are read-only, memfds sealed.
    check_template_fds(&exe, &mut errors);

    assert!(
        errors.is_empty(),
        "{when}: {} W^X violations:\n{}\n--- maps ---\n{}",
        errors.len(),
        errors.join("\n"),
        maps.iter()
            .map(|m| m.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    if std::env::var_os("WX_DUMP").is_some() {
        println!(
            "{}",
            maps.iter()
                .map(|m| m.line.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    println!(
        "{when}: {} closures, {} in mapped copies, code in {} executable mappings, {} VMAs",
        batch.code.len(),
        mapped_slots,
        code_maps.len(),
        maps.len()
    );
    code_maps.len()
}

/// Descriptors this process holds on the image are read-only; template
/// memfds (always O_RDWR, as memfd_create makes them) are sealed against
/// writing, so no descriptor can change mapped code.
fn check_template_fds(image: &str, errors: &mut Vec<String>) {
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let exe = exe.to_string_lossy();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let fd: i32 = e.file_name().to_string_lossy().parse().unwrap();
        if target.starts_with(MEMFD_NAME) {
            let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
            let need = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK;
            if seals < 0 || seals & need != need {
                errors.push(format!(
                    "template memfd fd {fd} is not sealed against writing (seals {seals:#x})"
                ));
            }
        } else if target == image || target == exe {
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags >= 0 && flags & libc::O_ACCMODE != libc::O_RDONLY {
                errors.push(format!(
                    "fd {fd} on {target} is open for writing (flags {flags:#o})"
                ));
            }
        }
    }
}

#[test]
fn no_writable_executable_memory_with_mapped_pools() {
    let _g = serial();
    let first = Batch::new(1000);
    first.check_sample();
    check_wx(&first, "in-image pool only");

    // Enough for the in-image pool plus three mapped template copies.
    let n = 2 * statictramp::layout::TEMPLATE_SLOTS + 5000;
    let t = std::time::Instant::now();
    let batch = Batch::new(n);
    println!("allocated and prepared {n} closures in {:?}", t.elapsed());
    batch.check_sample();
    first.check_sample();
    let code_maps = check_wx(&batch, "70 536 closures");
    // With the first 1000, these need the in-image pool plus at least three
    // mapped copies.
    assert!(
        code_maps >= 4,
        "expected code in the image and >= 3 mapped copies, got {code_maps} mappings"
    );
    check_wx(&first, "first 1000 after growth");

    // Slots of mapped copies are used after free, too.
    drop(first);
    let again = Batch::new(2000);
    again.check_sample();
    check_wx(&again, "after free and reuse");
}

#[test]
fn owns_code_live_freed_and_foreign() {
    let _g = serial();
    let b = Batch::new(IMAGE_SLOTS + 3000);
    let owns = |p: usize| capi::statictramp_owns_code(p as *const c_void);
    for i in [0, 1, IMAGE_SLOTS - 1, IMAGE_SLOTS, IMAGE_SLOTS + 2999] {
        let code = b.code[i] as usize;
        assert_eq!(owns(code), 1, "live closure {i}");
        for off in [1, 4, 8, 15] {
            assert_eq!(owns(code + off), 0, "closure {i} code + {off}");
        }
        assert_eq!(
            owns(b.cl[i] as usize),
            0,
            "record of closure {i} is not code"
        );
        assert_eq!(
            owns(code + REC_DIST),
            0,
            "closure {i} code + REC_DIST is not code"
        );
    }
    // The slot after the last one handed out.
    let last = *b.code.iter().max().unwrap() as usize;
    assert_eq!(owns(last + 16), 0, "slot never handed out");
    // Foreign addresses.
    let local = 0u64;
    let heap = Box::new(0u64);
    for (what, p) in [
        ("NULL", 0usize),
        ("1", 1),
        ("stack", &raw const local as usize),
        (
            "a function",
            owns_code_live_freed_and_foreign as *const () as usize,
        ),
        (
            "ffi_closure_alloc",
            capi::ffi_closure_alloc as *const () as usize,
        ),
        ("heap", &raw const *heap as usize),
        ("max", usize::MAX),
        ("max - 15", usize::MAX - 15),
    ] {
        assert_eq!(owns(p), 0, "{what}: {p:#x}");
    }
    // Freed closures are not owned; reallocated slots are again.
    let (i_img, i_map) = (5, IMAGE_SLOTS + 10);
    let (cl_img, code_img) = (b.cl[i_img], b.code[i_img]);
    let (cl_map, code_map) = (b.cl[i_map], b.code[i_map]);
    let mut b = b;
    b.cl.retain(|&c| c != cl_img && c != cl_map);
    unsafe {
        free(cl_img);
        free(cl_map);
    }
    assert_eq!(owns(code_img as usize), 0, "freed image slot");
    assert_eq!(owns(code_map as usize), 0, "freed mapped slot");
    let (cl2, code2) = alloc(0).unwrap();
    let (cl3, code3) = alloc(0).unwrap();
    // Freed slots are quarantined, not reused at once: the stale code
    // pointers keep trapping.
    let fresh: BTreeSet<usize> = [code2 as usize, code3 as usize].into();
    let stale: BTreeSet<usize> = [code_img as usize, code_map as usize].into();
    assert!(fresh.is_disjoint(&stale), "freed slots reused at once");
    assert_eq!(owns(code_img as usize), 0, "quarantined image slot");
    assert_eq!(owns(code_map as usize), 0, "quarantined mapped slot");
    assert_eq!(owns(code2 as usize), 1, "reallocated slot (unprepared)");
    assert_eq!(owns(code3 as usize), 1, "reallocated slot (unprepared)");
    unsafe {
        free(cl2);
        free(cl3);
    }
    assert_eq!(owns(code2 as usize), 0);
    // Foreign closure memory (classic trampoline) is not statictramp's code.
    let page = unsafe {
        libc::mmap(
            null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    unsafe {
        assert_eq!(prep(page, cif_u64_u64(), Some(ud_plus_x), ud(1), page), 0);
        assert_eq!(
            libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_EXEC),
            0
        );
        assert_eq!(call_u64(page, 1), 2);
        assert_eq!(owns(page as usize), 0, "foreign closure memory");
        libc::munmap(page, 4096);
    }
    b.check_sample();
}

#[test]
fn code_pages_when_started_through_the_dynamic_loader() {
    // `ld-linux-x86-64.so.2 ./program` is a supported way to run a
    // program; then /proc/self/exe is the loader, not the file that holds
    // statictramp's template. Mapped pools must still work (from the right
    // file or the sealed memfd) and keep W^X.
    if is_child("via_loader") {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        println!("REPORT child: /proc/self/exe = {}", exe.display());
        let b = Batch::new(IMAGE_SLOTS + 2000);
        b.check_sample();
        check_wx(&b, "started through the dynamic loader");
        println!(
            "REPORT child: template source {:?}",
            statictramp::template_source()
        );
        return;
    }
    let loader = dynamic_loader();
    let out = run_child_via(
        Some(&loader),
        // The default source choice, whatever the environment asks.
        &[("STATICTRAMP_TEMPLATE", None)],
        "code_pages_when_started_through_the_dynamic_loader",
        "via_loader",
        std::time::Duration::from_secs(60),
    );
    for line in out.reports() {
        println!("{line}");
    }
    assert_ne!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "child died of SIGBUS once the in-image pool was used up (a template copy mapped beyond the end of its file?)\n{}",
        out.describe()
    );
    assert_child_passed(&out);
}

#[test]
fn no_writable_executable_memory_memfd_source() {
    // The same checks with the template copies mapped from the sealed memfd.
    if is_child("memfd_source") {
        // Enough for three template copies.
        let b = Batch::new(IMAGE_SLOTS + 2 * statictramp::layout::TEMPLATE_SLOTS + 1000);
        b.check_sample();
        let maps = maps();
        let memfd_code = maps
            .iter()
            .filter(|m| m.exec && m.path.starts_with(MEMFD_NAME))
            .count();
        assert!(
            memfd_code >= 3,
            "expected >= 3 executable memfd copies, found {memfd_code}"
        );
        check_wx(&b, "memfd source");
        assert_eq!(
            statictramp::template_source(),
            Some(statictramp::TemplateSource::Memfd)
        );
        println!("REPORT child: {memfd_code} executable memfd copies");
        return;
    }
    let out = run_child_via(
        None,
        &[("STATICTRAMP_TEMPLATE", Some("memfd"))],
        "no_writable_executable_memory_memfd_source",
        "memfd_source",
        std::time::Duration::from_secs(60),
    );
    assert_child_passed(&out);
}
