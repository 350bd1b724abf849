//! Positional reads: the one I/O abstraction of every reader in the crate.
//!
//! Readers never seek and never hold an image in memory: they ask a [`ReadAt`] for the bytes at
//! an offset, with `read_exact` semantics. A byte slice (an image built in memory by a test) and
//! a [`std::fs::File`] (a multi-gigabyte image on disk) both implement it. There is no mmap: the
//! workspace forbids `unsafe`, and positional reads of a few blocks at a time are enough.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

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
