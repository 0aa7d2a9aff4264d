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
    fn this_binary_is_host() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(kind(&exe).unwrap(), Kind::Elf(Target::host()));
    }
}
