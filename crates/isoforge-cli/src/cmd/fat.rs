//! `isoforge fat`: build a FAT image (an EFI system partition) from a directory.

use std::path::PathBuf;

use anyhow::Context;
use isoforge_core::fat::{FatOptions, FatPlan, DEFAULT_LABEL, DEFAULT_SERIAL};
use isoforge_core::time::DateField;
use isoforge_host::output::AtomicOutput;

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
    /// Volume serial number in hex (`12345678`, `0x12345678` or `1234-5678`).
    #[arg(long, value_name = "HEX", value_parser = serial_value, default_value = "12345678")]
    pub serial: u32,
    /// Volume label: up to 11 printable ASCII characters, upper-cased; "" for none.
    #[arg(long, value_name = "LABEL", default_value = DEFAULT_LABEL)]
    pub label: String,
    /// Date of every entry, in seconds since 1970 (else SOURCE_DATE_EPOCH, else 1980-01-01).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub epoch: Option<i64>,
}

// The flag's default must stay the library's.
const _: () = assert!(DEFAULT_SERIAL == 0x1234_5678);

/// Parses `12345678`, `0x12345678` or `1234-5678` as a 32-bit hex serial.
pub fn serial_value(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = t.chars().filter(|&c| c != '-').collect();
    if digits.is_empty() || digits.len() > 8 {
        return Err(format!("serial {s:?}: expected up to 8 hex digits"));
    }
    u32::from_str_radix(&digits, 16).map_err(|_| format!("serial {s:?}: not a hex number"))
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

/// Runs `isoforge fat`.
pub fn run(args: &FatArgs) -> anyhow::Result<()> {
    let resolved = super::epoch::resolve(args.epoch, None)?;
    let epoch = resolved.epoch;
    epoch.check(DateField::Fat).map_err(|e| resolved.name(e))?;
    let dir =
        isoforge_core::tree::scan(&args.dir).with_context(|| format!("reading {}", args.dir.display()))?;
    let opts = FatOptions { size: args.size, serial: args.serial, label: args.label.clone(), epoch };
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
        assert_eq!(serial_value("12345678"), Ok(0x1234_5678));
        assert_eq!(serial_value("0xDEADbeef"), Ok(0xDEAD_BEEF));
        assert_eq!(serial_value("1234-5678"), Ok(0x1234_5678));
        assert!(serial_value("123456789").is_err());
        assert!(serial_value("xyz").is_err());
    }
}
