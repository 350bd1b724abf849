//! `isoforge netboot`: the NixOS netboot output from a closure, as nixpkgs'
//! `nixos/modules/installer/netboot/netboot.nix` builds it:
//!
//! ```text
//! DIR/bzImage                            the kernel, copied (checked: a bzImage header)
//! DIR/initrd                             the given initrd (checked: cpio or compressed cpio),
//!                                        zero padding to 4 bytes, then one compressed cpio
//!                                        segment holding /nix-store.squashfs
//! DIR/netboot.ipxe                       #!ipxe / kernel … / initrd initrd / boot
//! DIR/nix-support/hydra-build-products   file bzImage/initrd/ipxe lines
//! ```
//!
//! The squashfs streams straight into the initrd's segment ([`segment`] explains how with a
//! compressor); the output directory is assembled exactly as `build --out-dir` does
//! ([`crate::outputs`]): every file is written unnamed and linked into a temporary directory
//! renamed onto `DIR` when complete. A failure leaves nothing. The bytes depend only on the
//! inputs and the epoch (cpio mtimes; inode numbers in order).

pub mod segment;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use isoforge_host::output::{AtomicOutput, OutputError};

use crate::outputs::{assembly_dir, io_err, publish, OutputsError};
use crate::progress::{phase, report_stale, NoProgress, Phase, Progress};
use crate::store::{prepare_with, StoreError, StoreSpec, DEFAULT_SQUASHFS_PATH};
use isoforge_formats::cpio::{self, read::Compression, write::StreamError};
use isoforge_formats::time::{Epoch, EpochError};
pub use segment::{InitrdCompression, DEFAULT_INITRD_COMPRESSION};

/// Offset of the bzImage header's magic `HdrS` (Linux boot protocol, `header` at 0x202).
pub const BZIMAGE_MAGIC_OFFSET: u64 = 0x202;
/// The bzImage header's magic.
pub const BZIMAGE_MAGIC: &[u8; 4] = b"HdrS";
/// File names in the output directory, as nixpkgs names them.
pub const KERNEL_NAME: &str = "bzImage";
/// The initrd's file name.
pub const INITRD_NAME: &str = "initrd";
/// The iPXE script's file name.
pub const IPXE_NAME: &str = "netboot.ipxe";

/// Errors of `isoforge netboot`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetbootError {
    /// The store stage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The epoch does not fit.
    #[error(transparent)]
    Epoch(#[from] EpochError),
    /// An input file could not be read.
    #[error("cannot read the {what} {path}: {error}")]
    Read {
        /// `kernel` or `initrd`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The kernel has no bzImage header.
    #[error("kernel {path}: not a bzImage (no \"HdrS\" at byte 0x202, found {found}); give the kernel's bzImage, not vmlinux or a compressed kernel")]
    NotBzImage {
        /// The file.
        path: PathBuf,
        /// What is there, hex (or `end of file`).
        found: String,
    },
    /// The initrd is not a cpio archive nor a known compressed one.
    #[error("initrd {path}: not a cpio archive nor a known compressed one (starts {found}; expected cpio newc 070701/070702, or gzip, zstd, xz, lz4, bzip2 or lzma data)")]
    NotCpio {
        /// The file.
        path: PathBuf,
        /// Its first bytes, hex.
        found: String,
    },
    /// The squashfs does not fit a newc entry.
    #[error("the store squashfs is {size} bytes or more, over the {max} bytes a cpio \"newc\" entry can hold (32-bit c_filesize), so it cannot go into the initrd; use a smaller closure, stronger --compression (xz, zstd:19), or boot the ISO (isoforge build)", max = cpio::MAX_FILE_SIZE)]
    SquashfsTooLarge {
        /// How far the squashfs got before the limit.
        size: u64,
    },
    /// The squashfs could not be written.
    #[error(transparent)]
    Squashfs(#[from] isoforge_squashfs::WriteError),
    /// The cpio archive could not be written.
    #[error(transparent)]
    Cpio(#[from] cpio::CpioError),
    /// The output directory could not be assembled.
    #[error(transparent)]
    Outputs(#[from] OutputsError),
    /// An output file could not be created or committed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What a netboot output is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetbootSpec {
    /// The store closure and its squashfs settings.
    pub store: StoreSpec,
    /// The kernel (a bzImage), copied to `DIR/bzImage`.
    pub kernel: PathBuf,
    /// The stage-1 initrd the store segment is appended to.
    pub initrd: PathBuf,
    /// The system's init (`init=` in `netboot.ipxe`), e.g. `/nix/store/…-nixos-system/init`.
    pub init: String,
    /// Further kernel parameters for `netboot.ipxe` (NixOS's `boot.kernelParams`).
    pub cmdline: String,
    /// How the appended segment is compressed.
    pub compression: InitrdCompression,
}

/// What [`build_netboot`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetbootReport {
    /// The squashfs writer's summary.
    pub squashfs: isoforge_squashfs::Summary,
    /// Final paths of the kernel, initrd and script.
    pub kernel: PathBuf,
    /// The initrd.
    pub initrd: PathBuf,
    /// The iPXE script.
    pub ipxe: PathBuf,
    /// Size of the initrd.
    pub initrd_size: u64,
    /// Offset of the appended segment in the initrd.
    pub segment_offset: u64,
    /// Its length.
    pub segment_len: u64,
}

/// `netboot.ipxe`: the script netboot.nix writes. iPXE expands `${cmdline}` to what a chaining
/// script (netboot.xyz) set, or nothing.
pub(crate) fn ipxe_script(init: &str, cmdline: &str) -> String {
    let mut line = format!("kernel {KERNEL_NAME} init={init} initrd={INITRD_NAME}");
    if !cmdline.trim().is_empty() {
        line.push(' ');
        line.push_str(cmdline.trim());
    }
    format!(
        "#!ipxe\n# Kernel parameters of a chaining script come in as ${{cmdline}}.\n{line} ${{cmdline}}\ninitrd {INITRD_NAME}\nboot\n"
    )
}

/// `nix-support/hydra-build-products` for the final directory `dir`.
pub(crate) fn hydra_build_products(dir: &Path) -> String {
    format!(
        "file {KERNEL_NAME} {}\nfile initrd {}\nfile ipxe {}\n",
        dir.join(KERNEL_NAME).display(),
        dir.join(INITRD_NAME).display(),
        dir.join(IPXE_NAME).display()
    )
}

fn read_head(what: &'static str, path: &Path, at: u64, n: usize) -> Result<Vec<u8>, NetbootError> {
    let err = |error| NetbootError::Read { what, path: path.to_path_buf(), error };
    let mut f = File::open(path).map_err(err)?;
    f.seek(SeekFrom::Start(at)).map_err(err)?;
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64).read_to_end(&mut buf).map_err(err)?;
    Ok(buf)
}

/// Checks that `path` is a bzImage: `HdrS` at byte 0x202.
pub fn check_kernel(path: &Path) -> Result<(), NetbootError> {
    let head = read_head("kernel", path, BZIMAGE_MAGIC_OFFSET, 4)?;
    if head != BZIMAGE_MAGIC {
        let found =
            if head.len() < 4 { "end of file".to_string() } else { isoforge_formats::hex::hex(&head) };
        return Err(NetbootError::NotBzImage { path: path.to_path_buf(), found });
    }
    Ok(())
}

/// Checks that `path` starts as a cpio archive or a known compressed one, and returns which.
pub(crate) fn check_initrd(path: &Path) -> Result<Compression, NetbootError> {
    let head = read_head("initrd", path, 0, 8)?;
    Compression::detect(&head).ok_or_else(|| NetbootError::NotCpio {
        path: path.to_path_buf(),
        found: if head.is_empty() { "empty file".into() } else { isoforge_formats::hex::hex(&head) },
    })
}

/// Builds the netboot output directory `dir` (see the module docs).
pub fn build_netboot(spec: &NetbootSpec, epoch: Epoch, dir: &Path) -> Result<NetbootReport, NetbootError> {
    build_netboot_with(spec, epoch, dir, &NoProgress)
}

/// Appends the store segment to `out` at its current position (padded to 4 bytes first):
/// returns the squashfs summary, the segment's offset and its length.
pub fn write_store_segment<F: Write + Seek>(
    prepared: &crate::store::PreparedStore,
    options: &isoforge_squashfs::Options,
    compression: InitrdCompression,
    mtime: u32,
    progress: &dyn Progress,
    out: &mut F,
) -> Result<(isoforge_squashfs::Summary, u64, u64), NetbootError> {
    let mut summary = None;
    let (start, len) = write_segment(compression, options.threads, mtime, out, |w| {
        summary = Some(prepared.write_squashfs(options, progress, w)?);
        Ok(())
    })?;
    let summary = summary.ok_or(NetbootError::Cpio(cpio::CpioError::Io(std::io::Error::other(
        "the squashfs writer did not report",
    ))))?;
    Ok((summary, start, len))
}

/// The sink a segment's squashfs is written into.
pub(crate) type SegmentSink<'f, F> = segment::PrefixSink<segment::Body<'f, F>>;

/// [`write_store_segment`] with any producer of the squashfs bytes (which may seek back into
/// its first 96 bytes): returns the segment's offset and length.
pub(crate) fn write_segment<F: Write + Seek>(
    compression: InitrdCompression,
    threads: usize,
    mtime: u32,
    out: &mut F,
    produce: impl FnOnce(&mut SegmentSink<'_, F>) -> Result<(), isoforge_squashfs::WriteError>,
) -> Result<(u64, u64), NetbootError> {
    let io = |e: std::io::Error| NetbootError::Cpio(cpio::CpioError::Io(e));
    let here = out.stream_position().map_err(io)?;
    let start = cpio::pad4(here);
    out.write_all(&[0u8; 4][..(start - here) as usize]).map_err(io)?;
    let name = DEFAULT_SQUASHFS_PATH;
    let p = segment::prefix_len(name);
    let data = cpio::data_offset(0, name);
    // The archive may grow to the entry's largest data, its padding and the trailer.
    let limit = data + cpio::MAX_FILE_SIZE + 3 + cpio::trailer_bytes().len() as u64;
    out.seek(SeekFrom::Start(start + segment::slot_overhead(compression) + p)).map_err(io)?;
    let body = segment::body(compression, threads, out).map_err(io)?;
    let mut sink = segment::PrefixSink::new(p, limit, body);
    let result = (|| {
        let mut writer = cpio::write::Writer::new(&mut sink)?;
        match writer.add_streamed(name, cpio::S_IFREG | 0o444, mtime, |w| produce(w)) {
            Ok(_) => {}
            Err(StreamError::Cpio(e)) => return Err(NetbootError::Cpio(e)),
            Err(StreamError::Producer(e)) => return Err(NetbootError::Squashfs(e)),
        }
        writer.finish()?;
        Ok(())
    })();
    if let Err(e) = result {
        if sink.overflow || matches!(e, NetbootError::Cpio(cpio::CpioError::TooLarge { .. })) {
            return Err(NetbootError::SquashfsTooLarge { size: cpio::MAX_FILE_SIZE + 1 });
        }
        return Err(e);
    }
    let (prefix, body, body_len, crc) = sink.into_parts();
    let len = segment::finish(body, &prefix, body_len, crc, start).map_err(io)?;
    Ok((start, len))
}

/// [`build_netboot`], reporting the phases and the stale temporary files removed to `progress`.
pub fn build_netboot_with(
    spec: &NetbootSpec,
    epoch: Epoch,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<NetbootReport, NetbootError> {
    let mtime = epoch.squashfs_seconds()?;
    let dir = std::path::absolute(dir).map_err(|e| OutputsError::Io { path: dir.to_path_buf(), error: e })?;
    if let Ok(mut entries) = fs::read_dir(&dir) {
        if entries.next().is_some() {
            return Err(OutputsError::NotEmpty(dir).into());
        }
    }
    check_kernel(&spec.kernel)?;
    check_initrd(&spec.initrd)?;
    let parent = dir.parent().unwrap_or(Path::new("/")).to_path_buf();
    let Some(base) = dir.file_name().map(|n| n.to_os_string()) else {
        return Err(OutputsError::Io {
            path: dir,
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory name"),
        }
        .into());
    };
    let prepared = prepare_with(&spec.store, epoch, progress)?;
    let mut options = spec.store.squashfs;
    options.mkfs_time = mtime;

    // The initrd: the given one, then the store segment.
    let mut initrd = AtomicOutput::create_beside(&dir)?;
    report_stale(progress, &initrd);
    copy_into("initrd", &spec.initrd, initrd.file())?;
    let (summary, segment_offset, segment_len) =
        phase(progress, Phase::Compress, Some(prepared.file_bytes), || {
            write_store_segment(&prepared, &options, spec.compression, mtime, progress, initrd.file())
        })?;
    let final_initrd = dir.join(INITRD_NAME);
    let initrd_size =
        initrd.file().stream_position().map_err(io_err(&final_initrd)).map_err(NetbootError::from)?;
    let mut kernel = AtomicOutput::create_beside(&dir)?;
    copy_into("kernel", &spec.kernel, kernel.file())?;
    for (out, path) in [(&mut initrd, &final_initrd), (&mut kernel, &dir.join(KERNEL_NAME))] {
        out.file().sync_all().map_err(io_err(path)).map_err(NetbootError::from)?;
    }

    let tmp = assembly_dir(&parent, &base)?;
    let result = (|| -> Result<(), NetbootError> {
        let support = tmp.join("nix-support");
        fs::create_dir(&support).map_err(io_err(&support)).map_err(NetbootError::from)?;
        initrd.commit_to(&tmp.join(INITRD_NAME))?;
        kernel.commit_to(&tmp.join(KERNEL_NAME))?;
        let files = [
            (tmp.join(IPXE_NAME), ipxe_script(&spec.init, &spec.cmdline)),
            (support.join("hydra-build-products"), hydra_build_products(&dir)),
        ];
        for (path, text) in files {
            let mut f = File::create(&path).map_err(io_err(&path)).map_err(NetbootError::from)?;
            f.write_all(text.as_bytes()).map_err(io_err(&path)).map_err(NetbootError::from)?;
            f.sync_all().map_err(io_err(&path)).map_err(NetbootError::from)?;
        }
        for d in [&tmp, &support] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .map_err(io_err(d))
                .map_err(NetbootError::from)?;
        }
        publish(&tmp, &dir)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result?;
    Ok(NetbootReport {
        squashfs: summary,
        kernel: dir.join(KERNEL_NAME),
        initrd: final_initrd,
        ipxe: dir.join(IPXE_NAME),
        initrd_size,
        segment_offset,
        segment_len,
    })
}

/// Copies the input file `from` into `out` (at its position).
fn copy_into(what: &'static str, from: &Path, out: &mut File) -> Result<u64, NetbootError> {
    let err = |error| NetbootError::Read { what, path: from.to_path_buf(), error };
    let mut f = File::open(from).map_err(err)?;
    std::io::copy(&mut f, out).map_err(err)
}

#[cfg(test)]
mod tests;
