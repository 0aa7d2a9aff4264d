//! Just enough of the ELF header to tell whether a preload library can be
//! loaded into a program: ld.so silently ignores an `LD_PRELOAD` entry of the
//! wrong class or machine, which would make `run` quietly do nothing.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The class (32/64-bit) and machine of an ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub bits: u8,
    pub machine: u16,
}

impl Target {
    /// The target this binary was built for (and the library beside it).
    #[cfg(test)]
    pub fn host() -> Target {
        let machine = if cfg!(target_arch = "x86_64") {
            62
        } else if cfg!(target_arch = "x86") {
            3
        } else if cfg!(target_arch = "aarch64") {
            183
        } else if cfg!(target_arch = "arm") {
            40
        } else {
            0
        };
        Target {
            bits: (usize::BITS) as u8,
            machine,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.machine {
            3 => "i386",
            62 => "x86_64",
            183 => "aarch64",
            40 => "arm",
            m => return write!(f, "{}-bit machine {m}", self.bits),
        };
        write!(f, "{}-bit {name}", self.bits)
    }
}

/// What a file is, as far as loading a library into it goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Elf(Target),
    /// A `#!` script: its interpreter is what gets the library.
    Script,
    Other,
}

/// Reads the start of `path`.
pub fn kind(path: &Path) -> std::io::Result<Kind> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(parse(&head[..n]))
}

fn parse(head: &[u8]) -> Kind {
    if head.starts_with(b"#!") {
        return Kind::Script;
    }
    if head.len() < 20 || !head.starts_with(b"\x7fELF") {
        return Kind::Other;
    }
    let bits = match head[4] {
        1 => 32,
        2 => 64,
        _ => return Kind::Other,
    };
    // e_machine is at offset 18, in the file's byte order (EI_DATA).
    let m = [head[18], head[19]];
    let machine = if head[5] == 2 {
        u16::from_be_bytes(m)
    } else {
        u16::from_le_bytes(m)
    };
    Kind::Elf(Target { bits, machine })
}

/// Whether the kernel would give the ELF program at `path` an executable
/// stack (which under strict mode would be a writable+executable mapping
/// made by execve itself, where no filter can see it): `PT_GNU_STACK` with
/// `PF_X`, or, for 32-bit programs, no `PT_GNU_STACK` at all (the kernel
/// then also sets READ_IMPLIES_EXEC). `None` if `path` is not ELF.
pub fn wants_exec_stack(path: &Path) -> std::io::Result<Option<bool>> {
    let bytes = std::fs::read(path)?;
    Ok(exec_stack(&bytes))
}

fn exec_stack(b: &[u8]) -> Option<bool> {
    let Kind::Elf(t) = parse(b.get(..20)?) else {
        return None;
    };
    let big = b[5] == 2;
    let rd = |off: usize, n: usize| -> Option<u64> {
        let s = b.get(off..off + n)?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if big { s[i] } else { s[n - 1 - i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    // e_phoff, e_phentsize, e_phnum; p_type at 0, p_flags at 24 (ELF64) or
    // 4 / 24 (ELF32).
    let (phoff, phentsize, phnum, flags_at) = if t.bits == 64 {
        (rd(32, 8)?, rd(54, 2)?, rd(56, 2)?, 4)
    } else {
        (rd(28, 4)?, rd(42, 2)?, rd(44, 2)?, 24)
    };
    const PT_GNU_STACK: u64 = 0x6474_e551;
    const PF_X: u64 = 1;
    for i in 0..phnum {
        let ph = usize::try_from(phoff + i * phentsize).ok()?;
        if rd(ph, 4)? == PT_GNU_STACK {
            return Some(rd(ph + flags_at, 4)? & PF_X != 0);
        }
    }
    Some(t.bits == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers() {
        let mut h = *b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0";
        assert_eq!(
            parse(&h),
            Kind::Elf(Target {
                bits: 64,
                machine: 62
            })
        );
        h[4] = 1;
        h[18] = 3;
        assert_eq!(
            parse(&h),
            Kind::Elf(Target {
                bits: 32,
                machine: 3
            })
        );
        assert_eq!(parse(b"#!/bin/sh\n"), Kind::Script);
        assert_eq!(parse(b"\x7fELF"), Kind::Other);
        assert_eq!(parse(b"hello world, not a binary"), Kind::Other);
    }

    #[test]
    fn reads_pt_gnu_stack() {
        // ELF64 header + one program header at 64: PT_GNU_STACK, flags RW.
        let mut b = vec![0u8; 64 + 56];
        b[..20].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0");
        b[32] = 64; // e_phoff
        b[54] = 56; // e_phentsize
        b[56] = 1; // e_phnum
        b[64..68].copy_from_slice(&0x6474_e551u32.to_le_bytes());
        b[68] = 6; // PF_R | PF_W
        assert_eq!(exec_stack(&b), Some(false));
        b[68] = 7; // PF_R | PF_W | PF_X
        assert_eq!(exec_stack(&b), Some(true));
        b[64] = 1; // PT_LOAD: no PT_GNU_STACK, 64-bit: not executable
        assert_eq!(exec_stack(&b), Some(false));
        assert_eq!(exec_stack(b"#!/bin/sh\n"), None);
        // Truncated program headers: not trusted.
        b[56] = 2;
        assert_eq!(exec_stack(&b), None);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(wants_exec_stack(&exe).unwrap(), Some(false));
    }

    #[test]
    fn this_binary_is_host() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(kind(&exe).unwrap(), Kind::Elf(Target::host()));
    }
}
