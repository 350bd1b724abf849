//! `isoforge build`.

/// Arguments of `isoforge build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {}

/// Runs `isoforge build`.
pub fn run(_args: &BuildArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
