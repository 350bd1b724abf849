//! Issue 11: every input file is read as one consistent snapshot, or the build fails.
//!
//! Each test changes one input file while the real `isoforge` binary reads it — truncated,
//! grown, rewritten in place (same size) or replaced by another file — through the test-only
//! fault injection (`ISOFORGE_FAULT=ACTION@read:SUFFIX:BYTES`, see `isoforge_host::fault`),
//! so the race is deterministic: no sleeps. Every run must exit with status 2 and a message
//! that names the file and says it changed while isoforge read it, and must leave the target
//! directory exactly as it was: the previous complete image, byte for byte, and nothing beside
//! it. The cases cover every reader of host files: an ISO graft, the boot file whose
//! boot-info-table checksum is read while planning, a store path read for the squashfs (with a
//! given registration) and for its NAR hash (with the generated one), `isoforge squashfs`,
//! and a file of the `--efi-dir` (FAT). A sparse store file still builds and reads back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::{isoforge_bin, mkdir_p, run, sha256_file, tool, write_file};

/// The file each test changes; the fault rules match it by this suffix.
const VICTIM: &str = "victim.bin";
/// Several 128 KiB squashfs blocks, and not a whole number of them.
const VICTIM_SIZE: usize = 3 * 1024 * 1024 + 5;
/// The fault fires once a reader has read this much of the victim (mid-file).
const FAULT_AT: u64 = 1 << 20;
const STORE_PATH: &str = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-victim";

/// How the victim changes, and what the message must then say.
#[derive(Debug, Clone, Copy)]
enum Action {
    Truncate,
    Grow,
    Rewrite,
    Replace,
}

const ACTIONS: [Action; 4] = [Action::Truncate, Action::Grow, Action::Rewrite, Action::Replace];

impl Action {
    fn rule(self) -> String {
        let name = match self {
            Action::Truncate => "truncate",
            Action::Grow => "grow",
            Action::Rewrite => "rewrite",
            Action::Replace => "replace",
        };
        format!("{name}@read:{VICTIM}:{FAULT_AT}")
    }

    /// Excerpts of the message, one of which must appear.
    fn says(self) -> &'static [&'static str] {
        match self {
            // A read that finds the new end, or a hole query past it.
            Action::Truncate => &["ended after ", "size was 3145733 bytes, now 1572866"],
            Action::Grow => &["grew past its scanned size of 3145733 bytes"],
            Action::Rewrite => &["modified (mtime/ctime changed)"],
            Action::Replace => &["replaced by another file (inode "],
        }
    }
}

fn isoforge() -> Command {
    let mut c = Command::new(isoforge_bin());
    c.env_remove("SOURCE_DATE_EPOCH");
    c.env_remove(FAULT_ENV);
    c
}

const FAULT_ENV: &str = "ISOFORGE_FAULT";

/// Dates every file under `path` back to 1970-01-01 00:00:01, as the Nix store does, so a
/// change in place moves the mtime whatever the clock's granularity.
fn age(path: &Path) {
    let m = fs::symlink_metadata(path).unwrap();
    if m.is_dir() {
        for e in fs::read_dir(path).unwrap() {
            age(&e.unwrap().path());
        }
    } else if m.is_file() {
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1)).unwrap();
    }
}

/// One scenario: fresh inputs in a scratch directory, the command that reads the victim,
/// the output directory and target.
struct Scenario {
    _dir: tempfile::TempDir,
    victim: PathBuf,
    out_dir: PathBuf,
    target: PathBuf,
    args: Vec<OsString>,
}

impl Scenario {
    fn command(&self) -> Command {
        let mut c = isoforge();
        c.args(&self.args);
        c
    }

    /// Builds a complete image at the target, then runs the same build with `action`
    /// injected and checks the failure: status 2, the message, the target directory as it was.
    fn check(&self, action: Action) {
        self.check_rule(&action.rule(), action.says());
    }

    /// [`Scenario::check`] with a fault rule of its own and the excerpts one of which the
    /// message must hold.
    fn check_rule(&self, rule: &str, says: &[&str]) {
        run(&mut self.command());
        let before = support::dir_listing(&self.out_dir);
        assert_eq!(before.len(), 1, "{before:?}");
        let mut cmd = self.command();
        cmd.env(FAULT_ENV, rule);
        let line = support::command_line(&cmd);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("{FAULT_ENV}={rule} {line}");
        eprintln!("{rule}: {}", stderr.trim_end());
        assert_eq!(out.status.code(), Some(2), "{what}: stderr:\n{stderr}");
        assert!(stderr.contains(&*self.victim.to_string_lossy()), "{what}: no path in:\n{stderr}");
        assert!(stderr.contains("changed while isoforge read it"), "{what}:\n{stderr}");
        assert!(says.iter().any(|s| stderr.contains(s)), "{what}: expected {says:?} in:\n{stderr}");
        assert_eq!(support::dir_listing(&self.out_dir), before, "{what}: the target directory changed");
    }
}

fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = support::tempdir();
    let inputs = dir.path().join("in");
    let out_dir = dir.path().join("out");
    mkdir_p(&inputs);
    mkdir_p(&out_dir);
    (dir, inputs, out_dir)
}

fn os(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

/// A graft tree with the victim and a small file.
fn graft_scenario(bios_boot: bool) -> Scenario {
    let (dir, inputs, out_dir) = scratch();
    let tree = inputs.join("tree");
    let victim = tree.join("boot").join(VICTIM);
    write_file(&victim, support::noise(1, VICTIM_SIZE));
    write_file(&tree.join("hello.txt"), "hello\n");
    age(&tree);
    let target = out_dir.join("image.iso");
    let graft = format!("/={}", tree.display());
    let mut args = os(&[&"build", &"-o", &target, &"--volume-id", &"GRAFT", &"--graft", &graft]);
    if bios_boot {
        // Its boot-info-table checksum is computed while planning: the first reader.
        args.extend(os(&[&"--bios-boot", &format!("boot/{VICTIM}")]));
    }
    Scenario { _dir: dir, victim, out_dir, target, args }
}

/// A store path holding the victim among other files, its closure list and (when
/// `registration`) a registration made beforehand, so that only the squashfs reads it.
fn store_scenario(squashfs_command: bool, registration: bool) -> Scenario {
    let (dir, inputs, out_dir) = scratch();
    let root = inputs.join("root");
    let path = root.join(STORE_PATH.trim_start_matches('/'));
    let victim = path.join("share").join(VICTIM);
    write_file(&victim, support::noise(2, VICTIM_SIZE));
    write_file(&path.join("bin/tool"), "#!/bin/sh\necho tool\n");
    write_file(&path.join("share/other.bin"), support::noise(3, 300_000));
    age(&root);
    let list = inputs.join("store-paths");
    write_file(&list, format!("{STORE_PATH}\n"));
    let target = out_dir.join(if squashfs_command { "store.squashfs" } else { "image.iso" });
    let mut args = if squashfs_command {
        os(&[&"squashfs", &"-o", &target])
    } else {
        os(&[&"build", &"-o", &target, &"--volume-id", &"STORE"])
    };
    args.extend(os(&[
        &"--closure",
        &list,
        &"--store-root",
        &root,
        &"--block-size",
        &"128K",
        &"--compression",
        &"zstd:1",
    ]));
    if registration {
        use isoforge_core::closure::{self, Closure, ClosureOptions, RegistrationOptions};
        let opts = ClosureOptions { store_root: root.clone(), ..ClosureOptions::default() };
        let c = Closure::load(&list, &opts).unwrap();
        let reg = inputs.join("registration");
        fs::write(&reg, closure::registration(&c, &RegistrationOptions::new()).unwrap()).unwrap();
        args.extend(os(&[&"--registration", &reg]));
    }
    Scenario { _dir: dir, victim, out_dir, target, args }
}

/// An EFI directory whose loader is the victim.
fn efi_scenario() -> Scenario {
    let (dir, inputs, out_dir) = scratch();
    let efi = inputs.join("efi");
    let victim = efi.join("EFI/BOOT").join(VICTIM);
    write_file(&victim, support::noise(4, VICTIM_SIZE));
    write_file(&efi.join("EFI/BOOT/grub.cfg"), "set timeout=1\n");
    age(&efi);
    let target = out_dir.join("image.iso");
    let args = os(&[&"build", &"-o", &target, &"--volume-id", &"EFI", &"--efi-dir", &efi]);
    Scenario { _dir: dir, victim, out_dir, target, args }
}

#[test]
fn graft_file_changed_while_read_fails() {
    for action in ACTIONS {
        graft_scenario(false).check(action);
    }
}

#[test]
fn bios_boot_file_changed_while_checksummed_fails() {
    for action in ACTIONS {
        graft_scenario(true).check(action);
    }
}

#[test]
fn store_file_changed_while_compressed_fails() {
    for action in ACTIONS {
        store_scenario(false, true).check(action);
    }
}

/// The defect of issue 11: a file truncated behind the squashfs reader (to half its size,
/// once two thirds are read) used to be stored as its real bytes followed by holes, because
/// `SEEK_DATA` past the new end was taken for "a hole to the end". Now that answer is
/// checked against the scanned size.
#[test]
fn store_file_truncated_behind_the_reader_is_not_taken_for_holes() {
    let rule = format!("truncate@read:{VICTIM}:{}", 2 << 20);
    store_scenario(false, true).check_rule(&rule, &["size was 3145733 bytes, now 1572866"]);
    store_scenario(true, true).check_rule(&rule, &["size was 3145733 bytes, now 1572866"]);
}

#[test]
fn store_file_changed_while_nar_hashed_fails() {
    for action in ACTIONS {
        store_scenario(false, false).check(action);
    }
}

#[test]
fn squashfs_command_store_file_changed_while_read_fails() {
    for action in ACTIONS {
        store_scenario(true, true).check(action);
        store_scenario(true, false).check(action);
    }
}

#[test]
fn efi_file_changed_while_read_fails() {
    for action in ACTIONS {
        efi_scenario().check(action);
    }
}

/// Without a fault the same inputs build, and twice the same bytes (the checks above compare
/// against a real image).
#[test]
fn unchanged_inputs_build_reproducibly() {
    for s in [graft_scenario(true), store_scenario(false, false), efi_scenario()] {
        run(&mut s.command());
        let first = sha256_file(&s.target);
        run(&mut s.command());
        assert_eq!(sha256_file(&s.target), first, "{:?}", s.args);
    }
}

/// A sparse store file (data, a hole in the middle, data, a hole to the end made by
/// `set_len`) builds, its holes become sparse blocks, and unsquashfs and our reader give back
/// its bytes; the generated registration's NAR hash, which reads it too, is `nix-hash`'s.
#[test]
fn sparse_store_file_builds_and_reads_back() {
    let (dir, inputs, out_dir) = scratch();
    let root = inputs.join("root");
    let path = root.join(STORE_PATH.trim_start_matches('/'));
    let sparse = path.join("sparse.bin");
    mkdir_p(&path);
    const K: u64 = 1024;
    let f = File::create(&sparse).unwrap();
    f.write_all_at(&support::noise(5, 300 * 1024), 0).unwrap();
    f.write_all_at(&support::noise(6, 200 * 1024), 1024 * K).unwrap();
    f.set_len(3 * 1024 * K).unwrap();
    drop(f);
    let want = fs::read(&sparse).unwrap();
    let list = inputs.join("store-paths");
    write_file(&list, format!("{STORE_PATH}\n"));
    let sq = out_dir.join("store.squashfs");
    run(isoforge()
        .args(["squashfs", "-o"])
        .arg(&sq)
        .arg("--closure")
        .arg(&list)
        .arg("--store-root")
        .arg(&root)
        .args(["--block-size", "128K", "--compression", "zstd:1"]));

    let mut a = isoforge_squashfs::Archive::open(File::open(&sq).unwrap()).unwrap();
    assert!(a.verify().unwrap().is_empty());
    let node = a.lookup(b"0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-victim/sparse.bin").unwrap();
    assert_eq!(a.read_to_vec(&node).unwrap(), want);
    let isoforge_squashfs::EntryKind::File { layout, .. } = &node.kind else { panic!("{node:?}") };
    // 24 blocks of 128 KiB: 3 with data at the start, 2 in the middle, the rest holes.
    assert_eq!(layout.blocks.len(), 24);
    let sparse_blocks: Vec<usize> = (0..24).filter(|&i| layout.blocks[i] == 0).collect();
    let expected: Vec<usize> = (0..24).filter(|i| !matches!(i, 0..=2 | 8..=9)).collect();
    assert_eq!(sparse_blocks, expected);

    // The registration's NAR hash of the store path (read through the same snapshots) is Nix's.
    let reg_node = a.lookup(b"nix-path-registration").unwrap();
    let reg = String::from_utf8(a.read_to_vec(&reg_node).unwrap()).unwrap();
    if tool("nix-hash") {
        let nix = support::run_ok_stdout(
            Command::new("nix-hash").args(["--type", "sha256", "--base32"]).arg(&path),
        );
        assert_eq!(reg.lines().nth(1), Some(format!("sha256:{}", nix.trim()).as_str()), "{reg}");
    }

    if tool("unsquashfs") {
        let x = dir.path().join("x");
        run(Command::new("unsquashfs").arg("-q").arg("-d").arg(&x).arg(&sq));
        assert_eq!(fs::read(x.join("0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-victim/sparse.bin")).unwrap(), want);
    }
}
