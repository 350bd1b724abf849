//! One module per subcommand.
pub mod build;
pub mod cache;
pub mod diff;
pub mod epoch;
pub mod fat;
pub mod inspect;
pub mod netboot;
pub mod report;
pub mod spec_args;
pub mod squashfs;
pub mod store_args;
pub mod verify;
