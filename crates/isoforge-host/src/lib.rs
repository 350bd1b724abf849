//! isoforge-host: everything isoforge does with host files, in one place.
//!
//! - [`snapshot`]: an input file is read as one consistent snapshot or not at all. Its
//!   identity, size and times are recorded when it is scanned; every reader checks them when it
//!   opens the file and again, through the same descriptor, after the last byte.
//! - [`fault`]: test-only fault injection (feature `fault-injection`).
//! - [`output`]: an output file appears at its path complete, or not at all, and a killed
//!   build leaves nothing beside it.
#![deny(missing_docs)]

pub mod fault;
pub mod output;
pub mod snapshot;
