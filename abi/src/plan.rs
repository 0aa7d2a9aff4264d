//! The result of classification: where a closure entry finds each argument
//! and how it delivers the return value.
//!
//! Locations are byte offsets into one of three areas the entry provides:
//! - the *frame*: the argument registers, saved by the entry in a fixed
//!   layout per architecture (see e.g. [`crate::x86_64::frame`]), plus the
//!   return-register area the entry loads before it returns;
//! - the caller's *stack* arguments, offset 0 being the first stack argument
//!   slot the ABI defines (x86_64 and i386: the word above the return
//!   address);
//! - *scratch*: `Plan::scratch_size` bytes the entry reserves below its frame
//!   for the dispatcher: `avalue[]`, reassembled arguments, the return buffer.

/// How the dispatcher finds argument `i`: `avalue[i]` points at the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgLoc {
    /// The value is stored contiguously in the frame at this offset
    /// (a scalar in one register, or a struct in consecutive saved registers).
    Frame(u32),
    /// The value is on the caller's stack at this offset.
    Stack(u32),
    /// The frame slot at this offset holds a pointer to the value
    /// (passed by reference, e.g. Win64 structs that are not 1, 2, 4 or 8 bytes).
    FramePtr(u32),
    /// The stack slot at this offset holds a pointer to the value.
    StackPtr(u32),
    /// The value is split over registers that are not adjacent in the frame:
    /// the dispatcher copies each piece into scratch at `dst` and points
    /// `avalue[i]` there.
    Gather { dst: u32, pieces: Vec<Piece> },
}

/// One piece of a split value: `len` bytes from frame offset `src` go to byte
/// `at` of the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub src: u32,
    pub at: u32,
    pub len: u32,
}

/// How a value read from the return buffer is widened into a register slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Zero-extend `len` bytes to 8 (unsigned integers, struct pieces, floats).
    Zero,
    /// Sign-extend `len` bytes to 8 (signed integers).
    Sign,
}

/// One move of the return value: `len` bytes at byte `at` of the return
/// buffer, extended by `ext`, into the frame's return slot at offset `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetMove {
    pub at: u32,
    pub len: u32,
    pub ext: Ext,
    pub dst: u32,
}

/// How the return value is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetLoc {
    /// Nothing is returned.
    Void,
    /// The handler writes into the scratch return buffer; these moves load
    /// the return registers from it. The entry then loads every return slot
    /// of the frame into its register ([`RetKind::Regs`]).
    Regs(Vec<RetMove>),
    /// The caller passed a hidden pointer in the frame slot `ptr` (that
    /// register is not available to arguments); the handler writes through
    /// it, and the ABI requires the pointer back in the frame's return slot
    /// `echo` (x86_64: rax).
    Memory { ptr: u32, echo: u32 },
    /// The value goes back on the x87 stack: `st(0)` from the return buffer
    /// (x86 `long double`).
    X87,
    /// Two x87 values: `st(0)` = bytes 0..16, `st(1)` = bytes 16..32 of the
    /// return buffer (x86_64 `_Complex long double`).
    X87Pair,
    /// `st(0)` loaded from the `float` in the return buffer (`flds`; i386).
    X87Float,
    /// `st(0)` loaded from the `double` in the return buffer (`fldl`; i386).
    X87Double,
    /// As [`RetLoc::Memory`], but the caller passed the hidden pointer in
    /// the stack argument slot at offset `ptr` (i386); the handler writes
    /// through it and the pointer goes back in the frame's return slot
    /// `echo`. Whether the callee pops that slot is in
    /// [`Plan::callee_pop`].
    MemoryStack { ptr: u32, echo: u32 },
}

/// What the entry does after the dispatcher returns; the dispatcher returns
/// this code in the return register. Shared with the assembly entries.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetKind {
    /// Load every return slot of the frame into its register.
    Regs = 0,
    /// `fldt` from the return buffer, whose address is in the first return slot.
    X87 = 1,
    /// `fldt 16(buf); fldt (buf)`, buffer address in the first return slot.
    X87Pair = 2,
    /// `flds` from the return buffer, address in the first return slot.
    X87Float = 3,
    /// `fldl` from the return buffer, address in the first return slot.
    X87Double = 4,
}

impl RetLoc {
    /// The code the dispatcher hands back to the entry.
    pub fn kind(&self) -> RetKind {
        match self {
            RetLoc::X87 => RetKind::X87,
            RetLoc::X87Pair => RetKind::X87Pair,
            RetLoc::X87Float => RetKind::X87Float,
            RetLoc::X87Double => RetKind::X87Double,
            RetLoc::Void | RetLoc::Regs(_) | RetLoc::Memory { .. } | RetLoc::MemoryStack { .. } => {
                RetKind::Regs
            }
        }
    }
}

/// The classification of one signature under one ABI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// One location per argument, in order.
    pub args: Vec<ArgLoc>,
    /// Return delivery.
    pub ret: RetLoc,
    /// Offset within scratch of the return buffer the handler writes to
    /// (unused for `RetLoc::Memory*` and `RetLoc::Void`, which still get a
    /// buffer so that a handler writing an `ffi_arg` does no harm).
    pub ret_buf: u32,
    /// Bytes of scratch the entry must reserve (a multiple of 16): `avalue[]`
    /// at offset 0 (one pointer per argument: 8 bytes on 64-bit targets, 4
    /// on i386), then gathered arguments, then the return buffer.
    pub scratch_size: u32,
    /// Bytes of stack arguments the callee pops on return (`ret $N`; 0 where
    /// the caller cleans up), counting a hidden return pointer passed on the
    /// stack where the convention pops it, never anything the trampoline
    /// pushed.
    pub callee_pop: u32,
}
