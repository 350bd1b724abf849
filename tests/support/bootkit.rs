//! The boot kit: everything a bootable test image holds besides what isoforge itself writes.
//!
//! - `vmlinuz` and `initrd.img` come from `.ci/boot-assets.sh` (Debian's kernel, extracted, never
//!   installed; a busybox initramfs whose `/init` is `fixtures/boot/init`). They live in
//!   `$ISOFORGE_BOOT_ASSETS`, else `<cargo target dir>/boot-assets`; see `fixtures/boot/README.md`.
//! - isolinux (`isolinux.bin`, `ldlinux.c32`, `isohdpfx.bin`) from Debian's `isolinux` and
//!   `syslinux-common`.
//! - `EFI/BOOT/BOOTX64.EFI`: a GRUB core image made here with `grub-mkimage -O x86_64-efi`
//!   (packages `grub-common`, `grub-efi-amd64-bin`). Its embedded config finds the ISO 9660
//!   volume by label and loads `/boot/grub/grub.cfg` from it, so it depends only on the label;
//!   it is cached per label under the assets dir.
//!
//! A test does: [`bootkit`] → [`BootSpec`] → [`iso_tree`] (+ [`efi_img`] for a reference image)
//! → build the image (xorriso or isoforge) → [`super::qemu::boot`] four ways, waiting for
//! [`BootSpec::marker`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::{mkdir_p, run, sha256_bytes, skip, tool, write_file};

/// The kernel and initramfs built by `.ci/boot-assets.sh`.
#[derive(Clone, Debug)]
pub struct Assets {
    /// The directory holding them (also caches GRUB images and the KVM probe verdict).
    pub dir: PathBuf,
    /// Debian's kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The busybox initramfs (`initrd.img`, gzip'ed newc cpio).
    pub initrd: PathBuf,
}

/// Where the boot assets are: `$ISOFORGE_BOOT_ASSETS`, else `boot-assets` beside the cargo
/// target dir's `tmp` (that is `target/boot-assets`, what `.ci/run` passes to the script).
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ISOFORGE_BOOT_ASSETS") {
        return PathBuf::from(dir);
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("boot-assets")
}

/// The boot assets if the script has made them (no skip message: see [`bootkit`]).
pub fn assets() -> Option<Assets> {
    let dir = assets_dir();
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.img"));
    (kernel.is_file() && initrd.is_file()).then_some(Assets { dir, kernel, initrd })
}

/// Everything a bootable test image needs, for one volume label.
#[derive(Clone, Debug)]
pub struct BootKit {
    /// The ISO 9660 volume id the image must carry (GRUB and the init look for it).
    pub label: String,
    /// Debian's kernel; goes to `/boot/bzImage`.
    pub kernel: PathBuf,
    /// The test initramfs; goes to `/boot/initrd`.
    pub initrd: PathBuf,
    /// isolinux's El Torito boot image; goes to `/isolinux/isolinux.bin` (no emulation,
    /// 4 sectors loaded, boot info table patched in by the ISO writer).
    pub isolinux_bin: PathBuf,
    /// isolinux's second stage; goes beside `isolinux.bin`.
    pub ldlinux_c32: PathBuf,
    /// The isohybrid MBR code (432 bytes used) for BIOS disk boot.
    pub isohdpfx: PathBuf,
    /// A directory holding `EFI/BOOT/BOOTX64.EFI`: the content of the EFI system partition.
    pub efi_dir: PathBuf,
    /// `efi_dir/EFI/BOOT/BOOTX64.EFI`.
    pub bootx64_efi: PathBuf,
}

const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
const ISOHDPFX_BIN: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
const LDLINUX_C32: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
const GRUB_EFI_MODULES: &str = "/usr/lib/grub/x86_64-efi";

/// GRUB modules built into `BOOTX64.EFI` (no module is loaded from disk afterwards).
const GRUB_MODULES: &[&str] = &[
    "normal",
    "configfile",
    "echo",
    "test",
    "ls",
    "cat",
    "sleep",
    "search",
    "search_label",
    "search_fs_file",
    "part_msdos",
    "part_gpt",
    "iso9660",
    "fat",
    "serial",
    "terminal",
    "linux",
    "gzio",
];

/// True when `label` is one this kit supports: 1 to 16 of `A-Z a-z 0-9 . _ -`. Sixteen because
/// GRUB reads the label of a volume with Joliet from the Joliet descriptor, which holds 16
/// UCS-2 characters (xorriso truncates longer ids there); no spaces because the label travels on
/// the kernel command line.
pub fn label_ok(label: &str) -> bool {
    (1..=16).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The boot kit for `label`, or `None` after a skip note when something is missing (a panic
/// under `CI=true`). The GRUB image is built once per label and cached on disk.
pub fn bootkit(label: &str) -> Option<BootKit> {
    assert!(label_ok(label), "unsupported boot-test label {label:?}: 1-16 of A-Za-z0-9._-");
    let Some(assets) = assets() else {
        skip(&format!(
            "no boot assets in {} (run `bash .ci/boot-assets.sh target/boot-assets` or set ISOFORGE_BOOT_ASSETS)",
            assets_dir().display()
        ));
        return None;
    };
    for (file, package) in
        [(ISOLINUX_BIN, "isolinux"), (ISOHDPFX_BIN, "isolinux"), (LDLINUX_C32, "syslinux-common")]
    {
        if !Path::new(file).is_file() {
            skip(&format!("{file} missing (Debian package {package})"));
            return None;
        }
    }
    if !tool("grub-mkimage") {
        return None;
    }
    if !Path::new(GRUB_EFI_MODULES).join("linux.mod").is_file() {
        skip(&format!("{GRUB_EFI_MODULES} missing (Debian package grub-efi-amd64-bin)"));
        return None;
    }
    let efi_dir = grub_efi(&assets.dir, label);
    Some(BootKit {
        label: label.to_owned(),
        kernel: assets.kernel,
        initrd: assets.initrd,
        isolinux_bin: ISOLINUX_BIN.into(),
        ldlinux_c32: LDLINUX_C32.into(),
        isohdpfx: ISOHDPFX_BIN.into(),
        bootx64_efi: efi_dir.join("EFI/BOOT/BOOTX64.EFI"),
        efi_dir,
    })
}

/// GRUB's embedded configuration: serial console, find the volume by label, then read
/// `/boot/grub/grub.cfg` from it (normal mode loads `$prefix/grub.cfg`).
fn grub_early_cfg(label: &str) -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         echo 'isoforge-grub: search --label {label}'\n\
         search --no-floppy --label --set=root '{label}'\n\
         set prefix=($root)/boot/grub\n"
    )
}

/// Builds (or finds cached) `<assets>/grub/<key>/EFI/BOOT/BOOTX64.EFI` for `label` and returns
/// the directory holding `EFI/`. The key hashes the embedded config and the module list.
fn grub_efi(assets: &Path, label: &str) -> PathBuf {
    let cfg = grub_early_cfg(label);
    let key = sha256_bytes(format!("{cfg}\n{}", GRUB_MODULES.join(" ")).as_bytes());
    let dir = assets.join("grub").join(&key[..16]);
    let efi = dir.join("EFI/BOOT/BOOTX64.EFI");
    if efi.is_file() {
        return dir;
    }
    let work = tempfile::Builder::new()
        .prefix(".grub-")
        .tempdir_in(assets)
        .unwrap_or_else(|e| panic!("temp dir in {}: {e}", assets.display()));
    let cfg_path = work.path().join("early.cfg");
    write_file(&cfg_path, &cfg);
    let boot = work.path().join("EFI/BOOT");
    mkdir_p(&boot);
    run(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-d", GRUB_EFI_MODULES, "-p", "/boot/grub", "-c"])
        .arg(&cfg_path)
        .arg("-o")
        .arg(boot.join("BOOTX64.EFI"))
        .args(GRUB_MODULES));
    std::fs::remove_file(&cfg_path).unwrap_or_else(|e| panic!("rm {}: {e}", cfg_path.display()));
    // Publish atomically: another test process may be doing the same.
    let tmp = work.keep();
    mkdir_p(dir.parent().unwrap_or(assets));
    if std::fs::rename(&tmp, &dir).is_err() {
        // Lost the race (or a stale dir without the file): use whatever is complete.
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(efi.is_file(), "cannot publish the GRUB image at {}", efi.display());
    }
    dir
}

/// What the test initramfs checks once it has found the image; becomes the kernel command
/// line (see `fixtures/boot/init` for the meaning of each `isoforge.*` argument).
#[derive(Clone, Debug)]
pub struct BootSpec {
    /// The volume id to look for (`isoforge.label=`).
    pub label: String,
    /// `PATH[:SHA256]` that must exist on the ISO (`isoforge.check=`).
    pub checks: Vec<String>,
    /// A squashfs file on the ISO to loop-mount (`isoforge.squashfs=`).
    pub squashfs: Option<String>,
    /// `PATH[:SHA256]` that must exist inside the squashfs (`isoforge.sqcheck=`).
    pub sqchecks: Vec<String>,
    /// A `sha256sum` list on the ISO, names starting `iso/` or `sq/` (`isoforge.sums=`).
    pub sums: Option<String>,
}

/// The file [`iso_tree`] always writes, whose sha256 every [`BootSpec`] checks.
pub const CHECK_FILE: &str = "/isoforge/Boot-Check.v1.txt";

/// The content of [`CHECK_FILE`] for `label`.
pub fn check_file_content(label: &str) -> String {
    format!("isoforge boot check for volume {label}\n")
}

impl BootSpec {
    /// A spec for `label` that checks [`CHECK_FILE`] and its sha256.
    pub fn new(label: &str) -> BootSpec {
        assert!(label_ok(label), "unsupported boot-test label {label:?}: 1-16 of A-Za-z0-9._-");
        let sha = sha256_bytes(check_file_content(label).as_bytes());
        BootSpec {
            label: label.to_owned(),
            checks: vec![format!("{CHECK_FILE}:{sha}")],
            squashfs: None,
            sqchecks: Vec::new(),
            sums: None,
        }
    }

    /// Also require `path` (absolute on the ISO) to exist, with this sha256 if given.
    pub fn check(mut self, path: &str, sha256: Option<&str>) -> BootSpec {
        self.checks.push(arg_value(path, sha256));
        self
    }

    /// Loop-mount the squashfs file `path` of the ISO.
    pub fn squashfs(mut self, path: &str) -> BootSpec {
        self.squashfs = Some(arg_value(path, None));
        self
    }

    /// Also require `path` (absolute inside the squashfs) to exist, with this sha256 if given.
    pub fn sqcheck(mut self, path: &str, sha256: Option<&str>) -> BootSpec {
        self.sqchecks.push(arg_value(path, sha256));
        self
    }

    /// Run `sha256sum -c` on the list at `path` of the ISO (names `iso/...` and `sq/...`).
    pub fn sums(mut self, path: &str) -> BootSpec {
        self.sums = Some(arg_value(path, None));
        self
    }

    /// The kernel command line: serial console plus the `isoforge.*` arguments.
    pub fn kernel_args(&self) -> String {
        let mut args = format!("console=ttyS0,115200 panic=-1 isoforge.label={}", self.label);
        for c in &self.checks {
            let _ = write!(args, " isoforge.check={c}");
        }
        if let Some(s) = &self.squashfs {
            let _ = write!(args, " isoforge.squashfs={s}");
        }
        for c in &self.sqchecks {
            let _ = write!(args, " isoforge.sqcheck={c}");
        }
        if let Some(s) = &self.sums {
            let _ = write!(args, " isoforge.sums={s}");
        }
        args
    }

    /// The console line that tells the boot succeeded.
    pub fn marker(&self) -> String {
        format!("ISOFORGE-BOOT-OK {}", self.label)
    }
}

/// `path` or `path:sha`, refusing what cannot travel as one kernel argument.
fn arg_value(path: &str, sha256: Option<&str>) -> String {
    assert!(
        path.starts_with('/') && !path.contains(|c: char| c.is_whitespace() || c == ':' || c == '"'),
        "boot-test path {path:?} must be absolute, without spaces, colons or quotes"
    );
    match sha256 {
        Some(sha) => {
            assert!(
                sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "sha256 {sha:?} must be 64 lowercase hex digits"
            );
            format!("{path}:{sha}")
        }
        None => path.to_owned(),
    }
}

/// The isolinux configuration: serial console, no prompt, boot the kernel at once.
pub fn isolinux_cfg(spec: &BootSpec) -> String {
    format!(
        "SERIAL 0 115200\n\
         PROMPT 0\n\
         TIMEOUT 0\n\
         DEFAULT isoforge\n\
         LABEL isoforge\n\
         \x20 KERNEL /boot/bzImage\n\
         \x20 INITRD /boot/initrd\n\
         \x20 APPEND {}\n",
        spec.kernel_args()
    )
}

/// `/boot/grub/grub.cfg` for the GRUB of [`BootKit::bootx64_efi`].
pub fn grub_cfg(spec: &BootSpec) -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         set timeout=0\n\
         set default=0\n\
         menuentry 'isoforge boot test' {{\n\
         \x20 echo 'isoforge-grub: loading /boot/bzImage'\n\
         \x20 linux /boot/bzImage {}\n\
         \x20 initrd /boot/initrd\n\
         }}\n",
        spec.kernel_args()
    )
}

/// Lays out the content of a bootable test ISO in a new temp dir (see [`write_iso_tree`]).
pub fn iso_tree(kit: &BootKit, spec: &BootSpec) -> TempDir {
    let dir = super::tempdir();
    write_iso_tree(kit, spec, dir.path());
    dir
}

/// Writes into `root`:
///
/// ```text
/// isolinux/isolinux.bin  isolinux/ldlinux.c32  isolinux/isolinux.cfg
/// boot/bzImage  boot/initrd  boot/grub/grub.cfg
/// EFI/BOOT/BOOTX64.EFI                      (also inside efi.img, see efi_img)
/// isoforge/Boot-Check.v1.txt                (CHECK_FILE)
/// ```
///
/// It does not write `boot/efi.img` (see [`efi_img`]) nor the El Torito catalog, and copies,
/// never links, so an ISO writer that patches `isolinux.bin` cannot touch the kit.
pub fn write_iso_tree(kit: &BootKit, spec: &BootSpec, root: &Path) {
    assert_eq!(kit.label, spec.label, "boot kit and spec disagree on the label");
    let copy = |from: &Path, to: &str| {
        let to = root.join(to);
        if let Some(parent) = to.parent() {
            mkdir_p(parent);
        }
        std::fs::copy(from, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    };
    let write = |to: &str, text: &str| write_file(&root.join(to), text);
    copy(&kit.isolinux_bin, "isolinux/isolinux.bin");
    copy(&kit.ldlinux_c32, "isolinux/ldlinux.c32");
    write("isolinux/isolinux.cfg", &isolinux_cfg(spec));
    copy(&kit.kernel, "boot/bzImage");
    copy(&kit.initrd, "boot/initrd");
    write("boot/grub/grub.cfg", &grub_cfg(spec));
    copy(&kit.bootx64_efi, "EFI/BOOT/BOOTX64.EFI");
    write(CHECK_FILE.trim_start_matches('/'), &check_file_content(&spec.label));
}

/// Makes a FAT EFI system partition image at `out` holding `EFI/BOOT/BOOTX64.EFI`, with
/// `mkfs.vfat` and `mcopy` (for reference images; isoforge makes its own from `kit.efi_dir`).
/// Returns false after a skip note when dosfstools or mtools is missing.
pub fn efi_img(kit: &BootKit, out: &Path) -> bool {
    if !tool("mkfs.vfat") || !tool("mcopy") || !tool("mmd") {
        return false;
    }
    let efi_len = std::fs::metadata(&kit.bootx64_efi)
        .unwrap_or_else(|e| panic!("stat {}: {e}", kit.bootx64_efi.display()))
        .len();
    // Room for the file plus FAT overhead, in KiB, a multiple of 64.
    let kib = (efi_len / 1024 + 512).div_ceil(64) * 64;
    let _ = std::fs::remove_file(out);
    run(Command::new("mkfs.vfat")
        .args(["-n", "EFIBOOT", "-i", "15015015", "-C"])
        .arg(out)
        .arg(kib.to_string()));
    let img = out.to_string_lossy().into_owned();
    run(Command::new("mmd").env("MTOOLS_SKIP_CHECK", "1").args(["-i", &img, "::/EFI", "::/EFI/BOOT"]));
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &img])
        .arg(&kit.bootx64_efi)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    true
}
