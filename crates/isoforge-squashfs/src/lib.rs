//! Parallel, deterministic squashfs 4.0 writer and reader.
//!
//! The writer builds the same kind of image as nixpkgs' `mksquashfs … -no-hardlinks
//! -keep-as-directory -all-root -b 1048576 -comp zstd -Xcompression-level 19`: data and
//! fragment blocks, inode and directory tables (with directory indexes), fragment, export and
//! id tables, in metadata blocks of 8 KiB. Blocks are compressed in parallel on a local rayon
//! pool through a bounded window; the bytes do not depend on the thread count or on the
//! order in which entries were added. The reader parses every table, bounds every allocation
//! and loop, and reports corrupt input as [`ReadError`]s.
//!
//! ```no_run
//! use isoforge_squashfs::{closure_tree, write_to_path, ClosureOptions, Options};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tree = closure_tree(
//!     &[(b"abc-hello".to_vec(), "/nix/store/abc-hello".into())],
//!     b"registration bytes",
//!     ClosureOptions { epoch: 1, keep_metadata: false },
//! )?;
//! let summary = write_to_path(&tree, &Options { mkfs_time: 1, ..Options::default() }, "store.squashfs".as_ref())?;
//! println!("{} bytes", summary.bytes_used);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod cache;
pub mod compress;
pub mod dir;
pub mod error;
pub mod inode;
pub mod metadata;
pub mod read;
pub mod superblock;
pub mod tree;
pub mod write;

pub use compress::{compress_block, Compressed, Compression};
pub use error::{ReadError, WriteError};
pub use read::{Archive, EntryKind, Node};
pub use tree::{
    closure_tree, closure_tree_scanned, scan, ClosureOptions, Entries, FileData, InputNode, Meta,
};
pub use write::{write, write_cached, write_to_path, Observer, Options, Stage, Summary, Unobserved};

/// The squashfs magic number, "hsqs" read as a little-endian `u32` (squashfs 4.0 superblock, offset 0).
pub const SQUASHFS_MAGIC: u32 = superblock::MAGIC;
