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

/// Section Entry Extension (El Torito 2.5): more selection criteria for the section entry
/// before it. It follows an entry whose media type has bit 5 set ("continuation entry
/// follows"), and is followed by another extension while its own bit 5 of `flags` is set.
#[repr(C)]
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SectionEntryExtension {
    /// [`EXTENSION_INDICATOR`] (0x44).
    pub extension_indicator: u8,
    /// Bit 5: another extension follows.
    pub flags: u8,
    /// Vendor unique selection criteria.
    pub vendor_criteria: [u8; 30],
}
const _: () = assert!(core::mem::size_of::<SectionEntryExtension>() == 32);

/// Indicator byte of a [`SectionEntryExtension`].
pub const EXTENSION_INDICATOR: u8 = 0x44;
/// Bit 5 of a section entry's media type (and of an extension's flags): an extension follows.
pub const CONTINUATION_FOLLOWS: u8 = 0x20;
/// Media type: 1.2 MB diskette emulation.
pub const MEDIA_FLOPPY_1_2: u8 = 1;
/// Media type: 1.44 MB diskette emulation.
pub const MEDIA_FLOPPY_1_44: u8 = 2;
/// Media type: 2.88 MB diskette emulation.
pub const MEDIA_FLOPPY_2_88: u8 = 3;
/// Media type: hard disk emulation.
pub const MEDIA_HARD_DISK: u8 = 4;

/// What a boot entry's media type says the BIOS emulates (El Torito 2.2: bits 0–3 of the
/// media type; bits 5–7 of a section entry's are flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Emulation {
    /// No emulation: the BIOS loads `sector_count` 512-byte sectors and jumps there (isolinux,
    /// GRUB's eltorito.img, every EFI image).
    None,
    /// A 1.2 MB diskette image.
    Floppy1_2,
    /// A 1.44 MB diskette image.
    Floppy1_44,
    /// A 2.88 MB diskette image.
    Floppy2_88,
    /// A hard disk image (an MBR with one partition).
    HardDisk,
    /// Values 5–15: reserved.
    Reserved(u8),
}

impl Emulation {
    /// The emulation of media type byte `media_type`.
    pub fn of(media_type: u8) -> Emulation {
        match media_type & 0x0F {
            MEDIA_NO_EMULATION => Emulation::None,
            MEDIA_FLOPPY_1_2 => Emulation::Floppy1_2,
            MEDIA_FLOPPY_1_44 => Emulation::Floppy1_44,
            MEDIA_FLOPPY_2_88 => Emulation::Floppy2_88,
            MEDIA_HARD_DISK => Emulation::HardDisk,
            other => Emulation::Reserved(other),
        }
    }

    /// The name `xorriso -report_el_torito` prints in its `Emul` column: `none`, `fd1.2`,
    /// `fd1.4`, `fd2.8`, `hd`, else the value in hex (`0x05`).
    pub fn name(self) -> String {
        match self {
            Emulation::None => "none".into(),
            Emulation::Floppy1_2 => "fd1.2".into(),
            Emulation::Floppy1_44 => "fd1.4".into(),
            Emulation::Floppy2_88 => "fd2.8".into(),
            Emulation::HardDisk => "hd".into(),
            Emulation::Reserved(v) => format!("{v:#04x}"),
        }
    }

    /// Whether the image is an emulated diskette or disk: the BIOS reads it as a drive, so it
    /// carries no boot-info-table (that is a no-emulation boot file's feature).
    pub fn is_emulated(self) -> bool {
        self != Emulation::None
    }
}

/// A decoded boot entry: where it sits in the catalog and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEntry {
    /// Section number: 0 for the initial/default entry (the section the validation entry
    /// begins), then 1, 2, … for each section header in catalog order.
    pub section: usize,
    /// Entry within its section, 0-based (0 for the default entry); extensions are not
    /// counted.
    pub index: usize,
    /// Byte offset of the 32-byte entry in the catalog.
    pub offset: usize,
    /// The boot indicator byte (0x88 bootable, 0x00 not).
    pub boot_indicator: u8,
    /// Whether the boot indicator is 0x88.
    pub bootable: bool,
    /// Selection criteria type (section entries; 0 for the default entry).
    pub selection_criteria_type: u8,
    /// Section Entry Extensions (0x44) that follow it.
    pub extensions: usize,
    /// The entry's fields (the platform is the validation entry's for the default entry,
    /// else the section header's).
    pub entry: CatalogEntry,
}

impl DecodedEntry {
    /// What the BIOS emulates for this image.
    pub fn emulation(&self) -> Emulation {
        Emulation::of(self.entry.media_type)
    }
}

/// A decoded boot catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedCatalog {
    /// Platform id of the validation entry (the default entry's platform).
    pub platform_id: u8,
    /// Sum of the validation entry's 16-bit words: 0 when its checksum is right.
    pub checksum_sum: u16,
    /// The default entry, then each section's entries, in catalog order.
    pub entries: Vec<DecodedEntry>,
}

/// Problems found decoding a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogProblem {
    /// The validation entry's header id or key bytes are wrong.
    BadValidationEntry,
    /// The validation checksum does not sum to zero.
    BadChecksum(u16),
}

/// Decodes a catalog (one or more blocks, as far as `b` goes): the validation entry, the
/// default entry, then every section (El Torito 2.3–2.5).
///
/// Fails only when the validation entry's header id or key bytes are wrong (then `b` is not a
/// catalog); a wrong checksum is kept in [`DecodedCatalog::checksum_sum`] and the entries are
/// decoded anyway, as firmware and libisofs do. The walk stops at a byte other than 0x90/0x91
/// where a section header is expected, after a 0x91 section, or at the end of `b`. Section
/// Entry Extensions (0x44) after an entry whose media type has bit 5 set are skipped and not
/// counted as entries (the header's count is of section entries); a stray extension where an
/// entry is expected is skipped the same way. Every step advances 32 bytes, so the walk is
/// bounded by `b`.
pub fn decode_catalog(b: &[u8]) -> Result<DecodedCatalog, CatalogProblem> {
    let (v, _) = ValidationEntry::read_from_prefix(b).map_err(|_| CatalogProblem::BadValidationEntry)?;
    if v.header_id != 1 || v.key55 != 0x55 || v.key_aa != 0xAA {
        return Err(CatalogProblem::BadValidationEntry);
    }
    let mut out = DecodedCatalog {
        platform_id: v.platform_id,
        checksum_sum: validation_checksum(&v),
        entries: Vec::new(),
    };
    let decode = |at: usize, platform: u8, section, index| -> Option<DecodedEntry> {
        let (e, _) = BootEntry::read_from_prefix(b.get(at..)?).ok()?;
        Some(DecodedEntry {
            section,
            index,
            offset: at,
            boot_indicator: e.boot_indicator,
            bootable: e.boot_indicator == BOOTABLE,
            selection_criteria_type: if section == 0 { 0 } else { e.selection_criteria_type },
            extensions: 0,
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
    match decode(32, v.platform_id, 0, 0) {
        Some(d) => out.entries.push(d),
        None => return Ok(out),
    }
    let mut at = 64;
    let mut section = 1;
    while let Ok((h, _)) = SectionHeader::read_from_prefix(b.get(at..).unwrap_or(&[])) {
        if h.header_indicator != HEADER_MORE && h.header_indicator != HEADER_FINAL {
            break;
        }
        at += 32;
        let mut index = 0;
        while index < usize::from(h.entry_count.get()) {
            if b.get(at) == Some(&EXTENSION_INDICATOR) {
                // A stray extension (no entry announced it): skipped, not an entry.
                at += 32;
                continue;
            }
            let Some(mut d) = decode(at, h.platform_id, section, index) else { return Ok(out) };
            at += 32;
            let mut follows = d.entry.media_type & CONTINUATION_FOLLOWS != 0;
            while follows {
                let Some(x) = b.get(at..).and_then(|r| SectionEntryExtension::read_from_prefix(r).ok())
                else {
                    break;
                };
                if x.0.extension_indicator != EXTENSION_INDICATOR {
                    break;
                }
                d.extensions += 1;
                follows = x.0.flags & CONTINUATION_FOLLOWS != 0;
                at += 32;
            }
            out.entries.push(d);
            index += 1;
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
        assert_eq!(d.checksum_sum, 0);
        let d = d.entries;
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].entry, bios);
        assert_eq!(d[1].entry, efi);
        assert_eq!((d[0].section, d[0].index, d[0].offset), (0, 0, 32));
        assert_eq!((d[1].section, d[1].index, d[1].offset), (1, 0, 96));
    }

    /// A catalog with three sections: BIOS floppy emulation (default), a section of two
    /// entries whose first carries two Section Entry Extensions, a stray extension, and a
    /// final section.
    #[test]
    fn sections_count_from_one_and_extensions_are_skipped() {
        let mk = |media: u8, rba: u32| BootEntry {
            boot_indicator: BOOTABLE,
            media_type: media,
            load_segment: U16::new(0),
            system_type: 0,
            unused1: 0,
            sector_count: U16::new(1),
            load_rba: U32::new(rba),
            selection_criteria_type: 0,
            vendor_criteria: [0; 19],
        };
        let ext = |more: bool| SectionEntryExtension {
            extension_indicator: EXTENSION_INDICATOR,
            flags: if more { CONTINUATION_FOLLOWS } else { 0 },
            vendor_criteria: [7; 30],
        };
        let header = |ind: u8, platform: u8, n: u16| SectionHeader {
            header_indicator: ind,
            platform_id: platform,
            entry_count: U16::new(n),
            id_string: [0; 28],
        };
        let mut cat = encode_catalog(&[CatalogEntry {
            platform: PLATFORM_X86,
            media_type: MEDIA_FLOPPY_1_44,
            load_segment: 0,
            system_type: 0,
            sector_count: 1,
            load_rba: 30,
        }]);
        let mut at = 64;
        let mut put = |bytes: &[u8]| {
            cat[at..at + 32].copy_from_slice(bytes);
            at += 32;
        };
        put(header(HEADER_MORE, PLATFORM_X86, 2).as_bytes());
        put(mk(MEDIA_HARD_DISK | CONTINUATION_FOLLOWS, 40).as_bytes());
        put(ext(true).as_bytes());
        put(ext(false).as_bytes());
        put(ext(false).as_bytes()); // stray: skipped
        put(mk(0, 41).as_bytes());
        put(header(HEADER_FINAL, PLATFORM_EFI, 1).as_bytes());
        put(mk(0, 50).as_bytes());
        put(header(HEADER_FINAL, PLATFORM_EFI, 1).as_bytes()); // after the final one: ignored
        let d = decode_catalog(&cat).unwrap();
        let got: Vec<_> = d
            .entries
            .iter()
            .map(|e| (e.section, e.index, e.offset, e.entry.load_rba, e.extensions))
            .collect();
        assert_eq!(got, [(0, 0, 32, 30, 0), (1, 0, 96, 40, 2), (1, 1, 224, 41, 0), (2, 0, 288, 50, 0)]);
        assert_eq!(d.entries[0].emulation(), Emulation::Floppy1_44);
        assert_eq!(d.entries[1].emulation(), Emulation::HardDisk);
        assert_eq!(d.entries[1].emulation().name(), "hd");
        assert_eq!(d.entries[3].entry.platform, PLATFORM_EFI);
        assert!(!d.entries[2].emulation().is_emulated());
        // A wrong checksum is reported and the entries are still read.
        cat[28] ^= 1;
        let d = decode_catalog(&cat).unwrap();
        assert_ne!(d.checksum_sum, 0);
        assert_eq!(d.entries.len(), 4);
        cat[30] = 0;
        assert_eq!(decode_catalog(&cat), Err(CatalogProblem::BadValidationEntry));
        // Truncated inside a section: what was read is kept.
        assert_eq!(
            decode_catalog(&encode_catalog(&[CatalogEntry { sector_count: 4, ..d_default() }])[..64])
                .unwrap()
                .entries
                .len(),
            1
        );
    }

    fn d_default() -> CatalogEntry {
        CatalogEntry {
            platform: 0,
            media_type: 0,
            load_segment: 0,
            system_type: 0,
            sector_count: 0,
            load_rba: 1,
        }
    }

    #[test]
    fn emulation_names_are_xorriso_s() {
        let names: Vec<_> = (0..6u8).map(|m| Emulation::of(m).name()).collect();
        assert_eq!(names, ["none", "fd1.2", "fd1.4", "fd2.8", "hd", "0x05"]);
        assert_eq!(Emulation::of(0x40 | MEDIA_FLOPPY_1_2), Emulation::Floppy1_2);
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
