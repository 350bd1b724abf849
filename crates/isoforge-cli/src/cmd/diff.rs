//! `isoforge diff`: every differing byte range of two images, named; with `--summary`, the
//! verdict and the differences grouped by cause. Exit 0 identical, 1 different, 2 error.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use isoforge_inspect::diff::{diff, to_json};

/// Arguments of `isoforge diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The first image.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second image.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Print JSON (schema `isoforge-diff/1`, with --summary `isoforge-diff-summary/1`; see
    /// docs/inspect-json.md).
    #[arg(long)]
    pub json: bool,
    /// Print the verdict, then the differences grouped by cause (dates and times, ids, labels,
    /// file contents by file, recomputed checksums and tables, layout shifts explained or not),
    /// with counts.
    #[arg(long)]
    pub summary: bool,
    /// Report at most N differences (the rest are counted).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max: usize,
}

/// Runs `isoforge diff`.
pub fn run(args: &DiffArgs) -> anyhow::Result<i32> {
    if let (Some(a), Some(b)) = (super::inspect::read_initrd(&args.a)?, super::inspect::read_initrd(&args.b)?)
    {
        let lines = isoforge_inspect::initrd::diff(&a, &b);
        let mut out = std::io::stdout().lock();
        if args.summary && !lines.is_empty() {
            // Initrds are compared member by member: the verdict, then those lines.
            writeln!(out, "differ: {} differences", lines.len())?;
        }
        for l in &lines {
            writeln!(out, "{l}")?;
        }
        if lines.is_empty() {
            writeln!(out, "{}", if args.summary { "identical" } else { "identical members" })?;
        }
        return Ok(if lines.is_empty() { 0 } else { 1 });
    }
    let open =
        |p: &std::path::Path| std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()));
    let (a, b) = (open(&args.a)?, open(&args.b)?);
    // The summary counts every difference whatever --max; none need be kept.
    let max = if args.summary { 0 } else { args.max };
    let report = diff(&a, &b, max)
        .with_context(|| format!("cannot compare {} and {}", args.a.display(), args.b.display()))?;
    let mut out = std::io::stdout().lock();
    if args.summary {
        let s = report.summary();
        if args.json {
            let mut text = serde_json::to_string_pretty(&s).context("cannot write the summary as JSON")?;
            text.push('\n');
            out.write_all(text.as_bytes())?;
        } else {
            write!(out, "{s}")?;
        }
    } else if args.json {
        out.write_all(isoforge_inspect::json::pretty(&to_json(&report))?.as_bytes())?;
    } else {
        for d in &report.differences {
            writeln!(out, "{d}")?;
        }
        if report.omitted > 0 {
            writeln!(out, "… {} more differences omitted (--max {})", report.omitted, args.max)?;
        }
        if report.identical() {
            writeln!(out, "identical")?;
        }
    }
    Ok(if report.identical() { 0 } else { 1 })
}
