//! The legacy Master Boot Record (UEFI 2.10 5.2.1 "Legacy Master Boot Record", table 5-1/5-2)
//! and the cylinder/head/sector arithmetic of its partition records.
//!
//! Sector 0 of a disk: 440 bytes of boot code, a 4-byte disk signature, 2 unused bytes, four
//! 16-byte partition records and the signature `55 AA`. All numbers are little-endian; sector
//! addresses count 512-byte sectors from 0 and are 32-bit, so an MBR describes at most 2 TiB.
//!
//! For isohybrid images bytes 432–439 of the boot code area hold the 512-byte sector address of
//! the ISOLINUX boot file (a 64-bit little-endian number read by the isohdpfx.bin code): see
//! `docs/spec/system-area.md`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{mismatch, PartError};
use crate::endian::{field_offset, LE, U32};
use crate::finding::Finding;

/// Size of an MBR in bytes.
pub const MBR_SIZE: usize = 512;
/// The MBR signature at bytes 510–511.
pub const MBR_SIGNATURE: [u8; 2] = [0x55, 0xAA];
/// `os_indicator` of a GPT protective partition (UEFI 5.2.3).
pub const OS_TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// `os_indicator` of an EFI system partition in an MBR ("EFI (FAT-12/16/32)").
pub const OS_TYPE_EFI: u8 = 0xEF;
/// `os_indicator` 0x00 ("empty"): xorriso's whole-image partition when a GPT is present
/// (some EFI firmware accepts the nested 0xEF partition only then).
pub const OS_TYPE_EMPTY: u8 = 0x00;
/// `os_indicator` 0x17 ("hidden IFS"): xorriso's whole-image partition without a GPT.
pub const OS_TYPE_ISOHYBRID_NO_GPT: u8 = 0x17;
/// `boot_indicator` of an active (bootable) partition.
pub const BOOT_ACTIVE: u8 = 0x80;

/// One MBR partition record (UEFI table 5-2), 16 bytes.
///
/// The CHS triples are split into the spec's head/sector/track bytes: `start_sector` bits 0–5
/// are the sector (1–63), bits 6–7 are bits 8–9 of the cylinder; `start_track` holds the
/// cylinder's low 8 bits. Use [`Chs`] to build them.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct MbrPartitionRecord {
    /// 0x80 = bootable ("active"), 0x00 = not.
    pub boot_indicator: u8,
    /// Head of the first sector.
    pub start_head: u8,
    /// Sector (bits 0–5) and cylinder bits 8–9 (bits 6–7) of the first sector.
    pub start_sector: u8,
    /// Cylinder bits 0–7 of the first sector.
    pub start_track: u8,
    /// Partition type ("system ID").
    pub os_indicator: u8,
    /// Head of the last sector.
    pub end_head: u8,
    /// Sector and cylinder bits 8–9 of the last sector.
    pub end_sector: u8,
    /// Cylinder bits 0–7 of the last sector.
    pub end_track: u8,
    /// First 512-byte sector of the partition.
    pub starting_lba: U32<LE>,
    /// Number of 512-byte sectors.
    pub size_in_lba: U32<LE>,
}

/// Where the isohybrid boot file address sits in [`Mbr::boot_code`]: bytes 432–439, a 64-bit
/// little-endian 512-byte sector (isohybrid's MBR templates; folklore, no spec).
pub const ISOHYBRID_BOOT_LBA: std::ops::Range<usize> = 432..440;

/// The Master Boot Record (UEFI table 5-1), 512 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Mbr {
    /// x86 boot code (for isohybrid: template bytes 0–431, then the boot file's sector address).
    pub boot_code: [u8; 440],
    /// Disk signature ("unique MBR disk signature"), shown by `fdisk -l` as "Disk identifier".
    pub unique_mbr_disk_signature: U32<LE>,
    /// Unused, zero.
    pub unknown: [u8; 2],
    /// The four partition records.
    pub partition_record: [MbrPartitionRecord; 4],
    /// `55 AA`.
    pub signature: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<MbrPartitionRecord>() == 16);
const _: () = assert!(core::mem::size_of::<Mbr>() == MBR_SIZE);

impl Default for Mbr {
    fn default() -> Self {
        Self {
            boot_code: [0; 440],
            unique_mbr_disk_signature: U32::new(0),
            unknown: [0; 2],
            partition_record: [MbrPartitionRecord::default(); 4],
            signature: MBR_SIGNATURE,
        }
    }
}

/// A disk geometry for CHS addresses: heads per cylinder and sectors per head (track).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Heads per cylinder, 1–255.
    pub heads: u32,
    /// Sectors per head, 1–63.
    pub sectors: u32,
}

impl Geometry {
    /// The isohybrid default: 64 heads × 32 sectors, 1 MiB cylinders.
    pub const ISOHYBRID: Geometry = Geometry { heads: 64, sectors: 32 };

    /// Bytes per cylinder.
    pub fn cylinder_bytes(self) -> u64 {
        u64::from(self.heads) * u64::from(self.sectors) * 512
    }
}

/// A packed CHS address as stored in a partition record: head, sector|cylinder-high, cylinder-low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chs(pub [u8; 3]);

impl Chs {
    /// The placeholder xorriso writes for partitions other than the first (`fe ff ff`,
    /// 1023/254/63).
    pub const DUMMY: Chs = Chs([0xFE, 0xFF, 0xFF]);
    /// "Not representable" as the UEFI spec prescribes for a protective MBR (`ff ff ff`).
    pub const UNREPRESENTABLE: Chs = Chs([0xFF, 0xFF, 0xFF]);

    /// The CHS address of `lba` the way libisofs computes it for isohybrid MBRs: sector =
    /// `lba % sectors + 1`, head = `lba / sectors % heads`, cylinder = `lba / sectors / heads`;
    /// a cylinder ≥ 1024 becomes 1023 with head = `heads` (sic, not `heads - 1`) and sector =
    /// `sectors`.
    pub fn isohybrid(lba: u64, g: Geometry) -> Chs {
        let spt = u64::from(g.sectors.max(1));
        let hpc = u64::from(g.heads.max(1));
        let (mut c, mut h, mut s) = (lba / spt / hpc, lba / spt % hpc, lba % spt + 1);
        if c >= 1024 {
            c = 1023;
            h = hpc;
            s = spt;
        }
        Self::pack(c, h, s)
    }

    /// The CHS address of `lba` as UEFI 5.2.3 prescribes for a protective MBR: the computed
    /// address when the cylinder fits 10 bits, else `ff ff ff`.
    pub fn uefi(lba: u64, g: Geometry) -> Chs {
        let spt = u64::from(g.sectors.max(1));
        let hpc = u64::from(g.heads.max(1));
        let c = lba / spt / hpc;
        if c >= 1024 {
            return Self::UNREPRESENTABLE;
        }
        Self::pack(c, lba / spt % hpc, lba % spt + 1)
    }

    fn pack(c: u64, h: u64, s: u64) -> Chs {
        // All three are bounded above (c < 1024, h <= 255, s <= 63), so the masks lose nothing.
        let head = (h & 0xFF) as u8;
        let sector = ((s & 0x3F) | ((c & 0x300) >> 2)) as u8;
        let cyl = (c & 0xFF) as u8;
        Chs([head, sector, cyl])
    }

    /// Unpacks into (cylinder, head, sector).
    pub fn unpack(self) -> (u32, u32, u32) {
        let [h, s, c] = self.0;
        (u32::from(c) | (u32::from(s & 0xC0) << 2), u32::from(h), u32::from(s & 0x3F))
    }
}

impl MbrPartitionRecord {
    /// A record from its parts.
    pub fn new(boot: u8, start: Chs, os_type: u8, end: Chs, starting_lba: u32, size_in_lba: u32) -> Self {
        Self {
            boot_indicator: boot,
            start_head: start.0[0],
            start_sector: start.0[1],
            start_track: start.0[2],
            os_indicator: os_type,
            end_head: end.0[0],
            end_sector: end.0[1],
            end_track: end.0[2],
            starting_lba: U32::new(starting_lba),
            size_in_lba: U32::new(size_in_lba),
        }
    }

    /// True when every byte is zero (an unused slot).
    pub fn is_unused(&self) -> bool {
        self.as_bytes().iter().all(|&b| b == 0)
    }

    /// The start CHS triple.
    pub fn start_chs(&self) -> Chs {
        Chs([self.start_head, self.start_sector, self.start_track])
    }

    /// The end CHS triple.
    pub fn end_chs(&self) -> Chs {
        Chs([self.end_head, self.end_sector, self.end_track])
    }
}

impl Mbr {
    /// The 512 bytes of the MBR.
    pub fn encode(&self) -> [u8; MBR_SIZE] {
        let mut out = [0u8; MBR_SIZE];
        out.copy_from_slice(self.as_bytes());
        out
    }

    /// Reads an MBR from the first 512 bytes of `bytes`. Nothing is validated here: see
    /// [`Mbr::check`].
    pub fn decode(bytes: &[u8]) -> Result<Mbr, PartError> {
        let head = bytes.get(..MBR_SIZE).ok_or(PartError::Truncated {
            structure: "MBR",
            expected: MBR_SIZE,
            found: bytes.len(),
        })?;
        Mbr::read_from_bytes(head).map_err(|_| PartError::Truncated {
            structure: "MBR",
            expected: MBR_SIZE,
            found: bytes.len(),
        })
    }

    /// The isohybrid boot file address at bytes 432–439 (512-byte sectors).
    pub fn isohybrid_boot_lba(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.boot_code[ISOHYBRID_BOOT_LBA]);
        u64::from_le_bytes(b)
    }

    /// True when the MBR is a GPT protective MBR: some record has type 0xEE and starts at
    /// sector 1 (the test UEFI firmware applies, UEFI 5.2.3).
    pub fn is_protective(&self) -> bool {
        self.partition_record
            .iter()
            .any(|r| r.os_indicator == OS_TYPE_GPT_PROTECTIVE && r.starting_lba.get() == 1)
    }

    /// Checks the MBR of an image of `disk_sectors` 512-byte sectors and returns every
    /// mismatch: the signature, boot indicators other than 0x00/0x80, used records of size 0,
    /// records that reach past the end of the disk (a protective record may be clamped at
    /// 0xFFFFFFFF sectors), and a protective record whose size is not the disk size − 1.
    pub fn check(&self, disk_sectors: u64) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.signature != MBR_SIGNATURE {
            out.push(mismatch(
                "MBR",
                "signature",
                field_offset!(Mbr, signature),
                "55 aa",
                hex2(self.signature),
            ));
        }
        for (i, r) in self.partition_record.iter().enumerate() {
            if r.is_unused() {
                continue;
            }
            let name = format!("MBR partition record {}", i + 1);
            let base = field_offset!(Mbr, partition_record)
                + i as u64 * core::mem::size_of::<MbrPartitionRecord>() as u64;
            let size_at = base + field_offset!(MbrPartitionRecord, size_in_lba);
            if r.boot_indicator != 0 && r.boot_indicator != BOOT_ACTIVE {
                out.push(mismatch(
                    name.clone(),
                    "boot_indicator",
                    base + field_offset!(MbrPartitionRecord, boot_indicator),
                    "0x00 or 0x80",
                    format!("{:#04x}", r.boot_indicator),
                ));
            }
            let start = u64::from(r.starting_lba.get());
            let size = u64::from(r.size_in_lba.get());
            if size == 0 {
                out.push(mismatch(name.clone(), "size_in_lba", size_at, "> 0", 0));
            }
            if r.os_indicator == OS_TYPE_GPT_PROTECTIVE {
                let want = disk_sectors.saturating_sub(1).min(u64::from(u32::MAX));
                if start == 1 && size != want {
                    out.push(mismatch(name.clone(), "size_in_lba", size_at, want, size));
                }
            } else if start + size > disk_sectors {
                out.push(mismatch(
                    name.clone(),
                    "size_in_lba",
                    size_at,
                    format!("<= {} (disk end)", disk_sectors.saturating_sub(start)),
                    size,
                ));
            }
        }
        out
    }
}

fn hex2(b: [u8; 2]) -> String {
    format!("{:02x} {:02x}", b[0], b[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_isohybrid_matches_xorriso() {
        // From a xorriso 1.5.4 image of 6144 sectors: end CHS bytes 3f 20 02.
        assert_eq!(Chs::isohybrid(6143, Geometry::ISOHYBRID).0, [0x3F, 0x20, 0x02]);
        assert_eq!(Chs::isohybrid(0, Geometry::ISOHYBRID).0, [0x00, 0x01, 0x00]);
        // A 1.1 GB image with the adjusted geometry 66/32: end CHS bytes 41 e0 fb.
        let g = Geometry { heads: 66, sectors: 32 };
        assert_eq!(Chs::isohybrid(2_154_240 - 1, g).0, [0x41, 0xE0, 0xFB]);
        assert_eq!(Chs([0x41, 0xE0, 0xFB]).unpack(), (1019, 65, 32));
        // Overflow: cylinder 1023, head = heads (libisofs quirk), sector = sectors.
        assert_eq!(Chs::isohybrid(u64::from(u32::MAX), Geometry::ISOHYBRID).0, [64, 0xE0, 0xFF]);
    }

    #[test]
    fn chs_uefi() {
        assert_eq!(Chs::uefi(1, Geometry::ISOHYBRID).0, [0x00, 0x02, 0x00]);
        assert_eq!(Chs::uefi(1 << 40, Geometry::ISOHYBRID), Chs::UNREPRESENTABLE);
    }

    #[test]
    fn round_trip_and_offsets() {
        let mut m = Mbr::default();
        m.boot_code[432..440].copy_from_slice(&(1058u64 * 4).to_le_bytes());
        m.unique_mbr_disk_signature = U32::new(0x9fb6_382f);
        m.partition_record[0] =
            MbrPartitionRecord::new(0x80, Chs([0, 1, 0]), 0x00, Chs([0x3F, 0x20, 0x02]), 0, 6144);
        let b = m.encode();
        assert_eq!(&b[432..440], &[0x88, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[440..444], &[0x2f, 0x38, 0xb6, 0x9f]);
        assert_eq!(&b[446..462], &[0x80, 0, 1, 0, 0, 0x3f, 0x20, 2, 0, 0, 0, 0, 0, 0x18, 0, 0]);
        assert_eq!(&b[510..], &[0x55, 0xAA]);
        let d = Mbr::decode(&b).unwrap();
        assert_eq!(d, m);
        assert_eq!(d.isohybrid_boot_lba(), 4232);
        assert!(d.check(6144).is_empty());
        assert!(!d.is_protective());
    }

    #[test]
    fn check_reports_every_problem() {
        let mut m = Mbr { signature: [0, 0], ..Mbr::default() };
        m.partition_record[0] = MbrPartitionRecord::new(0x12, Chs::DUMMY, 0x83, Chs::DUMMY, 10, 100);
        m.partition_record[1] = MbrPartitionRecord::new(0, Chs::DUMMY, 0xEE, Chs::DUMMY, 1, 5);
        let found = m.check(50);
        let fields: Vec<_> = found.iter().map(|x| (x.structure.as_str(), x.field.as_ref())).collect();
        assert_eq!(
            fields,
            [
                ("MBR", "signature"),
                ("MBR partition record 1", "boot_indicator"),
                ("MBR partition record 1", "size_in_lba"),
                ("MBR partition record 2", "size_in_lba"),
            ]
        );
        assert!(found[0].to_string().contains("expected 55 aa, found 00 00"));
    }

    #[test]
    fn decode_short_input() {
        assert!(matches!(Mbr::decode(&[0u8; 100]), Err(PartError::Truncated { found: 100, .. })));
    }
}
