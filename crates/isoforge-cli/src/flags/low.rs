//! The low-level flags: what the user typed, as clap parses it, and nothing more.
//!
//! Every flag whose value can also come from a spec file or from a default is an `Option`
//! (clap has no `default_value` for it): `None` means "not given", so that [`super::resolve`]
//! can tell an explicit `--compression zstd:19` from the default zstd 19 and apply each
//! default once, from the library's constants. The argument groups several subcommands share
//! ([`EpochArgs`], [`ReportArgs`], [`StoreArgs`]) are declared here once and flattened into
//! each subcommand's arguments.

use std::path::PathBuf;

use isoforge_formats::part::gpt::Guid;
use isoforge_formats::part::layout::Layout;
use isoforge_squashfs::Compression;

/// `--epoch`, shared by `build`, `squashfs`, `netboot` and `fat`.
#[derive(clap::Args, Debug, Default)]
pub struct EpochArgs {
    /// Seconds since 1970 for every date the command writes; default: the spec file's `epoch`
    /// (build), else $SOURCE_DATE_EPOCH, else 315532800 (1980-01-01).
    #[arg(long = "epoch", value_name = "N", allow_hyphen_values = true)]
    pub epoch: Option<i64>,
}

/// `-v` and `--json`, shared by `build`, `squashfs` and `netboot`.
#[derive(clap::Args, Debug, Default)]
pub struct ReportArgs {
    /// Print per-phase timings (wall, CPU, how busy the cores were) and what the block cache
    /// did on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Print a machine-readable JSON report on stdout (sizes, block cache counters; for
    /// `build` also the phases, the compression ratio and the image's sha256) instead of the
    /// summary line.
    #[arg(long = "json")]
    pub json: bool,
}

/// The store closure and how to compress it: `build`, `squashfs`, `netboot`.
#[derive(clap::Args, Debug, Default)]
pub struct StoreArgs {
    /// The closure: a file of store paths (one a line), a closureInfo directory
    /// (`store-paths` + `registration`) or an exportReferencesGraph file.
    #[arg(long = "closure", value_name = "FILE|DIR")]
    pub closure: Option<PathBuf>,
    /// Host directory standing for `/` when reading store paths (`/nix/store/x` is read from
    /// `DIR/nix/store/x`); default `/`.
    #[arg(long = "store-root", value_name = "DIR")]
    pub store_root: Option<PathBuf>,
    /// The store directory the paths are under; default `/nix/store`.
    #[arg(long = "store-dir", value_name = "DIR")]
    pub store_dir: Option<String>,
    /// A nix-path-registration to use as is (default: closureInfo's, else generated).
    #[arg(long = "registration", value_name = "FILE")]
    pub registration: Option<PathBuf>,
    /// Squashfs compression: zstd[:LEVEL] (1–22), xz[:bcj], gzip[:LEVEL] (1–9), lz4, none.
    /// Default: the spec file's `squashfsCompression`, else zstd:19.
    #[arg(long = "compression", value_name = "ALGO[:LEVEL]")]
    pub compression: Option<Compression>,
    /// Squashfs block size: a power of two from 4K to 1M (bytes, or with K/M). Default: the
    /// spec file's `blockSize`, else 1M.
    #[arg(long = "block-size", value_name = "SIZE", value_parser = block_size)]
    pub block_size: Option<u32>,
    /// Worker threads for squashfs compression, NAR hashing and the `--out-dir` zstd image: 0
    /// or absent means all available cores. The output does not depend on it.
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Keep host modes and mtimes instead of Nix's canonical metadata.
    #[arg(long = "keep-metadata")]
    pub keep_metadata: bool,
    /// Block cache directory: compressed squashfs blocks are looked up there before compressing
    /// and stored after, so a rebuild compresses only what changed. The image is the same with
    /// any cache, or none. Default: $ISOFORGE_CACHE (empty or unset: no cache).
    #[arg(long = "cache", value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

/// Arguments of `isoforge build`.
#[derive(clap::Args, Debug, Default)]
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
    /// Application id (up to 128 bytes); default empty.
    #[arg(long = "app-id", value_name = "S")]
    pub app_id: Option<String>,
    /// Publisher id (up to 128 bytes); default empty.
    #[arg(long = "publisher", value_name = "S")]
    pub publisher: Option<String>,
    /// The epoch.
    #[command(flatten)]
    pub epoch: EpochArgs,
    /// Put SOURCE (file, directory or symlink) at TARGET in the image; repeatable.
    #[arg(long = "graft", value_name = "TARGET=SOURCE")]
    pub grafts: Vec<String>,
    /// Make the image BIOS-bootable (El Torito, no emulation) with this boot file.
    #[arg(long = "bios-boot", value_name = "PATH_IN_IMAGE")]
    pub bios_boot: Option<String>,
    /// Path of the El Torito boot catalog in the image; default `.boot.cat`.
    #[arg(long = "boot-catalog", value_name = "PATH_IN_IMAGE")]
    pub boot_catalog: Option<String>,
    /// 512-byte sectors the BIOS loads from the boot file; default 4.
    #[arg(long = "boot-load-size", value_name = "N")]
    pub boot_load_size: Option<u16>,
    /// Patch a boot-info-table into the boot file (the default).
    #[arg(long = "boot-info-table", overrides_with = "no_boot_info_table")]
    pub boot_info_table: bool,
    /// Do not patch a boot-info-table into the boot file.
    #[arg(long = "no-boot-info-table", overrides_with = "boot_info_table")]
    pub no_boot_info_table: bool,
    /// Placement weight of a file or directory (higher first); repeatable.
    #[arg(long = "sort-weight", value_name = "PATH_IN_IMAGE=N")]
    pub sort_weights: Vec<String>,
    /// Make the image UEFI-bootable: build a FAT image from DIR and add an El Torito EFI entry.
    #[arg(long = "efi-dir", value_name = "DIR")]
    pub efi_dir: Option<PathBuf>,
    /// Path of the FAT image in the ISO; default: the spec file's `efiBootImage`, else
    /// `boot/efi.img`.
    #[arg(long = "efi-image", value_name = "PATH_IN_IMAGE")]
    pub efi_image: Option<String>,
    /// Size of the FAT image (bytes, or with K/M/G); default: the nixpkgs rule.
    #[arg(long = "efi-size", value_name = "BYTES", value_parser = parse_size)]
    pub efi_size: Option<u64>,
    /// Volume serial of the FAT image (hex; the NixOS GRUB config finds the ESP by it).
    /// Default: the spec file's `efiSerial`, else 12345678.
    #[arg(long = "efi-serial", value_name = "HEX", value_parser = serial)]
    pub efi_serial: Option<u32>,
    /// Volume label of the FAT image; default `EFIBOOT`.
    #[arg(long = "efi-label", value_name = "LABEL")]
    pub efi_label: Option<String>,
    /// System area layout: nixos (isohybrid MBR + GPT as nixpkgs' xorriso call writes),
    /// gpt (a valid GPT with an EFI System Partition) or none (El Torito only). Default: nixos
    /// with --isohybrid-mbr, gpt with --efi-dir alone, none otherwise.
    #[arg(long = "layout", value_name = "nixos|gpt|none")]
    pub layout: Option<Layout>,
    /// isohybrid MBR template (isohdpfx.bin): bytes 0–431 become the image's MBR boot code.
    #[arg(long = "isohybrid-mbr", value_name = "FILE")]
    pub isohybrid_mbr: Option<PathBuf>,
    /// GPT disk GUID; default: derived from the volume id and the epoch.
    #[arg(long = "gpt-disk-guid", value_name = "GUID", value_parser = guid)]
    pub gpt_disk_guid: Option<Guid>,
    /// The store closure, put in /nix-store.squashfs with nix-path-registration.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Progress bar, `-v` timings, `--json` report.
    #[command(flatten)]
    pub report: ReportArgs,
}

impl BuildArgs {
    /// `--boot-info-table` / `--no-boot-info-table`, the last one given; `None` for neither.
    pub fn boot_info_table(&self) -> Option<bool> {
        if self.no_boot_info_table {
            Some(false)
        } else if self.boot_info_table {
            Some(true)
        } else {
            None
        }
    }
}

fn guid(s: &str) -> Result<Guid, String> {
    Guid::parse(s).map_err(|e| e.to_string())
}

/// Parses `12345678`, `0x12345678` or `1234-5678` as a 32-bit hex serial.
pub fn serial(s: &str) -> Result<u32, String> {
    isoforge_core::spec::parse_serial(s)
}

fn block_size(s: &str) -> Result<u32, String> {
    let bytes = parse_size(s)?;
    match u32::try_from(bytes) {
        Ok(b) if b.is_power_of_two() && (4096..=1 << 20).contains(&b) => Ok(b),
        _ => Err(format!("block size {s:?} is not a power of two from 4K to 1M")),
    }
}

/// Parses a byte count with an optional K/M/G (KiB/MiB/GiB) suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("size {s:?}: expected a number of bytes, e.g. 33554432 or 32M"))?;
    let mult: u64 = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("size {s:?}: unknown suffix {suffix:?} (use K, M or G)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("100KiB"), Ok(100 << 10));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn serials() {
        assert_eq!(serial("12345678"), Ok(0x1234_5678));
        assert_eq!(serial("1234-5678"), Ok(0x1234_5678));
        assert!(serial("xyz").is_err());
    }

    #[test]
    fn block_sizes() {
        assert_eq!(block_size("128K"), Ok(128 << 10));
        assert_eq!(block_size("1M"), Ok(1 << 20));
        assert!(block_size("3000").is_err());
        assert!(block_size("2M").is_err());
    }
}
