//! One module per subcommand.
pub mod build;
pub mod diff;
pub mod fat;
pub mod inspect;
pub mod verify;
