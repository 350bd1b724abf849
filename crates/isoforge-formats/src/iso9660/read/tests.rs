//! Round trips through the isoforge writer, and corrupted images.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::*;
use crate::iso9660::plan::{BiosBoot, IsoOptions};
use crate::iso9660::susp::{Ce, FixedEntry};
use crate::iso9660::write::{write_image, ImageFrame, NoGenerated};
use crate::part::layout::{plan_system_area, Layout, SystemAreaRequest};
use crate::time::Epoch;

/// The image `isoforge_core::image::build_to_path` writes for `/=dir` and these ISO options
/// (layout `none`: a zero system area and xorriso's padding), with the same steps.
fn build(dir: &Path, tweak: impl FnOnce(&mut IsoOptions)) -> Vec<u8> {
    let mut iso = IsoOptions::new("TESTVOL", Epoch::NIX_DEFAULT);
    tweak(&mut iso);
    let mut tree = crate::tree::Tree::new();
    tree.graft("/", dir).unwrap();
    let mut plan = crate::iso9660::plan::plan(tree, &iso).unwrap();
    let bios_boot = iso.bios_boot.as_ref().and_then(|b| plan.find_file(&b.image)).map(|f| f.lba);
    let area = plan_system_area(&SystemAreaRequest {
        layout: Layout::None,
        mbr_template: None,
        bios_boot,
        efi_image: None,
        iso_blocks: plan.data_end.get(),
        pad_blocks: SystemAreaRequest::XORRISO_PAD_BLOCKS,
        volume_id: &iso.volume_id,
        epoch: iso.epoch,
        disk_guid: None,
    })
    .unwrap();
    plan.volume_blocks = area.image_blocks;
    let frame = ImageFrame {
        system_area: area.encode_system_area(),
        image_size: area.image_bytes(),
        tail: Vec::new(),
    };
    let mut out = std::io::Cursor::new(Vec::new());
    write_image(&plan, &frame, &mut NoGenerated, &mut out).unwrap();
    out.into_inner()
}

/// What the host tree holds: path → (kind, size or link target, executable).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Dir,
    File(Vec<u8>, bool),
    Link(Vec<u8>),
}

fn scan(root: &Path) -> BTreeMap<Vec<u8>, Host> {
    fn go(dir: &Path, prefix: &[u8], out: &mut BTreeMap<Vec<u8>, Host>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(e.file_name().as_bytes());
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.file_type().is_symlink() {
                out.insert(
                    path,
                    Host::Link(fs::read_link(e.path()).unwrap().as_os_str().as_bytes().to_vec()),
                );
            } else if md.is_dir() {
                out.insert(path.clone(), Host::Dir);
                go(&e.path(), &path, out);
            } else {
                let exec = md.permissions().mode() & 0o111 != 0;
                out.insert(path, Host::File(fs::read(e.path()).unwrap(), exec));
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, b"", &mut out);
    out
}

/// Asserts that the Rock Ridge listing equals the host tree: names, kinds, contents, modes
/// (rationalised like `xorriso -r`) and symlink targets.
fn assert_same_tree(img: &IsoImage<'_>, listing: &Listing, host: &BTreeMap<Vec<u8>, Host>) {
    let mut seen = BTreeMap::new();
    for e in &listing.entries[1..] {
        let rr = e.rr.as_ref().expect("Rock Ridge on every record");
        let got = match e.kind {
            EntryKind::Dir => {
                assert_eq!(rr.mode, Some(0o040_555), "{}", e.path_lossy());
                Host::Dir
            }
            EntryKind::File => {
                let mut data = Vec::new();
                assert_eq!(img.read_file(e, &mut data).unwrap(), e.size);
                let exec = rr.mode == Some(0o100_555);
                assert!(exec || rr.mode == Some(0o100_444), "{} mode {:?}", e.path_lossy(), rr.mode);
                Host::File(data, exec)
            }
            EntryKind::Symlink => {
                assert_eq!(rr.mode, Some(0o120_777));
                Host::Link(rr.symlink.clone().unwrap())
            }
        };
        assert!(seen.insert(e.path.clone(), got).is_none(), "twice: {}", e.path_lossy());
    }
    assert_eq!(seen.len(), host.len());
    for (path, want) in host {
        assert_eq!(seen.get(path), Some(want), "{}", String::from_utf8_lossy(path));
    }
}

fn sample_tree(root: &Path) {
    fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/deep.bin"), (0..5000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>())
        .unwrap();
    fs::write(root.join("a/big.bin"), vec![0xA5u8; 3 * 2048 + 17]).unwrap();
    let long = "n".repeat(255);
    fs::write(root.join(&long), b"long name").unwrap();
    fs::create_dir(root.join(format!("d{}", "x".repeat(254)))).unwrap();
    symlink("../lib/libc.so.6", root.join("a/rel")).unwrap();
    symlink("/nix/store/abc-foo/bin/sh", root.join("abs")).unwrap();
    symlink(format!("/{}/x/../y", "c".repeat(300)), root.join("longlink")).unwrap();
    symlink(".", root.join("dot")).unwrap();
    fs::write(root.join("Mixed Case.TXT"), b"m").unwrap();
    fs::write(root.join("été.txt"), "é".as_bytes()).unwrap();
}

#[test]
fn round_trip_rock_ridge_and_joliet() {
    let dir = isoforge_testing::tempdir();
    sample_tree(dir.path());
    let image = build(dir.path(), |_| {});
    let img = IsoImage::open(&image).unwrap();
    assert!(img.problems().is_empty(), "{:?}", img.problems());
    let pvd = img.pvd();
    assert_eq!(pvd.volume_id, "TESTVOL");
    assert_eq!(pvd.preparer_id, "ISOFORGE");
    assert_eq!(pvd.block_size, 2048);
    assert_eq!(u64::from(pvd.volume_space_size) * 2048, image.len() as u64);
    assert_eq!(pvd.creation_date.parsed.unwrap().unix_seconds(), Epoch::NIX_DEFAULT.0);
    assert_eq!(pvd.expiration_date.parsed, None);
    assert_eq!(pvd.file_structure_version, 1);
    let j = img.joliet().unwrap();
    assert_eq!(j.joliet, Some(JolietLevel::Level3));
    assert_eq!(j.volume_id, "TESTVOL");
    assert_eq!(
        img.descriptors().iter().map(|d| d.role).collect::<Vec<_>>(),
        ["primary", "joliet", "terminator"]
    );

    let report = img.check().unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    let listing = &report.primary;
    assert!(listing.has_rock_ridge());
    assert_eq!(listing.susp.as_ref().unwrap().extensions, vec![b"RRIP_1991A".to_vec()]);
    assert_eq!(listing.entries[0].rr.as_ref().unwrap().mode, Some(0o040_555));
    assert_same_tree(&img, listing, &scan(dir.path()));
    let e = listing.get(b"/hello.txt").unwrap();
    assert_eq!(e.iso_identifier, b"HELLO.TXT;1");
    assert_eq!(parse_dir_datetime(&e.recording_date).unwrap().unix_seconds(), Epoch::NIX_DEFAULT.0);
    let deep = listing.get(b"/a/b/c/deep.bin").unwrap();
    assert_eq!(deep.depth, 4);
    assert_eq!(listing.entries[deep.parent].path, b"/a/b/c");

    // Joliet: same files (symlinks have no Joliet record), names up to 64 characters.
    let joliet = report.joliet.as_ref().unwrap();
    let jnames: Vec<String> = joliet.entries.iter().map(Entry::path_lossy).collect();
    for want in ["/hello.txt", "/run.sh", "/a/b/c/deep.bin", "/Mixed Case.TXT", "/été.txt"] {
        assert!(jnames.iter().any(|n| n == want), "{want} not in {jnames:?}");
    }
    assert!(!jnames.iter().any(|n| n.ends_with("/abs")));
    let jdeep = joliet.get("/a/b/c/deep.bin".as_bytes()).unwrap();
    assert_eq!(jdeep.extents, deep.extents);
    assert!(jdeep.rr.is_none());
    assert_eq!(report.path_tables.len(), 2);
    assert_eq!(report.path_tables[0].records.len(), 5);
    assert!(report.el_torito.is_none());
}

#[test]
fn two_thousand_entries_and_deep_trees() {
    let dir = isoforge_testing::tempdir();
    fs::create_dir(dir.path().join("many")).unwrap();
    for i in 0..2000 {
        fs::write(dir.path().join(format!("many/file-{i:04}.dat")), i.to_string()).unwrap();
    }
    let mut deep = dir.path().to_path_buf();
    for i in 0..60 {
        deep.push(format!("level{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom"), b"bottom").unwrap();
    let image = build(dir.path(), |_| {});
    let img = IsoImage::open(&image).unwrap();
    let report = img.check().unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_same_tree(&img, &report.primary, &scan(dir.path()));
    let many = report.primary.entries.iter().filter(|e| e.path.starts_with(b"/many/")).count();
    assert_eq!(many, 2000);
    assert_eq!(report.joliet.as_ref().unwrap().entries.len(), report.primary.entries.len());
    let bottom = report.primary.entries.iter().find(|e| e.name == b"bottom").unwrap();
    assert_eq!(bottom.depth, 61);

    // The depth limit stops the walk with one note, without failing.
    let limits = Limits { max_depth: 10, ..Limits::default() };
    let img = IsoImage::open_with(&image, limits).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert!(l.entries.iter().all(|e| e.depth <= 11));
    assert_eq!(l.problems.iter().filter(|p| p.kind == Some(ProblemKind::LimitExceeded)).count(), 1);
    let limits = Limits { max_entries: 100, ..Limits::default() };
    let img = IsoImage::open_with(&image, limits).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert!(l.entries.len() <= 100, "{}", l.entries.len());
    assert!(l.problems.iter().any(|p| p.field == "max_entries"));
}

fn boot_file() -> Vec<u8> {
    (0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

#[test]
fn el_torito_catalog_and_boot_info_table() {
    let dir = isoforge_testing::tempdir();
    fs::create_dir(dir.path().join("isolinux")).unwrap();
    fs::write(dir.path().join("isolinux/isolinux.bin"), boot_file()).unwrap();
    fs::write(dir.path().join("README"), b"read me").unwrap();
    for table in [true, false] {
        let image = build(dir.path(), |o| {
            o.bios_boot = Some(BiosBoot {
                image: "isolinux/isolinux.bin".into(),
                load_size: 4,
                boot_info_table: table,
            });
        });
        let img = IsoImage::open(&image).unwrap();
        let br = *img.boot_record().unwrap();
        assert_eq!(br.lba, 17);
        let report = img.check().unwrap();
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        let et = report.el_torito.unwrap();
        assert_eq!(et.catalog_lba, br.catalog_lba);
        assert_eq!(et.entries.len(), 1);
        let bin = report.primary.get(b"/isolinux/isolinux.bin").unwrap();
        assert_eq!(et.entries[0].entry.load_rba, bin.first_lba());
        assert_eq!(et.entries[0].entry.sector_count, 4);
        assert!(et.entries[0].bootable);
        assert!(report.primary.get(b"/.boot.cat").is_some());
        let bi = et.boot_info.unwrap();
        assert_eq!(bi.present, table);
        assert_eq!(bi.file.as_deref(), Some(&b"/isolinux/isolinux.bin"[..]));
        let mut data = Vec::new();
        img.read_file(bin, &mut data).unwrap();
        assert_eq!(data[64..], boot_file()[64..]);
        if table {
            assert_eq!(
                [bi.pvd_lba, bi.file_lba, bi.file_length, bi.checksum],
                [FieldCheck::Valid; 4],
                "{bi:?}"
            );
            assert_eq!(bi.table.file_length.get(), 2048);
        } else {
            assert_eq!(data, boot_file());
            assert!(matches!(bi.pvd_lba, FieldCheck::Invalid { .. }));
        }
        // A wrong checksum is reported with its offset.
        if table {
            let mut bad = image.clone();
            let at = bin.first_lba() as usize * 2048 + 8 + 12;
            bad[at] ^= 1;
            let img = IsoImage::open(&bad).unwrap();
            let p = img.check().unwrap().problems;
            assert_eq!(p.len(), 1, "{p:#?}");
            assert_eq!(
                (p[0].kind, p[0].field.as_ref(), p[0].offset),
                (Some(ProblemKind::BootInfoTable), "bi_csum", Some(at as u64))
            );
        }
    }
}

// ---- corrupted images ----

fn small_image() -> (tempfile::TempDir, Vec<u8>) {
    let dir = isoforge_testing::tempdir();
    sample_tree(dir.path());
    let image = build(dir.path(), |_| {});
    (dir, image)
}

fn put_both32(image: &mut [u8], at: u64, v: u32) {
    let at = at as usize;
    image[at..at + 4].copy_from_slice(&v.to_le_bytes());
    image[at + 4..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn kinds(p: &[Finding]) -> Vec<ProblemKind> {
    p.iter().map(|p| p.kind.expect("the ISO 9660 reader classifies every finding")).collect()
}

#[test]
fn truncated_images_never_panic() {
    let (_d, image) = small_image();
    for cut in (0..=image.len()).step_by(512) {
        let part = &image[..cut];
        match IsoImage::open(&part) {
            Err(ReadError::NotIso { .. }) => assert!(cut < 18 * 2048, "cut {cut}"),
            Err(e) => panic!("cut {cut}: {e}"),
            Ok(img) => {
                let report = img.check().unwrap();
                if cut < image.len() {
                    assert!(kinds(img.problems()).contains(&ProblemKind::ImageTruncated));
                    assert!(!report.problems.is_empty());
                } else {
                    assert!(report.problems.is_empty());
                }
                for e in report.primary.entries.iter().filter(|e| e.kind == EntryKind::File) {
                    let r = img.read_file(e, &mut std::io::sink());
                    let end = u64::from(e.first_lba()) * 2048 + e.size;
                    assert_eq!(r.is_ok(), e.size == 0 || end <= cut as u64, "{}", e.path_lossy());
                }
            }
        }
    }
}

#[test]
fn looping_directory_extent() {
    let (_d, mut image) = small_image();
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    let root_lba = l.entries[0].first_lba();
    let c = l.get(b"/a/b/c").unwrap().clone();
    drop(img);
    // /a/b/c points back at the root: the root is read once, /a/b/c is listed, not descended.
    put_both32(&mut image, c.record_offset + 2, root_lba);
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    let loops: Vec<_> = l.problems.iter().filter(|p| p.kind == Some(ProblemKind::DirectoryLoop)).collect();
    assert_eq!(loops.len(), 1, "{:#?}", l.problems);
    assert_eq!(loops[0].offset, Some(c.record_offset + 2));
    assert!(l.get(b"/a/b/c").is_some());
    assert!(l.get(b"/a/b/c/deep.bin").is_none());
    // The path table still names the old extent: reported by the cross-check.
    let report = img.check().unwrap();
    assert!(kinds(&report.problems).contains(&ProblemKind::PathTableMismatch), "{:#?}", report.problems);
}

/// The root "." record's CE entry: (offset of the entry in the image, block, offset, length).
fn root_ce(image: &[u8], img: &IsoImage<'_>) -> (usize, u32, u32, u32) {
    let root = img.pvd().root.extent_lba as usize * 2048;
    let len = usize::from(image[root]);
    let rec = &image[root..root + len];
    let i = rec.windows(4).position(|w| w == b"CE\x1c\x01").unwrap();
    let f = |o: usize| u32::from_le_bytes(rec[i + 4 + o..i + 8 + o].try_into().unwrap());
    (root + i, f(0), f(8), f(16))
}

#[test]
fn looping_and_outside_continuation_areas() {
    let (_d, image) = small_image();
    let img = IsoImage::open(&image).unwrap();
    let (ce_at, lba, off, _len) = root_ce(&image, &img);
    drop(img);

    // The area starts with a CE pointing at itself.
    let mut looped = image.clone();
    let area = lba as usize * 2048 + off as usize;
    looped[area..area + 28].copy_from_slice(&Ce::new(lba, off, 28).encode());
    looped[area + 28..area + 32].copy_from_slice(b"ST\x04\x01");
    let img = IsoImage::open(&looped).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    // The ER entry lived in the overwritten area: its absence is reported too.
    assert_eq!(
        kinds(&l.problems),
        [ProblemKind::ContinuationLoop, ProblemKind::BadSusp],
        "{:#?}",
        l.problems
    );

    // A CE beyond the end of the image, and one of 4 GiB.
    for (b, o, n) in [(0xFFFF_FF00, 0, 100), (lba, off, u32::MAX), (lba, 5000, 10)] {
        let mut bad = image.clone();
        put_both32(&mut bad, ce_at as u64 + 4, b);
        put_both32(&mut bad, ce_at as u64 + 12, o);
        put_both32(&mut bad, ce_at as u64 + 20, n);
        let img = IsoImage::open(&bad).unwrap();
        let l = img.walk(Hierarchy::Primary).unwrap();
        assert_eq!(
            kinds(&l.problems),
            [ProblemKind::ContinuationOutside, ProblemKind::BadSusp],
            "{:#?}",
            l.problems
        );
        assert!(l.susp.unwrap().extensions.is_empty());
    }
}

#[test]
fn huge_sizes_are_bounded() {
    let (_d, image) = small_image();
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    let a = l.get(b"/a").unwrap().clone();
    let f = l.get(b"/hello.txt").unwrap().clone();
    drop(img);

    // A 4 GiB directory: not read (no 4 GiB allocation), reported.
    let mut bad = image.clone();
    put_both32(&mut bad, a.record_offset + 10, u32::MAX);
    let img = IsoImage::open(&bad).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert_eq!(kinds(&l.problems), [ProblemKind::LimitExceeded], "{:#?}", l.problems);
    assert!(l.get(b"/a/big.bin").is_none());

    // A 4 GiB file: listed, reported, and read_file refuses it.
    let mut bad = image.clone();
    put_both32(&mut bad, f.record_offset + 10, u32::MAX);
    let img = IsoImage::open(&bad).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert_eq!(kinds(&l.problems), [ProblemKind::ExtentOutsideImage]);
    let e = l.get(b"/hello.txt").unwrap();
    assert!(matches!(img.read_file(e, &mut std::io::sink()), Err(ReadError::ExtentOutsideImage { .. })));

    // A 4 GiB path table.
    let mut bad = image.clone();
    put_both32(&mut bad, 16 * 2048 + 132, u32::MAX);
    let img = IsoImage::open(&bad).unwrap();
    let t = img.path_tables(Hierarchy::Primary).unwrap();
    assert!(kinds(&t.problems).iter().all(|k| *k == ProblemKind::LimitExceeded), "{:#?}", t.problems);
    assert!(t.records.is_empty());

    // Never-ending descriptor set: every block from 16 on is a supplementary descriptor.
    let mut bad = image.clone();
    for b in 17..17 + 70 {
        let at = b * 2048;
        if at + 2048 <= bad.len() {
            bad[at] = 2;
            bad[at + 1..at + 6].copy_from_slice(b"CD001");
        }
    }
    let img = IsoImage::open(&bad).unwrap();
    assert!(img.descriptors().len() <= 64);
}

#[test]
fn both_endian_mismatches_and_bad_records() {
    let (_d, image) = small_image();
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    let f = l.get(b"/hello.txt").unwrap().clone();
    let root_lba = l.entries[0].first_lba() as usize;
    drop(img);

    let mut bad = image.clone();
    bad[16 * 2048 + 84] ^= 0x40; // volume space size, big-endian copy
    bad[f.record_offset as usize + 17] ^= 1; // data length, big-endian copy
    let img = IsoImage::open(&bad).unwrap();
    let p = img.problems();
    assert_eq!(kinds(p), [ProblemKind::BothEndianMismatch]);
    assert_eq!((p[0].field.as_ref(), p[0].offset), ("volume_space_size", Some(16 * 2048 + 80)));
    assert!(
        p[0].to_string()
            .contains("error: primary volume descriptor volume_space_size at byte 32848 (0x8050)"),
        "{}",
        p[0]
    );
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert_eq!(kinds(&l.problems), [ProblemKind::BothEndianMismatch]);
    assert_eq!(l.problems[0].offset, Some(f.record_offset + 10));
    assert_eq!(l.get(b"/hello.txt").unwrap().size, 12, "the little-endian copy is used");

    // A record length of 20 in the root: the rest of its block is skipped.
    let mut bad = image.clone();
    let second = root_lba * 2048 + usize::from(bad[root_lba * 2048]);
    let third = second + usize::from(bad[second]);
    bad[third] = 20;
    let img = IsoImage::open(&bad).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert_eq!(kinds(&l.problems), [ProblemKind::BadRecordLength], "{:#?}", l.problems);

    // A record running over the block boundary: read anyway, reported.
    let dir = isoforge_testing::tempdir();
    fs::create_dir(dir.path().join("many")).unwrap();
    for i in 0..200 {
        fs::write(dir.path().join(format!("many/file-{i:04}.dat")), b"x").unwrap();
    }
    let mut image = build(dir.path(), |_| {});
    let img = IsoImage::open(&image).unwrap();
    let many = img.walk(Hierarchy::Primary).unwrap().get(b"/many").unwrap().extents[0];
    drop(img);
    // The last record of some block, followed by enough padding to reach past the boundary.
    let start = many.0 as usize * 2048;
    let (last, room) = (0..many.1 as usize / 2048)
        .find_map(|b| {
            let mut pos = start + b * 2048;
            while pos + usize::from(image[pos]) < start + (b + 1) * 2048
                && image[pos + usize::from(image[pos])] != 0
            {
                pos += usize::from(image[pos]);
            }
            let room = start + (b + 1) * 2048 - pos;
            (room <= 253 && room > usize::from(image[pos])).then_some((pos, room))
        })
        .unwrap();
    image[last] = (room + 2) as u8;
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    let p: Vec<_> = l.problems.iter().filter(|p| p.kind == Some(ProblemKind::RecordCrossesBlock)).collect();
    assert_eq!(p.len(), 1, "{:#?}", l.problems);
    assert_eq!(p[0].offset, Some(last as u64));
}

#[test]
fn multi_extent_records_merge() {
    let dir = isoforge_testing::tempdir();
    fs::write(dir.path().join("a"), vec![b'a'; 3000]).unwrap();
    fs::write(dir.path().join("b"), vec![b'b'; 100]).unwrap();
    let mut image = build(dir.path(), |_| {});
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    let (a, b) = (l.get(b"/a").unwrap().clone(), l.get(b"/b").unwrap().clone());
    drop(img);
    assert_eq!((a.iso_identifier.as_slice(), b.iso_identifier.as_slice()), (&b"A.;1"[..], &b"B.;1"[..]));
    // Make "a" a two-extent file whose second extent is b's: flag 0x80 and the same identifier.
    image[a.record_offset as usize + 25] |= 0x80;
    image[b.record_offset as usize + 33] = b'A';
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert!(l.problems.is_empty(), "{:#?}", l.problems);
    let m = l.get(b"/a").unwrap();
    assert_eq!(m.extents, vec![a.extents[0], b.extents[0]]);
    assert_eq!(m.size, 3100);
    assert!(l.get(b"/b").is_none());
    let mut data = Vec::new();
    img.read_file(m, &mut data).unwrap();
    assert_eq!(data, [vec![b'a'; 3000], vec![b'b'; 100]].concat());

    // An unterminated run is reported and still listed.
    image[b.record_offset as usize + 25] |= 0x80;
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    assert_eq!(kinds(&l.problems), [ProblemKind::BadRecord]);
    assert_eq!(l.get(b"/a").unwrap().size, 3100);
}

/// Deterministic byte corruption of the metadata blocks: reading must never panic.
#[test]
fn random_corruption_never_panics() {
    let (_d, image) = small_image();
    let img = IsoImage::open(&image).unwrap();
    let l = img.walk(Hierarchy::Primary).unwrap();
    let meta_end = l
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File && e.size > 0)
        .map(|e| e.first_lba())
        .min()
        .unwrap() as usize
        * 2048;
    drop(img);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let mut bad = image.clone();
        for _ in 0..8 {
            let at = 16 * 2048 + (next() as usize) % (meta_end - 16 * 2048);
            bad[at] = next() as u8;
        }
        if let Ok(img) = IsoImage::open(&bad) {
            let _ = img.check();
        }
    }
}

/// A source that fails after a number of bytes with an I/O error (not a short read).
struct Failing<'a>(&'a [u8], u64);

impl crate::read_at::ReadAt for Failing<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset + buf.len() as u64 > self.1 {
            return Err(std::io::Error::other("device error"));
        }
        self.0.read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

#[test]
fn io_errors_are_errors() {
    let (_d, image) = small_image();
    let src = Failing(&image, 20 * 2048);
    let img = IsoImage::open(&src).unwrap();
    let e = img.check().unwrap_err();
    assert!(matches!(e, ReadError::Io(_)), "{e}");
    assert!(e.to_string().contains("device error"), "{e}");
    let src = Failing(&image, 100);
    assert!(matches!(IsoImage::open(&src), Err(ReadError::Io(_))));
}

#[test]
fn dates() {
    let dec = |raw: &[u8; 17]| parse_dec_datetime(&DecDateTime::from_bytes(*raw));
    let dir = |raw: [u8; 7]| parse_dir_datetime(&DirDateTime::from_bytes(raw));
    let d = dec(b"2024022912345678\x04").unwrap();
    assert_eq!(
        (d.year, d.month, d.day, d.hour, d.minute, d.second, d.hundredths),
        (2024, 2, 29, 12, 34, 56, 78)
    );
    assert_eq!(d.unix_seconds(), 1_709_210_096 - 3600);
    assert_eq!(dec(b"0000000000000000\0"), None);
    assert_eq!(dec(&[0; 17]), None);
    assert_eq!(dec(b"2024132912345678\0"), None);
    assert_eq!(dec(b"2024x22912345678\0"), None);
    assert_eq!(dec(b"2024022912345678\xfc").unwrap().gmt_offset, -4);
    let d = dir([124, 2, 29, 12, 34, 56, 0]).unwrap();
    assert_eq!(d.unix_seconds(), 1_709_210_096);
    assert_eq!(dir([124, 2, 29, 12, 34, 56, 4]).unwrap().gmt_offset, 4);
    assert_eq!(dir([0; 7]), None);
}

/// Extreme limits (all zero, all maximal) change what is read, never panic.
#[test]
fn extreme_limits() {
    let dir = isoforge_testing::tempdir();
    sample_tree(dir.path());
    fs::create_dir(dir.path().join("isolinux")).unwrap();
    fs::write(dir.path().join("isolinux/isolinux.bin"), boot_file()).unwrap();
    let image = build(dir.path(), |o| {
        o.bios_boot =
            Some(BiosBoot { image: "isolinux/isolinux.bin".into(), load_size: 4, boot_info_table: true });
    });
    let zero = Limits {
        max_descriptors: 0,
        max_directory_bytes: 0,
        max_entries: 0,
        max_depth: 0,
        max_ce_chain: 0,
        max_ce_area: 0,
        max_ce_bytes_total: 0,
        max_name_bytes_total: 0,
        max_path_table_bytes: 0,
        max_catalog_bytes: 0,
        max_problems: 0,
    };
    assert!(matches!(IsoImage::open_with(&image, zero.clone()), Err(ReadError::NotIso { .. })));
    let img = IsoImage::open_with(&image, Limits { max_descriptors: 64, ..zero }).unwrap();
    let report = img.check().unwrap();
    assert_eq!(report.primary.entries.len(), 1);
    assert!(
        report.problems.iter().all(|p| p.kind == Some(ProblemKind::LimitExceeded)),
        "{:#?}",
        report.problems
    );
    // A reached limit is a warning: what was read may well be right.
    assert!(report.problems.iter().all(|p| p.severity == crate::finding::Severity::Warning));
    let max = Limits {
        max_descriptors: u32::MAX,
        max_directory_bytes: u64::MAX,
        max_entries: usize::MAX,
        max_depth: usize::MAX,
        max_ce_chain: usize::MAX,
        max_ce_area: u32::MAX,
        max_ce_bytes_total: u64::MAX,
        max_name_bytes_total: u64::MAX,
        max_path_table_bytes: u32::MAX,
        max_catalog_bytes: u64::MAX,
        max_problems: usize::MAX,
    };
    let img = IsoImage::open_with(&image, max).unwrap();
    assert!(img.check().unwrap().problems.is_empty());
}
