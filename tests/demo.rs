//! The README's first command, `bash fixtures/demo/build.sh`, so that it cannot rot: it runs
//! the script with the binary `cargo test` built (`ISOFORGE=`) exactly as a newcomer would (from
//! an empty directory, default output `demo.iso`), and checks the image it writes: the store
//! squashfs with the fixture closure and its registration, both El Torito entries with the
//! Debian boot loaders, the FAT image holding GRUB, a clean `isoforge verify`, the same bytes on
//! a second run; and that without the boot loaders the script says so and still builds the
//! store image. (Booting it in QEMU is a manual check: `fixtures/demo/README.md`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{isoforge_bin, run, run_ok_stdout, sha256_file, tempdir, tool, ISOHDPFX_BIN, ISOLINUX_BIN};

const SYSLINUX_BIOS: &str = "/usr/lib/syslinux/modules/bios";
const GRUB_CD_EFI: &str = "/usr/lib/grub/x86_64-efi/monolithic/gcdx64.efi";

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/demo").canonicalize().unwrap()
}

/// Runs the README's command in `cwd` (scratch files in `cwd` too), with `env` added.
fn run_demo(cwd: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(demo_dir().join("build.sh"))
        .current_dir(cwd)
        .env("ISOFORGE", isoforge_bin())
        .env("TMPDIR", cwd)
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// True when the Debian boot loaders the script uses are installed; else a skip note (a
/// failure under `CI=true`).
fn boot_loaders() -> bool {
    let mut files =
        vec![PathBuf::from(ISOLINUX_BIN), PathBuf::from(ISOHDPFX_BIN), PathBuf::from(GRUB_CD_EFI)];
    for m in ["ldlinux", "menu", "libutil", "libcom32", "poweroff", "reboot"] {
        files.push(Path::new(SYSLINUX_BIOS).join(format!("{m}.c32")));
    }
    support::files(&files)
}

/// The store paths of the fixture closure (closureInfo's `store-paths`).
fn store_paths() -> Vec<String> {
    let text = fs::read_to_string(demo_dir().join("closure-info/store-paths")).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Extracts `/nix-store.squashfs` of `iso` into `dir/x` with bsdtar + unsquashfs and returns
/// the squashfs file and the extracted root.
fn extract_store(iso: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let sq = dir.join("store.squashfs");
    fs::write(&sq, run(Command::new("bsdtar").arg("-xOf").arg(iso).arg("nix-store.squashfs")).stdout)
        .unwrap();
    let x = dir.join("x");
    run(Command::new("unsquashfs").args(["-q", "-n", "-d"]).arg(&x).arg(&sq));
    (sq, x)
}

/// Every file and symlink under `a` is in `b` with the same bytes or target, and the other way
/// round (directories by their entries).
fn same_tree(a: &Path, b: &Path) {
    let names = |d: &Path| {
        let mut v: Vec<_> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b), "entries of {} and {}", a.display(), b.display());
    for name in names(a) {
        let (pa, pb) = (a.join(&name), b.join(&name));
        let (ma, mb) = (fs::symlink_metadata(&pa).unwrap(), fs::symlink_metadata(&pb).unwrap());
        assert_eq!(ma.file_type(), mb.file_type(), "{}", pb.display());
        if ma.is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap(), "{}", pb.display());
        } else if ma.is_dir() {
            same_tree(&pa, &pb);
        } else {
            assert!(fs::read(&pa).unwrap() == fs::read(&pb).unwrap(), "{} differs", pb.display());
        }
    }
}

/// Checks the store squashfs of `iso`: the fixture closure, byte for byte, plus the fixture's
/// registration, xz-compressed (GRUB reads it).
fn check_store(iso: &Path, dir: &Path) {
    let (sq, x) = extract_store(iso, dir);
    let s = run_ok_stdout(Command::new("unsquashfs").arg("-s").arg(&sq));
    assert!(s.contains("Compression xz"), "{s}");
    let reg = fs::read(x.join("nix-path-registration")).unwrap();
    assert!(
        reg == fs::read(demo_dir().join("closure-info/registration")).unwrap(),
        "nix-path-registration is not the fixture's registration"
    );
    let paths = store_paths();
    assert_eq!(paths.len(), 4, "{paths:?}");
    let mut top: Vec<String> = fs::read_dir(&x)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "nix-path-registration")
        .collect();
    top.sort();
    let mut want: Vec<String> =
        paths.iter().map(|p| p.trim_start_matches("/nix/store/").to_owned()).collect();
    want.sort();
    assert_eq!(top, want);
    for name in &want {
        same_tree(&demo_dir().join("store/nix/store").join(name), &x.join(name));
    }
}

/// The README's first command builds a live image of the fixture closure that boots with the
/// Debian loaders, prints `inspect` and a clean `verify`, and writes the same bytes twice.
#[test]
fn readme_demo_builds_a_bootable_live_image() {
    if !boot_loaders() || !tool("bsdtar") || !tool("unsquashfs") || !tool("xorriso") || !tool("mcopy") {
        return;
    }
    let dir = tempdir();
    let out = run_demo(dir.path(), &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        !stderr.contains("isoforge demo:"),
        "the script complained with every loader installed:\n{stderr}"
    );
    let iso = dir.path().join("demo.iso");
    assert!(iso.is_file(), "no demo.iso in the current directory:\n{stdout}");
    // What the script printed: the build summary, inspect and verify.
    for want in [
        "demo.iso: ",
        "== isoforge inspect demo.iso",
        "PVD: volume id \"ISOFORGE-DEMO\"",
        "system area: layout nixos",
        "ElTorito.section[0].entry[0]: platform 0x00",
        "/isolinux/isolinux.bin",
        "ElTorito.section[1].entry[0]: platform 0xef",
        "/boot/efi.img",
        "boot-info-table: present",
        "embedded /nix-store.squashfs",
        "squashfs 4.0: xz",
        "== isoforge verify demo.iso",
        "demo.iso: 0 errors, 0 warnings",
    ] {
        assert!(stdout.contains(want), "{want:?} not in the script's output:\n{stdout}");
    }
    let verify = run_ok_stdout(Command::new(isoforge_bin()).arg("verify").arg(&iso));
    assert!(verify.contains("0 errors, 0 warnings"), "{verify}");

    // The El Torito entries as xorriso reads them.
    let report = run_ok_stdout(
        Command::new("xorriso").args(["-indev"]).arg(&iso).args(["-report_el_torito", "plain"]),
    );
    let lines: Vec<&str> = report.lines().collect();
    let has = |prefix: &str, words: &[&str]| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && words.iter().all(|w| l.split_whitespace().any(|x| x == *w)))
    };
    assert!(has("El Torito cat path", &["/isolinux/boot.cat"]), "{report}");
    assert!(has("El Torito boot img", &["1", "BIOS", "none", "4"]), "{report}");
    assert!(has("El Torito boot img", &["2", "UEFI", "none"]), "{report}");
    assert!(has("El Torito img path", &["1", "/isolinux/isolinux.bin"]), "{report}");
    assert!(has("El Torito img path", &["2", "/boot/efi.img"]), "{report}");

    // The files the loaders need, and GRUB inside the FAT image.
    let listing = run_ok_stdout(Command::new("bsdtar").arg("-tf").arg(&iso));
    for f in [
        "nix-store.squashfs",
        "isolinux/isolinux.cfg",
        "isolinux/ldlinux.c32",
        "isolinux/menu.c32",
        "isolinux/libutil.c32",
        "isolinux/libcom32.c32",
        "isolinux/poweroff.c32",
        "isolinux/reboot.c32",
        "boot/grub/grub.cfg",
        ".disk/info",
    ] {
        assert!(listing.lines().any(|l| l == f), "{f} not in the image:\n{listing}");
    }
    let efi_img = dir.path().join("efi.img");
    fs::write(&efi_img, run(Command::new("bsdtar").arg("-xOf").arg(&iso).arg("boot/efi.img")).stdout)
        .unwrap();
    let bootx64 = dir.path().join("BOOTX64.EFI");
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&efi_img)
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .arg(&bootx64));
    assert_eq!(sha256_file(&bootx64), sha256_file(Path::new(GRUB_CD_EFI)), "BOOTX64.EFI is not gcdx64.efi");

    check_store(&iso, dir.path());

    // The same bytes on a second run, and no scratch directory left behind.
    let first = sha256_file(&iso);
    let again = tempdir();
    run_demo(again.path(), &[]);
    assert_eq!(sha256_file(&again.path().join("demo.iso")), first, "two runs of the demo differ");
    let left: Vec<_> = fs::read_dir(again.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["demo.iso"], "the script left files behind");
}

/// Without the Debian boot loaders the script says which packages to install and still builds
/// (and inspects and verifies) the store image, without El Torito entries.
#[test]
fn readme_demo_without_boot_loaders_says_so() {
    if !tool("bsdtar") || !tool("unsquashfs") {
        return;
    }
    let dir = tempdir();
    let none = dir.path().join("not-installed");
    let out = run_demo(
        dir.path(),
        &[
            ("ISOFORGE_DEMO_ISOLINUX_DIR", &none),
            ("ISOFORGE_DEMO_SYSLINUX_DIR", &none),
            ("ISOFORGE_DEMO_GRUB_EFI", &none.join("gcdx64.efi")),
        ],
    );
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for want in [
        "isoforge demo: no BIOS boot:",
        "(apt-get install isolinux syslinux-common)",
        "isoforge demo: no UEFI boot:",
        "(apt-get install grub-efi-amd64-bin)",
    ] {
        assert!(stderr.contains(want), "{want:?} not on stderr:\n{stderr}");
    }
    assert!(!stdout.contains("ElTorito.section"), "{stdout}");
    assert!(stdout.contains("demo.iso: 0 errors, 0 warnings"), "{stdout}");
    check_store(&dir.path().join("demo.iso"), dir.path());
}
