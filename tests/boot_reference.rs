//! Proves the boot harness (tests/support/{qemu,bootkit}.rs) on a reference image that xorriso
//! builds with the flags of nixpkgs' `nixos/lib/make-iso9660-image.sh`: if these four boots pass,
//! a failing boot of an isoforge image is isoforge's fault, not the harness's.
//!
//! The image holds the boot kit (isolinux for BIOS, GRUB `BOOTX64.EFI` inside an El Torito EFI
//! FAT image for UEFI), a check file, and a small zstd squashfs at `/nix-store.squashfs` like a
//! NixOS ISO's store. Its volume id mixes case, `-` and `.`. Each test boots it one way and
//! asserts the init's verdict (every check passed) and the device the image was found on.
//! A last test proves that a failing check is reported as a failure, not missed.
//!
//! Needs the boot assets (`bash .ci/boot-assets.sh target/boot-assets`) and Debian's xorriso,
//! squashfs-tools, dosfstools, mtools, isolinux, syslinux-common, grub-common,
//! grub-efi-amd64-bin, qemu-system-x86 and ovmf.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::bootkit::{self, BootKit, BootSpec};
use support::qemu::{self, Firmware, Media};
use support::{mkdir_p, run, sha256_bytes, sha256_file, tool, write_file};

/// Mixed case, `-` and `.`; at most 16 characters (see `bootkit::label_ok`).
const LABEL: &str = "IsoForge-Ref.1a";

struct Reference {
    image: PathBuf,
    spec: BootSpec,
}

/// Builds `out` from `tree` with xorriso and nixpkgs' flags (El Torito BIOS + EFI, isohybrid
/// MBR + GPT). `boot/efi.img` must be in the tree.
fn xorriso_image(kit: &BootKit, tree: &Path, out: &Path) {
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-iso-level", "3", "-full-iso9660-filenames"])
        .args(["-joliet", "-joliet-long", "-rational-rock"])
        .args(["-volid", &kit.label, "-appid", "nixos", "-publisher", "nixos"])
        .args(["-eltorito-boot", "isolinux/isolinux.bin", "-eltorito-catalog", "isolinux/boot.cat"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args(["-eltorito-alt-boot", "-e", "boot/efi.img", "-no-emul-boot", "-isohybrid-gpt-basdat"])
        .arg("-isohybrid-mbr")
        .arg(&kit.isohdpfx)
        .args(["-quiet", "-output"])
        .arg(out)
        .arg(tree));
}

/// Deterministic filler bytes (xorshift), so the squashfs spans several blocks.
fn filler(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1505_2024;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn build_reference() -> Option<Reference> {
    if !tool("xorriso") || !tool("mksquashfs") {
        return None;
    }
    let kit = bootkit::bootkit(LABEL)?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("boot_reference");
    let _ = std::fs::remove_dir_all(&dir);
    mkdir_p(&dir);

    // The store: a small text file checked by name, a 300 KiB file checked through the sums list.
    let store = dir.join("store");
    let greeting = b"hello from the reference squashfs\n";
    let blob = filler(300 * 1024);
    write_file(&store.join("nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/share/Greeting.txt"), greeting);
    write_file(&store.join("nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-data/blob.bin"), &blob);

    let tree = dir.join("tree");
    mkdir_p(&tree);
    run(Command::new("mksquashfs").arg(&store).arg(tree.join("nix-store.squashfs")).args([
        "-noappend",
        "-quiet",
        "-no-progress",
        "-comp",
        "zstd",
        "-all-root",
    ]));
    let sums = format!(
        "{}  sq/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-data/blob.bin\n{}  iso/isoforge/Boot-Check.v1.txt\n",
        sha256_bytes(&blob),
        sha256_bytes(bootkit::check_file_content(LABEL).as_bytes())
    );
    write_file(&tree.join("isoforge/SHA256SUMS"), sums.as_bytes());

    let spec = BootSpec::new(LABEL)
        .check("/boot/bzImage", Some(&sha256_file(&kit.kernel)))
        .check("/isoforge/SHA256SUMS", Some(&sha256_bytes(sums.as_bytes())))
        .squashfs("/nix-store.squashfs")
        .sqcheck(
            "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/share/Greeting.txt",
            Some(&sha256_bytes(greeting)),
        )
        .sums("/isoforge/SHA256SUMS");
    bootkit::write_iso_tree(&kit, &spec, &tree);
    if !bootkit::efi_img(&kit, &tree.join("boot/efi.img")) {
        return None;
    }
    let image = dir.join("reference.iso");
    xorriso_image(&kit, &tree, &image);
    Some(Reference { image, spec })
}

fn reference() -> Option<&'static Reference> {
    static REFERENCE: OnceLock<Option<Reference>> = OnceLock::new();
    REFERENCE.get_or_init(build_reference).as_ref()
}

fn boot_reference(firmware: Firmware, media: Media) {
    let Some(reference) = reference() else { return };
    if !qemu::available(firmware) {
        return;
    }
    qemu::expect_boot(&reference.image, firmware, media, &reference.spec.marker());
}

#[test]
fn bios_cdrom() {
    boot_reference(Firmware::Bios, Media::Cdrom);
}

#[test]
fn bios_disk() {
    boot_reference(Firmware::Bios, Media::Disk);
}

#[test]
fn uefi_cdrom() {
    boot_reference(Firmware::Uefi, Media::Cdrom);
}

#[test]
fn uefi_disk() {
    boot_reference(Firmware::Uefi, Media::Disk);
}

/// A wrong sha256 on the command line must end the boot as a failure that names the file.
#[test]
fn failed_check_is_reported() {
    if !tool("xorriso") || !qemu::available(Firmware::Bios) {
        return;
    }
    let Some(kit) = bootkit::bootkit(LABEL) else { return };
    let zeros = "0".repeat(64);
    let spec = BootSpec::new(LABEL).check(bootkit::CHECK_FILE, Some(&zeros));
    let tree = bootkit::iso_tree(&kit, &spec);
    if !bootkit::efi_img(&kit, &tree.path().join("boot/efi.img")) {
        return;
    }
    let dir = support::tempdir();
    let image = dir.path().join("negative.iso");
    xorriso_image(&kit, tree.path(), &image);
    match qemu::boot(&image, Firmware::Bios, Media::Cdrom, &spec.marker(), qemu::BOOT_TIMEOUT) {
        Ok(log) => panic!("a boot with a wrong sha256 passed:\n{log}"),
        Err(e) => assert!(
            e.contains(&format!("ISOFORGE-BOOT-FAIL sha256 of {}", bootkit::CHECK_FILE)),
            "expected the init's sha256 failure, got:\n{e}"
        ),
    }
}
