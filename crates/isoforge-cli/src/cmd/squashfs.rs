//! `isoforge squashfs`: the store squashfs alone, as `build --closure` embeds it.

use std::path::PathBuf;

use anyhow::Context;
use isoforge_core::store;
use isoforge_formats::time::DateField;

use std::io::IsTerminal;

use super::report::Reporter;
use crate::flags::epoch;
use crate::flags::low::{EpochArgs, ReportArgs, StoreArgs};
use crate::flags::resolve;

/// Arguments of `isoforge squashfs`.
#[derive(clap::Args, Debug)]
pub struct SquashfsArgs {
    /// Output file (written unnamed in its directory and named only when complete).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// The date of the root, nix-path-registration and the superblock.
    #[command(flatten)]
    pub epoch: EpochArgs,
    /// The closure and the squashfs settings.
    #[command(flatten)]
    pub store: StoreArgs,
    /// `-v`, `--json`.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Runs `isoforge squashfs`.
pub fn run(args: &SquashfsArgs) -> anyhow::Result<()> {
    let resolved = epoch::resolve(args.epoch.epoch, None)?;
    let epoch = resolved.epoch;
    let Some(spec) = resolve::store(&args.store) else { anyhow::bail!("--closure is required") };
    epoch.check(DateField::Squashfs).map_err(|e| resolved.name(e))?;
    let reporter = Reporter::new(std::io::stderr().is_terminal());
    let result = store::build_squashfs_with(&spec, epoch, &args.output, &reporter);
    let (durations, total) = reporter.finish();
    let summary = result.with_context(|| format!("building {}", args.output.display()))?;
    super::report::print_cache(Some(&summary), args.report.verbose);
    if args.report.verbose {
        let cores = super::report::cores(spec.squashfs.threads);
        super::report::print_timings(&durations, total, cores);
    }
    if args.report.json {
        println!(
            "{}",
            serde_json::json!({ "output": args.output, "bytes": summary.total_size, "cache": super::report::cache_json(Some(&summary)) })
        );
        return Ok(());
    }
    println!(
        "{}: {} bytes, {} inodes, {} files ({} duplicates), {} directories, {} symlinks",
        args.output.display(),
        summary.total_size,
        summary.inodes,
        summary.files,
        summary.duplicate_files,
        summary.dirs,
        summary.symlinks
    );
    Ok(())
}
