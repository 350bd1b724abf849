//! Parallel, deterministic squashfs 4.0 writer and reader.
//!
//! A skeleton for now: the writer arrives with the squashfs issue. The crate exists so the
//! workspace layout is final and `isoforge-core` can depend on it.
#![deny(missing_docs)]

/// The squashfs magic number, "hsqs" read as a little-endian `u32` (squashfs 4.0 superblock, offset 0).
pub const SQUASHFS_MAGIC: u32 = 0x7371_7368;
