//! File identifiers: ISO 9660 level 3 names as `xorriso -as mkisofs -iso-level 3
//! -full-iso9660-filenames` maps them, and Joliet names.
//!
//! ISO 9660 (checked against xorriso 1.5): each character of the (UTF-8) name becomes one
//! character: `a`–`z` are upper-cased, `A`–`Z`, `0`–`9` and `_` are kept, anything else
//! becomes `_`. The last `.` separates name and extension unless it ends the name; other dots
//! become `_`. Name and extension together hold at most 30 characters: when longer, the
//! extension keeps `min(len, max(3, 30 − name))` characters and the name the rest. Files get
//! `.` and `;1` (`README` → `README.;1`), directories get neither when they have no extension.
//!
//! Collisions within a directory are resolved like xorriso: every member of a colliding group
//! gets a decimal counter appended to its name part (truncated to make room), counting from 0
//! and skipping identifiers already in use; groups are taken in identifier order and members
//! in the order of their original names, so the result depends only on the set of names.
//!
//! Joliet: names are kept (UCS-2), with `* / : ; ? \` and control characters replaced by `_`,
//! truncated to 64 characters keeping a short extension, and made unique the same way. No
//! `;1` version is written, as xorriso does.

use std::collections::{BTreeMap, BTreeSet};

/// Longest name plus extension in an ISO 9660 identifier (excluding the dot and version).
const ISO_NAME_EXT_MAX: usize = 30;
/// Longest Joliet name in UCS-2 characters.
pub const JOLIET_MAX_CHARS: usize = 64;

/// An ISO 9660 identifier split into parts, before the version suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IsoParts {
    name: Vec<u8>,
    ext: Option<Vec<u8>>,
}

fn map_char(c: char) -> u8 {
    match c {
        'a'..='z' => c.to_ascii_uppercase() as u8,
        'A'..='Z' | '0'..='9' | '_' => c as u8,
        _ => b'_',
    }
}

fn iso_parts(name: &[u8]) -> IsoParts {
    let chars: Vec<char> = String::from_utf8_lossy(name).chars().collect();
    let sep = chars.iter().rposition(|&c| c == '.').filter(|&i| i + 1 < chars.len());
    let (n, e) = match sep {
        Some(i) => (&chars[..i], Some(&chars[i + 1..])),
        None => (&chars[..], None),
    };
    let mut name: Vec<u8> = n.iter().map(|&c| map_char(c)).collect();
    let mut ext: Option<Vec<u8>> = e.map(|e| e.iter().map(|&c| map_char(c)).collect());
    let ext_len = ext.as_ref().map_or(0, Vec::len);
    if name.len() + ext_len > ISO_NAME_EXT_MAX {
        if let Some(ext) = ext.as_mut() {
            let keep = ext.len().min(3.max(ISO_NAME_EXT_MAX.saturating_sub(name.len())));
            ext.truncate(keep);
        }
        let ext_len = ext.as_ref().map_or(0, Vec::len);
        name.truncate(ISO_NAME_EXT_MAX - ext_len);
    }
    IsoParts { name, ext }
}

fn iso_identifier(p: &IsoParts, is_dir: bool) -> Vec<u8> {
    let mut id = p.name.clone();
    match (&p.ext, is_dir) {
        (Some(e), _) => {
            id.push(b'.');
            id.extend_from_slice(e);
        }
        (None, false) => id.push(b'.'),
        (None, true) => {}
    }
    if !is_dir {
        id.extend_from_slice(b";1");
    }
    id
}

/// One directory entry to name: its original name bytes and whether it is a directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryName<'a> {
    /// The original (Rock Ridge) name.
    pub(crate) name: &'a [u8],
    /// Directories get no `.` or `;1`.
    pub(crate) is_dir: bool,
}

/// Unique ISO 9660 identifiers for the entries of one directory, in the same order as given.
///
/// Entries must be given in the order of their original names (tree order), which is the
/// order members of a colliding group are numbered in.
pub(crate) fn iso_names(entries: &[EntryName<'_>]) -> Vec<Vec<u8>> {
    let parts: Vec<IsoParts> = entries.iter().map(|e| iso_parts(e.name)).collect();
    let ids: Vec<Vec<u8>> = parts.iter().zip(entries).map(|(p, e)| iso_identifier(p, e.is_dir)).collect();
    resolve(ids, |i, digits| {
        let p = &parts[i];
        let ext_len = p.ext.as_ref().map_or(0, Vec::len);
        // A mangled directory name without extension may use all 31 characters (xorriso).
        let max = if entries[i].is_dir && p.ext.is_none() { ISO_NAME_EXT_MAX + 1 } else { ISO_NAME_EXT_MAX };
        let room = max.saturating_sub(ext_len + digits.len());
        let mut name = p.name.clone();
        name.truncate(room);
        name.extend_from_slice(digits.as_bytes());
        iso_identifier(&IsoParts { name, ext: p.ext.clone() }, entries[i].is_dir)
    })
}

fn joliet_char(c: char) -> u16 {
    match c {
        '*' | '/' | ':' | ';' | '?' | '\\' => u16::from(b'_'),
        c if (c as u32) < 0x20 => u16::from(b'_'),
        c => u16::try_from(c as u32).unwrap_or(u16::from(b'_')),
    }
}

/// Splits UCS-2 units at the last dot (not at the start or end) into name and extension.
fn joliet_split(units: &[u16]) -> (&[u16], Option<&[u16]>) {
    match units.iter().rposition(|&u| u == u16::from(b'.')) {
        Some(i) if i > 0 && i + 1 < units.len() => (&units[..i], Some(&units[i + 1..])),
        _ => (units, None),
    }
}

/// Builds a Joliet name of at most `max` units from a name part, an optional extension and a
/// counter suffix, keeping the extension when it leaves room for some of the name.
fn joliet_fit(name: &[u16], ext: Option<&[u16]>, suffix: &[u16], max: usize) -> Vec<u16> {
    let ext_len = ext.map_or(0, |e| e.len() + 1);
    let (name_room, keep_ext) = if ext_len + suffix.len() < max / 2 {
        (max - ext_len - suffix.len(), true)
    } else {
        (max.saturating_sub(suffix.len()), false)
    };
    let mut out: Vec<u16> = Vec::with_capacity(max);
    if keep_ext {
        out.extend(name.iter().take(name_room));
        out.extend_from_slice(suffix);
        if let Some(e) = ext {
            out.push(u16::from(b'.'));
            out.extend_from_slice(e);
        }
    } else {
        let mut whole: Vec<u16> = name.to_vec();
        if let Some(e) = ext {
            whole.push(u16::from(b'.'));
            whole.extend_from_slice(e);
        }
        out.extend(whole.iter().take(name_room));
        out.extend_from_slice(suffix);
    }
    out
}

/// Unique Joliet identifiers (UCS-2 code units) for one directory's entries, in order.
/// Entries must be in the order of their original names, as for [`iso_names`].
pub(crate) fn joliet_names(entries: &[EntryName<'_>]) -> Vec<Vec<u16>> {
    let units: Vec<Vec<u16>> =
        entries.iter().map(|e| String::from_utf8_lossy(e.name).chars().map(joliet_char).collect()).collect();
    let ids: Vec<Vec<u16>> = units
        .iter()
        .map(|u| {
            if u.len() <= JOLIET_MAX_CHARS {
                u.clone()
            } else {
                let (n, e) = joliet_split(u);
                joliet_fit(n, e, &[], JOLIET_MAX_CHARS)
            }
        })
        .collect();
    resolve(ids, |i, digits| {
        let (n, e) = joliet_split(&units[i]);
        let suffix: Vec<u16> = digits.bytes().map(u16::from).collect();
        joliet_fit(n, e, &suffix, JOLIET_MAX_CHARS)
    })
}

/// Resolves collisions among `ids`: members of each colliding group, in index order, get
/// `rename(i, digits)` with a decimal counter counting from 0 and skipping identifiers in use.
/// Like xorriso, every counter of a group has the same width, enough for the group's size
/// (`0`–`9` for up to ten members, `00`–`99` for up to a hundred), zero-padded.
fn resolve<T: Ord + Clone>(mut ids: Vec<T>, rename: impl Fn(usize, &str) -> T) -> Vec<T> {
    let mut groups: BTreeMap<T, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        groups.entry(id.clone()).or_default().push(i);
    }
    let mut taken: BTreeSet<T> = groups.keys().cloned().collect();
    for members in groups.into_values().filter(|m| m.len() > 1) {
        let width = (members.len() - 1).to_string().len();
        let mut counter = 0u64;
        for i in members {
            loop {
                let candidate = rename(i, &format!("{counter:0width$}"));
                counter += 1;
                if taken.insert(candidate.clone()) {
                    ids[i] = candidate;
                    break;
                }
            }
        }
    }
    ids
}

/// ECMA-119 9.3 ordering of file identifiers: name parts compared padded with spaces, then
/// extensions padded with spaces, then (not needed here: one version per name) versions.
pub(crate) fn ecma_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn split(id: &[u8]) -> (&[u8], &[u8]) {
        let id = match id.iter().position(|&c| c == b';') {
            Some(i) => &id[..i],
            None => id,
        };
        match id.iter().position(|&c| c == b'.') {
            Some(i) => (&id[..i], &id[i + 1..]),
            None => (id, &[]),
        }
    }
    fn padded_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        let n = a.len().max(b.len());
        (0..n)
            .map(|i| a.get(i).copied().unwrap_or(b' '))
            .cmp((0..n).map(|i| b.get(i).copied().unwrap_or(b' ')))
    }
    let (an, ae) = split(a);
    let (bn, be) = split(b);
    padded_cmp(an, bn).then_with(|| padded_cmp(ae, be)).then_with(|| a.cmp(b))
}

/// The same ordering for Joliet identifiers (UCS-2 units compared padded with spaces).
pub(crate) fn joliet_order(a: &[u16], b: &[u16]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    (0..n).map(|i| a.get(i).copied().unwrap_or(0x20)).cmp((0..n).map(|i| b.get(i).copied().unwrap_or(0x20)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(&str, bool)]) -> Vec<String> {
        let mut sorted: Vec<(&str, bool)> = list.to_vec();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let e: Vec<EntryName> =
            sorted.iter().map(|(n, d)| EntryName { name: n.as_bytes(), is_dir: *d }).collect();
        iso_names(&e).into_iter().map(|v| String::from_utf8(v).unwrap()).collect()
    }

    fn one(n: &str, dir: bool) -> String {
        names(&[(n, dir)]).remove(0)
    }

    #[test]
    fn xorriso_mapping() {
        // Each case observed with xorriso 1.5.4 -iso-level 3 -full-iso9660-filenames.
        assert_eq!(one("README", false), "README.;1");
        assert_eq!(one(".hidden", false), ".HIDDEN;1");
        assert_eq!(one("..dots", false), "_.DOTS;1");
        assert_eq!(one("noext.", false), "NOEXT_.;1");
        assert_eq!(one("hello world.tar.gz", false), "HELLO_WORLD_TAR.GZ;1");
        assert_eq!(one("ünïcödé.txt", false), "_N_C_D_.TXT;1");
        assert_eq!(one("a.b.c", true), "A_B.C");
        assert_eq!(one("sub dir.d", true), "SUB_DIR.D");
        assert_eq!(one(&"d".repeat(35), true), "D".repeat(30));
        assert_eq!(
            one(&format!("{}.{}", "e".repeat(20), "f".repeat(20)), true),
            format!("{}.{}", "E".repeat(20), "F".repeat(10))
        );
        assert_eq!(one(&format!("ab.{}", "h".repeat(40)), false), format!("AB.{};1", "H".repeat(28)));
        assert_eq!(
            one(&format!("{}.{}", "k".repeat(40), "m".repeat(8)), false),
            format!("{}.MMM;1", "K".repeat(27))
        );
        assert_eq!(one(&format!("{}.txt", "a".repeat(40)), false), format!("{}.TXT;1", "A".repeat(27)));
    }

    #[test]
    fn xorriso_collisions() {
        assert_eq!(
            names(&[("README", false), ("readme.txt", false), ("Readme.TXT", false)]),
            vec!["README.;1", "README0.TXT;1", "README1.TXT;1"]
        );
        let b40 = format!("{}.txt", "B".repeat(40));
        let b40l = format!("{}.txt", "b".repeat(40));
        assert_eq!(
            names(&[(&b40, false), (&b40l, false)]),
            vec![format!("{}0.TXT;1", "B".repeat(26)), format!("{}1.TXT;1", "B".repeat(26))]
        );
        let mut list: Vec<(String, bool)> = Vec::new();
        for i in 1..=12 {
            list.push((format!("collide{i}.x"), false));
            list.push((format!("COLLIDE{i}.X"), false));
        }
        let refs: Vec<(&str, bool)> = list.iter().map(|(s, d)| (s.as_str(), *d)).collect();
        let got = names(&refs);
        // Sorted input: COLLIDE1.X, COLLIDE10.X, ... then collide1.x, ...
        assert_eq!(got[0], "COLLIDE13.X;1");
        assert_eq!(got[12], "COLLIDE14.X;1");
        assert_eq!(got[1], "COLLIDE100.X;1");
        assert_eq!(got[13], "COLLIDE101.X;1");
        assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 24);
        // Counters of a group share a width: 00–10 for eleven members (xorriso).
        let many: Vec<(String, bool)> =
            (0..11).map(|i| (format!("{}{}.gz", "g".repeat(30), "x".repeat(i)), false)).collect();
        let refs: Vec<(&str, bool)> = many.iter().map(|(s, d)| (s.as_str(), *d)).collect();
        let got = names(&refs);
        assert_eq!(got[0], format!("{}00.GZ;1", "G".repeat(26)));
        assert_eq!(got[10], format!("{}10.GZ;1", "G".repeat(26)));
        // Mangled directories may use 31 characters.
        let d = format!("{}a", "d".repeat(35));
        let d2 = format!("{}b", "d".repeat(35));
        assert_eq!(
            names(&[(&d, true), (&d2, true)]),
            vec![format!("{}0", "D".repeat(30)), format!("{}1", "D".repeat(30))]
        );
        // A directory and a file of the same name do not collide.
        assert_eq!(names(&[("Dir1", true), ("dir1", false)]), vec!["DIR1", "DIR1.;1"]);
    }

    #[test]
    fn joliet() {
        let long = format!("{}.txt", "x".repeat(100));
        let long2 = format!("{}y.txt", "x".repeat(100));
        let e = [
            EntryName { name: long.as_bytes(), is_dir: false },
            EntryName { name: long2.as_bytes(), is_dir: false },
            EntryName { name: b"a:b", is_dir: false },
        ];
        let j = joliet_names(&e);
        let s: Vec<String> = j.iter().map(|u| String::from_utf16(u).unwrap()).collect();
        assert_eq!(s[0], format!("{}0.txt", "x".repeat(59)));
        assert_eq!(s[1], format!("{}1.txt", "x".repeat(59)));
        assert_eq!(s[2], "a_b");
        assert!(j.iter().all(|u| u.len() <= JOLIET_MAX_CHARS));
    }

    #[test]
    fn ecma_ordering() {
        use std::cmp::Ordering::*;
        assert_eq!(ecma_order(b"A_B.C", b"A_B_C.;1"), Less);
        assert_eq!(ecma_order(b".HIDDEN;1", b"A;1"), Less);
        assert_eq!(ecma_order(b"AVERYLONG", b"AVERYVERY.TXT;1"), Less);
    }
}
