//! Shared helpers of isoforge's benchmarks: a seeded generator and in-memory trees.
//!
//! The benchmarks must be rerunnable: every choice they make comes from [`SplitMix64`] seeded
//! on the command line, never from the clock or the OS.
#![deny(missing_docs)]

use std::sync::Arc;

use isoforge_formats::tree::Tree;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, seeded generator. Not for
/// cryptography; enough for choosing files and sizes reproducibly.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; 0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for n far below 2^64.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a slice of length `len`.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// Fills `buf` with random bytes (8 a call, little-endian; the tail from one more call).
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let last = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
    }

    /// A size drawn from a piecewise-linear distribution: `table` holds (per-mille, size)
    /// points, per-mille increasing from 0 to 1000; a draw picks a per-mille uniformly and
    /// interpolates the size between the two points around it.
    pub fn quantile(&mut self, table: &[(u64, u64)]) -> u64 {
        let u = self.below(1_000_000);
        for w in table.windows(2) {
            let ((p0, s0), (p1, s1)) = (w[0], w[1]);
            let (lo, hi) = (p0 * 1000, p1 * 1000);
            if u < hi && hi > lo {
                return s0 + (s1.saturating_sub(s0)) * (u - lo) / (hi - lo);
            }
        }
        table.last().map_or(0, |&(_, s)| s)
    }
}

/// Parses a byte count with an optional K/M/G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KIB" => 1 << 10,
        "M" | "MIB" => 1 << 20,
        "G" | "GIB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// An in-memory input tree of `entries` small files spread over directories of at most
/// `fanout` entries each, names and contents from `seed`. Used by the planning benchmark.
pub fn synthetic_tree(entries: usize, fanout: usize, seed: u64) -> Tree {
    let mut rng = SplitMix64::new(seed);
    let mut tree = Tree::new();
    let fanout = fanout.max(2);
    let shared: Arc<[u8]> = Arc::from(&b"#!/bin/sh\nexec true\n"[..]);
    for i in 0..entries {
        let d1 = i / (fanout * fanout);
        let d2 = (i / fanout) % fanout;
        let len = 8 + rng.index(40);
        let name: String = (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
        let path = format!("/p{d1:04}/d{d2:03}/{name}-{i}");
        let bytes = if i % 3 == 0 { shared.clone() } else { Arc::from(format!("file {i}\n").into_bytes()) };
        // Names are unique by their index suffix, so adding cannot collide.
        if tree.add_bytes(&path, bytes).is_err() {
            continue;
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_seeded() {
        let a: Vec<u64> = (0..4).scan(SplitMix64::new(7), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..4).scan(SplitMix64::new(7), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], SplitMix64::new(8).next_u64());
    }

    #[test]
    fn fill_and_quantile() {
        let mut a = [0u8; 13];
        SplitMix64::new(3).fill(&mut a);
        let mut b = [0u8; 13];
        SplitMix64::new(3).fill(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, [0u8; 13]);
        let table = [(0, 10), (500, 20), (1000, 100)];
        let mut r = SplitMix64::new(1);
        for _ in 0..1000 {
            let s = r.quantile(&table);
            assert!((10..=100).contains(&s));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("300M"), Some(300 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1X"), None);
    }
}
