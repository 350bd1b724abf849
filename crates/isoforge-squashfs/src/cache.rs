//! A content-addressed cache of compressed squashfs blocks, shared between builds.
//!
//! Between two builds of an installer almost every block is the same, and compressing it
//! again at zstd 19 is where the time goes. [`BlockCache`] remembers the output of
//! [`compress_block`] under a key derived from the block's uncompressed bytes and every
//! setting that can change the compressed bytes ([`KeyPrefix::new`]). A build asks the cache
//! before compressing a block and stores each block it had to compress.
//!
//! **The cache never decides a byte.** [`compress_block`] is a pure function of its input and
//! its settings, and the key covers both: the sha256 of the input, the compressor and its
//! level and options, the block size, the versions of the compression library and a
//! fingerprint of its actual output on a fixed probe. An entry either reproduces exactly what
//! [`compress_block`] would return, or it is not used: every entry carries its full key and the
//! sha256 of its payload, and anything that does not check out (truncated, corrupted, foreign,
//! garbage) counts as `corrupt`, is treated as a miss and is replaced by the next [`put`].
//! So an image built with a cold, warm, partly warm, corrupted or no cache is the same file.
//!
//! **Degrade, never fail.** Opening a cache never fails. A directory that cannot be created
//! or written (read-only file system, permissions, full disk, quota, `RLIMIT_FSIZE`) turns
//! the cache into "lookups only" or "off" for the rest of the build and records one
//! [`CacheWarning`]; the library prints nothing, [`BlockCache::finish`] returns the warnings.
//!
//! **Shared safely.** Entries are written to a temporary file in their own directory and
//! renamed into place, so several builds (threads or processes, also in different Nix
//! sandboxes) can share one directory: two builds writing the same entry write the same bytes.
//! A writer holds an advisory lock (`flock`) on its temporary while it exists; [`gc`] removes
//! the temporaries nobody holds (their writer died: the lock dies with the process, and a pid
//! in the name would mean nothing across pid namespaces).
//!
//! Layout of a cache directory `DIR`:
//!
//! | path | content |
//! | --- | --- |
//! | `DIR/CACHEDIR.TAG` | the [cache directory tag](https://bford.info/cachedir/), naming isoforge and the format: marks the directory as a cache (backup tools skip it) |
//! | `DIR/blocks/<2 hex>/<62 hex>` | one entry: an [`EntryHeader`] and the compressed bytes; the name is the key in hex |
//! | `DIR/blocks/<2 hex>/.tmp-<pid>-<n>` | an entry being written |
//! | `DIR/builds.log` | one JSON line ([`BuildRecord`]) per build, appended by [`BlockCache::finish`] |
//!
//! New directories and files take the permission bits of `DIR` (files without the execute
//! bits), so a directory made group-writable and setgid (the `nixbld` pattern, mode 2770)
//! stays usable by every member of the group whatever their umask.
//!
//! Recency: a hit sets the entry's mtime to now (`futimens`, best effort); [`gc`] removes the
//! least recently used entries first. There is no clock in this module: the kernel stamps the
//! mtime, and a [`BuildRecord`] carries a time only when the caller passes one.
//!
//! ```no_run
//! use isoforge_squashfs::cache::BlockCache;
//! use isoforge_squashfs::Compression;
//! # fn main() -> Result<(), isoforge_squashfs::WriteError> {
//! let cache = BlockCache::open("/var/cache/isoforge".as_ref(), Compression::default(), 1 << 20);
//! let block = vec![7u8; 1 << 20];
//! let compressed = cache.compress(&block)?; // the same value compress_block returns
//! let report = cache.finish(None);
//! for w in &report.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # let _ = compressed; Ok(()) }
//! ```
//!
//! [`put`]: BlockCache::put

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use rustix::fs::{FlockOperation, Mode, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::compress::{compress_block, Compressed, Compression};
use crate::error::WriteError;

/// The first field of every key's settings: names this cache format. Bump it when the entry
/// layout, the key, or the output of [`compress_block`] for given settings changes.
pub const FORMAT_TAG: &str = "isoforge-block-cache/1";
/// The cache directory tag's file name (bford.info/cachedir).
pub const TAG_FILE: &str = "CACHEDIR.TAG";
/// The directory holding the entries.
pub const BLOCKS_DIR: &str = "blocks";
/// The log of builds, one JSON line each.
pub const LOG_FILE: &str = "builds.log";
/// The prefix of a temporary file's name.
pub const TEMP_PREFIX: &str = ".tmp-";
/// How many builds [`stats`] summarises by default.
pub const DEFAULT_RECENT_BUILDS: usize = 10;

/// The gzip library: flate2 and its backends. flate2 picks zlib-rs when another crate of the
/// build enables it (the test builds do), else miniz_oxide; the probe fingerprint in the key
/// tells them apart. Checked against `Cargo.lock` by a unit test.
pub const GZIP_LIBRARY: &str = "flate2 1.1.11, miniz_oxide 0.9.1, zlib-rs 0.6.8";
/// The lz4 library. Checked against `Cargo.lock` by a unit test.
pub const LZ4_LIBRARY: &str = "lz4_flex 0.11.6";
/// The xz library's Rust binding. The C library is either bundled with it or a system
/// liblzma (≥ 5.8); its runtime version is not reachable without `unsafe`, so the probe
/// fingerprint in the key stands for it. Checked against `Cargo.lock` by a unit test.
pub const XZ_LIBRARY: &str = "liblzma 0.4.9, liblzma-sys 0.4.9";

/// The cache directory tag's mandatory first line.
const CACHEDIR_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";
/// What identifies the tag as ours.
const TAG_MARKER: &str = "isoforge block cache, format 1";
/// The whole tag file.
const TAG_CONTENT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by isoforge: an isoforge block cache, format 1.\n\
# For information about cache directory tags, see https://bford.info/cachedir/\n";

/// Entry magic: "IFBLOCK" and a format byte.
pub const ENTRY_MAGIC: [u8; 8] = *b"IFBLOCK\x01";
/// Entry header version.
pub const ENTRY_VERSION: u32 = 1;
/// [`EntryHeader::kind`]: the block is stored raw in the image (compression did not shrink
/// it); the entry has no payload, the caller has the bytes.
pub const KIND_STORED: u32 = 1;
/// [`EntryHeader::kind`]: the payload is the compressed block.
pub const KIND_PACKED: u32 = 2;

/// The longest probe compressed to fingerprint a compressor build.
const PROBE_LEN: usize = 64 << 10;
/// The most bytes of a tag file read.
const TAG_READ_LIMIT: u64 = 4096;

/// The 96-byte header of an entry file, little-endian; the payload follows it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct EntryHeader {
    /// [`ENTRY_MAGIC`].
    pub magic: [u8; 8],
    /// [`ENTRY_VERSION`].
    pub version: U32,
    /// [`KIND_STORED`] or [`KIND_PACKED`].
    pub kind: U32,
    /// The entry's full key (the file name repeats it in hex).
    pub key: [u8; 32],
    /// The block's uncompressed length in bytes.
    pub uncompressed_len: U64,
    /// The payload's length: 0 for [`KIND_STORED`], from 1 to `uncompressed_len - 1` for
    /// [`KIND_PACKED`].
    pub compressed_len: U64,
    /// The sha256 of the payload.
    pub payload_sha256: [u8; 32],
}

/// The size of an [`EntryHeader`].
pub const ENTRY_HEADER_LEN: usize = 96;
const _: () = assert!(size_of::<EntryHeader>() == ENTRY_HEADER_LEN);

/// The key of an entry: sha256 over a [`KeyPrefix`] and the sha256 of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockKey(pub [u8; 32]);

impl BlockKey {
    /// The key in lowercase hex (64 digits).
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// The entry's path relative to the cache directory: `blocks/<2 hex>/<62 hex>`.
    pub fn relative_path(&self) -> PathBuf {
        let h = self.hex();
        Path::new(BLOCKS_DIR).join(&h[..2]).join(&h[2..])
    }
}

/// Everything a key covers besides the block's bytes, encoded once per build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(Vec<u8>);

impl KeyPrefix {
    /// Encodes every setting that can change what [`compress_block`] returns, one
    /// `field value` line each, in this order:
    ///
    /// 1. [`FORMAT_TAG`], then `isoforge-squashfs <crate version>` (a release may change
    ///    `compress_block`; its cache entries are not trusted across versions);
    /// 2. `compressor <name> id <superblock id>` and its parameters: the zstd or gzip level,
    ///    the xz dictionary size (resolved against the block size) and BCJ choice;
    /// 3. `options <hex>`: the compressor options block [`Compression::options`] (or `none`);
    /// 4. `block-size <bytes>`;
    /// 5. `library <...>`: the compression library in use: zstd's runtime
    ///    `ZSTD_versionNumber()`, else [`XZ_LIBRARY`], [`GZIP_LIBRARY`] or [`LZ4_LIBRARY`];
    /// 6. `probe <hex sha256>`: the sha256 of what this build's compressor makes of a fixed
    ///    probe text (up to 64 KiB), which tells apart builds whose versions say nothing
    ///    (a system liblzma, flate2's backend choice, a local change to the compressor);
    /// 7. for settings that run the trial first ([`Compression::tries_first`]):
    ///    `trial <TRIAL_RULE> zstd <version>`, since the trial decides which blocks are
    ///    stored raw.
    ///
    /// The key of a block is then `sha256(prefix || sha256(block))` ([`KeyPrefix::key`]), so an
    /// entry made with other settings or by another compressor build is never found.
    /// Runs the compressor once on the probe, hence the error.
    pub fn new(compression: Compression, block_size: u32) -> Result<KeyPrefix, WriteError> {
        let mut s = String::new();
        s.push_str(FORMAT_TAG);
        s.push('\n');
        s.push_str(&format!("isoforge-squashfs {}\n", env!("CARGO_PKG_VERSION")));
        let params = match compression {
            Compression::Zstd { level } => format!("level {level}"),
            Compression::Gzip { level } => format!("level {level}"),
            Compression::Xz { dict_size, x86_bcj } => {
                format!("dict-size {} x86-bcj {x86_bcj}", dict_size.unwrap_or(block_size))
            }
            Compression::Lz4 | Compression::None => String::new(),
        };
        s.push_str(&format!("compressor {} id {} {params}\n", compression.name(), compression.id()));
        let options = compression.options(block_size).map(|o| hex(&o)).unwrap_or_else(|| "none".into());
        s.push_str(&format!("options {options}\n"));
        s.push_str(&format!("block-size {block_size}\n"));
        let library = match compression {
            Compression::Zstd { .. } => format!("zstd {}", zstd::zstd_safe::version_number()),
            Compression::Xz { .. } => XZ_LIBRARY.to_string(),
            Compression::Gzip { .. } => GZIP_LIBRARY.to_string(),
            Compression::Lz4 => LZ4_LIBRARY.to_string(),
            Compression::None => "none".to_string(),
        };
        s.push_str(&format!("library {library}\n"));
        let probe = probe_input(PROBE_LEN.min(usize::try_from(block_size).unwrap_or(PROBE_LEN)));
        let mut h = Sha256::new();
        match compress_block(&probe, compression, block_size)? {
            Compressed::Stored => h.update(b"stored"),
            Compressed::Packed(p) => {
                h.update(b"packed");
                h.update(&p);
            }
        }
        s.push_str(&format!("probe {}\n", hex(&h.finalize())));
        if compression.tries_first() {
            s.push_str(&format!(
                "trial {} zstd {}\n",
                crate::compress::TRIAL_RULE,
                zstd::zstd_safe::version_number()
            ));
        }
        Ok(KeyPrefix(s.into_bytes()))
    }

    /// The key of a block whose uncompressed bytes have the sha256 `content_sha256`:
    /// `sha256(prefix || content_sha256)`.
    pub fn key(&self, content_sha256: &[u8; 32]) -> BlockKey {
        let mut h = Sha256::new();
        h.update(&self.0);
        h.update(content_sha256);
        BlockKey(h.finalize().into())
    }

    /// The encoded prefix (UTF-8 text, one field a line).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A deterministic probe: text lines with repeats, and pseudo-random words between them, so
/// both the match finder and the literal coder of a compressor show in its output.
fn probe_input(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u32;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if i % 4 == 3 {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(format!("probe line {} value {:x}\n", i % 61, x & 0xfff).as_bytes());
        }
        i = i.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// What a cache does for the rest of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// Lookups and stores.
    ReadWrite,
    /// Lookups only: the directory is not writable (or became full).
    LookupsOnly,
    /// Not used at all.
    Off,
}

impl CacheMode {
    fn from_u8(v: u8) -> CacheMode {
        match v {
            0 => CacheMode::ReadWrite,
            1 => CacheMode::LookupsOnly,
            _ => CacheMode::Off,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            CacheMode::ReadWrite => 0,
            CacheMode::LookupsOnly => 1,
            CacheMode::Off => 2,
        }
    }
}

/// Why a cache was not used as asked. [`BlockCache`] records at most one that changes its
/// mode; [`BlockCache::finish`] adds one for corrupt entries.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CacheWarning {
    /// The directory cannot be created, read or set up: the build runs without a cache.
    #[error("block cache {dir}: cannot use it ({reason}); building without a cache")]
    Unusable {
        /// The cache directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The directory holds files but no tag of an isoforge cache: isoforge does not write into
    /// a directory it did not make a cache.
    #[error("block cache {dir}: not an isoforge block cache ({why}); building without a cache")]
    NotACache {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        why: &'static str,
    },
    /// The directory is not writable: entries are looked up, none is stored.
    #[error("block cache {dir}: not writable ({reason}); using it for lookups only")]
    ReadOnly {
        /// The cache directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Storing an entry failed in a way that will not get better during the build (read-only,
    /// full, quota, file size limit, permissions): nothing more is stored.
    #[error("block cache {dir}: cannot store {path} ({reason}); storing nothing more in this build")]
    StoreFailed {
        /// The cache directory.
        dir: PathBuf,
        /// The entry or temporary file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// Entries that did not check out were ignored and their blocks compressed again (and, on a
    /// writable cache, stored again in their place).
    #[error("block cache {dir}: {count} corrupt entries ignored (their blocks were compressed again)")]
    Corrupt {
        /// The cache directory.
        dir: PathBuf,
        /// How many lookups found a corrupt entry.
        count: u64,
    },
    /// The build could not be recorded in the log (stats will not count it).
    #[error("block cache {dir}: cannot record the build in {path} ({reason})")]
    Log {
        /// The cache directory.
        dir: PathBuf,
        /// The log file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
}

/// A build's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheCounters {
    /// Lookups ([`BlockCache::get`] calls while the cache was on).
    pub lookups: u64,
    /// Lookups that found a valid entry.
    pub hits: u64,
    /// Lookups that found none (absent, unreadable or corrupt).
    pub misses: u64,
    /// Lookups that found an entry that did not check out (also counted in `misses`).
    pub corrupt: u64,
    /// Entries stored.
    pub stores: u64,
    /// Entries that could not be stored.
    pub store_failures: u64,
    /// Payload bytes (compressed bytes) taken from the cache by hits.
    pub bytes_read: u64,
    /// Uncompressed bytes of the blocks the hits stand for (work saved).
    pub hit_input_bytes: u64,
    /// Bytes written into entries (headers included).
    pub bytes_stored: u64,
}

#[derive(Debug, Default)]
struct AtomicCounters {
    lookups: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    stores: AtomicU64,
    store_failures: AtomicU64,
    bytes_read: AtomicU64,
    hit_input_bytes: AtomicU64,
    bytes_stored: AtomicU64,
}

impl AtomicCounters {
    fn snapshot(&self) -> CacheCounters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheCounters {
            lookups: l(&self.lookups),
            hits: l(&self.hits),
            misses: l(&self.misses),
            corrupt: l(&self.corrupt),
            stores: l(&self.stores),
            store_failures: l(&self.store_failures),
            bytes_read: l(&self.bytes_read),
            hit_input_bytes: l(&self.hit_input_bytes),
            bytes_stored: l(&self.bytes_stored),
        }
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// One line of `builds.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// The compressor, as `--compression` spells it (`zstd:19`, `xz:bcj`, …).
    pub compression: String,
    /// The block size.
    pub block_size: u32,
    /// The cache's mode at the end of the build.
    pub mode: CacheMode,
    /// A time the caller passed to [`BlockCache::finish`] (the library has no clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// The build's counters.
    #[serde(flatten)]
    pub counters: CacheCounters,
}

/// What a build did with its cache: [`BlockCache::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheReport {
    /// The cache directory.
    pub dir: PathBuf,
    /// The mode at the end of the build.
    pub mode: CacheMode,
    /// The counters.
    pub counters: CacheCounters,
    /// Warnings to show the user, one line each.
    pub warnings: Vec<CacheWarning>,
}

/// An error of [`stats`] and [`gc`] (a build never gets one: see [`BlockCache::open`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory is not an isoforge block cache.
    #[error("{path} is not an isoforge block cache: {why}")]
    NotACache {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        why: &'static str,
    },
    /// A file system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "remove", "list", …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io { action, path: path.to_path_buf(), source }
}

/// A block cache opened for one build; share it (`&self`, or an `Arc`) with the compression
/// threads.
#[derive(Debug)]
pub struct BlockCache {
    dir: PathBuf,
    blocks: PathBuf,
    compression: Compression,
    block_size: u32,
    prefix: Option<KeyPrefix>,
    mode: AtomicU8,
    /// Permission bits for new directories (those of the cache directory).
    dir_mode: u32,
    counters: AtomicCounters,
    /// The one warning that changed the mode.
    warning: Mutex<Option<CacheWarning>>,
    /// Whether [`BlockCache::finish`] has appended the build to the log.
    logged: AtomicBool,
}

// The compression threads share one cache.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<BlockCache>();
};

/// Why [`BlockCache::open`] settled on less than read-write.
struct Setup {
    mode: CacheMode,
    dir_mode: u32,
    warning: Option<CacheWarning>,
}

impl BlockCache {
    /// Opens (creating it if needed) the cache in `dir` for blocks compressed with
    /// `compression` at `block_size`. Never fails: a directory that cannot be used gives a
    /// cache in [`CacheMode::Off`] or [`CacheMode::LookupsOnly`] and a warning in the
    /// report. A missing or empty directory becomes a cache (its tag is written); a non-empty
    /// directory without the tag is left alone. With [`Compression::None`] there is nothing
    /// to save and the cache is off, without a warning.
    pub fn open(dir: &Path, compression: Compression, block_size: u32) -> BlockCache {
        let mut cache = BlockCache {
            dir: dir.to_path_buf(),
            blocks: dir.join(BLOCKS_DIR),
            compression,
            block_size,
            prefix: None,
            mode: AtomicU8::new(CacheMode::Off.as_u8()),
            dir_mode: 0o755,
            counters: AtomicCounters::default(),
            warning: Mutex::new(None),
            logged: AtomicBool::new(false),
        };
        if compression == Compression::None {
            return cache;
        }
        let prefix = match KeyPrefix::new(compression, block_size) {
            Ok(p) => p,
            Err(e) => {
                cache.set_warning(CacheWarning::Unusable { dir: dir.to_path_buf(), reason: e.to_string() });
                return cache;
            }
        };
        let setup = setup(dir);
        cache.prefix = Some(prefix);
        cache.dir_mode = setup.dir_mode;
        cache.mode.store(setup.mode.as_u8(), Ordering::Relaxed);
        if let Some(w) = setup.warning {
            cache.set_warning(w);
        }
        cache
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current mode.
    pub fn mode(&self) -> CacheMode {
        CacheMode::from_u8(self.mode.load(Ordering::Relaxed))
    }

    /// The counters so far (for a progress display).
    pub fn counters(&self) -> CacheCounters {
        self.counters.snapshot()
    }

    /// The key of `block` (`None` when the cache is off).
    pub fn key(&self, block: &[u8]) -> Option<BlockKey> {
        self.key_for_digest(&Sha256::digest(block).into())
    }

    /// The key of a block whose sha256 the caller already has (`None` when the cache is off).
    pub fn key_for_digest(&self, content_sha256: &[u8; 32]) -> Option<BlockKey> {
        if self.mode() == CacheMode::Off {
            return None;
        }
        self.prefix.as_ref().map(|p| p.key(content_sha256))
    }

    /// Looks up the entry of `key` for a block of `block_len` bytes. `Some(Compressed::Stored)`
    /// means "store the block raw", `Some(Packed(bytes))` gives the compressed bytes: exactly
    /// what [`compress_block`] returns for that block. `None` on a miss, including an entry
    /// that does not check out (counted as corrupt; the next [`put`](Self::put) replaces it).
    /// A hit sets the entry's mtime to now (for [`gc`]).
    pub fn get(&self, key: &BlockKey, block_len: usize) -> Option<Compressed> {
        if self.mode() == CacheMode::Off {
            return None;
        }
        add(&self.counters.lookups, 1);
        let path = self.dir.join(key.relative_path());
        match read_entry(&path, key, block_len) {
            Ok(Some((value, file))) => {
                // Recency for gc; a read-only cache or a foreign owner just keeps the old time.
                let now = Timespec { tv_sec: 0, tv_nsec: UTIME_NOW };
                let omit = Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT };
                let _ =
                    rustix::fs::futimens(&file, &Timestamps { last_access: omit, last_modification: now });
                add(&self.counters.hits, 1);
                add(&self.counters.hit_input_bytes, block_len as u64);
                if let Compressed::Packed(p) = &value {
                    add(&self.counters.bytes_read, p.len() as u64);
                }
                Some(value)
            }
            Ok(None) => {
                add(&self.counters.misses, 1);
                None
            }
            Err(_defect) => {
                add(&self.counters.misses, 1);
                add(&self.counters.corrupt, 1);
                None
            }
        }
    }

    /// Stores `value`, what [`compress_block`] returned for a block of `block_len` bytes, as
    /// the entry of `key` (replacing whatever is there). Does nothing unless the cache is
    /// read-write. A failure is counted; one that will not get better (read-only, full,
    /// quota, file size limit, permissions) switches the cache to lookups only, with one
    /// warning.
    pub fn put(&self, key: &BlockKey, block_len: usize, value: &Compressed) {
        if self.mode() != CacheMode::ReadWrite {
            return;
        }
        let bytes = encode_entry(key, block_len, value);
        let rel = key.relative_path();
        let path = self.dir.join(&rel);
        let sub = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.blocks.clone());
        let name = rel.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        match write_atomically(&sub, Path::new(&name), &bytes, self.dir_mode, true) {
            Ok(()) => {
                add(&self.counters.stores, 1);
                add(&self.counters.bytes_stored, bytes.len() as u64);
            }
            Err((at, e)) => {
                add(&self.counters.store_failures, 1);
                // A concurrent gc can remove a temporary or a directory under our feet: that
                // costs one entry, not the cache.
                if !matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists) {
                    self.mode.store(CacheMode::LookupsOnly.as_u8(), Ordering::Relaxed);
                    self.set_warning(CacheWarning::StoreFailed {
                        dir: self.dir.clone(),
                        path: at,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// [`compress_block`] through the cache: the entry of `block` if there is a valid one,
    /// else the block compressed (and stored). Returns exactly what [`compress_block`] returns.
    pub fn compress(&self, block: &[u8]) -> Result<Compressed, WriteError> {
        if block.is_empty() {
            return compress_block(block, self.compression, self.block_size);
        }
        let Some(key) = self.key(block) else {
            return compress_block(block, self.compression, self.block_size);
        };
        if let Some(hit) = self.get(&key, block.len()) {
            return Ok(hit);
        }
        let value = compress_block(block, self.compression, self.block_size)?;
        self.put(&key, block.len(), &value);
        Ok(value)
    }

    /// Ends the build: appends its [`BuildRecord`] (with `time`, if the caller has one) to
    /// `builds.log` in one `O_APPEND` write, and returns the report with its warnings. Call it
    /// after the last block; it takes `&self` so that the caller need not wait for the worker
    /// threads to drop their `Arc`s. A second call returns the report again without logging.
    pub fn finish(&self, time: Option<i64>) -> CacheReport {
        let counters = self.counters.snapshot();
        let mode = self.mode();
        let mut warning = self.warning.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if mode != CacheMode::Off && !self.logged.swap(true, Ordering::Relaxed) {
            let record = BuildRecord {
                compression: compression_label(self.compression),
                block_size: self.block_size,
                mode,
                time,
                counters,
            };
            let log = self.dir.join(LOG_FILE);
            if let Err(e) = append_record(&log, &record, self.dir_mode & 0o666) {
                if warning.is_none() {
                    warning =
                        Some(CacheWarning::Log { dir: self.dir.clone(), path: log, reason: e.to_string() });
                }
            }
        }
        let mut warnings: Vec<CacheWarning> = warning.into_iter().collect();
        if counters.corrupt > 0 {
            warnings.push(CacheWarning::Corrupt { dir: self.dir.clone(), count: counters.corrupt });
        }
        CacheReport { dir: self.dir.clone(), mode, counters, warnings }
    }

    fn set_warning(&self, w: CacheWarning) {
        let mut slot = self.warning.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(w);
        }
    }
}

/// `zstd:19`, `xz`, `xz:bcj`, `gzip:9`, `lz4`, `none` (with a non-default xz dictionary as
/// `xz dict=N`, which `--compression` cannot spell).
fn compression_label(c: Compression) -> String {
    match c {
        Compression::Zstd { level } => format!("zstd:{level}"),
        Compression::Gzip { level } => format!("gzip:{level}"),
        Compression::Xz { dict_size, x86_bcj } => {
            let base = if x86_bcj { "xz:bcj" } else { "xz" };
            match dict_size {
                Some(d) => format!("{base} dict={d}"),
                None => base.to_string(),
            }
        }
        Compression::Lz4 => "lz4".to_string(),
        Compression::None => "none".to_string(),
    }
}

/// Prepares `dir` for a build: creates it, writes the tag into a new or empty directory,
/// creates `blocks/`, and probes whether it is writable.
fn setup(dir: &Path) -> Setup {
    let off = |warning| Setup { mode: CacheMode::Off, dir_mode: 0o755, warning: Some(warning) };
    let unusable = |reason: String| off(CacheWarning::Unusable { dir: dir.to_path_buf(), reason });
    if let Err(e) = fs::create_dir_all(dir) {
        return unusable(format!("cannot create it: {e}"));
    }
    let dir_mode = match fs::metadata(dir) {
        Ok(m) if m.is_dir() => m.mode() & 0o7777,
        Ok(_) => return unusable("it is not a directory".to_string()),
        Err(e) => return unusable(format!("cannot examine it: {e}")),
    };
    match read_tag(dir) {
        Ok(TagState::Ours) => {}
        Ok(TagState::Foreign) => {
            return off(CacheWarning::NotACache {
                dir: dir.to_path_buf(),
                why: "its CACHEDIR.TAG was not written by isoforge",
            })
        }
        Ok(TagState::Absent) => match is_empty(dir) {
            Ok(true) => {
                if let Err((_, e)) =
                    write_atomically(dir, Path::new(TAG_FILE), TAG_CONTENT.as_bytes(), dir_mode, false)
                {
                    return unusable(format!("cannot write {TAG_FILE}: {e}"));
                }
            }
            // Another build may have set the directory up since the tag was read: it is ours
            // if the tag is there now.
            Ok(false) if matches!(read_tag(dir), Ok(TagState::Ours)) => {}
            Ok(false) => {
                return off(CacheWarning::NotACache {
                    dir: dir.to_path_buf(),
                    why: "it is not empty and has no CACHEDIR.TAG",
                })
            }
            Err(e) => return unusable(format!("cannot list it: {e}")),
        },
        Err(e) => return unusable(format!("cannot read {TAG_FILE}: {e}")),
    }
    let blocks = dir.join(BLOCKS_DIR);
    match fs::create_dir(&blocks) {
        Ok(()) => {
            let _ = rustix::fs::chmod(&blocks, Mode::from_raw_mode(dir_mode));
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return unusable(format!("cannot create {}: {e}", blocks.display()));
        }
    }
    if !fs::metadata(&blocks).is_ok_and(|m| m.is_dir()) {
        return unusable(format!("{} is not a directory", blocks.display()));
    }
    if let Err(e) = rustix::fs::access(&blocks, rustix::fs::Access::WRITE_OK) {
        return Setup {
            mode: CacheMode::LookupsOnly,
            dir_mode,
            warning: Some(CacheWarning::ReadOnly {
                dir: dir.to_path_buf(),
                reason: io::Error::from(e).to_string(),
            }),
        };
    }
    Setup { mode: CacheMode::ReadWrite, dir_mode, warning: None }
}

enum TagState {
    Ours,
    Foreign,
    Absent,
}

fn read_tag(dir: &Path) -> io::Result<TagState> {
    let file = match File::open(dir.join(TAG_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TagState::Absent),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    file.take(TAG_READ_LIMIT).read_to_end(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    Ok(if text.starts_with(CACHEDIR_SIGNATURE) && text.contains(TAG_MARKER) {
        TagState::Ours
    } else {
        TagState::Foreign
    })
}

/// Empty but for `lost+found` (a dedicated file system) and temporaries (another build
/// writing the tag right now).
fn is_empty(dir: &Path) -> io::Result<bool> {
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if name != "lost+found" && !name.starts_with(TEMP_PREFIX) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Numbers the temporaries of this process (all caches share it).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` as `dir/name` through a locked temporary in `dir` and a rename, with the
/// permission bits `dir_mode` (without execute) on the file. With `make_dir`, a missing `dir`
/// is created (with `dir_mode`). On failure, returns the path that failed and the error, and
/// leaves no temporary behind.
fn write_atomically(
    dir: &Path,
    name: &Path,
    bytes: &[u8],
    dir_mode: u32,
    make_dir: bool,
) -> Result<(), (PathBuf, io::Error)> {
    let file_mode = dir_mode & 0o666;
    let mut made_dir = false;
    let mut attempts = 0;
    let (tmp, mut file) = loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).mode(file_mode).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::NotFound && make_dir && !made_dir => {
                made_dir = true;
                match fs::create_dir(dir) {
                    Ok(()) => {
                        let _ = rustix::fs::chmod(dir, Mode::from_raw_mode(dir_mode));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err((dir.to_path_buf(), e)),
                }
            }
            // Another process with our pid (another pid namespace) and counter value.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => return Err((tmp, e)),
        }
    };
    let fail = |e: io::Error, at: PathBuf| {
        let _ = fs::remove_file(&tmp);
        Err((at, e))
    };
    // The lock tells gc the temporary is alive; a file system without locks just loses that.
    let _ = rustix::fs::flock(&file, FlockOperation::LockExclusive);
    // The umask may have taken bits the cache directory grants (a shared group cache).
    if let Err(e) = rustix::fs::fchmod(&file, Mode::from_raw_mode(file_mode)) {
        return fail(e.into(), tmp.clone());
    }
    if let Err(e) = file.write_all(bytes) {
        return fail(e, tmp.clone());
    }
    let dest = dir.join(name);
    if let Err(e) = fs::rename(&tmp, &dest) {
        return fail(e, dest);
    }
    drop(file);
    Ok(())
}

/// Appends `record` as one line in one write.
fn append_record(log: &Path, record: &BuildRecord, file_mode: u32) -> io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut file = OpenOptions::new().append(true).create(true).mode(file_mode).open(log)?;
    // Group-writable if the cache is; fails harmlessly when another user made the log.
    let _ = rustix::fs::fchmod(&file, Mode::from_raw_mode(file_mode));
    let n = file.write(&line)?;
    if n != line.len() {
        return Err(io::Error::other(format!("short write: {n} of {} bytes", line.len())));
    }
    Ok(())
}

/// Encodes an entry: header and payload.
pub fn encode_entry(key: &BlockKey, block_len: usize, value: &Compressed) -> Vec<u8> {
    let payload: &[u8] = match value {
        Compressed::Stored => &[],
        Compressed::Packed(p) => p,
    };
    let header = EntryHeader {
        magic: ENTRY_MAGIC,
        version: U32::new(ENTRY_VERSION),
        kind: U32::new(match value {
            Compressed::Stored => KIND_STORED,
            Compressed::Packed(_) => KIND_PACKED,
        }),
        key: key.0,
        uncompressed_len: U64::new(block_len as u64),
        compressed_len: U64::new(payload.len() as u64),
        payload_sha256: Sha256::digest(payload).into(),
    };
    let mut out = Vec::with_capacity(ENTRY_HEADER_LEN + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// What is wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryDefect {
    /// Shorter than a header, or not header + payload long.
    #[error("entry is {found} bytes long, expected {expected}")]
    Length {
        /// The expected length (a header's when the header itself is cut).
        expected: u64,
        /// The file's length.
        found: u64,
    },
    /// A header field holds a value the format does not allow, or another entry's.
    #[error("entry header field {field}: expected {expected}, found {found}")]
    Field {
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The payload's sha256 is not the recorded one.
    #[error("entry payload sha256 does not match its header")]
    Checksum,
}

/// Checks a header against the expected key and block length (`None`: any length) and the
/// file's length; returns the payload length.
pub fn check_header(
    header: &EntryHeader,
    key: &BlockKey,
    block_len: Option<u64>,
    file_len: u64,
) -> Result<u64, EntryDefect> {
    let field = |field, expected: String, found: String| Err(EntryDefect::Field { field, expected, found });
    if header.magic != ENTRY_MAGIC {
        return field("magic", hex(&ENTRY_MAGIC), hex(&header.magic));
    }
    if header.version.get() != ENTRY_VERSION {
        return field("version", ENTRY_VERSION.to_string(), header.version.get().to_string());
    }
    if header.key != key.0 {
        return field("key", key.hex(), hex(&header.key));
    }
    let ulen = header.uncompressed_len.get();
    if let Some(expected) = block_len {
        if ulen != expected {
            return field("uncompressed_len", expected.to_string(), ulen.to_string());
        }
    }
    let clen = header.compressed_len.get();
    match header.kind.get() {
        KIND_STORED if clen != 0 => return field("compressed_len", "0".into(), clen.to_string()),
        KIND_PACKED if clen == 0 || clen >= ulen => {
            return field("compressed_len", format!("1 to {}", ulen.saturating_sub(1)), clen.to_string())
        }
        KIND_STORED | KIND_PACKED => {}
        k => return field("kind", format!("{KIND_STORED} or {KIND_PACKED}"), k.to_string()),
    }
    let expected = ENTRY_HEADER_LEN as u64 + clen;
    if file_len != expected {
        return Err(EntryDefect::Length { expected, found: file_len });
    }
    Ok(clen)
}

/// Decodes and checks a whole entry for `key` and a block of `block_len` bytes.
pub fn decode_entry(bytes: &[u8], key: &BlockKey, block_len: usize) -> Result<Compressed, EntryDefect> {
    Ok(match check_entry(bytes, key, block_len)? {
        KIND_PACKED => Compressed::Packed(bytes[ENTRY_HEADER_LEN..].to_vec()),
        _ => Compressed::Stored,
    })
}

/// Checks a whole entry (header, length, payload checksum); returns its kind.
fn check_entry(bytes: &[u8], key: &BlockKey, block_len: usize) -> Result<u32, EntryDefect> {
    let Ok((header, payload)) = EntryHeader::read_from_prefix(bytes) else {
        return Err(EntryDefect::Length { expected: ENTRY_HEADER_LEN as u64, found: bytes.len() as u64 });
    };
    check_header(&header, key, Some(block_len as u64), bytes.len() as u64)?;
    if <[u8; 32]>::from(Sha256::digest(payload)) != header.payload_sha256 {
        return Err(EntryDefect::Checksum);
    }
    Ok(header.kind.get())
}

/// Reads the entry at `path`: `Ok(None)` when there is none (or it cannot be read),
/// `Err` when it does not check out.
fn read_entry(
    path: &Path,
    key: &BlockKey,
    block_len: usize,
) -> Result<Option<(Compressed, File)>, EntryDefect> {
    let Ok(mut file) = File::open(path) else { return Ok(None) };
    let Ok(meta) = file.metadata() else { return Ok(None) };
    let len = meta.len();
    // Bounded before reading: a valid entry is never longer than header + block.
    let max = ENTRY_HEADER_LEN as u64 + block_len as u64;
    if !meta.is_file() || len < ENTRY_HEADER_LEN as u64 || len > max {
        return Err(EntryDefect::Length { expected: ENTRY_HEADER_LEN as u64, found: len });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    if Read::by_ref(&mut file).take(max + 1).read_to_end(&mut bytes).is_err() {
        return Ok(None);
    }
    // Checked in place, then the payload is taken without a copy.
    if check_entry(&bytes, key, block_len)? == KIND_PACKED {
        bytes.drain(..ENTRY_HEADER_LEN);
        Ok(Some((Compressed::Packed(bytes), file)))
    } else {
        Ok(Some((Compressed::Stored, file)))
    }
}

/// Checks that `dir` is an isoforge block cache.
fn check_cache_dir(dir: &Path) -> Result<(), CacheError> {
    let not = |why| Err(CacheError::NotACache { path: dir.to_path_buf(), why });
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return not("it is not a directory"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return not("it does not exist"),
        Err(e) => return Err(io_err("examine", dir)(e)),
    }
    match read_tag(dir).map_err(io_err("read", &dir.join(TAG_FILE)))? {
        TagState::Ours => Ok(()),
        TagState::Foreign => not("its CACHEDIR.TAG was not written by isoforge"),
        TagState::Absent => not("it has no CACHEDIR.TAG"),
    }
}

/// What [`stats`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStats {
    /// Entries (files named like one).
    pub entries: u64,
    /// Their total length in bytes.
    pub bytes: u64,
    /// The space they take on disk (allocated blocks).
    pub disk_bytes: u64,
    /// Temporaries (entries being written, or left by a build that died).
    pub temporaries: u64,
    /// Other files under `blocks/` (gc removes them).
    pub garbage: u64,
    /// Builds in the log.
    pub builds: u64,
    /// Log lines that are not a build record.
    pub bad_log_lines: u64,
    /// The last builds of the log, oldest first.
    pub recent: Vec<BuildRecord>,
    /// Lookups of the recent builds.
    pub recent_lookups: u64,
    /// Hits of the recent builds.
    pub recent_hits: u64,
    /// `recent_hits / recent_lookups`, when there was a lookup.
    pub hit_rate: Option<f64>,
}

/// What [`list_blocks`] keeps of an entry's metadata.
struct EntryInfo {
    len: u64,
    disk_bytes: u64,
    mtime: (i64, i64),
}

/// One file under `blocks/`.
enum Item {
    Entry { path: PathBuf, key: BlockKey, info: EntryInfo },
    Temporary { path: PathBuf },
    Garbage { path: PathBuf },
}

/// Lists `blocks/`: every file of its fan-out directories, and the stray files beside them.
/// Directories other than the fan-out ones are left alone. Sorted by path.
fn list_blocks(dir: &Path) -> Result<Vec<Item>, CacheError> {
    let blocks = dir.join(BLOCKS_DIR);
    let mut items = Vec::new();
    let top = match fs::read_dir(&blocks) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(items),
        Err(e) => return Err(io_err("list", &blocks)(e)),
    };
    let mut subs = Vec::new();
    for e in top {
        let e = e.map_err(io_err("list", &blocks))?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e.file_type().map_err(io_err("examine", &path))?;
        if ft.is_dir() {
            if name.len() == 2 && is_hex(&name) {
                subs.push((name, path));
            }
        } else if name.starts_with(TEMP_PREFIX) {
            items.push(Item::Temporary { path });
        } else {
            items.push(Item::Garbage { path });
        }
    }
    subs.sort();
    for (prefix, sub) in subs {
        for e in fs::read_dir(&sub).map_err(io_err("list", &sub))? {
            let e = e.map_err(io_err("list", &sub))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed meanwhile (another gc, a build replacing a temporary).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("examine", &path)(e)),
            };
            if meta.is_dir() {
                continue;
            }
            if name.starts_with(TEMP_PREFIX) {
                items.push(Item::Temporary { path });
            } else if let (true, Some(key)) = (meta.is_file(), parse_key(&prefix, &name)) {
                let info = EntryInfo {
                    len: meta.len(),
                    disk_bytes: meta.blocks().saturating_mul(512),
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                };
                items.push(Item::Entry { path, key, info });
            } else {
                items.push(Item::Garbage { path });
            }
        }
    }
    for e in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let e = e.map_err(io_err("list", dir))?;
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            items.push(Item::Temporary { path: e.path() });
        }
    }
    items.sort_by(|a, b| item_path(a).cmp(item_path(b)));
    Ok(items)
}

fn item_path(i: &Item) -> &Path {
    match i {
        Item::Entry { path, .. } | Item::Temporary { path } | Item::Garbage { path } => path,
    }
}

fn parse_key(prefix: &str, name: &str) -> Option<BlockKey> {
    if name.len() != 62 || !is_hex(name) || !name.bytes().all(|b| !b.is_ascii_uppercase()) {
        return None;
    }
    let full = format!("{prefix}{name}");
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(full.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(BlockKey(key))
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Summarises the cache in `dir`: its entries and the last `recent` builds of its log.
pub fn stats(dir: &Path, recent: usize) -> Result<CacheStats, CacheError> {
    check_cache_dir(dir)?;
    let mut s = CacheStats {
        entries: 0,
        bytes: 0,
        disk_bytes: 0,
        temporaries: 0,
        garbage: 0,
        builds: 0,
        bad_log_lines: 0,
        recent: Vec::new(),
        recent_lookups: 0,
        recent_hits: 0,
        hit_rate: None,
    };
    for item in list_blocks(dir)? {
        match item {
            Item::Entry { info, .. } => {
                s.entries += 1;
                s.bytes += info.len;
                s.disk_bytes += info.disk_bytes;
            }
            Item::Temporary { .. } => s.temporaries += 1,
            Item::Garbage { .. } => s.garbage += 1,
        }
    }
    let log = dir.join(LOG_FILE);
    let mut last: VecDeque<BuildRecord> = VecDeque::new();
    match File::open(&log) {
        Ok(f) => {
            for line in io::BufReader::new(f).split(b'\n') {
                let line = line.map_err(io_err("read", &log))?;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<BuildRecord>(&line) {
                    Ok(r) => {
                        s.builds += 1;
                        if recent > 0 {
                            if last.len() == recent {
                                last.pop_front();
                            }
                            last.push_back(r);
                        }
                    }
                    Err(_) => s.bad_log_lines += 1,
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read", &log)(e)),
    }
    s.recent = last.into();
    s.recent_lookups = s.recent.iter().map(|r| r.counters.lookups).sum();
    s.recent_hits = s.recent.iter().map(|r| r.counters.hits).sum();
    if s.recent_lookups > 0 {
        s.hit_rate = Some(s.recent_hits as f64 / s.recent_lookups as f64);
    }
    Ok(s)
}

/// What [`gc`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// The size asked for.
    pub max_size: u64,
    /// Entries removed because the cache was larger than `max_size`.
    pub removed_entries: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Temporaries removed (nobody held their lock).
    pub removed_temporaries: u64,
    /// Temporaries left because a build is writing them.
    pub busy_temporaries: u64,
    /// Files removed because they are not entries, or entries whose header does not check out.
    pub removed_garbage: u64,
    /// Entries kept.
    pub kept_entries: u64,
    /// Their bytes.
    pub kept_bytes: u64,
}

/// Shrinks the cache in `dir` to at most `max_size` bytes of entries: removes the stale
/// temporaries and the garbage (files that are not entries, entries whose header does not
/// match its name or length), then the least recently used entries (oldest mtime first,
/// ties by name) until the rest fits. Safe to run while builds use the cache: a temporary a
/// build holds is left, and an entry removed under a build is only a miss.
pub fn gc(dir: &Path, max_size: u64) -> Result<GcReport, CacheError> {
    check_cache_dir(dir)?;
    let mut report = GcReport { max_size, ..GcReport::default() };
    let mut entries = Vec::new();
    let remove = |path: &Path| match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    };
    for item in list_blocks(dir)? {
        match item {
            Item::Temporary { path } => {
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("open", &path)(e)),
                };
                match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                    Ok(()) => {
                        if remove(&path)? {
                            report.removed_temporaries += 1;
                        }
                    }
                    Err(_) => report.busy_temporaries += 1,
                }
            }
            Item::Garbage { path } => {
                if remove(&path)? {
                    report.removed_garbage += 1;
                }
            }
            Item::Entry { path, key, info } => {
                if header_ok(&path, &key) {
                    entries.push((info.mtime, path, info.len));
                } else if remove(&path)? {
                    report.removed_garbage += 1;
                }
            }
        }
    }
    entries.sort();
    let mut total: u64 = entries.iter().map(|e| e.2).sum();
    for (_, path, len) in &entries {
        if total <= max_size {
            report.kept_entries += 1;
            report.kept_bytes += len;
            continue;
        }
        total -= len;
        if remove(path)? {
            report.removed_entries += 1;
            report.removed_bytes += len;
        }
    }
    Ok(report)
}

/// Reads an entry's header and checks it against its name and length (not the payload).
fn header_ok(path: &Path, key: &BlockKey) -> bool {
    let Ok(mut file) = File::open(path) else { return false };
    let Ok(meta) = file.metadata() else { return false };
    let mut buf = [0u8; ENTRY_HEADER_LEN];
    if file.read_exact(&mut buf).is_err() {
        return false;
    }
    EntryHeader::read_from_bytes(&buf).is_ok_and(|h| check_header(&h, key, None, meta.len()).is_ok())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::process::Command;
    use std::sync::Barrier;

    use super::*;

    const ZSTD: Compression = Compression::Zstd { level: 3 };
    const BS: u32 = 1 << 16;
    const CHILD: &str = "ISOFORGE_CACHE_TEST_CHILD";
    const CHILD_DIR: &str = "ISOFORGE_CACHE_TEST_DIR";

    /// Compressible text, different for each seed.
    fn text(seed: u32, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 64);
        let mut i = 0u32;
        while v.len() < len {
            v.extend_from_slice(format!("seed {seed} line {} of a block\n", i % 113).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    /// Incompressible bytes.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Noise, then zeros: compresses to about half, so the entry has a payload of that size.
    fn half(seed: u64, len: usize) -> Vec<u8> {
        let mut v = noise(seed, len / 2);
        v.resize(len, 0);
        v
    }

    fn entry_path(dir: &Path, cache: &BlockCache, block: &[u8]) -> PathBuf {
        dir.join(cache.key(block).unwrap().relative_path())
    }

    fn set_mtime(path: &Path, secs: i64) {
        let t = Timespec { tv_sec: secs, tv_nsec: 0 };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &Timestamps { last_access: t, last_modification: t },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }

    fn temporaries(dir: &Path) -> u64 {
        stats(dir, 0).unwrap().temporaries
    }

    #[test]
    fn round_trip() {
        let tmp = isoforge_testing::tempdir();
        let dir = tmp.path().join("cache");
        let blocks = [text(1, 40_000), noise(2, 5000), text(3, BS as usize)];
        let cold: Vec<Compressed> = blocks.iter().map(|b| compress_block(b, ZSTD, BS).unwrap()).collect();
        assert!(matches!(cold[0], Compressed::Packed(_)) && cold[1] == Compressed::Stored);

        let cache = BlockCache::open(&dir, ZSTD, BS);
        assert_eq!(cache.mode(), CacheMode::ReadWrite);
        for (b, c) in blocks.iter().zip(&cold) {
            assert_eq!(&cache.compress(b).unwrap(), c);
        }
        let r = cache.finish(Some(42));
        assert_eq!(r.warnings, vec![]);
        assert_eq!(cache.finish(None), r, "a second finish reports again and logs nothing");
        assert_eq!((r.counters.lookups, r.counters.misses, r.counters.stores), (3, 3, 3));
        assert_eq!(r.counters.hits, 0);
        assert!(dir.join(TAG_FILE).is_file());
        // A stored block's entry is a header alone.
        let cache = BlockCache::open(&dir, ZSTD, BS);
        assert_eq!(fs::metadata(entry_path(&dir, &cache, &blocks[1])).unwrap().len(), 96);

        for (b, c) in blocks.iter().zip(&cold) {
            assert_eq!(&cache.compress(b).unwrap(), c);
        }
        let r = cache.finish(None);
        assert_eq!(r.warnings, vec![]);
        assert_eq!((r.counters.lookups, r.counters.hits, r.counters.stores), (3, 3, 0));
        let payload: u64 =
            cold.iter().map(|c| if let Compressed::Packed(p) = c { p.len() as u64 } else { 0 }).sum();
        assert_eq!(r.counters.bytes_read, payload);
        assert_eq!(r.counters.hit_input_bytes, blocks.iter().map(|b| b.len() as u64).sum::<u64>());

        let s = stats(&dir, DEFAULT_RECENT_BUILDS).unwrap();
        assert_eq!((s.entries, s.builds, s.temporaries, s.garbage, s.bad_log_lines), (3, 2, 0, 0, 0));
        assert_eq!(s.bytes, 3 * 96 + payload);
        assert_eq!(s.hit_rate, Some(0.5));
        assert_eq!(s.recent[0].time, Some(42));
        assert_eq!(s.recent[0].compression, "zstd:3");
        assert_eq!(stats(&dir, 1).unwrap().hit_rate, Some(1.0));
    }

    #[test]
    fn another_setting_is_another_key() {
        let base = KeyPrefix::new(ZSTD, BS).unwrap();
        assert_eq!(base, KeyPrefix::new(ZSTD, BS).unwrap());
        let others = [
            KeyPrefix::new(Compression::Zstd { level: 4 }, BS).unwrap(),
            KeyPrefix::new(ZSTD, BS * 2).unwrap(),
            KeyPrefix::new(Compression::Gzip { level: 9 }, BS).unwrap(),
            KeyPrefix::new(Compression::Gzip { level: 8 }, BS).unwrap(),
            KeyPrefix::new(Compression::Xz { dict_size: None, x86_bcj: false }, BS).unwrap(),
            KeyPrefix::new(Compression::Xz { dict_size: None, x86_bcj: true }, BS).unwrap(),
            KeyPrefix::new(Compression::Xz { dict_size: Some(BS / 2), x86_bcj: false }, BS).unwrap(),
            KeyPrefix::new(Compression::Lz4, BS).unwrap(),
        ];
        let content = [7u8; 32];
        let mut keys: Vec<BlockKey> = others.iter().map(|p| p.key(&content)).collect();
        keys.push(base.key(&content));
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), others.len() + 1);
        assert_ne!(base.key(&content), base.key(&[8u8; 32]));
        let text = String::from_utf8(base.as_bytes().to_vec()).unwrap();
        assert!(text.starts_with("isoforge-block-cache/1\n"), "{text}");
        assert!(text.contains(&format!("library zstd {}\n", zstd::zstd_safe::version_number())), "{text}");
        assert!(text.contains("probe "), "{text}");
        // The key of a block through the cache is the prefix's key of its sha256.
        let tmp = isoforge_testing::tempdir();
        let cache = BlockCache::open(tmp.path(), ZSTD, BS);
        let block = text.as_bytes();
        assert_eq!(cache.key(block), Some(base.key(&Sha256::digest(block).into())));
    }

    #[test]
    fn library_constants_match_cargo_lock() {
        let lock =
            fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock")).unwrap();
        for constant in [GZIP_LIBRARY, LZ4_LIBRARY, XZ_LIBRARY] {
            for lib in constant.split(", ") {
                let (name, version) = lib.split_once(' ').unwrap();
                let locked = format!("name = \"{name}\"\nversion = \"{version}\"\n");
                assert!(
                    lock.contains(&locked),
                    "Cargo.lock has no {name} {version}: update the constant {constant:?}"
                );
            }
        }
    }

    /// Each way an entry can go bad: it is a miss, counted as corrupt, and the next store
    /// replaces it.
    #[test]
    fn damaged_entries_are_misses_and_replaced() {
        let block = text(5, 30_000);
        let other = text(6, 30_000);
        let cold = compress_block(&block, ZSTD, BS).unwrap();
        type Damage = fn(&Path, &Path);
        let damages: [(&str, Damage); 9] = [
            ("cut in the header", |p, _| fs::write(p, &fs::read(p).unwrap()[..50]).unwrap()),
            ("cut in the payload", |p, _| {
                let b = fs::read(p).unwrap();
                fs::write(p, &b[..b.len() - 1]).unwrap()
            }),
            ("longer", |p, _| {
                let mut b = fs::read(p).unwrap();
                b.push(0);
                fs::write(p, b).unwrap()
            }),
            ("payload byte flipped", |p, _| {
                let mut b = fs::read(p).unwrap();
                b[200] ^= 1;
                fs::write(p, b).unwrap()
            }),
            ("length field changed", |p, _| {
                let mut b = fs::read(p).unwrap();
                b[48] ^= 1;
                fs::write(p, b).unwrap()
            }),
            ("other version", |p, _| {
                let mut b = fs::read(p).unwrap();
                b[8] = 2;
                fs::write(p, b).unwrap()
            }),
            ("foreign (another key's entry)", |p, o| {
                fs::copy(o, p).unwrap();
            }),
            ("garbage", |p, _| fs::write(p, b"not an entry at all").unwrap()),
            ("empty", |p, _| fs::write(p, b"").unwrap()),
        ];
        for (what, damage) in damages {
            let tmp = isoforge_testing::tempdir();
            let dir = tmp.path();
            let cache = BlockCache::open(dir, ZSTD, BS);
            cache.compress(&block).unwrap();
            cache.compress(&other).unwrap();
            let path = entry_path(dir, &cache, &block);
            damage(&path, &entry_path(dir, &cache, &other));
            cache.finish(None);

            let cache = BlockCache::open(dir, ZSTD, BS);
            let key = cache.key(&block).unwrap();
            assert_eq!(cache.get(&key, block.len()), None, "{what}");
            assert_eq!(cache.counters().corrupt, 1, "{what}");
            assert_eq!(cache.compress(&block).unwrap(), cold, "{what}");
            assert_eq!(cache.get(&key, block.len()), Some(cold.clone()), "{what}: replaced");
            let r = cache.finish(None);
            assert_eq!(
                r.warnings,
                vec![CacheWarning::Corrupt { dir: dir.to_path_buf(), count: 2 }],
                "{what}: two lookups found it corrupt"
            );
            assert_eq!((r.counters.stores, r.counters.hits), (1, 1), "{what}");
        }
    }

    #[test]
    fn decode_names_the_defect() {
        let key = BlockKey([1; 32]);
        let bytes = encode_entry(&key, 100, &Compressed::Packed(vec![9; 10]));
        assert_eq!(decode_entry(&bytes, &key, 100), Ok(Compressed::Packed(vec![9; 10])));
        assert!(matches!(
            decode_entry(&bytes, &BlockKey([2; 32]), 100),
            Err(EntryDefect::Field { field: "key", .. })
        ));
        assert!(matches!(
            decode_entry(&bytes, &key, 99),
            Err(EntryDefect::Field { field: "uncompressed_len", .. })
        ));
        assert_eq!(
            decode_entry(&bytes[..100], &key, 100),
            Err(EntryDefect::Length { expected: 106, found: 100 })
        );
        let mut bad = bytes.clone();
        bad[100] ^= 0xff;
        assert_eq!(decode_entry(&bad, &key, 100), Err(EntryDefect::Checksum));
        // A "packed" payload that is not smaller than the block is not believed.
        let big = encode_entry(&key, 10, &Compressed::Packed(vec![9; 10]));
        assert!(matches!(
            decode_entry(&big, &key, 10),
            Err(EntryDefect::Field { field: "compressed_len", .. })
        ));
        assert_eq!(
            decode_entry(&encode_entry(&key, 5, &Compressed::Stored), &key, 5),
            Ok(Compressed::Stored)
        );
    }

    #[test]
    fn a_directory_that_is_not_a_cache_is_left_alone() {
        let tmp = isoforge_testing::tempdir();
        let dir = tmp.path();
        fs::write(dir.join("notes.txt"), b"mine").unwrap();
        let cache = BlockCache::open(dir, ZSTD, BS);
        assert_eq!(cache.mode(), CacheMode::Off);
        assert_eq!(
            cache.compress(&text(1, 1000)).unwrap(),
            compress_block(&text(1, 1000), ZSTD, BS).unwrap()
        );
        let r = cache.finish(None);
        assert_eq!(r.counters, CacheCounters::default());
        assert!(matches!(&r.warnings[..], [CacheWarning::NotACache { .. }]), "{:?}", r.warnings);
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1, "nothing written");
        assert!(matches!(stats(dir, 1), Err(CacheError::NotACache { why: "it has no CACHEDIR.TAG", .. })));
        assert!(matches!(gc(dir, 0), Err(CacheError::NotACache { .. })));
        // Another program's cache tag (ccache writes one) is not ours either.
        fs::write(dir.join(TAG_FILE), format!("{CACHEDIR_SIGNATURE}\n# ccache\n")).unwrap();
        let r = BlockCache::open(dir, ZSTD, BS).finish(None);
        assert!(matches!(&r.warnings[..], [CacheWarning::NotACache { .. }]), "{:?}", r.warnings);
        assert!(matches!(stats(dir, 1), Err(CacheError::NotACache { .. })));
        assert!(matches!(
            stats(&dir.join("absent"), 1),
            Err(CacheError::NotACache { why: "it does not exist", .. })
        ));
        // An empty directory becomes a cache.
        let empty = dir.join("empty");
        fs::create_dir(&empty).unwrap();
        assert_eq!(BlockCache::open(&empty, ZSTD, BS).mode(), CacheMode::ReadWrite);
        assert!(stats(&empty, 1).is_ok());
    }

    #[test]
    fn a_file_where_the_directory_should_be_means_no_cache() {
        let tmp = isoforge_testing::tempdir();
        let dir = tmp.path().join("cache");
        fs::write(&dir, b"a file").unwrap();
        let cache = BlockCache::open(&dir, ZSTD, BS);
        assert_eq!(cache.mode(), CacheMode::Off);
        let block = text(2, 5000);
        assert_eq!(cache.compress(&block).unwrap(), compress_block(&block, ZSTD, BS).unwrap());
        let r = cache.finish(None);
        assert!(matches!(&r.warnings[..], [CacheWarning::Unusable { .. }]), "{:?}", r.warnings);
        assert_eq!(fs::read(&dir).unwrap(), b"a file");
        // A file in place of blocks/: no cache either.
        let dir = tmp.path().join("c2");
        BlockCache::open(&dir, ZSTD, BS).finish(None);
        fs::remove_dir(dir.join(BLOCKS_DIR)).unwrap();
        fs::write(dir.join(BLOCKS_DIR), b"").unwrap();
        let r = BlockCache::open(&dir, ZSTD, BS).finish(None);
        assert_eq!(r.mode, CacheMode::Off);
        assert!(matches!(&r.warnings[..], [CacheWarning::Unusable { .. }]), "{:?}", r.warnings);
    }

    /// A store that fails for good (here a file where a fan-out directory should be, which
    /// even root cannot write through) turns the cache into lookups only, with one warning.
    #[test]
    fn a_failed_store_degrades_to_lookups_only() {
        let tmp = isoforge_testing::tempdir();
        let dir = tmp.path();
        let cache = BlockCache::open(dir, ZSTD, BS);
        let first = text(1, 8000);
        cache.compress(&first).unwrap();
        let prefix = |b: &[u8]| cache.key(b).unwrap().hex()[..2].to_string();
        let blocked = (2..).map(|s| text(s, 8000)).find(|b| prefix(b) != prefix(&first)).unwrap();
        fs::write(dir.join(BLOCKS_DIR).join(prefix(&blocked)), b"").unwrap();
        assert_eq!(cache.compress(&blocked).unwrap(), compress_block(&blocked, ZSTD, BS).unwrap());
        assert_eq!(cache.mode(), CacheMode::LookupsOnly);
        let later = text(1000, 8000);
        assert_eq!(cache.compress(&later).unwrap(), compress_block(&later, ZSTD, BS).unwrap());
        assert_eq!(cache.compress(&first).unwrap(), compress_block(&first, ZSTD, BS).unwrap());
        let r = cache.finish(None);
        assert_eq!(r.mode, CacheMode::LookupsOnly);
        assert_eq!((r.counters.stores, r.counters.store_failures, r.counters.hits), (1, 1, 1));
        assert!(matches!(&r.warnings[..], [CacheWarning::StoreFailed { .. }]), "{:?}", r.warnings);
        assert_eq!(temporaries(dir), 0);
        // The log still got the build.
        assert_eq!(stats(dir, 5).unwrap().recent.last().unwrap().mode, CacheMode::LookupsOnly);
    }

    #[test]
    fn parallel_puts_of_one_key() {
        let tmp = isoforge_testing::tempdir();
        let dir = tmp.path();
        let block = text(9, 50_000);
        let value = compress_block(&block, ZSTD, BS).unwrap();
        // Four "builds" (caches) of two threads each, all storing the same entry at once.
        let caches: Vec<BlockCache> = (0..4).map(|_| BlockCache::open(dir, ZSTD, BS)).collect();
        let key = caches[0].key(&block).unwrap();
        let block_len = block.len();
        let barrier = Barrier::new(8);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (cache, barrier, value) = (&caches[i / 2], &barrier, &value);
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..10 {
                        cache.put(&key, block_len, value);
                    }
                });
            }
        });
        let stores: u64 = caches.into_iter().map(|c| c.finish(None).counters.stores).sum();
        assert_eq!(stores, 80);
        let cache = BlockCache::open(dir, ZSTD, BS);
        assert_eq!(cache.get(&key, block.len()), Some(value));
        let s = stats(dir, 10).unwrap();
        assert_eq!((s.entries, s.temporaries, s.builds), (1, 0, 4));
    }

    #[test]
    fn a_hit_makes_the_entry_recent() {
        let tmp = isoforge_testing::tempdir();
        let cache = BlockCache::open(tmp.path(), ZSTD, BS);
        let block = text(3, 9000);
        cache.compress(&block).unwrap();
        let path = entry_path(tmp.path(), &cache, &block);
        set_mtime(&path, 1000);
        cache.compress(&block).unwrap();
        assert!(fs::metadata(&path).unwrap().mtime() > 1000);
    }

    #[test]
    fn gc_removes_least_recently_used_first() {
        let tmp = isoforge_testing::tempdir();
        let dir = tmp.path();
        let cache = BlockCache::open(dir, ZSTD, BS);
        let blocks: Vec<Vec<u8>> = (0..4).map(|s| half(s, 8192)).collect();
        let paths: Vec<PathBuf> = blocks
            .iter()
            .map(|b| {
                cache.compress(b).unwrap();
                entry_path(dir, &cache, b)
            })
            .collect();
        cache.finish(None);
        // 0 is the oldest; 2 and 3 tie, and the smaller name goes first.
        for (p, t) in paths.iter().zip([100, 400, 200, 200]) {
            set_mtime(p, t);
        }
        let (tie_first, tie_second) = if paths[2] < paths[3] { (2, 3) } else { (3, 2) };
        let lens: Vec<u64> = paths.iter().map(|p| fs::metadata(p).unwrap().len()).collect();
        let total: u64 = lens.iter().sum();

        // Garbage and temporaries.
        let blocks_dir = dir.join(BLOCKS_DIR);
        let sub = paths[0].parent().unwrap().to_path_buf();
        fs::write(blocks_dir.join("stray"), b"x").unwrap();
        fs::write(sub.join("short-name"), b"x").unwrap();
        fs::write(sub.join("0".repeat(62)), b"not an entry").unwrap();
        fs::write(sub.join(format!("{TEMP_PREFIX}1-1")), b"left by a dead build").unwrap();
        let busy = sub.join(format!("{TEMP_PREFIX}1-2"));
        let held = File::create(&busy).unwrap();
        rustix::fs::flock(&held, FlockOperation::LockExclusive).unwrap();
        fs::create_dir(blocks_dir.join("somebody-elses-dir")).unwrap();

        let s = stats(dir, 1).unwrap();
        assert_eq!((s.entries, s.garbage, s.temporaries), (5, 2, 2));

        let r = gc(dir, total - 1).unwrap();
        assert_eq!(
            r,
            GcReport {
                max_size: total - 1,
                removed_entries: 1,
                removed_bytes: lens[0],
                removed_temporaries: 1,
                busy_temporaries: 1,
                removed_garbage: 3,
                kept_entries: 3,
                kept_bytes: total - lens[0],
            }
        );
        assert!(!paths[0].exists() && paths[1].exists() && paths[2].exists() && paths[3].exists());
        assert!(busy.exists() && blocks_dir.join("somebody-elses-dir").is_dir());

        let r = gc(dir, lens[1] + lens[tie_second]).unwrap();
        assert_eq!((r.removed_entries, r.kept_entries), (1, 2));
        assert!(!paths[tie_first].exists() && paths[tie_second].exists());
        // Unlock explicitly: a child another test thread forks at this moment shares the
        // open file description until it execs, so closing ours would not end the lock.
        rustix::fs::flock(&held, FlockOperation::Unlock).unwrap();
        drop(held);
        let r = gc(dir, 0).unwrap();
        assert_eq!((r.removed_entries, r.removed_temporaries, r.kept_entries, r.kept_bytes), (2, 1, 0, 0));
        assert_eq!(stats(dir, 0).unwrap().entries, 0);
    }

    /// Runs `script` with `sh -c` under `wrapper`, with `$1` this test binary and `$2` a scratch
    /// directory; the script runs [`child`] with `run_child STEP CACHE_DIR`.
    fn run_script(wrapper: &[&str], script: &str) {
        let tmp = isoforge_testing::tempdir();
        let exe = std::env::current_exe().unwrap();
        let script = format!(
            "set -e\nrun_child() {{ {CHILD}=$1 {CHILD_DIR}=$2 \"$EXE\" --exact cache::tests::child --nocapture --test-threads=1; }}\n{script}"
        );
        let out = Command::new(wrapper[0])
            .args(&wrapper[1..])
            .args(["sh", "-c", &script, "sh"])
            .arg(&exe)
            .arg(tmp.path())
            .env("EXE", &exe)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test cache::tests::child ... ok"),
            "{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn can_unshare() -> bool {
        let ok = Command::new("unshare").args(["-rm", "true"]).output().is_ok_and(|o| o.status.success());
        isoforge_testing::prerequisite(ok, "`unshare -rm` (util-linux, user namespaces) is not available")
    }

    /// The steps the child processes of the tests below run.
    #[test]
    fn child() {
        let Ok(step) = std::env::var(CHILD) else { return };
        let dir = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
        let cold = |b: &[u8]| compress_block(b, ZSTD, BS).unwrap();
        match step.as_str() {
            "fill" => {
                let cache = BlockCache::open(&dir, ZSTD, BS);
                for s in 0..3 {
                    cache.compress(&text(s, 20_000)).unwrap();
                }
                assert_eq!(cache.finish(None).warnings, vec![]);
            }
            "read-only" => {
                let cache = BlockCache::open(&dir, ZSTD, BS);
                assert_eq!(cache.mode(), CacheMode::LookupsOnly);
                for s in 0..4 {
                    assert_eq!(cache.compress(&text(s, 20_000)).unwrap(), cold(&text(s, 20_000)));
                }
                let r = cache.finish(None);
                assert_eq!((r.counters.hits, r.counters.misses, r.counters.stores), (3, 1, 0));
                assert_eq!(r.counters.store_failures, 0);
                assert!(matches!(&r.warnings[..], [CacheWarning::ReadOnly { .. }]), "{:?}", r.warnings);
                // A new cache on the read-only file system: none at all.
                let r = BlockCache::open(&dir.join("new"), ZSTD, BS).finish(None);
                assert_eq!(r.mode, CacheMode::Off);
                assert!(matches!(&r.warnings[..], [CacheWarning::Unusable { .. }]), "{:?}", r.warnings);
            }
            "full" => {
                let cache = BlockCache::open(&dir, ZSTD, BS);
                assert_eq!(cache.mode(), CacheMode::ReadWrite);
                let blocks: Vec<Vec<u8>> = (0..30).map(|s| half(s, 16 << 10)).collect();
                for b in &blocks {
                    assert_eq!(cache.compress(b).unwrap(), cold(b));
                }
                let r = cache.finish(None);
                assert_eq!(r.mode, CacheMode::LookupsOnly);
                assert_eq!(r.counters.store_failures, 1, "{r:?}");
                assert!(r.counters.stores >= 1, "{r:?}");
                assert!(matches!(&r.warnings[..], [CacheWarning::StoreFailed { .. }]), "{:?}", r.warnings);
                assert_eq!(temporaries(&dir), 0);
                // What was stored is served.
                let cache = BlockCache::open(&dir, ZSTD, BS);
                for b in &blocks {
                    assert_eq!(cache.compress(b).unwrap(), cold(b));
                }
                assert_eq!(cache.finish(None).counters.hits, r.counters.stores);
            }
            "file-size-limit" => {
                let cache = BlockCache::open(&dir, ZSTD, BS);
                let small = text(1, 20_000);
                let big = half(2, 64 << 10);
                assert_eq!(cache.compress(&small).unwrap(), cold(&small));
                assert_eq!(cache.compress(&big).unwrap(), cold(&big));
                let r = cache.finish(None);
                assert_eq!((r.counters.stores, r.counters.store_failures), (1, 1));
                assert_eq!(r.mode, CacheMode::LookupsOnly);
                let [CacheWarning::StoreFailed { reason, .. }] = &r.warnings[..] else {
                    panic!("{:?}", r.warnings)
                };
                assert!(reason.contains("too large"), "{reason}");
                assert_eq!(temporaries(&dir), 0);
            }
            other => panic!("unknown step {other}"),
        }
    }

    /// A cache on a file system mounted read-only (a tmpfs in a private mount namespace):
    /// lookups only, one warning.
    #[test]
    fn read_only_file_system() {
        if !can_unshare() {
            return;
        }
        run_script(
            &["unshare", "-rm"],
            "mount -t tmpfs -o size=1m tmpfs \"$2\"\nrun_child fill \"$2/c\"\nmount -o remount,ro \"$2\"\nrun_child read-only \"$2/c\"",
        );
    }

    /// A cache on a full file system (a 64 KiB tmpfs): stores stop at the first ENOSPC.
    #[test]
    fn full_file_system() {
        if !can_unshare() {
            return;
        }
        run_script(&["unshare", "-rm"], "mount -t tmpfs -o size=64k tmpfs \"$2\"\nrun_child full \"$2/c\"");
    }

    /// A build under `RLIMIT_FSIZE` (with SIGXFSZ ignored, writes fail with EFBIG).
    #[test]
    fn file_size_limit() {
        let ok = Command::new("prlimit")
            .args(["--fsize=20000", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !isoforge_testing::prerequisite(ok, "prlimit (util-linux) is not available") {
            return;
        }
        run_script(&["prlimit", "--fsize=20000"], "trap '' XFSZ\nrun_child file-size-limit \"$2/c\"");
    }
}
