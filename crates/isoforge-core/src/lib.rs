//! isoforge-core: deterministic, bootable hybrid ISO 9660 images.
//!
//! The crate writes and reads the on-disk formats of a NixOS-style live image:
//!
//! - [`iso9660`]: ISO 9660 level 3 with Rock Ridge and Joliet, El Torito boot catalog;
//! - [`fat`]: the FAT12/16/32 EFI system partition image;
//! - [`part`]: the isohybrid MBR and GPT in the system area;
//! - [`tree`]: the input tree built from grafts, shared by every format;
//! - [`closure`]: the Nix store closure, NAR hashing and `nix-path-registration`;
//! - [`progress`]: the observer a build reports its phases and written bytes to.
//!
//! Every writer follows the same rule: a pure planning step turns inputs into a plan that fixes
//! every extent, address and size, then a writer streams bytes in increasing offset order.
//! Nothing reads the clock: every date, serial and GUID derives from one [`time::Epoch`].
#![deny(missing_docs)]

pub mod closure;
pub mod endian;
pub mod fat;
pub mod image;
pub mod iso9660;
pub mod output;
pub mod part;
pub mod progress;
pub mod read_at;
pub mod store;
pub mod time;
pub mod tree;
pub mod units;
