//! The compressed cpio segment holding `/nix-store.squashfs`, streamed in one pass.
//!
//! # The problem
//!
//! The segment is `compress(cpio header ‖ squashfs ‖ padding ‖ trailer)`. The cpio header holds
//! the squashfs's size, known only when the squashfs is complete, and the squashfs writer
//! patches its 96-byte superblock at the very end. Both unknown bytes are at the start of the
//! compressor's input, and a compressor's output depends on its input from the first byte.
//!
//! # The design
//!
//! The first `P` bytes of the archive (header, name, padding and the superblock: 228 bytes) are
//! the *prefix*; everything after it is the *body*. The prefix is stored uncompressed in a slot
//! of known size at the start of the segment, inside the same compressed stream as the body:
//!
//! - zstd: one frame. Its header (written by us), one raw block holding the prefix, then the
//!   blocks the zstd library compresses the body into (its own frame header stripped, its last
//!   block ends the frame). No content checksum: XXH64 of the whole content cannot be
//!   computed without the prefix first. The kernel's zstd decoder reads exactly one frame
//!   (`lib/decompress_unzstd.c` loops until the frame ends), and the initramfs unpacker fails
//!   with "junk at the end of compressed archive" when a stream ends inside a cpio entry, so
//!   several frames per segment would not boot: one frame it is.
//! - gzip: one member. Its header, a stored deflate block holding the prefix, then the raw
//!   deflate stream of the body (stored blocks end on a byte boundary, so the two are one
//!   valid deflate stream), then the CRC-32 of prefix ‖ body (combined from the two parts)
//!   and the size.
//! - xz: one stream with one block, check CRC-32 (as NixOS's `xz --check=crc32`). The block's
//!   LZMA2 data is an uncompressed chunk holding the prefix (control 0x01: dictionary reset),
//!   then the raw LZMA2 chunks liblzma makes of the body (its first chunk resets the dictionary
//!   and sets new properties, which LZMA2 allows anywhere), then the index and the footer,
//!   written by us.
//! - none: the prefix's slot is the prefix.
//!
//! The body streams straight into the output file behind the slot; the slot is written last
//! (one seek back), like the squashfs's own superblock. The compressed body of a store never
//! references the prefix (the compressor never saw it), which costs nothing measurable.

use std::io::{self, Seek, SeekFrom, Write};

use isoforge_formats::cpio;

/// Length of the superblock the squashfs writer patches last.
pub const SUPERBLOCK_LEN: u64 = 96;

/// How the appended segment is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitrdCompression {
    /// A plain newc archive.
    None,
    /// gzip at a level 1–9 (NixOS: `gzip -9n`).
    Gzip(u32),
    /// zstd at a level 1–22 (NixOS: `zstd -10`).
    Zstd(i32),
    /// xz with a 512 KiB dictionary, check CRC-32 (NixOS: `xz --check=crc32 --lzma2=dict=512KiB`).
    Xz,
}

/// NixOS's default initrd compressor.
pub const DEFAULT_INITRD_COMPRESSION: InitrdCompression = InitrdCompression::Zstd(10);

impl std::str::FromStr for InitrdCompression {
    type Err = String;

    /// `none`, `gzip[:LEVEL]`, `zstd[:LEVEL]` or `xz`.
    fn from_str(s: &str) -> Result<InitrdCompression, String> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let level_in = |lo: i64, hi: i64, default: i64| -> Result<i64, String> {
            match level {
                None => Ok(default),
                Some(l) => match l.parse::<i64>() {
                    Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                    _ => Err(format!("{name} level {l:?} is not {lo} to {hi}")),
                },
            }
        };
        match name {
            "none" if level.is_none() => Ok(InitrdCompression::None),
            "gzip" => Ok(InitrdCompression::Gzip(level_in(1, 9, 9)? as u32)),
            "zstd" => Ok(InitrdCompression::Zstd(level_in(1, 22, 10)? as i32)),
            "xz" if level.is_none() => Ok(InitrdCompression::Xz),
            _ => Err(format!("{s:?} is not zstd[:LEVEL], gzip[:LEVEL], xz or none")),
        }
    }
}

impl std::fmt::Display for InitrdCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitrdCompression::None => f.write_str("none"),
            InitrdCompression::Gzip(l) => write!(f, "gzip:{l}"),
            InitrdCompression::Zstd(l) => write!(f, "zstd:{l}"),
            InitrdCompression::Xz => f.write_str("xz"),
        }
    }
}

/// The message of the I/O error [`PrefixSink`] returns when the archive grows past what a newc
/// entry can hold (the caller turns it into its own typed error).
pub const TOO_LARGE: &str = "the cpio entry would exceed 4 GiB";

/// The archive's byte stream as the cpio and squashfs writers see it: `Write + Seek` over
/// logical offsets from 0. Bytes below `prefix.len()` are kept in memory and may be written
/// any number of times; bytes from there on must be written in order once and go to `body`.
pub struct PrefixSink<B: Write> {
    prefix: Vec<u8>,
    body: B,
    body_len: u64,
    pos: u64,
    limit: u64,
    crc: crc32fast::Hasher,
    /// The archive reached `limit`: the write that would have crossed it failed.
    pub overflow: bool,
}

impl<B: Write> PrefixSink<B> {
    /// A sink with a prefix of `prefix_len` bytes whose logical length may not exceed `limit`.
    pub fn new(prefix_len: u64, limit: u64, body: B) -> PrefixSink<B> {
        PrefixSink {
            prefix: vec![0; prefix_len as usize],
            body,
            body_len: 0,
            pos: 0,
            limit,
            crc: crc32fast::Hasher::new(),
            overflow: false,
        }
    }

    /// The prefix, the body writer, the body's length and its CRC-32.
    pub(crate) fn into_parts(self) -> (Vec<u8>, B, u64, crc32fast::Hasher) {
        (self.prefix, self.body, self.body_len, self.crc)
    }

    fn end(&self) -> u64 {
        self.prefix.len() as u64 + self.body_len
    }
}

impl<B: Write> Write for PrefixSink<B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let p = self.prefix.len() as u64;
        if self.pos < p {
            let n = buf.len().min((p - self.pos) as usize);
            let at = self.pos as usize;
            self.prefix[at..at + n].copy_from_slice(&buf[..n]);
            self.pos += n as u64;
            return Ok(n);
        }
        if self.pos != self.end() {
            return Err(io::Error::other(format!(
                "non-sequential write at archive offset {} (written up to {})",
                self.pos,
                self.end()
            )));
        }
        if self.pos + buf.len() as u64 > self.limit {
            self.overflow = true;
            return Err(io::Error::other(TOO_LARGE));
        }
        self.body.write_all(buf)?;
        self.crc.update(buf);
        self.body_len += buf.len() as u64;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.body.flush()
    }
}

impl<B: Write> Seek for PrefixSink<B> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(x) => Some(x),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.end().checked_add_signed(d),
        };
        match target {
            Some(t) if t <= self.end() => {
                self.pos = t;
                Ok(t)
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek outside the written archive")),
        }
    }
}

/// The body's compressor, writing into the output behind the slot.
pub(crate) enum Body<'f, F: Write> {
    /// No compression.
    Raw(&'f mut F),
    /// zstd, its frame header stripped.
    Zstd(Box<zstd::stream::write::Encoder<'static, StripZstdHeader<&'f mut F>>>),
    /// Raw deflate, at this level.
    Gzip(flate2::write::DeflateEncoder<&'f mut F>, u32),
    /// Raw LZMA2.
    Xz(liblzma::write::XzEncoder<&'f mut F>),
}

impl<F: Write> Write for Body<'_, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Body::Raw(w) => w.write(buf),
            Body::Zstd(w) => w.write(buf),
            Body::Gzip(w, _) => w.write(buf),
            Body::Xz(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Body::Raw(w) => w.flush(),
            Body::Zstd(w) => w.flush(),
            Body::Gzip(w, _) => w.flush(),
            Body::Xz(w) => w.flush(),
        }
    }
}

impl<F: Write> Body<'_, F> {
    /// Bytes of the slot before the prefix for this body's compression ([`slot_overhead`]).
    pub fn slot_overhead(&self) -> u64 {
        slot_overhead(match self {
            Body::Raw(_) => InitrdCompression::None,
            Body::Zstd(_) => InitrdCompression::Zstd(0),
            Body::Gzip(_, level) => InitrdCompression::Gzip(*level),
            Body::Xz(_) => InitrdCompression::Xz,
        })
    }
}

/// Drops the zstd library's frame header from its output and remembers its window descriptor.
pub(crate) struct StripZstdHeader<W: Write> {
    inner: W,
    head: Vec<u8>,
    done: bool,
    /// The window descriptor byte for our frame header, once the library's header was seen.
    pub window_descriptor: Option<u8>,
    /// Bytes passed through to `inner`.
    pub written: u64,
}

impl<W: Write> StripZstdHeader<W> {
    fn new(inner: W) -> Self {
        StripZstdHeader { inner, head: Vec::new(), done: false, window_descriptor: None, written: 0 }
    }

    /// The length of the header in `head` once it is complete enough to tell, and its window.
    fn parse(head: &[u8]) -> io::Result<Option<(usize, u8)>> {
        if head.len() < 5 {
            return Ok(None);
        }
        if head[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(io::Error::other("zstd library output does not start with a frame"));
        }
        let fhd = head[4];
        let single = fhd & 0x20 != 0;
        if fhd & 0x04 != 0 || fhd & 0x03 != 0 {
            return Err(io::Error::other("zstd library frame has a checksum or dictionary id"));
        }
        let fcs_len = match fhd >> 6 {
            0 => usize::from(single),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let len = 5 + usize::from(!single) + fcs_len;
        if head.len() < len {
            return Ok(None);
        }
        if !single {
            return Ok(Some((len, head[5])));
        }
        // Single segment: the window is the content size; declare a window at least as large.
        let mut fcs = [0u8; 8];
        fcs[..fcs_len].copy_from_slice(&head[5..len]);
        let mut size = u64::from_le_bytes(fcs);
        if fcs_len == 2 {
            size += 256;
        }
        let log = (64 - size.max(1).next_power_of_two().leading_zeros() - 1).max(10);
        Ok(Some((len, ((log - 10) as u8) << 3)))
    }
}

impl<W: Write> Write for StripZstdHeader<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.done {
            self.inner.write_all(buf)?;
            self.written += buf.len() as u64;
            return Ok(buf.len());
        }
        self.head.extend_from_slice(buf);
        if let Some((len, wd)) = Self::parse(&self.head)? {
            self.done = true;
            self.window_descriptor = Some(wd);
            let rest = self.head.split_off(len);
            self.inner.write_all(&rest)?;
            self.written += rest.len() as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes of the slot before the prefix.
pub fn slot_overhead(c: InitrdCompression) -> u64 {
    match c {
        InitrdCompression::None => 0,
        // magic, frame header descriptor, window descriptor; raw block header
        InitrdCompression::Zstd(_) => 4 + 1 + 1 + 3,
        // gzip header; stored block header
        InitrdCompression::Gzip(_) => 10 + 5,
        // stream header, block header, uncompressed chunk header
        InitrdCompression::Xz => XZ_STREAM_HEADER_LEN + XZ_BLOCK_HEADER_LEN + 3,
    }
}

const XZ_STREAM_HEADER_LEN: u64 = 12;
/// xz stream flags: check type CRC-32.
const XZ_FLAGS: [u8; 2] = [0x00, 0x01];
/// LZMA2 dictionary 512 KiB: (2 | (14 & 1)) << (14 / 2 + 11).
const XZ_DICT_PROPS: u8 = 14;
/// Block header: size byte ((12 / 4) - 1), block flags (one filter, no sizes), LZMA2 filter
/// (id 0x21, one property byte), padding to 8; the CRC-32 follows.
const XZ_BLOCK_HEADER: [u8; 8] = [2, 0x00, 0x21, 0x01, XZ_DICT_PROPS, 0, 0, 0];
const XZ_BLOCK_HEADER_LEN: u64 = 12;

/// Makes the body's compressor over `out` (positioned just after the slot).
pub(crate) fn body<F: Write>(c: InitrdCompression, threads: usize, out: &mut F) -> io::Result<Body<'_, F>> {
    Ok(match c {
        InitrdCompression::None => Body::Raw(out),
        InitrdCompression::Zstd(level) => {
            let workers = match threads {
                0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                n => n,
            };
            let mut enc = zstd::stream::write::Encoder::new(StripZstdHeader::new(out), level)?;
            // At least one worker: zstd's multithreaded output does not depend on their number.
            enc.multithread(u32::try_from(workers).unwrap_or(u32::MAX))?;
            enc.include_checksum(false)?;
            enc.include_contentsize(false)?;
            enc.include_dictid(false)?;
            Body::Zstd(Box::new(enc))
        }
        InitrdCompression::Gzip(level) => {
            Body::Gzip(flate2::write::DeflateEncoder::new(out, flate2::Compression::new(level)), level)
        }
        InitrdCompression::Xz => {
            let mut opts = liblzma::stream::LzmaOptions::new_preset(6).map_err(io::Error::other)?;
            opts.dict_size(512 << 10);
            let mut filters = liblzma::stream::Filters::new();
            filters.lzma2(&opts);
            let stream = liblzma::stream::Stream::new_raw_encoder(&filters).map_err(io::Error::other)?;
            Body::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
        }
    })
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}

/// Finishes the body, writes what follows it (checks, index), then the slot at `slot_at`, and
/// leaves `out` at the segment's end. Returns the segment's length.
pub(crate) fn finish<F: Write + Seek>(
    body: Body<'_, F>,
    prefix: &[u8],
    body_len: u64,
    body_crc: crc32fast::Hasher,
    slot_at: u64,
) -> io::Result<u64> {
    let p = prefix.len() as u64;
    let total = p + body_len;
    let mut prefix_crc = crc32fast::Hasher::new();
    prefix_crc.update(prefix);
    prefix_crc.combine(&body_crc);
    let crc = prefix_crc.finalize();
    let overhead = body.slot_overhead();
    let mut slot = Vec::with_capacity((overhead + p) as usize);
    let out: &mut F = match body {
        Body::Raw(out) => {
            slot.extend_from_slice(prefix);
            out
        }
        Body::Zstd(enc) => {
            let strip = enc.finish()?;
            let wd = strip
                .window_descriptor
                .ok_or_else(|| io::Error::other("zstd library wrote no frame header"))?;
            slot.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, wd]);
            // Raw block, not the last: Block_Size << 3 | Block_Type (0) << 1 | Last_Block (0).
            let block = (p as u32) << 3;
            slot.extend_from_slice(&block.to_le_bytes()[..3]);
            slot.extend_from_slice(prefix);
            strip.inner
        }
        Body::Gzip(enc, level) => {
            let out = enc.finish()?;
            out.write_all(&crc.to_le_bytes())?;
            out.write_all(&(total as u32).to_le_bytes())?;
            let xfl = if level >= 9 {
                2
            } else if level == 1 {
                4
            } else {
                0
            };
            slot.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
            let len = p as u16;
            slot.push(0x00); // BFINAL 0, BTYPE 00 (stored), padding to the byte
            slot.extend_from_slice(&len.to_le_bytes());
            slot.extend_from_slice(&(!len).to_le_bytes());
            slot.extend_from_slice(prefix);
            out
        }
        Body::Xz(mut enc) => {
            enc.try_finish()?;
            let lzma2_body = enc.total_out();
            let out = enc.finish()?;
            let compressed = 3 + p + lzma2_body;
            let unpadded = XZ_BLOCK_HEADER_LEN + compressed + 4;
            let mut tail = vec![0u8; ((4 - compressed % 4) % 4) as usize];
            tail.extend_from_slice(&crc.to_le_bytes());
            let mut index = vec![0x00];
            varint(1, &mut index);
            varint(unpadded, &mut index);
            varint(total, &mut index);
            index.resize(index.len().div_ceil(4) * 4, 0);
            let index_crc = crc32(&index);
            index.extend_from_slice(&index_crc.to_le_bytes());
            tail.extend_from_slice(&index);
            let backward = (index.len() as u32 / 4) - 1;
            let mut footer = backward.to_le_bytes().to_vec();
            footer.extend_from_slice(&XZ_FLAGS);
            tail.extend_from_slice(&crc32(&footer).to_le_bytes());
            tail.extend_from_slice(&footer);
            tail.extend_from_slice(b"YZ");
            out.write_all(&tail)?;
            slot.extend_from_slice(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]);
            slot.extend_from_slice(&XZ_FLAGS);
            slot.extend_from_slice(&crc32(&XZ_FLAGS).to_le_bytes());
            slot.extend_from_slice(&XZ_BLOCK_HEADER);
            slot.extend_from_slice(&crc32(&XZ_BLOCK_HEADER).to_le_bytes());
            // Uncompressed chunk with a dictionary reset; size - 1, big-endian.
            slot.push(0x01);
            slot.extend_from_slice(&((p - 1) as u16).to_be_bytes());
            slot.extend_from_slice(prefix);
            out
        }
    };
    debug_assert_eq!(slot.len() as u64, overhead + p, "slot size is fixed in advance");
    let end = out.stream_position()?;
    out.seek(SeekFrom::Start(slot_at))?;
    out.write_all(&slot)?;
    out.seek(SeekFrom::Start(end))?;
    Ok(end - slot_at)
}

/// The prefix length for an archive whose first entry is `name` holding a squashfs.
pub fn prefix_len(name: &str) -> u64 {
    cpio::data_offset(0, name) + SUPERBLOCK_LEN
}

#[cfg(test)]
mod tests {
    use super::StripZstdHeader;

    type Parsed = std::io::Result<Option<(usize, u8)>>;

    fn parse(head: &[u8]) -> Parsed {
        StripZstdHeader::<Vec<u8>>::parse(head)
    }

    #[test]
    fn zstd_frame_headers_are_measured() {
        let magic = [0x28, 0xb5, 0x2f, 0xfd];
        // Not single segment: descriptor, window descriptor.
        let h = [&magic[..], &[0x00, 0x58]].concat();
        assert_eq!(parse(&h[..5]).unwrap(), None);
        assert_eq!(parse(&h).unwrap(), Some((6, 0x58)));
        // Single segment, 1-byte content size 200: a window of 1 KiB (the minimum).
        let h = [&magic[..], &[0x20, 200]].concat();
        assert_eq!(parse(&h).unwrap(), Some((6, 0)));
        // Single segment, 4-byte content size 3 MiB: a window of 4 MiB (log 22).
        let h = [&magic[..], &[0xa0], &(3u32 << 20).to_le_bytes()[..]].concat();
        assert_eq!(parse(&h).unwrap(), Some((9, (22 - 10) << 3)));
        // A checksum or dictionary id is refused (the writer turns both off).
        assert!(parse(&[&magic[..], &[0x04, 0x58]].concat()).is_err());
        assert!(parse(&[0u8; 6]).is_err());
    }
}
