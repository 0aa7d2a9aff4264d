//! Strict W^X process mode, used by `statictramp run --strict`.
//!
//! After [`arm`], no memory of this process or of any program it executes
//! can ever be writable and executable, and executable memory can only be
//! created by mapping a file privately. Two independent layers do that
//! (1 and 2); the filter and a third layer (3) also close ways of changing
//! existing code:
//!
//! 1. **MDWE** (`prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`, Linux 6.3+):
//!    the kernel refuses any mapping that would be writable and executable,
//!    and any `mprotect` that adds execute permission. It sees the final VMA
//!    flags, so it also catches `READ_IMPLIES_EXEC` personalities. It is
//!    inherited by children and kept across `execve`, and cannot be undone.
//! 2. **seccomp** (a filter built with libseccomp for every syscall ABI the
//!    CPU can run: x86_64, i386 and x32 on an x86_64 kernel), which refuses
//!    with `EPERM` — the errno systemd's `MemoryDenyWriteExecute=` uses:
//!    - `mmap`/`mmap2` with `PROT_EXEC` and `MAP_ANONYMOUS` (anonymous code),
//!      with `PROT_EXEC` and `MAP_SHARED` (a second, writable view of the same
//!      pages is always possible), or with write permission as well;
//!    - `mprotect`/`pkey_mprotect` with `PROT_EXEC` (a filter cannot see the
//!      old protection, so every request that includes execute is refused;
//!      the dynamic loader never makes one for ordinary libraries);
//!    - `shmat` with `SHM_EXEC` (System V shared memory is another writable
//!      alias), also through i386's `ipc()` multiplexer;
//!    - `personality` setting `READ_IMPLIES_EXEC` (it would add `PROT_EXEC`
//!      to every readable mapping behind the filter's back);
//!    - i386's old `mmap` (syscall 90), whose arguments are in memory where a
//!      filter cannot read them (glibc uses `mmap2`).
//!
//!    It also refuses the ways to change code that need no new mapping:
//!    `ptrace(POKETEXT|POKEDATA)` and userfaultfd (`userfaultfd(2)` and
//!    `/dev/userfaultfd`'s `USERFAULTFD_IOC_NEW`).
//! 3. **Landlock** (`crate::landlock`, Linux 5.13+): nothing under `/proc`
//!    can be opened for writing, which closes `/proc/<pid>/mem`.
//!
//! The seccomp layer is required: without it `arm` fails and says why. MDWE
//! and Landlock are used where the kernel has them; [`Armed`] tells. What no
//! layer covers is in docs/design.md ("Strict mode: what it cannot stop"),
//! and `statictramp check` tries each such route on the running kernel
//! (`crate::routes`).
//!
//! This module belongs to the `statictramp` command's package, not to the
//! runtime library: the cdylib and staticlib, which are loaded into other
//! programs, must not depend on libseccomp.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use std::fmt;
use std::io;

/// `prctl` options for MDWE (linux/prctl.h; not in every libc release).
const PR_SET_MDWE: libc::c_int = 65;
const PR_GET_MDWE: libc::c_int = 66;
const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;

/// The errno every refused call gets.
pub const REFUSED_ERRNO: i32 = libc::EPERM;

/// Protection bits, named for what the rules refuse.
const WRITE: u64 = libc::PROT_WRITE as u64;
const EXEC: u64 = libc::PROT_EXEC as u64;
const MAP_SHARED: u64 = libc::MAP_SHARED as u64; // also set in MAP_SHARED_VALIDATE
const MAP_ANONYMOUS: u64 = libc::MAP_ANONYMOUS as u64;
const SHM_EXEC: u64 = 0o100000; // linux/shm.h
const READ_IMPLIES_EXEC: u64 = 0x0040_0000; // linux/personality.h
/// `personality(0xffffffff)` only queries; no real persona has bit 31.
const PERSONA_QUERY_BIT: u64 = 0x8000_0000;
/// i386 `ipc()` call number of `shmat` (linux/ipc.h); the high 16 bits of
/// the call word carry a version the kernel strips.
const IPC_SHMAT: u64 = 21;
/// ptrace requests that write a word of the tracee's memory (linux/ptrace.h).
const PTRACE_POKETEXT: u64 = 4;
const PTRACE_POKEDATA: u64 = 5;
/// `_IO(0xAA, 0x00)` (linux/userfaultfd.h): makes a userfaultfd from
/// /dev/userfaultfd, the way around a refused `userfaultfd(2)`.
const USERFAULTFD_IOC_NEW: u64 = 0xaa00;

/// One condition of a rule: `(arg & mask) == value`.
#[derive(Clone, Copy, Debug)]
pub struct Cond {
    pub arg: u32,
    pub mask: u64,
    pub value: u64,
}

/// `arg == value` in its low 32 bits (request numbers are `int`s; the
/// kernel ignores the upper half).
const fn is(arg: u32, value: u64) -> Cond {
    Cond {
        arg,
        mask: 0xffff_ffff,
        value,
    }
}

const fn has(arg: u32, bits: u64) -> Cond {
    Cond {
        arg,
        mask: bits,
        value: bits,
    }
}

/// One refusal: `syscall` fails with [`REFUSED_ERRNO`] when all `conds` hold.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub syscall: &'static str,
    pub conds: &'static [Cond],
    pub why: &'static str,
}

const fn rule(syscall: &'static str, conds: &'static [Cond], why: &'static str) -> Rule {
    Rule {
        syscall,
        conds,
        why,
    }
}

/// The mapping rules of an ABI whose `mmap`-like call (`$mmap`) takes
/// (addr, len, prot, flags, fd, off) in registers.
macro_rules! map_rules {
    ($mmap:literal) => {
        [
            rule(
                $mmap,
                &[has(2, EXEC), has(3, MAP_ANONYMOUS)],
                "anonymous executable memory",
            ),
            rule(
                $mmap,
                &[has(2, EXEC), has(3, MAP_SHARED)],
                "shared executable mapping (writable alias possible)",
            ),
            rule(
                $mmap,
                &[has(2, EXEC | WRITE)],
                "writable and executable mapping",
            ),
            rule("mprotect", &[has(2, EXEC)], "mprotect adding execute"),
            rule(
                "pkey_mprotect",
                &[has(2, EXEC)],
                "pkey_mprotect adding execute",
            ),
            rule(
                "personality",
                &[Cond {
                    arg: 0,
                    mask: PERSONA_QUERY_BIT | READ_IMPLIES_EXEC,
                    value: READ_IMPLIES_EXEC,
                }],
                "READ_IMPLIES_EXEC personality",
            ),
        ]
    };
}

/// x86_64 and x32 (same names; libseccomp numbers x32 calls itself).
const MAP_RULES_64: [Rule; 6] = map_rules!("mmap");
const EXTRA_RULES_64: &[Rule] = &[rule(
    "shmat",
    &[has(2, SHM_EXEC)],
    "executable System V shared memory",
)];

/// i386.
const MAP_RULES_I386: [Rule; 6] = map_rules!("mmap2");
const EXTRA_RULES_I386: &[Rule] = &[
    rule(
        "mmap",
        &[],
        "old_mmap: arguments in memory, cannot be inspected",
    ),
    // libseccomp turns this into shmat (397) and ipc(SHMAT) with the
    // call word compared whole ...
    rule(
        "shmat",
        &[has(2, SHM_EXEC)],
        "executable System V shared memory",
    ),
    // ... but the kernel ignores the call word's high 16 bits (a
    // version), so compare only the low 16 as well.
    rule(
        "ipc",
        &[
            Cond {
                arg: 0,
                mask: 0xffff,
                value: IPC_SHMAT,
            },
            has(2, SHM_EXEC),
        ],
        "executable System V shared memory via ipc()",
    ),
];

/// Ways to change code without making executable memory, the same on
/// every ABI (docs/design.md, "Strict mode: what it cannot stop"):
/// `ptrace` writes into a tracee's read-only code (`FOLL_FORCE`), and
/// userfaultfd fills a not-yet-populated page of a private read+exec
/// mapping of a memfd with any bytes (`UFFDIO_COPY`). Both are debugging
/// or live-migration interfaces that ordinary programs do not use.
const CODE_RULES: &[Rule] = &[
    rule(
        "ptrace",
        &[is(0, PTRACE_POKETEXT)],
        "ptrace(POKETEXT) writes through read-only code",
    ),
    rule(
        "ptrace",
        &[is(0, PTRACE_POKEDATA)],
        "ptrace(POKEDATA) writes through read-only code",
    ),
    rule(
        "userfaultfd",
        &[],
        "userfaultfd can fill a read+exec page with any bytes",
    ),
    rule(
        "ioctl",
        &[is(1, USERFAULTFD_IOC_NEW)],
        "/dev/userfaultfd's USERFAULTFD_IOC_NEW",
    ),
];

/// An ABI's rules: the mapping rules, the ones only it has, and the code
/// rules.
pub type Rules = [&'static [Rule]; 3];
const RULES_64: Rules = [&MAP_RULES_64, EXTRA_RULES_64, CODE_RULES];
const RULES_I386: Rules = [&MAP_RULES_I386, EXTRA_RULES_I386, CODE_RULES];

/// The syscall ABIs the filter covers on this build's architecture, each
/// with its rules. Syscalls from any other ABI kill the process (libseccomp's
/// bad-architecture action), so a filter can never be bypassed by switching
/// ABIs.
pub fn policy() -> Vec<(ScmpArch, &'static str, Rules)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            (ScmpArch::X8664, "x86_64", RULES_64),
            (ScmpArch::X86, "i386", RULES_I386),
            (ScmpArch::X32, "x32", RULES_64),
        ]
    }
    #[cfg(target_arch = "x86")]
    {
        vec![(ScmpArch::X86, "i386", RULES_I386)]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        vec![(ScmpArch::native(), std::env::consts::ARCH, RULES_64)]
    }
}

/// Why strict mode could not be armed.
#[derive(Debug)]
pub enum StrictError {
    /// libseccomp refused to build the filter.
    Build { what: String, err: String },
    /// The kernel refused to load the filter.
    Load(String),
    /// MDWE is on but in a weaker mode than asked for (it can only be set once).
    MdweMismatch(i32),
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrictError::Build { what, err } => {
                write!(f, "cannot build the seccomp filter ({what}): {err}")
            }
            StrictError::Load(err) => write!(
                f,
                "the kernel refused the seccomp filter: {err} (needs CONFIG_SECCOMP_FILTER, and \
                 a container runtime that allows seccomp(2))"
            ),
            StrictError::MdweMismatch(v) => write!(
                f,
                "MDWE is already set to {v:#x}, which does not refuse exec gain"
            ),
        }
    }
}

impl std::error::Error for StrictError {}

/// What [`arm`] put in place.
#[derive(Debug, Clone)]
pub struct Armed {
    /// `Ok(())` when MDWE is on; otherwise why the kernel does not have it.
    pub mdwe: Result<(), String>,
    /// `Ok(())` when Landlock keeps `/proc` unwritable; otherwise why not.
    pub landlock: Result<(), String>,
    /// The syscall ABIs the seccomp filter covers.
    pub arches: Vec<&'static str>,
}

/// Whether this kernel has MDWE and what it is set to for this process.
pub fn mdwe_state() -> Result<i32, String> {
    // SAFETY: PR_GET_MDWE takes no pointers; the unused arguments must be 0.
    let r = unsafe {
        libc::prctl(
            PR_GET_MDWE,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EINVAL) {
            "the kernel has no PR_SET_MDWE (needs Linux 6.3 or newer)".to_string()
        } else {
            format!("PR_GET_MDWE failed: {e}")
        });
    }
    Ok(r)
}

fn arm_mdwe() -> Result<Result<(), String>, StrictError> {
    match mdwe_state() {
        Err(why) => return Ok(Err(why)),
        Ok(v) if v & PR_MDWE_REFUSE_EXEC_GAIN as i32 != 0 => return Ok(Ok(())),
        Ok(0) => {}
        Ok(v) => return Err(StrictError::MdweMismatch(v)),
    }
    // SAFETY: PR_SET_MDWE takes a flag word and no pointers; it only
    // restricts future mappings of this process.
    let r = unsafe {
        libc::prctl(
            PR_SET_MDWE,
            PR_MDWE_REFUSE_EXEC_GAIN,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        return Ok(Err(format!(
            "PR_SET_MDWE failed: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(Ok(()))
}

/// Builds the seccomp filter (not loaded).
pub fn build_filter() -> Result<ScmpFilterContext, StrictError> {
    let err = |what: String| {
        move |e: libseccomp::error::SeccompError| StrictError::Build {
            what: what.clone(),
            err: e.to_string(),
        }
    };
    let mut merged: Option<ScmpFilterContext> = None;
    for (arch, name, rules) in policy() {
        // One context per ABI: the same name means different arguments on
        // different ABIs (i386's old mmap), so each ABI gets its own rules.
        // libseccomp numbers syscalls in the *native* ABI and translates by
        // name into the context's ABI (a raw i386 number would be taken as
        // the x86_64 call of that number), so rules are always given by name.
        let mut ctx = ScmpFilterContext::new(ScmpAction::Allow)
            .map_err(err(format!("{name}: new context")))?;
        if arch != ScmpArch::native() {
            ctx.add_arch(arch)
                .map_err(err(format!("{name}: add arch")))?;
            ctx.remove_arch(ScmpArch::native())
                .map_err(err(format!("{name}: remove native arch")))?;
        }
        ctx.set_act_badarch(ScmpAction::KillProcess)
            .map_err(err("bad-arch action".into()))?;
        ctx.set_ctl_nnp(true).map_err(err("no_new_privs".into()))?;
        ctx.set_ctl_tsync(true).map_err(err("thread sync".into()))?;
        for r in rules.iter().flat_map(|r| r.iter()) {
            let sys = ScmpSyscall::from_name(r.syscall)
                .map_err(err(format!("{name}: syscall {}", r.syscall)))?;
            let conds: Vec<ScmpArgCompare> = r
                .conds
                .iter()
                .map(|c| ScmpArgCompare::new(c.arg, ScmpCompareOp::MaskedEqual(c.mask), c.value))
                .collect();
            ctx.add_rule_conditional(ScmpAction::Errno(REFUSED_ERRNO), sys, &conds)
                .map_err(err(format!("{name}: rule {} ({})", r.syscall, r.why)))?;
        }
        match merged.as_mut() {
            None => merged = Some(ctx),
            Some(m) => {
                m.merge(ctx).map_err(err(format!("{name}: merge")))?;
            }
        }
    }
    merged.ok_or_else(|| StrictError::Build {
        what: "policy".into(),
        err: "no architecture".into(),
    })
}

/// Arms strict mode for this process and everything it executes from now
/// on. Irreversible. Call it while the process has a single thread (the
/// filter is synchronised to all threads, but MDWE only covers the process
/// from now on, which is what matters).
pub fn arm() -> Result<Armed, StrictError> {
    // Build first: if the filter cannot be built, nothing has changed yet.
    let filter = build_filter()?;
    let mdwe = arm_mdwe()?;
    let landlock = crate::landlock::arm();
    filter
        .load()
        .map_err(|e| StrictError::Load(e.to_string()))?;
    Ok(Armed {
        mdwe,
        landlock,
        arches: policy().iter().map(|p| p.1).collect(),
    })
}

/// Whether this process has a seccomp filter (from /proc/self/status).
pub fn seccomp_filtered() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim() == "2"))
        })
        .unwrap_or(false)
}
