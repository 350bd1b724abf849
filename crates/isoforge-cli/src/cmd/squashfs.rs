//! `isoforge squashfs`: the store squashfs alone, as `build --closure` embeds it.

use std::path::PathBuf;

use anyhow::Context;
use isoforge_core::store;
use isoforge_core::time::DateField;

use std::io::IsTerminal;

use super::report::Reporter;
use super::store_args::StoreArgs;

/// Arguments of `isoforge squashfs`.
#[derive(clap::Args, Debug)]
pub struct SquashfsArgs {
    /// Output file (written unnamed in its directory and named only when complete).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Seconds since 1970 for the root, nix-path-registration and the superblock; default:
    /// $SOURCE_DATE_EPOCH, else 315532800.
    #[arg(long = "epoch", value_name = "N", allow_hyphen_values = true)]
    pub epoch: Option<i64>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print per-phase timings (wall, CPU, how busy the cores were) and what the block cache
    /// did on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Print a JSON report (size and block cache counters) on stdout.
    #[arg(long = "json")]
    pub json: bool,
}

/// Runs `isoforge squashfs`.
pub fn run(args: &SquashfsArgs) -> anyhow::Result<()> {
    let resolved = super::epoch::resolve(args.epoch, None)?;
    let epoch = resolved.epoch;
    let Some(spec) = args.store.spec() else { anyhow::bail!("--closure is required") };
    epoch.check(DateField::Squashfs).map_err(|e| resolved.name(e))?;
    let reporter = Reporter::new(std::io::stderr().is_terminal());
    let result = store::build_squashfs_with(&spec, epoch, &args.output, &reporter);
    let (durations, total) = reporter.finish();
    let summary = result.with_context(|| format!("building {}", args.output.display()))?;
    super::report::print_cache(Some(&summary), args.verbose);
    if args.verbose {
        let cores = super::report::cores(spec.squashfs.threads);
        super::report::print_timings(&durations, total, cores);
    }
    if args.json {
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
