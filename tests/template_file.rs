//! Which file the preload library maps its trampoline copies from, and that
//! it keeps its hands off the program's descriptors
//! (src/map/source.rs, docs/design.md "Where copies come from").
//!
//! compat/c/template_check.c, linked against the system libffi and run with
//! the preload library in LD_PRELOAD, allocates enough closures for two
//! template copies and reports the file behind each (/proc/self/maps). Here
//! it runs with a copy of the library in a directory of its own, so that
//! the library's mode and the name it is loaded by are the test's:
//! - the program closes every descriptor above 2 (close_range) between the
//!   two copies and opens a file of its own on statictramp's number: that
//!   file must stay open and untouched, and the second copy must come from
//!   the library again (image) or from a new memfd (memfd);
//! - a library that its group or others may write is never mapped: copies
//!   come from the sealed memfd; the same library with mode 0755 is mapped;
//! - a library preloaded by a relative name, with a chdir before the first
//!   copy, is mapped from the file the loader loaded, not from the file the
//!   same name leads to after the chdir.
//!
//! Needs `STATICTRAMP_PRELOAD` (scripts/test.sh sets it to the library
//! scripts/build-preload made), a C compiler and libffi-dev; fails loudly
//! without them.

use statictramp_testkit::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const MEMFD: &str = "/memfd:statictramp-template";
const LIB_NAME: &str = "libstatictramp-preload.so";

/// compat/c/template_check.c, built once per test run.
fn template_check() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        build_c(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "template_check",
            &["-O1", "-g", "-Wall", "-Wextra"],
            &["-lffi"],
        )
    })
}

/// An empty directory of this test's own under the target's tmp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("template_file.{}.{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the preload library at `to`, with permission bits `mode`.
fn copy_library(to: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(preload(), to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
    let meta = std::fs::metadata(to).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, mode, "{}", to.display());
    to.canonicalize().unwrap()
}

/// What one run of template_check reported.
#[derive(Debug)]
struct Run {
    /// Path of the mapping behind the first and the second template copy.
    source1: String,
    source2: String,
    /// `check` lines that failed, and how many there were.
    failed: Vec<String>,
    checks: usize,
    done: bool,
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Every check passed and the program finished.
    fn assert_ok(&self, min_checks: usize, how: &str) {
        assert!(
            self.success && self.done && self.failed.is_empty() && self.checks >= min_checks,
            "template_check {how}: success {}, {} checks, failed: {:#?}\nstdout:\n{}\nstderr:\n{}",
            self.success,
            self.checks,
            self.failed,
            self.stdout,
            self.stderr
        );
    }

    fn describe(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Runs template_check in `cwd` with LD_PRELOAD=`preload` (as given: may be
/// relative to `cwd`), `args`, and STATICTRAMP_TEMPLATE=memfd if `memfd`.
fn run(cwd: &Path, preload: &Path, args: &[&std::ffi::OsStr], memfd: bool) -> Run {
    let mut cmd = Command::new(template_check());
    cmd.current_dir(cwd)
        .args(args)
        .env("LD_PRELOAD", preload)
        .env_remove("LD_DEBUG")
        .env_remove("STATICTRAMP_TEMPLATE");
    if memfd {
        cmd.env("STATICTRAMP_TEMPLATE", "memfd");
    }
    let out = output(&mut cmd);
    let stdout = text(&out.stdout);
    let path_of = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            // "<dev> <inode> <path>"
            .and_then(|rest| rest.splitn(3, ' ').nth(2))
            .unwrap_or("")
            .to_string()
    };
    Run {
        source1: path_of("source1 "),
        source2: path_of("source2 "),
        failed: stdout
            .lines()
            .filter(|l| l.starts_with("check ") && !l.contains(" ok "))
            .map(str::to_string)
            .collect(),
        checks: stdout.lines().filter(|l| l.starts_with("check ")).count(),
        done: stdout.lines().any(|l| l.starts_with("done ")),
        success: out.status.success(),
        stderr: text(&out.stderr),
        stdout,
    }
}

/// A file of the program's own, with a recognisable start, and long enough
/// (sparse) that mapping it at the template's offset would not fault: a
/// library that took it for its own would map it, find the wrong bytes,
/// and close it.
fn programs_file(dir: &Path) -> PathBuf {
    let path = dir.join("programs-own-file");
    std::fs::write(&path, b"the program's own file, not statictramp's").unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    path
}

/// The program closes statictramp's descriptor and opens its own file on
/// that number between two template copies (`memfd`: copies from the memfd).
fn descriptor_taken_over(memfd: bool) -> Run {
    let dir = scratch(if memfd {
        "takeover-memfd"
    } else {
        "takeover-image"
    });
    let lib = copy_library(&dir.join(LIB_NAME), 0o755);
    let file = programs_file(&dir);
    let r = run(&dir, &lib, &["--steal".as_ref(), file.as_os_str()], memfd);
    r.assert_ok(5, "with the descriptor taken over");
    assert!(
        r.stdout.lines().any(|l| l.starts_with("ours ")),
        "statictramp's descriptor was not found, so nothing was taken over\n{}",
        r.describe()
    );
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[test]
fn a_descriptor_the_program_reopened_stays_the_programs_image() {
    let r = descriptor_taken_over(false);
    let lib = r.source1.clone();
    assert!(lib.ends_with(LIB_NAME), "{}", r.describe());
    // The library was opened again by its name, and it is the same file.
    assert_eq!(r.source2, lib, "{}", r.describe());
}

#[test]
fn a_descriptor_the_program_reopened_stays_the_programs_memfd() {
    let r = descriptor_taken_over(true);
    assert!(r.source1.starts_with(MEMFD), "{}", r.describe());
    assert!(r.source2.starts_with(MEMFD), "{}", r.describe());
}

#[test]
fn a_library_others_can_write_is_never_mapped() {
    let dir = scratch("modes");
    for (mode, trusted) in [(0o755, true), (0o775, false), (0o757, false)] {
        let lib = copy_library(&dir.join(format!("{mode:o}")).join(LIB_NAME), mode);
        let r = run(&dir, &lib, &[], false);
        r.assert_ok(1, &format!("with the library at mode {mode:o}"));
        let lib = lib.to_str().unwrap();
        for (n, source) in [(1, &r.source1), (2, &r.source2)] {
            if trusted {
                assert_eq!(source, lib, "mode {mode:o}, copy {n}\n{}", r.describe());
            } else {
                assert!(
                    source.starts_with(MEMFD),
                    "mode {mode:o}: copy {n} mapped from {source}, not the sealed memfd\n{}",
                    r.describe()
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_library_preloaded_by_a_relative_name_is_the_one_loaded() {
    // dir/lib/<lib> is preloaded as ./lib/<lib> from dir; the program then
    // moves to dir/elsewhere, where ./lib/<lib> is another copy (a file
    // with the same template, so only its path tells them apart).
    let dir = scratch("relative");
    let loaded = copy_library(&dir.join("lib").join(LIB_NAME), 0o755);
    let elsewhere = dir.join("elsewhere");
    let decoy = copy_library(&elsewhere.join("lib").join(LIB_NAME), 0o755);
    let relative = Path::new(".").join("lib").join(LIB_NAME);
    let r = run(
        &dir,
        &relative,
        &["--chdir".as_ref(), elsewhere.as_os_str()],
        false,
    );
    r.assert_ok(1, "preloaded by a relative name, after a chdir");
    let loaded = loaded.to_str().unwrap();
    assert_ne!(r.source1, decoy.to_str().unwrap(), "{}", r.describe());
    assert_eq!(r.source1, loaded, "{}", r.describe());
    assert_eq!(r.source2, loaded, "{}", r.describe());
    let _ = std::fs::remove_dir_all(&dir);
}
