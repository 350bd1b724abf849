//! Directory entries: the 32-byte short (8.3) entry, the VFAT long-name (LFN) entry, DOS dates,
//! and the long name to short name rules.
//!
//! Sources: fatgen103 section 6 (directory entry, dates), section 7 (long names, checksum,
//! "numeric-tail" generation); Linux `fs/fat/namei_vfat.c` (`vfat_create_shortname`,
//! `to_shortname_char`, `xlate_to_uni`), whose choices we follow where fatgen103 leaves room.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::FatError;
use crate::endian::{LE, U16, U32};
use crate::time::{DateField, Epoch, EpochError};
use crate::units::Cluster;

/// `ATTR_READ_ONLY`.
pub const ATTR_READ_ONLY: u8 = 0x01;
/// `ATTR_HIDDEN`.
pub const ATTR_HIDDEN: u8 = 0x02;
/// `ATTR_SYSTEM`.
pub const ATTR_SYSTEM: u8 = 0x04;
/// `ATTR_VOLUME_ID`: the volume label entry in the root directory.
pub const ATTR_VOLUME_ID: u8 = 0x08;
/// `ATTR_DIRECTORY`.
pub const ATTR_DIRECTORY: u8 = 0x10;
/// `ATTR_ARCHIVE`: set on files, as Linux and mtools do.
pub const ATTR_ARCHIVE: u8 = 0x20;
/// `ATTR_LONG_NAME`: the attribute byte of an LFN entry.
pub const ATTR_LONG_NAME: u8 = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;

/// `DIR_Name[0]` of a deleted entry.
pub const DELETED: u8 = 0xE5;
/// Bit of `LDIR_Ord` marking the last (first on disk) LFN entry of a name.
pub const LAST_LONG_ENTRY: u8 = 0x40;
/// `DIR_NTRes` bit: the base name is displayed in lower case (Windows NT, Linux `shortname=winnt`).
pub const NT_LOWER_BASE: u8 = 0x08;
/// `DIR_NTRes` bit: the extension is displayed in lower case.
pub const NT_LOWER_EXT: u8 = 0x10;
/// UTF-16 code units per LFN entry.
pub const LFN_CHARS: usize = 13;
/// Longest long name, in UTF-16 code units (fatgen103 7: 255).
pub const MAX_LFN: usize = 255;

/// A short directory entry (fatgen103 6), 32 bytes, little-endian.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct DirEntry {
    /// `DIR_Name`: 8 name bytes and 3 extension bytes, space padded; `0xE5` first = deleted,
    /// `0x00` first = end of directory, `0x05` first stands for a real `0xE5`.
    pub name: [u8; 11],
    /// `DIR_Attr`.
    pub attr: u8,
    /// `DIR_NTRes`: lower-case display flags.
    pub nt_res: u8,
    /// `DIR_CrtTimeTenth`: 0..=199 hundredths of a second added to `crt_time`
    /// (fatgen103 says tenths but means units of 10 ms).
    pub crt_time_tenth: u8,
    /// `DIR_CrtTime`.
    pub crt_time: U16<LE>,
    /// `DIR_CrtDate`.
    pub crt_date: U16<LE>,
    /// `DIR_LstAccDate`.
    pub lst_acc_date: U16<LE>,
    /// `DIR_FstClusHI`: high 16 bits of the first cluster (FAT32 only).
    pub fst_clus_hi: U16<LE>,
    /// `DIR_WrtTime`.
    pub wrt_time: U16<LE>,
    /// `DIR_WrtDate`.
    pub wrt_date: U16<LE>,
    /// `DIR_FstClusLO`.
    pub fst_clus_lo: U16<LE>,
    /// `DIR_FileSize`: bytes (0 for directories).
    pub file_size: U32<LE>,
}

/// A VFAT long-name entry (fatgen103 7), 32 bytes, little-endian UTF-16 name pieces.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct LfnEntry {
    /// `LDIR_Ord`: sequence number 1..=20, with 0x40 on the last one.
    pub ord: u8,
    /// `LDIR_Name1`: characters 1–5.
    pub name1: [U16<LE>; 5],
    /// `LDIR_Attr`: `ATTR_LONG_NAME`.
    pub attr: u8,
    /// `LDIR_Type`: 0.
    pub ty: u8,
    /// `LDIR_Chksum`: checksum of the short name this long name belongs to.
    pub chksum: u8,
    /// `LDIR_Name2`: characters 6–11.
    pub name2: [U16<LE>; 6],
    /// `LDIR_FstClusLO`: 0.
    pub fst_clus_lo: U16<LE>,
    /// `LDIR_Name3`: characters 12–13.
    pub name3: [U16<LE>; 2],
}

const _: () = assert!(core::mem::size_of::<DirEntry>() == 32);
const _: () = assert!(core::mem::size_of::<LfnEntry>() == 32);

/// A DOS date and time (fatgen103 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DosTime {
    /// Bits 15–9 years since 1980, 8–5 month, 4–0 day.
    pub date: u16,
    /// Bits 15–11 hours, 10–5 minutes, 4–0 seconds / 2.
    pub time: u16,
    /// 10 ms units to add to `time` (0 or 100: the odd second), as Linux writes it.
    pub tenth: u8,
}

impl DosTime {
    /// The epoch as a DOS date and time in UTC. Outside 1980-01-01 00:00:00 ..=
    /// 2107-12-31 23:59:59, the range the fields can hold, it is an error
    /// ([`DateField::Fat`]).
    pub fn from_epoch(epoch: Epoch) -> Result<DosTime, EpochError> {
        epoch.check(DateField::Fat)?;
        let c = epoch.civil();
        // The check bounds year - 1980 to 0..=127.
        let years = u16::try_from(c.year - 1980).map_err(|_| EpochError::new(epoch, DateField::Fat))?;
        Ok(DosTime {
            date: (years << 9) | (u16::from(c.month) << 5) | u16::from(c.day),
            time: (u16::from(c.hour) << 11) | (u16::from(c.minute) << 5) | u16::from(c.second / 2),
            tenth: (c.second % 2) * 100,
        })
    }

    /// (year, month, day, hour, minute, second) of a date and time field pair.
    pub fn decode(date: u16, time: u16) -> (u16, u8, u8, u8, u8, u8) {
        (
            1980 + (date >> 9),
            ((date >> 5) & 0xF) as u8,
            (date & 0x1F) as u8,
            (time >> 11) as u8,
            ((time >> 5) & 0x3F) as u8,
            ((time & 0x1F) * 2) as u8,
        )
    }
}

impl DirEntry {
    /// A short entry with every date field set to `t`.
    pub fn new(name: [u8; 11], attr: u8, first_cluster: Cluster, size: u32, t: DosTime) -> DirEntry {
        let first_cluster = first_cluster.get();
        DirEntry {
            name,
            attr,
            nt_res: 0,
            crt_time_tenth: t.tenth,
            crt_time: U16::new(t.time),
            crt_date: U16::new(t.date),
            lst_acc_date: U16::new(t.date),
            fst_clus_hi: U16::new((first_cluster >> 16) as u16),
            wrt_time: U16::new(t.time),
            wrt_date: U16::new(t.date),
            fst_clus_lo: U16::new((first_cluster & 0xFFFF) as u16),
            file_size: U32::new(size),
        }
    }

    /// The first cluster (`DIR_FstClusHI:DIR_FstClusLO`).
    pub fn first_cluster(&self) -> Cluster {
        Cluster::new((u32::from(self.fst_clus_hi.get()) << 16) | u32::from(self.fst_clus_lo.get()))
    }

    /// The short name as displayed: `BASE.EXT`, honouring the NT lower-case flags, with a
    /// leading 0x05 turned back into 0xE5. Bytes above 0x7F show as U+FFFD.
    pub fn display_name(&self) -> String {
        let mut name = self.name;
        if name[0] == 0x05 {
            name[0] = DELETED;
        }
        let part = |bytes: &[u8], lower: bool| -> String {
            let trimmed = match bytes.iter().rposition(|&b| b != b' ') {
                Some(i) => &bytes[..=i],
                None => &[][..],
            };
            trimmed
                .iter()
                .map(|&b| {
                    let c = if b < 0x80 { char::from(b) } else { char::REPLACEMENT_CHARACTER };
                    if lower {
                        c.to_ascii_lowercase()
                    } else {
                        c
                    }
                })
                .collect()
        };
        let base = part(&name[..8], self.nt_res & NT_LOWER_BASE != 0);
        let ext = part(&name[8..], self.nt_res & NT_LOWER_EXT != 0);
        if ext.is_empty() {
            base
        } else {
            format!("{base}.{ext}")
        }
    }
}

/// The LFN checksum of a short name (fatgen103 7.2): rotate right by one, add the next byte.
pub fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |sum, &b| ((sum & 1) << 7).wrapping_add(sum >> 1).wrapping_add(b))
}

/// Why a name cannot be stored as a VFAT long name.
pub fn check_long_name(name: &[u8]) -> Result<Vec<u16>, &'static str> {
    let s = std::str::from_utf8(name).map_err(|_| "the name is not valid UTF-8")?;
    if s.is_empty() {
        return Err("empty name");
    }
    if s == "." || s == ".." {
        return Err("'.' and '..' are reserved");
    }
    if s.chars().any(|c| (c as u32) < 0x20 || "*?<>|\":/\\".contains(c)) {
        return Err("FAT names cannot hold control characters or any of *?<>|\":/\\");
    }
    if s.ends_with(' ') || s.ends_with('.') {
        return Err("FAT names cannot end with a space or a dot (VFAT drops them)");
    }
    let units: Vec<u16> = s.encode_utf16().collect();
    if units.len() > MAX_LFN {
        return Err("longer than 255 UTF-16 code units");
    }
    Ok(units)
}

/// The 8.3 basis of a long name, before uniqueness (Linux `vfat_create_shortname`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Basis {
    /// Base bytes (1..=8) and extension bytes (0..=3), upper case.
    base: Vec<u8>,
    ext: Vec<u8>,
    /// The long name maps onto base and extension without loss (no truncation, no skipped or
    /// replaced characters): it needs no numeric tail.
    lossless: bool,
    /// ... and it was all upper case already: it needs no long name either.
    upper: bool,
}

/// One UTF-16 unit as a short-name byte: `None` for skipped characters (dot, space), else the
/// byte and whether the mapping kept the character (`false` for replaced ones). Sets the
/// case trackers as Linux does: `lower`/`upper` stay true while every letter was so.
fn short_char(u: u16, lower: &mut bool, upper: &mut bool) -> Option<(u8, bool)> {
    match u {
        0x2E | 0x20 => None,
        // Characters allowed in long names but not in short names (Linux `vfat_replace_char`).
        0x5B | 0x5D | 0x3B | 0x2C | 0x2B | 0x3D => Some((b'_', false)),
        // Our choice: no code page. Non-ASCII units (and DEL) become '_' like an unmappable
        // character does in Linux; the long name keeps the real name.
        0x7F.. => {
            *lower = false;
            *upper = false;
            Some((b'_', false))
        }
        _ => {
            let b = u as u8;
            let up = b.to_ascii_uppercase();
            if up.is_ascii_alphabetic() {
                if up == b {
                    *lower = false;
                } else {
                    *upper = false;
                }
            }
            Some((up, true))
        }
    }
}

fn basis(units: &[u16]) -> Option<Basis> {
    let n = units.len();
    // The extension starts after the last dot, unless only dots and spaces come before it
    // (".bashrc": Windows 95 uses the "extension" as the name).
    let (base_units, ext_units): (&[u16], &[u16]) = match units.iter().rposition(|&u| u == 0x2E) {
        Some(i) if i + 1 < n && units[..i].iter().any(|&u| u != 0x2E && u != 0x20) => {
            (&units[..i], &units[i + 1..])
        }
        _ => (units, &[]),
    };
    let mut lossless = true;
    let (mut bl, mut bu, mut el, mut eu) = (true, true, true, true);
    let mut base = Vec::new();
    for (i, &u) in base_units.iter().enumerate() {
        match short_char(u, &mut bl, &mut bu) {
            None => lossless = false,
            Some((b, kept)) => {
                lossless &= kept;
                base.push(b);
                if base.len() == 8 {
                    if i + 1 < base_units.len() {
                        lossless = false;
                    }
                    break;
                }
            }
        }
    }
    if base.is_empty() {
        return None;
    }
    let mut ext = Vec::new();
    for (i, &u) in ext_units.iter().enumerate() {
        match short_char(u, &mut el, &mut eu) {
            None => lossless = false,
            Some((b, kept)) => {
                lossless &= kept;
                ext.push(b);
                if ext.len() == 3 {
                    if i + 1 < ext_units.len() {
                        lossless = false;
                    }
                    break;
                }
            }
        }
    }
    Some(Basis { base, ext, lossless, upper: bu && eu })
}

fn pack(base: &[u8], ext: &[u8]) -> [u8; 11] {
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    out
}

/// The names of one directory entry: its short name and, when needed, its long name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    /// `DIR_Name`.
    pub short: [u8; 11],
    /// The long name in UTF-16, or `None` when the short name says it all.
    pub long: Option<Vec<u16>>,
}

impl EntryName {
    /// Directory slots the entry takes: one per 13 long-name units, plus the short entry.
    pub fn slots(&self) -> usize {
        self.long.as_ref().map_or(0, |l| l.len().div_ceil(LFN_CHARS)) + 1
    }
}

/// Short and long names for the entries of one directory, in the given order (which is the
/// order they are written in).
///
/// A name that is a valid upper-case 8.3 name is stored as that short name alone. A name that
/// maps onto 8.3 without loss but has lower case keeps that short name and gets a long name
/// (Linux `shortname=mixed`, its default). Every other name gets a long name and a short name
/// with a numeric tail: the basis truncated to 6 bytes plus `~1`..`~9` (as Linux and Windows);
/// beyond `~9`, where Linux picks random hex digits, we keep counting (`~10`, ..., mtools-like)
/// and shorten the basis so that the tail fits. Names taken by lossless entries are reserved
/// before any tail is assigned, so the result does not depend on which comes first.
///
/// `names` must already have passed [`check_long_name`]. Returns the index of an entry whose
/// name clashes with an earlier one when upper-cased (FAT lookups ignore case).
pub fn assign_names(names: &[Vec<u16>]) -> Result<Vec<EntryName>, (usize, usize)> {
    use std::collections::{BTreeMap, BTreeSet};
    // Case-insensitive duplicates.
    let mut folded: BTreeMap<String, usize> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let key = String::from_utf16_lossy(n).to_uppercase();
        if let Some(&j) = folded.get(&key) {
            return Err((j, i));
        }
        folded.insert(key, i);
    }
    let bases: Vec<Option<Basis>> = names.iter().map(|n| basis(n)).collect();
    let mut taken: BTreeSet<[u8; 11]> = BTreeSet::new();
    let mut out: Vec<Option<EntryName>> = vec![None; names.len()];
    for (i, b) in bases.iter().enumerate() {
        if let Some(b) = b.as_ref().filter(|b| b.lossless) {
            let short = pack(&b.base, &b.ext);
            if !taken.insert(short) {
                // Only possible for names equal up to case, which were rejected above.
                return Err((i, i));
            }
            let long = if b.upper { None } else { Some(names[i].clone()) };
            out[i] = Some(EntryName { short, long });
        }
    }
    for (i, b) in bases.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        // A name of only dots and spaces has no basis; check_long_name rejects those, but
        // stay total: use "_".
        let (base, ext) = match b {
            Some(b) => (b.base.clone(), b.ext.clone()),
            None => (vec![b'_'], Vec::new()),
        };
        let mut n: u32 = 1;
        let short = loop {
            let tail = format!("~{n}");
            let keep = base.len().min(8 - tail.len());
            let mut stem = base[..keep].to_vec();
            stem.extend_from_slice(tail.as_bytes());
            let candidate = pack(&stem, &ext);
            if !taken.contains(&candidate) {
                break candidate;
            }
            n += 1;
            if n > 999_999 {
                return Err((i, i));
            }
        };
        taken.insert(short);
        out[i] = Some(EntryName { short, long: Some(names[i].clone()) });
    }
    Ok(out.into_iter().map(|e| e.unwrap_or(EntryName { short: [b' '; 11], long: None })).collect())
}

/// The on-disk entries for one name: its LFN entries (last piece first) then the short entry.
pub fn encode_entries(name: &EntryName, entry: &DirEntry, out: &mut Vec<u8>) {
    if let Some(long) = &name.long {
        let sum = lfn_checksum(&name.short);
        let pieces = long.len().div_ceil(LFN_CHARS);
        for seq in (1..=pieces).rev() {
            // The name is followed by one 0x0000 and then 0xFFFF padding.
            let mut chars = [0xFFFFu16; LFN_CHARS];
            for (k, c) in chars.iter_mut().enumerate() {
                let idx = (seq - 1) * LFN_CHARS + k;
                if idx < long.len() {
                    *c = long[idx];
                } else if idx == long.len() {
                    *c = 0;
                }
            }
            let u = |k: usize| U16::<LE>::new(chars[k]);
            // seq <= 20 because names are at most 255 units.
            let ord = seq as u8 | if seq == pieces { LAST_LONG_ENTRY } else { 0 };
            let e = LfnEntry {
                ord,
                name1: [u(0), u(1), u(2), u(3), u(4)],
                attr: ATTR_LONG_NAME,
                ty: 0,
                chksum: sum,
                name2: [u(5), u(6), u(7), u(8), u(9), u(10)],
                fst_clus_lo: U16::new(0),
                name3: [u(11), u(12)],
            };
            out.extend_from_slice(e.as_bytes());
        }
    }
    let mut e = *entry;
    e.name = name.short;
    if e.name[0] == DELETED {
        e.name[0] = 0x05;
    }
    out.extend_from_slice(e.as_bytes());
}

/// One decoded entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEntry {
    /// The long name if a valid one precedes the short entry, else the displayed short name.
    pub name: String,
    /// Whether `name` came from LFN entries.
    pub has_long_name: bool,
    /// The short entry itself.
    pub entry: DirEntry,
    /// Byte offset of the short entry inside the directory's bytes.
    pub offset: usize,
}

impl DecodedEntry {
    /// A directory (including `.` and `..`).
    pub fn is_dir(&self) -> bool {
        self.entry.attr & ATTR_DIRECTORY != 0
    }
    /// `.` or `..`.
    pub fn is_dot(&self) -> bool {
        self.entry.name == *b".          " || self.entry.name == *b"..         "
    }
}

/// A decoded directory: entries in on-disk order (volume label and deleted entries left out).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedDir {
    /// The entries, `.` and `..` included.
    pub entries: Vec<DecodedEntry>,
    /// The volume label entry's name, if any (root directory).
    pub volume_label: Option<[u8; 11]>,
}

/// Decodes a directory's bytes up to the first end marker. LFN entries whose sequence numbers
/// or checksum do not match the short entry that follows are an error naming the offset
/// (`base` is the directory's byte offset in the image, for messages).
pub fn decode_dir(bytes: &[u8], base: u64) -> Result<DecodedDir, FatError> {
    let mut out = DecodedDir::default();
    // Pending long name: (expected next ord, checksum, units by piece).
    let mut pending: Option<(u8, u8, Vec<[u16; LFN_CHARS]>)> = None;
    for (i, chunk) in bytes.chunks_exact(32).enumerate() {
        let offset = i * 32;
        let at = base + offset as u64;
        let corrupt = |field: &'static str, expected: String, found: String| FatError::Corrupt {
            offset: at,
            field,
            expected,
            found,
        };
        if chunk[0] == 0 {
            if pending.is_some() {
                return Err(corrupt("LDIR_Ord", "a short entry after the long name".into(), "end".into()));
            }
            break;
        }
        if chunk[0] == DELETED {
            pending = None;
            continue;
        }
        if chunk[11] & 0x3F == ATTR_LONG_NAME {
            let e = LfnEntry::read_from_bytes(chunk)
                .map_err(|_| corrupt("LFN entry", "32 bytes".into(), "short".into()))?;
            let mut units = [0u16; LFN_CHARS];
            for (k, v) in e.name1.iter().chain(e.name2.iter()).chain(e.name3.iter()).enumerate() {
                units[k] = v.get();
            }
            let seq = e.ord & 0x3F;
            if e.ord & LAST_LONG_ENTRY != 0 {
                if pending.is_some() {
                    return Err(corrupt("LDIR_Ord", "a continuation".into(), format!("{:#04x}", e.ord)));
                }
                if seq == 0 || seq > 20 {
                    return Err(corrupt("LDIR_Ord", "1..=20".into(), seq.to_string()));
                }
                pending = Some((seq - 1, e.chksum, vec![units]));
            } else {
                match pending.as_mut() {
                    Some((next, sum, pieces)) if *next == seq && seq >= 1 && *sum == e.chksum => {
                        *next -= 1;
                        pieces.push(units);
                    }
                    _ => {
                        return Err(corrupt(
                            "LDIR_Ord",
                            "the next piece of a long name".into(),
                            e.ord.to_string(),
                        ))
                    }
                }
            }
            continue;
        }
        let entry = DirEntry::read_from_bytes(chunk)
            .map_err(|_| corrupt("directory entry", "32 bytes".into(), "short".into()))?;
        if entry.attr & ATTR_VOLUME_ID != 0 && entry.attr & ATTR_DIRECTORY == 0 {
            out.volume_label = Some(entry.name);
            pending = None;
            continue;
        }
        let mut name = entry.display_name();
        let mut has_long_name = false;
        if let Some((next, sum, pieces)) = pending.take() {
            if next != 0 {
                return Err(corrupt(
                    "LDIR_Ord",
                    "piece 1 of the long name".into(),
                    format!("{next} missing"),
                ));
            }
            let expected = lfn_checksum(&entry.name);
            if sum != expected {
                return Err(corrupt("LDIR_Chksum", format!("{expected:#04x}"), format!("{sum:#04x}")));
            }
            let mut units: Vec<u16> = pieces.iter().rev().flat_map(|p| p.iter().copied()).collect();
            if let Some(end) = units.iter().position(|&u| u == 0) {
                units.truncate(end);
            }
            name = String::from_utf16(&units)
                .map_err(|_| corrupt("long name", "valid UTF-16".into(), format!("{units:04x?}")))?;
            has_long_name = true;
        }
        out.entries.push(DecodedEntry { name, has_long_name, entry, offset });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn short(s: &[u8; 11]) -> String {
        String::from_utf8_lossy(s).into_owned()
    }

    #[test]
    fn checksum_known_value() {
        // fatgen103's algorithm by hand for "FOO     BAR".
        let mut sum = 0u8;
        for &b in b"FOO     BAR" {
            sum = (if sum & 1 != 0 { 0x80u8 } else { 0 }).wrapping_add(sum >> 1).wrapping_add(b);
        }
        assert_eq!(lfn_checksum(b"FOO     BAR"), sum);
        assert_ne!(lfn_checksum(b"README~1TXT"), lfn_checksum(b"README~2TXT"));
    }

    #[test]
    fn short_names() {
        let names = [
            "BOOTX64.EFI",
            "grub.cfg",
            "Makefile",
            "long file name.text",
            ".bashrc",
            "a+b",
            "ÄÖ.txt",
            "x.tar.gz",
        ];
        let out = assign_names(&names.iter().map(|n| u(n)).collect::<Vec<_>>()).unwrap();
        let got: Vec<(String, bool)> = out.iter().map(|e| (short(&e.short), e.long.is_some())).collect();
        assert_eq!(
            got,
            vec![
                ("BOOTX64 EFI".to_string(), false),
                ("GRUB    CFG".to_string(), true),
                ("MAKEFILE   ".to_string(), true),
                ("LONGFI~1TEX".to_string(), true),
                ("BASHRC~1   ".to_string(), true),
                ("A_B~1      ".to_string(), true),
                ("__~1    TXT".to_string(), true),
                ("XTAR~1  GZ ".to_string(), true),
            ]
        );
    }

    #[test]
    fn numeric_tails_count_up() {
        let names: Vec<Vec<u16>> = (0..12).map(|i| u(&format!("a long name {i:02}.txt"))).collect();
        let out = assign_names(&names).unwrap();
        assert_eq!(short(&out[0].short), "ALONGN~1TXT");
        assert_eq!(short(&out[8].short), "ALONGN~9TXT");
        assert_eq!(short(&out[9].short), "ALONG~10TXT");
        assert_eq!(short(&out[11].short), "ALONG~12TXT");
    }

    #[test]
    fn reserved_exact_names_win() {
        // "FOOBAR~1" is an exact name; the long name that would get ~1 takes ~2.
        let out = assign_names(&[u("foo bar"), u("FOOBAR~1")]).unwrap();
        assert_eq!(short(&out[0].short), "FOOBAR~2   ");
        assert_eq!(short(&out[1].short), "FOOBAR~1   ");
    }

    #[test]
    fn case_clash() {
        assert_eq!(assign_names(&[u("ABC"), u("abc")]), Err((0, 1)));
    }

    #[test]
    fn bad_long_names() {
        assert!(check_long_name(b"a:b").is_err());
        assert!(check_long_name(b"trailing.").is_err());
        assert!(check_long_name(b"trailing ").is_err());
        assert!(check_long_name(&[0xFF]).is_err());
        assert!(check_long_name("x".repeat(256).as_bytes()).is_err());
        assert_eq!(check_long_name("ü".as_bytes()).unwrap(), vec![0xFC]);
    }

    #[test]
    fn dates() {
        let t = DosTime::from_epoch(Epoch::NIX_DEFAULT).unwrap();
        assert_eq!((t.date, t.time, t.tenth), (0x21, 0, 0));
        // 2024-02-29T12:34:57Z
        let t = DosTime::from_epoch(Epoch(1_709_210_097)).unwrap();
        assert_eq!(DosTime::decode(t.date, t.time), (2024, 2, 29, 12, 34, 56));
        assert_eq!(t.tenth, 100);
        // The last second FAT can hold, and the seconds either side of the range.
        let t = DosTime::from_epoch(Epoch(4_354_819_199)).unwrap();
        assert_eq!((DosTime::decode(t.date, t.time), t.tenth), ((2107, 12, 31, 23, 59, 58), 100));
        let e = DosTime::from_epoch(Epoch(315_532_799)).unwrap_err();
        assert_eq!(e.field, DateField::Fat);
        assert!(DosTime::from_epoch(Epoch(4_354_819_200)).is_err());
        assert!(DosTime::from_epoch(Epoch(0)).is_err());
    }

    #[test]
    fn entries_round_trip() {
        let names = [u("a fairly long name that needs three pieces.txt"), u("SHORT.TXT"), u("lower")];
        let assigned = assign_names(&names).unwrap();
        let t = DosTime::from_epoch(Epoch::NIX_DEFAULT).unwrap();
        let mut bytes = Vec::new();
        for (i, n) in assigned.iter().enumerate() {
            encode_entries(
                n,
                &DirEntry::new([0; 11], ATTR_ARCHIVE, Cluster::new(3 + i as u32), 7, t),
                &mut bytes,
            );
        }
        assert_eq!(bytes.len(), 32 * (5 + 1 + 2));
        let dir = decode_dir(&bytes, 0).unwrap();
        let got: Vec<_> =
            dir.entries.iter().map(|e| (e.name.clone(), e.entry.first_cluster().get())).collect();
        assert_eq!(
            got,
            vec![
                ("a fairly long name that needs three pieces.txt".to_string(), 3),
                ("SHORT.TXT".to_string(), 4),
                ("lower".to_string(), 5),
            ]
        );
        // A damaged checksum is reported.
        let mut bad = bytes.clone();
        bad[13] ^= 1;
        assert!(matches!(decode_dir(&bad, 0), Err(FatError::Corrupt { field: "LDIR_Ord", .. })));
    }
}
