//! One step from what the user typed ([`super::low`]) and the optional spec file to what the
//! library builds: [`build`] for `isoforge build`, [`store`] for `squashfs` and `netboot`.
//!
//! Precedence, for every value: a flag given > the spec file's key > the default. The
//! defaults are the library's, applied once, here, by its constructors ([`SpecFile::new`],
//! [`SpecFile::image_spec_in`], [`IsoOptions`](isoforge_formats::iso9660::plan::IsoOptions)`::new`,
//! [`FatOptions::new`], [`StoreSpec::new`]) and constants; the CLI re-declares none. A flag
//! "given" is an `Option` that is `Some` (so `--compression zstd:19` overrides a spec's zstd 3
//! although zstd 19 is the default), a list that is not empty (`--graft` adds to `contents`,
//! `--sort-weight` merges into `sortWeights`), a switch that is on.
//!
//! The squashfs of the spec's `squashfsContents` defaults to nixpkgs' settings (the spec
//! format's `squashfsCompression` default, xz); a squashfs from `--closure` defaults to the
//! library's (zstd 19), taking the spec's explicit `squashfsCompression`, `blockSize` and
//! `threads` when it has them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use isoforge_core::image::{EfiSpec, Graft, ImageSpec, DEFAULT_EFI_IMAGE};
use isoforge_core::outputs::OutDirOptions;
use isoforge_core::spec::{SpecFile, SquashfsContents};
use isoforge_core::store::StoreSpec;
use isoforge_formats::fat::FatOptions;
use isoforge_formats::iso9660::plan::{BiosBoot, DEFAULT_BOOT_LOAD_SIZE};
use isoforge_formats::time::Epoch;

use super::epoch;
use super::low::{BuildArgs, StoreArgs};

/// The environment variable naming the block cache when `--cache` is not given.
pub const CACHE_ENV: &str = "ISOFORGE_CACHE";

/// Where `isoforge build` writes.
#[derive(Debug)]
pub enum Output {
    /// `-o FILE`.
    File(PathBuf),
    /// `--out-dir DIR`, with the spec file's output options.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Image name, compression, checksum, system, threads.
        options: OutDirOptions,
    },
}

/// Everything `isoforge build` needs, resolved.
#[derive(Debug)]
pub struct BuildPlan {
    /// The image.
    pub image: ImageSpec,
    /// Where it goes.
    pub output: Output,
    /// Holds the list of store paths a spec's `squashfsContents` gives; it must outlive the
    /// build.
    _scratch: Option<tempfile::TempDir>,
}

/// Resolves the flags of `isoforge build` and the spec file they name.
pub fn build(args: &BuildArgs) -> anyhow::Result<BuildPlan> {
    let file = match &args.spec {
        Some(path) => Some(SpecFile::read(path).with_context(|| format!("spec {}", path.display()))?),
        None => None,
    };
    let output = match (&args.output, &args.out_dir) {
        (Some(o), _) if file.is_some() || args.volume_id.is_some() => Output::File(o.clone()),
        (None, Some(dir)) if file.is_some() || args.volume_id.is_some() => {
            let threads = args.store.threads.or(file.as_ref().and_then(|f| f.threads)).unwrap_or(0);
            let base = SpecFile::new(String::new());
            let f = file.as_ref().unwrap_or(&base);
            let options = OutDirOptions {
                iso_name: f.iso_name.clone(),
                compress: f.compress_image,
                sha256: f.sha256,
                system: system(),
                threads,
            };
            Output::Dir { dir: dir.clone(), options }
        }
        (None, Some(_)) => bail!("--volume-id is required without --spec"),
        (_, None) if file.is_some() => bail!("give -o OUT.iso or --out-dir DIR"),
        _ => bail!("-o/--output and --volume-id are required (unless --spec or --out-dir is given)"),
    };
    let from_spec = args.spec.as_deref().zip(file.as_ref().and_then(|f| f.epoch));
    let resolved = epoch::resolve(args.epoch.epoch, from_spec)?;
    let epoch = resolved.epoch;
    // A list of store paths in squashfsContents is written to a file for the build.
    let scratch = match file.as_ref().map(|f| &f.squashfs_contents) {
        Some(Some(SquashfsContents::Paths(_))) => Some(tempfile::tempdir().context("scratch directory")?),
        _ => None,
    };
    let mut image = match &file {
        Some(f) => f.image_spec_in(epoch, scratch.as_ref().map_or(Path::new("."), |d| d.path())),
        // Without a spec file: every key at its default.
        None => SpecFile::new(args.volume_id.clone().unwrap_or_default()).image_spec(epoch),
    }
    .context("spec")?;
    apply(args, file.as_ref(), &mut image, epoch)?;
    image.check_epoch().map_err(|e| resolved.name(e))?;
    Ok(BuildPlan { image, output, _scratch: scratch })
}

/// Applies the flags given to `image` (the spec file's, or the defaults).
fn apply(
    args: &BuildArgs,
    file: Option<&SpecFile>,
    image: &mut ImageSpec,
    epoch: Epoch,
) -> anyhow::Result<()> {
    let iso = &mut image.iso;
    set(&mut iso.volume_id, &args.volume_id);
    set(&mut iso.application_id, &args.app_id);
    set(&mut iso.publisher, &args.publisher);
    set(&mut iso.boot_catalog, &args.boot_catalog);
    if let Some(path) = &args.bios_boot {
        // A boot file from a flag starts from the defaults, as nixpkgs' call does.
        iso.bios_boot =
            Some(BiosBoot { image: path.clone(), load_size: DEFAULT_BOOT_LOAD_SIZE, boot_info_table: true });
    }
    match &mut iso.bios_boot {
        Some(b) => {
            set(&mut b.load_size, &args.boot_load_size);
            set(&mut b.boot_info_table, &args.boot_info_table());
        }
        // With a boot file the library checks the size and names the file.
        None if args.boot_load_size == Some(0) => bail!("--boot-load-size must be at least 1"),
        None => {}
    }
    iso.sort_weights.extend(sort_weights(&args.sort_weights)?);
    for g in &args.grafts {
        image.grafts.push(Graft::parse(g)?);
    }
    if let Some(dir) = &args.efi_dir {
        match &mut image.efi {
            Some(efi) => efi.dir = dir.clone(),
            None => {
                image.efi = Some(EfiSpec {
                    dir: dir.clone(),
                    image_path: DEFAULT_EFI_IMAGE.to_string(),
                    fat: FatOptions::new(epoch),
                });
                // The FAT image built replaces a prebuilt one named by the spec.
                image.iso.efi_boot = None;
            }
        }
    }
    if let Some(efi) = &mut image.efi {
        set(&mut efi.image_path, &args.efi_image);
        if args.efi_size.is_some() {
            efi.fat.size = args.efi_size;
        }
        set(&mut efi.fat.serial, &args.efi_serial);
        set(&mut efi.fat.label, &args.efi_label);
    } else if let Some(prebuilt) = &mut image.iso.efi_boot {
        set(&mut prebuilt.image, &args.efi_image);
    }
    let hybrid = &mut image.hybrid;
    if args.layout.is_some() {
        hybrid.layout = args.layout;
    }
    if args.isohybrid_mbr.is_some() {
        hybrid.isohybrid_mbr.clone_from(&args.isohybrid_mbr);
    }
    if args.gpt_disk_guid.is_some() {
        hybrid.gpt_disk_guid = args.gpt_disk_guid;
    }
    let st = &args.store;
    if let Some(closure) = &st.closure {
        // A closure from the flag: the library's squashfs defaults, then the spec's keys.
        let mut s = StoreSpec::new(closure.clone());
        if let Some(f) = file {
            set(&mut s.squashfs.compression, &f.squashfs_compression);
            set(&mut s.squashfs.block_size, &f.block_size);
            set(&mut s.squashfs.threads, &f.threads);
        }
        image.store = Some(s);
    }
    if let Some(s) = &mut image.store {
        apply_store(st, s);
    }
    Ok(())
}

/// The squashfs of `--closure` (`squashfs`, `netboot`): the flags given over the library's
/// defaults; `None` without `--closure`.
pub fn store(args: &StoreArgs) -> Option<StoreSpec> {
    let mut spec = StoreSpec::new(args.closure.clone()?);
    apply_store(args, &mut spec);
    Some(spec)
}

/// Applies the store flags given to `spec`.
fn apply_store(args: &StoreArgs, spec: &mut StoreSpec) {
    set(&mut spec.closure, &args.closure);
    set(&mut spec.closure_options.store_root, &args.store_root);
    set(&mut spec.closure_options.store_dir, &args.store_dir);
    if args.registration.is_some() {
        spec.registration.clone_from(&args.registration);
    }
    set(&mut spec.squashfs.compression, &args.compression);
    set(&mut spec.squashfs.block_size, &args.block_size);
    set(&mut spec.squashfs.threads, &args.threads);
    spec.keep_metadata |= args.keep_metadata;
    spec.cache = cache_dir(args);
}

/// The block cache: `--cache`, else `$ISOFORGE_CACHE` when set and not empty.
fn cache_dir(args: &StoreArgs) -> Option<PathBuf> {
    args.cache.clone().or_else(|| std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// `*target = value` when the value is given.
fn set<T: Clone>(target: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        target.clone_from(v);
    }
}

/// The system string for `nix-support/system`: `$system` (Nix sets it in every derivation),
/// else this build's architecture and OS.
fn system() -> String {
    std::env::var("system")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS))
}

/// Parses the `--sort-weight PATH=N` flags.
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use isoforge_core::closure::ClosureOptions;
    use isoforge_formats::fat::{DEFAULT_LABEL, DEFAULT_SERIAL};
    use isoforge_formats::iso9660::plan::DEFAULT_BOOT_CATALOG;
    use isoforge_squashfs::Compression;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        build: BuildArgs,
    }

    fn args(argv: &[&str]) -> BuildArgs {
        match Cli::try_parse_from(std::iter::once("isoforge-build").chain(argv.iter().copied())) {
            Ok(cli) => cli.build,
            Err(e) => panic!("{argv:?}: {e}"),
        }
    }

    fn plan(argv: &[&str]) -> BuildPlan {
        build(&args(argv)).unwrap_or_else(|e| panic!("{argv:?}: {e:#}"))
    }

    fn squashfs(p: &BuildPlan) -> isoforge_squashfs::Options {
        p.image.store.as_ref().map(|s| s.squashfs).unwrap_or_else(|| panic!("no store"))
    }

    const BASE: [&str; 6] = ["-o", "x.iso", "--volume-id", "V", "--closure", "c"];

    #[test]
    fn flags_over_defaults() {
        let p = plan(&BASE);
        assert_eq!(squashfs(&p), isoforge_squashfs::Options::default());
        assert_eq!(p.image.iso.boot_catalog, DEFAULT_BOOT_CATALOG);
        let p = plan(&[&BASE[..], &["--compression", "zstd:3", "--block-size", "128K"]].concat());
        assert_eq!(squashfs(&p).compression, Compression::Zstd { level: 3 });
        assert_eq!(squashfs(&p).block_size, 128 << 10);
        let p = plan(&[&BASE[..], &["--efi-dir", "e", "--efi-serial", "1-2"]].concat());
        assert_eq!(p.image.efi.map(|e| (e.fat.serial, e.fat.label)), Some((0x12, DEFAULT_LABEL.to_string())));
    }

    #[test]
    fn flags_over_the_spec_over_defaults() {
        let dir = isoforge_testing::tempdir();
        let spec = dir.path().join("s.json");
        let text = r#"{"volumeID": "S", "squashfsContents": "c", "squashfsCompression": "zstd -Xcompression-level 3",
                      "blockSize": 65536, "efiBootable": true, "efiDir": "e", "efiSerial": "abcd0123"}"#;
        std::fs::write(&spec, text).unwrap_or_else(|e| panic!("{e}"));
        let spec = spec.to_string_lossy().into_owned();
        let p = plan(&["-o", "x.iso", "--spec", &spec]);
        assert_eq!(squashfs(&p).compression, Compression::Zstd { level: 3 });
        assert_eq!(squashfs(&p).block_size, 1 << 16);
        assert_eq!(p.image.efi.as_ref().map(|e| e.fat.serial), Some(0xabcd_0123));
        assert_eq!(p.image.iso.volume_id, "S");
        let p = plan(&[
            "-o",
            "x.iso",
            "--spec",
            &spec,
            "--compression",
            "zstd:19",
            "--block-size",
            "1M",
            "--efi-serial",
            "12345678",
            "--volume-id",
            "F",
        ]);
        assert_eq!(squashfs(&p), isoforge_squashfs::Options::default());
        assert_eq!(p.image.efi.as_ref().map(|e| e.fat.serial), Some(DEFAULT_SERIAL));
        assert_eq!(p.image.iso.volume_id, "F");
        // A closure from the flag keeps the spec's squashfs keys.
        let p = plan(&["-o", "x.iso", "--spec", &spec, "--closure", "other"]);
        assert_eq!(p.image.store.as_ref().map(|s| s.closure.clone()), Some(PathBuf::from("other")));
        assert_eq!(squashfs(&p).compression, Compression::Zstd { level: 3 });
    }

    #[test]
    fn boot_info_table_is_tri_state() {
        let b = ["-o", "x.iso", "--volume-id", "V", "--bios-boot", "b"];
        let table =
            |extra: &[&str]| plan(&[&b[..], extra].concat()).image.iso.bios_boot.map(|b| b.boot_info_table);
        assert_eq!(table(&[]), Some(true));
        assert_eq!(table(&["--no-boot-info-table"]), Some(false));
        assert_eq!(table(&["--no-boot-info-table", "--boot-info-table"]), Some(true));
        assert_eq!(table(&["--boot-info-table", "--no-boot-info-table"]), Some(false));
    }

    /// The defaults the help names are the library's.
    #[test]
    fn help_names_the_library_defaults() {
        let cmd = Cli::command();
        let help = |id: &str| {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_else(|| panic!("no help for {id}"))
        };
        assert!(help("efi_serial").contains(&format!("else {DEFAULT_SERIAL:08x}")));
        assert!(help("efi_label").contains(&format!("default `{DEFAULT_LABEL}`")));
        assert!(help("efi_image").contains(&format!("else `{DEFAULT_EFI_IMAGE}`")));
        assert!(help("boot_catalog").contains(&format!("default `{DEFAULT_BOOT_CATALOG}`")));
        assert!(help("boot_load_size").contains(&format!("default {DEFAULT_BOOT_LOAD_SIZE}")));
        assert!(help("store_dir").contains(&format!("default `{}`", ClosureOptions::default().store_dir)));
        assert!(help("store_root")
            .contains(&format!("default `{}`", ClosureOptions::default().store_root.display())));
        let defaults = isoforge_squashfs::Options::default();
        assert!(help("compression").contains("else zstd:19"));
        assert_eq!("zstd:19".parse::<Compression>(), Ok(defaults.compression));
        assert!(help("block_size").contains("else 1M"));
        assert_eq!(defaults.block_size, 1 << 20);
    }
}
