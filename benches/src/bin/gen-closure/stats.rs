//! `gen-closure --stats DIR`: the shape of a closure (or of any directory tree).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// True if `head` (the first bytes of a file) starts like zstd, xz, gzip, bzip2, lz4, zip,
/// PNG or JPEG data.
pub fn is_compressed(head: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        b"\x28\xb5\x2f\xfd",
        b"\xfd7zXZ\0",
        b"\x1f\x8b",
        b"BZh",
        b"\x04\x22\x4d\x18",
        b"PK\x03\x04",
        b"\x89PNG",
        b"\xff\xd8\xff",
    ];
    MAGICS.iter().any(|m| head.starts_with(m))
}

/// What `--stats` counts.
#[derive(Default)]
pub struct Shape {
    /// Store paths (top-level entries of the store), 0 for a plain tree.
    pub paths: u64,
    /// Regular file names (what `find -type f` lists).
    pub files: u64,
    /// Distinct regular-file inodes.
    pub inodes: u64,
    /// Directories, the store paths' own included.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Regular-file inodes whose content equals an earlier inode's (independent copies).
    pub duplicates: u64,
    /// Bytes of the distinct inodes.
    pub bytes: u64,
    /// Bytes of every regular file name (hard links counted each time).
    pub name_bytes: u64,
    /// Bytes of the distinct inodes that start like compressed data.
    pub compressed_bytes: u64,
    /// Files among the inodes that start like compressed data.
    pub compressed_files: u64,
    /// Median size of a regular file name.
    pub median: u64,
}

impl Shape {
    /// Hard links: names beyond the first of each inode.
    pub fn hard_links(&self) -> u64 {
        self.files - self.inodes
    }
}

fn walk(
    dir: &Path,
    s: &mut Shape,
    sizes: &mut Vec<u64>,
    inodes: &mut BTreeMap<(u64, u64), (PathBuf, u64)>,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let m = fs::symlink_metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        if m.is_dir() {
            s.dirs += 1;
            walk(&p, s, sizes, inodes)?;
        } else if m.file_type().is_symlink() {
            s.symlinks += 1;
        } else if m.is_file() {
            s.files += 1;
            s.name_bytes += m.len();
            sizes.push(m.len());
            inodes.entry((m.dev(), m.ino())).or_insert((p, m.len()));
        }
    }
    Ok(())
}

/// Counts the tree under `root`: a closure directory (`DIR/root/nix/store` with
/// `DIR/closure-info/store-paths`), a store directory, or any tree.
pub fn shape(root: &Path) -> Result<Shape> {
    let mut s = Shape::default();
    let closure_store = root.join("root/nix/store");
    let (top, paths): (PathBuf, Vec<PathBuf>) = if closure_store.is_dir() {
        let list = fs::read_to_string(root.join("closure-info/store-paths")).unwrap_or_default();
        let paths = list
            .lines()
            .filter_map(|l| l.strip_prefix("/nix/store/"))
            .map(|n| closure_store.join(n))
            .collect();
        (closure_store, paths)
    } else {
        (root.to_path_buf(), Vec::new())
    };
    let mut sizes = Vec::new();
    let mut inodes = BTreeMap::new();
    if paths.is_empty() {
        walk(&top, &mut s, &mut sizes, &mut inodes)?;
    } else {
        for p in &paths {
            s.paths += 1;
            let m = fs::symlink_metadata(p).with_context(|| format!("reading {}", p.display()))?;
            if m.is_dir() {
                s.dirs += 1;
                walk(p, &mut s, &mut sizes, &mut inodes)?;
            } else if m.is_file() {
                s.files += 1;
                sizes.push(m.len());
                inodes.entry((m.dev(), m.ino())).or_insert((p.clone(), m.len()));
            } else {
                s.symlinks += 1;
            }
        }
    }
    sizes.sort_unstable();
    s.median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    s.inodes = inodes.len() as u64;
    // Duplicates: group the inodes by size, hash the groups of two or more.
    let mut by_size: HashMap<u64, Vec<&PathBuf>> = HashMap::new();
    for (path, len) in inodes.values() {
        s.bytes += len;
        let mut head = [0u8; 6];
        let n = fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
        if is_compressed(&head[..n]) {
            s.compressed_bytes += len;
            s.compressed_files += 1;
        }
        by_size.entry(*len).or_default().push(path);
    }
    for group in by_size.values().filter(|g| g.len() > 1) {
        let mut seen = std::collections::HashSet::new();
        for path in group {
            let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if !seen.insert(Sha256::digest(&bytes)) {
                s.duplicates += 1;
            }
        }
    }
    Ok(s)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One paragraph for people, one `key=value` line for scripts.
pub fn print(s: &Shape) {
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 * 100.0 / b as f64 };
    println!(
        "shape: {} store paths, {} files ({} inodes), {} directories, {} symlinks, {} hard links, \
         {} duplicates ({:.1} % of files), {:.1} MiB in files ({:.1} MiB counting each hard link), \
         {:.1} % of the bytes already compressed ({} files), median file {} B",
        thousands(s.paths),
        thousands(s.files),
        thousands(s.inodes),
        thousands(s.dirs),
        thousands(s.symlinks),
        thousands(s.hard_links()),
        thousands(s.duplicates),
        pct(s.duplicates, s.files),
        s.bytes as f64 / f64::from(1 << 20),
        s.name_bytes as f64 / f64::from(1 << 20),
        pct(s.compressed_bytes, s.bytes),
        thousands(s.compressed_files),
        thousands(s.median),
    );
    println!(
        "shape-kv: paths={} files={} inodes={} dirs={} symlinks={} hardlinks={} duplicates={} bytes={} \
         name_bytes={} compressed_bytes={} compressed_files={} median={}",
        s.paths,
        s.files,
        s.inodes,
        s.dirs,
        s.symlinks,
        s.hard_links(),
        s.duplicates,
        s.bytes,
        s.name_bytes,
        s.compressed_bytes,
        s.compressed_files,
        s.median
    );
}
