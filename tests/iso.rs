//! Issue 2: the ISO 9660 writer checked by third-party readers (xorriso, isoinfo, bsdtar, 7z,
//! blkid, hadris-iso), El Torito BIOS entries, reproducibility and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{run, run_ok_stdout as stdout, sha256_file, tool};

fn isoforge() -> Command {
    let mut c = Command::new(support::isoforge_bin());
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The fixture tree of the issue: deep directories, long and UTF-8 names, names that differ
/// only in case or collide after ISO 9660 mapping, empty files and directories, symlinks of
/// every kind and a directory of 2,000 entries.
fn fixture_tree(root: &Path) {
    let deep: PathBuf = (1..=12).map(|i| format!("level{i}")).collect();
    fs::create_dir_all(root.join(&deep)).unwrap();
    fs::write(root.join(&deep).join("leaf.txt"), b"deep leaf\n").unwrap();
    fs::write(root.join(format!("{}-long-name.txt", "n".repeat(200))), b"long\n").unwrap();
    fs::write(root.join("x".repeat(255)), b"255\n").unwrap();
    for n in [
        "ünïcödé.txt",
        "日本語ファイル.txt",
        "emoji-😀.txt",
        "Case.txt",
        "case.txt",
        "CASE.TXT",
        "a-b.txt",
        "a_b.txt",
        "a b.txt",
    ] {
        fs::write(root.join(n), n.as_bytes()).unwrap();
    }
    fs::write(root.join("empty"), b"").unwrap();
    fs::create_dir(root.join("emptydir")).unwrap();
    symlink("level1/level2", root.join("rel-link")).unwrap();
    symlink("/nix/store/0000000000000000000000000000000-foo/bin/sh", root.join("abs-link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("level1", root.join("dirlink")).unwrap();
    let long_target = format!("../{}/{}/end", "t".repeat(200), "u".repeat(150));
    symlink(long_target, root.join("long-link")).unwrap();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..2000 {
        fs::write(root.join("many").join(format!("file-{i:04}.dat")), format!("{i}\n")).unwrap();
    }
    fs::create_dir(root.join("data")).unwrap();
    fs::write(root.join("data/blob.bin"), noise(1, 3 * 1024 * 1024 + 17)).unwrap();
    fs::write(root.join("data/exec.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("data/exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(u64),
    Link(String),
}

/// Path (relative, `/`-separated) → kind, for a host tree.
fn host_listing(root: &Path) -> BTreeMap<String, Kind> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, Kind>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.file_type().is_symlink() {
                out.insert(rel, Kind::Link(fs::read_link(&p).unwrap().to_string_lossy().into_owned()));
            } else if md.is_dir() {
                out.insert(rel, Kind::Dir);
                go(root, &p, out);
            } else {
                out.insert(rel, Kind::File(md.len()));
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

/// Compares two host trees: same paths, kinds, contents and symlink targets.
fn assert_same_tree(expected: &Path, got: &Path) {
    let a = host_listing(expected);
    let b = host_listing(got);
    let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}\nextra {extra:?}");
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{k}");
        if let Kind::File(_) = v {
            assert!(
                fs::read(expected.join(k)).unwrap() == fs::read(got.join(k)).unwrap(),
                "contents of {k} differ"
            );
        }
    }
}

struct Built {
    _dir: tempfile::TempDir,
    src: PathBuf,
    iso: PathBuf,
}

fn build_fixture_image(extra: &[&str]) -> Built {
    let dir = support::tempdir();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fixture_tree(&src);
    let iso = dir.path().join("out.iso");
    let mut cmd = isoforge();
    cmd.args(["build", "-o"]).arg(&iso).args(["--volume-id", "NixOS-24.05.x86_64-Linux"]);
    cmd.arg("--graft").arg(format!("/={}", src.display()));
    cmd.args(extra);
    run(&mut cmd);
    Built { _dir: dir, src, iso }
}

#[test]
fn bsdtar_extracts_the_source_exactly() {
    if !tool("bsdtar") {
        return;
    }
    let b = build_fixture_image(&[]);
    let out = b.iso.parent().unwrap().join("bsdtar");
    fs::create_dir(&out).unwrap();
    run(Command::new("bsdtar").arg("-xf").arg(&b.iso).arg("-C").arg(&out));
    assert_same_tree(&b.src, &out);
}

#[test]
fn xorriso_lists_the_source() {
    if !tool("xorriso") {
        return;
    }
    let b = build_fixture_image(&[]);
    let out = stdout(Command::new("xorriso").arg("-indev").arg(&b.iso).args(["-find", "/", "-exec", "lsdl"]));
    let expected = host_listing(&b.src);
    let mut seen = 0;
    for line in out.lines() {
        // e.g. `-r--r--r--    1 0        0               5 Jan  1  1980 '/data/small.txt'`
        let Some(q) = line.find(" '/") else { continue };
        let rest = &line[q + 2..];
        let (name, target) = match rest.split_once("' -> '") {
            Some((n, t)) => (n, Some(t.trim_end_matches('\''))),
            None => (rest.trim_end_matches('\''), None),
        };
        let path = name.trim_start_matches('/').replace("'\"'\"'", "'");
        if path.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line[..q].split_whitespace().collect();
        let kind = match line.as_bytes()[0] {
            b'd' => Kind::Dir,
            b'l' => Kind::Link(target.unwrap().to_string()),
            _ => Kind::File(fields[4].parse().unwrap()),
        };
        assert_eq!(expected.get(&path), Some(&kind), "xorriso line {line}");
        assert_eq!(&fields[0][..1], if kind == Kind::Dir { "d" } else { &fields[0][..1] });
        assert_eq!((fields[2], fields[3]), ("0", "0"), "owner of {path}");
        seen += 1;
    }
    assert_eq!(seen, expected.len(), "xorriso listed {seen} of {} entries:\n{out}", expected.len());
    // The -r rationalisation: executables r-xr-xr-x, other files r--r--r--, dirs r-xr-xr-x.
    assert!(out.contains("-r-xr-xr-x    1 0        0              18 Jan  1  1980 '/data/exec.sh'"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("dr-xr-xr-x") && l.ends_with("'/emptydir'")), "{out}");
}

/// Parses `isoinfo -l` style output into path → (mode string, size, name as printed).
fn isoinfo_listing(text: &str) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    let mut dir = String::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("Directory listing of ") {
            dir = d.trim_end().to_string();
            continue;
        }
        let Some(close) = line.find("]  ") else { continue };
        let name = line[close + 3..].strip_suffix(' ').unwrap_or(&line[close + 3..]).to_string();
        if name == "." || name == ".." {
            continue;
        }
        let fields: Vec<&str> = line[..close].split_whitespace().collect();
        let name = name.split(" -> ").next().unwrap().to_string();
        out.insert(format!("{dir}{name}"), (fields[0].to_string(), fields[4].parse().unwrap()));
    }
    out
}

#[test]
fn isoinfo_reads_descriptors_rock_ridge_and_joliet() {
    if !tool("isoinfo") {
        return;
    }
    let b = build_fixture_image(&[
        "--app-id",
        "isoforge test",
        "--publisher",
        "Example Org",
        "--epoch",
        "1700000000",
    ]);
    let d = stdout(Command::new("isoinfo").arg("-d").arg("-i").arg(&b.iso));
    assert!(d.contains("Volume id: NixOS-24.05.x86_64-Linux\n"), "{d}");
    assert!(d.contains("Application id: isoforge test"), "{d}");
    assert!(d.contains("Publisher id: Example Org"), "{d}");
    assert!(d.contains("Data preparer id: ISOFORGE\n"), "{d}");
    assert!(d.contains("Joliet with UCS level 3 found"), "{d}");
    assert!(d.contains("Rock Ridge signatures version 1 found"), "{d}");
    // Every date is the epoch (2023-11-14T22:13:20Z); expiration and effective are unset.
    let pvd = fs::read(&b.iso).unwrap()[16 * 2048..17 * 2048].to_vec();
    assert_eq!(&pvd[813..830], b"2023111422132000\0");
    assert_eq!(&pvd[830..847], b"2023111422132000\0");
    assert_eq!(&pvd[847..864], b"0000000000000000\0");
    assert_eq!(&pvd[864..881], b"0000000000000000\0");

    let expected = host_listing(&b.src);
    let rr = isoinfo_listing(&stdout(Command::new("isoinfo").args(["-R", "-l", "-i"]).arg(&b.iso)));
    assert_eq!(rr.len(), expected.len());
    for (path, kind) in &expected {
        let (mode, size) = rr.get(&format!("/{path}")).unwrap_or_else(|| panic!("isoinfo -R lacks /{path}"));
        match kind {
            Kind::Dir => assert!(mode.starts_with("dr-xr-xr-x"), "{path} {mode}"),
            Kind::File(n) => assert_eq!(size, n, "{path}"),
            Kind::Link(_) => assert!(mode.starts_with('l'), "{path} {mode}"),
        }
    }

    // Joliet holds everything but symlinks, names of up to 64 characters.
    let j = isoinfo_listing(&stdout(Command::new("isoinfo").args(["-J", "-l", "-i"]).arg(&b.iso)));
    let non_links = expected.values().filter(|k| !matches!(k, Kind::Link(_))).count();
    assert_eq!(j.len(), non_links, "{:?}", j.keys().collect::<Vec<_>>());
    for path in expected.keys().filter(|p| p.chars().count() <= 64 && !matches!(expected[*p], Kind::Link(_)))
    {
        // isoinfo prints Joliet names in a single-byte charset: compare the ASCII ones here
        // (7z and the round-trip tests check the others).
        if path.is_ascii() {
            assert!(j.contains_key(&format!("/{path}")), "Joliet lacks /{path}");
        }
    }
    assert!(j.keys().all(|k| k.rsplit('/').next().unwrap().chars().count() <= 64));

    // Plain ISO 9660 names: level 3 mapping, unique, at most 31 characters plus ";1".
    let plain = isoinfo_listing(&stdout(Command::new("isoinfo").args(["-l", "-i"]).arg(&b.iso)));
    assert_eq!(plain.len(), expected.len());
    for k in plain.keys() {
        let leaf = k.rsplit('/').next().unwrap();
        assert!(leaf.trim_end_matches(";1").len() <= 31, "{leaf}");
        assert!(
            leaf.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || b"_.;1".contains(&c)),
            "{leaf}"
        );
    }
}

#[test]
fn seven_zip_lists_the_image() {
    if !tool("7z") {
        return;
    }
    let b = build_fixture_image(&[]);
    let out = stdout(Command::new("7z").args(["l", "-slt"]).arg(&b.iso));
    let paths: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("Path = ")).skip(1).collect();
    // p7zip on Linux separates path components with `/`.
    assert!(paths.contains(&"data/blob.bin"), "{out}");
    assert!(paths.iter().any(|p| p.ends_with("file-1999.dat")), "{out}");
    assert!(paths.len() >= 2000, "7z listed {} entries", paths.len());
    assert!(out.contains(&format!("Size = {}", 3 * 1024 * 1024 + 17)));
    // 7z reads the Joliet tree: UTF-8 names come back intact.
    assert!(paths.contains(&"日本語ファイル.txt"), "{out}");
    assert!(paths.contains(&"ünïcödé.txt"), "{out}");
}

#[test]
fn blkid_sees_the_volume_id_verbatim() {
    if !tool("blkid") {
        return;
    }
    let b = build_fixture_image(&[]);
    let label = stdout(Command::new("blkid").args(["-p", "-o", "value", "-s", "LABEL"]).arg(&b.iso));
    assert_eq!(label.trim_end(), "NixOS-24.05.x86_64-Linux");
}

#[test]
fn hadris_iso_reads_the_same_tree() {
    use hadris_fs::sync::Volume;
    use hadris_fs::{FileType, MountOptions};
    use hadris_iso::sync::IsoFs;

    let b = build_fixture_image(&[]);
    let dev = hadris_storage::host::FileDevice::open(&b.iso).unwrap();
    let iso = IsoFs::mount(dev, MountOptions::new()).unwrap();
    let vol = Volume::new(iso);
    let mut got = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        let listing: Vec<_> = vol.read_dir(format!("/{dir}")).unwrap().map(|e| e.unwrap()).collect();
        for e in listing {
            let name = String::from_utf8_lossy(e.name().as_bytes()).into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            let kind = match e.file_type() {
                FileType::Dir => {
                    stack.push(path.clone());
                    Kind::Dir
                }
                FileType::Symlink => Kind::Link(
                    String::from_utf8_lossy(&vol.read_link(format!("/{path}")).unwrap()).into_owned(),
                ),
                _ => Kind::File(e.metadata().len()),
            };
            got.insert(path, kind);
        }
    }
    assert_eq!(got, host_listing(&b.src));
}

#[test]
fn bios_boot_entry_and_boot_info_table() {
    if !tool("xorriso") {
        return;
    }
    if !support::files(&[support::ISOLINUX_BIN]) {
        return;
    }
    let isolinux = Path::new(support::ISOLINUX_BIN);
    let dir = support::tempdir();
    let iso = dir.path().join("boot.iso");
    run(isoforge()
        .args(["build", "-o"])
        .arg(&iso)
        .args([
            "--volume-id",
            "BOOT",
            "--bios-boot",
            "isolinux/isolinux.bin",
            "--boot-catalog",
            "isolinux/boot.cat",
        ])
        .arg("--graft")
        .arg(format!("isolinux/isolinux.bin={}", isolinux.display())));
    let report = stdout(Command::new("xorriso").arg("-indev").arg(&iso).args(["-report_el_torito", "plain"]));
    let boot_line = report.lines().find(|l| l.starts_with("El Torito boot img :   1")).expect(&report);
    let f: Vec<&str> = boot_line.split_whitespace().collect();
    // El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4         LBA
    assert_eq!(&f[6..11], &["BIOS", "y", "none", "0x0000", "0x00"], "{report}");
    assert_eq!(f[11], "4", "{report}");
    let lba: u64 = f[12].parse().unwrap();
    assert!(report.contains("El Torito cat path : /isolinux/boot.cat"), "{report}");
    assert!(report.contains("El Torito img opts :   1  boot-info-table"), "{report}");
    assert!(report.contains("/isolinux/isolinux.bin"), "{report}");

    // The table's fields, read back from the image, against what they must be.
    let image = fs::read(&iso).unwrap();
    let src = fs::read(isolinux).unwrap();
    let at = (lba * 2048) as usize;
    let word = |o: usize| u32::from_le_bytes(image[at + o..at + o + 4].try_into().unwrap());
    assert_eq!(word(8), 16, "bi_pvd");
    assert_eq!(u64::from(word(12)), lba, "bi_file");
    assert_eq!(word(16) as usize, src.len(), "bi_length");
    let mut sum = 0u32;
    for c in src[64..].chunks(4) {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        sum = sum.wrapping_add(u32::from_le_bytes(w));
    }
    assert_eq!(word(20), sum, "bi_csum");
    assert!(image[at + 24..at + 64].iter().all(|&b| b == 0));
    // Everything outside the table is the source's bytes; the source is untouched.
    assert_eq!(&image[at..at + 8], &src[..8]);
    assert_eq!(&image[at + 64..at + src.len()], &src[64..]);
    assert_eq!(fs::read(isolinux).unwrap(), src);
}

#[test]
fn reproducible_across_order_mtimes_and_runs() {
    let dir = support::tempdir();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fixture_tree(&a);
    fs::write(b.join("one.txt"), b"one").unwrap();
    fs::write(b.join("two.txt"), b"two").unwrap();
    let build = |out: &str, grafts: &[String]| {
        let iso = dir.path().join(out);
        let mut cmd = isoforge();
        cmd.args(["build", "-o"]).arg(&iso).args(["--volume-id", "REPRO"]);
        for g in grafts {
            cmd.arg("--graft").arg(g);
        }
        run(&mut cmd);
        sha256_file(&iso)
    };
    let g1 = vec![
        format!("/tree={}", a.display()),
        format!("/extra/one.txt={}", b.join("one.txt").display()),
        format!("/extra/two.txt={}", b.join("two.txt").display()),
    ];
    let mut g2 = g1.clone();
    g2.reverse();
    let first = build("1.iso", &g1);
    assert_eq!(first, build("2.iso", &g1), "same build twice");
    assert_eq!(first, build("3.iso", &g2), "grafts in another order");
    run(Command::new("touch")
        .args(["-h", "-d", "2001-02-03 04:05:06"])
        .arg(a.join("data/blob.bin"))
        .arg(&a)
        .arg(b.join("one.txt")));
    assert_eq!(first, build("4.iso", &g1), "source mtimes changed");
    // SOURCE_DATE_EPOCH is the default epoch and does change dates.
    let iso = dir.path().join("5.iso");
    run(isoforge()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "-o"])
        .arg(&iso)
        .args(["--volume-id", "REPRO"])
        .arg("--graft")
        .arg(&g1[0]));
    let iso6 = dir.path().join("6.iso");
    run(isoforge()
        .args(["build", "-o"])
        .arg(&iso6)
        .args(["--volume-id", "REPRO", "--epoch", "1700000000"])
        .arg("--graft")
        .arg(&g1[0]));
    assert_eq!(sha256_file(&iso), sha256_file(&iso6));
}

/// Runs a build expected to fail; checks exit status 2, the message, and that neither the
/// output nor a temporary file was left.
fn expect_failure(args: &[String], needle: &str) {
    let dir = support::tempdir();
    let iso = dir.path().join("bad.iso");
    let out = isoforge().args(["build", "-o"]).arg(&iso).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{args:?} left files behind");
}

#[test]
fn bad_input_is_reported_with_exit_status_2_and_no_output() {
    let dir = support::tempdir();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("small.bin"), b"tiny").unwrap();
    fs::write(src.join("big.bin"), vec![0u8; 4096]).unwrap();
    let s = |p: &str| format!("{}", src.join(p).display());
    let vol = |v: &str| vec!["--volume-id".to_string(), v.to_string()];
    let with = |mut base: Vec<String>, more: &[String]| {
        base.extend_from_slice(more);
        base
    };
    let g = |t: &str, p: &str| vec!["--graft".to_string(), format!("{t}={}", s(p))];
    let missing = s("missing");
    expect_failure(&with(vol("V"), &g("/x", "missing")), &missing);
    expect_failure(&with(vol("V"), &g("/../x", "small.bin")), "escapes the image root");
    expect_failure(
        &with(vol("V"), &[g("/x", "small.bin"), g("/x", "big.bin")].concat()),
        "duplicate target \"/x\"",
    );
    expect_failure(&with(vol(&"V".repeat(33)), &g("/x", "small.bin")), "volume id is 33 bytes");
    expect_failure(&with(vol(""), &g("/x", "small.bin")), "volume id is empty");
    expect_failure(
        &with(vol("V"), &[g("/x", "small.bin"), vec!["--bios-boot".into(), "/nope.bin".into()]].concat()),
        "\"/nope.bin\" is not in the image",
    );
    expect_failure(
        &with(vol("V"), &[g("/x", "small.bin"), vec!["--bios-boot".into(), "/x".into()]].concat()),
        "is 4 bytes; a boot-info-table needs at least 64",
    );
    expect_failure(
        &with(
            vol("V"),
            &[
                g("/b", "big.bin"),
                vec!["--bios-boot".into(), "/b".into(), "--boot-load-size".into(), "0".into()],
            ]
            .concat(),
        ),
        "boot load size must be at least 1",
    );
    let fifo = src.join("fifo");
    run(Command::new("mkfifo").arg(&fifo));
    expect_failure(&with(vol("V"), &["--graft".into(), format!("/={}", src.display())]), "is a fifo");
    fs::remove_file(&fifo).unwrap();
    // An unreadable source (root can read anything, so only check when not root).
    let unreadable = src.join("secret");
    fs::write(&unreadable, b"x").unwrap();
    fs::set_permissions(&unreadable, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::File::open(&unreadable).is_err() {
        expect_failure(&with(vol("V"), &g("/s", "secret")), "secret");
    }
    // An existing output survives a failed build.
    let iso = dir.path().join("keep.iso");
    fs::write(&iso, b"previous image").unwrap();
    let out = isoforge()
        .args(["build", "-o"])
        .arg(&iso)
        .args(["--volume-id", "V"])
        .arg("--graft")
        .arg(format!("/x={missing}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read(&iso).unwrap(), b"previous image");
}

#[test]
fn sort_weights_place_files_first() {
    if !tool("isoinfo") {
        return;
    }
    let dir = support::tempdir();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("boot")).unwrap();
    fs::write(src.join("aaa.bin"), vec![1u8; 5000]).unwrap();
    fs::write(src.join("boot/zzz.bin"), vec![2u8; 5000]).unwrap();
    let iso = dir.path().join("w.iso");
    run(isoforge()
        .args(["build", "-o"])
        .arg(&iso)
        .args(["--volume-id", "W", "--sort-weight", "/boot=10"])
        .arg("--graft")
        .arg(format!("/={}", src.display())));
    let l = isoinfo_listing(&stdout(Command::new("isoinfo").args(["-R", "-l", "-i"]).arg(&iso)));
    let text = stdout(Command::new("isoinfo").args(["-R", "-l", "-i"]).arg(&iso));
    let lba = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.ends_with(&format!(" {name} "))).unwrap();
        line[line.find('[').unwrap() + 1..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(l.contains_key("/boot/zzz.bin"));
    assert!(lba("zzz.bin") < lba("aaa.bin"), "{text}");
}

/// A sparse 4.5 GiB file becomes a multi-extent file (records of at most 4 GiB − 2 KiB) that
/// every reader sees whole.
#[test]
fn multi_extent_file_over_4_gib() {
    use std::io::{Seek, SeekFrom, Write};
    if !(tool("bsdtar") && tool("xorriso") && tool("isoinfo") && tool("sha256sum")) {
        return;
    }
    let dir = support::tempdir();
    let big = dir.path().join("big.img");
    let size: u64 = 4 * 1024 * 1024 * 1024 + 512 * 1024 * 1024 + 123;
    {
        let mut f = fs::File::create(&big).unwrap();
        f.set_len(size).unwrap();
        // Markers at the start, around the first extent boundary and at the end.
        for (at, mark) in [(0u64, b"start"), (0xFFFF_F800 - 3, b"split"), (size - 5, b"final")] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(mark).unwrap();
        }
    }
    fs::write(dir.path().join("small.txt"), b"small\n").unwrap();
    let iso = dir.path().join("big.iso");
    run(isoforge()
        .args(["build", "-o"])
        .arg(&iso)
        .args(["--volume-id", "BIG"])
        .arg("--graft")
        .arg(format!("/big.img={}", big.display()))
        .arg("--graft")
        .arg(format!("/small.txt={}", dir.path().join("small.txt").display())));

    // Two records: 4 GiB − 2 KiB, then the rest.
    let l = stdout(Command::new("isoinfo").args(["-l", "-i"]).arg(&iso));
    let sizes: Vec<u64> = l
        .lines()
        .filter(|x| x.contains("BIG.IMG;1"))
        .map(|x| x.split_whitespace().nth(4).unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes, vec![0xFFFF_F800, size - 0xFFFF_F800], "{l}");

    let x =
        stdout(Command::new("xorriso").arg("-indev").arg(&iso).args(["-find", "/big.img", "-exec", "lsdl"]));
    assert!(x.contains(&format!(" {size} ")), "{x}");

    let want = stdout(Command::new("sha256sum").arg(&big));
    let got = stdout(
        Command::new("sh").arg("-c").arg(format!("bsdtar -xOf '{}' big.img | sha256sum", iso.display())),
    );
    assert_eq!(want.split_whitespace().next(), got.split_whitespace().next());
    let small = stdout(Command::new("bsdtar").arg("-xOf").arg(&iso).arg("small.txt"));
    assert_eq!(small, "small\n");
}
