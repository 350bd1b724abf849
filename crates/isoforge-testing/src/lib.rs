//! Test-only helpers shared by isoforge's crates: a dev-dependency only, never a dependency
//! of a library or binary.
//!
//! - [`ci`] and [`skip`] are the one rule for a test whose prerequisite (a program, a kernel
//!   feature, a file) is missing: it prints `SKIP: …` and passes, except under `CI=true`,
//!   where it fails. The integration tests' `tests/support` builds `tool`/`files` on it.
//! - [`tempdir`] makes scratch space under the cargo target directory, never in the system
//!   temporary directory (often a small tmpfs): some tests write files of several GiB.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// True when the tests run in CI (`CI=true`): then a missing prerequisite is a failure, not a
/// skip.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Stops a test that cannot run here: under CI it panics with `why`; otherwise it prints
/// `SKIP: why` to stderr and the caller returns.
#[track_caller]
pub fn skip(why: &str) {
    if ci() {
        panic!("{why} (CI=true: missing prerequisites are failures)");
    }
    eprintln!("SKIP: {why}");
}

/// [`skip`]s with `why` unless `ok`, and returns `ok`: a test does
/// `if !isoforge_testing::prerequisite(found, "…") { return; }`.
#[track_caller]
pub fn prerequisite(ok: bool, why: &str) -> bool {
    if !ok {
        skip(why);
    }
    ok
}

/// Where scratch directories go: `CARGO_TARGET_TMPDIR` when it is set in the environment,
/// else `tmp` in the cargo target directory of the running test binary (the nearest
/// ancestor of [`std::env::current_exe`] holding cargo's `CACHEDIR.TAG`, else the directory
/// above the binary's `deps`). Integration tests pass their compile-time
/// `env!("CARGO_TARGET_TMPDIR")` to [`tempdir_in`] instead.
pub fn scratch_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_TMPDIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
    let target = exe
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .or_else(|| exe.ancestors().find(|d| d.ends_with("deps")).and_then(Path::parent))
        .unwrap_or_else(|| panic!("no cargo target directory above {}", exe.display()));
    target.join("tmp")
}

/// A fresh scratch directory under [`scratch_root`], removed on drop.
#[track_caller]
pub fn tempdir() -> TempDir {
    tempdir_in(&scratch_root())
}

/// A fresh scratch directory `isoforge-test-*` in `base` (made when missing), removed on drop;
/// panics naming `base`.
#[track_caller]
pub fn tempdir_in(base: &Path) -> TempDir {
    std::fs::create_dir_all(base).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", base.display()));
    tempfile::Builder::new()
        .prefix("isoforge-test-")
        .tempdir_in(base)
        .unwrap_or_else(|e| panic!("cannot make a temp dir in {}: {e}", base.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_under_the_target_directory() {
        let d = tempdir();
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        let target = scratch_root().parent().map(Path::to_path_buf).unwrap_or_default();
        assert!(exe.starts_with(&target), "{} not under {}", d.path().display(), target.display());
        assert!(d.path().starts_with(scratch_root()), "{}", d.path().display());
        assert!(d.path().is_dir());
    }
}
