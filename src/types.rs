//! libffi's predefined scalar types (`ffi_type_uint8` ... `ffi_type_pointer`)
//! as this architecture lays them out, for [`Closure`](crate::Closure)
//! signatures that build on every target:
//!
//! ```
//! use statictramp::{Closure, DEFAULT_ABI, types};
//! let c = Closure::new(DEFAULT_ABI, vec![types::S64, types::DOUBLE], types::DOUBLE, |args, ret| {
//!     let (n, x): (i64, f64) = (args.get(0).unwrap(), args.get(1).unwrap());
//!     ret.set(n as f64 * x).unwrap();
//! })
//! .unwrap();
//! // SAFETY: the closure's signature is double(long long, double) in the C convention.
//! let f: extern "C" fn(i64, f64) -> f64 = unsafe { std::mem::transmute(c.code_ptr()) };
//! assert_eq!(f(3, 1.5), 4.5);
//! ```
//!
//! The constants of [`Type`] itself (`Type::DOUBLE`, `Type::POINTER`, ...)
//! carry the x86_64 layouts, which statictramp-abi classifies on any host;
//! on another architecture a scalar whose size or alignment differs from
//! that architecture's (i386: `double` and 64-bit integers are 4-aligned,
//! pointers 4 bytes, `long double` 12) is refused as a bad type, as libffi
//! would refuse it. These are taken from the architecture's own table
//! (`Arch::scalar_layout`).

use crate::arch::ARCH;
use statictramp_abi::{Kind, Type};

/// The scalar of kind `kind` with this architecture's size and alignment.
const fn scalar(kind: Kind) -> Type {
    let Some((size, align)) = ARCH.scalar_layout(&kind) else {
        panic!("not a scalar kind");
    };
    Type { kind, size, align }
}

/// `void` (a return type only).
pub const VOID: Type = Type::VOID;
pub const U8: Type = scalar(Kind::U8);
pub const S8: Type = scalar(Kind::S8);
pub const U16: Type = scalar(Kind::U16);
pub const S16: Type = scalar(Kind::S16);
pub const U32: Type = scalar(Kind::U32);
pub const S32: Type = scalar(Kind::S32);
pub const U64: Type = scalar(Kind::U64);
pub const S64: Type = scalar(Kind::S64);
pub const FLOAT: Type = scalar(Kind::Float);
pub const DOUBLE: Type = scalar(Kind::Double);
/// The x87 80-bit extended type on x86 (16 bytes on x86_64, 12 on i386).
pub const LONGDOUBLE: Type = scalar(Kind::LongDouble);
/// A data pointer (`void *`).
pub const POINTER: Type = scalar(Kind::Pointer);

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    /// The Rust types the safe API reads and writes for each kind have the
    /// sizes these constants state (alignment inside structs is the ABI's,
    /// which may be less than Rust's, as for i386's `u64`).
    #[test]
    fn sizes_match_the_rust_types() {
        let rust = [
            (&U8, size_of::<u8>()),
            (&S8, size_of::<i8>()),
            (&U16, size_of::<u16>()),
            (&S16, size_of::<i16>()),
            (&U32, size_of::<u32>()),
            (&S32, size_of::<i32>()),
            (&U64, size_of::<u64>()),
            (&S64, size_of::<i64>()),
            (&FLOAT, size_of::<f32>()),
            (&DOUBLE, size_of::<f64>()),
            (&POINTER, size_of::<*const u8>()),
        ];
        for (t, size) in rust {
            assert_eq!(t.size, size as u64, "{t:?}");
            assert!(t.align <= t.size && t.align.is_power_of_two(), "{t:?}");
        }
        assert_eq!(POINTER.align, align_of::<*const u8>() as u64);
    }
}
