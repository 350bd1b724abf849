//! `isoforge verify`: consistency checks; exit 0 clean, 1 problems found, 2 unreadable.

use std::io::Write;
use std::path::PathBuf;

use isoforge_inspect::verify::{has_problems, verify, Severity};

/// Arguments of `isoforge verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The image (or netboot initrd) to check.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
}

/// Runs `isoforge verify`: one line per finding (severity, where, expected vs found), then a
/// count; the exit status says whether errors or warnings were found.
pub fn run(args: &VerifyArgs) -> anyhow::Result<i32> {
    let findings = match super::inspect::read_initrd(&args.image)? {
        Some(info) => isoforge_inspect::initrd::verify(&info),
        None => {
            let (file, image) = super::inspect::read_image(&args.image)?;
            verify(&image, &file)?
        }
    };
    let mut out = std::io::stdout().lock();
    for f in &findings {
        writeln!(out, "{f}")?;
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    writeln!(
        out,
        "{}: {} errors, {} warnings, {} notes",
        args.image.display(),
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    )?;
    Ok(if has_problems(&findings) { 1 } else { 0 })
}
