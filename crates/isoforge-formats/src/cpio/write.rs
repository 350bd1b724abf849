//! Writing a newc archive into a `Write + Seek` stream, entry by entry.
//!
//! Offsets are relative to the stream position when the [`Writer`] was made. Every entry's
//! header, data and end offsets are recorded as written, and [`Writer::finish`] checks them
//! against [`super::plan`] of the same entries: a writer that drifted from the layout is a bug
//! caught there, not an archive the kernel misreads.

use std::io::{Seek, SeekFrom, Write};

use super::{data_offset, header_bytes, pad4, plan, trailer_bytes, CpioError, EntrySpec, Plan, PlannedEntry};

/// Writes entries in order, then the trailer.
#[derive(Debug)]
pub struct Writer<W> {
    out: W,
    start: u64,
    pos: u64,
    specs: Vec<EntrySpec>,
    written: Vec<PlannedEntry>,
}

/// An error of a streamed entry: the archive's, or the producer's own.
#[derive(Debug)]
pub enum StreamError<E> {
    /// The archive could not hold or write the entry.
    Cpio(CpioError),
    /// The producer of the data failed.
    Producer(E),
}

impl<W: Write + Seek> Writer<W> {
    /// A writer starting at the current position of `out`.
    pub fn new(mut out: W) -> Result<Writer<W>, CpioError> {
        let start = out.stream_position()?;
        Ok(Writer { out, start, pos: 0, specs: Vec::new(), written: Vec::new() })
    }

    fn ino(&self) -> Result<u32, CpioError> {
        u32::try_from(self.specs.len() + 1).map_err(|_| CpioError::TooManyEntries)
    }

    fn pad_to(&mut self, to: u64) -> Result<(), CpioError> {
        let n = to - self.pos;
        self.out.write_all(&[0u8; 4][..n as usize])?;
        self.pos = to;
        Ok(())
    }

    /// Adds an entry whose data is `data` (empty for a directory; the target for a symlink).
    pub fn add(&mut self, name: &str, mode: u32, mtime: u32, data: &[u8]) -> Result<(), CpioError> {
        super::check_name(name)?;
        let spec = EntrySpec { name: name.to_string(), mode, mtime, size: data.len() as u64 };
        let head = header_bytes(&spec, self.ino()?)?;
        let header = self.pos;
        self.out.write_all(&head)?;
        self.pos += head.len() as u64;
        self.out.write_all(data)?;
        self.pos += data.len() as u64;
        let end = pad4(self.pos);
        self.pad_to(end)?;
        let ino = self.ino()?;
        self.written.push(PlannedEntry {
            header,
            data: header + head.len() as u64,
            size: spec.size,
            end,
            ino,
        });
        self.specs.push(spec);
        Ok(())
    }

    /// Adds a regular file whose data `produce` writes into the stream at its current position,
    /// sequentially, leaving the stream at the data's end; it may seek back within what it
    /// wrote. The header is written first as zeros and patched when the size is known; a size
    /// over [`super::MAX_FILE_SIZE`] is [`CpioError::TooLarge`]. Returns the size.
    pub fn add_streamed<E>(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u32,
        produce: impl FnOnce(&mut W) -> Result<(), E>,
    ) -> Result<u64, StreamError<E>> {
        let cpio = StreamError::Cpio;
        let io = |e: std::io::Error| StreamError::Cpio(CpioError::Io(e));
        super::check_name(name).map_err(cpio)?;
        let header = self.pos;
        let data = data_offset(header, name);
        self.out.write_all(&vec![0u8; (data - header) as usize]).map_err(io)?;
        produce(&mut self.out).map_err(StreamError::Producer)?;
        let end_abs = self.out.stream_position().map_err(io)?;
        let size = end_abs - self.start - data;
        let spec = EntrySpec { name: name.to_string(), mode, mtime, size };
        let ino = self.ino().map_err(cpio)?;
        let head = header_bytes(&spec, ino).map_err(cpio)?;
        self.out.seek(SeekFrom::Start(self.start + header)).map_err(io)?;
        self.out.write_all(&head).map_err(io)?;
        self.out.seek(SeekFrom::Start(end_abs)).map_err(io)?;
        self.pos = data + size;
        let end = pad4(self.pos);
        self.pad_to(end).map_err(cpio)?;
        self.written.push(PlannedEntry { header, data, size, end, ino });
        self.specs.push(spec);
        Ok(size)
    }

    /// Writes the trailer, checks every offset against [`plan`] and returns the stream (at the
    /// archive's end) and the plan.
    pub fn finish(mut self) -> Result<(W, Plan), CpioError> {
        let plan = plan(&self.specs)?;
        assert_eq!(plan.entries, self.written, "cpio writer drifted from its plan");
        assert_eq!(plan.trailer, self.pos, "cpio trailer offset");
        let trailer = trailer_bytes();
        self.out.write_all(&trailer)?;
        self.pos += trailer.len() as u64;
        assert_eq!(plan.len, self.pos, "cpio archive length");
        Ok((self.out, plan))
    }
}
