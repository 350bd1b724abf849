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
//! The image is written as an unnamed file in `DIR`'s parent ([`AtomicOutput`], also the
//! `.zst`), so a failed or killed build leaves nothing while the image is being made. Only
//! when it is complete is the directory assembled: a named temporary directory
//! `.DIR.isoforge-tmp-PID-N` beside `DIR`, holding the small files, into which the image is
//! linked, renamed onto `DIR` (an existing empty `DIR` is replaced; a non-empty one is an
//! error). A directory cannot be unnamed (`O_TMPFILE` makes files only) and `rename` is the
//! one way to make a whole tree appear at once, so a kill during the assembly (a few small
//! writes and a link) leaves that temporary directory; the next build to the same `DIR`
//! removes it when its pid is no longer alive, like any stale temporary file
//! ([`isoforge_host::output::remove_stale`]). Where the file system has no unnamed files the
//! image is a named temporary beside `DIR` until then. Compression is zstd level 3 (the `zstd` command's
//! default, as nixpkgs calls it) with at least one worker thread: zstd's multithreaded output
//! does not depend on the number of workers, so the `.zst` is reproducible on any machine.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use isoforge_host::output::{temp_name, AtomicOutput, OutputError};

use crate::image::{build_to_output, BuildError, BuildReport, ImageSpec};
use crate::progress::{report_stale, NoProgress, Progress};

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
    /// The image file could not be created or committed.
    #[error(transparent)]
    Output(#[from] OutputError),
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

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutputsError + '_ {
    move |error| OutputsError::Io { path: path.to_path_buf(), error }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, OutputsError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    sha256_reader(&mut f).map_err(io_err(path))
}

fn sha256_reader(f: &mut dyn Read) -> std::io::Result<String> {
    let mut f = BufReader::with_capacity(1 << 20, f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Compresses `from` into `to` with zstd at [`ZSTD_LEVEL`] on `threads` workers (0: all cores).
/// `to` is written through an [`AtomicOutput`].
pub fn zstd_compress(from: &Path, to: &Path, threads: usize) -> Result<(), OutputsError> {
    let mut input = File::open(from).map_err(io_err(from))?;
    let mut out = AtomicOutput::create(to)?;
    zstd_stream(&mut input, out.file(), threads).map_err(io_err(to))?;
    out.commit()?;
    Ok(())
}

/// zstd of `input` (from its current position) into `out`, flushed.
fn zstd_stream(input: &mut File, out: &mut File, threads: usize) -> std::io::Result<()> {
    let workers = match threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let workers = u32::try_from(workers).unwrap_or(u32::MAX);
    let mut enc = zstd::stream::Encoder::new(BufWriter::with_capacity(1 << 20, out), ZSTD_LEVEL)?;
    enc.multithread(workers)?;
    enc.include_checksum(true)?;
    std::io::copy(input, &mut enc)?;
    enc.finish()?.flush()
}

/// Builds `spec` into the output directory `dir` (see the module docs).
pub fn build_out_dir(
    spec: &ImageSpec,
    options: &OutDirOptions,
    dir: &Path,
) -> Result<OutDirReport, OutputsError> {
    build_out_dir_with(spec, options, dir, &NoProgress)
}

/// [`build_out_dir`], reporting the build's phases and the stale temporary files and
/// directories removed beside `dir` to `progress`.
pub fn build_out_dir_with(
    spec: &ImageSpec,
    options: &OutDirOptions,
    dir: &Path,
    progress: &dyn Progress,
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
    let parent = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
    let Some(base) = dir.file_name().map(|n| n.to_os_string()) else {
        return Err(OutputsError::Io {
            path: dir,
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory name"),
        });
    };
    // The image, unnamed beside DIR (its stale temporaries share DIR's name, and so do those
    // of the assembly directory: creating it removes both kinds).
    let mut image = AtomicOutput::create_beside(&dir)?;
    report_stale(progress, &image);
    let build = build_to_output(spec, &mut image, progress)?;
    let file_name = if options.compress { format!("{name}.zst") } else { name.clone() };
    let final_image = dir.join("iso").join(&file_name);
    let mut written = if options.compress {
        let mut zst = AtomicOutput::create_beside(&dir)?;
        image.file().seek(SeekFrom::Start(0)).map_err(io_err(&final_image))?;
        zstd_stream(image.file(), zst.file(), options.threads).map_err(io_err(&final_image))?;
        drop(image);
        zst
    } else {
        image
    };
    written.file().seek(SeekFrom::Start(0)).map_err(io_err(&final_image))?;
    let sha256 = sha256_reader(written.file()).map_err(io_err(&final_image))?;
    let size = written.file().metadata().map_err(io_err(&final_image))?.len();
    // Synced before the assembly starts, so that the window in which a kill leaves a named
    // temporary directory is a few small writes, not the sync of a large image.
    written.file().sync_all().map_err(io_err(&final_image))?;

    // Assembly: a named temporary directory beside DIR, renamed onto it when complete.
    let tmp = assembly_dir(&parent, &base)?;
    let result = assemble(&tmp, &dir, written, &file_name, &final_image, &sha256, options);
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result?;
    Ok(OutDirReport { build, image: final_image, size, sha256 })
}

/// Fills the assembly directory `tmp` (the image linked in, the small files written) and
/// renames it onto `dir`.
fn assemble(
    tmp: &Path,
    dir: &Path,
    image: AtomicOutput,
    file_name: &str,
    final_image: &Path,
    sha256: &str,
    options: &OutDirOptions,
) -> Result<(), OutputsError> {
    let iso_dir = tmp.join("iso");
    let support = tmp.join("nix-support");
    for d in [&iso_dir, &support] {
        fs::create_dir(d).map_err(io_err(d))?;
    }
    image.commit_to(&iso_dir.join(file_name))?;
    let mut files = vec![
        (support.join("hydra-build-products"), format!("file iso {}\n", final_image.display())),
        (support.join("system"), format!("{}\n", options.system)),
    ];
    if options.sha256 {
        files.push((iso_dir.join(format!("{file_name}.sha256")), format!("{sha256}  {file_name}\n")));
    }
    for (path, text) in files {
        let mut f = File::create(&path).map_err(io_err(&path))?;
        f.write_all(text.as_bytes()).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
    }
    for d in [tmp, &iso_dir, &support] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(io_err(d))?;
    }
    publish(tmp, dir)
}

/// Creates the named temporary directory `.BASE.isoforge-tmp-PID-N` in `parent` in which an
/// output directory is assembled (see the module docs).
pub(crate) fn assembly_dir(parent: &Path, base: &std::ffi::OsStr) -> Result<PathBuf, OutputsError> {
    let pid = std::process::id();
    let mut n = 0;
    loop {
        let tmp = parent.join(temp_name(base, pid, n));
        match fs::create_dir(&tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(OutputsError::Io { path: tmp, error: e }),
        }
    }
}

/// Renames the complete assembly directory `tmp` onto `dir` and syncs their parent.
pub(crate) fn publish(tmp: &Path, dir: &Path) -> Result<(), OutputsError> {
    // Fault point: a kill here leaves the complete temporary directory beside DIR.
    isoforge_host::fault::point("outdir-assembled");
    fs::rename(tmp, dir).map_err(io_err(dir))?;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    File::open(parent).and_then(|d| d.sync_all()).map_err(io_err(parent))?;
    Ok(())
}
