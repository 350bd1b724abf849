//! The `nix-path-registration` file: what `nix-store --load-db` reads to register the image's
//! store paths as valid (Nix `decodeValidPathInfo`).
//!
//! For each store path, in sorted order, one value per line, every line ending in `\n`:
//!
//! ```text
//! /nix/store/<hash>-<name>      the path
//! sha256:<52 base-32 digits>    its NAR hash (closureInfo's form; --load-db also takes hex)
//! <decimal>                     its NAR size in bytes
//!                               its deriver: empty, as closureInfo writes it
//! <decimal>                     the number of references
//! /nix/store/<hash>-<name>      each reference, sorted (a path may reference itself)
//! ```
//!
//! This is byte for byte what nixpkgs' closureInfo writes to `$out/registration`. An empty
//! closure gives an empty file. References come from the input when it has them
//! ([`ReferenceMode::Auto`]) or from scanning each path's NAR for the hash parts of every
//! closure member ([`super::refscan`]).

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use isoforge_squashfs::InputNode;

use super::hash::Sha256;
use super::input::Closure;
use super::nar::{scan_path, write_nar_node};
use super::refscan::{Candidates, NarDigest};
use super::store_path::{StorePath, HASH_LEN};
use super::ClosureError;

/// Where references come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReferenceMode {
    /// From the input when it gives them (a graph, a registration, closureInfo), else scanned.
    #[default]
    Auto,
    /// Always scanned.
    Scan,
    /// Always from the input; an error for a plain list.
    FromInput,
}

/// Options for [`registration`] and [`path_infos`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RegistrationOptions {
    /// Where references come from.
    pub references: ReferenceMode,
    /// Worker threads serialising paths: 0 for one per available CPU, 1 to work in the
    /// calling thread. The output does not depend on it.
    pub threads: usize,
}

impl RegistrationOptions {
    /// The defaults: references from the input if it has them, one thread per CPU.
    pub fn new() -> RegistrationOptions {
        RegistrationOptions::default()
    }

    /// Sets where references come from.
    pub fn references(mut self, mode: ReferenceMode) -> RegistrationOptions {
        self.references = mode;
        self
    }

    /// Sets the number of worker threads (0: one per CPU).
    pub fn threads(mut self, threads: usize) -> RegistrationOptions {
        self.threads = threads;
        self
    }
}

/// What the registration says about one store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The store path.
    pub path: StorePath,
    /// SHA-256 of its NAR serialisation.
    pub nar_hash: Sha256,
    /// Size of its NAR serialisation in bytes.
    pub nar_size: u64,
    /// Its deriver; closureInfo leaves it empty and so do we.
    pub deriver: Option<StorePath>,
    /// The store paths it references, sorted.
    pub references: Vec<StorePath>,
}

/// The store paths of a closure, each scanned once from the host ([`scan_path`]): the one
/// scan that both the registration (NAR hashes, sizes, references) and the store squashfs are
/// made from, so the two cannot describe different files. Every file keeps the snapshot of
/// its scan, and every later read checks it.
#[derive(Debug)]
pub struct ScannedClosure<'c> {
    closure: &'c Closure,
    /// `nodes[i]` is the scan of `closure.paths()[i]`.
    nodes: Vec<InputNode>,
}

impl<'c> ScannedClosure<'c> {
    /// Scans every store path of `closure`, on `threads` workers (0: all cores); the first
    /// path in the closure's order that cannot be scanned is the error, whatever the thread
    /// count. With `exact_times` a modification time squashfs cannot hold is an error too (for
    /// `--keep-metadata`; canonical metadata replaces the times).
    pub fn scan(
        closure: &'c Closure,
        exact_times: bool,
        threads: usize,
    ) -> Result<ScannedClosure<'c>, ClosureError> {
        let paths = closure.paths();
        let nodes =
            run_indexed(paths.len(), threads, &|i| scan_path(&closure.host_path(&paths[i]), exact_times))?;
        Ok(ScannedClosure { closure, nodes })
    }

    /// The closure scanned.
    pub fn closure(&self) -> &'c Closure {
        self.closure
    }

    /// The scanned trees, in the closure's order, with the host's metadata.
    pub fn nodes(&self) -> &[InputNode] {
        &self.nodes
    }

    /// `(base name, scanned tree)` of every store path, as
    /// [`isoforge_squashfs::closure_tree_scanned`] takes them.
    pub(crate) fn into_entries(self) -> Vec<(Vec<u8>, InputNode)> {
        let names = self.closure.paths().iter().map(|p| p.base_name().as_bytes().to_vec());
        names.zip(self.nodes).collect()
    }
}

/// The NAR hash, NAR size and found candidate indices of the host path `host` (scanned here).
pub fn nar_digest(host: &Path, candidates: &Candidates) -> Result<(Sha256, u64, Vec<u32>), ClosureError> {
    nar_digest_node(&scan_path(host, false)?, host, candidates)
}

/// [`nar_digest`] of a tree scanned before; `host` is its host path, for messages.
pub(crate) fn nar_digest_node(
    node: &InputNode,
    host: &Path,
    candidates: &Candidates,
) -> Result<(Sha256, u64, Vec<u32>), ClosureError> {
    let mut sink = NarDigest::new(candidates);
    write_nar_node(node, host, &mut sink)?;
    Ok(sink.finish())
}

/// Scans and serialises every path of `closure` from the host and returns what the
/// registration says about each, in the closure's (sorted) order.
pub fn path_infos(closure: &Closure, opts: &RegistrationOptions) -> Result<Vec<PathInfo>, ClosureError> {
    path_infos_scanned(&ScannedClosure::scan(closure, false, opts.threads)?, opts)
}

/// [`path_infos`] of a closure scanned before: the NARs are serialised from `scanned`.
pub(crate) fn path_infos_scanned(
    scanned: &ScannedClosure<'_>,
    opts: &RegistrationOptions,
) -> Result<Vec<PathInfo>, ClosureError> {
    let closure = scanned.closure;
    let from_input = match opts.references {
        ReferenceMode::Auto => closure.has_references(),
        ReferenceMode::Scan => false,
        ReferenceMode::FromInput if closure.has_references() => true,
        ReferenceMode::FromInput => {
            return Err(ClosureError::NoReferences {
                file: closure.source().to_path_buf(),
                format: closure.format(),
            })
        }
    };
    let mut candidates = Candidates::new();
    if !from_input {
        for (i, p) in closure.paths().iter().enumerate() {
            if let Ok(key) = <&[u8; HASH_LEN]>::try_from(p.hash_part().as_bytes()) {
                // The closure holds at most u32::MAX paths (checked when parsed).
                candidates.insert(key, i as u32);
            }
        }
    }
    let paths = closure.paths();
    let digest = |i: usize| nar_digest_node(&scanned.nodes[i], &closure.host_path(&paths[i]), &candidates);
    let digests = run_indexed(paths.len(), opts.threads, &digest)?;
    let mut infos = Vec::with_capacity(paths.len());
    for (i, (nar_hash, nar_size, found)) in digests.into_iter().enumerate() {
        let refs: &[u32] = if from_input { closure.references(i).unwrap_or(&[]) } else { &found };
        infos.push(PathInfo {
            path: paths[i].clone(),
            nar_hash,
            nar_size,
            deriver: None,
            references: refs.iter().map(|&r| paths[r as usize].clone()).collect(),
        });
    }
    Ok(infos)
}

/// The `nix-path-registration` contents for `closure` (see the module docs), scanning it.
pub fn registration(closure: &Closure, opts: &RegistrationOptions) -> Result<Vec<u8>, ClosureError> {
    registration_scanned(&ScannedClosure::scan(closure, false, opts.threads)?, opts)
}

/// [`registration()`] of a closure scanned before.
pub(crate) fn registration_scanned(
    scanned: &ScannedClosure<'_>,
    opts: &RegistrationOptions,
) -> Result<Vec<u8>, ClosureError> {
    let infos = path_infos_scanned(scanned, opts)?;
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_registration(&infos, scanned.closure.store_dir(), &mut out);
    Ok(out)
}

/// Writes `infos` in closureInfo's registration format, in the order given.
pub fn write_registration(infos: &[PathInfo], store_dir: &str, out: &mut dyn Write) -> io::Result<()> {
    let mut w = io::BufWriter::new(out);
    for info in infos {
        writeln!(w, "{}", info.path.to_path_in(store_dir))?;
        writeln!(w, "{}", info.nar_hash.to_nix())?;
        writeln!(w, "{}", info.nar_size)?;
        writeln!(w, "{}", info.deriver.as_ref().map(|d| d.to_path_in(store_dir)).unwrap_or_default())?;
        writeln!(w, "{}", info.references.len())?;
        for r in &info.references {
            writeln!(w, "{}", r.to_path_in(store_dir))?;
        }
    }
    w.flush()
}

/// Runs `f(0..n)` on `threads` workers and returns the results in index order. On failure,
/// returns the error of the lowest failing index: workers claim indices in increasing order
/// and stop claiming after a failure, so every index below a failure has run.
fn run_indexed<T: Send>(
    n: usize,
    threads: usize,
    f: &(dyn Fn(usize) -> Result<T, ClosureError> + Sync),
) -> Result<Vec<T>, ClosureError> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        t => t,
    }
    .min(n.max(1));
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<T, ClosureError>)>> = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = f(i);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    mine.push((i, r));
                }
                if let Ok(mut all) = results.lock() {
                    all.extend(mine);
                }
            });
        }
    });
    let mut all = results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    all.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(n);
    for (_, r) in all {
        out.push(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::input::ClosureOptions;
    use std::fs;

    const HA: &str = "afiv9c5qxzab30yk1im4qf9y95dhz8h4";
    const HB: &str = "j6jap9cbcfc4bynkg71skzrfz7xabhq6";
    const HC: &str = "1lad8q202diczbw4krd4nz24al7rdmbg";

    /// A little store on the host: b references a (in a file), c references b (in a symlink
    /// target) and itself (in a file name), a references nothing.
    fn store() -> (tempfile::TempDir, Closure) {
        let tmp = isoforge_testing::tempdir();
        let s = tmp.path().join("nix/store");
        fs::create_dir_all(&s).unwrap();
        fs::write(s.join(format!("{HA}-a")), b"plain\n").unwrap();
        fs::create_dir(s.join(format!("{HB}-b"))).unwrap();
        fs::write(s.join(format!("{HB}-b/f")), format!("x=/nix/store/{HA}-a\n")).unwrap();
        fs::create_dir(s.join(format!("{HC}-c"))).unwrap();
        std::os::unix::fs::symlink(format!("/nix/store/{HB}-b/f"), s.join(format!("{HC}-c/l"))).unwrap();
        fs::write(s.join(format!("{HC}-c/{HC}")), b"").unwrap();
        let list = format!("/nix/store/{HC}-c\n/nix/store/{HA}-a\n/nix/store/{HB}-b\n");
        let opts = ClosureOptions { store_root: tmp.path().to_path_buf(), ..ClosureOptions::default() };
        let c = Closure::parse(Path::new("list"), list.as_bytes(), &opts).unwrap();
        c.check_host().unwrap();
        (tmp, c)
    }

    #[test]
    fn scanned_references() {
        let (_tmp, c) = store();
        let infos = path_infos(&c, &RegistrationOptions::default()).unwrap();
        let names: Vec<Vec<&str>> =
            infos.iter().map(|i| i.references.iter().map(StorePath::name).collect()).collect();
        // Sorted by hash part: 1lad…-c, afiv…-a, j6ja…-b.
        assert_eq!(infos.iter().map(|i| i.path.name()).collect::<Vec<_>>(), ["c", "a", "b"]);
        assert_eq!(names, vec![vec!["c", "b"], vec![], vec!["a"]]);
        let reg = String::from_utf8(registration(&c, &RegistrationOptions::default()).unwrap()).unwrap();
        let lines: Vec<&str> = reg.lines().collect();
        assert_eq!(lines[0], format!("/nix/store/{HC}-c"));
        assert!(lines[1].starts_with("sha256:") && lines[1].len() == 59);
        assert_eq!(lines[3], "");
        assert_eq!(lines[4], "2");
        assert_eq!(lines[5], format!("/nix/store/{HC}-c"));
        assert_eq!(lines[6], format!("/nix/store/{HB}-b"));
        assert!(reg.ends_with(&format!("/nix/store/{HA}-a\n")));
        // The registration reads back with the same contents.
        let back = Closure::parse(Path::new("reg"), reg.as_bytes(), &ClosureOptions::default()).unwrap();
        assert_eq!(back.format(), crate::closure::InputFormat::Registration);
        for (i, info) in infos.iter().enumerate() {
            assert_eq!(back.nar(i), Some((info.nar_hash, info.nar_size)));
        }
    }

    #[test]
    fn threads_do_not_change_output() {
        let (_tmp, c) = store();
        let one = registration(&c, &RegistrationOptions { threads: 1, ..Default::default() }).unwrap();
        for t in [0, 2, 3, 8] {
            let n = registration(&c, &RegistrationOptions { threads: t, ..Default::default() }).unwrap();
            assert_eq!(n, one, "{t} threads");
        }
    }

    #[test]
    fn from_input_needs_references() {
        let (_tmp, c) = store();
        let opts = RegistrationOptions { references: ReferenceMode::FromInput, ..Default::default() };
        let e = path_infos(&c, &opts).unwrap_err();
        assert!(e.to_string().contains("list of store paths gives no references"), "{e}");
    }

    #[test]
    fn first_error_is_reported() {
        let (tmp, c) = store();
        fs::remove_file(tmp.path().join(format!("nix/store/{HA}-a"))).unwrap();
        for t in [1, 4] {
            let e = path_infos(&c, &RegistrationOptions { threads: t, ..Default::default() }).unwrap_err();
            assert!(e.to_string().contains(&format!("{HA}-a")), "{e}");
        }
    }

    /// The registration and the squashfs come from one scan: a file changed after it was
    /// hashed fails the squashfs write instead of giving an image whose registration
    /// describes other bytes.
    #[test]
    fn a_file_changed_between_hash_and_squashfs_is_an_error() {
        let (tmp, c) = store();
        let f = tmp.path().join(format!("nix/store/{HB}-b/f"));
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
        fs::File::options().write(true).open(&f).unwrap().set_modified(old).unwrap();
        let scanned = ScannedClosure::scan(&c, false, 2).unwrap();
        let reg = registration_scanned(&scanned, &RegistrationOptions::default()).unwrap();
        assert_eq!(reg, registration(&c, &RegistrationOptions::default()).unwrap());
        // Same size, other bytes.
        fs::write(&f, format!("y=/nix/store/{HA}-a\n")).unwrap();
        let options = isoforge_squashfs::ClosureOptions { epoch: 1, keep_metadata: false };
        let tree = isoforge_squashfs::closure_tree_scanned(scanned.into_entries(), &reg, options).unwrap();
        let mut out = std::io::Cursor::new(Vec::new());
        let e =
            isoforge_squashfs::write(&tree, &isoforge_squashfs::Options::default(), &mut out).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&*f.to_string_lossy()) && msg.contains("changed while isoforge read it"),
            "{msg}"
        );
    }

    #[test]
    fn empty() {
        let c = Closure::parse(Path::new("x"), b"", &ClosureOptions::default()).unwrap();
        assert!(registration(&c, &RegistrationOptions::default()).unwrap().is_empty());
    }
}
