//! El Torito boot catalog (El Torito 1.0, 2.x) and the boot-info-table (mkisofs).
//!
//! The catalog is a validation entry, the initial/default entry, then zero or more sections,
//! each a section header followed by its entries. The default entry is the BIOS entry
//! (platform 0); further platforms (0xEF for UEFI) get sections. Every entry is 32 bytes.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::endian::{LE, U16, U32};

/// Platform id of x86 BIOS.
pub const PLATFORM_X86: u8 = 0x00;
/// Platform id of UEFI.
pub const PLATFORM_EFI: u8 = 0xEF;
/// Boot indicator of a bootable entry.
pub const BOOTABLE: u8 = 0x88;
/// Media type: no emulation.
pub const MEDIA_NO_EMULATION: u8 = 0x00;
/// Section header indicator: more headers follow.
pub const HEADER_MORE: u8 = 0x90;
/// Section header indicator: final header.
pub const HEADER_FINAL: u8 = 0x91;

/// Validation entry (El Torito 2.1).
#[repr(C)]
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct ValidationEntry {
    /// 0x01.
    pub header_id: u8,
    /// Platform of the default entry.
    pub platform_id: u8,
    /// Zero.
    pub reserved: U16<LE>,
    /// Manufacturer/developer id (zero here).
    pub id_string: [u8; 24],
    /// Makes the sum of all 16-bit words of the entry zero.
    pub checksum: U16<LE>,
    /// 0x55.
    pub key55: u8,
    /// 0xAA.
    pub key_aa: u8,
}
const _: () = assert!(core::mem::size_of::<ValidationEntry>() == 32);

/// Initial/default entry and section entry (El Torito 2.2, 2.4).
#[repr(C)]
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct BootEntry {
    /// 0x88 bootable, 0x00 not bootable.
    pub boot_indicator: u8,
    /// Boot media type (0 = no emulation).
    pub media_type: u8,
    /// Load segment (0 means the traditional 0x7C0).
    pub load_segment: U16<LE>,
    /// System type (partition type byte of the image; 0 for no emulation).
    pub system_type: u8,
    /// Zero.
    pub unused1: u8,
    /// Number of 512-byte virtual sectors the BIOS loads.
    pub sector_count: U16<LE>,
    /// Start of the image (2048-byte block).
    pub load_rba: U32<LE>,
    /// Selection criteria type (section entries) or zero.
    pub selection_criteria_type: u8,
    /// Vendor unique selection criteria / zero.
    pub vendor_criteria: [u8; 19],
}
const _: () = assert!(core::mem::size_of::<BootEntry>() == 32);

/// Section header entry (El Torito 2.3).
#[repr(C)]
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SectionHeader {
    /// 0x90 more headers follow, 0x91 final header.
    pub header_indicator: u8,
    /// Platform id of the section's entries.
    pub platform_id: u8,
    /// Number of entries in the section.
    pub entry_count: U16<LE>,
    /// Id string (zero here).
    pub id_string: [u8; 28],
}
const _: () = assert!(core::mem::size_of::<SectionHeader>() == 32);

/// A boot image as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Platform id (0 BIOS, 0xEF UEFI).
    pub platform: u8,
    /// Media type (0: no emulation).
    pub media_type: u8,
    /// Load segment (0 = default 0x7C0).
    pub load_segment: u16,
    /// System type byte.
    pub system_type: u8,
    /// Sectors (512-byte) to load.
    pub sector_count: u16,
    /// Block of the image.
    pub load_rba: u32,
}

fn validation_checksum(v: &ValidationEntry) -> u16 {
    v.as_bytes().chunks_exact(2).fold(0u16, |acc, w| acc.wrapping_add(u16::from_le_bytes([w[0], w[1]])))
}

/// Encodes the catalog for `entries` (the first is the default entry; the rest are grouped
/// into sections by consecutive platform id) into one or more 2048-byte blocks.
pub fn encode_catalog(entries: &[CatalogEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    let Some((default, rest)) = entries.split_first() else {
        return vec![0; 2048];
    };
    let mut v = ValidationEntry {
        header_id: 1,
        platform_id: default.platform,
        reserved: U16::new(0),
        id_string: [0; 24],
        checksum: U16::new(0),
        key55: 0x55,
        key_aa: 0xAA,
    };
    v.checksum = U16::new(0u16.wrapping_sub(validation_checksum(&v)));
    out.extend_from_slice(v.as_bytes());
    out.extend_from_slice(entry(default).as_bytes());
    // Group the remaining entries into sections of the same platform, in order.
    let mut sections: Vec<(u8, Vec<&CatalogEntry>)> = Vec::new();
    for e in rest {
        match sections.last_mut() {
            Some((p, list)) if *p == e.platform => list.push(e),
            _ => sections.push((e.platform, vec![e])),
        }
    }
    let n = sections.len();
    for (i, (platform, list)) in sections.iter().enumerate() {
        let h = SectionHeader {
            header_indicator: if i + 1 == n { HEADER_FINAL } else { HEADER_MORE },
            platform_id: *platform,
            entry_count: U16::new(list.len() as u16),
            id_string: [0; 28],
        };
        out.extend_from_slice(h.as_bytes());
        for e in list {
            out.extend_from_slice(entry(e).as_bytes());
        }
    }
    let blocks = out.len().div_ceil(2048).max(1);
    out.resize(blocks * 2048, 0);
    out
}

/// Number of 2048-byte blocks the catalog for `n` entries occupies.
pub fn catalog_blocks(entries: &[CatalogEntry]) -> u32 {
    (encode_catalog(entries).len() / 2048) as u32
}

fn entry(e: &CatalogEntry) -> BootEntry {
    BootEntry {
        boot_indicator: BOOTABLE,
        media_type: e.media_type,
        load_segment: U16::new(e.load_segment),
        system_type: e.system_type,
        unused1: 0,
        sector_count: U16::new(e.sector_count),
        load_rba: U32::new(e.load_rba),
        selection_criteria_type: 0,
        vendor_criteria: [0; 19],
    }
}

/// A decoded catalog entry with its section index (`None` for the default entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEntry {
    /// Section number (0-based) or `None` for the default entry.
    pub section: Option<usize>,
    /// Whether the boot indicator is 0x88.
    pub bootable: bool,
    /// The entry's fields.
    pub entry: CatalogEntry,
}

/// Problems found decoding a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogProblem {
    /// The validation entry's header id or key bytes are wrong.
    BadValidationEntry,
    /// The validation checksum does not sum to zero.
    BadChecksum(u16),
}

/// Decodes a catalog block sequence. Stops at a zero byte where a header is expected.
pub fn decode_catalog(b: &[u8]) -> Result<Vec<DecodedEntry>, CatalogProblem> {
    let (v, _) = ValidationEntry::read_from_prefix(b).map_err(|_| CatalogProblem::BadValidationEntry)?;
    if v.header_id != 1 || v.key55 != 0x55 || v.key_aa != 0xAA {
        return Err(CatalogProblem::BadValidationEntry);
    }
    let sum = validation_checksum(&v);
    if sum != 0 {
        return Err(CatalogProblem::BadChecksum(sum));
    }
    let mut out = Vec::new();
    let decode = |at: usize, platform: u8, section| -> Option<DecodedEntry> {
        let (e, _) = BootEntry::read_from_prefix(b.get(at..)?).ok()?;
        Some(DecodedEntry {
            section,
            bootable: e.boot_indicator == BOOTABLE,
            entry: CatalogEntry {
                platform,
                media_type: e.media_type,
                load_segment: e.load_segment.get(),
                system_type: e.system_type,
                sector_count: e.sector_count.get(),
                load_rba: e.load_rba.get(),
            },
        })
    };
    if let Some(d) = decode(32, v.platform_id, None) {
        out.push(d);
    }
    let mut at = 64;
    let mut section = 0;
    // Bounded by the buffer: each step advances at least 32 bytes.
    while let Ok((h, _)) = SectionHeader::read_from_prefix(b.get(at..).unwrap_or(&[])) {
        if h.header_indicator != HEADER_MORE && h.header_indicator != HEADER_FINAL {
            break;
        }
        at += 32;
        for _ in 0..h.entry_count.get() {
            match decode(at, h.platform_id, Some(section)) {
                Some(d) => out.push(d),
                None => return Ok(out),
            }
            at += 32;
        }
        section += 1;
        if h.header_indicator == HEADER_FINAL {
            break;
        }
    }
    Ok(out)
}

/// The boot-info-table mkisofs defined (`-boot-info-table`), 56 bytes at offset 8 of the
/// boot file: PVD block, boot file block, boot file length, checksum, 40 zero bytes.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct BootInfoTable {
    /// Block of the primary volume descriptor (16).
    pub pvd_lba: U32<LE>,
    /// Block of the boot file.
    pub file_lba: U32<LE>,
    /// Length of the boot file in bytes.
    pub file_length: U32<LE>,
    /// Sum of the file's 32-bit little-endian words from offset 64 to its end.
    pub checksum: U32<LE>,
    /// Zero.
    pub reserved: [u8; 40],
}
const _: () = assert!(core::mem::size_of::<BootInfoTable>() == 56);

/// Offset of the boot-info-table in the boot file.
pub const BOOT_INFO_TABLE_OFFSET: usize = 8;
/// Smallest boot file that can carry a boot-info-table.
pub const BOOT_INFO_TABLE_MIN_FILE: u64 = 64;

/// Incremental boot-info-table checksum over the file bytes from offset 64 on.
#[derive(Debug, Clone, Default)]
pub struct BootInfoChecksum {
    sum: u32,
    pos: u64,
    partial: [u8; 4],
    partial_len: usize,
}

impl BootInfoChecksum {
    /// Feeds the next bytes of the boot file (starting at file offset 0).
    pub fn update(&mut self, mut data: &[u8]) {
        // Skip the first 64 bytes of the file.
        if self.pos < 64 {
            let skip = ((64 - self.pos) as usize).min(data.len());
            self.pos += skip as u64;
            data = &data[skip..];
        }
        self.pos += data.len() as u64;
        for &b in data {
            self.partial[self.partial_len] = b;
            self.partial_len += 1;
            if self.partial_len == 4 {
                self.sum = self.sum.wrapping_add(u32::from_le_bytes(self.partial));
                self.partial_len = 0;
            }
        }
    }
    /// The checksum, a final partial word padded with zeros.
    pub fn finish(&self) -> u32 {
        let mut p = [0u8; 4];
        p[..self.partial_len].copy_from_slice(&self.partial[..self.partial_len]);
        self.sum.wrapping_add(u32::from_le_bytes(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_round_trip_with_sections() {
        let bios = CatalogEntry {
            platform: PLATFORM_X86,
            media_type: 0,
            load_segment: 0,
            system_type: 0,
            sector_count: 4,
            load_rba: 40,
        };
        let efi = CatalogEntry { platform: PLATFORM_EFI, sector_count: 2880, load_rba: 50, ..bios.clone() };
        let cat = encode_catalog(&[bios.clone(), efi.clone()]);
        assert_eq!(cat.len(), 2048);
        assert_eq!(&cat[30..32], &[0x55, 0xAA]);
        assert_eq!(cat[64], HEADER_FINAL);
        assert_eq!(cat[65], PLATFORM_EFI);
        let d = decode_catalog(&cat).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].entry, bios);
        assert_eq!(d[1].entry, efi);
        assert_eq!(d[1].section, Some(0));
    }

    #[test]
    fn checksum_skips_header_and_pads() {
        let mut data = vec![0xFFu8; 64];
        data.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0, 3]);
        let mut c = BootInfoChecksum::default();
        for chunk in data.chunks(5) {
            c.update(chunk);
        }
        assert_eq!(c.finish(), 6);
    }
}
