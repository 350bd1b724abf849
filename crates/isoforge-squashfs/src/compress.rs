//! Block compressors: the pure function [`compress_block`], its inverse [`decompress_block`],
//! and the compressor options block that follows the superblock.
//!
//! Every data block, fragment block and metadata block goes through [`compress_block`]. It
//! depends only on its input bytes and the [`Compression`] settings, so the writer can run it
//! on any thread and a content-addressed cache could memoise it. When the compressed form is
//! not smaller than the input, the block is stored raw ([`Compressed::Stored`]) and the
//! "uncompressed" bit is set in its size word.
//!
//! Expensive settings ([`Compression::tries_first`]: zstd from level 10, xz, gzip from level
//! 6) first run a trial, zstd level 1 on the whole block ([`shrinks_at_trial_level`]); a block
//! the trial cannot make smaller at all is stored raw without the expensive attempt. Already
//! compressed data (`.xz`/`.zst` firmware, `.gz` man pages, images) takes as long at zstd 19
//! as text does and is then stored raw anyway, or a few bytes shorter; the trial costs
//! about 1 % of a level-19 attempt. The rule is a pure function of the block, so the output
//! stays deterministic (docs/spec/squashfs.md, "Blocks that do not compress").

use std::io::Write;

use crate::error::{ReadError, WriteError};

/// The compressor and its settings (mksquashfs `-comp` and `-X…` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// zstd (compressor id 6) at `level` 1–22 (nixpkgs uses 19, mksquashfs defaults to 15).
    Zstd {
        /// Compression level, 1–22.
        level: u8,
    },
    /// xz (id 4): an `.xz` stream with CRC32 check, LZMA2 preset 6.
    Xz {
        /// Dictionary size in bytes; `None` means the block size (mksquashfs's default). Must
        /// be 2^n or 2^n + 2^(n-1), at least 8 KiB and at most the block size.
        dict_size: Option<u32>,
        /// Also try the x86 BCJ filter for each block and keep the smaller result
        /// (mksquashfs `-Xbcj x86`).
        x86_bcj: bool,
    },
    /// gzip (id 1): zlib streams (RFC 1950), window 2^15, at `level` 1–9.
    Gzip {
        /// Compression level, 1–9 (mksquashfs's default is 9).
        level: u8,
    },
    /// lz4 (id 5): raw LZ4 blocks, the "legacy" format the kernel's lz4 wrapper expects
    /// (compressor options version 1, no HC flag).
    Lz4,
    /// No compression: every block stored raw and the superblock's "uncompressed" flags set.
    /// The compressor id is gzip's (1), which every kernel and unsquashfs accept.
    None,
}

impl Default for Compression {
    /// zstd level 19, as nixpkgs builds its ISO images.
    fn default() -> Self {
        Compression::Zstd { level: 19 }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    /// Parses `ALGO[:LEVEL]`: `zstd` (level 1–22, default 19), `xz` (`xz:bcj` adds the x86
    /// BCJ filter), `gzip` (level 1–9, default 9), `lz4`, `none`.
    fn from_str(s: &str) -> Result<Compression, String> {
        let (algo, arg) = match s.split_once(':') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let level = |min: u8, max: u8, default: u8| -> Result<u8, String> {
            match arg {
                None => Ok(default),
                Some(l) => match l.parse::<u8>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(format!("{algo} level {l:?} is not a whole number from {min} to {max}")),
                },
            }
        };
        match algo {
            "zstd" => Ok(Compression::Zstd { level: level(1, 22, 19)? }),
            "gzip" => Ok(Compression::Gzip { level: level(1, 9, 9)? }),
            "xz" => match arg {
                None => Ok(Compression::Xz { dict_size: None, x86_bcj: false }),
                Some("bcj") | Some("x86") => Ok(Compression::Xz { dict_size: None, x86_bcj: true }),
                Some(a) => Err(format!("xz takes no level; {a:?} is not \"bcj\"")),
            },
            "lz4" | "none" if arg.is_some() => Err(format!("{algo} takes no level")),
            "lz4" => Ok(Compression::Lz4),
            "none" => Ok(Compression::None),
            _ => Err(format!(
                "unknown compression {algo:?}: use zstd[:LEVEL], xz[:bcj], gzip[:LEVEL], lz4 or none"
            )),
        }
    }
}

/// Compressor ids (`ZLIB_COMPRESSION` … `ZSTD_COMPRESSION` in squashfs_fs.h).
pub mod id {
    /// gzip (zlib).
    pub const GZIP: u16 = 1;
    /// lzma (legacy, not written).
    pub const LZMA: u16 = 2;
    /// lzo (not written).
    pub const LZO: u16 = 3;
    /// xz.
    pub const XZ: u16 = 4;
    /// lz4.
    pub const LZ4: u16 = 5;
    /// zstd.
    pub const ZSTD: u16 = 6;
}

/// The result of compressing one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compressed {
    /// Store the input bytes as they are (compression did not make them smaller, or the
    /// compressor is [`Compression::None`]).
    Stored,
    /// The compressed bytes, strictly shorter than the input.
    Packed(Vec<u8>),
}

/// The zstd level of the trial that decides whether a block is worth the full attempt.
pub const TRIAL_LEVEL: i32 = 1;

/// Names the trial rule in the block cache's key: a change to the rule (or to the zstd the
/// trial runs on, which the key also records) changes which blocks are stored raw.
pub const TRIAL_RULE: &str = "zstd-level-1 must shrink the block (zstd >= 10, xz, gzip >= 6)";

impl Compression {
    /// Whether a block first gets the trial ([`shrinks_at_trial_level`]) and is stored raw
    /// when the trial cannot shrink it: settings whose full attempt costs far more than the
    /// trial (zstd from level 10, every xz, gzip from level 6). Cheaper settings are tried
    /// directly, since the trial would cost as much as the attempt.
    pub fn tries_first(self) -> bool {
        match self {
            Compression::Zstd { level } => level >= 10,
            Compression::Xz { .. } => true,
            Compression::Gzip { level } => level >= 6,
            Compression::Lz4 | Compression::None => false,
        }
    }

    /// The superblock's compressor id.
    pub fn id(self) -> u16 {
        match self {
            Compression::Zstd { .. } => id::ZSTD,
            Compression::Xz { .. } => id::XZ,
            Compression::Gzip { .. } | Compression::None => id::GZIP,
            Compression::Lz4 => id::LZ4,
        }
    }

    /// A short name for messages ("zstd", "xz", "gzip", "lz4", "none").
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd { .. } => "zstd",
            Compression::Xz { .. } => "xz",
            Compression::Gzip { .. } => "gzip",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }

    /// Checks the settings against the block size.
    pub fn validate(self, block_size: u32) -> Result<(), WriteError> {
        let bad = |option, why: &str| Err(WriteError::BadOption { option, why: why.to_string() });
        match self {
            Compression::Zstd { level } if !(1..=22).contains(&level) => bad("zstd level", "1 to 22"),
            Compression::Gzip { level } if !(1..=9).contains(&level) => bad("gzip level", "1 to 9"),
            Compression::Xz { dict_size: Some(d), .. } => {
                let low = d & d.wrapping_sub(1);
                let shape_ok = d.is_power_of_two() || (low != 0 && d == (low | (low >> 1)));
                if !shape_ok || d < 8192 || d > block_size {
                    bad("xz dictionary size", "2^n or 2^n + 2^(n-1), from 8 KiB to the block size")
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The compressor options block (stored as a metadata block right after the superblock
    /// when the `COMPRESSOR_OPTIONS` flag is set), or `None` when mksquashfs would write none
    /// because every setting is the compressor's default.
    ///
    /// Layouts (all little-endian u32 unless noted): zstd `compression_level`; gzip
    /// `compression_level`, `window_size` (u16), `strategy` (u16); xz `dictionary_size`,
    /// `executable_filters`; lz4 `version` (1 = legacy), `flags` (1 = HC).
    pub fn options(self, block_size: u32) -> Option<Vec<u8>> {
        match self {
            Compression::Zstd { level } if level != 15 => Some(u32::from(level).to_le_bytes().to_vec()),
            Compression::Gzip { level } if level != 9 => {
                let mut v = u32::from(level).to_le_bytes().to_vec();
                v.extend_from_slice(&15u16.to_le_bytes());
                v.extend_from_slice(&0u16.to_le_bytes());
                Some(v)
            }
            Compression::Xz { dict_size, x86_bcj } => {
                let dict = dict_size.unwrap_or(block_size);
                if dict == block_size && !x86_bcj {
                    return None;
                }
                let mut v = dict.to_le_bytes().to_vec();
                v.extend_from_slice(&u32::from(x86_bcj).to_le_bytes());
                Some(v)
            }
            // The kernel refuses lz4 images without options (lz4_wrapper.c).
            Compression::Lz4 => {
                let mut v = 1u32.to_le_bytes().to_vec();
                v.extend_from_slice(&0u32.to_le_bytes());
                Some(v)
            }
            _ => None,
        }
    }
}

/// Compresses one block. Pure: the result depends only on `bytes` and `settings`.
///
/// `block_size` is the image's block size (xz uses it as the default dictionary size).
pub fn compress_block(
    bytes: &[u8],
    settings: Compression,
    block_size: u32,
) -> Result<Compressed, WriteError> {
    if bytes.is_empty() {
        return Ok(Compressed::Stored);
    }
    if settings.tries_first() && !shrinks_at_trial_level(bytes)? {
        return Ok(Compressed::Stored);
    }
    let out = match settings {
        Compression::None => return Ok(Compressed::Stored),
        Compression::Zstd { level } => zstd_compress(bytes, i32::from(level))?,
        Compression::Gzip { level } => {
            let mut enc = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(bytes.len() / 2),
                flate2::Compression::new(u32::from(level)),
            );
            enc.write_all(bytes)
                .and_then(|_| enc.finish())
                .map_err(|e| WriteError::Compress { compressor: "gzip", message: e.to_string() })?
        }
        Compression::Lz4 => lz4_flex::block::compress(bytes),
        Compression::Xz { dict_size, x86_bcj } => {
            let dict = dict_size.unwrap_or(block_size);
            let plain = xz_compress(bytes, dict, false)?;
            if x86_bcj {
                let bcj = xz_compress(bytes, dict, true)?;
                if bcj.len() < plain.len() {
                    bcj
                } else {
                    plain
                }
            } else {
                plain
            }
        }
    };
    if out.len() < bytes.len() {
        // The compressors allocate their bound (more than the input); a block waits in the
        // writer's window with only its bytes.
        let mut out = out;
        out.shrink_to_fit();
        Ok(Compressed::Packed(out))
    } else {
        Ok(Compressed::Stored)
    }
}

thread_local! {
    /// One zstd context per thread and level, reused across blocks: a level-19 context is
    /// large and costly to set up. Every call resets it, so the output does not depend on
    /// which blocks the thread compressed before.
    static ZSTD: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// The trial's context and output buffer, kept apart from [`ZSTD`] so that a level-19
    /// build does not rebuild its large context for every trial.
    static TRIAL: std::cell::RefCell<Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether zstd at [`TRIAL_LEVEL`] makes `bytes` smaller than they are (frame included). A
/// block it cannot shrink at all is one that compressors at any level shrink by a fraction
/// of a percent at most: measured on the benchmark closure's already-compressed files, the
/// blocks stored raw by this rule would have been 0.12 % smaller at zstd 19.
pub fn shrinks_at_trial_level(bytes: &[u8]) -> Result<bool, WriteError> {
    let err = |e: std::io::Error| WriteError::Compress { compressor: "zstd", message: e.to_string() };
    TRIAL.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some((zstd::bulk::Compressor::new(TRIAL_LEVEL).map_err(err)?, Vec::new()));
        }
        let Some((c, buf)) = slot.as_mut() else {
            return Err(WriteError::Compress { compressor: "zstd", message: "no context".to_string() });
        };
        buf.clear();
        buf.reserve(zstd::zstd_safe::compress_bound(bytes.len()));
        let n = c.compress_to_buffer(bytes, buf).map_err(err)?;
        Ok(n < bytes.len())
    })
}

fn zstd_compress(bytes: &[u8], level: i32) -> Result<Vec<u8>, WriteError> {
    let err = |e: std::io::Error| WriteError::Compress { compressor: "zstd", message: e.to_string() };
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).map_err(err)?));
        }
        match slot.as_mut() {
            Some((_, c)) => c.compress(bytes).map_err(err),
            None => Err(WriteError::Compress { compressor: "zstd", message: "no context".to_string() }),
        }
    })
}

fn xz_compress(bytes: &[u8], dict: u32, x86: bool) -> Result<Vec<u8>, WriteError> {
    use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};
    let err = |e: liblzma::stream::Error| WriteError::Compress { compressor: "xz", message: e.to_string() };
    let mut opts = LzmaOptions::new_preset(6).map_err(err)?;
    opts.dict_size(dict);
    let mut filters = Filters::new();
    if x86 {
        filters.x86();
    }
    filters.lzma2(&opts);
    let mut stream = Stream::new_stream_encoder(&filters, Check::Crc32).map_err(err)?;
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16 + 256);
    let mut consumed = 0usize;
    // Bounded: each round either consumes input or grows the output buffer.
    for _ in 0..64 {
        let before = stream.total_in();
        let status = stream.process_vec(&bytes[consumed..], &mut out, Action::Finish).map_err(err)?;
        consumed +=
            usize::try_from(stream.total_in() - before).unwrap_or(usize::MAX).min(bytes.len() - consumed);
        if status == Status::StreamEnd {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
    Err(WriteError::Compress { compressor: "xz", message: "encoder did not finish".to_string() })
}

/// Decompresses one block whose uncompressed size is at most `max_out` bytes.
///
/// `compressor` is the superblock's compressor id. Returns an error message on failure; the
/// caller names the block.
pub fn decompress_block(compressor: u16, data: &[u8], max_out: usize) -> Result<Vec<u8>, String> {
    match compressor {
        id::ZSTD => zstd::bulk::decompress(data, max_out).map_err(|e| e.to_string()),
        id::GZIP => {
            let mut dec = flate2::write::ZlibDecoder::new(LimitedVec { buf: Vec::new(), limit: max_out });
            dec.write_all(data).map_err(|e| e.to_string())?;
            dec.finish().map(|l| l.buf).map_err(|e| e.to_string())
        }
        id::LZ4 => {
            let mut out = vec![0u8; max_out];
            let n = lz4_flex::block::decompress_into(data, &mut out).map_err(|e| e.to_string())?;
            out.truncate(n);
            Ok(out)
        }
        id::XZ => {
            use liblzma::stream::{Action, Status, Stream};
            let mut stream = Stream::new_stream_decoder(64 << 20, 0).map_err(|e| e.to_string())?;
            let mut out = Vec::with_capacity(max_out);
            let status = stream.process_vec(data, &mut out, Action::Finish).map_err(|e| e.to_string())?;
            if status != Status::StreamEnd {
                return Err(format!("stream does not end within {max_out} bytes"));
            }
            Ok(out)
        }
        other => Err(format!("unsupported compressor id {other}")),
    }
}

/// A `Vec` sink that refuses to grow past `limit` (bounds zlib output on corrupt input).
struct LimitedVec {
    buf: Vec<u8>,
    limit: usize,
}

impl Write for LimitedVec {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.limit {
            return Err(std::io::Error::other(format!("output exceeds {} bytes", self.limit)));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Maps a decompression message to a [`ReadError`] for `table` at `offset`.
pub(crate) fn decompress_error(
    compressor: u16,
    table: &'static str,
    offset: u64,
    message: String,
) -> ReadError {
    let name = match compressor {
        id::ZSTD => "zstd",
        id::GZIP => "gzip",
        id::LZ4 => "lz4",
        id::XZ => "xz",
        id::LZMA => "lzma",
        id::LZO => "lzo",
        _ => "unknown",
    };
    ReadError::Decompress { table, offset, compressor: name, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_compression() {
        assert_eq!("zstd:3".parse::<Compression>(), Ok(Compression::Zstd { level: 3 }));
        assert_eq!("zstd".parse::<Compression>(), Ok(Compression::Zstd { level: 19 }));
        assert_eq!("gzip:9".parse::<Compression>(), Ok(Compression::Gzip { level: 9 }));
        assert_eq!("xz".parse::<Compression>(), Ok(Compression::Xz { dict_size: None, x86_bcj: false }));
        assert_eq!("lz4".parse::<Compression>(), Ok(Compression::Lz4));
        assert_eq!("none".parse::<Compression>(), Ok(Compression::None));
        assert!("zstd:23".parse::<Compression>().is_err());
        assert!("brotli".parse::<Compression>().is_err());
    }

    /// Deterministic bytes that no compressor can shrink (an xorshift stream).
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn blocks_the_trial_cannot_shrink_are_stored_raw_without_the_attempt() {
        let random = noise(256 << 10);
        assert!(!shrinks_at_trial_level(&random).unwrap());
        for settings in [
            Compression::Zstd { level: 19 },
            Compression::Xz { dict_size: None, x86_bcj: true },
            Compression::Gzip { level: 9 },
        ] {
            assert!(settings.tries_first(), "{settings:?}");
            assert_eq!(compress_block(&random, settings, 1 << 20).unwrap(), Compressed::Stored);
        }
        // Cheap settings are tried directly; noise is still stored raw.
        for settings in [Compression::Zstd { level: 3 }, Compression::Gzip { level: 1 }, Compression::Lz4] {
            assert!(!settings.tries_first(), "{settings:?}");
            assert_eq!(compress_block(&random, settings, 1 << 20).unwrap(), Compressed::Stored);
        }
        // Noise with a compressible half still gets the full attempt.
        let mut mixed = random[..128 << 10].to_vec();
        mixed.extend(sample().iter().cycle().take(128 << 10));
        assert!(shrinks_at_trial_level(&mixed).unwrap());
        assert!(matches!(
            compress_block(&mixed, Compression::Zstd { level: 19 }, 1 << 20).unwrap(),
            Compressed::Packed(_)
        ));
    }

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..20_000u32 {
            v.extend_from_slice(format!("line {} of some text\n", i % 97).as_bytes());
        }
        v
    }

    #[test]
    fn round_trips_every_compressor() {
        let data = sample();
        for c in [
            Compression::Zstd { level: 3 },
            Compression::Xz { dict_size: None, x86_bcj: false },
            Compression::Xz { dict_size: Some(1 << 16), x86_bcj: true },
            Compression::Gzip { level: 6 },
            Compression::Lz4,
        ] {
            let Compressed::Packed(p) = compress_block(&data, c, 1 << 20).unwrap() else {
                panic!("{c:?} did not compress text")
            };
            assert!(p.len() < data.len());
            assert_eq!(decompress_block(c.id(), &p, data.len()).unwrap(), data, "{c:?}");
            // Too small an output limit is an error, not a panic.
            assert!(decompress_block(c.id(), &p, 100).is_err(), "{c:?}");
        }
    }

    #[test]
    fn incompressible_is_stored() {
        // A xorshift sequence does not compress.
        let mut x = 0x1234_5678_9abc_def0u64;
        let data: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for c in [
            Compression::Zstd { level: 19 },
            Compression::Gzip { level: 9 },
            Compression::Lz4,
            Compression::None,
        ] {
            assert_eq!(compress_block(&data, c, 4096).unwrap(), Compressed::Stored, "{c:?}");
        }
    }

    #[test]
    fn deterministic() {
        let data = sample();
        let c = Compression::Zstd { level: 19 };
        assert_eq!(compress_block(&data, c, 1 << 20).unwrap(), compress_block(&data, c, 1 << 20).unwrap());
    }

    #[test]
    fn options_layout() {
        assert_eq!(Compression::Zstd { level: 19 }.options(1 << 20), Some(vec![19, 0, 0, 0]));
        assert_eq!(Compression::Zstd { level: 15 }.options(1 << 20), None);
        assert_eq!(Compression::Lz4.options(1 << 20), Some(vec![1, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(Compression::Xz { dict_size: None, x86_bcj: false }.options(1 << 17), None);
        assert_eq!(
            Compression::Xz { dict_size: Some(1 << 16), x86_bcj: true }.options(1 << 17),
            Some(vec![0, 0, 1, 0, 1, 0, 0, 0])
        );
        assert!(Compression::Xz { dict_size: Some(3 << 15), x86_bcj: false }.validate(1 << 20).is_ok());
        assert!(Compression::Xz { dict_size: Some(5 << 15), x86_bcj: false }.validate(1 << 20).is_err());
        assert!(Compression::Zstd { level: 0 }.validate(1 << 20).is_err());
    }
}
