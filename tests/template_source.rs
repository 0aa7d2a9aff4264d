//! Where mapped trampoline code comes from: the library image by default, a
//! sealed memfd when asked (or when the image cannot be mapped). Either way
//! the code is mapped read+execute with no writable alias, and runs.
use statictramp::{Abi, Closure, TemplateSource, Type};
use std::os::raw::c_void;
use std::process::Command;

const CHILD: &str = "STATICTRAMP_TEST_TEMPLATE_CHILD";
/// More than the in-image pool (1024 slots), so mapped copies are needed.
const N: usize = 20_000;

/// Allocates N closures, calls each, and returns the source of the copies.
fn exercise() -> TemplateSource {
    let closures: Vec<Closure> = (0..N)
        .map(|i| {
            Closure::new(Abi::SysV64, vec![Type::S64], Type::S64, move |args, ret| {
                ret.set(args.get::<i64>(0).unwrap() * 3 + i as i64).unwrap();
            })
            .unwrap()
        })
        .collect();
    for (i, c) in closures.iter().enumerate() {
        // SAFETY: long(long), System V.
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
