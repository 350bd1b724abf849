//! One module per subcommand; they share the flags (`crate::flags`) and the reporting
//! ([`report`]), and none uses another subcommand's module (but `diff` and `verify` read images
//! as `inspect` does).
pub mod build;
pub mod cache;
pub mod diff;
pub mod fat;
pub mod inspect;
pub mod netboot;
pub mod report;
pub mod squashfs;
pub mod verify;
