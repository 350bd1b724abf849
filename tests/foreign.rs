//! `isoforge inspect` and `verify` on images isoforge did not write (issue 15): `grub-mkrescue`
//! images, xorriso images with GRUB's MBR (`--grub2-mbr --grub2-boot-info`), the
//! `--protective-msdos-label`, `-partition_offset 16` and `-append_partition` layouts Ubuntu and
//! Debian ship, a floppy-emulation image with GRUB's MBR (as memtest86+'s ISOs are), a hard disk
//! emulation image, and genisoimage images made hybrid by syslinux's `isohybrid` (with and
//! without `--uefi`).
//!
//! - `verify` finds no error and no warning in any of them (GRUB's MBR boot info is a note);
//! - `inspect --json` agrees with `xorriso -report_system_area plain` and `-report_el_torito
//!   plain` field by field: the summary words (without `cyl-align-…`, which isoforge does not
//!   compute), the image size, the partition offset, every MBR partition, every GPT entry and
//!   the entry array's "separated"/"overlapping", every APM entry, every El Torito entry with its
//!   emulation, and the `boot-info-table` / `grub2-boot-info` options;
//! - none of them is called an isoforge layout (except the BIOS-only isohybrid one, which is the
//!   `nixos` layout's structure exactly).
//!
//! No golden text: grub-mkrescue dates its FAT image and files by the clock; the comparison is
//! field by field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{mkdir_p, run, run_ok_stdout, tool, write_file};

const GRUB_PC: &str = "/usr/lib/grub/i386-pc";
const GRUB_EFI: &str = "/usr/lib/grub/x86_64-efi";
const BOOT_HYBRID: &str = "/usr/lib/grub/i386-pc/boot_hybrid.img";

fn isoforge() -> Command {
    Command::new(support::isoforge_bin())
}

/// xorriso's fixed dates and GPT GUIDs, so that two runs make the same image.
fn xorrisofs() -> Command {
    let mut cmd = Command::new("xorriso");
    cmd.env("SOURCE_DATE_EPOCH", "1700000000").args(["-as", "mkisofs", "-quiet", "-R", "-V", "FOREIGN"]);
    cmd
}

/// What every image is built from: GRUB's El Torito image (`grub-mkimage -O i386-pc-eltorito`,
/// as grub-mkrescue makes it), a FAT EFI image, a 1.44 MB FAT floppy image.
struct Inputs {
    tree: PathBuf,
    efi: PathBuf,
}

fn inputs(dir: &Path) -> Option<Inputs> {
    if !tool("xorriso") || !tool("grub-mkimage") || !tool("mkfs.fat") || !tool("mcopy") {
        return None;
    }
    if !support::files(&[BOOT_HYBRID]) {
        return None;
    }
    let tree = dir.join("tree");
    mkdir_p(&tree.join("boot/grub/i386-pc"));
    write_file(&tree.join("boot/grub/grub.cfg"), "set timeout=0\n");
    run(Command::new("grub-mkimage")
        .args(["-O", "i386-pc-eltorito", "-d", GRUB_PC, "-p", "/boot/grub", "-o"])
        .arg(tree.join("boot/grub/i386-pc/eltorito.img"))
        .args(["biosdisk", "iso9660"]));
    let efi = dir.join("efi.img");
    run(Command::new("mkfs.fat")
        .args(["--invariant", "-i", "12345678", "-n", "EFIBOOT", "-C"])
        .arg(&efi)
        .arg("2048"));
    run(Command::new("mmd").arg("-i").arg(&efi).args(["::/EFI", "::/EFI/BOOT"]));
    write_file(&dir.join("BOOTX64.EFI"), b"not really an EFI program\n");
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&efi)
        .arg(dir.join("BOOTX64.EFI"))
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    std::fs::copy(&efi, tree.join("efi.img")).unwrap();
    run(Command::new("mkfs.fat")
        .args(["--invariant", "-i", "87654321", "-C"])
        .arg(tree.join("floppy.img"))
        .arg("1440"));
    Some(Inputs { tree, efi })
}

// ---------------------------------------------------------------------------------------------
// The report of `xorriso -indev ISO -report_el_torito plain -report_system_area plain`.

struct Report(String);

impl Report {
    fn of(iso: &Path) -> Report {
        Report(run_ok_stdout(Command::new("xorriso").arg("-indev").arg(iso).args([
            "-report_el_torito",
            "plain",
            "-report_system_area",
            "plain",
        ])))
    }

    /// The whitespace-separated fields after the colon of every line whose 19-character
    /// header is `name`.
    fn lines(&self, name: &str) -> Vec<Vec<&str>> {
        self.0
            .lines()
            .filter(|l| l.get(..19).is_some_and(|h| h.trim_end() == name))
            .filter_map(|l| l.get(19..).and_then(|r| r.strip_prefix(':')))
            .map(|rest| rest.split_whitespace().collect())
            .collect()
    }

    /// The text after the colon of the first line headed `name`.
    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .lines()
            .find(|l| l.get(..19).is_some_and(|h| h.trim_end() == name))
            .and_then(|l| l.get(20..))
            .map(str::trim)
    }

    /// Lines of numbered entries (`N  rest...`) headed `name`, by number.
    fn numbered(&self, name: &str, n: u64) -> Option<Vec<&str>> {
        self.lines(name).into_iter().find(|f| f.first().and_then(|x| x.parse::<u64>().ok()) == Some(n))
    }
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

fn inspect_json(iso: &Path) -> Value {
    serde_json::from_str(&run_ok_stdout(isoforge().args(["inspect", "--json"]).arg(iso))).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// `verify` exits 0 with no error or warning; returns its output.
fn verify_clean(iso: &Path) -> String {
    let out = isoforge().arg("verify").arg(iso).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}:\n{text}{}",
        iso.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("error:") && !text.contains("warning:"), "{}:\n{text}", iso.display());
    text
}

/// Compares `inspect --json` with xorriso's report field by field; returns the JSON.
fn agrees_with_xorriso(iso: &Path) -> Value {
    let r = Report::of(iso);
    let j = inspect_json(iso);
    let sa = &j["system_area"];
    let ctx = format!("{}:\n{}", iso.display(), r.0);

    // System area summary, without the cylinder alignment word.
    let words: Vec<&str> = r
        .text("System area summary")
        .unwrap_or("")
        .split_whitespace()
        .filter(|w| !w.starts_with("cyl-align-"))
        .collect();
    assert_eq!(sa["summary"].as_str().unwrap(), words.join(" "), "{ctx}");
    for (word, key) in [
        ("isohybrid", "isohybrid"),
        ("protective-msdos-label", "protective_msdos_label"),
        ("grub2-mbr", "grub2_mbr"),
    ] {
        assert_eq!(sa[key].as_bool(), Some(words.contains(&word)), "{key}: {ctx}");
    }
    if let Some(size) = r.lines("ISO image size/512").first() {
        assert_eq!(u(&j["primary"]["volume_space_size"]) * 4, num(size[0]), "{ctx}");
    }
    let offset = r.lines("Partition offset").first().map_or(0, |f| num(f[0]));
    assert_eq!(u(&sa["partition_offset"]), offset, "{ctx}");

    // MBR partitions: N Status Type Start Blocks.
    let parts = r.lines("MBR partition");
    let jp = sa["mbr"]["partitions"].as_array().unwrap();
    assert_eq!(jp.len(), parts.len(), "{ctx}");
    for (p, f) in jp.iter().zip(&parts) {
        assert_eq!(
            [u(&p["index"]), u(&p["boot_indicator"]), u(&p["type"]), u(&p["start_lba"]), u(&p["sectors"])],
            [num(f[0]), num(f[1]), num(f[2]), num(f[3]), num(f[4])],
            "{ctx}"
        );
    }

    // GPT.
    let gpt_entries = r.lines("GPT start and size");
    if gpt_entries.is_empty() {
        assert!(sa["gpt"].is_null() || sa["gpt"]["entries"].as_array().unwrap().is_empty(), "{ctx}");
    } else {
        let g = &sa["gpt"];
        assert_eq!(
            g["primary"]["disk_guid_bytes"].as_str().unwrap(),
            r.lines("GPT disk GUID")[0][0],
            "{ctx}"
        );
        let array = &r.lines("GPT entry array")[0];
        assert_eq!(u(&g["primary"]["partition_entry_lba"]), num(array[0]), "{ctx}");
        assert_eq!(u(&g["primary"]["number_of_partition_entries"]), num(array[1]), "{ctx}");
        assert_eq!(g["entry_array"].as_str().unwrap(), array[2], "{ctx}");
        let range = &r.lines("GPT lba range")[0];
        assert_eq!(
            [
                u(&g["primary"]["first_usable_lba"]),
                u(&g["primary"]["last_usable_lba"]),
                u(&g["primary"]["alternate_lba"])
            ],
            [num(range[0]), num(range[1]), num(range[2])],
            "{ctx}"
        );
        let entries = g["entries"].as_array().unwrap();
        assert_eq!(entries.len(), gpt_entries.len(), "{ctx}");
        for e in entries {
            let n = u(&e["index"]);
            let field = |name: &str| r.numbered(name, n).unwrap_or_else(|| panic!("no {name} {n}: {ctx}"));
            assert_eq!(e["unique_guid_bytes"].as_str().unwrap(), field("GPT partition GUID")[1], "{ctx}");
            assert_eq!(e["type_guid_bytes"].as_str().unwrap(), field("GPT type GUID")[1], "{ctx}");
            assert_eq!(u(&e["attributes"]), num(field("GPT partition flags")[1]), "{ctx}");
            assert_eq!(e["name"].as_str().unwrap(), field("GPT partname local")[1..].join(" "), "{ctx}");
            let ss = field("GPT start and size");
            assert_eq!(u(&e["first_lba"]), num(ss[1]), "{ctx}");
            assert_eq!(u(&e["last_lba"]) - u(&e["first_lba"]) + 1, num(ss[2]), "{ctx}");
        }
    }

    // APM (xorriso leaves out the map's own entry).
    let apm_names = r.lines("APM partition name");
    if apm_names.is_empty() {
        assert!(sa["apm"].is_null(), "{ctx}");
    } else {
        let a = &sa["apm"];
        assert_eq!(u(&a["block_size"]), num(r.lines("APM block size")[0][0]), "{ctx}");
        let entries: Vec<&Value> =
            a["entries"].as_array().unwrap().iter().filter(|e| e["type"] != "Apple_partition_map").collect();
        let types = r.lines("APM partition type");
        let ss = r.lines("APM start and size");
        assert_eq!(entries.len(), apm_names.len(), "{ctx}");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e["name"].as_str().unwrap(), apm_names[i][1..].join(" "), "{ctx}");
            assert_eq!(e["type"].as_str().unwrap(), types[i][1..].join(" "), "{ctx}");
            assert_eq!([u(&e["start"]), u(&e["blocks"])], [num(ss[i][1]), num(ss[i][2])], "{ctx}");
        }
    }

    // El Torito: N Pltf B Emul Ld_seg Hdpt Ldsiz LBA, and the image options.
    let cat = &r.lines("El Torito catalog")[0];
    assert_eq!(u(&j["el_torito"]["catalog_lba"]), num(cat[0]), "{ctx}");
    let imgs = r.lines("El Torito boot img");
    let entries = j["el_torito"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), imgs.len(), "{ctx}");
    for (e, f) in entries.iter().zip(&imgs) {
        let platform = match f[1] {
            "BIOS" => 0,
            "PPC" => 1,
            "Mac" => 2,
            "UEFI" => 0xEF,
            other => num(other),
        };
        assert_eq!(u(&e["platform_id"]), platform, "{ctx}");
        assert_eq!(u(&e["boot_indicator"]) != 0, f[2] == "y", "{ctx}");
        assert_eq!(e["emulation"].as_str().unwrap(), f[3], "{ctx}");
        assert_eq!(u(&e["load_segment"]), num(f[4]), "{ctx}");
        assert_eq!(u(&e["system_type"]), num(f[5]), "{ctx}");
        assert_eq!(u(&e["load_size"]), num(f[6]), "{ctx}");
        assert_eq!(u(&e["load_rba"]), num(f[7]), "{ctx}");
        let n: u64 = f[0].parse().unwrap();
        let opts = r.numbered("El Torito img opts", n).unwrap_or_default();
        assert_eq!(
            e["grub2_boot_info"].as_bool(),
            Some(opts.contains(&"grub2-boot-info")),
            "entry {n}: {ctx}"
        );
        if n == 1 && e["emulation"] == "none" && platform == 0 {
            let bi = &j["el_torito"]["boot_info_table"];
            let valid = ["pvd_lba_check", "file_lba_check", "file_length_check", "checksum_check"]
                .iter()
                .all(|k| bi[k] == "valid");
            assert_eq!(valid, opts.contains(&"boot-info-table"), "{ctx}");
        }
    }
    j
}

fn layout(j: &Value) -> Option<&str> {
    j["system_area"]["layout"].as_str()
}

fn appended(j: &Value) -> Vec<&str> {
    j["system_area"]["appended_partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn grub_mkrescue_bios_and_efi() {
    let dir = support::tempdir();
    let Some(_) = inputs(dir.path()) else { return };
    if support::which("grub-mkrescue").is_none() {
        support::skip("grub-mkrescue not installed (Debian package grub-common)");
        return;
    }
    if !support::files(&[Path::new(GRUB_PC).join("modinfo.sh"), Path::new(GRUB_EFI).join("modinfo.sh")]) {
        return;
    }
    let src = dir.path().join("rescue");
    write_file(&src.join("boot/grub/grub.cfg"), "set timeout=0\n");
    let iso = dir.path().join("rescue.iso");
    run(Command::new("grub-mkrescue").env("SOURCE_DATE_EPOCH", "1700000000").arg("-o").arg(&iso).arg(&src));
    let out = verify_clean(&iso);
    assert!(out.contains("info: MBR grub2 boot info (bytes 432..440, grub2-mbr) at byte 432"), "{out}");
    let j = agrees_with_xorriso(&iso);
    assert_eq!(layout(&j), None);
    // grub-mkrescue: protective label, GRUB's MBR, GPT (Gap0, ESP, HFS+, Gap1) and APM.
    assert_eq!(j["system_area"]["summary"], "MBR protective-msdos-label grub2-mbr GPT APM");
    assert_eq!(j["el_torito"]["entries"][0]["grub2_boot_info"], true);
    let text = run_ok_stdout(isoforge().arg("inspect").arg(&iso));
    assert!(text.contains("system area: layout unknown (not an isoforge layout)"), "{text}");
    assert!(
        text.contains(
            "recognised (xorriso -report_system_area terms): MBR protective-msdos-label grub2-mbr GPT APM"
        ),
        "{text}"
    );
    assert!(text.contains("(emulation none, grub2-boot-info)"), "{text}");
}

#[test]
fn grub2_mbr_partition_offset_and_appended_esp_as_gpt() {
    // Ubuntu's layout: GRUB's MBR, -partition_offset 16, the ESP appended as GPT partition 2
    // and the El Torito EFI entry pointing at it (outside the ISO 9660 tree).
    let dir = support::tempdir();
    let Some(i) = inputs(dir.path()) else { return };
    let iso = dir.path().join("ubuntu.iso");
    run(xorrisofs()
        .args(["--grub2-mbr", BOOT_HYBRID, "-partition_offset", "16", "--mbr-force-bootable"])
        .args(["-append_partition", "2", "28732ac11ff8d211ba4b00a0c93ec93b"])
        .arg(&i.efi)
        .args(["-appended_part_as_gpt", "-iso_mbr_part_type", "a2a0d0ebe5b9334487c068b6b72699c7"])
        .args(["-c", "/boot.catalog", "-b", "/boot/grub/i386-pc/eltorito.img", "-no-emul-boot"])
        .args(["-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info", "-eltorito-alt-boot"])
        .args(["-e", "--interval:appended_partition_2:::", "-no-emul-boot", "-o"])
        .arg(&iso)
        .arg(&i.tree));
    verify_clean(&iso);
    let j = agrees_with_xorriso(&iso);
    assert_eq!(layout(&j), None);
    assert_eq!(j["system_area"]["summary"], "MBR protective-msdos-label grub2-mbr GPT");
    assert_eq!(j["system_area"]["partition_offset"], 16);
    assert_eq!(appended(&j), ["GPT.entry[2]"]);
    // The EFI image is the appended partition, found by the catalog and the GPT.
    let emb = j["embedded"].as_array().unwrap().iter().find(|e| e["found_by"].as_array().unwrap().len() == 2);
    let emb = emb.unwrap_or_else(|| panic!("{:#}", j["embedded"]));
    assert_eq!(emb["payload"]["type"], "fat");
    assert_eq!(emb["found_by"][1], "GPT.entry[2]");
    let text = run_ok_stdout(isoforge().arg("inspect").arg(&iso));
    assert!(text.contains("GPT, partition offset 16, appended partition GPT.entry[2]"), "{text}");
}

#[test]
fn protective_msdos_label_and_appended_esp_in_mbr() {
    // Debian's layout: GRUB's MBR with --protective-msdos-label and the ESP appended as MBR
    // partition 2 (a copy of the tree's /efi.img).
    let dir = support::tempdir();
    let Some(i) = inputs(dir.path()) else { return };
    let iso = dir.path().join("debian.iso");
    run(xorrisofs()
        .args(["--grub2-mbr", BOOT_HYBRID, "--protective-msdos-label", "-append_partition", "2", "0xef"])
        .arg(&i.efi)
        .args(["-c", "/boot.catalog", "-b", "/boot/grub/i386-pc/eltorito.img", "-no-emul-boot"])
        .args(["-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info", "-eltorito-alt-boot"])
        .args(["-e", "/efi.img", "-no-emul-boot", "-o"])
        .arg(&iso)
        .arg(&i.tree));
    let out = verify_clean(&iso);
    assert!(out.contains("a byte-identical copy of the EFI image"), "{out}");
    let j = agrees_with_xorriso(&iso);
    assert_eq!(layout(&j), None);
    assert_eq!(j["system_area"]["summary"], "MBR protective-msdos-label grub2-mbr");
    assert_eq!(appended(&j), ["MBR.partition[2]"]);
}

#[test]
fn floppy_emulation_with_grub2_mbr() {
    // memtest86+'s kind: a 1.44 MB floppy image as the BIOS entry, GRUB's MBR, an EFI entry.
    let dir = support::tempdir();
    let Some(i) = inputs(dir.path()) else { return };
    let iso = dir.path().join("floppy.iso");
    run(xorrisofs()
        .args(["--grub2-mbr", BOOT_HYBRID, "-b", "/floppy.img", "-c", "/boot.catalog"])
        .args(["--efi-boot", "/efi.img", "-o"])
        .arg(&iso)
        .arg(&i.tree));
    let out = verify_clean(&iso);
    assert!(out.contains("fd1.4 emulation, + 4"), "{out}");
    let j = agrees_with_xorriso(&iso);
    assert_eq!(layout(&j), None);
    assert_eq!(j["system_area"]["summary"], "MBR grub2-mbr");
    assert_eq!(j["el_torito"]["entries"][0]["emulation"], "fd1.4");
    assert_eq!(j["el_torito"]["entries"][0]["media_type"], 2);
    // No boot-info-table check for an emulated diskette.
    assert!(j["el_torito"]["boot_info_table"].is_null(), "{:#}", j["el_torito"]);
}

#[test]
fn hard_disk_emulation() {
    let dir = support::tempdir();
    let Some(i) = inputs(dir.path()) else { return };
    let iso = dir.path().join("hd.iso");
    run(xorrisofs()
        .args(["-c", "/boot.catalog", "-b", "/floppy.img", "-hard-disk-boot", "-o"])
        .arg(&iso)
        .arg(&i.tree));
    verify_clean(&iso);
    let j = agrees_with_xorriso(&iso);
    assert_eq!(j["el_torito"]["entries"][0]["emulation"], "hd");
    assert!(j["el_torito"]["boot_info_table"].is_null());
    assert_eq!(layout(&j), Some("none"));
}

#[test]
fn genisoimage_and_syslinux_isohybrid() {
    if !tool("genisoimage") || !tool("isohybrid") || !support::isolinux() {
        return;
    }
    let dir = support::tempdir();
    let Some(i) = inputs(dir.path()) else { return };
    let tree = dir.path().join("gtree");
    mkdir_p(&tree.join("isolinux"));
    std::fs::copy(support::ISOLINUX_BIN, tree.join("isolinux/isolinux.bin")).unwrap();
    std::fs::copy(&i.efi, tree.join("efi.img")).unwrap();
    let genisoimage = |iso: &Path, efi: bool| {
        let mut cmd = Command::new("genisoimage");
        cmd.args([
            "-quiet",
            "-R",
            "-J",
            "-V",
            "GENI",
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
        ])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"]);
        if efi {
            cmd.args(["-eltorito-alt-boot", "-e", "efi.img", "-no-emul-boot"]);
        }
        run(cmd.arg("-o").arg(iso).arg(&tree));
    };
    // BIOS only: the isohybrid MBR alone, the nixos layout's structure.
    let bios = dir.path().join("bios.iso");
    genisoimage(&bios, false);
    run(Command::new("isohybrid").args(["--id", "0x12345678"]).arg(&bios));
    verify_clean(&bios);
    let j = agrees_with_xorriso(&bios);
    assert_eq!(j["system_area"]["summary"], "MBR isohybrid");
    assert_eq!(layout(&j), Some("nixos"));
    // --uefi: an MBR 0xEF partition and syslinux's hybrid GPT ("ISOHybrid ISO" from sector 0,
    // overlapping "ISOHybrid"): its overlap is intended, a note.
    let uefi = dir.path().join("uefi.iso");
    genisoimage(&uefi, true);
    run(Command::new("isohybrid").args(["--uefi", "--id", "0x12345678"]).arg(&uefi));
    let out = verify_clean(&uefi);
    assert!(out.contains("(isohybrid hybrid GPT: intended"), "{out}");
    let j = agrees_with_xorriso(&uefi);
    assert_eq!(j["system_area"]["summary"], "MBR isohybrid GPT");
    assert_eq!(j["system_area"]["gpt"]["entry_array"], "overlapping");
    assert!(appended(&j).is_empty());
}

#[test]
fn isoforge_images_keep_their_layout() {
    // The nixpkgs-flags xorriso image is still the nixos layout, and xorriso agrees with us.
    if !support::isolinux() || !tool("xorriso") {
        return;
    }
    let dir = support::tempdir();
    let tree = dir.path().join("tree");
    mkdir_p(&tree.join("isolinux"));
    std::fs::copy(support::ISOLINUX_BIN, tree.join("isolinux/isolinux.bin")).unwrap();
    let Some(i) = inputs(dir.path()) else { return };
    std::fs::create_dir_all(tree.join("boot")).unwrap();
    std::fs::copy(&i.efi, tree.join("boot/efi.img")).unwrap();
    let iso = dir.path().join("nixpkgs.iso");
    support::xorriso_nixpkgs_image(&tree, &iso, "TestVol");
    verify_clean(&iso);
    let j = agrees_with_xorriso(&iso);
    assert_eq!(layout(&j), Some("nixos"));
    assert_eq!(j["system_area"]["summary"], "MBR isohybrid GPT");
    assert_eq!(j["system_area"]["gpt"]["entry_array"], "overlapping");
}
