//! Positional reads: the one I/O abstraction of every reader in the crate.
//!
//! Readers never seek and never hold an image in memory: they ask a [`ReadAt`] for the bytes at
//! an offset, with `read_exact` semantics. A byte slice (an image built in memory by a test) and
//! a [`std::fs::File`] (a multi-gigabyte image on disk) both implement it. There is no mmap: the
//! workspace forbids `unsafe`, and positional reads of a few blocks at a time are enough.
//!
//! On-disk structures are read whole with [`ReadTyped`] (as the `object` crate's
//! `ReadRef::read_at::<T>()`): `src.read_typed::<GptHeader>(offset)` reads one `#[repr(C)]`
//! layout struct and hands it out as a [`Located`] view, the value with the byte offset it was
//! read from, so that a reader names a field's offset as `header.at(field_offset!(GptHeader,
//! my_lba))` and never multiplies a sector number again.
//!
//! ```
//! use isoforge_formats::endian::field_offset;
//! use isoforge_formats::part::mbr::{Mbr, MbrPartitionRecord};
//! use isoforge_formats::read_at::{ReadAt, ReadTyped};
//!
//! let image = vec![0u8; 4096];
//! let src: &dyn ReadAt = &image;
//! let mbr = src.read_typed::<Mbr>(0)?;
//! let record = mbr.at(field_offset!(Mbr, partition_record));
//! assert_eq!(record + field_offset!(MbrPartitionRecord, size_in_lba), 446 + 12);
//! assert_eq!(mbr.partition_record[0].size_in_lba.get(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;

use thiserror::Error;
use zerocopy::{FromBytes, Immutable, KnownLayout};

/// A random-access source of bytes.
///
/// `read_at` fills all of `buf` from `offset` or fails: a read past [`ReadAt::len`] is an
/// [`io::ErrorKind::UnexpectedEof`] error, never a short read.
pub trait ReadAt {
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Total length of the source in bytes.
    fn len(&self) -> u64;
    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A value read from a source, with the byte offset of its first byte there.
///
/// Readers hand out their layout structs (and what they decode from them) as `Located` views,
/// so that every report of a field is at `view.at(field_offset!(T, field))`: the offset comes
/// from where the structure was read, never from a block or sector number multiplied again.
/// It dereferences to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Located<T> {
    /// Byte offset of the value's first byte in the source (for a payload inside an image,
    /// in the payload's window).
    pub offset: u64,
    /// The value.
    pub value: T,
}

impl<T> Located<T> {
    /// `value`, read at byte `offset`.
    pub const fn new(offset: u64, value: T) -> Located<T> {
        Located { offset, value }
    }

    /// The byte offset of byte `rel` of the value: a field's offset is
    /// `view.at(field_offset!(T, field))` (saturating, for offsets a corrupt image made up).
    pub const fn at(&self, rel: u64) -> u64 {
        self.offset.saturating_add(rel)
    }

    /// The same offset with the value mapped (a decoded form of the layout read there).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located { offset: self.offset, value: f(self.value) }
    }

    /// A view of the same offset borrowing the value.
    pub fn as_ref(&self) -> Located<&T> {
        Located { offset: self.offset, value: &self.value }
    }
}

impl<T: FromBytes> Located<T> {
    /// One past the last byte of the layout struct (`offset + size_of::<T>()`, saturating).
    pub fn end(&self) -> u64 {
        self.at(std::mem::size_of::<T>() as u64)
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A positional read that failed, with what was being read: the one I/O error of the readers
/// (the ISO 9660 reader's [`crate::iso9660::read::ReadError::Io`] and the image model's
/// wrap it).
#[derive(Debug, Error)]
#[error("cannot read {len} bytes of the {what} at byte offset {offset}: {source}")]
pub struct ReadAtError {
    /// What was being read (`volume descriptor`, `boot catalog`, `MBR`).
    pub what: String,
    /// Byte offset of the read.
    pub offset: u64,
    /// Bytes asked for.
    pub len: u64,
    /// The underlying error.
    pub source: io::Error,
}

/// Typed positional reads, for every [`ReadAt`] (trait objects included: `&dyn ReadAt` gets
/// them through the blanket implementation, and [`ReadAt`] itself stays object-safe).
pub trait ReadTyped: ReadAt {
    /// Reads the layout struct `T` at `offset` (`size_of::<T>()` bytes, [`ReadAt::read_at`]
    /// semantics: a read past the end is an [`io::ErrorKind::UnexpectedEof`] error).
    fn read_typed<T: FromBytes + KnownLayout + Immutable>(&self, offset: u64) -> io::Result<Located<T>> {
        let mut buf = vec![0u8; std::mem::size_of::<T>()];
        self.read_at(offset, &mut buf)?;
        T::read_from_bytes(&buf)
            .map(|value| Located { offset, value })
            .map_err(|_| io::Error::other("a layout read of the wrong size"))
    }

    /// [`ReadTyped::read_typed`], failing with a [`ReadAtError`] that names `what`.
    fn read_located<T: FromBytes + KnownLayout + Immutable>(
        &self,
        offset: u64,
        what: &str,
    ) -> Result<Located<T>, ReadAtError> {
        self.read_typed(offset).map_err(|source| ReadAtError {
            what: what.into(),
            offset,
            len: std::mem::size_of::<T>() as u64,
            source,
        })
    }

    /// Fills `buf` from `offset` ([`ReadAt::read_at`]), failing with a [`ReadAtError`] that
    /// names `what`: for what is not one layout struct (a directory extent, a file's bytes).
    fn read_into(&self, offset: u64, buf: &mut [u8], what: &str) -> Result<(), ReadAtError> {
        self.read_at(offset, buf).map_err(|source| ReadAtError {
            what: what.into(),
            offset,
            len: buf.len() as u64,
            source,
        })
    }
}

impl<R: ReadAt + ?Sized> ReadTyped for R {}

fn eof(offset: u64, want: usize, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {want} bytes at offset {offset} runs past the end of the source ({len} bytes)"),
    )
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let len = self.len() as u64;
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(buf.len())?))
            .filter(|r| r.end <= self.len());
        match range {
            Some(r) => {
                buf.copy_from_slice(&self[r]);
                Ok(())
            }
            None => Err(eof(offset, buf.len(), len)),
        }
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
}

/// Reads with `pread` (`read_exact_at`), so one open file can serve concurrent readers.
///
/// The length is the file's size when [`ReadAt::len`] is called; when the metadata cannot be
/// read it is 0, and every later read fails with a clear error rather than a wrong answer.
impl ReadAt for File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                eof(offset, buf.len(), ReadAt::len(self))
            } else {
                e
            }
        })
    }
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slices_read_exactly_or_fail() {
        let data: Vec<u8> = (0..10).collect();
        let mut buf = [0u8; 4];
        data.read_at(6, &mut buf).unwrap();
        assert_eq!(buf, [6, 7, 8, 9]);
        let e = data.read_at(7, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = data.as_slice().read_at(u64::MAX, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let r: &dyn ReadAt = &data.as_slice();
        assert_eq!(r.len(), 10);
        r.read_at(10, &mut []).unwrap();
    }

    #[test]
    fn typed_reads_hand_out_located_views() {
        use crate::endian::{field_offset, LE, U32};
        #[repr(C)]
        #[derive(Debug, FromBytes, KnownLayout, Immutable)]
        struct Pair {
            a: U32<LE>,
            b: U32<LE>,
        }
        let data: Vec<u8> = (0..12).collect();
        let src: &dyn ReadAt = &data;
        let p = src.read_typed::<Pair>(4).unwrap();
        assert_eq!((p.offset, p.a.get(), p.b.get()), (4, 0x0706_0504, 0x0b0a_0908));
        assert_eq!(p.at(field_offset!(Pair, b)), 8);
        assert_eq!(p.end(), 12);
        assert_eq!(p.as_ref().map(|p| p.b.get()), Located::new(4, 0x0b0a_0908));
        let e = src.read_typed::<Pair>(5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = src.read_located::<Pair>(8, "pair").unwrap_err();
        assert_eq!((e.offset, e.len), (8, 8));
        assert!(e.to_string().starts_with("cannot read 8 bytes of the pair at byte offset 8: "), "{e}");
        let mut buf = [0u8; 2];
        src.read_into(10, &mut buf, "tail").unwrap();
        assert_eq!(buf, [10, 11]);
        assert_eq!(src.read_into(11, &mut buf, "tail").unwrap_err().what, "tail");
    }

    #[test]
    fn files_read_exactly_or_fail() {
        let dir = isoforge_testing::tempdir();
        let mut f = tempfile::tempfile_in(dir.path()).unwrap();
        f.write_all(b"hello world").unwrap();
        let mut buf = [0u8; 5];
        ReadAt::read_at(&f, 6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(ReadAt::len(&f), 11);
        let e = ReadAt::read_at(&f, 7, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
