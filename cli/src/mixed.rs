//! One `LD_PRELOAD` for a process tree of both word sizes.
//!
//! `run` picks the library of CMD's ELF class. When CMD starts programs of
//! the other class (a 64-bit shell running a 32-bit game, a build running
//! 32-bit tests), a plain path in `LD_PRELOAD` reaches only one class: the
//! other class's ld.so prints `wrong ELF class ... ignored` on every exec
//! and loads nothing. ld.so expands `$LIB` in `LD_PRELOAD` to its own
//! library directory name (Debian: `lib/x86_64-linux-gnu` and
//! `lib/i386-linux-gnu`; Fedora: `lib64` and `lib`; Arch: `lib` and
//! `lib32`), so
//!
//! ```text
//! LD_PRELOAD=<dir>/$LIB/libstatictramp-preload.so
//! <dir>/<$LIB of 64-bit>/libstatictramp-preload.so -> the 64-bit library
//! <dir>/<$LIB of 32-bit>/libstatictramp-preload.so -> the 32-bit library
//! ```
//!
//! gives every program the library of its class, silently. What `$LIB`
//! expands to is learnt from each class's ld.so (`ld.so --list LIB` with
//! `LD_PRELOAD=<probe>/$LIB/...` over symlinks at every known name: the
//! line for the preload says which one it took; `--list` runs no code of
//! the library). `<dir>` is a per-user directory (`$XDG_RUNTIME_DIR/
//! statictramp`, else `$TMPDIR/statictramp-<uid>`) holding one entry per
//! pair of libraries, made once and reused.

use statictramp_locate::elf::Target;
use statictramp_locate::library::PRELOAD;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The names glibc's `$LIB` has on the distributions we know, for the
/// architectures we ship. A probe makes a symlink at each; the one ld.so
/// takes is its `$LIB`.
const LIB_NAMES: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "lib/i386-linux-gnu",
    "lib/aarch64-linux-gnu",
    "lib/arm-linux-gnueabihf",
    "lib64",
    "lib32",
    "libx32",
    "lib",
];

/// The other word size of the same machine family, whose programs CMD
/// may start: x86_64 and i386, aarch64 and arm.
pub fn companion(t: Target) -> Option<Target> {
    let other = match (t.bits, t.machine) {
        (64, 62) => (32, 3),
        (32, 3) => (64, 62),
        (64, 183) => (32, 40),
        (32, 40) => (64, 183),
        _ => return None,
    };
    Some(Target {
        bits: other.0,
        machine: other.1,
    })
}

/// The dynamic loader of a class, at the path its psABI fixes (every
/// program of the class names it as PT_INTERP).
pub fn loader(t: Target) -> Option<&'static Path> {
    let p = match (t.bits, t.machine) {
        (64, 62) => "/lib64/ld-linux-x86-64.so.2",
        (32, 3) => "/lib/ld-linux.so.2",
        (64, 183) => "/lib/ld-linux-aarch64.so.1",
        (32, 40) => "/lib/ld-linux-armhf.so.3",
        _ => return None,
    };
    Some(Path::new(p))
}

/// Why the process tree gets only CMD's class.
#[derive(Debug)]
pub struct NotMixed(pub String);

/// The per-user directory for the `$LIB` trees: made if missing, and
/// refused unless it is a real directory owned by this user that nobody
/// else can write.
fn state_dir() -> Result<PathBuf, NotMixed> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() && d.is_dir() => d.join("statictramp"),
        _ => std::env::temp_dir().join(format!("statictramp-{uid}")),
    };
    match std::fs::create_dir(&dir) {
        Ok(()) => std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| NotMixed(format!("cannot set the mode of {}: {e}", dir.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(NotMixed(format!("cannot create {}: {e}", dir.display()))),
    }
    let m = std::fs::symlink_metadata(&dir)
        .map_err(|e| NotMixed(format!("cannot stat {}: {e}", dir.display())))?;
    if !m.file_type().is_dir() || m.uid() != uid || m.mode() & 0o022 != 0 {
        return Err(NotMixed(format!(
            "{} is not a directory of this user that only it can write",
            dir.display()
        )));
    }
    Ok(dir)
}

/// FNV-1a of the two library paths: the name of their `$LIB` tree.
fn tree_name(libs: &[&Path; 2]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in libs {
        for &b in p.as_os_str().as_encoded_bytes().iter().chain(&[0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("lib-{h:016x}")
}

/// What `$LIB` expands to for the ld.so of `t`, learnt by preloading `lib`
/// (a library of that class) through symlinks at every name of
/// [`LIB_NAMES`] under `scratch` in `ld.so --list` (which loads but runs
/// nothing).
fn lib_expansion(t: Target, lib: &Path, scratch: &Path) -> Result<String, NotMixed> {
    let ld = loader(t).filter(|l| l.exists()).ok_or_else(|| {
        NotMixed(format!(
            "no {t} dynamic loader here (so no {t} program can run)"
        ))
    })?;
    for name in LIB_NAMES {
        let d = scratch.join(name);
        std::fs::create_dir_all(&d)
            .and_then(|()| std::os::unix::fs::symlink(lib, d.join(PRELOAD)))
            .map_err(|e| NotMixed(format!("cannot make {}: {e}", d.display())))?;
    }
    let asked = scratch.join("$LIB").join(PRELOAD);
    let out = Command::new(ld)
        .arg("--list")
        .arg(lib)
        .env("LD_PRELOAD", &asked)
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NotMixed(format!("cannot run {}: {e}", ld.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_list(
        &stdout,
        &asked.to_string_lossy(),
        &scratch.to_string_lossy(),
    )
    .ok_or_else(|| {
        NotMixed(format!(
            "the {t} ld.so ({}) expands $LIB to none of {LIB_NAMES:?}: {}",
            ld.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// Finds `<asked> => <scratch>/<X>/libstatictramp-preload.so (...)` in
/// `ld.so --list` output and returns X.
fn parse_list(stdout: &str, asked: &str, scratch: &str) -> Option<String> {
    stdout.lines().find_map(|line| {
        let (name, rest) = line.trim().split_once(" => ")?;
        if name != asked {
            return None;
        }
        let path = rest.split(" (").next()?;
        let x = path
            .strip_prefix(scratch)?
            .strip_prefix('/')?
            .strip_suffix(PRELOAD)?
            .strip_suffix('/')?;
        LIB_NAMES.contains(&x).then(|| x.to_string())
    })
}

/// The `LD_PRELOAD` entry that gives programs of both classes their
/// library: `<tree>/$LIB/libstatictramp-preload.so`, the tree made on
/// first use for this pair of (absolute) library paths.
pub fn preload_entry(libs: [(Target, &Path); 2]) -> Result<OsString, NotMixed> {
    let state = state_dir()?;
    let tree = state.join(tree_name(&[libs[0].1, libs[1].1]));
    let entry = tree.join("$LIB").join(PRELOAD);
    let text = entry.to_string_lossy();
    if text.contains([' ', ':', '\t', '\n']) {
        return Err(NotMixed(format!(
            "{} contains a space or a colon, which LD_PRELOAD cannot express",
            tree.display()
        )));
    }
    let complete = |t: &Path| t.join("complete").is_file();
    if complete(&tree) {
        return Ok(entry.into_os_string());
    }
    // Build it beside, then rename: a concurrent run sees none or all.
    let work = state.join(format!(
        "{}.tmp-{}",
        tree.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&work);
    let built = (|| {
        let mut names = Vec::new();
        for (i, (t, lib)) in libs.iter().enumerate() {
            let scratch = work.join(format!("probe{i}"));
            names.push(lib_expansion(*t, lib, &scratch)?);
            let _ = std::fs::remove_dir_all(&scratch);
        }
        if names[0] == names[1] {
            return Err(NotMixed(format!(
                "$LIB is {} for both word sizes",
                names[0]
            )));
        }
        for ((_, lib), name) in libs.iter().zip(&names) {
            let d = work.join(name);
            std::fs::create_dir_all(&d)
                .and_then(|()| std::os::unix::fs::symlink(lib, d.join(PRELOAD)))
                .map_err(|e| NotMixed(format!("cannot make {}: {e}", d.display())))?;
        }
        std::fs::write(work.join("complete"), names.join("\n") + "\n")
            .map_err(|e| NotMixed(format!("cannot write in {}: {e}", work.display())))
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&work);
        return Err(e);
    }
    if std::fs::rename(&work, &tree).is_err() {
        // Another run made it first (rename does not replace a non-empty
        // directory); theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&work);
        if !complete(&tree) {
            return Err(NotMixed(format!("cannot create {}", tree.display())));
        }
    }
    Ok(entry.into_os_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companions_pair_up() {
        let x64 = Target {
            bits: 64,
            machine: 62,
        };
        let i386 = companion(x64).unwrap();
        assert_eq!((i386.bits, i386.machine), (32, 3));
        assert_eq!(companion(i386), Some(x64));
        assert!(loader(i386).is_some() && loader(x64).is_some());
        assert_eq!(
            companion(Target {
                bits: 64,
                machine: 243
            }),
            None
        );
    }

    #[test]
    fn parses_the_preload_line_of_ld_so_list() {
        let scratch = "/run/user/1/statictramp/lib-1.tmp-9/probe1";
        let asked = format!("{scratch}/$LIB/{PRELOAD}");
        let out = format!(
            "\tlinux-gate.so.1 (0xf7f1e000)\n\
             \t{asked} => {scratch}/lib/i386-linux-gnu/{PRELOAD} (0xf7cd6000)\n\
             \tlibc.so.6 => /lib/i386-linux-gnu/libc.so.6 (0xf7a00000)\n"
        );
        assert_eq!(
            parse_list(&out, &asked, scratch).as_deref(),
            Some("lib/i386-linux-gnu")
        );
        let fedora = format!("\t{asked} => {scratch}/lib64/{PRELOAD} (0x7f00)\n");
        assert_eq!(
            parse_list(&fedora, &asked, scratch).as_deref(),
            Some("lib64")
        );
        // Not preloaded (no line), or resolved outside the probe: nothing.
        assert_eq!(
            parse_list("\tlibc.so.6 => /x (0x1)\n", &asked, scratch),
            None
        );
        let outside = format!("\t{asked} => /elsewhere/{PRELOAD} (0x1)\n");
        assert_eq!(parse_list(&outside, &asked, scratch), None);
    }

    #[test]
    fn tree_names_differ_per_pair() {
        let a = tree_name(&[Path::new("/a/64.so"), Path::new("/a/32.so")]);
        let b = tree_name(&[Path::new("/a/64.so"), Path::new("/b/32.so")]);
        assert_ne!(a, b);
        assert_eq!(
            a,
            tree_name(&[Path::new("/a/64.so"), Path::new("/a/32.so")])
        );
    }
}
