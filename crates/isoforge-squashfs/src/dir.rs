//! Directory listings in the directory table, and the directory index of extended directory
//! inodes. Source: squashfs_fs.h `struct squashfs_dir_header`, `squashfs_dir_entry`,
//! `squashfs_dir_index`; fs/squashfs/namei.c for how the kernel uses the index.
//!
//! A listing is a run of headers, each followed by up to 256 entries. All entries under one
//! header have their inodes in the same inode-table block and inode numbers within ±32767 of
//! the header's. The writer also starts a new header whenever the listing crosses into a new
//! directory-table block, and records each such header in the directory index (block, byte
//! offset from the listing start, first name), so a lookup can skip straight to the block that
//! may hold a name. Entries are sorted by raw name bytes (the kernel compares with `strcmp`).

use zerocopy::byteorder::little_endian::{I16, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{ReadError, WriteError};
use crate::inode::DirIndex;
use crate::metadata::{MetaRef, MetaTable, MetadataWriter};

/// A directory header (`struct squashfs_dir_header`), 12 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DirHeader {
    /// Number of entries that follow, minus one (0–255).
    pub count: U32,
    /// Inode-table block holding all the entries' inodes.
    pub start_block: U32,
    /// Base inode number.
    pub inode_number: U32,
}
const _: () = assert!(std::mem::size_of::<DirHeader>() == 12);

/// A directory entry (`struct squashfs_dir_entry`), 8 bytes followed by `size + 1` name bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DirEntryRaw {
    /// Offset of the inode in its uncompressed inode-table block.
    pub offset: U16,
    /// Inode number minus the header's.
    pub inode_number: I16,
    /// Basic inode type (1 dir, 2 file, 3 symlink, …).
    pub entry_type: U16,
    /// Name length − 1.
    pub size: U16,
}
const _: () = assert!(std::mem::size_of::<DirEntryRaw>() == 8);

/// Most entries one header may carry.
pub const MAX_ENTRIES_PER_HEADER: usize = 256;
/// Longest name squashfs stores.
pub const MAX_NAME: usize = 256;

/// One entry to write or one entry read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Where the inode is in the inode table.
    pub inode: MetaRef,
    /// Inode number.
    pub inode_number: u32,
    /// Basic inode type.
    pub entry_type: u16,
}

/// Where a written listing is and how big: what the directory inode records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Start of the listing in the directory table.
    pub start: MetaRef,
    /// Listing size in bytes plus 3 (the inode's `file_size`).
    pub file_size: u32,
    /// Directory index entries.
    pub index: Vec<DirIndex>,
}

/// Writes the listing of one directory into the directory table. `entries` must be sorted by
/// name; every inode reference must fit 32 bits of block offset.
pub fn write_listing(table: &mut MetadataWriter, entries: &[Entry]) -> Result<Listing, WriteError> {
    let start = table.position();
    let mut written = 0u64;
    let mut index = Vec::new();
    let mut last_indexed_block = start.block;
    let mut i = 0;
    while i < entries.len() {
        let first = &entries[i];
        let header_pos = table.position();
        if header_pos.block != last_indexed_block {
            index.push(DirIndex {
                index: u32::try_from(written)
                    .map_err(|_| WriteError::Overflow { field: "dir_index.index", value: written })?,
                start_block: block32(header_pos.block)?,
                name: first.name.clone(),
            });
            last_indexed_block = header_pos.block;
        }
        // Gather the run of entries this header covers.
        let inode_block = first.inode.block;
        let base = first.inode_number;
        let mut j = i;
        let mut bytes_in_run = 12u64;
        while j < entries.len() && j - i < MAX_ENTRIES_PER_HEADER {
            let e = &entries[j];
            let delta = i64::from(e.inode_number) - i64::from(base);
            if e.inode.block != inode_block || !(-32768..=32767).contains(&delta) {
                break;
            }
            // Start a new header when this entry would begin in the next directory block, so
            // that every directory block starts close to a header the index can point at.
            if j > i {
                let at = u64::from(header_pos.offset) + bytes_in_run;
                if at >= crate::metadata::METADATA_SIZE as u64 {
                    break;
                }
            }
            bytes_in_run += 8 + e.name.len() as u64;
            j += 1;
        }
        let header = DirHeader {
            count: U32::new((j - i - 1) as u32),
            start_block: U32::new(block32(inode_block)?),
            inode_number: U32::new(base),
        };
        table.write(header.as_bytes())?;
        for e in &entries[i..j] {
            let n = e.name.len();
            if n == 0 || n > MAX_NAME {
                return Err(WriteError::Overflow { field: "dir_entry.size", value: n as u64 });
            }
            let raw = DirEntryRaw {
                offset: U16::new(e.inode.offset),
                inode_number: I16::new((i64::from(e.inode_number) - i64::from(base)) as i16),
                entry_type: U16::new(e.entry_type),
                size: U16::new((n - 1) as u16),
            };
            table.write(raw.as_bytes())?;
            table.write(&e.name)?;
        }
        written += bytes_in_run;
        i = j;
    }
    if index.len() > usize::from(u16::MAX) {
        return Err(WriteError::Overflow { field: "ldir.i_count", value: index.len() as u64 });
    }
    let file_size = u32::try_from(written + 3)
        .map_err(|_| WriteError::Overflow { field: "dir.file_size", value: written })?;
    Ok(Listing { start, file_size, index })
}

fn block32(b: u64) -> Result<u32, WriteError> {
    u32::try_from(b).map_err(|_| WriteError::Overflow { field: "directory/inode table block", value: b })
}

/// Reads the listing of a directory: `pos` is its resolved start in `table`, `file_size` the
/// inode's size (listing + 3). Checks names and header counts.
pub fn read_listing(table: &MetaTable, pos: usize, file_size: u32) -> Result<Vec<Entry>, ReadError> {
    let len = (file_size as usize)
        .checked_sub(3)
        .ok_or_else(|| field("file_size", pos, "at least 3", file_size))?;
    let data = table.bytes(pos, len)?;
    let mut entries = Vec::new();
    let mut p = 0;
    while p < data.len() {
        let h = DirHeader::read_from_prefix(&data[p..])
            .map_err(|_| field("header", pos + p, "12 bytes", data.len() - p))?
            .0;
        p += 12;
        let count = h.count.get() as usize + 1;
        if count > MAX_ENTRIES_PER_HEADER {
            return Err(field("count", pos + p - 12, "0 to 255", h.count.get()));
        }
        for _ in 0..count {
            let e = DirEntryRaw::read_from_prefix(&data[p..])
                .map_err(|_| field("entry", pos + p, "8 bytes", data.len() - p))?
                .0;
            p += 8;
            let n = usize::from(e.size.get()) + 1;
            let name = data
                .get(p..p + n)
                .ok_or_else(|| field("entry.size", pos + p, "name inside the listing", n))?;
            if name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".." {
                return Err(field(
                    "entry.name",
                    pos + p,
                    "a name without '/' or NUL, not . or ..",
                    String::from_utf8_lossy(name),
                ));
            }
            if let Some(prev) = entries.last().map(|e: &Entry| &e.name) {
                if prev.as_slice() >= name {
                    return Err(field(
                        "entry.name",
                        pos + p,
                        "names in strictly increasing order",
                        String::from_utf8_lossy(name),
                    ));
                }
            }
            p += n;
            let number = i64::from(h.inode_number.get()) + i64::from(e.inode_number.get());
            let number = u32::try_from(number)
                .map_err(|_| field("entry.inode_number", pos + p, "a 32-bit inode number", number))?;
            entries.push(Entry {
                name: name.to_vec(),
                inode: MetaRef { block: u64::from(h.start_block.get()), offset: e.offset.get() },
                inode_number: number,
                entry_type: e.entry_type.get(),
            });
        }
    }
    Ok(entries)
}

fn field(name: &'static str, pos: usize, expected: &str, found: impl ToString) -> ReadError {
    ReadError::Field {
        structure: "directory",
        field: name,
        offset: pos as u64,
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compression;

    fn entries(n: usize, name_len: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| {
                let mut name = format!("{i:08}").into_bytes();
                name.resize(name_len.max(8), b'x');
                Entry {
                    name,
                    inode: MetaRef { block: (i / 300) as u64 * 5000, offset: (i % 300 * 20) as u16 },
                    inode_number: 10 + i as u32,
                    entry_type: 2,
                }
            })
            .collect()
    }

    #[test]
    fn small_listing_round_trip() {
        let mut w = MetadataWriter::new(Compression::None, 4096);
        w.write(&[0; 100]).unwrap();
        let es = entries(3, 8);
        let l = write_listing(&mut w, &es).unwrap();
        assert_eq!(l.start, MetaRef { block: 0, offset: 100 });
        assert_eq!(l.file_size, 12 + 3 * 16 + 3);
        assert!(l.index.is_empty());
        let t = MetaTable::parse(&w.finish().unwrap().0, 1, "dir", 0).unwrap();
        assert_eq!(read_listing(&t, t.resolve(l.start).unwrap(), l.file_size).unwrap(), es);
    }

    #[test]
    fn big_listing_has_headers_per_block_and_index() {
        let mut w = MetadataWriter::new(Compression::Zstd { level: 1 }, 1 << 20);
        let es = entries(2000, 200);
        let l = write_listing(&mut w, &es).unwrap();
        // 2000 × 208 bytes ≈ 51 blocks of 8 KiB: one index entry per block boundary.
        assert!(l.index.len() >= 50 && l.index.len() <= 52, "{}", l.index.len());
        let t = MetaTable::parse(&w.finish().unwrap().0, 6, "dir", 0).unwrap();
        let start = t.resolve(l.start).unwrap();
        assert_eq!(read_listing(&t, start, l.file_size).unwrap(), es);
        for ix in &l.index {
            // Each index entry points at a header whose first name is the recorded one, in the
            // recorded block.
            let pos = start + ix.index as usize;
            assert_eq!(t.block_of(pos), Some(u64::from(ix.start_block)));
            let h = DirHeader::read_from_prefix(&t.data[pos..]).unwrap().0;
            assert!(h.count.get() < 256);
            let e = DirEntryRaw::read_from_prefix(&t.data[pos + 12..]).unwrap().0;
            let n = usize::from(e.size.get()) + 1;
            assert_eq!(&t.data[pos + 20..pos + 20 + n], ix.name.as_slice());
        }
    }

    #[test]
    fn corrupt_listing_is_an_error() {
        let mut w = MetadataWriter::new(Compression::None, 4096);
        let l = write_listing(&mut w, &entries(2, 8)).unwrap();
        let mut bytes = w.finish().unwrap().0;
        bytes[2] = 255; // count = 255 + 1 entries, past the end
        let t = MetaTable::parse(&bytes, 1, "dir", 0).unwrap();
        assert!(read_listing(&t, 0, l.file_size).is_err());
        assert!(read_listing(&t, 0, 2).is_err());
    }
}
