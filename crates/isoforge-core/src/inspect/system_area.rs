//! The system area of a hybrid image: the MBR (boot code digest, the isohybrid boot-file field,
//! disk signature, partition records with CHS), the primary and backup GPT (headers with their
//! CRC validity, the entry arrays), and which isoforge layout it looks like.

use sha2::{Digest, Sha256};

use super::InspectError;
use crate::part::gpt::{crc32, read_gpt, GptHeader, GPT_ENTRY_SIZE, MAX_ENTRY_ARRAY_BYTES};
use crate::part::layout::{identify, Layout};
use crate::part::mbr::{Mbr, MBR_SIGNATURE};
use crate::part::Mismatch;
use crate::read_at::ReadAt;

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
    /// The decoded header.
    pub header: GptHeader,
    /// Sector it was read from.
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
    /// The isoforge layout it matches (`None`: another tool's or damaged).
    pub layout: Option<Layout>,
    /// What the MBR and GPT checks found (see [`Mbr::check`], [`read_gpt`]).
    pub mismatches: Vec<Mismatch>,
}

impl SystemArea {
    /// Reads sector 0 and the GPT of `src`. Reads past the end of a truncated image read zeros
    /// (the missing backup GPT is then reported as a mismatch).
    pub fn read(src: &dyn ReadAt) -> Result<SystemArea, InspectError> {
        let len = src.len();
        let mut sector = [0u8; 512];
        zero_fill_read(src, 0, &mut sector).map_err(|source| InspectError::Io {
            what: "MBR".into(),
            offset: 0,
            len: 512,
            source,
        })?;
        let mbr = Mbr::decode(&sector).map_err(|e| InspectError::Io {
            what: "MBR".into(),
            offset: 0,
            len: 512,
            source: std::io::Error::other(e.to_string()),
        })?;
        let disk_sectors = len / 512;
        let mut mismatches = Vec::new();
        let boot_code_zero = sector[..432].iter().all(|&b| b == 0);
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
                // Where read_gpt read each header: sector 1, and the primary's alternate_lba
                // when inside the disk, else the last sector.
                let backup_at = match &r.primary {
                    Some(p) if p.alternate_lba.get() < disk_sectors => p.alternate_lba.get(),
                    _ => disk_sectors - 1,
                };
                let header = |h: &Option<GptHeader>, at: u64| -> Option<GptHeaderInfo> {
                    let h = (*h)?;
                    Some(GptHeaderInfo {
                        header: h,
                        at,
                        header_crc_valid: h.compute_crc() == h.header_crc32.get(),
                        entries_crc_valid: entries_crc(src, &h),
                    })
                };
                Some(GptInfo {
                    primary: header(&r.primary, 1),
                    backup: header(&r.backup, backup_at),
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
        let layout = identify(&sector, report.as_ref());
        Ok(SystemArea {
            boot_code_sha256: hex(&Sha256::digest(&sector[..432])),
            boot_code_zero,
            isohybrid_boot_lba: mbr.isohybrid_boot_lba(),
            disk_signature: mbr.unique_mbr_disk_signature.get(),
            mbr_signature_ok,
            partitions,
            gpt,
            layout,
            mismatches,
        })
    }
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
    let off = h.partition_entry_lba.get().checked_mul(512)?;
    if off.checked_add(len)? > src.len() {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    src.read_at(off, &mut buf).ok()?;
    Some(crc32(&buf) == h.partition_entry_array_crc32.get())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
