//! The Apple Partition Map (Inside Macintosh: Devices, chapter 3 "SCSI Manager", "Driver
//! Descriptor Map" and "Partition Map"), as `grub-mkrescue` (xorriso `-hfsplus`) writes it into
//! the system area of a hybrid image. isoforge never writes one; the image reader recognises it.
//!
//! Block 0 holds the driver descriptor map ([`DriverDescriptorMap`], signature "ER"); the map's
//! entries ([`PartitionMapEntry`], signature "PM") fill blocks 1, 2, … of `sb_blk_size` bytes
//! (512, or 2048 in hybrid ISO images), each entry 512 bytes at the start of its block. Every
//! number is big-endian. Field names are Inside Macintosh's (`sbBlkSize` is `sb_blk_size`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::endian::{BE, U16, U32};

/// `sbSig` of the driver descriptor map ("ER", 0x4552).
pub const DDM_SIGNATURE: [u8; 2] = *b"ER";
/// `pmSig` of a partition map entry ("PM", 0x504D).
pub const PM_SIGNATURE: [u8; 2] = *b"PM";
/// `pmPartStatus` bit 0: the entry is valid.
pub const STATUS_VALID: u32 = 0x01;
/// `pmPartStatus` bit 1: the entry is allocated.
pub const STATUS_ALLOCATED: u32 = 0x02;

/// The driver descriptor map in block 0 ("Block0" in Inside Macintosh), 512 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DriverDescriptorMap {
    /// `sbSig`: "ER". Offset 0.
    pub sb_sig: [u8; 2],
    /// `sbBlkSize`: the block size of the device (and of the map), in bytes. Offset 2.
    pub sb_blk_size: U16<BE>,
    /// `sbBlkCount`: blocks on the device. Offset 4.
    pub sb_blk_count: U32<BE>,
    /// `sbDevType`: reserved. Offset 8.
    pub sb_dev_type: U16<BE>,
    /// `sbDevId`: reserved. Offset 10.
    pub sb_dev_id: U16<BE>,
    /// `sbData`: reserved. Offset 12.
    pub sb_data: U32<BE>,
    /// `sbDrvrCount`: driver descriptor entries. Offset 16.
    pub sb_drvr_count: U16<BE>,
    /// `ddBlock`: first block of the first driver. Offset 18.
    pub dd_block: U32<BE>,
    /// `ddSize`: size of the first driver, in 512-byte blocks. Offset 22.
    pub dd_size: U16<BE>,
    /// `ddType`: operating system type of the first driver (Mac OS: 1). Offset 24.
    pub dd_type: U16<BE>,
    /// `ddPad`: further driver descriptors, if any. Offsets 26..512.
    pub dd_pad: [u8; 486],
}

/// One partition map entry ("Partition" in Inside Macintosh), 512 bytes at the start of its
/// block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct PartitionMapEntry {
    /// `pmSig`: "PM". Offset 0.
    pub pm_sig: [u8; 2],
    /// `pmSigPad`: reserved. Offset 2.
    pub pm_sig_pad: U16<BE>,
    /// `pmMapBlkCnt`: entries (blocks) in the partition map. Offset 4.
    pub pm_map_blk_cnt: U32<BE>,
    /// `pmPyPartStart`: first physical block of the partition. Offset 8.
    pub pm_py_part_start: U32<BE>,
    /// `pmPartBlkCnt`: blocks in the partition. Offset 12.
    pub pm_part_blk_cnt: U32<BE>,
    /// `pmPartName`: partition name, NUL-padded. Offsets 16..48.
    pub pm_part_name: [u8; 32],
    /// `pmParType`: partition type (`Apple_partition_map`, `Apple_HFS`, …), NUL-padded.
    /// Offsets 48..80.
    pub pm_par_type: [u8; 32],
    /// `pmLgDataStart`: first logical block of the data area. Offset 80.
    pub pm_lg_data_start: U32<BE>,
    /// `pmDataCnt`: blocks in the data area. Offset 84.
    pub pm_data_cnt: U32<BE>,
    /// `pmPartStatus`: status bits ([`STATUS_VALID`], [`STATUS_ALLOCATED`], …). Offset 88.
    pub pm_part_status: U32<BE>,
    /// `pmLgBootStart`: first logical block of the boot code. Offset 92.
    pub pm_lg_boot_start: U32<BE>,
    /// `pmBootSize`: size of the boot code, in bytes. Offset 96.
    pub pm_boot_size: U32<BE>,
    /// `pmBootAddr`: load address of the boot code. Offset 100.
    pub pm_boot_addr: U32<BE>,
    /// `pmBootAddr2`: reserved. Offset 104.
    pub pm_boot_addr2: U32<BE>,
    /// `pmBootEntry`: entry point of the boot code. Offset 108.
    pub pm_boot_entry: U32<BE>,
    /// `pmBootEntry2`: reserved. Offset 112.
    pub pm_boot_entry2: U32<BE>,
    /// `pmBootCksum`: checksum of the boot code. Offset 116.
    pub pm_boot_cksum: U32<BE>,
    /// `pmProcessor`: processor type, NUL-padded. Offsets 120..136.
    pub pm_processor: [u8; 16],
    /// `pmPad`: reserved. Offsets 136..512.
    pub pm_pad: [u8; 376],
}

const _: () = assert!(core::mem::size_of::<DriverDescriptorMap>() == 512);
const _: () = assert!(core::mem::size_of::<PartitionMapEntry>() == 512);

/// Text of a NUL-padded name field, up to its first NUL (invalid UTF-8 replaced).
fn nul_trimmed(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl DriverDescriptorMap {
    /// The map's block size when the signature is "ER" and the block size is one a hybrid
    /// image uses (512 or 2048); `None` for anything else (no APM).
    pub fn block_size(&self) -> Option<u16> {
        let bs = self.sb_blk_size.get();
        (self.sb_sig == DDM_SIGNATURE && (bs == 512 || bs == 2048)).then_some(bs)
    }
}

impl PartitionMapEntry {
    /// Whether the entry carries the "PM" signature (the map ends at the first that does not).
    pub fn is_entry(&self) -> bool {
        self.pm_sig == PM_SIGNATURE
    }

    /// Whether the entry is valid or allocated (xorriso lists only those).
    pub fn is_used(&self) -> bool {
        self.pm_part_status.get() & (STATUS_VALID | STATUS_ALLOCATED) != 0
    }

    /// `pmPartName` as text.
    pub fn name(&self) -> String {
        nul_trimmed(&self.pm_part_name)
    }

    /// `pmParType` as text.
    pub fn type_name(&self) -> String {
        nul_trimmed(&self.pm_par_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endian::field_offset;
    use zerocopy::FromZeros;

    #[test]
    fn field_offsets_follow_inside_macintosh() {
        assert_eq!(field_offset!(DriverDescriptorMap, sb_blk_size), 2);
        assert_eq!(field_offset!(DriverDescriptorMap, sb_drvr_count), 16);
        assert_eq!(field_offset!(DriverDescriptorMap, dd_type), 24);
        assert_eq!(field_offset!(PartitionMapEntry, pm_map_blk_cnt), 4);
        assert_eq!(field_offset!(PartitionMapEntry, pm_py_part_start), 8);
        assert_eq!(field_offset!(PartitionMapEntry, pm_part_name), 16);
        assert_eq!(field_offset!(PartitionMapEntry, pm_par_type), 48);
        assert_eq!(field_offset!(PartitionMapEntry, pm_part_status), 88);
        assert_eq!(field_offset!(PartitionMapEntry, pm_processor), 120);
    }

    #[test]
    fn decode_as_grub_mkrescue_writes_them() {
        // Bytes 0..16 of an xorriso -hfsplus system area: "ER", block size 2048, then its
        // Apple_partition_map entry at byte 2048.
        let mut ddm = [0u8; 512];
        ddm[..4].copy_from_slice(&[b'E', b'R', 0x08, 0x00]);
        let d = DriverDescriptorMap::read_from_bytes(&ddm[..]).unwrap();
        assert_eq!(d.block_size(), Some(2048));
        ddm[2] = 0x04;
        assert_eq!(DriverDescriptorMap::read_from_bytes(&ddm[..]).unwrap().block_size(), None);

        let mut e = [0u8; 512];
        e[..2].copy_from_slice(b"PM");
        e[4..8].copy_from_slice(&3u32.to_be_bytes());
        e[8..12].copy_from_slice(&1u32.to_be_bytes());
        e[12..16].copy_from_slice(&4u32.to_be_bytes());
        e[16..21].copy_from_slice(b"Apple");
        e[48..67].copy_from_slice(b"Apple_partition_map");
        e[88..92].copy_from_slice(&3u32.to_be_bytes());
        let p = PartitionMapEntry::read_from_bytes(&e[..]).unwrap();
        assert!(p.is_entry() && p.is_used());
        assert_eq!(p.pm_map_blk_cnt.get(), 3);
        assert_eq!((p.pm_py_part_start.get(), p.pm_part_blk_cnt.get()), (1, 4));
        assert_eq!((p.name().as_str(), p.type_name().as_str()), ("Apple", "Apple_partition_map"));
        assert_eq!(p.as_bytes(), &e[..]);
        let unused = PartitionMapEntry::new_zeroed();
        assert!(!unused.is_entry() && !unused.is_used());
    }
}
