//! SHA-256 NAR hashes and the textual forms Nix prints and accepts for them.
//!
//! Nix's `Hash::parseAny(s, htSHA256)` (what `nix-store --load-db` uses) accepts, for SHA-256:
//! `sha256:` followed by 64 hex digits or 52 Nix base-32 digits, the bare forms of both, and
//! the SRI form `sha256-` followed by 44 characters of standard base 64.
//! `nix-store --dump-db` prints bare hex; closureInfo's `registration` and
//! `nix-store -q --hash` print `sha256:` and base 32, which is what [`Sha256::to_nix`] gives.

use std::fmt;

use super::base32;

/// A SHA-256 digest (of a NAR serialisation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// `sha256:` followed by Nix base 32, as closureInfo and `nix-store -q --hash` write it.
    pub fn to_nix(&self) -> String {
        format!("sha256:{}", base32::encode(&self.0))
    }

    /// Lower-case hex, as `nix-store --dump-db` writes it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses any form Nix accepts for a SHA-256 hash (see the module docs). `None` when `s`
    /// is none of them.
    pub fn parse(s: &str) -> Option<Sha256> {
        let mut out = [0u8; 32];
        if let Some(b64) = s.strip_prefix("sha256-") {
            decode_base64(b64.as_bytes(), &mut out)?;
            return Some(Sha256(out));
        }
        let body = s.strip_prefix("sha256:").unwrap_or(s);
        match body.len() {
            64 => decode_hex(body.as_bytes(), &mut out)?,
            52 => base32::decode_into(body.as_bytes(), &mut out)?,
            _ => return None,
        }
        Some(Sha256(out))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nix())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_nix())
    }
}

fn decode_hex(s: &[u8], out: &mut [u8; 32]) -> Option<()> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(())
}

/// Standard base 64 with `=` padding: 32 bytes are 43 digits and one `=`.
fn decode_base64(s: &[u8], out: &mut [u8; 32]) -> Option<()> {
    fn digit(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    if s.len() != 44 || s[43] != b'=' {
        return None;
    }
    let mut bytes = Vec::with_capacity(33);
    for quad in s.chunks_exact(4) {
        let mut v = 0u32;
        let mut n = 0;
        for &c in quad {
            if c == b'=' {
                v <<= 6;
            } else {
                v = (v << 6) | digit(c)?;
                n += 1;
            }
        }
        let got = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        bytes.extend_from_slice(&got[..n - 1]);
    }
    if bytes.len() != 32 {
        return None;
    }
    out.copy_from_slice(&bytes);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_forms() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let h = Sha256::parse(hex).unwrap();
        assert_eq!(h.to_hex(), hex);
        assert_eq!(h.to_nix(), "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
        assert_eq!(Sha256::parse(&format!("sha256:{hex}")), Some(h));
        assert_eq!(Sha256::parse(&h.to_nix()), Some(h));
        assert_eq!(Sha256::parse("0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"), Some(h));
        // SRI, as `nix hash to-sri` prints it.
        assert_eq!(Sha256::parse("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), Some(h));
        assert_eq!(Sha256::parse("sha256:xyz"), None);
        assert_eq!(Sha256::parse("md5:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"), None);
        assert_eq!(Sha256::parse("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"), None);
    }
}
