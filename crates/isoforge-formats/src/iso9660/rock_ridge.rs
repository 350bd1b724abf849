//! System Use Sharing Protocol (SUSP 1.12) and Rock Ridge (RRIP 1.12, identified as
//! "RRIP_1991A" like xorriso's `-r`) entries.
//!
//! Each entry is `signature(2) length(1) version(1) data`. isoforge writes, per record:
//! `SP` (root "." only), `PX` (mode, links, uid, gid, serial: 44 bytes), `TF` (modify, access,
//! attribute-change times, 7-byte form), `NM` (the real name, split into several entries past
//! 250 bytes), `SL` (symlink target), and `CE` when the rest continues in a continuation area.
//! `ER` lives in the root's continuation area.

use crate::endian::Both32;
use zerocopy::IntoBytes;

/// SUSP "SP" entry: SUSP in use, no bytes skipped (SUSP 5.3).
pub fn sp() -> Vec<u8> {
    vec![b'S', b'P', 7, 1, 0xBE, 0xEF, 0]
}

/// Length of a "CE" entry.
pub const CE_LEN: usize = 28;

/// SUSP "CE" entry pointing at a continuation area (SUSP 5.1).
pub fn ce(lba: u32, offset: u32, length: u32) -> Vec<u8> {
    let mut v = vec![b'C', b'E', CE_LEN as u8, 1];
    v.extend_from_slice(Both32::new(lba).as_bytes());
    v.extend_from_slice(Both32::new(offset).as_bytes());
    v.extend_from_slice(Both32::new(length).as_bytes());
    v
}

/// Extension identifier written in "ER".
pub const RRIP_ID: &[u8] = b"RRIP_1991A";
/// Extension descriptor text of RRIP (its standard wording, an interchange constant).
pub const RRIP_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
/// Extension source text of RRIP (its standard wording, an interchange constant).
pub const RRIP_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

/// SUSP "ER" entry declaring Rock Ridge (SUSP 5.5).
pub fn er() -> Vec<u8> {
    let len = 8 + RRIP_ID.len() + RRIP_DESCRIPTOR.len() + RRIP_SOURCE.len();
    let mut v = vec![
        b'E',
        b'R',
        len as u8,
        1,
        RRIP_ID.len() as u8,
        RRIP_DESCRIPTOR.len() as u8,
        RRIP_SOURCE.len() as u8,
        1,
    ];
    v.extend_from_slice(RRIP_ID);
    v.extend_from_slice(RRIP_DESCRIPTOR);
    v.extend_from_slice(RRIP_SOURCE);
    v
}

/// RRIP "PX" entry with a file serial number (RRIP 1.12 4.1.1: 44 bytes).
pub fn px(mode: u32, nlink: u32, uid: u32, gid: u32, serial: u32) -> Vec<u8> {
    let mut v = vec![b'P', b'X', 44, 1];
    for n in [mode, nlink, uid, gid, serial] {
        v.extend_from_slice(Both32::new(n).as_bytes());
    }
    v
}

/// TF flag bits: modify, access and attribute-change times (RRIP 4.1.6).
pub const TF_MODIFY_ACCESS_ATTRIBUTES: u8 = 0x0E;

/// RRIP "TF" entry with the same 7-byte date for modify, access and attribute change.
pub fn tf(date: [u8; 7]) -> Vec<u8> {
    let mut v = vec![b'T', b'F', 5 + 21, 1, TF_MODIFY_ACCESS_ATTRIBUTES];
    for _ in 0..3 {
        v.extend_from_slice(&date);
    }
    v
}

/// Most name bytes one "NM" entry carries.
pub const NM_CHUNK: usize = 250;

/// RRIP "NM" entries holding `name`, split with the CONTINUE flag past [`NM_CHUNK`] bytes.
pub fn nm(name: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if name.is_empty() { vec![&[][..]] } else { name.chunks(NM_CHUNK).collect() };
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v = vec![b'N', b'M', (5 + c.len()) as u8, 1, u8::from(i + 1 < n)];
            v.extend_from_slice(c);
            v
        })
        .collect()
}

/// SL component flag: continues in the next component record.
pub const SL_CONTINUE: u8 = 0x01;
/// SL component flag: ".".
pub const SL_CURRENT: u8 = 0x02;
/// SL component flag: "..".
pub const SL_PARENT: u8 = 0x04;
/// SL component flag: "/".
pub const SL_ROOT: u8 = 0x08;

/// Most bytes of component records in one "SL" entry (255 − 5 header bytes).
const SL_BODY_MAX: usize = 250;

/// RRIP "SL" entries for a symlink target (RRIP 4.1.3).
///
/// The target is split at `/` into component records: a leading `/` becomes a ROOT component,
/// `.` and `..` CURRENT and PARENT, empty components (`a//b`, a trailing `/`) are dropped.
/// When the records do not fit one entry they go on in further SL entries whose flags byte
/// says CONTINUE. An entry always ends inside a component (a component split with the
/// component CONTINUE flag, or a zero-length CONTINUE component): readers such as libarchive
/// join a continued entry to the previous one without a separator.
pub fn sl(target: &[u8]) -> Vec<Vec<u8>> {
    let mut comps: Vec<(u8, &[u8])> = Vec::new();
    if target.first() == Some(&b'/') {
        comps.push((SL_ROOT, &[]));
    }
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" => {}
            b"." => comps.push((SL_CURRENT, &[])),
            b".." => comps.push((SL_PARENT, &[])),
            p => comps.push((0, p)),
        }
    }
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let n = comps.len();
    for (i, (flags, mut content)) in comps.into_iter().enumerate() {
        let last = i + 1 == n;
        loop {
            let room = SL_BODY_MAX - body.len();
            // A whole component fits when it leaves room for a continuation marker (2 bytes)
            // after it, or when it is the last one.
            if 2 + content.len() + 2 <= room || (last && 2 + content.len() <= room) {
                body.push(flags);
                body.push(content.len() as u8);
                body.extend_from_slice(content);
                break;
            }
            // Otherwise end this entry inside the component: its first `room - 2` bytes (or
            // none, for special components) with the CONTINUE flag.
            let take = if flags == 0 { (room - 2).min(content.len()) } else { 0 };
            body.push(SL_CONTINUE);
            body.push(take as u8);
            body.extend_from_slice(&content[..take]);
            content = &content[take..];
            entries.push(std::mem::take(&mut body));
        }
    }
    entries.push(body);
    let n = entries.len();
    entries
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let mut v = vec![b'S', b'L', (5 + body.len()) as u8, 1, u8::from(i + 1 < n)];
            v.extend_from_slice(&body);
            v
        })
        .collect()
}

/// One raw SUSP entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspEntry<'a> {
    /// Two-letter signature.
    pub signature: [u8; 2],
    /// Version byte.
    pub version: u8,
    /// The bytes after the 4-byte header.
    pub data: &'a [u8],
}

/// Splits a system use area into entries. Stops at a padding byte, at "ST", or at an entry
/// whose length is invalid (reported as `Err` with the offset).
pub fn entries(su: &[u8]) -> Result<Vec<SuspEntry<'_>>, usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= su.len() {
        let len = usize::from(su[i + 2]);
        if su[i] == 0 {
            break;
        }
        if len < 4 || i + len > su.len() {
            return Err(i);
        }
        let signature = [su[i], su[i + 1]];
        if &signature == b"ST" {
            break;
        }
        out.push(SuspEntry { signature, version: su[i + 3], data: &su[i + 4..i + len] });
        i += len;
    }
    Ok(out)
}

/// Rock Ridge information gathered from a record's entries (and its continuation areas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RockRidge {
    /// The "NM" name, concatenated.
    pub name: Option<Vec<u8>>,
    /// PX mode.
    pub mode: Option<u32>,
    /// PX link count.
    pub nlink: Option<u32>,
    /// PX uid.
    pub uid: Option<u32>,
    /// PX gid.
    pub gid: Option<u32>,
    /// PX serial number (44-byte form only).
    pub serial: Option<u32>,
    /// The "SL" target, reassembled.
    pub symlink: Option<Vec<u8>>,
    /// TF modify time, raw 7-byte form.
    pub modify: Option<[u8; 7]>,
    /// Whether an "SP" entry was seen.
    pub has_sp: bool,
    /// Extension identifiers from "ER" entries.
    pub extensions: Vec<Vec<u8>>,
    /// CE pointers found: (lba, offset, length).
    pub continuation: Option<(u32, u32, u32)>,
}

fn both32(d: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

impl RockRidge {
    /// Folds entries into the summary. Call once per area, in order; `continuation` holds
    /// the last CE seen (the caller follows it and clears it).
    pub fn absorb(&mut self, entries: &[SuspEntry<'_>]) {
        for e in entries {
            match &e.signature {
                b"SP" => self.has_sp = true,
                b"CE" => {
                    if let (Some(l), Some(o), Some(n)) =
                        (both32(e.data, 0), both32(e.data, 8), both32(e.data, 16))
                    {
                        self.continuation = Some((l, o, n));
                    }
                }
                b"ER" => {
                    if let Some(&len_id) = e.data.first() {
                        if let Some(id) = e.data.get(4..4 + usize::from(len_id)) {
                            self.extensions.push(id.to_vec());
                        }
                    }
                }
                b"PX" => {
                    self.mode = both32(e.data, 0);
                    self.nlink = both32(e.data, 8);
                    self.uid = both32(e.data, 16);
                    self.gid = both32(e.data, 24);
                    self.serial = both32(e.data, 32);
                }
                b"NM" => {
                    if let Some((&flags, rest)) = e.data.split_first() {
                        let name = self.name.get_or_insert_with(Vec::new);
                        if flags & 0x02 != 0 {
                            name.push(b'.');
                        } else if flags & 0x04 != 0 {
                            name.extend_from_slice(b"..");
                        } else {
                            name.extend_from_slice(rest);
                        }
                    }
                }
                b"SL" => {
                    if let Some((_flags, mut rest)) = e.data.split_first() {
                        let target = self.symlink.get_or_insert_with(Vec::new);
                        // `pending` is true when the previous component asked to continue.
                        let mut pending = target.last() == Some(&0);
                        if pending {
                            target.pop();
                        }
                        while rest.len() >= 2 {
                            let (flags, len) = (rest[0], usize::from(rest[1]));
                            let Some(content) = rest.get(2..2 + len) else { break };
                            if !pending && !target.is_empty() && target != b"/" {
                                target.push(b'/');
                            }
                            if flags & SL_ROOT != 0 {
                                target.clear();
                                target.push(b'/');
                            } else if flags & SL_CURRENT != 0 {
                                target.push(b'.');
                            } else if flags & SL_PARENT != 0 {
                                target.extend_from_slice(b"..");
                            } else {
                                target.extend_from_slice(content);
                            }
                            pending = flags & SL_CONTINUE != 0;
                            rest = &rest[2 + len..];
                        }
                        if pending {
                            // Marker byte removed when the next SL entry continues the component.
                            target.push(0);
                        }
                    }
                }
                b"TF" => {
                    if let Some((&flags, rest)) = e.data.split_first() {
                        let long = flags & 0x80 != 0;
                        let mut at = 0;
                        if flags & 0x01 != 0 {
                            at += if long { 17 } else { 7 };
                        }
                        if flags & 0x02 != 0 && !long {
                            if let Some(d) = rest.get(at..at + 7) {
                                self.modify = d.try_into().ok();
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(all: &[Vec<u8>]) -> RockRidge {
        let mut rr = RockRidge::default();
        for e in all {
            rr.absorb(&entries(e).unwrap());
        }
        rr
    }

    #[test]
    fn lengths() {
        assert_eq!(er().len(), 237);
        assert_eq!(px(0, 0, 0, 0, 0).len(), 44);
        assert_eq!(tf([0; 7]).len(), 26);
        assert_eq!(ce(1, 2, 3).len(), CE_LEN);
    }

    #[test]
    fn long_names_split_and_rejoin() {
        let name = vec![b'a'; 255];
        let parts = nm(&name);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0][4], 1);
        assert_eq!(decode(&parts).name.unwrap(), name);
    }

    #[test]
    fn symlinks_round_trip() {
        let long = format!("/{}/x/../y", "c".repeat(600));
        let split = format!("../{}/{}/end", "t".repeat(200), "u".repeat(150));
        let dots = format!("{}/../..", "v".repeat(245));
        for t in ["../lib/libc.so.6", "/nix/store/abc-foo/bin", "a", "./x/", &long, &split, &dots] {
            let parts = sl(t.as_bytes());
            assert!(parts.iter().all(|p| p.len() <= 255));
            let want = t.trim_end_matches('/').to_string();
            let got = String::from_utf8(decode(&parts).symlink.unwrap()).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn px_fields() {
        let rr = decode(&[px(0o100444, 1, 0, 0, 7)]);
        assert_eq!((rr.mode, rr.nlink, rr.serial), (Some(0o100444), Some(1), Some(7)));
        let rr = decode(&[er()]);
        assert_eq!(rr.extensions, vec![RRIP_ID.to_vec()]);
    }
}
