//! The scratch area every architecture's Plans lay out the same way:
//! `avalue[]` at offset 0 (one pointer-sized entry per argument: 8 bytes
//! on x86_64, 4 on i386), then the 16-byte gather areas, then the
//! 16-aligned return buffer; the whole a multiple of 16.

use crate::{ArgLoc, ClassifyError, Plan, RetLoc};

/// Narrows an offset; a signature whose areas exceed 4 GiB is refused.
pub(crate) fn to_u32(v: u64) -> Result<u32, ClassifyError> {
    u32::try_from(v).map_err(|_| ClassifyError::Unsupported("signature too large"))
}

/// Scratch offset of gather area `g` for a signature with `nargs`
/// arguments, `word` bytes per `avalue[]` entry.
pub(crate) fn gather_dst(word: u64, nargs: usize, g: u64) -> Result<u32, ClassifyError> {
    to_u32(word * nargs as u64 + 16 * g)
}

/// Assembles the [`Plan`]: `avalue[]` at 0 (`word` bytes per argument),
/// `ngather` 16-byte gather areas right after it (their offsets,
/// [`gather_dst`], are already in `args`), then a 16-aligned return buffer
/// of `ret_len` bytes (at least 16: the dispatcher zeroes 16 before the
/// handler runs).
pub(crate) fn finish(
    word: u64,
    args: Vec<ArgLoc>,
    ret: RetLoc,
    ret_len: u64,
    ngather: u64,
    callee_pop: u32,
) -> Result<Plan, ClassifyError> {
    debug_assert!(ret_len >= 16);
    let gathers_end = word * args.len() as u64 + 16 * ngather;
    let ret_buf = gathers_end.next_multiple_of(16);
    let scratch = (ret_buf + ret_len).next_multiple_of(16);
    Ok(Plan {
        args,
        ret,
        ret_buf: to_u32(ret_buf)?,
        scratch_size: to_u32(scratch)?,
        callee_pop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_per_word_size() {
        let args = vec![ArgLoc::Stack(0); 3];
        // 8-byte entries: 24 bytes of avalue[], buffer at 32.
        let p = finish(8, args.clone(), RetLoc::Void, 32, 0, 0).unwrap();
        assert_eq!((p.ret_buf, p.scratch_size, p.callee_pop), (32, 64, 0));
        // 4-byte entries: 12 bytes, buffer at 16.
        let p = finish(4, args.clone(), RetLoc::Void, 16, 0, 12).unwrap();
        assert_eq!((p.ret_buf, p.scratch_size, p.callee_pop), (16, 32, 12));
        // Gather areas follow avalue[] unaligned, the buffer is aligned.
        assert_eq!(gather_dst(4, 3, 1), Ok(28));
        let p = finish(4, args, RetLoc::Void, 16, 2, 0).unwrap();
        assert_eq!((p.ret_buf, p.scratch_size), (48, 64));
        assert_eq!(
            to_u32(1 << 32),
            Err(ClassifyError::Unsupported("signature too large"))
        );
    }
}
