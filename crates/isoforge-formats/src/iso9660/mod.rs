//! ISO 9660 (ECMA-119) level 3 with Rock Ridge (RRIP 1.12/SUSP 1.12), Joliet and El Torito.
//!
//! - [`volume_descriptor`], [`directory_record`], [`path_table`], [`susp`], [`rock_ridge`],
//!   [`el_torito`]: one module per on-disk structure, each with encode and decode;
//! - [`naming`]: ISO 9660 and Joliet identifiers;
//! - [`plan`]: the pure planning step (every block address and size);
//! - [`write`](mod@write): the streaming writer;
//! - [`read`]: the reader used by tests and by inspect/diff/verify.

pub mod directory_record;
pub mod el_torito;
pub mod naming;
pub mod path_table;
pub mod plan;
pub mod read;
pub mod rock_ridge;
pub mod susp;
pub mod volume_descriptor;
pub mod write;
