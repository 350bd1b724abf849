//! `isoforge fat`.

/// Arguments of `isoforge fat`.
#[derive(clap::Args, Debug)]
pub struct FatArgs {}

/// Runs `isoforge fat`.
pub fn run(_args: &FatArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
