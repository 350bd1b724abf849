//! The ISO 9660 reader against images made by reference tools: xorriso (libisofs) and
//! genisoimage (cdrkit). Each image is built from a source tree in a temporary directory with
//! a BIOS isolinux boot and a boot-info-table; the reader must list the same tree (Rock Ridge
//! names, kinds, modes, symlink targets, contents), the same Joliet files, a valid El Torito
//! catalog and boot-info-table, and find no problem at all.
//!
//! A missing tool skips its test locally and fails it when `CI=true`.

// Helpers outside #[test] functions panic on failure too, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use isoforge_core::iso9660::read::{EntryKind, FieldCheck, Hierarchy, IsoImage, Listing};

const ISOLINUX: &str = support::ISOLINUX_BIN;

/// Whether `tool` and the isolinux boot file can be used (else a skip note; a failure under
/// `CI=true`).
fn available(tool: &str) -> bool {
    support::tool(tool) && support::files(&[ISOLINUX])
}

/// What the source tree holds: path → entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Dir(u32),
    File(Vec<u8>, u32),
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
            let mode = md.permissions().mode() & 0o7777;
            if md.file_type().is_symlink() {
                out.insert(
                    path,
                    Host::Link(fs::read_link(e.path()).unwrap().as_os_str().as_bytes().to_vec()),
                );
            } else if md.is_dir() {
                out.insert(path.clone(), Host::Dir(mode));
                go(&e.path(), &path, out);
            } else {
                out.insert(path, Host::File(fs::read(e.path()).unwrap(), mode));
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, b"", &mut out);
    out
}

/// A source tree exercising names, depth, sizes and symlinks.
fn make_source(root: &Path) {
    fs::create_dir_all(root.join("isolinux")).unwrap();
    fs::copy(ISOLINUX, root.join("isolinux/isolinux.bin")).unwrap();
    fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    fs::write(root.join("big.bin"), big).unwrap();
    fs::create_dir_all(root.join("a/b/c/d/e/f")).unwrap();
    fs::write(root.join("a/b/c/d/e/f/deep.txt"), b"deep").unwrap();
    // Deeper than ISO 9660's 8 levels: genisoimage relocates (Rock Ridge CL/RE), xorriso not.
    fs::create_dir_all(root.join("deep/2/3/4/5/6/7/8/9/10/11")).unwrap();
    fs::write(root.join("deep/2/3/4/5/6/7/8/9/10/11/bottom"), b"bottom").unwrap();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..300 {
        fs::write(root.join(format!("many/entry-{i:03}.conf")), format!("{i}\n")).unwrap();
    }
    fs::write(root.join(format!("long-{}", "n".repeat(95))), b"long").unwrap();
    fs::write(root.join("Mixed Case.TXT"), b"m").unwrap();
    fs::write(root.join("été.txt"), "é".as_bytes()).unwrap();
    symlink("../hello.txt", root.join("a/rel")).unwrap();
    symlink("/nix/store/abc-foo/bin/sh", root.join("abs")).unwrap();
    let long = format!("/nix/store/{}/{}/{}", "x".repeat(120), "y".repeat(120), "z".repeat(60));
    symlink(long, root.join("longlink")).unwrap();
}

/// Compares the Rock Ridge listing with the source tree. `mode` maps a host entry to the
/// Rock Ridge mode the tool writes.
fn assert_tree(
    img: &IsoImage<'_>,
    listing: &Listing,
    host: &BTreeMap<Vec<u8>, Host>,
    mode: fn(&Host) -> u32,
) {
    let mut got = BTreeMap::new();
    for e in &listing.entries[1..] {
        let rr = e.rr.as_ref().unwrap_or_else(|| panic!("no Rock Ridge for {}", e.path_lossy()));
        let h = match e.kind {
            EntryKind::Dir => Host::Dir(rr.mode.unwrap() & 0o7777),
            EntryKind::File => {
                let mut data = Vec::new();
                img.read_file(e, &mut data).unwrap();
                Host::File(data, rr.mode.unwrap() & 0o7777)
            }
            EntryKind::Symlink => Host::Link(rr.symlink.clone().unwrap()),
        };
        if let (Some(m), false) = (rr.mode, e.path == b"/isolinux/boot.cat" || e.path == b"/rr_moved") {
            let want = host.get(&e.path).map(mode);
            assert_eq!(Some(m), want, "mode of {}", e.path_lossy());
        }
        got.insert(e.path.clone(), h);
    }
    // The catalog is the tools' addition; the boot file's copy carries the boot-info-table;
    // genisoimage adds rr_moved for deep directories, and shows it empty as Linux does.
    got.remove(&b"/isolinux/boot.cat"[..]);
    if listing.relocated.is_empty() {
        assert!(!got.contains_key(&b"/rr_moved"[..]));
    } else {
        assert_eq!(got.remove(&b"/rr_moved"[..]), Some(Host::Dir(0o555)));
    }
    let want_paths: Vec<String> = host.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    let got_paths: Vec<String> = got.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    assert_eq!(got_paths, want_paths);
    for (path, h) in host {
        let g = &got[path];
        match (g, h) {
            (Host::File(gd, _), Host::File(hd, _)) if path == b"/isolinux/isolinux.bin" => {
                assert_eq!(gd.len(), hd.len());
                assert_eq!(gd[..8], hd[..8]);
                assert_eq!(gd[64..], hd[64..]);
            }
            (Host::File(gd, _), Host::File(hd, _)) => assert_eq!(gd, hd, "{}", String::from_utf8_lossy(path)),
            (Host::Dir(_), Host::Dir(_)) => {}
            _ => assert_eq!(g, h, "{}", String::from_utf8_lossy(path)),
        }
    }
}

/// The Joliet tree holds the same files and directories. Symlinks have no Joliet form:
/// xorriso leaves them out, genisoimage writes them as empty files (`links`).
fn assert_joliet(
    img: &IsoImage<'_>,
    joliet: &Listing,
    host: &BTreeMap<Vec<u8>, Host>,
    links: Option<EntryKind>,
) {
    let got: BTreeMap<Vec<u8>, EntryKind> = joliet.entries[1..]
        .iter()
        .map(|e| (e.path.clone(), e.kind))
        .filter(|(p, _)| p != b"/isolinux/boot.cat")
        .collect();
    for (path, h) in host {
        let want = match h {
            Host::Dir(_) => Some(EntryKind::Dir),
            Host::File(..) => Some(EntryKind::File),
            Host::Link(_) => links,
        };
        assert_eq!(got.get(path).copied(), want, "Joliet {}", String::from_utf8_lossy(path));
    }
    let e = joliet.get(b"/hello.txt").unwrap();
    let mut data = Vec::new();
    img.read_file(e, &mut data).unwrap();
    assert_eq!(data, b"hello world\n");
}

fn check_image(iso: &Path, host: &BTreeMap<Vec<u8>, Host>, mode: fn(&Host) -> u32, links: Option<EntryKind>) {
    let file = fs::File::open(iso).unwrap();
    let img = IsoImage::open(&file).unwrap();
    assert_eq!(img.pvd().volume_id, "ISOFORGE_TEST");
    assert!(img.joliet().is_some());
    let report = img.check().unwrap();
    for p in &report.problems {
        eprintln!("problem: {p}");
    }
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.primary.has_rock_ridge());
    assert_tree(&img, &report.primary, host, mode);
    assert_joliet(&img, report.joliet.as_ref().unwrap(), host, links);
    assert_eq!(report.path_tables.len(), 2);

    let et = report.el_torito.as_ref().expect("El Torito");
    let bin = report.primary.get(b"/isolinux/isolinux.bin").unwrap();
    assert_eq!(et.entries[0].entry.load_rba, bin.first_lba());
    assert_eq!(et.entries[0].entry.sector_count, 4);
    let bi = et.boot_info.as_ref().unwrap();
    assert!(bi.present);
    assert_eq!([bi.pvd_lba, bi.file_lba, bi.file_length, bi.checksum], [FieldCheck::Valid; 4], "{bi:?}");
    let catalog = report.primary.get(b"/isolinux/boot.cat").unwrap();
    assert_eq!(catalog.first_lba(), et.catalog_lba);

    // The Joliet hierarchy points at the same data.
    let j = img.walk(Hierarchy::Joliet).unwrap();
    assert_eq!(j.get(b"/big.bin").unwrap().extents, report.primary.get(b"/big.bin").unwrap().extents);
}

/// `xorriso -r` rationalises: owner 0, read for all, execute for all when any, no write
/// (symlinks too: xorriso 1.5.4 writes them `r-xr-xr-x`).
fn rational(h: &Host) -> u32 {
    match h {
        Host::Dir(_) => 0o040_555,
        Host::File(_, m) => 0o100_444 | if m & 0o111 != 0 { 0o111 } else { 0 },
        Host::Link(_) => 0o120_555,
    }
}

/// `genisoimage -R` keeps the host modes.
fn kept(h: &Host) -> u32 {
    match h {
        Host::Dir(m) => 0o040_000 | m,
        Host::File(_, m) => 0o100_000 | m,
        Host::Link(_) => 0o120_777,
    }
}

#[test]
fn reads_xorriso_image() {
    if !available("xorriso") {
        return;
    }
    let dir = support::tempdir();
    let src = dir.path().join("src");
    make_source(&src);
    let host = scan(&src);
    let iso = dir.path().join("x.iso");
    let out = Command::new("xorriso")
        .args(["-as", "mkisofs", "-iso-level", "3", "-full-iso9660-filenames", "-joliet", "-joliet-long"])
        .args(["-rational-rock", "-V", "ISOFORGE_TEST"])
        .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot"])
        .args(["-boot-load-size", "4", "-boot-info-table", "-o"])
        .arg(&iso)
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_image(&iso, &host, rational, None);
    let file = fs::File::open(&iso).unwrap();
    let listing = IsoImage::open(&file).unwrap().walk(Hierarchy::Primary).unwrap();
    assert!(listing.relocated.is_empty());
}

#[test]
fn reads_genisoimage_image() {
    if !available("genisoimage") {
        return;
    }
    let dir = support::tempdir();
    let src = dir.path().join("src");
    make_source(&src);
    let iso = dir.path().join("g.iso");
    let out = Command::new("genisoimage")
        .args(["-R", "-J", "-joliet-long", "-V", "ISOFORGE_TEST"])
        .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot"])
        .args(["-boot-load-size", "4", "-boot-info-table", "-o"])
        .arg(&iso)
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // genisoimage patches the boot-info-table into the source file itself: scan afterwards,
    // and compare the rest of the file with the pristine copy.
    let host = scan(&src);
    let pristine = fs::read(ISOLINUX).unwrap();
    let patched = fs::read(src.join("isolinux/isolinux.bin")).unwrap();
    assert_eq!(patched[64..], pristine[64..]);
    check_image(&iso, &host, kept, Some(EntryKind::File));
    // One directory was relocated into rr_moved; it is listed at its real place.
    let file = fs::File::open(&iso).unwrap();
    let listing = IsoImage::open(&file).unwrap().walk(Hierarchy::Primary).unwrap();
    assert_eq!(listing.relocated.len(), 1, "{:?}", listing.relocated);
    let links: Vec<_> = listing.entries.iter().filter(|e| e.is_relocation_link()).collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].path, b"/deep/2/3/4/5/6/7/8");
    assert_eq!(links[0].first_lba(), listing.relocated[0].extent_lba);
}
