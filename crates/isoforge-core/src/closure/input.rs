//! Closure inputs: which store paths go into the image, read from the formats Nix and nixpkgs
//! produce. [`Closure::parse`] detects the format from the first lines:
//!
//! - [`InputFormat::PathList`]: one store path per line, blank lines ignored (closureInfo's
//!   `store-paths`, `nix-store -qR` output);
//! - [`InputFormat::ReferencesGraph`]: what Nix writes for a derivation's
//!   `exportReferencesGraph` (`nix-store --register-validity` format without hashes): blocks of
//!   path, deriver (empty), reference count, references, one per line;
//! - [`InputFormat::Registration`]: the same blocks with the NAR hash and NAR size after the
//!   path (closureInfo's `registration`, `nix-store --dump-db`);
//! - [`InputFormat::ClosureInfo`]: a closureInfo output directory ([`Closure::load`] on a
//!   directory): its `store-paths`, checked against its `registration`.
//!
//! Detection looks at the first three lines: a second line that is a SHA-256 hash means a
//! registration; a third line that is a decimal number after an empty second line (or a
//! deriver path) means a graph, and so does an empty second line followed by a third that is
//! neither blank nor a path (a graph with a broken count); anything else is a list.
//!
//! Every path must be a valid store path directly in the store directory; a path listed twice
//! counts once; the result is sorted. Errors name the file and line. Whether the paths exist on
//! the host is a separate step, [`Closure::check_host`], so that parsing needs no host files.

use std::collections::btree_map::{BTreeMap, Entry};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::hash::Sha256;
use super::store_path::{check_store_dir, parse_full, StorePath, DEFAULT_STORE_DIR};
use super::{ClosureError, LineError};

/// Where the store is, logically and on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureOptions {
    /// The store directory as it appears in the store paths (Nix's `storeDir`), default
    /// `/nix/store`.
    pub store_dir: String,
    /// The host directory that stands for `/` when looking store paths up: the store path
    /// `/nix/store/x` is read from `<store_root>/nix/store/x`. Default `/`; a chroot store
    /// (`nix-store --store DIR`) has `DIR`.
    pub store_root: PathBuf,
}

impl Default for ClosureOptions {
    fn default() -> ClosureOptions {
        ClosureOptions { store_dir: DEFAULT_STORE_DIR.to_string(), store_root: PathBuf::from("/") }
    }
}

/// The format of a closure input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputFormat {
    /// One store path per line.
    PathList,
    /// Blocks of path, deriver, reference count, references (`exportReferencesGraph`).
    ReferencesGraph,
    /// Blocks of path, NAR hash, NAR size, deriver, reference count, references.
    Registration,
    /// A closureInfo directory (`store-paths` and `registration`).
    ClosureInfo,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::PathList => "list of store paths",
            InputFormat::ReferencesGraph => "exportReferencesGraph file",
            InputFormat::Registration => "registration file",
            InputFormat::ClosureInfo => "closureInfo directory",
        })
    }
}

/// A validated, sorted, duplicate-free set of store paths, with the references and NAR
/// hashes the input gave, if any.
#[derive(Debug, Clone)]
pub struct Closure {
    store_dir: String,
    store_root: PathBuf,
    format: InputFormat,
    source: PathBuf,
    paths: Vec<StorePath>,
    /// The line of each path's first mention in `source`.
    lines: Vec<u64>,
    /// For each path, the indices of its references (sorted), when the input gives them.
    references: Option<Vec<Vec<u32>>>,
    /// For each path, its NAR hash and size, when the input gives them.
    nar: Option<Vec<(Sha256, u64)>>,
    registration: Option<PathBuf>,
}

/// One block of a graph or registration file, before paths become indices.
struct Block {
    line: u64,
    nar: Option<(Sha256, u64)>,
    references: Vec<(StorePath, u64)>,
}

impl Closure {
    /// Reads a closure input: a closureInfo directory, or a file in any of the other formats
    /// (detected).
    pub fn load(input: &Path, opts: &ClosureOptions) -> Result<Closure, ClosureError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClosureError::Read { path, source }
        };
        let meta = fs::metadata(input).map_err(read_err(input))?;
        if !meta.is_dir() {
            let bytes = fs::read(input).map_err(read_err(input))?;
            return Closure::parse(input, &bytes, opts)?.non_empty();
        }
        let list_file = input.join("store-paths");
        if !list_file.is_file() {
            return Err(ClosureError::NotClosureInfo {
                dir: input.to_path_buf(),
                why: "it has no file store-paths".to_string(),
            });
        }
        let bytes = fs::read(&list_file).map_err(read_err(&list_file))?;
        let mut closure = Closure::parse_as(InputFormat::PathList, &list_file, &bytes, opts)?.non_empty()?;
        closure.format = InputFormat::ClosureInfo;
        let reg_file = input.join("registration");
        if !reg_file.exists() {
            return Ok(closure);
        }
        let bytes = fs::read(&reg_file).map_err(read_err(&reg_file))?;
        check_verbatim(&reg_file, &bytes)?;
        let reg = Closure::parse_as(InputFormat::Registration, &reg_file, &bytes, opts)?;
        same_paths(&closure, &reg)?;
        closure.references = reg.references;
        closure.nar = reg.nar;
        closure.registration = Some(reg_file);
        Ok(closure)
    }

    /// Reads a registration file given apart from the closure (`--registration FILE`) and
    /// checks that it describes exactly the closure's paths, for use as it is (so CRLF line
    /// ends are an error: the file goes into the image verbatim).
    pub fn check_registration(&self, file: &Path) -> Result<(), ClosureError> {
        let bytes =
            fs::read(file).map_err(|source| ClosureError::Read { path: file.to_path_buf(), source })?;
        check_verbatim(file, &bytes)?;
        let opts = ClosureOptions { store_dir: self.store_dir.clone(), store_root: self.store_root.clone() };
        let reg = Closure::parse_as(InputFormat::Registration, file, &bytes, &opts)?;
        same_paths(self, &reg)
    }

    /// Parses the contents of a closure input file, detecting its format. `file` names the
    /// file in errors.
    pub fn parse(file: &Path, bytes: &[u8], opts: &ClosureOptions) -> Result<Closure, ClosureError> {
        let lines = split_lines(bytes);
        let format = detect(&lines);
        Closure::parse_lines(format, file, &lines, opts)
    }

    /// Parses the contents of a closure input file in the given format (not
    /// [`InputFormat::ClosureInfo`], which is a directory: use [`Closure::load`]; it is read
    /// as a path list here).
    pub(crate) fn parse_as(
        format: InputFormat,
        file: &Path,
        bytes: &[u8],
        opts: &ClosureOptions,
    ) -> Result<Closure, ClosureError> {
        Closure::parse_lines(format, file, &split_lines(bytes), opts)
    }

    fn parse_lines(
        format: InputFormat,
        file: &Path,
        lines: &[&[u8]],
        opts: &ClosureOptions,
    ) -> Result<Closure, ClosureError> {
        check_store_dir(&opts.store_dir)
            .map_err(|why| ClosureError::BadStoreDir { dir: opts.store_dir.clone(), why })?;
        let mut closure = Closure {
            store_dir: opts.store_dir.clone(),
            store_root: opts.store_root.clone(),
            format,
            source: file.to_path_buf(),
            paths: Vec::new(),
            lines: Vec::new(),
            references: None,
            nar: None,
            registration: None,
        };
        let syntax =
            |line: u64, error: LineError| ClosureError::Syntax { file: file.to_path_buf(), line, error };
        match format {
            InputFormat::PathList | InputFormat::ClosureInfo => {
                let mut all = Vec::with_capacity(lines.len());
                for (i, raw) in lines.iter().enumerate() {
                    if raw.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let line = i as u64 + 1;
                    let text = std::str::from_utf8(raw).map_err(|_| syntax(line, LineError::NotUtf8))?;
                    let path = parse_full(text, &opts.store_dir).map_err(|e| syntax(line, e))?;
                    all.push((path, line));
                }
                // Stable: the first mention of a path stays first and is kept.
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all.dedup_by(|later, first| later.0 == first.0);
                check_count(file, all.len())?;
                (closure.paths, closure.lines) = all.into_iter().unzip();
            }
            InputFormat::ReferencesGraph | InputFormat::Registration => {
                let with_hash = format == InputFormat::Registration;
                let blocks =
                    parse_blocks(lines, &opts.store_dir, with_hash).map_err(|(l, e)| syntax(l, e))?;
                check_count(file, blocks.len())?;
                let paths: Vec<StorePath> = blocks.keys().cloned().collect();
                let mut refs = Vec::with_capacity(paths.len());
                let mut nar = Vec::with_capacity(paths.len());
                for (path, block) in &blocks {
                    let mut r = Vec::with_capacity(block.references.len());
                    for (reference, line) in &block.references {
                        // check_count bounds the index.
                        let index = paths.binary_search(reference).map_err(|_| {
                            syntax(
                                *line,
                                LineError::NotInClosure {
                                    path: path.to_path_in(&opts.store_dir),
                                    reference: reference.to_path_in(&opts.store_dir),
                                },
                            )
                        })?;
                        r.push(index as u32);
                    }
                    r.sort_unstable();
                    r.dedup();
                    refs.push(r);
                    if let Some(n) = block.nar {
                        nar.push(n);
                    }
                }
                closure.lines = blocks.values().map(|b| b.line).collect();
                closure.paths = paths;
                closure.references = Some(refs);
                closure.nar = with_hash.then_some(nar);
            }
        }
        Ok(closure)
    }

    /// `self`, or [`ClosureError::Empty`] when it lists no store path.
    fn non_empty(self) -> Result<Closure, ClosureError> {
        if self.paths.is_empty() {
            return Err(ClosureError::Empty { file: self.source });
        }
        Ok(self)
    }

    /// The input's format.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The file the paths were read from (`store-paths` for a closureInfo directory).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The store directory.
    pub fn store_dir(&self) -> &str {
        &self.store_dir
    }

    /// The host directory standing for `/`.
    pub fn store_root(&self) -> &Path {
        &self.store_root
    }

    /// The store paths, sorted, without duplicates.
    pub fn paths(&self) -> &[StorePath] {
        &self.paths
    }

    /// The number of store paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether the closure is empty.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The position of `path` in [`Closure::paths`].
    pub fn index_of(&self, path: &StorePath) -> Option<usize> {
        self.paths.binary_search(path).ok()
    }

    /// The full store path of the `index`th path (`/nix/store/<hash>-<name>`).
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn full_path(&self, index: usize) -> String {
        self.paths[index].to_path_in(&self.store_dir)
    }

    /// Where `path` is on the host: `<store_root>/<store_dir>/<hash>-<name>`.
    pub fn host_path(&self, path: &StorePath) -> PathBuf {
        self.store_root.join(self.store_dir.trim_start_matches('/')).join(path.base_name())
    }

    /// The line of the input that first lists the `index`th path.
    pub fn line(&self, index: usize) -> Option<u64> {
        self.lines.get(index).copied()
    }

    /// The references the input gives for the `index`th path, as sorted indices into
    /// [`Closure::paths`]; `None` for a plain list.
    pub fn references(&self, index: usize) -> Option<&[u32]> {
        self.references.as_ref().and_then(|r| r.get(index)).map(Vec::as_slice)
    }

    /// Whether the input gives references.
    pub(crate) fn has_references(&self) -> bool {
        self.references.is_some()
    }

    /// The NAR hash and size the input gives for the `index`th path (registration inputs).
    pub fn nar(&self, index: usize) -> Option<(Sha256, u64)> {
        self.nar.as_ref().and_then(|n| n.get(index)).copied()
    }

    /// The registration file of a closureInfo directory, for use as `nix-path-registration`
    /// as it is.
    pub fn registration_file(&self) -> Option<&Path> {
        self.registration.as_deref()
    }

    /// Checks that every store path exists on the host (as a file, directory or symlink; a
    /// symlink need not resolve). Fails on the first missing path, naming its input line.
    pub fn check_host(&self) -> Result<(), ClosureError> {
        for (i, path) in self.paths.iter().enumerate() {
            let host = self.host_path(path);
            if let Err(source) = fs::symlink_metadata(&host) {
                return Err(ClosureError::Missing {
                    file: self.source.clone(),
                    line: self.lines[i],
                    store_path: self.full_path(i),
                    host,
                    source,
                });
            }
        }
        Ok(())
    }
}

/// Checks that `reg` (a registration) lists exactly the paths of `list`, naming the first
/// path that is in one but not the other.
fn same_paths(list: &Closure, reg: &Closure) -> Result<(), ClosureError> {
    // Both are sorted: walk them side by side.
    let (mut i, mut j) = (0, 0);
    while i < list.paths.len() || j < reg.paths.len() {
        match (list.paths.get(i), reg.paths.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), b) if b.is_none_or(|b| a < b) => {
                return Err(ClosureError::Syntax {
                    file: list.source.clone(),
                    line: list.lines[i],
                    error: LineError::Mismatch {
                        path: list.full_path(i),
                        why: "is in the closure but not in the registration",
                    },
                });
            }
            _ => {
                return Err(ClosureError::Syntax {
                    file: reg.source.clone(),
                    line: reg.lines[j],
                    error: LineError::Mismatch {
                        path: reg.full_path(j),
                        why: "is in the registration but not in the closure",
                    },
                });
            }
        }
    }
    Ok(())
}

fn check_count(file: &Path, n: usize) -> Result<(), ClosureError> {
    if u32::try_from(n).is_err() {
        return Err(ClosureError::TooManyPaths { file: file.to_path_buf() });
    }
    Ok(())
}

/// Lines without their `\n` or `\r\n`; a last line without one counts, an empty tail does
/// not. CRLF line ends are accepted where the file is only parsed (a store path, a hash, a
/// number can never hold a `\r`); a file copied into the image as it is must pass
/// [`check_verbatim`] as well.
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() && bytes.len() <= 1 {
        return Vec::new();
    }
    body.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect()
}

/// Fails on a registration that goes into the image verbatim as `nix-path-registration` and
/// has a CRLF line end (its first, named by line): `nix-store --load-db` would read each
/// `\r` as part of a path, hash or count.
fn check_verbatim(file: &Path, bytes: &[u8]) -> Result<(), ClosureError> {
    let Some(at) = bytes.windows(2).position(|w| w == b"\r\n") else { return Ok(()) };
    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    Err(ClosureError::CrlfRegistration { file: file.to_path_buf(), line })
}

fn is_decimal(line: &[u8]) -> bool {
    !line.is_empty() && line.iter().all(u8::is_ascii_digit)
}

/// The format from the first three lines (see the module docs).
fn detect(lines: &[&[u8]]) -> InputFormat {
    let (Some(first), Some(second), Some(third)) = (lines.first(), lines.get(1), lines.get(2)) else {
        return InputFormat::PathList;
    };
    if !first.starts_with(b"/") {
        return InputFormat::PathList;
    }
    if std::str::from_utf8(second).ok().and_then(Sha256::parse).is_some() {
        return InputFormat::Registration;
    }
    if is_decimal(third) && (second.is_empty() || second.starts_with(b"/")) {
        return InputFormat::ReferencesGraph;
    }
    // An empty deriver line followed by something that is no path: a graph with a broken
    // count (a list would go on with a path or another blank line).
    if second.is_empty()
        && !third.is_empty()
        && !third.starts_with(b"/")
        && !third.iter().all(u8::is_ascii_whitespace)
    {
        return InputFormat::ReferencesGraph;
    }
    InputFormat::PathList
}

/// Parses graph or registration blocks, collapsing identical repeats. Errors carry the line.
fn parse_blocks(
    lines: &[&[u8]],
    store_dir: &str,
    with_hash: bool,
) -> Result<BTreeMap<StorePath, Block>, (u64, LineError)> {
    let mut blocks: BTreeMap<StorePath, Block> = BTreeMap::new();
    let mut i = 0usize;
    let next = |what: &'static str, i: &mut usize| -> Result<(u64, &str), (u64, LineError)> {
        let line = *i as u64 + 1;
        let raw = lines.get(*i).ok_or((line, LineError::UnexpectedEnd { what }))?;
        *i += 1;
        let text = std::str::from_utf8(raw).map_err(|_| (line, LineError::NotUtf8))?;
        Ok((line, text))
    };
    let expected = |what, found: &str| LineError::Expected { what, found: found.to_string() };
    while i < lines.len() {
        if lines[i].is_empty() {
            i += 1;
            continue;
        }
        let (line, text) = next("a store path", &mut i)?;
        let path = parse_full(text, store_dir).map_err(|e| (line, e))?;
        let nar = if with_hash {
            let (l, text) = next("a NAR hash", &mut i)?;
            let hash = Sha256::parse(text).ok_or((l, expected("a SHA-256 NAR hash", text)))?;
            let (l, text) = next("a NAR size", &mut i)?;
            let size = text.parse::<u64>().ok().filter(|_| is_decimal(text.as_bytes()));
            Some((hash, size.ok_or((l, expected("a NAR size (a decimal number)", text)))?))
        } else {
            None
        };
        let (l, text) = next("a deriver (a store path or an empty line)", &mut i)?;
        if !text.is_empty() {
            parse_full(text, store_dir).map_err(|e| (l, e))?;
        }
        let (l, text) = next("a reference count", &mut i)?;
        let count = text
            .parse::<u32>()
            .ok()
            .filter(|_| is_decimal(text.as_bytes()))
            .ok_or((l, expected("a reference count (a decimal number)", text)))?;
        let mut references = Vec::with_capacity(count.min(4096) as usize);
        for _ in 0..count {
            let (l, text) = next("a reference", &mut i)?;
            references.push((parse_full(text, store_dir).map_err(|e| (l, e))?, l));
        }
        match blocks.entry(path) {
            Entry::Vacant(v) => {
                v.insert(Block { line, nar, references });
            }
            Entry::Occupied(o) => {
                let first = o.get();
                let set = |r: &[(StorePath, u64)]| r.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
                let (mut a, mut b) = (set(&first.references), set(&references));
                a.sort();
                a.dedup();
                b.sort();
                b.dedup();
                let what = if a != b {
                    Some("references")
                } else if first.nar.map(|n| n.0) != nar.map(|n| n.0) {
                    Some("NAR hash")
                } else if first.nar.map(|n| n.1) != nar.map(|n| n.1) {
                    Some("NAR size")
                } else {
                    None
                };
                if let Some(what) = what {
                    let path = o.key().to_path_in(store_dir);
                    return Err((line, LineError::Conflicting { path, first_line: first.line, what }));
                }
            }
        }
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests;
