//! The GUID Partition Table (UEFI 2.10 5.3 "GUID Partition Table (GPT) Disk Layout").
//!
//! A GPT is a header at 512-byte sector 1 ("primary"), an array of partition entries (here at
//! sector 2), and a copy of both at the end of the disk ("backup": entries first, header in the
//! very last sector). Header and array each carry a CRC-32 (the zlib/Ethernet polynomial, as
//! `crc32fast` computes it). All numbers are little-endian; sector addresses are 64-bit.
//!
//! GUIDs are stored in the "mixed-endian" layout of UEFI appendix A: the first three fields
//! (32, 16, 16 bits) little-endian, the last 8 bytes as written. [`Guid`] keeps the on-disk
//! bytes and converts from and to the usual text form.

use std::fmt;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{mismatch, PartError};
use crate::endian::{field_offset, LE, U16, U32, U64};
use crate::finding::Finding;
use crate::read_at::Located;
use crate::units::Lba512;

/// `signature` of a GPT header.
pub const GPT_SIGNATURE: [u8; 8] = *b"EFI PART";
/// `revision` 1.0.
pub const GPT_REVISION_1_0: u32 = 0x0001_0000;
/// `header_size` of a UEFI 2.x header (the bytes the header CRC covers).
pub const GPT_HEADER_SIZE: u32 = 92;
/// `size_of_partition_entry` written by isoforge (and by every common tool).
pub const GPT_ENTRY_SIZE: u32 = 128;
/// The largest partition entry array a reader accepts (bytes), to bound reads of bad input.
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 1 << 20;

/// Partition attribute bit 0, "Required Partition" (UEFI table 5-7; libisofs calls it "system
/// partition").
pub const ATTR_REQUIRED: u64 = 1;
/// Partition attribute bit 60: read-only (Microsoft basic data partition attribute).
pub const ATTR_READ_ONLY: u64 = 1 << 60;

/// A GUID as stored on disk (mixed-endian, UEFI appendix A).
#[repr(transparent)]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID, marking an unused partition entry.
    pub const ZERO: Guid = Guid([0; 16]);
    /// EFI System Partition, C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
    pub const EFI_SYSTEM: Guid = Guid([
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
    ]);
    /// Microsoft Basic Data, EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 (xorriso's type for
    /// "ISOHybrid" partitions).
    pub const BASIC_DATA: Guid = Guid([
        0xa2, 0xa0, 0xd0, 0xeb, 0xe5, 0xb9, 0x33, 0x44, 0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7,
    ]);

    /// The on-disk form of a UUID (byte-swaps the first three fields).
    pub fn from_uuid(u: uuid::Uuid) -> Guid {
        Guid(u.to_bytes_le())
    }

    /// The UUID this GUID stands for (what `sgdisk`, `blkid` and `fdisk` print).
    pub fn to_uuid(self) -> uuid::Uuid {
        uuid::Uuid::from_bytes_le(self.0)
    }

    /// Parses the usual text form (`C12A7328-F81F-11D2-BA4B-00A0C93EC93B`, any case, hyphens
    /// optional) and stores it mixed-endian.
    pub fn parse(text: &str) -> Result<Guid, PartError> {
        uuid::Uuid::try_parse(text)
            .map(Guid::from_uuid)
            .map_err(|_| PartError::BadGuid { text: text.to_string(), reason: "not a UUID in text form" })
    }

    /// Parses 32 hex digits as the 16 on-disk bytes, in order, as xorriso's
    /// `-boot_image any gpt_disk_guid=` does. nixpkgs passes the hyphen-less text form of a
    /// UUID there, so the GUID that `sgdisk -p` shows for a nixpkgs image is that UUID with its
    /// first three fields byte-swapped.
    pub fn from_xorriso_hex(text: &str) -> Result<Guid, PartError> {
        let bad = |reason| PartError::BadGuid { text: text.to_string(), reason };
        let digits = text.as_bytes();
        if digits.len() != 32 {
            return Err(bad("expected 32 hex digits"));
        }
        let mut out = [0u8; 16];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad("not hex"))?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| bad("not hex"))?;
        }
        Ok(Guid(out))
    }

    /// xorriso's rule for partition GUIDs: the disk GUID with on-disk byte 9 XOR the partition
    /// number (1-based). Byte 9 is outside the version and variant bits, so a v4/v5 disk GUID
    /// yields partition GUIDs of the same version.
    pub fn xorriso_partition_guid(self, number: u8) -> Guid {
        let mut b = self.0;
        b[9] ^= number;
        Guid(b)
    }

    /// True for the all-zero GUID.
    pub fn is_zero(self) -> bool {
        self == Guid::ZERO
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_uuid().hyphenated().encode_upper(&mut uuid::Uuid::encode_buffer()))
    }
}

/// The GPT header (UEFI table 5-5), the first 92 bytes of its sector; the rest of the sector is
/// zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct GptHeader {
    /// `EFI PART`.
    pub signature: [u8; 8],
    /// 0x00010000 for 1.0.
    pub revision: U32<LE>,
    /// 92.
    pub header_size: U32<LE>,
    /// CRC-32 of the first `header_size` bytes with this field zero.
    pub header_crc32: U32<LE>,
    /// Zero.
    pub reserved: U32<LE>,
    /// The sector holding this header.
    pub my_lba: U64<LE>,
    /// The sector holding the other header.
    pub alternate_lba: U64<LE>,
    /// First sector a partition may use.
    pub first_usable_lba: U64<LE>,
    /// Last sector a partition may use (inclusive).
    pub last_usable_lba: U64<LE>,
    /// The disk's GUID.
    pub disk_guid: Guid,
    /// First sector of this copy of the partition entry array.
    pub partition_entry_lba: U64<LE>,
    /// Number of entries in the array (used or not).
    pub number_of_partition_entries: U32<LE>,
    /// Bytes per entry, 128.
    pub size_of_partition_entry: U32<LE>,
    /// CRC-32 of the whole entry array.
    pub partition_entry_array_crc32: U32<LE>,
}

/// A GPT partition entry (UEFI table 5-6), 128 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct GptEntry {
    /// The partition type; zero marks an unused entry.
    pub partition_type_guid: Guid,
    /// The partition's own GUID.
    pub unique_partition_guid: Guid,
    /// First sector.
    pub starting_lba: U64<LE>,
    /// Last sector (inclusive).
    pub ending_lba: U64<LE>,
    /// Attribute bits ([`ATTR_REQUIRED`], [`ATTR_READ_ONLY`], ...).
    pub attributes: U64<LE>,
    /// Name, UTF-16LE, zero-padded, at most 36 code units.
    pub partition_name: [U16<LE>; 36],
}

const _: () = assert!(core::mem::size_of::<GptHeader>() == GPT_HEADER_SIZE as usize);
const _: () = assert!(core::mem::size_of::<GptEntry>() == GPT_ENTRY_SIZE as usize);

/// CRC-32 as GPT uses it (ISO-HDLC / zlib).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

impl GptHeader {
    /// The header's CRC-32, computed with `header_crc32` zero (over the 92 bytes isoforge
    /// writes).
    pub fn compute_crc(&self) -> u32 {
        let mut copy = *self;
        copy.header_crc32 = U32::new(0);
        crc32(copy.as_bytes())
    }

    /// The header with `header_crc32` set.
    pub fn with_crc(mut self) -> Self {
        self.header_crc32 = U32::new(self.compute_crc());
        self
    }

    /// The backup header that goes with this primary header: `my_lba` and `alternate_lba`
    /// exchanged, `partition_entry_lba` pointing at the backup array, CRC recomputed.
    pub fn backup(&self, backup_entries_lba: u64) -> GptHeader {
        let mut b = *self;
        b.my_lba = self.alternate_lba;
        b.alternate_lba = self.my_lba;
        b.partition_entry_lba = U64::new(backup_entries_lba);
        b.with_crc()
    }

    /// The 512-byte sector holding the header (zero after byte 92).
    pub fn encode_sector(&self) -> [u8; 512] {
        let mut out = [0u8; 512];
        out[..GPT_HEADER_SIZE as usize].copy_from_slice(self.as_bytes());
        out
    }

    /// Reads a header from the start of `sector`. Nothing is validated here: see
    /// [`GptHeader::check`].
    pub fn decode(sector: &[u8]) -> Result<GptHeader, PartError> {
        let trunc = PartError::Truncated {
            structure: "GPT header",
            expected: GPT_HEADER_SIZE as usize,
            found: sector.len(),
        };
        let head = sector.get(..GPT_HEADER_SIZE as usize).ok_or(trunc)?;
        GptHeader::read_from_bytes(head).map_err(|_| PartError::Truncated {
            structure: "GPT header",
            expected: GPT_HEADER_SIZE as usize,
            found: sector.len(),
        })
    }

    /// Checks one header read from sector `at` of a disk of `disk_sectors` sectors and returns
    /// every mismatch in its own fields (signature, revision, size, CRC, reserved bytes,
    /// `my_lba`, usable range, entry size and count, a zero tail in the sector). `sector` is
    /// the whole 512-byte sector.
    pub fn check(&self, sector: &[u8], name: &str, at: u64, disk_sectors: u64) -> Vec<Finding> {
        let base = Lba512::new(at).saturating_byte_offset();
        let mut out = Vec::new();
        let mut m = |field, off: u64, expected: String, found: String| {
            out.push(mismatch(name, field, base + off, expected, found));
        };
        if self.signature != GPT_SIGNATURE {
            m(
                "signature",
                field_offset!(GptHeader, signature),
                "\"EFI PART\"".into(),
                format!("{:?}", String::from_utf8_lossy(&self.signature)),
            );
        }
        if self.revision.get() != GPT_REVISION_1_0 {
            m(
                "revision",
                field_offset!(GptHeader, revision),
                format!("{GPT_REVISION_1_0:#010x}"),
                format!("{:#010x}", self.revision.get()),
            );
        }
        if self.header_size.get() != GPT_HEADER_SIZE {
            m(
                "header_size",
                field_offset!(GptHeader, header_size),
                GPT_HEADER_SIZE.to_string(),
                self.header_size.get().to_string(),
            );
        }
        let crc = self.compute_crc();
        if self.header_crc32.get() != crc {
            m(
                "header_crc32",
                field_offset!(GptHeader, header_crc32),
                format!("{crc:#010x}"),
                format!("{:#010x}", self.header_crc32.get()),
            );
        }
        if self.reserved.get() != 0 {
            m("reserved", field_offset!(GptHeader, reserved), "0".into(), self.reserved.get().to_string());
        }
        if self.my_lba.get() != at {
            m("my_lba", field_offset!(GptHeader, my_lba), at.to_string(), self.my_lba.get().to_string());
        }
        let first = self.first_usable_lba.get();
        let last = self.last_usable_lba.get();
        if first > last || last >= disk_sectors {
            m(
                "last_usable_lba",
                field_offset!(GptHeader, last_usable_lba),
                format!(">= first_usable_lba {first} and < disk size {disk_sectors}"),
                last.to_string(),
            );
        }
        if self.size_of_partition_entry.get() != GPT_ENTRY_SIZE {
            m(
                "size_of_partition_entry",
                field_offset!(GptHeader, size_of_partition_entry),
                GPT_ENTRY_SIZE.to_string(),
                self.size_of_partition_entry.get().to_string(),
            );
        }
        if self.entry_array_bytes() > MAX_ENTRY_ARRAY_BYTES {
            m(
                "number_of_partition_entries",
                field_offset!(GptHeader, number_of_partition_entries),
                format!("an array of at most {MAX_ENTRY_ARRAY_BYTES} bytes"),
                self.number_of_partition_entries.get().to_string(),
            );
        }
        if let Some(pos) = sector.iter().skip(GPT_HEADER_SIZE as usize).position(|&b| b != 0) {
            m(
                "reserved (rest of sector)",
                u64::from(GPT_HEADER_SIZE) + pos as u64,
                "0".into(),
                "non-zero".into(),
            );
        }
        out
    }

    /// Bytes of the partition entry array this header describes.
    pub fn entry_array_bytes(&self) -> u64 {
        u64::from(self.number_of_partition_entries.get()) * u64::from(self.size_of_partition_entry.get())
    }

    /// Sectors of the partition entry array this header describes.
    pub fn entry_array_sectors(&self) -> u64 {
        self.entry_array_bytes().div_ceil(512)
    }
}

impl GptEntry {
    /// An entry. `name` must fit 36 UTF-16 code units.
    pub fn new(
        type_guid: Guid,
        unique: Guid,
        starting_lba: u64,
        ending_lba: u64,
        attributes: u64,
        name: &str,
    ) -> Result<GptEntry, PartError> {
        let mut partition_name = [U16::new(0); 36];
        let units: Vec<u16> = name.encode_utf16().collect();
        if units.len() > partition_name.len() {
            return Err(PartError::Overflow {
                field: "GPT entry partition_name",
                value: units.len() as u128,
            });
        }
        for (slot, u) in partition_name.iter_mut().zip(units) {
            *slot = U16::new(u);
        }
        Ok(GptEntry {
            partition_type_guid: type_guid,
            unique_partition_guid: unique,
            starting_lba: U64::new(starting_lba),
            ending_lba: U64::new(ending_lba),
            attributes: U64::new(attributes),
            partition_name,
        })
    }

    /// An unused (all zero) entry.
    pub fn unused() -> GptEntry {
        GptEntry::new_zeroed()
    }

    /// True for an unused entry (zero type GUID).
    pub fn is_unused(&self) -> bool {
        self.partition_type_guid.is_zero()
    }

    /// The name, decoded from UTF-16 up to the first zero unit (invalid units become U+FFFD).
    pub fn name(&self) -> String {
        let units: Vec<u16> = self.partition_name.iter().map(|u| u.get()).take_while(|&u| u != 0).collect();
        String::from_utf16_lossy(&units)
    }

    /// Number of sectors covered (0 if `ending_lba < starting_lba`).
    pub fn sectors(&self) -> u64 {
        self.ending_lba.get().saturating_add(1).saturating_sub(self.starting_lba.get())
    }
}

/// The bytes of a partition entry array of `count` entries: `entries` first, then unused
/// entries. Fails if `entries` has more than `count` entries.
pub fn encode_entry_array(entries: &[GptEntry], count: u32) -> Result<Vec<u8>, PartError> {
    let count_usize = usize::try_from(count).map_err(|_| PartError::Overflow {
        field: "GPT number_of_partition_entries",
        value: u128::from(count),
    })?;
    if entries.len() > count_usize {
        return Err(PartError::Overflow {
            field: "GPT number_of_partition_entries",
            value: entries.len() as u128,
        });
    }
    let mut out = Vec::with_capacity(count_usize * GPT_ENTRY_SIZE as usize);
    for e in entries {
        out.extend_from_slice(e.as_bytes());
    }
    out.resize(count_usize * GPT_ENTRY_SIZE as usize, 0);
    Ok(out)
}

/// Decodes a partition entry array (whole 128-byte entries; a trailing partial entry is
/// ignored). Returns every entry, used or not, in order.
pub fn decode_entry_array(bytes: &[u8]) -> Vec<GptEntry> {
    bytes.chunks_exact(GPT_ENTRY_SIZE as usize).filter_map(|c| GptEntry::read_from_bytes(c).ok()).collect()
}

/// What [`read_gpt`] found: both headers (when their signature was there), the used entries,
/// and every mismatch. Headers and entries are handed out with the byte offset they were read
/// at.
#[derive(Debug, Clone)]
pub struct GptReport {
    /// The primary header (sector 1), if it carries the GPT signature.
    pub primary: Option<Located<GptHeader>>,
    /// The backup header (at the primary's `alternate_lba` when inside the disk, else in the
    /// last sector), if it carries the GPT signature.
    pub backup: Option<Located<GptHeader>>,
    /// Used entries as (1-based index, entry), from the primary array if its header was
    /// readable, else from the backup.
    pub entries: Vec<(u32, Located<GptEntry>)>,
    /// Every mismatch found, primary first, then backup, then entries, then consistency.
    pub mismatches: Vec<Finding>,
}

/// Reads and checks the GPT of an image of `disk_sectors` 512-byte sectors. `read_at(offset,
/// buf)` fills `buf` from the image at byte `offset` (a file, an mmap, a slice).
///
/// Checks: each header's own fields ([`GptHeader::check`]), each entry array's CRC, the backup
/// at the primary's `alternate_lba` (else the last sector) pointing back at sector 1, the two
/// headers agreeing on every shared field, the two arrays being identical, and every used entry
/// lying inside the usable range, ending after it starts and overlapping no other entry.
/// xorriso's isohybrid GPT breaks the last two on purpose ("ISOHybrid" starts at sector 0 and
/// contains "ISOHybrid1"); the report lists them like `sgdisk -v` does.
pub fn read_gpt(
    read_at: &mut dyn FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    disk_sectors: u64,
) -> Result<GptReport, PartError> {
    let mut mismatches = Vec::new();
    let mut sector = [0u8; 512];
    let mut read = |structure, offset: u64, buf: &mut [u8]| {
        read_at(offset, buf).map_err(|source| PartError::Read { structure, offset, source })
    };

    let primary_at = Lba512::new(1).saturating_byte_offset();
    read("GPT primary header", primary_at, &mut sector)?;
    let primary = Located::new(primary_at, GptHeader::decode(&sector)?);
    let primary_ok = primary.signature == GPT_SIGNATURE;
    let mut primary_array = None;
    if primary_ok {
        mismatches.extend(primary.check(&sector, "GPT primary header", 1, disk_sectors));
        if primary.alternate_lba.get() != disk_sectors.saturating_sub(1) {
            mismatches.push(mismatch(
                "GPT primary header",
                "alternate_lba",
                primary.at(field_offset!(GptHeader, alternate_lba)),
                disk_sectors.saturating_sub(1),
                primary.alternate_lba.get(),
            ));
        }
        primary_array = read_array(&mut read, &primary, "GPT primary entry array", &mut mismatches)?;
    } else {
        mismatches.push(mismatch(
            "GPT primary header",
            "signature",
            primary.at(field_offset!(GptHeader, signature)),
            "\"EFI PART\"",
            format!("{:?}", String::from_utf8_lossy(&primary.signature)),
        ));
    }

    let backup_at = if primary_ok && primary.alternate_lba.get() < disk_sectors {
        primary.alternate_lba.get()
    } else {
        disk_sectors.saturating_sub(1)
    };
    let backup_offset = Lba512::new(backup_at).saturating_byte_offset();
    read("GPT backup header", backup_offset, &mut sector)?;
    let backup = Located::new(backup_offset, GptHeader::decode(&sector)?);
    let backup_ok = backup.signature == GPT_SIGNATURE;
    let mut backup_array = None;
    if backup_ok {
        mismatches.extend(backup.check(&sector, "GPT backup header", backup_at, disk_sectors));
        if backup.alternate_lba.get() != 1 {
            mismatches.push(mismatch(
                "GPT backup header",
                "alternate_lba",
                backup.at(field_offset!(GptHeader, alternate_lba)),
                1,
                backup.alternate_lba.get(),
            ));
        }
        backup_array = read_array(&mut read, &backup, "GPT backup entry array", &mut mismatches)?;
    } else {
        mismatches.push(mismatch(
            "GPT backup header",
            "signature",
            backup.at(field_offset!(GptHeader, signature)),
            "\"EFI PART\"",
            format!("{:?}", String::from_utf8_lossy(&backup.signature)),
        ));
    }

    if primary_ok && backup_ok {
        compare_headers(&primary, &backup, &mut mismatches);
        if let (Some(p), Some(b)) = (&primary_array, &backup_array) {
            let base = Lba512::new(backup.partition_entry_lba.get()).saturating_byte_offset();
            for (i, (pe, be)) in
                p.chunks(GPT_ENTRY_SIZE as usize).zip(b.chunks(GPT_ENTRY_SIZE as usize)).enumerate()
            {
                if pe != be {
                    mismatches.push(mismatch(
                        format!("GPT backup entry {}", i + 1),
                        "(whole entry)",
                        base + i as u64 * u64::from(GPT_ENTRY_SIZE),
                        "same bytes as the primary entry",
                        "different bytes",
                    ));
                }
            }
        }
    }

    let (header, array) = match (primary_ok, &primary_array, backup_ok, &backup_array) {
        (true, Some(a), _, _) => (Some(&primary), Some(a)),
        (_, _, true, Some(a)) => (Some(&backup), Some(a)),
        _ => (None, None),
    };
    let mut entries = Vec::new();
    if let (Some(h), Some(a)) = (header, array) {
        let base = Lba512::new(h.partition_entry_lba.get()).saturating_byte_offset();
        for (i, e) in decode_entry_array(a).into_iter().enumerate() {
            if !e.is_unused() {
                let at = base.saturating_add(i as u64 * std::mem::size_of::<GptEntry>() as u64);
                entries.push((u32::try_from(i + 1).unwrap_or(u32::MAX), Located::new(at, e)));
            }
        }
        check_entries(h, &entries, &mut mismatches);
    }

    Ok(GptReport {
        primary: primary_ok.then_some(primary),
        backup: backup_ok.then_some(backup),
        entries,
        mismatches,
    })
}

type ReadFn<'a> = dyn FnMut(&'static str, u64, &mut [u8]) -> Result<(), PartError> + 'a;

fn read_array(
    read: &mut ReadFn<'_>,
    h: &GptHeader,
    name: &'static str,
    mismatches: &mut Vec<Finding>,
) -> Result<Option<Vec<u8>>, PartError> {
    let len = h.entry_array_bytes();
    if len > MAX_ENTRY_ARRAY_BYTES || h.size_of_partition_entry.get() != GPT_ENTRY_SIZE {
        return Ok(None);
    }
    let len =
        usize::try_from(len).map_err(|_| PartError::Overflow { field: name, value: u128::from(len) })?;
    let offset = Lba512::new(h.partition_entry_lba.get())
        .byte_offset()
        .ok_or(PartError::Overflow { field: name, value: u128::from(h.partition_entry_lba.get()) * 512 })?;
    let mut buf = vec![0u8; len];
    read(name, offset, &mut buf)?;
    let crc = crc32(&buf);
    if crc != h.partition_entry_array_crc32.get() {
        mismatches.push(mismatch(
            name,
            "partition_entry_array_crc32",
            // The header's claimed sector, as the array's CRC field is reported there.
            Lba512::new(h.my_lba.get())
                .saturating_byte_offset()
                .saturating_add(field_offset!(GptHeader, partition_entry_array_crc32)),
            format!("{crc:#010x} (CRC of the array)"),
            format!("{:#010x}", h.partition_entry_array_crc32.get()),
        ));
    }
    Ok(Some(buf))
}

fn compare_headers(p: &GptHeader, b: &Located<GptHeader>, out: &mut Vec<Finding>) {
    let name = "GPT backup header (vs primary)";
    // A backup field that differs from the primary's `want`, reported at the backup's field.
    macro_rules! differ {
        ($field:ident, $want:expr, $got:expr) => {
            if $want != $got {
                out.push(mismatch(
                    name,
                    stringify!($field),
                    b.at(field_offset!(GptHeader, $field)),
                    $want,
                    $got,
                ));
            }
        };
    }
    differ!(my_lba, p.alternate_lba.get(), b.my_lba.get());
    differ!(first_usable_lba, p.first_usable_lba.get(), b.first_usable_lba.get());
    differ!(last_usable_lba, p.last_usable_lba.get(), b.last_usable_lba.get());
    differ!(
        number_of_partition_entries,
        p.number_of_partition_entries.get(),
        b.number_of_partition_entries.get()
    );
    differ!(size_of_partition_entry, p.size_of_partition_entry.get(), b.size_of_partition_entry.get());
    differ!(
        partition_entry_array_crc32,
        p.partition_entry_array_crc32.get(),
        b.partition_entry_array_crc32.get()
    );
    differ!(disk_guid, p.disk_guid, b.disk_guid);
    differ!(revision, p.revision.get(), b.revision.get());
    // The backup array must lie between the last usable sector and the backup header.
    let entries_end = b.partition_entry_lba.get().saturating_add(b.entry_array_sectors());
    if b.partition_entry_lba.get() <= b.last_usable_lba.get() || entries_end > b.my_lba.get() {
        out.push(mismatch(
            name,
            "partition_entry_lba",
            b.at(field_offset!(GptHeader, partition_entry_lba)),
            format!(
                "> last_usable_lba {} and array ending by sector {}",
                b.last_usable_lba.get(),
                b.my_lba.get()
            ),
            b.partition_entry_lba.get(),
        ));
    }
}

fn check_entries(h: &GptHeader, entries: &[(u32, Located<GptEntry>)], out: &mut Vec<Finding>) {
    let first = h.first_usable_lba.get();
    let last = h.last_usable_lba.get();
    for (idx, e) in entries {
        let name = format!("GPT entry {idx} ({})", e.name());
        let (s, end) = (e.starting_lba.get(), e.ending_lba.get());
        if end < s {
            out.push(mismatch(
                name.clone(),
                "ending_lba",
                e.at(field_offset!(GptEntry, ending_lba)),
                format!(">= starting_lba {s}"),
                end,
            ));
        }
        if s < first {
            out.push(mismatch(
                name.clone(),
                "starting_lba",
                e.at(field_offset!(GptEntry, starting_lba)),
                format!(">= first_usable_lba {first}"),
                s,
            ));
        }
        if end > last {
            out.push(mismatch(
                name.clone(),
                "ending_lba",
                e.at(field_offset!(GptEntry, ending_lba)),
                format!("<= last_usable_lba {last}"),
                end,
            ));
        }
        if e.unique_partition_guid.is_zero() {
            out.push(mismatch(
                name.clone(),
                "unique_partition_guid",
                e.at(field_offset!(GptEntry, unique_partition_guid)),
                "non-zero",
                "zero",
            ));
        }
    }
    for (i, (ia, a)) in entries.iter().enumerate() {
        for (ib, b) in &entries[i + 1..] {
            let overlap =
                a.starting_lba.get() <= b.ending_lba.get() && b.starting_lba.get() <= a.ending_lba.get();
            if overlap {
                out.push(mismatch(
                    format!("GPT entry {ib} ({})", b.name()),
                    "starting_lba",
                    b.at(field_offset!(GptEntry, starting_lba)),
                    format!(
                        "no overlap with entry {ia} (sectors {}..={})",
                        a.starting_lba.get(),
                        a.ending_lba.get()
                    ),
                    format!("sectors {}..={}", b.starting_lba.get(), b.ending_lba.get()),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_mixed_endian() {
        assert_eq!(Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap(), Guid::EFI_SYSTEM);
        assert_eq!(Guid::parse("ebd0a0a2b9e5443387c068b6b72699c7").unwrap(), Guid::BASIC_DATA);
        assert_eq!(Guid::EFI_SYSTEM.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        let x = Guid::from_xorriso_hex("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(x.0[0], 0x00);
        assert_eq!(x.0[15], 0xff);
        assert_eq!(x.to_string(), "33221100-5544-7766-8899-AABBCCDDEEFF");
        assert!(Guid::from_xorriso_hex("0011").is_err());
        assert!(Guid::from_xorriso_hex("g0112233445566778899aabbccddeeff").is_err());
        assert!(Guid::parse("nope").is_err());
    }

    #[test]
    fn xorriso_partition_guids() {
        // Observed with xorriso 1.5.4 and gpt_disk_guid=00112233445566778899aabbccddeeff.
        let d = Guid::from_xorriso_hex("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(
            d.xorriso_partition_guid(1),
            Guid::from_xorriso_hex("00112233445566778898aabbccddeeff").unwrap()
        );
        assert_eq!(
            d.xorriso_partition_guid(2),
            Guid::from_xorriso_hex("0011223344556677889baabbccddeeff").unwrap()
        );
    }

    fn sample() -> (GptHeader, Vec<u8>) {
        let e = GptEntry::new(
            Guid::BASIC_DATA,
            Guid([7; 16]),
            0,
            6079,
            ATTR_REQUIRED | ATTR_READ_ONLY,
            "ISOHybrid",
        )
        .unwrap();
        let array = encode_entry_array(&[e], 248).unwrap();
        let h = GptHeader {
            signature: GPT_SIGNATURE,
            revision: U32::new(GPT_REVISION_1_0),
            header_size: U32::new(GPT_HEADER_SIZE),
            header_crc32: U32::new(0),
            reserved: U32::new(0),
            my_lba: U64::new(1),
            alternate_lba: U64::new(6143),
            first_usable_lba: U64::new(64),
            last_usable_lba: U64::new(6080),
            disk_guid: Guid([1; 16]),
            partition_entry_lba: U64::new(2),
            number_of_partition_entries: U32::new(248),
            size_of_partition_entry: U32::new(GPT_ENTRY_SIZE),
            partition_entry_array_crc32: U32::new(crc32(&array)),
        }
        .with_crc();
        (h, array)
    }

    #[test]
    fn header_layout_and_crc() {
        let (h, array) = sample();
        assert_eq!(array.len(), 248 * 128);
        let s = h.encode_sector();
        assert_eq!(&s[0..8], b"EFI PART");
        assert_eq!(&s[8..16], &[0, 0, 1, 0, 92, 0, 0, 0]);
        assert_eq!(&s[24..32], &1u64.to_le_bytes());
        assert_eq!(&s[32..40], &6143u64.to_le_bytes());
        assert_eq!(&s[72..80], &2u64.to_le_bytes());
        assert_eq!(&s[80..84], &248u32.to_le_bytes());
        // CRC with the CRC field zeroed equals the stored CRC.
        let mut z = s;
        z[16..20].fill(0);
        assert_eq!(crc32(&z[..92]).to_le_bytes(), s[16..20]);
        let d = GptHeader::decode(&s).unwrap();
        assert_eq!(d, h);
        assert!(d.check(&s, "p", 1, 6144).is_empty());
        let e = decode_entry_array(&array);
        assert_eq!(e.len(), 248);
        assert_eq!(e[0].name(), "ISOHybrid");
        assert_eq!(&array[56..66], &[b'I', 0, b'S', 0, b'O', 0, b'H', 0, b'y', 0]);
        assert_eq!(e[0].sectors(), 6080);
        assert!(e[1].is_unused());
        // Backup: swapped addresses, own CRC.
        let b = h.backup(6081);
        assert_eq!((b.my_lba.get(), b.alternate_lba.get(), b.partition_entry_lba.get()), (6143, 1, 6081));
        assert_eq!(b.header_crc32.get(), b.compute_crc());
    }

    #[test]
    fn crc_of_known_input() {
        // The CRC xorriso uses as MBR disk signature for SOURCE_DATE_EPOCH=315532800.
        assert_eq!(crc32(b"1980010100000000"), 0x9fb6_382f);
        assert_eq!(crc32(b""), 0);
    }

    fn image_with(h: &GptHeader, array: &[u8], sectors: u64) -> Vec<u8> {
        let mut img = vec![0u8; (sectors * 512) as usize];
        img[512..1024].copy_from_slice(&h.encode_sector());
        img[1024..1024 + array.len()].copy_from_slice(array);
        let be = sectors - 1 - 62;
        let b = h.backup(be);
        img[(be * 512) as usize..(be * 512) as usize + array.len()].copy_from_slice(array);
        img[((sectors - 1) * 512) as usize..].copy_from_slice(&b.encode_sector());
        img
    }

    fn reader(img: &[u8]) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
        move |off, buf| {
            let o = off as usize;
            let src = img.get(o..o + buf.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn read_gpt_clean_and_damaged() {
        let (h, array) = sample();
        let img = image_with(&h, &array, 6144);
        let r = read_gpt(&mut reader(&img), 6144).unwrap();
        // Entry 1 starts at 0 < first usable (the isohybrid way): exactly one mismatch.
        assert_eq!(r.mismatches.len(), 1, "{:?}", r.mismatches);
        assert_eq!(r.mismatches[0].field, "starting_lba");
        assert_eq!(r.entries.len(), 1);

        // Damage: primary header CRC, one backup entry byte, backup disk GUID.
        let mut bad = img.clone();
        bad[512 + 16] ^= 1;
        let be = (6143 - 62) * 512;
        bad[be + 100] ^= 1;
        bad[6143 * 512 + 56] ^= 1;
        let r = read_gpt(&mut reader(&bad), 6144).unwrap();
        let fields: Vec<_> = r.mismatches.iter().map(|m| (m.structure.as_str(), m.field.as_ref())).collect();
        assert!(fields.contains(&("GPT primary header", "header_crc32")), "{fields:?}");
        assert!(fields.contains(&("GPT backup header", "header_crc32")), "{fields:?}");
        assert!(fields.contains(&("GPT backup entry array", "partition_entry_array_crc32")), "{fields:?}");
        assert!(fields.contains(&("GPT backup header (vs primary)", "disk_guid")), "{fields:?}");
        assert!(fields.contains(&("GPT backup entry 1", "(whole entry)")), "{fields:?}");

        // No GPT at all.
        let zero = vec![0u8; 4096];
        let r = read_gpt(&mut reader(&zero), 8).unwrap();
        assert!(r.primary.is_none() && r.backup.is_none());
        assert_eq!(r.mismatches.len(), 2);
    }

    #[test]
    fn entry_name_limits() {
        assert!(GptEntry::new(Guid::BASIC_DATA, Guid::ZERO, 0, 0, 0, &"x".repeat(36)).is_ok());
        assert!(GptEntry::new(Guid::BASIC_DATA, Guid::ZERO, 0, 0, 0, &"x".repeat(37)).is_err());
        assert!(encode_entry_array(&[GptEntry::unused(); 3], 2).is_err());
    }
}
