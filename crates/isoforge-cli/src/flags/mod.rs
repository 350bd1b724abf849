//! The flags of the commands, in two layers as ripgrep has them (`flags/lowargs.rs`,
//! `flags/hiargs.rs`): [`low`] is what the user typed, every value that has another source an
//! `Option`; [`resolve`] merges it with the spec file and the library's defaults, each applied
//! once, into what the library builds. [`epoch`] resolves the epoch and remembers where it came
//! from, for messages.
//!
//! The subcommands (`crate::cmd`) sit above this module and never below it.

pub mod epoch;
pub mod low;
pub mod resolve;
