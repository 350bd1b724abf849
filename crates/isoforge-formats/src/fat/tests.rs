//! Write → read round trips through [`FatVolume`].

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::tree::{scan, Dir, FileNode, FileSource, Meta};
use isoforge_host::snapshot::{FileId, FileTime, HostFile, Snapshot};

fn build(dir: &Node, opts: &FatOptions) -> Vec<u8> {
    let plan = FatPlan::new(dir, opts).unwrap();
    let mut out = Vec::new();
    plan.write(&mut out).unwrap();
    assert_eq!(out.len() as u64, plan.image_size());
    out
}

fn read_all(img: &[u8]) -> BTreeMap<String, Option<Vec<u8>>> {
    let vol = FatVolume::open(img).unwrap();
    assert!(vol.verify().unwrap().is_empty());
    let mut out = BTreeMap::new();
    for e in vol.walk().unwrap() {
        if e.entry.is_dir() {
            out.insert(e.path, None);
        } else {
            let mut bytes = Vec::new();
            vol.read_file(&e.entry, &mut bytes).unwrap();
            out.insert(e.path, Some(bytes));
        }
    }
    out
}

fn host_tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn go(p: &Path, prefix: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        let mut names: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for n in names {
            let path = format!("{prefix}/{}", n.to_str().unwrap());
            let full = p.join(&n);
            if full.is_dir() {
                out.insert(path.clone(), None);
                go(&full, &path, out);
            } else {
                out.insert(path, Some(fs::read(&full).unwrap()));
            }
        }
    }
    go(root, "", &mut out);
    out
}

fn sample(dir: &Path) {
    fs::create_dir_all(dir.join("EFI/boot")).unwrap();
    fs::write(dir.join("EFI/boot/BOOTX64.EFI"), vec![0x4D; 70_000]).unwrap();
    fs::write(dir.join("EFI/boot/grub.cfg"), b"set timeout=10\n").unwrap();
    fs::write(dir.join("EFI/nixos-installer-image"), b"").unwrap();
    fs::create_dir_all(dir.join("empty dir")).unwrap();
    fs::write(dir.join("Ünïcödé name with a long tail.txt"), b"utf8").unwrap();
    fs::write(dir.join("emoji \u{1F600} outside the BMP"), b"surrogate pair").unwrap();
    let deep = dir.join("a/b/c/d/e/f/g/h");
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("leaf"), b"deep").unwrap();
    fs::create_dir_all(dir.join("many")).unwrap();
    for i in 0..300 {
        fs::write(dir.join(format!("many/file number {i:03}.data")), format!("{i}").repeat(i)).unwrap();
    }
}

#[test]
fn round_trip_all_fat_types() {
    let tmp = isoforge_testing::tempdir();
    sample(tmp.path());
    let node = scan(tmp.path()).unwrap();
    let expect = host_tree(tmp.path());
    for (size, ty) in [(4 << 20, FatType::Fat12), (40 << 20, FatType::Fat16), (600 << 20, FatType::Fat32)] {
        let mut opts = FatOptions::new(Epoch::NIX_DEFAULT);
        opts.size = Some(size);
        let img = build(&node, &opts);
        let vol = FatVolume::open(&img[..]).unwrap();
        assert_eq!(vol.boot_sector().geometry.fat_type, ty);
        assert_eq!(vol.boot_sector().serial, DEFAULT_SERIAL);
        assert_eq!(vol.root().unwrap().volume_label, Some(*b"EFIBOOT    "));
        assert_eq!(read_all(&img), expect, "{ty}");
    }
}

#[test]
fn files_are_contiguous_and_sorted() {
    let tmp = isoforge_testing::tempdir();
    sample(tmp.path());
    let node = scan(tmp.path()).unwrap();
    let plan = FatPlan::new(&node, &FatOptions::new(Epoch::NIX_DEFAULT)).unwrap();
    let mut prev = 0;
    for e in &plan.extents {
        assert!(e.run.first > prev, "runs ascending");
        prev = e.run.first + e.run.len - 1;
    }
    let mut img = Vec::new();
    plan.write(&mut img).unwrap();
    let vol = FatVolume::open(&img[..]).unwrap();
    for e in vol.walk().unwrap() {
        if e.entry.entry.first_cluster().get() != 0 {
            let chain = vol.chain(e.entry.entry.first_cluster()).unwrap();
            assert!(chain.windows(2).all(|w| w[1].get() == w[0].get() + 1), "{} contiguous", e.path);
        }
    }
    let root = vol.root().unwrap();
    let names: Vec<&str> = root.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "EFI",
            "a",
            "emoji \u{1F600} outside the BMP",
            "empty dir",
            "many",
            "Ünïcödé name with a long tail.txt"
        ]
    );
    let sub = vol.dir(&root.entries[0]).unwrap();
    assert_eq!(sub.entries[0].entry.name, *b".          ");
    assert_eq!(sub.entries[1].entry.name, *b"..         ");
    assert_eq!(sub.entries[1].entry.first_cluster().get(), 0);
}

#[test]
fn default_size_follows_nixpkgs() {
    let mut d = Dir::default();
    let file = |size| Node {
        kind: NodeKind::File(FileNode {
            source: FileSource::Bytes(Arc::from(vec![0u8; size])),
            size: size as u64,
        }),
        meta: Meta::generated_file(),
    };
    let root = |d: Dir| Node { kind: NodeKind::Dir(d), meta: Meta::implicit_dir() };
    // Empty: du says 4 KiB -> 1 MiB; 1.1 MiB -> 1 MiB; + 1 MiB.
    assert_eq!(default_image_size(&root(Dir::default())), 2 * MIB);
    // 10 MiB of files + 4 KiB: 11 MiB -> 12.1 MiB -> 12 + 1.
    d.entries.insert(b"big".to_vec(), file(10 << 20));
    assert_eq!(default_image_size(&root(d.clone())), 13 * MIB);
    // 9 MiB - 4 KiB of files: exactly 9 MiB -> 9.9 -> 9 + 1.
    d.entries.insert(b"big".to_vec(), file((9 << 20) - 4096));
    assert_eq!(default_image_size(&root(d)), 10 * MIB);
}

#[test]
fn errors_name_the_problem() {
    let tmp = isoforge_testing::tempdir();
    fs::write(tmp.path().join("f"), vec![1u8; 3 << 20]).unwrap();
    let node = scan(tmp.path()).unwrap();
    let mut opts = FatOptions::new(Epoch::NIX_DEFAULT);
    opts.size = Some(2 << 20);
    let err = FatPlan::new(&node, &opts).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FatError::DoesNotFit { suggested, .. } if suggested == 4 << 20), "{msg}");
    assert!(msg.contains("2097152") && msg.contains("4194304"), "{msg}");

    std::os::unix::fs::symlink("f", tmp.path().join("link")).unwrap();
    let node = scan(tmp.path()).unwrap();
    let err = FatPlan::new(&node, &FatOptions::new(Epoch::NIX_DEFAULT)).unwrap_err();
    assert!(err.to_string().contains("/link"), "{err}");
    fs::remove_file(tmp.path().join("link")).unwrap();

    fs::write(tmp.path().join("F"), b"").unwrap();
    let node = scan(tmp.path()).unwrap();
    let err = FatPlan::new(&node, &FatOptions::new(Epoch::NIX_DEFAULT)).unwrap_err();
    assert!(matches!(err, FatError::CaseClash { .. }), "{err}");

    let mut opts = FatOptions::new(Epoch::NIX_DEFAULT);
    opts.label = "bad.label".into();
    assert!(matches!(FatPlan::new(&node, &opts), Err(FatError::BadLabel { .. })));
}

#[test]
fn dates_come_from_the_epoch() {
    let tmp = isoforge_testing::tempdir();
    fs::write(tmp.path().join("x"), b"x").unwrap();
    let node = scan(tmp.path()).unwrap();
    let opts = FatOptions::new(Epoch(1_709_210_096)); // 2024-02-29T12:34:56Z
    let img = build(&node, &opts);
    let vol = FatVolume::open(&img[..]).unwrap();
    let e = vol.lookup("/x").unwrap();
    let d = dir_entry::DosTime::decode(e.entry.wrt_date.get(), e.entry.wrt_time.get());
    assert_eq!(d, (2024, 2, 29, 12, 34, 56));
    assert_eq!(vol.lookup("/X").unwrap(), e);
}

#[test]
fn fixed_root_overflow() {
    // 600 long names in the FAT12 root: each takes 3 slots, far over 512.
    let mut d = Dir::default();
    for i in 0..600 {
        d.entries.insert(
            format!("long name number {i}").into_bytes(),
            Node {
                kind: NodeKind::File(FileNode { source: FileSource::Bytes(Arc::from(&b""[..])), size: 0 }),
                meta: Meta::generated_file(),
            },
        );
    }
    let node = Node { kind: NodeKind::Dir(d), meta: Meta::implicit_dir() };
    let err = FatPlan::new(&node, &FatOptions::new(Epoch::NIX_DEFAULT)).unwrap_err();
    assert!(matches!(err, FatError::RootDirFull { max: 512, .. }), "{err}");
}

#[test]
fn unsupported_entries_are_errors() {
    let file =
        |source, size| Node { kind: NodeKind::File(FileNode { source, size }), meta: Meta::generated_file() };
    let mut d = Dir::default();
    // Planned, never opened: a made-up snapshot of a 5 GiB file.
    let snapshot =
        Snapshot { id: FileId { dev: 0, ino: 0 }, size: 5 << 30, ctime: FileTime { sec: 1, nsec: 0 } };
    let huge = HostFile { path: "/nonexistent".into(), snapshot };
    d.entries.insert(b"huge".to_vec(), file(FileSource::Host(huge), 5 << 30));
    let node = Node { kind: NodeKind::Dir(d), meta: Meta::implicit_dir() };
    let err = FatPlan::new(&node, &FatOptions::default()).unwrap_err();
    assert!(matches!(&err, FatError::FileTooLarge { path, .. } if path == "/huge"), "{err}");

    let mut d = Dir::default();
    let mut sub = Dir::default();
    sub.entries.insert(b"efi.img".to_vec(), file(FileSource::Generated(7), 100));
    d.entries.insert(b"boot".to_vec(), Node { kind: NodeKind::Dir(sub), meta: Meta::implicit_dir() });
    let node = Node { kind: NodeKind::Dir(d), meta: Meta::implicit_dir() };
    let err = FatPlan::new(&node, &FatOptions::default()).unwrap_err();
    assert!(matches!(&err, FatError::Generated { path, id: 7 } if path == "/boot/efi.img"), "{err}");

    let not_dir = file(FileSource::Bytes(Arc::from(&b"x"[..])), 1);
    assert!(matches!(FatPlan::new(&not_dir, &FatOptions::default()), Err(FatError::RootNotDir)));
}

#[test]
fn no_label_means_no_label_entry() {
    let node = Node { kind: NodeKind::Dir(Dir::default()), meta: Meta::implicit_dir() };
    let opts = FatOptions { label: String::new(), ..FatOptions::default() };
    let img = build(&node, &opts);
    let vol = FatVolume::open(&img[..]).unwrap();
    assert_eq!(vol.boot_sector().label, bpb::NO_NAME);
    assert_eq!(vol.root().unwrap().volume_label, None);
}

#[test]
fn sparse_and_streamed_writes_agree() {
    let tmp = isoforge_testing::tempdir();
    sample(tmp.path());
    let node = scan(tmp.path()).unwrap();
    let plan = FatPlan::new(&node, &FatOptions::default()).unwrap();
    let mut streamed = Vec::new();
    plan.write(&mut streamed).unwrap();
    let path = tmp.path().join("out.img");
    let mut f = fs::File::create(&path).unwrap();
    fs::write(&path, b"old contents are truncated").unwrap();
    plan.write_to_file(&mut f).unwrap();
    assert!(fs::read(&path).unwrap() == streamed);
}

#[test]
fn reader_reports_damage_instead_of_panicking() {
    let tmp = isoforge_testing::tempdir();
    sample(tmp.path());
    let node = scan(tmp.path()).unwrap();
    let img = build(&node, &FatOptions::default());
    // Short images: every prefix length class.
    for len in [0usize, 100, 511, 512, 1000, 4096] {
        let r = FatVolume::open(&img[..len]).and_then(|v| v.walk().map(|_| ()));
        assert!(r.is_err(), "prefix of {len} bytes");
    }
    let vol = FatVolume::open(&img[..]).unwrap();
    let g = vol.boot_sector().geometry.clone();
    let e = vol.lookup("/EFI/boot/BOOTX64.EFI").unwrap();
    let first = e.entry.first_cluster().get();
    // A loop in the chain: the file's first cluster points to itself (FAT12 entry).
    let mut bad = img.clone();
    let off = g.fat_offset(0) as usize + first as usize * 3 / 2;
    let v = u16::from_le_bytes([bad[off], bad[off + 1]]);
    let nv = if first % 2 == 0 { (v & 0xF000) | first as u16 } else { (v & 0x000F) | ((first as u16) << 4) };
    bad[off..off + 2].copy_from_slice(&nv.to_le_bytes());
    let vol = FatVolume::open(&bad[..]).unwrap();
    assert!(matches!(vol.chain(e.entry.first_cluster()), Err(FatError::Corrupt { .. })));
    // ... and the second FAT now differs from the first.
    let problems = vol.verify().unwrap();
    assert!(matches!(problems.as_slice(), [FatError::Corrupt { field: "FAT copy", .. }]), "{problems:?}");
    // A broken boot signature.
    let mut bad = img.clone();
    bad[510] = 0;
    assert!(matches!(FatVolume::open(&bad[..]), Err(FatError::Corrupt { offset: 510, .. })));
}
