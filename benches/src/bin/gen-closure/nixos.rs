//! The NixOS-shaped closure (`--shape nixos`, the default) and its small-files variant
//! (`--files N`). The shape and its sources are described at the top of `gen-closure.rs`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use isoforge_benches::SplitMix64;
use sha2::{Digest, Sha256};

use crate::{base_name, symlink, STORE};

/// Byte shares of the closure, in per-mille of `--size` (the rest is text).
const FIRMWARE_ZST: u64 = 80;
const FIRMWARE_XZ: u64 = 20;
const MODULES_KO_XZ: u64 = 40;
const KERNEL: u64 = 10;
const INITRD: u64 = 10;
const MAN_GZ: u64 = 15;
const ELF: u64 = 360;
/// Store paths per 300 MiB, and the share of tiny paths (a script, a unit, a config file).
const PATHS_PER_300M: u64 = 400;
const TINY_PERCENT: u64 = 30;
/// Hard links (`nix-store --optimise`) and independent duplicate copies, per 1,000 files
/// made before the pass.
const HARD_LINKS_PER_MILLE: u64 = 50;
const DUPLICATES_PER_MILLE: u64 = 30;
/// Files at most from one `<top>/<second>` directory of the source.
const TREE_CAP: usize = 4000;
/// Directory levels below a store path kept from the source's relative paths.
const MAX_DEPTH: usize = 5;
/// Files per store path in the small-files variant.
const FILES_PER_PATH: u64 = 1000;

/// Sizes a text file is cut to (per-mille, bytes; a file shorter than its cut stays whole):
/// at 300M the text files come out with a median of about 2.3 KiB and a mean of about
/// 3.5 KiB, which gives the file count of a NixOS closure for its bytes.
const TEXT_SIZES: &[(u64, u64)] = &[
    (0, 256),
    (100, 1600),
    (350, 3600),
    (600, 5600),
    (850, 8000),
    (950, 12_000),
    (990, 24_000),
    (1000, 64_000),
];
/// The small-files variant: cuts of at most 8 KiB (files come out with a median of ~0.9 KiB).
const SMALL_SIZES: &[(u64, u64)] =
    &[(0, 32), (200, 400), (500, 1300), (800, 3000), (950, 6000), (1000, 8192)];
/// Raw (uncompressed) sizes of firmware files and kernel modules.
const FIRMWARE_SIZES: &[(u64, u64)] =
    &[(0, 2048), (300, 16 << 10), (600, 64 << 10), (850, 256 << 10), (970, 1 << 20), (1000, 4 << 20)];
const MODULE_SIZES: &[(u64, u64)] =
    &[(0, 4096), (400, 24 << 10), (800, 80 << 10), (970, 300 << 10), (1000, 1 << 20)];

const KERNEL_VERSION: &str = "6.12.30";
const FIRMWARE_VENDORS: &[&str] = &[
    "amdgpu",
    "i915",
    "iwlwifi",
    "rtl_nic",
    "rtlwifi",
    "brcm",
    "qcom",
    "mediatek",
    "intel",
    "ath10k",
    "ath11k",
    "nvidia",
    "radeon",
    "cypress",
    "ti-connectivity",
    "mrvl",
    "qca",
    "amd-ucode",
    "cirrus",
    "liquidio",
];
const MODULE_DIRS: &[&str] = &[
    "drivers/net/ethernet/intel",
    "drivers/net/ethernet/realtek",
    "drivers/net/wireless/intel/iwlwifi",
    "drivers/net/wireless/ath/ath10k",
    "drivers/gpu/drm/amd/amdgpu",
    "drivers/gpu/drm/i915",
    "drivers/gpu/drm/nouveau",
    "drivers/usb/host",
    "drivers/usb/storage",
    "drivers/scsi",
    "drivers/ata",
    "drivers/nvme/host",
    "drivers/md",
    "drivers/hid",
    "drivers/input/misc",
    "drivers/block",
    "drivers/virtio",
    "drivers/bluetooth",
    "drivers/media/usb",
    "drivers/hwmon",
    "drivers/i2c/busses",
    "drivers/acpi",
    "fs/ext4",
    "fs/btrfs",
    "fs/xfs",
    "fs/nfs",
    "fs/fuse",
    "fs/squashfs",
    "fs/overlayfs",
    "net/ipv4",
    "net/ipv6",
    "net/netfilter",
    "net/bluetooth",
    "net/wireless",
    "sound/pci/hda",
    "sound/usb",
    "sound/soc/sof",
    "crypto",
    "lib",
    "arch/x86/kvm",
];
/// Package names with versions, cycled (with an output suffix after the first round).
const PACKAGES: &[&str] = &[
    "glibc-2.40-66",
    "bash-5.2p37",
    "coreutils-9.5",
    "systemd-257.5",
    "util-linux-2.41",
    "openssl-3.4.1",
    "zlib-1.3.1",
    "gcc-14.2.1.20250322-lib",
    "perl-5.40.0",
    "python3-3.12.10",
    "grub-2.12",
    "kmod-31",
    "e2fsprogs-1.47.2",
    "dbus-1.14.10",
    "libxml2-2.13.8",
    "curl-8.13.0",
    "nix-2.28.3",
    "iproute2-6.14.0",
    "gnused-4.9",
    "gnugrep-3.11",
    "gawk-5.3.2",
    "findutils-4.10.0",
    "diffutils-3.12",
    "gnutar-1.35",
    "gzip-1.14",
    "xz-5.8.1",
    "zstd-1.5.7",
    "bzip2-1.0.8",
    "acl-2.3.2",
    "attr-2.5.2",
    "libcap-2.75",
    "pam-1.7.0",
    "shadow-4.17.4",
    "sudo-1.9.16p2",
    "openssh-10.0p2",
    "iptables-1.8.11",
    "nftables-1.1.1",
    "libseccomp-2.6.0",
    "ncurses-6.5",
    "readline-8.2p13",
    "less-668",
    "nano-8.4",
    "vim-9.1.1336",
    "man-db-2.13.0",
    "groff-1.23.0",
    "texinfo-7.2",
    "sqlite-3.48.0",
    "libffi-3.4.8",
    "expat-2.7.1",
    "gdbm-1.25",
    "lvm2-2.03.31",
    "cryptsetup-2.7.5",
    "mdadm-4.3",
    "dosfstools-4.2",
    "mtools-4.0.48",
    "parted-3.6",
    "gptfdisk-1.0.10",
    "btrfs-progs-6.14",
    "xfsprogs-6.13.0",
    "ntfs3g-2022.10.3",
    "wpa_supplicant-2.11",
    "iw-6.9",
    "wireless-regdb-2025.02.20",
    "networkmanager-1.52.0",
    "dhcpcd-10.2.2",
    "avahi-0.8",
    "nss-cacert-3.111",
    "tzdata-2025b",
    "glibc-locales-2.40-66",
    "kbd-2.7.1",
    "console-setup-1.233",
    "pciutils-3.13.0",
    "usbutils-018",
    "hwdata-0.394",
    "lsof-4.99.4",
    "procps-4.0.4",
    "psmisc-23.7",
    "strace-6.14",
    "gdb-16.3",
    "rsync-3.4.1",
    "git-2.49.0",
    "gnupg-2.4.7",
    "libgcrypt-1.11.0",
    "libgpg-error-1.55",
    "gnutls-3.8.9",
    "nettle-3.10.1",
    "p11-kit-0.25.5",
    "libidn2-2.3.8",
    "libunistring-1.3",
    "pcre2-10.44",
    "icu4c-76.1",
    "boost-1.87.0",
    "llvm-19.1.7-lib",
    "mesa-25.0.5",
    "libdrm-2.4.124",
    "wayland-1.23.1",
    "libxkbcommon-1.8.1",
    "fontconfig-2.16.0",
    "freetype-2.13.3",
    "harfbuzz-10.2.0",
    "cairo-1.18.2",
    "pango-1.56.3",
    "glib-2.84.1",
    "gtk+3-3.24.49",
    "polkit-126",
    "udisks-2.10.1",
    "upower-1.90.7",
    "bluez-5.82",
    "pipewire-1.4.2",
    "alsa-lib-1.2.14",
    "pulseaudio-17.0",
    "nixos-install-tools",
    "nixos-rebuild",
    "nixos-manual-html",
    "etc",
    "system-units",
    "unit-script-getty",
    "initrd-nixos.conf",
];
const OUTPUTS: &[&str] = &["", "-bin", "-lib", "-man", "-dev", "-doc", "-info", "-out"];

/// One file of the source tree (`/usr`), by kind.
#[derive(Clone)]
struct Src {
    path: PathBuf,
    /// Relative to the source root, e.g. `share/perl5/File/Temp.pm`.
    rel: String,
    len: u64,
    exec: bool,
}

/// What a file starts with.
#[derive(PartialEq)]
enum Magic {
    Elf,
    Compressed,
    Other,
}

fn magic(p: &Path) -> Magic {
    let mut m = [0u8; 6];
    let Ok(mut f) = fs::File::open(p) else { return Magic::Other };
    let n = f.read(&mut m).unwrap_or(0);
    if crate::stats::is_compressed(&m[..n]) {
        Magic::Compressed
    } else if n >= 4 && &m[..4] == b"\x7fELF" {
        Magic::Elf
    } else {
        Magic::Other
    }
}

struct Pools {
    exes: Vec<Src>,
    libs: Vec<Src>,
    text: Vec<Src>,
    man: Vec<Src>,
}

impl Pools {
    /// Walks `source` once, sorted, symlinks not followed: ELF executables (`bin`, `sbin`,
    /// `libexec`) and libraries (`*.so*` under `lib`) of 16 KiB to 32 MiB, gzip'd man pages,
    /// and text: every other regular file of at most 256 KiB that is neither ELF nor
    /// compressed (by its first bytes), outside `local`, at most `TREE_CAP` from one
    /// `<top>/<second>` directory.
    fn new(source: &Path) -> Pools {
        let mut all = Vec::new();
        walk(source, source, &mut all);

        let mut pools = Pools { exes: Vec::new(), libs: Vec::new(), text: Vec::new(), man: Vec::new() };
        for s in all {
            let top = s.rel.split('/').next().unwrap_or("");
            if top == "local" || s.len == 0 {
                continue;
            }
            let m = magic(&s.path);
            if s.rel.starts_with("share/man/") {
                if s.rel.ends_with(".gz") && m == Magic::Compressed && s.len <= 256 << 10 {
                    pools.man.push(s);
                }
                continue;
            }
            match m {
                Magic::Elf if (16 << 10..=32 << 20).contains(&s.len) => {
                    if matches!(top, "bin" | "sbin" | "libexec") {
                        pools.exes.push(s);
                    } else if top == "lib" && s.rel.contains(".so") {
                        pools.libs.push(s);
                    }
                }
                Magic::Other if s.len <= 256 << 10 && !matches!(top, "bin" | "sbin") => pools.text.push(s),
                _ => {}
            }
        }
        // At most TREE_CAP files from one `<top>/<second>` directory (the first ones in
        // sorted order), so that one big tree (an SDK, a language's library) is not most
        // of the pool.
        let mut per_tree: HashMap<String, usize> = HashMap::new();
        pools.text.retain(|s| {
            let mut parts = s.rel.splitn(3, '/');
            let tree = format!("{}/{}", parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let n = per_tree.entry(tree).or_default();
            *n += 1;
            *n <= TREE_CAP
        });
        pools
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Src>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.is_dir() {
            walk(root, &p, out);
        } else if m.is_file() && m.permissions().mode() & 0o444 != 0 {
            let Ok(rel) = p.strip_prefix(root) else { continue };
            let Some(rel) = rel.to_str() else { continue };
            out.push(Src {
                rel: rel.to_string(),
                len: m.len(),
                exec: m.permissions().mode() & 0o111 != 0,
                path: p.clone(),
            });
        }
    }
}

/// A regular file made, for the hard-link and duplicate pass.
struct Made {
    path: usize,
    rel: String,
}

/// What a store path holds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    FirmwareZst,
    FirmwareXz,
    Kernel,
    Modules,
    Initrd,
    SystemPath,
    Tiny,
    Package,
}

struct Gen<'a> {
    rng: SplitMix64,
    store: PathBuf,
    names: Vec<String>,
    pools: &'a Pools,
    made: Vec<Made>,
    /// First 16 bytes of the sha256 of every file made so far (text and ELF), so that no
    /// duplicate is made by accident (licence headers cut to the same length, a source
    /// used twice): only the pass at the end makes duplicates.
    seen: HashSet<[u8; 16]>,
    used_text: Vec<bool>,
    used_man: Vec<bool>,
    used_elf: HashSet<PathBuf>,
    /// Executables made (path index, rel), for the system-path symlink farm.
    bins: Vec<(usize, String)>,
    written: u64,
}

fn digest16(bytes: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// Directories at most `MAX_DEPTH` deep: deeper components go into the file name
/// (`a/b/c/d/e/f/g/x.py` becomes `a/b/c/d/e/f_g_x.py`), so that the deep trees of the
/// source (SDKs, node modules) do not give a directory per five files.
fn flatten(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() <= MAX_DEPTH + 1 {
        return rel.to_string();
    }
    format!("{}/{}", parts[..MAX_DEPTH].join("/"), parts[MAX_DEPTH..].join("_"))
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

impl Gen<'_> {
    fn dir(&self, p: usize) -> PathBuf {
        self.store.join(&self.names[p])
    }

    /// The package name of path `p` (`perl` of `<hash>-perl-5.40.0`).
    fn pname(&self, p: usize) -> String {
        let name = self.names[p].get(33..).unwrap_or("");
        let parts: Vec<&str> =
            name.split('-').take_while(|w| !w.starts_with(|c: char| c.is_ascii_digit())).collect();
        if parts.is_empty() {
            name.to_string()
        } else {
            parts.join("-")
        }
    }

    /// Writes a new regular file unless `rel` exists in path `p`; returns whether it did.
    fn write(&mut self, p: usize, rel: &str, bytes: &[u8], exec: bool) -> Result<bool> {
        let dst = self.dir(p).join(rel);
        if fs::symlink_metadata(&dst).is_ok() {
            return Ok(false);
        }
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&dst, bytes).with_context(|| format!("writing {}", dst.display()))?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }))?;
        self.written += bytes.len() as u64;
        self.made.push(Made { path: p, rel: rel.to_string() });
        Ok(true)
    }

    /// Makes `bytes` unique among the files made so far by appending a line that names the
    /// store path (as Nix store files often do).
    fn unique(&mut self, p: usize, mut bytes: Vec<u8>) -> Vec<u8> {
        let mut k = 0u32;
        loop {
            let d = digest16(&bytes);
            if self.seen.insert(d) {
                return bytes;
            }
            bytes.extend_from_slice(format!("\n# {STORE}/{} {k}\n", self.names[p]).as_bytes());
            k += 1;
        }
    }

    /// Text files from a run of the sorted text pool (so that directories look like a real
    /// package's), each cut to a size from `sizes`, until `max_bytes` or `max_files`.
    fn fill_text(&mut self, p: usize, max_bytes: u64, max_files: u64, sizes: &[(u64, u64)]) -> Result<()> {
        let len = self.pools.text.len();
        if len == 0 {
            return Ok(());
        }
        let mut i = self.rng.index(len);
        let (mut bytes, mut files, mut tries) = (0u64, 0u64, 0usize);
        while bytes < max_bytes && files < max_files && tries < 4 * len {
            tries += 1;
            let reuse = tries > len;
            let idx = i;
            i = (i + 1) % len;
            if self.used_text[idx] && !reuse {
                continue;
            }
            self.used_text[idx] = true;
            let src = self.pools.text[idx].clone();
            let cut = self.rng.quantile(sizes);
            let mut data = Vec::new();
            fs::File::open(&src.path)
                .and_then(|f| f.take(cut).read_to_end(&mut data))
                .with_context(|| format!("reading {}", src.path.display()))?;
            if data.starts_with(b"#!") && p != 1 {
                // patchShebangs: the interpreter is a store path.
                let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
                let bash = self.names.get(1).cloned().unwrap_or_default();
                let mut fixed = format!("#!{STORE}/{bash}/bin/bash").into_bytes();
                fixed.extend_from_slice(&data[end..]);
                data = fixed;
            }
            let data = self.unique(p, data);
            let n = data.len() as u64;
            // Debian keeps one share/doc directory per package; a store path has its own.
            let rel = match src.rel.strip_prefix("share/doc/").and_then(|r| r.split_once('/')) {
                Some((_, rest)) => format!("share/doc/{}/{rest}", self.pname(p)),
                None => src.rel.clone(),
            };
            let rel = flatten(&rel);
            if self.write(p, &rel, &data, src.exec)? {
                bytes += n;
                files += 1;
            }
        }
        Ok(())
    }

    /// An ELF file of at most `max_len` bytes not used before (a used one with a note naming
    /// the path appended, when no unused one turns up); `None` when none fits.
    fn pick_elf(&mut self, exes: bool, p: usize, max_len: u64) -> Result<Option<(Src, Vec<u8>)>> {
        let pool = if exes { &self.pools.exes } else { &self.pools.libs };
        if pool.is_empty() {
            return Ok(None);
        }
        let (mut fresh, mut used) = (None, None);
        for _ in 0..64 {
            let c = &pool[self.rng.index(pool.len())];
            if c.len > max_len {
                continue;
            }
            if !self.used_elf.contains(&c.path) {
                fresh = Some(c.clone());
                break;
            }
            used.get_or_insert_with(|| c.clone());
        }
        let is_fresh = fresh.is_some();
        let Some(src) = fresh.or(used) else { return Ok(None) };
        self.used_elf.insert(src.path.clone());
        let mut data = fs::read(&src.path).with_context(|| format!("reading {}", src.path.display()))?;
        if !is_fresh {
            data.extend_from_slice(format!("\0{STORE}/{}\0", self.names[p]).as_bytes());
        }
        let data = self.unique(p, data);
        Ok(Some((src, data)))
    }

    fn fill_elf(&mut self, p: usize, budget: u64, with_bin: bool) -> Result<()> {
        let start = self.written;
        if with_bin {
            for _ in 0..(1 + self.rng.index(4)) {
                let left = budget.saturating_sub(self.written - start);
                let Some((src, data)) = self.pick_elf(true, p, left)? else { break };
                let rel = format!("bin/{}", file_name(&src.rel));
                if self.write(p, &rel, &data, true)? {
                    self.bins.push((p, rel));
                }
                if self.written - start >= budget {
                    return Ok(());
                }
            }
        }
        while self.written - start < budget {
            let left = budget - (self.written - start);
            let Some((src, data)) = self.pick_elf(false, p, left)? else { break };
            let name = file_name(&src.rel).to_string();
            let rel = format!("lib/{name}");
            if !self.write(p, &rel, &data, false)? {
                continue;
            }
            // The soname link (libfoo.so.1 -> libfoo.so.1.2.3).
            if let Some(pos) = name.find(".so.") {
                let major_end = name[pos + 4..].find('.').map(|e| pos + 4 + e);
                if let Some(end) = major_end {
                    {
                        let link = self.dir(p).join("lib").join(&name[..end]);
                        if fs::symlink_metadata(&link).is_err() {
                            symlink(&name, &link)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Man pages (copied, already gzip'd) from a run of the man pool.
    fn fill_man(&mut self, p: usize, max_bytes: u64) -> Result<()> {
        let len = self.pools.man.len();
        if len == 0 {
            return Ok(());
        }
        let mut i = self.rng.index(len);
        let (mut bytes, mut tries) = (0u64, 0usize);
        while bytes < max_bytes && tries < len {
            tries += 1;
            let idx = i;
            i = (i + 1) % len;
            if self.used_man[idx] {
                continue;
            }
            self.used_man[idx] = true;
            let src = self.pools.man[idx].clone();
            let data = fs::read(&src.path).with_context(|| format!("reading {}", src.path.display()))?;
            if !self.seen.insert(digest16(&data)) {
                continue;
            }
            if self.write(p, &src.rel, &data, false)? {
                bytes += data.len() as u64;
                // An alias page as a symlink, now and then (man-db's .so links).
                if self.rng.chance(1, 25) {
                    let name = file_name(&src.rel);
                    let link = self
                        .dir(p)
                        .join(&src.rel)
                        .with_file_name(format!("{}-alias.gz", name.trim_end_matches(".gz")));
                    if fs::symlink_metadata(&link).is_err() {
                        symlink(name, &link)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A compression job: a slice of a source file, compressed into `dst`.
struct Job {
    dst: PathBuf,
    src: PathBuf,
    offset: u64,
    len: u64,
    codec: Codec,
}

#[derive(Clone, Copy)]
enum Codec {
    /// `zstd -T1 -19 --long --check`, as nixpkgs' compress-firmware.nix.
    Zstd19Long,
    /// `zstd -19`, as an initrd.
    Zstd19,
    /// `xz -9 -C crc32 --lzma2=dict=2MiB`, as compress-firmware.nix's xz.
    Xz9Dict2M,
    /// `xz -C crc32 --lzma2=dict=1MiB` (preset 6), as the kernel's modules_install.
    Xz6Dict1M,
}

fn compress(raw: &[u8], codec: Codec) -> Result<Vec<u8>> {
    match codec {
        Codec::Zstd19Long | Codec::Zstd19 => {
            let mut enc = zstd::stream::Encoder::new(Vec::new(), 19)?;
            if let Codec::Zstd19Long = codec {
                enc.include_checksum(true)?;
                enc.long_distance_matching(true)?;
                enc.window_log(27)?;
            }
            enc.write_all(raw)?;
            Ok(enc.finish()?)
        }
        Codec::Xz9Dict2M | Codec::Xz6Dict1M => {
            let (preset, dict) = if let Codec::Xz9Dict2M = codec { (9, 2 << 20) } else { (6, 1 << 20) };
            let mut opts = liblzma::stream::LzmaOptions::new_preset(preset)?;
            opts.dict_size(dict);
            let mut filters = liblzma::stream::Filters::new();
            filters.lzma2(&opts);
            let stream =
                liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc32)?;
            let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            enc.write_all(raw)?;
            Ok(enc.finish()?)
        }
    }
}

/// Runs the jobs on all cores; returns the bytes written. Each output depends only on its
/// job, so the result does not depend on the thread count.
fn run_jobs(jobs: &[Job]) -> Result<u64> {
    let next = AtomicUsize::new(0);
    let total = Mutex::new(0u64);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let result: Mutex<Result<()>> = Mutex::new(Ok(()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let r = (|| -> Result<u64> {
                    let mut raw = Vec::new();
                    let mut f =
                        fs::File::open(&job.src).with_context(|| format!("reading {}", job.src.display()))?;
                    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(job.offset))?;
                    f.take(job.len).read_to_end(&mut raw)?;
                    let out = compress(&raw, job.codec)?;
                    if let Some(parent) = job.dst.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    fs::write(&job.dst, &out).with_context(|| format!("writing {}", job.dst.display()))?;
                    fs::set_permissions(&job.dst, fs::Permissions::from_mode(0o644))?;
                    Ok(out.len() as u64)
                })();
                match r {
                    Ok(n) => *total.lock().unwrap_or_else(|e| e.into_inner()) += n,
                    Err(e) => {
                        *result.lock().unwrap_or_else(|e| e.into_inner()) = Err(e);
                        break;
                    }
                }
            });
        }
    });
    result.into_inner().unwrap_or_else(|e| e.into_inner())?;
    Ok(total.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Plans compressed files of about `budget` compressed bytes (at an expected `ratio_pm`
/// per-mille of the raw size) from slices of ELF files.
#[allow(clippy::too_many_arguments)]
fn plan_compressed(
    rng: &mut SplitMix64,
    raw_pool: &[Src],
    budget: u64,
    ratio_pm: u64,
    sizes: &[(u64, u64)],
    codec: Codec,
    mut dst: impl FnMut(&mut SplitMix64, usize, &Src) -> PathBuf,
    jobs: &mut Vec<Job>,
) {
    let raw_budget = budget * 1000 / ratio_pm.max(1);
    let mut raw = 0u64;
    let mut k = 0usize;
    while raw < raw_budget && !raw_pool.is_empty() {
        let want = rng.quantile(sizes).min(raw_budget - raw).max(512);
        let src = &raw_pool[rng.index(raw_pool.len())];
        let len = want.min(src.len);
        let offset = rng.below(src.len - len + 1);
        jobs.push(Job { dst: dst(rng, k, src), src: src.path.clone(), offset, len, codec });
        raw += len;
        k += 1;
    }
}

/// Fills `store` with the NixOS-shaped closure of about `size` bytes, or with `files`
/// small files when that is given; returns the store path base names.
pub fn generate(
    seed: u64,
    size: u64,
    files: Option<u64>,
    source: &Path,
    store: &Path,
) -> Result<Vec<String>> {
    let pools = Pools::new(source);
    if files.is_none() && (pools.exes.is_empty() || pools.libs.is_empty()) {
        bail!("no ELF executables or libraries under {}", source.display());
    }
    if pools.text.is_empty() {
        bail!("no text files under {}", source.display());
    }
    let mut rng = SplitMix64::new(seed);
    // The store paths and what they hold.
    let mut kinds = Vec::new();
    match files {
        Some(n) => {
            let n_paths = n.div_ceil(FILES_PER_PATH).max(1);
            kinds.extend((0..n_paths).map(|i| if i == 2 { Kind::SystemPath } else { Kind::Package }));
        }
        None => {
            let n_paths = (size * PATHS_PER_300M / (300 << 20)).max(12);
            for i in 0..n_paths {
                kinds.push(match i {
                    0 => Kind::FirmwareZst,
                    2 => Kind::SystemPath,
                    3 => Kind::Kernel,
                    4 => Kind::Modules,
                    5 => Kind::Initrd,
                    6 => Kind::FirmwareXz,
                    _ if i > 8 && rng.below(100) < TINY_PERCENT => Kind::Tiny,
                    _ => Kind::Package,
                });
            }
        }
    }
    let names: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let name = match k {
                Kind::FirmwareZst => "linux-firmware-20250509-zstd".to_string(),
                Kind::FirmwareXz => "sof-firmware-2025.01.1-xz".to_string(),
                Kind::Kernel => format!("linux-{KERNEL_VERSION}"),
                Kind::Modules => format!("linux-{KERNEL_VERSION}-modules"),
                Kind::Initrd => format!("initrd-linux-{KERNEL_VERSION}"),
                Kind::SystemPath => "system-path".to_string(),
                _ => {
                    let round = i / PACKAGES.len();
                    format!("{}{}", PACKAGES[i % PACKAGES.len()], OUTPUTS[round % OUTPUTS.len()])
                        + &if round >= OUTPUTS.len() { format!("-{round}") } else { String::new() }
                }
            };
            base_name("isoforge-bench-nixos-store-path", seed, i, &name)
        })
        .collect();
    let mut g = Gen {
        rng,
        store: store.to_path_buf(),
        names,
        pools: &pools,
        made: Vec::new(),
        seen: HashSet::new(),
        used_text: vec![false; pools.text.len()],
        used_man: vec![false; pools.man.len()],
        used_elf: HashSet::new(),
        bins: Vec::new(),
        written: 0,
    };
    for n in &g.names {
        fs::create_dir_all(store.join(n))?;
    }

    // Already-compressed store paths first (their real size is known only after
    // compressing), so that the rest of the budget can be shared out exactly.
    if files.is_none() {
        let mut raw_pool: Vec<Src> = pools.libs.iter().chain(&pools.exes).cloned().collect();
        raw_pool.sort_by(|a, b| a.path.cmp(&b.path));
        let mut jobs = Vec::new();
        let pm = |x: u64| size * x / 1000;
        for (p, kind) in kinds.iter().enumerate() {
            let dir = store.join(&g.names[p]);
            match kind {
                Kind::FirmwareZst | Kind::FirmwareXz => {
                    let (budget, codec, ext) = if *kind == Kind::FirmwareZst {
                        (pm(FIRMWARE_ZST), Codec::Zstd19Long, "zst")
                    } else {
                        (pm(FIRMWARE_XZ), Codec::Xz9Dict2M, "xz")
                    };
                    plan_compressed(
                        &mut g.rng,
                        &raw_pool,
                        budget,
                        400,
                        FIRMWARE_SIZES,
                        codec,
                        |rng, k, src| {
                            let vendor = FIRMWARE_VENDORS[rng.index(FIRMWARE_VENDORS.len())];
                            let stem = file_name(&src.rel)
                                .split('.')
                                .next()
                                .unwrap_or("fw")
                                .trim_start_matches("lib");
                            dir.join(format!("lib/firmware/{vendor}/{stem}-{k}.bin.{ext}"))
                        },
                        &mut jobs,
                    );
                }
                Kind::Modules => {
                    plan_compressed(
                        &mut g.rng,
                        &raw_pool,
                        pm(MODULES_KO_XZ),
                        300,
                        MODULE_SIZES,
                        Codec::Xz6Dict1M,
                        |rng, k, src| {
                            let sub = MODULE_DIRS[rng.index(MODULE_DIRS.len())];
                            let stem = file_name(&src.rel)
                                .split('.')
                                .next()
                                .unwrap_or("mod")
                                .trim_start_matches("lib");
                            dir.join(format!("lib/modules/{KERNEL_VERSION}/kernel/{sub}/{stem}_{k}.ko.xz"))
                        },
                        &mut jobs,
                    );
                }
                Kind::Kernel => {
                    let sizes = [(0, pm(KERNEL) * 3), (1000, pm(KERNEL) * 3 + 1)];
                    plan_compressed(
                        &mut g.rng,
                        &raw_pool,
                        pm(KERNEL),
                        330,
                        &sizes,
                        Codec::Xz6Dict1M,
                        |_, k, _| {
                            dir.join(if k == 0 { "bzImage".to_string() } else { format!("bzImage.{k}") })
                        },
                        &mut jobs,
                    );
                }
                Kind::Initrd => {
                    let sizes = [(0, pm(INITRD) * 3), (1000, pm(INITRD) * 3 + 1)];
                    plan_compressed(
                        &mut g.rng,
                        &raw_pool,
                        pm(INITRD),
                        330,
                        &sizes,
                        Codec::Zstd19,
                        |_, k, _| dir.join(if k == 0 { "initrd".to_string() } else { format!("initrd.{k}") }),
                        &mut jobs,
                    );
                }
                _ => {}
            }
        }
        g.written += run_jobs(&jobs)?;
        // Firmware aliases (compress-firmware.nix keeps the package's symlinks), and the
        // module tables (text) beside the modules.
        for (i, job) in jobs.iter().enumerate() {
            if i % 40 == 7 && job.dst.to_string_lossy().contains("/lib/firmware/") {
                if let Some(name) = job.dst.file_name().and_then(|n| n.to_str()) {
                    symlink(name, &job.dst.with_file_name(format!("alias-{name}")))?;
                }
            }
        }
        if let Some(p) = kinds.iter().position(|k| *k == Kind::Modules) {
            let mut dep = String::new();
            for job in &jobs {
                if let Ok(rel) = job
                    .dst
                    .strip_prefix(store.join(&g.names[p]).join(format!("lib/modules/{KERNEL_VERSION}")))
                {
                    dep.push_str(&format!("{}:\n", rel.display()));
                }
            }
            let dep = dep.into_bytes();
            g.write(p, &format!("lib/modules/{KERNEL_VERSION}/modules.dep"), &dep, false)?;
        }
    }

    // Packages: the rest of the budget, weighted with a long tail (a few big paths, many
    // small ones), executables and libraries, text, man pages.
    let packages: Vec<usize> = (0..kinds.len()).filter(|&p| kinds[p] == Kind::Package).collect();
    let weights: Vec<u64> = packages.iter().map(|_| (1 + g.rng.below(16)) << g.rng.below(9)).collect();
    let wsum: u64 = weights.iter().sum::<u64>().max(1);
    let rest = size.saturating_sub(g.written);
    let elf_total = if files.is_some() { 0 } else { (size * ELF / 1000).min(rest) };
    let man_total = if files.is_some() { 0 } else { (size * MAN_GZ / 1000).min(rest - elf_total) };
    // The duplicate copies made at the end come on top (their bytes count in the closure).
    let dup_total = if files.is_some() { 0 } else { size * DUPLICATES_PER_MILLE / 1000 };
    let text_total = (rest - elf_total - man_total).saturating_sub(dup_total);
    let tiny: Vec<usize> = (0..kinds.len()).filter(|&p| kinds[p] == Kind::Tiny).collect();
    // The hard links and copies made at the end come on top of the files made here.
    let n_files = files.map_or(u64::MAX, |n| n * 1000 / (1000 + HARD_LINKS_PER_MILLE + DUPLICATES_PER_MILLE));
    let per_path_files = n_files.div_ceil(packages.len() as u64);
    for (k, &p) in packages.iter().enumerate() {
        let share = |total: u64| (u128::from(total) * u128::from(weights[k]) / u128::from(wsum)) as u64;
        if files.is_none() {
            let with_bin = g.rng.chance(3, 5);
            g.fill_elf(p, share(elf_total), with_bin)?;
            if g.rng.chance(1, 2) {
                g.fill_man(p, 2 * share(man_total))?;
            }
            g.fill_text(p, share(text_total), u64::MAX, TEXT_SIZES)?;
        } else {
            let left = n_files.saturating_sub(g.made.len() as u64);
            g.fill_text(p, u64::MAX, per_path_files.min(left), SMALL_SIZES)?;
            // Symlinks: about one per 50 files (aliases beside them, as packages have).
            let mine: Vec<String> =
                g.made.iter().rev().take_while(|m| m.path == p).map(|m| m.rel.clone()).collect();
            for rel in mine.iter().rev().step_by(50) {
                let link = g.dir(p).join(format!("{rel}-link"));
                if fs::symlink_metadata(&link).is_err() {
                    symlink(file_name(rel), &link)?;
                }
            }
        }
        // nix-support: references to earlier paths.
        if p > 0 && g.rng.chance(1, 2) {
            let mut refs = String::new();
            for _ in 0..(1 + g.rng.index(3)) {
                refs.push_str(&format!("{STORE}/{} ", g.names[g.rng.index(p)]));
            }
            let refs = g.unique(p, refs.into_bytes());
            g.write(p, "nix-support/propagated-build-inputs", &refs, false)?;
        }
        // One in four links into another path (share/…, as wrappers and outputs do).
        if p > 0 && g.rng.chance(1, 4) {
            let other = g.names[g.rng.index(p)].clone();
            symlink(&format!("{STORE}/{other}/share"), &g.dir(p).join("share/dep-share"))?;
        }
    }
    // Tiny paths: a script, a unit or a config file.
    for &p in &tiny {
        let budget = 1 + g.rng.below(4000);
        let count = 1 + g.rng.below(3);
        g.fill_text(p, budget, count, TEXT_SIZES)?;
    }
    // system-path: the buildEnv symlink farm of the executables.
    if let Some(sp) = kinds.iter().position(|k| *k == Kind::SystemPath) {
        let bins = std::mem::take(&mut g.bins);
        for (p, rel) in &bins {
            let link = g.dir(sp).join(rel);
            if fs::symlink_metadata(&link).is_err() {
                symlink(&format!("{STORE}/{}/{rel}", g.names[*p]), &link)?;
            }
        }
        // Also the text of `bin/` and `share/applications/`-like entries of tiny paths.
        for &p in &tiny {
            let link = g.dir(sp).join(format!("share/nixos/{}", &g.names[p][33..]));
            if fs::symlink_metadata(&link).is_err() {
                symlink(&format!("{STORE}/{}", g.names[p]), &link)?;
            }
        }
    }

    // Hard links as `nix-store --optimise` makes them, across and within store paths, and
    // independent duplicate copies (a store not optimised since). Only package files are
    // taken, the way real closures share licences, headers and modules.
    let candidates: Vec<usize> =
        (0..g.made.len()).filter(|&i| matches!(kinds[g.made[i].path], Kind::Package | Kind::Tiny)).collect();
    // The files of each package path, to find directories that exist (a link never makes a
    // directory: in a real store the identical files are there before they are linked).
    let mut by_path: Vec<Vec<usize>> = vec![Vec::new(); kinds.len()];
    for &i in &candidates {
        by_path[g.made[i].path].push(i);
    }
    let with_files: Vec<usize> = packages.iter().copied().filter(|&q| !by_path[q].is_empty()).collect();
    if !candidates.is_empty() && with_files.len() > 1 {
        let base = g.made.len() as u64;
        let n_links = base * HARD_LINKS_PER_MILLE / 1000;
        let n_dups = base * DUPLICATES_PER_MILLE / 1000;
        let (mut links, mut dups, mut tries) = (0u64, 0u64, 0u64);
        while (links < n_links || dups < n_dups) && tries < 4 * (n_links + n_dups) {
            tries += 1;
            let hard = links < n_links;
            let m = &g.made[candidates[g.rng.index(candidates.len())]];
            let (src_p, rel) = (m.path, m.rel.clone());
            let name = file_name(&rel).to_string();
            let within = g.rng.chance(3, 10);
            let dst_p = if within { src_p } else { with_files[g.rng.index(with_files.len())] };
            if !within && dst_p == src_p {
                continue;
            }
            let host = &g.made[by_path[dst_p][g.rng.index(by_path[dst_p].len())]];
            let dir = host.rel.rsplit_once('/').map_or("", |(d, _)| d).to_string();
            let alias = if within { format!("{}-{name}", g.pname(src_p)) } else { name };
            let dst_rel = if dir.is_empty() { alias } else { format!("{dir}/{alias}") };
            let src = g.dir(src_p).join(&rel);
            let dst = g.dir(dst_p).join(&dst_rel);
            if fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            if hard {
                fs::hard_link(&src, &dst).with_context(|| format!("linking {}", dst.display()))?;
                links += 1;
            } else {
                fs::copy(&src, &dst).with_context(|| format!("copying to {}", dst.display()))?;
                dups += 1;
            }
        }
    }
    Ok(g.names)
}

/// Fills `store` with about `size` bytes of random-looking data (SplitMix64 from the
/// seed): files of 64 KiB to 64 MiB in store paths of about 100 MiB each.
pub fn incompressible(seed: u64, size: u64, store: &Path) -> Result<Vec<String>> {
    let mut rng = SplitMix64::new(seed ^ 0x1c0_4b5e_55ab_1e00);
    let n_paths = usize::try_from((size / (100 << 20)).max(1))?;
    let names: Vec<String> = (0..n_paths)
        .map(|i| base_name("isoforge-bench-incompressible-store-path", seed, i, &format!("blobs-{i}")))
        .collect();
    let per_path = size / n_paths as u64;
    let sizes: &[(u64, u64)] = &[(0, 64 << 10), (400, 1 << 20), (800, 8 << 20), (1000, 64 << 20)];
    let mut buf = vec![0u8; 1 << 20];
    for (i, name) in names.iter().enumerate() {
        let dir = store.join(name).join("share/data");
        fs::create_dir_all(&dir)?;
        let mut left = per_path;
        let mut k = 0;
        while left > 0 {
            let len = rng.quantile(sizes).min(left);
            let path = dir.join(format!("blob-{i}-{k}.bin"));
            let mut f = std::io::BufWriter::new(
                fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?,
            );
            let mut n = len;
            while n > 0 {
                let take = usize::try_from(n.min(buf.len() as u64))?;
                rng.fill(&mut buf[..take]);
                f.write_all(&buf[..take])?;
                n -= take as u64;
            }
            f.flush()?;
            left -= len;
            k += 1;
        }
    }
    Ok(names)
}
