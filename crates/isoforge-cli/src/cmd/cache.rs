//! `isoforge cache`: look at (`stats`) and shrink (`gc`) a block cache made by
//! `--cache DIR` builds. The work is the library's (`isoforge_squashfs::cache`); this
//! prints it.

use std::io::Write;
use std::path::PathBuf;

use isoforge_squashfs::cache::{self, CacheStats, GcReport, DEFAULT_RECENT_BUILDS};

/// Arguments of `isoforge cache`.
#[derive(clap::Args, Debug)]
pub struct CacheArgs {
    /// What to do with the cache.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// The subcommands of `isoforge cache`.
#[derive(clap::Subcommand, Debug)]
pub enum CacheCommand {
    /// Entries, bytes on disk and the hit rate of the last builds.
    Stats(StatsArgs),
    /// Remove least recently used entries (and stale temporaries, stray files) until the
    /// entries take at most SIZE bytes.
    Gc(GcArgs),
}

/// Arguments of `isoforge cache stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// The cache directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// How many of the last builds the hit rate covers.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RECENT_BUILDS)]
    pub builds: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `isoforge cache gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// The cache directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The most bytes the entries may take afterwards: a byte count, or with a K, M or G suffix
    /// (powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = crate::flags::low::parse_size)]
    pub max_size: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `isoforge cache …`.
pub fn run(args: &CacheArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match &args.command {
        CacheCommand::Stats(a) => {
            let s = cache::stats(&a.dir, a.builds)?;
            if a.json {
                writeln!(out, "{}", with_dir(&a.dir, &s)?)?;
            } else {
                print_stats(&mut out, a, &s)?;
            }
        }
        CacheCommand::Gc(a) => {
            let r = cache::gc(&a.dir, a.max_size)?;
            if a.json {
                writeln!(out, "{}", with_dir(&a.dir, &r)?)?;
            } else {
                print_gc(&mut out, a, &r)?;
            }
        }
    }
    Ok(())
}

/// The JSON of `value` with `"dir"` first.
fn with_dir(dir: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut map = serde_json::Map::new();
    map.insert("dir".into(), dir.to_string_lossy().into_owned().into());
    if let serde_json::Value::Object(fields) = serde_json::to_value(value)? {
        map.extend(fields);
    }
    Ok(serde_json::Value::Object(map).to_string())
}

fn print_stats(out: &mut impl Write, a: &StatsArgs, s: &CacheStats) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} entries, {} ({} on disk)",
        a.dir.display(),
        s.entries,
        size(s.bytes),
        size(s.disk_bytes)
    )?;
    if s.temporaries > 0 || s.garbage > 0 {
        writeln!(
            out,
            "{} temporaries, {} stray files (`isoforge cache gc` removes the stale ones)",
            s.temporaries, s.garbage
        )?;
    }
    match s.hit_rate {
        Some(rate) => writeln!(
            out,
            "last {} of {} builds: {} lookups, {} hits ({:.1} %)",
            s.recent.len(),
            s.builds,
            s.recent_lookups,
            s.recent_hits,
            rate * 100.0
        )?,
        None => writeln!(out, "last {} of {} builds: no lookups", s.recent.len(), s.builds)?,
    }
    for b in &s.recent {
        let c = &b.counters;
        let rate = if c.lookups > 0 {
            format!("{:.1} %", c.hits as f64 * 100.0 / c.lookups as f64)
        } else {
            "-".into()
        };
        writeln!(
            out,
            "  {} (block size {}): {} lookups, {} hits ({rate}), {} corrupt, {} stored, {} store failures",
            b.compression, b.block_size, c.lookups, c.hits, c.corrupt, c.stores, c.store_failures
        )?;
    }
    if s.bad_log_lines > 0 {
        writeln!(out, "{} unreadable lines in the build log", s.bad_log_lines)?;
    }
    Ok(())
}

fn print_gc(out: &mut impl Write, a: &GcArgs, r: &GcReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: removed {} entries ({}), {} stale temporaries, {} stray files; kept {} entries ({}, at most {})",
        a.dir.display(),
        r.removed_entries,
        size(r.removed_bytes),
        r.removed_temporaries,
        r.removed_garbage,
        r.kept_entries,
        size(r.kept_bytes),
        size(r.max_size)
    )?;
    if r.busy_temporaries > 0 {
        writeln!(out, "{} temporaries left: a build is writing them", r.busy_temporaries)?;
    }
    Ok(())
}

/// `123 B`, `4.0 KiB`, `56.7 MiB`, `1.2 GiB`.
fn size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, scale) in UNITS {
        if n >= scale {
            return format!("{:.1} {unit}", n as f64 / scale as f64);
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(3 << 20 | 1 << 19), "3.5 MiB");
        assert_eq!(size(2 << 30), "2.0 GiB");
    }
}
