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
pub struct Lba2048(pub u32);

/// A 512-byte sector address (MBR, GPT, isohybrid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lba512(pub u64);

/// A FAT cluster number (the first data cluster is 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cluster(pub u32);

impl Lba2048 {
    /// Byte offset of the block from the start of the image.
    pub fn byte_offset(self) -> u64 {
        u64::from(self.0) * ISO_BLOCK
    }
    /// The same address in 512-byte sectors.
    pub fn to_lba512(self) -> Lba512 {
        Lba512(u64::from(self.0) * 4)
    }
}

impl Lba512 {
    /// Byte offset of the sector from the start of the image.
    pub fn byte_offset(self) -> u64 {
        self.0 * SECTOR
    }
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
        assert_eq!(Lba2048(16).byte_offset(), 32768);
        assert_eq!(Lba2048(16).to_lba512(), Lba512(64));
        assert_eq!(blocks_for(0), 0);
        assert_eq!(blocks_for(1), 1);
        assert_eq!(blocks_for(2048), 1);
        assert_eq!(blocks_for(2049), 2);
    }
}
