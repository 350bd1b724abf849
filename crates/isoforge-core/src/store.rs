//! The store stage: a closure becomes the squashfs input tree of `/nix-store.squashfs`.
//!
//! The closure is read ([`crate::closure`]), checked on the host, its `nix-path-registration`
//! taken from the input (closureInfo's `registration`, or `--registration`) or generated, and
//! laid out as nixpkgs' `mksquashfs ... -keep-as-directory -all-root` does: one top-level
//! directory per store path named by its basename, the registration at the root. Metadata is
//! Nix's canonical form unless `keep_metadata`.

use std::path::PathBuf;

use isoforge_squashfs::cache::BlockCache;
use isoforge_squashfs::{closure_tree_scanned, InputNode};
use thiserror::Error;

use crate::closure::registration::{registration_scanned, RegistrationOptions, ScannedClosure};
use crate::closure::{Closure, ClosureError, ClosureOptions};
use crate::progress::{phase, report_stale, NoProgress, Phase, Progress};
use isoforge_formats::time::{Epoch, EpochError};

/// Default path of the store squashfs in the ISO.
pub const DEFAULT_SQUASHFS_PATH: &str = "nix-store.squashfs";

/// Errors of the store stage.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The epoch is outside squashfs's unsigned 32-bit seconds.
    #[error(transparent)]
    Epoch(#[from] EpochError),
    /// The closure could not be read or does not match the host.
    #[error(transparent)]
    Closure(#[from] ClosureError),
    /// A registration file could not be read.
    #[error("cannot read registration {path}: {source}")]
    Registration {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The squashfs input tree could not be built or written.
    #[error(transparent)]
    Squashfs(#[from] isoforge_squashfs::WriteError),
    /// The output file could not be created or committed.
    #[error(transparent)]
    Output(#[from] isoforge_host::output::OutputError),
}

/// What the store squashfs is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// A file of store paths, a closureInfo directory or an exportReferencesGraph file.
    pub closure: PathBuf,
    /// The store directory and where it is on the host.
    pub closure_options: ClosureOptions,
    /// A registration to use as is (otherwise closureInfo's, else generated).
    pub registration: Option<PathBuf>,
    /// Path of the squashfs in the ISO.
    pub image_path: String,
    /// Compression, block size, threads.
    pub squashfs: isoforge_squashfs::Options,
    /// Copy host modes and mtimes instead of Nix's canonical metadata.
    pub keep_metadata: bool,
    /// A block cache directory (`--cache`, `ISOFORGE_CACHE`): compressed blocks are looked up
    /// there before compressing and stored after. The image does not depend on it.
    pub cache: Option<PathBuf>,
}

impl StoreSpec {
    /// A spec with the defaults: `/nix/store` under `/`, nixpkgs' squashfs settings.
    pub fn new(closure: PathBuf) -> StoreSpec {
        StoreSpec {
            closure,
            closure_options: ClosureOptions::default(),
            registration: None,
            image_path: DEFAULT_SQUASHFS_PATH.to_string(),
            squashfs: isoforge_squashfs::Options::default(),
            keep_metadata: false,
            cache: None,
        }
    }
}

/// The squashfs input, ready to write.
#[derive(Debug)]
pub struct PreparedStore {
    /// The input tree (store paths and `nix-path-registration`).
    pub tree: InputNode,
    /// Number of store paths.
    pub paths: usize,
    /// An upper bound of the squashfs size, for planning its directory records.
    pub upper_bound: u64,
    /// Bytes of the files in the tree (the compressor's input, duplicates counted).
    pub file_bytes: u64,
    /// The block cache directory, if the build uses one.
    pub cache: Option<PathBuf>,
}

impl PreparedStore {
    /// Writes the squashfs into `out` at its current position ([`isoforge_squashfs::write`]),
    /// reporting [`Phase::Duplicates`], [`Phase::Compress`] and [`Phase::Tables`] to
    /// `progress`, through the block cache when there is one; [`isoforge_squashfs::Summary::cache`] says
    /// what the cache did. The bytes do not depend on the cache.
    pub(crate) fn write_squashfs<W: std::io::Write + std::io::Seek>(
        &self,
        options: &isoforge_squashfs::Options,
        progress: &dyn Progress,
        out: &mut W,
    ) -> Result<isoforge_squashfs::Summary, isoforge_squashfs::WriteError> {
        let cache = self
            .cache
            .as_ref()
            .map(|dir| std::sync::Arc::new(BlockCache::open(dir, options.compression, options.block_size)));
        let mut observer = StageReporter { progress, cache: cache.clone(), current: None };
        let result = isoforge_squashfs::write_cached(&self.tree, options, cache, &mut observer, out);
        if let Some(p) = observer.current {
            progress.phase_end(p);
        }
        result
    }
}

/// Reports the squashfs writer's stages as [`Phase::Duplicates`], [`Phase::Compress`] (a bar
/// over the input bytes, with the cache's hit share) and [`Phase::Tables`].
struct StageReporter<'a> {
    progress: &'a dyn Progress,
    cache: Option<std::sync::Arc<BlockCache>>,
    current: Option<Phase>,
}

impl isoforge_squashfs::Observer for StageReporter<'_> {
    fn stage(&mut self, stage: isoforge_squashfs::Stage) {
        let (phase, input) = match stage {
            isoforge_squashfs::Stage::Duplicates => (Phase::Duplicates, None),
            isoforge_squashfs::Stage::Data(n) => (Phase::Compress, Some(n)),
            _ => (Phase::Tables, None),
        };
        if let Some(p) = self.current.replace(phase) {
            self.progress.phase_end(p);
        }
        self.progress.phase_start(phase, input);
    }

    fn block(&mut self, n: u64) {
        let hits = self.cache.as_ref().map(|c| {
            let c = c.counters();
            (c.hits, c.lookups)
        });
        self.progress.input_read(n, hits);
    }
}

/// Reads the closure and builds the squashfs input tree. Scans every store path once; when
/// the registration has to be generated, reads every file once to hash it, from that scan, so
/// the registration describes exactly the files the squashfs is written from (a file that
/// changes in between is an error when it is read again, not a mismatch in the image).
pub fn prepare(spec: &StoreSpec, epoch: Epoch) -> Result<PreparedStore, StoreError> {
    prepare_with(spec, epoch, &NoProgress)
}

/// [`prepare`], reporting the scan and registration phases to `progress`.
pub(crate) fn prepare_with(
    spec: &StoreSpec,
    epoch: Epoch,
    progress: &dyn Progress,
) -> Result<PreparedStore, StoreError> {
    let stamp = epoch.squashfs_seconds()?;
    let closure = phase(progress, Phase::Scan, None, || -> Result<Closure, ClosureError> {
        let closure = Closure::load(&spec.closure, &spec.closure_options)?;
        closure.check_host()?;
        Ok(closure)
    })?;
    let reg_file = match &spec.registration {
        Some(f) => {
            closure.check_registration(f)?;
            Some(f.clone())
        }
        None => closure.registration_file().map(PathBuf::from),
    };
    let scanned = phase(progress, Phase::Scan, None, || {
        ScannedClosure::scan(&closure, spec.keep_metadata, spec.squashfs.threads)
    })?;
    let reg = match reg_file {
        Some(f) => std::fs::read(&f).map_err(|source| StoreError::Registration { path: f, source })?,
        None => phase(progress, Phase::Registration, None, || {
            registration_scanned(&scanned, &RegistrationOptions::new().threads(spec.squashfs.threads))
        })?,
    };
    let options = isoforge_squashfs::ClosureOptions { epoch: stamp, keep_metadata: spec.keep_metadata };
    let entries = scanned.into_entries();
    let paths = entries.len();
    let tree = closure_tree_scanned(entries, &reg, options)?;
    let upper_bound = upper_bound(&tree, spec.squashfs.block_size);
    let file_bytes = file_bytes(&tree);
    Ok(PreparedStore { tree, paths, upper_bound, file_bytes, cache: spec.cache.clone() })
}

/// Sum of the sizes of the files in `tree`.
pub fn file_bytes(tree: &InputNode) -> u64 {
    match tree {
        InputNode::Dir { entries, .. } => entries.values().map(file_bytes).sum(),
        InputNode::File { data, .. } => data.size(),
        InputNode::Symlink { .. } => 0,
    }
}

/// A size no squashfs of `tree` can exceed: every byte of every file stored raw, generous
/// metadata per entry (inode, block list, directory entry, export slot) and per table, padded
/// to 4 KiB. Only the number of 4 GiB extents of the ISO record depends on it.
pub fn upper_bound(tree: &InputNode, block_size: u32) -> u64 {
    fn walk(node: &InputNode, name_len: u64, block: u64, total: &mut u64) {
        // Inode (≤ 64 bytes), directory entry (8 + name), export entry, metadata framing.
        *total += 96 + name_len;
        match node {
            InputNode::Dir { entries, .. } => {
                *total += 64;
                for (name, child) in entries {
                    walk(child, name.len() as u64, block, total);
                }
            }
            InputNode::File { data, .. } => {
                let size = data.size();
                *total += size + 4 * size.div_ceil(block) + 16;
            }
            InputNode::Symlink { target, .. } => *total += target.len() as u64,
        }
    }
    let mut total = 1 << 20;
    walk(tree, 0, u64::from(block_size.max(4096)), &mut total);
    total.div_ceil(4096) * 4096
}

/// Builds the store squashfs alone into a file (`isoforge squashfs`) through an
/// [`isoforge_host::output::AtomicOutput`]: the file gets its name only when complete, and a
/// failed or killed build leaves `path` as it was. Its `mkfs_time` is the epoch.
pub fn build_squashfs(
    spec: &StoreSpec,
    epoch: Epoch,
    path: &std::path::Path,
) -> Result<isoforge_squashfs::Summary, StoreError> {
    build_squashfs_with(spec, epoch, path, &NoProgress)
}

/// [`build_squashfs`], reporting the scan, registration and compress phases and the stale
/// temporary files removed beside `path` to `progress`.
pub fn build_squashfs_with(
    spec: &StoreSpec,
    epoch: Epoch,
    path: &std::path::Path,
    progress: &dyn Progress,
) -> Result<isoforge_squashfs::Summary, StoreError> {
    let prepared = prepare_with(spec, epoch, progress)?;
    let mut options = spec.squashfs;
    options.mkfs_time = epoch.squashfs_seconds()?;
    let mut out = isoforge_host::output::AtomicOutput::create(path)?;
    report_stale(progress, &out);
    let summary = prepared.write_squashfs(&options, progress, out.file())?;
    out.commit()?;
    Ok(summary)
}
