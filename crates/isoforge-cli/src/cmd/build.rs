//! `isoforge build`: resolve the flags (and the spec file) into an image, build it into a file
//! or a Nix-style output directory, print a summary.

use std::path::Path;

use anyhow::Context;
use isoforge_core::outputs::build_out_dir_with;

use super::report::{self, Notices};
use crate::flags::low::BuildArgs;
use crate::flags::resolve::{self, Output};

/// Runs `isoforge build`.
pub fn run(args: &BuildArgs) -> anyhow::Result<()> {
    let plan = resolve::build(args)?;
    match &plan.output {
        Output::File(output) => report::build_and_report(&plan.image, output, &args.report),
        Output::Dir { dir, options } => {
            let report = build_out_dir_with(&plan.image, options, dir, &Notices)
                .with_context(|| format!("building {}", dir.display()))?;
            report::print_cache(report.build.squashfs.as_ref(), args.report.verbose);
            print_summary(&report.image, report.size, report.build.volume_blocks, report.build.bytes_written);
            Ok(())
        }
    }
}

fn print_summary(path: &Path, size: u64, blocks: u32, written: u64) {
    println!("{}: {size} bytes, {blocks} blocks ({written} bytes written)", path.display());
}
