//! Issue 12: `isoforge build --cache DIR` and `isoforge squashfs --cache DIR` (and
//! `ISOFORGE_CACHE`) with the real binary. An image built with a cold, warm, partly warm,
//! corrupted or no cache is the same file, for one and two threads; a file rewritten under an
//! unchanged store path name (same size, old mtime) is never served from the cache; two builds
//! share one cache directory in parallel; a read-only, full or foreign cache directory costs
//! hits and prints one warning line, never a failed build or other bytes.
//!
//! The counters come from `--json` (its `"cache"` object), checked against the `-v` line and
//! the line the build appended to the cache's `builds.log`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use support::{command_line, dir_listing, isoforge_bin, mkdir_p, run_ok_stdout, sha256_file, write_file};

/// The block size of the tests (`--block-size 128K`).
const BLOCK: usize = 128 << 10;

/// The store paths of the fixture, sorted (the squashfs root's order).
const P: [&str; 6] = [
    "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-text",
    "/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bin",
    "/nix/store/2ccccccccccccccccccccccccccccccc-sparse",
    "/nix/store/3ddddddddddddddddddddddddddddddd-dups",
    "/nix/store/4fffffffffffffffffffffffffffffff-single.txt",
    "/nix/store/5ggggggggggggggggggggggggggggggg-extra",
];

/// Binary-ish bytes: xorshift noise with runs of letters, so they compress somewhat; no two
/// seeds share a block.
fn binary(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i / 64) % 3 == 0 {
                b'a' + (x % 7) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

/// Text: numbered lines of words; every line names the seed, so no two seeds share a block.
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "store", "path", "block", "cache", "squashfs", "fragment", "nix", "image", "zstd", "hash", "boot",
        "closure",
    ];
    let mut x = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let mut out = Vec::with_capacity(len + 128);
    let mut line = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{seed}:{line}: ").as_bytes());
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(WORDS[(x % 12) as usize].as_bytes());
            out.push(b' ');
        }
        out.push(b'\n');
        line += 1;
    }
    out.truncate(len);
    out
}

/// Which store to write: the base one, or the base one with one block of one file changed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Base,
    OneFileDifferent,
}

/// The host path of `rel` inside store path `P[i]` under `root`.
fn at(root: &Path, i: usize, rel: &str) -> PathBuf {
    root.join(&P[i][1..]).join(rel)
}

/// The offset of the byte [`Variant::OneFileDifferent`] changes in `lib/libmulti.so`: inside
/// its third (full) block.
const CHANGED_BYTE: usize = 2 * BLOCK + 500;

/// Writes the fixture store under `root`: text files (whole blocks and tails), binaries (a
/// file of several blocks, one of exactly two, tails), a sparse file and a file of zeros,
/// duplicates (within a store path and across two), an empty file, a symlink, a store path
/// that is a single file, and a store path of its own content (`P[5]`).
fn write_store(root: &Path, variant: Variant) {
    let a = |i: usize, rel: &str| at(root, i, rel);
    write_file(&a(0, "share/doc/long.txt"), text(1, 300 << 10));
    write_file(&a(0, "share/doc/medium.txt"), text(2, 90 << 10));
    for i in 0..20u64 {
        write_file(&a(0, &format!("share/doc/small-{i:02}.txt")), text(10 + i, 700 + 97 * i as usize));
    }
    write_file(&a(0, "share/empty"), b"");
    symlink("doc/long.txt", a(0, "share/long-link")).unwrap();

    let prog = a(1, "bin/prog");
    write_file(&prog, binary(100, 300 << 10));
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let mut multi = binary(101, 5 * BLOCK + 1000);
    if variant == Variant::OneFileDifferent {
        multi[CHANGED_BYTE] ^= 0xff;
    }
    write_file(&a(1, "lib/libmulti.so"), multi);
    write_file(&a(1, "lib/libexact.so"), binary(102, 2 * BLOCK));

    // 1 MiB with data in its third and last blocks only; 256 KiB of zeros.
    let sparse = a(2, "data/sparse.img");
    mkdir_p(sparse.parent().unwrap());
    let f = fs::File::create(&sparse).unwrap();
    f.set_len(1 << 20).unwrap();
    f.write_all_at(&binary(200, 10_000), 300 << 10).unwrap();
    f.write_all_at(&text(201, 5000), 900 << 10).unwrap();
    fs::File::create(a(2, "data/zeros")).unwrap().set_len(256 << 10).unwrap();

    for i in 0..5 {
        write_file(&a(3, &format!("share/same-{i}")), text(300, 10_000));
    }
    write_file(&a(3, "bin/prog-copy"), binary(100, 300 << 10));

    write_file(&root.join(&P[4][1..]), text(400, 5000));

    write_file(&a(5, "share/extra.txt"), text(500, 50_000));
    write_file(&a(5, "lib/libextra.so"), binary(501, 150 << 10));
}

fn write_paths(file: &Path, paths: &[&str]) {
    write_file(file, paths.iter().map(|p| format!("{p}\n")).collect::<String>());
}

/// A scratch directory with the fixture store, its closure lists, an EFI directory and a
/// graft.
struct Fixture {
    dir: tempfile::TempDir,
    /// The store root (`--store-root`).
    root: PathBuf,
    /// The closure: every store path.
    list: PathBuf,
    /// The closure without `P[5]`.
    fewer: PathBuf,
    /// The `--efi-dir`.
    efi: PathBuf,
    /// Grafted at `/extra`.
    graft: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = support::tempdir();
        let root = dir.path().join("root");
        write_store(&root, Variant::Base);
        let list = dir.path().join("closure.txt");
        write_paths(&list, &P);
        let fewer = dir.path().join("closure-fewer.txt");
        write_paths(&fewer, &P[..5]);
        let efi = dir.path().join("efi");
        write_file(&efi.join("EFI/BOOT/BOOTX64.EFI"), binary(900, 40_000));
        write_file(&efi.join("loader/loader.conf"), b"timeout 3\n");
        let graft = dir.path().join("graft");
        write_file(&graft.join("README.txt"), b"grafted beside the store\n");
        write_file(&graft.join("isolinux/isolinux.cfg"), text(901, 2000));
        Fixture { dir, root, list, fewer, efi, graft }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A second store root: the fixture with one block of `lib/libmulti.so` changed.
    fn alt_root(&self) -> PathBuf {
        let root = self.path("root-alt");
        if !root.exists() {
            write_store(&root, Variant::OneFileDifferent);
        }
        root
    }

    /// Options of a build of the whole closure with zstd:3 and 128 KiB blocks.
    fn opts(&self, cmd: Cmd, threads: usize) -> Opts {
        Opts {
            cmd,
            threads,
            compression: "zstd:3",
            block_size: "128K",
            root: self.root.clone(),
            list: self.list.clone(),
        }
    }
}

/// Which command builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    /// `isoforge build` of a hybrid ISO with the store squashfs, an EFI image and a graft
    /// (`--json -v`).
    Build,
    /// `isoforge squashfs`: the store squashfs alone (`--json -v`).
    Squashfs,
}

#[derive(Clone, Debug)]
struct Opts {
    cmd: Cmd,
    threads: usize,
    compression: &'static str,
    block_size: &'static str,
    root: PathBuf,
    list: PathBuf,
}

/// Numbers the output files.
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// The command of one build with `o` into a fresh output file (returned), without a cache:
/// the caller adds `--cache` or the environment. `ISOFORGE_CACHE` of the test's own
/// environment is removed.
fn command(fx: &Fixture, o: &Opts) -> (Command, PathBuf) {
    let n = SERIAL.fetch_add(1, Ordering::Relaxed);
    let mut c = Command::new(isoforge_bin());
    c.env_remove("SOURCE_DATE_EPOCH").env_remove("ISOFORGE_CACHE").env_remove("ISOFORGE_FAULT");
    let out = match o.cmd {
        Cmd::Build => {
            let out = fx.path(&format!("out-{n}.iso"));
            c.args(["build", "--json", "-v", "--volume-id", "CACHE_TEST", "-o"]).arg(&out);
            c.arg("--efi-dir").arg(&fx.efi);
            c.arg("--graft").arg(format!("/extra={}", fx.graft.display()));
            out
        }
        Cmd::Squashfs => {
            let out = fx.path(&format!("out-{n}.squashfs"));
            c.args(["squashfs", "--json", "-v", "-o"]).arg(&out);
            out
        }
    };
    c.arg("--closure").arg(&o.list).arg("--store-root").arg(&o.root);
    c.args(["--compression", o.compression, "--block-size", o.block_size]);
    c.arg("--threads").arg(o.threads.to_string());
    (c, out)
}

/// A build's counters, from `--json` or `builds.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counters {
    mode: String,
    lookups: u64,
    hits: u64,
    misses: u64,
    corrupt: u64,
    stores: u64,
    store_failures: u64,
    bytes_read: u64,
    bytes_stored: u64,
}

impl Counters {
    fn from_json(v: &Value, what: &str) -> Counters {
        let n = |k: &str| {
            v.get(k).and_then(Value::as_u64).unwrap_or_else(|| panic!("{what}: no number {k:?} in {v}"))
        };
        let mode =
            v.get("mode").and_then(Value::as_str).unwrap_or_else(|| panic!("{what}: no \"mode\" in {v}"));
        Counters {
            mode: mode.to_string(),
            lookups: n("lookups"),
            hits: n("hits"),
            misses: n("misses"),
            corrupt: n("corrupt"),
            stores: n("stores"),
            store_failures: n("store_failures"),
            bytes_read: n("bytes_read"),
            bytes_stored: n("bytes_stored"),
        }
    }
}

/// What one successful build gave.
#[derive(Debug)]
struct Outcome {
    /// The command line.
    line: String,
    /// The sha256 of the output (the file itself is removed: disk space is short).
    sha256: String,
    stderr: String,
    /// The `--json` report (every build here passes `--json`).
    json: Value,
    /// The cache counters of this build, when it used a cache.
    counters: Option<Counters>,
}

impl Outcome {
    /// The warning lines on stderr.
    fn warnings(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains("warning")).collect()
    }

    #[track_caller]
    fn counters(&self) -> &Counters {
        self.counters.as_ref().unwrap_or_else(|| {
            panic!(
                "`{}`: no cache counters (no \"cache\" in --json, no new builds.log line)\n{}",
                self.line, self.stderr
            )
        })
    }

    /// The `"cache"` object of the `--json` report, if any (`null` counts as none).
    fn json_cache(&self) -> Option<&Value> {
        self.json.get("cache").filter(|v| !v.is_null())
    }
}

/// The lines of `dir/builds.log`.
fn log_lines(dir: &Path) -> Vec<String> {
    match fs::read_to_string(dir.join("builds.log")) {
        Ok(s) => s.lines().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// Checks that `output` (of `cmd`, which wrote `out`) succeeded, hashes and removes `out`, and
/// gathers the counters: from `--json` (checked against the `-v` line), and from the line the
/// build appended to `log`'s `builds.log` (`log_before` lines before it), which must agree.
#[track_caller]
fn outcome(cmd: Cmd, line: String, out: &Path, output: Output, log: Option<(&Path, usize)>) -> Outcome {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "`{line}` failed: {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    let sha256 = sha256_file(out);
    fs::remove_file(out).unwrap();
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("`{line}`: bad --json ({e}): {stdout}"));
    let mut o = Outcome { line, sha256, stderr, json, counters: None };
    if cmd == Cmd::Build {
        // `isoforge build --json` reports the image's sha256; `isoforge squashfs --json` has none.
        let sha = o.json.get("sha256").and_then(Value::as_str);
        assert_eq!(sha, Some(o.sha256.as_str()), "`{}`: --json sha256", o.line);
    }
    if let Some(cache) = o.json_cache() {
        let c = Counters::from_json(cache, &o.line);
        let dir = cache
            .get("dir")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("`{}`: no dir in {cache}", o.line));
        // `-v` prints this line whenever the report has a cache, whatever its mode.
        let expected = format!(
            "cache {dir}: {} blocks looked up, {} hits, {} compressed, {} stored, {} corrupt \
             ({} bytes read, {} bytes stored)",
            c.lookups, c.hits, c.misses, c.stores, c.corrupt, c.bytes_read, c.bytes_stored
        );
        assert!(
            o.stderr.lines().any(|l| l == expected),
            "`{}`: -v should print `{expected}`; stderr:\n{}",
            o.line,
            o.stderr
        );
        o.counters = Some(c);
    }
    if let Some((dir, before)) = log {
        let lines = log_lines(dir);
        if lines.len() > before {
            assert_eq!(lines.len(), before + 1, "`{}`: one builds.log line per build: {lines:?}", o.line);
            let record: Value = serde_json::from_str(&lines[before]).unwrap();
            let c = Counters::from_json(&record, "builds.log");
            match &o.counters {
                Some(j) => assert_eq!(j, &c, "`{}`: --json and builds.log disagree", o.line),
                None => o.counters = Some(c),
            }
        }
    }
    o
}

/// Runs one build with `o`, `--cache cache` when given.
#[track_caller]
fn build(fx: &Fixture, o: &Opts, cache: Option<&Path>) -> Outcome {
    build_with(fx, o, cache, |c| {
        if let Some(dir) = cache {
            c.arg("--cache").arg(dir);
        }
    })
}

/// Runs one build with `o` after `tweak` (which adds the cache); `log` is the cache directory
/// whose `builds.log` the build should append to.
#[track_caller]
fn build_with(fx: &Fixture, o: &Opts, log: Option<&Path>, tweak: impl FnOnce(&mut Command)) -> Outcome {
    let (mut c, out) = command(fx, o);
    tweak(&mut c);
    let line = command_line(&c);
    let before = log.map(|d| log_lines(d).len()).unwrap_or(0);
    let output = c.output().unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    outcome(o.cmd, line, &out, output, log.map(|d| (d, before)))
}

#[track_caller]
fn assert_same(o: &Outcome, reference: &Outcome, what: &str) {
    assert_eq!(
        o.sha256, reference.sha256,
        "{what}: the image differs from the one without a cache\n  `{}`\n  reference `{}`\n{}",
        o.line, reference.line, o.stderr
    );
}

#[track_caller]
fn assert_no_warnings(o: &Outcome) {
    assert!(o.warnings().is_empty(), "`{}`: expected no warnings, stderr:\n{}", o.line, o.stderr);
}

/// A build with an empty cache: every block looked up, missed, compressed and stored.
#[track_caller]
fn assert_cold(o: &Outcome) {
    let c = o.counters();
    assert!(c.lookups > 0, "`{}`: {c:?}", o.line);
    assert_eq!(
        (c.mode.as_str(), c.hits, c.misses, c.stores, c.corrupt, c.store_failures, c.bytes_read),
        ("read-write", 0, c.lookups, c.lookups, 0, 0, 0),
        "`{}`: a cold build (mode, hits, misses, stores, corrupt, store_failures, bytes_read)",
        o.line
    );
    assert!(c.bytes_stored > 0, "`{}`: {c:?}", o.line);
    assert_no_warnings(o);
}

/// A build of what the cache already holds: all hits, nothing compressed, nothing stored.
#[track_caller]
fn assert_warm(o: &Outcome) {
    let c = o.counters();
    assert!(c.lookups > 0, "`{}`: {c:?}", o.line);
    assert_eq!(
        (c.mode.as_str(), c.hits, c.misses, c.stores, c.corrupt, c.store_failures, c.bytes_stored),
        ("read-write", c.lookups, 0, 0, 0, 0, 0),
        "`{}`: a warm build (mode, hits, misses, stores, corrupt, store_failures, bytes_stored)",
        o.line
    );
    assert!(c.bytes_read > 0, "`{}`: {c:?}", o.line);
    assert_no_warnings(o);
}

/// The one warning line of `o`, which must be about the cache `dir` and contain `what`.
#[track_caller]
fn one_warning<'a>(o: &'a Outcome, dir: &Path, what: &str) -> &'a str {
    let w = o.warnings();
    assert_eq!(w.len(), 1, "`{}`: expected one warning line ({what}), stderr:\n{}", o.line, o.stderr);
    let prefix = format!("isoforge: warning: block cache {}: ", dir.display());
    assert!(
        w[0].starts_with(&prefix) && w[0].contains(what),
        "`{}`: expected `{prefix}…{what}…`, found `{}`",
        o.line,
        w[0]
    );
    w[0]
}

/// The entry files of the cache `dir` (`blocks/<2 hex>/<62 hex>`), sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut out = Vec::new();
    for sub in fs::read_dir(dir.join("blocks")).unwrap() {
        let sub = sub.unwrap();
        if !sub.file_type().unwrap().is_dir() || !hex(&sub.file_name().to_string_lossy(), 2) {
            continue;
        }
        for e in fs::read_dir(sub.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() && hex(&e.file_name().to_string_lossy(), 62) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The temporary files (`.tmp-*`) anywhere in the cache `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    dir_listing(dir)
        .into_keys()
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(".tmp-")))
        .collect()
}

fn flip(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x55;
    fs::write(path, b).unwrap();
}

fn truncate(path: &Path, len: u64) {
    fs::File::options().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// Damages entries of the cache `dir` every way a disk or another program could, and drops
/// garbage in; returns how many entries a build will find damaged.
fn damage(dir: &Path) -> u64 {
    let e = entries(dir);
    assert!(e.len() >= 8, "too few entries to damage: {e:?}");
    let len = |p: &Path| fs::metadata(p).unwrap().len();
    // A flipped byte at the end (the payload, or the header's payload sha256 of an entry
    // without payload), in the magic, in the key.
    flip(&e[0], len(&e[0]) - 1);
    flip(&e[1], 0);
    flip(&e[2], 20);
    // Truncated to nothing, inside the header, by one byte.
    truncate(&e[3], 0);
    truncate(&e[4], 50);
    truncate(&e[5], len(&e[5]) - 1);
    // A valid entry of another block under this entry's name.
    fs::copy(&e[7], &e[6]).unwrap();
    // Garbage that is no block's entry.
    write_file(&dir.join("blocks/garbage"), b"not an entry\n");
    write_file(&dir.join("blocks/zz/more-garbage"), binary(7, 5000));
    let sub = e[0].parent().unwrap();
    write_file(&sub.join("0".repeat(62)), binary(8, 300));
    write_file(&sub.join("not-hex-at-all"), b"garbage\n");
    write_file(&sub.join(".tmp-999999-0"), binary(9, 100));
    write_file(&dir.join("notes.txt"), b"somebody's notes\n");
    7
}

/// How many lookups a build of the closure makes, from a build with a fresh cache.
fn cold_lookups(fx: &Fixture, o: &Opts, name: &str) -> (Outcome, u64) {
    let cold = build(fx, o, Some(&fx.path(name)));
    assert_cold(&cold);
    let n = cold.counters().lookups;
    (cold, n)
}

/// Issue 12 test 1: cold, warm, partly warm (one store path fewer; one file different),
/// corrupted and no cache give the same image, for one and two threads; the counters say what
/// was compressed.
fn cold_warm_partly_warm_corrupted_and_none_agree(cmd: Cmd) {
    let fx = Fixture::new();
    let alt = fx.alt_root();
    let reference = build(&fx, &fx.opts(cmd, 1), None);
    assert!(reference.json_cache().is_none(), "`{}`: a cache report without a cache", reference.line);
    assert_no_warnings(&reference);
    for threads in [1, 2] {
        let o = fx.opts(cmd, threads);
        let what = |s: &str| format!("{cmd:?} --threads {threads}: {s}");
        assert_same(&build(&fx, &o, None), &reference, &what("no cache"));

        let cache = fx.path(&format!("cache-{threads}"));
        let (cold, lookups) = cold_lookups(&fx, &o, &format!("cache-{threads}"));
        assert_same(&cold, &reference, &what("cold cache"));
        assert!(cache.join("CACHEDIR.TAG").is_file(), "{}", what("the cache has its tag"));
        assert_eq!(entries(&cache).len() as u64, lookups, "{}", what("one entry per block"));

        let warm = build(&fx, &o, Some(&cache));
        assert_same(&warm, &reference, &what("warm cache"));
        assert_warm(&warm);
        assert_eq!(warm.counters().lookups, lookups, "{}", what("the same blocks looked up"));

        // Partly warm: filled by the closure without P[5]. Only P[5]'s blocks, the
        // registration's fragment (it names P[5]) and the inode and directory tables (one
        // metadata block each in this fixture; they list P[5]) are compressed.
        let fewer_dir = fx.path(&format!("cache-fewer-{threads}"));
        let fewer = build(&fx, &Opts { list: fx.fewer.clone(), ..o.clone() }, Some(&fewer_dir));
        assert_cold(&fewer);
        let fewer_lookups = fewer.counters().lookups;
        assert!(fewer_lookups < lookups);
        let part = build(&fx, &o, Some(&fewer_dir));
        assert_same(&part, &reference, &what("cache filled without one store path"));
        let c = part.counters();
        let added = lookups - fewer_lookups;
        assert_eq!(
            (c.lookups, c.misses, c.hits, c.stores, c.corrupt),
            (lookups, added + 3, fewer_lookups - 3, added + 3, 0),
            "{}: (lookups, misses, hits, stores, corrupt): only the {added} blocks of the added store path, \
             the registration's fragment and the two tables are compressed",
            what(&part.line)
        );
        assert_no_warnings(&part);

        // Partly warm: filled by the closure with one block of one file different. That block
        // and the registration's fragment (the NAR hash changed) are compressed.
        let alt_dir = fx.path(&format!("cache-alt-{threads}"));
        let alt_cold = build(&fx, &Opts { root: alt.clone(), ..o.clone() }, Some(&alt_dir));
        assert_cold(&alt_cold);
        assert_ne!(alt_cold.sha256, reference.sha256, "{}", what("the changed file changes the image"));
        let part = build(&fx, &o, Some(&alt_dir));
        assert_same(&part, &reference, &what("cache filled with one file different"));
        let c = part.counters();
        assert_eq!(
            (c.lookups, c.misses, c.hits, c.stores, c.corrupt),
            (lookups, 2, lookups - 2, 2, 0),
            "{}: (lookups, misses, hits, stores, corrupt): the changed block and the registration's fragment",
            what(&part.line)
        );
        assert_no_warnings(&part);

        // Corrupted: damaged entries are compressed again and replaced, with one warning line.
        let damaged = damage(&cache);
        let hurt = build(&fx, &o, Some(&cache));
        assert_same(&hurt, &reference, &what("corrupted cache"));
        let c = hurt.counters();
        assert_eq!(
            (c.lookups, c.corrupt, c.misses, c.hits, c.stores, c.store_failures),
            (lookups, damaged, damaged, lookups - damaged, damaged, 0),
            "{}: (lookups, corrupt, misses, hits, stores, store_failures)",
            what(&hurt.line)
        );
        one_warning(&hurt, &cache, &format!("{damaged} corrupt entries ignored"));
        let again = build(&fx, &o, Some(&cache));
        assert_same(&again, &reference, &what("the repaired cache"));
        assert_warm(&again);
        // The cache is still one `isoforge cache stats` reads, garbage and all.
        // (The garbage file with a key-shaped name may count as an entry.)
        let stats =
            run_ok_stdout(Command::new(isoforge_bin()).args(["cache", "stats", "--json"]).arg(&cache));
        let stats: Value = serde_json::from_str(&stats).unwrap();
        assert!(
            stats["entries"].as_u64().is_some_and(|n| n >= lookups),
            "{}: cache stats after the repair: {stats}",
            what("")
        );
    }
}

#[test]
fn build_is_the_same_with_a_cold_warm_partly_warm_corrupted_or_no_cache() {
    cold_warm_partly_warm_corrupted_and_none_agree(Cmd::Build);
}

#[test]
fn squashfs_is_the_same_with_a_cold_warm_partly_warm_corrupted_or_no_cache() {
    cold_warm_partly_warm_corrupted_and_none_agree(Cmd::Squashfs);
}

/// Cold, warm and no cache agree with another compressor; a cache warmed with other
/// settings (compressor, block size) gives no hits.
fn other_compressor(cmd: Cmd, compression: &'static str) {
    let fx = Fixture::new();
    let o = Opts { compression, ..fx.opts(cmd, 2) };
    let reference = build(&fx, &o, None);
    let cache = fx.path("cache");
    let cold = build(&fx, &o, Some(&cache));
    assert_same(&cold, &reference, &format!("{compression}: cold cache"));
    assert_cold(&cold);
    let warm = build(&fx, &o, Some(&cache));
    assert_same(&warm, &reference, &format!("{compression}: warm cache"));
    assert_warm(&warm);
    let warm1 = build(&fx, &Opts { threads: 1, ..o.clone() }, Some(&cache));
    assert_same(&warm1, &reference, &format!("{compression}: warm cache, one thread"));
    assert_warm(&warm1);

    // zstd:3 blocks in the same directory are no hits for this compressor, nor the other way.
    let zstd = fx.opts(cmd, 2);
    let zstd_reference = build(&fx, &zstd, None);
    let z = build(&fx, &zstd, Some(&cache));
    assert_same(&z, &zstd_reference, "zstd:3 on a cache of another compressor");
    assert_cold(&z);
    let again = build(&fx, &o, Some(&cache));
    assert_same(&again, &reference, &format!("{compression}: after zstd:3 shared the cache"));
    assert_warm(&again);
    // Nor for another block size.
    let small = Opts { block_size: "64K", ..o.clone() };
    let small_reference = build(&fx, &small, None);
    let s = build(&fx, &small, Some(&cache));
    assert_same(&s, &small_reference, &format!("{compression} 64K on a cache of 128K blocks"));
    assert_cold(&s);
}

#[test]
fn squashfs_with_xz_is_the_same_with_a_cold_warm_or_no_cache() {
    other_compressor(Cmd::Squashfs, "xz");
}

#[test]
fn build_with_gzip_is_the_same_with_a_cold_warm_or_no_cache() {
    other_compressor(Cmd::Build, "gzip:9");
}

/// Issue 12 test 2: a file rewritten under an unchanged store path name, with the same size
/// and its old mtime, is read and compressed again, never served from the cache.
fn content_change_under_the_same_name(cmd: Cmd) {
    let fx = Fixture::new();
    let o = fx.opts(cmd, 2);
    let cache = fx.path("cache");
    let (old, lookups) = cold_lookups(&fx, &o, "cache");
    assert_warm(&build(&fx, &o, Some(&cache)));

    // A tail-only text file and a file of two whole blocks: other bytes, same size, old mtime.
    let rewrite = |path: PathBuf, bytes: Vec<u8>| {
        let before = fs::metadata(&path).unwrap();
        assert_eq!(before.len(), bytes.len() as u64);
        assert_ne!(fs::read(&path).unwrap(), bytes);
        fs::write(&path, &bytes).unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(before.modified().unwrap()).unwrap();
        drop(f);
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before.modified().unwrap());
    };
    rewrite(at(&fx.root, 0, "share/doc/medium.txt"), text(2000, 90 << 10));
    rewrite(at(&fx.root, 1, "lib/libexact.so"), binary(2001, 2 * BLOCK));

    let new = build(&fx, &o, Some(&cache));
    assert_ne!(new.sha256, old.sha256, "`{}`: the rewritten files must change the image", new.line);
    let reference = build(&fx, &o, None);
    assert_same(&new, &reference, "warm cache after a rewrite under the same name");
    let c = new.counters();
    // The two blocks of libexact.so, P[0]'s fragment block(s) holding medium.txt, and the
    // registration's fragment (the NAR hashes changed).
    assert_eq!(c.lookups, lookups, "`{}`: {c:?}", new.line);
    assert!(c.misses >= 4 && c.hits > 0 && c.stores == c.misses, "`{}`: {c:?}", new.line);
    assert_no_warnings(&new);
    let again = build(&fx, &o, Some(&cache));
    assert_same(&again, &reference, "the rebuilt content again");
    assert_warm(&again);
}

#[test]
fn build_picks_up_a_content_change_under_the_same_store_path_name() {
    content_change_under_the_same_name(Cmd::Build);
}

#[test]
fn squashfs_picks_up_a_content_change_under_the_same_store_path_name() {
    content_change_under_the_same_name(Cmd::Squashfs);
}

/// Issue 12 test 3: two builds at once on one (new) cache directory: both succeed with the
/// same bytes and no warning, and leave a cache a third build takes every block from.
#[test]
fn two_builds_in_parallel_share_one_cache() {
    let fx = Fixture::new();
    for cmd in [Cmd::Build, Cmd::Squashfs] {
        let cache = fx.path(&format!("cache-{cmd:?}"));
        let o = fx.opts(cmd, 1);
        let reference = build(&fx, &o, None);
        let spawn = || {
            let (mut c, out) = command(&fx, &o);
            c.arg("--cache").arg(&cache).stdout(Stdio::piped()).stderr(Stdio::piped());
            let line = command_line(&c);
            let child = c.spawn().unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
            (child, line, out)
        };
        let (a, b) = (spawn(), spawn());
        let mut results = Vec::new();
        for (child, line, out) in [a, b] {
            let output = child.wait_with_output().unwrap();
            results.push(outcome(cmd, line, &out, output, None));
        }
        for r in &results {
            assert_same(r, &reference, &format!("{cmd:?}: parallel build"));
            assert_no_warnings(r);
            let c = r.counters();
            assert_eq!((c.hits + c.misses, c.corrupt, c.store_failures), (c.lookups, 0, 0), "`{}`", r.line);
        }
        assert_eq!(temporaries(&cache), Vec::<String>::new(), "temporaries left in the cache");
        let third = build(&fx, &o, Some(&cache));
        assert_same(&third, &reference, &format!("{cmd:?}: after the parallel builds"));
        assert_warm(&third);
        assert_eq!(entries(&cache).len() as u64, third.counters().lookups, "one entry per block");
        // Three builds, three log lines, each a whole JSON object.
        let lines = log_lines(&cache);
        assert_eq!(lines.len(), 3, "{lines:?}");
        for l in &lines {
            let _: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("builds.log line {l:?}: {e}"));
        }
    }
}

/// A mount made for a test, unmounted when dropped (also when the test fails).
struct Mounted(PathBuf);

impl Mounted {
    /// `mount ARGS… TARGET`; None (after [`support::skip`]) when this machine cannot mount.
    fn mount(args: &[&str], source: &Path, target: &Path) -> Option<Mounted> {
        let out = Command::new("mount").args(args).arg(source).arg(target).output();
        match out {
            Ok(o) if o.status.success() => Some(Mounted(target.to_path_buf())),
            Ok(o) => {
                support::skip(&format!(
                    "mount {args:?} {}: {}",
                    target.display(),
                    String::from_utf8_lossy(&o.stderr)
                ));
                None
            }
            Err(e) => {
                support::skip(&format!("cannot run mount: {e}"));
                None
            }
        }
    }

    /// `dir` bind-mounted read-only on itself.
    fn read_only(dir: &Path) -> Option<Mounted> {
        let m = Mounted::mount(&["--bind"], dir, dir)?;
        let out = Command::new("mount").args(["-o", "remount,ro,bind"]).arg(dir).output().unwrap();
        if !out.status.success() {
            support::skip(&format!("mount -o remount,ro,bind: {}", String::from_utf8_lossy(&out.stderr)));
            return None;
        }
        assert!(fs::write(dir.join("probe"), b"").is_err(), "{} is still writable", dir.display());
        Some(m)
    }

    /// A tmpfs of `size` on `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
        mkdir_p(dir);
        Mounted::mount(&["-t", "tmpfs", "-o", &format!("size={size}")], Path::new("tmpfs"), dir)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Issue 12 test 4a: a warm cache on a read-only mount is used for lookups only, with one
/// warning; a new cache on a read-only mount is not used, with one warning.
#[test]
fn a_read_only_cache_is_used_for_lookups_only() {
    let fx = Fixture::new();
    let o = fx.opts(Cmd::Build, 2);
    let reference = build(&fx, &o, None);
    let cache = fx.path("cache");
    let (_, lookups) = cold_lookups(&fx, &o, "cache");
    let empty = fx.path("empty");
    mkdir_p(&empty);
    let listing = dir_listing(&cache);
    let Some(_ro) = Mounted::read_only(&cache) else { return };
    let Some(_ro_empty) = Mounted::read_only(&empty) else { return };

    let r = build(&fx, &o, Some(&cache));
    assert_same(&r, &reference, "read-only warm cache");
    one_warning(&r, &cache, "not writable");
    let c = r.counters();
    assert_eq!(
        (c.mode.as_str(), c.lookups, c.hits, c.misses, c.stores, c.corrupt),
        ("lookups-only", lookups, lookups, 0, 0, 0),
        "`{}`: (mode, lookups, hits, misses, stores, corrupt)",
        r.line
    );
    assert_eq!(dir_listing(&cache), listing);

    // An empty directory on a read-only mount cannot become a cache; nor can one to be made
    // there.
    for dir in [empty.clone(), empty.join("new")] {
        let r = build(&fx, &o, Some(&dir));
        assert_same(&r, &reference, "read-only empty cache directory");
        one_warning(&r, &dir, "");
        assert!(
            r.counters.as_ref().is_none_or(|c| c.hits == 0 && c.stores == 0),
            "`{}`: {:?}",
            r.line,
            r.counters
        );
    }
    assert_eq!(dir_listing(&empty), BTreeMap::new());
}

/// Issue 12 test 4b: a cache on a full file system (a 256 KiB tmpfs) stores what fits, then
/// nothing more, with one warning; what it stored is served by the next build.
#[test]
fn a_full_cache_file_system_degrades_to_lookups() {
    let fx = Fixture::new();
    let o = fx.opts(Cmd::Build, 2);
    let reference = build(&fx, &o, None);
    let Some(_tmpfs) = Mounted::tmpfs(&fx.path("tmpfs"), "256k") else { return };
    let cache = fx.path("tmpfs/cache");

    let first = build(&fx, &o, Some(&cache));
    assert_same(&first, &reference, "cache on a full file system");
    one_warning(&first, &cache, "cannot store");
    let c = first.counters().clone();
    assert_eq!(
        (c.mode.as_str(), c.hits, c.misses, c.corrupt),
        ("lookups-only", 0, c.lookups, 0),
        "`{}`",
        first.line
    );
    assert!(c.stores >= 1 && c.stores < c.lookups && c.store_failures >= 1, "`{}`: {c:?}", first.line);
    assert_eq!(temporaries(&cache), Vec::<String>::new(), "temporaries left on the full file system");
    assert_eq!(entries(&cache).len() as u64, c.stores);

    let second = build(&fx, &o, Some(&cache));
    assert_same(&second, &reference, "second build on the full cache");
    assert_eq!(second.warnings().len(), 1, "`{}`: one warning line:\n{}", second.line, second.stderr);
    let c2 = second.counters();
    assert_eq!(
        (c2.lookups, c2.hits, c2.corrupt),
        (c.lookups, c.stores, 0),
        "`{}`: what was stored is served",
        second.line
    );
    assert_eq!(temporaries(&cache), Vec::<String>::new());
}

/// Issue 12 test 4c: a directory that is not an isoforge cache (files and no CACHEDIR.TAG,
/// another program's CACHEDIR.TAG, a regular file) is not written to: the build runs without
/// a cache, with one warning.
#[test]
fn a_directory_that_is_not_a_cache_is_left_alone() {
    let fx = Fixture::new();
    let o = fx.opts(Cmd::Build, 2);
    let references = [build(&fx, &o, None), build(&fx, &Opts { cmd: Cmd::Squashfs, ..o.clone() }, None)];

    let garbage = fx.path("garbage");
    write_file(&garbage.join("notes.txt"), b"my notes\n");
    write_file(&garbage.join("photos/cat.jpg"), binary(1, 3000));
    let foreign = fx.path("foreign");
    write_file(
        &foreign.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by another program.\n",
    );
    write_file(&foreign.join("objects/ab"), b"their cache\n");
    let file = fx.path("a-file");
    write_file(&file, b"not a directory\n");

    for (dir, what) in
        [(&garbage, "not an isoforge block cache"), (&foreign, "not an isoforge block cache"), (&file, "")]
    {
        let before = (dir_listing(dir), fs::read(dir).ok());
        for (cmd, reference) in [Cmd::Build, Cmd::Squashfs].into_iter().zip(&references) {
            let o = Opts { cmd, ..o.clone() };
            let r = build(&fx, &o, Some(dir));
            assert_same(&r, reference, &format!("{cmd:?} with {}", dir.display()));
            one_warning(&r, dir, what);
            assert!(r.counters.as_ref().is_none_or(|c| c.lookups == 0), "`{}`: {:?}", r.line, r.counters);
            assert_eq!(
                (dir_listing(dir), fs::read(dir).ok()),
                before,
                "`{}` wrote into {}",
                r.line,
                dir.display()
            );
        }
    }
}

/// Issue 12 test 5: `ISOFORGE_CACHE` works like `--cache`, `--cache` wins over it, and an
/// empty value means no cache.
#[test]
fn the_environment_names_the_cache() {
    let fx = Fixture::new();
    for cmd in [Cmd::Build, Cmd::Squashfs] {
        let o = fx.opts(cmd, 2);
        let reference = build(&fx, &o, None);
        let env_dir = fx.path(&format!("env-cache-{cmd:?}"));
        let with_env = |dir: &Path| {
            build_with(&fx, &o, Some(dir), |c| {
                c.env("ISOFORGE_CACHE", dir);
            })
        };
        let cold = with_env(&env_dir);
        assert_same(&cold, &reference, "ISOFORGE_CACHE, cold");
        assert_cold(&cold);
        let warm = with_env(&env_dir);
        assert_same(&warm, &reference, "ISOFORGE_CACHE, warm");
        assert_warm(&warm);
        let c = warm.json_cache().unwrap_or_else(|| panic!("`{}`: no cache in --json", warm.line));
        assert_eq!(c["dir"].as_str(), Some(env_dir.to_str().unwrap()), "`{}`", warm.line);

        // --cache wins: the environment's directory is not even created.
        let unused = fx.path(&format!("unused-{cmd:?}"));
        let flag_dir = fx.path(&format!("flag-cache-{cmd:?}"));
        let r = build_with(&fx, &o, Some(&flag_dir), |c| {
            c.env("ISOFORGE_CACHE", &unused).arg("--cache").arg(&flag_dir);
        });
        assert_same(&r, &reference, "--cache and ISOFORGE_CACHE");
        assert_cold(&r);
        assert!(!unused.exists(), "`{}` created ISOFORGE_CACHE's {}", r.line, unused.display());
        assert!(flag_dir.join("CACHEDIR.TAG").is_file());

        // Empty: no cache, no warning, nothing created in the working directory.
        let cwd = fx.path(&format!("cwd-{cmd:?}"));
        mkdir_p(&cwd);
        let r = build_with(&fx, &o, None, |c| {
            c.env("ISOFORGE_CACHE", "").current_dir(&cwd);
        });
        assert_same(&r, &reference, "ISOFORGE_CACHE empty");
        assert_no_warnings(&r);
        assert!(r.json_cache().is_none(), "`{}`: an empty ISOFORGE_CACHE is no cache: {:?}", r.line, r.json);
        assert_eq!(dir_listing(&cwd), BTreeMap::new(), "`{}` wrote into its working directory", r.line);
    }
}
