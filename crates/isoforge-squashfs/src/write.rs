//! The writer: plans inode numbers, ids and duplicates, streams file data through a bounded
//! window of parallel block compressions, then writes the metadata tables and patches the
//! superblock.
//!
//! Image layout, in increasing offset order (all offsets relative to where the image starts):
//! superblock (96 bytes, written as zeros first and patched at the end), compressor options
//! (one metadata block, when not default), data and fragment blocks in file order, inode
//! table, directory table, fragment table (metadata blocks, then their u64 index), export
//! table (same), id table (same), then zero padding to a multiple of 4 KiB as mksquashfs does.
//! `bytes_used` excludes the padding.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{mpsc, Arc};

use isoforge_host::snapshot::{FileId, HostDir, HostFile, SnapshotReader};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::cache::{BlockCache, CacheReport};
use crate::compress::{compress_block, Compressed, Compression};
use crate::dir::{write_listing, Entry};
use crate::error::WriteError;
use crate::inode::{
    encode_dir, encode_file, encode_symlink, kind, BaseInode, FileLayout, DATA_UNCOMPRESSED, INVALID,
};
use crate::metadata::{MetadataWriter, METADATA_SIZE};
use crate::superblock::{flags, Superblock, MAGIC, NO_TABLE, SUPERBLOCK_SIZE};
use crate::tree::{Entries, FileData, InputNode, Meta};

/// Images are padded to a multiple of this many bytes (mksquashfs's default `-pad`ding).
pub const PAD: u64 = 4096;

/// Writer options. [`Options::default`] matches nixpkgs' mksquashfs flags: zstd level 19,
/// 1 MiB blocks, duplicates removed, export table written, no tail packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Compressor and its settings.
    pub compression: Compression,
    /// Data block size: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// Compression threads; 0 means the machine's available parallelism. The output bytes do
    /// not depend on it.
    pub threads: usize,
    /// The superblock's creation time (`SOURCE_DATE_EPOCH`).
    pub mkfs_time: u32,
    /// Store identical files once.
    pub dedup: bool,
    /// Pack the tails of files larger than a block into fragments too
    /// (mksquashfs `-always-use-fragments`); by default only files smaller than a block are.
    pub always_fragments: bool,
    /// Write the export (NFS) table, as mksquashfs does by default.
    pub exportable: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compression: Compression::default(),
            block_size: 1 << 20,
            threads: 0,
            mkfs_time: 0,
            dedup: true,
            always_fragments: false,
            exportable: true,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// The superblock's `bytes_used`: the image without its padding.
    pub bytes_used: u64,
    /// Bytes written including the padding to 4 KiB; the stream is left this far past its
    /// starting position.
    pub total_size: u64,
    /// Inodes (directories + files + symlinks).
    pub inodes: u32,
    /// Directories.
    pub dirs: u64,
    /// Regular files.
    pub files: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Files stored as a reference to an identical earlier file.
    pub duplicate_files: u64,
    /// Sum of the sizes of all files (as if every duplicate were stored).
    pub file_bytes: u64,
    /// Data blocks written (not counting sparse ones).
    pub data_blocks: u64,
    /// All-zero blocks stored as holes.
    pub sparse_blocks: u64,
    /// Data or fragment blocks stored uncompressed because compression did not shrink them.
    pub stored_raw_blocks: u64,
    /// Fragment blocks.
    pub fragment_blocks: u32,
    /// Bytes of data and fragment blocks as stored.
    pub data_bytes: u64,
    /// Bytes of the inode table as stored.
    pub inode_table_bytes: u64,
    /// Bytes of the directory table as stored.
    pub directory_table_bytes: u64,
    /// What the block cache did, when the build had one ([`write_cached`]).
    pub cache: Option<CacheReport>,
}

/// A stage of the writer, reported to an [`Observer`] as it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Finding files identical to earlier ones (reads the candidates' first bytes, hashes and
    /// compares the ones still alike).
    Duplicates,
    /// Reading, compressing (or taking from the cache) and writing the data and fragment
    /// blocks; the payload is the number of input bytes this stage reads.
    Data(u64),
    /// Writing the inode, directory, fragment, export and id tables.
    Tables,
}

/// Told what the writer does, on the writing thread, in order. The writer never reads the
/// clock; an observer that wants times takes them (the CLI's `-v` phase timings).
pub trait Observer {
    /// `stage` starts (the previous one, if any, has ended).
    fn stage(&mut self, stage: Stage) {
        let _ = stage;
    }
    /// A data or fragment block of `input_bytes` uncompressed bytes was written.
    fn block(&mut self, input_bytes: u64) {
        let _ = input_bytes;
    }
}

/// The observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl Observer for Unobserved {}

/// Writes `root` as a squashfs image into `out`, starting at its current position. Offsets
/// inside the image are relative to that position. The superblock is written last (the stream
/// seeks back once to patch it) and the stream is left at the end of the padded image
/// (`start + Summary::total_size`, a multiple of 4096 bytes past `start`). The writer never
/// reads back from `out` and never seeks before `start`. On error, what was written after
/// `start` is unspecified.
pub fn write<W: Write + Seek>(
    root: &InputNode,
    options: &Options,
    out: &mut W,
) -> Result<Summary, WriteError> {
    write_dyn(root, options, None, &mut Unobserved, out)
}

/// [`write`], looking every data and fragment block up in `cache` before compressing it and
/// storing each block it compresses ([`crate::cache`]). The bytes written are the same with
/// any cache, in any state, as without one: an entry is used only when it is exactly what
/// [`crate::compress_block`] gives for the block, which the cache checks. The cache's
/// report ([`BlockCache::finish`], which also logs the build in the cache) is
/// [`Summary::cache`]. `observer` is told each [`Stage`] as it starts and the uncompressed
/// length of every data or fragment block as it is written (for a progress display over the
/// input bytes and per-stage timings).
pub fn write_cached<W: Write + Seek>(
    root: &InputNode,
    options: &Options,
    cache: Option<Arc<BlockCache>>,
    observer: &mut dyn Observer,
    out: &mut W,
) -> Result<Summary, WriteError> {
    write_dyn(root, options, cache, observer, out)
}

/// A writable, seekable sink (the object-safe core behind [`write`]).
pub(crate) trait WriteSeek: Write + Seek {}
impl<T: Write + Seek> WriteSeek for T {}

/// [`write`] into a file at `path` through an [`isoforge_host::output::AtomicOutput`]: the
/// file gets its name only when complete (replacing a previous one), and on error, or when
/// the process is killed, `path` is untouched and nothing is left beside it. Stale temporary
/// files of killed builds beside `path` are removed first; call
/// [`isoforge_host::output::remove_stale`] beforehand to learn which.
pub fn write_to_path(root: &InputNode, options: &Options, path: &Path) -> Result<Summary, WriteError> {
    let mut out = isoforge_host::output::AtomicOutput::create(path)?;
    let summary = write(root, options, out.file())?;
    out.commit()?;
    Ok(summary)
}

/// A node flattened for planning: 12 bytes (a million small files are common in a store).
/// Indexes are 32 bits, as the inode count is ([`node_index`] checks them).
struct Flat {
    /// The parent's index (`u32::MAX` for the root).
    parent: u32,
    inode_number: u32,
    /// A directory's index in [`Plan::dirs`]; a file's index in the file list (data order,
    /// set by [`file_order`]).
    slot: u32,
}

/// A directory of the plan: its entries and the index of its first child (its children are
/// `first..first + entries.len()`, in name order).
struct PlanDir<'a> {
    entries: &'a Entries,
    first: u32,
}

/// The tree flattened (see [`flatten`]): a node is found through its parent's entries, so
/// the plan holds no pointer per node.
struct Plan<'a> {
    root: &'a InputNode,
    nodes: Vec<Flat>,
    dirs: Vec<PlanDir<'a>>,
}

impl<'a> Plan<'a> {
    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The node at flat index `i`.
    fn node(&self, i: usize) -> &'a InputNode {
        let Some(p) = self.nodes.get(self.nodes[i].parent as usize) else { return self.root };
        let d = &self.dirs[p.slot as usize];
        d.entries.get_index(i - d.first as usize).map_or(self.root, |(_, n)| n)
    }
}

impl std::ops::Index<usize> for Plan<'_> {
    type Output = Flat;
    fn index(&self, i: usize) -> &Flat {
        &self.nodes[i]
    }
}

impl std::ops::IndexMut<usize> for Plan<'_> {
    fn index_mut(&mut self, i: usize) -> &mut Flat {
        &mut self.nodes[i]
    }
}

/// Where a file's data ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Nowhere (yet, or an empty file).
    Empty,
    /// Only in a fragment: (fragment index, offset in it).
    Fragment(u32, u32),
    /// Stored in blocks (and perhaps a fragment for its tail): its layout's index in
    /// [`Placements::layouts`].
    Stored(u32),
    /// Same bytes as another file (index into the file list).
    Alias(u32),
}

/// The [`Place`] of every file (by file-list index), 8 bytes a file (a million small files
/// are common in a store, and most of them live in a fragment), and the layouts of the files
/// stored in blocks. Indexes are 32 bits: the inode count, checked to fit 32 bits before
/// any file is placed, bounds them.
struct Placements {
    /// The place, packed: the kind in the top 2 bits; for a fragment its index above the
    /// offset's [`Placements::OFFSET_BITS`] bits (an offset is below the block size, at most
    /// 1 MiB), otherwise the index in the low 32 bits.
    of: Vec<u64>,
    layouts: Vec<FileLayout>,
}

impl Placements {
    const OFFSET_BITS: u32 = 21;
    const KIND_SHIFT: u32 = 62;

    fn new(files: usize) -> Placements {
        Placements { of: vec![0; files], layouts: Vec::new() }
    }

    fn len(&self) -> usize {
        self.of.len()
    }

    fn get(&self, k: usize) -> Place {
        let v = self.of[k];
        let low = (v & u64::from(u32::MAX)) as u32;
        match v >> Self::KIND_SHIFT {
            0 => Place::Empty,
            1 => {
                let offset = (v & ((1 << Self::OFFSET_BITS) - 1)) as u32;
                let index = ((v >> Self::OFFSET_BITS) & u64::from(u32::MAX)) as u32;
                Place::Fragment(index, offset)
            }
            2 => Place::Stored(low),
            _ => Place::Alias(low),
        }
    }

    fn is_alias(&self, k: usize) -> bool {
        matches!(self.get(k), Place::Alias(_))
    }

    /// Makes `k` an alias of the file `original` (a file-list index).
    fn set_alias(&mut self, k: usize, original: usize) {
        self.of[k] = 3 << Self::KIND_SHIFT | u64::from(u32::try_from(original).unwrap_or(u32::MAX));
    }

    fn set_fragment(&mut self, k: usize, index: u32, offset: u32) {
        debug_assert!(offset < 1 << Self::OFFSET_BITS, "fragment offsets are below the block size");
        let offset = u64::from(offset) & ((1 << Self::OFFSET_BITS) - 1);
        self.of[k] = 1 << Self::KIND_SHIFT | u64::from(index) << Self::OFFSET_BITS | offset;
    }

    /// Stores `k` in blocks, as `layout` (to be completed as its blocks are written).
    fn store(&mut self, k: usize, layout: FileLayout) {
        let i = u32::try_from(self.layouts.len()).unwrap_or(u32::MAX);
        self.layouts.push(layout);
        self.of[k] = 2 << Self::KIND_SHIFT | u64::from(i);
    }

    /// The layout of a file stored in blocks.
    fn layout_mut(&mut self, k: usize) -> Option<&mut FileLayout> {
        match self.get(k) {
            Place::Stored(i) => self.layouts.get_mut(i as usize),
            _ => None,
        }
    }
}

fn write_dyn(
    root: &InputNode,
    options: &Options,
    cache: Option<Arc<BlockCache>>,
    observer: &mut dyn Observer,
    out: &mut dyn WriteSeek,
) -> Result<Summary, WriteError> {
    let block_size = options.block_size;
    if !block_size.is_power_of_two() || !(4096..=1 << 20).contains(&block_size) {
        return Err(WriteError::BadOption {
            option: "block size",
            why: format!("{block_size} is not a power of two from 4096 to 1048576"),
        });
    }
    options.compression.validate(block_size)?;
    if !matches!(root, InputNode::Dir { .. }) {
        return Err(WriteError::BadOption {
            option: "root",
            why: "the root must be a directory".to_string(),
        });
    }
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| WriteError::ThreadPool { threads, message: e.to_string() })?;

    // ---- Plan: flatten, validate names, number inodes, collect ids and files. ----
    let mut flat = flatten(root)?;
    let inode_count = node_index(flat.len())?;
    number_inodes(&mut flat, 0, &mut 0);
    let mut ids = BTreeSet::new();
    for i in 0..flat.len() {
        ids.insert(flat.node(i).meta().uid);
        ids.insert(flat.node(i).meta().gid);
    }
    // `no_ids` is a u16.
    if ids.len() > usize::from(u16::MAX) {
        return Err(WriteError::Overflow { field: "superblock.no_ids", value: ids.len() as u64 });
    }
    let ids: Vec<u32> = ids.into_iter().collect();
    let id_index: BTreeMap<u32, u16> = ids.iter().enumerate().map(|(i, &id)| (id, i as u16)).collect();
    // Files in data order (pre-order, names sorted), as flat indexes; each file's `slot`
    // becomes its index here.
    let mut files: Vec<u32> = Vec::new();
    file_order(&mut flat, 0, &mut files);
    files.shrink_to_fit();
    let mut placement = Placements::new(files.len());
    let mut summary = Summary { inodes: inode_count, ..Summary::default() };
    for i in 0..flat.len() {
        match flat.node(i) {
            InputNode::Dir { .. } => summary.dirs += 1,
            InputNode::File { data, .. } => {
                summary.files += 1;
                summary.file_bytes += data.size();
            }
            InputNode::Symlink { .. } => summary.symlinks += 1,
        }
    }
    if options.dedup {
        observer.stage(Stage::Duplicates);
        for (dup, original) in pool.install(|| find_duplicates(&flat, &files, u64::from(block_size)))? {
            placement.set_alias(dup, original);
            summary.duplicate_files += 1;
        }
    }

    // ---- Write: superblock placeholder, compressor options, data. ----
    let input_bytes: u64 = files
        .iter()
        .enumerate()
        .filter(|(k, _)| !placement.is_alias(*k))
        .map(|(_, &i)| file_ref(&flat, i as usize).size())
        .sum();
    observer.stage(Stage::Data(input_bytes));
    let start = out.stream_position().map_err(WriteError::Output)?;
    let mut sink = Sink { out, pos: 0 };
    sink.write(&[0u8; SUPERBLOCK_SIZE])?;
    let comp_options = options.compression.options(block_size);
    if let Some(opts) = &comp_options {
        // A metadata block, stored uncompressed as mksquashfs does.
        sink.write(&(opts.len() as u16 | crate::metadata::METADATA_UNCOMPRESSED).to_le_bytes())?;
        sink.write(opts)?;
    }

    // Blocks in flight: two per thread keep the compressors busy while blocks are of even
    // cost; the extra dozen absorbs the reader's stalls on runs of small files (measured
    // with the benchmark closure: 2 threads, data phase 7 % faster than with 4 in flight).
    let window = threads.saturating_mul(2).saturating_add(12);
    let mut pipe = Pipeline {
        pool: &pool,
        cache: cache.clone(),
        observer: &mut *observer,
        compression: options.compression,
        block_size,
        window,
        tx: None,
        rx: None,
        next_seq: 0,
        in_flight: VecDeque::new(),
        arrived: BTreeMap::new(),
        fragments: Vec::new(),
        fragments_done: 0,
        frag_buf: Vec::with_capacity(block_size as usize),
    };
    let (tx, rx) = mpsc::channel();
    pipe.tx = Some(tx);
    pipe.rx = Some(rx);
    // Fragment blocks never hold the tails of two top-level entries (two store paths), so a
    // change inside one store path cannot change the fragment blocks of another: their bytes,
    // and so their cache entries, stay the same (docs/spec/squashfs.md, "Fragments").
    let mut current_top = usize::MAX;
    // Files smaller than a block are read in batches on the pool, ahead of the writer, and
    // their duplicates found here, in data order (see `SmallFiles`); larger files are read
    // block by block by this thread.
    let items = work_items(&flat, &files, &mut placement, &mut summary, block_size, options.dedup);
    pool.in_place_scope(|scope| -> Result<(), WriteError> {
        let small_files = items.iter().map(|i| if let Item::Small(ks) = i { ks.len() } else { 0 }).sum();
        let mut small = SmallFiles::new(scope, &flat, &files, threads, options.dedup, small_files);
        for (n, item) in items.iter().enumerate() {
            small.schedule_ahead(&items, n);
            match item {
                Item::Large(k) => {
                    let k = *k;
                    let i = files[k] as usize;
                    let file = file_ref(&flat, i);
                    let top = top_level_entry(&flat, i);
                    if top != current_top {
                        pipe.close_fragment(&mut sink, &mut placement, &mut summary)?;
                        current_top = top;
                    }
                    placement.store(
                        k,
                        FileLayout { file_size: file.size(), fragment: INVALID, ..FileLayout::default() },
                    );
                    pipe.add_file(
                        k,
                        file,
                        options.always_fragments,
                        &mut sink,
                        &mut placement,
                        &mut summary,
                    )?;
                }
                Item::Small(_) => {
                    for file in small.next_batch()? {
                        let i = files[file.k] as usize;
                        let size = file.bytes.len() as u64;
                        if let Some(original) = small.duplicate_of(&file)? {
                            placement.set_alias(file.k, original);
                            summary.duplicate_files += 1;
                            pipe.observer.block(size);
                            continue;
                        }
                        let top = top_level_entry(&flat, i);
                        if top != current_top {
                            pipe.close_fragment(&mut sink, &mut placement, &mut summary)?;
                            current_top = top;
                        }
                        let (index, offset) =
                            pipe.add_tail(&file.bytes, &mut sink, &mut placement, &mut summary)?;
                        placement.set_fragment(file.k, index, offset);
                    }
                }
            }
        }
        Ok(())
    })?;
    pipe.close_fragment(&mut sink, &mut placement, &mut summary)?;
    pipe.drain_all(&mut sink, &mut placement, &mut summary)?;
    summary.data_bytes =
        sink.pos - SUPERBLOCK_SIZE as u64 - comp_options.as_ref().map_or(0, |o| o.len() as u64 + 2);
    let fragments = std::mem::take(&mut pipe.fragments);
    drop(pipe);
    // Only the tables are left to write: what planned the data goes before they are built.
    drop(items);
    drop(files);

    // ---- Metadata: inodes and directories, children before parents. ----
    observer.stage(Stage::Tables);
    // Through the cache too: at zstd 19 the tables of a store take about a second, which is
    // most of a rebuild where nothing changed.
    // The inode table goes into the image as its blocks fill; the directory table, which
    // follows it, is kept until the inode table is done.
    let inode_table_start = sink.pos;
    let mut tables = Tables {
        inodes: MetadataWriter::new(options.compression, block_size).with_cache(cache.clone()),
        dirs: MetadataWriter::new(options.compression, block_size).with_cache(cache.clone()),
        export: Export {
            table: options.exportable.then(|| LookupTable::new(options.compression, block_size)),
            last: 0,
        },
        sink: &mut sink,
    };
    let ctx = MetaCtx { flat: &flat, placement: &placement, id_index: &id_index };
    let root_listing = write_dir_tree(&ctx, 0, &mut tables)?;
    let Tables { mut inodes, dirs, mut export, .. } = tables;
    let root_ref = inodes.position();
    let root_base = base_inode(&ctx, 0)?;
    let root_nlink = 2 + subdir_count(&flat, 0);
    // mksquashfs's convention for the root's parent: one past the last inode.
    let root_parent = inode_count
        .checked_add(1)
        .ok_or(WriteError::Overflow { field: "dir.parent_inode", value: u64::from(inode_count) + 1 })?;
    inodes.write(&encode_dir(
        root_base,
        block32(root_listing.start.block)?,
        root_listing.start.offset,
        root_listing.file_size,
        root_nlink,
        root_parent,
        &root_listing.index,
    ))?;
    export.add(flat[0].inode_number, root_ref)?;

    let (inode_bytes, _) = inodes.finish()?;
    sink.write(&inode_bytes)?;
    let (dir_bytes, _) = dirs.finish()?;
    summary.inode_table_bytes = sink.pos - inode_table_start;
    summary.directory_table_bytes = dir_bytes.len() as u64;
    let directory_table_start = sink.pos;
    sink.write(&dir_bytes)?;
    drop(dir_bytes);

    let mut frag_entries = Vec::with_capacity(fragments.len() * 16);
    for (start, size) in &fragments {
        frag_entries.extend_from_slice(&start.to_le_bytes());
        frag_entries.extend_from_slice(&size.to_le_bytes());
        frag_entries.extend_from_slice(&0u32.to_le_bytes());
    }
    let fragment_table_start = write_lookup_table(&mut sink, &frag_entries, options.compression, block_size)?;
    let lookup_table_start = match export.table {
        Some(table) => table.write(&mut sink)?,
        None => NO_TABLE,
    };
    let id_bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    let id_table_start = write_lookup_table(&mut sink, &id_bytes, options.compression, block_size)?;
    let bytes_used = sink.pos;
    let padded = bytes_used.div_ceil(PAD) * PAD;
    let pad = vec![0u8; (padded - bytes_used) as usize];
    sink.write(&pad)?;

    let mut fl = flags::NO_XATTRS;
    if options.dedup {
        fl |= flags::DUPLICATES;
    }
    if options.exportable {
        fl |= flags::EXPORTABLE;
    }
    if options.always_fragments {
        fl |= flags::ALWAYS_FRAGMENTS;
    }
    if comp_options.is_some() {
        fl |= flags::COMPRESSOR_OPTIONS;
    }
    if options.compression == Compression::None {
        fl |= flags::UNCOMPRESSED_INODES
            | flags::UNCOMPRESSED_DATA
            | flags::UNCOMPRESSED_FRAGMENTS
            | flags::UNCOMPRESSED_IDS;
    }
    let sb = Superblock {
        s_magic: U32::new(MAGIC),
        inodes: U32::new(inode_count),
        mkfs_time: U32::new(options.mkfs_time),
        block_size: U32::new(block_size),
        fragments: U32::new(fragments.len() as u32),
        compression: U16::new(options.compression.id()),
        block_log: U16::new(block_size.trailing_zeros() as u16),
        flags: U16::new(fl),
        no_ids: U16::new(ids.len() as u16),
        s_major: U16::new(4),
        s_minor: U16::new(0),
        root_inode: U64::new(root_ref.to_inode_ref()),
        bytes_used: U64::new(bytes_used),
        id_table_start: U64::new(id_table_start),
        xattr_id_table_start: U64::new(NO_TABLE),
        inode_table_start: U64::new(inode_table_start),
        directory_table_start: U64::new(directory_table_start),
        fragment_table_start: U64::new(fragment_table_start),
        lookup_table_start: U64::new(lookup_table_start),
    };
    // The one patch: seek back to the superblock, then to the end.
    let out = sink.out;
    debug_assert_eq!(out.stream_position().ok(), Some(start + padded), "bytes counted = bytes written");
    out.seek(SeekFrom::Start(start)).map_err(WriteError::Output)?;
    out.write_all(sb.as_bytes()).map_err(WriteError::Output)?;
    out.seek(SeekFrom::Start(start + padded)).map_err(WriteError::Output)?;
    summary.bytes_used = bytes_used;
    summary.total_size = padded;
    summary.cache = cache.map(|c| c.finish(None));
    summary.fragment_blocks = fragments.len() as u32;
    Ok(summary)
}

/// Counts bytes written, relative to the image start.
struct Sink<'a> {
    out: &'a mut dyn WriteSeek,
    pos: u64,
}

impl Sink<'_> {
    fn write(&mut self, b: &[u8]) -> Result<(), WriteError> {
        self.out.write_all(b).map_err(WriteError::Output)?;
        self.pos += b.len() as u64;
        Ok(())
    }
}

fn block32(b: u64) -> Result<u32, WriteError> {
    u32::try_from(b).map_err(|_| WriteError::Overflow { field: "directory table block", value: b })
}

/// Nodes in the tree, root included (the flat list is allocated once, at its size).
fn count_nodes(node: &InputNode) -> usize {
    match node {
        InputNode::Dir { entries, .. } => 1 + entries.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// A flat index (or count) as the 32 bits every index of the plan has: the inode count
/// bounds them all.
fn node_index(n: usize) -> Result<u32, WriteError> {
    u32::try_from(n).map_err(|_| WriteError::Overflow { field: "superblock.inodes", value: n as u64 })
}

/// Flattens the tree, checking names and symlink targets: the root first, then the children
/// of each directory together, in name order, before those of its subdirectories (depth
/// first). Files get their file-list index from [`file_order`].
fn flatten(root: &InputNode) -> Result<Plan<'_>, WriteError> {
    let mut plan = Plan { root, nodes: Vec::with_capacity(count_nodes(root)), dirs: Vec::new() };
    plan.nodes.push(Flat { parent: u32::MAX, inode_number: 0, slot: 0 });
    if let InputNode::Dir { entries, .. } = root {
        plan.dirs.push(PlanDir { entries, first: 0 });
        flatten_dir(&mut plan, 0, &mut String::new())?;
    }
    plan.dirs.shrink_to_fit();
    Ok(plan)
}

fn flatten_dir(plan: &mut Plan<'_>, dir: usize, path: &mut String) -> Result<(), WriteError> {
    let slot = plan.nodes[dir].slot as usize;
    let entries = plan.dirs[slot].entries;
    let first = node_index(plan.len())?;
    plan.dirs[slot].first = first;
    let parent = node_index(dir)?;
    for (n, child) in entries {
        check_name(path, n)?;
        let mut slot = 0;
        match child {
            InputNode::Symlink { target, .. } if target.is_empty() || target.len() > 4095 => {
                return Err(WriteError::BadName {
                    dir: format!("{path}/{}", String::from_utf8_lossy(n)),
                    name: String::from_utf8_lossy(n).into_owned(),
                    why: "a symlink target must be 1 to 4095 bytes",
                });
            }
            InputNode::Dir { entries, .. } => {
                slot = node_index(plan.dirs.len())?;
                plan.dirs.push(PlanDir { entries, first: 0 });
            }
            _ => {}
        }
        node_index(plan.len())?;
        plan.nodes.push(Flat { parent, inode_number: 0, slot });
    }
    for (j, (n, child)) in entries.iter().enumerate() {
        if matches!(child, InputNode::Dir { .. }) {
            let len = path.len();
            path.push('/');
            path.push_str(&String::from_utf8_lossy(n));
            flatten_dir(plan, first as usize + j, path)?;
            path.truncate(len);
        }
    }
    Ok(())
}

/// The flat indexes of `dir`'s children, in name order (none for a file or symlink).
fn children(flat: &Plan<'_>, dir: usize) -> std::ops::Range<usize> {
    match flat.node(dir) {
        InputNode::Dir { .. } => {
            let d = &flat.dirs[flat[dir].slot as usize];
            let first = d.first as usize;
            first..first + d.entries.len()
        }
        _ => 0..0,
    }
}

/// The name of flat node `i` (empty for the root).
fn name_of<'a>(flat: &Plan<'a>, i: usize) -> &'a [u8] {
    let Some(p) = flat.nodes.get(flat[i].parent as usize) else { return b"" };
    let d = &flat.dirs[p.slot as usize];
    d.entries.get_index(i - d.first as usize).map_or(&[], |(n, _)| n)
}

/// A file of the tree with what reading it needs: its contents' source, and for a
/// [`FileData::Scanned`] file its directory's host path and its name.
#[derive(Clone, Copy)]
struct FileRef<'a> {
    data: &'a FileData,
    dir: Option<&'a Arc<std::path::Path>>,
    name: &'a [u8],
}

impl<'a> FileRef<'a> {
    fn size(&self) -> u64 {
        self.data.size()
    }

    /// The host file to read (`None` for bytes in memory).
    fn host(&self) -> Result<Option<Cow<'a, HostFile>>, WriteError> {
        self.data.host_file(self.dir, self.name)
    }

    /// The host directory of the file (`None` for bytes in memory).
    fn host_dir(&self) -> Option<&'a std::path::Path> {
        self.data.host_dir_in(self.dir)
    }
}

/// The contents of the file at flat index `i` (which must be a file; anything else reads
/// as empty bytes).
fn file_data<'a>(flat: &Plan<'a>, i: usize) -> &'a FileData {
    static EMPTY: std::sync::LazyLock<FileData> = std::sync::LazyLock::new(|| FileData::Bytes(Arc::new([])));
    match flat.node(i) {
        InputNode::File { data, .. } => data,
        _ => &EMPTY,
    }
}

/// The file at flat index `i` (which must be a file; anything else reads as empty bytes).
fn file_ref<'a>(flat: &Plan<'a>, i: usize) -> FileRef<'a> {
    let data = file_data(flat, i);
    let Some(p) = flat.nodes.get(flat[i].parent as usize) else {
        return FileRef { data, dir: None, name: b"" };
    };
    let d = &flat.dirs[p.slot as usize];
    let name = d.entries.get_index(i - d.first as usize).map_or(&[][..], |(n, _)| n);
    FileRef { data, dir: d.entries.host_dir(), name }
}

/// Lists the files below `dir` in data order (pre-order, names sorted) into `files` and
/// sets each file's `slot` to its index there (the inode count bounds it to 32 bits).
fn file_order(flat: &mut Plan<'_>, dir: usize, files: &mut Vec<u32>) {
    for c in children(flat, dir) {
        match flat.node(c) {
            InputNode::File { .. } => {
                flat[c].slot = files.len() as u32;
                files.push(c as u32);
            }
            InputNode::Dir { .. } => file_order(flat, c, files),
            InputNode::Symlink { .. } => {}
        }
    }
}

fn check_name(dir: &str, n: &[u8]) -> Result<(), WriteError> {
    let why = if n.is_empty() {
        "empty"
    } else if n.len() > 256 {
        "longer than 256 bytes"
    } else if n == b"." || n == b".." {
        "'.' and '..' are implicit"
    } else if n.contains(&b'/') || n.contains(&0) {
        "contains '/' or NUL"
    } else {
        return Ok(());
    };
    Err(WriteError::BadName {
        dir: if dir.is_empty() { "/".to_string() } else { dir.to_string() },
        name: String::from_utf8_lossy(n).into_owned(),
        why,
    })
}

/// Numbers inodes so that each directory's children are consecutive (small deltas in the
/// directory headers): descendants of a directory's subdirectories first, then its own
/// children; the root is last (inode count), as mksquashfs does.
fn number_inodes(flat: &mut Plan<'_>, dir: usize, next: &mut u32) {
    for c in children(flat, dir) {
        if matches!(flat.node(c), InputNode::Dir { .. }) {
            number_inodes(flat, c, next);
        }
    }
    for c in children(flat, dir) {
        *next += 1;
        flat[c].inode_number = *next;
    }
    if dir == 0 {
        *next += 1;
        flat[0].inode_number = *next;
    }
}

/// The flat index of the root's child that node `i` lies under (itself for a child of the
/// root; the root maps to itself).
fn top_level_entry(flat: &Plan<'_>, mut i: usize) -> usize {
    loop {
        let p = flat[i].parent as usize;
        if p == 0 || p >= flat.len() {
            return i;
        }
        i = p;
    }
}

fn subdir_count(flat: &Plan<'_>, i: usize) -> u32 {
    children(flat, i).filter(|&c| matches!(flat.node(c), InputNode::Dir { .. })).count() as u32
}

/// How many leading bytes of a duplicate candidate are hashed to tell it apart from other
/// files of its size before any file is read whole.
const PREFIX: u64 = 4 << 10;

/// A duplicate candidate: its file-list index and, for a host file, which file it is.
type Candidate = (usize, Option<FileId>);

/// What the duplicate search learns about a candidate without reading it whole: which file
/// it is on the host (device and inode, so hard links are known to be identical without
/// reading them) and the sha256 of its first [`PREFIX`] bytes.
struct Probe {
    identity: Option<FileId>,
    prefix: [u8; 32],
}

/// Finds files of at least `min_size` bytes identical to an earlier file (smaller files are
/// deduplicated as they are read, by [`SmallFiles`]). Returns (duplicate, original) file-list
/// indexes, the original being the first file (in data order) with those bytes.
///
/// Files of the same size are told apart by the sha256 of their first 4 KiB; hard links
/// of one host file are identical without reading; two files still alike are compared
/// byte by byte, and larger groups are hashed whole first and then compared. A file is
/// never called a duplicate without a byte-by-byte comparison or a shared inode, so
/// a hash collision cannot merge two files. Every step is a pure function of the files'
/// contents, so the result is the same for any thread count.
fn find_duplicates(flat: &Plan<'_>, files: &[u32], min_size: u64) -> Result<Vec<(usize, usize)>, WriteError> {
    let data = |k: usize| file_ref(flat, files[k] as usize);
    let mut by_size: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for k in 0..files.len() {
        let size = data(k).size();
        if size > 0 && size >= min_size {
            by_size.entry(size).or_default().push(k);
        }
    }
    let candidates: Vec<usize> = by_size.values().filter(|v| v.len() > 1).flatten().copied().collect();
    let probes: Vec<(usize, Probe)> =
        candidates.par_iter().map(|&k| probe_file(data(k)).map(|p| (k, p))).collect::<Result<_, _>>()?;
    // (size, prefix hash) → the candidates (file-list index, host file).
    let mut groups: BTreeMap<(u64, [u8; 32]), Vec<Candidate>> = BTreeMap::new();
    for (k, p) in probes {
        groups.entry((data(k).size(), p.prefix)).or_default().push((k, p.identity));
    }

    let mut found: Vec<(usize, usize)> = Vec::new();
    // Pairs to compare byte by byte, and groups whose members are to be hashed whole.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut to_hash: Vec<Vec<usize>> = Vec::new();
    for ((size, _), mut members) in groups {
        if members.len() < 2 {
            continue;
        }
        members.sort_unstable_by_key(|&(k, _)| k);
        // Hard links of one host file: identical without reading.
        let mut first_of: BTreeMap<FileId, usize> = BTreeMap::new();
        let mut distinct = Vec::new();
        for (k, identity) in members {
            match identity.and_then(|id| first_of.get(&id).copied()) {
                Some(orig) => found.push((k, orig)),
                None => {
                    if let Some(id) = identity {
                        first_of.insert(id, k);
                    }
                    distinct.push(k);
                }
            }
        }
        match distinct.len() {
            0 | 1 => {}
            // The whole file was hashed already, or two files: compare them with the first.
            _ if size <= PREFIX || distinct.len() == 2 => {
                let first = distinct[0];
                pairs.extend(distinct[1..].iter().map(|&k| (k, first)));
            }
            _ => to_hash.push(distinct),
        }
    }
    let hashed: Vec<Vec<(usize, usize)>> = to_hash
        .par_iter()
        .map(|group| {
            let mut by_hash: BTreeMap<[u8; 32], Vec<usize>> = BTreeMap::new();
            for &k in group {
                by_hash.entry(hash_file(data(k))?).or_default().push(k);
            }
            Ok(by_hash
                .into_values()
                .filter(|g| g.len() > 1)
                .flat_map(|g| {
                    let first = g[0];
                    g.into_iter().skip(1).map(move |k| (k, first))
                })
                .collect())
        })
        .collect::<Result<_, WriteError>>()?;
    pairs.extend(hashed.into_iter().flatten());
    let verified: Vec<Option<(usize, usize)>> = pairs
        .par_iter()
        .map(|&(dup, orig)| same_bytes(data(dup), data(orig)).map(|same| same.then_some((dup, orig))))
        .collect::<Result<_, _>>()?;
    found.extend(verified.into_iter().flatten());
    found.sort_unstable();
    // A hard link may have matched a file that is itself a duplicate of an earlier one:
    // point every duplicate at the first file with its bytes (originals come first).
    let mut root: BTreeMap<usize, usize> = BTreeMap::new();
    for (dup, orig) in &mut found {
        if let Some(&r) = root.get(orig) {
            *orig = r;
        }
        root.insert(*dup, *orig);
    }
    Ok(found)
}

/// What the data stage does next, in data order.
enum Item {
    /// A file of at least a block: read block by block by the writing thread.
    Large(usize),
    /// A run of files smaller than a block (file-list indexes, bounded by the inode count),
    /// read together on the pool.
    Small(Vec<u32>),
}

/// A batch of small files holds at most this many files or bytes.
const BATCH_FILES: usize = 256;
const BATCH_BYTES: u64 = 4 << 20;

/// Splits the files still to store into [`Item`]s, in data order. A small file that is a
/// hard link of an earlier small file (same host device and inode) becomes its alias here,
/// without being read.
fn work_items(
    flat: &Plan<'_>,
    files: &[u32],
    placement: &mut Placements,
    summary: &mut Summary,
    block_size: u32,
    dedup: bool,
) -> Vec<Item> {
    let data = |k: usize| file_data(flat, files[k] as usize);
    let small = |k: usize| (1..u64::from(block_size)).contains(&data(k).size());
    if dedup {
        // Hard links among the small host files: the files of each (device, inode), the
        // first in data order the original. Sorted by a 32-bit hash of it, then data order
        // (8 bytes a file while sorting, where a map from each inode to its first file took
        // about 40), and runs of one hash grouped by the inode itself.
        let id = |k: u32| data(k as usize).snapshot().map(|s| s.id);
        let mut linked: Vec<(u32, u32)> = (0..files.len())
            .filter(|&k| small(k) && !placement.is_alias(k))
            .filter_map(|k| Some((id_hash(id(k as u32)?), k as u32)))
            .collect();
        linked.sort_unstable();
        for run in linked.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
            let mut group: Vec<(Option<FileId>, u32)> = run.iter().map(|&(_, k)| (id(k), k)).collect();
            group.sort_unstable();
            for same in group.chunk_by(|a, b| a.0 == b.0) {
                for &(_, k) in &same[1..] {
                    placement.set_alias(k as usize, same[0].1 as usize);
                    summary.duplicate_files += 1;
                }
            }
        }
    }
    let mut items = Vec::new();
    let mut batch: Vec<u32> = Vec::new();
    let mut batch_bytes = 0u64;
    for k in 0..files.len() {
        if placement.is_alias(k) {
            continue;
        }
        let size = data(k).size();
        if size == 0 {
            continue;
        }
        if size >= u64::from(block_size) {
            if !batch.is_empty() {
                items.push(Item::Small(std::mem::take(&mut batch)));
                batch_bytes = 0;
            }
            items.push(Item::Large(k));
            continue;
        }
        if batch.len() == BATCH_FILES || batch_bytes + size > BATCH_BYTES {
            items.push(Item::Small(std::mem::take(&mut batch)));
            batch_bytes = 0;
        }
        batch.push(k as u32);
        batch_bytes += size;
    }
    if !batch.is_empty() {
        items.push(Item::Small(batch));
    }
    items
}

/// A 32-bit hash of a file's identity, to sort files by it cheaply.
fn id_hash(id: FileId) -> u32 {
    let h = (id.ino ^ id.dev.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32
}

/// A small file as read by a batch: its bytes and, when duplicates are searched, their sha256.
struct SmallFile {
    k: usize,
    bytes: Vec<u8>,
    hash: [u8; 32],
}

type Batch = Result<Vec<SmallFile>, WriteError>;

/// Reads batches of small files on the pool, a bounded number ahead of the writer, and
/// finds their duplicates in data order: a file whose size and sha256 match an earlier
/// file's is compared with it byte by byte (the earlier file is read again) and becomes its
/// alias only when equal. Every duplicate points at the first file in data order with its
/// bytes, as [`find_duplicates`] does for larger files.
struct SmallFiles<'s, 'f> {
    scope: &'s rayon::Scope<'f>,
    flat: &'f Plan<'f>,
    files: &'f [u32],
    dedup: bool,
    /// Batches scheduled, in item order.
    pending: VecDeque<mpsc::Receiver<Batch>>,
    /// Items up to this index have been scheduled.
    scheduled: usize,
    ahead: usize,
    seen: Seen,
}

/// The first 8 bytes of a small file's sha256 and its size. Small files are below the block
/// size, so their size fits 32 bits.
type SeenKey = ([u8; 8], u32);

/// Files in the map of [`Seen`] before they are merged into its sorted vector.
const SEEN_MERGE: usize = 1 << 15;

/// [`Seen::sorted`] is split into `1 << SEEN_BUCKET_BITS` buckets by the hash's first bits.
const SEEN_BUCKET_BITS: u32 = 16;

/// [`SeenKey`] → the first small file with it (a file-list index, which the inode count
/// bounds to 32 bits), in 16 bytes a file (a million small files are common in a store, and
/// a `BTreeMap` of them took about 27): a vector sorted by key of the files seen before the
/// last merge, with where each bucket of hashes starts in it (a lookup searches one bucket,
/// a few cache lines, where a binary search of the whole vector missed the cache twenty
/// times), and a map of those seen since, merged into the vector when it holds
/// [`SEEN_MERGE`] files.
struct Seen {
    sorted: Vec<(SeenKey, u32)>,
    /// `buckets[b]..buckets[b + 1]` are the entries of `sorted` in bucket `b` (empty until
    /// the first merge).
    buckets: Vec<u32>,
    recent: BTreeMap<SeenKey, u32>,
}

impl Seen {
    /// Room for `n` files (address space: pages are touched as the vector fills).
    fn with_capacity(n: usize) -> Seen {
        Seen { sorted: Vec::with_capacity(n), buckets: Vec::new(), recent: BTreeMap::new() }
    }

    fn bucket(key: &SeenKey) -> usize {
        usize::from(u16::from_be_bytes([key.0[0], key.0[1]])) >> (16 - SEEN_BUCKET_BITS)
    }

    fn get(&self, key: &SeenKey) -> Option<u32> {
        if let Some(&k) = self.recent.get(key) {
            return Some(k);
        }
        let b = Seen::bucket(key);
        let (Some(&from), Some(&to)) = (self.buckets.get(b), self.buckets.get(b + 1)) else { return None };
        let bucket = self.sorted.get(from as usize..to as usize)?;
        let i = bucket.binary_search_by(|e| e.0.cmp(key)).ok()?;
        Some(bucket[i].1)
    }

    /// Remembers `k` as the first file with `key`, which must not be there yet.
    fn insert(&mut self, key: SeenKey, k: u32) {
        self.recent.insert(key, k);
        if self.recent.len() >= SEEN_MERGE {
            self.merge();
        }
    }

    /// Merges the map into the vector, from the back (no key is in both), and finds the
    /// buckets again.
    fn merge(&mut self) {
        let add: Vec<(SeenKey, u32)> = std::mem::take(&mut self.recent).into_iter().collect();
        let (mut i, mut j) = (self.sorted.len(), add.len());
        self.sorted.resize(i + j, (([0; 8], 0), 0));
        let mut w = i + j;
        while j > 0 {
            w -= 1;
            if i > 0 && self.sorted[i - 1].0 > add[j - 1].0 {
                self.sorted[w] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[w] = add[j - 1];
                j -= 1;
            }
        }
        // Bucket starts: the vector holds at most one entry a file, and the inode count
        // bounds the files to 32 bits.
        self.buckets.clear();
        self.buckets.resize((1 << SEEN_BUCKET_BITS) + 1, 0);
        for e in &self.sorted {
            self.buckets[Seen::bucket(&e.0) + 1] += 1;
        }
        for b in 1..self.buckets.len() {
            self.buckets[b] += self.buckets[b - 1];
        }
    }
}

impl<'s, 'f> SmallFiles<'s, 'f> {
    fn new(
        scope: &'s rayon::Scope<'f>,
        flat: &'f Plan<'f>,
        files: &'f [u32],
        threads: usize,
        dedup: bool,
        small_files: usize,
    ) -> Self {
        SmallFiles {
            scope,
            flat,
            files,
            dedup,
            pending: VecDeque::new(),
            scheduled: 0,
            ahead: threads.saturating_mul(2).saturating_add(2),
            seen: Seen::with_capacity(if dedup { small_files } else { 0 }),
        }
    }

    fn data(&self, k: usize) -> FileRef<'f> {
        file_ref(self.flat, self.files[k] as usize)
    }

    /// Schedules the small batches among `items[now..now + ahead]` not scheduled yet.
    fn schedule_ahead(&mut self, items: &[Item], now: usize) {
        let end = now.saturating_add(self.ahead).min(items.len());
        while self.scheduled < end {
            if let Item::Small(ks) = &items[self.scheduled] {
                let jobs: Vec<(usize, FileRef<'f>)> =
                    ks.iter().map(|&k| (k as usize, self.data(k as usize))).collect();
                let (tx, rx) = mpsc::sync_channel(1);
                let dedup = self.dedup;
                self.scope.spawn(move |_| {
                    // Files that share their directory with the next file are opened through
                    // it (`openat` of one name; see `HostDir`).
                    let mut dir: Option<HostDir> = None;
                    let batch = (0..jobs.len())
                        .map(|j| {
                            let (k, file) = jobs[j];
                            let next = jobs.get(j + 1).map(|job| job.1);
                            let bytes = Source::read_whole_in(file, next, &mut dir)?;
                            let hash = if dedup { Sha256::digest(&bytes).into() } else { [0; 32] };
                            Ok(SmallFile { k, bytes, hash })
                        })
                        .collect();
                    // The receiver only goes away when the writer has already failed.
                    let _ = tx.send(batch);
                });
                self.pending.push_back(rx);
            }
            self.scheduled += 1;
        }
    }

    /// The next scheduled batch, in order.
    fn next_batch(&mut self) -> Batch {
        let closed =
            || WriteError::Compress { compressor: "reader", message: "a reading thread died".into() };
        let rx = self.pending.pop_front().ok_or_else(closed)?;
        rx.recv().map_err(|_| closed())?
    }

    /// The earlier file `file` duplicates, if any; otherwise `file` is remembered. Two
    /// different files with the same size and truncated hash (never seen in practice) are
    /// both stored; later copies then match the first of them only.
    fn duplicate_of(&mut self, file: &SmallFile) -> Result<Option<usize>, WriteError> {
        if !self.dedup {
            return Ok(None);
        }
        let mut short = [0u8; 8];
        short.copy_from_slice(&file.hash[..8]);
        let (Ok(size), Ok(k)) = (u32::try_from(file.bytes.len()), u32::try_from(file.k)) else {
            return Ok(None);
        };
        let Some(original) = self.seen.get(&(short, size)) else {
            self.seen.insert((short, size), k);
            return Ok(None);
        };
        let original = original as usize;
        let bytes = Source::read_whole(self.data(original))?;
        Ok((bytes == file.bytes).then_some(original))
    }
}

/// Reads a candidate's first [`PREFIX`] bytes and tells which file it is on the host (the
/// snapshot's device and inode, which the reader checked against the open file).
fn probe_file(file: FileRef<'_>) -> Result<Probe, WriteError> {
    let mut r = Source::open(file)?;
    let identity = file.data.snapshot().map(|s| s.id);
    let n = file.size().min(PREFIX) as usize;
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    r.finish()?;
    Ok(Probe { identity, prefix: Sha256::digest(&buf).into() })
}

/// An open file source of a recorded size: a host file read through its snapshot (see
/// [`isoforge_host::snapshot`]), or bytes in memory.
enum Source<'a> {
    Host(SnapshotReader<'a>),
    Bytes { bytes: &'a [u8], size: u64, pos: u64 },
}

impl<'a> Source<'a> {
    /// Opens a file source of [`FileRef::size`] bytes.
    fn open(file: FileRef<'a>) -> Result<Source<'a>, WriteError> {
        match (file.host()?, file.data) {
            (Some(h), _) => Ok(Source::Host(SnapshotReader::open_cow(h)?)),
            (None, FileData::Bytes(b)) => Ok(Source::Bytes { bytes: b, size: file.size(), pos: 0 }),
            (None, _) => Ok(Source::Bytes { bytes: &[], size: file.size(), pos: 0 }),
        }
    }

    /// The whole contents of a small file source, checked as [`Self::finish`] checks (for
    /// host files with the fewest system calls, [`HostFile::read_whole`]).
    fn read_whole(file: FileRef<'_>) -> Result<Vec<u8>, WriteError> {
        Source::read_whole_in(file, None, &mut None)
    }

    /// [`Self::read_whole`] of one of a run of files: a host file is opened through `dir`
    /// when `dir` holds it, and `dir` becomes its directory when `next` is in the same one.
    fn read_whole_in(
        file: FileRef<'_>,
        next: Option<FileRef<'_>>,
        dir: &mut Option<HostDir>,
    ) -> Result<Vec<u8>, WriteError> {
        let size = file.size();
        match file.host()? {
            Some(h) => {
                let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
                if !dir.as_ref().is_some_and(|d| d.holds(&h.path)) {
                    let here = file.host_dir().map(Path::as_os_str);
                    let shared = next.is_some_and(|n| n.host_dir().map(Path::as_os_str) == here);
                    // A directory that cannot be opened: the file is opened by its path,
                    // which reports what is wrong with it.
                    *dir = if shared { h.path.open_dir().ok() } else { None };
                }
                h.read_whole_in(dir.as_ref(), &mut bytes)?;
                Ok(bytes)
            }
            None => {
                let mut r = Source::open(file)?;
                let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
                r.read_exact(&mut bytes)?;
                r.finish()?;
                Ok(bytes)
            }
        }
    }

    /// Reads the next `buf.len()` bytes.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), WriteError> {
        match self {
            Source::Host(r) => Ok(r.read_exact(buf)?),
            Source::Bytes { bytes, size, pos } => {
                let from = usize::try_from(*pos).unwrap_or(usize::MAX);
                let to = from.saturating_add(buf.len());
                match bytes.get(from..to) {
                    Some(b) => buf.copy_from_slice(b),
                    None => {
                        return Err(WriteError::FileChanged {
                            path: in_memory(),
                            expected: *size,
                            found: bytes.len() as u64,
                        })
                    }
                }
                *pos += buf.len() as u64;
                Ok(())
            }
        }
    }

    /// Whether the next `len` bytes are a hole the file system knows about (`SEEK_DATA`
    /// inside the recorded size), so the block can be recorded as sparse without reading
    /// it; then they are skipped. Sources without hole information answer false and the
    /// block is read and checked for zeros instead; the output is the same either way.
    fn skip_hole(&mut self, len: u64) -> Result<bool, WriteError> {
        match self {
            Source::Host(r) => Ok(r.skip_hole(len)?),
            Source::Bytes { .. } => Ok(false),
        }
    }

    /// Ends the read: fails when the source is not (or no longer) its recorded size.
    fn finish(self) -> Result<(), WriteError> {
        match self {
            Source::Host(r) => Ok(r.finish()?),
            Source::Bytes { bytes, size, .. } if bytes.len() as u64 != size => {
                Err(WriteError::FileChanged { path: in_memory(), expected: size, found: bytes.len() as u64 })
            }
            Source::Bytes { .. } => Ok(()),
        }
    }
}

fn in_memory() -> std::path::PathBuf {
    std::path::PathBuf::from("<in-memory file>")
}

const CHUNK: usize = 256 << 10;

fn hash_file(file: FileRef<'_>) -> Result<[u8; 32], WriteError> {
    let size = file.size();
    let mut r = Source::open(file)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(CHUNK as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        h.update(&buf[..n]);
        done += n as u64;
    }
    r.finish()?;
    Ok(h.finalize().into())
}

/// Whether two files of the same size have the same bytes.
fn same_bytes(a: FileRef<'_>, b: FileRef<'_>) -> Result<bool, WriteError> {
    let size = a.size();
    let mut ra = Source::open(a)?;
    let mut rb = Source::open(b)?;
    let mut ba = vec![0u8; CHUNK];
    let mut bb = vec![0u8; CHUNK];
    let mut done = 0u64;
    let mut same = true;
    while done < size {
        let n = (size - done).min(CHUNK as u64) as usize;
        ra.read_exact(&mut ba[..n])?;
        rb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            same = false;
            break;
        }
        done += n as u64;
    }
    ra.finish()?;
    rb.finish()?;
    Ok(same)
}

/// What a compressed block belongs to.
#[derive(Clone, Copy)]
enum Target {
    /// Block of a file (file-list index).
    File(usize),
    /// A fragment block (fragment index).
    Fragment,
}

/// A compressed block as it will be stored.
enum BlockOut {
    Sparse,
    Stored(Vec<u8>),
    Packed(Vec<u8>),
}

type Arrival = (u64, Result<BlockOut, WriteError>);

/// The ordered, bounded compression pipeline: blocks are compressed on the pool, at most
/// `window` in flight, and written in submission order.
struct Pipeline<'p> {
    pool: &'p rayon::ThreadPool,
    /// Where compressed blocks are looked up and stored, when the build has a cache.
    cache: Option<Arc<BlockCache>>,
    /// Told the input length of each block written (and of each small duplicate skipped).
    observer: &'p mut dyn Observer,
    compression: Compression,
    block_size: u32,
    window: usize,
    tx: Option<mpsc::Sender<Arrival>>,
    rx: Option<mpsc::Receiver<Arrival>>,
    next_seq: u64,
    in_flight: VecDeque<(u64, Target, usize)>,
    arrived: BTreeMap<u64, Result<BlockOut, WriteError>>,
    /// (start, size word) of each fragment block written so far or in flight.
    fragments: Vec<(u64, u32)>,
    /// Fragments retired (written) so far.
    fragments_done: usize,
    frag_buf: Vec<u8>,
}

impl Pipeline<'_> {
    fn submit(
        &mut self,
        data: Vec<u8>,
        target: Target,
        ctx: &mut WriteCtx<'_, '_>,
    ) -> Result<(), WriteError> {
        self.submit_block(data, target, None, ctx)
    }

    /// Submits a block; `hole` is the length of a block known to be a hole (then `data` is empty).
    fn submit_block(
        &mut self,
        data: Vec<u8>,
        target: Target,
        hole: Option<usize>,
        ctx: &mut WriteCtx<'_, '_>,
    ) -> Result<(), WriteError> {
        let known_hole = hole.is_some();
        let hole_len = hole.unwrap_or(0);
        while self.in_flight.len() >= self.window {
            self.retire_one(ctx)?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let tx = self.tx.clone();
        let compression = self.compression;
        let block_size = self.block_size;
        let cache = self.cache.clone();
        let may_be_sparse = matches!(target, Target::File(_));
        let len = if known_hole { hole_len } else { data.len() };
        self.pool.spawn(move || {
            let out = if known_hole || (may_be_sparse && is_zero(&data)) {
                Ok(BlockOut::Sparse)
            } else {
                let compressed = match &cache {
                    Some(c) => c.compress(&data),
                    None => compress_block(&data, compression, block_size),
                };
                compressed.map(|c| match c {
                    Compressed::Packed(p) => BlockOut::Packed(p),
                    Compressed::Stored => BlockOut::Stored(data),
                })
            };
            if let Some(tx) = tx {
                // The receiver only goes away when the writer has already failed.
                let _ = tx.send((seq, out));
            }
        });
        self.in_flight.push_back((seq, target, len));
        Ok(())
    }

    fn retire_one(&mut self, ctx: &mut WriteCtx<'_, '_>) -> Result<(), WriteError> {
        let Some((seq, target, len)) = self.in_flight.pop_front() else { return Ok(()) };
        let out = loop {
            if let Some(r) = self.arrived.remove(&seq) {
                break r;
            }
            let rx = self
                .rx
                .as_ref()
                .ok_or(WriteError::Compress { compressor: "pipeline", message: "closed".into() })?;
            let (s, r) = rx.recv().map_err(|_| WriteError::Compress {
                compressor: self.compression.name(),
                message: "a compression thread died".into(),
            })?;
            self.arrived.insert(s, r);
        }?;
        self.observer.block(len as u64);
        let pos = ctx.sink.pos;
        let word = match out {
            BlockOut::Sparse => {
                ctx.summary.sparse_blocks += 1;
                0
            }
            BlockOut::Stored(b) => {
                ctx.sink.write(&b)?;
                ctx.summary.stored_raw_blocks += 1;
                b.len() as u32 | DATA_UNCOMPRESSED
            }
            BlockOut::Packed(b) => {
                ctx.sink.write(&b)?;
                b.len() as u32
            }
        };
        // Fault point: a kill here has written some of the data blocks.
        isoforge_host::fault::point("squashfs-block");
        match target {
            Target::File(k) => {
                if word != 0 {
                    ctx.summary.data_blocks += 1;
                }
                if let Some(l) = ctx.placement.layout_mut(k) {
                    if l.blocks.is_empty() {
                        l.start_block = pos;
                    }
                    if word == 0 {
                        l.sparse += len as u64;
                    }
                    l.blocks.push(word);
                }
            }
            Target::Fragment => {
                // Fragments are retired in the order they were closed.
                if let Some(f) = self.fragments.get_mut(self.fragments_done) {
                    *f = (pos, word);
                }
                self.fragments_done += 1;
            }
        }
        Ok(())
    }

    fn drain_all(
        &mut self,
        sink: &mut Sink<'_>,
        placement: &mut Placements,
        summary: &mut Summary,
    ) -> Result<(), WriteError> {
        let mut ctx = WriteCtx { sink, placement, summary };
        while !self.in_flight.is_empty() {
            self.retire_one(&mut ctx)?;
        }
        Ok(())
    }

    fn close_fragment(
        &mut self,
        sink: &mut Sink<'_>,
        placement: &mut Placements,
        summary: &mut Summary,
    ) -> Result<(), WriteError> {
        if self.frag_buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.frag_buf, Vec::with_capacity(self.block_size as usize));
        self.fragments.push((0, u32::MAX));
        let mut ctx = WriteCtx { sink, placement, summary };
        self.submit(data, Target::Fragment, &mut ctx)
    }

    /// Puts a tail into the current fragment block; returns (fragment index, offset).
    fn add_tail(
        &mut self,
        tail: &[u8],
        sink: &mut Sink<'_>,
        placement: &mut Placements,
        summary: &mut Summary,
    ) -> Result<(u32, u32), WriteError> {
        if self.frag_buf.len() + tail.len() > self.block_size as usize {
            self.close_fragment(sink, placement, summary)?;
        }
        let offset = self.frag_buf.len() as u32;
        self.frag_buf.extend_from_slice(tail);
        let index = u32::try_from(self.fragments.len()).map_err(|_| WriteError::Overflow {
            field: "superblock.fragments",
            value: self.fragments.len() as u64,
        })?;
        Ok((index, offset))
    }

    #[allow(clippy::too_many_arguments)]
    fn add_file(
        &mut self,
        k: usize,
        file: FileRef<'_>,
        always_fragments: bool,
        sink: &mut Sink<'_>,
        placement: &mut Placements,
        summary: &mut Summary,
    ) -> Result<(), WriteError> {
        let bs = u64::from(self.block_size);
        let size = file.size();
        let mut r = Source::open(file)?;
        let full_blocks = size / bs;
        let tail = size % bs;
        let tail_in_fragment = tail > 0 && (size < bs || always_fragments);
        let block_jobs = if tail_in_fragment { full_blocks } else { size.div_ceil(bs) };
        let mut done = 0u64;
        for _ in 0..block_jobs {
            let n = (size - done).min(bs) as usize;
            let mut ctx = WriteCtx { sink: &mut *sink, placement: &mut *placement, summary: &mut *summary };
            if r.skip_hole(n as u64)? {
                done += n as u64;
                self.submit_block(Vec::new(), Target::File(k), Some(n), &mut ctx)?;
                continue;
            }
            let mut buf = vec![0u8; n];
            r.read_exact(&mut buf)?;
            done += n as u64;
            self.submit(buf, Target::File(k), &mut ctx)?;
        }
        if tail_in_fragment {
            let mut buf = vec![0u8; tail as usize];
            r.read_exact(&mut buf)?;
            let (index, offset) = self.add_tail(&buf, sink, placement, summary)?;
            if let Some(l) = placement.layout_mut(k) {
                l.fragment = index;
                l.frag_offset = offset;
                if block_jobs == 0 {
                    l.start_block = 0;
                }
            }
        }
        r.finish()
    }
}

struct WriteCtx<'s, 'o> {
    sink: &'s mut Sink<'o>,
    placement: &'s mut Placements,
    summary: &'s mut Summary,
}

static ZEROS: [u8; 65536] = [0; 65536];

fn is_zero(b: &[u8]) -> bool {
    b.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Writes a table of fixed-size entries as metadata blocks followed by the u64 index of their
/// positions (the fragment, export and id tables). Returns the index's position.
fn write_lookup_table(
    sink: &mut Sink<'_>,
    entries: &[u8],
    compression: Compression,
    block_size: u32,
) -> Result<u64, WriteError> {
    let mut table = LookupTable::new(compression, block_size);
    table.push(entries)?;
    table.write(sink)
}

/// A table of fixed-size entries (the fragment, export and id tables) as it is built: one
/// [`MetadataWriter`] compresses each 8 KiB block once it is full (the export table of a
/// million inodes is 8 MiB raw, about 1.4 MiB compressed), and [`LookupTable::write`] writes
/// the blocks followed by the u64 index of their positions.
struct LookupTable {
    table: MetadataWriter,
    /// Where each metadata block starts in the table.
    starts: Vec<u64>,
}

impl LookupTable {
    fn new(compression: Compression, block_size: u32) -> LookupTable {
        LookupTable { table: MetadataWriter::new(compression, block_size), starts: Vec::new() }
    }

    /// Appends entries.
    fn push(&mut self, mut bytes: &[u8]) -> Result<(), WriteError> {
        while !bytes.is_empty() {
            let at = self.table.position();
            if at.offset == 0 {
                self.starts.push(at.block);
            }
            let n = (METADATA_SIZE - usize::from(at.offset)).min(bytes.len());
            self.table.write(&bytes[..n])?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Writes the blocks, then their index; returns the index's position.
    fn write(self, sink: &mut Sink<'_>) -> Result<u64, WriteError> {
        let (blocks, _) = self.table.finish()?;
        let start = sink.pos;
        sink.write(&blocks)?;
        let index = sink.pos;
        for s in self.starts {
            sink.write(&(start + s).to_le_bytes())?;
        }
        Ok(index)
    }
}

/// The export table (inode references by inode number), built as the inodes are written:
/// they are written in inode-number order, as [`number_inodes`] and [`write_dir_tree`] walk
/// the tree alike.
struct Export {
    /// `None` when the image has no export table.
    table: Option<LookupTable>,
    /// The last inode number added.
    last: u32,
}

impl Export {
    fn add(&mut self, inode_number: u32, at: crate::metadata::MetaRef) -> Result<(), WriteError> {
        debug_assert_eq!(Some(inode_number), self.last.checked_add(1), "inodes are written in number order");
        self.last = inode_number;
        match &mut self.table {
            Some(t) => t.push(&at.to_inode_ref().to_le_bytes()),
            None => Ok(()),
        }
    }
}

/// What [`write_dir_tree`] writes into: the inode table (its blocks go into `sink` as they
/// fill, the image's next bytes), the directory table and the export table.
struct Tables<'s, 'o> {
    inodes: MetadataWriter,
    dirs: MetadataWriter,
    export: Export,
    sink: &'s mut Sink<'o>,
}

struct MetaCtx<'a, 'b> {
    flat: &'a Plan<'b>,
    placement: &'a Placements,
    id_index: &'a BTreeMap<u32, u16>,
}

fn base_inode(ctx: &MetaCtx<'_, '_>, i: usize) -> Result<BaseInode, WriteError> {
    let m: &Meta = ctx.flat.node(i).meta();
    let id = |v: u32| {
        ctx.id_index.get(&v).copied().ok_or(WriteError::Overflow { field: "id table", value: u64::from(v) })
    };
    Ok(BaseInode {
        inode_type: U16::new(0),
        mode: U16::new(m.mode & 0o7777),
        uid: U16::new(id(m.uid)?),
        guid: U16::new(id(m.gid)?),
        mtime: U32::new(m.mtime),
        inode_number: U32::new(ctx.flat[i].inode_number),
    })
}

/// Writes the inodes of `dir`'s children (after recursing into its subdirectories) and then
/// its listing; returns the listing for `dir`'s own inode, which its parent writes.
fn write_dir_tree(
    ctx: &MetaCtx<'_, '_>,
    dir: usize,
    tables: &mut Tables<'_, '_>,
) -> Result<crate::dir::Listing, WriteError> {
    let children = children(ctx.flat, dir);
    let mut sub_listings = BTreeMap::new();
    for c in children.clone() {
        if matches!(ctx.flat.node(c), InputNode::Dir { .. }) {
            sub_listings.insert(c, write_dir_tree(ctx, c, tables)?);
        }
    }
    let mut entries = Vec::with_capacity(children.len());
    for c in children {
        let pos = tables.inodes.position();
        let base = base_inode(ctx, c)?;
        let (bytes, entry_type) = match ctx.flat.node(c) {
            InputNode::Dir { .. } => {
                let l = &sub_listings[&c];
                let nlink = 2 + subdir_count(ctx.flat, c);
                let parent = ctx.flat[ctx.flat[c].parent as usize].inode_number;
                (
                    encode_dir(
                        base,
                        block32(l.start.block)?,
                        l.start.offset,
                        l.file_size,
                        nlink,
                        parent,
                        &l.index,
                    ),
                    kind::DIR,
                )
            }
            InputNode::File { .. } => {
                let mut k = ctx.flat[c].slot as usize;
                let mut hops = 0;
                while let Place::Alias(o) = ctx.placement.get(k) {
                    k = o as usize;
                    hops += 1;
                    if hops > ctx.placement.len() {
                        break;
                    }
                }
                let layout = match ctx.placement.get(k) {
                    Place::Stored(i) => ctx.placement.layouts.get(i as usize).cloned().unwrap_or_default(),
                    Place::Fragment(fragment, frag_offset) => FileLayout {
                        // An alias has its original's bytes, so its size.
                        file_size: file_data(ctx.flat, c).size(),
                        fragment,
                        frag_offset,
                        ..FileLayout::default()
                    },
                    _ => FileLayout { fragment: INVALID, ..FileLayout::default() },
                };
                (encode_file(base, &layout), kind::REG)
            }
            InputNode::Symlink { target, .. } => (encode_symlink(base, target), kind::SYMLINK),
        };
        tables.inodes.write(&bytes)?;
        tables.export.add(ctx.flat[c].inode_number, pos)?;
        entries.push(Entry {
            name: name_of(ctx.flat, c).to_vec(),
            inode: pos,
            inode_number: ctx.flat[c].inode_number,
            entry_type,
        });
    }
    let sink = &mut *tables.sink;
    tables.inodes.write_out(|b| sink.write(b))?;
    write_listing(&mut tables.dirs, &entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{Archive, EntryKind};
    use std::collections::BTreeMap;
    use std::io::Cursor;

    fn meta(mode: u16) -> Meta {
        Meta { mode, uid: 0, gid: 0, mtime: 1 }
    }

    fn sample() -> InputNode {
        let mut sub = BTreeMap::new();
        sub.insert(b"small".to_vec(), InputNode::bytes_file(b"hello".to_vec(), meta(0o444)));
        sub.insert(b"same".to_vec(), InputNode::bytes_file(b"hello".to_vec(), meta(0o444)));
        let mut big = vec![7u8; 3 * 4096 + 10];
        big[4096..8192].fill(0);
        sub.insert(b"big".to_vec(), InputNode::bytes_file(big, meta(0o555)));
        sub.insert(b"empty".to_vec(), InputNode::bytes_file(Vec::new(), meta(0o444)));
        let mut root = BTreeMap::new();
        root.insert(b"d".to_vec(), InputNode::Dir { entries: sub.into(), meta: meta(0o555) });
        root.insert(b"l".to_vec(), InputNode::Symlink { target: b"d/small".to_vec(), meta: meta(0o777) });
        InputNode::Dir { entries: root.into(), meta: meta(0o755) }
    }

    fn options(threads: usize) -> Options {
        Options {
            compression: Compression::Zstd { level: 3 },
            block_size: 4096,
            threads,
            ..Options::default()
        }
    }

    #[test]
    fn round_trip_in_memory() {
        let mut cur = Cursor::new(Vec::new());
        let s = write(&sample(), &options(2), &mut cur).unwrap();
        assert_eq!((s.inodes, s.dirs, s.files, s.symlinks, s.duplicate_files), (7, 2, 4, 1, 1));
        assert_eq!(s.sparse_blocks, 1);
        assert_eq!(s.fragment_blocks, 1);
        let bytes = cur.into_inner();
        assert_eq!(bytes.len() as u64, s.total_size);
        let mut a = Archive::open(Cursor::new(bytes)).unwrap();
        assert!(a.verify().unwrap().is_empty());
        let root = a.root().unwrap();
        assert_eq!(root.inode_number, 7, "the root is the last inode");
        let big = a.lookup(b"d/big").unwrap();
        let EntryKind::File { layout, extended } = &big.kind else { panic!() };
        assert!(*extended, "sparse files use the extended inode");
        assert_eq!(layout.blocks.len(), 4);
        assert_eq!(layout.blocks[1], 0);
        let mut want = vec![7u8; 3 * 4096 + 10];
        want[4096..8192].fill(0);
        assert_eq!(a.read_to_vec(&big).unwrap(), want);
        let small = a.lookup(b"d/small").unwrap();
        let same = a.lookup(b"d/same").unwrap();
        assert_eq!(a.read_to_vec(&same).unwrap(), b"hello");
        assert_eq!(small.kind, same.kind, "duplicates share data");
        assert_ne!(small.inode_number, same.inode_number);
        assert_eq!(a.read_to_vec(&a.lookup(b"d/empty").unwrap()).unwrap(), b"");
    }

    /// Issue 13: the map of small files seen finds every key once merged, and only those.
    #[test]
    fn seen_files_survive_merges() {
        let key = |i: u32| -> SeenKey {
            (i.wrapping_mul(2_654_435_761).to_be_bytes().repeat(2).try_into().unwrap(), i % 7)
        };
        let mut seen = Seen::with_capacity(0);
        let n = 3 * SEEN_MERGE as u32 + 5;
        for i in 0..n {
            assert_eq!(seen.get(&key(i)), None);
            seen.insert(key(i), i);
        }
        assert_eq!(seen.sorted.len(), 3 * SEEN_MERGE);
        assert!(seen.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        for i in 0..n {
            assert_eq!(seen.get(&key(i)), Some(i));
        }
        assert_eq!(seen.get(&([0; 8], 99)), None);
        assert_eq!(seen.get(&key(n)), None);
    }

    #[test]
    fn thread_count_does_not_change_bytes() {
        let mut one = Cursor::new(Vec::new());
        let mut four = Cursor::new(Vec::new());
        write(&sample(), &options(1), &mut one).unwrap();
        write(&sample(), &options(4), &mut four).unwrap();
        assert_eq!(one.into_inner(), four.into_inner());
    }

    #[test]
    fn siblings_get_consecutive_inode_numbers() {
        let root = sample();
        let mut flat = flatten(&root).unwrap();
        number_inodes(&mut flat, 0, &mut 0);
        let d = children(&flat, 0).start;
        assert_eq!(name_of(&flat, d), b"d");
        let nums: Vec<u32> = children(&flat, d).map(|c| flat[c].inode_number).collect();
        assert_eq!(nums, vec![1, 2, 3, 4]);
        assert_eq!(flat[0].inode_number, 7);
    }

    /// The duplicate search on host files: hard links, files alike in their first 4 KiB but
    /// not after, groups of more than two, and a hard link of a file that is itself a
    /// duplicate (it must point at the first file with those bytes).
    #[test]
    fn duplicates_on_host_files() {
        let dir = isoforge_testing::tempdir();
        let size = 3 * PREFIX as usize + 5;
        let base: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut other = base.clone();
        other[size - 1] ^= 1;
        let add = |name: &str, bytes: Option<&[u8]>, link_to: Option<&str>| {
            let p = dir.path().join(name);
            match (bytes, link_to) {
                (Some(b), _) => std::fs::write(&p, b).unwrap(),
                (None, Some(t)) => std::fs::hard_link(dir.path().join(t), &p).unwrap(),
                (None, None) => unreachable!(),
            }
        };
        add("a", Some(&base), None); // first of its bytes
        add("b", Some(&other), None); // same prefix, differs at the end
        add("c", Some(&base), None); // copy of a (third of the group: hashed whole)
        add("d", None, Some("c")); // hard link of c, itself a duplicate of a
        add("e", Some(&other), None); // copy of b
                                      // Scanned once all exist (a new hard link changes the ctime of the file it links).
        let mut files = BTreeMap::new();
        for name in ["a", "b", "c", "d", "e"] {
            let host = isoforge_host::snapshot::HostFile::scan(&dir.path().join(name)).unwrap();
            let node = InputNode::File { data: FileData::Host(Box::new(host)), meta: meta(0o444) };
            files.insert(name.as_bytes().to_vec(), node);
        }
        let root = InputNode::Dir { entries: files.into(), meta: meta(0o755) };
        let mut flat = flatten(&root).unwrap();
        number_inodes(&mut flat, 0, &mut 0);
        let mut list = Vec::new();
        file_order(&mut flat, 0, &mut list);
        let pairs = find_duplicates(&flat, &list, 0).unwrap();
        // File-list order is name order: a=0, b=1, c=2, d=3, e=4.
        assert_eq!(pairs, vec![(2, 0), (3, 0), (4, 1)]);
        for threads in [1, 3] {
            let o = Options { threads, ..options(1) };
            let mut cur = Cursor::new(Vec::new());
            let s = write(&root, &o, &mut cur).unwrap();
            assert_eq!(s.duplicate_files, 3);
            let mut a = Archive::open(Cursor::new(cur.into_inner())).unwrap();
            assert_eq!(a.read_to_vec(&a.lookup(b"d").unwrap()).unwrap(), base);
            assert_eq!(a.read_to_vec(&a.lookup(b"e").unwrap()).unwrap(), other);
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut entries = BTreeMap::new();
        entries.insert(b"a/b".to_vec(), InputNode::bytes_file(b"x".to_vec(), meta(0o444)));
        let e = write(
            &InputNode::Dir { entries: entries.into(), meta: meta(0o755) },
            &options(1),
            &mut Cursor::new(Vec::new()),
        );
        assert!(matches!(e, Err(WriteError::BadName { .. })));
        let mut entries = BTreeMap::new();
        entries.insert(vec![b'n'; 257], InputNode::bytes_file(b"x".to_vec(), meta(0o444)));
        let e = write(
            &InputNode::Dir { entries: entries.into(), meta: meta(0o755) },
            &options(1),
            &mut Cursor::new(Vec::new()),
        );
        assert!(matches!(e, Err(WriteError::BadName { .. })));
        // A scanned host file moved out of its scanned directory: which file it is is unknown.
        let d = isoforge_testing::tempdir();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        let InputNode::Dir { entries: scanned, .. } = crate::tree::scan(d.path()).unwrap() else { panic!() };
        let mut entries = BTreeMap::new();
        entries.insert(b"f".to_vec(), scanned[b"f"].clone());
        let e = write(
            &InputNode::Dir { entries: entries.into(), meta: meta(0o755) },
            &options(1),
            &mut Cursor::new(Vec::new()),
        );
        assert!(matches!(&e, Err(WriteError::NoHostDir { name }) if name == "f"), "{e:?}");
        let o = Options { block_size: 3000, ..options(1) };
        assert!(matches!(
            write(&sample(), &o, &mut Cursor::new(Vec::new())),
            Err(WriteError::BadOption { .. })
        ));
    }
}
