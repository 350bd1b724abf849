//! The first benchmark closure (`--shape legacy`): about 3 MiB a store path, 1,670 files for
//! 300 MiB, a third of the bytes in duplicates. Kept unchanged so that the runs measured on it
//! stay comparable: the same seed, size and `/usr` give the same bytes as before.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use isoforge_benches::SplitMix64;
use isoforge_core::closure::base32;
use sha2::{Digest, Sha256};

use crate::{symlink, STORE};

/// Package names, cycled; realistic lengths.
const NAMES: &[&str] = &[
    "glibc",
    "bash",
    "coreutils",
    "systemd",
    "util-linux",
    "openssl",
    "zlib",
    "gcc-lib",
    "perl",
    "python3",
    "grub",
    "linux-firmware",
    "kmod",
    "e2fsprogs",
    "dbus",
    "libxml2",
    "curl",
    "nix",
    "iproute2",
    "gnused",
];
/// Smallest and largest source file taken from /usr.
const MIN_FILE: u64 = 4 << 10;
const MAX_FILE: u64 = 12 << 20;

/// Regular files of `MIN_FILE..=MAX_FILE` bytes below `dir`, sorted, symlinks not followed.
fn list_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.is_dir() {
            list_files(&p, out);
        } else if m.is_file()
            && (MIN_FILE..=MAX_FILE).contains(&m.len())
            && m.permissions().mode() & 0o444 != 0
        {
            out.push((p, m.len()));
        }
    }
}

fn is_elf(p: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(p).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x7fELF"
}

/// Source files by kind.
struct Pools {
    exes: Vec<(PathBuf, u64)>,
    libs: Vec<(PathBuf, u64)>,
    text: Vec<(PathBuf, u64)>,
}

impl Pools {
    fn new(source: &Path) -> Pools {
        let mut exes = Vec::new();
        list_files(&source.join("bin"), &mut exes);
        let mut libs = Vec::new();
        list_files(&source.join("lib"), &mut libs);
        libs.retain(|(p, _)| p.to_string_lossy().contains(".so"));
        let mut text = Vec::new();
        list_files(&source.join("include"), &mut text);
        list_files(&source.join("share/common-licenses"), &mut text);
        Pools { exes, libs, text }
    }

    /// An ELF file of the pool, chosen by `rng` (a few tries; non-ELF files are skipped).
    fn pick_elf(pool: &[(PathBuf, u64)], rng: &mut SplitMix64) -> Option<(PathBuf, u64)> {
        for _ in 0..32 {
            let c = &pool[rng.index(pool.len())];
            if is_elf(&c.0) {
                return Some(c.clone());
            }
        }
        None
    }
}

/// A store path's base name: 20 bytes of sha256(seed, index) in Nix base-32, and a name.
fn base_name(seed: u64, index: usize) -> String {
    let mut h = Sha256::new();
    h.update(b"isoforge-bench-store-path\0");
    h.update(seed.to_le_bytes());
    h.update((index as u64).to_le_bytes());
    let digest = h.finalize();
    let name = NAMES[index % NAMES.len()];
    format!("{}-{name}-{}.{}", base32::encode(&digest[..20]), 1 + index / NAMES.len(), index % 7)
}

struct Gen {
    rng: SplitMix64,
    store: PathBuf,
    written: u64,
    /// Stop adding libraries once this many bytes are written.
    limit: u64,
}

impl Gen {
    fn copy(&mut self, src: &Path, dst: &Path, exec: bool) -> Result<()> {
        if let Some(p) = dst.parent() {
            fs::create_dir_all(p)?;
        }
        let n =
            fs::copy(src, dst).with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        fs::set_permissions(dst, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }))?;
        self.written += n;
        Ok(())
    }

    fn write(&mut self, dst: &Path, bytes: &[u8]) -> Result<()> {
        if let Some(p) = dst.parent() {
            fs::create_dir_all(p)?;
        }
        fs::write(dst, bytes).with_context(|| format!("writing {}", dst.display()))?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into())
}

/// Fills one store path with about `budget` bytes.
fn fill_path(g: &mut Gen, pools: &Pools, names: &[String], index: usize, budget: u64) -> Result<()> {
    let dir = g.store.join(&names[index]);
    let start = g.written;
    let mut shared_with_earlier: Option<(PathBuf, u64)> = None;
    // Executables.
    let n_exe = 1 + g.rng.index(4);
    let mut first_exe = None;
    for _ in 0..n_exe {
        if let Some((src, _)) = Pools::pick_elf(&pools.exes, &mut g.rng) {
            let dst = dir.join("bin").join(file_name(&src));
            if !dst.exists() {
                g.copy(&src, &dst, true)?;
                first_exe.get_or_insert(dst);
            }
        }
    }
    // Libraries until the budget is spent, with the usual soname symlinks.
    while g.written - start < budget && g.written < g.limit {
        let Some((src, _)) = Pools::pick_elf(&pools.libs, &mut g.rng) else { break };
        let name = file_name(&src);
        let dst = dir.join("lib").join(&name);
        if dst.exists() {
            // Picked twice: store a duplicate under another name (dedup material).
            let dup = dir.join("lib").join(format!("{name}.dup{}", g.rng.below(1000)));
            if !dup.exists() {
                g.copy(&src, &dup, false)?;
            }
            continue;
        }
        g.copy(&src, &dst, false)?;
        if let Some(stem) = name.split(".so").next() {
            let link = dir.join("lib").join(format!("{stem}.so"));
            if !link.exists() && link != dst {
                symlink(&name, &link)?;
            }
        }
        shared_with_earlier.get_or_insert((src, 0));
    }
    // Header and license text, some naming other store paths (references).
    for k in 0..(1 + g.rng.index(3)) {
        if pools.text.is_empty() {
            break;
        }
        let (src, _) = &pools.text[g.rng.index(pools.text.len())];
        let mut text = fs::read(src).unwrap_or_default();
        if index > 0 && k == 0 {
            let other = &names[g.rng.index(index)];
            text.extend_from_slice(format!("\n/* see {STORE}/{other}/include */\n").as_bytes());
        }
        g.write(&dir.join("share/doc").join(format!("{}-{k}", file_name(src))), &text)?;
    }
    // nix-support with references to a few earlier paths.
    if index > 0 {
        let mut refs = String::new();
        for _ in 0..(1 + g.rng.index(3)) {
            refs.push_str(&format!("{STORE}/{} ", names[g.rng.index(index)]));
        }
        g.write(&dir.join("nix-support/propagated-build-inputs"), refs.as_bytes())?;
        // Cross-path symlinks: absolute to an earlier path's file, relative to its lib.
        let other = &names[g.rng.index(index)];
        symlink(&format!("{STORE}/{other}/nix-support"), &dir.join("share/dep-support"))?;
        symlink(&format!("../../{other}/lib"), &dir.join("lib/dep-lib"))?;
    }
    // Hard links (one file under two names).
    if let Some(exe) = first_exe {
        if g.rng.chance(1, 3) {
            let alias = exe.with_file_name(format!("{}-alias", file_name(&exe)));
            fs::hard_link(&exe, &alias)?;
        }
    }
    // A license file identical in every third path.
    if index % 3 == 0 {
        g.write(&dir.join("share/licenses/LICENSE"), LICENSE.as_bytes())?;
    }
    let _ = shared_with_earlier;
    Ok(())
}

const LICENSE: &str = "Permission is hereby granted, free of charge, to any person obtaining a copy of this \
software, to deal in the software without restriction, subject to the conditions stated in the source.\n";

/// A large file: several ELF libraries concatenated (compresses like code).
fn large_file(g: &mut Gen, pools: &Pools, dst: &Path, size: u64) -> Result<()> {
    if let Some(p) = dst.parent() {
        fs::create_dir_all(p)?;
    }
    let mut f = fs::File::create(dst)?;
    let mut n = 0;
    while n < size {
        let Some((src, _)) = Pools::pick_elf(&pools.libs, &mut g.rng) else { break };
        let bytes = fs::read(&src)?;
        let take = bytes.len().min(usize::try_from(size - n).unwrap_or(usize::MAX));
        f.write_all(&bytes[..take])?;
        n += take as u64;
    }
    g.written += n;
    Ok(())
}

/// Fills `store` (`DIR/root/nix/store`) with the legacy closure; returns the store path
/// base names.
pub fn generate(seed: u64, size: u64, source: &Path, store: &Path) -> Result<Vec<String>> {
    let pools = Pools::new(source);
    if pools.exes.is_empty() || pools.libs.is_empty() {
        bail!("no executables or libraries under {}", source.display());
    }
    let mut g = Gen { rng: SplitMix64::new(seed), store: store.to_path_buf(), written: 0, limit: size };
    // About 3 MiB per path, a tenth of the size in a few large files.
    let n_paths = usize::try_from((size / (3 << 20)).clamp(4, 4000))?;
    let names: Vec<String> = (0..n_paths).map(|i| base_name(seed, i)).collect();
    let large_total = size / 10;
    let n_large = 3u64;
    for k in 0..n_large {
        let idx = usize::try_from(k)? * n_paths / 3;
        let dst = store.join(&names[idx]).join(format!("share/data/blob{k}.bin"));
        large_file(&mut g, &pools, &dst, large_total / n_large)?;
    }
    let per_path = (size - g.written.min(size)) / n_paths as u64;
    for i in 0..n_paths {
        // Vary the sizes: a quarter to 1.75 times the mean (executables and text come on top).
        let budget = per_path / 4 + g.rng.below(per_path * 3 / 2 + 1);
        fill_path(&mut g, &pools, &names, i, budget)?;
    }
    Ok(names)
}
