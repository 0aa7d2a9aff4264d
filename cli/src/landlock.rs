//! Strict mode's third layer: a Landlock ruleset that makes nothing under
//! `/proc` writable.
//!
//! A write to `/proc/<pid>/mem` (the process's own or a child's) goes
//! through the kernel's `FOLL_FORCE` path, which writes into read-only
//! pages: it rewrites a library's code in place, and neither MDWE nor a
//! seccomp filter sees it (the filter sees only `openat` and a path it
//! cannot read). Landlock can refuse the `open` itself.
//!
//! Landlock rules *grant* rights beneath a directory; what a ruleset
//! handles and no rule grants is refused. The ruleset handles only
//! `WRITE_FILE` (opening an existing file for writing) and grants it
//! beneath every top-level directory except `/proc`, so every ordinary
//! write keeps working (directories mounted beneath those, too: Landlock
//! follows the path across mounts) and nothing under `/proc` can be opened
//! for writing. Kernel interfaces reached through other paths (`/dev`,
//! `/sys`) keep their own permission checks. Pipes, sockets and other
//! files with no path are outside Landlock's reach and unaffected.
//!
//! What this costs (docs/design.md, "Strict mode: what it cannot stop"):
//! writes to `/proc/self/comm` of another thread (glibc's
//! `pthread_setname_np` for a thread other than the caller),
//! `/proc/self/oom_score_adj`, `/proc/sys` and user-namespace maps fail
//! with `EACCES`; a top-level directory made after arming is not
//! writable.
//!
//! Landlock needs Linux 5.13 (ABI 1) and the LSM enabled; without it
//! strict mode still arms and says what stays open.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// linux/landlock.h.
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr` is packed in the kernel's header.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The directory whose files stay unwritable.
const PROC: &str = "proc";

fn last_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// The Landlock ABI version, or why there is none.
pub fn abi_version() -> Result<i64, String> {
    // SAFETY: with a null attribute, size 0 and the VERSION flag, the call
    // only returns the ABI version; it reads and writes no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no Landlock (needs Linux 5.13+)".to_string(),
            Some(libc::EOPNOTSUPP) => {
                "Landlock is not enabled (add it to the lsm= boot parameter)".to_string()
            }
            _ => format!("landlock_create_ruleset: {e}"),
        });
    }
    Ok(v)
}

/// Grants `WRITE_FILE` beneath `dir` in ruleset `rs`.
fn grant_write(rs: &OwnedFd, dir: &std::path::Path) -> Result<(), String> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a NUL-terminated path; O_PATH opens no file content.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_error(&format!("open {}", dir.display())));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let attr = PathBeneathAttr {
        allowed_access: LANDLOCK_ACCESS_FS_WRITE_FILE,
        parent_fd: fd.as_raw_fd(),
    };
    // SAFETY: `attr` is a valid landlock_path_beneath_attr that outlives
    // the call; `rs` is a ruleset descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            rs.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r < 0 {
        return Err(last_error(&format!("landlock_add_rule {}", dir.display())));
    }
    Ok(())
}

/// Restricts this process and everything it executes: no file under
/// `/proc` can be opened for writing. Needs `no_new_privs` (set here).
/// `Err` says why Landlock is not in place; nothing has changed then.
pub fn arm() -> Result<(), String> {
    abi_version()?;
    let attr = RulesetAttr {
        handled_access_fs: LANDLOCK_ACCESS_FS_WRITE_FILE,
    };
    // SAFETY: `attr` is a valid landlock_ruleset_attr of the size passed.
    let rs = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if rs < 0 {
        return Err(last_error("landlock_create_ruleset"));
    }
    // SAFETY: `rs` is the ruleset descriptor just made, owned by nothing
    // else.
    let rs = unsafe { OwnedFd::from_raw_fd(rs as libc::c_int) };
    let entries = std::fs::read_dir("/").map_err(|e| format!("read /: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read /: {e}"))?;
        // A symlink at the top (bin -> usr/bin) leads into a directory
        // that gets its own rule; only real directories are granted.
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && entry.file_name().as_bytes() != PROC.as_bytes() {
            grant_write(&rs, &entry.path())?;
        }
    }
    // SAFETY: PR_SET_NO_NEW_PRIVS takes a flag and no pointers; it only
    // stops later execve from gaining privileges (the seccomp layer sets
    // it too).
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(last_error("PR_SET_NO_NEW_PRIVS"));
    }
    // SAFETY: `rs` is a ruleset descriptor; the call reads no memory.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, rs.as_raw_fd(), 0u32) } < 0 {
        return Err(last_error("landlock_restrict_self"));
    }
    Ok(())
}
