//! Input snapshots: a host file is read as the file it was when it was scanned, or not at all.
//!
//! A scanner records a [`Snapshot`] of every regular file it lists (device, inode, size and
//! ctime, from the same `lstat` that told it the file's type) and keeps it beside the path
//! in a [`HostFile`]. Every reader then goes through a [`SnapshotReader`], which
//!
//! - opens the path without following a final symlink (`O_NOFOLLOW`) and `fstat`s the
//!   descriptor: another inode, size or time than the snapshot's is an error before a byte is
//!   read;
//! - reads at most the recorded size, and a read that ends early is an error (the file shrank);
//! - answers hole queries (`SEEK_DATA`) only inside the recorded size: "no data past here"
//!   counts as a hole only while the descriptor still has the recorded size, so a file that
//!   shrank is never taken for a file of holes;
//! - when the reader is done ([`SnapshotReader::finish`]), `fstat`s the same descriptor
//!   again: any change of size (a byte past the recorded size shows as a larger `st_size`)
//!   or of ctime is an error, and so is a link count of 0.
//!
//! That proves the bytes read are the scanned file's, unchanged, without looking the path up
//! again: the descriptor has the scanned device and inode, and nothing changed the inode
//! between the scan and the last `fstat`. A replacement of the path before the open gives
//! another inode, caught at the first `fstat`; one during or after the read unlinks the
//! scanned inode, which moves its ctime (Linux's file systems do so on every unlink and
//! rename over a file; POSIX requires it while links remain) or leaves it no link at all.
//! Only when a check fails is the path looked up (`lstat`), to say what happened: replaced
//! by another file, removed, or changed in place.
//!
//! A file read whole into memory ([`HostFile::read_whole`], the small files that are most of a
//! store) skips the check at open: the check at the end compares the same descriptor with the
//! same snapshot, so a file that changed before it was opened fails there, and the read costs
//! four system calls (open, `pread`, `fstat`, close). Opened through a [`HostDir`] of its
//! directory ([`HostFile::read_whole_in`], `openat`), the open walks one path component
//! instead of the whole path.
//!
//! Every error names the path and says that it changed while isoforge read it
//! ([`SnapshotError::Changed`]), so a user can tell a race with another process from a bug.
//! The mtime is not recorded: every write, truncation or `utimes` (which is how a writer would
//! restore an mtime) also moves the ctime, which no writer can set. What this cannot see is a
//! change that leaves size and ctime as they were (one that lands in the same clock tick as
//! the scan on a file system with coarse timestamps, or a clock set back); nothing short of
//! reading the file twice could. Without the mtime a snapshot is 40 bytes (a million files
//! are common in a store).
//!
//! In binaries built with the `fault-injection` feature every successful read is reported to
//! [`crate::fault::after_read`], so the tests can change a file at a chosen byte.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

/// A point in time as the file system records it: seconds and nanoseconds since 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileTime {
    /// Seconds since 1970-01-01 00:00:00 UTC (negative before).
    pub sec: i64,
    /// Nanoseconds within the second (0–999,999,999).
    pub nsec: i64,
}

/// Which file a path named: its device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// What a scanner saw of a regular file: which file it was, its size and its ctime. Two
/// snapshots are equal when nothing a reader can check has changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// Device and inode.
    pub id: FileId,
    /// Size in bytes.
    pub size: u64,
    /// Last change of the inode, contents or metadata (`st_ctime`).
    pub ctime: FileTime,
}

impl Snapshot {
    /// The snapshot of a file's metadata (from `lstat` at scan time, or `fstat` of an open file).
    pub fn of(m: &Metadata) -> Snapshot {
        Snapshot {
            id: FileId { dev: m.dev(), ino: m.ino() },
            size: m.size(),
            ctime: FileTime { sec: m.ctime(), nsec: m.ctime_nsec() },
        }
    }

    /// The snapshot of what `fstatat`/`fstat` returned (rustix's `struct stat`), as
    /// [`Snapshot::of`] for `std`'s metadata.
    #[allow(clippy::unnecessary_cast)] // The field types differ between architectures.
    pub fn of_stat(st: &rustix::fs::Stat) -> Snapshot {
        Snapshot {
            id: FileId { dev: st.st_dev as u64, ino: st.st_ino as u64 },
            // Never negative: the kernel's `loff_t` size of a file.
            size: st.st_size as u64,
            ctime: FileTime { sec: st.st_ctime as i64, nsec: st.st_ctime_nsec as i64 },
        }
    }

    /// What differs in `now` from this snapshot, most telling first: another file, another
    /// size, other times. `None` when nothing does.
    pub fn change_to(&self, now: &Snapshot) -> Option<Change> {
        if self.id != now.id {
            Some(Change::Replaced { was: self.id, now: now.id })
        } else if self.size != now.size {
            Some(Change::Size { was: self.size, now: now.size })
        } else if self.ctime != now.ctime {
            Some(Change::Modified)
        } else {
            None
        }
    }
}

/// A host path kept as its directory and its last component. A scan shares one directory
/// path among every file it lists there ([`HostPath::in_dir`]), so a million files in 60,000
/// directories hold 60,000 directory paths and a million names, not a million full paths.
///
/// Both constructors split at the last component, so two values are equal exactly when they
/// name the same path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPath {
    dir: Arc<Path>,
    name: Box<OsStr>,
}

impl HostPath {
    /// `path`, split into its directory and its last component (a path without one, such as
    /// `/`, is all directory).
    pub fn new(path: &Path) -> HostPath {
        match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) if path.ends_with(name) => {
                HostPath { dir: Arc::from(dir), name: Box::from(name) }
            }
            _ => HostPath { dir: Arc::from(path), name: Box::from(OsStr::new("")) },
        }
    }

    /// The entry `name` of the directory `dir` (shared, not copied). A `name` that is not one
    /// plain component is joined and split again, as [`HostPath::new`] would.
    pub fn in_dir(dir: &Arc<Path>, name: &OsStr) -> HostPath {
        let mut parts = Path::new(name).components();
        match (parts.next(), parts.next()) {
            (Some(std::path::Component::Normal(n)), None) if n == name => {
                HostPath { dir: Arc::clone(dir), name: Box::from(name) }
            }
            _ => HostPath::new(&dir.join(name)),
        }
    }

    /// The directory part.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `other` has the same directory part (shared or equal).
    pub fn same_dir(&self, other: &HostPath) -> bool {
        Arc::ptr_eq(&self.dir, &other.dir) || self.dir.as_os_str() == other.dir.as_os_str()
    }

    /// The last component (empty for a path without one).
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The whole path.
    pub fn to_path_buf(&self) -> PathBuf {
        if self.name.is_empty() {
            self.dir.to_path_buf()
        } else {
            self.dir.join(&*self.name)
        }
    }
}

impl From<&Path> for HostPath {
    fn from(path: &Path) -> HostPath {
        HostPath::new(path)
    }
}

impl From<PathBuf> for HostPath {
    fn from(path: PathBuf) -> HostPath {
        HostPath::new(&path)
    }
}

impl From<&str> for HostPath {
    fn from(path: &str) -> HostPath {
        HostPath::new(Path::new(path))
    }
}

impl std::fmt::Display for HostPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_path_buf().display().fmt(f)
    }
}

/// A host regular file as a scanner recorded it: its path and its [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostFile {
    /// The host path (opened again by every reader).
    pub path: HostPath,
    /// What the scan saw.
    pub snapshot: Snapshot,
}

impl HostFile {
    /// A file as scanned: `metadata` is what `lstat` of `path` returned.
    pub fn new(path: impl Into<HostPath>, metadata: &Metadata) -> HostFile {
        HostFile { path: path.into(), snapshot: Snapshot::of(metadata) }
    }

    /// Scans `path` now (`lstat`, not following a final symlink). Anything but a regular
    /// file is an error.
    pub fn scan(path: &Path) -> Result<HostFile, SnapshotError> {
        let m = std::fs::symlink_metadata(path).map_err(|e| io_error(path, e))?;
        if !m.file_type().is_file() {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(io_error(path, e));
        }
        Ok(HostFile::new(path, &m))
    }

    /// The size recorded when it was scanned.
    pub fn size(&self) -> u64 {
        self.snapshot.size
    }

    /// Opens the file for reading and checks it against the snapshot.
    pub fn open(&self) -> Result<SnapshotReader<'_>, SnapshotError> {
        SnapshotReader::open(self)
    }

    /// Reads the whole file into `buf`, which must be the recorded size, and checks it as
    /// [`SnapshotReader::finish`] does. The descriptor is checked once, after the read (see the
    /// module docs); a read that fails on a file that was replaced meanwhile reports the
    /// replacement, the more telling change.
    pub fn read_whole(&self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        self.read_whole_in(None, buf)
    }

    /// [`HostFile::read_whole`], opening the file by its name in `dir` (`openat`) when `dir`
    /// is this file's directory ([`HostDir::holds`]), by its whole path otherwise.
    pub fn read_whole_in(&self, dir: Option<&HostDir>, buf: &mut [u8]) -> Result<(), SnapshotError> {
        let mut r = SnapshotReader::open_file(Cow::Borrowed(self), dir)?;
        if buf.len() as u64 != self.size() {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a {}-byte buffer for a {}-byte snapshot", buf.len(), self.size()),
            );
            return Err(io_error(&self.path.to_path_buf(), e));
        }
        if let Err(e) = r.read_exact(buf) {
            return Err(match r.fstat().map(|now| self.snapshot.change_to(&now)) {
                Ok(Some(change @ Change::Replaced { .. })) => r.changed(change),
                _ => e,
            });
        }
        r.finish()
    }
}

/// A host directory held open (`O_PATH`) so that files in it are opened by name (`openat`),
/// each open walking one path component instead of the whole path. A reader of many small
/// files opens their directory once ([`HostPath::open_dir`]) and reads each through it
/// ([`HostFile::read_whole_in`]). Which file is read is still proved by the snapshot's
/// device and inode, so a directory replaced after the scan changes nothing but the error.
#[derive(Debug)]
pub struct HostDir {
    dir: Arc<Path>,
    fd: rustix::fd::OwnedFd,
}

impl HostPath {
    /// Opens this path's directory, to open files in it by name.
    pub fn open_dir(&self) -> io::Result<HostDir> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&*self.dir, flags, Mode::empty())?;
        Ok(HostDir { dir: Arc::clone(&self.dir), fd })
    }
}

impl HostDir {
    /// Whether `path` is an entry of this directory (the same directory path).
    pub fn holds(&self, path: &HostPath) -> bool {
        !path.name.is_empty()
            && (Arc::ptr_eq(&self.dir, &path.dir) || self.dir.as_os_str() == path.dir.as_os_str())
    }
}

/// How a file differs from its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Change {
    /// The descriptor's size is not the recorded size.
    #[error("size was {was} bytes, now {now}")]
    Size {
        /// The recorded size.
        was: u64,
        /// The size now.
        now: u64,
    },
    /// Same size, but the ctime moved: written in place, or its metadata or times changed.
    #[error("modified (mtime/ctime changed)")]
    Modified,
    /// The path names another file than the one scanned (renamed over, deleted and recreated).
    #[error("replaced by another file ({})", replaced(was, now))]
    Replaced {
        /// The scanned file.
        was: FileId,
        /// The file the path names now.
        now: FileId,
    },
    /// A read found the end of the file before the recorded size.
    #[error("ended after {read} of {size} bytes")]
    Ended {
        /// Bytes read when the end came.
        read: u64,
        /// The recorded size.
        size: u64,
    },
    /// There are bytes past the recorded size.
    #[error("grew past its scanned size of {size} bytes")]
    Grew {
        /// The recorded size.
        size: u64,
    },
    /// The path no longer exists.
    #[error("removed")]
    Removed,
}

fn replaced(was: &FileId, now: &FileId) -> String {
    if was.dev == now.dev {
        format!("inode {}, now inode {}", was.ino, now.ino)
    } else {
        format!("inode {} on device {}, now inode {} on device {}", was.ino, was.dev, now.ino, now.dev)
    }
}

/// Errors of a [`SnapshotReader`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file could not be opened, examined or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not the file that was scanned any more, or changed while it was read.
    #[error("{path} changed while isoforge read it: {change}")]
    Changed {
        /// The host path.
        path: PathBuf,
        /// What changed.
        change: Change,
    },
}

impl SnapshotError {
    /// The host path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SnapshotError::Io { path, .. } | SnapshotError::Changed { path, .. } => path,
        }
    }
}

fn io_error(path: &Path, source: io::Error) -> SnapshotError {
    SnapshotError::Io { path: path.to_path_buf(), source }
}

/// Reads one [`HostFile`] as its snapshot, front to back (see the module docs). Reads are
/// positioned (`pread`), so hole queries never move what is read next.
#[derive(Debug)]
pub struct SnapshotReader<'a> {
    host: Cow<'a, HostFile>,
    file: File,
    pos: u64,
}

impl<'a> SnapshotReader<'a> {
    /// Opens `host.path` and checks the open file against the snapshot.
    pub fn open(host: &'a HostFile) -> Result<SnapshotReader<'a>, SnapshotError> {
        SnapshotReader::open_cow(Cow::Borrowed(host))
    }

    /// [`SnapshotReader::open`] of a borrowed or an owned [`HostFile`] (one made for the
    /// read, such as an entry of a scanned directory joined with its directory's path).
    pub fn open_cow(host: Cow<'a, HostFile>) -> Result<SnapshotReader<'a>, SnapshotError> {
        let r = SnapshotReader::open_file(host, None)?;
        r.check_descriptor()?;
        Ok(r)
    }

    /// Opens `host.path` (through `dir` when it holds it), not following a final symlink;
    /// not checked yet.
    fn open_file(
        host: Cow<'a, HostFile>,
        dir: Option<&HostDir>,
    ) -> Result<SnapshotReader<'a>, SnapshotError> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let opened = match dir {
            Some(d) if d.holds(&host.path) => {
                rustix::fs::openat(&d.fd, &*host.path.name, flags, Mode::empty())
            }
            _ => rustix::fs::open(host.path.to_path_buf(), flags, Mode::empty()),
        };
        match opened {
            Ok(fd) => Ok(SnapshotReader { host, file: File::from(fd), pos: 0 }),
            Err(rustix::io::Errno::NOENT) => Err(changed(&host, Change::Removed)),
            // The path names a symlink now: what replaced the file is named by `lstat`.
            Err(rustix::io::Errno::LOOP) => Err(diagnose(&host, None)),
            Err(e) => Err(io_error(&host.path.to_path_buf(), e.into())),
        }
    }

    /// The recorded size.
    pub fn size(&self) -> u64 {
        self.host.snapshot.size
    }

    /// Bytes read (or skipped as holes) so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes left up to the recorded size.
    pub fn remaining(&self) -> u64 {
        self.size() - self.pos
    }

    /// Reads the next `buf.len()` bytes. Asking for more than [`Self::remaining`] is an
    /// error (`InvalidInput`); the file ending early is [`Change::Ended`].
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        self.check_span(buf.len() as u64)?;
        let mut n = 0;
        while n < buf.len() {
            match self.file.read_at(&mut buf[n..], self.pos + n as u64) {
                Ok(0) => {
                    let read = self.pos + n as u64;
                    return Err(self.changed(Change::Ended { read, size: self.size() }));
                }
                Ok(k) => {
                    n += k;
                    self.after_read(self.pos + n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.host.path.to_path_buf(), e)),
            }
        }
        self.pos += n as u64;
        Ok(())
    }

    /// Whether the next `len` bytes (at most [`Self::remaining`]) are a hole the file system
    /// knows of (`SEEK_DATA` finds no data in them); if so they are skipped, else nothing
    /// moves and the caller reads them. A file system without hole information answers false.
    ///
    /// "No data at or after this offset" (`ENXIO`) is a hole only while the descriptor still
    /// has the recorded size; otherwise the file shrank, which is an error.
    pub fn skip_hole(&mut self, len: u64) -> Result<bool, SnapshotError> {
        self.check_span(len)?;
        if len == 0 {
            return Ok(false);
        }
        let hole = match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(self.pos)) {
            Ok(next_data) => next_data >= self.pos + len,
            Err(rustix::io::Errno::NXIO) => {
                let now = self.fstat()?;
                if now.size != self.size() {
                    return Err(self.changed(Change::Size { was: self.size(), now: now.size }));
                }
                true
            }
            Err(_) => false,
        };
        if hole {
            self.pos += len;
            self.after_read(self.pos);
        }
        Ok(hole)
    }

    /// Ends the read: the descriptor's size and times must be the snapshot's (a larger size
    /// is [`Change::Grew`]: there are bytes past the recorded size) and the file must still
    /// have a link. Call it after the last read, whether or not the whole file was read.
    /// Only when something changed is the path looked up, to report a replacement or
    /// removal, the more telling changes, before the change of the inode itself.
    pub fn finish(self) -> Result<(), SnapshotError> {
        let m = self.file.metadata().map_err(|e| io_error(&self.host.path.to_path_buf(), e))?;
        match self.host.snapshot.change_to(&Snapshot::of(&m)) {
            None if m.nlink() > 0 => Ok(()),
            change => Err(diagnose(&self.host, change)),
        }
    }

    fn fstat(&self) -> Result<Snapshot, SnapshotError> {
        let m = self.file.metadata().map_err(|e| io_error(&self.host.path.to_path_buf(), e))?;
        Ok(Snapshot::of(&m))
    }

    fn check_descriptor(&self) -> Result<(), SnapshotError> {
        match self.host.snapshot.change_to(&self.fstat()?) {
            Some(change) => Err(self.changed(change)),
            None => Ok(()),
        }
    }

    fn check_span(&self, len: u64) -> Result<(), SnapshotError> {
        if len > self.remaining() {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{len} bytes asked at offset {} of a {}-byte snapshot", self.pos, self.size()),
            );
            return Err(io_error(&self.host.path.to_path_buf(), e));
        }
        Ok(())
    }

    /// Reports a read up to `pos` to the fault injector (its path is joined only in builds
    /// that carry it).
    fn after_read(&self, pos: u64) {
        if crate::fault::ENABLED {
            crate::fault::after_read(&self.host.path.to_path_buf(), pos);
        }
    }

    fn changed(&self, change: Change) -> SnapshotError {
        changed(&self.host, change)
    }
}

fn changed(host: &HostFile, change: Change) -> SnapshotError {
    SnapshotError::Changed { path: host.path.to_path_buf(), change }
}

/// The error for a file whose descriptor showed `seen` (or no link, or that is a symlink
/// now: `None`): the path is looked up (`lstat`) and another file there is
/// [`Change::Replaced`], none [`Change::Removed`]; otherwise `seen` ([`Change::Grew`] for a
/// larger size), or [`Change::Removed`] when the descriptor showed no change but had no link.
fn diagnose(host: &HostFile, seen: Option<Change>) -> SnapshotError {
    let path = host.path.to_path_buf();
    let was = host.snapshot.id;
    let change = match std::fs::symlink_metadata(&path) {
        Ok(m) if (FileId { dev: m.dev(), ino: m.ino() }) != was => {
            Change::Replaced { was, now: FileId { dev: m.dev(), ino: m.ino() } }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Change::Removed,
        Err(e) => return io_error(&path, e),
        Ok(_) => match seen {
            Some(Change::Size { was, now }) if now > was => Change::Grew { size: was },
            Some(change) => change,
            None => Change::Removed,
        },
    };
    SnapshotError::Changed { path, change }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, SystemTime};

    /// A file of `len` bytes dated long ago (as store files are), so that a change now moves
    /// its mtime whatever the clock's granularity.
    fn old_file(dir: &Path, name: &str, len: usize) -> HostFile {
        let p = dir.join(name);
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        std::fs::write(&p, &bytes).unwrap();
        let f = File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1)).unwrap();
        drop(f);
        HostFile::scan(&p).unwrap()
    }

    fn read_all(h: &HostFile) -> Result<Vec<u8>, SnapshotError> {
        let mut r = h.open()?;
        let mut out = vec![0u8; r.size() as usize];
        let mut at = 0;
        while r.remaining() > 0 {
            let n = r.remaining().min(1000) as usize;
            r.read_exact(&mut out[at..at + n])?;
            at += n;
        }
        r.finish()?;
        Ok(out)
    }

    fn change(e: SnapshotError) -> Change {
        match e {
            SnapshotError::Changed { change, .. } => change,
            e => panic!("not a change: {e}"),
        }
    }

    #[test]
    fn unchanged_file_reads_whole() {
        let d = isoforge_testing::tempdir();
        let h = old_file(d.path(), "f", 5000);
        assert_eq!(read_all(&h).unwrap(), std::fs::read(h.path.to_path_buf()).unwrap());
    }

    #[test]
    fn short_read_is_an_error() {
        let d = isoforge_testing::tempdir();
        let h = old_file(d.path(), "f", 5000);
        let mut r = h.open().unwrap();
        let mut buf = vec![0u8; 2000];
        r.read_exact(&mut buf).unwrap();
        File::options().write(true).open(h.path.to_path_buf()).unwrap().set_len(3000).unwrap();
        let e = r.read_exact(&mut buf).unwrap_err();
        let msg = e.to_string();
        assert_eq!(change(e), Change::Ended { read: 3000, size: 5000 });
        assert!(
            msg.contains(&*h.path.to_path_buf().to_string_lossy()) && msg.contains("changed while"),
            "{msg}"
        );
        // Opened again, the snapshot no longer matches.
        assert_eq!(change(h.open().unwrap_err()), Change::Size { was: 5000, now: 3000 });
    }

    #[test]
    fn growth_is_an_error() {
        let d = isoforge_testing::tempdir();
        let h = old_file(d.path(), "f", 5000);
        let mut r = h.open().unwrap();
        let mut buf = vec![0u8; 5000];
        r.read_exact(&mut buf).unwrap();
        File::options().append(true).open(h.path.to_path_buf()).unwrap().write_all(b"more").unwrap();
        let e = r.finish().unwrap_err();
        assert_eq!(change(e), Change::Grew { size: 5000 });
        // Reading past the recorded size is refused, not attempted.
        let h2 = old_file(d.path(), "g", 10);
        let mut r = h2.open().unwrap();
        assert!(matches!(r.read_exact(&mut [0u8; 11]), Err(SnapshotError::Io { .. })));
    }

    #[test]
    fn same_size_rewrite_is_caught_by_the_times() {
        let d = isoforge_testing::tempdir();
        let h = old_file(d.path(), "f", 5000);
        let mut r = h.open().unwrap();
        let mut buf = vec![0u8; 5000];
        r.read_exact(&mut buf).unwrap();
        let f = File::options().write(true).open(h.path.to_path_buf()).unwrap();
        f.write_all_at(b"XXXX", 0).unwrap();
        drop(f);
        let e = r.finish().unwrap_err();
        assert!(e.to_string().contains("modified (mtime/ctime changed)"), "{e}");
        assert_eq!(change(e), Change::Modified);
    }

    #[test]
    fn replacement_is_caught_by_the_inode() {
        let d = isoforge_testing::tempdir();
        let h = old_file(d.path(), "f", 5000);
        let mut r = h.open().unwrap();
        let mut buf = vec![0u8; 5000];
        r.read_exact(&mut buf).unwrap();
        let tmp = d.path().join("new");
        std::fs::write(&tmp, &buf).unwrap();
        std::fs::rename(&tmp, h.path.to_path_buf()).unwrap();
        let e = r.finish().unwrap_err();
        assert!(e.to_string().contains("replaced by another file (inode "), "{e}");
        assert!(matches!(change(e), Change::Replaced { .. }));
        // Before the first read, too.
        assert!(matches!(change(h.open().unwrap_err()), Change::Replaced { .. }));
        std::fs::remove_file(h.path.to_path_buf()).unwrap();
        assert_eq!(change(h.open().unwrap_err()), Change::Removed);
    }

    #[test]
    fn a_whole_read_checks_once_at_the_end_and_catches_every_change() {
        let d = isoforge_testing::tempdir();
        let h = old_file(d.path(), "f", 5000);
        let mut buf = vec![0u8; 5000];
        h.read_whole(&mut buf).unwrap();
        assert_eq!(buf, std::fs::read(h.path.to_path_buf()).unwrap());
        assert!(matches!(h.read_whole(&mut [0u8; 10]), Err(SnapshotError::Io { .. })));

        // Changed before it was opened: grown, rewritten in place, shrunk, replaced, removed.
        File::options().append(true).open(h.path.to_path_buf()).unwrap().write_all(b"more").unwrap();
        assert_eq!(change(h.read_whole(&mut buf).unwrap_err()), Change::Grew { size: 5000 });
        let h = old_file(d.path(), "g", 5000);
        File::options().write(true).open(h.path.to_path_buf()).unwrap().write_all_at(b"XXXX", 0).unwrap();
        assert_eq!(change(h.read_whole(&mut buf).unwrap_err()), Change::Modified);
        let h = old_file(d.path(), "s", 5000);
        File::options().write(true).open(h.path.to_path_buf()).unwrap().set_len(3000).unwrap();
        assert_eq!(change(h.read_whole(&mut buf).unwrap_err()), Change::Ended { read: 3000, size: 5000 });
        let h = old_file(d.path(), "r", 5000);
        std::fs::write(d.path().join("new"), &buf[..4000]).unwrap();
        std::fs::rename(d.path().join("new"), h.path.to_path_buf()).unwrap();
        assert!(matches!(change(h.read_whole(&mut buf).unwrap_err()), Change::Replaced { .. }));
        std::fs::remove_file(h.path.to_path_buf()).unwrap();
        assert_eq!(change(h.read_whole(&mut buf).unwrap_err()), Change::Removed);
    }

    #[test]
    fn a_whole_read_through_the_directory_checks_the_same() {
        let d = tempfile::tempdir().unwrap();
        let h = old_file(d.path(), "f", 5000);
        let dir = h.path.open_dir().unwrap();
        let mut buf = vec![0u8; 5000];
        h.read_whole_in(Some(&dir), &mut buf).unwrap();
        assert_eq!(buf, std::fs::read(h.path.to_path_buf()).unwrap());
        // A directory that does not hold the file: opened by its whole path.
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let other = old_file(&sub, "g", 10);
        assert!(!dir.holds(&other.path));
        let mut small = [0u8; 10];
        other.read_whole_in(Some(&dir), &mut small).unwrap();
        // Replaced by a symlink (not followed) or by another file, then removed. The scanned
        // file is kept under another name, so that no new file gets its inode number.
        std::fs::rename(h.path.to_path_buf(), d.path().join("kept")).unwrap();
        std::os::unix::fs::symlink(other.path.to_path_buf(), h.path.to_path_buf()).unwrap();
        assert!(matches!(
            change(h.read_whole_in(Some(&dir), &mut buf).unwrap_err()),
            Change::Replaced { .. }
        ));
        std::fs::write(d.path().join("new"), &buf).unwrap();
        std::fs::rename(d.path().join("new"), h.path.to_path_buf()).unwrap();
        assert!(matches!(
            change(h.read_whole_in(Some(&dir), &mut buf).unwrap_err()),
            Change::Replaced { .. }
        ));
        std::fs::remove_file(h.path.to_path_buf()).unwrap();
        assert_eq!(change(h.read_whole_in(Some(&dir), &mut buf).unwrap_err()), Change::Removed);
    }

    /// The path is looked up only when the descriptor shows a change: a file unlinked after
    /// it was read (its last link gone, or one of two links renamed over) is caught by the
    /// descriptor alone, and named as replaced.
    #[test]
    fn an_unlinked_file_is_caught_by_its_descriptor() {
        let d = tempfile::tempdir().unwrap();
        let h = old_file(d.path(), "f", 5000);
        std::fs::hard_link(h.path.to_path_buf(), d.path().join("link")).unwrap();
        let h = HostFile::scan(&h.path.to_path_buf()).unwrap();
        let mut r = h.open().unwrap();
        let mut buf = vec![0u8; 5000];
        r.read_exact(&mut buf).unwrap();
        std::fs::write(d.path().join("new"), &buf).unwrap();
        std::fs::rename(d.path().join("new"), h.path.to_path_buf()).unwrap();
        assert!(matches!(change(r.finish().unwrap_err()), Change::Replaced { .. }));
        // The scanned file is gone, the path free: removed.
        let g = old_file(d.path(), "g", 100);
        let mut r = g.open().unwrap();
        r.read_exact(&mut [0u8; 100]).unwrap();
        std::fs::remove_file(g.path.to_path_buf()).unwrap();
        assert_eq!(change(r.finish().unwrap_err()), Change::Removed);
    }

    #[test]
    fn host_paths_split_at_the_last_component_however_built() {
        let dir: Arc<Path> = Arc::from(Path::new("/nix/store/x-a/bin"));
        let shared = HostPath::in_dir(&dir, OsStr::new("sh"));
        assert_eq!(shared, HostPath::new(Path::new("/nix/store/x-a/bin/sh")));
        assert_eq!(shared.to_path_buf(), Path::new("/nix/store/x-a/bin/sh"));
        assert_eq!((shared.dir(), shared.name()), (Path::new("/nix/store/x-a/bin"), OsStr::new("sh")));
        assert_eq!(
            HostPath::in_dir(&dir, OsStr::new("a/b")),
            HostPath::new(Path::new("/nix/store/x-a/bin/a/b"))
        );
        assert_eq!(HostPath::new(Path::new("/")).to_path_buf(), Path::new("/"));
        assert_eq!(HostPath::from("rel").to_path_buf(), Path::new("rel"));
        assert_eq!(HostPath::new(Path::new("a/..")).to_path_buf(), Path::new("a/.."));
        assert_eq!(shared.to_string(), "/nix/store/x-a/bin/sh");
    }

    #[test]
    fn holes_of_a_sparse_file_are_recognised() {
        let d = isoforge_testing::tempdir();
        let p = d.path().join("sparse");
        const M: u64 = 1 << 20;
        // Data in the first MiB, a hole in the second, data in the third, a hole to the end.
        let f = File::create(&p).unwrap();
        f.write_all_at(&vec![1u8; M as usize], 0).unwrap();
        f.write_all_at(&vec![2u8; M as usize], 2 * M).unwrap();
        f.set_len(5 * M).unwrap();
        drop(f);
        let h = HostFile::scan(&p).unwrap();
        let mut r = h.open().unwrap();
        let mut holes = Vec::new();
        let mut buf = vec![0u8; M as usize];
        for i in 0..5 {
            if r.skip_hole(M).unwrap() {
                holes.push(i);
            } else {
                r.read_exact(&mut buf).unwrap();
            }
        }
        r.finish().unwrap();
        // A file system without SEEK_DATA support reports the whole file as data, so no holes;
        // one with it all three. Asked directly, so the expectation is exact on each.
        let first_hole = rustix::fs::seek(File::open(&p).unwrap(), rustix::fs::SeekFrom::Hole(0)).unwrap();
        let expected: &[i32] = if first_hole < 5 * M { &[1, 3, 4] } else { &[] };
        assert_eq!(holes, expected, "first hole at {first_hole}");
    }

    #[test]
    fn a_truncated_file_is_never_all_holes() {
        let d = isoforge_testing::tempdir();
        let h = old_file(d.path(), "f", 3 << 20);
        let mut r = h.open().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        r.read_exact(&mut buf).unwrap();
        File::options().write(true).open(h.path.to_path_buf()).unwrap().set_len(1000).unwrap();
        // Past the new end SEEK_DATA finds no data: that is the file having shrunk, not a hole.
        let e = r.skip_hole(1 << 20).unwrap_err();
        assert_eq!(change(e), Change::Size { was: 3 << 20, now: 1000 });
    }
}
