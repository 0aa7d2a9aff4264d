//! `statictramp run [--strict] [--lib PATH] [--] CMD [ARGS...]`
//!
//! Puts the preload library first in `LD_PRELOAD`, arms strict mode if asked,
//! and replaces this process with CMD (execve). Nothing of ours stays between
//! CMD and its parent, so CMD's exit status and signals are seen unchanged.

use super::{EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, EXIT_OWN_ERROR, EXIT_USAGE};
use crate::mixed;
use crate::strict;
use statictramp_locate::elf;
use statictramp_locate::library;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// The parsed command line of `run`.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    strict: bool,
    /// Run without the library (to show what strict mode does to a
    /// program's own libffi).
    no_preload: bool,
    /// `--lib`: once, or once per word size.
    lib: Vec<PathBuf>,
    cmd: OsString,
    args: Vec<OsString>,
}

fn parse(args: &[OsString]) -> Result<Options, String> {
    let mut strict = false;
    let mut no_preload = false;
    let mut lib = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        match a {
            b"--" => {
                i += 1;
                break;
            }
            b"--strict" => strict = true,
            b"--no-preload" => no_preload = true,
            b"--lib" => {
                i += 1;
                let p = args.get(i).ok_or("--lib needs a path")?;
                lib.push(PathBuf::from(p));
            }
            _ if a.starts_with(b"--lib=") => lib.push(PathBuf::from(OsStr::from_bytes(&a[6..]))),
            _ if a.starts_with(b"-") => return Err(format!("unknown option {:?}", args[i])),
            _ => break,
        }
        i += 1;
    }
    let cmd = args.get(i).ok_or("no command given")?.clone();
    if cmd.is_empty() {
        return Err("the command is an empty string".into());
    }
    if no_preload && !lib.is_empty() {
        return Err("--lib and --no-preload contradict each other".into());
    }
    Ok(Options {
        strict,
        no_preload,
        lib,
        cmd,
        args: args[i + 1..].to_vec(),
    })
}

/// Why a command cannot be run.
enum CmdError {
    NotFound,
    NotExecutable(PathBuf),
}

/// Resolves `cmd` the way execvp does: as a path if it has a slash, else
/// through `$PATH`.
fn resolve(cmd: &OsStr) -> Result<PathBuf, CmdError> {
    let is_exec = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if cmd.as_bytes().contains(&b'/') {
        let p = PathBuf::from(cmd);
        return match p.metadata() {
            Err(_) => Err(CmdError::NotFound),
            Ok(_) if is_exec(&p) => Ok(p),
            Ok(_) => Err(CmdError::NotExecutable(p)),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut not_exec = None;
    for dir in std::env::split_paths(&path) {
        let p = dir.join(cmd);
        if is_exec(&p) {
            return Ok(p);
        }
        if p.exists() && not_exec.is_none() {
            not_exec = Some(p);
        }
    }
    Err(not_exec.map_or(CmdError::NotFound, CmdError::NotExecutable))
}

/// The kernel makes an executable stack for some programs during execve,
/// where no filter can refuse it: strict mode refuses to start them (the
/// program, or a script's interpreter).
fn refuse_exec_stack(path: &Path) -> Result<(), String> {
    let mut prog = path.to_path_buf();
    if let Ok(elf::Kind::Script) = elf::kind(path) {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let interp = line[2..]
            .split(|b| b.is_ascii_whitespace())
            .find(|w| !w.is_empty());
        match interp {
            Some(i) => prog = PathBuf::from(OsStr::from_bytes(i)),
            None => return Ok(()),
        }
    }
    match elf::wants_exec_stack(&prog) {
        Ok(Some(true)) => Err(format!(
            "{} asks for an executable stack (PT_GNU_STACK with PF_X, or none in a 32-bit \
             program): execve would give it writable+executable memory that strict mode cannot \
             refuse; rebuild it with -z noexecstack",
            prog.display()
        )),
        _ => Ok(()),
    }
}

/// The `LD_PRELOAD` entry for CMD's class `t` and the other word size
/// (mixed.rs), when a library of that size is found (`--lib`,
/// `$STATICTRAMP_LIB` or the default places) and its ld.so exists here;
/// `None`: `lib` alone. Why a found library cannot be added is noted.
fn both_classes(named: &[PathBuf], t: elf::Target, lib: &Path, cmd: &Path) -> Option<OsString> {
    let other = mixed::companion(t)?;
    mixed::loader(other).filter(|l| l.exists())?;
    let found = library::find_for(named, Some((other, cmd))).ok()?;
    match mixed::preload_entry([(t, lib), (other, &found.path)]) {
        Ok(entry) => Some(entry),
        Err(mixed::NotMixed(why)) => {
            eprintln!(
                "statictramp run: note: {other} programs that {} starts will not get \
                 statictramp ({why})",
                cmd.display()
            );
            None
        }
    }
}

/// `lib` first, then whatever LD_PRELOAD already held.
fn preload_value(lib: &OsStr) -> OsString {
    let mut v = OsString::from(lib);
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

pub fn main(args: &[OsString]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "statictramp run: {e}\nusage: statictramp run [--strict] [--lib PATH | --no-preload] [--] CMD [ARGS...]"
            );
            return EXIT_USAGE;
        }
    };
    let shown = opts.cmd.to_string_lossy().into_owned();
    // A missing library is reported before a missing command (the library
    // is ours to get right); the command's word size picks the library.
    let resolved = resolve(&opts.cmd);
    let want = resolved
        .as_ref()
        .ok()
        .and_then(|p| library::target_of(p).map(|t| (t, p.as_path())));
    let lib = match opts.no_preload {
        true => None,
        false => match library::find_for(&opts.lib, want) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("statictramp run: {e}");
                return EXIT_OWN_ERROR;
            }
        },
    };
    let path = match resolved {
        Ok(p) => p,
        Err(CmdError::NotFound) => {
            eprintln!("statictramp run: {shown}: command not found");
            return EXIT_NOT_FOUND;
        }
        Err(CmdError::NotExecutable(p)) => {
            eprintln!("statictramp run: {}: not executable", p.display());
            return EXIT_CANNOT_EXEC;
        }
    };
    if opts.strict {
        if let Err(e) = refuse_exec_stack(&path) {
            eprintln!("statictramp run: {e}");
            return EXIT_OWN_ERROR;
        }
        match strict::arm() {
            Ok(armed) => {
                if let Err(why) = armed.mdwe {
                    eprintln!(
                        "statictramp run: note: strict mode without MDWE ({why}); the seccomp filter \
                         alone refuses writable+executable memory"
                    );
                }
                if let Err(why) = armed.landlock {
                    eprintln!(
                        "statictramp run: note: strict mode without Landlock ({why}); writes to \
                         /proc/<pid>/mem can still change code (`statictramp check` lists what \
                         stays open)"
                    );
                }
            }
            Err(e) => {
                eprintln!("statictramp run: strict mode unavailable: {e}");
                return EXIT_OWN_ERROR;
            }
        }
    }
    let mut command = std::process::Command::new(&path);
    command.arg0(&opts.cmd).args(&opts.args);
    if let Some(lib) = &lib {
        let entry = match library::target_of(&path) {
            Some(t) => both_classes(&opts.lib, t, &lib.path, &path),
            None => None,
        };
        let entry = entry.unwrap_or_else(|| lib.path.clone().into_os_string());
        command.env("LD_PRELOAD", preload_value(&entry));
    }
    let err = command.exec();
    eprintln!("statictramp run: cannot execute {}: {err}", path.display());
    match err.raw_os_error() {
        Some(libc::ENOENT) => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXEC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_options_and_command() {
        let o = parse(&os(&["--strict", "--lib", "/x.so", "--", "ls", "-l"])).unwrap();
        assert_eq!(
            o,
            Options {
                strict: true,
                no_preload: false,
                lib: vec!["/x.so".into()],
                cmd: "ls".into(),
                args: os(&["-l"])
            }
        );
        let o = parse(&os(&["--lib=/y.so", "echo", "--strict"])).unwrap();
        assert!(!o.strict);
        assert_eq!(o.lib, vec![PathBuf::from("/y.so")]);
        // Once per word size.
        assert_eq!(o.args, os(&["--strict"]));
        let o = parse(&os(&["--lib", "/64.so", "--lib=/32.so", "true"])).unwrap();
        assert_eq!(
            o.lib,
            vec![PathBuf::from("/64.so"), PathBuf::from("/32.so")]
        );
        let o = parse(&os(&["--", "--strict"])).unwrap();
        assert_eq!(o.cmd, "--strict");
    }

    #[test]
    fn rejects_bad_usage() {
        assert!(parse(&os(&[])).is_err());
        assert!(parse(&os(&["--strict"])).is_err());
        assert!(parse(&os(&["--lib"])).is_err());
        assert!(
            parse(&os(&["--bogus", "ls"]))
                .unwrap_err()
                .contains("--bogus")
        );
        assert!(parse(&os(&["--", ""])).is_err());
        assert!(parse(&os(&["--no-preload", "--lib", "/x.so", "ls"])).is_err());
    }
}
