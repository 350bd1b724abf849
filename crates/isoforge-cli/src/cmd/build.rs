//! `isoforge build`: parse flags into an [`ImageSpec`], build, print a one-line summary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use isoforge_core::image::{self, Graft, ImageSpec};
use isoforge_core::iso9660::plan::{BiosBoot, IsoOptions, DEFAULT_BOOT_CATALOG, DEFAULT_BOOT_LOAD_SIZE};
use isoforge_core::time::Epoch;

/// Arguments of `isoforge build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Output image path (written to a temporary file beside it, renamed when complete).
    #[arg(short = 'o', long = "output", value_name = "OUT.iso")]
    pub output: PathBuf,
    /// Volume id (1–32 bytes, written verbatim: the live system mounts the image by it).
    #[arg(long = "volume-id", value_name = "ID")]
    pub volume_id: String,
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
}

fn sort_weights(args: &[String]) -> anyhow::Result<BTreeMap<String, i32>> {
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
    let sde = std::env::var("SOURCE_DATE_EPOCH").ok();
    let epoch = Epoch::resolve(args.epoch, sde.as_deref()).map_err(anyhow::Error::msg)?;
    let mut iso = IsoOptions::new(args.volume_id.clone(), epoch);
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
    let spec = ImageSpec { grafts, iso };
    let report = image::build_to_path(&spec, &args.output)
        .with_context(|| format!("building {}", args.output.display()))?;
    println!("{}: {} bytes, {} blocks", args.output.display(), report.bytes_written, report.volume_blocks);
    Ok(())
}
