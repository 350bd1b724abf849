//! `isoforge inspect`, `verify` and `diff` on images built by isoforge, xorriso and
//! genisoimage (with FAT payloads from `isoforge fat` and mkfs.fat + mtools).
//!
//! - `inspect --json` agrees with `xorriso -report_el_torito plain`, `-report_system_area plain`
//!   and `isoinfo -d` on a xorriso image built with nixpkgs' flags;
//! - `verify` is clean on every layout isoforge builds and on xorriso and genisoimage images,
//!   and names what is wrong in deliberately broken images;
//! - `diff` names exactly the fields an epoch change, a file change or a GPT GUID change touch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{mkdir_p, run, run_ok_stdout, tool, write_file};

fn isoforge() -> Command {
    Command::new(support::isoforge_bin())
}

fn have_isolinux() -> bool {
    support::isolinux()
}

/// A small tree (a BIOS boot file, a "kernel", a text file) and an EFI directory, made once per
/// test under `dir`. `readme` is the text file's content.
fn inputs(dir: &Path, readme: &str) -> (PathBuf, PathBuf) {
    let tree = dir.join("tree");
    let efi = dir.join("efi");
    mkdir_p(&tree.join("isolinux"));
    std::fs::copy("/usr/lib/ISOLINUX/isolinux.bin", tree.join("isolinux/isolinux.bin")).unwrap();
    let kernel: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    write_file(&tree.join("boot/bzImage"), kernel);
    write_file(&tree.join("readme.txt"), readme);
    let efi_bin: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    write_file(&efi.join("EFI/BOOT/BOOTX64.EFI"), efi_bin);
    (tree, efi)
}

/// `isoforge build` of the inputs; `extra` flags come last.
/// `mbr`: with the isohybrid MBR; without it, `--layout gpt` images are EFI-only (no BIOS entry).
fn build(dir: &Path, name: &str, tree: &Path, efi: &Path, mbr: bool, extra: &[&str]) -> PathBuf {
    let iso = dir.join(name);
    let mut cmd = isoforge();
    cmd.args(["build", "-o"]).arg(&iso).args(["--volume-id", "TestVol"]);
    cmd.arg("--graft").arg(format!("/={}", tree.display()));
    if mbr || !extra.contains(&"gpt") {
        cmd.args(["--bios-boot", "isolinux/isolinux.bin", "--boot-catalog", "isolinux/boot.cat"]);
    }
    cmd.arg("--efi-dir").arg(efi);
    if mbr {
        cmd.arg("--isohybrid-mbr").arg("/usr/lib/ISOLINUX/isohdpfx.bin");
    }
    cmd.args(extra);
    run(&mut cmd);
    iso
}

/// The xorriso image nixpkgs' flags make of the inputs (the EFI image made by `isoforge fat`).
fn xorriso_image(dir: &Path, tree: &Path, efi: &Path) -> PathBuf {
    let xtree = dir.join("xtree");
    mkdir_p(&xtree);
    run(Command::new("cp").arg("-r").arg(format!("{}/.", tree.display())).arg(&xtree));
    run(isoforge().args(["fat", "--dir"]).arg(efi).arg("-o").arg(xtree.join("boot/efi.img")));
    let iso = dir.join("xorriso.iso");
    support::xorriso_nixpkgs_image(&xtree, &iso, "TestVol");
    iso
}

/// A genisoimage image whose EFI image is made by mkfs.fat and mtools.
fn genisoimage_image(dir: &Path, tree: &Path, efi: &Path) -> PathBuf {
    let gtree = dir.join("gtree");
    mkdir_p(&gtree);
    run(Command::new("cp").arg("-r").arg(format!("{}/.", tree.display())).arg(&gtree));
    let img = gtree.join("boot/efi.img");
    run(Command::new("mkfs.fat")
        .args(["--invariant", "-i", "12345678", "-n", "EFIBOOT", "-C"])
        .arg(&img)
        .arg("2048"));
    run(Command::new("mmd").arg("-i").arg(&img).args(["::/EFI", "::/EFI/BOOT"]));
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&img)
        .arg(efi.join("EFI/BOOT/BOOTX64.EFI"))
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    let iso = dir.join("genisoimage.iso");
    run(Command::new("genisoimage")
        .args([
            "-quiet",
            "-R",
            "-J",
            "-V",
            "TestVol",
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
        ])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-eltorito-alt-boot"])
        .args(["-e", "boot/efi.img", "-no-emul-boot", "-o"])
        .arg(&iso)
        .arg(&gtree));
    iso
}

fn output(cmd: &mut Command) -> Output {
    let line = support::command_line(cmd);
    cmd.output().unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"))
}

/// Runs `isoforge ARGS`, returns (exit code, stdout).
fn isoforge_status(args: &[&str], paths: &[&Path]) -> (i32, String) {
    let mut cmd = isoforge();
    cmd.args(args).args(paths);
    let out = output(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if code == 2 {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    (code, text)
}

// ---------------------------------------------------------------------------------------------
// A minimal JSON reader for the tests (objects, arrays, strings, integers, booleans, null).

#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(i128),
    Str(String),
    Arr(Vec<J>),
    Obj(BTreeMap<String, J>),
}

impl J {
    fn get(&self, path: &str) -> &J {
        let mut cur = self;
        for key in path.split('.') {
            cur = match (cur, key.parse::<usize>()) {
                (J::Arr(a), Ok(i)) => a.get(i).unwrap_or_else(|| panic!("no index {i} in {path}")),
                (J::Obj(o), _) => o.get(key).unwrap_or_else(|| panic!("no key {key} in {path}")),
                _ => panic!("cannot take {key} of {cur:?} ({path})"),
            };
        }
        cur
    }
    fn num(&self, path: &str) -> i128 {
        match self.get(path) {
            J::Num(n) => *n,
            other => panic!("{path} is {other:?}, not a number"),
        }
    }
    fn str(&self, path: &str) -> &str {
        match self.get(path) {
            J::Str(s) => s,
            other => panic!("{path} is {other:?}, not a string"),
        }
    }
    fn arr(&self, path: &str) -> &[J] {
        match self.get(path) {
            J::Arr(a) => a,
            other => panic!("{path} is {other:?}, not an array"),
        }
    }
}

fn parse_json(text: &str) -> J {
    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }
    fn val(b: &[u8], i: &mut usize) -> J {
        ws(b, i);
        match b[*i] {
            b'{' => {
                *i += 1;
                let mut o = BTreeMap::new();
                loop {
                    ws(b, i);
                    if b[*i] == b'}' {
                        *i += 1;
                        return J::Obj(o);
                    }
                    let J::Str(k) = val(b, i) else { panic!("key") };
                    ws(b, i);
                    assert_eq!(b[*i], b':');
                    *i += 1;
                    o.insert(k, val(b, i));
                    ws(b, i);
                    if b[*i] == b',' {
                        *i += 1;
                    }
                }
            }
            b'[' => {
                *i += 1;
                let mut a = Vec::new();
                loop {
                    ws(b, i);
                    if b[*i] == b']' {
                        *i += 1;
                        return J::Arr(a);
                    }
                    a.push(val(b, i));
                    ws(b, i);
                    if b[*i] == b',' {
                        *i += 1;
                    }
                }
            }
            b'"' => {
                *i += 1;
                let mut s = Vec::new();
                while b[*i] != b'"' {
                    if b[*i] == b'\\' {
                        *i += 1;
                        match b[*i] {
                            b'n' => s.push(b'\n'),
                            b't' => s.push(b'\t'),
                            b'r' => s.push(b'\r'),
                            b'u' => {
                                let h = std::str::from_utf8(&b[*i + 1..*i + 5]).unwrap();
                                let c = char::from_u32(u32::from_str_radix(h, 16).unwrap()).unwrap();
                                s.extend_from_slice(c.to_string().as_bytes());
                                *i += 4;
                            }
                            c => s.push(c),
                        }
                    } else {
                        s.push(b[*i]);
                    }
                    *i += 1;
                }
                *i += 1;
                J::Str(String::from_utf8(s).unwrap())
            }
            b't' => {
                *i += 4;
                J::Bool(true)
            }
            b'f' => {
                *i += 5;
                J::Bool(false)
            }
            b'n' => {
                *i += 4;
                J::Null
            }
            _ => {
                let s = *i;
                while *i < b.len() && (b[*i] == b'-' || b[*i].is_ascii_digit()) {
                    *i += 1;
                }
                J::Num(std::str::from_utf8(&b[s..*i]).unwrap().parse().unwrap())
            }
        }
    }
    let mut i = 0;
    val(text.as_bytes(), &mut i)
}

fn inspect_json(iso: &Path) -> J {
    parse_json(&run_ok_stdout(isoforge().args(["inspect", "--json"]).arg(iso)))
}

/// The whitespace-separated fields after the colon in column 19 of every report line starting with `prefix`.
fn report_lines<'a>(report: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    report
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.get(19..).and_then(|r| r.strip_prefix(':')))
        .map(|rest| rest.split_whitespace().collect())
        .collect()
}

fn hex_num(s: &str) -> i128 {
    i128::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn inspect_json_agrees_with_xorriso_and_isoinfo() {
    if !tool("xorriso") || !tool("isoinfo") || !have_isolinux() {
        return;
    }
    let dir = support::tempdir();
    let (tree, efi) = inputs(dir.path(), "hello\n");
    let iso = xorriso_image(dir.path(), &tree, &efi);
    let j = inspect_json(&iso);
    assert_eq!(j.str("schema"), "isoforge-inspect/1");
    let report = run_ok_stdout(Command::new("xorriso").arg("-indev").arg(&iso).args([
        "-report_el_torito",
        "plain",
        "-report_system_area",
        "plain",
    ]));

    // El Torito.
    let cat = &report_lines(&report, "El Torito catalog")[0];
    assert_eq!(j.num("el_torito.catalog_lba"), cat[0].parse::<i128>().unwrap());
    let imgs = report_lines(&report, "El Torito boot img");
    let entries = j.arr("el_torito.entries");
    assert_eq!(entries.len(), imgs.len(), "{report}");
    for (e, f) in entries.iter().zip(&imgs) {
        // N Pltf B Emul Ld_seg Hdpt Ldsiz LBA
        let platform = match f[1] {
            "BIOS" => 0,
            "UEFI" => 0xEF,
            other => hex_num(other),
        };
        assert_eq!(e.num("platform_id"), platform, "{f:?}");
        assert_eq!(e.num("boot_indicator") == 0x88, f[2] == "y", "{f:?}");
        assert_eq!(f[3], "none");
        assert_eq!(e.num("media_type"), 0);
        assert_eq!(e.num("load_segment"), hex_num(f[4]), "{f:?}");
        assert_eq!(e.num("system_type"), hex_num(f[5]), "{f:?}");
        assert_eq!(e.num("load_size"), f[6].parse::<i128>().unwrap(), "{f:?}");
        assert_eq!(e.num("load_rba"), f[7].parse::<i128>().unwrap(), "{f:?}");
    }
    let opts = report_lines(&report, "El Torito img opts");
    assert!(opts[0].contains(&"boot-info-table"));
    assert_eq!(j.get("el_torito.boot_info_table.present"), &J::Bool(true));
    assert_eq!(j.str("el_torito.boot_info_table.checksum_check"), "valid");

    // System area: MBR.
    let size512 = &report_lines(&report, "ISO image size/512")[0];
    assert_eq!(j.num("size") / 512, size512[0].parse::<i128>().unwrap());
    let parts = report_lines(&report, "MBR partition      :");
    let jp = j.arr("system_area.mbr.partitions");
    assert_eq!(jp.len(), parts.len());
    for (p, f) in jp.iter().zip(&parts) {
        // N Status Type Start Blocks
        assert_eq!(p.num("index"), f[0].parse::<i128>().unwrap());
        assert_eq!(p.num("boot_indicator"), hex_num(f[1]));
        assert_eq!(p.num("type"), hex_num(f[2]));
        assert_eq!(p.num("start_lba"), f[3].parse::<i128>().unwrap());
        assert_eq!(p.num("sectors"), f[4].parse::<i128>().unwrap());
    }
    // GPT.
    assert_eq!(
        j.str("system_area.gpt.primary.disk_guid_bytes"),
        report_lines(&report, "GPT disk GUID")[0][0]
    );
    let arr = &report_lines(&report, "GPT entry array")[0];
    assert_eq!(j.num("system_area.gpt.primary.partition_entry_lba"), arr[0].parse::<i128>().unwrap());
    assert_eq!(j.num("system_area.gpt.primary.number_of_partition_entries"), arr[1].parse::<i128>().unwrap());
    let range = &report_lines(&report, "GPT lba range")[0];
    assert_eq!(j.num("system_area.gpt.primary.first_usable_lba"), range[0].parse::<i128>().unwrap());
    assert_eq!(j.num("system_area.gpt.primary.last_usable_lba"), range[1].parse::<i128>().unwrap());
    assert_eq!(j.num("system_area.gpt.primary.alternate_lba"), range[2].parse::<i128>().unwrap());
    let ge = j.arr("system_area.gpt.entries");
    let names = report_lines(&report, "GPT partname local");
    let guids = report_lines(&report, "GPT partition GUID");
    let types = report_lines(&report, "GPT type GUID");
    let flags = report_lines(&report, "GPT partition flags");
    let starts = report_lines(&report, "GPT start and size");
    assert_eq!(ge.len(), names.len());
    for (i, e) in ge.iter().enumerate() {
        assert_eq!(e.str("name"), names[i][1]);
        assert_eq!(e.str("unique_guid_bytes"), guids[i][1]);
        assert_eq!(e.str("type_guid_bytes"), types[i][1]);
        assert_eq!(e.num("attributes"), hex_num(flags[i][1]));
        let (start, size) = (starts[i][1].parse::<i128>().unwrap(), starts[i][2].parse::<i128>().unwrap());
        assert_eq!(e.num("first_lba"), start);
        assert_eq!(e.num("last_lba") - e.num("first_lba") + 1, size);
    }
    assert_eq!(j.str("system_area.layout"), "nixos");

    // isoinfo -d.
    let info = run_ok_stdout(Command::new("isoinfo").arg("-d").arg("-i").arg(&iso));
    let field = |name: &str| -> String {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .trim()
            .to_string()
    };
    assert_eq!(j.str("primary.volume_id"), field("Volume id:"));
    assert_eq!(j.str("primary.system_id"), field("System id:"));
    assert_eq!(j.str("primary.preparer_id"), field("Data preparer id:"));
    assert_eq!(j.str("primary.publisher_id"), field("Publisher id:"));
    assert_eq!(j.num("primary.volume_space_size"), field("Volume size is:").parse::<i128>().unwrap());
    assert_eq!(j.num("primary.logical_block_size"), field("Logical block size is:").parse::<i128>().unwrap());
    let vd = field("El Torito VD version 1 found, boot catalog is in sector");
    assert_eq!(j.num("el_torito.catalog_lba"), vd.parse::<i128>().unwrap());
    assert!(info.contains("Joliet with UCS level 3 found"));
    assert!(j.get("joliet") != &J::Null);
    assert!(info.contains("Rock Ridge signatures"));
    assert_eq!(j.get("iso9660.rock_ridge"), &J::Bool(true));
    // The FAT image, found three ways.
    let emb = &j.arr("embedded")[0];
    assert_eq!(emb.str("name"), "/boot/efi.img");
    assert_eq!(emb.str("payload.fat_type"), "FAT12");
    assert_eq!(emb.num("payload.volume_serial"), 0x1234_5678);
    assert_eq!(emb.arr("found_by").len(), 3, "{emb:?}");
}

#[test]
fn verify_is_clean_on_isoforge_xorriso_and_genisoimage_images() {
    if !tool("xorriso") || !tool("genisoimage") || !tool("mkfs.fat") || !tool("mcopy") || !have_isolinux() {
        return;
    }
    let dir = support::tempdir();
    let (tree, efi) = inputs(dir.path(), "hello\n");
    let mut images = vec![
        build(dir.path(), "nixos.iso", &tree, &efi, true, &["--layout", "nixos"]),
        build(dir.path(), "gpt.iso", &tree, &efi, true, &["--layout", "gpt"]),
        build(dir.path(), "gpt-nombr.iso", &tree, &efi, false, &["--layout", "gpt"]),
        build(dir.path(), "none.iso", &tree, &efi, false, &["--layout", "none"]),
        xorriso_image(dir.path(), &tree, &efi),
    ];
    let g = genisoimage_image(dir.path(), &tree, &efi);
    images.push(g.clone());
    for iso in &images {
        let (code, out) = isoforge_status(&["verify"], &[iso]);
        assert_eq!(code, 0, "{}:\n{out}", iso.display());
        assert!(!out.contains("error:") && !out.contains("warning:"), "{out}");
    }
    // The nixos layouts' overlap is a note.
    let (_, out) = isoforge_status(&["verify"], &[&images[0]]);
    assert!(out.contains("info: GPT entry 2 (ISOHybrid1) starting_lba"), "{out}");
    // The mkfs.fat payload of the genisoimage image is read (found by the El Torito entry).
    let j = inspect_json(&g);
    let emb = &j.arr("embedded")[0];
    assert_eq!(emb.str("payload.type"), "fat", "{emb:?}");
    assert_eq!(emb.str("payload.oem_name"), "mkfs.fat");
    assert_eq!(emb.num("payload.entries"), 3);
    assert_eq!(j.get("system_area.layout"), &J::Str("none".into()));
    let text = run_ok_stdout(isoforge().args(["inspect", "--tree"]).arg(&g));
    assert!(text.contains("/EFI/BOOT/BOOTX64.EFI"), "{text}");
    assert!(text.contains("/boot/bzImage"), "{text}");
}

/// Flips, overwrites or cuts bytes of a copy of `iso`.
fn broken(iso: &Path, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut b = std::fs::read(iso).unwrap();
    f(&mut b);
    let out = iso.with_file_name(name);
    std::fs::write(&out, b).unwrap();
    out
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn verify_names_what_is_broken() {
    if !have_isolinux() {
        return;
    }
    let dir = support::tempdir();
    let (tree, efi) = inputs(dir.path(), "hello\n");
    let iso = build(dir.path(), "nixos.iso", &tree, &efi, true, &["--layout", "nixos"]);
    let bytes = std::fs::read(&iso).unwrap();
    let catalog = le32(&bytes, 17 * 2048 + 0x47) as usize * 2048;
    let bios_rba = le32(&bytes, catalog + 32 + 8) as usize;

    let crc = broken(&iso, "crc.iso", |b| b[512 + 16] ^= 1);
    let (code, out) = isoforge_status(&["verify"], &[&crc]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: GPT primary header header_crc32 at byte 528"), "{out}");

    let efi_range = broken(&iso, "efi-range.iso", |b| {
        let at = catalog + 96 + 8;
        let v = le32(b, at) + 1;
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    });
    let (code, out) = isoforge_status(&["verify"], &[&efi_range]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: MBR.partition[2] start_lba (the ESP) vs ElTorito.section[1].entry[0].load_rba"),
        "{out}"
    );

    let bit = broken(&iso, "bit.iso", |b| b[bios_rba * 2048 + 8 + 12] ^= 0xFF);
    let (code, out) = isoforge_status(&["verify"], &[&bit]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: boot-info-table of /isolinux/isolinux.bin bi_csum"), "{out}");

    let field = broken(&iso, "field.iso", |b| b[432] ^= 1);
    let (code, out) = isoforge_status(&["verify"], &[&field]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: MBR isohybrid boot-file field (bytes 432..440) at byte 432"), "{out}");

    // The embedded FAT: its second FAT differs from the first.
    let j = inspect_json(&iso);
    let emb = &j.arr("embedded")[0];
    let fat2 =
        emb.num("offset") + (emb.num("payload.reserved_sectors") + emb.num("payload.sectors_per_fat")) * 512;
    let fat = broken(&iso, "fat.iso", |b| b[fat2 as usize + 3] ^= 0x10);
    let (code, out) = isoforge_status(&["verify"], &[&fat]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("error: /boot/efi.img: FAT FAT copy at byte {}", fat2 + 3)), "{out}");

    let half = broken(&iso, "half.iso", |b| b.truncate(b.len() / 2));
    let (code, out) = isoforge_status(&["verify"], &[&half]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: primary volume descriptor volume_space_size"), "{out}");
    assert!(out.contains("expected at most the image's"), "{out}");

    let stub = broken(&iso, "stub.iso", |b| b.truncate(16 * 2048 + 100));
    let (code, _) = isoforge_status(&["verify"], &[&stub]);
    assert_eq!(code, 2);
}

/// The names of `diff` output lines (kind: name [ranges]: detail → name).
fn diff_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(_, rest)| rest.split(" [").next().unwrap_or(rest).to_string())
        .collect()
}

#[test]
fn diff_names_what_changed() {
    if !have_isolinux() {
        return;
    }
    let dir = support::tempdir();
    let (tree, efi) = inputs(dir.path(), "hello\n");
    let a = build(dir.path(), "a.iso", &tree, &efi, true, &[]);
    let again = build(dir.path(), "again.iso", &tree, &efi, true, &[]);
    let (code, out) = isoforge_status(&["diff"], &[&a, &again]);
    assert_eq!((code, out.trim()), (0, "identical"));

    // Another epoch: dates, and what derives from the epoch (MBR disk signature, GPT GUIDs and
    // their CRCs, FAT entry dates), nothing else.
    let epoch = build(dir.path(), "epoch.iso", &tree, &efi, true, &["--epoch", "1000000000"]);
    let (code, out) = isoforge_status(&["diff", "--max", "100000"], &[&a, &epoch]);
    assert_eq!(code, 1);
    let names = diff_names(&out);
    let allowed = |n: &str| {
        let last = n.rsplit([' ', '.']).next().unwrap_or(n);
        n.ends_with("volume_creation_date")
            || n.ends_with("volume_modification_date")
            || n.ends_with(" recording_date")
            || n.ends_with("root_directory_record.recording_date")
            || (n.starts_with("inode /") && n.ends_with(" times (TF)"))
            || n == "MBR.disk_signature"
            || (n.starts_with("GPT.")
                && ["header_crc32", "disk_guid", "partition_entry_array_crc32", "unique_partition_guid"]
                    .contains(&last))
            || (n.starts_with("/boot/efi.img: FAT ")
                && ["crt_time", "crt_date", "lst_acc_date", "wrt_time", "wrt_date"].contains(&last))
    };
    for n in &names {
        assert!(allowed(n), "unexpected difference {n:?} in\n{out}");
    }
    for want in [
        "PVD.volume_creation_date",
        "SVD.volume_modification_date",
        "dirrec /boot/bzImage recording_date",
        "inode /boot/bzImage times (TF)",
        "MBR.disk_signature",
        "GPT.primary.disk_guid",
        "GPT.backup.header_crc32",
        "GPT.primary.entry[2].unique_partition_guid",
        "/boot/efi.img: FAT dirent /EFI/BOOT/BOOTX64.EFI wrt_date",
        "/boot/efi.img: FAT volume label entry wrt_time",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing in\n{out}");
    }

    // One grafted file's content.
    let dir2 = dir.path().join("other");
    let (tree2, efi2) = inputs(&dir2, "hellO\n");
    let b = build(&dir2, "b.iso", &tree2, &efi2, true, &[]);
    let (code, out) = isoforge_status(&["diff"], &[&a, &b]);
    assert_eq!(code, 1);
    assert_eq!(diff_names(&out), ["file /readme.txt bytes 0x4..0x5"], "{out}");

    // Another GPT disk GUID: the GPT fields and their CRCs.
    let guid = build(
        dir.path(),
        "guid.iso",
        &tree,
        &efi,
        true,
        &["--gpt-disk-guid", "00112233-4455-6677-8899-aabbccddeeff"],
    );
    let (code, out) = isoforge_status(&["diff", "--json"], &[&a, &guid]);
    assert_eq!(code, 1);
    let j = parse_json(&out);
    assert_eq!(j.str("schema"), "isoforge-diff/1");
    assert_eq!(j.get("identical"), &J::Bool(false));
    let mut names: Vec<&str> = j.arr("differences").iter().map(|d| d.str("name")).collect();
    names.sort();
    let mut want = Vec::new();
    for h in ["primary", "backup"] {
        for f in ["disk_guid", "header_crc32", "partition_entry_array_crc32"] {
            want.push(format!("GPT.{h}.{f}"));
        }
        for e in [1, 2] {
            want.push(format!("GPT.{h}.entry[{e}].unique_partition_guid"));
        }
    }
    want.sort();
    assert_eq!(names, want, "{out}");

    // --max bounds the report and says how many more there were.
    let (code, out) = isoforge_status(&["diff", "--max", "2"], &[&a, &guid]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("8 more differences omitted (--max 2)"), "{out}");

    // Inside the FAT image: a new file before BOOTX64.EFI moves it to other clusters.
    let efi2 = dir.path().join("efi2");
    run(Command::new("cp").arg("-r").arg(&efi).arg(&efi2));
    write_file(&efi2.join("EFI/BOOT/AAA.EFI"), vec![7u8; 5000]);
    let e2 = build(dir.path(), "efi2.iso", &tree, &efi2, true, &[]);
    let (code, out) = isoforge_status(&["diff"], &[&a, &e2]);
    assert_eq!(code, 1);
    assert!(out.contains("moved: /boot/efi.img: file /EFI/BOOT/BOOTX64.EFI"), "{out}");
    assert!(out.contains("only-in-b: /boot/efi.img: file /EFI/BOOT/AAA.EFI"), "{out}");
    assert!(out.contains("bytes: /boot/efi.img: FAT.table[0] bytes"), "{out}");

    // A file that changes size moves the files after it: one "moved" line each, and every
    // other byte is named or counted.
    let dir3 = dir.path().join("bigger");
    let (tree3, efi3) = inputs(&dir3, &"x".repeat(5000));
    let c = build(&dir3, "c.iso", &tree3, &efi3, true, &[]);
    let (code, out) = isoforge_status(&["diff", "--max", "100000"], &[&a, &c]);
    assert_eq!(code, 1);
    assert!(out.contains("moved: file /readme.txt"), "{out}");
    assert!(out.contains("content: file /readme.txt size: A 6 bytes, B 5000 bytes"), "{out}");
}

/// `diff --summary`: the verdict first, then one line per cause with counts; the exit status is
/// that of `diff`, and `--max` does not bound the counts.
#[test]
fn diff_summary_groups_by_cause() {
    if !have_isolinux() {
        return;
    }
    let dir = support::tempdir();
    let (tree, efi) = inputs(dir.path(), "hello\n");
    let a = build(dir.path(), "a.iso", &tree, &efi, true, &[]);
    let again = build(dir.path(), "again.iso", &tree, &efi, true, &[]);
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &again]);
    assert_eq!((code, out.as_str()), (0, "identical\n"));

    // Another epoch: dates and times, the ids derived from it, the CRCs over those; nothing else.
    let epoch = build(dir.path(), "epoch.iso", &tree, &efi, true, &["--epoch", "1000000000"]);
    let want = "differ: 96 differences\n\
        dates and times: 85 fields: directory record dates ×28, volume descriptor dates ×4, \
        Rock Ridge times ×13, /boot/efi.img: FAT entry times ×40\n\
        ids and serials: 7 fields: MBR.disk_signature, GPT disk GUIDs ×2, GPT partition GUIDs ×4\n\
        recomputed: 4, from the changes above: GPT header CRCs ×2, GPT entry array CRCs ×2\n";
    for max in ["1000", "2"] {
        let (code, out) = isoforge_status(&["diff", "--summary", "--max", max], &[&a, &epoch]);
        assert_eq!((code, out.as_str()), (1, want));
    }
    let (code, out) = isoforge_status(&["diff", "--summary", "--json"], &[&a, &epoch]);
    assert_eq!(code, 1);
    let j = parse_json(&out);
    assert_eq!(j.str("schema"), "isoforge-diff-summary/1");
    assert_eq!(j.get("identical"), &J::Bool(false));
    assert_eq!(j.num("differences"), 96);
    let groups: Vec<(&str, i128)> =
        j.arr("groups").iter().map(|g| (g.str("cause"), g.num("count"))).collect();
    assert_eq!(groups, [("time", 85), ("id", 7), ("recomputed", 4)], "{out}");
    assert_eq!(j.arr("groups")[2].get("explained"), &J::Bool(true));
    let items: Vec<(&str, i128)> =
        j.arr("groups")[1].arr("items").iter().map(|i| (i.str("name"), i.num("count"))).collect();
    assert_eq!(items, [("MBR.disk_signature", 1), ("GPT disk GUIDs", 2), ("GPT partition GUIDs", 4)]);

    // One file's content, same size: that file, nothing else.
    let dir2 = dir.path().join("other");
    let (tree2, efi2) = inputs(&dir2, "hellO\n");
    let b = build(&dir2, "b.iso", &tree2, &efi2, true, &[]);
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &b]);
    assert_eq!((code, out.as_str()), (1, "differ: 1 difference\nfile contents: 1 file: /readme.txt\n"));

    // A file that grows: named as resized, and the extents that follow are explained by it.
    let dir3 = dir.path().join("bigger");
    let (tree3, efi3) = inputs(&dir3, &"x".repeat(5000));
    let c = build(&dir3, "c.iso", &tree3, &efi3, true, &[]);
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &c]);
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "differ: 7 differences\n\
             file contents: 1 file: /readme.txt (resized)\n\
             layout shifts: 2, explained by the size changes above: directory record extents ×2\n"
        )
    );

    // A file added inside the FAT image: it moves the file after it; the FAT and its directory
    // entries shift, all explained by the added file.
    let efi4 = dir.path().join("efi4");
    run(Command::new("cp").arg("-r").arg(&efi).arg(&efi4));
    write_file(&efi4.join("EFI/BOOT/AAA.EFI"), vec![7u8; 5000]);
    let e4 = build(dir.path(), "efi4.iso", &tree, &efi4, true, &[]);
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &e4]);
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "differ: 16 differences\n\
             file contents: 1 file: /boot/efi.img: /EFI/BOOT/AAA.EFI (added)\n\
             layout shifts: 14, explained by the size changes above: /boot/efi.img: FAT files moved, \
             /boot/efi.img: FAT cluster chains ×2, /boot/efi.img: structures moved or added ×11\n"
        )
    );

    // Another volume id: the labels, and the GUIDs isoforge derives from it.
    let v = dir.path().join("volid.iso");
    run(isoforge()
        .args(["build", "-o"])
        .arg(&v)
        .args(["--volume-id", "OtherVol"])
        .arg("--graft")
        .arg(format!("/={}", tree.display()))
        .args(["--bios-boot", "isolinux/isolinux.bin", "--boot-catalog", "isolinux/boot.cat"])
        .arg("--efi-dir")
        .arg(&efi)
        .arg("--isohybrid-mbr")
        .arg("/usr/lib/ISOLINUX/isohdpfx.bin"));
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &v]);
    assert_eq!(code, 1);
    assert!(out.contains("\nvolume ids and labels: 2 fields: PVD.volume_id, SVD.volume_id\n"), "{out}");
    assert!(!out.contains("unexplained") && !out.contains("\nother: "), "{out}");
}

// ---------------------------------------------------------------------------------------------
// The fuzz targets, replayed on stable: every seed of fuzz/seeds plus deterministic mutations.

#[path = "../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod fuzz_targets;

/// xorshift64*: deterministic mutations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `seed`: byte flips (mostly in the metadata-rich first 96 KiB), a 32-bit field
/// set to 0, all ones or a plausible block number (loops, pointers past the end), or a cut.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    let hot = d.len().min(96 << 10);
    for _ in 0..1 + rng.below(4) {
        if d.len() < 8 {
            break;
        }
        let at = if rng.below(10) < 8 { rng.below(hot - 4) } else { rng.below(d.len() - 4) };
        match rng.below(6) {
            0 | 1 => d[at] ^= 1 << rng.below(8),
            2 => d[at] = rng.next() as u8,
            3 => d[at..at + 4].copy_from_slice(&[0xFF; 4]),
            4 => {
                let lba = rng.below(d.len() / 2048 + 2) as u32;
                d[at..at + 4].copy_from_slice(&lba.to_le_bytes());
            }
            _ => d[at..at + 4].copy_from_slice(&[0; 4]),
        }
    }
    if rng.below(12) == 0 {
        let cut = rng.below(d.len());
        d.truncate(cut);
    }
    d
}

#[test]
fn fuzz_seeds_and_mutations_replay() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    type Target = fn(&[u8]);
    let targets: [(&str, Target, &[&str]); 7] = [
        ("iso", fuzz_targets::iso, &["iso"]),
        ("el_torito", fuzz_targets::el_torito, &["el_torito"]),
        ("part", fuzz_targets::part, &["part"]),
        ("fat", fuzz_targets::fat, &["fat"]),
        ("squashfs", fuzz_targets::squashfs, &["squashfs"]),
        ("inspect", fuzz_targets::inspect, &["inspect", "iso"]),
        ("cpio", fuzz_targets::cpio, &["cpio"]),
    ];
    let rounds: u64 =
        std::env::var("ISOFORGE_FUZZ_REPLAY_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut runs = 0u64;
    for (name, target, dirs) in targets {
        for dir in dirs {
            let mut files: Vec<PathBuf> =
                std::fs::read_dir(seeds.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            assert!(!files.is_empty(), "no seeds in fuzz/seeds/{dir}");
            for f in files {
                let seed = std::fs::read(&f).unwrap();
                target(&seed);
                // Fewer mutations of big seeds: the time per run grows with the size.
                let n = ((64 << 10) * 200 / seed.len().max(1)).clamp(40, 300) as u64 * rounds;
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.len() as u64);
                for k in 0..n {
                    let m = mutate(&seed, &mut rng);
                    let r = std::panic::catch_unwind(|| target(&m));
                    if r.is_err() {
                        let out =
                            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{name}-{k}.bin"));
                        std::fs::write(&out, &m).unwrap();
                        panic!(
                            "fuzz target {name} panicked on mutation {k} of {}: input kept in {}",
                            f.display(),
                            out.display()
                        );
                    }
                    runs += 1;
                }
            }
        }
    }
    eprintln!("{runs} mutated inputs replayed");
}

/// The FAT checks on a mkfs.fat image whose file chain is bent into a directory's cluster:
/// a cross-link and a chain longer than the file's size.
#[test]
fn fat_checks_find_cross_links_and_bad_chains() {
    use isoforge_core::inspect::fat::FatInfo;
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fat/mkfs-fat-64k.img");
    let mut img = std::fs::read(seed).unwrap();
    let info = FatInfo::read(&img).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    let file = info.entries.iter().find(|e| e.path == "/EFI/BOOT/BOOTX64.EFI").unwrap();
    let dir = info.entries.iter().find(|e| e.path == "/EFI").unwrap();
    let last = *file.clusters.last().unwrap();
    // FAT12: entry n at byte n * 3 / 2, low or high 12 bits.
    let g = &info.boot.geometry;
    let at = g.fat_offset(0) as usize + last as usize * 3 / 2;
    let v = u16::from_le_bytes([img[at], img[at + 1]]);
    let target = dir.first_cluster as u16;
    let nv = if last % 2 == 0 { (v & 0xF000) | target } else { (v & 0x000F) | (target << 4) };
    img[at..at + 2].copy_from_slice(&nv.to_le_bytes());
    let broken = FatInfo::read(&img).unwrap();
    let text: Vec<String> =
        broken.problems.iter().map(|p| format!("{} {} {}", p.location(), p.expected, p.found)).collect();
    assert!(
        text.iter().any(|t| t.contains("FAT chain of /EFI/BOOT/BOOTX64.EFI") && t.contains("clusters for")),
        "{text:#?}"
    );
    assert!(text.iter().any(|t| t.contains("cross-linked")), "{text:#?}");
}

// ---------------------------------------------------------------------------------------------
// The embedded squashfs (`/nix-store.squashfs`).

const H_APP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const H_LIB: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A tiny fake store under `root` (an app with a script and a symlink, a lib with one file of
/// two 1 MiB blocks and a tail), and the closure file listing it.
fn squashfs_store(root: &Path, script: &str, big_first: u8) -> PathBuf {
    let store = root.join("nix/store");
    write_file(&store.join(format!("{H_APP}-app/bin/x")), script);
    std::os::unix::fs::symlink("x", store.join(format!("{H_APP}-app/bin/y"))).unwrap();
    let mut big: Vec<u8> =
        (0..(2u32 << 20) + 1000).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    big[0] = big_first;
    write_file(&store.join(format!("{H_LIB}-lib/lib/big")), big);
    let closure = root.join("closure");
    write_file(&closure, format!("/nix/store/{H_APP}-app\n/nix/store/{H_LIB}-lib\n"));
    closure
}

fn store_image(dir: &Path, name: &str, store: &Path, closure: &Path, epoch: &str) -> PathBuf {
    let out = dir.join(name);
    run_ok_stdout(
        isoforge()
            .args(["build", "--volume-id", "STORE", "--compression", "zstd:3", "--epoch", epoch, "--closure"])
            .arg(closure)
            .arg("--store-root")
            .arg(store)
            .arg("-o")
            .arg(&out),
    );
    out
}

fn squashfs_payload(j: &J) -> &J {
    j.arr("embedded")
        .iter()
        .find(|e| e.str("payload.type") == "squashfs")
        .unwrap_or_else(|| panic!("no squashfs payload in {j:?}"))
}

#[test]
fn squashfs_inspect_verify_and_diff() {
    if !tool("unsquashfs") || !tool("mksquashfs") {
        return;
    }
    let dir = support::tempdir();
    let (s1, s2) = (dir.path().join("s1"), dir.path().join("s2"));
    let closure = squashfs_store(&s1, "#!/bin/sh\necho one\n", 0);
    let closure2 = squashfs_store(&s2, "#!/bin/sh\necho two, longer\n", 0xff);
    let a = store_image(dir.path(), "a.iso", &s1, &closure, "1000");
    let e = store_image(dir.path(), "e.iso", &s1, &closure, "2000");
    let c = store_image(dir.path(), "c.iso", &s2, &closure2, "1000");

    // inspect --json agrees with unsquashfs -s and -lln.
    let j = parse_json(&run_ok_stdout(isoforge().args(["inspect", "--json", "--tree"]).arg(&a)));
    let p = squashfs_payload(&j);
    assert_eq!(p.str("name"), "/nix-store.squashfs");
    let (off, len) = (p.num("offset") as usize, p.num("length") as usize);
    let bytes = std::fs::read(&a).unwrap();
    let sq = dir.path().join("a.squashfs");
    std::fs::write(&sq, &bytes[off..off + len]).unwrap();
    let s = run_ok_stdout(Command::new("unsquashfs").arg("-s").arg(&sq));
    let field = |prefix: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {s}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Block size ").parse::<i128>().unwrap(), p.num("payload.superblock.block_size"));
    assert_eq!(field("Compression "), p.str("payload.compressor"));
    assert_eq!(field("Number of inodes ").parse::<i128>().unwrap(), p.num("payload.superblock.inodes"));
    assert_eq!(field("Filesystem size ").parse::<i128>().unwrap(), p.num("payload.superblock.bytes_used"));
    let listing = run_ok_stdout(Command::new("unsquashfs").arg("-lln").arg(&sq));
    // `-rwxr-xr-x 0/0 21 1970-01-01 00:16 squashfs-root/x` (symlinks: `name -> target`).
    let mut theirs: Vec<(String, String, String, i128)> = listing
        .lines()
        .filter(|l| l.len() > 10 && matches!(l.as_bytes()[0], b'd' | b'-' | b'l'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[5].strip_prefix("squashfs-root").unwrap();
            let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
            let size: i128 = if l.starts_with('d') { 0 } else { f[2].parse().unwrap() };
            (path, f[0].to_string(), f[1].to_string(), size)
        })
        .collect();
    let rwx = |kind: &str, mode: i128| -> String {
        let mut s = String::from(match kind {
            "dir" => "d",
            "symlink" => "l",
            _ => "-",
        });
        for i in (0..9).rev() {
            s.push(if mode >> i & 1 == 1 { ['x', 'w', 'r'][i % 3] } else { '-' });
        }
        s
    };
    let mut ours: Vec<(String, String, String, i128)> = p
        .arr("payload.tree")
        .iter()
        .map(|e| {
            (
                e.str("path").to_string(),
                rwx(e.str("kind"), e.num("mode")),
                format!("{}/{}", e.num("uid"), e.num("gid")),
                e.num("size"),
            )
        })
        .collect();
    theirs.sort();
    ours.sort();
    assert_eq!(ours, theirs);
    assert_eq!(
        p.arr("payload.tree").iter().find(|e| e.str("path").ends_with("/bin/y")).unwrap().str("target"),
        "x"
    );

    // verify: clean on isoforge store images and on a mksquashfs image grafted in.
    for iso in [&a, &e, &c] {
        let (code, out) = isoforge_status(&["verify"], &[iso]);
        assert_eq!(code, 0, "{out}");
    }
    let m = dir.path().join("m.sqfs");
    run(Command::new("mksquashfs").arg(s1.join("nix/store")).arg(&m).args([
        "-quiet",
        "-noappend",
        "-comp",
        "xz",
    ]));
    let mi = dir.path().join("m.iso");
    run_ok_stdout(
        isoforge()
            .args(["build", "--volume-id", "M", "--graft"])
            .arg(format!("/m.sqfs={}", m.display()))
            .arg("-o")
            .arg(&mi),
    );
    let (code, out) = isoforge_status(&["verify"], &[&mi]);
    assert_eq!(code, 0, "{out}");
    let (_, text) = isoforge_status(&["inspect"], &[&mi]);
    assert!(text.contains("squashfs 4.0: xz"), "{text}");

    // verify names a corrupted superblock field.
    let bad = broken(&a, "bad.iso", |b| b[off + 4] ^= 0x40);
    let (code, out) = isoforge_status(&["verify"], &[&bad]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/nix-store.squashfs: squashfs.superblock.inodes"), "{out}");

    // diff: epochs.
    let (code, out) = isoforge_status(&["diff", "--max", "1000"], &[&a, &e]);
    assert_eq!(code, 1, "{out}");
    let names = diff_names(&out);
    for want in [
        "/nix-store.squashfs: squashfs.superblock.mkfs_time",
        "/nix-store.squashfs: inode / mtime",
        "/nix-store.squashfs: inode /nix-path-registration mtime",
    ] {
        assert!(
            names.iter().any(|n| n == want || n.starts_with(&format!("{want}: "))),
            "{want} not in {out}"
        );
    }
    assert!(!names.iter().any(|n| n.contains("content block")), "{out}");
    // diff: one closure file changed (the script's size, the big file's first block).
    let (code, out) = isoforge_status(&["diff", "--max", "1000"], &[&a, &c]);
    assert_eq!(code, 1, "{out}");
    let names = diff_names(&out);
    for want in [
        format!("/nix-store.squashfs: inode /{H_APP}-app/bin/x size"),
        format!("/nix-store.squashfs: /{H_LIB}-lib/lib/big content block 0"),
        "/nix-store.squashfs: squashfs.inode_table metadata block 0".to_string(),
    ] {
        assert!(
            names.iter().any(|n| *n == want || n.starts_with(&format!("{want}: "))),
            "{want} not in {out}"
        );
    }
    assert!(
        names.iter().any(|n| n.contains("fragment block 0 (tails of") && n.contains("-app/bin/x")),
        "{out}"
    );
    assert!(!names.iter().any(|n| n.contains("content block 1")), "{out}");
    let (code, out) = isoforge_status(&["diff"], &[&a, &a]);
    assert_eq!(code, 0, "{out}");

    // diff --summary: an epoch is dates and times, the inode table that holds them, and the
    // shifts its new length causes; a changed closure file is named, and its shifts explained.
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &e]);
    assert_eq!(code, 1, "{out}");
    let sq = "/nix-store.squashfs: ";
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("differ: "), "{out}");
    assert!(
        lines[1].starts_with(&format!(
            "dates and times: 18 fields: {sq}squashfs inode mtimes ×2, {sq}squashfs.superblock.mkfs_time, "
        )),
        "{out}"
    );
    assert_eq!(
        lines[2],
        format!("recomputed: 1, from the changes above: {sq}squashfs.inode_table metadata blocks")
    );
    assert!(lines[3].starts_with("layout shifts: 12, explained by the size changes above: "), "{out}");
    assert_eq!(lines.len(), 4, "{out}");
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &c]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1],
        format!(
            "file contents: 3 files: {sq}/{H_APP}-app/bin/x (resized), {sq}/{H_LIB}-lib/lib/big, \
             {sq}/nix-path-registration"
        ),
        "{out}"
    );
    assert!(lines[3].starts_with("layout shifts: 15, explained by the size changes above: "), "{out}");
    assert!(!out.contains("unexplained"), "{out}");
    let (code, out) = isoforge_status(&["diff", "--summary"], &[&a, &a]);
    assert_eq!((code, out.as_str()), (0, "identical\n"));
}
