//! Issue 6: `isoforge build -v` prints per-phase timings and `--json` a machine-readable
//! report whose sizes and sha256 match the image on disk; nothing is drawn on a stderr that is
//! not a terminal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::{isoforge_bin, run, sha256_file, write_file};

fn build(dir: &Path, extra: &[&str]) -> (String, String) {
    let tree = dir.join("tree");
    write_file(&tree.join("a.txt"), b"hello\n");
    write_file(&tree.join("sub/b.bin"), vec![7u8; 5000]);
    let out = run(Command::new(isoforge_bin())
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "-o"])
        .arg(dir.join("out.iso"))
        .args(["--volume-id", "REPORT", "--graft"])
        .arg(format!("/={}", tree.display()))
        .args(extra));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// A small closure: two store paths, one referring to the other.
fn closure(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = dir.join("root");
    let a = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a";
    let b = "/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b";
    write_file(&root.join(&a[1..]).join("bin/a"), format!("#!/bin/sh\nexec {b}/bin/b\n"));
    write_file(&root.join(&b[1..]).join("bin/b"), vec![b'b'; 200_000]);
    let list = dir.join("paths");
    write_file(&list, format!("{a}\n{b}\n"));
    (root, list)
}

/// Extracts the number after `"key":` in the JSON text.
fn number(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat).unwrap_or_else(|| panic!("no {key} in {json}")) + pat.len();
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].parse().unwrap_or_else(|_| panic!("{key}: {:?} is not a number", &rest[..end]))
}

#[test]
fn verbose_prints_phase_timings() {
    let dir = support::tempdir();
    let (stdout, stderr) = build(dir.path(), &["-v"]);
    assert!(stdout.contains("bytes written"), "{stdout}");
    assert!(stderr.lines().any(|l| l.contains("busy of")), "a header names the cores: {stderr}");
    for phase in ["scan", "plan", "write", "finish", "total"] {
        let line = stderr.lines().find(|l| l.trim_start().starts_with(&format!("{phase}:")));
        let line = line.unwrap_or_else(|| panic!("no {phase} line in {stderr:?}"));
        // `phase: WALL s CPU s BUSY %`
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 7, "{line}");
        assert_eq!((fields[2], fields[4], fields[6]), ("s", "s", "%"), "{line}");
        for n in [fields[1], fields[3]] {
            assert!(n.parse::<f64>().is_ok_and(|v| v >= 0.0), "{line}");
        }
    }
    assert!(!stderr.contains("compress"), "no store, no compress phase: {stderr}");
}

#[test]
fn quiet_when_stderr_is_not_a_terminal() {
    let dir = support::tempdir();
    let (_, stderr) = build(dir.path(), &[]);
    assert_eq!(stderr, "", "no progress output when stderr is a pipe");
}

#[test]
fn json_report_matches_the_image() {
    let dir = support::tempdir();
    let (stdout, stderr) = build(dir.path(), &["--json"]);
    assert_eq!(stderr, "");
    let json = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    let iso = dir.path().join("out.iso");
    let size = fs::metadata(&iso).unwrap().len();
    assert_eq!(number(json, "image_bytes"), size as f64);
    // Every byte once: without a store, exactly the image.
    assert_eq!(number(json, "bytes_written"), size as f64, "{json}");
    assert!(json.contains(&format!("\"sha256\":\"{}\"", sha256_file(&iso))), "{json}");
    assert!(json.contains("\"squashfs\":null"), "{json}");
    for phase in ["scan", "plan", "write", "finish"] {
        assert!(json.contains(&format!("{{\"name\":\"{phase}\",\"seconds\":")), "{phase} in {json}");
    }
    assert!(number(json, "total_seconds") >= 0.0);
    assert!(number(json, "cpu_seconds") >= 0.0, "each phase has its CPU time: {json}");
}

#[test]
fn json_report_of_a_closure_has_compression() {
    let dir = support::tempdir();
    let (root, list) = closure(dir.path());
    let closure_args = [
        "--closure",
        list.to_str().unwrap(),
        "--store-root",
        root.to_str().unwrap(),
        "--compression",
        "zstd:3",
    ];
    let mut args = vec!["--json", "-v"];
    args.extend(closure_args);
    let (stdout, stderr) = build(dir.path(), &args);
    let json = stdout.trim();
    for phase in ["registration", "duplicates", "compress", "tables"] {
        assert!(json.contains(&format!("\"name\":\"{phase}\"")), "{phase} in {json}");
        assert!(stderr.lines().any(|l| l.trim_start().starts_with(&format!("{phase}:"))), "{stderr}");
    }
    let iso = dir.path().join("out.iso");
    assert!(json.contains(&sha256_file(&iso)), "{json}");
    // 200 kB of one byte compress far below their size.
    assert!(number(json, "compression_ratio") > 10.0, "{json}");
    // The two files and nix-path-registration.
    assert!(number(json, "file_bytes") > 200_000.0, "{json}");
    // Every byte once, but the squashfs superblock: it is patched at the end of compression.
    assert_eq!(number(json, "bytes_written"), number(json, "image_bytes") + 96.0, "{json}");
    // The phases in pipeline order: compress before write (the rest is written around it).
    let at = |name: &str| json.find(&format!("\"name\":\"{name}\"")).unwrap();
    assert!(
        at("plan") < at("duplicates")
            && at("duplicates") < at("compress")
            && at("compress") < at("tables")
            && at("tables") < at("write")
            && at("write") < at("finish"),
        "{json}"
    );
}
