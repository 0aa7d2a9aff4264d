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
    /// Fields in declaration order; offsets follow C layout rules.
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
    /// A struct with no elements (libffi rejects these in `ffi_prep_cif`).
    EmptyStruct,
    /// A struct member of type void.
    VoidMember,
    /// Alignment zero or not a power of two.
    BadAlign(u64),
    /// The stated size/alignment disagrees with the C layout of the elements.
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
            TypeError::EmptyStruct => write!(f, "struct with no elements"),
            TypeError::VoidMember => write!(f, "struct member of type void"),
            TypeError::BadAlign(a) => write!(f, "alignment {a} is not a power of two"),
            TypeError::LayoutMismatch {
                stated_size,
                stated_align,
                size,
                align,
            } => write!(
                f,
                "stated size/alignment {stated_size}/{stated_align} disagree with the layout of the elements ({size}/{align})"
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

    /// A struct laid out by C rules from its elements.
    pub fn structure(elems: Vec<Type>) -> Result<Type, TypeError> {
        let (size, align) = struct_layout(&elems)?;
        Ok(Type {
            kind: Kind::Struct(elems),
            size,
            align,
        })
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

    /// Checks that the stated size and alignment agree with the layout of
    /// the elements, recursively; the result of reading a C `ffi_type` must
    /// pass this before it is classified.
    pub fn validate(&self) -> Result<(), TypeError> {
        self.validate_depth(0)
    }

    fn validate_depth(&self, depth: usize) -> Result<(), TypeError> {
        if depth > MAX_DEPTH {
            return Err(TypeError::TooDeep);
        }
        if self.align == 0 || !self.align.is_power_of_two() {
            return Err(TypeError::BadAlign(self.align));
        }
        if self.size > MAX_SIZE {
            return Err(TypeError::TooLarge(self.size));
        }
        match &self.kind {
            Kind::Struct(elems) => {
                for e in elems {
                    if e.kind == Kind::Void {
                        return Err(TypeError::VoidMember);
                    }
                    e.validate_depth(depth + 1)?;
                }
                let (size, align) = struct_layout(elems)?;
                if size != self.size || align != self.align {
                    return Err(TypeError::LayoutMismatch {
                        stated_size: self.size,
                        stated_align: self.align,
                        size,
                        align,
                    });
                }
            }
            Kind::Complex(elem)
                if !matches!(elem.kind, Kind::Float | Kind::Double | Kind::LongDouble) =>
            {
                return Err(TypeError::BadComplex);
            }
            _ => {}
        }
        Ok(())
    }

    /// Byte offsets of a struct's elements (C layout); empty for non-structs.
    pub fn field_offsets(&self) -> Vec<u64> {
        let Kind::Struct(elems) = &self.kind else {
            return Vec::new();
        };
        let mut off = 0u64;
        elems
            .iter()
            .map(|e| {
                off = off.next_multiple_of(e.align);
                let here = off;
                off += e.size;
                here
            })
            .collect()
    }
}

/// C layout of a struct: (size, align). libffi's `initialize_aggregate` does
/// the same: each element at the next multiple of its alignment, the size
/// rounded up to the struct's alignment.
fn struct_layout(elems: &[Type]) -> Result<(u64, u64), TypeError> {
    if elems.is_empty() {
        return Err(TypeError::EmptyStruct);
    }
    let mut size = 0u64;
    let mut align = 1u64;
    for e in elems {
        if e.kind == Kind::Void {
            return Err(TypeError::VoidMember);
        }
        if e.align == 0 || !e.align.is_power_of_two() {
            return Err(TypeError::BadAlign(e.align));
        }
        size = size.next_multiple_of(e.align) + e.size;
        align = align.max(e.align);
        if size > MAX_SIZE {
            return Err(TypeError::TooLarge(size));
        }
    }
    Ok((size.next_multiple_of(align), align))
}
