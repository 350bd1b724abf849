//! `isoforge fat`: build a FAT image (an EFI system partition) from a directory.

use std::path::PathBuf;

use anyhow::Context;
use isoforge_formats::fat::{FatOptions, FatPlan};
use isoforge_formats::time::DateField;
use isoforge_host::output::AtomicOutput;

use crate::flags::epoch;
use crate::flags::low::{parse_size, serial, EpochArgs};

/// Arguments of `isoforge fat`.
#[derive(clap::Args, Debug)]
pub struct FatArgs {
    /// Directory whose contents become the image's root directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Output image file (written unnamed in its directory and named only when complete).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Image size in bytes, or with a K, M or G suffix (powers of 1024). Default: the nixpkgs
    /// rule (content rounded up to MiB, plus 10 %, rounded down to MiB, plus 1 MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Volume serial number in hex (`12345678`, `0x12345678` or `1234-5678`); default
    /// 12345678, the serial NixOS's GRUB configuration looks for.
    #[arg(long, value_name = "HEX", value_parser = serial)]
    pub serial: Option<u32>,
    /// Volume label: up to 11 printable ASCII characters, upper-cased; "" for none. Default
    /// `EFIBOOT`.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// The date of every entry.
    #[command(flatten)]
    pub epoch: EpochArgs,
}

/// Runs `isoforge fat`.
pub fn run(args: &FatArgs) -> anyhow::Result<()> {
    let resolved = epoch::resolve(args.epoch.epoch, None)?;
    let epoch = resolved.epoch;
    epoch.check(DateField::Fat).map_err(|e| resolved.name(e))?;
    let dir =
        isoforge_formats::tree::scan(&args.dir).with_context(|| format!("reading {}", args.dir.display()))?;
    // The flags given over the library's defaults.
    let mut opts = FatOptions::new(epoch);
    opts.size = args.size;
    if let Some(s) = args.serial {
        opts.serial = s;
    }
    if let Some(l) = &args.label {
        opts.label.clone_from(l);
    }
    let plan = FatPlan::new(&dir, &opts)
        .with_context(|| format!("planning a FAT image of {}", args.dir.display()))?;
    let mut out = AtomicOutput::create(&args.output)?;
    out.stale_removed().iter().for_each(super::report::print_stale);
    plan.write_to_file(out.file()).with_context(|| format!("writing {}", args.output.display()))?;
    out.commit()?;
    let g = plan.geometry();
    eprintln!(
        "{}: {} bytes, {}, {} clusters of {} bytes ({} used)",
        args.output.display(),
        plan.image_size(),
        g.fat_type,
        g.cluster_count,
        g.cluster_size(),
        plan.clusters_used()
    );
    Ok(())
}
