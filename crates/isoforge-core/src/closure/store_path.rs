//! Store paths: `<store dir>/<hash>-<name>`, validated as Nix does (`src/libstore/path.cc`).
//!
//! The hash part is 32 characters of Nix base 32 (a SHA-256 truncated to 160 bits); the name is
//! 1 to 211 characters of `[0-9a-zA-Z+._?=-]`. Like current Nix (2.20 and later; 2.8 still
//! accepts them), we also refuse the names `.` and `..` and names whose first dash-separated
//! component is one of those, since those cannot come out of any Nix that checks them.

use std::fmt;

use super::base32;
use super::LineError;

/// Characters in a store path's hash part.
pub const HASH_LEN: usize = 32;

/// The longest store path name Nix accepts.
pub const MAX_NAME_LEN: usize = 211;

/// Nix's default store directory.
pub const DEFAULT_STORE_DIR: &str = "/nix/store";

/// A valid store path, held as its base name (`<hash>-<name>`). Ordering compares base names
/// bytewise, the order of Nix's `StorePathSet`, which for one store directory is also the
/// order of the full paths.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    base: Box<str>,
}

impl StorePath {
    /// Validates a base name (`<hash>-<name>`, no slashes).
    pub(crate) fn from_base_name(base: &str) -> Result<StorePath, LineError> {
        check_base_name(base)?;
        Ok(StorePath { base: base.into() })
    }

    /// The base name, `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.base
    }

    /// The 32-character hash part, what the reference scanner looks for.
    pub(crate) fn hash_part(&self) -> &str {
        &self.base[..HASH_LEN]
    }

    /// The name after the hash and the dash.
    pub fn name(&self) -> &str {
        &self.base[HASH_LEN + 1..]
    }

    /// The full path in `store_dir`.
    pub(crate) fn to_path_in(&self, store_dir: &str) -> String {
        format!("{store_dir}/{}", self.base)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({})", self.base)
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

fn check_base_name(base: &str) -> Result<(), LineError> {
    let bad = |why: String| LineError::BadStorePath { base: base.to_string(), why };
    let bytes = base.as_bytes();
    if bytes.len() < HASH_LEN + 2 || bytes[HASH_LEN] != b'-' {
        return Err(bad(format!("a store path's base name is a {HASH_LEN}-character hash, '-' and a name")));
    }
    if let Some(&c) = bytes[..HASH_LEN].iter().find(|&&c| !base32::is_digit(c)) {
        return Err(bad(format!(
            "the hash part has {:?}, which is not a Nix base-32 digit (0-9 a-z without e o u t)",
            char::from(c)
        )));
    }
    let name = &base[HASH_LEN + 1..];
    if name.len() > MAX_NAME_LEN {
        return Err(bad(format!(
            "the name has {} characters; at most {MAX_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if let Some(c) =
        name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_' | '?' | '=')))
    {
        return Err(bad(format!("the name has {c:?}; only 0-9 a-z A-Z + - . _ ? = are allowed")));
    }
    let first = name.split('-').next().unwrap_or(name);
    if first == "." || first == ".." {
        return Err(bad(format!("the name's first component is {first:?}")));
    }
    Ok(())
}

/// Checks a store directory: absolute, no trailing slash, no empty, `.` or `..` components.
pub(crate) fn check_store_dir(dir: &str) -> Result<(), &'static str> {
    if !dir.starts_with('/') {
        return Err("it must be an absolute path");
    }
    if dir.len() == 1 {
        return Err("it must not be the root directory");
    }
    if dir[1..].split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("it must be a canonical path (no trailing '/', '//', '.' or '..')");
    }
    Ok(())
}

/// Parses one full store path in `store_dir`, with errors that say what the text is instead.
pub(crate) fn parse_full(text: &str, store_dir: &str) -> Result<StorePath, LineError> {
    if !text.starts_with('/') {
        if text.contains('/') || looks_like_base_name(text) {
            return Err(LineError::Relative { text: text.to_string() });
        }
        return Err(LineError::NotAPath { text: text.to_string() });
    }
    let rest = text.strip_prefix(store_dir).and_then(|r| r.strip_prefix('/'));
    let Some(rest) = rest else {
        return Err(LineError::NotInStore { path: text.to_string(), store_dir: store_dir.to_string() });
    };
    if let Some((first, _)) = rest.split_once('/') {
        return Err(LineError::InsideStorePath {
            path: text.to_string(),
            store_path: format!("{store_dir}/{first}"),
        });
    }
    StorePath::from_base_name(rest)
}

fn looks_like_base_name(text: &str) -> bool {
    text.len() > HASH_LEN && text.as_bytes()[HASH_LEN] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "afiv9c5qxzab30yk1im4qf9y95dhz8h4";

    #[test]
    fn valid() {
        let p = parse_full(&format!("/nix/store/{H}-hello-2.12"), DEFAULT_STORE_DIR).unwrap();
        assert_eq!(p.hash_part(), H);
        assert_eq!(p.name(), "hello-2.12");
        assert_eq!(p.to_path_in("/nix/store"), format!("/nix/store/{H}-hello-2.12"));
        for name in ["a", "A+b._?=-x", ".foo", "..foo", "-"] {
            StorePath::from_base_name(&format!("{H}-{name}")).unwrap();
        }
        StorePath::from_base_name(&format!("{H}-{}", "x".repeat(211))).unwrap();
    }

    #[test]
    fn invalid() {
        let dir = DEFAULT_STORE_DIR;
        let cases: &[(&str, &str)] = &[
            ("hello", "not a store path"),
            ("nix/store/x", "relative"),
            ("/tmp/x", "not in the store"),
            ("/nix/storex/a", "not in the store"),
            ("/nix/store", "not in the store"),
            ("/nix/store/a/b", "inside the store path /nix/store/a"),
            ("/nix/store/", "hash"),
            ("/nix/store/short-x", "hash"),
        ];
        for (text, want) in cases {
            let e = parse_full(text, dir).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        for name in ["", ".", "..", ".-x", "..-x", "a b", "a/b", "é"] {
            let e = StorePath::from_base_name(&format!("{H}-{name}"));
            assert!(e.is_err(), "{name:?} accepted");
        }
        assert!(StorePath::from_base_name(&format!("{H}-{}", "x".repeat(212))).is_err());
        assert!(StorePath::from_base_name(&format!("{}e-x", &H[..31])).is_err());
        assert!(StorePath::from_base_name(&format!("{}A-x", &H[..31])).is_err());
        assert!(StorePath::from_base_name(H).is_err());
        assert!(StorePath::from_base_name(&format!("{H}_x")).is_err());
    }

    #[test]
    fn store_dirs() {
        assert!(check_store_dir("/nix/store").is_ok());
        assert!(check_store_dir("/gnu/store").is_ok());
        for bad in ["", "/", "nix/store", "/nix/store/", "/nix//store", "/nix/./store", "/nix/../store"] {
            assert!(check_store_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn order_is_base_name_order() {
        let a = StorePath::from_base_name(&format!("{H}-a")).unwrap();
        let b = StorePath::from_base_name(&format!("{H}-a-b")).unwrap();
        // "a" < "a-b" bytewise, and "/nix/store/…-a" < "/nix/store/…-a-b" too.
        assert!(a < b);
    }
}
