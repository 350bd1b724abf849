//! Flags shared by `isoforge build` and `isoforge squashfs`: the closure and the squashfs.

use std::path::PathBuf;

use isoforge_core::closure::ClosureOptions;
use isoforge_core::store::{StoreSpec, DEFAULT_SQUASHFS_PATH};
use isoforge_squashfs::Compression;

/// The store closure and how to compress it.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// The closure: a file of store paths (one a line), a closureInfo directory
    /// (`store-paths` + `registration`) or an exportReferencesGraph file.
    #[arg(long = "closure", value_name = "FILE|DIR")]
    pub closure: Option<PathBuf>,
    /// Host directory standing for `/` when reading store paths (`/nix/store/x` is read from
    /// `DIR/nix/store/x`).
    #[arg(long = "store-root", value_name = "DIR", default_value = "/")]
    pub store_root: PathBuf,
    /// The store directory the paths are under.
    #[arg(long = "store-dir", value_name = "DIR", default_value = "/nix/store")]
    pub store_dir: String,
    /// A nix-path-registration to use as is (default: closureInfo's, else generated).
    #[arg(long = "registration", value_name = "FILE")]
    pub registration: Option<PathBuf>,
    /// Squashfs compression: zstd[:LEVEL] (1–22), xz[:bcj], gzip[:LEVEL] (1–9), lz4, none.
    #[arg(long = "compression", value_name = "ALGO[:LEVEL]", default_value = "zstd:19")]
    pub compression: Compression,
    /// Squashfs block size: a power of two from 4K to 1M (bytes, or with K/M).
    #[arg(long = "block-size", value_name = "SIZE", default_value = "1M", value_parser = block_size)]
    pub block_size: u32,
    /// Worker threads for squashfs compression, NAR hashing and the `--out-dir` zstd image: 0
    /// or absent means all available cores. The output does not depend on it.
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Keep host modes and mtimes instead of Nix's canonical metadata.
    #[arg(long = "keep-metadata")]
    pub keep_metadata: bool,
    /// Block cache directory: compressed squashfs blocks are looked up there before compressing
    /// and stored after, so a rebuild compresses only what changed. The image is the same with
    /// any cache, or none. Default: $ISOFORGE_CACHE (empty or unset: no cache).
    #[arg(long = "cache", value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

/// The environment variable naming the block cache when `--cache` is not given.
pub const CACHE_ENV: &str = "ISOFORGE_CACHE";

fn block_size(s: &str) -> Result<u32, String> {
    let bytes = super::fat::parse_size(s)?;
    match u32::try_from(bytes) {
        Ok(b) if b.is_power_of_two() && (4096..=1 << 20).contains(&b) => Ok(b),
        _ => Err(format!("block size {s:?} is not a power of two from 4K to 1M")),
    }
}

impl StoreArgs {
    /// The store spec, when `--closure` is given.
    pub fn spec(&self) -> Option<StoreSpec> {
        let closure = self.closure.clone()?;
        let mut spec = StoreSpec::new(closure);
        spec.closure_options =
            ClosureOptions { store_dir: self.store_dir.clone(), store_root: self.store_root.clone() };
        spec.registration = self.registration.clone();
        spec.image_path = DEFAULT_SQUASHFS_PATH.to_string();
        spec.squashfs.compression = self.compression;
        spec.squashfs.block_size = self.block_size;
        spec.squashfs.threads = self.threads.unwrap_or(0);
        spec.keep_metadata = self.keep_metadata;
        spec.cache = self.cache_dir();
        Some(spec)
    }

    /// The block cache: `--cache`, else `$ISOFORGE_CACHE` when set and not empty.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache
            .clone()
            .or_else(|| std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
    }
}
