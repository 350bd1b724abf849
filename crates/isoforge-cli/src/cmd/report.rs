//! What `isoforge build` tells while and after it builds: the progress bar, `-v` phase timings
//! and the `--json` report.
//!
//! The library reports phases and written bytes to a [`Progress`] observer and never reads
//! the clock; this observer takes the times. The progress bar (indicatif) is drawn on stderr
//! only when stderr is a terminal, so a Nix build's log gets nothing. `-v` prints one line
//! per phase to stderr. `--json` prints one JSON object to stdout instead of the summary
//! line. Its `sha256` is computed by reading the finished image back once: hashing while
//! writing cannot work, because the single-pass writer rewrites the first sectors and the
//! squashfs superblock at the end; the read-back costs one sequential pass, usually from the
//! page cache, and is done only for `--json`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use isoforge_core::image::{self, BuildReport, ImageSpec};
use isoforge_core::progress::{Phase, Progress};
use isoforge_host::output::StaleFile;
use sha2::{Digest, Sha256};

use crate::flags::low::ReportArgs;

/// Wall and CPU time of a phase (summed when it is reported more than once).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Elapsed time.
    pub wall: Duration,
    /// CPU time of all the process's threads.
    pub cpu: Duration,
}

impl Timing {
    /// How busy `cores` cores were: CPU time over wall time × cores, in percent.
    pub fn busy_percent(&self, cores: usize) -> f64 {
        let denom = self.wall.as_secs_f64() * cores.max(1) as f64;
        if denom > 0.0 {
            100.0 * self.cpu.as_secs_f64() / denom
        } else {
            0.0
        }
    }
}

/// The cores a build with `--threads N` uses (0: all).
pub fn cores(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// Prints the `-v` phase table: wall, CPU and how busy the cores were, per phase and in all.
pub fn print_timings(durations: &BTreeMap<Phase, Timing>, total: Timing, cores: usize) {
    eprintln!("{:>12}  {:>9}  {:>9}  busy of {cores} cores", "phase", "wall", "cpu");
    for (phase, t) in durations {
        eprintln!(
            "{:>12}: {:8.3} s {:8.3} s  {:5.1} %",
            phase.name(),
            t.wall.as_secs_f64(),
            t.cpu.as_secs_f64(),
            t.busy_percent(cores)
        );
    }
    eprintln!(
        "{:>12}: {:8.3} s {:8.3} s  {:5.1} %",
        "total",
        total.wall.as_secs_f64(),
        total.cpu.as_secs_f64(),
        total.busy_percent(cores)
    );
}

#[derive(Default)]
struct State {
    current: Option<(Phase, Instant, Duration)>,
    durations: BTreeMap<Phase, Timing>,
    written: u64,
    /// Input bytes compressed so far (the compress phase's bar).
    input: u64,
}

/// Prints what a build removed beside its output: one line per stale temporary file or
/// directory of a killed build, on stderr.
pub fn print_stale(stale: &StaleFile) {
    eprintln!("isoforge: removed {stale}");
}

/// The observer of commands without a progress display: it only prints the stale temporary
/// files removed ([`print_stale`]).
pub struct Notices;

impl Progress for Notices {
    fn stale_removed(&self, stale: &StaleFile) {
        print_stale(stale);
    }
}

/// The spinner of the phases whose size is not known: bytes written so far.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}: {bytes} written ({bytes_per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The bar of the compress phase: input bytes read of the total, with percentage and ETA.
fn compress_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Takes the times of the phases and drives the progress bar.
pub struct Reporter {
    state: RefCell<State>,
    bar: Option<ProgressBar>,
    started: (Instant, Duration),
}

impl Reporter {
    /// A reporter, with a progress bar on stderr when `bar`.
    pub fn new(bar: bool) -> Reporter {
        let bar = bar.then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(spinner_style());
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        Reporter {
            state: RefCell::new(State::default()),
            bar,
            started: (Instant::now(), isoforge_host::cpu_time()),
        }
    }

    fn close(&self, now: Instant, cpu: Duration) {
        let mut st = self.state.borrow_mut();
        if let Some((p, t, c)) = st.current.take() {
            let e = st.durations.entry(p).or_default();
            e.wall += now.duration_since(t);
            e.cpu += cpu.saturating_sub(c);
        }
    }

    /// Clears the bar and returns the phase timings and the total since [`Reporter::new`].
    pub fn finish(&self) -> (BTreeMap<Phase, Timing>, Timing) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.close(Instant::now(), isoforge_host::cpu_time());
        let total = Timing {
            wall: self.started.0.elapsed(),
            cpu: isoforge_host::cpu_time().saturating_sub(self.started.1),
        };
        (self.state.borrow().durations.clone(), total)
    }
}

impl Progress for Reporter {
    fn phase_start(&self, phase: Phase, input_bytes: Option<u64>) {
        let now = Instant::now();
        let cpu = isoforge_host::cpu_time();
        self.close(now, cpu);
        self.state.borrow_mut().current = Some((phase, now, cpu));
        if let Some(bar) = &self.bar {
            match (phase, input_bytes) {
                // Compression reads a known number of input bytes: a real bar with ETA.
                (Phase::Compress, Some(total)) => {
                    self.state.borrow_mut().input = 0;
                    bar.set_style(compress_style());
                    bar.set_length(total);
                    bar.set_position(0);
                    bar.set_message(phase.name());
                }
                (_, Some(n)) => {
                    bar.set_style(spinner_style());
                    bar.set_message(format!("{} ({} MiB in)", phase.name(), n >> 20));
                }
                (_, None) => {
                    bar.set_style(spinner_style());
                    bar.set_message(phase.name());
                }
            }
        }
    }

    fn input_read(&self, n: u64, cache: Option<(u64, u64)>) {
        let mut st = self.state.borrow_mut();
        st.input += n;
        if let Some(bar) = &self.bar {
            bar.set_position(st.input);
            if let Some((hits, lookups)) = cache {
                let share = if lookups > 0 { 100.0 * hits as f64 / lookups as f64 } else { 0.0 };
                bar.set_message(format!("compress, {share:.0} % from cache"));
            }
        }
    }

    fn phase_end(&self, _phase: Phase) {
        self.close(Instant::now(), isoforge_host::cpu_time());
    }

    fn written(&self, n: u64) {
        let mut st = self.state.borrow_mut();
        st.written += n;
        if let Some(bar) = &self.bar {
            // While compressing, the bar counts input bytes instead.
            if !matches!(st.current, Some((Phase::Compress, ..))) {
                bar.set_position(st.written);
            }
        }
    }

    fn stale_removed(&self, stale: &StaleFile) {
        match &self.bar {
            Some(bar) => bar.suspend(|| print_stale(stale)),
            None => print_stale(stale),
        }
    }
}

/// Builds `spec` into `output` and prints what `args` asks for.
pub fn build_and_report(spec: &ImageSpec, output: &Path, args: &ReportArgs) -> anyhow::Result<()> {
    let reporter = Reporter::new(std::io::stderr().is_terminal());
    let result = image::build_to_path_with(spec, output, &reporter);
    let (durations, total) = reporter.finish();
    let report = result.with_context(|| format!("building {}", output.display()))?;
    print_cache(report.squashfs.as_ref(), args.verbose);
    if args.verbose {
        let threads = spec.store.as_ref().map_or(0, |s| s.squashfs.threads);
        print_timings(&durations, total, cores(threads));
    }
    if args.json {
        let sha = sha256_file(output)?;
        println!("{}", json(output, &report, &durations, total, &sha)?);
    } else {
        println!(
            "{}: {} bytes, {} blocks ({} bytes written)",
            output.display(),
            report.image_size,
            report.volume_blocks,
            report.bytes_written
        );
    }
    Ok(())
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading back {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading back {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Prints the block cache's warnings (always) and, with `verbose`, what it did, on stderr.
pub fn print_cache(summary: Option<&isoforge_squashfs::Summary>, verbose: bool) {
    let Some(cache) = summary.and_then(|s| s.cache.as_ref()) else { return };
    for w in &cache.warnings {
        eprintln!("isoforge: warning: {w}");
    }
    if verbose {
        let c = &cache.counters;
        eprintln!(
            "cache {}: {} blocks looked up, {} hits, {} compressed, {} stored, {} corrupt ({} bytes read, {} bytes stored)",
            cache.dir.display(),
            c.lookups,
            c.hits,
            c.misses,
            c.stores,
            c.corrupt,
            c.bytes_read,
            c.bytes_stored
        );
    }
}

/// The `"cache"` object of the JSON reports: what the block cache did, or `null` without one.
pub fn cache_json(summary: Option<&isoforge_squashfs::Summary>) -> serde_json::Value {
    let Some(cache) = summary.and_then(|s| s.cache.as_ref()) else { return serde_json::Value::Null };
    let c = &cache.counters;
    serde_json::json!({
        "dir": cache.dir,
        "mode": cache.mode,
        "lookups": c.lookups,
        "hits": c.hits,
        "misses": c.misses,
        "corrupt": c.corrupt,
        "stores": c.stores,
        "store_failures": c.store_failures,
        "bytes_read": c.bytes_read,
        "bytes_stored": c.bytes_stored,
        "warnings": cache.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
    })
}

/// A number written with a fixed count of decimals (`{:.6}` seconds, `{:.4}` ratios), as the
/// report always wrote them.
struct Fixed(f64, usize);

impl serde::Serialize for Fixed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = format!("{:.*}", self.1, self.0);
        serde_json::value::RawValue::from_string(text)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

#[derive(serde::Serialize)]
struct PhaseJson {
    name: &'static str,
    seconds: Fixed,
    cpu_seconds: Fixed,
}

#[derive(serde::Serialize)]
struct SquashfsJson {
    bytes: u64,
    bytes_used: u64,
    file_bytes: u64,
    data_bytes: u64,
    files: u64,
    duplicate_files: u64,
    directories: u64,
    symlinks: u64,
    compression_ratio: Fixed,
}

/// The `--json` report of `isoforge build`: one line, keys in this order.
#[derive(serde::Serialize)]
struct BuildJson<'a> {
    output: std::borrow::Cow<'a, str>,
    image_bytes: u64,
    volume_blocks: u64,
    bytes_written: u64,
    sha256: &'a str,
    squashfs: Option<SquashfsJson>,
    cache: serde_json::Value,
    phases: Vec<PhaseJson>,
    total_seconds: Fixed,
}

fn json(
    output: &Path,
    report: &BuildReport,
    durations: &BTreeMap<Phase, Timing>,
    total: Timing,
    sha256: &str,
) -> anyhow::Result<String> {
    let phases = durations
        .iter()
        .map(|(p, t)| PhaseJson {
            name: p.name(),
            seconds: Fixed(t.wall.as_secs_f64(), 6),
            cpu_seconds: Fixed(t.cpu.as_secs_f64(), 6),
        })
        .collect();
    let squashfs = report.squashfs.as_ref().map(|s| {
        let ratio = if s.bytes_used > 0 { s.file_bytes as f64 / s.bytes_used as f64 } else { 0.0 };
        SquashfsJson {
            bytes: s.total_size,
            bytes_used: s.bytes_used,
            file_bytes: s.file_bytes,
            data_bytes: s.data_bytes,
            files: s.files,
            duplicate_files: s.duplicate_files,
            directories: s.dirs,
            symlinks: s.symlinks,
            compression_ratio: Fixed(ratio, 4),
        }
    });
    let report = BuildJson {
        output: output.to_string_lossy(),
        image_bytes: report.image_size,
        volume_blocks: report.volume_blocks.into(),
        bytes_written: report.bytes_written,
        sha256,
        squashfs,
        cache: cache_json(report.squashfs.as_ref()),
        phases,
        total_seconds: Fixed(total.wall.as_secs_f64(), 6),
    };
    serde_json::to_string(&report).context("cannot write the report as JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_decimals_and_escapes() {
        assert_eq!(serde_json::to_string(&Fixed(0.5, 6)).unwrap(), "0.500000");
        assert_eq!(serde_json::to_string(&Fixed(12.0, 4)).unwrap(), "12.0000");
        assert_eq!(serde_json::to_string("a\"b\\c\n").unwrap(), "\"a\\\"b\\\\c\\n\"");
    }
}
