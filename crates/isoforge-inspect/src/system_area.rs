//! The system area of a hybrid image: the MBR (boot code digest, the isohybrid boot-file field,
//! disk signature, partition records with CHS), the primary and backup GPT (headers with their
//! CRC validity, the entry arrays), the Apple Partition Map, and which isoforge layout it looks
//! like.
//!
//! Images isoforge did not write are named in the words of `xorriso -report_system_area`
//! ([`Recognition`]): `MBR`, `isohybrid` (ISOLINUX's MBR: bytes 432..440 hold the BIOS boot
//! image's 512-byte sector), `protective-msdos-label` (partition 1 from sector 1 claims the
//! image), `grub2-mbr` (GRUB's MBR: bytes 432..440 hold that sector + 4, `--grub2-mbr`),
//! `GPT`, `APM`, the partition offset (`-partition_offset 16`: a second volume descriptor set
//! where partition 1 starts) and appended partitions (`-append_partition`: data after the ISO
//! 9660 tree, such as an ESP outside it). The rules are libisofs' (`fs_image.c`, read back by
//! `-report_system_area`), re-stated in `docs/spec/system-area.md`; the cylinder alignment word
//! (`cyl-align-…`) is left out.

use sha2::{Digest, Sha256};

use super::InspectError;
use crate::finding::Finding;
use crate::iso9660::volume_descriptor::VolumeDescriptor;
use crate::part::apm::{DriverDescriptorMap, PartitionMapEntry};
use crate::part::gpt::{crc32, read_gpt, GptHeader, GPT_ENTRY_SIZE, MAX_ENTRY_ARRAY_BYTES};
use crate::part::layout::{identify, Layout, SYSTEM_AREA_BYTES};
use crate::part::mbr::{Mbr, ISOHYBRID_BOOT_LBA, MBR_SIGNATURE, MBR_SIZE, OS_TYPE_GPT_PROTECTIVE};
use crate::read_at::{Located, ReadAt, ReadAtError, ReadTyped};
use crate::units::{Lba2048, Lba512, SECTOR};

/// One used MBR partition record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrPartition {
    /// 1-based record number.
    pub index: usize,
    /// Boot indicator (0x80 active).
    pub boot_indicator: u8,
    /// Partition type ("OS indicator").
    pub os_type: u8,
    /// Start as (cylinder, head, sector).
    pub start_chs: (u32, u32, u32),
    /// End as (cylinder, head, sector).
    pub end_chs: (u32, u32, u32),
    /// First 512-byte sector.
    pub start_lba: u32,
    /// Size in 512-byte sectors.
    pub sectors: u32,
}

impl MbrPartition {
    /// The report name: `MBR.partition[N]` (1-based).
    pub fn name(&self) -> String {
        format!("MBR.partition[{}]", self.index)
    }
}

/// A GPT header as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeaderInfo {
    /// The decoded header, with the byte offset it was read from.
    pub header: Located<GptHeader>,
    /// Sector it was read from (`header.offset` in 512-byte sectors).
    pub at: u64,
    /// Whether `header_crc32` is the CRC of the header.
    pub header_crc_valid: bool,
    /// Whether `partition_entry_array_crc32` is the CRC of the array (`None`: not readable).
    pub entries_crc_valid: Option<bool>,
}

/// A used GPT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based entry number.
    pub index: u32,
    /// Partition type GUID, text.
    pub type_guid: String,
    /// Partition type GUID, the 16 bytes as stored, hex (as `xorriso -report_system_area`).
    pub type_guid_bytes: String,
    /// Unique partition GUID, text.
    pub unique_guid: String,
    /// Unique partition GUID, the bytes as stored, hex.
    pub unique_guid_bytes: String,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// Name (UTF-16 decoded).
    pub name: String,
}

impl GptPartition {
    /// The report name: `GPT.entry[N]` (1-based).
    pub fn name(&self) -> String {
        format!("GPT.entry[{}]", self.index)
    }
}

/// The GPT as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptInfo {
    /// The primary header (sector 1), when it carries the signature.
    pub primary: Option<GptHeaderInfo>,
    /// The backup header, when it carries the signature.
    pub backup: Option<GptHeaderInfo>,
    /// Used entries.
    pub entries: Vec<GptPartition>,
    /// Whether two used entries overlap: xorriso's "overlapping" (the isohybrid "hybrid" GPT,
    /// whose entry 1 covers the whole image) versus "separated".
    pub overlapping: bool,
}

/// One Apple Partition Map entry (`PM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApmPartition {
    /// 1-based position in the map (entry 1 is at byte `block_size`).
    pub index: u32,
    /// Partition name (`pmPartName`), up to 32 bytes, NUL-trimmed.
    pub name: String,
    /// Partition type (`pmParType`), NUL-trimmed: `Apple_partition_map`, `Apple_HFS`,
    /// `ISO9660_data`, …
    pub type_name: String,
    /// First block (`pmPyPartStart`), in `block_size` units.
    pub start: u32,
    /// Blocks (`pmPartBlkCnt`).
    pub blocks: u32,
}

/// The Apple Partition Map: a Driver Descriptor Map mock-up ("ER") in bytes 0..8 and entries
/// at every `block_size` bytes, as `grub-mkrescue` (xorriso `-hfsplus`) writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApmInfo {
    /// The block size of the map (512 or 2048), big-endian at bytes 2..4.
    pub block_size: u32,
    /// Entries with the valid/allocated flags, in map order (the `Apple_partition_map` entry
    /// included; xorriso's report leaves that one out).
    pub entries: Vec<ApmPartition>,
}

/// A partition that lies after the ISO 9660 tree's data: `xorriso -append_partition` (an ESP
/// outside the tree, as Ubuntu's and Debian's ISOs have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedPartition {
    /// Where it is recorded: `MBR.partition[N]` or `GPT.entry[N]`.
    pub name: String,
    /// Its number in that table (1-based).
    pub number: u32,
    /// First 512-byte sector.
    pub start: u64,
    /// Size in 512-byte sectors.
    pub sectors: u64,
}

/// What the system area is, in the words of `xorriso -report_system_area` (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recognition {
    /// ISOLINUX isohybrid MBR: the boot code holds "isolinux", bytes 432..440 divided by 4
    /// are the BIOS boot image's block, and that image is isohybrid-suitable (a boot-info-table
    /// and isolinux's magic fb c0 78 70 at byte 64).
    pub isohybrid: bool,
    /// Partition 1 starts at sector 1 and claims the image (or reaches partition 2): a GPT
    /// protective MBR or xorriso's `--protective-msdos-label`.
    pub protective_msdos_label: bool,
    /// GRUB2 MBR: bytes 432..440 divided by 4, minus 1, are the BIOS boot image's block
    /// (`--grub2-mbr` writes the image's 512-byte sector + 4).
    pub grub2_mbr: bool,
    /// The partition offset in 2048-byte blocks (`-partition_offset 16`): partition 1 (or GPT
    /// entry 1 behind a protective MBR) starts at a second volume descriptor set; 0 if none.
    pub partition_offset: u64,
    /// Partitions after the ISO 9660 tree's data.
    pub appended: Vec<AppendedPartition>,
    /// The words of xorriso's "System area summary" without `cyl-align-…`: `MBR`,
    /// `isohybrid` or `protective-msdos-label`, `grub2-mbr`, `GPT`, `APM`, `not-recognized`.
    pub summary: Vec<&'static str>,
}

impl Recognition {
    /// One line: the summary words, then `partition offset N` and `appended partition
    /// NAME` when present (`MBR protective-msdos-label grub2-mbr GPT, partition offset 16,
    /// appended partition GPT.entry[2]`); `zero` for an all-zero system area.
    pub fn describe(&self) -> String {
        let mut s = if self.summary.is_empty() { "zero".to_string() } else { self.summary.join(" ") };
        if self.partition_offset != 0 {
            s.push_str(&format!(", partition offset {}", self.partition_offset));
        }
        for a in &self.appended {
            s.push_str(&format!(", appended partition {}", a.name));
        }
        s
    }
}

/// What [`SystemArea::recognise`] needs from the rest of the image.
#[derive(Debug, Clone, Copy)]
pub struct ImageFacts {
    /// The primary volume descriptor's volume space size (2048-byte blocks).
    pub volume_blocks: u32,
    /// The first El Torito boot image's block (the default entry), if any.
    pub boot_image: Option<u32>,
    /// Whether that image is isohybrid-suitable (see [`Recognition::isohybrid`]).
    pub isohybrid_suitable: bool,
    /// One past the last 2048-byte block any file or directory of the ISO 9660 tree uses.
    pub tree_end: u64,
}

/// The system area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemArea {
    /// Lowercase hex SHA-256 of bytes 0..432 (the MBR boot code without the isohybrid field).
    pub boot_code_sha256: String,
    /// Whether bytes 0..432 are all zero (no boot code).
    pub boot_code_zero: bool,
    /// The isohybrid boot-file field, bytes 432..440: the BIOS boot file's 512-byte sector.
    pub isohybrid_boot_lba: u64,
    /// Disk signature (bytes 440..444).
    pub disk_signature: u32,
    /// Whether bytes 510..512 are 55 AA.
    pub mbr_signature_ok: bool,
    /// Used partition records.
    pub partitions: Vec<MbrPartition>,
    /// The GPT, when a header carries the signature.
    pub gpt: Option<GptInfo>,
    /// The isoforge layout it matches (`None`: another tool's or damaged). An MBR with
    /// GRUB's boot info, a partition offset, an appended partition or an Apple Partition Map
    /// is never an isoforge layout.
    pub layout: Option<Layout>,
    /// The Apple Partition Map, when bytes 0..2 are "ER" with block size 512 or 2048.
    pub apm: Option<ApmInfo>,
    /// Whether bytes 0..434 hold "isolinux" ([`SystemArea::boot_code_looks_isolinux`]).
    pub isolinux_code: bool,
    /// What it is in xorriso's words (filled by [`SystemArea::recognise`], which
    /// [`super::Image::read`] calls once the catalog and the tree are read).
    pub recognition: Recognition,
    /// What the MBR and GPT checks found (see [`Mbr::check`], [`read_gpt`]).
    pub mismatches: Vec<Finding>,
}

impl SystemArea {
    /// Reads sector 0 and the GPT of `src`. Reads past the end of a truncated image read zeros
    /// (the missing backup GPT is then reported as a mismatch).
    pub fn read(src: &dyn ReadAt) -> Result<SystemArea, InspectError> {
        let len = src.len();
        let mut area = vec![0u8; SYSTEM_AREA_BYTES];
        zero_fill_read(src, 0, &mut area).map_err(|source| ReadAtError {
            what: "system area".into(),
            offset: 0,
            len: SYSTEM_AREA_BYTES as u64,
            source,
        })?;
        // The system area as read (zeros past the end of a short image) is the MBR's source.
        let mbr = area.read_located::<Mbr>(0, "MBR")?;
        // The boot code without the isohybrid boot-file field.
        let boot_code = &mbr.boot_code[..ISOHYBRID_BOOT_LBA.start];
        let disk_sectors = len / SECTOR;
        let mut mismatches = Vec::new();
        let boot_code_zero = boot_code.iter().all(|&b| b == 0);
        let mbr_signature_ok = mbr.signature == MBR_SIGNATURE;
        if mbr_signature_ok {
            mismatches.extend(mbr.check(disk_sectors));
        }
        let partitions = if mbr_signature_ok {
            mbr.partition_record
                .iter()
                .enumerate()
                .filter(|(_, r)| !r.is_unused())
                .map(|(i, r)| MbrPartition {
                    index: i + 1,
                    boot_indicator: r.boot_indicator,
                    os_type: r.os_indicator,
                    start_chs: r.start_chs().unpack(),
                    end_chs: r.end_chs().unpack(),
                    start_lba: r.starting_lba.get(),
                    sectors: r.size_in_lba.get(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut rd = |off: u64, buf: &mut [u8]| zero_fill_read(src, off, buf);
        let report = if disk_sectors >= 2 { read_gpt(&mut rd, disk_sectors).ok() } else { None };
        let gpt = match &report {
            Some(r) if r.primary.is_some() || r.backup.is_some() => {
                mismatches.extend(r.mismatches.iter().cloned());
                let header = |h: &Option<Located<GptHeader>>| -> Option<GptHeaderInfo> {
                    let h = (*h)?;
                    Some(GptHeaderInfo {
                        header: h,
                        at: h.offset / SECTOR,
                        header_crc_valid: h.compute_crc() == h.header_crc32.get(),
                        entries_crc_valid: entries_crc(src, &h),
                    })
                };
                Some(GptInfo {
                    overlapping: r.entries.iter().enumerate().any(|(i, (_, a))| {
                        r.entries[i + 1..].iter().any(|(_, b)| {
                            a.starting_lba.get() <= b.ending_lba.get()
                                && b.starting_lba.get() <= a.ending_lba.get()
                        })
                    }),
                    primary: header(&r.primary),
                    backup: header(&r.backup),
                    entries: r
                        .entries
                        .iter()
                        .map(|(i, e)| GptPartition {
                            index: *i,
                            type_guid: e.partition_type_guid.to_string(),
                            type_guid_bytes: hex(&e.partition_type_guid.0),
                            unique_guid: e.unique_partition_guid.to_string(),
                            unique_guid_bytes: hex(&e.unique_partition_guid.0),
                            first_lba: e.starting_lba.get(),
                            last_lba: e.ending_lba.get(),
                            attributes: e.attributes.get(),
                            name: e.name(),
                        })
                        .collect(),
                })
            }
            _ => None,
        };
        let layout = identify(&area[..MBR_SIZE], report.as_ref());
        Ok(SystemArea {
            boot_code_sha256: hex(&Sha256::digest(boot_code)),
            boot_code_zero,
            isohybrid_boot_lba: mbr.isohybrid_boot_lba(),
            disk_signature: mbr.unique_mbr_disk_signature.get(),
            mbr_signature_ok,
            partitions,
            gpt,
            layout,
            apm: read_apm(&area),
            // libisofs looks for "isolinux" starting in bytes 0..426.
            isolinux_code: area[..434].windows(8).any(|w| w == b"isolinux"),
            recognition: Recognition::default(),
            mismatches,
        })
    }

    /// Names what the system area is ([`Recognition`], libisofs' rules) from the facts of
    /// the rest of the image, and withdraws the isoforge layout when the image has what no
    /// isoforge layout has (GRUB's MBR, a partition offset, an appended partition, an APM).
    pub fn recognise(&mut self, src: &dyn ReadAt, facts: &ImageFacts) {
        let mut r = Recognition::default();
        let isolinux_code = self.isolinux_code;
        let field = self.isohybrid_boot_lba;
        if let Some(lba) = facts.boot_image.map(u64::from) {
            r.isohybrid = facts.isohybrid_suitable && isolinux_code && (field & 0xFFFF_FFFF) / 4 == lba;
            r.grub2_mbr = !r.isohybrid && (field / 4).checked_sub(1) == Some(lba);
        }
        let image_sectors = Lba2048::new(facts.volume_blocks).to_lba512().get();
        let parts: Vec<&MbrPartition> = self.partitions.iter().filter(|p| p.sectors > 0).collect();
        if let Some(p1) = parts.first().filter(|p| p.os_type == OS_TYPE_GPT_PROTECTIVE || !r.isohybrid) {
            let count = u64::from(p1.sectors);
            let part2_start = parts.get(1).map_or(0, |p| u64::from(p.start_lba));
            r.protective_msdos_label = p1.start_lba == 1
                && (count + 1 == image_sectors
                    || (p1.os_type == OS_TYPE_GPT_PROTECTIVE
                        && count + 1 >= image_sectors
                        && (parts.len() == 1 || (parts.len() == 2 && parts[1].os_type == 0)))
                    || count + 1 == part2_start);
        }
        // The partition offset: MBR partition 1, else GPT entry 1 behind a protective MBR.
        let mut candidates = Vec::new();
        if let Some(p1) = parts.first() {
            if p1.boot_indicator == 0 || p1.boot_indicator == 0x80 {
                candidates.push((u64::from(p1.start_lba), u64::from(p1.sectors)));
            }
            if p1.os_type == OS_TYPE_GPT_PROTECTIVE && p1.start_lba == 1 {
                if let Some(e) = self.gpt.as_ref().and_then(|g| g.entries.first()) {
                    candidates.push((e.first_lba, (e.last_lba + 1).saturating_sub(e.first_lba)));
                }
            }
        }
        for (start, count) in candidates {
            if (64..=2048).contains(&start)
                && count >= 72
                && start % 4 == 0
                && count % 4 == 0
                && (start + count) / 4 <= u64::from(facts.volume_blocks)
            {
                let offset = start / 4;
                if second_superblock(src, offset, count, facts.volume_blocks) {
                    r.partition_offset = offset;
                    break;
                }
            }
        }
        // Appended partitions: starting after the tree's data, not a gap filler.
        let after = |start: u64| start / 4 >= facts.tree_end && start > 0;
        for p in &self.partitions {
            if p.os_type != OS_TYPE_GPT_PROTECTIVE && p.sectors > 0 && after(u64::from(p.start_lba)) {
                r.appended.push(AppendedPartition {
                    name: p.name(),
                    number: u32::try_from(p.index).unwrap_or(u32::MAX),
                    start: u64::from(p.start_lba),
                    sectors: u64::from(p.sectors),
                });
            }
        }
        if let Some(g) = &self.gpt {
            for e in g.entries.iter().filter(|e| after(e.first_lba) && !is_gap_name(&e.name)) {
                r.appended.push(AppendedPartition {
                    name: e.name(),
                    number: e.index,
                    start: e.first_lba,
                    sectors: (e.last_lba + 1).saturating_sub(e.first_lba),
                });
            }
        }
        // xorriso's summary words.
        let all_zero = self.boot_code_zero
            && self.isohybrid_boot_lba == 0
            && self.disk_signature == 0
            && self.partitions.is_empty()
            && !self.mbr_signature_ok;
        if self.mbr_signature_ok {
            r.summary.push("MBR");
            if r.isohybrid {
                r.summary.push("isohybrid");
            } else if r.protective_msdos_label {
                r.summary.push("protective-msdos-label");
            }
            if r.grub2_mbr {
                r.summary.push("grub2-mbr");
            }
        } else if !all_zero {
            r.summary.push("not-recognized");
        }
        let gpt_used = self
            .gpt
            .as_ref()
            .is_some_and(|g| g.primary.as_ref().is_some_and(|h| h.header_crc_valid) && !g.entries.is_empty());
        if gpt_used {
            r.summary.push("GPT");
        }
        if self.apm.as_ref().is_some_and(|a| a.entries.iter().any(|e| e.type_name != "Apple_partition_map")) {
            r.summary.push("APM");
        }
        if r.grub2_mbr || r.partition_offset != 0 || !r.appended.is_empty() || self.apm.is_some() {
            self.layout = None;
        }
        self.recognition = r;
    }

    /// Whether the boot code holds "isolinux" (as ISOLINUX's isohybrid MBRs do, in their error
    /// message), libisofs' test for isohybrid code.
    pub fn boot_code_looks_isolinux(&self) -> bool {
        self.isolinux_code
    }

    /// Whether the GPT is an isohybrid "hybrid" GPT (xorriso `-isohybrid-gpt-basdat`,
    /// syslinux `isohybrid --uefi`): entry 1 is named "ISOHybrid…" and covers the image from
    /// sector 0, so it starts before the first usable sector and contains the other entries
    /// on purpose.
    pub fn isohybrid_gpt(&self) -> bool {
        self.gpt
            .as_ref()
            .and_then(|g| g.entries.first())
            .is_some_and(|e| e.index == 1 && e.first_lba == 0 && e.name.starts_with("ISOHybrid"))
    }
}

/// Whether `name` is xorriso's name of a gap filler partition: `Gap` and one or two digits.
fn is_gap_name(name: &str) -> bool {
    name.strip_prefix("Gap")
        .is_some_and(|d| (1..=2).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a primary volume descriptor at block `offset + 16` describes the same volume from
/// there: libisofs' test for a partition offset (its volume space size plus the offset is the
/// image's, or it equals the partition's size).
fn second_superblock(src: &dyn ReadAt, offset: u64, sectors: u64, volume_blocks: u32) -> bool {
    let Some(at) = offset.checked_add(16).and_then(Lba2048::from_u64).map(Lba2048::byte_offset) else {
        return false;
    };
    let Ok(vd) = src.read_typed::<VolumeDescriptor>(at) else { return false };
    let size = u64::from(vd.volume_space_size.le());
    vd.descriptor_type == 1
        && &vd.standard_id == b"CD001"
        && vd.version == 1
        && vd.file_structure_version == 1
        && (size + offset == u64::from(volume_blocks) || size == sectors / 4)
}

/// Reads the Apple Partition Map from the system area `area` (32 KiB), if its driver
/// descriptor map says "ER" with a block size of 512 or 2048. Entries are read while they
/// carry "PM", up to the map size the first one gives and never past the system area.
fn read_apm(area: &[u8]) -> Option<ApmInfo> {
    let bs = area.read_typed::<DriverDescriptorMap>(0).ok()?.block_size()?;
    let entry = |i: u32| area.read_typed::<PartitionMapEntry>(u64::from(bs) * u64::from(i)).ok();
    let map_entries = entry(1).map_or(0, |e| e.pm_map_blk_cnt.get());
    let mut entries = Vec::new();
    for i in 1..=map_entries.min(u32::try_from(area.len() / usize::from(bs)).unwrap_or(0)) {
        let Some(e) = entry(i).filter(|e| e.is_entry()) else { break };
        if !e.is_used() {
            continue;
        }
        entries.push(ApmPartition {
            index: i,
            name: e.name(),
            type_name: e.type_name(),
            start: e.pm_py_part_start.get(),
            blocks: e.pm_part_blk_cnt.get(),
        });
    }
    Some(ApmInfo { block_size: u32::from(bs), entries })
}

/// Reads `buf` at `offset`, zeros for what lies past the end of `src`.
fn zero_fill_read(src: &dyn ReadAt, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    buf.fill(0);
    let avail = src.len().saturating_sub(offset).min(buf.len() as u64);
    let n = usize::try_from(avail).unwrap_or(0);
    src.read_at(offset, &mut buf[..n])
}

fn entries_crc(src: &dyn ReadAt, h: &GptHeader) -> Option<bool> {
    let len = h.entry_array_bytes();
    if len > MAX_ENTRY_ARRAY_BYTES || h.size_of_partition_entry.get() != GPT_ENTRY_SIZE {
        return None;
    }
    let off = Lba512::new(h.partition_entry_lba.get()).byte_offset()?;
    if off.checked_add(len)? > src.len() {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    src.read_at(off, &mut buf).ok()?;
    Some(crc32(&buf) == h.partition_entry_array_crc32.get())
}

pub use isoforge_formats::hex::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apm_entries_as_grub_mkrescue_writes_them() {
        let mut area = vec![0u8; SYSTEM_AREA_BYTES];
        area[..4].copy_from_slice(&[b'E', b'R', 0x08, 0x00]);
        let entry =
            |area: &mut Vec<u8>, i: usize, name: &str, ty: &str, start: u32, blocks: u32, flags: u32| {
                let at = 2048 * i;
                area[at..at + 2].copy_from_slice(b"PM");
                area[at + 4..at + 8].copy_from_slice(&3u32.to_be_bytes());
                area[at + 8..at + 12].copy_from_slice(&start.to_be_bytes());
                area[at + 12..at + 16].copy_from_slice(&blocks.to_be_bytes());
                area[at + 16..at + 16 + name.len()].copy_from_slice(name.as_bytes());
                area[at + 48..at + 48 + ty.len()].copy_from_slice(ty.as_bytes());
                area[at + 88..at + 92].copy_from_slice(&flags.to_be_bytes());
            };
        entry(&mut area, 1, "Apple", "Apple_partition_map", 1, 4, 3);
        entry(&mut area, 2, "Gap0", "ISO9660_data", 16, 1496, 0x13);
        entry(&mut area, 3, "HFSPLUS_Hybrid", "Apple_HFS", 1512, 8220, 0x4000_0013);
        let apm = read_apm(&area).unwrap();
        assert_eq!(apm.block_size, 2048);
        let got: Vec<_> =
            apm.entries.iter().map(|e| (e.index, e.name.as_str(), e.type_name.as_str(), e.start)).collect();
        assert_eq!(
            got,
            [
                (1, "Apple", "Apple_partition_map", 1),
                (2, "Gap0", "ISO9660_data", 16),
                (3, "HFSPLUS_Hybrid", "Apple_HFS", 1512)
            ]
        );
        // A map size past the system area is bounded by it; a bad block size is no APM.
        area[2048 + 4..2048 + 8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(read_apm(&area).unwrap().entries.len(), 3);
        area[2] = 0x04;
        assert!(read_apm(&area).is_none());
        assert!(read_apm(b"E").is_none());
    }

    #[test]
    fn gap_names() {
        assert!(is_gap_name("Gap0") && is_gap_name("Gap12"));
        assert!(
            !is_gap_name("Gap")
                && !is_gap_name("Gap123")
                && !is_gap_name("Gapx")
                && !is_gap_name("Appended2")
        );
    }
}
