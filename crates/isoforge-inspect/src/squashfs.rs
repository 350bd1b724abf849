//! An embedded squashfs 4.0 image (the `/nix-store.squashfs` of a NixOS image), read for
//! `inspect`, checked for `verify` (the superblock against its tables) and mapped for `diff`.
//!
//! The tables are read with [`isoforge_squashfs::Archive`]; this module adds what the reader
//! does not keep: the byte extent of every metadata block of every table (so a differing byte
//! of the compressed inode table is named by its metadata block), the position of each file's
//! data blocks, and the superblock-versus-tables checks. The tree is held as one small record
//! per entry (path, attributes, block list), bounded by [`MAX_SQUASHFS_ENTRIES`].

use std::io::{Read, Seek, SeekFrom};

use isoforge_squashfs::inode::{DATA_UNCOMPRESSED, INVALID};
use isoforge_squashfs::superblock::{flags, Superblock, NO_TABLE, SUPERBLOCK_SIZE};
use isoforge_squashfs::{Archive, EntryKind, SQUASHFS_MAGIC};
use zerocopy::IntoBytes;

use crate::endian::{field_offset, LE, U16, U32};
use crate::finding::{Finding, Problems, MAX_FINDINGS};
use crate::read_at::{ReadAt, ReadTyped};

/// Most tree entries kept; a larger tree is a problem (and is not listed).
pub const MAX_SQUASHFS_ENTRIES: usize = 4_000_000;
/// Most metadata blocks walked per table.
pub const MAX_METADATA_BLOCKS: usize = 1 << 20;
/// Uncompressed size of a metadata block.
const METADATA_SIZE: u64 = 8192;

/// Whether the 4 bytes at `offset` of `src` are the squashfs magic `hsqs`.
pub fn looks_like_squashfs(src: &dyn ReadAt, offset: u64) -> bool {
    src.read_typed::<U32<LE>>(offset).is_ok_and(|m| m.get() == SQUASHFS_MAGIC)
}

/// A table of the image as stored: its metadata blocks and, for the lookup tables (fragment,
/// export, id), the index of block positions that the superblock points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquashfsTable {
    /// `inode_table`, `directory_table`, `fragment_table`, `export_table`, `id_table`.
    pub name: &'static str,
    /// (offset, length) of each metadata block, header included, in order.
    pub blocks: Vec<(u64, u64)>,
    /// (offset, length) of the index (lookup tables only).
    pub index: Option<(u64, u64)>,
}

impl SquashfsTable {
    /// First byte of the table (its first block, else its index).
    pub fn start(&self) -> Option<u64> {
        self.blocks.first().map(|b| b.0).or(self.index.map(|i| i.0))
    }
    /// One past the last byte (the index end, else the last block end).
    pub fn end(&self) -> Option<u64> {
        self.index.map(|(o, l)| o + l).or(self.blocks.last().map(|&(o, l)| o + l))
    }
}

/// What a squashfs entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SquashfsKind {
    /// A directory.
    Dir {
        /// Link count.
        nlink: u32,
        /// Parent inode number.
        parent_inode: u32,
        /// Listing size + 3.
        file_size: u32,
    },
    /// A regular file.
    File {
        /// Size in bytes.
        size: u64,
        /// Data blocks: (offset in the squashfs, size word with bit 24 = stored uncompressed;
        /// stored length 0 = a sparse block).
        blocks: Vec<(u64, u32)>,
        /// Fragment index and offset in the fragment block, for a tail.
        fragment: Option<(u32, u32)>,
        /// The extended (`LREG`) inode form.
        extended: bool,
    },
    /// A symbolic link.
    Symlink {
        /// Its target.
        target: String,
    },
    /// A device, fifo or socket.
    Special {
        /// The inode type number.
        inode_type: u16,
    },
}

/// One entry of the squashfs tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquashfsEntry {
    /// Path from the root, starting with `/` (the root is `/`).
    pub path: String,
    /// Inode number.
    pub inode_number: u32,
    /// Inode reference (metadata block offset << 16 | offset inside it).
    pub inode_ref: u64,
    /// Permission bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (Unix seconds).
    pub mtime: u32,
    /// What it is.
    pub kind: SquashfsKind,
}

impl SquashfsEntry {
    /// `dir`, `file`, `symlink` or `special`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SquashfsKind::Dir { .. } => "dir",
            SquashfsKind::File { .. } => "file",
            SquashfsKind::Symlink { .. } => "symlink",
            SquashfsKind::Special { .. } => "special",
        }
    }
    /// File size (0 for others; the target length for a symlink).
    pub fn size(&self) -> u64 {
        match &self.kind {
            SquashfsKind::File { size, .. } => *size,
            SquashfsKind::Symlink { target } => target.len() as u64,
            _ => 0,
        }
    }
}

/// An embedded squashfs, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquashfsInfo {
    /// The superblock as stored.
    pub superblock: Superblock,
    /// The compressor's name (`zstd`, `xz`, `gzip`, … or `unknown N`).
    pub compressor: String,
    /// The compressor options block, hex, when present.
    pub compressor_options: Option<String>,
    /// The id table.
    pub ids: Vec<u32>,
    /// The fragment table: (offset, size word) per fragment block.
    pub fragments: Vec<(u64, u32)>,
    /// Number of export table entries, when the table is present.
    pub export_entries: Option<usize>,
    /// The tables in image order, as far as they could be walked.
    pub tables: Vec<SquashfsTable>,
    /// Every entry, root first, depth-first in name order.
    pub entries: Vec<SquashfsEntry>,
    /// Everything wrong, offsets from the start of the squashfs (at most [`MAX_FINDINGS`], then
    /// a count).
    pub problems: Vec<Finding>,
}

/// A `Read + Seek` view of a [`ReadAt`], for the squashfs reader.
struct Cursor<'a> {
    src: &'a dyn ReadAt,
    pos: u64,
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.src.len().saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.src.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range");
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => self.src.len().checked_add_signed(d).ok_or_else(bad)?,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(bad)?,
        };
        Ok(self.pos)
    }
}

/// A finding in the superblock's field `field`, named as the byte map names it
/// (`squashfs.superblock.bytes_used`).
fn superblock(
    field: &'static str,
    offset: Option<u64>,
    expected: impl std::fmt::Display,
    found: impl std::fmt::Display,
) -> Finding {
    Finding::error("squashfs.superblock", format!(".{field}"), offset, expected, found)
}

/// The compressor's name for its superblock id.
pub fn compressor_name(id: u16) -> String {
    match id {
        1 => "gzip".into(),
        2 => "lzma".into(),
        3 => "lzo".into(),
        4 => "xz".into(),
        5 => "lz4".into(),
        6 => "zstd".into(),
        n => format!("unknown {n}"),
    }
}

/// Walks the metadata blocks from `start` until `end` (exclusive): (offset, length) each.
/// Stops (with a problem) at a block that runs past `end` or the source.
fn walk_blocks(
    src: &dyn ReadAt,
    start: u64,
    end: u64,
    table: &'static str,
    problems: &mut Problems,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end && out.len() < MAX_METADATA_BLOCKS {
        let Ok(h) = src.read_typed::<U16<LE>>(at) else {
            problems.add(Finding::error(
                format!("squashfs.{table}"),
                "",
                Some(at),
                "a metadata block header",
                "end of image",
            ));
            return out;
        };
        let len = u64::from(h.get() & 0x7fff);
        if len == 0 || len > METADATA_SIZE || at + 2 + len > end {
            problems.add(Finding::error(
                format!("squashfs.{table} metadata block"),
                "",
                Some(at),
                format!("1 to {METADATA_SIZE} bytes ending by byte {end}"),
                format!("{len} bytes"),
            ));
            return out;
        }
        out.push((at, 2 + len));
        at += 2 + len;
    }
    out
}

/// Reads a lookup table's index at `start` (`entries_bytes` of entries in 8 KiB blocks) and
/// the blocks it points at.
fn lookup_table(
    src: &dyn ReadAt,
    name: &'static str,
    start: u64,
    entries_bytes: u64,
    problems: &mut Problems,
) -> SquashfsTable {
    let count = entries_bytes.div_ceil(METADATA_SIZE);
    let mut t = SquashfsTable { name, blocks: Vec::new(), index: Some((start, count.saturating_mul(8))) };
    if count > MAX_METADATA_BLOCKS as u64 || start.checked_add(count * 8).is_none_or(|e| e > src.len()) {
        problems.add(superblock(
            table_field(name),
            Some(0),
            format!("an index of {count} block pointers inside the image"),
            start,
        ));
        t.index = None;
        return t;
    }
    let mut raw = vec![0u8; usize::try_from(count * 8).unwrap_or(0)];
    if src.read_at(start, &mut raw).is_err() {
        return t;
    }
    for p in raw.chunks_exact(8) {
        let p = u64::from_le_bytes(p.try_into().unwrap_or([0; 8]));
        let h = if p < start { src.read_typed::<U16<LE>>(p).ok() } else { None };
        let Some(h) = h else {
            problems.add(Finding::error(
                format!("squashfs.{name} index"),
                "",
                Some(start),
                format!("block positions before {start}"),
                p,
            ));
            break;
        };
        let len = u64::from(h.get() & 0x7fff);
        t.blocks.push((p, 2 + len));
    }
    t
}

/// The superblock field that points at a table.
fn table_field(name: &str) -> &'static str {
    match name {
        "inode_table" => "inode_table_start",
        "directory_table" => "directory_table_start",
        "fragment_table" => "fragment_table_start",
        "export_table" => "lookup_table_start",
        _ => "id_table_start",
    }
}

impl SquashfsInfo {
    /// Reads the squashfs in `src` (the window of the embedded image). `Err` says why it is not
    /// a squashfs; everything else wrong is in `problems`.
    pub fn read(src: &dyn ReadAt) -> Result<SquashfsInfo, String> {
        let raw =
            src.read_typed::<Superblock>(0).map_err(|e| format!("cannot read a squashfs superblock: {e}"))?;
        let sb =
            Superblock::decode(raw.as_bytes()).map_err(|e| format!("not a squashfs 4.0 superblock: {e}"))?;
        let mut info = SquashfsInfo {
            superblock: sb,
            compressor: compressor_name(sb.compression.get()),
            compressor_options: None,
            ids: Vec::new(),
            fragments: Vec::new(),
            export_entries: None,
            tables: Vec::new(),
            entries: Vec::new(),
            problems: Vec::new(),
        };
        let mut p = Problems::new(MAX_FINDINGS);
        info.check_superblock(src, &mut p);
        info.read_tables(src, &mut p);
        match Archive::open(Cursor { src, pos: 0 }) {
            Ok(a) => info.read_archive(&a, &mut p),
            Err(e) => {
                // A lookup table sized by a superblock count that does not match is that count's fault.
                let msg = e.to_string();
                let expected = "tables the reader can open";
                p.add(
                    match [
                        ("export table", "inodes"),
                        ("fragment table", "fragments"),
                        ("id table", "no_ids"),
                    ]
                    .iter()
                    .find(|(t, _)| msg.starts_with(t))
                    {
                        Some((_, f)) => superblock(f, None, expected, msg),
                        None => Finding::error("squashfs", "", None, expected, msg),
                    },
                );
            }
        }
        info.problems = p.finish();
        Ok(info)
    }

    fn check_superblock(&mut self, src: &dyn ReadAt, p: &mut Problems) {
        let sb = self.superblock;
        let used = sb.bytes_used.get();
        if used > src.len() {
            p.add(superblock(
                "bytes_used",
                Some(field_offset!(Superblock, bytes_used)),
                format!("at most the file's {} bytes", src.len()),
                used,
            ));
        }
        if sb.s_major.get() != 4 || sb.s_minor.get() != 0 {
            p.add(superblock(
                "s_major",
                Some(field_offset!(Superblock, s_major)),
                "version 4.0",
                format!("{}.{}", sb.s_major.get(), sb.s_minor.get()),
            ));
        }
        let bs = sb.block_size.get();
        if !(4096..=1 << 20).contains(&bs)
            || !bs.is_power_of_two()
            || 1u32.checked_shl(u32::from(sb.block_log.get())) != Some(bs)
        {
            p.add(superblock(
                "block_log",
                Some(field_offset!(Superblock, block_log)),
                format!("log2 of block_size {bs}, 12 to 20"),
                sb.block_log.get(),
            ));
        }
        if sb.xattr_id_table_start.get() != NO_TABLE && sb.xattr_id_table_start.get() > used {
            p.add(superblock(
                "xattr_id_table_start",
                Some(field_offset!(Superblock, xattr_id_table_start)),
                format!("inside bytes_used ({used}) or absent"),
                sb.xattr_id_table_start.get(),
            ));
        }
    }

    /// Walks every table's blocks and checks their order: data < inode table < directory table
    /// < fragment < export < id < bytes_used.
    fn read_tables(&mut self, src: &dyn ReadAt, problems: &mut Problems) {
        let sb = self.superblock;
        let used = sb.bytes_used.get().min(src.len());
        let mut lookups = Vec::new();
        if sb.fragments.get() > 0 {
            lookups.push(lookup_table(
                src,
                "fragment_table",
                sb.fragment_table_start.get(),
                u64::from(sb.fragments.get()) * 16,
                problems,
            ));
        }
        if sb.lookup_table_start.get() != NO_TABLE {
            lookups.push(lookup_table(
                src,
                "export_table",
                sb.lookup_table_start.get(),
                u64::from(sb.inodes.get()) * 8,
                problems,
            ));
        }
        lookups.push(lookup_table(
            src,
            "id_table",
            sb.id_table_start.get(),
            u64::from(sb.no_ids.get()) * 4,
            problems,
        ));
        let it = sb.inode_table_start.get();
        let dt = sb.directory_table_start.get();
        let dir_end = lookups.iter().filter_map(SquashfsTable::start).min().unwrap_or(used).min(used);
        let first_data = if sb.flags.get() & flags::COMPRESSOR_OPTIONS != 0 {
            SUPERBLOCK_SIZE as u64 + 2
        } else {
            SUPERBLOCK_SIZE as u64
        };
        if it < first_data || it > dt {
            problems.add(superblock(
                "inode_table_start",
                Some(field_offset!(Superblock, inode_table_start)),
                format!("between the superblock and directory_table_start ({dt})"),
                it,
            ));
        }
        if dt > dir_end {
            problems.add(superblock(
                "directory_table_start",
                Some(field_offset!(Superblock, directory_table_start)),
                format!("before the lookup tables (byte {dir_end})"),
                dt,
            ));
        }
        let inode_blocks = if it <= dt && dt <= used {
            walk_blocks(src, it, dt, "inode_table", problems)
        } else {
            Vec::new()
        };
        let dir_blocks = if dt <= dir_end {
            walk_blocks(src, dt, dir_end, "directory_table", problems)
        } else {
            Vec::new()
        };
        self.tables.push(SquashfsTable { name: "inode_table", blocks: inode_blocks, index: None });
        self.tables.push(SquashfsTable { name: "directory_table", blocks: dir_blocks, index: None });
        // Each lookup table must lie after the previous one, inside bytes_used.
        let mut prev_end = dir_end;
        for t in lookups {
            let (Some(s), Some(e)) = (t.start(), t.end()) else {
                self.tables.push(t);
                continue;
            };
            if s < prev_end || e > sb.bytes_used.get() {
                problems.add(superblock(
                    table_field(t.name),
                    Some(0),
                    format!(
                        "the {} from byte {prev_end} to at most bytes_used ({})",
                        t.name,
                        sb.bytes_used.get()
                    ),
                    format!("bytes {s}..{e}"),
                ));
            }
            for w in t.blocks.windows(2) {
                if w[0].0 + w[0].1 != w[1].0 {
                    problems.add(Finding::error(
                        format!("squashfs.{} index", t.name),
                        "",
                        t.index.map(|i| i.0),
                        format!("block at byte {}", w[0].0 + w[0].1),
                        w[1].0,
                    ));
                }
            }
            if let (Some(&(lo, ll)), Some((io, _))) = (t.blocks.last(), t.index) {
                if lo + ll != io {
                    problems.add(Finding::error(
                        format!("squashfs.{} index", t.name),
                        "",
                        Some(io),
                        format!("right after its last block (byte {})", lo + ll),
                        io,
                    ));
                }
            }
            prev_end = e;
            self.tables.push(t);
        }
        if prev_end != sb.bytes_used.get() && sb.xattr_id_table_start.get() == NO_TABLE {
            problems.add(superblock(
                "bytes_used",
                Some(field_offset!(Superblock, bytes_used)),
                format!("the end of the last table ({prev_end})"),
                sb.bytes_used.get(),
            ));
        }
    }

    fn read_archive<R: Read + Seek>(&mut self, a: &Archive<R>, p: &mut Problems) {
        let sb = self.superblock;
        self.compressor_options = a.compressor_options().map(super::system_area::hex);
        self.ids = a.ids().to_vec();
        self.fragments = a.fragments().to_vec();
        self.export_entries = a.export_table().map(<[u64]>::len);
        if self.ids.len() != usize::from(sb.no_ids.get()) {
            p.add(superblock(
                "no_ids",
                Some(field_offset!(Superblock, no_ids)),
                "the id table's entries",
                self.ids.len(),
            ));
        }
        if self.fragments.len() != sb.fragments.get() as usize {
            p.add(superblock(
                "fragments",
                Some(field_offset!(Superblock, fragments)),
                "the fragment table's entries",
                self.fragments.len(),
            ));
        }
        if (sb.flags.get() & flags::EXPORTABLE != 0) != self.export_entries.is_some() {
            p.add(superblock(
                "flags",
                Some(field_offset!(Superblock, flags)),
                "the EXPORTABLE flag set exactly when lookup_table_start is present",
                format!("{:#06x}", sb.flags.get()),
            ));
        }
        let list = match a.walk() {
            Ok(l) => l,
            Err(e) => {
                p.add(Finding::error("squashfs tree", "", None, "a tree the reader can walk", e));
                return;
            }
        };
        if list.len() > MAX_SQUASHFS_ENTRIES {
            p.add(Finding::error(
                "squashfs tree",
                "",
                None,
                format!("at most {MAX_SQUASHFS_ENTRIES} entries listed"),
                list.len(),
            ));
        }
        let mut numbers = std::collections::BTreeSet::new();
        for (path, n) in list.into_iter().take(MAX_SQUASHFS_ENTRIES) {
            numbers.insert(n.inode_number);
            let kind = match n.kind {
                EntryKind::Dir { nlink, parent_inode, file_size, .. } => {
                    SquashfsKind::Dir { nlink, parent_inode, file_size }
                }
                EntryKind::File { layout, extended } => {
                    let mut at = layout.start_block;
                    let blocks = layout
                        .blocks
                        .iter()
                        .map(|&w| {
                            let b = (at, w);
                            at = at.saturating_add(u64::from(w & (DATA_UNCOMPRESSED - 1)));
                            b
                        })
                        .collect();
                    SquashfsKind::File {
                        size: layout.file_size,
                        blocks,
                        fragment: (layout.fragment != INVALID)
                            .then_some((layout.fragment, layout.frag_offset)),
                        extended,
                    }
                }
                EntryKind::Symlink { target } => {
                    SquashfsKind::Symlink { target: String::from_utf8_lossy(&target).into_owned() }
                }
                EntryKind::Special { inode_type } => SquashfsKind::Special { inode_type },
            };
            self.entries.push(SquashfsEntry {
                path: format!("/{}", String::from_utf8_lossy(&path)),
                inode_number: n.inode_number,
                inode_ref: n.inode_ref,
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                mtime: n.mtime,
                kind,
            });
        }
        if numbers.len() != sb.inodes.get() as usize {
            p.add(superblock(
                "inodes",
                Some(field_offset!(Superblock, inodes)),
                format!("the {} distinct inodes of the tree", numbers.len()),
                sb.inodes.get(),
            ));
        }
        // Data and fragment blocks lie between the superblock and the inode table.
        let it = sb.inode_table_start.get();
        for e in &self.entries {
            if let SquashfsKind::File { blocks, .. } = &e.kind {
                if let Some(&(o, w)) = blocks
                    .iter()
                    .find(|&&(o, w)| o.saturating_add(u64::from(w & (DATA_UNCOMPRESSED - 1))) > it)
                {
                    p.add(Finding::error(
                        format!("squashfs inode {}", e.path),
                        "blocks",
                        Some(o),
                        format!("data blocks before the inode table (byte {it})"),
                        format!("a block of {} bytes at {o}", w & (DATA_UNCOMPRESSED - 1)),
                    ));
                }
            }
        }
        for (i, &(o, w)) in self.fragments.iter().enumerate() {
            let len = u64::from(w & (DATA_UNCOMPRESSED - 1));
            if len == 0 || o.saturating_add(len) > it {
                p.add(Finding::error(
                    format!("squashfs.fragment_table entry {i}"),
                    "",
                    Some(o),
                    format!("1 to block_size bytes before the inode table (byte {it})"),
                    format!("{len} bytes at {o}"),
                ));
            }
        }
        match a.verify() {
            Ok(list) => {
                for m in list {
                    p.add(Finding::error("squashfs", "", None, "a consistent tree", m));
                }
            }
            Err(e) => p.add(Finding::error("squashfs", "", None, "a tree the reader can verify", e)),
        }
    }

    /// The paths of the files whose tails lie in fragment block `index`.
    pub fn fragment_users(&self, index: u32) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| matches!(&e.kind, SquashfsKind::File { fragment: Some((f, _)), .. } if *f == index))
            .map(|e| e.path.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_squashfs_is_an_error() {
        let zeros = vec![0u8; 4096];
        assert!(SquashfsInfo::read(&zeros).is_err());
        assert!(!looks_like_squashfs(&zeros, 0));
    }

    #[test]
    fn a_bare_superblock_is_problems_not_a_panic() {
        let mut b = vec![0u8; 4096];
        b[0..4].copy_from_slice(b"hsqs");
        b[12..16].copy_from_slice(&131072u32.to_le_bytes());
        b[22..24].copy_from_slice(&17u16.to_le_bytes());
        b[28..30].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        // The superblock decodes, so the image is read (an error here is a failure) and what
        // is wrong with it is reported as problems.
        let info =
            SquashfsInfo::read(&b).unwrap_or_else(|e| panic!("a superblock that decodes is read: {e}"));
        let found: Vec<(String, Option<u64>)> =
            info.problems.iter().map(|p| (p.location(), p.offset)).collect();
        assert_eq!(
            found,
            [
                ("squashfs.superblock.bytes_used", Some(40)),
                ("squashfs.superblock.inode_table_start", Some(64)),
                ("squashfs", None),
            ]
            .map(|(l, o)| (l.to_string(), o)),
            "{:#?}",
            info.problems
        );
    }
}
