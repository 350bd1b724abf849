//! The build pipeline: grafts and options in, one image file out.
//!
//! [`ImageSpec`] says what goes into the image; [`plan_image`] builds the input tree and the
//! ISO plan (pure except for reading metadata and the BIOS boot file's checksum);
//! [`write_image`] streams the plan into any `Write`; [`build_to_path`] writes a file safely
//! (temporary beside the target, renamed when complete).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::iso9660::plan::{self, IsoError, IsoOptions, IsoPlan};
use crate::iso9660::write::{self as iso_write, ImageFrame, NoGenerated};
use crate::output::{AtomicOutput, OutputError};
use crate::tree::{Tree, TreeError};

/// Errors of the whole pipeline.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A graft argument without `=`.
    #[error("graft {0:?} is not TARGET=SOURCE")]
    BadGraft(String),
    /// Building the input tree failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Planning or writing the ISO failed.
    #[error(transparent)]
    Iso(#[from] IsoError),
    /// The output file could not be created or committed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// One graft: an image path and the host path whose contents go there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graft {
    /// Path in the image.
    pub target: String,
    /// Host file, directory or symlink.
    pub source: PathBuf,
}

impl Graft {
    /// Parses `TARGET=SOURCE` (the first `=` splits; xorriso's `\=` escaping is not needed
    /// for the paths isoforge is given).
    pub fn parse(s: &str) -> Result<Graft, BuildError> {
        let (t, src) = s.split_once('=').ok_or_else(|| BuildError::BadGraft(s.to_string()))?;
        if src.is_empty() {
            return Err(BuildError::BadGraft(s.to_string()));
        }
        Ok(Graft { target: t.to_string(), source: PathBuf::from(src) })
    }
}

/// Everything an image is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Grafted contents.
    pub grafts: Vec<Graft>,
    /// ISO 9660 options (volume id, epoch, boot entries, sort weights).
    pub iso: IsoOptions,
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Bytes written (the image size).
    pub bytes_written: u64,
    /// ISO volume size in 2048-byte blocks.
    pub volume_blocks: u32,
}

/// Builds the input tree from the grafts. The result does not depend on graft order.
pub fn build_tree(grafts: &[Graft]) -> Result<Tree, BuildError> {
    let mut tree = Tree::new();
    for g in grafts {
        tree.graft(&g.target, &g.source)?;
    }
    Ok(tree)
}

/// Plans the image: input tree, ISO plan, and the frame around it.
pub fn plan_image(spec: &ImageSpec) -> Result<(IsoPlan, ImageFrame), BuildError> {
    let tree = build_tree(&spec.grafts)?;
    let plan = plan::plan(tree, &spec.iso)?;
    let frame = ImageFrame::plain(&plan);
    Ok((plan, frame))
}

/// Plans and writes the image into `out`.
pub fn write_image(spec: &ImageSpec, out: &mut dyn Write) -> Result<BuildReport, BuildError> {
    let (plan, frame) = plan_image(spec)?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let bytes_written = iso_write::write_image(&plan, &frame, &mut NoGenerated, &mut w)?;
    w.flush().map_err(IsoError::Write)?;
    Ok(BuildReport { bytes_written, volume_blocks: plan.volume_blocks })
}

/// Plans and writes the image to `path`, through a temporary file beside it that is renamed
/// only when the image is complete. On error the target is untouched and no temporary is
/// left behind. Planning happens before the temporary file is created.
pub fn build_to_path(spec: &ImageSpec, path: &Path) -> Result<BuildReport, BuildError> {
    let (plan, frame) = plan_image(spec)?;
    let mut out = AtomicOutput::create(path)?;
    let bytes_written = {
        let mut w = BufWriter::with_capacity(1 << 20, out.file());
        let n = iso_write::write_image(&plan, &frame, &mut NoGenerated, &mut w)?;
        w.flush().map_err(IsoError::Write)?;
        n
    };
    out.commit()?;
    Ok(BuildReport { bytes_written, volume_blocks: plan.volume_blocks })
}
