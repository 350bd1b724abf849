//! The bodies of isoforge's fuzz targets, one function per reader. `fuzz_targets/*.rs` wrap
//! them for libFuzzer; `tests/inspect.rs` (workspace) includes `targets.rs` too and replays the
//! seed corpus plus deterministic mutations through them on stable Rust.
#![deny(missing_docs)]

mod targets;

pub use targets::*;
