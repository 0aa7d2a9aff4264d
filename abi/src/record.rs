//! The closure record of every architecture: libffi's `ffi_closure` and
//! `ffi_raw_closure` as that architecture's clients see them, and where
//! statictramp keeps its bookkeeping inside `tramp[]`.
//!
//! libffi (include/ffi.h.in):
//!
//! ```c
//! typedef struct {
//!   union { char tramp[FFI_TRAMPOLINE_SIZE]; void *ftramp; };
//!   ffi_cif *cif;
//!   void (*fun)(ffi_cif*, void*, void**, void*);
//!   void *user_data;
//! } ffi_closure __attribute__((aligned (8)));
//!
//! typedef struct {
//!   char tramp[FFI_TRAMPOLINE_SIZE];
//!   ffi_cif *cif;
//! #if !FFI_NATIVE_RAW_API
//!   void (*translate_args)(ffi_cif*, void*, void**, void*);
//!   void *this_closure;
//! #endif
//!   void (*fun)(ffi_cif*, void*, ffi_raw*, void*);
//!   void *user_data;
//! } ffi_raw_closure;          /* ffi_java_raw_closure: the same layout */
//! ```
//!
//! `FFI_TRAMPOLINE_SIZE` and `FFI_NATIVE_RAW_API` come from each
//! architecture's `src/<arch>/ffitarget.h` (cited where each layout is
//! defined: `crate::x86_64::RECORD` and the others).
//!
//! **The header.** Clients never read or write `tramp[]` of a closure that
//! `ffi_closure_alloc` returned (libffi writes its own trampoline there, or
//! nothing at all with static trampolines), so statictramp keeps its
//! header there: three pointer-sized words, `entry`, `plan`, `closure`.
//! The smallest `tramp[]` of any architecture is arm's 12 bytes, exactly
//! three 32-bit words; 64-bit architectures have at least 24 bytes. The
//! slot number, the size class and whether the closure is live are not
//! stored: the slot follows from the record's address (every slot owns the
//! record at a fixed distance), the class of a slot's own record is the
//! `ffi_closure`-sized class, and liveness is what the `closure` word holds
//! (see the runtime's `record` module). Every layout below is checked by
//! `const` assertions when this crate compiles, on any host.

/// What differs between architectures in the closure records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLayout {
    /// Bytes of a pointer (and of `ffi_arg`, `FFI_SIZEOF_ARG`, on every
    /// architecture we ship).
    pub word: u32,
    /// libffi's `FFI_TRAMPOLINE_SIZE`.
    pub tramp_size: u32,
    /// libffi's `FFI_NATIVE_RAW_API`: raw closures receive the caller's
    /// argument area itself (i386) instead of an array translated from
    /// `avalue[]`.
    pub native_raw_api: bool,
}

const fn align_up(v: u32, a: u32) -> u32 {
    v.div_ceil(a) * a
}

impl RecordLayout {
    /// Offset of the header's `entry` word: the code the slot jumps to.
    pub const fn hdr_entry(&self) -> u32 {
        0
    }
    /// Offset of the header's `plan` word: the compiled plan.
    pub const fn hdr_plan(&self) -> u32 {
        self.word
    }
    /// Offset of the header's `closure` word: the `ffi_closure` whose cif,
    /// fun and user_data the entry uses (the record itself, for records
    /// allocated at the slot's own place).
    pub const fn hdr_closure(&self) -> u32 {
        2 * self.word
    }
    /// Bytes of the header.
    pub const fn hdr_size(&self) -> u32 {
        3 * self.word
    }

    /// `ffi_closure.cif`: `tramp[]` is a union with a pointer, so the
    /// fields after it start at the next pointer boundary.
    pub const fn closure_cif(&self) -> u32 {
        align_up(self.tramp_size, self.word)
    }
    /// `ffi_closure.fun`.
    pub const fn closure_fun(&self) -> u32 {
        self.closure_cif() + self.word
    }
    /// `ffi_closure.user_data`.
    pub const fn closure_user_data(&self) -> u32 {
        self.closure_fun() + self.word
    }
    /// `sizeof(ffi_closure)`: rounded up to 8 by `aligned (8)`.
    pub const fn closure_size(&self) -> u32 {
        align_up(self.closure_user_data() + self.word, 8)
    }
    /// `alignof(ffi_closure)`.
    pub const fn closure_align(&self) -> u32 {
        8
    }

    /// `ffi_raw_closure.cif`.
    pub const fn raw_cif(&self) -> u32 {
        align_up(self.tramp_size, self.word)
    }
    /// `ffi_raw_closure.translate_args` and `this_closure`, where the raw
    /// API is not native.
    pub const fn raw_translate_args(&self) -> Option<u32> {
        if self.native_raw_api {
            None
        } else {
            Some(self.raw_cif() + self.word)
        }
    }
    /// `ffi_raw_closure.fun`.
    pub const fn raw_fun(&self) -> u32 {
        if self.native_raw_api {
            self.raw_cif() + self.word
        } else {
            self.raw_cif() + 3 * self.word
        }
    }
    /// `ffi_raw_closure.user_data`.
    pub const fn raw_user_data(&self) -> u32 {
        self.raw_fun() + self.word
    }
    /// `sizeof(ffi_raw_closure)` (no alignment attribute).
    pub const fn raw_size(&self) -> u32 {
        align_up(self.raw_user_data() + self.word, self.word)
    }

    /// The names and values every architecture's asm layout.h must define
    /// for our header and libffi's `ffi_closure` (build.rs checks them).
    pub const fn asm_constants(&self) -> [(&'static str, u64); 8] {
        [
            ("HDR_ENTRY", self.hdr_entry() as u64),
            ("HDR_PLAN", self.hdr_plan() as u64),
            ("HDR_CLOSURE", self.hdr_closure() as u64),
            ("HDR_SIZE", self.hdr_size() as u64),
            ("CLOSURE_CIF", self.closure_cif() as u64),
            ("CLOSURE_FUN", self.closure_fun() as u64),
            ("CLOSURE_USER_DATA", self.closure_user_data() as u64),
            ("CLOSURE_SIZE", self.closure_size() as u64),
        ]
    }

    /// Whether the header fits in `tramp[]` with every word aligned, and
    /// the record is laid out as libffi's C compiler lays it out.
    pub const fn is_consistent(&self) -> bool {
        (self.word == 4 || self.word == 8)
            && self.hdr_size() <= self.tramp_size
            && self.closure_cif() % self.word == 0
            && self.closure_size() % self.closure_align() == 0
            && self.closure_size() >= self.closure_user_data() + self.word
    }
}

/// Checks one architecture's layout against the sizes a C compiler gives
/// its `ffi_closure` and `ffi_raw_closure` (worked out by hand from the
/// structs above and the cited `ffitarget.h` lines).
// Used only by the `const _` items below, which rustc 1.85 (the
// rust-version) does not count as uses.
#[allow(dead_code)]
const fn check(l: RecordLayout, closure: u32, raw: u32) {
    assert!(l.is_consistent());
    assert!(l.closure_size() == closure);
    assert!(l.raw_size() == raw);
}

// x86_64: tramp[32]; cif 32, fun 40, user_data 48; 56 bytes. Raw:
// cif, translate_args, this_closure, fun, user_data: 72 bytes.
const _: () = check(crate::x86_64::RECORD, 56, 72);
// i386: tramp[16]; cif 16, fun 20, user_data 24; 28 -> 32 (aligned 8).
// Raw (native): cif 16, fun 20, user_data 24: 28 bytes.
const _: () = check(crate::i386::RECORD, 32, 28);
// aarch64: tramp[24]; cif 24, fun 32, user_data 40; 48 bytes. Raw: 64.
const _: () = check(crate::aarch64::RECORD, 48, 64);
// arm (Linux): tramp[12]; cif 12, fun 16, user_data 20; 24 bytes. Raw:
// cif 12, translate_args 16, this_closure 20, fun 24, user_data 28: 32.
const _: () = check(crate::arm::RECORD, 24, 32);
// The header fills arm's tramp[] exactly: nothing more may go there.
const _: () = assert!(crate::arm::RECORD.hdr_size() == crate::arm::RECORD.tramp_size);

#[cfg(test)]
mod tests {
    use crate::Arch;

    #[test]
    fn every_arch_has_a_consistent_layout() {
        for arch in Arch::ALL {
            let l = arch.record();
            assert!(l.is_consistent(), "{arch:?}");
            assert_eq!(l.hdr_entry(), 0);
            assert_eq!(l.hdr_plan(), l.word);
            assert_eq!(l.hdr_closure(), 2 * l.word);
            assert!(l.hdr_size() <= l.tramp_size, "{arch:?}");
        }
    }

    #[test]
    fn offsets_per_arch() {
        let x = Arch::X86_64.record();
        assert_eq!(
            (x.closure_cif(), x.closure_fun(), x.closure_user_data()),
            (32, 40, 48)
        );
        assert_eq!(x.raw_translate_args(), Some(40));
        assert_eq!((x.raw_fun(), x.raw_user_data()), (56, 64));
        let i = Arch::I386.record();
        assert_eq!(
            (i.closure_cif(), i.closure_fun(), i.closure_user_data()),
            (16, 20, 24)
        );
        assert_eq!(i.raw_translate_args(), None);
        assert_eq!((i.raw_fun(), i.raw_user_data()), (20, 24));
        let a = Arch::Aarch64.record();
        assert_eq!(
            (a.closure_cif(), a.closure_fun(), a.closure_user_data()),
            (24, 32, 40)
        );
        let r = Arch::Arm.record();
        assert_eq!(
            (r.closure_cif(), r.closure_fun(), r.closure_user_data()),
            (12, 16, 20)
        );
        assert_eq!((r.raw_fun(), r.raw_user_data()), (24, 28));
    }
}
