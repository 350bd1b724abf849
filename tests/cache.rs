//! Issue 12: `isoforge cache stats` and `isoforge cache gc` on a block cache filled through the
//! library (`isoforge_squashfs::cache`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use isoforge_squashfs::cache::BlockCache;
use isoforge_squashfs::{compress_block, Compression};
use support::{isoforge_bin, run_ok_stdout};

const ZSTD: Compression = Compression::Zstd { level: 3 };
const BLOCK_SIZE: u32 = 1 << 17;

/// A block that compresses to about half its size, different for each seed.
fn block(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v: Vec<u8> = (0..len / 2)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    v.resize(len, 0);
    v
}

/// One build through the cache: compresses `blocks`, checks each against `compress_block`.
fn build(dir: &Path, blocks: &[Vec<u8>]) {
    let cache = BlockCache::open(dir, ZSTD, BLOCK_SIZE);
    for b in blocks {
        assert_eq!(cache.compress(b).unwrap(), compress_block(b, ZSTD, BLOCK_SIZE).unwrap());
    }
    let report = cache.finish(None);
    assert_eq!(report.warnings, vec![]);
}

fn entry(dir: &Path, b: &[u8]) -> PathBuf {
    let cache = BlockCache::open(dir, ZSTD, BLOCK_SIZE);
    dir.join(cache.key(b).unwrap().relative_path())
}

fn isoforge(args: &[&str], dir: &Path) -> String {
    run_ok_stdout(Command::new(isoforge_bin()).arg("cache").arg(args[0]).arg(dir).args(&args[1..]))
}

#[test]
fn stats_counts_entries_and_the_hit_rate() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("cache");
    let blocks: Vec<Vec<u8>> = (0..3).map(|s| block(s, 8192)).collect();
    build(&dir, &blocks);
    build(&dir, &blocks);
    let bytes: u64 = blocks.iter().map(|b| fs::metadata(entry(&dir, b)).unwrap().len()).sum();

    let text = isoforge(&["stats"], &dir);
    assert!(text.starts_with(&format!("{}: 3 entries, ", dir.display())), "{text}");
    assert!(text.contains("last 2 of 2 builds: 6 lookups, 3 hits (50.0 %)"), "{text}");
    assert!(text.contains("zstd:3 (block size 131072): 3 lookups, 3 hits (100.0 %)"), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&isoforge(&["stats", "--json", "--builds", "1"], &dir)).unwrap();
    assert_eq!(json["dir"], dir.to_string_lossy().as_ref());
    assert_eq!(json["entries"], 3);
    assert_eq!(json["bytes"], bytes);
    assert_eq!(json["builds"], 2);
    assert_eq!(json["hit_rate"], 1.0);
    assert_eq!(json["recent"][0]["hits"], 3);
    assert_eq!(json["recent"][0]["mode"], "read-write");
}

#[test]
fn gc_removes_the_least_recently_used_entries() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("cache");
    let blocks: Vec<Vec<u8>> = (0..4).map(|s| block(s, 16384)).collect();
    build(&dir, &blocks);
    let paths: Vec<PathBuf> = blocks.iter().map(|b| entry(&dir, b)).collect();
    // Block 2 was used last, then 0, 3, 1.
    for (p, age) in paths.iter().zip([3000, 1000, 4000, 2000]) {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + age);
        fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
    }
    let len = |i: usize| fs::metadata(&paths[i]).unwrap().len();
    let (l0, l2) = (len(0), len(2));

    let text = isoforge(&["gc", "--max-size", "1M"], &dir);
    assert!(text.contains("removed 0 entries (0 B)"), "{text}");
    assert!(paths.iter().all(|p| p.exists()));

    let max = (l0 + l2).to_string();
    let json: serde_json::Value =
        serde_json::from_str(&isoforge(&["gc", "--max-size", &max, "--json"], &dir)).unwrap();
    assert_eq!(json["removed_entries"], 2, "{json}");
    assert_eq!(json["kept_entries"], 2, "{json}");
    assert_eq!(json["kept_bytes"], l0 + l2, "{json}");
    assert!(paths[0].exists() && paths[2].exists() && !paths[1].exists() && !paths[3].exists());

    let text = isoforge(&["gc", "--max-size", "0K"], &dir);
    assert!(text.contains("removed 2 entries"), "{text}");
    assert!(isoforge(&["stats"], &dir).contains(": 0 entries, 0 B"));
    // The cache still works after a gc.
    build(&dir, &blocks);
}

#[test]
fn a_directory_that_is_not_a_cache_is_an_error() {
    let tmp = support::tempdir();
    let fail = |args: &[&str], dir: &Path, expected: &str| {
        let out = Command::new(isoforge_bin())
            .arg("cache")
            .arg(args[0])
            .arg(dir)
            .args(&args[1..])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    let plain = tmp.path().join("plain");
    support::write_file(&plain.join("notes.txt"), b"not a cache");
    let msg = format!(
        "isoforge: error: {} is not an isoforge block cache: it has no CACHEDIR.TAG",
        plain.display()
    );
    fail(&["stats"], &plain, &msg);
    fail(&["gc", "--max-size", "0"], &plain, &msg);
    assert!(plain.join("notes.txt").exists(), "gc touched nothing");
    fail(&["stats"], &tmp.path().join("absent"), "is not an isoforge block cache: it does not exist");
    fail(&["stats"], &plain.join("notes.txt"), "is not an isoforge block cache: it is not a directory");
    fail(&["gc", "--max-size", "12X"], &plain, "unknown suffix \"X\" (use K, M or G)");
}
