//! Issue 14: `isoforge netboot`, the NixOS netboot files (bzImage, an initrd with the store
//! squashfs appended as a compressed cpio segment, netboot.ipxe), booted for real: the Debian
//! kernel of the boot kit loads the initrd directly (`-kernel`/`-initrd`, BIOS and UEFI, every
//! segment compression) and over the network (iPXE's option ROM from Debian's `ipxe-qemu`,
//! QEMU's user-mode DHCP and TFTP with `restrict=on`: the guest reaches nothing else), and the
//! boot kit's init mounts `/nix-store.squashfs` from the initramfs and checks files in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::qemu::{self, Firmware, BOOT_TIMEOUT};
use support::{bootkit, dir_listing, isoforge_bin, noise, run, run_ok_stdout, sha256_bytes, write_file};

const LIB: &str = "/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-lib";
const APP: &str = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-app";
const EPOCH: &str = "1700000000";

/// A small closure under `dir/root` and its list `dir/paths.txt`; returns the files the boot
/// checks, as (path inside the squashfs, sha256).
fn fixture(dir: &Path) -> Vec<(String, String)> {
    let root = dir.join("root");
    let big = noise(14, 1536 * 1024 + 7);
    let files: Vec<(String, Vec<u8>)> = vec![
        (format!("{LIB}/lib/libbig.so"), big),
        (format!("{LIB}/share/readme"), b"netboot readme\n".to_vec()),
        (format!("{APP}/bin/app"), format!("#!/bin/sh\nexec {LIB}/bin/tool\n").into_bytes()),
    ];
    for (path, bytes) in &files {
        write_file(&root.join(path.trim_start_matches('/')), bytes);
    }
    std::os::unix::fs::symlink("libbig.so", root.join(LIB.trim_start_matches('/')).join("lib/libbig.so.1"))
        .unwrap();
    write_file(&dir.join("paths.txt"), format!("{APP}\n{LIB}\n"));
    files
        .iter()
        .map(|(path, bytes)| {
            let base = path.trim_start_matches("/nix/store");
            (base.to_string(), sha256_bytes(bytes))
        })
        .collect()
}

/// The boot kit's init arguments for a netboot: the squashfs in the initramfs, its checks.
fn init_args(label: &str, checks: &[(String, String)]) -> String {
    let mut s =
        format!("console=ttyS0,115200 panic=-1 isoforge.label={label} isoforge.netboot=/nix-store.squashfs");
    for (path, sha) in checks {
        s.push_str(&format!(" isoforge.sqcheck={path}:{sha}"));
    }
    s
}

/// Runs `isoforge netboot` in `dir` into `dir/OUT`; returns the out dir.
fn netboot(dir: &Path, out: &str, kernel: &Path, initrd: &Path, extra: &[&str]) -> PathBuf {
    let mut cmd = Command::new(isoforge_bin());
    cmd.current_dir(dir).env_remove("SOURCE_DATE_EPOCH");
    cmd.args(["netboot", "--closure", "paths.txt", "--store-root", "root", "--epoch", EPOCH]);
    cmd.args(["--init", "/nix/store/2ccccccccccccccccccccccccccccccc-nixos-system/init"]);
    cmd.arg("--kernel").arg(kernel).arg("--initrd").arg(initrd).args(["--out-dir", out]).args(extra);
    run(&mut cmd);
    dir.join(out)
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[track_caller]
fn expect(name: &str, firmware: Firmware, args: &[OsString], label: &str) {
    let marker = format!("ISOFORGE-BOOT-OK {label}");
    let log = qemu::boot_args(name, firmware, args, &marker, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(log.contains("ISOFORGE-DEVICE initramfs"), "{name} {firmware}: no initramfs line:\n{log}");
}

/// The boot kit's kernel and initramfs (no GRUB or isolinux needed here), or `None` after a
/// skip note (a failure under `CI=true`).
fn kit() -> Option<bootkit::Assets> {
    let Some(assets) = bootkit::assets() else {
        support::skip(&format!(
            "no boot assets in {} (run `bash .ci/boot-assets.sh target/boot-assets` or set ISOFORGE_BOOT_ASSETS)",
            bootkit::assets_dir().display()
        ));
        return None;
    };
    require_netboot_init(&assets);
    Some(assets)
}

/// Panics with what to do when the boot kit's initramfs predates `isoforge.netboot=` (its
/// `/init` is `fixtures/boot/init`; `.ci/boot-assets.sh` rebuilds it when the init changed).
fn require_netboot_init(kit: &bootkit::Assets) {
    let gz = fs::read(&kit.initrd).unwrap();
    let plain = pipe("gzip", &["-dc"], &gz);
    assert!(
        plain.windows(16).any(|w| w == b"isoforge.netboot"),
        "the boot kit's initramfs {} predates isoforge.netboot= (fixtures/boot/init): rerun \
         `bash .ci/boot-assets.sh target/boot-assets`",
        kit.initrd.display()
    );
}

/// Where Debian's `ipxe-qemu` puts its option ROMs.
const IPXE_ROMS: &str = "/usr/lib/ipxe/qemu";

#[test]
fn direct_kernel_boot_every_compression() {
    if !qemu::available(Firmware::Bios) {
        return;
    }
    let Some(kit) = kit() else { return };
    let dir = support::tempdir();
    let checks = fixture(dir.path());
    let args = init_args("NETBOOT", &checks);
    for (compression, firmwares) in [
        ("zstd", &[Firmware::Bios, Firmware::Uefi][..]),
        ("gzip", &[Firmware::Bios][..]),
        ("xz", &[Firmware::Bios][..]),
        ("none", &[Firmware::Bios][..]),
    ] {
        let out = netboot(
            dir.path(),
            compression,
            &kit.kernel,
            &kit.initrd,
            &["--initrd-compression", compression],
        );
        for &firmware in firmwares {
            if !qemu::available(firmware) {
                continue;
            }
            let mut a = os(&["-kernel"]);
            a.push(out.join("bzImage").into());
            a.push("-initrd".into());
            a.push(out.join("initrd").into());
            a.extend(os(&["-append", &args]));
            expect(&format!("netboot-direct-{compression}"), firmware, &a, "NETBOOT");
        }
    }
}

#[test]
fn network_boot_through_ipxe_tftp() {
    if !qemu::available(Firmware::Bios) {
        return;
    }
    let Some(kit) = kit() else { return };
    let roms = Path::new(IPXE_ROMS);
    if !support::files(&[roms.join("pxe-e1000.rom")]) {
        return;
    }
    let dir = support::tempdir();
    let checks = fixture(dir.path());
    let out =
        netboot(dir.path(), "tftp", &kit.kernel, &kit.initrd, &["--cmdline", &init_args("PXEBOOT", &checks)]);
    let script = fs::read_to_string(out.join("netboot.ipxe")).unwrap();
    assert!(script.starts_with("#!ipxe\n") && script.ends_with("initrd initrd\nboot\n"), "{script}");
    let tftp = out.to_string_lossy().replace(',', ",,");
    for (firmware, rom) in [(Firmware::Bios, "pxe-e1000.rom"), (Firmware::Uefi, "efi-e1000.rom")] {
        if !qemu::available(firmware) {
            continue;
        }
        let mut a = os(&["-netdev", &format!("user,id=n0,restrict=on,tftp={tftp},bootfile=netboot.ipxe")]);
        a.extend(os(&["-device", &format!("e1000,netdev=n0,romfile={}", roms.join(rom).display())]));
        if firmware == Firmware::Bios {
            a.extend(os(&["-boot", "order=n"]));
        }
        expect("netboot-pxe", firmware, &a, "PXEBOOT");
    }
}

/// The appended segment of `initrd` whose input initrd was `given` bytes long.
fn segment(initrd: &Path, given: u64) -> Vec<u8> {
    let bytes = fs::read(initrd).unwrap();
    bytes[given.div_ceil(4) as usize * 4..].to_vec()
}

/// Runs `prog args` with `input` on stdin; returns stdout.
fn pipe(prog: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn rebuilds_are_byte_identical_and_tools_read_the_segment() {
    for t in ["cpio", "bsdcpio", "zstd", "gzip", "xz", "unsquashfs"] {
        if !support::tool(t) {
            return;
        }
    }
    let dir = support::tempdir();
    fixture(dir.path());
    // Any cpio will do as the stage-1 initrd here; its length is not a multiple of 4.
    let given = dir.path().join("stage1.cpio");
    let listing = b"stage1.txt\n";
    write_file(&dir.path().join("stage1.txt"), "stage one\n");
    let cpio = pipe_in(dir.path(), "cpio", &["--quiet", "-o", "-H", "newc", "--reproducible"], listing);
    let mut stage1 = cpio;
    stage1.extend_from_slice(&[0u8; 3]);
    fs::write(&given, &stage1).unwrap();
    let mut kernel = vec![0u8; 4096];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    let kernel_path = dir.path().join("kernel");
    fs::write(&kernel_path, &kernel).unwrap();
    for (c, test) in [("zstd", &["zstd", "-t"][..]), ("gzip", &["gzip", "-t"][..]), ("xz", &["xz", "-t"][..])]
    {
        let a = netboot(
            dir.path(),
            &format!("{c}-a"),
            &kernel_path,
            &given,
            &["--initrd-compression", c, "--threads", "1"],
        );
        let b = netboot(
            dir.path(),
            &format!("{c}-b"),
            &kernel_path,
            &given,
            &["--initrd-compression", c, "--threads", "2"],
        );
        for f in ["bzImage", "initrd", "netboot.ipxe"] {
            assert_eq!(fs::read(a.join(f)).unwrap(), fs::read(b.join(f)).unwrap(), "{c}: {f} differs");
        }
        let names = |d: &Path| listed_names(d);
        assert_eq!(
            names(&a),
            ["bzImage", "initrd", "netboot.ipxe", "nix-support/", "nix-support/hydra-build-products"]
        );
        assert_eq!(fs::read(a.join("bzImage")).unwrap(), kernel);
        let initrd = fs::read(a.join("initrd")).unwrap();
        assert_eq!(&initrd[..stage1.len()], &stage1[..], "{c}: the given initrd comes first");
        let seg = segment(&a.join("initrd"), stage1.len() as u64);
        pipe(test[0], &test[1..], &seg);
        let plain = pipe(test[0], &["-dc"], &seg);
        let listed = String::from_utf8(pipe("cpio", &["-t", "--quiet"], &plain)).unwrap();
        assert_eq!(listed, "nix-store.squashfs\n", "{c}: cpio -t");
        let verbose = String::from_utf8(pipe("bsdcpio", &["-itv"], &plain)).unwrap();
        assert!(verbose.starts_with("-r--r--r--   1 root     root "), "{c}: bsdcpio -itv: {verbose}");
        // The whole initrd as the kernel sees it: both segments' members.
        let sq = dir.path().join(format!("{c}.squashfs"));
        fs::write(&sq, pipe("cpio", &["-i", "--quiet", "--to-stdout", "nix-store.squashfs"], &plain))
            .unwrap();
        let files = run_ok_stdout(Command::new("unsquashfs").arg("-l").arg(&sq));
        assert!(files.contains(&format!("squashfs-root{}", LIB.trim_start_matches("/nix/store"))), "{files}");
        assert!(files.contains("squashfs-root/nix-path-registration"), "{files}");
    }
}

/// `prog args` run in `dir` with `input` on stdin.
fn pipe_in(dir: &Path, prog: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(prog)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{prog}");
    out.stdout
}

/// A squashfs over 4 GiB cannot be a newc entry (32-bit `c_filesize`; nixpkgs #399607 dropped
/// it silently): the build fails as soon as the squashfs passes the limit, says why and what to
/// do, and leaves nothing. The store is one 4 GiB file of a repeated non-zero byte (zero blocks
/// would be holes) with `--compression none`, so the squashfs is over 4 GiB while the zstd:1
/// segment stays small; it is written once, and a given registration spares hashing it.
#[test]
fn squashfs_over_4_gib_fails() {
    let dir = support::tempdir();
    let store_path = "/nix/store/3ddddddddddddddddddddddddddddddd-big";
    let blob = dir.path().join("root").join(store_path.trim_start_matches('/')).join("blob");
    support::mkdir_p(blob.parent().unwrap());
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(&blob).unwrap());
        let chunk = vec![0x5au8; 8 << 20];
        for _ in 0..(4u64 << 30) / chunk.len() as u64 {
            f.write_all(&chunk).unwrap();
        }
        f.into_inner().unwrap().sync_all().unwrap();
    }
    write_file(&dir.path().join("paths.txt"), format!("{store_path}\n"));
    let hash = "sha256:197nzackh9c87wmav6qzlsz0lyykkzwmhh2piy0qlsh0m3s9nwrs";
    write_file(&dir.path().join("reg"), [store_path, hash, "4294967296", "", "0", ""].join("\n"));
    let mut kernel = vec![0u8; 1024];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    write_file(&dir.path().join("kernel"), kernel);
    write_file(&dir.path().join("initrd.img"), "070701");
    let before = dir_listing(dir.path());
    let mut cmd = Command::new(isoforge_bin());
    cmd.current_dir(dir.path()).env_remove("SOURCE_DATE_EPOCH");
    cmd.args(["netboot", "--closure", "paths.txt", "--store-root", "root", "--registration", "reg"]);
    cmd.args([
        "--compression",
        "none",
        "--initrd-compression",
        "zstd:1",
        "--threads",
        "2",
        "--init",
        "/init",
    ]);
    cmd.args(["--kernel", "kernel", "--initrd", "initrd.img", "--out-dir", "out"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(
            "isoforge: error: building out: the store squashfs is 4294967296 bytes or more, over the 4294967295 \
             bytes a cpio \"newc\" entry can hold (32-bit c_filesize), so it cannot go into the initrd; use a \
             smaller closure, stronger --compression (xz, zstd:19), or boot the ISO (isoforge build)"
        ),
        "{stderr}"
    );
    assert_eq!(dir_listing(dir.path()), before, "the failed build left something");
}

/// `inspect`, `verify` and `diff` read netboot initrds: the segments, their members, the
/// embedded squashfs (from a compressed segment too), and the members and store files that
/// differ.
#[test]
fn inspect_verify_and_diff_read_netboot_initrds() {
    let dir = support::tempdir();
    fixture(dir.path());
    write_file(&dir.path().join("stage1.txt"), "stage one\n");
    let stage1 =
        pipe_in(dir.path(), "cpio", &["--quiet", "-o", "-H", "newc", "--reproducible"], b"stage1.txt\n");
    let given = dir.path().join("stage1.cpio");
    fs::write(&given, &stage1).unwrap();
    let mut kernel = vec![0u8; 1024];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    let kernel_path = dir.path().join("kernel");
    fs::write(&kernel_path, &kernel).unwrap();
    let a = netboot(dir.path(), "a", &kernel_path, &given, &[]);
    netboot(dir.path(), "a2", &kernel_path, &given, &[]);
    write_file(&dir.path().join("root").join(LIB.trim_start_matches('/')).join("share/readme"), "changed\n");
    netboot(dir.path(), "b", &kernel_path, &given, &[]);
    let isoforge = || {
        let mut c = Command::new(isoforge_bin());
        c.current_dir(dir.path());
        c
    };
    let text = run_ok_stdout(isoforge().args(["inspect", "a/initrd"]));
    assert!(text.contains("2 cpio segments"), "{text}");
    assert!(text.contains(", zstd, archive "), "{text}");
    assert!(text.contains("nix-store.squashfs"), "{text}");
    assert!(text.contains("squashfs 4.0: zstd"), "{text}");
    let json = run_ok_stdout(isoforge().args(["inspect", "--json", "--tree", "a/initrd"]));
    assert!(json.contains("\"type\": \"initramfs\""), "{json}");
    assert!(json.contains("\"name\": \"stage1.txt\""), "{json}");
    assert!(json.contains("/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-lib/share/readme"), "{json}");
    let verified = run_ok_stdout(isoforge().args(["verify", "a/initrd"]));
    assert!(verified.ends_with("a/initrd: 0 errors, 0 warnings, 0 notes\n"), "{verified}");
    let same = run_ok_stdout(isoforge().args(["diff", "a/initrd", "a2/initrd"]));
    assert_eq!(same, "identical members\n");
    let out = isoforge().args(["diff", "a/initrd", "b/initrd"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("segment 1: member nix-store.squashfs differs: data (sha256 "), "{text}");
    assert!(
        text.contains("nix-store.squashfs:/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-lib/share/readme differs"),
        "{text}"
    );
    assert!(!text.contains("stage1.txt"), "{text}");
    // A damaged segment is an error finding (exit 1), named by its offset.
    let mut bytes = fs::read(a.join("initrd")).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0xff;
    fs::write(dir.path().join("bad.initrd"), &bytes).unwrap();
    let out = isoforge().args(["verify", "bad.initrd"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("error: initramfs: expected cpio segments"), "{text}");
}

/// A netboot build killed (SIGKILL, `ISOFORGE_FAULT`) while the squashfs streams into the
/// initrd leaves nothing beside DIR; killed during the assembly it leaves only the temporary
/// directory, which the next build removes.
#[test]
fn killed_netboot_leaves_nothing_until_assembly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = support::tempdir();
    fixture(dir.path());
    let mut kernel = vec![0u8; 1024];
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    write_file(&dir.path().join("kernel"), kernel);
    write_file(&dir.path().join("initrd.img"), "070701");
    let parent = dir.path().join("parent");
    support::mkdir_p(&parent);
    write_file(&parent.join("unrelated.txt"), "not ours\n");
    let build = |rule: Option<&str>| {
        let mut cmd = Command::new(isoforge_bin());
        cmd.current_dir(dir.path()).env_remove("SOURCE_DATE_EPOCH").env_remove("ISOFORGE_FAULT");
        cmd.args(["netboot", "--closure", "paths.txt", "--store-root", "root", "--init", "/init"]);
        cmd.args([
            "--block-size",
            "128K",
            "--kernel",
            "kernel",
            "--initrd",
            "initrd.img",
            "--out-dir",
            "parent/nb",
        ]);
        if let Some(r) = rule {
            cmd.env("ISOFORGE_FAULT", r);
        }
        cmd.output().unwrap()
    };
    let before = dir_listing(&parent);
    for rule in ["kill@squashfs-block", "kill@squashfs-block#5"] {
        let o = build(Some(rule));
        assert_eq!(o.status.signal(), Some(9), "{rule}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(dir_listing(&parent), before, "{rule} left something");
    }
    let o = build(Some("kill@outdir-assembled"));
    assert_eq!(o.status.signal(), Some(9), "{}", String::from_utf8_lossy(&o.stderr));
    let left: Vec<String> = listed_names(&parent)
        .into_iter()
        .filter(|n| n.starts_with(".nb.isoforge-tmp-") && n.ends_with('/') && n.matches('/').count() == 1)
        .collect();
    assert_eq!(left.len(), 1, "{:?}", dir_listing(&parent));
    let o = build(None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names = listed_names(&parent);
    assert_eq!(
        names,
        [
            "nb/",
            "nb/bzImage",
            "nb/initrd",
            "nb/netboot.ipxe",
            "nb/nix-support/",
            "nb/nix-support/hydra-build-products",
            "unrelated.txt"
        ]
    );
}

/// The paths below `dir`, directories with a trailing `/`.
fn listed_names(dir: &Path) -> Vec<String> {
    dir_listing(dir)
        .into_iter()
        .map(|(n, e)| if matches!(e, support::Entry::Dir) { format!("{n}/") } else { n })
        .collect()
}
