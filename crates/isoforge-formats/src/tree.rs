//! The input tree: what goes into an image, before any format-specific naming or layout.
//!
//! A [`Tree`] is built from grafts (`TARGET=SOURCE`, as xorriso's `-graft-points`), from bytes
//! the pipeline generates (the boot catalog, the EFI image, `nix-path-registration`), or both.
//! It records each file's host path and size, never its contents: the writers stream contents
//! from the host when they write. Entries are kept in `BTreeMap`s keyed by the raw name bytes,
//! so the tree, and every image made from it, is independent of the order of the grafts and of
//! the order in which the host lists directories.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use isoforge_host::snapshot::HostFile;
use thiserror::Error;

/// A file name as raw bytes (Unix names need not be UTF-8).
pub type Name = Vec<u8>;

/// Errors while building the input tree. Each names the host path or image path at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A graft source could not be examined (missing, permission denied, ...).
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A fifo, socket or device node: images hold only files, directories and symlinks.
    #[error("{path} is a {kind}; only regular files, directories and symlinks can go into an image")]
    UnsupportedType {
        /// The host path.
        path: PathBuf,
        /// "fifo", "socket", "block device", "character device" or "unknown file type".
        kind: &'static str,
    },
    /// A target path with a `..` component.
    #[error("target {target:?} escapes the image root ('..' is not allowed)")]
    EscapesRoot {
        /// The target as given.
        target: String,
    },
    /// Two grafts, or a graft and a generated file, for the same image path.
    #[error("duplicate target {target:?}: two sources map to the same path in the image")]
    DuplicateTarget {
        /// The image path.
        target: String,
    },
    /// A target that cannot name a file (empty for a file, a component that is not valid).
    #[error("invalid target {target:?}: {why}")]
    BadTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A path component on the way to a target is a file or symlink, not a directory.
    #[error("cannot place {target:?}: {parent:?} is not a directory")]
    NotADirectory {
        /// The target as given.
        target: String,
        /// The image path of the non-directory component.
        parent: String,
    },
}

/// Metadata kept from the host (or set by the pipeline). Formats decide what to keep: ISO
/// Rock Ridge with `-r` semantics and the squashfs writer normalise it by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Host modification time in seconds, or `None` for entries the pipeline made (their
    /// dates are the epoch).
    pub mtime: Option<i64>,
}

impl Meta {
    /// Metadata of a directory the pipeline creates implicitly (a graft's missing parents).
    pub(crate) fn implicit_dir() -> Meta {
        Meta { mode: 0o755, mtime: None }
    }
    /// Metadata of a file the pipeline generates.
    pub(crate) fn generated_file() -> Meta {
        Meta { mode: 0o444, mtime: None }
    }
}

/// Where a file's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A host file as it was scanned, opened and streamed when the image is written. Its
    /// readers check it against the snapshot: a file that changed since it was scanned is
    /// an error naming it.
    Host(HostFile),
    /// Small contents the pipeline made (a boot catalog, a registration file).
    Bytes(Arc<[u8]>),
    /// Contents a later stage produces while writing (the EFI image, the squashfs). The number
    /// identifies the producer; the size is planned by that stage.
    Generated(u32),
}

/// A regular file in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNode {
    /// Where the bytes come from.
    pub source: FileSource,
    /// Size in bytes, taken when the tree was built.
    pub size: u64,
}

/// A directory: entries sorted by raw name bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dir {
    /// The entries, sorted by name.
    pub entries: BTreeMap<Name, Node>,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir(Dir),
    /// A regular file.
    File(FileNode),
    /// A symbolic link with its target as raw bytes (never followed).
    Symlink(Vec<u8>),
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Its metadata.
    pub meta: Meta,
}

/// The whole input tree, rooted at the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The root directory.
    pub root: Node,
    /// Normalised targets of explicit grafts, to reject the same target twice.
    grafted: BTreeSet<String>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

/// Splits an image path into components, rejecting `..`. Leading, trailing and repeated
/// slashes and `.` components are ignored, so `/boot//x/` is `["boot", "x"]`.
pub(crate) fn split_target(target: &str) -> Result<Vec<Name>, TreeError> {
    let mut out = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(TreeError::EscapesRoot { target: target.to_string() }),
            p => out.push(p.as_bytes().to_vec()),
        }
    }
    Ok(out)
}

/// The image path of `components` for messages and lookups: `/a/b`, or `/` for the root.
/// Non-UTF-8 bytes are shown lossily.
pub(crate) fn display_path<C: AsRef<[u8]>>(components: &[C]) -> String {
    let mut s = String::new();
    for c in components {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(c.as_ref()));
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn join(components: &[Name]) -> String {
    display_path(components)
}

impl Tree {
    /// An empty tree: a root directory with mode 0755.
    pub fn new() -> Tree {
        Tree {
            root: Node { kind: NodeKind::Dir(Dir::default()), meta: Meta::implicit_dir() },
            grafted: BTreeSet::new(),
        }
    }

    /// The root directory's entries.
    pub fn root_dir(&self) -> &Dir {
        match &self.root.kind {
            NodeKind::Dir(d) => d,
            // The root is created as a directory and `insert` never replaces it.
            _ => unreachable!("tree root is always a directory"),
        }
    }

    /// Grafts a host file, directory (recursively) or symlink at `target`, like an xorriso
    /// graft point. A directory grafted onto an existing directory is merged into it; any
    /// other collision, and the same target grafted twice, is [`TreeError::DuplicateTarget`].
    pub fn graft(&mut self, target: &str, source: &Path) -> Result<(), TreeError> {
        let components = split_target(target)?;
        let normalised = join(&components);
        if !self.grafted.insert(normalised.clone()) {
            return Err(TreeError::DuplicateTarget { target: normalised });
        }
        let node = scan(source)?;
        self.insert(target, &components, node)
    }

    /// Adds a file with contents held in memory (small generated files).
    pub fn add_bytes(&mut self, target: &str, bytes: Arc<[u8]>) -> Result<(), TreeError> {
        let components = split_target(target)?;
        let size = bytes.len() as u64;
        let node = Node {
            kind: NodeKind::File(FileNode { source: FileSource::Bytes(bytes), size }),
            meta: Meta::generated_file(),
        };
        self.insert(target, &components, node)
    }

    /// Adds a file whose contents a later stage produces, with its planned size.
    pub fn add_generated(&mut self, target: &str, id: u32, size: u64) -> Result<(), TreeError> {
        let components = split_target(target)?;
        let node = Node {
            kind: NodeKind::File(FileNode { source: FileSource::Generated(id), size }),
            meta: Meta::generated_file(),
        };
        self.insert(target, &components, node)
    }

    /// The node at an image path, if any.
    pub fn get(&self, target: &str) -> Option<&Node> {
        let components = split_target(target).ok()?;
        let mut node = &self.root;
        for c in &components {
            match &node.kind {
                NodeKind::Dir(d) => node = d.entries.get(c)?,
                _ => return None,
            }
        }
        Some(node)
    }

    /// Mutable access to the node at an image path, if any.
    pub fn get_mut(&mut self, target: &str) -> Option<&mut Node> {
        let components = split_target(target).ok()?;
        let mut node = &mut self.root;
        for c in &components {
            match &mut node.kind {
                NodeKind::Dir(d) => node = d.entries.get_mut(c)?,
                _ => return None,
            }
        }
        Some(node)
    }

    fn insert(&mut self, target: &str, components: &[Name], node: Node) -> Result<(), TreeError> {
        let Some((last, parents)) = components.split_last() else {
            // The root itself: only a directory can be merged into it.
            return merge(&mut self.root, node, "/");
        };
        let mut cur = &mut self.root;
        for (i, c) in parents.iter().enumerate() {
            let NodeKind::Dir(d) = &mut cur.kind else {
                return Err(TreeError::NotADirectory {
                    target: target.to_string(),
                    parent: join(&components[..i]),
                });
            };
            cur = d
                .entries
                .entry(c.clone())
                .or_insert_with(|| Node { kind: NodeKind::Dir(Dir::default()), meta: Meta::implicit_dir() });
        }
        let NodeKind::Dir(d) = &mut cur.kind else {
            return Err(TreeError::NotADirectory { target: target.to_string(), parent: join(parents) });
        };
        match d.entries.get_mut(last) {
            None => {
                d.entries.insert(last.clone(), node);
                Ok(())
            }
            Some(existing) => merge(existing, node, &join(components)),
        }
    }

    /// Visits every node depth-first, parents before children, entries in name order. The
    /// callback gets the path components from the root (empty for the root).
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&[&'a [u8]], &'a Node)) {
        fn go<'a>(path: &mut Vec<&'a [u8]>, node: &'a Node, f: &mut dyn FnMut(&[&'a [u8]], &'a Node)) {
            f(path, node);
            if let NodeKind::Dir(d) = &node.kind {
                for (name, child) in &d.entries {
                    path.push(name);
                    go(path, child, f);
                    path.pop();
                }
            }
        }
        go(&mut Vec::new(), &self.root, f);
    }
}

fn merge(existing: &mut Node, new: Node, at: &str) -> Result<(), TreeError> {
    match (&mut existing.kind, new.kind) {
        (NodeKind::Dir(old), NodeKind::Dir(new_dir)) => {
            // An explicitly grafted directory's metadata wins over an implicit parent's.
            if new.meta.mtime.is_some() {
                existing.meta = new.meta;
            }
            for (name, child) in new_dir.entries {
                let path = if at == "/" {
                    format!("/{}", String::from_utf8_lossy(&name))
                } else {
                    format!("{at}/{}", String::from_utf8_lossy(&name))
                };
                match old.entries.get_mut(&name) {
                    None => {
                        old.entries.insert(name, child);
                    }
                    Some(e) => merge(e, child, &path)?,
                }
            }
            Ok(())
        }
        _ => Err(TreeError::DuplicateTarget { target: at.to_string() }),
    }
}

/// Reads a host path (not following a final symlink) into a [`Node`], recursively for
/// directories. Directory entries are sorted by name bytes. Each regular file keeps the
/// snapshot of the `lstat` that listed it ([`HostFile`]).
pub fn scan(path: &Path) -> Result<Node, TreeError> {
    let unreadable = |source| TreeError::Unreadable { path: path.to_path_buf(), source };
    let md = fs::symlink_metadata(path).map_err(unreadable)?;
    let meta = Meta { mode: md.mode() & 0o7777, mtime: Some(md.mtime()) };
    let ft = md.file_type();
    let kind = if ft.is_symlink() {
        let target = fs::read_link(path).map_err(unreadable)?;
        NodeKind::Symlink(target.as_os_str().as_bytes().to_vec())
    } else if ft.is_dir() {
        let mut entries = BTreeMap::new();
        for entry in fs::read_dir(path).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let child = scan(&entry.path())?;
            entries.insert(entry.file_name().as_bytes().to_vec(), child);
        }
        NodeKind::Dir(Dir { entries })
    } else if ft.is_file() {
        // Open now so an unreadable file is reported before anything is written.
        fs::File::open(path).map_err(unreadable)?;
        let host = HostFile::new(path, &md);
        NodeKind::File(FileNode { size: host.size(), source: FileSource::Host(host) })
    } else {
        let kind = isoforge_squashfs::tree::unsupported_kind(ft);
        return Err(TreeError::UnsupportedType { path: path.to_path_buf(), kind });
    };
    Ok(Node { kind, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rejects_dotdot() {
        assert_eq!(split_target("/a//b/./c/").unwrap(), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(matches!(split_target("/a/../b"), Err(TreeError::EscapesRoot { .. })));
    }

    #[test]
    fn grafts_merge_and_reject_duplicates() {
        let dir = isoforge_testing::tempdir();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/x"), b"x").unwrap();
        fs::write(dir.path().join("f"), b"f").unwrap();
        let mut t = Tree::new();
        t.graft("/boot", &dir.path().join("d")).unwrap();
        t.graft("/boot/y", &dir.path().join("f")).unwrap();
        assert!(t.get("/boot/x").is_some());
        assert!(t.get("/boot/y").is_some());
        assert!(matches!(t.graft("/boot/y", &dir.path().join("f")), Err(TreeError::DuplicateTarget { .. })));
        assert!(matches!(t.graft("boot/x", &dir.path().join("f")), Err(TreeError::DuplicateTarget { .. })));
        assert!(matches!(t.graft("/boot/y/z", &dir.path().join("f")), Err(TreeError::NotADirectory { .. })));
    }

    #[test]
    fn order_independent() {
        let dir = isoforge_testing::tempdir();
        fs::write(dir.path().join("a"), b"a").unwrap();
        fs::write(dir.path().join("b"), b"b").unwrap();
        let mut t1 = Tree::new();
        t1.graft("/x/a", &dir.path().join("a")).unwrap();
        t1.graft("/x/b", &dir.path().join("b")).unwrap();
        let mut t2 = Tree::new();
        t2.graft("/x/b", &dir.path().join("b")).unwrap();
        t2.graft("/x/a", &dir.path().join("a")).unwrap();
        assert_eq!(t1.root, t2.root);
    }

    #[test]
    fn fifo_is_rejected() {
        let dir = isoforge_testing::tempdir();
        let fifo = dir.path().join("p");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if status.map(|s| s.success()).unwrap_or(false) {
            let mut t = Tree::new();
            let err = t.graft("/p", &fifo).unwrap_err();
            assert!(err.to_string().contains("fifo"), "{err}");
        }
    }
}
