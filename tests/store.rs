//! Issue 4: the store closure as `/nix-store.squashfs` inside the image — its tree as
//! unsquashfs sees it, closure inputs and their errors, reproducibility, size against
//! mksquashfs with the nixpkgs flags, bytes written in the single pass, and a four-way QEMU
//! boot whose initramfs loop-mounts the squashfs and checks sampled files by sha256.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::bootkit::{self, BootSpec};
use support::qemu::{self, Firmware, Media};
use support::{isoforge_bin, mkdir_p, run, run_ok_stdout, sha256_bytes, sha256_file, tool, write_file};

const H: [&str; 6] = [
    "0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "2ccccccccccccccccccccccccccccccc",
    "3ddddddddddddddddddddddddddddddd",
    "4fffffffffffffffffffffffffffffff",
    "5ggggggggggggggggggggggggggggggg",
];

fn isoforge() -> Command {
    let mut c = Command::new(isoforge_bin());
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Deterministic bytes that compress somewhat (text-like runs mixed with noise).
fn content(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if (i / 64) % 3 == 0 {
                b'a' + (x % 7) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

/// A fake store under `root/nix/store` with the edge cases of the issue: a directory path
/// with binaries, libraries and symlinks; identical files; empty files; 255-byte names; a
/// store path that is a single file and one that is a symlink; dangling symlinks and
/// symlinks to directories. Returns the store paths.
fn fixture_store(root: &Path) -> Vec<String> {
    let store = root.join("nix/store");
    mkdir_p(&store);
    let p = |i: usize, name: &str| format!("{}-{name}", H[i]);
    let app = store.join(p(0, "app"));
    write_file(&app.join("bin/app"), format!("#!/bin/sh\nexec /nix/store/{}/bin/tool\n", p(1, "lib")));
    fs::set_permissions(app.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
    write_file(&app.join("share/empty"), b"");
    write_file(&app.join("share").join("n".repeat(255)), b"long name\n");
    symlink(format!("/nix/store/{}/lib", p(1, "lib")), app.join("lib")).unwrap();
    symlink("does/not/exist", app.join("share/dangling")).unwrap();
    let lib = store.join(p(1, "lib"));
    write_file(&lib.join("lib/libbig.so"), content(1, 3 * 1024 * 1024 + 1));
    write_file(&lib.join("lib/libblock.so"), content(2, 1 << 20));
    write_file(&lib.join("lib/libblock-1.so"), content(3, (1 << 20) - 1));
    symlink("libbig.so", lib.join("lib/libbig.so.1")).unwrap();
    write_file(&lib.join("bin/tool"), b"#!/bin/sh\necho tool\n");
    fs::set_permissions(lib.join("bin/tool"), fs::Permissions::from_mode(0o555)).unwrap();
    for i in 0..50 {
        write_file(&lib.join(format!("same/copy-{i:02}")), b"the same small file\n");
    }
    write_file(&lib.join("same/big-a"), content(9, 2 << 20));
    write_file(&lib.join("same/big-b"), content(9, 2 << 20));
    write_file(&store.join(p(2, "single-file.txt")), b"a store path that is a file\n");
    symlink(format!("/nix/store/{}", p(1, "lib")), store.join(p(3, "link-to-lib"))).unwrap();
    let docs = store.join(p(4, "docs"));
    for i in 0..300 {
        write_file(&docs.join(format!("share/doc/page-{i:03}.txt")), content(100 + i, 700 + i as usize * 13));
    }
    let etc = store.join(p(5, "etc"));
    write_file(&etc.join("etc/config"), format!("lib={}\n", p(1, "lib")));
    (0..6)
        .map(|i| {
            let name = ["app", "lib", "single-file.txt", "link-to-lib", "docs", "etc"][i];
            format!("/nix/store/{}", p(i, name))
        })
        .collect()
}

/// The fixture store under `dir/root` and its closure list `dir/paths.txt`: (root, store
/// paths, list).
fn fixture_closure(dir: &Path) -> (PathBuf, Vec<String>, PathBuf) {
    let root = dir.join("root");
    let paths = fixture_store(&root);
    let list = dir.join("paths.txt");
    write_paths(&list, &paths);
    (root, paths, list)
}

/// `isoforge squashfs` of the closure `list` under `root` into `out`.
fn payload(out: &Path, list: &Path, root: &Path, extra: &[&str]) {
    run(isoforge()
        .args(["squashfs", "-o"])
        .arg(out)
        .arg("--closure")
        .arg(list)
        .arg("--store-root")
        .arg(root)
        .args(extra));
}

fn write_paths(file: &Path, paths: &[String]) {
    write_file(file, paths.iter().map(|p| format!("{p}\n")).collect::<String>());
}

/// Builds an image of the fixture closure; returns (image, stdout of isoforge).
fn build_image(dir: &Path, root: &Path, list: &Path, out: &str, extra: &[&str]) -> (PathBuf, String) {
    let iso = dir.join(out);
    let mut cmd = isoforge();
    cmd.args(["build", "-o"]).arg(&iso).args(["--volume-id", "STORE"]);
    cmd.arg("--closure").arg(list).arg("--store-root").arg(root);
    cmd.args(extra);
    let text = run_ok_stdout(&mut cmd);
    (iso, text)
}

fn extract_squashfs(iso: &Path, to: &Path) {
    let bytes = run(Command::new("bsdtar").arg("-xOf").arg(iso).arg("nix-store.squashfs")).stdout;
    fs::write(to, bytes).unwrap();
}

/// A tree as (relative path → kind) in Nix's canonical terms: directories 555, files 444 or
/// 555 by their x bits, symlink targets, content digests.
fn canonical_listing(root: &Path) -> BTreeMap<String, String> {
    fn go(p: &Path, rel: String, out: &mut BTreeMap<String, String>) {
        let m = fs::symlink_metadata(p).unwrap();
        let kind = if m.file_type().is_symlink() {
            format!("l {}", fs::read_link(p).unwrap().display())
        } else if m.is_dir() {
            let mut names: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
            names.sort();
            for n in names {
                let r = if rel.is_empty() {
                    n.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", n.to_string_lossy())
                };
                go(&p.join(&n), r, out);
            }
            "d 555".to_string()
        } else {
            let x = m.permissions().mode() & 0o111 != 0;
            format!("f {} {}", if x { "555" } else { "444" }, sha256_file(p))
        };
        out.insert(rel, kind);
    }
    let mut out = BTreeMap::new();
    go(root, String::new(), &mut out);
    out
}

#[test]
fn squashfs_in_the_image_holds_the_closure() {
    if !tool("bsdtar") || !tool("unsquashfs") {
        return;
    }
    let dir = support::tempdir();
    let (root, paths, list) = fixture_closure(dir.path());
    let (iso, text) = build_image(dir.path(), &root, &list, "store.iso", &["--compression", "zstd:3"]);
    let sq = dir.path().join("store.squashfs");
    extract_squashfs(&iso, &sq);

    let s = run_ok_stdout(Command::new("unsquashfs").arg("-s").arg(&sq));
    assert!(s.contains("Compression zstd"), "{s}");
    assert!(s.contains("Block size 1048576"), "{s}");
    // Owners 0:0 everywhere, root 0755 dated the epoch, store content dated 1.
    let lln = run_ok_stdout(Command::new("unsquashfs").args(["-lln", "-UTC"]).arg(&sq));
    assert!(lln.lines().all(|l| l.contains(" 0/0 ")), "{lln}");
    assert!(lln.lines().next().unwrap().starts_with("drwxr-xr-x 0/0"), "{lln}");
    assert!(lln.contains("1980-01-01 00:00 squashfs-root/nix-path-registration"), "{lln}");

    let out = dir.path().join("x");
    run(Command::new("unsquashfs").args(["-q", "-n", "-d"]).arg(&out).arg(&sq));
    for p in &paths {
        let base = p.trim_start_matches("/nix/store/");
        let src = root.join("nix/store").join(base);
        assert_eq!(canonical_listing(&out.join(base)), canonical_listing(&src), "{base}");
    }
    // nix-path-registration lists every path, with NAR hashes and sizes.
    let reg = fs::read_to_string(out.join("nix-path-registration")).unwrap();
    for p in &paths {
        assert!(reg.lines().any(|l| l == p), "{p} not in the registration");
    }
    assert_eq!(reg.lines().filter(|l| l.starts_with("sha256:")).count(), paths.len());
    // The lib is referenced by app (a script and a symlink), link-to-lib and etc.
    assert!(reg.contains(&format!("/nix/store/{}-app\nsha256:", H[0])));
    assert!(text.contains("bytes written"), "{text}");
}

/// The same bytes for a shuffled closure, duplicates in it, 1 and 2 threads, changed host
/// mtimes, and a store created under umask 077 instead of 022.
#[test]
fn store_images_are_reproducible() {
    let dir = support::tempdir();
    let (root, mut paths, list) = fixture_closure(dir.path());
    let sha = |out: &str, list: &Path, root: &Path, extra: &[&str]| {
        let mut args = vec!["--compression", "zstd:3"];
        args.extend_from_slice(extra);
        sha256_file(&build_image(dir.path(), root, list, out, &args).0)
    };
    let first = sha("1.iso", &list, &root, &["--threads", "1"]);
    assert_eq!(first, sha("2.iso", &list, &root, &["--threads", "2"]), "1 vs 2 threads");
    paths.reverse();
    paths.push(paths[0].clone());
    let shuffled = dir.path().join("shuffled.txt");
    write_paths(&shuffled, &paths);
    assert_eq!(first, sha("3.iso", &shuffled, &root, &[]), "shuffled closure with a duplicate");
    run(Command::new("find").arg(&root).args(["-exec", "touch", "-h", "-d", "2011-11-11 11:11", "{}", "+"]));
    assert_eq!(first, sha("4.iso", &list, &root, &[]), "host mtimes changed");
    // umask 077: group and other bits cleared everywhere (what a store copied under it has).
    run(Command::new("chmod").arg("-R").arg("go-rwx").arg(&root));
    assert_eq!(first, sha("5.iso", &list, &root, &[]), "umask 077");
    // --keep-metadata does depend on them (the check above is not vacuous).
    assert_ne!(first, sha("6.iso", &list, &root, &["--keep-metadata"]));
}

/// Closure inputs: a closureInfo directory's registration is used as is; bad lines are
/// errors naming the file and line, with exit status 2 and no output.
#[test]
fn closure_inputs_and_errors() {
    if !tool("bsdtar") || !tool("unsquashfs") {
        return;
    }
    let dir = support::tempdir();
    let (root, paths, list) = fixture_closure(dir.path());
    // Generate a registration with `isoforge squashfs`, then use it through closureInfo.
    let sq = dir.path().join("p.squashfs");
    payload(&sq, &list, &root, &["--compression", "gzip:1"]);
    let reg = run(Command::new("unsquashfs").arg("-cat").arg(&sq).arg("nix-path-registration")).stdout;
    let info = dir.path().join("closure-info");
    write_file(&info.join("store-paths"), fs::read(&list).unwrap());
    write_file(&info.join("registration"), &reg);
    let (iso, _) = build_image(dir.path(), &root, &info, "info.iso", &["--compression", "gzip:1"]);
    let inner = dir.path().join("inner.squashfs");
    extract_squashfs(&iso, &inner);
    assert_eq!(sha256_file(&inner), sha256_file(&sq), "closureInfo build differs from the payload command");

    let f = dir.path().join("bad.txt");
    let bad_iso = dir.path().join("bad.iso");
    let (x_sub, missing) = (format!("/nix/store/{}-x/sub", H[1]), format!("/nix/store/{}-missing", H[2]));
    for (bad, message) in [
        (
            "nix/store/relative\n".to_string(),
            r#"1: "nix/store/relative" is a relative path; store paths are absolute (like /nix/store/<hash>-<name>)"#
                .to_string(),
        ),
        (
            format!("{}\n{x_sub}\n", paths[0]),
            format!("2: {x_sub} is a path inside the store path /nix/store/{}-x, not a store path", H[1]),
        ),
        ("/tmp/not-a-store-path\n".to_string(), "1: /tmp/not-a-store-path is not in the store /nix/store".into()),
        (
            format!("{}\n{missing}\n", paths[0]),
            format!(
                "2: {missing} is not on the host (looked for {}{missing}): No such file or directory (os error 2)",
                root.display()
            ),
        ),
    ] {
        write_file(&f, &bad);
        let out = isoforge()
            .args(["build", "-o"])
            .arg(&bad_iso)
            .args(["--volume-id", "X", "--closure"])
            .arg(&f)
            .arg("--store-root")
            .arg(&root)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert_eq!(
            err,
            format!("isoforge: error: building {}: {}:{message}\n", bad_iso.display(), f.display()),
            "{bad:?}"
        );
        assert!(!bad_iso.exists());
    }
}

/// With the nixpkgs flags, isoforge's squashfs is at most 1.01 × mksquashfs's, and the build
/// writes every byte of the image once, but the 96-byte squashfs superblock patched at the end.
#[test]
fn size_against_mksquashfs_and_bytes_written() {
    if !tool("mksquashfs") || !tool("unsquashfs") {
        return;
    }
    let dir = support::tempdir();
    let (root, paths, list) = fixture_closure(dir.path());
    let ours = dir.path().join("ours.squashfs");
    payload(&ours, &list, &root, &[]);
    let reg = run(Command::new("unsquashfs").arg("-cat").arg(&ours).arg("nix-path-registration")).stdout;
    let work = dir.path().join("ref");
    mkdir_p(&work);
    write_file(&work.join("nix-path-registration"), &reg);
    let theirs = dir.path().join("theirs.squashfs");
    let mut cmd = Command::new("mksquashfs");
    cmd.current_dir(&work).arg("nix-path-registration");
    for p in &paths {
        cmd.arg(root.join(p.trim_start_matches('/')));
    }
    cmd.arg(&theirs).args(["-no-hardlinks", "-keep-as-directory", "-all-root", "-b", "1048576"]);
    cmd.args(["-comp", "zstd", "-Xcompression-level", "19", "-processors", "2", "-quiet", "-no-progress"]);
    run(&mut cmd);
    let (a, b) = (fs::metadata(&ours).unwrap().len(), fs::metadata(&theirs).unwrap().len());
    eprintln!("squashfs size: isoforge {a}, mksquashfs {b}, ratio {:.4}", a as f64 / b as f64);
    assert!(a as f64 <= 1.01 * b as f64, "isoforge {a} vs mksquashfs {b}");

    let (iso, text) = build_image(dir.path(), &root, &list, "w.iso", &[]);
    let image = fs::metadata(&iso).unwrap().len();
    let written: u64 = text.split('(').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    eprintln!("image {image} bytes, written {written}");
    assert_eq!(written, image + 96, "{written} written for a {image}-byte image");
}

struct Bootable {
    image: PathBuf,
    spec: BootSpec,
}

/// A NixOS-style image (nixos layout) whose store squashfs the initramfs mounts and checks.
fn bootable() -> Option<&'static Bootable> {
    static B: OnceLock<Option<Bootable>> = OnceLock::new();
    B.get_or_init(|| {
        const LABEL: &str = "IsoForge-Sto.4";
        let kit = bootkit::bootkit(LABEL)?;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("store-boot");
        let _ = fs::remove_dir_all(&dir);
        let (root, _, list) = fixture_closure(&dir);
        let big = format!("/nix/store/{}-lib/lib/libbig.so", H[1]);
        let page = format!("/nix/store/{}-docs/share/doc/page-123.txt", H[4]);
        let sha = |p: &str| sha256_file(&root.join(p.trim_start_matches('/')));
        // Inside the squashfs the store paths are at the root (NixOS mounts it on
        // /nix/.ro-store), next to nix-path-registration.
        let inner = |p: &str| p.trim_start_matches("/nix/store").to_string();
        let spec = BootSpec::new(LABEL)
            .check("/boot/bzImage", Some(&sha256_file(&kit.kernel)))
            .squashfs("/nix-store.squashfs")
            .sqcheck(&inner(&big), Some(&sha(&big)))
            .sqcheck(&inner(&page), Some(&sha(&page)))
            .sqcheck(
                &format!("/{}-single-file.txt", H[2]),
                Some(&sha256_bytes(b"a store path that is a file\n")),
            )
            .sqcheck("/nix-path-registration", None);
        let tree = dir.join("tree");
        mkdir_p(&tree);
        bootkit::write_iso_tree(&kit, &spec, &tree);
        let image = dir.join("store.iso");
        let mut cmd = isoforge();
        cmd.args(["build", "-o"]).arg(&image).args(["--volume-id", LABEL]);
        cmd.arg("--graft").arg(format!("/={}", tree.display()));
        cmd.args(["--bios-boot", "isolinux/isolinux.bin", "--boot-catalog", "isolinux/boot.cat"]);
        cmd.arg("--efi-dir").arg(&kit.efi_dir).arg("--isohybrid-mbr").arg(&kit.isohdpfx);
        cmd.arg("--closure").arg(&list).arg("--store-root").arg(&root).args(["--compression", "zstd:3"]);
        run(&mut cmd);
        Some(Bootable { image, spec })
    })
    .as_ref()
}

fn boot(firmware: Firmware, media: Media) {
    if !qemu::available(firmware) {
        return;
    }
    let Some(b) = bootable() else { return };
    qemu::expect_boot(&b.image, firmware, media, &b.spec.marker());
}

#[test]
fn store_bios_cdrom() {
    boot(Firmware::Bios, Media::Cdrom);
}
#[test]
fn store_bios_disk() {
    boot(Firmware::Bios, Media::Disk);
}
#[test]
fn store_uefi_cdrom() {
    boot(Firmware::Uefi, Media::Cdrom);
}
#[test]
fn store_uefi_disk() {
    boot(Firmware::Uefi, Media::Disk);
}
