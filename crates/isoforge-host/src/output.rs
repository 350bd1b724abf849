//! Output files that appear at their path complete, or not at all, and leave nothing beside
//! it when the build is killed.
//!
//! [`AtomicOutput`] is the one writer of every file isoforge produces: ISO images, store
//! squashfs images, FAT images, and the image of an output directory.
//!
//! # Unnamed files (Linux)
//!
//! The file is first an unnamed file: `open(DIR, O_TMPFILE | O_RDWR, 0o666)` in the target's
//! directory, so the umask applies as to any newly created file and the file system is the
//! target's. The kernel frees an unnamed file when its last descriptor closes, so a `kill -9`,
//! an OOM kill or a power cut at any moment before [`AtomicOutput::commit`] leaves no file at
//! all. `commit` syncs the file and gives it its name with `linkat` from `/proc/self/fd/N`
//! (`AT_SYMLINK_FOLLOW`; `AT_EMPTY_PATH` would need `CAP_DAC_READ_SEARCH`), then syncs the
//! directory.
//!
//! `linkat` cannot replace an existing file. When the target exists, the file is linked under
//! a temporary name (below) and `renameat` moves it over the target in one step. A kill in the
//! microseconds between the two leaves that named temporary beside the previous, intact
//! target; the next output to the same target removes it (stale files, below).
//!
//! # Named temporary files (fallback)
//!
//! Where the file system refuses `O_TMPFILE` (`EOPNOTSUPP`, `EISDIR`, `EINVAL`, or `ENOENT` on
//! old kernels), where `/proc/self/fd` is not mounted, and off Linux, the file is written under
//! a temporary name `.NAME.isoforge-tmp-PID-N` beside the target and renamed over it when
//! complete; on error or drop it is removed. A killed build leaves it behind.
//!
//! # Stale temporary files
//!
//! [`AtomicOutput::create`] first calls [`remove_stale`]: every entry of the target's
//! directory named `.NAME.isoforge-tmp-PID-N` for the same `NAME`, owned by this user, whose
//! process is not alive (`kill(PID, 0)` answers `ESRCH`) is removed, a directory with its
//! contents (output directories are assembled under such names). A live process is left
//! alone, even one that reused the pid of a killed build: a later output removes the file
//! once that process has ended. Pids are those of this pid namespace; builds in different pid
//! namespaces (containers) must not write to the same target. The library never prints: what
//! was removed is returned ([`AtomicOutput::stale_removed`]) for the caller to report.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use thiserror::Error;

use crate::fault;

/// What follows `.NAME` in a temporary name: `.NAME.isoforge-tmp-PID-N`.
pub const TEMP_MARK: &str = ".isoforge-tmp-";

/// How many temporary names `.NAME.isoforge-tmp-PID-N` one process tries (`N` from 0) before
/// giving up.
const TEMP_TRIES: u32 = 1000;

/// Errors creating or committing an output, or removing stale temporary files. Each names the
/// requested output path.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output path has no file name (`/`, `..`).
    #[error("output path {target} does not name a file")]
    NotAFileName {
        /// The requested output path.
        target: PathBuf,
    },
    /// The output file could not be created (missing directory, no permission, a directory at
    /// the target, …).
    #[error("cannot create the output file {target}: {error}")]
    Create {
        /// The requested output path.
        target: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// Syncing the finished file or giving it its name failed (a full disk shows here as
    /// "No space left on device").
    #[error("cannot finish writing {target}: {error}")]
    Commit {
        /// The requested output path.
        target: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The target's directory could not be listed for stale temporary files.
    #[error("cannot look for stale temporary files of {target} in {dir}: {error}")]
    ListDir {
        /// The requested output path.
        target: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A stale temporary file of a killed build could not be removed.
    #[error("cannot remove {path}, left beside {target} by a killed build (pid {pid}): {error}")]
    RemoveStale {
        /// The requested output path.
        target: PathBuf,
        /// The stale file or directory.
        path: PathBuf,
        /// The pid in its name.
        pid: u32,
        /// The underlying error.
        error: io::Error,
    },
}

/// A temporary file (or directory) of a killed build, removed by [`remove_stale`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleFile {
    /// Its path (the target's directory joined with its name).
    pub path: PathBuf,
    /// The pid in its name: the build that left it, no longer alive.
    pub pid: u32,
    /// It was a directory (an output directory being assembled) and was removed with its
    /// contents.
    pub directory: bool,
}

impl fmt::Display for StaleFile {
    /// `stale temporary file PATH left by a killed build (pid N)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.directory { "directory" } else { "file" };
        write!(f, "stale temporary {kind} {} left by a killed build (pid {})", self.path.display(), self.pid)
    }
}

/// The temporary name `.NAME.isoforge-tmp-PID-N` of the target file name `name`.
///
/// The pid only keeps concurrent builds apart and tells stale files from live ones; it never
/// reaches the output bytes.
pub fn temp_name(name: &OsStr, pid: u32, n: u32) -> OsString {
    let mut v = temp_prefix(name);
    v.extend_from_slice(format!("{pid}-{n}").as_bytes());
    OsString::from_vec(v)
}

/// The pid of `entry` when it is a temporary name of the target file name `name`
/// (`.NAME.isoforge-tmp-PID-N`, both numbers decimal), else `None`.
pub fn temp_pid(name: &OsStr, entry: &OsStr) -> Option<u32> {
    let rest = entry.as_bytes().strip_prefix(temp_prefix(name).as_slice())?;
    let (pid, n) = std::str::from_utf8(rest).ok()?.split_once('-')?;
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !decimal(pid) || !decimal(n) {
        return None;
    }
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn temp_prefix(name: &OsStr) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + 1 + TEMP_MARK.len() + 16);
    v.push(b'.');
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(TEMP_MARK.as_bytes());
    v
}

/// True when no process `pid` exists in this pid namespace (`kill(pid, 0)` answers `ESRCH`).
/// A process of another user (`EPERM`) is alive; pid 0 and pids beyond `i32` are never taken
/// for dead.
pub fn process_is_gone(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
}

/// The directory and file name of `target` (`.` for a bare file name).
fn split(target: &Path) -> Result<(PathBuf, OsString), OutputError> {
    let name =
        target.file_name().ok_or_else(|| OutputError::NotAFileName { target: target.to_path_buf() })?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_os_string()))
}

/// Removes the temporary files and directories of killed builds beside `target` (see the
/// module docs) and returns them, sorted by path. A missing directory holds none.
pub fn remove_stale(target: &Path) -> Result<Vec<StaleFile>, OutputError> {
    let (dir, name) = split(target)?;
    let list_err = |error| OutputError::ListDir { target: target.to_path_buf(), dir: dir.clone(), error };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(list_err(e)),
    };
    let me = rustix::process::geteuid().as_raw();
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(list_err)?;
        let entry_name = entry.file_name();
        let Some(pid) = temp_pid(&name, &entry_name) else { continue };
        let path = dir.join(&entry_name);
        // Gone meanwhile (another build removed it): nothing to do.
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.uid() != me || !process_is_gone(pid) {
            continue;
        }
        let directory = meta.is_dir();
        let result = if directory { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        match result {
            Ok(()) => removed.push(StaleFile { path, pid, directory }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(OutputError::RemoveStale { target: target.to_path_buf(), path, pid, error })
            }
        }
    }
    removed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(removed)
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// `rw-rw-rw-`, narrowed by the umask as for any new file.
fn file_mode() -> Mode {
    Mode::RUSR | Mode::WUSR | Mode::RGRP | Mode::WGRP | Mode::ROTH | Mode::WOTH
}

/// An unnamed file in `dir`, or `None` where the file system refuses `O_TMPFILE` or
/// `/proc/self/fd` is missing.
#[cfg(target_os = "linux")]
fn open_unnamed(dir: &OwnedFd) -> io::Result<Option<File>> {
    use rustix::io::Errno;
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    match rustix::fs::openat(dir, ".", OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, file_mode()) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(e) if [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL, Errno::NOENT].contains(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_unnamed(_dir: &OwnedFd) -> io::Result<Option<File>> {
    Ok(None)
}

/// A new named temporary file `.NAME.isoforge-tmp-PID-N` in `dir`.
fn open_named(dir: &OwnedFd, name: &OsStr) -> io::Result<(File, OsString)> {
    let pid = std::process::id();
    let mut n = 0;
    loop {
        let temp = temp_name(name, pid, n);
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, temp.as_os_str(), flags, file_mode()) {
            Ok(fd) => return Ok((File::from(fd), temp)),
            Err(rustix::io::Errno::EXIST) if n + 1 < TEMP_TRIES => n += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A file being written for its target path: unnamed until [`AtomicOutput::commit`] (or a
/// named temporary beside the target where unnamed files are refused; see the module docs).
///
/// Dropping it without `commit` discards the file: the target is untouched and nothing is
/// left beside it.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    /// The target's directory, open for `openat`/`linkat`/`renameat`/`fsync`.
    dir: OwnedFd,
    /// The target's file name.
    name: OsString,
    file: File,
    /// The named temporary in `dir` (fallback), removed on drop; `None` for an unnamed file
    /// and once committed.
    temp: Option<OsString>,
    stale: Vec<StaleFile>,
}

impl AtomicOutput {
    /// Removes stale temporary files beside `target` ([`remove_stale`]), then opens a new
    /// unnamed (or named temporary) file in its directory. The target itself is not touched;
    /// an existing directory at the target is refused here rather than at the commit.
    pub fn create(target: &Path) -> Result<AtomicOutput, OutputError> {
        // The test-only fault rule `refuse@o_tmpfile` forces the named-temporary fallback.
        AtomicOutput::create_as(target, !fault::refused("o_tmpfile"), false)
    }

    /// Like [`AtomicOutput::create`] for a file that [`AtomicOutput::commit_to`] will name
    /// elsewhere: `target` only picks the directory, the temporary names and the stale files
    /// to remove, and may be a directory (`--out-dir` writes its image beside `DIR`).
    pub fn create_beside(target: &Path) -> Result<AtomicOutput, OutputError> {
        AtomicOutput::create_as(target, !fault::refused("o_tmpfile"), true)
    }

    /// [`AtomicOutput::create`], trying an unnamed file only when `unnamed` is true, refusing
    /// a directory at the target unless `beside`.
    fn create_as(target: &Path, unnamed: bool, beside: bool) -> Result<AtomicOutput, OutputError> {
        let (dir_path, name) = split(target)?;
        let stale = remove_stale(target)?;
        let create = |error| OutputError::Create { target: target.to_path_buf(), error };
        if !beside && fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            return Err(create(io::Error::from(rustix::io::Errno::ISDIR)));
        }
        let dir = open_dir(&dir_path).map_err(create)?;
        let file = if unnamed { open_unnamed(&dir).map_err(create)? } else { None };
        let (file, temp) = match file {
            Some(file) => (file, None),
            None => {
                let (file, temp) = open_named(&dir, &name).map_err(create)?;
                (file, Some(temp))
            }
        };
        Ok(AtomicOutput { target: target.to_path_buf(), dir, name, file, temp, stale })
    }

    /// The open file (readable, writable and seekable).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The requested output path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// True when the file is unnamed (`O_TMPFILE`); false for the named-temporary fallback.
    pub fn is_unnamed(&self) -> bool {
        self.temp.is_none()
    }

    /// The stale temporary files [`AtomicOutput::create`] removed, for the caller to report.
    pub fn stale_removed(&self) -> &[StaleFile] {
        &self.stale
    }

    /// Syncs the file and gives it the target's name, replacing a previous file there, then
    /// syncs the directory.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let name = self.name.clone();
        let shown = self.target.clone();
        self.commit_at(None, &name, &shown)
    }

    /// Like [`AtomicOutput::commit`], but names the file `path` instead of the target: a path
    /// on the same file system, typically inside a directory being assembled beside the
    /// target (`--out-dir`), so that the file stays unnamed until the directory is complete.
    pub fn commit_to(mut self, path: &Path) -> Result<(), OutputError> {
        let (dir, name) = split(path)?;
        let dir =
            open_dir(&dir).map_err(|error| OutputError::Commit { target: path.to_path_buf(), error })?;
        self.commit_at(Some(dir), &name, path)
    }

    fn commit_at(&mut self, dir: Option<OwnedFd>, name: &OsStr, shown: &Path) -> Result<(), OutputError> {
        let err = |error: io::Error| OutputError::Commit { target: shown.to_path_buf(), error };
        self.file.sync_all().map_err(err)?;
        fault::point("commit-synced");
        let to = dir.as_ref().unwrap_or(&self.dir);
        match &self.temp {
            Some(temp) => {
                rustix::fs::renameat(&self.dir, temp.as_os_str(), to, name).map_err(|e| err(e.into()))?;
                self.temp = None;
            }
            None => link_unnamed(&self.file, to, name).map_err(err)?,
        }
        rustix::fs::fsync(to).map_err(|e| err(e.into()))?;
        Ok(())
    }
}

/// Names the unnamed `file` `name` in `dir`: `linkat` when nothing is there, else `linkat`
/// under a temporary name and `renameat` over the existing file.
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    use rustix::fs::CWD;
    use rustix::io::Errno;
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, proc.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => return Ok(()),
        Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let pid = std::process::id();
    let mut n = 0;
    let temp = loop {
        let temp = temp_name(name, pid, n);
        match rustix::fs::linkat(CWD, proc.as_str(), dir, temp.as_os_str(), AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => break temp,
            Err(Errno::EXIST) if n + 1 < TEMP_TRIES => n += 1,
            Err(e) => return Err(e.into()),
        }
    };
    fault::point("commit-linked");
    if let Err(e) = rustix::fs::renameat(dir, temp.as_os_str(), dir, name) {
        let _ = rustix::fs::unlinkat(dir, temp.as_os_str(), AtFlags::empty());
        return Err(e.into());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _dir: &OwnedFd, _name: &OsStr) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        // An unnamed file is freed by the kernel when `file` closes.
        if let Some(temp) = self.temp.take() {
            let _ = rustix::fs::unlinkat(&self.dir, temp.as_os_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::PermissionsExt;

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A pid that is not alive: a child that has exited and been waited for.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn dropped_output_leaves_nothing() {
        let dir = isoforge_testing::tempdir();
        let target = dir.path().join("out.iso");
        {
            let mut out = AtomicOutput::create(&target).unwrap();
            out.file().write_all(b"partial").unwrap();
        }
        assert!(!target.exists());
        assert!(listing(dir.path()).is_empty());
    }

    #[test]
    fn committed_output_appears_and_replaces_the_target() {
        let dir = isoforge_testing::tempdir();
        let target = dir.path().join("out.iso");
        let mut out = AtomicOutput::create(&target).unwrap();
        out.file().write_all(b"first").unwrap();
        // Nothing has a name before the commit (on a file system with O_TMPFILE).
        if out.is_unnamed() {
            assert!(listing(dir.path()).is_empty());
        }
        out.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"first");
        let mut out = AtomicOutput::create(&target).unwrap();
        out.file().write_all(b"second").unwrap();
        out.file().seek(SeekFrom::Start(0)).unwrap();
        let mut back = Vec::new();
        out.file().read_to_end(&mut back).unwrap();
        assert_eq!(back, b"second");
        out.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"second");
        assert_eq!(listing(dir.path()), ["out.iso"]);
    }

    #[test]
    fn mode_is_that_of_a_newly_created_file() {
        let dir = isoforge_testing::tempdir();
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let want = fs::metadata(&plain).unwrap().permissions().mode() & 0o7777;
        let target = dir.path().join("out.iso");
        AtomicOutput::create(&target).unwrap().commit().unwrap();
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o7777, want);
        // Replacing keeps the new file's mode, not the old one's.
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        AtomicOutput::create(&target).unwrap().commit().unwrap();
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o7777, want);
    }

    #[test]
    fn stale_files_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = isoforge_testing::tempdir();
        let target = dir.path().join("out.iso");
        let dead = dead_pid();
        let stale = dir.path().join(temp_name("out.iso".as_ref(), dead, 0));
        fs::write(&stale, b"partial").unwrap();
        let stale_dir = dir.path().join(temp_name("out.iso".as_ref(), dead, 1));
        fs::create_dir_all(stale_dir.join("iso")).unwrap();
        fs::write(stale_dir.join("iso/x"), b"x").unwrap();
        let live = dir.path().join(temp_name("out.iso".as_ref(), std::process::id(), 7));
        fs::write(&live, b"live").unwrap();
        let other = dir.path().join(temp_name("other.iso".as_ref(), dead, 0));
        fs::write(&other, b"other target").unwrap();
        let out = AtomicOutput::create(&target).unwrap();
        assert_eq!(
            out.stale_removed(),
            [
                StaleFile { path: stale.clone(), pid: dead, directory: false },
                StaleFile { path: stale_dir.clone(), pid: dead, directory: true },
            ]
        );
        assert_eq!(
            out.stale_removed()[0].to_string(),
            format!("stale temporary file {} left by a killed build (pid {dead})", stale.display())
        );
        assert!(!stale.exists() && !stale_dir.exists());
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn temp_names_parse_back() {
        let n = temp_name("a.iso".as_ref(), 42, 3);
        assert_eq!(n, ".a.iso.isoforge-tmp-42-3");
        assert_eq!(temp_pid("a.iso".as_ref(), &n), Some(42));
        assert_eq!(temp_pid("a".as_ref(), &n), None);
        assert_eq!(temp_pid("a.iso".as_ref(), ".a.iso.isoforge-tmp-42".as_ref()), None);
        assert_eq!(temp_pid("a.iso".as_ref(), ".a.iso.isoforge-tmp-42-x".as_ref()), None);
        assert_eq!(temp_pid("a.iso".as_ref(), ".a.iso.isoforge-tmp--3".as_ref()), None);
        assert!(!process_is_gone(std::process::id()));
        assert!(!process_is_gone(0));
        assert!(process_is_gone(dead_pid()));
    }

    #[test]
    fn errors_name_the_target() {
        let dir = isoforge_testing::tempdir();
        let missing = dir.path().join("no/such/dir/out.iso");
        let e = AtomicOutput::create(&missing).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot create the output file {}: ", missing.display())), "{e}");
        let e = AtomicOutput::create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("Is a directory"), "{e}");
        let e = AtomicOutput::create(Path::new("/")).unwrap_err().to_string();
        assert_eq!(e, "output path / does not name a file");
    }

    #[test]
    fn named_fallback_is_removed_on_drop_and_renamed_on_commit() {
        let dir = isoforge_testing::tempdir();
        let target = dir.path().join("out.iso");
        fs::write(&target, b"old").unwrap();
        {
            let mut out = AtomicOutput::create_as(&target, false, false).unwrap();
            assert!(!out.is_unnamed());
            out.file().write_all(b"partial").unwrap();
            let temp = temp_name("out.iso".as_ref(), std::process::id(), 0).into_string().unwrap();
            assert_eq!(listing(dir.path()), [temp, "out.iso".to_string()]);
        }
        assert_eq!(listing(dir.path()), ["out.iso"]);
        assert_eq!(fs::read(&target).unwrap(), b"old");
        let mut out = AtomicOutput::create_as(&target, false, false).unwrap();
        out.file().write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(listing(dir.path()), ["out.iso"]);
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&target), mode(&plain));
    }

    #[test]
    fn commit_to_names_the_file_elsewhere() {
        let dir = isoforge_testing::tempdir();
        fs::create_dir(dir.path().join("outdir")).unwrap();
        let mut out = AtomicOutput::create_beside(&dir.path().join("outdir")).unwrap();
        out.file().write_all(b"image").unwrap();
        fs::create_dir(dir.path().join("assembly")).unwrap();
        out.commit_to(&dir.path().join("assembly/image.iso")).unwrap();
        assert_eq!(fs::read(dir.path().join("assembly/image.iso")).unwrap(), b"image");
        assert_eq!(listing(dir.path()), ["assembly", "outdir"]);
    }
}
