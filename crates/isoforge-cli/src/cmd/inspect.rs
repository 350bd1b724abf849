//! `isoforge inspect`: what every structure of an image holds.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use isoforge_inspect::{initrd, json, text, Image};

/// Arguments of `isoforge inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The image (or netboot initrd) to read.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Print JSON (schema `isoforge-inspect/1`, see docs/inspect-json.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also list every entry of both hierarchies and of embedded file systems.
    #[arg(long)]
    pub tree: bool,
}

/// Opens `path` and reads its model; errors name the path.
pub fn read_image(path: &std::path::Path) -> anyhow::Result<(std::fs::File, Image)> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let image = Image::read(&file).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((file, image))
}

/// The initramfs model of `path` when it starts like one (cpio or compressed cpio), else
/// `None` (an image).
pub fn read_initrd(path: &std::path::Path) -> anyhow::Result<Option<initrd::InitrdInfo>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if !initrd::looks_like_initrd(&file) {
        return Ok(None);
    }
    Ok(Some(initrd::read(&file).with_context(|| format!("cannot read {}", path.display()))?))
}

/// Runs `isoforge inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<i32> {
    if let Some(info) = read_initrd(&args.image)? {
        let out = if args.json {
            json::pretty(&initrd::json(&info, args.tree))?
        } else {
            initrd::text(&info, args.tree)
        };
        std::io::stdout().lock().write_all(out.as_bytes())?;
        return Ok(0);
    }
    let (_file, image) = read_image(&args.image)?;
    let out = if args.json {
        json::pretty(&json::image(&image, args.tree))?
    } else {
        text::summary(&image, args.tree)
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(0)
}
