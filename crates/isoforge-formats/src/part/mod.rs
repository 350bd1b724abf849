//! MBR and GPT for the system area of hybrid images.
//!
//! An isoforge image is an ISO 9660 file system whose first 32 KiB (the "system area", 2048-byte
//! blocks 0–15, 512-byte sectors 0–63) hold partition tables, so that the same file boots from
//! optical media (El Torito) and from a USB stick (MBR/GPT). This module holds:
//!
//! - [`mbr`]: the legacy MBR and its partition records, CHS arithmetic;
//! - [`gpt`]: the GPT header, partition entries, GUIDs and their CRC-32s, and a reader that
//!   checks primary against backup;
//! - [`apm`]: the Apple Partition Map layouts, which isoforge only reads (`grub-mkrescue`
//!   images carry one);
//! - [`layout`]: the pure planner that turns the ISO writer's numbers (boot file address, EFI
//!   image extent, file system size) into the system area bytes, the padded image size and the
//!   backup GPT at the end of the image.
//!
//! The layouts, their sources and every difference from xorriso are described in
//! `docs/spec/system-area.md`.
//!
//! # Example
//!
//! ```
//! use isoforge_formats::part::layout::{plan_system_area, EfiImage, Layout, SystemAreaRequest};
//! use isoforge_formats::time::Epoch;
//! use isoforge_formats::units::Lba2048;
//!
//! let template = [0u8; 432]; // isohdpfx.bin in real use
//! let req = SystemAreaRequest {
//!     layout: Layout::Nixos,
//!     mbr_template: Some(&template),
//!     bios_boot: Some(Lba2048::new(1058)),
//!     efi_image: Some(EfiImage { start: Lba2048::new(34), size: 2 * 1024 * 1024 }),
//!     iso_blocks: 1225,
//!     pad_blocks: SystemAreaRequest::XORRISO_PAD_BLOCKS,
//!     volume_id: "NIXOS_TEST",
//!     epoch: Epoch::NIX_DEFAULT,
//!     disk_guid: None,
//! };
//! let plan = plan_system_area(&req)?;
//! // The ISO writer writes `iso_blocks` blocks, then zeros up to `backup_gpt_start()`, then the
//! // backup GPT; the PVD volume space size is `image_blocks`.
//! assert_eq!(plan.image_blocks, 1536);
//! let system_area = plan.encode_system_area(); // 32 KiB for blocks 0-15
//! let backup = plan.encode_backup_gpt().expect("nixos with EFI has a GPT"); // 16 blocks
//! assert_eq!(system_area.len(), 32768);
//! assert_eq!(backup.len(), 16 * 2048);
//! # Ok::<(), isoforge_formats::part::PartError>(())
//! ```

pub mod apm;
pub mod gpt;
pub mod layout;
pub mod mbr;

use std::fmt;

use thiserror::Error;

use crate::finding::Finding;

/// Errors from planning, encoding or decoding partition tables.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PartError {
    /// The epoch has no ECMA-119 date (the disk signature derives from it).
    #[error(transparent)]
    Epoch(#[from] crate::time::EpochError),
    /// The request lacks an input the chosen layout needs.
    #[error("system area layout {layout}: {what} is required")]
    MissingInput {
        /// The layout's name (`nixos`, `gpt`, `none`).
        layout: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// The request carries an input the chosen layout cannot use.
    #[error("system area layout {layout}: {what}")]
    Inconsistent {
        /// The layout's name.
        layout: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// The isohybrid MBR template is shorter than the 432 bytes of boot code it must provide.
    #[error("isohybrid MBR template: expected at least 432 bytes, found {found}")]
    TemplateTooShort {
        /// The template's length in bytes.
        found: usize,
    },
    /// The EFI image is smaller than one 2048-byte block (a FAT image never is).
    #[error("EFI image at {start}: expected at least 2048 bytes, found {size}")]
    EfiImageTooSmall {
        /// Where the image starts.
        start: crate::units::Lba2048,
        /// Its size in bytes.
        size: u64,
    },
    /// A partition would start inside the primary GPT (before the first usable sector).
    #[error("GPT partition {name}: starts at sector {start}, before the first usable sector {first_usable}")]
    BeforeFirstUsable {
        /// The partition's name.
        name: &'static str,
        /// Its first 512-byte sector.
        start: u64,
        /// The GPT's first usable sector.
        first_usable: u64,
    },
    /// A partition or boot file lies beyond the end of the ISO file system.
    #[error("{what}: sectors {start}..{end} reach past the file system end at sector {fs_end}")]
    OutsideFileSystem {
        /// What lies outside.
        what: &'static str,
        /// First 512-byte sector.
        start: u64,
        /// One past the last 512-byte sector.
        end: u64,
        /// One past the file system's last sector.
        fs_end: u64,
    },
    /// A number does not fit the field that must hold it.
    #[error("{field}: {value} does not fit")]
    Overflow {
        /// The structure and field, e.g. `GPT header last_usable_lba`.
        field: &'static str,
        /// The value that did not fit (saturated to `u128` if needed).
        value: u128,
    },
    /// An input slice is shorter than the structure it must hold.
    #[error("{structure}: expected {expected} bytes, found {found}")]
    Truncated {
        /// The structure being decoded.
        structure: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A GUID in text form could not be parsed.
    #[error("GUID {text:?}: {reason}")]
    BadGuid {
        /// The text given.
        text: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Reading the image failed.
    #[error("reading {structure} at byte {offset}: {source}")]
    Read {
        /// The structure being read.
        structure: &'static str,
        /// The byte offset of the read.
        offset: u64,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// One disagreement between what a structure promises and what the image holds, found by a
/// decoder's check: an error at `offset`, in bytes from the start of the image. Checks collect
/// every mismatch instead of stopping at the first (`isoforge verify` and `inspect` print them
/// all).
pub(crate) fn mismatch(
    structure: impl Into<String>,
    field: &'static str,
    offset: u64,
    expected: impl fmt::Display,
    found: impl fmt::Display,
) -> Finding {
    Finding::error(structure, field, Some(offset), expected, found)
}
