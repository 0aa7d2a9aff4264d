//! Where mapped trampoline code comes from: the library image by default, a
//! sealed memfd when asked (or when the image cannot be mapped). Either way
//! the code is mapped read+execute with no writable alias, and runs.
use statictramp::{Closure, DEFAULT_ABI, TemplateSource, types};
use std::os::raw::c_void;
use std::path::Path;
use std::process::Command;

const CHILD: &str = "STATICTRAMP_TEST_TEMPLATE_CHILD";
/// More than the in-image pool (1024 slots), so mapped copies are needed.
const N: usize = 20_000;

/// Allocates N closures, calls each, and returns the source of the copies.
fn exercise() -> TemplateSource {
    let closures: Vec<Closure> = (0..N)
        .map(|i| {
            Closure::new(
                DEFAULT_ABI,
                vec![types::S64],
                types::S64,
                move |args, ret| {
                    ret.set(args.get::<i64>(0).unwrap() * 3 + i as i64).unwrap();
                },
            )
            .unwrap()
        })
        .collect();
    for (i, c) in closures.iter().enumerate() {
        // SAFETY: long long(long long), C convention.
        let f = unsafe {
            std::mem::transmute::<*const c_void, extern "C" fn(i64) -> i64>(c.code_ptr())
        };
        assert_eq!(f(5), 15 + i as i64);
    }
    statictramp::template_source().expect("mapped copies exist")
}

/// Mappings of /proc/self/maps whose path contains `needle`: (perms, path).
fn maps_matching(needle: &str) -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[1].to_string(),
                f.get(5..).map(|p| p.join(" ")).unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn copies_come_from_the_image_by_default() {
    if std::env::var_os(CHILD).is_some() {
        return; // this process is the memfd child; its test is the other one
    }
    let src = exercise();
    assert!(
        matches!(src, TemplateSource::Image { offset } if offset % statictramp::page_size() as u64 == 0),
        "{src:?}"
    );
    assert!(maps_matching("memfd:statictramp-template").is_empty());
}

#[test]
fn memfd_copies_are_sealed_and_never_writable() {
    if std::env::var_os(CHILD).is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "memfd_copies_are_sealed_and_never_writable",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("STATICTRAMP_TEMPLATE", "memfd")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{text}");
        assert!(
            text.contains("memfd child ok"),
            "child did not run the check:\n{text}"
        );
        return;
    }
    assert_eq!(exercise(), TemplateSource::Memfd);
    let maps = maps_matching("memfd:statictramp-template");
    assert!(!maps.is_empty(), "no memfd mapping");
    for (perms, path) in &maps {
        assert_eq!(perms, "r-xp", "memfd mapped as {perms} ({path})");
    }
    println!(
        "memfd child ok: {} code mappings from the sealed memfd",
        maps.len()
    );
}

const TAKEOVER_CHILD: &str = "STATICTRAMP_TEST_TAKEOVER_CHILD";

/// The descriptors open on the file behind the mapping that holds `addr`
/// (same device and inode as in /proc/self/maps).
fn descriptors_behind(addr: usize) -> Vec<i32> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| {
            let (lo, hi) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            let lo = usize::from_str_radix(lo, 16).unwrap();
            let hi = usize::from_str_radix(hi, 16).unwrap();
            (lo..hi).contains(&addr)
        })
        .unwrap_or_else(|| panic!("no mapping holds {addr:#x}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    let (major, minor) = f[3].split_once(':').unwrap();
    let dev = libc::makedev(
        u32::from_str_radix(major, 16).unwrap(),
        u32::from_str_radix(minor, 16).unwrap(),
    );
    let ino: u64 = f[4].parse().unwrap();
    (3..4096)
        .filter(|&fd| {
            // SAFETY: a zeroed stat is a valid value; fstat only writes into
            // it, and any descriptor number may be asked about.
            let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
            unsafe { libc::fstat64(fd, &mut st) == 0 && st.st_dev == dev && st.st_ino == ino }
        })
        .collect()
}

/// Closures that return their argument plus their index from `first` on.
fn closures(first: usize, n: usize) -> Vec<Closure> {
    (first..first + n)
        .map(|i| {
            Closure::new(
                DEFAULT_ABI,
                vec![types::S64],
                types::S64,
                move |args, ret| {
                    ret.set(args.get::<i64>(0).unwrap() + i as i64).unwrap();
                },
            )
            .unwrap()
        })
        .collect()
}

fn call_all(cs: &[Closure], first: usize) {
    for (i, c) in cs.iter().enumerate() {
        // SAFETY: long long(long long), C convention.
        let f = unsafe {
            std::mem::transmute::<*const c_void, extern "C" fn(i64) -> i64>(c.code_ptr())
        };
        assert_eq!(f(5), 5 + (first + i) as i64, "closure {}", first + i);
    }
}

/// A program that closes the descriptor copies come from and opens a file
/// of its own on that number, between two template copies, keeps its file:
/// the library forgets the number (never closes it) and maps the next copy
/// from the image opened again, or from a new memfd.
#[test]
fn a_descriptor_the_program_reopened_stays_the_programs() {
    let Some(mode) = std::env::var_os(TAKEOVER_CHILD) else {
        for mode in ["image", "memfd"] {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args([
                "--exact",
                "a_descriptor_the_program_reopened_stays_the_programs",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(TAKEOVER_CHILD, mode)
            .env_remove(CHILD)
            .env_remove("STATICTRAMP_TEMPLATE");
            if mode == "memfd" {
                cmd.env("STATICTRAMP_TEMPLATE", "memfd");
            }
            let out = cmd.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{mode} child failed:\n{text}");
            assert!(
                text.contains("takeover child ok"),
                "{mode} child did not run the check:\n{text}"
            );
        }
        return;
    };
    let mode = mode.into_string().unwrap();
    let memfd = mode == "memfd";
    let first = closures(0, N);
    call_all(&first, 0);
    let src1 = statictramp::template_source().expect("mapped copies exist");
    assert_eq!(src1 == TemplateSource::Memfd, memfd, "{src1:?}");
    let ours = descriptors_behind(first[N - 1].code_ptr() as usize);
    assert_eq!(ours.len(), 1, "descriptors on the copies' file: {ours:?}");
    let fd = ours[0];

    // The program closes it and opens a file of its own on the same number:
    // long enough (sparse) that mapping it at the template's offset works,
    // so that taking it for ours would map it, see wrong bytes and close it.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("takeover.{}.{mode}", std::process::id()));
    let marker = b"the program's own file";
    std::fs::write(&path, marker).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.set_len(1 << 30).unwrap();
    std::fs::remove_file(&path).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is the library's descriptor, closed and replaced by one
    // on our file as a program that closes all it inherited would do; the
    // test checks that the library copes.
    unsafe {
        libc::close(fd);
        assert_eq!(libc::dup2(file.as_raw_fd(), fd), fd);
    }
    // SAFETY: a zeroed stat is a valid value; fstat writes into it.
    let mut mine: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::fstat(fd, &mut mine) }, 0);

    // More than one template copy holds: at least one more is mapped.
    let more = closures(N, statictramp::layout::TEMPLATE_SLOTS + 1000);
    call_all(&more, N);
    call_all(&first, 0);
    let src2 = statictramp::template_source().unwrap();
    assert_eq!(src2, src1, "the second copy's source");

    // SAFETY: as above.
    let mut now: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::fstat(fd, &mut now) },
        0,
        "the program's descriptor {fd} was closed"
    );
    assert_eq!(
        (now.st_dev, now.st_ino),
        (mine.st_dev, mine.st_ino),
        "descriptor {fd} is no longer the program's file"
    );
    let mut back = [0u8; 22];
    // SAFETY: reading into a local buffer of that length.
    let n = unsafe { libc::pread(fd, back.as_mut_ptr().cast(), back.len(), 0) };
    assert_eq!((n, &back[..]), (marker.len() as isize, &marker[..]));
    println!("takeover child ok ({mode}: {src1:?}, descriptor {fd} kept)");
}

const LOADER_CHILD: &str = "STATICTRAMP_TEST_LOADER_CHILD";

/// The dynamic loader this process was started with: the file mapped at
/// AT_BASE.
fn dynamic_loader() -> String {
    // SAFETY: getauxval has no preconditions.
    let base = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
    assert_ne!(base, 0, "no dynamic loader (static binary?)");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| l.starts_with(&format!("{base:x}-")))
        .expect("AT_BASE is mapped");
    line.split_whitespace().nth(5).unwrap().to_string()
}

/// Started as `ld.so ./program` (the kernel runs the loader, so
/// /proc/self/exe is the loader, and the loader knows the program by a
/// relative name) and moved to another directory before the first template
/// copy, a program still maps the copies from its own file. Needs the
/// load-time constructor, which only the C library's `capi` feature links
/// (`cargo test --workspace` turns it on).
#[test]
#[cfg_attr(
    not(feature = "capi"),
    ignore = "needs the load-time constructor: run with the capi feature (cargo test --workspace)"
)]
fn copies_come_from_the_program_started_through_the_loader() {
    let Some(loader) = std::env::var_os(LOADER_CHILD) else {
        let exe = std::env::current_exe().unwrap();
        let loader = dynamic_loader();
        let out = Command::new(&loader)
            .arg(Path::new(".").join(exe.file_name().unwrap()))
            .args([
                "--exact",
                "copies_come_from_the_program_started_through_the_loader",
                "--nocapture",
                "--test-threads=1",
            ])
            .current_dir(exe.parent().unwrap())
            .env(LOADER_CHILD, &loader)
            .env_remove(CHILD)
            .env_remove(TAKEOVER_CHILD)
            .env_remove("STATICTRAMP_TEMPLATE")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{text}");
        assert!(
            text.contains("loader child ok"),
            "child did not run the check:\n{text}"
        );
        return;
    };
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    assert_eq!(exe, loader, "not started through the loader");
    std::env::set_current_dir("/").unwrap();
    let src = exercise();
    assert!(matches!(src, TemplateSource::Image { .. }), "{src:?}");
    println!("loader child ok: {src:?}");
}
