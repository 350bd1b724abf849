//! Walking a directory hierarchy: ISO 9660 with SUSP/Rock Ridge, or Joliet.
//!
//! Directories are read one extent at a time; records are decoded block by block (a zero
//! length byte ends the records of a block, ECMA-119 6.8.1.1). Multi-extent files (flag 0x80
//! on every record but the last, ECMA-119 9.1.6) become one [`Entry`]. Rock Ridge applies when
//! the root's "." record starts with a SUSP "SP" entry (SUSP 5.3); continuation areas ("CE")
//! are followed with a visited set and a length limit.
//!
//! Deep directory relocation (RRIP 4.1.5, as genisoimage does past 8 levels): a placeholder
//! file with a "CL" entry is listed as the directory it links to, and the relocated record
//! itself (marked "RE", usually in `rr_moved`) is left out of the listing and kept in
//! [`Listing::relocated`] for the path table cross-check. `rr_moved` stays listed, as Linux
//! shows it.

use std::collections::BTreeSet;

use super::{Hierarchy, IsoImage, ProblemKind, Problems, ReadError};
use crate::endian::field_offset;
use crate::iso9660::directory_record::{
    decode_record, DirDateTime, DirectoryRecordHeader, FLAG_DIRECTORY, FLAG_MULTI_EXTENT,
};
use crate::iso9660::rock_ridge::{RockRidge, SystemUse, ROCK_RIDGE_IDS};
use crate::iso9660::susp::{entries, FixedEntry, Sp, SuspHeader, SP_CHECK_BYTES};
use crate::iso9660::volume_descriptor::VolumeDescriptor;
use crate::units::{Lba2048, ISO_BLOCK};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A directory (flag 0x02).
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (Rock Ridge "SL", or a PX mode of type link).
    Symlink,
}

/// One file, directory or symlink of a hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Full path from the root, `/`-separated; `/` for the root. Names are the Rock Ridge
    /// names when present, else the ISO 9660 identifier without `;1` and a final `.`; in the
    /// Joliet hierarchy the Joliet names (UTF-8) without `;1`.
    pub path: Vec<u8>,
    /// The last component of `path` (empty for the root).
    pub name: Vec<u8>,
    /// Index of the parent directory in [`Listing::entries`] (the root is its own parent).
    pub parent: usize,
    /// Depth: 0 for the root.
    pub depth: usize,
    /// The file identifier as recorded (UCS-2 big-endian bytes in Joliet; `[0]` for the root).
    pub iso_identifier: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes: the sum of the extents' lengths.
    pub size: u64,
    /// Extents as (block, length in bytes), one per directory record.
    pub extents: Vec<(u32, u32)>,
    /// File flags of the last record.
    pub flags: u8,
    /// Recording date of the first record (ECMA-119 9.1.5), as stored.
    pub recording_date: DirDateTime,
    /// Rock Ridge attributes (ISO 9660 hierarchy of a Rock Ridge image only). For the root,
    /// those of its "." record.
    pub rr: Option<RockRidge>,
    /// Byte offset of the (first) directory record in the image.
    pub record_offset: u64,
}

impl Entry {
    /// The path as text (invalid UTF-8 replaced).
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// The first extent's block (0 for an entry without extents).
    pub fn first_lba(&self) -> u32 {
        self.extents.first().map_or(0, |e| e.0)
    }
}

/// SUSP as the root's "." record declares it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SuspInfo {
    /// Bytes to skip at the start of each System Use area ("SP" LEN_SKP).
    pub skip: u8,
    /// Extension identifiers of the "ER" entries (e.g. `RRIP_1991A`).
    pub extensions: Vec<Vec<u8>>,
}

/// A hierarchy, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Which hierarchy.
    pub hierarchy: Hierarchy,
    /// Every entry, depth-first (parents before children, children in record order), the
    /// root first.
    pub entries: Vec<Entry>,
    /// What was wrong.
    pub problems: Vec<super::Finding>,
    /// SUSP use (ISO 9660 hierarchy with an "SP" entry only).
    pub susp: Option<SuspInfo>,
    /// Directory records marked "RE" (relocated), left out of `entries`.
    pub relocated: Vec<RelocatedRecord>,
}

/// A directory record marked "RE": the real place of a relocated directory in the ISO 9660
/// tree, which the listing shows where its "CL" placeholder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocatedRecord {
    /// Index of the directory holding the record (usually `rr_moved`).
    pub parent: usize,
    /// The record's identifier.
    pub iso_identifier: Vec<u8>,
    /// Extent of the relocated directory.
    pub extent_lba: u32,
}

impl Entry {
    /// Whether this directory is a Rock Ridge "CL" placeholder: a file record in the ISO 9660
    /// tree standing for a directory relocated elsewhere.
    pub fn is_relocation_link(&self) -> bool {
        self.kind == EntryKind::Dir && self.flags & FLAG_DIRECTORY == 0
    }
}

impl Listing {
    /// The entry at `path` (`/a/b`; `/` is the root).
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Whether Rock Ridge is in use (an "SP" entry in the root's "." record).
    pub fn has_rock_ridge(&self) -> bool {
        self.susp.is_some()
    }
}

/// Offsets of directory record fields, for findings.
const EXTENT_LBA: u64 = field_offset!(DirectoryRecordHeader, extent_lba);
const DATA_LENGTH: u64 = field_offset!(DirectoryRecordHeader, data_length);
const FILE_FLAGS: u64 = field_offset!(DirectoryRecordHeader, file_flags);
const VOLUME_SEQUENCE_NUMBER: u64 = field_offset!(DirectoryRecordHeader, volume_sequence_number);
const FILE_IDENTIFIER_LENGTH: u64 = field_offset!(DirectoryRecordHeader, file_identifier_length);
/// The identifier follows the fixed part.
const FILE_IDENTIFIER: u64 = std::mem::size_of::<DirectoryRecordHeader>() as u64;

struct Walker<'i, 'a> {
    img: &'i IsoImage<'a>,
    h: Hierarchy,
    p: Problems,
    visited: BTreeSet<u32>,
    susp: Option<SuspInfo>,
    ce_bytes: u64,
    name_bytes: u64,
    limits_hit: BTreeSet<&'static str>,
    relocated: Vec<RelocatedRecord>,
}

struct DirContents {
    dot_rr: Option<RockRidge>,
    children: Vec<Entry>,
}

/// ISO 9660 identifier shown as a name: without the `;` version and a final `.`.
fn iso_display_name(id: &[u8]) -> Vec<u8> {
    let base = match id.iter().rposition(|&b| b == b';') {
        Some(i) if id[i + 1..].iter().all(u8::is_ascii_digit) => &id[..i],
        _ => id,
    };
    let base = base.strip_suffix(b".").unwrap_or(base);
    base.to_vec()
}

fn joliet_name(id: &[u8]) -> String {
    let s = super::ucs2(id);
    match s.rfind(';') {
        Some(i) if s[i + 1..].bytes().all(|b| b.is_ascii_digit()) => s[..i].to_string(),
        _ => s,
    }
}

fn child_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl IsoImage<'_> {
    /// Reads a whole hierarchy depth-first. Corrupt parts are skipped and reported in
    /// [`Listing::problems`]; only I/O failures are errors.
    pub fn walk(&self, h: Hierarchy) -> Result<Listing, ReadError> {
        let vol = self.volume(h)?;
        let root = Entry {
            path: b"/".to_vec(),
            name: Vec::new(),
            parent: 0,
            depth: 0,
            iso_identifier: vec![0],
            kind: EntryKind::Dir,
            size: u64::from(vol.root.data_length),
            extents: vec![(vol.root.extent_lba, vol.root.data_length)],
            flags: vol.root.flags,
            recording_date: vol.root.recording_date,
            rr: None,
            record_offset: Lba2048::new(vol.descriptor_lba).byte_offset()
                + field_offset!(VolumeDescriptor, root_directory_record),
        };
        let mut w = Walker {
            img: self,
            h,
            p: Problems::new(self.limits.max_problems),
            visited: BTreeSet::new(),
            susp: None,
            ce_bytes: 0,
            name_bytes: 1,
            limits_hit: BTreeSet::new(),
            relocated: Vec::new(),
        };
        let mut entries: Vec<Entry> = Vec::new();
        let mut stack = vec![root];
        while let Some(mut e) = stack.pop() {
            let idx = entries.len();
            if e.kind == EntryKind::Dir {
                let parent_lba = if idx == 0 { e.first_lba() } else { entries[e.parent].first_lba() };
                let room = self.limits.max_entries.saturating_sub(entries.len() + stack.len() + 1);
                if let Some(d) = w.read_dir(&e, idx, parent_lba, room)? {
                    if idx == 0 {
                        e.rr = d.dot_rr;
                    }
                    stack.extend(d.children.into_iter().rev());
                }
            }
            entries.push(e);
        }
        Ok(Listing { hierarchy: h, entries, problems: w.p.finish(), susp: w.susp, relocated: w.relocated })
    }
}

impl Walker<'_, '_> {
    fn limit(
        &mut self,
        what: &'static str,
        structure: String,
        offset: Option<u64>,
        expected: String,
        found: String,
    ) {
        // One note per limit: after the first, everything beyond it is skipped silently.
        if self.limits_hit.insert(what) {
            self.p.push(ProblemKind::LimitExceeded, structure, what, offset, expected, found);
        }
    }

    fn read_dir(
        &mut self,
        dir: &Entry,
        idx: usize,
        parent_lba: u32,
        room: usize,
    ) -> Result<Option<DirContents>, ReadError> {
        let limits = &self.img.limits;
        let h = self.h;
        let structure = format!("{h} directory {}", dir.path_lossy());
        let (lba, len) = dir.extents.first().copied().unwrap_or((0, 0));
        let start = Lba2048::new(lba).byte_offset();
        if dir.depth >= limits.max_depth {
            self.limit(
                "max_depth",
                structure,
                Some(dir.record_offset),
                format!("at most {} directory levels", limits.max_depth),
                "a deeper directory (not read)".into(),
            );
            return Ok(None);
        }
        if len == 0 {
            self.p.push(
                ProblemKind::BadRecord,
                structure,
                "data_length",
                Some(dir.record_offset + DATA_LENGTH),
                "a directory extent holding at least \".\" and \"..\"",
                0,
            );
            return Ok(None);
        }
        if u64::from(len) > limits.max_directory_bytes {
            self.limit(
                "max_directory_bytes",
                structure,
                Some(dir.record_offset + DATA_LENGTH),
                format!("a directory of at most {} bytes", limits.max_directory_bytes),
                format!("{len} bytes (not read)"),
            );
            return Ok(None);
        }
        if !self.img.inside(start, u64::from(len)) {
            self.p.push(
                ProblemKind::ExtentOutsideImage,
                structure,
                "extent_lba",
                Some(dir.record_offset + EXTENT_LBA),
                format!("an extent within the image's {} bytes", self.img.len()),
                format!("block {lba} + {len} bytes, ending at byte {}", start + u64::from(len)),
            );
            return Ok(None);
        }
        if !self.visited.insert(lba) {
            self.p.push(
                ProblemKind::DirectoryLoop,
                structure,
                "extent_lba",
                Some(dir.record_offset + EXTENT_LBA),
                "a directory extent not yet visited",
                format!("block {lba}, already read (a loop or a hard-linked directory; not descended)"),
            );
            return Ok(None);
        }
        let buf = self.img.read_vec(start, len as usize, "directory extent")?;
        let block = ISO_BLOCK as usize;
        let mut out = DirContents { dot_rr: None, children: Vec::new() };
        let mut names: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut pending: Option<Entry> = None;
        let mut nrec = 0usize;
        let mut pos = 0usize;
        while pos < buf.len() {
            let block_end = ((pos / block + 1) * block).min(buf.len());
            let rec_off = start + pos as u64;
            let rlen = usize::from(buf[pos]);
            if rlen == 0 {
                pos = block_end;
                continue;
            }
            if rlen < 34 {
                self.p.push(
                    ProblemKind::BadRecordLength,
                    format!("{structure}, record {nrec}"),
                    "length",
                    Some(rec_off),
                    "at least 34 (or 0 to end the block)",
                    rlen,
                );
                pos = block_end;
                continue;
            }
            if pos + rlen > buf.len() {
                self.p.push(
                    ProblemKind::BadRecordLength,
                    format!("{structure}, record {nrec}"),
                    "length",
                    Some(rec_off),
                    format!("at most the {} bytes left in the directory", buf.len() - pos),
                    rlen,
                );
                break;
            }
            if pos + rlen > block_end {
                self.p.push(
                    ProblemKind::RecordCrossesBlock,
                    format!("{structure}, record {nrec}"),
                    "length",
                    Some(rec_off),
                    format!("a record ending by the block boundary at byte {}", start + block_end as u64),
                    format!("{rlen} bytes, ending at byte {}", rec_off + rlen as u64),
                );
            }
            let rec = match decode_record(&buf[pos..pos + rlen]) {
                Ok(r) => r,
                Err(e) => {
                    self.p.push(
                        ProblemKind::BadRecord,
                        format!("{structure}, record {nrec}"),
                        "file_identifier_length",
                        Some(rec_off + FILE_IDENTIFIER_LENGTH),
                        format!("an identifier within the record's {rlen} bytes"),
                        format!("{e:?}"),
                    );
                    pos += rlen;
                    nrec += 1;
                    continue;
                }
            };
            pos += rlen;
            nrec += 1;
            let id = rec.identifier;
            let rstruct = if nrec <= 2 && (id == [0] || id == [1]) {
                format!("{structure}, \"{}\" record", if id == [0] { "." } else { ".." })
            } else {
                format!("{h} directory record {}", String::from_utf8_lossy(&child_path(&dir.path, id)))
            };
            let ext = self.p.both32(rec.header.extent_lba, &rstruct, "extent_lba", rec_off + EXTENT_LBA);
            let dlen = self.p.both32(rec.header.data_length, &rstruct, "data_length", rec_off + DATA_LENGTH);
            self.p.both16(
                rec.header.volume_sequence_number,
                &rstruct,
                "volume_sequence_number",
                rec_off + VOLUME_SEQUENCE_NUMBER,
            );
            let flags = rec.header.file_flags;

            // "." and "..": the first two records, and only those.
            if nrec <= 2 {
                let (want_id, want_lba, what) = if nrec == 1 {
                    ([0u8], lba, "this directory")
                } else {
                    ([1u8], parent_lba, "the parent")
                };
                if id != want_id {
                    self.p.push(
                        ProblemKind::BadRecord,
                        rstruct.clone(),
                        "file_identifier",
                        Some(rec_off + FILE_IDENTIFIER),
                        format!(
                            "{want_id:02x?} (record {} is \"{}\")",
                            nrec - 1,
                            if nrec == 1 { "." } else { ".." }
                        ),
                        format!("{id:02x?}"),
                    );
                } else {
                    // Folklore: libisofs (xorriso 1.5.4) writes Joliet ".." records that point
                    // at the directory itself; Linux and Windows ignore ".." extents, so this is
                    // accepted in the Joliet hierarchy.
                    let libisofs_joliet = h == Hierarchy::Joliet && nrec == 2 && ext == lba;
                    // A relocated directory's ".." is its ISO 9660 parent (rr_moved).
                    let relocated = nrec == 2 && dir.is_relocation_link();
                    if ext != want_lba && !libisofs_joliet && !relocated {
                        self.p.push(
                            ProblemKind::BadRecord,
                            rstruct.clone(),
                            "extent_lba",
                            Some(rec_off + EXTENT_LBA),
                            format!("block {want_lba} ({what})"),
                            format!("block {ext}"),
                        );
                    }
                    if nrec == 1 && dlen != len {
                        self.p.push(
                            ProblemKind::BadRecord,
                            rstruct.clone(),
                            "data_length",
                            Some(rec_off + DATA_LENGTH),
                            format!("{len} (the length in the parent's record)"),
                            dlen,
                        );
                    }
                    if nrec == 1 && idx == 0 && h == Hierarchy::Primary {
                        self.detect_susp(rec.system_use, rec_off, &rstruct);
                        if self.susp.is_some() {
                            let su_off = rec_off + (rlen - rec.system_use.len()) as u64;
                            let rr = self.rock_ridge(rec.system_use, su_off, &rstruct);
                            if let Some(s) = self.susp.as_mut() {
                                s.extensions = rr.extensions.clone();
                            }
                            if !rr.extensions.iter().any(|e| ROCK_RIDGE_IDS.contains(&e.as_slice())) {
                                self.p.push(
                                    ProblemKind::BadSusp,
                                    rstruct.clone(),
                                    "ER",
                                    Some(su_off),
                                    "an ER entry declaring Rock Ridge (RRIP_1991A, IEEE_P1282 or IEEE_1282)",
                                    format!(
                                        "extensions {:?}",
                                        rr.extensions
                                            .iter()
                                            .map(|e| String::from_utf8_lossy(e))
                                            .collect::<Vec<_>>()
                                    ),
                                );
                            }
                            out.dot_rr = Some(rr);
                        }
                    }
                    continue;
                }
            }
            if id == [0] || id == [1] {
                self.p.push(
                    ProblemKind::BadRecord,
                    rstruct,
                    "file_identifier",
                    Some(rec_off + FILE_IDENTIFIER),
                    "a file identifier (\".\" and \"..\" are the first two records only)",
                    format!("{id:02x?} (record skipped)"),
                );
                continue;
            }

            // Further extents of a multi-extent file.
            if let Some(pe) = pending.as_mut() {
                if pe.iso_identifier == id {
                    self.check_extent(&rstruct, rec_off, ext, dlen);
                    pe.extents.push((ext, dlen));
                    pe.size += u64::from(dlen);
                    pe.flags = flags;
                    if flags & FLAG_MULTI_EXTENT == 0 {
                        if let Some(pe) = pending.take() {
                            self.finish_child(pe, &mut names, &mut out.children, room, &structure);
                        }
                    }
                    continue;
                }
                if let Some(pe) = pending.take() {
                    let next = format!("a record for another identifier next, {id:02x?}");
                    self.unfinished_multi_extent(h, &pe, next);
                    self.finish_child(pe, &mut names, &mut out.children, room, &structure);
                }
            }

            let su_off = rec_off + (rlen - rec.system_use.len()) as u64;
            let rr = match self.susp.as_ref() {
                Some(s) if h == Hierarchy::Primary => {
                    let skip = usize::from(s.skip).min(rec.system_use.len());
                    Some(self.rock_ridge(&rec.system_use[skip..], su_off + skip as u64, &rstruct))
                }
                _ => None,
            };
            let (cl, re) = rr.as_ref().map_or((None, false), |r| (r.child_link, r.relocated));
            if re && flags & FLAG_DIRECTORY != 0 {
                // Shown where its "CL" placeholder is.
                self.relocated.push(RelocatedRecord {
                    parent: idx,
                    iso_identifier: id.to_vec(),
                    extent_lba: ext,
                });
                continue;
            }
            let name = self.entry_name(id, rr.as_ref(), &rstruct, su_off);
            let (ext, dlen, linked) = match cl {
                Some(target) if flags & FLAG_DIRECTORY == 0 => {
                    match self.relocated_size(target, &rstruct, su_off) {
                        Some(size) => (target, size, true),
                        None => (ext, dlen, false),
                    }
                }
                _ => (ext, dlen, false),
            };
            let is_dir = flags & FLAG_DIRECTORY != 0 || linked;
            let is_link = rr
                .as_ref()
                .is_some_and(|r| r.symlink.is_some() || r.mode.is_some_and(|m| m & 0o170_000 == 0o120_000));
            if let Some(mode) = rr.as_ref().and_then(|r| r.mode) {
                let rr_dir = mode & 0o170_000 == 0o040_000;
                if rr_dir != is_dir {
                    self.p.push(
                        ProblemKind::BadSusp,
                        rstruct.clone(),
                        "PX mode",
                        Some(su_off),
                        format!(
                            "a file type agreeing with the directory flag ({})",
                            if is_dir { "directory" } else { "not a directory" }
                        ),
                        format!("mode {mode:o}"),
                    );
                }
            }
            let kind = if is_dir {
                EntryKind::Dir
            } else if is_link {
                EntryKind::Symlink
            } else {
                EntryKind::File
            };
            if kind == EntryKind::File {
                self.check_extent(&rstruct, rec_off, ext, dlen);
            }
            let path = child_path(&dir.path, &name);
            let entry = Entry {
                path,
                name,
                parent: idx,
                depth: dir.depth + 1,
                iso_identifier: id.to_vec(),
                kind,
                size: u64::from(dlen),
                extents: vec![(ext, dlen)],
                flags,
                recording_date: rec.header.recording_date,
                rr,
                record_offset: rec_off,
            };
            if flags & FLAG_MULTI_EXTENT != 0 {
                if is_dir {
                    self.p.push(
                        ProblemKind::BadRecord,
                        rstruct,
                        "file_flags",
                        Some(rec_off + FILE_FLAGS),
                        "no multi-extent flag 0x80 on a directory",
                        format!("{flags:#04x}"),
                    );
                } else {
                    pending = Some(entry);
                    continue;
                }
            }
            self.finish_child(entry, &mut names, &mut out.children, room, &structure);
        }
        if let Some(pe) = pending.take() {
            self.unfinished_multi_extent(h, &pe, "the end of the directory");
            self.finish_child(pe, &mut names, &mut out.children, room, &structure);
        }
        if nrec < 2 {
            self.p.push(
                ProblemKind::BadRecord,
                structure,
                "records",
                Some(start),
                "\".\" and \"..\" records",
                format!("{nrec} records"),
            );
        }
        Ok(Some(out))
    }

    /// Reports a multi-extent file whose last record still carries the flag 0x80: `next` is
    /// what came where its final record should be.
    fn unfinished_multi_extent(&mut self, h: Hierarchy, pe: &Entry, next: impl std::fmt::Display) {
        self.p.push(
            ProblemKind::BadRecord,
            format!("{h} directory record {}", pe.path_lossy()),
            "file_flags",
            Some(pe.record_offset + FILE_FLAGS),
            "a final record without the multi-extent flag 0x80",
            next,
        );
    }

    fn finish_child(
        &mut self,
        e: Entry,
        names: &mut BTreeSet<Vec<u8>>,
        children: &mut Vec<Entry>,
        room: usize,
        structure: &str,
    ) {
        if children.len() >= room {
            self.limit(
                "max_entries",
                structure.to_string(),
                Some(e.record_offset),
                format!("at most {} entries", self.img.limits.max_entries),
                "more (not listed)".into(),
            );
            return;
        }
        self.name_bytes += e.path.len() as u64;
        if self.name_bytes > self.img.limits.max_name_bytes_total {
            self.limit(
                "max_name_bytes_total",
                structure.to_string(),
                Some(e.record_offset),
                format!("at most {} bytes of paths", self.img.limits.max_name_bytes_total),
                "more (not listed)".into(),
            );
            return;
        }
        if !names.insert(e.name.clone()) {
            self.p.push(
                ProblemKind::BadRecord,
                format!("{} directory record {}", self.h, e.path_lossy()),
                "name",
                Some(e.record_offset),
                "a name unique in its directory",
                "a second entry of that name",
            );
        }
        children.push(e);
    }

    /// Size of the directory a "CL" entry links to, from its "." record.
    fn relocated_size(&mut self, lba: u32, rstruct: &str, su_off: u64) -> Option<u32> {
        let start = Lba2048::new(lba).byte_offset();
        let size = if self.img.inside(start, 255) {
            let mut b = [0u8; 255];
            self.img.src.read_at(start, &mut b).ok().and_then(|()| decode_record(&b).ok()).and_then(|r| {
                (r.identifier == [0] && r.header.extent_lba.le() == lba).then(|| r.header.data_length.le())
            })
        } else {
            None
        };
        if size.is_none() {
            self.p.push(
                ProblemKind::BadSusp,
                rstruct,
                "CL location",
                Some(su_off),
                "the block of a directory (its \".\" record pointing at itself)",
                format!("block {lba}"),
            );
        }
        size
    }

    fn check_extent(&mut self, rstruct: &str, rec_off: u64, lba: u32, len: u32) {
        let start = Lba2048::new(lba).byte_offset();
        if len > 0 && !self.img.inside(start, u64::from(len)) {
            self.p.push(
                ProblemKind::ExtentOutsideImage,
                rstruct,
                "extent_lba",
                Some(rec_off + EXTENT_LBA),
                format!("an extent within the image's {} bytes", self.img.len()),
                format!("block {lba} + {len} bytes, ending at byte {}", start + u64::from(len)),
            );
        }
    }

    fn entry_name(&mut self, id: &[u8], rr: Option<&RockRidge>, rstruct: &str, su_off: u64) -> Vec<u8> {
        let fallback = |id: &[u8]| -> Vec<u8> {
            match self.h {
                Hierarchy::Primary => iso_display_name(id),
                Hierarchy::Joliet => joliet_name(id).into_bytes(),
            }
        };
        if self.h == Hierarchy::Joliet && id.len() % 2 != 0 {
            self.p.push(
                ProblemKind::BadRecord,
                rstruct,
                "file_identifier_length",
                None,
                "an even length (UCS-2)",
                id.len(),
            );
        }
        let mut name = fallback(id);
        if let Some(n) = rr.and_then(|r| r.name.as_ref()) {
            if n.is_empty() || n == b"." || n == b".." || n.contains(&b'/') || n.contains(&0) {
                self.p.push(
                    ProblemKind::BadSusp,
                    rstruct,
                    "NM",
                    Some(su_off),
                    "a file name without '/' or NUL, not empty, \".\" or \"..\"",
                    format!("{:?} (the ISO 9660 identifier is used)", String::from_utf8_lossy(n)),
                );
            } else {
                name = n.clone();
            }
        }
        if name.is_empty() || name.contains(&b'/') {
            self.p.push(
                ProblemKind::BadRecord,
                rstruct,
                "file_identifier",
                None,
                "a name without '/' and not empty",
                format!("{:?} ('/' replaced by '_')", String::from_utf8_lossy(&name)),
            );
            name = name.iter().map(|&b| if b == b'/' { b'_' } else { b }).collect();
            if name.is_empty() {
                name = b"_".to_vec();
            }
        }
        name
    }

    fn detect_susp(&mut self, su: &[u8], rec_off: u64, rstruct: &str) {
        let (list, _) = entries(su);
        let Some(first) = list.first() else { return };
        if &first.signature() != Sp::SIGNATURE {
            return;
        }
        match Sp::decode(first) {
            Ok(sp) if sp.check_bytes == SP_CHECK_BYTES => {
                self.susp = Some(SuspInfo { skip: sp.len_skp, extensions: Vec::new() });
            }
            _ => self.p.push(
                ProblemKind::BadSusp,
                rstruct,
                "SP check bytes",
                Some(rec_off),
                "BE EF",
                format!("{:02x?}", first.data().get(..2).unwrap_or(first.data())),
            ),
        }
    }

    /// Rock Ridge of one record: its System Use area, then the CE chain.
    fn rock_ridge(&mut self, su: &[u8], su_off: u64, rstruct: &str) -> RockRidge {
        let mut rr = RockRidge::default();
        self.absorb_area(&mut rr, su, su_off, rstruct);
        let limits = &self.img.limits;
        let (max_chain, max_area, max_total) =
            (limits.max_ce_chain, limits.max_ce_area, limits.max_ce_bytes_total);
        let mut seen: BTreeSet<(u32, u32)> = BTreeSet::new();
        let mut hops = 0usize;
        while let Some((lba, off, len)) = rr.continuation.take() {
            hops += 1;
            if hops > max_chain {
                self.p.push(
                    ProblemKind::LimitExceeded,
                    rstruct,
                    "CE",
                    None,
                    format!("at most {max_chain} continuation areas"),
                    "more (not read)",
                );
                break;
            }
            if !seen.insert((lba, off)) {
                self.p.push(
                    ProblemKind::ContinuationLoop,
                    rstruct,
                    "CE",
                    None,
                    "a continuation area not yet read for this record",
                    format!("block {lba} offset {off} again (chain stopped)"),
                );
                break;
            }
            let start = Lba2048::new(lba).byte_offset() + u64::from(off);
            if u64::from(off) >= ISO_BLOCK || len > max_area || !self.img.inside(start, u64::from(len)) {
                self.p.push(
                    ProblemKind::ContinuationOutside,
                    rstruct,
                    "CE",
                    None,
                    format!(
                        "an area inside the image ({} bytes), offset below 2048, at most {max_area} bytes",
                        self.img.len()
                    ),
                    format!("block {lba} offset {off} length {len}"),
                );
                break;
            }
            self.ce_bytes += u64::from(len);
            if self.ce_bytes > max_total {
                self.limit(
                    "max_ce_bytes_total",
                    rstruct.to_string(),
                    None,
                    format!("at most {max_total} bytes of continuation areas"),
                    "more (not read)".into(),
                );
                break;
            }
            let area = match self.img.read_vec(start, len as usize, "SUSP continuation area") {
                Ok(a) => a,
                Err(e) => {
                    self.p.push(
                        ProblemKind::ContinuationOutside,
                        rstruct,
                        "CE",
                        Some(start),
                        "a readable area",
                        e,
                    );
                    break;
                }
            };
            self.absorb_area(&mut rr, &area, start, rstruct);
        }
        rr
    }

    fn absorb_area(&mut self, rr: &mut RockRidge, su: &[u8], at: u64, rstruct: &str) {
        let (list, bad) = entries(su);
        if let Some(off) = bad {
            self.p.push(
                ProblemKind::BadSusp,
                rstruct,
                "System Use entry length",
                Some(at + off as u64),
                "at least 4 and within the area",
                format!(
                    "{} (rest of the area ignored)",
                    su.get(off + std::mem::offset_of!(SuspHeader, length)).copied().unwrap_or(0)
                ),
            );
        }
        for e in &list {
            let entry_off = at + e.offset() as u64;
            let decoded = match SystemUse::decode(e) {
                Ok(d) => d,
                Err(err) => {
                    self.p.push(
                        ProblemKind::BadSusp,
                        rstruct,
                        "System Use entry",
                        Some(entry_off),
                        "an entry of the layout its signature names (SUSP 1.12, RRIP 1.12)",
                        format!("{err} (entry ignored)"),
                    );
                    continue;
                }
            };
            for (field, o, v) in decoded.both_fields() {
                self.p.both32(v, rstruct, field, entry_off + o as u64);
            }
            rr.absorb(&decoded);
        }
    }
}
