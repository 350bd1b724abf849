//! The `isoforge` command.
fn main() {}
