//! `isoforge build --spec FILE.json` and `--out-dir DIR`: the spec file (or, without one, the
//! flags alone) resolved into an [`ImageSpec`], flags overriding the spec, then built into a
//! file or a Nix-style output directory.
//!
//! A flag overrides the spec when it is given: an option with a value, a non-empty list, a
//! switch that is on. Flags with a default value (`--compression`, `--block-size`,
//! `--boot-load-size`, `--boot-catalog`, `--efi-image`, `--efi-serial`, `--efi-label`,
//! `--store-root`, `--store-dir`) override only when they differ from their default.

use std::path::Path;

use anyhow::{bail, Context};
use isoforge_core::closure::ClosureOptions;
use isoforge_core::fat::{FatOptions, DEFAULT_LABEL};
use isoforge_core::image::{self, EfiSpec, Graft, ImageSpec, DEFAULT_EFI_IMAGE};
use isoforge_core::iso9660::plan::{BiosBoot, DEFAULT_BOOT_CATALOG, DEFAULT_BOOT_LOAD_SIZE};
use isoforge_core::outputs::{build_out_dir_with, OutDirOptions};
use isoforge_core::spec::SpecFile;
use isoforge_core::time::Epoch;
use isoforge_squashfs::Compression;

use super::build::{sort_weights, BuildArgs};
use super::report::Notices;

const DEFAULT_COMPRESSION: Compression = Compression::Zstd { level: 19 };
const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
const DEFAULT_STORE_DIR: &str = "/nix/store";
const DEFAULT_EFI_SERIAL: u32 = 0x1234_5678;

/// The system string for `nix-support/system`: `$system` (Nix sets it in every derivation),
/// else this build's architecture and OS.
fn system() -> String {
    std::env::var("system")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS))
}

/// Applies the flags to `spec`. With `all`, every flag applies (there is no spec file).
fn apply_flags(args: &BuildArgs, spec: &mut ImageSpec, epoch: Epoch, all: bool) -> anyhow::Result<()> {
    let iso = &mut spec.iso;
    if let Some(v) = &args.volume_id {
        iso.volume_id = v.clone();
    }
    if all || !args.app_id.is_empty() {
        iso.application_id = args.app_id.clone();
    }
    if all || !args.publisher.is_empty() {
        iso.publisher = args.publisher.clone();
    }
    if all || args.boot_catalog != DEFAULT_BOOT_CATALOG {
        iso.boot_catalog = args.boot_catalog.clone();
    }
    if let Some(path) = &args.bios_boot {
        iso.bios_boot = Some(BiosBoot {
            image: path.clone(),
            load_size: args.boot_load_size,
            boot_info_table: !args.no_boot_info_table,
        });
    } else if let Some(b) = &mut iso.bios_boot {
        if args.boot_load_size != DEFAULT_BOOT_LOAD_SIZE {
            b.load_size = args.boot_load_size;
        }
        if args.no_boot_info_table {
            b.boot_info_table = false;
        }
    }
    if args.boot_load_size == 0 {
        bail!("--boot-load-size must be at least 1");
    }
    iso.sort_weights.extend(sort_weights(&args.sort_weights)?);
    for g in &args.grafts {
        spec.grafts.push(Graft::parse(g)?);
    }
    if let Some(dir) = &args.efi_dir {
        spec.efi = Some(EfiSpec {
            dir: dir.clone(),
            image_path: args.efi_image.clone(),
            fat: FatOptions::new(epoch),
        });
        spec.iso.efi_boot = None;
    }
    if let Some(efi) = &mut spec.efi {
        if args.efi_dir.is_none() && args.efi_image != DEFAULT_EFI_IMAGE {
            efi.image_path = args.efi_image.clone();
        }
        if args.efi_size.is_some() {
            efi.fat.size = args.efi_size;
        }
        if all || args.efi_serial != DEFAULT_EFI_SERIAL {
            efi.fat.serial = args.efi_serial;
        }
        if all || args.efi_label != DEFAULT_LABEL {
            efi.fat.label = args.efi_label.clone();
        }
    }
    if args.layout.is_some() {
        spec.hybrid.layout = args.layout;
    }
    if let Some(m) = &args.isohybrid_mbr {
        spec.hybrid.isohybrid_mbr = Some(m.clone());
    }
    if args.gpt_disk_guid.is_some() {
        spec.hybrid.gpt_disk_guid = args.gpt_disk_guid;
    }
    let st = &args.store;
    if st.closure.is_some() {
        spec.store = st.spec();
    } else if let Some(s) = &mut spec.store {
        let defaults = ClosureOptions::default();
        if st.store_root != defaults.store_root {
            s.closure_options.store_root = st.store_root.clone();
        }
        if st.store_dir != DEFAULT_STORE_DIR {
            s.closure_options.store_dir = st.store_dir.clone();
        }
        if st.registration.is_some() {
            s.registration = st.registration.clone();
        }
        if st.compression != DEFAULT_COMPRESSION {
            s.squashfs.compression = st.compression;
        }
        if st.block_size != DEFAULT_BLOCK_SIZE {
            s.squashfs.block_size = st.block_size;
        }
        if let Some(t) = st.threads {
            s.squashfs.threads = t;
        }
        if st.keep_metadata {
            s.keep_metadata = true;
        }
        s.cache = st.cache_dir();
    }
    Ok(())
}

/// Runs `isoforge build` with `--spec` or `--out-dir`.
pub fn run(args: &BuildArgs) -> anyhow::Result<()> {
    let file = match &args.spec {
        Some(path) => SpecFile::read(path).with_context(|| format!("spec {}", path.display()))?,
        None => match &args.volume_id {
            Some(v) => SpecFile::new(v.clone()),
            None => bail!("--volume-id is required without --spec"),
        },
    };
    let from_spec = args.spec.as_deref().zip(file.epoch);
    let resolved = super::epoch::resolve(args.epoch, from_spec)?;
    let epoch = resolved.epoch;
    // A list of store paths in squashfsContents is written here; it must outlive the build.
    let scratch = tempfile::tempdir().context("scratch directory")?;
    let mut spec = file.image_spec_in(epoch, scratch.path()).context("spec")?;
    apply_flags(args, &mut spec, epoch, args.spec.is_none())?;
    spec.check_epoch().map_err(|e| resolved.name(e))?;
    match (&args.output, &args.out_dir) {
        (Some(output), _) => {
            let report = image::build_to_path_with(&spec, output, &Notices)
                .with_context(|| format!("building {}", output.display()))?;
            super::report::print_cache(report.squashfs.as_ref(), args.report.verbose);
            print_summary(output, report.image_size, report.volume_blocks, report.bytes_written);
        }
        (None, Some(dir)) => {
            let threads = args.store.threads.or(file.threads).unwrap_or(0);
            let options = OutDirOptions {
                iso_name: file.iso_name.clone(),
                compress: file.compress_image,
                sha256: file.sha256,
                system: system(),
                threads,
            };
            let report = build_out_dir_with(&spec, &options, dir, &Notices)
                .with_context(|| format!("building {}", dir.display()))?;
            super::report::print_cache(report.build.squashfs.as_ref(), args.report.verbose);
            print_summary(&report.image, report.size, report.build.volume_blocks, report.build.bytes_written);
        }
        (None, None) => bail!("give -o OUT.iso or --out-dir DIR"),
    }
    Ok(())
}

fn print_summary(path: &Path, size: u64, blocks: u32, written: u64) {
    println!("{}: {size} bytes, {blocks} blocks ({written} bytes written)", path.display());
}
