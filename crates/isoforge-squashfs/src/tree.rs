//! The writer's input: a tree of directories, files and symlinks with their metadata already
//! decided, plus helpers that scan a host path into it and build the Nix closure layout.
//!
//! A directory's entries ([`Entries`]) are kept sorted by raw name bytes, so the image does not
//! depend on the order in which the host lists directories or the caller adds entries. They
//! are a sorted vector rather than a `BTreeMap`: a store has many small directories, and a
//! map's node is allocated for eleven entries however few there are (about 230 bytes a file
//! more on a million-file closure).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use isoforge_host::snapshot::{HostFile, HostPath, Snapshot};
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

/// Where a file's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileData {
    /// A host file as it was scanned, opened and streamed when the image is written. Every
    /// read checks it against its snapshot: a file that changed since it was scanned is an
    /// error, never a file with other bytes.
    Host(HostFile),
    /// Contents held in memory (small generated files such as `nix-path-registration`).
    Bytes(Arc<[u8]>),
}

/// A directory's entries, sorted by raw name bytes, each name once. Its API follows
/// `BTreeMap`'s where they overlap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entries(Vec<(Vec<u8>, InputNode)>);

impl Entries {
    /// No entries.
    pub fn new() -> Entries {
        Entries(Vec::new())
    }

    /// The entries of `list`, in any order, sorted; a name given twice keeps its last node.
    pub fn from_unsorted(mut list: Vec<(Vec<u8>, InputNode)>) -> Entries {
        // Stable, so among equal names the later one comes last and wins below.
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Vec<u8>, InputNode)> = Vec::with_capacity(list.len());
        for (name, node) in list {
            match out.last_mut() {
                Some(last) if last.0 == name => last.1 = node,
                _ => out.push((name, node)),
            }
        }
        out.shrink_to_fit();
        Entries(out)
    }

    fn find(&self, name: &[u8]) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_slice().cmp(name))
    }

    /// Adds or replaces the entry `name`; returns the node it replaced.
    pub fn insert(&mut self, name: Vec<u8>, node: InputNode) -> Option<InputNode> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, node)),
            Err(i) => {
                self.0.insert(i, (name, node));
                None
            }
        }
    }

    /// The node named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&InputNode> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// The node named `name`, to change it.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut InputNode> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether an entry is named `name`.
    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.find(name).is_ok()
    }

    /// Removes the entry `name`; returns its node.
    pub fn remove(&mut self, name: &[u8]) -> Option<InputNode> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (name, node) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &InputNode)> {
        self.0.iter().map(|(n, c)| (n, c))
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.0.iter().map(|(n, _)| n)
    }

    /// The nodes, in name order.
    pub fn values(&self) -> impl Iterator<Item = &InputNode> {
        self.0.iter().map(|(_, c)| c)
    }

    /// The nodes, in name order, to change them.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut InputNode> {
        self.0.iter_mut().map(|(_, c)| c)
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
    type Item = (&'a Vec<u8>, &'a InputNode);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Vec<u8>, InputNode)>,
        fn(&'a (Vec<u8>, InputNode)) -> (&'a Vec<u8>, &'a InputNode),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, c)| (n, c))
    }
}

impl IntoIterator for Entries {
    type Item = (Vec<u8>, InputNode);
    type IntoIter = std::vec::IntoIter<(Vec<u8>, InputNode)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(Vec<u8>, InputNode)> for Entries {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, InputNode)>>(iter: I) -> Entries {
        Entries::from_unsorted(iter.into_iter().collect())
    }
}

impl From<BTreeMap<Vec<u8>, InputNode>> for Entries {
    fn from(map: BTreeMap<Vec<u8>, InputNode>) -> Entries {
        Entries(map.into_iter().collect())
    }
}

/// One node of the input tree.
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
        /// Where the bytes come from.
        data: FileData,
        /// Size in bytes; the writer fails if the source turns out to have another length.
        size: u64,
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
        let bytes: Arc<[u8]> = bytes.into();
        InputNode::File { size: bytes.len() as u64, data: FileData::Bytes(bytes), meta }
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
            let host_path = match dir {
                Some(d) => HostPath::in_dir(d, name),
                None => HostPath::new(Path::new(name)),
            };
            let host = HostFile { path: host_path, snapshot: Snapshot::of_stat(&st) };
            Ok(InputNode::File { size: host.size(), data: FileData::Host(host), meta })
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dirfd, name, Vec::new()).map_err(read_err)?;
            Ok(InputNode::Symlink { target: target.into_bytes(), meta })
        }
        FileType::Directory => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(dirfd, name, flags, Mode::empty()).map_err(read_err)?;
            let mut listing = Dir::new(fd).map_err(read_err)?;
            let mut names: Vec<Vec<u8>> = Vec::new();
            for e in &mut listing {
                let e = e.map_err(read_err)?;
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(n.to_vec());
                }
            }
            // Scanned in name order, so the first failing entry is the same on every host.
            names.sort_unstable();
            let this: Arc<Path> = Arc::from(path());
            let fd = listing.fd().map_err(read_err)?;
            let mut list = Vec::with_capacity(names.len());
            for n in names {
                let child = scan_at(fd, OsStr::from_bytes(&n), Some(&this), exact_times)?;
                list.push((n, child));
            }
            Ok(InputNode::Dir { entries: Entries::from_unsorted(list), meta })
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
        REGISTRATION_NAME.to_vec(),
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
            entries.keys().cloned().collect::<Vec<_>>(),
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
