//! `isoforge diff`: every differing byte range of two images, named.

use std::path::PathBuf;

/// Arguments of `isoforge diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The first image.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second image.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Print JSON (schema `isoforge-diff/1`, see docs/inspect-json.md).
    #[arg(long)]
    pub json: bool,
    /// Report at most N differences (the rest are counted).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max: usize,
}

/// Runs `isoforge diff`.
pub fn run(args: &DiffArgs) -> anyhow::Result<i32> {
    let _ = args;
    anyhow::bail!("not yet")
}
