//! One module per subcommand.
pub mod build;
pub mod fat;
pub mod spec_args;
pub mod squashfs;
pub mod store_args;
