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
    /// Nothing in the default places.
    NotFound { searched: Vec<PathBuf> },
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
            LibError::NotFound { searched } => {
                writeln!(
                    f,
                    "the statictramp preload library was not found; looked for:"
                )?;
                for p in searched {
                    writeln!(f, "    {}", p.display())?;
                }
                write!(
                    f,
                    "build it with scripts/build-preload (or `cargo build --release`), \
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
/// an install's bin/ with the library copied in), then an install's lib/.
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
    }
    v
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Finds the library: `explicit` (from --lib), else `$STATICTRAMP_LIB`, else
/// the default places. The path returned is absolute.
pub fn find(explicit: Option<&Path>) -> Result<Found, LibError> {
    let env = std::env::var_os("STATICTRAMP_LIB")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let (path, how): (PathBuf, &'static str) = match (explicit, env) {
        (Some(p), _) => (p.to_path_buf(), "--lib"),
        (None, Some(p)) => (p, "$STATICTRAMP_LIB"),
        (None, None) => {
            let searched = default_candidates();
            match searched.iter().find(|p| p.is_file()) {
                Some(p) => (p.clone(), "beside this program"),
                None => return Err(LibError::NotFound { searched }),
            }
        }
    };
    if !path.is_file() {
        return Err(LibError::Given {
            path,
            how,
            why: "does not exist".into(),
        });
    }
    validate(&path, how)?;
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
