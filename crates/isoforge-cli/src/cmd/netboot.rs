//! `isoforge netboot`: the NixOS netboot output (bzImage, initrd with the store, netboot.ipxe).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use isoforge_core::netboot::{self, InitrdCompression, NetbootSpec};
use isoforge_formats::time::DateField;

use super::report::Reporter;
use crate::flags::epoch;
use crate::flags::low::{EpochArgs, ReportArgs, StoreArgs};
use crate::flags::resolve;

/// Arguments of `isoforge netboot`.
#[derive(clap::Args, Debug)]
pub struct NetbootArgs {
    /// The output directory: DIR/bzImage, DIR/initrd, DIR/netboot.ipxe,
    /// DIR/nix-support/hydra-build-products (assembled aside, named only when complete).
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// The kernel (a bzImage), copied to DIR/bzImage.
    #[arg(long = "kernel", value_name = "FILE")]
    pub kernel: PathBuf,
    /// The stage-1 initrd (cpio, or gzip/zstd/xz/lz4/bzip2-compressed cpio); the store's
    /// cpio segment is appended to it.
    #[arg(long = "initrd", value_name = "FILE")]
    pub initrd: PathBuf,
    /// The system's init for `init=` in netboot.ipxe (e.g. /nix/store/…-nixos-system-…/init).
    #[arg(long = "init", value_name = "PATH")]
    pub init: String,
    /// Further kernel parameters for netboot.ipxe (NixOS's boot.kernelParams).
    #[arg(long = "cmdline", value_name = "ARGS", default_value = "", allow_hyphen_values = true)]
    pub cmdline: String,
    /// Compression of the appended segment: zstd[:LEVEL] (1–22, default 10 as NixOS),
    /// gzip[:LEVEL] (1–9, default 9), xz, none.
    #[arg(long = "initrd-compression", value_name = "ALGO[:LEVEL]", default_value = "zstd")]
    pub initrd_compression: InitrdCompression,
    /// The date of the squashfs and the cpio entry.
    #[command(flatten)]
    pub epoch: EpochArgs,
    /// The store closure, put in /nix-store.squashfs with nix-path-registration.
    #[command(flatten)]
    pub store: StoreArgs,
    /// `-v`, `--json`.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Runs `isoforge netboot`.
pub fn run(args: &NetbootArgs) -> anyhow::Result<()> {
    let resolved = epoch::resolve(args.epoch.epoch, None)?;
    let epoch = resolved.epoch;
    let Some(store) = resolve::store(&args.store) else { anyhow::bail!("--closure is required") };
    epoch.check(DateField::Squashfs).map_err(|e| resolved.name(e))?;
    let spec = NetbootSpec {
        store,
        kernel: args.kernel.clone(),
        initrd: args.initrd.clone(),
        init: args.init.clone(),
        cmdline: args.cmdline.clone(),
        compression: args.initrd_compression,
    };
    let reporter = Reporter::new(std::io::stderr().is_terminal());
    let result = netboot::build_netboot_with(&spec, epoch, &args.out_dir, &reporter);
    let (durations, total) = reporter.finish();
    let report = result.with_context(|| format!("building {}", args.out_dir.display()))?;
    super::report::print_cache(Some(&report.squashfs), args.report.verbose);
    if args.report.verbose {
        let cores = super::report::cores(spec.store.squashfs.threads);
        super::report::print_timings(&durations, total, cores);
    }
    if args.report.json {
        println!(
            "{}",
            serde_json::json!({
                "out_dir": args.out_dir,
                "initrd_bytes": report.initrd_size,
                "segment_offset": report.segment_offset,
                "segment_bytes": report.segment_len,
                "squashfs_bytes": report.squashfs.total_size,
                "compression": args.initrd_compression.to_string(),
                "cache": super::report::cache_json(Some(&report.squashfs)),
            })
        );
        return Ok(());
    }
    println!(
        "{}: initrd {} bytes (store segment {} bytes at {}, {}; squashfs {} bytes)",
        args.out_dir.display(),
        report.initrd_size,
        report.segment_len,
        report.segment_offset,
        args.initrd_compression,
        report.squashfs.total_size
    );
    Ok(())
}
