//! The writer's input: a tree of directories, files and symlinks with their metadata already
//! decided, plus helpers that scan a host path into it and build the Nix closure layout.
//!
//! A directory's entries ([`Entries`]) are kept sorted by raw name bytes, so the image does not
//! depend on the order in which the host lists directories or the caller adds entries.
//!
//! The tree is held whole while the image is written, so its size per file matters: a store
//! of a million small files is common. A file node is 56 bytes: its metadata and a
//! [`Snapshot`] of the host file, which [`scan`] records without its path
//! ([`FileData::Scanned`]): the directory's host path is kept once in its [`Entries`], and the
//! file's name is its entry's. The names of a directory are one buffer, not one allocation
//! each. With the end of its name, an entry is 64 bytes plus the name's bytes (a `BTreeMap`,
//! or a name and a host path of its own per file, cost about 200 bytes a file more on a
//! million-file closure).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use isoforge_host::snapshot::{FileId, FileTime, HostFile, HostPath, Snapshot};
use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, CWD};

use crate::error::WriteError;

/// Metadata stored in an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (`st_mode & 0o7777`; the type comes from the node).
    pub mode: u16,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Modification time in seconds since 1970 (squashfs stores an unsigned 32-bit time).
    pub mtime: u32,
}

/// Where a file's contents come from, and so its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileData {
    /// A host file as [`scan`] found it in a directory: the entry of this file's name in the
    /// host directory its directory's entries were scanned from ([`Entries::host_dir`]), with
    /// the [`Snapshot`] of the `lstat` that listed it ([`FileData::snapshot`]). Only the
    /// snapshot is stored (a million of these are common), its fields unpacked so that the
    /// variant's tag fits beside the nanoseconds: 40 bytes. A snapshot whose nanoseconds do
    /// not fit 32 bits (never on Linux, where they are below 10⁹) is scanned as a
    /// [`FileData::Host`]. Moved into another directory, it names that directory's host
    /// entry of its name, and reading it fails on the snapshot (another file, or none),
    /// never reads other bytes.
    Scanned {
        /// The snapshot's device and inode.
        id: FileId,
        /// The snapshot's size in bytes.
        size: u64,
        /// The snapshot's ctime, seconds.
        ctime_sec: i64,
        /// The snapshot's ctime, nanoseconds.
        ctime_nsec: u32,
    },
    /// A host file at a path of its own (a scan's root when it is a file, or any file a
    /// caller adds), as it was scanned.
    Host(Box<HostFile>),
    /// Contents held in memory (small generated files such as `nix-path-registration`).
    Bytes(Arc<[u8]>),
}

impl FileData {
    /// [`FileData::Scanned`] of `snapshot`, if its nanoseconds fit.
    pub fn scanned(snapshot: &Snapshot) -> Option<FileData> {
        Some(FileData::Scanned {
            id: snapshot.id,
            size: snapshot.size,
            ctime_sec: snapshot.ctime.sec,
            ctime_nsec: u32::try_from(snapshot.ctime.nsec).ok()?,
        })
    }

    /// Size in bytes: the snapshot's for a host file (every read checks that the file still
    /// has it), the length of the bytes in memory.
    pub fn size(&self) -> u64 {
        match self {
            FileData::Scanned { size, .. } => *size,
            FileData::Host(h) => h.size(),
            FileData::Bytes(b) => b.len() as u64,
        }
    }

    /// The snapshot of a host file (`None` for bytes in memory).
    pub fn snapshot(&self) -> Option<Snapshot> {
        match *self {
            FileData::Scanned { id, size, ctime_sec, ctime_nsec } => {
                Some(Snapshot { id, size, ctime: FileTime { sec: ctime_sec, nsec: i64::from(ctime_nsec) } })
            }
            FileData::Host(ref h) => Some(h.snapshot),
            FileData::Bytes(_) => None,
        }
    }

    /// The host file to read, for a file named `name` in a directory whose entries were
    /// scanned from `dir` ([`Entries::host_dir`]); `None` for bytes in memory. A
    /// [`FileData::Scanned`] file in a directory without a host directory is
    /// [`WriteError::NoHostDir`].
    pub fn host_file<'a>(
        &'a self,
        dir: Option<&Arc<Path>>,
        name: &[u8],
    ) -> Result<Option<Cow<'a, HostFile>>, WriteError> {
        match self {
            FileData::Scanned { .. } => match (dir, self.snapshot()) {
                (Some(d), Some(snapshot)) => {
                    let path = HostPath::in_dir(d, OsStr::from_bytes(name));
                    Ok(Some(Cow::Owned(HostFile { path, snapshot })))
                }
                _ => Err(WriteError::NoHostDir { name: String::from_utf8_lossy(name).into_owned() }),
            },
            FileData::Host(h) => Ok(Some(Cow::Borrowed(h))),
            FileData::Bytes(_) => Ok(None),
        }
    }

    /// The host directory a file named in a directory scanned from `dir` is in (`None` for
    /// bytes in memory).
    pub fn host_dir_in<'a>(&'a self, dir: Option<&'a Arc<Path>>) -> Option<&'a Path> {
        match self {
            FileData::Scanned { .. } => dir.map(|d| &**d),
            FileData::Host(h) => Some(h.path.dir()),
            FileData::Bytes(_) => None,
        }
    }
}

/// A directory's entries, sorted by raw name bytes, each name once. Its API follows
/// `BTreeMap`'s where they overlap.
///
/// 8 bytes in the node (nothing is allocated for an empty directory); the names are one
/// buffer, in entry order, and each entry is the end of its name there and its node, so a
/// file costs its node, 8 bytes and the bytes of its name. Inserting or removing moves the
/// entries and names after it, as a sorted vector does.
#[derive(Clone, Default)]
pub struct Entries(Option<Box<Listing>>);

#[derive(Clone, Default)]
struct Listing {
    /// The names, concatenated in entry order.
    names: Vec<u8>,
    /// Each entry: where its name ends in `names` (it starts where the previous one ends),
    /// and its node.
    list: Vec<(usize, InputNode)>,
    /// The host directory the entries were scanned from (their [`FileData::Scanned`] files
    /// are its entries).
    host: Option<Arc<Path>>,
}

impl Listing {
    fn start(&self, i: usize) -> usize {
        match i.checked_sub(1) {
            Some(j) => self.list[j].0,
            None => 0,
        }
    }

    fn name(&self, i: usize) -> &[u8] {
        &self.names[self.start(i)..self.list[i].0]
    }
}

impl Entries {
    /// No entries.
    pub fn new() -> Entries {
        Entries(None)
    }

    /// The entries of `list`, in any order, sorted; a name given twice keeps its last node.
    pub fn from_unsorted(mut list: Vec<(Vec<u8>, InputNode)>) -> Entries {
        // Stable, so among equal names the later one comes last and wins below.
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Listing {
            names: Vec::with_capacity(list.iter().map(|(n, _)| n.len()).sum()),
            list: Vec::with_capacity(list.len()),
            host: None,
        };
        for (name, node) in list {
            match out.list.len().checked_sub(1) {
                Some(last) if out.name(last) == name.as_slice() => out.list[last].1 = node,
                _ => {
                    out.names.extend_from_slice(&name);
                    out.list.push((out.names.len(), node));
                }
            }
        }
        out.list.shrink_to_fit();
        out.names.shrink_to_fit();
        Entries::of(out)
    }

    /// Entries already sorted, each name once (the scanner's): `names` concatenated, each
    /// entry the end of its name there and its node.
    fn sorted(names: Vec<u8>, list: Vec<(usize, InputNode)>, host: Option<Arc<Path>>) -> Entries {
        Entries::of(Listing { names, list, host })
    }

    fn of(listing: Listing) -> Entries {
        // An empty directory needs no host directory: it holds no file to read.
        if listing.list.is_empty() {
            Entries(None)
        } else {
            Entries(Some(Box::new(listing)))
        }
    }

    fn find(&self, name: &[u8]) -> Result<usize, usize> {
        match &self.0 {
            Some(l) => {
                // The binary search of `slice::binary_search_by`, over names in the buffer.
                let (mut lo, mut hi) = (0, l.list.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match l.name(mid).cmp(name) {
                        std::cmp::Ordering::Less => lo = mid + 1,
                        std::cmp::Ordering::Greater => hi = mid,
                        std::cmp::Ordering::Equal => return Ok(mid),
                    }
                }
                Err(lo)
            }
            None => Err(0),
        }
    }

    /// Adds or replaces the entry `name`; returns the node it replaced.
    pub fn insert(&mut self, name: impl AsRef<[u8]>, node: InputNode) -> Option<InputNode> {
        let name = name.as_ref();
        match self.find(name) {
            Ok(i) => self.0.as_mut().map(|l| std::mem::replace(&mut l.list[i].1, node)),
            Err(i) => {
                let l = self.0.get_or_insert_with(Box::default);
                let at = l.start(i);
                l.names.splice(at..at, name.iter().copied());
                for e in &mut l.list[i..] {
                    e.0 += name.len();
                }
                l.list.insert(i, (at + name.len(), node));
                None
            }
        }
    }

    /// The node named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&InputNode> {
        let i = self.find(name).ok()?;
        self.0.as_ref().map(|l| &l.list[i].1)
    }

    /// The node named `name`, to change it.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut InputNode> {
        let i = self.find(name).ok()?;
        self.0.as_mut().map(|l| &mut l.list[i].1)
    }

    /// Whether an entry is named `name`.
    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.find(name).is_ok()
    }

    /// Removes the entry `name`; returns its node.
    pub fn remove(&mut self, name: &[u8]) -> Option<InputNode> {
        let i = self.find(name).ok()?;
        let l = self.0.as_mut()?;
        let (start, end) = (l.start(i), l.list[i].0);
        l.names.drain(start..end);
        let (_, node) = l.list.remove(i);
        for e in &mut l.list[i..] {
            e.0 -= end - start;
        }
        Some(node)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.list.len())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th entry in name order (name, node).
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &InputNode)> {
        let l = self.0.as_ref()?;
        let (_, node) = l.list.get(i)?;
        Some((l.name(i), node))
    }

    /// (name, node) in name order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Some(l) => Iter { names: &l.names, list: l.list.iter(), start: 0 },
            None => Iter { names: &[], list: [].iter(), start: 0 },
        }
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(n, _)| n)
    }

    /// The nodes, in name order.
    pub fn values(&self) -> impl Iterator<Item = &InputNode> {
        self.iter().map(|(_, c)| c)
    }

    /// The nodes, in name order, to change them.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut InputNode> {
        self.0.iter_mut().flat_map(|l| l.list.iter_mut().map(|(_, c)| c))
    }

    /// The host directory these entries were scanned from: its entry of a
    /// [`FileData::Scanned`] file's name is that file. `None` for entries not made by a scan.
    pub fn host_dir(&self) -> Option<&Arc<Path>> {
        self.0.as_ref().and_then(|l| l.host.as_ref())
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        self.host_dir() == other.host_dir() && self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Entries {}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (name, node) in self {
            m.entry(&String::from_utf8_lossy(name), node);
        }
        m.finish()
    }
}

/// The entries of an [`Entries`], in name order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    names: &'a [u8],
    list: std::slice::Iter<'a, (usize, InputNode)>,
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a InputNode);

    fn next(&mut self) -> Option<Self::Item> {
        let (end, node) = self.list.next()?;
        let name = &self.names[self.start..*end];
        self.start = *end;
        Some((name, node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.list.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The entries of an [`Entries`], taken, in name order.
#[derive(Debug)]
pub struct IntoIter {
    names: Vec<u8>,
    list: std::vec::IntoIter<(usize, InputNode)>,
    start: usize,
}

impl Iterator for IntoIter {
    type Item = (Vec<u8>, InputNode);

    fn next(&mut self) -> Option<Self::Item> {
        let (end, node) = self.list.next()?;
        let name = self.names[self.start..end].to_vec();
        self.start = end;
        Some((name, node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.list.size_hint()
    }
}

impl<Q: AsRef<[u8]> + ?Sized> std::ops::Index<&Q> for Entries {
    type Output = InputNode;
    /// The node named `name`; panics when there is none, as `BTreeMap`'s index does.
    fn index(&self, name: &Q) -> &InputNode {
        match self.get(name.as_ref()) {
            Some(node) => node,
            None => panic!("no entry {:?}", String::from_utf8_lossy(name.as_ref())),
        }
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = (&'a [u8], &'a InputNode);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Entries {
    type Item = (Vec<u8>, InputNode);
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        let l = self.0.map(|l| *l).unwrap_or_default();
        IntoIter { names: l.names, list: l.list.into_iter(), start: 0 }
    }
}

impl FromIterator<(Vec<u8>, InputNode)> for Entries {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, InputNode)>>(iter: I) -> Entries {
        Entries::from_unsorted(iter.into_iter().collect())
    }
}

impl From<BTreeMap<Vec<u8>, InputNode>> for Entries {
    fn from(map: BTreeMap<Vec<u8>, InputNode>) -> Entries {
        Entries::from_unsorted(map.into_iter().collect())
    }
}

/// One node of the input tree: 56 bytes on 64-bit targets (checked by a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputNode {
    /// A directory with its entries sorted by raw name bytes.
    Dir {
        /// The entries. Names must be 1–256 bytes without `/` or NUL, and not `.` or `..`.
        entries: Entries,
        /// Its metadata.
        meta: Meta,
    },
    /// A regular file.
    File {
        /// Where the bytes come from, and so how many there are ([`FileData::size`]); the
        /// writer fails if a host file turns out to have another length.
        data: FileData,
        /// Its metadata.
        meta: Meta,
    },
    /// A symbolic link (never followed).
    Symlink {
        /// Target bytes (1–4095 bytes).
        target: Vec<u8>,
        /// Its metadata.
        meta: Meta,
    },
}

impl InputNode {
    /// The node's metadata.
    pub fn meta(&self) -> &Meta {
        match self {
            InputNode::Dir { meta, .. } | InputNode::File { meta, .. } | InputNode::Symlink { meta, .. } => {
                meta
            }
        }
    }

    /// The node's metadata, mutable.
    pub fn meta_mut(&mut self) -> &mut Meta {
        match self {
            InputNode::Dir { meta, .. } | InputNode::File { meta, .. } | InputNode::Symlink { meta, .. } => {
                meta
            }
        }
    }

    /// An empty directory.
    pub fn empty_dir(meta: Meta) -> InputNode {
        InputNode::Dir { entries: Entries::new(), meta }
    }

    /// A file held in memory.
    pub fn bytes_file(bytes: impl Into<Arc<[u8]>>, meta: Meta) -> InputNode {
        InputNode::File { data: FileData::Bytes(bytes.into()), meta }
    }

    /// Rewrites the metadata of this node and everything below it to Nix's canonical form
    /// (what `nix-store --optimise`/`canonicalisePathMetaData` leaves in the store): files
    /// 0444, or 0555 when any execute bit is set; directories 0555; symlinks 0777; mtime 1;
    /// uid and gid 0.
    pub fn canonicalise(&mut self) {
        match self {
            InputNode::Dir { entries, meta } => {
                *meta = Meta { mode: 0o555, uid: 0, gid: 0, mtime: 1 };
                for child in entries.values_mut() {
                    child.canonicalise();
                }
            }
            InputNode::File { meta, .. } => {
                let mode = if meta.mode & 0o111 != 0 { 0o555 } else { 0o444 };
                *meta = Meta { mode, uid: 0, gid: 0, mtime: 1 };
            }
            InputNode::Symlink { meta, .. } => *meta = Meta { mode: 0o777, uid: 0, gid: 0, mtime: 1 },
        }
    }

    /// Sets uid and gid to 0 everywhere below (mksquashfs `-all-root`).
    pub fn all_root(&mut self) {
        let m = self.meta_mut();
        m.uid = 0;
        m.gid = 0;
        if let InputNode::Dir { entries, .. } = self {
            for child in entries.values_mut() {
                child.all_root();
            }
        }
    }
}

/// The host's metadata of `path` (from its `lstat`). A modification time outside squashfs's
/// unsigned 32-bit seconds is an error naming the path when `exact_time`; otherwise (the
/// caller replaces the metadata with Nix's canonical form) it becomes 0.
#[allow(clippy::unnecessary_cast)] // The field types differ between architectures.
fn host_meta(path: impl FnOnce() -> PathBuf, st: &Stat, exact_time: bool) -> Result<Meta, WriteError> {
    let host_mtime = st.st_mtime as i64;
    let mtime = match u32::try_from(host_mtime) {
        Ok(t) => t,
        Err(_) if !exact_time => 0,
        Err(_) => return Err(WriteError::TimeOutOfRange { path: path(), mtime: host_mtime }),
    };
    // The permission bits, 12 of them.
    let mode = (st.st_mode as u32 & 0o7777) as u16;
    Ok(Meta { mode, uid: st.st_uid as u32, gid: st.st_gid as u32, mtime })
}

/// Scans a host path into an input tree, keeping the host's modes, owners and mtimes.
/// Symlinks are stored, never followed; a fifo, socket or device, or a modification time
/// before 1970 or after 2106-02-07T06:28:15Z, is an error naming its path. Each regular file
/// keeps the snapshot of the `lstat` that listed it ([`HostFile`]).
pub fn scan(path: &Path) -> Result<InputNode, WriteError> {
    scan_times(path, true)
}

/// [`scan`]; with `exact_times` false, out-of-range modification times are not an error
/// (for trees whose metadata is canonicalised afterwards, or only serialised as a NAR).
///
/// Every entry is examined relative to its directory, held open while it is listed
/// (`fstatat`, `readlinkat` and `openat` of one name): no host path is walked twice, and a
/// directory replaced by a symlink while it is scanned is an error, never followed.
pub fn scan_times(path: &Path, exact_times: bool) -> Result<InputNode, WriteError> {
    scan_at(CWD, path.as_os_str(), None, exact_times)
}

/// Scans the entry `name` of the directory `dirfd`, whose host path is `dir` (`None` for
/// the root of the scan, whose `name` is its whole path, relative to the working directory).
fn scan_at(
    dirfd: BorrowedFd<'_>,
    name: &OsStr,
    dir: Option<&Arc<Path>>,
    exact_times: bool,
) -> Result<InputNode, WriteError> {
    let path = || match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    };
    let read_err = |e: rustix::io::Errno| WriteError::Read { path: path(), source: e.into() };
    let st = rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(read_err)?;
    let meta = host_meta(path, &st, exact_times)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let snapshot = Snapshot::of_stat(&st);
            // An entry of the directory being listed: its path is the directory's and its name.
            let scanned = dir.and_then(|_| FileData::scanned(&snapshot));
            let data = match (scanned, dir) {
                (Some(data), _) => data,
                (None, Some(d)) => {
                    FileData::Host(Box::new(HostFile { path: HostPath::in_dir(d, name), snapshot }))
                }
                (None, None) => {
                    FileData::Host(Box::new(HostFile { path: HostPath::new(Path::new(name)), snapshot }))
                }
            };
            Ok(InputNode::File { data, meta })
        }
        FileType::Symlink => {
            let mut target = rustix::fs::readlinkat(dirfd, name, Vec::new()).map_err(read_err)?.into_bytes();
            // The buffer grows in steps while the link is read; the tree keeps its bytes only.
            target.shrink_to_fit();
            Ok(InputNode::Symlink { target, meta })
        }
        FileType::Directory => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(dirfd, name, flags, Mode::empty()).map_err(read_err)?;
            let mut listing = Dir::new(fd).map_err(read_err)?;
            // The names, in one buffer, and where each is in it.
            let mut listed: Vec<u8> = Vec::new();
            let mut spans: Vec<(usize, usize)> = Vec::new();
            for e in &mut listing {
                let e = e.map_err(read_err)?;
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    spans.push((listed.len(), listed.len() + n.len()));
                    listed.extend_from_slice(n);
                }
            }
            // Scanned in name order, so the first failing entry is the same on every host.
            spans.sort_unstable_by(|a, b| listed[a.0..a.1].cmp(&listed[b.0..b.1]));
            spans.dedup_by(|a, b| listed[a.0..a.1] == listed[b.0..b.1]);
            let this: Arc<Path> = Arc::from(path());
            let fd = listing.fd().map_err(read_err)?;
            let mut names = Vec::with_capacity(listed.len());
            let mut list = Vec::with_capacity(spans.len());
            for (start, end) in spans {
                let n = &listed[start..end];
                let child = scan_at(fd, OsStr::from_bytes(n), Some(&this), exact_times)?;
                names.extend_from_slice(n);
                list.push((names.len(), child));
            }
            Ok(InputNode::Dir { entries: Entries::sorted(names, list, Some(this)), meta })
        }
        other => Err(WriteError::UnsupportedType { path: path(), kind: unsupported_raw_kind(other) }),
    }
}

/// [`unsupported_kind`] of a raw file type.
fn unsupported_raw_kind(ft: FileType) -> &'static str {
    match ft {
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::BlockDevice => "block device",
        FileType::CharacterDevice => "character device",
        _ => "unknown file type",
    }
}

/// Names a file type that no image holds (anything but a directory, a regular file or a
/// symlink), for error messages: "fifo", "socket", "block device", "character device" or
/// "unknown file type".
pub fn unsupported_kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "unknown file type"
    }
}

/// Options of [`closure_tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClosureOptions {
    /// Date of the root directory and of `nix-path-registration` (`SOURCE_DATE_EPOCH`),
    /// seconds since 1970.
    pub epoch: u32,
    /// Keep the host's modes and mtimes for store content instead of Nix's canonical form
    /// (owners are still 0, as with mksquashfs `-all-root`).
    pub keep_metadata: bool,
}

/// Name of the registration file at the image root.
pub const REGISTRATION_NAME: &[u8] = b"nix-path-registration";

/// Builds the layout of nixpkgs' `/nix-store.squashfs`: one top-level entry per store path,
/// named by its basename (`(name, host path)` pairs; `-keep-as-directory`), plus
/// `nix-path-registration` holding `registration`.
///
/// The root is mode 0755 dated `epoch`; the registration file is 0444 dated `epoch`; store
/// content is canonicalised (see [`InputNode::canonicalise`]) unless `keep_metadata`.
/// Each path is [`scan`]ned here; [`closure_tree_scanned`] takes trees scanned before.
pub fn closure_tree(
    paths: &[(Vec<u8>, PathBuf)],
    registration: &[u8],
    options: ClosureOptions,
) -> Result<InputNode, WriteError> {
    let mut scanned = Vec::with_capacity(paths.len());
    for (name, host) in paths {
        scanned.push((name.clone(), scan_times(host, options.keep_metadata)?));
    }
    closure_tree_scanned(scanned, registration, options)
}

/// [`closure_tree`] from store paths already [`scan`]ned, with the host's metadata (the
/// scan the registration's NAR hashes were computed from, so that both describe the same
/// files).
pub fn closure_tree_scanned(
    paths: Vec<(Vec<u8>, InputNode)>,
    registration: &[u8],
    options: ClosureOptions,
) -> Result<InputNode, WriteError> {
    let stamp = Meta { mode: 0o755, uid: 0, gid: 0, mtime: options.epoch };
    let mut list = Vec::with_capacity(paths.len() + 1);
    for (name, mut node) in paths {
        if options.keep_metadata {
            node.all_root();
        } else {
            node.canonicalise();
        }
        if name.as_slice() == REGISTRATION_NAME {
            return Err(WriteError::DuplicateName { name: String::from_utf8_lossy(&name).into_owned() });
        }
        list.push((name, node));
    }
    list.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = list.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(WriteError::DuplicateName { name: String::from_utf8_lossy(&w[0].0).into_owned() });
    }
    let mut entries = Entries::from_unsorted(list);
    entries.insert(
        REGISTRATION_NAME,
        InputNode::bytes_file(registration.to_vec(), Meta { mode: 0o444, ..stamp }),
    );
    Ok(InputNode::Dir { entries, meta: stamp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn scan_and_canonicalise() {
        let d = isoforge_testing::tempdir();
        let p = d.path().join("pkg");
        fs::create_dir_all(p.join("bin")).unwrap();
        fs::write(p.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(p.join("bin/tool"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(p.join("data"), b"x").unwrap();
        std::os::unix::fs::symlink("bin", p.join("link")).unwrap();
        let t = closure_tree(
            &[(b"abc-pkg".to_vec(), p.clone())],
            b"reg",
            ClosureOptions { epoch: 77, keep_metadata: false },
        )
        .unwrap();
        let InputNode::Dir { entries, meta } = &t else { panic!() };
        assert_eq!(meta.mode, 0o755);
        assert_eq!(meta.mtime, 77);
        assert_eq!(
            entries.keys().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            vec![b"abc-pkg".to_vec(), REGISTRATION_NAME.to_vec()]
        );
        let InputNode::Dir { entries: pkg, meta } = &entries[&b"abc-pkg".to_vec()] else { panic!() };
        assert_eq!((meta.mode, meta.mtime, meta.uid), (0o555, 1, 0));
        let InputNode::Dir { entries: bin, .. } = &pkg[&b"bin".to_vec()] else { panic!() };
        assert_eq!(bin[&b"tool".to_vec()].meta().mode, 0o555);
        assert_eq!(pkg[&b"data".to_vec()].meta().mode, 0o444);
        assert!(
            matches!(&pkg[&b"link".to_vec()], InputNode::Symlink { target, meta } if target == b"bin" && meta.mode == 0o777)
        );
        assert_eq!(entries[REGISTRATION_NAME].meta().mtime, 77);
    }

    /// Issue 13: a file node is 56 bytes, and an entry 64 plus its name's bytes.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn nodes_stay_small() {
        assert_eq!(std::mem::size_of::<InputNode>(), 56);
        assert_eq!(std::mem::size_of::<FileData>(), 40);
        assert_eq!(std::mem::size_of::<Entries>(), 8);
        assert_eq!(std::mem::size_of::<(usize, InputNode)>(), 64);
    }

    #[test]
    fn entries_keep_names_and_nodes_together() {
        let m = Meta { mode: 0o444, uid: 0, gid: 0, mtime: 1 };
        let file = |b: &[u8]| InputNode::bytes_file(b.to_vec(), m);
        let mut e = Entries::from_unsorted(vec![
            (b"m".to_vec(), file(b"1")),
            (b"a".to_vec(), file(b"2")),
            (b"zz".to_vec(), file(b"3")),
            (b"m".to_vec(), file(b"4")),
        ]);
        let list = |e: &Entries| e.iter().map(|(n, c)| (n.to_vec(), c.clone())).collect::<Vec<_>>();
        assert_eq!(
            list(&e),
            vec![(b"a".to_vec(), file(b"2")), (b"m".to_vec(), file(b"4")), (b"zz".to_vec(), file(b"3"))]
        );
        assert_eq!(e.insert(b"b", file(b"5")), None);
        assert_eq!(e.insert(b"", file(b"6")), None);
        assert_eq!(e.insert(b"zzz", file(b"7")), None);
        assert_eq!(e.insert(b"m", file(b"8")), Some(file(b"4")));
        assert_eq!(e.keys().collect::<Vec<_>>(), [&b""[..], b"a", b"b", b"m", b"zz", b"zzz"]);
        assert_eq!(e.remove(b"b"), Some(file(b"5")));
        assert_eq!(e.remove(b"b"), None);
        assert_eq!(e.remove(b""), Some(file(b"6")));
        assert_eq!(e.keys().collect::<Vec<_>>(), [&b"a"[..], b"m", b"zz", b"zzz"]);
        assert_eq!(e.get(b"zz"), Some(&file(b"3")));
        assert_eq!(e.get_index(1), Some((&b"m"[..], &file(b"8"))));
        assert!(e.contains_key(b"zzz") && !e.contains_key(b"z"));
        let owned: Vec<(Vec<u8>, InputNode)> = e.clone().into_iter().collect();
        assert_eq!(owned, list(&e));
        assert_eq!(Entries::from_unsorted(owned), e);
        for k in [&b"a"[..], b"m", b"zz", b"zzz"] {
            e.remove(k);
        }
        assert!(e.is_empty() && e.iter().next().is_none() && e == Entries::new());
    }

    /// A scanned directory keeps its host path once; its files are snapshots read by name.
    #[test]
    fn scanned_files_are_entries_of_their_host_directory() {
        let d = isoforge_testing::tempdir();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/f"), b"hello").unwrap();
        let t = scan(d.path()).unwrap();
        let InputNode::Dir { entries, .. } = &t else { panic!() };
        let InputNode::Dir { entries: sub, .. } = &entries[b"sub"] else { panic!() };
        assert_eq!(sub.host_dir().map(|p| p.to_path_buf()), Some(d.path().join("sub")));
        let InputNode::File { data, .. } = &sub[b"f"] else { panic!() };
        assert!(matches!(data, FileData::Scanned { size: 5, .. }));
        let snapshot = data.snapshot().unwrap();
        assert_eq!(FileData::scanned(&snapshot).as_ref(), Some(data));
        let odd = Snapshot { ctime: FileTime { nsec: 1 << 40, ..snapshot.ctime }, ..snapshot };
        assert_eq!(FileData::scanned(&odd), None);
        let host = data.host_file(sub.host_dir(), b"f").unwrap().unwrap();
        assert_eq!(host.path.to_path_buf(), d.path().join("sub/f"));
        let mut buf = [0u8; 5];
        host.read_whole(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert!(matches!(data.host_file(None, b"f"), Err(WriteError::NoHostDir { .. })));
        // A file scanned as the root has its own path.
        let root = scan(&d.path().join("sub/f")).unwrap();
        let InputNode::File { data: FileData::Host(h), .. } = &root else { panic!("{root:?}") };
        assert_eq!(h.path.to_path_buf(), d.path().join("sub/f"));
    }

    #[test]
    fn fifo_is_an_error_naming_the_path() {
        let d = isoforge_testing::tempdir();
        let f = d.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&f).status();
        if !matches!(status, Ok(s) if s.success()) {
            return;
        }
        let e = scan(d.path()).unwrap_err();
        assert!(e.to_string().contains("fifo") && e.to_string().contains(&*f.to_string_lossy()), "{e}");
    }

    /// Issue 11: a host mtime squashfs cannot store is an error naming the path when host
    /// times are kept, and harmless when the metadata is canonicalised.
    #[test]
    fn out_of_range_mtime_is_an_error_only_when_kept() {
        use std::time::{Duration, SystemTime};
        let d = isoforge_testing::tempdir();
        let p = d.path().join("pkg");
        fs::create_dir_all(&p).unwrap();
        let f = p.join("old");
        for t in [
            SystemTime::UNIX_EPOCH - Duration::from_secs(5),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 32),
        ] {
            fs::write(&f, b"x").unwrap();
            fs::File::options().write(true).open(&f).unwrap().set_modified(t).unwrap();
            let paths = [(b"abc-pkg".to_vec(), p.clone())];
            let e = closure_tree(&paths, b"", ClosureOptions { epoch: 1, keep_metadata: true }).unwrap_err();
            assert!(matches!(&e, WriteError::TimeOutOfRange { path, .. } if *path == f), "{e}");
            assert!(e.to_string().contains("unsigned 32-bit seconds"), "{e}");
            assert!(matches!(scan(&p), Err(WriteError::TimeOutOfRange { .. })));
            let t = closure_tree(&paths, b"", ClosureOptions { epoch: 1, keep_metadata: false }).unwrap();
            let InputNode::Dir { entries, .. } = &t else { panic!() };
            let InputNode::Dir { entries: pkg, .. } = &entries[&b"abc-pkg".to_vec()] else { panic!() };
            assert_eq!(pkg[&b"old".to_vec()].meta().mtime, 1);
        }
    }
}
