//! A Linux initramfs (a netboot `initrd`): its concatenated cpio segments, their members, and
//! every embedded squashfs (`/nix-store.squashfs`) read with the same detail as in an ISO
//! ([`SquashfsInfo`]). One decoder, [`crate::cpio::read`], serves `inspect`, `verify` and
//! `diff`.
//!
//! A squashfs inside a compressed segment has no random access, so its data is copied, while
//! the segment is decoded, into an unnamed scratch file in the system's temporary directory
//! ([`AtomicOutput`], never named: the kernel frees it when the reader is done or killed).

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;

use isoforge_host::output::AtomicOutput;

use super::squashfs::looks_like_squashfs;
use super::verify::{Finding, Severity};
use super::{SquashfsInfo, SubRead};
use crate::cpio::read::{read_initrd_with, Compression, Member, Segment};
use crate::cpio::{S_IFMT, S_IFREG};
use crate::read_at::ReadAt;
use serde::Serialize;

/// Whether `src` starts like an initramfs: cpio magic or a compressor's.
pub fn looks_like_initrd(src: &dyn ReadAt) -> bool {
    let mut head = [0u8; 8];
    let n = usize::try_from(src.len()).unwrap_or(8).min(8);
    src.read_at(0, &mut head[..n]).is_ok() && Compression::detect(&head[..n]).is_some()
}

/// An embedded squashfs, found as a member of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitrdSquashfs {
    /// Index of the segment.
    pub segment: usize,
    /// The member's name.
    pub member: String,
    /// The squashfs read, or why it could not be.
    pub info: Result<SquashfsInfo, String>,
}

/// An initramfs, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitrdInfo {
    /// Size of the file.
    pub len: u64,
    /// The segments read.
    pub segments: Vec<Segment>,
    /// What stopped the reading before the end, if anything.
    pub error: Option<String>,
    /// The squashfs members.
    pub squashfs: Vec<InitrdSquashfs>,
}

/// A sink that creates its unnamed scratch file on the first write.
struct Scratch {
    out: Option<AtomicOutput>,
}

impl Write for Scratch {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.is_none() {
            let beside = std::env::temp_dir().join("isoforge-initrd-scratch");
            self.out = Some(AtomicOutput::create_beside(&beside).map_err(std::io::Error::other)?);
        }
        match &mut self.out {
            Some(o) => o.file().write(buf),
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn is_squashfs_member(m: &Member) -> bool {
    m.mode & S_IFMT == S_IFREG && m.head.len() >= 4 && m.head[..4] == *b"hsqs"
}

/// Reads the initramfs in `file`.
pub fn read(file: &File) -> std::io::Result<InitrdInfo> {
    let len = file.metadata()?.len();
    let mut scratch = Scratch { out: None };
    let mut src = file;
    let (segments, error) =
        read_initrd_with(&mut src, &|name: &str| name.ends_with(".squashfs"), &mut scratch);
    let mut squashfs = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        for m in seg.members.iter().filter(|m| is_squashfs_member(m)) {
            let info = match (seg.compression, m.extracted, &mut scratch.out) {
                (Compression::None, _, _) => {
                    let sub = SubRead::new(file, seg.offset + m.data, m.size);
                    SquashfsInfo::read(&sub)
                }
                (_, Some(at), Some(out)) => {
                    let f: &File = out.file();
                    let sub = SubRead::new(f, at, m.size);
                    if looks_like_squashfs(&sub, 0) {
                        SquashfsInfo::read(&sub)
                    } else {
                        Err("no squashfs magic".into())
                    }
                }
                _ => Err("not extracted (its name does not end in .squashfs)".into()),
            };
            squashfs.push(InitrdSquashfs { segment: i, member: m.name.clone(), info });
        }
    }
    Ok(InitrdInfo { len, segments, error: error.map(|e| e.to_string()), squashfs })
}

fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        0o040000 => 'd',
        0o120000 => 'l',
        0o100000 => '-',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '?',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Members listed per segment in text without `--tree`.
const TEXT_MEMBERS: usize = 20;

/// `inspect` in text.
pub fn text(info: &InitrdInfo, tree: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "initramfs: {} bytes, {} cpio segments", info.len, info.segments.len());
    for (i, seg) in info.segments.iter().enumerate() {
        let archive = seg.archive_len.map_or("not decoded".to_string(), |l| format!("archive {l} bytes"));
        let _ = writeln!(
            s,
            "segment {i}: bytes {}..{}, {}, {}, {} members",
            seg.offset,
            seg.offset + seg.len,
            seg.compression.name(),
            archive,
            seg.members.len()
        );
        let shown = if tree { seg.members.len() } else { TEXT_MEMBERS };
        for m in seg.members.iter().take(shown) {
            let _ = writeln!(
                s,
                "  {} {:>3} {}/{} {:>12} mtime {} ino {} {}",
                mode_string(m.mode),
                m.nlink,
                m.uid,
                m.gid,
                m.size,
                m.mtime,
                m.ino,
                m.name
            );
        }
        if seg.members.len() > shown {
            let _ = writeln!(s, "  … {} more members (--tree lists them)", seg.members.len() - shown);
        }
        for q in info.squashfs.iter().filter(|q| q.segment == i) {
            let _ = writeln!(s, "  {}:", q.member);
            match &q.info {
                Ok(q) => super::text::squashfs(&mut s, q, tree),
                Err(e) => {
                    let _ = writeln!(s, "  squashfs: unreadable: {e}");
                }
            }
        }
    }
    if let Some(e) = &info.error {
        let _ = writeln!(s, "error: {e}");
    }
    s
}

/// One cpio member in `inspect --json`.
#[derive(Debug, Serialize)]
struct MemberView<'a> {
    name: &'a str,
    mode: u32,
    ino: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    size: u64,
    data_offset: u64,
    sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    squashfs: Option<SquashfsOrError<'a>>,
}

/// An embedded squashfs, or why it could not be read.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum SquashfsOrError<'a> {
    Squashfs(Box<super::json::SquashfsView<'a>>),
    Error { error: &'a str },
}

#[derive(Debug, Serialize)]
struct SegmentView<'a> {
    offset: u64,
    length: u64,
    compression: &'static str,
    archive_length: Option<u64>,
    members: Vec<MemberView<'a>>,
}

/// The `inspect --json` report of an initramfs (write it with [`super::json::pretty`]).
#[derive(Debug, Serialize)]
pub struct InitrdView<'a> {
    schema: &'static str,
    r#type: &'static str,
    size: u64,
    segments: Vec<SegmentView<'a>>,
    error: Option<&'a str>,
}

/// `inspect --json`: `{"schema", "type": "initramfs", "size", "segments": [...], "error"}`.
pub fn json(info: &InitrdInfo, tree: bool) -> InitrdView<'_> {
    let segments = info
        .segments
        .iter()
        .enumerate()
        .map(|(i, seg)| SegmentView {
            offset: seg.offset,
            length: seg.len,
            compression: seg.compression.name(),
            archive_length: seg.archive_len,
            members: seg
                .members
                .iter()
                .map(|m| MemberView {
                    name: m.name.as_str(),
                    mode: m.mode,
                    ino: m.ino,
                    uid: m.uid,
                    gid: m.gid,
                    nlink: m.nlink,
                    mtime: m.mtime,
                    size: m.size,
                    data_offset: m.data,
                    sha256: m.sha256.as_str(),
                    squashfs: info.squashfs.iter().find(|q| q.segment == i && q.member == m.name).map(|q| {
                        match &q.info {
                            Ok(q) => SquashfsOrError::Squashfs(Box::new(super::json::squashfs(q, tree))),
                            Err(e) => SquashfsOrError::Error { error: e.as_str() },
                        }
                    }),
                })
                .collect(),
        })
        .collect();
    InitrdView {
        schema: super::json::SCHEMA,
        r#type: "initramfs",
        size: info.len,
        segments,
        error: info.error.as_deref(),
    }
}

/// `verify`: what stopped the reading, and every problem of every embedded squashfs.
pub fn verify(info: &InitrdInfo) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(e) = &info.error {
        out.push(Finding::error(
            "initramfs",
            "",
            None,
            "cpio segments (plain, gzip, zstd or xz) to the end of the file",
            e,
        ));
    }
    for seg in &info.segments {
        if seg.archive_len.is_none() {
            out.push(Finding::new(
                Severity::Info,
                format!("initramfs {} segment", seg.compression.name()),
                "",
                Some(seg.offset),
                "a segment isoforge decodes (plain, gzip, zstd, xz)",
                "not decoded; the rest of the file is not checked",
            ));
        }
    }
    for q in &info.squashfs {
        let seg = &info.segments[q.segment];
        let base = (seg.compression == Compression::None)
            .then(|| seg.members.iter().find(|m| m.name == q.member).map(|m| seg.offset + m.data))
            .flatten();
        let location = format!("segment {} {}", q.segment, q.member);
        match &q.info {
            // The squashfs reader's offsets are from the member's data, which lies at `base`
            // in the file when the segment is not compressed; else they have no file offset.
            Ok(s) => out.extend(s.problems.iter().map(|p| {
                let p = p.clone().within(&location);
                match base {
                    Some(b) => p.shifted(b),
                    None => Finding { offset: None, ..p },
                }
            })),
            Err(e) => out.push(Finding::error(location, "", base, "a squashfs image", e)),
        }
    }
    out
}

/// `diff` of two initramfs images: one line per differing segment, member (by segment and
/// name) and, inside differing squashfs members, per differing squashfs entry. Empty when they
/// hold the same members with the same data and attributes.
pub fn diff(a: &InitrdInfo, b: &InitrdInfo) -> Vec<String> {
    let mut out = Vec::new();
    if a.segments.len() != b.segments.len() {
        out.push(format!("segments: {} vs {}", a.segments.len(), b.segments.len()));
    }
    for (i, (sa, sb)) in a.segments.iter().zip(&b.segments).enumerate() {
        if sa.compression != sb.compression {
            out.push(format!(
                "segment {i}: compression {} vs {}",
                sa.compression.name(),
                sb.compression.name()
            ));
        }
        for ma in &sa.members {
            match sb.members.iter().find(|m| m.name == ma.name) {
                None => out.push(format!("segment {i}: member {} only in the first", ma.name)),
                Some(mb) => {
                    let mut what = Vec::new();
                    if ma.sha256 != mb.sha256 {
                        what.push(format!("data (sha256 {} vs {})", &ma.sha256[..12], &mb.sha256[..12]));
                    }
                    if ma.size != mb.size {
                        what.push(format!("size {} vs {}", ma.size, mb.size));
                    }
                    for (n, x, y) in [
                        ("mode", ma.mode, mb.mode),
                        ("mtime", ma.mtime, mb.mtime),
                        ("uid", ma.uid, mb.uid),
                        ("gid", ma.gid, mb.gid),
                        ("ino", ma.ino, mb.ino),
                    ] {
                        if x != y {
                            what.push(if n == "mode" {
                                format!("{n} {x:o} vs {y:o}")
                            } else {
                                format!("{n} {x} vs {y}")
                            });
                        }
                    }
                    if !what.is_empty() {
                        out.push(format!("segment {i}: member {} differs: {}", ma.name, what.join(", ")));
                        squashfs_diff(a, b, i, &ma.name, &mut out);
                    }
                }
            }
        }
        for mb in &sb.members {
            if !sa.members.iter().any(|m| m.name == mb.name) {
                out.push(format!("segment {i}: member {} only in the second", mb.name));
            }
        }
    }
    out
}

fn squashfs_diff(a: &InitrdInfo, b: &InitrdInfo, seg: usize, name: &str, out: &mut Vec<String>) {
    let find = |x: &InitrdInfo| {
        x.squashfs
            .iter()
            .find(|q| q.segment == seg && q.member == name)
            .and_then(|q| q.info.as_ref().ok())
            .cloned()
    };
    let (Some(qa), Some(qb)) = (find(a), find(b)) else { return };
    let key = |e: &super::squashfs::SquashfsEntry| {
        let target = match &e.kind {
            super::squashfs::SquashfsKind::Symlink { target } => target.clone(),
            _ => String::new(),
        };
        (e.kind_name(), e.size(), e.mode, e.uid, e.gid, e.mtime, target)
    };
    let ea: std::collections::BTreeMap<_, _> = qa.entries.iter().map(|e| (e.path.clone(), key(e))).collect();
    let eb: std::collections::BTreeMap<_, _> = qb.entries.iter().map(|e| (e.path.clone(), key(e))).collect();
    for (path, ka) in &ea {
        match eb.get(path) {
            None => out.push(format!("  {name}:{path} only in the first")),
            Some(kb) if kb != ka => out.push(format!(
                "  {name}:{path} differs ({} {} bytes vs {} {} bytes)",
                ka.0, ka.1, kb.0, kb.1
            )),
            _ => {}
        }
    }
    for path in eb.keys().filter(|p| !ea.contains_key(*p)) {
        out.push(format!("  {name}:{path} only in the second"));
    }
}
