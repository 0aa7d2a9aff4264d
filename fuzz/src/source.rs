//! Where the generator's choices come from: a seeded xorshift generator
//! (the deterministic run, `statictramp-difffuzz --seed S --case I`) or
//! the bytes of a libFuzzer input (`fuzz_targets/difffuzz_case.rs`). One
//! generator draws from either, so every case libFuzzer builds is one the
//! deterministic run could build, and its mutations of the bytes are
//! mutations of the generator's decisions.

/// A stream of random words.
pub trait Source {
    fn next(&mut self) -> u64;
    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// A tiny deterministic generator (xorshift64*): the same seed gives the
/// same cases on every machine and build.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
}

impl Source for Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The bytes of a fuzzer input, read as the generator's decisions.
///
/// A decision below 256 takes one byte, below 65 536 two, else eight
/// (little-endian), so that a byte libFuzzer mutates changes one decision
/// and the bytes after it keep their meaning. Past the end every word is
/// 0: the smallest choice, so short inputs are small cases and every input
/// decodes to a case.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, at: 0 }
    }
    fn take(&mut self, n: usize) -> u64 {
        let mut v = [0u8; 8];
        let end = (self.at + n).min(self.data.len());
        let got = end.saturating_sub(self.at);
        v[..got].copy_from_slice(&self.data[self.at.min(end)..end]);
        self.at = end;
        u64::from_le_bytes(v)
    }
}

impl Source for Bytes<'_> {
    fn next(&mut self) -> u64 {
        self.take(8)
    }
    fn below(&mut self, n: u64) -> u64 {
        let width = if n <= 1 << 8 {
            1
        } else if n <= 1 << 16 {
            2
        } else {
            8
        };
        self.take(width) % n
    }
}

/// Records the decisions a generator takes from another source as the
/// bytes [`Bytes`] would decode to the same decisions: how a case of the
/// deterministic run becomes a libFuzzer input (the seed corpus).
pub struct Recorder<S> {
    pub inner: S,
    pub bytes: Vec<u8>,
}

impl<S: Source> Source for Recorder<S> {
    fn next(&mut self) -> u64 {
        let v = self.inner.next();
        self.bytes.extend_from_slice(&v.to_le_bytes());
        v
    }
    fn below(&mut self, n: u64) -> u64 {
        let v = self.inner.below(n);
        let width = if n <= 1 << 8 {
            1
        } else if n <= 1 << 16 {
            2
        } else {
            8
        };
        self.bytes.extend_from_slice(&v.to_le_bytes()[..width]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::case_from;
    use crate::libffi::target;

    /// A recorded run of the seeded generator decodes, as a fuzzer input,
    /// to the same case (the seed corpus depends on it).
    #[test]
    fn recorded_decisions_decode_to_the_same_case() {
        for i in 0..2000 {
            let mut rec = Recorder {
                inner: Rng::new(i),
                bytes: Vec::new(),
            };
            let case = case_from(&target(), &mut rec);
            let again = case_from(&target(), &mut Bytes::new(&rec.bytes));
            assert_eq!(format!("{case:?}"), format!("{again:?}"), "seed {i}");
        }
    }

    /// Every input decodes to a case, the empty one too; past the end of
    /// the input every decision is 0.
    #[test]
    fn any_bytes_decode() {
        let mut b = Bytes::new(&[7, 1, 2]);
        assert_eq!(b.below(10), 7);
        assert_eq!(b.below(1000), 0x0201);
        assert_eq!(b.below(10), 0);
        assert_eq!(b.next(), 0);
        for len in 0..64 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            case_from(&target(), &mut Bytes::new(&data));
        }
    }
}
