//! `gen-closure --mutate DIR --variant N`: a new content for one file of one mid-sized
//! store path, the store path name unchanged (what a rebuild with a cache sees when one
//! package changed, and what a `--store-root` tree being edited looks like).
//!
//! The path is the median one by bytes among those with a regular file of its own (link
//! count 1) that is not compressed data (a package, not firmware); the file is that path's
//! largest such file (ties by name). Variant N stores
//! every byte XOR N, so the file keeps its size and its compressibility and every block of
//! it changes; variant 0 is the original. `DIR/mutation` records the file and the variant,
//! so going from one variant to another (or back to 0) works from any state. The
//! registration is regenerated (the path's NAR hash changes); metadata stays canonical.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

fn regular_files(dir: &Path, out: &mut Vec<(PathBuf, u64, u64)>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let m = fs::symlink_metadata(&p)?;
        if m.is_dir() {
            regular_files(&p, out)?;
        } else if m.is_file() {
            out.push((p, m.len(), m.nlink()));
        }
    }
    Ok(())
}

fn compressed(p: &Path) -> bool {
    let mut head = [0u8; 6];
    let n = fs::File::open(p).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    crate::stats::is_compressed(&head[..n])
}

/// The file the mutation changes, chosen from the closure alone.
fn choose(dir: &Path) -> Result<PathBuf> {
    let store = dir.join("root/nix/store");
    let list = fs::read_to_string(dir.join("closure-info/store-paths"))
        .with_context(|| format!("reading {}/closure-info/store-paths", dir.display()))?;
    let mut paths = Vec::new();
    for line in list.lines() {
        let Some(name) = line.strip_prefix("/nix/store/") else { continue };
        let p = store.join(name);
        if !p.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        regular_files(&p, &mut files)?;
        let bytes: u64 = files.iter().map(|f| f.1).sum();
        let own = files
            .iter()
            .filter(|f| f.2 == 1 && f.1 > 0 && !compressed(&f.0))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        if let Some(own) = own {
            paths.push((bytes, name.to_string(), own.0.clone()));
        }
    }
    paths.sort();
    match paths.get(paths.len() / 2) {
        Some((_, _, file)) => Ok(file.clone()),
        None => bail!("{}: no store path with a file of its own to change", dir.display()),
    }
}

/// Sets the mutated file to `variant`; returns (file, size).
pub fn mutate(dir: &Path, variant: u8) -> Result<(PathBuf, u64)> {
    let record = dir.join("mutation");
    let (file, current) = match fs::read_to_string(&record) {
        Ok(text) => {
            let mut file = None;
            let mut current = 0u8;
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("file=") {
                    file = Some(dir.join(v));
                } else if let Some(v) = line.strip_prefix("variant=") {
                    current =
                        v.parse().with_context(|| format!("{}: bad variant {v:?}", record.display()))?;
                }
            }
            (file.with_context(|| format!("{}: no file= line", record.display()))?, current)
        }
        Err(_) => (choose(dir)?, 0),
    };
    let meta = fs::symlink_metadata(&file).with_context(|| format!("reading {}", file.display()))?;
    let key = current ^ variant;
    if key != 0 {
        let mut bytes = fs::read(&file)?;
        for b in &mut bytes {
            *b ^= key;
        }
        let mode = meta.permissions().mode() & 0o7777;
        fs::set_permissions(&file, fs::Permissions::from_mode(mode | 0o200))?;
        fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(mode))?;
        crate::set_mtime_one(&file)?;
    }
    let rel = file.strip_prefix(dir).unwrap_or(&file);
    fs::write(&record, format!("file={}\nvariant={variant}\n", rel.display()))?;
    crate::write_registration(dir)?;
    Ok((file, meta.len()))
}
