//! Boot an image in QEMU and watch its serial console for a marker line.
//!
//! One machine model for all four ways: QEMU's default `pc` (i440fx + PIIX3), 512 MiB, one CPU,
//! no display, no network (`-nodefaults`), serial console on QEMU's stdout, `-no-reboot`.
//! The image is attached to the PIIX IDE controller: as an ATAPI CD-ROM (`media=cdrom`,
//! read-only) or as an ATA disk (`snapshot=on`: QEMU's IDE disk cannot be read-only, so writes
//! go to a throw-away overlay). Either way the image file is never modified, and the guest
//! kernel needs one storage driver for both (`ata_piix`, giving `/dev/sr0` or `/dev/sda`).
//! SeaBIOS is QEMU's default firmware; OVMF comes from Debian's `ovmf` package (the 4 MiB
//! non-secure-boot build, its variable store copied to a temp file per boot).
//!
//! Acceleration: `/dev/kvm` may exist while KVM guests hang (nested virtualisation), so KVM is
//! used only after a probe boot of the boot kit's kernel reached its init under KVM within 12 s;
//! the verdict is cached in the process and in `<boot assets>/accel-probe.txt`. The environment
//! variable `ISOFORGE_QEMU_ACCEL=kvm|tcg` overrides the probe. At most one boot per CPU runs at
//! once per test process (`ISOFORGE_QEMU_JOBS=N` changes that): TCG guests are CPU-bound.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{bootkit, command_line};

/// Generous per-boot limit: a TCG boot takes 10–40 s here, on a loaded 2-core machine more.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// How long the KVM probe may take: a KVM guest reaches its init in 1–3 s.
const PROBE_TIMEOUT: Duration = Duration::from_secs(12);

/// Console text that ends a boot at once as a failure (after 2 s more of log for context).
pub const FAIL_PATTERNS: &[&str] = &[
    "ISOFORGE-BOOT-FAIL",
    "Kernel panic - not syncing",
    // isolinux / ldlinux
    "Could not find kernel image",
    "Boot failed: please change disks",
    // GRUB: `search --label` found nothing, or a file of grub.cfg is missing
    "error: no such device",
    "error: file `",
    // OVMF found nothing bootable
    "No bootable option or device was found",
];

/// Which firmware the virtual machine starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// SeaBIOS (QEMU's default legacy BIOS): El Torito boot from CD, MBR boot from disk.
    Bios,
    /// OVMF (UEFI): the El Torito EFI image from CD, the EFI system partition from disk.
    Uefi,
}

/// How the image is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Media {
    /// An IDE (ATAPI) CD-ROM drive: the guest sees `/dev/sr0`.
    Cdrom,
    /// An IDE hard disk: the guest sees `/dev/sda` (a hybrid image as a USB stick would be).
    Disk,
}

/// QEMU's accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's software emulator (about 5–10× slower than KVM).
    Tcg,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        })
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Media::Cdrom => "cdrom",
            Media::Disk => "disk",
        })
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// All four ways, in the order a test usually runs them.
pub const ALL_WAYS: [(Firmware, Media); 4] = [
    (Firmware::Bios, Media::Cdrom),
    (Firmware::Bios, Media::Disk),
    (Firmware::Uefi, Media::Cdrom),
    (Firmware::Uefi, Media::Disk),
];

/// OVMF's firmware code (read-only) and the template of its variable store.
#[derive(Clone, Debug)]
pub struct Ovmf {
    /// `OVMF_CODE*.fd`, attached as read-only pflash unit 0.
    pub code: PathBuf,
    /// `OVMF_VARS*.fd`, copied per boot and attached as pflash unit 1.
    pub vars: PathBuf,
}

/// Debian's OVMF files (package `ovmf`), if installed: the 4 MiB build of bookworm and later,
/// else the 2 MiB build of older releases. The secure-boot builds need SMM and are not used.
pub fn ovmf() -> Option<Ovmf> {
    [("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd")].iter().find_map(
        |(code, vars)| {
            let dir = Path::new("/usr/share/OVMF");
            let (code, vars) = (dir.join(code), dir.join(vars));
            (code.is_file() && vars.is_file()).then_some(Ovmf { code, vars })
        },
    )
}

/// True when QEMU (and, for `firmware` UEFI, OVMF) is installed; else skips (panics under CI)
/// naming the Debian package, like [`super::tool`].
pub fn available(firmware: Firmware) -> bool {
    if !super::tool("qemu-system-x86_64") {
        return false;
    }
    if firmware == Firmware::Uefi && ovmf().is_none() {
        super::skip("OVMF firmware not installed (Debian package ovmf)");
        return false;
    }
    true
}

/// The accelerator to use: `ISOFORGE_QEMU_ACCEL` if set, else the cached result of a probe.
pub fn accel() -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| match std::env::var("ISOFORGE_QEMU_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        Ok(other) => panic!("ISOFORGE_QEMU_ACCEL={other}: expected kvm or tcg"),
        Err(_) => probe_accel(),
    })
}

/// Decides between KVM and TCG: TCG unless `/dev/kvm` opens read-write and a KVM guest runs
/// the boot kit's kernel to its init (`isoforge.probe=1` prints `ISOFORGE-PROBE-OK`) in time.
fn probe_accel() -> Accel {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return Accel::Tcg;
    }
    let Some(assets) = bootkit::assets() else {
        eprintln!("qemu: no boot assets to probe KVM with: using TCG");
        return Accel::Tcg;
    };
    // The verdict depends on the host kernel, QEMU and the guest kernel.
    let key = format!(
        "{} | {} | {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        qemu_version(),
        std::fs::metadata(&assets.kernel).map(|m| m.len()).unwrap_or(0)
    );
    let cache = assets.dir.join("accel-probe.txt");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some((cached_key, verdict)) = text.trim_end().rsplit_once('\n') {
            if cached_key == key {
                match verdict {
                    "kvm" => return Accel::Kvm,
                    "tcg" => return Accel::Tcg,
                    _ => {}
                }
            }
        }
    }
    let mut cmd = base_command(Accel::Kvm);
    cmd.arg("-kernel").arg(&assets.kernel).arg("-initrd").arg(&assets.initrd);
    cmd.args(["-append", "console=ttyS0 isoforge.probe=1"]);
    let start = Instant::now();
    let (verdict, why) = match watch(cmd, "ISOFORGE-PROBE-OK", PROBE_TIMEOUT, "kvm-probe") {
        Ok(_) => (Accel::Kvm, "the guest reached its init".to_owned()),
        Err(e) => (Accel::Tcg, e.lines().next().unwrap_or_default().to_owned()),
    };
    eprintln!("qemu: KVM probe: {why} ({:.1} s): using {verdict}", start.elapsed().as_secs_f64());
    // Best effort: a cache that cannot be written only costs another probe.
    let _ = std::fs::write(&cache, format!("{key}\n{verdict}\n"));
    verdict
}

fn qemu_version() -> String {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// The options shared by every boot: machine, memory, no devices but the ones we add, serial
/// console on stdout, exit instead of reboot.
fn base_command(accel: Accel) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", &format!("pc,accel={accel}")]);
    cmd.args(["-m", "512", "-smp", "1", "-nodefaults", "-no-user-config"]);
    cmd.args(["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"]);
    cmd
}

/// A path as a value of QEMU's `-drive`: commas doubled.
fn drive_path(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// Boots `image` with `firmware` from `media`, reading the serial console live until a line ends
/// with `marker` (`Ok(serial log)`), a line holds one of [`FAIL_PATTERNS`], QEMU exits, or
/// `timeout` passes (`Err(reason, command, QEMU's stderr and the end of the serial log)`).
/// QEMU is always killed before this returns; the image is never written. The whole serial log
/// is also saved under the cargo target dir (`target/tmp/qemu-logs/`), named in the messages.
pub fn boot(
    image: &Path,
    firmware: Firmware,
    media: Media,
    marker: &str,
    timeout: Duration,
) -> Result<String, String> {
    let _slot = Slot::acquire();
    let accel = accel();
    let mut cmd = base_command(accel);
    let _vars_dir; // holds OVMF's writable variable store until QEMU is gone
    match firmware {
        Firmware::Bios => {}
        Firmware::Uefi => {
            let Some(ovmf) = ovmf() else {
                return Err("OVMF not installed (Debian package ovmf)".into());
            };
            let dir = super::tempdir();
            let vars = dir.path().join("OVMF_VARS.fd");
            std::fs::copy(&ovmf.vars, &vars)
                .map_err(|e| format!("copy {} to {}: {e}", ovmf.vars.display(), vars.display()))?;
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={}", drive_path(&ovmf.code)));
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=1,file={}", drive_path(&vars)));
            _vars_dir = dir;
        }
    }
    let image_path = drive_path(image);
    match media {
        Media::Cdrom => {
            cmd.arg("-drive").arg(format!("file={image_path},format=raw,if=ide,media=cdrom,readonly=on"));
            cmd.args(["-boot", "order=d"]);
        }
        Media::Disk => {
            cmd.arg("-drive").arg(format!("file={image_path},format=raw,if=ide,media=disk,snapshot=on"));
            cmd.args(["-boot", "order=c"]);
        }
    }
    let stem = image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = format!("{stem}-{firmware}-{media}");
    let start = Instant::now();
    let result = watch(cmd, marker, timeout, &name);
    eprintln!(
        "qemu: {name}: {} in {:.1} s ({accel})",
        if result.is_ok() { "booted" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    result
}

/// Boots the machine of [`boot`] with `firmware` and `args` instead of an image (a direct
/// kernel boot's `-kernel`/`-initrd`/`-append`, or a NIC for a network boot), watching the
/// console for `marker` as [`boot`] does. `name` names the saved serial log.
pub fn boot_args(
    name: &str,
    firmware: Firmware,
    args: &[std::ffi::OsString],
    marker: &str,
    timeout: Duration,
) -> Result<String, String> {
    let _slot = Slot::acquire();
    let accel = accel();
    let mut cmd = base_command(accel);
    let _vars_dir; // holds OVMF's writable variable store until QEMU is gone
    if firmware == Firmware::Uefi {
        let Some(ovmf) = ovmf() else {
            return Err("OVMF not installed (Debian package ovmf)".into());
        };
        let dir = super::tempdir();
        let vars = dir.path().join("OVMF_VARS.fd");
        std::fs::copy(&ovmf.vars, &vars)
            .map_err(|e| format!("copy {} to {}: {e}", ovmf.vars.display(), vars.display()))?;
        cmd.arg("-drive")
            .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={}", drive_path(&ovmf.code)));
        cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=1,file={}", drive_path(&vars)));
        _vars_dir = dir;
    }
    cmd.args(args);
    let name = format!("{name}-{firmware}");
    let start = Instant::now();
    let result = watch(cmd, marker, timeout, &name);
    eprintln!(
        "qemu: {name}: {} in {:.1} s ({accel})",
        if result.is_ok() { "booted" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    result
}

/// [`boot`] with [`BOOT_TIMEOUT`] that panics with the whole story when the boot fails, and
/// checks that the init found the image on the device `media` gives (`/dev/sr0` or `/dev/sda`).
/// Returns the serial log.
#[track_caller]
pub fn expect_boot(image: &Path, firmware: Firmware, media: Media, marker: &str) -> String {
    let log = boot(image, firmware, media, marker, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let device = expected_device(media);
    assert!(
        log.contains(device),
        "{firmware} {media}: booted, but `{device}` is not on the console:\n{}",
        strip_ansi(&log)
    );
    log
}

/// The init's device line for an image attached as `media` to the IDE controller.
pub fn expected_device(media: Media) -> &'static str {
    match media {
        Media::Cdrom => "ISOFORGE-DEVICE /dev/sr0",
        Media::Disk => "ISOFORGE-DEVICE /dev/sda",
    }
}

/// Kills and reaps QEMU however the watch ends (including a panic).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` (a QEMU with `-serial stdio`) and watches its stdout line by line.
fn watch(mut cmd: Command, marker: &str, timeout: Duration, name: &str) -> Result<String, String> {
    let line = command_line(&cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().map_err(|e| format!("cannot start `{line}`: {e}"))?);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = child.0.stdout.take().ok_or("no stdout pipe")?;
    let mut stderr = child.0.stderr.take().ok_or("no stderr pipe")?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let stderr_thread = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });

    let mut deadline = Instant::now() + timeout;
    let mut log: Vec<u8> = Vec::new();
    let mut scanned = 0; // log[..scanned] holds complete lines already looked at
    let mut failure: Option<String> = None;
    let verdict: Result<(), String> = loop {
        let now = Instant::now();
        if now >= deadline {
            break Err(failure.take().unwrap_or_else(|| format!("no `{marker}` within {timeout:?}")));
        }
        match rx.recv_timeout(deadline - now) {
            Ok(chunk) => log.extend_from_slice(&chunk),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                let why = format!("QEMU exited ({status}) before `{marker}`");
                break Err(failure.take().map_or(why.clone(), |f| format!("{f}; {why}")));
            }
        }
        let mut found = false;
        while let Some(len) = log[scanned..].iter().position(|&b| b == b'\n') {
            let text = strip_ansi(&String::from_utf8_lossy(&log[scanned..scanned + len]));
            scanned += len + 1;
            let text = text.trim();
            if failure.is_some() {
                continue;
            }
            if text.ends_with(marker) {
                found = true;
                break;
            }
            if FAIL_PATTERNS.iter().any(|p| text.contains(p)) {
                failure = Some(format!("failure on the console: {text}"));
                // Keep reading a little: a panic's backtrace follows its first line.
                deadline = deadline.min(Instant::now() + Duration::from_secs(2));
            }
        }
        if found {
            break Ok(());
        }
    };
    drop(child); // kill QEMU now; its stderr then reaches EOF
    let stderr_text = stderr_thread.join().unwrap_or_default();

    let log_text = String::from_utf8_lossy(&log).into_owned();
    let log_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-logs");
    let log_file = log_dir.join(format!("{name}.log"));
    let saved = std::fs::create_dir_all(&log_dir).and_then(|()| std::fs::write(&log_file, &log));
    let saved = match saved {
        Ok(()) => format!("full serial log: {}", log_file.display()),
        Err(e) => format!("serial log not saved ({e})"),
    };
    match verdict {
        Ok(()) => Ok(log_text),
        Err(reason) => {
            let clean = strip_ansi(&log_text);
            let tail_start = clean.len().saturating_sub(6000);
            let tail_start = (tail_start..clean.len()).find(|&i| clean.is_char_boundary(i)).unwrap_or(0);
            Err(format!(
                "{name}: {reason}\n--- command ---\n{line}\n--- QEMU stderr ---\n{stderr_text}\n\
                 --- serial log (last 6000 bytes; {saved}) ---\n{}",
                &clean[tail_start..]
            ))
        }
    }
}

/// `text` without ANSI/VT100 escape sequences (OVMF and GRUB draw with them) and other
/// control characters except newline and tab.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // parameters and intermediates, then one final byte in '@'..='~'
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\n' || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// A permit to run one QEMU: at most `ISOFORGE_QEMU_JOBS` at once per process (default: the
/// number of CPUs; each TCG guest keeps about one core busy).
struct Slot;

struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = std::env::var("ISOFORGE_QEMU_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(cpus);
        Slots { free: Mutex::new(jobs.max(1)), freed: Condvar::new() }
    })
}

impl Slot {
    fn acquire() -> Slot {
        let s = slots();
        let mut free = s.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = s.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let s = slots();
        *s.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        s.freed.notify_one();
    }
}
