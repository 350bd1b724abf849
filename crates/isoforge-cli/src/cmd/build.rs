//! `isoforge build`: parse flags into an [`ImageSpec`], build, print a one-line summary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use isoforge_core::fat::{FatOptions, DEFAULT_LABEL};
use isoforge_core::image::{EfiSpec, Graft, HybridSpec, ImageSpec, DEFAULT_EFI_IMAGE};
use isoforge_core::iso9660::plan::{BiosBoot, IsoOptions, DEFAULT_BOOT_CATALOG, DEFAULT_BOOT_LOAD_SIZE};
use isoforge_core::part::gpt::Guid;
use isoforge_core::part::layout::Layout;

use super::fat::{parse_size, serial_value};
use super::store_args::StoreArgs;

/// Arguments of `isoforge build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Output image path (written unnamed in its directory and named only when complete).
    #[arg(short = 'o', long = "output", value_name = "OUT.iso")]
    pub output: Option<PathBuf>,
    /// Write a Nix-style output directory instead: DIR/iso/<isoName> (or .zst),
    /// DIR/nix-support/{hydra-build-products,system}.
    #[arg(long = "out-dir", value_name = "DIR", conflicts_with = "output")]
    pub out_dir: Option<PathBuf>,
    /// Read the image's description from a JSON spec file (docs/spec-file.md); flags given as
    /// well override it.
    #[arg(long = "spec", value_name = "FILE.json")]
    pub spec: Option<PathBuf>,
    /// Volume id (1–32 bytes, written verbatim: the live system mounts the image by it).
    #[arg(long = "volume-id", value_name = "ID")]
    pub volume_id: Option<String>,
    /// Application id (up to 128 bytes).
    #[arg(long = "app-id", value_name = "S", default_value = "")]
    pub app_id: String,
    /// Publisher id (up to 128 bytes).
    #[arg(long = "publisher", value_name = "S", default_value = "")]
    pub publisher: String,
    /// Seconds since 1970 for every date in the image; default: $SOURCE_DATE_EPOCH, else
    /// 315532800 (1980-01-01).
    #[arg(long = "epoch", value_name = "N", allow_hyphen_values = true)]
    pub epoch: Option<i64>,
    /// Put SOURCE (file, directory or symlink) at TARGET in the image; repeatable.
    #[arg(long = "graft", value_name = "TARGET=SOURCE")]
    pub grafts: Vec<String>,
    /// Make the image BIOS-bootable (El Torito, no emulation) with this boot file.
    #[arg(long = "bios-boot", value_name = "PATH_IN_IMAGE")]
    pub bios_boot: Option<String>,
    /// Path of the El Torito boot catalog in the image.
    #[arg(long = "boot-catalog", value_name = "PATH_IN_IMAGE", default_value = DEFAULT_BOOT_CATALOG)]
    pub boot_catalog: String,
    /// 512-byte sectors the BIOS loads from the boot file.
    #[arg(long = "boot-load-size", value_name = "N", default_value_t = DEFAULT_BOOT_LOAD_SIZE)]
    pub boot_load_size: u16,
    /// Do not patch a boot-info-table into the boot file.
    #[arg(long = "no-boot-info-table")]
    pub no_boot_info_table: bool,
    /// Placement weight of a file or directory (higher first); repeatable.
    #[arg(long = "sort-weight", value_name = "PATH_IN_IMAGE=N")]
    pub sort_weights: Vec<String>,
    /// Make the image UEFI-bootable: build a FAT image from DIR and add an El Torito EFI entry.
    #[arg(long = "efi-dir", value_name = "DIR")]
    pub efi_dir: Option<PathBuf>,
    /// Path of the FAT image in the ISO.
    #[arg(long = "efi-image", value_name = "PATH_IN_IMAGE", default_value = DEFAULT_EFI_IMAGE)]
    pub efi_image: String,
    /// Size of the FAT image (bytes, or with K/M/G); default: the nixpkgs rule.
    #[arg(long = "efi-size", value_name = "BYTES", value_parser = parse_size)]
    pub efi_size: Option<u64>,
    /// Volume serial of the FAT image (hex; the NixOS GRUB config finds the ESP by it).
    #[arg(long = "efi-serial", value_name = "HEX", value_parser = serial_value, default_value = "12345678")]
    pub efi_serial: u32,
    /// Volume label of the FAT image.
    #[arg(long = "efi-label", value_name = "LABEL", default_value = DEFAULT_LABEL)]
    pub efi_label: String,
    /// System area layout: nixos (isohybrid MBR + GPT as nixpkgs' xorriso call writes),
    /// gpt (a valid GPT with an EFI System Partition) or none (El Torito only). Default: nixos
    /// with --isohybrid-mbr, gpt with --efi-dir alone, none otherwise.
    #[arg(long = "layout", value_name = "nixos|gpt|none")]
    pub layout: Option<Layout>,
    /// isohybrid MBR template (isohdpfx.bin): bytes 0–431 become the image's MBR boot code.
    #[arg(long = "isohybrid-mbr", value_name = "FILE")]
    pub isohybrid_mbr: Option<PathBuf>,
    /// GPT disk GUID; default: derived from the volume id and the epoch.
    #[arg(long = "gpt-disk-guid", value_name = "GUID", value_parser = guid_value)]
    pub gpt_disk_guid: Option<Guid>,
    /// The store closure, put in /nix-store.squashfs with nix-path-registration.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Progress bar, `-v` timings, `--json` report.
    #[command(flatten)]
    pub report: super::report::ReportArgs,
}

fn guid_value(s: &str) -> Result<Guid, String> {
    Guid::parse(s).map_err(|e| e.to_string())
}

pub(super) fn sort_weights(args: &[String]) -> anyhow::Result<BTreeMap<String, i32>> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((path, w)) = a.rsplit_once('=') else { bail!("--sort-weight {a:?} is not PATH=N") };
        let w: i32 =
            w.parse().with_context(|| format!("--sort-weight {a:?}: {w:?} is not a whole number"))?;
        let path = normalise(path);
        if out.insert(path.clone(), w).is_some() {
            bail!("--sort-weight given twice for {path:?}");
        }
    }
    Ok(out)
}

/// `/a//b/` → `/a/b`, the form the planner looks paths up by.
fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    format!("/{}", parts.join("/"))
}

/// Runs `isoforge build`.
pub fn run(args: &BuildArgs) -> anyhow::Result<()> {
    if args.spec.is_some() || args.out_dir.is_some() {
        return super::spec_args::run(args);
    }
    let (Some(output), Some(volume_id)) = (&args.output, &args.volume_id) else {
        bail!("-o/--output and --volume-id are required (unless --spec or --out-dir is given)");
    };
    let resolved = super::epoch::resolve(args.epoch, None)?;
    let epoch = resolved.epoch;
    let mut iso = IsoOptions::new(volume_id.clone(), epoch);
    iso.application_id = args.app_id.clone();
    iso.publisher = args.publisher.clone();
    iso.boot_catalog = args.boot_catalog.clone();
    iso.sort_weights = sort_weights(&args.sort_weights)?;
    if let Some(path) = &args.bios_boot {
        iso.bios_boot = Some(BiosBoot {
            image: path.clone(),
            load_size: args.boot_load_size,
            boot_info_table: !args.no_boot_info_table,
        });
    } else if args.boot_load_size == 0 {
        bail!("--boot-load-size must be at least 1");
    }
    let grafts = args.grafts.iter().map(|g| Graft::parse(g)).collect::<Result<Vec<_>, _>>()?;
    let efi = args.efi_dir.as_ref().map(|dir| {
        let mut fat = FatOptions::new(epoch);
        fat.size = args.efi_size;
        fat.serial = args.efi_serial;
        fat.label = args.efi_label.clone();
        EfiSpec { dir: dir.clone(), image_path: args.efi_image.clone(), fat }
    });
    let hybrid = HybridSpec {
        layout: args.layout,
        isohybrid_mbr: args.isohybrid_mbr.clone(),
        gpt_disk_guid: args.gpt_disk_guid,
    };
    let spec = ImageSpec { grafts, iso, efi, hybrid, store: args.store.spec() };
    spec.check_epoch().map_err(|e| resolved.name(e))?;
    super::report::build_and_report(&spec, output, &args.report)
}
