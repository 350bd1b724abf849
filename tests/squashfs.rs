//! squashfs writer tests against real tools: unsquashfs (-s, -lln, full extraction), mksquashfs
//! (size comparison with nixpkgs' flags) and backhand as an independent reader, plus our own
//! reader, reproducibility and corruption checks.
//!
//! A missing tool skips the test with a note, unless `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use isoforge_squashfs::read::{Archive, EntryKind};
use isoforge_squashfs::{
    closure_tree, write_to_path, ClosureOptions, Compression, FileData, InputNode, Options,
};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

fn run(cmd: &mut Command) -> String {
    let out = cmd.env("TZ", "UTC").output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Compressible text.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut i = seed;
    while v.len() < len {
        v.extend_from_slice(format!("{i} lorem ipsum dolor sit amet {}\n", i % 13).as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// What an entry should look like: (kind char, permission bits, size for files, symlink target).
type Expected = BTreeMap<Vec<u8>, (char, u16, u64, Vec<u8>)>;

fn expected(tree: &InputNode) -> Expected {
    fn go(n: &InputNode, path: Vec<u8>, out: &mut Expected) {
        match n {
            InputNode::Dir { entries, meta } => {
                out.insert(path.clone(), ('d', meta.mode, 0, Vec::new()));
                for (name, child) in entries {
                    let mut p = path.clone();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(name);
                    go(child, p, out);
                }
            }
            InputNode::File { data, meta } => {
                out.insert(path, ('f', meta.mode, data.size(), Vec::new()));
            }
            InputNode::Symlink { target, meta } => {
                out.insert(path, ('l', meta.mode, 0, target.clone()));
            }
        }
    }
    let mut out = Expected::new();
    go(tree, Vec::new(), &mut out);
    out
}

fn mode_string(kind: char, mode: u16) -> String {
    let mut s = String::new();
    s.push(if kind == 'f' { '-' } else { kind });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Parses `unsquashfs -lln` into path → (mode string, owner, size, target).
fn parse_lln(out: &str) -> BTreeMap<String, (String, String, u64, String)> {
    let mut m = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let mut it = line.split_whitespace();
        let perms = it.next().unwrap().to_string();
        let owner = it.next().unwrap().to_string();
        let size: u64 = it.next().unwrap().parse().unwrap();
        let _date = it.next().unwrap();
        let _time = it.next().unwrap();
        let rest_start = line.find("squashfs-root").unwrap();
        let rest = &line[rest_start..];
        let (path, target) = match rest.split_once(" -> ") {
            Some((p, t)) => (p.to_string(), t.to_string()),
            None => (rest.to_string(), String::new()),
        };
        let path = path.strip_prefix("squashfs-root").unwrap().trim_start_matches('/').to_string();
        m.insert(path, (perms, owner, size, target));
    }
    m
}

fn check_lln(image: &Path, exp: &Expected) {
    let listing = parse_lln(&run(Command::new("unsquashfs").arg("-lln").arg(image)));
    assert_eq!(listing.len(), exp.len(), "entry count from unsquashfs -lln");
    for (path, (kind, mode, size, target)) in exp {
        let p = String::from_utf8(path.clone()).unwrap();
        let (perms, owner, lsize, ltarget) =
            listing.get(&p).unwrap_or_else(|| panic!("{p:?} missing from unsquashfs -lln"));
        assert_eq!(perms, &mode_string(*kind, *mode), "{p}");
        assert_eq!(owner, "0/0", "{p}");
        if *kind == 'f' {
            assert_eq!(lsize, size, "{p}");
        }
        if *kind == 'l' {
            assert_eq!(ltarget.as_bytes(), target.as_slice(), "{p}");
        }
    }
}

/// Compares two readers byte for byte in chunks.
fn same_stream(mut a: impl Read, mut b: impl Read) -> bool {
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let na = read_up_to(&mut a, &mut ba);
        let nb = read_up_to(&mut b, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// The 3 GiB sparse file's contents, generated instead of read (reading 3 GiB of holes back
/// from the host would dominate the test's runtime).
/// Sparse files of the edge-case tree: (name, size, offset of the only data bytes). The 5 GiB
/// one needs an extended inode for its size and ends with a 17-byte all-zero block.
const SPARSE_FILES: [(&str, u64, u64); 2] =
    [("sparse-3g", 3 << 30, 2 << 30), ("sparse-5g", (5 << 30) + 17, (4 << 30) + 100)];
const SPARSE_MARK: &[u8] = b"a few bytes in the middle";

fn sparse_spec(size: u64) -> Option<(u64, u64)> {
    SPARSE_FILES.iter().find(|f| f.1 == size).map(|f| (f.1, f.2))
}

struct SparseSynth {
    pos: u64,
    size: u64,
    mark_at: u64,
}

impl Read for SparseSynth {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        for (i, &m) in SPARSE_MARK.iter().enumerate() {
            let at = self.mark_at + i as u64;
            if (self.pos..self.pos + n as u64).contains(&at) {
                buf[(at - self.pos) as usize] = m;
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A file of the tree as its source is found: its contents, the host directory its
/// directory was scanned from and its name (for a scanned host file).
type Src<'a> = (&'a FileData, Option<&'a Arc<Path>>, &'a [u8]);

fn source_reader((data, dir, name): Src<'_>) -> Box<dyn Read> {
    match data.host_file(dir, name).unwrap() {
        Some(h) if SPARSE_FILES.iter().any(|f| h.path.to_path_buf().ends_with(f.0)) => {
            let f = SPARSE_FILES.iter().find(|f| h.path.to_path_buf().ends_with(f.0)).unwrap();
            Box::new(SparseSynth { pos: 0, size: f.1, mark_at: f.2 })
        }
        Some(h) => Box::new(File::open(h.path.to_path_buf()).unwrap()),
        None => match data {
            FileData::Bytes(b) => Box::new(Cursor::new(b.to_vec())),
            _ => unreachable!("only bytes have no host file"),
        },
    }
}

/// Compares an extracted directory with the input tree: types, modes, contents, targets.
fn check_extracted(dir: &Path, tree: &InputNode) {
    check_extracted_in(dir, tree, None, b"");
}

/// [`check_extracted`] of a node named `name` in a directory scanned from `host`.
fn check_extracted_in(dir: &Path, tree: &InputNode, host: Option<&Arc<Path>>, name: &[u8]) {
    match tree {
        InputNode::Dir { entries, meta } => {
            let md = fs::symlink_metadata(dir).unwrap();
            assert!(md.is_dir(), "{dir:?}");
            assert_eq!(md.mode() & 0o7777, u32::from(meta.mode), "{dir:?}");
            assert_eq!(fs::read_dir(dir).unwrap().count(), entries.len(), "{dir:?}");
            for (name, child) in entries {
                let path = dir.join(std::ffi::OsStr::from_encoded_bytes_checked(name));
                check_extracted_in(&path, child, entries.host_dir(), name);
            }
        }
        InputNode::File { data, meta } => {
            let size = data.size();
            let md = fs::symlink_metadata(dir).unwrap();
            assert!(md.is_file(), "{dir:?}");
            assert_eq!(md.len(), size, "{dir:?}");
            assert_eq!(md.mode() & 0o7777, u32::from(meta.mode), "{dir:?}");
            if let Some((sparse_size, mark_at)) = sparse_spec(size) {
                // unsquashfs writes holes: little is allocated. Check the data around the mark
                // and the end instead of reading 3 GiB of zeros.
                assert!(md.blocks() * 512 < 64 * MIB, "{dir:?} is not sparse: {} blocks", md.blocks());
                let mut f = File::open(dir).unwrap();
                let mut buf = vec![0u8; 2 * MIB as usize];
                f.seek(SeekFrom::Start(mark_at - MIB)).unwrap();
                f.read_exact(&mut buf).unwrap();
                let mut want = vec![0u8; 2 * MIB as usize];
                want[MIB as usize..MIB as usize + SPARSE_MARK.len()].copy_from_slice(SPARSE_MARK);
                assert!(buf == want, "{dir:?} around the mark");
                f.seek(SeekFrom::Start(sparse_size - MIB)).unwrap();
                f.read_exact(&mut buf[..MIB as usize]).unwrap();
                assert!(buf[..MIB as usize].iter().all(|&b| b == 0));
            } else {
                let src = source_reader((data, host, name));
                assert!(same_stream(File::open(dir).unwrap(), src), "contents of {dir:?}");
            }
        }
        InputNode::Symlink { target, .. } => {
            let t = fs::read_link(dir).unwrap();
            assert_eq!(t.as_os_str().as_encoded_bytes(), target.as_slice(), "{dir:?}");
        }
    }
}

trait OsStrFromBytes {
    fn from_encoded_bytes_checked(b: &[u8]) -> &std::ffi::OsStr;
}
impl OsStrFromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_checked(b: &[u8]) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b)
    }
}

fn extract_and_check(image: &Path, tree: &InputNode, tmp: &Path) {
    let out = tmp.join("x");
    let _ = fs::remove_dir_all(&out);
    run(Command::new("unsquashfs").arg("-q").arg("-n").arg("-d").arg(&out).arg(image));
    check_extracted(&out, tree);
    make_writable(&out);
    fs::remove_dir_all(&out).unwrap();
}

fn make_writable(p: &Path) {
    for e in walk_dirs(p) {
        set_mode(&e, 0o755);
    }
}

fn walk_dirs(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    let mut i = 0;
    while i < v.len() {
        if let Ok(rd) = fs::read_dir(&v[i]) {
            for e in rd.flatten() {
                if e.file_type().unwrap().is_dir() {
                    v.push(e.path());
                }
            }
        }
        i += 1;
    }
    v
}

/// A read-only kernel mount of an image, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    /// Mounts `image` with the kernel's squashfs driver (`mount -o loop,ro`). Skips (None)
    /// when mounting is not possible here, unless CI=true.
    fn new(image: &Path) -> Option<Mount> {
        let dir = support::tempdir();
        let out = Command::new("mount")
            .args(["-t", "squashfs", "-o", "loop,ro"])
            .arg(image)
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                support::skip(&format!(
                    "the kernel mount check: cannot mount {} with the kernel's squashfs driver: {why}",
                    image.display()
                ));
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Mounts the image and compares the kernel's view with the tree.
fn check_kernel(image: &Path, tree: &InputNode) {
    if let Some(m) = Mount::new(image) {
        check_extracted(m.dir.path(), tree);
    }
}

/// Lists the image with our reader and compares with the tree (and reads small files).
fn check_our_reader(image: &Path, tree: &InputNode, exp: &Expected) {
    let mut a = Archive::open(File::open(image).unwrap()).unwrap();
    assert_eq!(a.verify().unwrap(), Vec::<String>::new());
    let list = a.walk().unwrap();
    assert_eq!(list.len(), exp.len());
    let mut contents = BTreeMap::new();
    collect_files(tree, Vec::new(), &mut contents);
    for (path, node) in &list {
        let (kind, mode, size, target) = &exp[path];
        assert_eq!(node.mode, *mode, "{}", String::from_utf8_lossy(path));
        assert_eq!((node.uid, node.gid), (0, 0));
        match &node.kind {
            EntryKind::Dir { .. } => assert_eq!(*kind, 'd'),
            EntryKind::File { layout, .. } => {
                assert_eq!(*kind, 'f');
                assert_eq!(layout.file_size, *size);
                let mut w = Comparer { src: source_reader(contents[path]), ok: true, buf: Vec::new() };
                a.read_file(node, &mut w).unwrap();
                assert!(
                    w.ok && read_up_to(&mut w.src, &mut [0u8; 1]) == 0,
                    "contents of {}",
                    String::from_utf8_lossy(path)
                );
            }
            EntryKind::Symlink { target: t } => assert_eq!(t, target),
            EntryKind::Special { .. } => panic!("unexpected special file"),
        }
    }
}

/// A writer that compares what it is given with a source.
struct Comparer {
    src: Box<dyn Read>,
    ok: bool,
    buf: Vec<u8>,
}

impl Write for Comparer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.resize(b.len(), 0);
        let n = read_up_to(&mut self.src, &mut self.buf);
        if n != b.len() || self.buf[..n] != *b {
            self.ok = false;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn collect_files<'a>(n: &'a InputNode, path: Vec<u8>, out: &mut BTreeMap<Vec<u8>, Src<'a>>) {
    let InputNode::Dir { entries, .. } = n else { return };
    for (name, child) in entries {
        let mut p = path.clone();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        match child {
            InputNode::Dir { .. } => collect_files(child, p, out),
            InputNode::File { data, .. } => {
                out.insert(p, (data, entries.host_dir(), name));
            }
            InputNode::Symlink { .. } => {}
        }
    }
}

/// Lists the image with backhand and compares with the expectation; reads files below 8 MiB.
fn check_backhand(image: &Path, tree: &InputNode, exp: &Expected) {
    use backhand::{FilesystemReader, InnerNode};
    let fs_r = FilesystemReader::from_reader(std::io::BufReader::new(File::open(image).unwrap())).unwrap();
    let mut contents = BTreeMap::new();
    collect_files(tree, Vec::new(), &mut contents);
    let mut seen = 0;
    for node in fs_r.files() {
        let p = node.fullpath.as_os_str().as_encoded_bytes();
        let p = p.strip_prefix(b"/").unwrap_or(p).to_vec();
        let (kind, mode, size, target) =
            exp.get(&p).unwrap_or_else(|| panic!("backhand lists unexpected {:?}", node.fullpath));
        assert_eq!(node.header.permissions, *mode, "{:?}", node.fullpath);
        assert_eq!((node.header.uid, node.header.gid), (0, 0));
        match &node.inner {
            InnerNode::Dir(_) => assert_eq!(*kind, 'd'),
            InnerNode::Symlink(l) => {
                assert_eq!(*kind, 'l');
                assert_eq!(l.link.as_os_str().as_encoded_bytes(), target.as_slice());
            }
            InnerNode::File(f) => {
                assert_eq!(*kind, 'f');
                assert_eq!(f.file_len() as u64, *size);
                if *size < 8 * MIB {
                    let mut v = Vec::new();
                    fs_r.file(f).reader().read_to_end(&mut v).unwrap();
                    assert!(
                        same_stream(Cursor::new(v), source_reader(contents[&p])),
                        "backhand contents of {:?}",
                        node.fullpath
                    );
                }
            }
            _ => panic!("unexpected node {:?}", node.fullpath),
        }
        seen += 1;
    }
    assert_eq!(seen, exp.len(), "backhand entry count");
}

fn opts(compression: Compression, block_size: u32, threads: usize) -> Options {
    Options { compression, block_size, threads, mkfs_time: 1_700_000_000, ..Options::default() }
}

/// Builds the edge-case store tree on the host.
fn edge_case_store(root: &Path, big_sparse: bool) -> Vec<(Vec<u8>, PathBuf)> {
    let pkg = root.join("aaa-pkg");
    fs::create_dir_all(pkg.join("sub/deeper")).unwrap();
    fs::write(pkg.join("empty"), b"").unwrap();
    fs::write(pkg.join("one-block"), noise(MIB as usize, 1)).unwrap();
    fs::write(pkg.join("one-block-minus-1"), text(MIB as usize - 1, 2)).unwrap();
    fs::write(pkg.join("one-block-plus-1"), noise(MIB as usize + 1, 3)).unwrap();
    fs::write(pkg.join("text-3.5-blocks"), text(3 * MIB as usize + MIB as usize / 2, 4)).unwrap();
    fs::write(pkg.join("sub/deeper/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    set_mode(&pkg.join("sub/deeper/tool"), 0o750);
    let long = "n".repeat(255);
    fs::write(pkg.join(&long), b"long name").unwrap();
    std::os::unix::fs::symlink("sub", pkg.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", pkg.join("dangling")).unwrap();
    std::os::unix::fs::symlink(&long, pkg.join("link-to-long")).unwrap();
    // Many identical small files, and identical multi-block files.
    fs::create_dir_all(pkg.join("same")).unwrap();
    for i in 0..200 {
        fs::write(pkg.join(format!("same/copy{i:03}")), b"identical contents\n").unwrap();
    }
    fs::write(pkg.join("same/big-a"), noise(2 * MIB as usize + 5, 9)).unwrap();
    fs::write(pkg.join("same/big-b"), noise(2 * MIB as usize + 5, 9)).unwrap();
    // Same size, different bytes: must not be shared.
    let mut near = noise(2 * MIB as usize + 5, 9);
    near[MIB as usize + 7] ^= 1;
    fs::write(pkg.join("same/big-c"), near).unwrap();
    // A zero block in the middle of a file, and an all-zero tail.
    let mut holey = noise(3 * MIB as usize, 5);
    holey[MIB as usize..2 * MIB as usize].fill(0);
    fs::write(pkg.join("holey"), holey).unwrap();
    // A directory of 10,000 entries (with unique small contents).
    let many = root.join("bbb-many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..10_000 {
        fs::write(many.join(format!("entry-with-a-fairly-long-name-{i:05}")), format!("{i}\n")).unwrap();
    }
    if big_sparse {
        for (name, size, mark_at) in SPARSE_FILES {
            let mut f = File::create(pkg.join(name)).unwrap();
            f.set_len(size).unwrap();
            f.seek(SeekFrom::Start(mark_at)).unwrap();
            f.write_all(SPARSE_MARK).unwrap();
        }
    }
    fs::write(root.join("ccc-single-file"), b"top-level file\n").unwrap();
    std::os::unix::fs::symlink("aaa-pkg/sub", root.join("ddd-symlink")).unwrap();
    ["aaa-pkg", "bbb-many", "ccc-single-file", "ddd-symlink"]
        .iter()
        .map(|n| (n.as_bytes().to_vec(), root.join(n)))
        .collect()
}

#[test]
fn edge_cases_with_unsquashfs_backhand_and_our_reader() {
    if !support::tool("unsquashfs") {
        return;
    }
    let tmp = support::tempdir();
    let store = tmp.path().join("store");
    let t0 = std::time::Instant::now();
    let paths = edge_case_store(&store, true);
    eprintln!("fixture {:?}", t0.elapsed());
    let tree = closure_tree(
        &paths,
        b"registration\n",
        ClosureOptions { epoch: 1_700_000_000, keep_metadata: false },
    )
    .unwrap();
    let image = tmp.path().join("edge.squashfs");
    let summary = write_to_path(&tree, &opts(Compression::Zstd { level: 19 }, 1 << 20, 2), &image).unwrap();
    eprintln!("edge-case image: {summary:?} in {:?}", t0.elapsed());
    assert_eq!(fs::metadata(&image).unwrap().len(), summary.total_size);
    assert_eq!(summary.total_size % 4096, 0);
    assert!(summary.sparse_blocks >= 3070 + 5120, "{summary:?}");
    assert!(summary.duplicate_files >= 200, "{summary:?}");

    let s = run(Command::new("unsquashfs").arg("-s").arg(&image));
    for want in [
        "Compression zstd",
        "compression-level 19",
        "Block size 1048576",
        "Filesystem is exportable via NFS",
        "Duplicates are removed",
        &format!("Number of inodes {}", summary.inodes),
        "Number of ids 1",
        &format!("Filesystem size {} bytes", summary.bytes_used),
    ] {
        assert!(s.contains(want), "unsquashfs -s lacks {want:?}:\n{s}");
    }
    let exp = expected(&tree);
    let t0 = std::time::Instant::now();
    check_lln(&image, &exp);
    eprintln!("lln {:?}", t0.elapsed());
    // Dates: the root and nix-path-registration carry the epoch, store content 1.
    let lln = run(Command::new("unsquashfs").arg("-lln").arg(&image));
    assert!(
        lln.lines().next().unwrap().contains("2023-11-14 22:13 squashfs-root"),
        "{}",
        lln.lines().next().unwrap()
    );
    assert!(lln.lines().any(|l| l.contains("1970-01-01 00:00 squashfs-root/aaa-pkg/empty")));
    extract_and_check(&image, &tree, tmp.path());
    eprintln!("extract {:?}", t0.elapsed());
    check_our_reader(&image, &tree, &exp);
    eprintln!("our reader {:?}", t0.elapsed());
    check_backhand(&image, &tree, &exp);
    eprintln!("backhand {:?}", t0.elapsed());
    // The kernel: readdir, lookups by name through the directory index, file contents, and
    // the sparse file's block count (from the extended inode's `sparse` field).
    if let Some(m) = Mount::new(&image) {
        check_extracted(m.dir.path(), &tree);
        for i in [0, 1, 2, 4999, 5000, 9998, 9999] {
            let p = m.dir.path().join(format!("bbb-many/entry-with-a-fairly-long-name-{i:05}"));
            assert_eq!(fs::read(&p).unwrap(), format!("{i}\n").as_bytes(), "{p:?}");
        }
        assert!(fs::metadata(m.dir.path().join("bbb-many/entry-with-a-fairly-long-name-10000")).is_err());
        assert!(fs::metadata(m.dir.path().join("bbb-many/entry-with-a-fairly-long-name-0000")).is_err());
        eprintln!("kernel {:?}", t0.elapsed());
    }

    // The 10,000-entry directory needs an extended inode with a directory index.
    let a = Archive::open(File::open(&image).unwrap()).unwrap();
    let many = a.lookup(b"bbb-many").unwrap();
    let EntryKind::Dir { index_count, .. } = many.kind else { panic!() };
    assert!(index_count > 10, "index entries: {index_count}");
    let big = a.lookup(b"aaa-pkg/sparse-3g").unwrap();
    let EntryKind::File { layout, extended } = &big.kind else { panic!() };
    assert!(*extended && layout.sparse >= 3070 * MIB, "{:?}", layout.sparse);
    let big = a.lookup(b"aaa-pkg/sparse-5g").unwrap();
    let EntryKind::File { layout, extended } = &big.kind else { panic!() };
    assert!(*extended && layout.file_size > u64::from(u32::MAX));
    assert_eq!(layout.blocks.len(), 5 * 1024 + 1);
    assert_eq!(layout.blocks.iter().filter(|&&w| w != 0).count(), 1, "one data block, the rest holes");
    // Identical big files share their blocks; a near-identical one does not.
    let ab = |p: &[u8]| match a.lookup(p).unwrap().kind {
        EntryKind::File { layout, .. } => layout.start_block,
        _ => panic!(),
    };
    assert_eq!(ab(b"aaa-pkg/same/big-a"), ab(b"aaa-pkg/same/big-b"));
    assert_ne!(ab(b"aaa-pkg/same/big-a"), ab(b"aaa-pkg/same/big-c"));
}

/// A moderate tree used for the compressor and reproducibility tests.
fn small_store(root: &Path, umask: u32, mtime_base: i64) -> Vec<(Vec<u8>, PathBuf)> {
    let p = root.join("xyz-small");
    fs::create_dir_all(p.join("bin")).unwrap();
    fs::create_dir_all(p.join("share/doc")).unwrap();
    fs::write(p.join("bin/prog"), noise(300_000, 7)).unwrap();
    fs::write(p.join("share/doc/README"), text(900_000, 8)).unwrap();
    fs::write(p.join("share/doc/copy"), text(900_000, 8)).unwrap();
    fs::write(p.join("share/empty"), b"").unwrap();
    let mut zeros_and_text = vec![0u8; 200_000];
    zeros_and_text.extend_from_slice(&text(100_000, 3));
    fs::write(p.join("share/mixed"), zeros_and_text).unwrap();
    std::os::unix::fs::symlink("../share", p.join("bin/share")).unwrap();
    // Hard links (the duplicate search takes them as identical without reading): one of a
    // file with no other twin, one of a file that is itself a duplicate of an earlier one.
    fs::hard_link(p.join("bin/prog"), p.join("bin/prog-link")).unwrap();
    fs::hard_link(p.join("share/doc/copy"), p.join("share/doc/link")).unwrap();
    let q = root.join("abc-other");
    fs::create_dir_all(&q).unwrap();
    for i in 0..50 {
        fs::write(q.join(format!("f{i}")), text(1000 + i * 37, i as u64)).unwrap();
    }
    // Host metadata that normalisation must erase.
    for (i, e) in walk_all(root).iter().enumerate() {
        let md = fs::symlink_metadata(e).unwrap();
        if md.file_type().is_symlink() {
            continue;
        }
        let exec = md.is_dir() || e.ends_with("bin/prog");
        set_mode(e, if exec { 0o777 & !umask } else { 0o666 & !umask });
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs((mtime_base + i as i64) as u64);
        File::options().read(true).open(e).and_then(|f| f.set_modified(t)).ok();
    }
    vec![(b"xyz-small".to_vec(), root.join("xyz-small")), (b"abc-other".to_vec(), root.join("abc-other"))]
}

fn walk_all(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    let mut i = 0;
    while i < v.len() {
        if fs::symlink_metadata(&v[i]).unwrap().is_dir() {
            let mut kids: Vec<_> = fs::read_dir(&v[i]).unwrap().map(|e| e.unwrap().path()).collect();
            kids.sort();
            v.extend(kids);
        }
        i += 1;
    }
    v
}

#[test]
fn every_compressor_is_readable() {
    if !support::tool("unsquashfs") {
        return;
    }
    let tmp = support::tempdir();
    let paths = small_store(&tmp.path().join("store"), 0o022, 1_000_000);
    let tree = closure_tree(&paths, b"reg", ClosureOptions { epoch: 5, keep_metadata: false }).unwrap();
    let exp = expected(&tree);
    for (i, (c, bs)) in [
        (Compression::Zstd { level: 1 }, 4096),
        (Compression::Zstd { level: 22 }, 1 << 20),
        (Compression::Xz { dict_size: None, x86_bcj: false }, 1 << 17),
        (Compression::Xz { dict_size: Some(1 << 16), x86_bcj: true }, 1 << 17),
        (Compression::Gzip { level: 9 }, 1 << 16),
        (Compression::Gzip { level: 1 }, 1 << 20),
        (Compression::Lz4, 1 << 20),
        (Compression::None, 1 << 14),
    ]
    .into_iter()
    .enumerate()
    {
        let image = tmp.path().join(format!("c{i}.squashfs"));
        write_to_path(&tree, &opts(c, bs, 2), &image).unwrap();
        let s = run(Command::new("unsquashfs").arg("-s").arg(&image));
        let name = if c == Compression::None { "gzip" } else { c.name() };
        assert!(s.contains(&format!("Compression {name}")), "{c:?}: {s}");
        assert!(s.contains(&format!("Block size {bs}")), "{c:?}: {s}");
        check_lln(&image, &exp);
        extract_and_check(&image, &tree, tmp.path());
        check_our_reader(&image, &tree, &exp);
        check_backhand(&image, &tree, &exp);
        check_kernel(&image, &tree);
    }
}

fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    h.update(fs::read(p).unwrap());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn reproducible_across_threads_order_mtimes_and_umask() {
    let tmp = support::tempdir();
    let a = small_store(&tmp.path().join("a"), 0o022, 1_000_000);
    let mut b = small_store(&tmp.path().join("b"), 0o077, 1_600_000_000);
    b.reverse();
    let options = ClosureOptions { epoch: 42, keep_metadata: false };
    let ta = closure_tree(&a, b"reg", options).unwrap();
    let tb = closure_tree(&b, b"reg", options).unwrap();
    let mut sums = Vec::new();
    for (i, (t, threads)) in [(&ta, 1), (&tb, 2), (&ta, 3)].into_iter().enumerate() {
        let image = tmp.path().join(format!("r{i}.squashfs"));
        // Small blocks so that many blocks are in flight at once.
        write_to_path(t, &opts(Compression::Zstd { level: 3 }, 1 << 14, threads), &image).unwrap();
        sums.push(sha256_file(&image));
    }
    assert_eq!(sums[0], sums[1]);
    assert_eq!(sums[0], sums[2]);
    // Keeping host metadata does change the bytes (the test above is not vacuous).
    let kept = closure_tree(&b, b"reg", ClosureOptions { keep_metadata: true, ..options }).unwrap();
    let image = tmp.path().join("kept.squashfs");
    write_to_path(&kept, &opts(Compression::Zstd { level: 3 }, 1 << 14, 2), &image).unwrap();
    assert_ne!(sha256_file(&image), sums[0]);
}

/// Copies some shared libraries and binaries of this machine into a store-like tree.
fn system_fixture(root: &Path, budget: u64) -> Vec<(Vec<u8>, PathBuf)> {
    let mut out = Vec::new();
    let mut used = 0u64;
    for (name, src_dir, filter) in
        [("aaa-libs", "/usr/lib/x86_64-linux-gnu", ".so"), ("bbb-bins", "/usr/bin", "")]
    {
        let dst = root.join(name);
        fs::create_dir_all(&dst).unwrap();
        let Ok(rd) = fs::read_dir(src_dir) else { continue };
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        let mut n = 0;
        for p in entries {
            let name_s = p.file_name().unwrap().to_string_lossy().into_owned();
            if !name_s.contains(filter) {
                continue;
            }
            let Ok(md) = fs::symlink_metadata(&p) else { continue };
            if md.is_symlink() {
                if let Ok(t) = fs::read_link(&p) {
                    std::os::unix::fs::symlink(t, dst.join(&name_s)).unwrap();
                }
            } else if md.is_file()
                && md.len() < 4 * MIB
                && used + md.len() < budget / 2 * (out.len() as u64 + 1)
                && fs::copy(&p, dst.join(&name_s)).is_ok()
            {
                used += md.len();
                n += 1;
            }
            if n > 400 {
                break;
            }
        }
        out.push((name.as_bytes().to_vec(), dst));
    }
    out
}

#[test]
fn size_within_one_percent_of_mksquashfs() {
    if !support::tool("mksquashfs") || !support::tool("unsquashfs") {
        return;
    }
    let tmp = support::tempdir();
    let paths = system_fixture(&tmp.path().join("store"), 12 * MIB);
    let reference = tmp.path().join("mksquashfs.squashfs");
    let t0 = std::time::Instant::now();
    let mut cmd = Command::new("mksquashfs");
    for (_, p) in &paths {
        cmd.arg(p);
    }
    cmd.arg(&reference).args([
        "-no-hardlinks",
        "-keep-as-directory",
        "-all-root",
        "-b",
        "1048576",
        "-comp",
        "zstd",
        "-Xcompression-level",
        "19",
        "-processors",
        "2",
        "-root-mode",
        "0755",
        "-quiet",
        "-no-progress",
    ]);
    run(&mut cmd);
    let theirs_time = t0.elapsed();
    // Same tree as mksquashfs sees: host modes and mtimes, owners 0, no registration file
    // (removed below so the two listings match).
    let mut tree = closure_tree(&paths, b"", ClosureOptions { epoch: 0, keep_metadata: true }).unwrap();
    if let InputNode::Dir { entries, .. } = &mut tree {
        entries.remove(b"nix-path-registration".as_slice());
    }
    let ours = tmp.path().join("ours.squashfs");
    let t0 = std::time::Instant::now();
    let s = write_to_path(&tree, &opts(Compression::Zstd { level: 19 }, 1 << 20, 2), &ours).unwrap();
    let ours_time = t0.elapsed();
    let theirs_len = fs::metadata(&reference).unwrap().len();
    let ours_len = fs::metadata(&ours).unwrap().len();
    eprintln!(
        "input {} bytes: mksquashfs {theirs_len} bytes in {theirs_time:?}; isoforge {ours_len} bytes (bytes_used {}) in {ours_time:?}; ratio {:.4}",
        s.file_bytes,
        s.bytes_used,
        ours_len as f64 / theirs_len as f64
    );
    assert!(ours_len as f64 <= theirs_len as f64 * 1.01, "ours {ours_len} > 1.01 × mksquashfs {theirs_len}");
    // Both listings agree apart from the root line (its date).
    let a = run(Command::new("unsquashfs").arg("-lln").arg(&reference));
    let b = run(Command::new("unsquashfs").arg("-lln").arg(&ours));
    // Our reader reads mksquashfs's image: same tree, same contents, promises kept.
    check_our_reader(&reference, &tree, &expected(&tree));
    let strip = |s: &str| {
        s.lines()
            .skip(1)
            .map(|l| l.split_whitespace().filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
}

#[test]
fn writes_inside_a_larger_stream_and_pads() {
    let tmp = support::tempdir();
    let paths = small_store(&tmp.path().join("store"), 0o022, 0);
    let tree = closure_tree(&paths, b"reg", ClosureOptions { epoch: 7, keep_metadata: false }).unwrap();
    let mut cur = Cursor::new(vec![0xAAu8; 12_345]);
    cur.seek(SeekFrom::End(0)).unwrap();
    let s =
        isoforge_squashfs::write(&tree, &opts(Compression::Zstd { level: 3 }, 1 << 17, 2), &mut cur).unwrap();
    assert_eq!(cur.position(), 12_345 + s.total_size);
    assert_eq!(s.total_size % 4096, 0);
    assert!(s.bytes_used <= s.total_size && s.total_size - s.bytes_used < 4096);
    let bytes = cur.into_inner();
    assert!(bytes[..12_345].iter().all(|&b| b == 0xAA));
    assert!(bytes[12_345 + s.bytes_used as usize..].iter().all(|&b| b == 0));
    let mut c = Cursor::new(bytes.clone());
    c.seek(SeekFrom::Start(12_345)).unwrap();
    let mut a = Archive::open(c).unwrap();
    let node = a.lookup(b"xyz-small/share/doc/README").unwrap();
    assert_eq!(a.read_to_vec(&node).unwrap(), text(900_000, 8));
    // Hard links and copies share the first file's data (same layout), inodes stay apart.
    for (first, later) in [
        (&b"xyz-small/bin/prog"[..], &b"xyz-small/bin/prog-link"[..]),
        (b"xyz-small/share/doc/README", b"xyz-small/share/doc/copy"),
        (b"xyz-small/share/doc/README", b"xyz-small/share/doc/link"),
    ] {
        let (f, l) = (a.lookup(first).unwrap(), a.lookup(later).unwrap());
        assert_eq!(f.kind, l.kind, "{}", String::from_utf8_lossy(later));
        assert_ne!(f.inode_number, l.inode_number);
    }
    assert_eq!(s.duplicate_files, 3);
    if support::tool("unsquashfs") {
        let image = tmp.path().join("embedded.img");
        fs::write(&image, &bytes).unwrap();
        let out = run(Command::new("unsquashfs").arg("-o").arg("12345").arg("-lln").arg(&image));
        assert!(out.contains("squashfs-root/xyz-small/share/doc/README"), "{out}");
    }
}

#[test]
fn corrupt_images_give_errors_not_panics() {
    let tree = {
        let mut entries = BTreeMap::new();
        let m = isoforge_squashfs::Meta { mode: 0o444, uid: 0, gid: 0, mtime: 1 };
        entries.insert(b"a".to_vec(), InputNode::bytes_file(text(20_000, 1), m));
        entries.insert(b"b".to_vec(), InputNode::bytes_file(noise(5000, 2), m));
        entries.insert(b"l".to_vec(), InputNode::Symlink { target: b"a".to_vec(), meta: m });
        let mut sub = BTreeMap::new();
        sub.insert(b"c".to_vec(), InputNode::bytes_file(b"cc".to_vec(), m));
        entries.insert(b"d".to_vec(), InputNode::Dir { entries: sub.into(), meta: m });
        InputNode::Dir { entries: entries.into(), meta: m }
    };
    for c in [Compression::Zstd { level: 3 }, Compression::Gzip { level: 6 }, Compression::None] {
        let mut cur = Cursor::new(Vec::new());
        let s = isoforge_squashfs::write(&tree, &opts(c, 4096, 1), &mut cur).unwrap();
        let good = cur.into_inner();
        let try_all = |img: Vec<u8>| {
            let Ok(mut a) = Archive::open(Cursor::new(img)) else { return };
            let Ok(list) = a.walk() else { return };
            for (_, n) in list {
                if matches!(n.kind, EntryKind::File { .. }) {
                    let _ = a.read_file(&n, &mut std::io::sink());
                }
            }
        };
        try_all(good.clone());
        for i in 0..s.bytes_used as usize {
            for x in [0xFFu8, 0x01, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= x;
                try_all(bad);
            }
        }
        // Random 32-bit values over every even offset.
        let rnd = noise(s.bytes_used as usize * 2 + 8, 99);
        for i in (0..s.bytes_used as usize - 4).step_by(2) {
            let mut bad = good.clone();
            bad[i..i + 4].copy_from_slice(&rnd[i * 2..i * 2 + 4]);
            try_all(bad);
        }
        for len in (0..s.bytes_used as usize).step_by(7) {
            try_all(good[..len].to_vec());
        }
    }
}
