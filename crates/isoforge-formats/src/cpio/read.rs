//! Reading an initramfs: a run of cpio segments, each plain or compressed, as the Linux kernel
//! unpacks them (`docs/spec/cpio.md`).
//!
//! [`read_initrd`] walks the file from the start: zero bytes between segments are skipped, a
//! segment starting `0707` is a plain archive read up to its trailer, and a segment starting
//! with a known compressor's magic is decompressed (gzip, zstd and xz here; lz4, bzip2 and lzma
//! are recognised and reported, not decoded) up to the end of that one stream, and the archive
//! inside it read. Each member's data is hashed (sha256) and its first bytes kept, so that a
//! caller can tell what it is without a second pass. Every error names the segment and offset.

use std::io::{BufReader, Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};
use thiserror::Error;
use zerocopy::FromBytes;

use super::{pad4, NewcHeader, HEADER_LEN, MAGIC_CRC, MAGIC_NEWC, TRAILER_NAME};

/// Memory the xz decoder may use (the kernel's initramfs xz streams use dictionaries of
/// 512 KiB to a few MiB; NixOS's is 512 KiB).
pub const XZ_MEMLIMIT: u64 = 256 << 20;

/// How many leading bytes of each member's data are kept ([`Member::head`]).
pub const HEAD_LEN: usize = 96;

/// How a segment is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain newc archive.
    None,
    /// gzip (RFC 1952), one member.
    Gzip,
    /// zstd (RFC 8878), one frame.
    Zstd,
    /// xz, one stream.
    Xz,
    /// lz4 legacy frame (recognised, not decoded).
    Lz4,
    /// bzip2 (recognised, not decoded).
    Bzip2,
    /// lzma "alone" (recognised, not decoded).
    Lzma,
}

impl Compression {
    /// The name used in reports: `none`, `gzip`, `zstd`, `xz`, `lz4`, `bzip2`, `lzma`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Lz4 => "lz4",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
        }
    }

    /// What the bytes at the start of a segment are, from their magic (`None`: not a segment).
    pub fn detect(head: &[u8]) -> Option<Compression> {
        let starts = |m: &[u8]| head.starts_with(m);
        if starts(&MAGIC_NEWC) || starts(&MAGIC_CRC) {
            Some(Compression::None)
        } else if starts(&[0x1f, 0x8b]) || starts(&[0x1f, 0x9e]) {
            Some(Compression::Gzip)
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Xz)
        } else if starts(&[0x02, 0x21, 0x4c, 0x18]) {
            Some(Compression::Lz4)
        } else if starts(b"BZh") {
            Some(Compression::Bzip2)
        } else if starts(&[0x5d, 0x00, 0x00]) {
            Some(Compression::Lzma)
        } else {
            None
        }
    }

    /// True for the kinds [`read_initrd`] decodes.
    pub fn decoded(self) -> bool {
        matches!(self, Compression::None | Compression::Gzip | Compression::Zstd | Compression::Xz)
    }
}

/// Errors reading an initramfs.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CpioReadError {
    /// The file could not be read.
    #[error("reading at byte {offset}: {source}")]
    Io {
        /// File offset.
        offset: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Bytes that start no known segment.
    #[error("byte {offset}: not a cpio archive nor a known compressed one (starts {found})")]
    NotCpio {
        /// File offset.
        offset: u64,
        /// The first bytes, hex.
        found: String,
    },
    /// A segment's archive is malformed.
    #[error("{compression} segment at byte {segment}, archive offset {offset}: {what}", compression = compression.name())]
    Bad {
        /// File offset of the segment.
        segment: u64,
        /// How it is stored.
        compression: Compression,
        /// Offset in the (decompressed) archive.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// One entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path name as stored.
    pub name: String,
    /// `c_ino`.
    pub ino: u32,
    /// `c_mode`.
    pub mode: u32,
    /// `c_uid`.
    pub uid: u32,
    /// `c_gid`.
    pub gid: u32,
    /// `c_nlink`.
    pub nlink: u32,
    /// `c_mtime`.
    pub mtime: u32,
    /// Bytes of data.
    pub size: u64,
    /// Offset of the header in the (decompressed) archive.
    pub header: u64,
    /// Offset of the data in the (decompressed) archive.
    pub data: u64,
    /// sha256 of the data, lower-case hex.
    pub sha256: String,
    /// The first [`HEAD_LEN`] bytes of the data (fewer for a shorter member).
    pub head: Vec<u8>,
    /// The header says `070702` (with checksums).
    pub crc_format: bool,
    /// Where [`read_initrd_with`] copied its data in its sink, when it was kept.
    pub extracted: Option<u64>,
}

/// One segment of an initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// File offset of its first byte.
    pub offset: u64,
    /// Bytes it takes in the file (compressed, for a compressed segment).
    pub len: u64,
    /// How it is stored.
    pub compression: Compression,
    /// Bytes of the archive (after decompression); `None` when not decoded.
    pub archive_len: Option<u64>,
    /// Its members, trailer excluded.
    pub members: Vec<Member>,
}

/// Zero bytes the kernel skips between segments, then nothing or the next segment.
fn skip_zeros<R: Read + Seek>(src: &mut R, mut pos: u64, end: u64) -> Result<u64, CpioReadError> {
    let io = |offset| move |source| CpioReadError::Io { offset, source };
    src.seek(SeekFrom::Start(pos)).map_err(io(pos))?;
    let mut buf = [0u8; 4096];
    while pos < end {
        let n = ((end - pos) as usize).min(buf.len());
        src.read_exact(&mut buf[..n]).map_err(io(pos))?;
        match buf[..n].iter().position(|&b| b != 0) {
            Some(i) => return Ok(pos + i as u64),
            None => pos += n as u64,
        }
    }
    Ok(end)
}

/// Reads every segment of the initramfs in `src` (from its start to its end).
pub fn read_initrd<R: Read + Seek>(src: &mut R) -> Result<Vec<Segment>, CpioReadError> {
    let (segments, error) = read_initrd_with(src, &|_| false, &mut std::io::sink());
    match error {
        Some(e) => Err(e),
        None => Ok(segments),
    }
}

/// [`read_initrd`] that also copies the data of every member for which `keep(name)` holds into
/// `sink`, one after the other ([`Member::extracted`] says where), and returns the segments
/// read before an error with the error.
pub fn read_initrd_with<R: Read + Seek>(
    src: &mut R,
    keep: &dyn Fn(&str) -> bool,
    sink: &mut dyn std::io::Write,
) -> (Vec<Segment>, Option<CpioReadError>) {
    let mut segments = Vec::new();
    let mut kept = Kept { keep, sink, pos: 0 };
    let error = walk(src, &mut segments, &mut kept).err();
    (segments, error)
}

struct Kept<'a> {
    keep: &'a dyn Fn(&str) -> bool,
    sink: &'a mut dyn std::io::Write,
    pos: u64,
}

fn walk<R: Read + Seek>(
    src: &mut R,
    segments: &mut Vec<Segment>,
    kept: &mut Kept<'_>,
) -> Result<(), CpioReadError> {
    let end = src.seek(SeekFrom::End(0)).map_err(|source| CpioReadError::Io { offset: 0, source })?;
    let mut pos = 0u64;
    loop {
        pos = skip_zeros(src, pos, end)?;
        if pos >= end {
            return Ok(());
        }
        let io = |source| CpioReadError::Io { offset: pos, source };
        src.seek(SeekFrom::Start(pos)).map_err(io)?;
        let mut head = [0u8; 8];
        let n = read_full(src, &mut head).map_err(io)?;
        let Some(compression) = Compression::detect(&head[..n]) else {
            return Err(CpioReadError::NotCpio { offset: pos, found: crate::hex::hex(&head[..n]) });
        };
        src.seek(SeekFrom::Start(pos)).map_err(io)?;
        if !compression.decoded() {
            segments.push(Segment {
                offset: pos,
                len: end - pos,
                compression,
                archive_len: None,
                members: Vec::new(),
            });
            return Ok(());
        }
        let mut buffered = BufReader::with_capacity(1 << 16, &mut *src);
        let (members, archive_len) = match compression {
            Compression::Gzip => {
                let mut dec = flate2::bufread::GzDecoder::new(&mut buffered);
                let r = read_archive(&mut dec, pos, compression, kept)?;
                // The member's CRC and size are checked when it is read to its end.
                drain(&mut dec).map_err(|e| bad(pos, compression, r.1, e.to_string()))?;
                r
            }
            Compression::Zstd => {
                let dec = zstd::stream::read::Decoder::with_buffer(&mut buffered).map_err(io)?;
                let mut dec = dec.single_frame();
                let r = read_archive(&mut dec, pos, compression, kept)?;
                drain(&mut dec).map_err(|e| bad(pos, compression, r.1, e.to_string()))?;
                r
            }
            Compression::Xz => {
                // A bounded dictionary: an xz header may ask for up to 4 GiB.
                let stream = liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
                    .map_err(|e| bad(pos, compression, 0, e.to_string()))?;
                let mut dec = liblzma::bufread::XzDecoder::new_stream(&mut buffered, stream);
                let r = read_archive(&mut dec, pos, compression, kept)?;
                drain(&mut dec).map_err(|e| bad(pos, compression, r.1, e.to_string()))?;
                r
            }
            _ => read_archive(&mut buffered, pos, compression, kept)?,
        };
        let next = buffered.stream_position().map_err(io)?;
        segments.push(Segment {
            offset: pos,
            len: next - pos,
            compression,
            archive_len: Some(archive_len),
            members,
        });
        pos = next;
    }
}

fn bad(segment: u64, compression: Compression, offset: u64, what: String) -> CpioReadError {
    CpioReadError::Bad { segment, compression, offset, what }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a decoder to its end: a compressed stream is checked (CRC, size) only there. Bytes
/// after the archive's trailer inside the stream are zero padding.
fn drain(r: &mut dyn Read) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "data after the cpio trailer"));
        }
    }
}

/// Reads entries up to the trailer; returns them and the archive's length (the trailer's end).
fn read_archive(
    r: &mut dyn Read,
    segment: u64,
    compression: Compression,
    kept: &mut Kept<'_>,
) -> Result<(Vec<Member>, u64), CpioReadError> {
    let mut pos = 0u64;
    let mut members = Vec::new();
    let err = |offset: u64, what: String| bad(segment, compression, offset, what);
    loop {
        let header_at = pos;
        let mut raw = [0u8; HEADER_LEN as usize];
        let n = read_full(r, &mut raw).map_err(|e| err(pos, e.to_string()))?;
        if n < raw.len() {
            return Err(err(
                pos,
                format!("archive ends inside a header ({n} of {HEADER_LEN} bytes) before {TRAILER_NAME}"),
            ));
        }
        pos += HEADER_LEN;
        let Ok(h) = NewcHeader::read_from_bytes(&raw) else {
            return Err(err(header_at, "short header".into()));
        };
        let crc_format = h.c_magic == MAGIC_CRC;
        if h.c_magic != MAGIC_NEWC && !crc_format {
            let found = String::from_utf8_lossy(&h.c_magic).into_owned();
            return Err(err(header_at, format!("c_magic {found:?}, expected \"070701\" or \"070702\"")));
        }
        let field = |name: &str, v: &super::Hex8| {
            v.get().ok_or_else(|| {
                err(header_at, format!("{name} {:?} is not 8 hex digits", String::from_utf8_lossy(&v.0)))
            })
        };
        let namesize = field("c_namesize", &h.c_namesize)?;
        let size = u64::from(field("c_filesize", &h.c_filesize)?);
        if namesize == 0 || namesize > 4096 {
            return Err(err(header_at, format!("c_namesize {namesize} is not 1 to 4096")));
        }
        let name_len = pad4(HEADER_LEN + u64::from(namesize)) - HEADER_LEN;
        let mut name = vec![0u8; name_len as usize];
        r.read_exact(&mut name).map_err(|e| err(pos, format!("name: {e}")))?;
        pos += name_len;
        let raw_name = &name[..namesize as usize];
        if raw_name.last() != Some(&0) {
            return Err(err(header_at, "name is not NUL-terminated".into()));
        }
        let name = String::from_utf8_lossy(&raw_name[..raw_name.len() - 1]).into_owned();
        if name == TRAILER_NAME {
            return Ok((members, pos));
        }
        let data = pos;
        let keep = (kept.keep)(&name);
        let extracted = keep.then_some(kept.pos);
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(HEAD_LEN);
        let mut left = size;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            let n = (left.min(buf.len() as u64)) as usize;
            r.read_exact(&mut buf[..n]).map_err(|e| err(pos, format!("data of {name}: {e}")))?;
            hasher.update(&buf[..n]);
            if keep {
                kept.sink.write_all(&buf[..n]).map_err(|e| err(pos, format!("copying {name} out: {e}")))?;
                kept.pos += n as u64;
            }
            if head.len() < HEAD_LEN {
                let take = (HEAD_LEN - head.len()).min(n);
                head.extend_from_slice(&buf[..take]);
            }
            left -= n as u64;
            pos += n as u64;
        }
        let pad = pad4(pos) - pos;
        r.read_exact(&mut buf[..pad as usize]).map_err(|e| err(pos, format!("padding of {name}: {e}")))?;
        pos += pad;
        members.push(Member {
            name,
            ino: field("c_ino", &h.c_ino)?,
            mode: field("c_mode", &h.c_mode)?,
            uid: field("c_uid", &h.c_uid)?,
            gid: field("c_gid", &h.c_gid)?,
            nlink: field("c_nlink", &h.c_nlink)?,
            mtime: field("c_mtime", &h.c_mtime)?,
            size,
            header: header_at,
            data,
            sha256: hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            head,
            crc_format,
            extracted,
        });
    }
}
