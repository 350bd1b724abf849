//! Issue 15: `isoforge build` resolves its flags once. For each value: a flag given > the spec
//! file's key > the default, where "given" means typed, even with the default's value (an
//! explicit `--compression zstd:19` overrides a spec's zstd 3 although zstd 19 is the
//! default). Each case reads what it set straight from the image's bytes (the squashfs
//! superblock, the FAT boot sector) and, where it can, checks that the image is byte for byte
//! the one the equivalent spec alone gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{isoforge_bin, run, sha256_file, write_file};
use tempfile::TempDir;

/// The one store path of the fixture closure.
const STORE_PATH: &str = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello";

/// A fixture directory; commands run in it: `tree/readme.txt`, `efi/EFI/BOOT/BOOTX64.EFI`,
/// `root/nix/store/<hash>-hello/{f,g}` and `paths.txt` listing it.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture { dir: support::tempdir() };
        write_file(&f.path("tree/readme.txt"), "hi\n");
        write_file(&f.path("efi/EFI/BOOT/BOOTX64.EFI"), vec![0u8; 4096]);
        let text: String = (0..4000).map(|i| format!("line {i} of a compressible store file\n")).collect();
        write_file(&f.path(&format!("root{STORE_PATH}/f")), &text);
        write_file(&f.path(&format!("root{STORE_PATH}/g")), support::noise(15, 300_000));
        write_file(&f.path("paths.txt"), format!("{STORE_PATH}\n"));
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `spec.json` (a spec with `volumeID` "SPEC" and the tree, plus `extra` keys) and
    /// returns its name.
    fn spec(&self, name: &str, extra: &str) -> String {
        let file = format!("{name}.json");
        write_file(
            &self.path(&file),
            format!(r#"{{"volumeID": "SPEC", "contents": [{{"source": "tree", "target": "/"}}]{extra}}}"#),
        );
        file
    }

    /// Runs `isoforge build -o NAME.iso ARGS` in the fixture (no SOURCE_DATE_EPOCH, no cache)
    /// and returns the image's path.
    fn build(&self, name: &str, args: &[&str]) -> PathBuf {
        let out = format!("{name}.iso");
        run(Command::new(isoforge_bin())
            .current_dir(self.dir.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("ISOFORGE_CACHE")
            .args(["build", "-o", &out])
            .args(args));
        self.path(&out)
    }
}

/// The store squashfs's settings read from its superblock in the image: (compressor id,
/// block size, zstd level from the compressor options, 15 when they are absent).
fn squashfs_settings(image: &Path) -> (u16, u32, u32) {
    let bytes = std::fs::read(image).unwrap();
    let at = (0..bytes.len())
        .step_by(2048)
        .find(|&i| bytes[i..].starts_with(b"hsqs"))
        .unwrap_or_else(|| panic!("no squashfs in {}", image.display()));
    let sb = &bytes[at..at + 96];
    let u16_at = |o: usize| u16::from_le_bytes([sb[o], sb[o + 1]]);
    let block_size = u32::from_le_bytes(sb[12..16].try_into().unwrap());
    let compressor = u16_at(20);
    let flags = u16_at(24);
    // COMPRESSOR_OPTIONS: an uncompressed metadata block right after the superblock.
    let level = if compressor == 6 && flags & 0x0400 != 0 {
        u32::from_le_bytes(bytes[at + 98..at + 102].try_into().unwrap())
    } else {
        15
    };
    (compressor, block_size, level)
}

/// The volume serial of the FAT image in the ISO: the 4 bytes before its boot sector's
/// label, which the file system type follows.
fn fat_serial(image: &Path) -> u32 {
    let bytes = std::fs::read(image).unwrap();
    let needle = b"EFIBOOT    FAT";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("no FAT boot sector labelled EFIBOOT in {}", image.display()));
    u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap())
}

const ZSTD: u16 = 6;
const XZ: u16 = 4;
const STORE: [&str; 4] = ["--store-root", "root", "--epoch", "1700000000"];

#[test]
fn compression_flag_spec_default() {
    let f = Fixture::new();
    let zstd3 = f.spec(
        "zstd3",
        r#", "squashfsContents": "paths.txt", "squashfsCompression": "zstd -Xcompression-level 3""#,
    );
    let zstd19 = f.spec(
        "zstd19",
        r#", "squashfsContents": "paths.txt", "squashfsCompression": "zstd -Xcompression-level 19""#,
    );

    // No flag: the spec's value.
    let spec_only = f.build("spec-only", &[&["--spec", &zstd3][..], &STORE].concat());
    assert_eq!(squashfs_settings(&spec_only), (ZSTD, 1 << 20, 3));
    // An explicit flag equal to the default overrides the spec: the image is the one a spec
    // saying zstd 19 gives.
    let flag = f.build("flag", &[&["--spec", &zstd3, "--compression", "zstd:19"][..], &STORE].concat());
    assert_eq!(squashfs_settings(&flag), (ZSTD, 1 << 20, 19));
    let spec19 = f.build("spec19", &[&["--spec", &zstd19][..], &STORE].concat());
    assert_eq!(sha256_file(&flag), sha256_file(&spec19));
    assert_ne!(sha256_file(&flag), sha256_file(&spec_only));

    // Neither: the library's default without a spec (zstd 19), nixpkgs' (xz) with one.
    let neither = f.build(
        "neither",
        &[&["--volume-id", "SPEC", "--graft", "/=tree", "--closure", "paths.txt"][..], &STORE].concat(),
    );
    assert_eq!(squashfs_settings(&neither), (ZSTD, 1 << 20, 19));
    assert_eq!(sha256_file(&neither), sha256_file(&spec19), "flags alone = the same spec");
    let nixpkgs = f.spec("nixpkgs", r#", "squashfsContents": "paths.txt""#);
    let xz = f.build("xz", &[&["--spec", &nixpkgs][..], &STORE].concat());
    assert_eq!(squashfs_settings(&xz).0, XZ);

    // A closure from the flag with a spec that names a compression but no closure: the spec's
    // compression; with a spec that names neither: the library's default.
    let only_comp = f.spec("only-comp", r#", "squashfsCompression": "zstd -Xcompression-level 3""#);
    let from_flag =
        f.build("from-flag", &[&["--spec", &only_comp, "--closure", "paths.txt"][..], &STORE].concat());
    assert_eq!(sha256_file(&from_flag), sha256_file(&spec_only));
    let bare = f.spec("bare", "");
    let from_flag = f.build("bare", &[&["--spec", &bare, "--closure", "paths.txt"][..], &STORE].concat());
    assert_eq!(sha256_file(&from_flag), sha256_file(&spec19));
}

#[test]
fn block_size_flag_spec_default() {
    let f = Fixture::new();
    let small = f.spec(
        "small",
        r#", "squashfsContents": "paths.txt", "blockSize": 131072, "squashfsCompression": "zstd""#,
    );
    let plain = f.spec("plain", r#", "squashfsContents": "paths.txt", "squashfsCompression": "zstd""#);

    let spec_only = f.build("spec-only", &[&["--spec", &small][..], &STORE].concat());
    assert_eq!(squashfs_settings(&spec_only), (ZSTD, 128 << 10, 15));
    // `--block-size 1M` is the default, and overrides the spec's 128K.
    let flag = f.build("flag", &[&["--spec", &small, "--block-size", "1M"][..], &STORE].concat());
    assert_eq!(squashfs_settings(&flag), (ZSTD, 1 << 20, 15));
    let default = f.build("default", &[&["--spec", &plain][..], &STORE].concat());
    assert_eq!(squashfs_settings(&default), (ZSTD, 1 << 20, 15));
    assert_eq!(sha256_file(&flag), sha256_file(&default));
    // And a flag other than the default overrides a spec without the key.
    let other = f.build("other", &[&["--spec", &plain, "--block-size", "128K"][..], &STORE].concat());
    assert_eq!(sha256_file(&other), sha256_file(&spec_only));
}

#[test]
fn efi_serial_flag_spec_default() {
    let f = Fixture::new();
    let efi = r#", "efiBootable": true, "efiDir": "efi""#;
    let serial = f.spec("serial", &format!(r#"{efi}, "efiSerial": "dead-beef""#));
    let plain = f.spec("plain", efi);
    let epoch = ["--epoch", "1700000000"];

    let spec_only = f.build("spec-only", &[&["--spec", &serial][..], &epoch].concat());
    assert_eq!(fat_serial(&spec_only), 0xdead_beef);
    // `--efi-serial 12345678` is the default, and overrides the spec's.
    let flag = f.build("flag", &[&["--spec", &serial, "--efi-serial", "12345678"][..], &epoch].concat());
    assert_eq!(fat_serial(&flag), 0x1234_5678);
    let default = f.build("default", &[&["--spec", &plain][..], &epoch].concat());
    assert_eq!(fat_serial(&default), 0x1234_5678);
    assert_eq!(sha256_file(&flag), sha256_file(&default));
    // Flags alone: the default, or the flag.
    let flags = f.build(
        "flags",
        &["--volume-id", "SPEC", "--graft", "/=tree", "--efi-dir", "efi", "--epoch", "1700000000"],
    );
    assert_eq!(sha256_file(&flags), sha256_file(&default));
    let flags = f.build(
        "flags-serial",
        &[
            "--volume-id",
            "SPEC",
            "--graft",
            "/=tree",
            "--efi-dir",
            "efi",
            "--efi-serial",
            "0xdeadbeef",
            "--epoch",
            "1700000000",
        ],
    );
    assert_eq!(sha256_file(&flags), sha256_file(&spec_only));
}

/// `--boot-info-table` and `--no-boot-info-table`: the last one given wins.
#[test]
fn boot_info_table_last_wins() {
    let f = Fixture::new();
    write_file(&f.path("tree/boot/loader.bin"), vec![0x90u8; 4096]);
    let base =
        ["--volume-id", "V", "--graft", "/=tree", "--bios-boot", "boot/loader.bin", "--epoch", "1700000000"];
    let with = f.build("with", &base);
    let on = f.build("on", &[&base[..], &["--no-boot-info-table", "--boot-info-table"]].concat());
    let off = f.build("off", &[&base[..], &["--boot-info-table", "--no-boot-info-table"]].concat());
    let without = f.build("without", &[&base[..], &["--no-boot-info-table"]].concat());
    assert_eq!(sha256_file(&on), sha256_file(&with));
    assert_eq!(sha256_file(&off), sha256_file(&without));
    assert_ne!(sha256_file(&with), sha256_file(&without));
}

/// With a spec file, `-o` reports as it does without one: `--json` prints the report.
#[test]
fn spec_build_prints_the_json_report() {
    let f = Fixture::new();
    let spec = f.spec("s", "");
    let out = run(Command::new(isoforge_bin())
        .current_dir(f.dir.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "-o", "s.iso", "--spec", &spec, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sha256"].as_str(), Some(sha256_file(&f.path("s.iso")).as_str()));
}
