//! Helpers shared by the integration tests in `tests/`: each test file includes this module with
//! `mod support;`.
//!
//! - [`tool`], [`tool_path`] and [`files`] decide whether an external program or file may be
//!   used: present, or skip, or (under `CI=true`) fail loudly, naming the Debian package to
//!   install. [`skip`] is that rule for any other missing prerequisite; no test file has its own.
//! - [`run`] / [`run_ok_stdout`] run a command and panic with everything needed to debug it.
//! - [`tempdir`] makes scratch space under the cargo target directory (never the system
//!   temporary directory, often a small tmpfs).
//! - [`dir_listing`] records a directory's state (every entry, hidden ones included, with sizes
//!   and hashes) to prove that a command changed nothing in it or left no debris.
//! - [`isoforge_bin`] is the `isoforge` binary built for these tests.
//! - [`qemu`] boots an image four ways (SeaBIOS/OVMF × CD-ROM/disk) and watches the serial console.
//! - [`bootkit`] provides what a bootable test image needs (kernel, initramfs, isolinux, GRUB EFI).
//!
//! Every test crate compiles this whole module but uses only part of it.
#![allow(dead_code)]

pub mod bootkit;
pub mod qemu;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The one CI-skip rule, shared with the crates' unit tests: [`ci`] is true under `CI=true`,
/// when [`skip`] panics instead of printing `SKIP: why`.
#[allow(unused_imports)] // each test crate uses part of this module
pub use isoforge_testing::{ci, skip};

/// The Debian package that ships the program `name` (for the messages of [`tool`]).
pub fn debian_package(name: &str) -> &str {
    match name {
        "isoinfo" | "genisoimage" => "genisoimage",
        "bsdtar" | "bsdcpio" => "libarchive-tools",
        "xz" => "xz-utils",
        "7z" => "p7zip-full",
        "mksquashfs" | "unsquashfs" => "squashfs-tools",
        "mkfs.vfat" | "mkfs.fat" | "fsck.fat" | "fsck.vfat" => "dosfstools",
        "mcopy" | "mmd" | "mdir" | "mtype" => "mtools",
        "sgdisk" | "gdisk" => "gdisk",
        "sfdisk" | "fdisk" => "fdisk",
        "qemu-system-x86_64" | "qemu-img" => "qemu-system-x86",
        "grub-mkimage" | "grub-mkstandalone" => "grub-common",
        "busybox" => "busybox-static",
        "dpkg-deb" => "dpkg",
        "apt-get" | "apt-cache" => "apt",
        "nix-store" | "nix-build" | "nix-instantiate" => "nix-bin",
        "blkid" | "mount" => "util-linux",
        "isohybrid" => "syslinux-utils",
        other => other,
    }
}

/// The path of program `name` if it is an executable file in a directory of `PATH`, or else in
/// an sbin directory (gdisk, fdisk and blkid live in `/usr/sbin`, which a user's `PATH` may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The path of the program `name` (see [`which`]). When it is missing this panics under
/// `CI=true` (naming the Debian package to install), else prints
/// `SKIP: <name> not installed (Debian package <package>)` and returns `None`.
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        skip(&format!("{name} not installed (Debian package {})", debian_package(name)));
    }
    found
}

/// Starts Nix once per test binary (`nix-store --version`) and returns its error output if
/// that fails. Nix 2.8 creates its state directory (`/nix/var/nix`) on first use, and tests
/// that start Nix at the same moment on a fresh machine race to create the same symlinks
/// ("creating symlink … File exists").
pub fn nix_first_use() -> Result<(), String> {
    static FIRST: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FIRST
        .get_or_init(|| {
            let o = Command::new("nix-store").arg("--version").output().map_err(|e| e.to_string())?;
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        })
        .clone()
}

/// True when the program `name` is installed ([`tool_path`]): a test does
/// `if !support::tool("xorriso") { return; }`.
pub fn tool(name: &str) -> bool {
    tool_path(name).is_some()
}

/// The Debian package that ships the file `path` (for the messages of [`files`]).
pub fn file_package(path: &Path) -> &'static str {
    [
        ("/usr/lib/ISOLINUX", "isolinux"),
        ("/usr/lib/syslinux", "syslinux-common"),
        ("/usr/share/OVMF", "ovmf"),
        ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
        ("/usr/lib/grub/i386-pc", "grub-pc-bin"),
        ("/usr/lib/ipxe/qemu", "ipxe-qemu"),
        ("/bin/busybox", "busybox-static"),
    ]
    .iter()
    .find(|(dir, _)| path.starts_with(dir))
    .map_or("unknown: see the test", |&(_, package)| package)
}

/// True when every file of `paths` exists (boot loaders, MBR templates and firmware that a
/// Debian package installs). Else [`skip`]s with
/// `<path> missing (Debian package <package>)` for the first missing file and returns false.
pub fn files<P: AsRef<Path>>(paths: &[P]) -> bool {
    match paths.iter().map(AsRef::as_ref).find(|p| !p.is_file()) {
        Some(missing) => {
            skip(&format!("{} missing (Debian package {})", missing.display(), file_package(missing)));
            false
        }
        None => true,
    }
}

/// The isolinux boot file of Debian's `isolinux` package.
pub const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
/// The isohybrid MBR template of Debian's `isolinux` package.
pub const ISOHDPFX_BIN: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";

/// True when [`ISOLINUX_BIN`] and [`ISOHDPFX_BIN`] are installed ([`files`]).
pub fn isolinux() -> bool {
    files(&[ISOLINUX_BIN, ISOHDPFX_BIN])
}

/// The command line of `cmd`, shell-quoted enough to paste into a terminal.
pub fn command_line(cmd: &Command) -> String {
    fn quote(s: &OsStr) -> String {
        let s = s.to_string_lossy();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
            s.into_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    }
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(quote).collect::<Vec<_>>().join(" ")
}

/// Runs `cmd` to completion (stdout and stderr captured) and returns its output; panics with
/// the command line, the exit status, stdout and stderr when it cannot start or fails.
#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    let line = command_line(cmd);
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    if !out.status.success() {
        panic!(
            "`{line}` failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Like [`run`], returning stdout as text (invalid UTF-8 replaced).
#[track_caller]
pub fn run_ok_stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// A fresh scratch directory under the cargo target directory (`target/tmp`), removed on drop.
/// Every test's scratch files go here, never into the system temporary directory (often a
/// small tmpfs): some tests write files of several GiB. `target/tmp` is made when missing.
pub fn tempdir() -> TempDir {
    isoforge_testing::tempdir_in(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// Creates the directory `path` and its parents; panics naming the path.
#[track_caller]
pub fn mkdir_p(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", path.display()));
}

/// Writes `bytes` to `path`, creating its parent directories; panics naming the path.
#[track_caller]
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        mkdir_p(parent);
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The `isoforge` binary that cargo built for these tests.
pub fn isoforge_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isoforge"))
}

/// The lowercase hex sha256 of the file at `path` (streamed).
pub fn sha256_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex(&hasher.finalize())
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds `out` from `tree` with xorriso and the flags of nixpkgs' make-iso9660-image.sh
/// (El Torito BIOS `isolinux/isolinux.bin` + EFI `boot/efi.img`, isohybrid MBR + GPT), dated
/// 1980-01-01 as nixpkgs dates it. Debian's isohdpfx.bin is the MBR template.
pub fn xorriso_nixpkgs_image(tree: &Path, out: &Path, volume_id: &str) {
    run(Command::new("xorriso")
        .env("SOURCE_DATE_EPOCH", "315532800")
        .args(["-volume_date", "all_file_dates", "=315532800", "-as", "mkisofs"])
        .args(["-iso-level", "3", "-full-iso9660-filenames", "-joliet", "-joliet-long", "-rational-rock"])
        .args(["-volid", volume_id, "-eltorito-boot", "isolinux/isolinux.bin"])
        .args(["-eltorito-catalog", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4"])
        .args(["-boot-info-table", "-eltorito-alt-boot", "-e", "boot/efi.img", "-no-emul-boot"])
        .args([
            "-isohybrid-gpt-basdat",
            "-isohybrid-mbr",
            "/usr/lib/ISOLINUX/isohdpfx.bin",
            "-quiet",
            "-output",
        ])
        .arg(out)
        .arg(tree));
}

/// What [`dir_listing`] records of one directory entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// A directory (its entries are listed under their own paths).
    Dir,
    /// A regular file: its size and the lowercase hex sha256 of its contents.
    File {
        /// The length in bytes.
        size: u64,
        /// The sha256 of the contents.
        sha256: String,
    },
    /// A symbolic link (not followed) and its target.
    Symlink(PathBuf),
    /// A FIFO, socket or device node.
    Other,
}

impl Entry {
    /// The entry of the regular file at `path`, as [`dir_listing`] would record it.
    #[track_caller]
    pub fn file(path: &Path) -> Entry {
        let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        Entry::File { size: m.len(), sha256: sha256_file(path) }
    }
}

/// Every entry below `dir`, hidden ones included, recursively, by path relative to `dir`
/// (components joined by `/`): directories, files with size and sha256, symlinks with their
/// target (not followed). An absent `dir`, or one that is not a directory, gives an empty map,
/// so "nothing was created" compares equal too. For tests that check that a command left a
/// directory exactly as it found it, or left no debris.
#[track_caller]
pub fn dir_listing(dir: &Path) -> BTreeMap<String, Entry> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Entry>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for e in entries {
            let e = e.unwrap_or_else(|err| panic!("listing {}: {err}", dir.display()));
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let path = e.path();
            let m = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|err| panic!("lstat {}: {err}", path.display()));
            let entry = if m.is_dir() {
                walk(&path, &format!("{name}/"), out);
                Entry::Dir
            } else if m.file_type().is_symlink() {
                let target = std::fs::read_link(&path)
                    .unwrap_or_else(|err| panic!("readlink {}: {err}", path.display()));
                Entry::Symlink(target)
            } else if m.is_file() {
                Entry::File { size: m.len(), sha256: sha256_file(&path) }
            } else {
                Entry::Other
            };
            out.insert(name, entry);
        }
    }
    let mut out = BTreeMap::new();
    if std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        walk(dir, "", &mut out);
    }
    out
}

/// Deterministic bytes that do not compress (xorshift from `seed`), so a squashfs of them has
/// many real blocks.
pub fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
