//! Finding the preload library that `statictramp run` (and the benchmark)
//! puts in front of a command.

use crate::elf::{self, Target};
use std::fmt;
use std::path::{Path, PathBuf};

/// The library `scripts/build-preload` links: libffi's closure symbols with
/// libffi's symbol versions (LIBFFI_CLOSURE_8.0).
pub const PRELOAD: &str = "libstatictramp-preload.so";
/// Cargo's cdylib: the same symbols without versions (ld.so binds versioned
/// references to unversioned definitions, so it works, with a note).
pub const CDYLIB: &str = "libstatictramp.so";

/// A library found, and how.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    /// Where it came from (`--lib`, `$STATICTRAMP_LIB`, `beside the binary`, ...).
    pub how: String,
    /// Whether it carries libffi's symbol versions.
    pub versioned: bool,
}

/// Why no usable library was found.
#[derive(Debug)]
pub enum LibError {
    /// A path given explicitly does not exist or is not a library.
    Given {
        path: PathBuf,
        how: &'static str,
        why: String,
    },
    /// Nothing (for programs of `want`, when given) in the default places.
    NotFound {
        searched: Vec<PathBuf>,
        want: Option<Target>,
    },
    /// The library cannot be loaded into the command.
    Mismatch {
        lib: PathBuf,
        lib_target: Target,
        cmd: PathBuf,
        cmd_target: Target,
    },
    /// ld.so cannot name this path in LD_PRELOAD.
    BadPath(PathBuf),
}

impl fmt::Display for LibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LibError::Given { path, how, why } => {
                write!(f, "the library {} ({how}) {why}", path.display())
            }
            LibError::NotFound { searched, want } => {
                match want {
                    Some(t) => writeln!(
                        f,
                        "no statictramp preload library for {t} programs was found; looked for:"
                    )?,
                    None => writeln!(
                        f,
                        "the statictramp preload library was not found; looked for:"
                    )?,
                }
                for p in searched {
                    writeln!(f, "    {}", p.display())?;
                }
                write!(
                    f,
                    "build it with scripts/build-preload (for 32-bit x86 programs: \
                     scripts/build-preload --target i686-unknown-linux-gnu), \
                     or name it with --lib PATH or STATICTRAMP_LIB=PATH"
                )
            }
            LibError::Mismatch {
                lib,
                lib_target,
                cmd,
                cmd_target,
            } => write!(
                f,
                "{} is a {cmd_target} program but the library {} is {lib_target}: the dynamic \
                 loader would ignore it; use a statictramp built for {cmd_target} (--lib)",
                cmd.display(),
                lib.display()
            ),
            LibError::BadPath(p) => write!(
                f,
                "the library path {} contains a space or a colon, which LD_PRELOAD cannot express",
                p.display()
            ),
        }
    }
}

/// Checks that `path` is a loadable ELF shared object of some target.
fn validate(path: &Path, how: &'static str) -> Result<Target, LibError> {
    let given = |why: String| LibError::Given {
        path: path.to_path_buf(),
        how,
        why,
    };
    match elf::kind(path) {
        Ok(elf::Kind::Elf(t)) => Ok(t),
        Ok(_) => Err(given("is not an ELF file".into())),
        Err(e) => Err(given(format!("cannot be read: {e}"))),
    }
}

/// The default places, in order: beside this binary (a cargo target dir or
/// an install's bin/ with the library copied in), then an install's lib/;
/// then the places of the other word size this machine may run: an
/// install's lib32/ (or lib64/), and in a cargo target dir the output of
/// `scripts/build-preload --target i686-unknown-linux-gnu` beside this
/// binary's profile (`target/<triple>/<profile>/`).
fn default_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        v.push(dir.join(PRELOAD));
        v.push(dir.join("../lib/statictramp").join(PRELOAD));
        v.push(dir.join("../lib").join(PRELOAD));
        v.push(dir.join(CDYLIB));
        v.push(dir.join("../lib").join(CDYLIB));
        v.push(dir.join("../lib32/statictramp").join(PRELOAD));
        v.push(dir.join("../lib64/statictramp").join(PRELOAD));
        if let Some(profile) = dir.file_name() {
            for triple in ["i686-unknown-linux-gnu", "x86_64-unknown-linux-gnu"] {
                v.push(dir.join("..").join(triple).join(profile).join(PRELOAD));
            }
        }
    }
    v
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Finds the library: `explicit` (from --lib), else `$STATICTRAMP_LIB`, else
/// the default places. The path returned is absolute.
pub fn find(explicit: Option<&Path>) -> Result<Found, LibError> {
    let explicit: Vec<PathBuf> = explicit.map(Path::to_path_buf).into_iter().collect();
    find_for(&explicit, None)
}

/// Finds the library for programs of `want` (their ELF class and machine;
/// `None`: the first one found): among the `explicit` paths (--lib, which
/// may be given once per word size), else `$STATICTRAMP_LIB` (a
/// colon-separated list), else the default places. A named library of
/// another class is a [`LibError::Mismatch`] only when no named one fits.
/// The path returned is absolute.
pub fn find_for(explicit: &[PathBuf], want: Option<(Target, &Path)>) -> Result<Found, LibError> {
    let env: Vec<PathBuf> = std::env::var_os("STATICTRAMP_LIB")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (named, how): (Vec<PathBuf>, &'static str) = if !explicit.is_empty() {
        (explicit.to_vec(), "--lib")
    } else if !env.is_empty() {
        (env, "$STATICTRAMP_LIB")
    } else {
        (Vec::new(), "beside this program")
    };
    let fits = |t: Target| want.is_none_or(|(w, _)| w == t);
    let path = if named.is_empty() {
        let searched = default_candidates();
        let found = searched
            .iter()
            .find(|p| p.is_file() && matches!(elf::kind(p), Ok(elf::Kind::Elf(t)) if fits(t)));
        match found {
            Some(p) => p.clone(),
            None => {
                return Err(LibError::NotFound {
                    searched,
                    want: want.map(|(t, _)| t),
                });
            }
        }
    } else {
        let mut first_other = None;
        let mut hit = None;
        for p in &named {
            if !p.is_file() {
                return Err(LibError::Given {
                    path: p.clone(),
                    how,
                    why: "does not exist".into(),
                });
            }
            let t = validate(p, how)?;
            if fits(t) {
                hit = Some(p.clone());
                break;
            }
            first_other.get_or_insert((p.clone(), t));
        }
        match (hit, first_other, want) {
            (Some(p), _, _) => p,
            (None, Some((lib, lib_target)), Some((cmd_target, cmd))) => {
                return Err(LibError::Mismatch {
                    lib,
                    lib_target,
                    cmd: cmd.to_path_buf(),
                    cmd_target,
                });
            }
            _ => unreachable!("a named library either fits or mismatches"),
        }
    };
    let path = absolute(&path);
    let s = path.to_string_lossy();
    if s.contains([' ', ':', '\t', '\n']) {
        return Err(LibError::BadPath(path));
    }
    let versioned = path.file_name().is_some_and(|n| n == PRELOAD);
    Ok(Found {
        path,
        how: how.to_string(),
        versioned,
    })
}

/// The ELF target a library must have to be loaded into `cmd`: the
/// program's own, or its `#!` interpreter's; `None` if neither is ELF.
pub fn target_of(cmd: &Path) -> Option<Target> {
    match elf::kind(cmd).ok()? {
        elf::Kind::Elf(t) => Some(t),
        elf::Kind::Script => {
            let text = std::fs::read(cmd).ok()?;
            let line = text.split(|&b| b == b'\n').next()?;
            let interp = line
                .get(2..)?
                .split(|b| b.is_ascii_whitespace())
                .find(|w| !w.is_empty())?;
            use std::os::unix::ffi::OsStrExt;
            match elf::kind(Path::new(std::ffi::OsStr::from_bytes(interp))).ok()? {
                elf::Kind::Elf(t) => Some(t),
                _ => None,
            }
        }
        elf::Kind::Other => None,
    }
}

/// Checks that `lib` can be loaded into the program `cmd` (if `cmd` is an
/// ELF program; scripts and others are left to their interpreter).
pub fn check_compatible(lib: &Path, cmd: &Path) -> Result<(), LibError> {
    let lib_target = match elf::kind(lib) {
        Ok(elf::Kind::Elf(t)) => t,
        _ => return Ok(()), // validated by `find`
    };
    if let Ok(elf::Kind::Elf(cmd_target)) = elf::kind(cmd) {
        if cmd_target != lib_target {
            return Err(LibError::Mismatch {
                lib: lib.to_path_buf(),
                lib_target,
                cmd: cmd.to_path_buf(),
                cmd_target,
            });
        }
    }
    Ok(())
}
