//! Reference scanning: which store paths' hash parts occur in a NAR (Nix
//! `src/libstore/references.cc`, `RefScanSink`).
//!
//! Nix records a reference from path P to path Q when Q's 32-character hash part occurs
//! anywhere in P's NAR serialisation: in file contents, symlink targets or file names. A
//! builder may only reference its inputs, so Nix scans for the hash parts of the build's input
//! closure and outputs; we scan for those of every closure member (including the path itself),
//! which finds the same references for any closure Nix built. Matching runs over the NAR byte
//! stream exactly as Nix's does, so a hash split across two writes is still found.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};

use sha2::{Digest, Sha256 as Sha256Hasher};

use super::base32;
use super::hash::Sha256;
use super::store_path::HASH_LEN;

/// The hash parts to look for, each mapped to a caller-chosen index (the position of the path
/// in the closure).
#[derive(Debug, Default)]
pub struct Candidates {
    map: HashMap<[u8; HASH_LEN], u32>,
}

impl Candidates {
    /// An empty set.
    pub fn new() -> Candidates {
        Candidates::default()
    }

    /// Adds a hash part (32 Nix base-32 characters) with its index; a hash part added twice
    /// keeps its first index.
    pub fn insert(&mut self, hash_part: &[u8; HASH_LEN], index: u32) {
        self.map.entry(*hash_part).or_insert(index);
    }

    /// The number of hash parts.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A streaming scanner: feed it the NAR in pieces of any size, then take the indices found.
#[derive(Debug)]
pub(crate) struct RefScanner<'a> {
    candidates: &'a Candidates,
    found: BTreeSet<u32>,
    /// The last (up to 31) bytes seen, for matches that span two pieces.
    tail: Vec<u8>,
}

impl<'a> RefScanner<'a> {
    /// A scanner for `candidates`.
    pub fn new(candidates: &'a Candidates) -> RefScanner<'a> {
        RefScanner { candidates, found: BTreeSet::new(), tail: Vec::with_capacity(2 * HASH_LEN) }
    }

    /// Scans the next piece of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.candidates.is_empty() || data.is_empty() {
            return;
        }
        let keep = HASH_LEN - 1;
        if !self.tail.is_empty() {
            // Windows that start in the tail and end in `data`.
            let head = &data[..data.len().min(keep)];
            let mut joined = std::mem::take(&mut self.tail);
            let tail_len = joined.len();
            joined.extend_from_slice(head);
            self.search(&joined);
            joined.truncate(tail_len);
            self.tail = joined;
        }
        self.search(data);
        if data.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - keep..]);
        } else {
            self.tail.extend_from_slice(data);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    /// The indices of the candidates found, in increasing order.
    pub fn finish(self) -> Vec<u32> {
        self.found.into_iter().collect()
    }

    fn search(&mut self, s: &[u8]) {
        let n = s.len();
        let mut i = 0;
        while i + HASH_LEN <= n {
            // Skip past the last byte of the window that cannot be part of a hash.
            if let Some(j) = s[i..i + HASH_LEN].iter().rposition(|&b| !base32::is_digit(b)) {
                i += j + 1;
                continue;
            }
            // s[i..k] is a run of digits: test every window of it.
            let mut k = i + HASH_LEN;
            self.check(&s[k - HASH_LEN..k]);
            while k < n && base32::is_digit(s[k]) {
                k += 1;
                self.check(&s[k - HASH_LEN..k]);
            }
            i = k + 1;
        }
    }

    fn check(&mut self, window: &[u8]) {
        if let Ok(key) = <&[u8; HASH_LEN]>::try_from(window) {
            if let Some(&index) = self.candidates.map.get(key) {
                self.found.insert(index);
            }
        }
    }
}

/// A sink that takes a NAR stream and computes what Nix records about it: the SHA-256, the
/// size, and the references found.
pub(crate) struct NarDigest<'a> {
    hasher: Sha256Hasher,
    size: u64,
    scanner: RefScanner<'a>,
}

impl<'a> NarDigest<'a> {
    /// A sink scanning for `candidates`.
    pub fn new(candidates: &'a Candidates) -> NarDigest<'a> {
        NarDigest { hasher: Sha256Hasher::new(), size: 0, scanner: RefScanner::new(candidates) }
    }

    /// The NAR hash, NAR size and the indices of the candidates found.
    pub fn finish(self) -> (Sha256, u64, Vec<u32>) {
        (Sha256(self.hasher.finalize().into()), self.size, self.scanner.finish())
    }
}

impl Write for NarDigest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        self.scanner.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8; 32] = b"afiv9c5qxzab30yk1im4qf9y95dhz8h4";
    const B: &[u8; 32] = b"j6jap9cbcfc4bynkg71skzrfz7xabhq6";

    fn cands() -> Candidates {
        let mut c = Candidates::new();
        c.insert(A, 0);
        c.insert(B, 1);
        c
    }

    fn scan(pieces: &[&[u8]]) -> Vec<u32> {
        let c = cands();
        let mut s = RefScanner::new(&c);
        for p in pieces {
            s.feed(p);
        }
        s.finish()
    }

    #[test]
    fn finds_in_text_and_runs() {
        assert_eq!(scan(&[b"/nix/store/afiv9c5qxzab30yk1im4qf9y95dhz8h4-d/bin"]), vec![0]);
        // Inside a longer run of digits (Nix finds those too).
        assert_eq!(
            scan(&[b"xx0j6jap9cbcfc4bynkg71skzrfz7xabhq6zz afiv9c5qxzab30yk1im4qf9y95dhz8h4"]),
            vec![0, 1]
        );
        assert_eq!(scan(&[b"afiv9c5qxzab30yk1im4qf9y95dhz8h"]), Vec::<u32>::new());
        assert_eq!(scan(&[b"afiv9c5qxzab30yk1im4qf9y95dhz8hX"]), Vec::<u32>::new());
    }

    #[test]
    fn spans_pieces() {
        let text = b"..../nix/store/afiv9c5qxzab30yk1im4qf9y95dhz8h4-x....";
        for cut1 in 0..text.len() {
            for cut2 in cut1..text.len() {
                let got = scan(&[&text[..cut1], &text[cut1..cut2], &text[cut2..]]);
                assert_eq!(got, vec![0], "cuts {cut1} {cut2}");
            }
        }
        // One byte at a time.
        let pieces: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(scan(&pieces), vec![0]);
    }

    #[test]
    fn digest_counts() {
        let c = cands();
        let mut d = NarDigest::new(&c);
        d.write_all(b"abc").unwrap();
        let (h, n, refs) = d.finish();
        assert_eq!(n, 3);
        assert!(refs.is_empty());
        assert_eq!(h.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
