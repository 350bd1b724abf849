//! Issue 11: nothing is left behind by a killed build, a full disk or a failed rebuild.
//!
//! The real `isoforge` binary (built by `cargo test` with the test-only fault injection of
//! `isoforge-host`) is killed with SIGKILL at named points of a real build
//! (`ISOFORGE_FAULT=kill@POINT[#N]`): while the squashfs data blocks of a store closure are
//! written (`squashfs-block`), before the image's final metadata write (`image-metadata`),
//! after the finished file is synced but before it has a name (`commit-synced`), between the
//! link under a temporary name and the rename over a previous image (`commit-linked`), and
//! when an output directory is assembled (`outdir-assembled`). After each kill the target's
//! directory is compared with its state before, hidden files included: it holds exactly what
//! it held, a previous image byte for byte; or the complete new image. The two windows that
//! leave a named temporary by design (the microseconds of `commit-linked`, and the assembly of
//! `--out-dir`) are checked to leave the complete result under our temporary name, which the
//! next build removes and reports. `refuse@o_tmpfile` forces the named-temporary fallback
//! of file systems without `O_TMPFILE`. A full disk is a 4 MiB tmpfs (or, where mounting is
//! not possible, a file size limit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{dir_listing, isoforge_bin, sha256_file, write_file, Entry};

const VOLUME: &str = "CRASH";

fn isoforge() -> Command {
    let mut c = Command::new(isoforge_bin());
    c.env_remove("SOURCE_DATE_EPOCH").env_remove("ISOFORGE_FAULT");
    c
}

/// Runs `cmd` with the fault rule `rule` (none when empty) and returns its output.
fn run_with(cmd: &mut Command, rule: &str) -> Output {
    if !rule.is_empty() {
        cmd.env("ISOFORGE_FAULT", rule);
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", support::command_line(cmd)))
}

/// Runs `cmd` with `rule` and checks that it died by SIGKILL.
#[track_caller]
fn killed(cmd: &mut Command, rule: &str) {
    let out = run_with(cmd, rule);
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{rule}: expected a SIGKILL, got {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` (with `rule`) and checks that it succeeded; returns its stderr.
#[track_caller]
fn succeeded(cmd: &mut Command, rule: &str) -> String {
    let out = run_with(cmd, rule);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{rule}: {}\n{err}", out.status);
    err
}

/// A small store under `dir/root` holding `mib` MiB of data in two store paths, and its
/// closure list `dir/paths.txt`: (store root, list).
/// A store fixture of `mib` MiB and `DIR/out/live.iso` built from it with volume id `OLD`:
/// (store root, closure list, out directory, target).
fn previous_image(dir: &Path, mib: usize) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let (root, list) = store_fixture(dir, mib);
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    let target = out.join("live.iso");
    succeeded(&mut build_store(&target, &root, &list, "OLD"), "");
    (root, list, out, target)
}

fn store_fixture(dir: &Path, mib: usize) -> (PathBuf, PathBuf) {
    let root = dir.join("root");
    let a = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-data";
    let b = "/nix/store/1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-more";
    let half = mib << 19;
    write_file(&root.join(&a[1..]).join("share/blob"), support::noise(1, half));
    write_file(&root.join(&b[1..]).join("lib/libx.so"), support::noise(2, half - 4096));
    write_file(&root.join(&b[1..]).join("etc/config"), format!("data={a}\n"));
    let list = dir.join("paths.txt");
    write_file(&list, format!("{a}\n{b}\n"));
    (root, list)
}

/// `isoforge build -o OUT` of the store fixture in 128 KiB blocks (many blocks, many points).
fn build_store(out: &Path, root: &Path, list: &Path, volume: &str) -> Command {
    let mut c = isoforge();
    c.args(["build", "-o"]).arg(out).args(["--volume-id", volume, "--epoch", "1700000000"]);
    c.arg("--closure").arg(list).arg("--store-root").arg(root);
    c.args(["--block-size", "128K", "--compression", "zstd:3", "--threads", "2"]);
    c
}

/// `isoforge squashfs -o OUT` of the store fixture.
fn squashfs_store(out: &Path, root: &Path, list: &Path, epoch: &str) -> Command {
    let mut c = isoforge();
    c.args(["squashfs", "-o"]).arg(out).args(["--epoch", epoch]);
    c.arg("--closure").arg(list).arg("--store-root").arg(root);
    c.args(["--block-size", "128K", "--compression", "zstd:3", "--threads", "2"]);
    c
}

/// `isoforge fat -o OUT` of a small EFI tree.
fn fat(out: &Path, tree: &Path, label: &str) -> Command {
    let mut c = isoforge();
    c.args(["fat", "--dir"]).arg(tree).arg("-o").arg(out);
    c.args(["--size", "2M", "--label", label, "--epoch", "1700000000"]);
    c
}

/// The name our temporaries of `target` start with: `.NAME.isoforge-tmp-`.
fn temp_prefix(target: &Path) -> String {
    format!(".{}.isoforge-tmp-", target.file_name().unwrap().to_string_lossy())
}

/// `after` is `before` plus exactly one entry, a temporary of `target` (named
/// `.NAME.isoforge-tmp-PID-N`), whose listing entry is `what`; returns its path.
#[track_caller]
fn one_temporary(
    before: &BTreeMap<String, Entry>,
    after: &BTreeMap<String, Entry>,
    target: &Path,
    what: &Entry,
) -> PathBuf {
    let prefix = temp_prefix(target);
    let extra: Vec<(&String, &Entry)> = after.iter().filter(|(k, _)| !before.contains_key(*k)).collect();
    let top: Vec<_> = extra.iter().filter(|(k, _)| !k.contains('/')).collect();
    assert_eq!(top.len(), 1, "expected one temporary beside {}, found {extra:?}", target.display());
    let (name, entry) = top[0];
    assert!(name.starts_with(&prefix), "{name} is not a temporary of {}", target.display());
    assert_eq!(*entry, what, "{name}");
    for (k, v) in before {
        assert_eq!(after.get(k), Some(v), "{k} changed");
    }
    target.parent().unwrap().join(name)
}

/// The pid in a temporary's name `.NAME.isoforge-tmp-PID-N`.
fn temp_pid(path: &Path) -> u32 {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let rest = name.rsplit_once(".isoforge-tmp-").unwrap().1;
    rest.split_once('-').unwrap().0.parse().unwrap()
}

/// The stderr line of a build that removed `path` left by `pid`.
fn removed_line(path: &Path, kind: &str) -> String {
    format!(
        "isoforge: removed stale temporary {kind} {} left by a killed build (pid {})",
        path.display(),
        temp_pid(path)
    )
}

/// A pid that is not alive: a child that has exited and been waited for.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn killed_build_leaves_the_previous_image_or_the_new_one() {
    let dir = support::tempdir();
    let (root, list) = store_fixture(dir.path(), 4);
    // The complete new image, for comparison.
    let reference = dir.path().join("reference/live.iso");
    fs::create_dir(reference.parent().unwrap()).unwrap();
    succeeded(&mut build_store(&reference, &root, &list, VOLUME), "");
    let new_image = Entry::file(&reference);

    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let target = out.join("live.iso");
    write_file(&out.join("unrelated.txt"), b"not ours\n");
    write_file(&out.join(".hidden"), b"not ours either\n");

    // No previous image: a kill anywhere leaves the directory as it was.
    let before = dir_listing(&out);
    for rule in ["kill@squashfs-block", "kill@squashfs-block#20", "kill@image-metadata", "kill@commit-synced"]
    {
        killed(&mut build_store(&target, &root, &list, VOLUME), rule);
        assert_eq!(dir_listing(&out), before, "{rule} without a previous image");
    }
    // Without a previous image the file is linked in one step: commit-linked is never reached.
    succeeded(&mut build_store(&target, &root, &list, VOLUME), "kill@commit-linked");
    let mut with_new = before.clone();
    with_new.insert("live.iso".into(), new_image.clone());
    assert_eq!(dir_listing(&out), with_new);

    // A previous, different image survives a kill byte for byte.
    succeeded(&mut build_store(&target, &root, &list, "OLD"), "");
    let before = dir_listing(&out);
    assert_ne!(before["live.iso"], new_image);
    for rule in
        ["kill@squashfs-block#3", "kill@squashfs-block#30", "kill@image-metadata", "kill@commit-synced"]
    {
        killed(&mut build_store(&target, &root, &list, VOLUME), rule);
        assert_eq!(dir_listing(&out), before, "{rule} with a previous image");
    }
    // Between the link under a temporary name and the rename: the previous image is intact
    // and the complete new one waits under our temporary name ...
    killed(&mut build_store(&target, &root, &list, VOLUME), "kill@commit-linked");
    let after = dir_listing(&out);
    let temp = one_temporary(&before, &after, &target, &new_image);
    // ... which the next build removes and reports.
    let err = succeeded(&mut build_store(&target, &root, &list, VOLUME), "");
    assert!(err.contains(&removed_line(&temp, "file")), "{err}");
    assert_eq!(dir_listing(&out), with_new);
}

#[test]
fn failed_rebuild_leaves_the_previous_image() {
    let dir = support::tempdir();
    let (root, list, out, target) = previous_image(dir.path(), 1);
    let before = dir_listing(&out);
    // A missing graft source, and a closure naming a store path that is not there.
    let mut cmd = build_store(&target, &root, &list, VOLUME);
    cmd.arg("--graft").arg(format!("/x={}", dir.path().join("missing").display()));
    let o = run_with(&mut cmd, "");
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(dir_listing(&out), before);
    let bad_list = dir.path().join("bad-paths.txt");
    write_file(&bad_list, "/nix/store/9zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-gone\n");
    let o = run_with(&mut build_store(&target, &root, &bad_list, VOLUME), "");
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(dir_listing(&out), before);
    // A directory at the target is refused before anything is written.
    let as_dir = out.join("subdir");
    fs::create_dir(&as_dir).unwrap();
    let before = dir_listing(&out);
    let o = run_with(&mut build_store(&as_dir, &root, &list, VOLUME), "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot create the output file {}: Is a directory", as_dir.display())),
        "{err}"
    );
    assert_eq!(dir_listing(&out), before);
    // A missing directory: named in the message, not created.
    let nowhere = out.join("no/such/live.iso");
    let o = run_with(&mut build_store(&nowhere, &root, &list, VOLUME), "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let want = format!("cannot create the output file {}: No such file or directory", nowhere.display());
    assert!(err.contains(&want), "{err}");
    assert_eq!(dir_listing(&out), before);
}

#[test]
fn named_temporary_fallback_and_stale_files() {
    let dir = support::tempdir();
    let (root, list, out, target) = previous_image(dir.path(), 2);
    let before = dir_listing(&out);

    // Where O_TMPFILE is refused, a failed build removes its named temporary ...
    let mut cmd = build_store(&target, &root, &list, VOLUME);
    cmd.arg("--graft").arg(format!("/x={}", dir.path().join("missing").display()));
    assert_eq!(run_with(&mut cmd, "refuse@o_tmpfile").status.code(), Some(2));
    assert_eq!(dir_listing(&out), before);
    // ... and a killed one leaves it, partial, beside the intact previous image.
    killed(&mut build_store(&target, &root, &list, VOLUME), "refuse@o_tmpfile,kill@squashfs-block#5");
    let after = dir_listing(&out);
    let partial = one_temporary(&before, &after, &target, &after[&temp_prefix_entry(&after, &target)]);

    // Stale files made by hand: one of a dead pid, one of a live pid (this test's), one of
    // another target. The next build removes the dead ones, says so, and keeps the others.
    let dead = out.join(format!("{}{}-0", temp_prefix(&target), dead_pid()));
    write_file(&dead, b"left by a killed build\n");
    let live = out.join(format!("{}{}-0", temp_prefix(&target), std::process::id()));
    write_file(&live, b"a build still running\n");
    let other = out.join(format!(".other.iso.isoforge-tmp-{}-0", dead_pid()));
    write_file(&other, b"another target's\n");
    let err = succeeded(&mut build_store(&target, &root, &list, VOLUME), "refuse@o_tmpfile");
    assert!(err.contains(&removed_line(&partial, "file")), "{err}");
    assert!(err.contains(&removed_line(&dead, "file")), "{err}");
    assert_eq!(err.matches("isoforge: removed stale").count(), 2, "{err}");
    assert!(!partial.exists() && !dead.exists());
    assert!(live.exists() && other.exists());
    // The fallback wrote the same image as an unnamed file would.
    let reference = dir.path().join("reference.iso");
    succeeded(&mut build_store(&reference, &root, &list, VOLUME), "");
    assert_eq!(sha256_file(&target), sha256_file(&reference));
    assert_eq!(fs::read_dir(&out).unwrap().count(), 3, "live.iso and the two kept files");
}

/// The name of the one entry of `after` that is a temporary of `target`.
fn temp_prefix_entry(after: &BTreeMap<String, Entry>, target: &Path) -> String {
    let prefix = temp_prefix(target);
    let names: Vec<&String> = after.keys().filter(|k| k.starts_with(&prefix)).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

#[test]
fn killed_squashfs_and_fat_leave_the_previous_file() {
    let dir = support::tempdir();
    let (root, list) = store_fixture(dir.path(), 2);
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();

    // isoforge squashfs -o
    let sq = out.join("store.squashfs");
    let reference = dir.path().join("reference.squashfs");
    succeeded(&mut squashfs_store(&reference, &root, &list, "1700000000"), "");
    let new_sq = Entry::file(&reference);
    let empty = dir_listing(&out);
    for rule in ["kill@squashfs-block", "kill@squashfs-block#12", "kill@commit-synced"] {
        killed(&mut squashfs_store(&sq, &root, &list, "1700000000"), rule);
        assert_eq!(dir_listing(&out), empty, "squashfs {rule} without a previous file");
    }
    succeeded(&mut squashfs_store(&sq, &root, &list, "1600000000"), "");
    let before = dir_listing(&out);
    assert_ne!(before["store.squashfs"], new_sq);
    for rule in ["kill@squashfs-block#2", "kill@squashfs-block#15", "kill@commit-synced"] {
        killed(&mut squashfs_store(&sq, &root, &list, "1700000000"), rule);
        assert_eq!(dir_listing(&out), before, "squashfs {rule}");
    }
    killed(&mut squashfs_store(&sq, &root, &list, "1700000000"), "kill@commit-linked");
    let temp = one_temporary(&before, &dir_listing(&out), &sq, &new_sq);
    let out_sq = squashfs_store(&sq, &root, &list, "1700000000").output().unwrap();
    assert!(out_sq.status.success());
    assert!(String::from_utf8_lossy(&out_sq.stderr).contains(&removed_line(&temp, "file")));
    assert_eq!(sha256_file(&sq), sha256_file(&reference));

    // isoforge fat -o
    let tree = dir.path().join("efi");
    write_file(&tree.join("EFI/BOOT/BOOTX64.EFI"), support::noise(3, 300 << 10));
    let img = out.join("efi.img");
    let reference = dir.path().join("reference.img");
    succeeded(&mut fat(&reference, &tree, "NEW"), "");
    let new_img = Entry::file(&reference);
    let before = dir_listing(&out);
    killed(&mut fat(&img, &tree, "NEW"), "kill@commit-synced");
    assert_eq!(dir_listing(&out), before, "fat kill@commit-synced without a previous file");
    succeeded(&mut fat(&img, &tree, "OLD"), "");
    let before = dir_listing(&out);
    assert_ne!(before["efi.img"], new_img);
    killed(&mut fat(&img, &tree, "NEW"), "kill@commit-synced");
    assert_eq!(dir_listing(&out), before, "fat kill@commit-synced");
    killed(&mut fat(&img, &tree, "NEW"), "kill@commit-linked");
    let temp = one_temporary(&before, &dir_listing(&out), &img, &new_img);
    let err = succeeded(&mut fat(&img, &tree, "NEW"), "");
    assert!(err.contains(&removed_line(&temp, "file")), "{err}");
    assert_eq!(sha256_file(&img), sha256_file(&reference));
}

#[test]
fn killed_out_dir_build_leaves_nothing_until_assembly() {
    let dir = support::tempdir();
    let (root, list) = store_fixture(dir.path(), 2);
    let parent = dir.path().join("parent");
    fs::create_dir(&parent).unwrap();
    write_file(&parent.join("unrelated.txt"), b"not ours\n");
    let out_dir = parent.join("result");
    let build = || {
        let mut c = isoforge();
        c.args(["build", "--out-dir"]).arg(&out_dir).args(["--volume-id", VOLUME, "--epoch", "1700000000"]);
        c.arg("--closure").arg(&list).arg("--store-root").arg(&root);
        c.args(["--block-size", "128K", "--compression", "zstd:3", "--threads", "2"]);
        c
    };
    let before = dir_listing(&parent);
    for rule in ["kill@squashfs-block", "kill@squashfs-block#10", "kill@image-metadata"] {
        killed(&mut build(), rule);
        assert_eq!(dir_listing(&parent), before, "--out-dir {rule}");
    }
    // An existing empty DIR is replaced: it survives a kill as it was.
    fs::create_dir(&out_dir).unwrap();
    let before_empty = dir_listing(&parent);
    killed(&mut build(), "kill@squashfs-block#4");
    assert_eq!(dir_listing(&parent), before_empty);
    fs::remove_dir(&out_dir).unwrap();
    // With the named-temporary fallback the image is a temporary file beside DIR ...
    killed(&mut build(), "refuse@o_tmpfile,kill@image-metadata");
    let after = dir_listing(&parent);
    let partial = one_temporary(&before, &after, &out_dir, &after[&temp_prefix_entry(&after, &out_dir)]);

    // ... which the next build removes and reports. Killed during the assembly (the image
    // is linked into the temporary directory, whose name ends in the pid like a file's),
    // that build leaves the complete temporary directory ...
    let o = run_with(&mut build(), "kill@outdir-assembled");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.signal(), Some(9), "{err}");
    assert!(err.contains(&removed_line(&partial, "file")), "{err}");
    let after = dir_listing(&parent);
    let temp_dirs: Vec<&String> = after
        .iter()
        .filter(|(k, v)| k.starts_with(&temp_prefix(&out_dir)) && !k.contains('/') && **v == Entry::Dir)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(temp_dirs.len(), 1, "{after:?}");
    let temp_dir = parent.join(temp_dirs[0]);
    assert!(temp_dir.join("iso/cd.iso").is_file());
    assert!(temp_dir.join("nix-support/hydra-build-products").is_file());
    assert!(!out_dir.exists());
    // ... which the next build removes and reports.
    let err = succeeded(&mut build(), "");
    assert!(err.contains(&removed_line(&temp_dir, "directory")), "{err}");
    let after = dir_listing(&parent);
    let extra: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(
        extra,
        [
            "result",
            "result/iso",
            "result/iso/cd.iso",
            "result/nix-support",
            "result/nix-support/hydra-build-products",
            "result/nix-support/system"
        ]
    );
    // The image is the one `-o` builds.
    let reference = dir.path().join("reference.iso");
    succeeded(&mut build_store(&reference, &root, &list, VOLUME), "");
    assert_eq!(sha256_file(&out_dir.join("iso/cd.iso")), sha256_file(&reference));
}

/// A full disk: a 4 MiB tmpfs mounted for the test, unmounted on drop (also when the test
/// fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// How the disk is made too small for the new image.
enum Limit {
    /// A tmpfs of 4 MiB holds the output directory: ENOSPC.
    Tmpfs,
    /// `prlimit --fsize` (RLIMIT_FSIZE, SIGXFSZ ignored): EFBIG.
    FileSize,
}

/// The new image (6 MiB of incompressible store data) does not fit; the previous small image
/// survives, nothing else is left, the status is 2 and the message gives the OS's reason.
fn full_disk(limit: Limit) {
    let dir = support::tempdir();
    let (root, list) = store_fixture(dir.path(), 6);
    let out = dir.path().join("out");
    let _mounted = match limit {
        Limit::Tmpfs => match Tmpfs::mount(&out) {
            Some(m) => Some(m),
            None => {
                eprintln!("mount -t tmpfs failed: using a file size limit instead");
                return full_disk(Limit::FileSize);
            }
        },
        Limit::FileSize => {
            fs::create_dir(&out).unwrap();
            None
        }
    };
    let (reason, wrap): (&str, fn(Command) -> Command) = match limit {
        Limit::Tmpfs => ("No space left on device", |c| c),
        Limit::FileSize => ("File too large", |c| {
            // An ignored SIGXFSZ stays ignored across exec: the write fails with EFBIG.
            let mut sh = Command::new("sh");
            sh.arg("-c").arg("trap '' XFSZ; exec prlimit --fsize=3145728 -- \"$0\" \"$@\"");
            sh.arg(c.get_program()).args(c.get_args());
            sh.env_remove("SOURCE_DATE_EPOCH").env_remove("ISOFORGE_FAULT");
            sh
        }),
    };
    let target = out.join("live.iso");
    let small = dir.path().join("small");
    write_file(&small.join("readme.txt"), b"a small previous image\n");
    succeeded(
        isoforge()
            .args(["build", "-o"])
            .arg(&target)
            .args(["--volume-id", "OLD", "--graft"])
            .arg(format!("/={}", small.display())),
        "",
    );
    let before = dir_listing(&out);
    for rule in ["", "refuse@o_tmpfile"] {
        for (what, cmd) in [
            ("build", build_store(&target, &root, &list, VOLUME)),
            ("squashfs", squashfs_store(&out.join("store.squashfs"), &root, &list, "1700000000")),
        ] {
            let o = run_with(&mut wrap(cmd), rule);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{what} {rule}: {}\n{err}", o.status);
            assert!(err.contains(reason), "{what} {rule}: expected {reason:?} in {err}");
            assert!(err.starts_with("isoforge: error: building "), "{what} {rule}: {err}");
            assert_eq!(dir_listing(&out), before, "{what} {rule}");
        }
    }
}

#[test]
fn full_disk_is_an_error_and_leaves_the_previous_image() {
    full_disk(Limit::Tmpfs);
}

#[test]
fn file_size_limit_is_an_error_and_leaves_the_previous_image() {
    if !support::tool("prlimit") {
        return;
    }
    full_disk(Limit::FileSize);
}
