//! Nix's base-32 encoding ("nix32"), used for store path hash parts and for hashes printed as
//! `sha256:…` (Nix `src/libutil/hash.cc`, `printHash32`).
//!
//! It is not RFC 4648 base32: the alphabet is `0123456789abcdfghijklmnpqrsvwxyz` (no `e`, `o`,
//! `u`, `t`), and the string is written most significant digit first, where digit `n` (counting
//! from the *end* of the string, from 0) holds bits `5n .. 5n+4` of the hash read as one
//! little-endian number. A hash of `L` bytes takes `(8L - 1) / 5 + 1` characters: 20 bytes (a
//! store path's truncated hash) → 32, 32 bytes (SHA-256) → 52.

/// Nix's base-32 alphabet.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// The digit value of each byte, or 0xff for bytes outside the alphabet.
const DIGITS: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 32 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Whether `b` is one of the 32 characters of Nix's base-32 alphabet.
#[inline]
pub(crate) fn is_digit(b: u8) -> bool {
    DIGITS[usize::from(b)] != 0xff
}

/// The number of characters that encode `bytes` bytes.
pub const fn encoded_len(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes * 8 - 1) / 5 + 1
    }
}

/// Encodes `hash` in Nix's base 32.
pub fn encode(hash: &[u8]) -> String {
    let len = encoded_len(hash.len());
    let mut s = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let lo = hash[i] >> j;
        // `hash[i + 1] << (8 - j)` in a u16, so that j = 0 drops it (it would be bits 8.. of
        // the digit) instead of overflowing the shift.
        let hi = hash.get(i + 1).map_or(0, |&h| (u16::from(h) << (8 - j)) as u8);
        s.push(char::from(ALPHABET[usize::from((lo | hi) & 0x1f)]));
    }
    s
}

/// Decodes Nix base 32 into `out.len()` bytes. Fails (returns `None`) on a wrong length, a
/// character outside the alphabet, or bits beyond the hash's length (non-canonical input).
pub(crate) fn decode_into(s: &[u8], out: &mut [u8]) -> Option<()> {
    if s.len() != encoded_len(out.len()) {
        return None;
    }
    out.fill(0);
    for (n, &c) in s.iter().rev().enumerate() {
        let digit = DIGITS[usize::from(c)];
        if digit == 0xff {
            return None;
        }
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let wide = u16::from(digit) << j;
        out[i] |= (wide & 0xff) as u8;
        let carry = (wide >> 8) as u8;
        match out.get_mut(i + 1) {
            Some(next) => *next |= carry,
            None if carry != 0 => return None,
            None => {}
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn lengths() {
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
        assert_eq!(encoded_len(16), 26);
        assert_eq!(encoded_len(64), 103);
    }

    /// `nix-store --dump-db` (base 16) and `nix-store -q --hash` (base 32) of the same path,
    /// from Nix 2.8.0.
    #[test]
    fn matches_nix() {
        let h = hex("3a739bf4a8006a8a818f574058f99fd37b0abea61f9bad2a3f88253899faf6a4");
        let s = encode(&h);
        assert_eq!(s, "197nzackh9c87wmav6qzlsz0lyykkzwmhh2piy0qlsh0m3s9nwrs");
        let mut back = [0u8; 32];
        decode_into(s.as_bytes(), &mut back).unwrap();
        assert_eq!(back.as_slice(), h.as_slice());
    }

    /// The SHA-256 of the empty string, as Nix prints it (`nix hash to-base32`, documented in
    /// the Nix manual).
    #[test]
    fn empty_sha256() {
        let h = hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(encode(&h), "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
    }

    #[test]
    fn rejects() {
        let mut out = [0u8; 20];
        assert!(decode_into(b"0000000000000000000000000000000e", &mut out).is_none());
        assert!(decode_into(b"000", &mut out).is_none());
        // 32 digits hold 160 bits exactly; 26 digits for 16 bytes hold 130: the top 2 must be 0.
        let mut out16 = [0u8; 16];
        assert!(decode_into(b"zzzzzzzzzzzzzzzzzzzzzzzzzz", &mut out16).is_none());
        assert!(decode_into(b"7zzzzzzzzzzzzzzzzzzzzzzzzz", &mut out16).is_some());
        assert_eq!(out16, [0xff; 16]);
    }

    #[test]
    fn round_trip_all_lengths() {
        for len in 1..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(151).wrapping_add(7)).collect();
            let s = encode(&data);
            assert_eq!(s.len(), encoded_len(len));
            let mut back = vec![0u8; len];
            decode_into(s.as_bytes(), &mut back).unwrap();
            assert_eq!(back, data);
        }
    }
}
