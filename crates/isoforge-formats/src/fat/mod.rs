//! FAT12/16/32 image builder for the EFI system partition of a hybrid ISO, and a reader for it.
//!
//! The image is written once from an input [`Node`] directory: a pure planning step
//! ([`FatPlan::new`]) picks the geometry exactly as `mkfs.fat` 4.2 does for a regular file of
//! the same size ([`bpb::Geometry::for_size`]), names every entry (VFAT long names, Linux-style
//! 8.3 aliases), and gives every file and directory a run of consecutive clusters. The write
//! step ([`FatPlan::write`]) then streams the reserved area, both FATs, the root directory and
//! the data area in increasing offset order, reading host files as it goes.
//!
//! Layout choices (see `docs/spec/fat.md`):
//! - clusters are handed out depth-first in name order: a directory, then each of its entries
//!   (a file's data, or a subdirectory and everything under it), so every file is contiguous;
//! - every date is the plan's [`Epoch`]; one outside the DOS range 1980..=2107 is an error
//!   ([`FatError::Epoch`]);
//! - the boot sector, FSInfo sector, FAT head and volume-label entry are those of
//!   `mkfs.fat --invariant -i SERIAL -n LABEL`; with the epoch 1426325213 (mkfs.fat's
//!   `--invariant` time) an empty tree gives a byte-identical image.
//!
//! ```no_run
//! use isoforge_formats::fat::{FatOptions, FatPlan};
//! use isoforge_formats::time::Epoch;
//! let dir = isoforge_formats::tree::scan(std::path::Path::new("esp"))?;
//! let plan = FatPlan::new(&dir, &FatOptions::new(Epoch::NIX_DEFAULT))?;
//! let mut out = std::fs::File::create("efi.img")?;
//! plan.write_to_file(&mut out)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bpb;
pub mod dir_entry;
mod plan;
pub mod read;
pub mod table;
mod write;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::time::Epoch;
use crate::tree::{Node, NodeKind};

pub use bpb::{FatType, Geometry};
pub use plan::FatPlan;
pub use read::{FatVolume, ReadAt};

/// The volume serial NixOS uses for its ISO's EFI image (`mkfs.vfat -i 12345678`); its GRUB
/// configuration finds the ESP by it (`search --fs-uuid 1234-5678`).
pub const DEFAULT_SERIAL: u32 = 0x1234_5678;

/// The volume label NixOS uses for its ISO's EFI image (`mkfs.vfat -n EFIBOOT`).
pub const DEFAULT_LABEL: &str = "EFIBOOT";

/// Errors planning, writing or reading a FAT image. Each names the path, size, field or
/// offset at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FatError {
    /// The epoch is outside the dates FAT directory entries can hold.
    #[error(transparent)]
    Epoch(#[from] crate::time::EpochError),
    /// The size is below what any FAT layout (or `mkfs.fat`) accepts.
    #[error("a FAT image of {size} bytes is too small: at least {min} bytes are needed")]
    ImageTooSmall {
        /// The size asked for.
        size: u64,
        /// The smallest size that could work.
        min: u64,
    },
    /// The size needs more than 2^32 sectors.
    #[error("a FAT image of {size} bytes is too large: at most {max} bytes")]
    ImageTooLarge {
        /// The size asked for.
        size: u64,
        /// The largest size.
        max: u64,
    },
    /// No cluster size gives a valid FAT12/16/32 layout for this size.
    #[error("no FAT layout fits an image of {size} bytes")]
    NoGeometry {
        /// The size asked for.
        size: u64,
    },
    /// A computed BPB field does not fit its width.
    #[error("FAT layout for {size} bytes: {field} {value} does not fit its field")]
    Geometry {
        /// The size asked for.
        size: u64,
        /// The BPB field.
        field: &'static str,
        /// The value computed.
        value: u64,
    },
    /// The tree needs more clusters than the image has.
    #[error(
        "the tree does not fit into a {size}-byte {fat_type} image: it needs {needed} bytes of \
         {cluster_size}-byte clusters, the image has {available}; an image of {suggested} bytes would fit"
    )]
    DoesNotFit {
        /// The image size.
        size: u64,
        /// The FAT type of that size.
        fat_type: FatType,
        /// Bytes of clusters the tree needs.
        needed: u64,
        /// Bytes of clusters the image has.
        available: u64,
        /// The cluster size.
        cluster_size: u64,
        /// The smallest whole-MiB size, from `size` up, that fits.
        suggested: u64,
    },
    /// The fixed FAT12/16 root directory cannot hold the root's entries.
    #[error("the root directory needs {needed} entries but this {fat_type} image has room for {max}")]
    RootDirFull {
        /// 32-byte entries needed (long names take several).
        needed: u64,
        /// `BPB_RootEntCnt`.
        max: u16,
        /// The FAT type.
        fat_type: FatType,
    },
    /// A directory with more than 65536 32-byte entries (fatgen103 6).
    #[error("{path}: {entries} directory entries; FAT allows at most 65536")]
    DirTooLarge {
        /// The image path of the directory.
        path: String,
        /// 32-byte entries needed.
        entries: u64,
    },
    /// The root given to the planner is not a directory.
    #[error("the root of a FAT image must be a directory")]
    RootNotDir,
    /// FAT cannot store symbolic links.
    #[error("{path}: is a symbolic link; FAT cannot store symbolic links")]
    Symlink {
        /// The image path.
        path: String,
    },
    /// A file whose contents a later stage produces.
    #[error("{path}: generated contents (producer {id}) cannot go into a FAT image")]
    Generated {
        /// The image path.
        path: String,
        /// The producer.
        id: u32,
    },
    /// A name FAT cannot store.
    #[error("{path}: {why}")]
    BadName {
        /// The image path.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Two names in one directory equal up to case.
    #[error("{path} and {other} differ only in case; FAT names are case-insensitive")]
    CaseClash {
        /// One image path.
        path: String,
        /// The other.
        other: String,
    },
    /// A file of 4 GiB or more.
    #[error("{path}: {size} bytes; a FAT file holds at most 4294967295 bytes")]
    FileTooLarge {
        /// The image path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// An invalid volume label.
    #[error("invalid FAT volume label {label:?}: {why}")]
    BadLabel {
        /// The label as given.
        label: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A host file could not be read, or changed since it was scanned (see
    /// [`isoforge_host::snapshot`]).
    #[error(transparent)]
    Snapshot(#[from] isoforge_host::snapshot::SnapshotError),
    /// An in-memory file's size is not the size planned.
    #[error("{path}: planned {expected} bytes but found {found} (did it change?)")]
    SizeChanged {
        /// The image path.
        path: PathBuf,
        /// The size planned.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// Writing the image failed.
    #[error("writing the FAT image at byte {offset}: {source}")]
    Write {
        /// Offset being written.
        offset: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// Reading an image failed.
    #[error("reading the FAT image at byte {offset}: {source}")]
    ReadImage {
        /// Offset being read.
        offset: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// An image structure is not what it must be.
    #[error("FAT image byte {offset}: {field}: expected {expected}, found {found}")]
    Corrupt {
        /// Byte offset in the image.
        offset: u64,
        /// The field or structure.
        field: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A path looked up in an image does not exist.
    #[error("{path}: not found in the FAT image")]
    NotFound {
        /// The path looked up.
        path: String,
    },
}

/// Options of a FAT image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatOptions {
    /// Image size in bytes; `None` for [`default_image_size`] (the nixpkgs rule).
    pub size: Option<u64>,
    /// Volume serial number (`BS_VolID`); default [`DEFAULT_SERIAL`].
    pub serial: u32,
    /// Volume label; default [`DEFAULT_LABEL`]. At most 11 printable ASCII characters, not
    /// any of `"*+,./:;<=>?[\]|`; upper-cased; empty means none ("NO NAME").
    pub label: String,
    /// The date of every directory entry.
    pub epoch: Epoch,
}

impl FatOptions {
    /// Defaults: size by the nixpkgs rule, serial 0x12345678, label "EFIBOOT".
    pub fn new(epoch: Epoch) -> FatOptions {
        FatOptions { size: None, serial: DEFAULT_SERIAL, label: DEFAULT_LABEL.to_string(), epoch }
    }
}

impl Default for FatOptions {
    /// [`FatOptions::new`] with [`Epoch::NIX_DEFAULT`] (1980-01-01).
    fn default() -> FatOptions {
        FatOptions::new(Epoch::NIX_DEFAULT)
    }
}

const MIB: u64 = 1024 * 1024;

/// The apparent size nixpkgs' `du --apparent-size` counts for a directory: ext4's 4096 bytes
/// for a directory of one block. Our choice, so that the default size matches a build on ext4.
pub const DIR_APPARENT_SIZE: u64 = 4096;

/// Content size of a tree as `du -s --apparent-size` reports it on ext4: file sizes plus
/// [`DIR_APPARENT_SIZE`] per directory (the root included). Symlinks count their target length.
pub fn content_size(dir: &Node) -> u64 {
    match &dir.kind {
        NodeKind::Dir(d) => DIR_APPARENT_SIZE
            .saturating_add(d.entries.values().map(content_size).fold(0u64, u64::saturating_add)),
        NodeKind::File(f) => f.size,
        NodeKind::Symlink(t) => t.len() as u64,
    }
}

/// The image size nixpkgs' `iso-image.nix` gives its EFI image (`efiImg`):
///
/// ```text
/// usage_size = du -s --block-size=1M --apparent-size  (rounded up to whole MiB) × 1 MiB
/// image_size = ((usage_size × 110 / 100) / 1 MiB + 1) × 1 MiB
/// ```
///
/// that is: the content rounded up to MiB, plus 10 % (integer division), rounded down to MiB,
/// plus 1 MiB. [`content_size`] stands in for `du`.
pub fn default_image_size(dir: &Node) -> u64 {
    let usage = content_size(dir).div_ceil(MIB).saturating_mul(MIB);
    let image = usage.saturating_mul(110) / 100;
    (image / MIB).saturating_add(1).saturating_mul(MIB)
}

#[cfg(test)]
mod tests;
