//! `isoforge fat` against real tools: `mkfs.fat` (same boot sector, FSInfo and FATs),
//! `fsck.fat -n` (clean), mtools `mdir`/`mcopy` (lists and extracts exactly the source).
//!
//! A missing tool skips its test with a note, unless `CI=true`, where it fails.

// Helpers outside #[test] functions panic on purpose, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use isoforge_core::fat::{FatOptions, FatPlan, FatType, FatVolume};
use isoforge_core::time::Epoch;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// `mkfs.fat --invariant`'s creation time, used for its label entry.
const MKFS_INVARIANT_TIME: i64 = 1_426_325_213;

fn bin() -> PathBuf {
    support::isoforge_bin()
}

/// Whether `tool` can run; skips (or fails under CI=true) when it cannot.
fn have(tool: &str) -> bool {
    support::tool(tool)
}

/// Runs a command whatever its exit status.
fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed.
fn ok(cmd: &mut Command) -> Output {
    support::run(cmd)
}

fn isoforge_fat(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.arg("fat").arg("--dir").arg(dir).arg("-o").arg(out).args(extra).env_remove("SOURCE_DATE_EPOCH");
    run(&mut c)
}

fn mkfs(out: &Path, size_kib: u64) {
    ok(Command::new("mkfs.fat")
        .args(["--invariant", "-i", "12345678", "-n", "EFIBOOT", "-C"])
        .arg(out)
        .arg(size_kib.to_string()));
}

fn read_range(path: &Path, len: u64) -> Vec<u8> {
    let mut v = Vec::new();
    fs::File::open(path).unwrap().take(len).read_to_end(&mut v).unwrap();
    v
}

/// Small: the NixOS ESP shape. Medium: long and UTF-8 names, deep and empty directories,
/// empty files, a directory of 320 entries. Large: medium plus multi-MiB files. (No names
/// outside the BMP: mtools 4.0.32 shows each surrogate as '_'; the library round trip covers
/// them.)
fn make_tree(root: &Path, kind: &str) {
    fs::create_dir_all(root.join("EFI/boot")).unwrap();
    fs::write(root.join("EFI/boot/bootx64.efi"), pattern(150_000, 1)).unwrap();
    fs::write(root.join("EFI/boot/grub.cfg"), b"search --set=root --file /EFI/nixos-installer-image\n")
        .unwrap();
    fs::write(root.join("EFI/nixos-installer-image"), b"").unwrap();
    if kind == "small" {
        return;
    }
    fs::create_dir_all(root.join("empty directory")).unwrap();
    fs::write(root.join("Ünïcödé — long name ✓.txt"), "ü".repeat(700)).unwrap();
    fs::write(root.join("README"), b"readme").unwrap();
    fs::write(root.join("a name with spaces and a very long tail that needs many LFN slots.conf"), b"x")
        .unwrap();
    fs::write(root.join("x.tar.gz"), pattern(5000, 2)).unwrap();
    fs::write(root.join(".hidden"), b"dot").unwrap();
    fs::write(root.join("UPPER.TXT"), b"upper").unwrap();
    let mut deep = root.join("deep");
    for i in 0..12 {
        deep = deep.join(format!("level {i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("leaf file.bin"), pattern(3000, 3)).unwrap();
    fs::create_dir_all(root.join("many")).unwrap();
    for i in 0..300 {
        fs::write(root.join(format!("many/entry number {i:03}.data")), pattern(i * 37, i as u8)).unwrap();
    }
    for i in 0..20 {
        fs::write(root.join(format!("many/SHORT{i:02}.BIN")), b"").unwrap();
    }
    if kind == "large" {
        fs::create_dir_all(root.join("big")).unwrap();
        fs::write(root.join("big/kernel image"), pattern(6 * MIB as usize + 123, 4)).unwrap();
        fs::write(root.join("big/initrd"), pattern(3 * MIB as usize, 5)).unwrap();
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(seed % 31)) as u8 ^ seed)
        .collect()
}

fn host_tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn go(p: &Path, prefix: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let path = format!("{prefix}/{}", e.file_name().to_str().unwrap());
            if e.file_type().unwrap().is_dir() {
                out.insert(path.clone(), None);
                go(&e.path(), &path, out);
            } else {
                out.insert(path, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, "", &mut out);
    out
}

fn tmp() -> tempfile::TempDir {
    support::tempdir()
}

/// An empty tree with mkfs.fat's invariant time gives mkfs.fat's image, byte for byte: the
/// boot sector, FSInfo, backup sectors, both FATs and the root directory with its label entry.
#[test]
fn empty_tree_equals_mkfs_fat() {
    if !have("mkfs.fat") {
        return;
    }
    let t = tmp();
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let sizes_kib: &[u64] = &[
        50, 64, 360, 720, 1200, 1440, 2048, 2880, 4000, 4097, 8192, 16383, 16384, 32768, 40000, 65536,
        131_072, 262_144, 300_000, 524_287, 524_288, 600_000, 1_048_576, 2_097_152, 4_194_304, 9_000_000,
    ];
    let mut seen = std::collections::BTreeSet::new();
    for &k in sizes_kib {
        let ours = t.path().join(format!("ours-{k}.img"));
        let theirs = t.path().join(format!("mkfs-{k}.img"));
        mkfs(&theirs, k);
        let out = isoforge_fat(
            &empty,
            &ours,
            &["--size", &format!("{k}K"), "--epoch", &MKFS_INVARIANT_TIME.to_string()],
        );
        assert!(out.status.success(), "{k} KiB: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(fs::metadata(&ours).unwrap().len(), k * KIB);
        let vol_bytes = read_range(&theirs, 512);
        let boot = isoforge_core::fat::bpb::decode_boot_sector(&vol_bytes).unwrap();
        seen.insert(boot.geometry.fat_type);
        // Everything up to the end of the first data cluster; beyond it both are zeros.
        let len = (boot.geometry.data_offset() + boot.geometry.cluster_size()).min(k * KIB);
        let a = read_range(&ours, len);
        let b = read_range(&theirs, len);
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!(
                "{k} KiB ({}): first difference at byte {i}: ours {:#04x}, mkfs.fat {:#04x}",
                boot.geometry.fat_type, a[i], b[i]
            );
        }
        fs::remove_file(&ours).unwrap();
        fs::remove_file(&theirs).unwrap();
    }
    assert_eq!(seen.len(), 3, "sizes span FAT12, FAT16 and FAT32");

    // Without a label: mkfs.fat without -n writes "NO NAME" and no label entry; so do we.
    for k in [2048u64, 614_400] {
        let ours = t.path().join("ours.img");
        let theirs = t.path().join("mkfs.img");
        ok(Command::new("mkfs.fat")
            .args(["--invariant", "-i", "12345678", "-C"])
            .arg(&theirs)
            .arg(k.to_string()));
        let out = isoforge_fat(&empty, &ours, &["--size", &format!("{k}K"), "--label", ""]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let g = isoforge_core::fat::bpb::decode_boot_sector(&read_range(&theirs, 512)).unwrap().geometry;
        let len = g.data_offset() + g.cluster_size();
        assert!(read_range(&ours, len) == read_range(&theirs, len), "{k} KiB without a label");
        fs::remove_file(&ours).unwrap();
        fs::remove_file(&theirs).unwrap();
    }
}

/// With content, the boot sector (and FAT32's backup) still equals mkfs.fat's for the size.
#[test]
fn bpb_equals_mkfs_fat_with_content() {
    if !have("mkfs.fat") {
        return;
    }
    let t = tmp();
    let src = t.path().join("src");
    make_tree(&src, "medium");
    for k in [4096u64, 40_960, 614_400] {
        let ours = t.path().join("ours.img");
        let theirs = t.path().join("mkfs.img");
        mkfs(&theirs, k);
        ok(Command::new(bin())
            .arg("fat")
            .arg("--dir")
            .arg(&src)
            .arg("-o")
            .arg(&ours)
            .args(["--size", &format!("{k}K")]));
        let g = isoforge_core::fat::bpb::decode_boot_sector(&read_range(&theirs, 512)).unwrap().geometry;
        let reserved = usize::from(g.reserved_sectors) * 512;
        let mut a = read_range(&ours, reserved as u64);
        let mut b = read_range(&theirs, reserved as u64);
        assert_eq!(a[..512], b[..512], "{k} KiB boot sector");
        if g.fat_type == FatType::Fat32 {
            // FSInfo (sector 1 and its copy in sector 7): same but for the free count and hint.
            for s in [1usize, 7] {
                let free = s * 512 + 488..s * 512 + 496;
                assert_ne!(a[free.clone()], b[free.clone()], "{k} KiB: FSInfo counts the used clusters");
                a[free.clone()].fill(0);
                b[free].fill(0);
            }
        }
        assert!(a == b, "{k} KiB: reserved area (backup boot sector, FSInfo) equals mkfs.fat's");
        fs::remove_file(&ours).unwrap();
        fs::remove_file(&theirs).unwrap();
    }
}

/// fsck.fat finds nothing wrong, and mtools extracts exactly the source, for FAT12, FAT16 and
/// FAT32 images of small, medium and large trees.
#[test]
fn fsck_clean_and_mtools_extract_exactly() {
    if !have("fsck.fat") || !have("mcopy") || !have("mdir") {
        return;
    }
    let t = tmp();
    let cases: &[(&str, Option<&str>, FatType)] = &[
        ("small", None, FatType::Fat12),
        ("medium", Some("4M"), FatType::Fat12),
        ("medium", Some("40M"), FatType::Fat16),
        ("large", None, FatType::Fat16),
        ("large", Some("600M"), FatType::Fat32),
    ];
    for (i, &(kind, size, ty)) in cases.iter().enumerate() {
        let src = t.path().join(format!("src-{kind}"));
        if !src.exists() {
            make_tree(&src, kind);
        }
        let img = t.path().join(format!("{i}.img"));
        let mut args = vec![];
        if let Some(s) = size {
            args.extend(["--size", s]);
        }
        let out = isoforge_fat(&src, &img, &args);
        assert!(out.status.success(), "{kind} {size:?}: {}", String::from_utf8_lossy(&out.stderr));
        let f = fs::File::open(&img).unwrap();
        let vol = FatVolume::open(&f).unwrap();
        assert_eq!(vol.boot_sector().geometry.fat_type, ty, "{kind} {size:?}");
        assert!(vol.verify().unwrap().is_empty());

        let fsck = ok(Command::new("fsck.fat").arg("-n").arg("-v").arg(&img));
        let text = String::from_utf8_lossy(&fsck.stdout);
        for bad in ["differ", "wrong", "Wrong", "invalid", "bad", "Bad", "orphan", "lost", "Free cluster"] {
            assert!(!text.contains(bad), "{kind} {size:?}: fsck.fat says {bad:?}:\n{text}");
        }

        let listing = ok(Command::new("mdir")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-/", "-a", "-i"])
            .arg(&img)
            .arg("::"));
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("Volume Serial Number is 1234-5678"), "{listing}");
        assert!(listing.contains("Volume in drive : is EFIBOOT"), "{listing}");
        assert!(listing.contains("grub.cfg"), "{listing}");

        let dest = t.path().join(format!("out-{i}"));
        fs::create_dir(&dest).unwrap();
        ok(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-n", "-i"])
            .arg(&img)
            .arg("::/")
            .arg(&dest));
        let (got, want) = (host_tree(&dest), host_tree(&src));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{kind} {size:?}: mcopy -s names"
        );
        for (path, bytes) in &want {
            assert!(got[path] == *bytes, "{kind} {size:?}: {path} extracted by mcopy differs");
        }
        fs::remove_dir_all(&dest).unwrap();
        fs::remove_file(&img).unwrap();
    }
}

/// The same tree gives the same bytes: twice, and after every source mtime changed.
#[test]
fn deterministic() {
    let t = tmp();
    let src = t.path().join("src");
    make_tree(&src, "medium");
    let build = |name: &str| -> PathBuf {
        let p = t.path().join(name);
        let out = isoforge_fat(&src, &p, &["--epoch", "1700000000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        p
    };
    let a = fs::read(build("a.img")).unwrap();
    let b = fs::read(build("b.img")).unwrap();
    assert!(a == b, "two builds differ");
    fn touch_all(p: &Path) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                touch_all(&e.path());
            } else {
                let f = fs::OpenOptions::new().write(true).open(e.path()).unwrap();
                f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890))
                    .unwrap();
            }
        }
    }
    touch_all(&src);
    let c = fs::read(build("c.img")).unwrap();
    assert!(a == c, "source mtimes leaked into the image");
    // The library writes the same bytes as the command.
    let node = isoforge_core::tree::scan(&src).unwrap();
    let plan = FatPlan::new(&node, &FatOptions::new(Epoch(1_700_000_000))).unwrap();
    let mut d = Vec::new();
    plan.write(&mut d).unwrap();
    assert!(a == d, "write() and write_to_file() differ");
}

/// A tree that does not fit is an error naming the image size and a size that fits; a
/// symlink is an error naming its path. Both exit 2 and leave no output file.
#[test]
fn errors_exit_2_and_name_sizes_and_paths() {
    let t = tmp();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("blob"), pattern(3 * MIB as usize, 9)).unwrap();
    let img = t.path().join("x.img");
    let out = isoforge_fat(&src, &img, &["--size", "2M"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("2097152") && err.contains("4194304"), "names both sizes: {err}");
    assert!(!img.exists());

    std::os::unix::fs::symlink("blob", src.join("link")).unwrap();
    let out = isoforge_fat(&src, &img, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/link") && err.contains("symbolic link"), "{err}");
    assert!(!img.exists());

    let out = isoforge_fat(&src, &img, &["--label", "no.dots"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The default size is the nixpkgs rule; SOURCE_DATE_EPOCH sets the dates.
#[test]
fn default_size_and_source_date_epoch() {
    let t = tmp();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), pattern(5 * MIB as usize, 1)).unwrap();
    let img = t.path().join("x.img");
    ok(Command::new(bin())
        .arg("fat")
        .arg("--dir")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .env("SOURCE_DATE_EPOCH", "1709210096"));
    // 5 MiB + 4 KiB -> 6 MiB -> 6.6 MiB -> 6 MiB + 1 MiB.
    assert_eq!(fs::metadata(&img).unwrap().len(), 7 * MIB);
    let f = fs::File::open(&img).unwrap();
    let vol = FatVolume::open(&f).unwrap();
    let e = vol.lookup("/f").unwrap();
    let d = isoforge_core::fat::dir_entry::DosTime::decode(e.entry.wrt_date.get(), e.entry.wrt_time.get());
    assert_eq!(d, (2024, 2, 29, 12, 34, 56));
}

/// 7-Zip, a second independent reader, extracts exactly the source, names outside the BMP
/// (UTF-16 surrogate pairs in the long name) included.
#[test]
fn sevenzip_extracts_exactly() {
    if !have("7z") {
        return;
    }
    let t = tmp();
    let src = t.path().join("src");
    make_tree(&src, "medium");
    fs::write(src.join("emoji \u{1F600} outside the BMP"), b"surrogates").unwrap();
    for size in ["4M", "600M"] {
        let img = t.path().join("x.img");
        let out = isoforge_fat(&src, &img, &["--size", size]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dest = t.path().join("out");
        let mut o = std::ffi::OsString::from("-o");
        o.push(&dest);
        ok(Command::new("7z").env("LC_ALL", "C.UTF-8").arg("x").arg("-y").arg(o).arg(&img));
        let (got, want) = (host_tree(&dest), host_tree(&src));
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{size}: 7z names");
        for (path, bytes) in &want {
            assert!(got[path] == *bytes, "{size}: {path} extracted by 7z differs");
        }
        fs::remove_dir_all(&dest).unwrap();
        fs::remove_file(&img).unwrap();
    }
}
