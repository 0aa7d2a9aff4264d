//! Calling-convention classification for statictramp.
//!
//! Pure, safe, host-independent Rust: given an ABI and a signature described
//! with [`Type`]s (a mirror of libffi's `ffi_type`), produce a [`Plan`] that
//! says where every argument lives when a closure entry has saved the
//! argument registers into its frame, and how the return value goes back.
//! Classification runs once per signature (at prep time), never per call.
//!
//! Every ABI of every architecture is classified on any host, so these unit
//! tests run everywhere.
#![forbid(unsafe_code)]

pub mod aarch64;
pub mod arm;
mod check;
pub mod i386;
pub mod plan;
pub mod record;
mod scratch;
pub mod types;
pub mod x86_64;

pub use plan::{ArgLoc, Ext, Piece, Plan, RetKind, RetLoc, RetMove};
pub use record::RecordLayout;
pub use types::{Kind, Type, TypeError};

/// A calling convention that statictramp classifies.
///
/// The numeric values libffi uses differ per architecture; [`Abi::from_ffi`]
/// maps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// x86_64 System V (libffi `FFI_UNIX64`, the default on x86_64 Linux).
    SysV64,
    /// x86_64 Microsoft convention with `long double` == `double`
    /// (libffi `FFI_WIN64`, also spelled `FFI_EFI64`).
    Win64,
    /// x86_64 Microsoft convention as GCC implements it: `long double` is the
    /// 16-byte x87 type, passed and returned by reference (libffi `FFI_GNUW64`).
    GnuW64,
    /// i386 System V `cdecl` (libffi `FFI_SYSV`, the default on i386 Linux).
    I386SysV,
    /// i386 `stdcall`: the callee pops its arguments (libffi `FFI_STDCALL`).
    I386StdCall,
    /// i386 `thiscall`: the first integer argument in ecx (libffi
    /// `FFI_THISCALL`).
    I386ThisCall,
    /// i386 `fastcall`: the first two integer arguments in ecx, edx (libffi
    /// `FFI_FASTCALL`).
    I386FastCall,
    /// i386 `cdecl` as GCC's `ms_abi` attribute has it: the caller keeps the
    /// hidden struct-return pointer (libffi `FFI_MS_CDECL`).
    I386MsCdecl,
    /// Borland/Delphi `pascal`: left to right on the stack (libffi
    /// `FFI_PASCAL`).
    I386Pascal,
    /// Borland/Delphi `register`: eax, edx, ecx, then left to right on the
    /// stack (libffi `FFI_REGISTER`).
    I386Register,
}

/// An architecture: its libffi ABI numbering and closure record layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    I386,
    Aarch64,
    Arm,
}

impl Arch {
    /// Every architecture statictramp knows (ported or not).
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::I386, Arch::Aarch64, Arch::Arm];

    /// The (size, alignment) of a scalar kind on this architecture, as
    /// libffi's predefined `ffi_type`s state them; `None` for aggregates
    /// and void.
    pub const fn scalar_layout(self, kind: &Kind) -> Option<(u64, u64)> {
        match self {
            Arch::X86_64 => x86_64::standard_layout(kind),
            Arch::I386 => i386::standard_layout(kind),
            Arch::Aarch64 => aarch64::standard_layout(kind),
            Arch::Arm => arm::standard_layout(kind),
        }
    }

    /// The layout of this architecture's `ffi_closure` and our header in it.
    pub const fn record(self) -> RecordLayout {
        match self {
            Arch::X86_64 => x86_64::RECORD,
            Arch::I386 => i386::RECORD,
            Arch::Aarch64 => aarch64::RECORD,
            Arch::Arm => arm::RECORD,
        }
    }
}

impl Abi {
    /// Maps libffi's `ffi_abi` value for `arch` to an [`Abi`]; `None` where
    /// libffi would answer `FFI_BAD_ABI`. Each architecture's module holds
    /// its numbering (e.g. [`x86_64::abi_from_ffi`]).
    ///
    /// Architectures whose port has not landed classify nothing yet: every
    /// ABI number is `None` there.
    pub fn from_ffi(arch: Arch, abi: u32) -> Option<Abi> {
        match arch {
            Arch::X86_64 => x86_64::abi_from_ffi(abi),
            Arch::I386 => i386::abi_from_ffi(abi),
            Arch::Aarch64 | Arch::Arm => None,
        }
    }

    /// The architecture whose convention this is: a runtime must not give
    /// another architecture's Plan to its entries.
    pub fn arch(self) -> Arch {
        match self {
            Abi::SysV64 | Abi::Win64 | Abi::GnuW64 => Arch::X86_64,
            Abi::I386SysV
            | Abi::I386StdCall
            | Abi::I386ThisCall
            | Abi::I386FastCall
            | Abi::I386MsCdecl
            | Abi::I386Pascal
            | Abi::I386Register => Arch::I386,
        }
    }
}

/// A closure signature: the ABI, argument types and return type.
///
/// Hash and equality are structural, so a `Signature` is the key under which
/// Plans are interned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    pub abi: Abi,
    pub args: Vec<Type>,
    pub ret: Type,
}

/// Why a signature cannot be classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClassifyError {
    /// A type is malformed (libffi: `FFI_BAD_TYPEDEF`).
    BadType(TypeError),
    /// The ABI cannot express this signature (libffi: `FFI_BAD_ABI` /
    /// `FFI_BAD_TYPEDEF`, as libffi answers for the same case).
    Unsupported(&'static str),
}

impl core::fmt::Display for ClassifyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClassifyError::BadType(e) => write!(f, "bad type: {e}"),
            ClassifyError::Unsupported(why) => write!(f, "unsupported signature: {why}"),
        }
    }
}

impl std::error::Error for ClassifyError {}

impl From<TypeError> for ClassifyError {
    fn from(e: TypeError) -> Self {
        ClassifyError::BadType(e)
    }
}

/// Classifies `sig` for its ABI.
pub fn classify(sig: &Signature) -> Result<Plan, ClassifyError> {
    match sig.abi {
        Abi::SysV64 => x86_64::sysv::classify(sig),
        Abi::Win64 | Abi::GnuW64 => x86_64::win64::classify(sig),
        Abi::I386SysV
        | Abi::I386StdCall
        | Abi::I386ThisCall
        | Abi::I386FastCall
        | Abi::I386MsCdecl
        | Abi::I386Pascal
        | Abi::I386Register => i386::classify(sig),
    }
}
