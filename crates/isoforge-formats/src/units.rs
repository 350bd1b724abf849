//! Newtypes for the address units of the formats isoforge writes.
//!
//! Mixing up a 2048-byte ISO block number with a 512-byte disk sector number is the classic
//! hybrid-image bug (the isohybrid boot-file field is in 512-byte units, El Torito load sizes are
//! in 512-byte "virtual sectors", everything else in ISO 9660 counts 2048-byte blocks). These
//! types make the unit part of the type.

use std::fmt;

/// Size of an ISO 9660 logical block (ECMA-119 6.1.2; always 2048 in practice).
pub const ISO_BLOCK: u64 = 2048;
/// Size of a disk sector as MBR, GPT and El Torito count them.
pub const SECTOR: u64 = 512;

/// A 2048-byte ISO 9660 logical block address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lba2048(u32);

/// A 512-byte sector address (MBR, GPT, isohybrid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lba512(u64);

/// A FAT cluster number (the first data cluster is 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cluster(u32);

impl Lba2048 {
    /// Block `block`.
    pub const fn new(block: u32) -> Lba2048 {
        Lba2048(block)
    }
    /// The block number.
    pub const fn get(self) -> u32 {
        self.0
    }
    /// Block `block` of a 64-bit count; `None` past the 32-bit block numbers ISO 9660 has.
    pub fn from_u64(block: u64) -> Option<Lba2048> {
        u32::try_from(block).ok().map(Lba2048)
    }
    /// The block holding byte `offset`; `None` past the last 32-bit block.
    pub fn containing(offset: u64) -> Option<Lba2048> {
        Lba2048::from_u64(offset / ISO_BLOCK)
    }
    /// The block starting exactly at byte `offset`; `None` when `offset` is not a multiple
    /// of 2048 or lies past the last 32-bit block.
    pub fn at_byte(offset: u64) -> Option<Lba2048> {
        if offset % ISO_BLOCK == 0 {
            Lba2048::containing(offset)
        } else {
            None
        }
    }
    /// Byte offset of the block from the start of the image (cannot overflow: 2^32 × 2048
    /// fits 64 bits).
    pub const fn byte_offset(self) -> u64 {
        self.0 as u64 * ISO_BLOCK
    }
    /// The block `blocks` further on; `None` past the last 32-bit block.
    pub fn checked_add(self, blocks: u32) -> Option<Lba2048> {
        self.0.checked_add(blocks).map(Lba2048)
    }
    /// The same address in 512-byte sectors (cannot overflow).
    pub const fn to_lba512(self) -> Lba512 {
        Lba512(self.0 as u64 * (ISO_BLOCK / SECTOR))
    }
}

impl Lba512 {
    /// Sector `sector`.
    pub const fn new(sector: u64) -> Lba512 {
        Lba512(sector)
    }
    /// The sector number.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// Byte offset of the sector from the start of the image; `None` past 2^64 bytes.
    pub const fn byte_offset(self) -> Option<u64> {
        self.0.checked_mul(SECTOR)
    }
    /// Byte offset of the sector, `u64::MAX` past 2^64 bytes (for comparisons that must
    /// fail on such a sector).
    pub const fn saturating_byte_offset(self) -> u64 {
        self.0.saturating_mul(SECTOR)
    }
    /// The sector `sectors` further on; `None` past 2^64.
    pub fn checked_add(self, sectors: u64) -> Option<Lba512> {
        self.0.checked_add(sectors).map(Lba512)
    }
}

impl Cluster {
    /// Cluster `n`.
    pub const fn new(n: u32) -> Cluster {
        Cluster(n)
    }
    /// The cluster number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Bytes in `count` 512-byte sectors (El Torito load sizes, MBR partition sizes; cannot
/// overflow). 64-bit counts go through [`Lba512::byte_offset`].
pub const fn sector_bytes(count: u32) -> u64 {
    count as u64 * SECTOR
}

impl fmt::Display for Lba2048 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LBA {} (2048-byte)", self.0)
    }
}

impl fmt::Display for Lba512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sector {} (512-byte)", self.0)
    }
}

/// Number of 2048-byte blocks needed to hold `bytes` bytes.
pub fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(ISO_BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Lba2048::new(16).byte_offset(), 32768);
        assert_eq!(Lba2048::new(u32::MAX).byte_offset(), 0x7FF_FFFF_F800);
        assert_eq!(Lba2048::new(16).to_lba512(), Lba512::new(64));
        assert_eq!(Lba2048::new(16).to_lba512().byte_offset(), Some(32768));
        assert_eq!(Lba2048::containing(32769), Some(Lba2048::new(16)));
        assert_eq!(Lba2048::at_byte(32768), Some(Lba2048::new(16)));
        assert_eq!(Lba2048::at_byte(32769), None);
        assert_eq!(Lba2048::from_u64(1 << 32), None);
        assert_eq!(Lba2048::new(u32::MAX).checked_add(1), None);
        assert_eq!(Lba512::new(u64::MAX).byte_offset(), None);
        assert_eq!(Lba512::new(u64::MAX).saturating_byte_offset(), u64::MAX);
        assert_eq!(sector_bytes(4), 2048);
        assert_eq!(sector_bytes(u32::MAX), 0x1FF_FFFF_FE00);
        assert_eq!(Cluster::new(2).get(), 2);
        assert_eq!(blocks_for(0), 0);
        assert_eq!(blocks_for(1), 1);
        assert_eq!(blocks_for(2048), 1);
        assert_eq!(blocks_for(2049), 2);
    }
}
