//! Golden outputs of `isoforge inspect`, `inspect --json`, `inspect --json --tree` and `verify`
//! (issue 15): the read side may be rebuilt underneath, what it prints may not move unless on
//! purpose. Two images are built here (never committed):
//!
//! - `isoforge-nixos`: `isoforge build` of the repository's fixtures (the demo closure of
//!   `fixtures/demo` in `/nix-store.squashfs`, the demo tree, Debian's isolinux, a FAT EFI image
//!   of a generated loader) with the `nixos` layout at a fixed epoch;
//! - `xorriso-nixpkgs`: `xorriso` with the flags of nixpkgs' make-iso9660-image.sh
//!   (`support::xorriso_nixpkgs_image`, dated by `SOURCE_DATE_EPOCH` and `-volume_date`) of the
//!   same tree; built twice to prove it reproducible.
//!
//! Each output is compared with `fixtures/golden/<image>.<output>`; `ISOFORGE_BLESS=1 cargo test
//! -p isoforge-cli --test golden` rewrites them (`fixtures/golden/README.md`). The goldens depend
//! on Debian 12's isolinux 6.04 and xorriso 1.5.4: another version of either changes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{isoforge_bin, mkdir_p, run, sha256_file, tool, write_file, ISOHDPFX_BIN, ISOLINUX_BIN};

/// The epoch of the isoforge image (2023-11-14T22:13:20Z).
const EPOCH: &str = "1700000000";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn golden_dir() -> PathBuf {
    repo().join("fixtures/golden")
}

fn isoforge() -> Command {
    let mut c = Command::new(isoforge_bin());
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// The tree both images hold: the demo tree, isolinux with its config, a GRUB config.
fn tree(dir: &Path) -> PathBuf {
    let demo = repo().join("fixtures/demo");
    let tree = dir.join("tree");
    mkdir_p(&tree);
    run(Command::new("cp").arg("-a").arg(demo.join("tree/.")).arg(&tree));
    mkdir_p(&tree.join("isolinux"));
    fs::copy(ISOLINUX_BIN, tree.join("isolinux/isolinux.bin")).unwrap();
    fs::copy(demo.join("boot/isolinux.cfg"), tree.join("isolinux/isolinux.cfg")).unwrap();
    mkdir_p(&tree.join("boot/grub"));
    fs::copy(demo.join("boot/grub.cfg"), tree.join("boot/grub/grub.cfg")).unwrap();
    tree
}

/// The EFI directory: a generated 300,000-byte `EFI/BOOT/BOOTX64.EFI` (not a real program).
fn efi_dir(dir: &Path) -> PathBuf {
    let efi = dir.join("efi");
    let loader: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    write_file(&efi.join("EFI/BOOT/BOOTX64.EFI"), loader);
    efi
}

fn build_isoforge(dir: &Path) -> PathBuf {
    let demo = repo().join("fixtures/demo");
    let tree = tree(dir);
    let efi = efi_dir(dir);
    let iso = dir.join("isoforge-nixos.iso");
    run(isoforge()
        .args(["build", "-o"])
        .arg(&iso)
        .args(["--volume-id", "ISOFORGE-GOLDEN", "--epoch", EPOCH, "--layout", "nixos"])
        .arg("--graft")
        .arg(format!("/={}", tree.display()))
        .args(["--bios-boot", "isolinux/isolinux.bin", "--boot-catalog", "isolinux/boot.cat"])
        .args(["--isohybrid-mbr", ISOHDPFX_BIN, "--efi-dir"])
        .arg(&efi)
        .arg("--closure")
        .arg(demo.join("closure-info"))
        .arg("--store-root")
        .arg(demo.join("store"))
        .args(["--compression", "xz", "--threads", "2"]));
    iso
}

fn build_xorriso(dir: &Path, name: &str) -> PathBuf {
    let sub = dir.join(name);
    let tree = tree(&sub);
    let efi = efi_dir(&sub);
    run(isoforge()
        .args(["fat", "--dir"])
        .arg(&efi)
        .arg("-o")
        .arg(tree.join("boot/efi.img"))
        .args(["--epoch", "315532800"]));
    let iso = sub.join("xorriso-nixpkgs.iso");
    support::xorriso_nixpkgs_image(&tree, &iso, "XORRISO-GOLDEN");
    iso
}

/// Runs `isoforge ARGS IMAGE` in the image's directory (so that no path of this machine is in
/// the output) and returns stdout; `verify` may exit 1 (findings), anything else fails.
fn output(args: &[&str], iso: &Path) -> String {
    let out = isoforge()
        .args(args)
        .arg(iso.file_name().unwrap())
        .current_dir(iso.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "isoforge {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compares every output of `iso` with its golden file (or rewrites them with `ISOFORGE_BLESS`).
fn check(name: &str, iso: &Path) {
    let bless = std::env::var_os("ISOFORGE_BLESS").is_some_and(|v| v != "0" && !v.is_empty());
    let outputs: [(&str, &[&str]); 4] = [
        ("inspect.txt", &["inspect"]),
        ("inspect.json", &["inspect", "--json"]),
        ("inspect-tree.json", &["inspect", "--json", "--tree"]),
        ("verify.txt", &["verify"]),
    ];
    let mut differ = Vec::new();
    for (suffix, args) in outputs {
        let got = output(args, iso);
        let path = golden_dir().join(format!("{name}.{suffix}"));
        if bless {
            fs::write(&path, &got).unwrap();
            continue;
        }
        let want = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ISOFORGE_BLESS=1 writes it)", path.display()));
        if got != want {
            let line = got.lines().zip(want.lines()).position(|(a, b)| a != b);
            eprintln!(
                "{}: differs from `isoforge {}` at line {}",
                path.display(),
                args.join(" "),
                line.map_or_else(|| "(length)".to_string(), |l| (l + 1).to_string())
            );
            differ.push(path);
        }
    }
    assert!(
        differ.is_empty(),
        "outputs differ from {differ:?}; if the change is wanted: ISOFORGE_BLESS=1 cargo test -p isoforge-cli --test golden"
    );
}

#[test]
fn isoforge_nixos_image() {
    if !support::isolinux() {
        return;
    }
    let dir = support::tempdir();
    let iso = build_isoforge(dir.path());
    check("isoforge-nixos", &iso);
}

#[test]
fn xorriso_nixpkgs_image() {
    if !tool("xorriso") || !support::isolinux() {
        return;
    }
    let dir = support::tempdir();
    let a = build_xorriso(dir.path(), "a");
    let b = build_xorriso(dir.path(), "b");
    assert_eq!(sha256_file(&a), sha256_file(&b), "two xorriso runs of the same inputs differ");
    check("xorriso-nixpkgs", &a);
}
