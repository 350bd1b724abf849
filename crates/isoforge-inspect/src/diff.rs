//! `isoforge diff`: every differing byte range of two images, named.
//!
//! 1. Both images are read ([`Image::read`]) and mapped ([`ByteMap::build`]).
//! 2. Structural alignment: files of the ISO 9660 tree are matched by path. A file only in one
//!    image is reported as such; a file whose extents moved is reported as `moved`, and its
//!    contents are compared stream against stream (`file /x bytes 0x…`), so a move alone
//!    is one line, not two screens of bytes.
//! 3. The images are compared byte by byte, 1 MiB at a time (memory stays bounded whatever
//!    their size). Each differing range is cut at the leaves of both maps and named by what
//!    covers it in each image: one name when it is the same structure in both
//!    (`PVD.volume_creation_date`), `A … / B …` when the bytes belong to different structures.
//!    Consecutive differences in the same pair of regions are one difference. Ranges that lie
//!    in moved or added/removed files on both sides are counted in one summary line (their
//!    content was compared in step 2); bytes in no region are reported as `unattributed`
//!    with their offsets, never dropped.
//! 4. When the lengths differ, the tail of the longer image is reported region by region.
//!
//! Each difference is also classified by cause where it is found ([`summary`]): the report's
//! [`DiffReport::summary`] groups all of them, whatever `max`.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use self::summary::{Cause, Class, FileChange, Summary, Tally};
use super::bytemap::ByteMap;
use super::fat::{FatEntry, FatInfo};
use super::SquashfsInfo;
use super::{Image, InspectError, Payload};
use crate::iso9660::read::{Entry, EntryKind};
use crate::read_at::{ReadAt, ReadTyped};
use crate::units::{Cluster, Lba2048, ISO_BLOCK};

pub mod summary;

/// The schema identifier of `diff --json`.
pub const SCHEMA: &str = "isoforge-diff/1";

/// Chunk size of the streaming comparison.
const CHUNK: usize = 1 << 20;

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiffKind {
    /// The images have different lengths.
    Length,
    /// A file only in image A.
    OnlyInA,
    /// A file only in image B.
    OnlyInB,
    /// A file whose extents differ (it moved, or its size changed).
    Moved,
    /// Different content of a file matched by path.
    Content,
    /// Different bytes at the same offset.
    Bytes,
    /// Bytes inside moved files, already reported by `Moved`/`Content` (a count).
    Explained,
}

impl DiffKind {
    /// The name used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Length => "length",
            DiffKind::OnlyInA => "only-in-a",
            DiffKind::OnlyInB => "only-in-b",
            DiffKind::Moved => "moved",
            DiffKind::Content => "content",
            DiffKind::Bytes => "bytes",
            DiffKind::Explained => "explained",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What kind.
    pub kind: DiffKind,
    /// What differs (`PVD.volume_creation_date`, `file /boot/bzImage bytes 0x0..0x10`).
    pub name: String,
    /// The byte range in image A (offset, length), when there is one.
    pub a: Option<(u64, u64)>,
    /// The byte range in image B.
    pub b: Option<(u64, u64)>,
    /// Values or details (`A 1980010100000000, B 2000010100000000`).
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.name)?;
        match (self.a, self.b) {
            (Some(a), Some(b)) if a == b => write!(f, " [{:#x}+{}]", a.0, a.1)?,
            (a, b) => {
                if let Some(a) = a {
                    write!(f, " [A {:#x}+{}]", a.0, a.1)?;
                }
                if let Some(b) = b {
                    write!(f, " [B {:#x}+{}]", b.0, b.1)?;
                }
            }
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// What [`diff`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// The differences kept (at most `max`).
    pub differences: Vec<Difference>,
    /// How many more were found and not kept.
    pub omitted: u64,
    /// Total differing bytes at equal offsets (over the common length).
    pub differing_bytes: u64,
    /// The class of every difference found (kept whatever `max`).
    tally: Tally,
}

impl DiffReport {
    /// True when the images are byte-identical.
    pub fn identical(&self) -> bool {
        self.differences.is_empty() && self.omitted == 0
    }

    /// The differences grouped by cause, verdict first (`diff --summary`).
    pub fn summary(&self) -> Summary {
        self.tally.summary()
    }

    /// Keeps `d` (up to `max`) and counts it in its group (`None`: its bytes lie in what another
    /// difference reports).
    fn push(&mut self, max: usize, d: Difference, class: Option<Class>) {
        self.tally.difference(class);
        if self.differences.len() < max {
            self.differences.push(d);
        } else {
            self.omitted += 1;
        }
    }

    /// [`DiffReport::push`] of what one image has and the other has not: `OnlyInA` with its
    /// bytes `range` in A when `in_a`, else `OnlyInB` with its bytes in B.
    fn only_in(
        &mut self,
        max: usize,
        in_a: bool,
        name: String,
        range: Option<(u64, u64)>,
        detail: String,
        class: Class,
    ) {
        let (kind, a, b) =
            if in_a { (DiffKind::OnlyInA, range, None) } else { (DiffKind::OnlyInB, None, range) };
        self.push(max, Difference { kind, name, a, b, detail }, Some(class));
    }
}

/// A few bytes as text when printable, else hex (at most 32 bytes shown).
fn show(bytes: &[u8]) -> String {
    let b = &bytes[..bytes.len().min(32)];
    let more = if bytes.len() > 32 { "…" } else { "" };
    if !b.is_empty() && b.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        format!("{:?}{more}", String::from_utf8_lossy(b))
    } else {
        let h: Vec<String> = b.iter().map(|c| format!("{c:02x}")).collect();
        format!("{}{more}", h.join(" "))
    }
}

/// Compares `a` and `b`; keeps at most `max` differences (the rest are counted).
pub fn diff(a: &dyn ReadAt, b: &dyn ReadAt, max: usize) -> Result<DiffReport, InspectError> {
    let ia = Image::read(a)?;
    let ib = Image::read(b)?;
    let ma = ByteMap::build(&ia, a)?;
    let mb = ByteMap::build(&ib, b)?;
    let mut report = DiffReport::default();
    let mut payloads: Vec<String> = ia.embedded.iter().chain(&ib.embedded).map(|e| e.name.clone()).collect();
    payloads.sort_by(|x, y| y.len().cmp(&x.len()).then_with(|| x.cmp(y)));
    payloads.dedup();
    report.tally.payloads = payloads;
    if a.len() != b.len() {
        report.push(
            max,
            Difference {
                kind: DiffKind::Length,
                name: "image length".into(),
                a: None,
                b: None,
                detail: format!("A {} bytes, B {} bytes", a.len(), b.len()),
            },
            Some(Class::new(Cause::Layout, "", "image length")),
        );
    }
    let squashfs_names = squashfs_pairs(&ia, &ib).map(|(pa, _, _, _)| pa.name.clone()).collect();
    let mut explained = files(&ia, &ib, a, b, &squashfs_names, max, &mut report)?;
    let fat = fat_files(&ia, &ib, a, b, &explained, max, &mut report)?;
    squashfs_payloads(&ia, &ib, a, b, max, &mut report)?;
    explained.extend(squashfs_names);
    let mut exa: BTreeSet<u32> = owners_named(&ma, &explained);
    let mut exb: BTreeSet<u32> = owners_named(&mb, &explained);
    exa.extend(owners_exact(&ma, &fat));
    exb.extend(owners_exact(&mb, &fat));
    bytes(a, b, &ma, &mb, &exa, &exb, "", max, &mut report)?;
    Ok(report)
}

/// Owners whose names are in `names`.
fn owners_exact(m: &ByteMap, names: &BTreeSet<String>) -> BTreeSet<u32> {
    m.owners
        .iter()
        .enumerate()
        .filter(|(_, o)| names.contains(o.as_str()))
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect()
}

/// Owners that belong to the files `paths`: their content (`file /x`) and every structure of a
/// payload inside them (`/x: FAT.BPB.`…).
fn owners_named(m: &ByteMap, paths: &BTreeSet<String>) -> BTreeSet<u32> {
    m.owners
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.strip_prefix("file ").is_some_and(|p| paths.contains(p))
                || o.split_once(": ").is_some_and(|(p, _)| paths.contains(p))
        })
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect()
}

/// Files matched by path: only in one image, moved, content. Returns the paths of the files
/// whose bytes these reports explain. The contents of the files in `inside` (squashfs payloads
/// in both images) are compared by [`squashfs_payloads`] instead.
fn files(
    ia: &Image,
    ib: &Image,
    a: &dyn ReadAt,
    b: &dyn ReadAt,
    inside: &BTreeSet<String>,
    max: usize,
    report: &mut DiffReport,
) -> Result<BTreeSet<String>, InspectError> {
    let index = |img: &Image| -> BTreeMap<Vec<u8>, Entry> {
        img.primary
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| (e.path.clone(), e.clone()))
            .collect()
    };
    let (fa, fb) = (index(ia), index(ib));
    let mut explained = BTreeSet::new();
    let range = |e: &Entry| e.extents.first().map(|&(l, _)| (Lba2048::new(l).byte_offset(), e.size));
    for (in_a, (these, others)) in [(true, (&fa, &fb)), (false, (&fb, &fa))] {
        for (p, e) in these {
            if !others.contains_key(p) {
                let path = e.path_lossy();
                explained.insert(path.clone());
                let change = if in_a { FileChange::Removed } else { FileChange::Added };
                let class = Class::file("", &path, change);
                report.only_in(
                    max,
                    in_a,
                    format!("file {path}"),
                    range(e),
                    format!("{} bytes", e.size),
                    class,
                );
            }
        }
    }
    for (p, ea) in &fa {
        let Some(eb) = fb.get(p) else { continue };
        if ea.extents == eb.extents {
            continue;
        }
        let path = ea.path_lossy();
        let name = format!("file {path}");
        explained.insert(path.clone());
        let payload = inside.contains(&path);
        let moved = ea.first_lba() != eb.first_lba();
        // A payload compared structure by structure that grew or shrank is a layout change
        // explained by the size changes inside it; another file of another size is listed.
        let class = match (ea.size == eb.size, payload) {
            (true, _) => Class::new(Cause::Layout, "", "files moved"),
            (false, true) => Class::new(Cause::Layout, &path, "payload resized").resizing(""),
            (false, false) => Class::file("", &path, FileChange::Resized),
        };
        if moved && ea.size != eb.size {
            report.tally.note(Class::new(Cause::Layout, "", "files moved"));
        }
        report.push(
            max,
            Difference {
                kind: DiffKind::Moved,
                name: name.clone(),
                a: range(ea),
                b: range(eb),
                detail: format!(
                    "block {} → {}, {} → {} bytes",
                    ea.first_lba(),
                    eb.first_lba(),
                    ea.size,
                    eb.size
                ),
            },
            Some(class),
        );
        if !payload {
            content(&Extents::of_iso(ea), &Extents::of_iso(eb), a, b, &name, ("", &path), max, report)?;
        }
    }
    Ok(explained)
}

/// A file's bytes in an image: (byte offset, length) pieces in file order, and its size.
#[derive(Debug, Clone)]
struct Extents {
    pieces: Vec<(u64, u64)>,
    size: u64,
}

impl Extents {
    fn of_iso(e: &Entry) -> Extents {
        Extents {
            pieces: e.extents.iter().map(|&(l, n)| (Lba2048::new(l).byte_offset(), u64::from(n))).collect(),
            size: e.size,
        }
    }

    /// Where the file starts and its size, for a report (`None` for an empty file).
    fn range(&self) -> Option<(u64, u64)> {
        self.pieces.first().map(|&(o, _)| (o, self.size))
    }

    /// The clusters of a FAT file, runs merged, cut at its size.
    fn of_fat(base: u64, g: &crate::fat_fs::bpb::Geometry, e: &FatEntry) -> Extents {
        let cs = g.cluster_size();
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut left = u64::from(e.size);
        for &c in &e.clusters {
            if left == 0 {
                break;
            }
            let n = left.min(cs);
            let off = base + g.cluster_offset(Cluster::new(c));
            match pieces.last_mut() {
                Some((o, l)) if *o + *l == off => *l += n,
                _ => pieces.push((off, n)),
            }
            left -= n;
        }
        Extents { pieces, size: u64::from(e.size) - left }
    }

    /// The image offset of byte `rel`, and how many bytes of the piece follow.
    fn locate(&self, rel: u64) -> Option<(u64, u64)> {
        let mut at = 0u64;
        for &(off, len) in &self.pieces {
            if rel < at + len {
                return Some((off + (rel - at), len - (rel - at)));
            }
            at += len;
        }
        None
    }
}

/// Compares the contents of two files matched by path, reporting differing runs. `file` is the
/// file for the summary: (its container, its path there).
#[allow(clippy::too_many_arguments)]
fn content(
    ea: &Extents,
    eb: &Extents,
    a: &dyn ReadAt,
    b: &dyn ReadAt,
    name: &str,
    file: (&str, &str),
    max: usize,
    report: &mut DiffReport,
) -> Result<(), InspectError> {
    let common = ea.size.min(eb.size);
    let mut x = vec![0u8; CHUNK];
    let mut y = vec![0u8; CHUNK];
    let mut rel = 0u64;
    let mut run: Option<(u64, u64)> = None;
    let flush = |run: &mut Option<(u64, u64)>, report: &mut DiffReport| {
        if let Some((s, e)) = run.take() {
            report.push(
                max,
                Difference {
                    kind: DiffKind::Content,
                    name: format!("{name} bytes {s:#x}..{e:#x}"),
                    a: ea.locate(s).map(|(o, _)| (o, e - s)),
                    b: eb.locate(s).map(|(o, _)| (o, e - s)),
                    detail: String::new(),
                },
                Some(Class::file(file.0, file.1, FileChange::Content)),
            );
        }
    };
    while rel < common {
        let (Some((oa, la)), Some((ob, lb))) = (ea.locate(rel), eb.locate(rel)) else { break };
        let n = (common - rel).min(la).min(lb).min(CHUNK as u64);
        let n_us = usize::try_from(n).unwrap_or(CHUNK);
        if oa.checked_add(n).is_none_or(|end| end > a.len())
            || ob.checked_add(n).is_none_or(|end| end > b.len())
        {
            break;
        }
        a.read_into(oa, &mut x[..n_us], "file content")?;
        b.read_into(ob, &mut y[..n_us], "file content")?;
        for i in 0..n_us {
            if x[i] != y[i] {
                let at = rel + i as u64;
                match &mut run {
                    // Differences less than a block apart are one run.
                    Some((_, e)) if at <= *e + ISO_BLOCK => *e = at + 1,
                    _ => {
                        flush(&mut run, report);
                        run = Some((at, at + 1));
                    }
                }
            }
        }
        rel += n;
    }
    flush(&mut run, report);
    if ea.size != eb.size {
        report.push(
            max,
            Difference {
                kind: DiffKind::Content,
                name: format!("{name} size"),
                a: None,
                b: None,
                detail: format!("A {} bytes, B {} bytes", ea.size, eb.size),
            },
            Some(Class::file(file.0, file.1, FileChange::Resized)),
        );
    }
    Ok(())
}

/// Files of the embedded FAT images present in both images (matched by the payload's name),
/// matched by path: only in one, moved (other clusters), content. Returns the owner names
/// (`<payload>: file <path>`) these reports explain.
fn fat_files(
    ia: &Image,
    ib: &Image,
    a: &dyn ReadAt,
    b: &dyn ReadAt,
    skip: &BTreeSet<String>,
    max: usize,
    report: &mut DiffReport,
) -> Result<BTreeSet<String>, InspectError> {
    let mut explained = BTreeSet::new();
    for pa in &ia.embedded {
        let Payload::Fat(fa) = &pa.payload else { continue };
        let Some((pb, fb)) = ib.embedded.iter().find_map(|p| match &p.payload {
            Payload::Fat(f) if p.name == pa.name => Some((p, f)),
            _ => None,
        }) else {
            continue;
        };
        // A payload inside a file that moved or changed was compared as that file already.
        if skip.contains(&pa.name) && pa.offset != pb.offset {
            continue;
        }
        let files = |f: &FatInfo| -> BTreeMap<String, FatEntry> {
            f.entries.iter().filter(|e| !e.is_dir).map(|e| (e.path.clone(), e.clone())).collect()
        };
        let (ma, mb) = (files(fa), files(fb));
        let (ga, gb) = (&fa.boot.geometry, &fb.boot.geometry);
        for (path, ea) in &ma {
            let name = format!("{}: file {path}", pa.name);
            let xa = Extents::of_fat(pa.offset, ga, ea);
            let Some(eb) = mb.get(path) else {
                explained.insert(name.clone());
                let class = Class::file(&pa.name, path, FileChange::Removed);
                report.only_in(max, true, name, xa.range(), format!("{} bytes", ea.size), class);
                continue;
            };
            let xb = Extents::of_fat(pb.offset, gb, eb);
            if xa.pieces == xb.pieces && ea.size == eb.size {
                continue;
            }
            explained.insert(name.clone());
            report.push(
                max,
                Difference {
                    kind: DiffKind::Moved,
                    name: name.clone(),
                    a: xa.range(),
                    b: xb.range(),
                    detail: format!(
                        "cluster {} → {}, {} → {} bytes",
                        ea.first_cluster, eb.first_cluster, ea.size, eb.size
                    ),
                },
                Some(if ea.size == eb.size {
                    Class::new(Cause::Layout, &pa.name, "FAT files moved")
                } else {
                    Class::file(&pa.name, path, FileChange::Resized)
                }),
            );
            if ea.size != eb.size && ea.first_cluster != eb.first_cluster {
                report.tally.note(Class::new(Cause::Layout, &pa.name, "FAT files moved"));
            }
            content(&xa, &xb, a, b, &name, (&pa.name, path), max, report)?;
        }
        for (path, eb) in &mb {
            if !ma.contains_key(path) {
                let name = format!("{}: file {path}", pb.name);
                let xb = Extents::of_fat(pb.offset, gb, eb);
                explained.insert(name.clone());
                let class = Class::file(&pb.name, path, FileChange::Added);
                report.only_in(max, false, name, xb.range(), format!("{} bytes", eb.size), class);
            }
        }
    }
    Ok(explained)
}

/// The squashfs payloads present in both images under the same name.
fn squashfs_pairs<'a>(
    ia: &'a Image,
    ib: &'a Image,
) -> impl Iterator<Item = (&'a super::EmbeddedImage, &'a SquashfsInfo, &'a super::EmbeddedImage, &'a SquashfsInfo)>
{
    ia.embedded.iter().filter_map(move |pa| {
        let Payload::Squashfs(qa) = &pa.payload else { return None };
        ib.embedded.iter().find_map(|pb| match &pb.payload {
            Payload::Squashfs(qb) if pb.name == pa.name => Some((pa, &**qa, pb, &**qb)),
            _ => None,
        })
    })
}

/// Stored bytes of a squashfs block (`len` bytes at `off` of the payload at `base`), or `None`
/// when they are past the end of the image.
fn stored(src: &dyn ReadAt, base: u64, off: u64, len: u64) -> Result<Option<Vec<u8>>, InspectError> {
    let Some(start) = base.checked_add(off) else { return Ok(None) };
    if len > 16 << 20 || start.checked_add(len).is_none_or(|e| e > src.len()) {
        return Ok(None);
    }
    let mut v = vec![0u8; usize::try_from(len).unwrap_or(0)];
    src.read_into(start, &mut v, "squashfs block")?;
    Ok(Some(v))
}

/// The squashfs payloads of both images, compared structure by structure:
///
/// 1. entries matched by path: only in one image; inode fields (`inode /x mode`, `mtime`,
///    `uid`, `gid`, `size`, `target`, `nlink`, `kind`, `fragment`);
/// 2. each file's data blocks matched by index: a block whose stored bytes differ is
///    `/x content block N` (counted from 0); a block that only moved is explained;
/// 3. fragment blocks and every table's metadata blocks matched by index, the same way;
/// 4. the remaining bytes of the two payloads compared at equal offsets inside them and named by
///    the squashfs byte maps (superblock fields, table indexes, unattributed padding).
///
/// Reported offsets are image offsets.
fn squashfs_payloads(
    ia: &Image,
    ib: &Image,
    a: &dyn ReadAt,
    b: &dyn ReadAt,
    max: usize,
    report: &mut DiffReport,
) -> Result<(), InspectError> {
    use super::squashfs::SquashfsKind;
    use isoforge_squashfs::inode::stored_len;
    for (pa, qa, pb, qb) in squashfs_pairs(ia, ib) {
        let p = format!("{}: ", pa.name);
        let w = pa.name.as_str();
        let mut explained: BTreeSet<String> = BTreeSet::new();
        let (ea, eb): (BTreeMap<&str, _>, BTreeMap<&str, _>) = (
            qa.entries.iter().map(|e| (e.path.as_str(), e)).collect(),
            qb.entries.iter().map(|e| (e.path.as_str(), e)).collect(),
        );
        // `class`: how a differing block counts in the summary.
        let block = |name: String,
                     x: (u64, u64),
                     y: (u64, u64),
                     class: Class,
                     report: &mut DiffReport,
                     explained: &mut BTreeSet<String>|
         -> Result<(), InspectError> {
            let sa = stored(a, pa.offset, x.0, x.1)?;
            let sb = stored(b, pb.offset, y.0, y.1)?;
            // A block that cannot be read in either image at the same place and length (past
            // the end of a truncated image) is the same in both; verify names the damage.
            if sa == sb && (sa.is_some() || x == y) {
                if x.0 != y.0 {
                    report.tally.note(Class::new(Cause::Layout, w, "squashfs blocks moved"));
                }
                explained.insert(name);
                return Ok(());
            }
            let class = if x.1 == y.1 { class } else { class.resizing(w) };
            let detail = match (&sa, &sb) {
                (None, Some(_)) => "not readable in A (past the end of the image)".to_string(),
                (Some(_), None) => "not readable in B (past the end of the image)".to_string(),
                (None, None) => "not readable in either image".to_string(),
                _ if x.1 == y.1 => format!("stored bytes differ ({} bytes)", x.1),
                _ => format!("{} → {} stored bytes", x.1, y.1),
            };
            report.push(
                max,
                Difference {
                    kind: DiffKind::Content,
                    name: name.clone(),
                    a: Some((pa.offset + x.0, x.1)),
                    b: Some((pb.offset + y.0, y.1)),
                    detail,
                },
                Some(class),
            );
            explained.insert(name);
            Ok(())
        };
        for (path, x) in &ea {
            let Some(y) = eb.get(path) else {
                report.push(
                    max,
                    Difference {
                        kind: DiffKind::OnlyInA,
                        name: format!("{p}{path}"),
                        a: None,
                        b: None,
                        detail: format!("{} {} bytes", x.kind_name(), x.size()),
                    },
                    Some(Class::file(w, path, FileChange::Removed)),
                );
                continue;
            };
            let mut field = |f: &str, va: String, vb: String| {
                if va != vb {
                    let class = match f {
                        "mtime" => Class::new(Cause::Time, w, "squashfs inode mtimes"),
                        "size" => Class::file(w, path, FileChange::Resized),
                        "mode" | "uid" | "gid" => Class::file(w, path, FileChange::Metadata),
                        "nlink" => Class::new(Cause::Recomputed, w, "squashfs directory link counts"),
                        "fragment" => Class::new(Cause::Layout, w, "squashfs fragment assignments"),
                        _ => Class::file(w, path, FileChange::Content),
                    };
                    report.push(
                        max,
                        Difference {
                            kind: DiffKind::Content,
                            name: format!("{p}inode {path} {f}"),
                            a: None,
                            b: None,
                            detail: format!("A {va}, B {vb}"),
                        },
                        Some(class),
                    );
                }
            };
            field("kind", x.kind_name().into(), y.kind_name().into());
            field("mode", format!("{:04o}", x.mode), format!("{:04o}", y.mode));
            field("uid", x.uid.to_string(), y.uid.to_string());
            field("gid", x.gid.to_string(), y.gid.to_string());
            field("mtime", x.mtime.to_string(), y.mtime.to_string());
            field("size", x.size().to_string(), y.size().to_string());
            match (&x.kind, &y.kind) {
                (SquashfsKind::Symlink { target: t }, SquashfsKind::Symlink { target: u }) => {
                    field("target", t.clone(), u.clone());
                }
                (SquashfsKind::Dir { nlink: n, .. }, SquashfsKind::Dir { nlink: m, .. }) => {
                    field("nlink", n.to_string(), m.to_string());
                }
                (
                    SquashfsKind::File { blocks: ba, fragment: fa, .. },
                    SquashfsKind::File { blocks: bb, fragment: fb, .. },
                ) => {
                    // The fragment block holding the tail (its offset inside moves with its neighbours).
                    let frag =
                        |f: &Option<(u32, u32)>| f.map_or("none".to_string(), |(i, _)| format!("block {i}"));
                    field("fragment", frag(fa), frag(fb));
                    let len = |w: u32| u64::from(stored_len(w));
                    for (i, (&(oa, wa), &(ob, wb))) in ba.iter().zip(bb.iter()).enumerate() {
                        block(
                            format!("{p}{path} content block {i}"),
                            (oa, len(wa)),
                            (ob, len(wb)),
                            Class::file(w, path, FileChange::Content),
                            report,
                            &mut explained,
                        )?;
                    }
                    for (i, &(o, w)) in ba.iter().enumerate().skip(bb.len()) {
                        explained.insert(format!("{p}{path} content block {i}"));
                        report.push(
                            max,
                            Difference {
                                kind: DiffKind::OnlyInA,
                                name: format!("{p}{path} content block {i}"),
                                a: Some((pa.offset + o, len(w))),
                                b: None,
                                detail: String::new(),
                            },
                            Some(Class::file(&pa.name, path, FileChange::Resized)),
                        );
                    }
                    for (i, &(o, w)) in bb.iter().enumerate().skip(ba.len()) {
                        explained.insert(format!("{p}{path} content block {i}"));
                        report.push(
                            max,
                            Difference {
                                kind: DiffKind::OnlyInB,
                                name: format!("{p}{path} content block {i}"),
                                a: None,
                                b: Some((pb.offset + o, len(w))),
                                detail: String::new(),
                            },
                            Some(Class::file(&pa.name, path, FileChange::Resized)),
                        );
                    }
                }
                _ => {}
            }
        }
        for (path, y) in &eb {
            if !ea.contains_key(path) {
                report.push(
                    max,
                    Difference {
                        kind: DiffKind::OnlyInB,
                        name: format!("{p}{path}"),
                        a: None,
                        b: None,
                        detail: format!("{} {} bytes", y.kind_name(), y.size()),
                    },
                    Some(Class::file(w, path, FileChange::Added)),
                );
            }
        }
        // Files only in one image: their blocks are explained by the line above.
        let mut ma = ByteMap::default();
        ma.squashfs(&p, 0, qa);
        ma.finish();
        let mut mb = ByteMap::default();
        mb.squashfs(&p, 0, qb);
        mb.finish();
        for (path, e) in ea
            .iter()
            .filter(|(k, _)| !eb.contains_key(*k))
            .chain(eb.iter().filter(|(k, _)| !ea.contains_key(*k)))
        {
            if let SquashfsKind::File { blocks, .. } = &e.kind {
                explained.extend((0..blocks.len()).map(|i| format!("{p}{path} content block {i}")));
            }
        }
        // Fragment blocks: named by the fragment map's owners.
        // Fragment block index → its owner name (one pass over the owners).
        let frag_names = |m: &ByteMap| -> BTreeMap<usize, String> {
            let pre = format!("{p}squashfs fragment block ");
            m.owners
                .iter()
                .filter_map(|o| {
                    let i = o.strip_prefix(&pre)?.split(' ').next()?.parse().ok()?;
                    Some((i, o.clone()))
                })
                .collect()
        };
        let (fna, fnb) = (frag_names(&ma), frag_names(&mb));
        let frag_name = |m: &BTreeMap<usize, String>, i: usize| {
            m.get(&i).cloned().unwrap_or_else(|| format!("{p}squashfs fragment block {i}"))
        };
        // The files whose tails each fragment block holds, in either image: a differing block
        // with one tail is that file's content; with more, one of them (the block is listed).
        let mut tails: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
        for e in qa.entries.iter().chain(&qb.entries) {
            if let SquashfsKind::File { fragment: Some((f, _)), .. } = &e.kind {
                tails.entry(*f).or_default().insert(e.path.as_str());
            }
        }
        for (i, (&(oa, wa), &(ob, wb))) in qa.fragments.iter().zip(qb.fragments.iter()).enumerate() {
            let (na, nb) = (frag_name(&fna, i), frag_name(&fnb, i));
            let len = |w: u32| u64::from(stored_len(w));
            explained.insert(na.clone());
            explained.insert(nb.clone());
            let class = match tails
                .get(&u32::try_from(i).unwrap_or(u32::MAX))
                .map(|t| t.iter().collect::<Vec<_>>())
            {
                Some(t) if t.len() == 1 => Class::file(w, t[0], FileChange::Content),
                _ => Class::file(w, na.strip_prefix(&p).unwrap_or(&na), FileChange::Content),
            };
            let name = if na == nb { na } else { format!("A {na} / B {nb}") };
            block(name, (oa, len(wa)), (ob, len(wb)), class, report, &mut explained)?;
        }
        // Metadata blocks of each table, matched by table and index.
        for ta in &qa.tables {
            let Some(tb) = qb.tables.iter().find(|t| t.name == ta.name) else { continue };
            // The inode, directory and id tables encode what the inodes say; the fragment and
            // export tables and every index, where other blocks are.
            let what = format!("squashfs.{} metadata blocks", ta.name);
            let class = match ta.name {
                "fragment_table" | "export_table" => Class::new(Cause::Layout, w, &what),
                _ => Class::new(Cause::Recomputed, w, &what),
            };
            for (i, (&x, &y)) in ta.blocks.iter().zip(tb.blocks.iter()).enumerate() {
                let name = format!("{p}squashfs.{} metadata block {i}", ta.name);
                block(name, x, y, class.clone(), report, &mut explained)?;
            }
            if let (Some(x), Some(y)) = (ta.index, tb.index) {
                let class = Class::new(Cause::Layout, w, "squashfs table indexes");
                block(format!("{p}squashfs.{} index", ta.name), x, y, class, report, &mut explained)?;
            }
        }
        // What is left, at equal offsets inside the two payloads.
        let sa = super::SubRead::new(a, pa.offset, pa.len);
        let sb = super::SubRead::new(b, pb.offset, pb.len);
        let exa = owners_exact(&ma, &explained);
        let exb = owners_exact(&mb, &explained);
        let first = report.differences.len();
        bytes(&sa, &sb, &ma, &mb, &exa, &exb, w, max, report)?;
        for d in &mut report.differences[first..] {
            d.a = d.a.map(|(o, l)| (o + pa.offset, l));
            d.b = d.b.map(|(o, l)| (o + pb.offset, l));
            if d.kind == DiffKind::Explained {
                d.name = format!("{p}blocks that only moved");
                d.detail = d.detail.replace(
                    "inside files reported above (moved/only-in/content)",
                    "moved or reported above by file, block and table",
                );
            }
        }
    }
    Ok(())
}

/// One differing range cut at the leaves of both maps.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: u64,
    end: u64,
    ra: Option<u32>,
    rb: Option<u32>,
}

/// Byte-by-byte comparison over the common length, then the tail of the longer image. `within`:
/// the container compared (`""`: the whole images; else a payload's name).
#[allow(clippy::too_many_arguments)]
fn bytes(
    a: &dyn ReadAt,
    b: &dyn ReadAt,
    ma: &ByteMap,
    mb: &ByteMap,
    exa: &BTreeSet<u32>,
    exb: &BTreeSet<u32>,
    within: &str,
    max: usize,
    report: &mut DiffReport,
) -> Result<(), InspectError> {
    let common = a.len().min(b.len());
    let mut x = vec![0u8; CHUNK];
    let mut y = vec![0u8; CHUNK];
    let mut cur: Option<Piece> = None;
    let mut explained = (0u64, 0u64); // (ranges, bytes)
    let mut pos = 0u64;
    while pos < common {
        let n = usize::try_from((common - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
        a.read_into(pos, &mut x[..n], "image A")?;
        b.read_into(pos, &mut y[..n], "image B")?;
        if x[..n] != y[..n] {
            let mut i = 0usize;
            while i < n {
                if x[i] == y[i] {
                    i += 1;
                    continue;
                }
                let s = i;
                while i < n && x[i] != y[i] {
                    i += 1;
                }
                report.differing_bytes += (i - s) as u64;
                let (mut p, e) = (pos + s as u64, pos + i as u64);
                while p < e {
                    let (ra, enda) = ma.at(p);
                    let (rb, endb) = mb.at(p);
                    let end = e.min(enda).min(endb);
                    let piece = Piece { start: p, end, ra, rb };
                    match &mut cur {
                        Some(c) if c.ra == ra && c.rb == rb && mergeable(ma, ra, c.end, p) => c.end = end,
                        _ => {
                            if let Some(c) = cur.take() {
                                emit(c, a, b, ma, mb, exa, exb, within, max, report, &mut explained)?;
                            }
                            cur = Some(piece);
                        }
                    }
                    p = end;
                }
            }
        }
        pos += n as u64;
    }
    if let Some(c) = cur.take() {
        emit(c, a, b, ma, mb, exa, exb, within, max, report, &mut explained)?;
    }
    if explained.0 > 0 {
        report.push(
            max,
            Difference {
                kind: DiffKind::Explained,
                name: "bytes of moved, added or removed files".into(),
                a: None,
                b: None,
                detail: format!(
                    "{} ranges, {} bytes, inside files reported above (moved/only-in/content)",
                    explained.0, explained.1
                ),
            },
            None,
        );
    }
    // The tail of the longer image, region by region.
    let (long, map, side_a) = if a.len() > b.len() { (a, ma, true) } else { (b, mb, false) };
    let mut p = common;
    while p < long.len() {
        let (r, end) = map.at(p);
        let end = end.min(long.len());
        let name = r.map_or_else(|| "unattributed".to_string(), |r| named(map, r, p, end));
        let range = Some((p, end - p));
        report.push(
            max,
            Difference {
                kind: if side_a { DiffKind::OnlyInA } else { DiffKind::OnlyInB },
                name: format!("{name} (past the end of the other image)"),
                a: if side_a { range } else { None },
                b: if side_a { None } else { range },
                detail: String::new(),
            },
            Some(Class::new(Cause::Layout, within, "bytes past the end of the other image")),
        );
        p = end;
    }
    Ok(())
}

/// Whether a difference at `next` continues the one ending at `end` in the same region: always
/// within a field; within content or unattributed bytes, when less than a block apart.
fn mergeable(m: &ByteMap, r: Option<u32>, end: u64, next: u64) -> bool {
    match r.and_then(|r| m.region(r)) {
        Some(reg) if !reg.content => true,
        _ => next <= end + ISO_BLOCK,
    }
}

/// The name of region `r` for the bytes `s..e`: fields by name, content with its relative
/// offsets.
fn named(m: &ByteMap, r: u32, s: u64, e: u64) -> String {
    let name = m.name(r);
    match m.region(r) {
        Some(reg) if reg.content => {
            let rs = reg.rel + (s - reg.start);
            format!("{name} bytes {rs:#x}..{:#x}", rs + (e - s))
        }
        _ => name,
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    c: Piece,
    a: &dyn ReadAt,
    b: &dyn ReadAt,
    ma: &ByteMap,
    mb: &ByteMap,
    exa: &BTreeSet<u32>,
    exb: &BTreeSet<u32>,
    within: &str,
    max: usize,
    report: &mut DiffReport,
    explained: &mut (u64, u64),
) -> Result<(), InspectError> {
    let owner = |m: &ByteMap, r: Option<u32>| r.and_then(|r| m.region(r)).map(|reg| reg.owner);
    let ex = |set: &BTreeSet<u32>, o: Option<u32>| o.is_some_and(|o| set.contains(&o));
    let (xa, xb) = (ex(exa, owner(ma, c.ra)), ex(exb, owner(mb, c.rb)));
    if xa && xb {
        explained.0 += 1;
        explained.1 += c.end - c.start;
        return Ok(());
    }
    let class = classify(ma, mb, c, (xa, xb), within, &report.tally.payloads);
    let na = c.ra.map_or_else(|| "unattributed".to_string(), |r| named(ma, r, c.start, c.end));
    let nb = c.rb.map_or_else(|| "unattributed".to_string(), |r| named(mb, r, c.start, c.end));
    let name = if na == nb { na } else { format!("A {na} / B {nb}") };
    let len = c.end - c.start;
    let detail = if len <= 32 && report.differences.len() < max {
        let n = usize::try_from(len).unwrap_or(0);
        let mut x = vec![0u8; n];
        let mut y = vec![0u8; n];
        a.read_into(c.start, &mut x, "image A")?;
        b.read_into(c.start, &mut y, "image B")?;
        format!("A {}, B {}", show(&x), show(&y))
    } else {
        String::new()
    };
    report.push(
        max,
        Difference { kind: DiffKind::Bytes, name, a: Some((c.start, len)), b: Some((c.start, len)), detail },
        class,
    );
    Ok(())
}

/// The summary class of a differing piece: by the structure and field holding it when that is
/// the same in both images; bytes of a structure at another offset in the other image are a
/// layout shift, unless they lie in a file reported by file on one side and in no structure on
/// the other (`None`: counted with that file). `ex`: whether each side lies in a reported file.
fn classify(
    ma: &ByteMap,
    mb: &ByteMap,
    c: Piece,
    ex: (bool, bool),
    within: &str,
    payloads: &[String],
) -> Option<Class> {
    let region = |m: &'_ ByteMap, r: Option<u32>| {
        let reg = m.region(r?)?;
        let owner = m.owners.get(reg.owner as usize).map_or("", String::as_str);
        Some((owner.to_string(), reg.field, reg.content))
    };
    match (region(ma, c.ra), region(mb, c.rb)) {
        (Some(x), Some(y)) if x == y => Some(summary::classify_field(payloads, &x.0, x.1, x.2)),
        (None, None) => Some(Class::new(Cause::Other, within, "unattributed bytes")),
        (None, Some(_)) if ex.1 => None,
        (Some(_), None) if ex.0 => None,
        (x, y) => {
            // In the innermost container either side lies in.
            let w = [x, y]
                .iter()
                .flatten()
                .map(|o| summary::within(payloads, &o.0))
                .find(|w| !w.is_empty())
                .unwrap_or_else(|| within.to_string());
            Some(Class::new(Cause::Layout, &w, "structures moved or added"))
        }
    }
}

#[derive(Debug, Serialize)]
struct DifferenceView<'a> {
    kind: &'a str,
    name: &'a str,
    a: Option<super::json::Range>,
    b: Option<super::json::Range>,
    detail: &'a str,
}

/// The `isoforge diff --json` report (write it with [`super::json::pretty`]).
#[derive(Debug, Serialize)]
pub struct DiffView<'a> {
    schema: &'static str,
    identical: bool,
    differing_bytes: u64,
    differences: Vec<DifferenceView<'a>>,
    omitted: u64,
}

/// The report as JSON (schema `isoforge-diff/1`).
pub fn to_json(r: &DiffReport) -> DiffView<'_> {
    use super::json::Range;
    DiffView {
        schema: SCHEMA,
        identical: r.identical(),
        differing_bytes: r.differing_bytes,
        differences: r
            .differences
            .iter()
            .map(|d| DifferenceView {
                kind: d.kind.as_str(),
                name: d.name.as_str(),
                a: d.a.map(Range::new),
                b: d.b.map(Range::new),
                detail: d.detail.as_str(),
            })
            .collect(),
        omitted: r.omitted,
    }
}
