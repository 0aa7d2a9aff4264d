//! A safe mirror of libffi's `ffi_type`.
//!
//! libffi type codes (`include/ffi.h.in`): VOID 0, INT 1, FLOAT 2, DOUBLE 3,
//! LONGDOUBLE 4, UINT8 5, SINT8 6, UINT16 7, SINT16 8, UINT32 9, SINT32 10,
//! UINT64 11, SINT64 12, STRUCT 13, POINTER 14, COMPLEX 15.

/// What a type is. Sizes and alignments live in [`Type`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Void,
    U8,
    S8,
    U16,
    S16,
    U32,
    S32,
    U64,
    S64,
    Float,
    Double,
    /// x87 80-bit extended precision stored in 16 bytes (x86_64 SysV).
    LongDouble,
    Pointer,
    /// Elements in declaration order (libffi's `elements`). The struct's
    /// own `size` and `align` are authoritative: libffi lays out a struct
    /// from its elements only when its size is 0 (`initialize_aggregate`),
    /// and clients such as CPython's ctypes state other layouts (packed
    /// structs, unions, bitfields). Classifiers walk the elements the way
    /// libffi's do, not by C layout rules.
    Struct(Vec<Type>),
    /// `_Complex` of a floating-point element type.
    Complex(Box<Type>),
}

/// A type with its size and alignment in bytes, as libffi's `ffi_type` holds them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub kind: Kind,
    pub size: u64,
    pub align: u64,
}

/// A malformed type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeError {
    /// An argument or return type of size 0. libffi's `ffi_prep_cif` lays
    /// out every such struct from its elements and refuses it when the size
    /// is still 0, so a cif that holds one was not prepared by libffi.
    ZeroSize,
    /// `void` where a value is needed (an argument).
    VoidArgument,
    /// Alignment not a power of two (or zero where libffi requires one).
    BadAlign(u64),
    /// A scalar whose size/alignment differ from what the ABI gives its kind.
    LayoutMismatch {
        stated_size: u64,
        stated_align: u64,
        size: u64,
        align: u64,
    },
    /// A complex type whose element is not float, double or long double.
    BadComplex,
    /// Nested deeper than we follow (cyclic or absurd `elements` chains).
    TooDeep,
    /// An unknown libffi type code.
    UnknownCode(u16),
    /// Size of a type exceeds what any ABI passes.
    TooLarge(u64),
}

impl core::fmt::Display for TypeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TypeError::ZeroSize => write!(f, "argument or return type of size 0"),
            TypeError::VoidArgument => write!(f, "argument of type void"),
            TypeError::BadAlign(a) => write!(f, "alignment {a} is not a power of two"),
            TypeError::LayoutMismatch {
                stated_size,
                stated_align,
                size,
                align,
            } => write!(
                f,
                "scalar stated as {stated_size}/{stated_align} bytes (size/alignment), the ABI gives {size}/{align}"
            ),
            TypeError::BadComplex => write!(f, "complex of a non-floating-point type"),
            TypeError::TooDeep => write!(f, "type nested too deeply (cyclic?)"),
            TypeError::UnknownCode(c) => write!(f, "unknown ffi_type code {c}"),
            TypeError::TooLarge(s) => write!(f, "type of {s} bytes is too large"),
        }
    }
}

impl std::error::Error for TypeError {}

/// Deepest struct nesting we follow; libffi has no limit, but a chain this
/// deep is a cycle or corruption in practice.
pub const MAX_DEPTH: usize = 64;

/// Largest type we accept (1 GiB); larger values are corruption.
pub const MAX_SIZE: u64 = 1 << 30;

impl Type {
    const fn scalar(kind: Kind, size: u64) -> Type {
        Type {
            kind,
            size,
            align: size,
        }
    }
    pub const VOID: Type = Type {
        kind: Kind::Void,
        size: 1,
        align: 1,
    };
    pub const U8: Type = Type::scalar(Kind::U8, 1);
    pub const S8: Type = Type::scalar(Kind::S8, 1);
    pub const U16: Type = Type::scalar(Kind::U16, 2);
    pub const S16: Type = Type::scalar(Kind::S16, 2);
    pub const U32: Type = Type::scalar(Kind::U32, 4);
    pub const S32: Type = Type::scalar(Kind::S32, 4);
    pub const U64: Type = Type::scalar(Kind::U64, 8);
    pub const S64: Type = Type::scalar(Kind::S64, 8);
    pub const FLOAT: Type = Type::scalar(Kind::Float, 4);
    pub const DOUBLE: Type = Type::scalar(Kind::Double, 8);
    /// x86_64 long double: 16 bytes, 16-aligned.
    pub const LONGDOUBLE: Type = Type::scalar(Kind::LongDouble, 16);
    /// A 64-bit pointer.
    pub const POINTER: Type = Type::scalar(Kind::Pointer, 8);

    /// A struct laid out by C rules from its elements (what libffi's
    /// `initialize_aggregate` computes for a struct of size 0).
    pub fn structure(elems: Vec<Type>) -> Result<Type, TypeError> {
        let (size, align) = natural_layout(&elems)?;
        Ok(Type {
            kind: Kind::Struct(elems),
            size,
            align,
        })
    }

    /// A struct with a stated size and alignment, as a client such as
    /// CPython's ctypes builds it for a packed struct (`_pack_`), a union or
    /// a struct with bitfields; checked like [`Type::validate`].
    pub fn aggregate(elems: Vec<Type>, size: u64, align: u64) -> Result<Type, TypeError> {
        let t = Type {
            kind: Kind::Struct(elems),
            size,
            align,
        };
        t.validate()?;
        Ok(t)
    }

    /// A complex type of `elem` (float, double or long double).
    pub fn complex(elem: Type) -> Result<Type, TypeError> {
        match elem.kind {
            Kind::Float | Kind::Double | Kind::LongDouble => {}
            _ => return Err(TypeError::BadComplex),
        }
        Ok(Type {
            size: elem.size * 2,
            align: elem.align,
            kind: Kind::Complex(Box::new(elem)),
        })
    }

    /// Checks `self` as an argument or return type: what libffi's
    /// `ffi_type_test` (`src/debug.c`, the check a debug build of libffi
    /// asserts on every argument and return type after `ffi_prep_cif`)
    /// requires of it, and what any element needs to be classified.
    ///
    /// - A non-void argument or return type has a nonzero size
    ///   ([`TypeError::ZeroSize`]) and a nonzero power-of-two alignment
    ///   ([`TypeError::BadAlign`]). libffi takes a struct's stated size and
    ///   alignment as they are, so they need not agree with the elements.
    /// - Elements (at any depth) may have size 0 and alignment 0 (CPython's
    ///   ctypes gives a structure without `_fields_` a zeroed `ffi_type`:
    ///   void, size 0, alignment 0), may be `void`, and a struct may have no
    ///   elements; libffi's classifiers handle each of these. An element's
    ///   alignment other than 0 must be a power of two: libffi's `FFI_ALIGN`
    ///   assumes one.
    /// - Nesting deeper than [`MAX_DEPTH`] ([`TypeError::TooDeep`]: a cycle,
    ///   on which libffi would recurse forever) and sizes over [`MAX_SIZE`]
    ///   ([`TypeError::TooLarge`]) are refused; a complex type's element must
    ///   be floating ([`TypeError::BadComplex`]).
    ///
    /// Scalars' sizes and alignments are the ABI's business (see
    /// `x86_64::check_standard`).
    pub fn validate(&self) -> Result<(), TypeError> {
        if self.kind != Kind::Void {
            if self.size == 0 {
                return Err(TypeError::ZeroSize);
            }
            if self.align == 0 {
                return Err(TypeError::BadAlign(0));
            }
        }
        self.validate_depth(0)
    }

    fn validate_depth(&self, depth: usize) -> Result<(), TypeError> {
        if depth > MAX_DEPTH {
            return Err(TypeError::TooDeep);
        }
        if self.align != 0 && !self.align.is_power_of_two() {
            return Err(TypeError::BadAlign(self.align));
        }
        if self.size > MAX_SIZE {
            return Err(TypeError::TooLarge(self.size));
        }
        match &self.kind {
            Kind::Struct(elems) => {
                for e in elems {
                    e.validate_depth(depth + 1)?;
                }
            }
            Kind::Complex(elem) => {
                if !matches!(elem.kind, Kind::Float | Kind::Double | Kind::LongDouble) {
                    return Err(TypeError::BadComplex);
                }
                elem.validate_depth(depth + 1)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// libffi's `FFI_ALIGN(v, a)` (`include/ffi_common.h`):
/// `(((v - 1) | (a - 1)) + 1)` in `size_t` arithmetic. For a power-of-two
/// `a` it rounds `v` up to a multiple of `a`; for `a == 0` it gives 0, so an
/// element of alignment 0 restarts libffi's offset count at 0.
pub fn ffi_align(v: u64, a: u64) -> u64 {
    (v.wrapping_sub(1) | a.wrapping_sub(1)).wrapping_add(1)
}

/// C layout of a struct: (size, align). libffi's `initialize_aggregate` does
/// the same: each element at the next multiple of its alignment, the size
/// rounded up to the struct's alignment. An empty struct, or one whose
/// elements take no room, has no natural layout (libffi refuses it).
fn natural_layout(elems: &[Type]) -> Result<(u64, u64), TypeError> {
    let mut size = 0u64;
    let mut align = 1u64;
    for e in elems {
        if e.align == 0 || !e.align.is_power_of_two() {
            return Err(TypeError::BadAlign(e.align));
        }
        size = size.next_multiple_of(e.align) + e.size;
        align = align.max(e.align);
        if size > MAX_SIZE {
            return Err(TypeError::TooLarge(size));
        }
    }
    if size == 0 {
        return Err(TypeError::ZeroSize);
    }
    Ok((size.next_multiple_of(align), align))
}
