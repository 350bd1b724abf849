//! A Nix-style output directory, laid out as nixpkgs' make-iso9660-image derivation lays out
//! `$out`:
//!
//! ```text
//! DIR/iso/<isoName>                      the image (or <isoName>.zst with compression)
//! DIR/iso/<file>.sha256                  optional, sha256sum format ("<hex>  <file>\n")
//! DIR/nix-support/hydra-build-products   "file iso DIR/iso/<file>\n"
//! DIR/nix-support/system                 the system string, e.g. "x86_64-linux\n"
//! ```
//!
//! The directory is assembled in a temporary directory beside `DIR` and renamed onto it only
//! when complete (an existing empty `DIR` is replaced; a non-empty one is an error), so a
//! failed build leaves nothing behind. Compression is zstd level 3 (the `zstd` command's
//! default, as nixpkgs calls it) with at least one worker thread: zstd's multithreaded output
//! does not depend on the number of workers, so the `.zst` is reproducible on any machine.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::image::{build_to_path, BuildError, BuildReport, ImageSpec};

/// zstd level of a compressed image (the `zstd` command's default).
pub const ZSTD_LEVEL: i32 = 3;

/// Errors assembling an output directory.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputsError {
    /// Building the image failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The image name cannot be a file name.
    #[error("image name {0:?} is not a file name")]
    BadName(String),
    /// A file or directory of the output could not be written.
    #[error("output directory {path}: {error}")]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The output directory exists and is not empty.
    #[error("output directory {0} exists and is not empty")]
    NotEmpty(PathBuf),
}

/// What the output directory holds besides the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutDirOptions {
    /// File name of the image in `DIR/iso` (nixpkgs' `isoName`).
    pub iso_name: String,
    /// Compress the image to `<iso_name>.zst` (nixpkgs' `compressImage`).
    pub compress: bool,
    /// Write `<file>.sha256` beside the image.
    pub sha256: bool,
    /// The system string written to `nix-support/system` (e.g. `x86_64-linux`).
    pub system: String,
    /// zstd worker threads; 0 means the available cores.
    pub threads: usize,
}

/// What [`build_out_dir`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutDirReport {
    /// The image build's report (sizes of the uncompressed image).
    pub build: BuildReport,
    /// Final path of the image file (`DIR/iso/<name>` or `.zst`).
    pub image: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, lower-case hex.
    pub sha256: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutputsError + '_ {
    move |error| OutputsError::Io { path: path.to_path_buf(), error }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, OutputsError> {
    let mut f = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err(path))?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Compresses `from` into `to` with zstd at [`ZSTD_LEVEL`] on `threads` workers (0: all cores).
pub fn zstd_compress(from: &Path, to: &Path, threads: usize) -> Result<(), OutputsError> {
    let workers = match threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let workers = u32::try_from(workers).unwrap_or(u32::MAX);
    let mut input = File::open(from).map_err(io_err(from))?;
    let out = File::create(to).map_err(io_err(to))?;
    let mut enc =
        zstd::stream::Encoder::new(BufWriter::with_capacity(1 << 20, out), ZSTD_LEVEL).map_err(io_err(to))?;
    enc.multithread(workers).map_err(io_err(to))?;
    enc.include_checksum(true).map_err(io_err(to))?;
    std::io::copy(&mut input, &mut enc).map_err(io_err(to))?;
    let mut w = enc.finish().map_err(io_err(to))?;
    w.flush().map_err(io_err(to))?;
    w.get_ref().sync_all().map_err(io_err(to))?;
    Ok(())
}

/// Builds `spec` into the output directory `dir` (see the module docs).
pub fn build_out_dir(
    spec: &ImageSpec,
    options: &OutDirOptions,
    dir: &Path,
) -> Result<OutDirReport, OutputsError> {
    let name = &options.iso_name;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(OutputsError::BadName(name.clone()));
    }
    let dir = std::path::absolute(dir).map_err(io_err(dir))?;
    // Refuse a non-empty directory before the build rather than at the final rename.
    if let Ok(mut entries) = fs::read_dir(&dir) {
        if entries.next().is_some() {
            return Err(OutputsError::NotEmpty(dir));
        }
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let base = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{base}.isoforge-tmp-"))
        .tempdir_in(parent)
        .map_err(io_err(parent))?;
    let iso_dir = tmp.path().join("iso");
    let support = tmp.path().join("nix-support");
    for d in [&iso_dir, &support] {
        fs::create_dir(d).map_err(io_err(d))?;
    }
    let image = iso_dir.join(name);
    let build = build_to_path(spec, &image)?;
    let file_name = if options.compress {
        let zst = format!("{name}.zst");
        zstd_compress(&image, &iso_dir.join(&zst), options.threads)?;
        fs::remove_file(&image).map_err(io_err(&image))?;
        zst
    } else {
        name.clone()
    };
    let written = iso_dir.join(&file_name);
    let size = fs::metadata(&written).map_err(io_err(&written))?.len();
    let sha256 = sha256_file(&written)?;
    let final_image = dir.join("iso").join(&file_name);
    let mut files = vec![
        (support.join("hydra-build-products"), format!("file iso {}\n", final_image.display())),
        (support.join("system"), format!("{}\n", options.system)),
    ];
    if options.sha256 {
        files.push((iso_dir.join(format!("{file_name}.sha256")), format!("{sha256}  {file_name}\n")));
    }
    for (path, text) in files {
        fs::write(&path, text).map_err(io_err(&path))?;
    }
    for d in [tmp.path(), &iso_dir, &support] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(io_err(d))?;
    }
    let kept = tmp.keep();
    if let Err(e) = fs::rename(&kept, &dir) {
        let _ = fs::remove_dir_all(&kept);
        return Err(OutputsError::Io { path: dir, error: e });
    }
    Ok(OutDirReport { build, image: final_image, size, sha256 })
}
