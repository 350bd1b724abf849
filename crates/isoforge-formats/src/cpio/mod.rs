//! The cpio "newc" archive format (the `070701` "new ASCII" format, and `070702`, the same with
//! a checksum), the format of the Linux initramfs: see `docs/spec/cpio.md`.
//!
//! An archive is a run of entries, each a 110-byte header of ASCII hex numbers, the path name
//! with its NUL, zero padding to a multiple of 4 bytes, the data, and zero padding to a multiple
//! of 4 again; the entry named `TRAILER!!!` ends it. Sizes are 32-bit: a file of 4 GiB or more
//! cannot be stored (the limit [`MAX_FILE_SIZE`] is an error, never a truncation).
//!
//! [`plan`] lays out the offsets of a list of entries (a pure function), [`write::Writer`] writes
//! entries and asserts every offset it reaches against the plan, and [`read`] decodes archives
//! (the one decoder `inspect`, `verify` and `diff` use).

use thiserror::Error;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub mod read;
pub mod write;

/// `c_magic` of the newc format.
pub const MAGIC_NEWC: [u8; 6] = *b"070701";
/// `c_magic` of the newc format with checksums (`c_check` is the byte sum of the data).
pub const MAGIC_CRC: [u8; 6] = *b"070702";
/// Size of a header in bytes.
pub const HEADER_LEN: u64 = 110;
/// The name of the entry that ends an archive.
pub const TRAILER_NAME: &str = "TRAILER!!!";
/// The largest data size a header can hold (`c_filesize` is eight hex digits).
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;
/// File type bits of `c_mode` (as in `st_mode`).
pub const S_IFMT: u32 = 0o170000;
/// A regular file.
pub const S_IFREG: u32 = 0o100000;
/// A directory.
pub const S_IFDIR: u32 = 0o040000;
/// A symbolic link (its data is the target).
pub const S_IFLNK: u32 = 0o120000;

/// Errors planning or writing an archive.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CpioError {
    /// A file's data does not fit `c_filesize`.
    #[error("cpio entry {name}: {size} bytes do not fit a newc header (at most {max} bytes, 32-bit c_filesize)", max = MAX_FILE_SIZE)]
    TooLarge {
        /// The entry's name.
        name: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A name is empty, holds a NUL, or is the trailer's.
    #[error("cpio entry name {name:?}: {why}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// More entries than 32-bit inode numbers.
    #[error("cpio archive: more than {} entries", u32::MAX)]
    TooManyEntries,
    /// Writing the archive failed.
    #[error("writing cpio archive: {0}")]
    Io(#[from] std::io::Error),
}

/// Eight ASCII hex digits: one numeric field of a newc header.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Hex8(pub [u8; 8]);

impl Hex8 {
    /// `value` as eight upper-case hex digits (what GNU cpio writes).
    pub fn new(value: u32) -> Hex8 {
        let mut out = [0u8; 8];
        for (i, b) in out.iter_mut().enumerate() {
            let nibble = (value >> (28 - 4 * i)) & 0xf;
            *b = b"0123456789ABCDEF"[nibble as usize];
        }
        Hex8(out)
    }

    /// The value, or `None` when a byte is not a hex digit (either case).
    pub fn get(&self) -> Option<u32> {
        let mut v = 0u32;
        for &b in &self.0 {
            let d = (b as char).to_digit(16)?;
            v = (v << 4) | d;
        }
        Some(v)
    }
}

/// The 110-byte newc header, field names as in the format's description (cpio(5)).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct NewcHeader {
    /// `070701`, or `070702` with checksums.
    pub c_magic: [u8; 6],
    /// Inode number (entries with the same inode and device are hard links).
    pub c_ino: Hex8,
    /// File type and permission bits, as `st_mode`.
    pub c_mode: Hex8,
    /// Owner.
    pub c_uid: Hex8,
    /// Group.
    pub c_gid: Hex8,
    /// Number of links.
    pub c_nlink: Hex8,
    /// Modification time, seconds since 1970.
    pub c_mtime: Hex8,
    /// Bytes of data after the name (for a symlink: the target).
    pub c_filesize: Hex8,
    /// Major number of the device holding the file.
    pub c_devmajor: Hex8,
    /// Minor number of the device holding the file.
    pub c_devminor: Hex8,
    /// Major number of a device node.
    pub c_rdevmajor: Hex8,
    /// Minor number of a device node.
    pub c_rdevminor: Hex8,
    /// Bytes of the name including its NUL.
    pub c_namesize: Hex8,
    /// Byte sum of the data for `070702`, else 0.
    pub c_check: Hex8,
}

const _: () = assert!(std::mem::size_of::<NewcHeader>() == HEADER_LEN as usize);

/// `n` rounded up to a multiple of 4 (the alignment of names and data).
pub fn pad4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

/// What one entry holds, before it is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntrySpec {
    /// Path name without a leading `/` (the kernel takes names relative to the root).
    pub(crate) name: String,
    /// `st_mode`: type and permission bits.
    pub(crate) mode: u32,
    /// Modification time (the epoch in isoforge's archives).
    pub(crate) mtime: u32,
    /// Bytes of data.
    pub(crate) size: u64,
}

/// Where one entry lies in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedEntry {
    /// Offset of its header.
    pub header: u64,
    /// Offset of its data (after the name and its padding).
    pub data: u64,
    /// Bytes of data.
    pub size: u64,
    /// Offset just past its data's padding (the next header).
    pub end: u64,
    /// Its inode number: entries are numbered in order from 1 (the trailer has 0).
    pub ino: u32,
}

/// The layout of a whole archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The entries in order.
    pub entries: Vec<PlannedEntry>,
    /// Offset of the trailer's header.
    pub trailer: u64,
    /// Length of the archive (the trailer's end, a multiple of 4).
    pub len: u64,
}

/// Offset of the data of an entry named `name` whose header is at `header`.
pub fn data_offset(header: u64, name: &str) -> u64 {
    pad4(header + HEADER_LEN + name.len() as u64 + 1)
}

/// Checks a name for an archive entry.
pub(crate) fn check_name(name: &str) -> Result<(), CpioError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.contains('\0') {
        "holds a NUL byte"
    } else if name == TRAILER_NAME {
        "is the trailer's name"
    } else if name.starts_with('/') {
        "starts with /"
    } else {
        return Ok(());
    };
    Err(CpioError::BadName { name: name.to_string(), why })
}

/// Lays out `entries` (in the order given) followed by the trailer, from offset 0. Fails on a
/// bad name or a size over [`MAX_FILE_SIZE`].
pub(crate) fn plan(entries: &[EntrySpec]) -> Result<Plan, CpioError> {
    let mut out = Vec::with_capacity(entries.len());
    let mut pos = 0u64;
    for (i, e) in entries.iter().enumerate() {
        check_name(&e.name)?;
        if e.size > MAX_FILE_SIZE {
            return Err(CpioError::TooLarge { name: e.name.clone(), size: e.size });
        }
        let ino = u32::try_from(i + 1).map_err(|_| CpioError::TooManyEntries)?;
        let data = data_offset(pos, &e.name);
        let end = pad4(data + e.size);
        out.push(PlannedEntry { header: pos, data, size: e.size, end, ino });
        pos = end;
    }
    let trailer = pos;
    let len = data_offset(trailer, TRAILER_NAME);
    Ok(Plan { entries: out, trailer, len })
}

/// The header, name, NUL and padding of one entry (`ino` 0 and size 0 for the trailer).
pub(crate) fn header_bytes(spec: &EntrySpec, ino: u32) -> Result<Vec<u8>, CpioError> {
    let size = u32::try_from(spec.size)
        .map_err(|_| CpioError::TooLarge { name: spec.name.clone(), size: spec.size })?;
    let namesize = u32::try_from(spec.name.len() + 1)
        .map_err(|_| CpioError::BadName { name: spec.name.clone(), why: "longer than 4 GiB" })?;
    let nlink = if spec.mode & S_IFMT == S_IFDIR { 2 } else { 1 };
    let header = NewcHeader {
        c_magic: MAGIC_NEWC,
        c_ino: Hex8::new(ino),
        c_mode: Hex8::new(spec.mode),
        c_uid: Hex8::new(0),
        c_gid: Hex8::new(0),
        c_nlink: Hex8::new(if spec.name == TRAILER_NAME { 1 } else { nlink }),
        c_mtime: Hex8::new(spec.mtime),
        c_filesize: Hex8::new(size),
        c_devmajor: Hex8::new(0),
        c_devminor: Hex8::new(0),
        c_rdevmajor: Hex8::new(0),
        c_rdevminor: Hex8::new(0),
        c_namesize: Hex8::new(namesize),
        c_check: Hex8::new(0),
    };
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(spec.name.as_bytes());
    out.push(0);
    out.resize(data_offset(0, &spec.name) as usize, 0);
    Ok(out)
}

/// The trailer entry's bytes.
pub fn trailer_bytes() -> Vec<u8> {
    let spec = EntrySpec { name: TRAILER_NAME.to_string(), mode: 0, mtime: 0, size: 0 };
    // The trailer's name is valid and its size is 0: this cannot fail.
    header_bytes(&spec, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests;
