//! The squashfs 4.0 superblock: 96 bytes, little-endian, at offset 0 of the image.
//!
//! Source: the kernel's `fs/squashfs/squashfs_fs.h` (`struct squashfs_super_block`) and
//! `Documentation/filesystems/squashfs.rst`; see `docs/spec/squashfs.md`.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::ReadError;

/// "hsqs" read as a little-endian `u32`.
pub const MAGIC: u32 = 0x7371_7368;
/// The value of an absent table's start (the xattr table, which this writer never emits).
pub const NO_TABLE: u64 = u64::MAX;

/// Superblock flag bits (`SQUASHFS_*` in squashfs_fs.h; the kernel ignores most of them,
/// unsquashfs prints them).
pub mod flags {
    /// Inode table blocks are stored uncompressed (mksquashfs `-noI`).
    pub const UNCOMPRESSED_INODES: u16 = 0x0001;
    /// Data blocks are stored uncompressed (`-noD`).
    pub const UNCOMPRESSED_DATA: u16 = 0x0002;
    /// Unused "check" flag of older versions.
    pub const CHECK: u16 = 0x0004;
    /// Fragment blocks are stored uncompressed (`-noF`).
    pub const UNCOMPRESSED_FRAGMENTS: u16 = 0x0008;
    /// No fragments at all (`-no-fragments`).
    pub const NO_FRAGMENTS: u16 = 0x0010;
    /// Tails of large files are packed into fragments too (`-always-use-fragments`).
    pub const ALWAYS_FRAGMENTS: u16 = 0x0020;
    /// Duplicate files were detected and stored once.
    pub const DUPLICATES: u16 = 0x0040;
    /// An export table is present (NFS export).
    pub const EXPORTABLE: u16 = 0x0080;
    /// Xattr blocks are stored uncompressed.
    pub const UNCOMPRESSED_XATTRS: u16 = 0x0100;
    /// No xattrs are stored.
    pub const NO_XATTRS: u16 = 0x0200;
    /// A compressor options metadata block follows the superblock.
    pub const COMPRESSOR_OPTIONS: u16 = 0x0400;
    /// The id table is stored uncompressed (`-noId`).
    pub const UNCOMPRESSED_IDS: u16 = 0x0800;
}

/// The squashfs 4.0 superblock (`struct squashfs_super_block`), 96 bytes little-endian.
///
/// All `*_start` fields and `bytes_used` are byte offsets relative to the start of the image.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Superblock {
    /// [`MAGIC`].
    pub s_magic: U32,
    /// Number of inodes.
    pub inodes: U32,
    /// Image creation time, seconds since 1970 (unsigned).
    pub mkfs_time: U32,
    /// Data block size in bytes: a power of two from 4 KiB to 1 MiB.
    pub block_size: U32,
    /// Number of entries in the fragment table.
    pub fragments: U32,
    /// Compressor id: 1 gzip, 2 lzma, 3 lzo, 4 xz, 5 lz4, 6 zstd.
    pub compression: U16,
    /// log2(block_size).
    pub block_log: U16,
    /// Flag bits, see [`flags`].
    pub flags: U16,
    /// Number of entries in the id table.
    pub no_ids: U16,
    /// 4.
    pub s_major: U16,
    /// 0.
    pub s_minor: U16,
    /// Inode reference of the root directory (`block << 16 | offset`).
    pub root_inode: U64,
    /// Bytes used by the image, excluding the trailing padding.
    pub bytes_used: U64,
    /// Start of the id lookup table.
    pub id_table_start: U64,
    /// Start of the xattr id table, or [`NO_TABLE`].
    pub xattr_id_table_start: U64,
    /// Start of the inode table.
    pub inode_table_start: U64,
    /// Start of the directory table.
    pub directory_table_start: U64,
    /// Start of the fragment lookup table (or [`NO_TABLE`] when there are no fragments).
    pub fragment_table_start: U64,
    /// Start of the export lookup table (or [`NO_TABLE`] when not exportable).
    pub lookup_table_start: U64,
}

/// Size of [`Superblock`] in bytes.
pub const SUPERBLOCK_SIZE: usize = 96;
const _: () = assert!(std::mem::size_of::<Superblock>() == SUPERBLOCK_SIZE);

impl Superblock {
    /// Decodes and validates the fixed fields (magic, version, block size vs block_log).
    pub fn decode(bytes: &[u8]) -> Result<Superblock, ReadError> {
        let sb = Superblock::read_from_prefix(bytes)
            .map(|(sb, _)| sb)
            .map_err(|_| field("s_magic", "96 bytes", format!("{} bytes", bytes.len())))?;
        if sb.s_magic.get() != MAGIC {
            return Err(field("s_magic", format!("{MAGIC:#x}"), format!("{:#x}", sb.s_magic.get())));
        }
        if (sb.s_major.get(), sb.s_minor.get()) != (4, 0) {
            return Err(field(
                "s_major.s_minor",
                "4.0",
                format!("{}.{}", sb.s_major.get(), sb.s_minor.get()),
            ));
        }
        let bs = sb.block_size.get();
        if !bs.is_power_of_two() || !(4096..=1 << 20).contains(&bs) {
            return Err(field("block_size", "a power of two from 4096 to 1048576", bs.to_string()));
        }
        if u32::from(sb.block_log.get()) != bs.trailing_zeros() {
            return Err(field("block_log", bs.trailing_zeros().to_string(), sb.block_log.get().to_string()));
        }
        let used = sb.bytes_used.get();
        if used < SUPERBLOCK_SIZE as u64 {
            return Err(field("bytes_used", "at least 96", used.to_string()));
        }
        for (name, start) in [
            ("inode_table_start", sb.inode_table_start.get()),
            ("directory_table_start", sb.directory_table_start.get()),
            ("id_table_start", sb.id_table_start.get()),
        ] {
            if start > used {
                return Err(field(name, format!("at most bytes_used ({used})"), start.to_string()));
            }
        }
        Ok(sb)
    }
}

fn field(name: &'static str, expected: impl Into<String>, found: impl Into<String>) -> ReadError {
    ReadError::Field {
        structure: "superblock",
        field: name,
        offset: 0,
        expected: expected.into(),
        found: found.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            s_magic: U32::new(MAGIC),
            inodes: U32::new(3),
            mkfs_time: U32::new(1),
            block_size: U32::new(1 << 20),
            fragments: U32::new(0),
            compression: U16::new(6),
            block_log: U16::new(20),
            flags: U16::new(flags::NO_XATTRS | flags::EXPORTABLE),
            no_ids: U16::new(1),
            s_major: U16::new(4),
            s_minor: U16::new(0),
            root_inode: U64::new(0x20),
            bytes_used: U64::new(4096),
            id_table_start: U64::new(4000),
            xattr_id_table_start: U64::new(NO_TABLE),
            inode_table_start: U64::new(96),
            directory_table_start: U64::new(200),
            fragment_table_start: U64::new(NO_TABLE),
            lookup_table_start: U64::new(3000),
        }
    }

    #[test]
    fn layout_offsets() {
        let b = sample();
        let b = b.as_bytes();
        assert_eq!(b.len(), 96);
        assert_eq!(&b[0..4], b"hsqs");
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 1 << 20);
        assert_eq!(u16::from_le_bytes(b[20..22].try_into().unwrap()), 6);
        assert_eq!(u16::from_le_bytes(b[28..30].try_into().unwrap()), 4);
        assert_eq!(u64::from_le_bytes(b[40..48].try_into().unwrap()), 4096);
        assert_eq!(u64::from_le_bytes(b[56..64].try_into().unwrap()), u64::MAX);
        assert_eq!(u64::from_le_bytes(b[88..96].try_into().unwrap()), 3000);
    }

    #[test]
    fn decode_round_trip_and_rejects() {
        let sb = sample();
        assert_eq!(Superblock::decode(sb.as_bytes()).unwrap(), sb);
        let mut bad = sb;
        bad.s_magic = U32::new(0);
        assert!(Superblock::decode(bad.as_bytes()).is_err());
        let mut bad = sb;
        bad.block_log = U16::new(17);
        assert!(Superblock::decode(bad.as_bytes()).is_err());
        assert!(Superblock::decode(&sb.as_bytes()[..50]).is_err());
        let mut bad = sb;
        bad.bytes_used = U64::new(50);
        assert!(Superblock::decode(bad.as_bytes()).is_err());
    }
}
