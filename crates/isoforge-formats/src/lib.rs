//! isoforge-formats: the on-disk formats of a bootable hybrid ISO image, each with its writer
//! and its reader.
//!
//! - [`iso9660`]: ISO 9660 level 3 with Rock Ridge and Joliet, El Torito boot catalog;
//! - [`fat`]: the FAT12/16/32 EFI system partition image;
//! - [`part`]: the isohybrid MBR and GPT in the system area;
//! - [`cpio`]: the newc cpio archives of a netboot initrd;
//! - [`tree`]: the input tree built from grafts, shared by every format;
//! - [`endian`], [`units`], [`read_at`], [`time`], [`hex`]: typed byte order, block and sector
//!   units, positional reads, the epoch every date derives from, and hex for messages;
//! - [`finding`]: what every reader reports wrong with an image, in one vocabulary.
//!
//! Every writer follows the same rule: a pure planning step turns inputs into a plan that fixes
//! every extent, address and size, then a writer streams bytes in increasing offset order.
//! Nothing reads the clock: every date, serial and GUID derives from one [`time::Epoch`].
//!
//! # Crates
//!
//! This crate is the bottom layer: it depends only on `isoforge-host` (input snapshots) and
//! `isoforge-squashfs` (the file kinds a squashfs can hold, which the input tree shares).
//! `isoforge-inspect` reads whole images with it and `isoforge-core` (the pipeline and the Nix
//! glue) builds them with it; neither is a dependency of this crate. Inside it, modules depend
//! downwards only: `endian`, `units`, `read_at`, `time`, `hex`, `finding` ← `tree` ← `part`, `fat`,
//! `cpio` ← `iso9660` (which places the system area [`part`] plans).
#![deny(missing_docs)]

pub mod cpio;
pub mod endian;
pub mod fat;
pub mod finding;
pub mod hex;
pub mod iso9660;
pub mod part;
pub mod read_at;
pub mod time;
pub mod tree;
pub mod units;
