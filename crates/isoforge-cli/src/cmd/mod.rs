//! One module per subcommand.
pub mod build;
pub mod fat;
pub mod report;
pub mod squashfs;
pub mod store_args;
