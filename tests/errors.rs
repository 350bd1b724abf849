//! Issue 11: the published table of bad inputs, `docs/errors.md`. One test per row of its
//! sections "Arguments and spec files" and "Sources and closures": each runs the real binary on
//! a small fixture whose output target already holds a previous image, and checks the exit
//! status (2), the message excerpt the table gives, that the fixture directory holds exactly
//! what it held before (every entry, hidden ones too, with its size) and that the previous image
//! is unchanged byte for byte. [`table_names_real_tests`] keeps the table and this file in step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::{command_line, dir_listing, isoforge_bin, run, sha256_file, write_file};
use tempfile::TempDir;

/// The one store path of the fixture closure.
const STORE_PATH: &str = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello";
/// A NAR hash in Nix's form, for registrations whose hashes are never checked against content.
const NAR_HASH: &str = "sha256:197nzackh9c87wmav6qzlsz0lyykkzwmhh2piy0qlsh0m3s9nwrs";

/// A fixture directory; commands run in it, so every path in them (and in the messages) is
/// relative to it:
///
/// - `tree/boot/{readme.txt, loader.bin (4096 bytes), small.bin (6 bytes)}`: graft contents;
/// - `efi/EFI/BOOT/BOOTX64.EFI`: an EFI directory;
/// - `root/nix/store/<hash>-hello/f` and `paths.txt` listing it: a closure under a store root;
/// - `out/target`: a previous image (a real one) at the target path of every command, and
///   `out/.previous-build`, a hidden file beside it.
struct Case {
    dir: TempDir,
}

impl Case {
    fn new() -> Case {
        let case = Case { dir: support::tempdir() };
        write_file(&case.path("tree/boot/readme.txt"), "hi\n");
        write_file(&case.path("tree/boot/loader.bin"), vec![0x90u8; 4096]);
        write_file(&case.path("tree/boot/small.bin"), "small\n");
        write_file(&case.path("efi/EFI/BOOT/BOOTX64.EFI"), vec![0u8; 4096]);
        write_file(&case.path(&format!("root{STORE_PATH}/f")), "store file\n");
        write_file(&case.path("paths.txt"), format!("{STORE_PATH}\n"));
        write_file(&case.path("out/.previous-build"), "a hidden file beside the target\n");
        run(Command::new(isoforge_bin()).current_dir(case.root()).env_remove("SOURCE_DATE_EPOCH").args([
            "build",
            "-o",
            "out/target",
            "--volume-id",
            "PREVIOUS",
            "--graft",
            "/=tree",
        ]));
        case
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `bytes` to the fixture file `rel`.
    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        write_file(&self.path(rel), bytes);
    }

    /// Makes a fifo at `rel`.
    fn fifo(&self, rel: &str) {
        support::mkdir_p(self.path(rel).parent().unwrap());
        run(Command::new("mkfifo").arg(self.path(rel)));
    }

    /// Runs `isoforge ARGS` and checks the row: exit status 2, isoforge's own message
    /// (`isoforge: error: …`) with `excerpt` in it, the fixture directory as it was, the previous
    /// image unchanged. Returns stderr.
    #[track_caller]
    fn fails(&self, args: &[&str], excerpt: &str) -> String {
        self.fails_env(args, &[], excerpt)
    }

    /// [`Case::fails`] with environment variables set.
    #[track_caller]
    fn fails_env(&self, args: &[&str], env: &[(&str, &str)], excerpt: &str) -> String {
        let (line, stderr) = self.exits_2(args, env, excerpt);
        assert!(stderr.starts_with("isoforge: error: "), "`{line}`: not isoforge's error message:\n{stderr}");
        stderr
    }

    /// [`Case::fails`] for a command line that the argument parser (clap) refuses: its
    /// message `error: …`, ending `For more information, try '--help'.`.
    #[track_caller]
    fn usage_error(&self, args: &[&str], excerpt: &str) -> String {
        let (line, stderr) = self.exits_2(args, &[], excerpt);
        assert!(
            stderr.starts_with("error: ") && stderr.ends_with("\nFor more information, try '--help'.\n"),
            "`{line}`: not clap's usage error:\n{stderr}"
        );
        stderr
    }

    /// The checks every row shares: runs `isoforge ARGS` with `env`, and checks exit status 2,
    /// `excerpt` in stderr, the fixture directory and the previous image unchanged. Returns
    /// the command line and stderr.
    #[track_caller]
    fn exits_2(&self, args: &[&str], env: &[(&str, &str)], excerpt: &str) -> (String, String) {
        let before = dir_listing(self.root());
        let target = self.path("out/target");
        let previous = sha256_file(&target);
        let mut cmd = Command::new(isoforge_bin());
        cmd.current_dir(self.root()).env_remove("SOURCE_DATE_EPOCH").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let line = command_line(&cmd);
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "`{line}`: expected exit status 2; stderr:\n{stderr}");
        assert!(stderr.contains(excerpt), "`{line}`: stderr lacks {excerpt:?}:\n{stderr}");
        assert_eq!(dir_listing(self.root()), before, "`{line}` changed the fixture directory");
        assert_eq!(sha256_file(&target), previous, "`{line}` changed the previous image");
        (line, stderr)
    }
}

/// `build -o out/target --volume-id X --graft /=tree` followed by `extra`.
fn build(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec!["build", "-o", "out/target", "--volume-id", "X", "--graft", "/=tree"];
    v.extend_from_slice(extra);
    v
}

/// `squashfs -o out/target --store-root root` followed by `extra`.
fn squashfs(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec!["squashfs", "-o", "out/target", "--store-root", "root"];
    v.extend_from_slice(extra);
    v
}

// ---- Arguments ----

#[test]
fn missing_output_or_volume_id() {
    Case::new().fails(
        &["build", "--graft", "/=tree"],
        "-o/--output and --volume-id are required (unless --spec or --out-dir is given)",
    );
}

#[test]
fn volume_id_empty() {
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", "", "--graft", "/=tree"],
        "the volume id is empty",
    );
}

#[test]
fn volume_id_over_32_bytes() {
    let id = "V".repeat(33);
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", &id, "--graft", "/=tree"],
        "volume id is 33 bytes; at most 32 fit in the volume descriptor",
    );
}

#[test]
fn application_id_over_128_bytes() {
    let id = "a".repeat(129);
    Case::new().fails(
        &[&build(&["--app-id"])[..], &[id.as_str()]].concat(),
        "application id is 129 bytes; at most 128",
    );
}

#[test]
fn boot_file_not_in_image() {
    Case::new().fails(
        &build(&["--bios-boot", "boot/missing.bin"]),
        "boot image \"boot/missing.bin\" is not in the image (graft it first)",
    );
}

#[test]
fn boot_file_under_64_bytes() {
    Case::new().fails(
        &build(&["--bios-boot", "boot/small.bin"]),
        "boot image \"boot/small.bin\" is 6 bytes; a boot-info-table needs at least 64",
    );
}

#[test]
fn boot_file_is_a_directory() {
    Case::new().fails(&build(&["--bios-boot", "boot"]), "boot image \"boot\" is not a regular file");
}

#[test]
fn boot_load_size_zero() {
    Case::new().fails(
        &build(&["--bios-boot", "boot/loader.bin", "--boot-load-size", "0"]),
        "boot load size must be at least 1 sector",
    );
}

#[test]
fn boot_load_size_zero_without_boot_file() {
    Case::new().fails(&build(&["--boot-load-size", "0"]), "--boot-load-size must be at least 1");
}

#[test]
fn efi_image_too_small() {
    Case::new().fails(
        &build(&["--efi-dir", "efi", "--efi-size", "10K"]),
        "EFI image from efi: a FAT image of 10240 bytes is too small: at least 16384 bytes are needed",
    );
}

#[test]
fn fat_image_too_small() {
    Case::new().fails(
        &["fat", "--dir", "efi", "-o", "out/target", "--size", "10K"],
        "planning a FAT image of efi: a FAT image of 10240 bytes is too small",
    );
}

#[test]
fn efi_size_unknown_suffix() {
    Case::new().usage_error(
        &build(&["--efi-dir", "efi", "--efi-size", "12X"]),
        "size \"12X\": unknown suffix \"X\" (use K, M or G)",
    );
}

#[test]
fn efi_serial_not_hex() {
    Case::new().usage_error(
        &build(&["--efi-dir", "efi", "--efi-serial", "xyz"]),
        "serial \"xyz\": not a hex number",
    );
}

#[test]
fn efi_label_invalid() {
    Case::new().fails(
        &build(&["--efi-dir", "efi", "--efi-label", "a/b"]),
        "EFI image from efi: invalid FAT volume label \"a/b\"",
    );
}

#[test]
fn sort_weight_not_path_eq_n() {
    Case::new().fails(&build(&["--sort-weight", "boot"]), "--sort-weight \"boot\" is not PATH=N");
}

#[test]
fn sort_weight_not_a_number() {
    Case::new()
        .fails(&build(&["--sort-weight", "boot=x"]), "--sort-weight \"boot=x\": \"x\" is not a whole number");
}

#[test]
fn sort_weight_twice() {
    Case::new().fails(
        &build(&["--sort-weight", "boot=1", "--sort-weight", "/boot/=2"]),
        "--sort-weight given twice for \"/boot\"",
    );
}

#[test]
fn sort_weight_path_not_in_image() {
    Case::new().fails(
        &build(&["--sort-weight", "nope=1"]),
        "sort weight given for \"/nope\", which is not in the image",
    );
}

#[test]
fn graft_without_equals() {
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", "X", "--graft", "tree"],
        "graft \"tree\" is not TARGET=SOURCE",
    );
}

#[test]
fn graft_empty_source() {
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", "X", "--graft", "/="],
        "graft \"/=\" is not TARGET=SOURCE",
    );
}

#[test]
fn gpt_disk_guid_invalid() {
    Case::new().usage_error(&build(&["--gpt-disk-guid", "zz"]), "GUID \"zz\": not a UUID in text form");
}

#[test]
fn layout_unknown() {
    Case::new().usage_error(
        &build(&["--layout", "bogus"]),
        "unknown system area layout \"bogus\" (expected nixos, gpt or none)",
    );
}

#[test]
fn layout_nixos_without_mbr_template() {
    Case::new().fails(
        &build(&["--layout", "nixos"]),
        "system area layout nixos: an isohybrid MBR template is required",
    );
}

#[test]
fn layout_gpt_without_efi_image() {
    Case::new().fails(&build(&["--layout", "gpt"]), "system area layout gpt: an EFI image is required");
}

#[test]
fn isohybrid_mbr_wrong_size() {
    Case::new().fails(
        &build(&["--isohybrid-mbr", "tree/boot/small.bin", "--bios-boot", "boot/loader.bin"]),
        "isohybrid MBR template tree/boot/small.bin: 6 bytes; an isohybrid MBR template has 432 to 512",
    );
}

#[test]
fn isohybrid_mbr_missing() {
    Case::new().fails(
        &build(&["--isohybrid-mbr", "nope.bin", "--bios-boot", "boot/loader.bin"]),
        "isohybrid MBR template nope.bin: No such file or directory (os error 2)",
    );
}

#[test]
fn isohybrid_mbr_with_layout_none() {
    let case = Case::new();
    case.write("mbr.bin", [0u8; 512]);
    case.fails(
        &build(&["--isohybrid-mbr", "mbr.bin", "--layout", "none"]),
        "--isohybrid-mbr has no effect with --layout none",
    );
}

#[test]
fn compression_unknown() {
    Case::new().usage_error(
        &build(&["--closure", "paths.txt", "--store-root", "root", "--compression", "bogus"]),
        "unknown compression \"bogus\": use zstd[:LEVEL], xz[:bcj], gzip[:LEVEL], lz4 or none",
    );
}

#[test]
fn compression_level_out_of_range() {
    Case::new().usage_error(
        &build(&["--closure", "paths.txt", "--store-root", "root", "--compression", "zstd:99"]),
        "zstd level \"99\" is not a whole number from 1 to 22",
    );
}

#[test]
fn block_size_not_a_power_of_two() {
    Case::new().usage_error(
        &build(&["--closure", "paths.txt", "--store-root", "root", "--block-size", "3000"]),
        "block size \"3000\" is not a power of two from 4K to 1M",
    );
}

#[test]
fn threads_not_a_number() {
    Case::new().usage_error(
        &build(&["--closure", "paths.txt", "--store-root", "root", "--threads", "x"]),
        "invalid value 'x' for '--threads <N>'",
    );
}

#[test]
fn store_dir_not_canonical() {
    Case::new().fails(
        &build(&["--closure", "paths.txt", "--store-root", "root", "--store-dir", "/nix/store/"]),
        "invalid store directory \"/nix/store/\": it must be a canonical path",
    );
}

#[test]
fn squashfs_without_closure() {
    Case::new().fails(&["squashfs", "-o", "out/target"], "--closure is required");
}

#[test]
fn out_dir_with_output() {
    Case::new().usage_error(
        &build(&["--out-dir", "out/result"]),
        "the argument '--output <OUT.iso>' cannot be used with '--out-dir <DIR>'",
    );
}

#[test]
fn out_dir_without_volume_id() {
    Case::new().fails(
        &["build", "--out-dir", "out/result", "--graft", "/=tree"],
        "--volume-id is required without --spec",
    );
}

// ---- The epoch ----

#[test]
fn epoch_not_a_number() {
    Case::new().usage_error(&build(&["--epoch", "x"]), "invalid value 'x' for '--epoch <N>'");
}

#[test]
fn source_date_epoch_not_a_number() {
    Case::new().fails_env(
        &build(&[]),
        &[("SOURCE_DATE_EPOCH", "x")],
        "SOURCE_DATE_EPOCH is not a whole number of seconds: \"x\"",
    );
}

#[test]
fn epoch_year_3000_squashfs() {
    Case::new().fails(
        &squashfs(&["--closure", "paths.txt", "--epoch", "32503680000"]),
        "isoforge: error: --epoch 32503680000 (3000-01-01T00:00:00Z): the squashfs superblock and inodes \
         store unsigned 32-bit seconds, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z (0 to 4294967295)",
    );
}

#[test]
fn epoch_before_1970_with_store() {
    Case::new().fails(
        &build(&["--closure", "paths.txt", "--store-root", "root", "--epoch", "-5"]),
        "--epoch -5 (1969-12-31T23:59:55Z): the squashfs superblock and inodes store unsigned 32-bit seconds",
    );
}

#[test]
fn epoch_after_2155_iso_records() {
    Case::new().fails(
        &build(&["--epoch", "5869584000"]),
        "--epoch 5869584000 (2156-01-01T00:00:00Z): ISO 9660 directory records (ECMA-119 9.1.5) and Rock \
         Ridge TF entries store the year as years since 1900 in one byte, 1900-01-01T00:00:00Z to \
         2155-12-31T23:59:59Z (-2208988800 to 5869583999)",
    );
}

#[test]
fn epoch_before_1900_iso_records() {
    Case::new().fails(
        &build(&["--epoch", "-2208988801"]),
        "--epoch -2208988801 (1899-12-31T23:59:59Z): ISO 9660 directory records",
    );
}

#[test]
fn epoch_before_1980_with_efi() {
    Case::new().fails(
        &build(&["--efi-dir", "efi", "--epoch", "315532799"]),
        "--epoch 315532799 (1979-12-31T23:59:59Z): FAT directory entries store the year as years since \
         1980 in 7 bits, 1980-01-01T00:00:00Z to 2107-12-31T23:59:59Z (315532800 to 4354819199)",
    );
}

#[test]
fn epoch_after_2107_fat() {
    Case::new().fails(
        &["fat", "--dir", "efi", "-o", "out/target", "--epoch", "4354819200"],
        "--epoch 4354819200 (2108-01-01T00:00:00Z): FAT directory entries",
    );
}

#[test]
fn source_date_epoch_out_of_range() {
    Case::new().fails_env(
        &squashfs(&["--closure", "paths.txt"]),
        &[("SOURCE_DATE_EPOCH", "-5")],
        "SOURCE_DATE_EPOCH -5 (1969-12-31T23:59:55Z): the squashfs superblock",
    );
}

#[test]
fn spec_epoch_out_of_range() {
    let case = Case::new();
    case.write("spec.json", r#"{"volumeID": "X", "epoch": -5, "squashfsContents": "paths.txt"}"#);
    case.fails(
        &["build", "-o", "out/target", "--spec", "spec.json"],
        "spec file spec.json: epoch -5 (1969-12-31T23:59:55Z): the squashfs superblock",
    );
}

#[test]
fn epoch_out_of_range_out_dir() {
    Case::new().fails(
        &[
            "build",
            "--out-dir",
            "out/result",
            "--volume-id",
            "X",
            "--graft",
            "/=tree",
            "--epoch",
            "99999999999",
        ],
        "--epoch 99999999999 (5138-11-16T09:46:39Z): ISO 9660 directory records",
    );
}

/// The edges of each range build (not a row: the other side of the epoch rows).
#[test]
fn epoch_range_edges_are_accepted() {
    let case = Case::new();
    let ok = |args: &[&str]| {
        run(Command::new(isoforge_bin()).current_dir(case.root()).env_remove("SOURCE_DATE_EPOCH").args(args));
    };
    for e in ["-2208988800", "5869583999"] {
        ok(&["build", "-o", "out/edge.iso", "--volume-id", "X", "--graft", "/=tree", "--epoch", e]);
    }
    for e in ["0", "4294967295"] {
        ok(&[
            "squashfs",
            "-o",
            "out/edge.sq",
            "--store-root",
            "root",
            "--closure",
            "paths.txt",
            "--epoch",
            e,
        ]);
    }
    for e in ["315532800", "4354819199"] {
        ok(&["fat", "--dir", "efi", "-o", "out/edge.img", "--epoch", e]);
        ok(&[
            "build",
            "-o",
            "out/edge.iso",
            "--volume-id",
            "X",
            "--graft",
            "/=tree",
            "--efi-dir",
            "efi",
            "--epoch",
            e,
        ]);
    }
}

// ---- Spec files ----

#[test]
fn spec_invalid_json() {
    let case = Case::new();
    case.write("spec.json", "{\n");
    case.fails(
        &["build", "-o", "out/target", "--spec", "spec.json"],
        "spec spec.json: spec is not a JSON object: EOF while parsing",
    );
}

#[test]
fn spec_not_an_object() {
    let case = Case::new();
    case.write("spec.json", "[1]\n");
    case.fails(
        &["build", "-o", "out/target", "--spec", "spec.json"],
        "spec is not a JSON object: the top level is a list",
    );
}

#[test]
fn spec_unknown_key() {
    let case = Case::new();
    case.write("spec.json", r#"{"volumeID": "X", "bogus": 1}"#);
    case.fails(
        &["build", "-o", "out/target", "--spec", "spec.json"],
        "unknown key \"bogus\" in the spec (known keys: isoName,",
    );
}

#[test]
fn spec_wrong_type() {
    let case = Case::new();
    case.write("spec.json", r#"{"volumeID": 5}"#);
    case.fails(
        &["build", "-o", "out/target", "--spec", "spec.json"],
        "spec key \"volumeID\": expected a string, found number 5",
    );
}

#[test]
fn spec_missing_volume_id() {
    let case = Case::new();
    case.write("spec.json", r#"{"contents": []}"#);
    case.fails(&["build", "-o", "out/target", "--spec", "spec.json"], "spec key \"volumeID\" is required");
}

#[test]
fn spec_invalid_value() {
    let case = Case::new();
    case.write("spec.json", r#"{"volumeID": "X", "squashfsCompression": "bogus"}"#);
    case.fails(
        &["build", "-o", "out/target", "--spec", "spec.json"],
        "spec key \"squashfsCompression\": unknown compression \"bogus\"",
    );
}

#[test]
fn spec_iso_name_not_a_file_name() {
    let case = Case::new();
    case.write("spec.json", r#"{"volumeID": "X", "isoName": "a/b"}"#);
    case.fails(
        &["build", "--out-dir", "out/result", "--spec", "spec.json"],
        "spec key \"isoName\": \"a/b\" is not a file name",
    );
}

#[test]
fn spec_file_missing() {
    Case::new().fails(
        &["build", "-o", "out/target", "--spec", "missing.json"],
        "spec file missing.json: No such file or directory (os error 2)",
    );
}

// ---- Outputs ----

#[test]
fn output_directory_missing() {
    assert!(!Path::new("/nonexistent").exists(), "this test needs /nonexistent not to exist");
    Case::new().fails(
        &["build", "-o", "/nonexistent/dir/x.iso", "--volume-id", "X", "--graft", "/=tree"],
        "cannot create the output file /nonexistent/dir/x.iso: No such file or directory (os error 2)",
    );
    assert!(!Path::new("/nonexistent").exists());
}

#[test]
fn out_dir_not_empty() {
    let case = Case::new();
    case.write("out/result/keep.txt", "not ours\n");
    case.fails(
        &["build", "--out-dir", "out/result", "--volume-id", "X", "--graft", "/=tree"],
        "exists and is not empty",
    );
}

// ---- Sources ----

#[test]
fn graft_source_missing() {
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", "X", "--graft", "/=missing"],
        "cannot read missing: No such file or directory (os error 2)",
    );
}

#[test]
fn graft_source_below_a_file() {
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", "X", "--graft", "/=paths.txt/x"],
        "cannot read paths.txt/x: Not a directory (os error 20)",
    );
}

#[test]
fn graft_source_name_too_long() {
    let source = format!("/x=tree/{}", "n".repeat(300));
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", "X", "--graft", &source],
        "File name too long (os error 36)",
    );
}

#[test]
fn target_with_dot_dot() {
    Case::new().fails(
        &["build", "-o", "out/target", "--volume-id", "X", "--graft", "/../x=tree"],
        "target \"/../x\" escapes the image root ('..' is not allowed)",
    );
}

#[test]
fn duplicate_target() {
    Case::new().fails(
        &build(&["--graft", "/boot/readme.txt=paths.txt"]),
        "duplicate target \"/boot/readme.txt\": two sources map to the same path in the image",
    );
}

#[test]
fn target_below_a_file() {
    Case::new().fails(
        &build(&["--graft", "/boot/readme.txt/x=paths.txt"]),
        "cannot place \"/boot/readme.txt/x\": \"/boot/readme.txt\" is not a directory",
    );
}

#[test]
fn graft_character_device() {
    Case::new().fails(
        &build(&["--graft", "/null=/dev/null"]),
        "/dev/null is a character device; only regular files, directories and symlinks can go into an image",
    );
}

#[test]
fn graft_fifo_in_directory() {
    let case = Case::new();
    case.fifo("fifodir/p");
    case.fails(&build(&["--graft", "/f=fifodir"]), "fifodir/p is a fifo; only regular files");
}

#[test]
fn graft_socket() {
    let case = Case::new();
    let _listener = std::os::unix::net::UnixListener::bind(case.path("sock")).unwrap();
    case.fails(&build(&["--graft", "/s=sock"]), "sock is a socket; only regular files");
}

#[test]
fn efi_dir_missing() {
    Case::new()
        .fails(&build(&["--efi-dir", "nope"]), "cannot read nope: No such file or directory (os error 2)");
}

#[test]
fn efi_dir_dangling_symlink() {
    let case = Case::new();
    symlink("nowhere", case.path("dangling")).unwrap();
    case.fails(
        &build(&["--efi-dir", "dangling"]),
        "EFI image from dangling: the root of a FAT image must be a directory",
    );
}

#[test]
fn efi_dir_symlink_inside() {
    let case = Case::new();
    symlink("BOOT", case.path("efi/EFI/link")).unwrap();
    case.fails(
        &build(&["--efi-dir", "efi"]),
        "/EFI/link: is a symbolic link; FAT cannot store symbolic links",
    );
}

#[test]
fn efi_dir_names_differ_only_in_case() {
    let case = Case::new();
    case.write("efi/A", "");
    case.write("efi/a", "");
    case.fails(
        &build(&["--efi-dir", "efi"]),
        "/A and /a differ only in case; FAT names are case-insensitive",
    );
}

#[test]
fn fat_dir_missing() {
    Case::new().fails(
        &["fat", "--dir", "nope", "-o", "out/target"],
        "reading nope: cannot read nope: No such file or directory",
    );
}

#[test]
fn fat_dir_fifo() {
    let case = Case::new();
    case.fifo("efi/p");
    case.fails(&["fat", "--dir", "efi", "-o", "out/target"], "efi/p is a fifo; only regular files");
}

// ---- Closures ----

#[test]
fn closure_missing() {
    Case::new().fails(
        &squashfs(&["--closure", "nope.txt"]),
        "cannot read nope.txt: No such file or directory (os error 2)",
    );
}

#[test]
fn closure_dir_not_closure_info() {
    let case = Case::new();
    support::mkdir_p(&case.path("info"));
    case.fails(
        &squashfs(&["--closure", "info"]),
        "info: not a closureInfo directory: it has no file store-paths",
    );
}

#[test]
fn closure_empty_file() {
    let case = Case::new();
    case.write("empty.txt", "");
    case.fails(
        &build(&["--closure", "empty.txt"]),
        "empty.txt: the closure is empty: the file lists no store paths",
    );
}

#[test]
fn closure_blank_lines_only() {
    let case = Case::new();
    case.write("graph", "\n\n\r\n");
    case.fails(
        &squashfs(&["--closure", "graph"]),
        "graph: the closure is empty: the file lists no store paths",
    );
}

#[test]
fn closure_info_empty_store_paths() {
    let case = Case::new();
    case.write("info/store-paths", "");
    case.write("info/registration", "");
    case.fails(
        &squashfs(&["--closure", "info"]),
        "info/store-paths: the closure is empty: the file lists no store paths",
    );
}

fn registration(line_end: &str) -> String {
    [STORE_PATH, NAR_HASH, "11", "", "0", ""].join(line_end)
}

#[test]
fn registration_crlf() {
    let case = Case::new();
    case.write("reg", registration("\r\n"));
    case.fails(
        &squashfs(&["--closure", "paths.txt", "--registration", "reg"]),
        "reg:1: the registration has CRLF line ends; it is copied into the image as nix-path-registration",
    );
}

#[test]
fn closure_info_registration_crlf() {
    let case = Case::new();
    case.write("info/store-paths", format!("{STORE_PATH}\n"));
    case.write("info/registration", registration("\r\n"));
    case.fails(&squashfs(&["--closure", "info"]), "info/registration:1: the registration has CRLF line ends");
}

/// A CRLF list builds exactly what the LF list builds (not a row: CRLF lists are accepted).
#[test]
fn closure_crlf_list_builds_like_lf() {
    let case = Case::new();
    case.write("crlf.txt", format!("{STORE_PATH}\r\n\r\n"));
    for (list, out) in [("paths.txt", "out/lf.sq"), ("crlf.txt", "out/crlf.sq")] {
        run(Command::new(isoforge_bin()).current_dir(case.root()).env_remove("SOURCE_DATE_EPOCH").args([
            "squashfs",
            "-o",
            out,
            "--store-root",
            "root",
            "--closure",
            list,
        ]));
    }
    assert_eq!(sha256_file(&case.path("out/lf.sq")), sha256_file(&case.path("out/crlf.sq")));
}

#[test]
fn closure_path_missing_under_store_root() {
    Case::new().fails(
        &["squashfs", "-o", "out/target", "--closure", "paths.txt", "--store-root", "tree"],
        "paths.txt:1: /nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello is not on the host (looked for \
         tree/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello): No such file or directory (os error 2)",
    );
}

#[test]
fn closure_relative_path() {
    let case = Case::new();
    case.write("list", "nix/store/x\n");
    case.fails(
        &squashfs(&["--closure", "list"]),
        "list:1: \"nix/store/x\" is a relative path; store paths are absolute",
    );
}

#[test]
fn closure_path_outside_store() {
    let case = Case::new();
    case.write("list", "/tmp/x\n");
    case.fails(&squashfs(&["--closure", "list"]), "list:1: /tmp/x is not in the store /nix/store");
}

#[test]
fn closure_path_inside_store_path() {
    let case = Case::new();
    case.write("list", format!("{STORE_PATH}/f\n"));
    case.fails(
        &squashfs(&["--closure", "list"]),
        "is a path inside the store path /nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello, not a store path",
    );
}

#[test]
fn closure_invalid_store_path_name() {
    let case = Case::new();
    case.write("list", "/nix/store/foo\n");
    case.fails(&squashfs(&["--closure", "list"]), "list:1: invalid store path name \"foo\"");
}

#[test]
fn closure_line_not_utf8() {
    let case = Case::new();
    case.write("list", b"/nix/store/\xff\n");
    case.fails(&squashfs(&["--closure", "list"]), "list:1: the line is not UTF-8 text");
}

#[test]
fn closure_graph_bad_count() {
    let case = Case::new();
    case.write("graph", format!("{STORE_PATH}\n\nx\n"));
    case.fails(
        &squashfs(&["--closure", "graph"]),
        "graph:3: expected a reference count (a decimal number), found \"x\"",
    );
}

#[test]
fn closure_graph_reference_not_in_closure() {
    let case = Case::new();
    case.write("graph", format!("{STORE_PATH}\n\n1\n/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-other\n"));
    case.fails(
        &squashfs(&["--closure", "graph"]),
        "graph:4: reference /nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-other of /nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello is not in the closure",
    );
}

#[test]
fn registration_missing() {
    Case::new().fails(
        &squashfs(&["--closure", "paths.txt", "--registration", "nope"]),
        "cannot read nope: No such file or directory (os error 2)",
    );
}

#[test]
fn registration_of_other_paths() {
    let case = Case::new();
    let other = "/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-other";
    case.write("reg", [other, NAR_HASH, "11", "", "0", ""].join("\n"));
    case.fails(
        &squashfs(&["--closure", "paths.txt", "--registration", "reg"]),
        "paths.txt:1: /nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello is in the closure but not in the registration",
    );
}

#[test]
fn store_path_fifo() {
    let case = Case::new();
    case.fifo(&format!("root{STORE_PATH}/p"));
    case.fails(
        &squashfs(&["--closure", "paths.txt"]),
        "root/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/p is a fifo; only regular files, directories and symlinks can go into a squashfs image",
    );
}

#[test]
fn store_path_fifo_with_registration() {
    let case = Case::new();
    case.fifo(&format!("root{STORE_PATH}/p"));
    case.write("reg", registration("\n"));
    case.fails(
        &squashfs(&["--closure", "paths.txt", "--registration", "reg"]),
        "root/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/p is a fifo; only regular files, directories and symlinks can go into a squashfs image",
    );
}

#[test]
fn keep_metadata_mtime_out_of_range() {
    let case = Case::new();
    let f = case.path(&format!("root{STORE_PATH}/f"));
    let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
    fs::File::options().write(true).open(&f).unwrap().set_modified(before_1970).unwrap();
    case.fails(
        &squashfs(&["--closure", "paths.txt", "--keep-metadata"]),
        "root/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/f: modification time -5 is outside what squashfs inodes store",
    );
    // Without --keep-metadata the host time is replaced by Nix's canonical 1 and does not matter.
    run(Command::new(isoforge_bin()).current_dir(case.root()).env_remove("SOURCE_DATE_EPOCH").args([
        "squashfs",
        "-o",
        "out/canonical.sq",
        "--store-root",
        "root",
        "--closure",
        "paths.txt",
    ]));
}

// ---- --threads 0 ----

/// `--threads 0` means all available cores in every command that takes it, `--help` says
/// so, and the bytes are those of `--threads 1` (not a row: 0 is accepted).
#[test]
fn threads_zero_means_all_cores() {
    let case = Case::new();
    let isoforge = |args: &[&str]| {
        run(Command::new(isoforge_bin()).current_dir(case.root()).env_remove("SOURCE_DATE_EPOCH").args(args))
    };
    for cmd in ["build", "squashfs"] {
        let help = String::from_utf8_lossy(&isoforge(&[cmd, "--help"]).stdout).into_owned();
        assert!(help.contains("0 or absent means all available cores"), "{cmd} --help:\n{help}");
    }
    case.write("spec.json", r#"{"volumeID": "X", "compressImage": true, "squashfsContents": "paths.txt"}"#);
    let mut hashes = Vec::new();
    for t in ["0", "1"] {
        let iso = format!("out/t{t}.iso");
        let sq = format!("out/t{t}.sq");
        let dir = format!("out/t{t}");
        let store = ["--closure", "paths.txt", "--store-root", "root", "--threads", t];
        isoforge(&[&build(&[])[..2], &[iso.as_str()], &build(&[])[3..], &store].concat());
        isoforge(&[&["squashfs", "-o", sq.as_str()][..], &store].concat());
        isoforge(&[
            "build",
            "--spec",
            "spec.json",
            "--out-dir",
            &dir,
            "--store-root",
            "root",
            "--threads",
            t,
        ]);
        hashes.push([iso, sq, format!("{dir}/iso/cd.iso.zst")].map(|p| sha256_file(&case.path(&p))));
    }
    assert_eq!(hashes[0], hashes[1], "--threads 0 and --threads 1 differ");
}

// ---- Netboot ----

/// A file that passes the bzImage check (`HdrS` at 0x202) and nothing more.
fn fake_bzimage(case: &Case) {
    let mut k = vec![0u8; 1024];
    k[0x202..0x206].copy_from_slice(b"HdrS");
    case.write("kernel.img", k);
}

/// `netboot --out-dir out/nb --store-root root --closure paths.txt --init /init` followed by
/// `extra`.
fn netboot(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec![
        "netboot",
        "--out-dir",
        "out/nb",
        "--store-root",
        "root",
        "--closure",
        "paths.txt",
        "--init",
        "/init",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn netboot_kernel_not_bzimage() {
    let case = Case::new();
    case.write("initrd.img", "070701");
    case.fails(
        &netboot(&["--kernel", "tree/boot/loader.bin", "--initrd", "initrd.img"]),
        "kernel tree/boot/loader.bin: not a bzImage (no \"HdrS\" at byte 0x202, found 90909090)",
    );
}

#[test]
fn netboot_kernel_missing() {
    let case = Case::new();
    case.write("initrd.img", "070701");
    case.fails(
        &netboot(&["--kernel", "nope", "--initrd", "initrd.img"]),
        "cannot read the kernel nope: No such file or directory (os error 2)",
    );
}

#[test]
fn netboot_initrd_not_cpio() {
    let case = Case::new();
    fake_bzimage(&case);
    case.fails(
        &netboot(&["--kernel", "kernel.img", "--initrd", "tree/boot/readme.txt"]),
        "initrd tree/boot/readme.txt: not a cpio archive nor a known compressed one (starts 68690a;",
    );
}

#[test]
fn netboot_out_dir_not_empty() {
    let case = Case::new();
    fake_bzimage(&case);
    case.write("initrd.img", "070701");
    let mut args = netboot(&["--kernel", "kernel.img", "--initrd", "initrd.img"]);
    args[2] = "out";
    case.fails(&args, "/out exists and is not empty");
}

#[test]
fn netboot_initrd_compression_unknown() {
    let case = Case::new();
    fake_bzimage(&case);
    case.write("initrd.img", "070701");
    case.usage_error(
        &netboot(&["--kernel", "kernel.img", "--initrd", "initrd.img", "--initrd-compression", "lz4"]),
        "\"lz4\" is not zstd[:LEVEL], gzip[:LEVEL], xz or none",
    );
}

// ---- The table ----

/// `source` with string continuations (`\` at the end of a line and the next line's leading
/// white space) and `\"` resolved, so that a message excerpt reads as it does in the table.
fn literal_text(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(i) = rest.find("\\\n") {
        out.push_str(&rest[..i]);
        rest = rest[i + 2..].trim_start();
    }
    out.push_str(rest);
    out.replace("\\\"", "\"")
}

/// Every row of `docs/errors.md` whose test is `errors::NAME` names a test of this file, and
/// its message excerpt is the one that test checks.
#[test]
fn table_names_real_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let table = fs::read_to_string(root.join("docs/errors.md")).unwrap();
    let source = fs::read_to_string(root.join("tests/errors.rs")).unwrap();
    let literals = literal_text(&source);
    let mut rows = 0;
    for line in table.lines().filter(|l| l.starts_with('|') && l.contains("`errors::")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        assert_eq!(cells.len(), 4, "docs/errors.md row without 4 cells: {line}");
        let name = cells[3].trim_end_matches(" |").trim_matches('`').trim_start_matches("errors::");
        assert!(
            source.contains(&format!("fn {name}()")),
            "docs/errors.md names errors::{name}, which is not a test"
        );
        let excerpt = cells[2].trim().trim_matches('`').replace("\\|", "|");
        assert!(
            literals.contains(&excerpt),
            "errors::{name}: the table's excerpt {excerpt:?} is not what the test checks"
        );
        assert_eq!(cells[1].trim(), "2", "errors::{name}: status");
        rows += 1;
    }
    assert!(rows >= 60, "only {rows} rows name errors:: tests");
}
