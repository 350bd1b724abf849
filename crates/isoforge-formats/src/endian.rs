//! Typed byte order for on-disk layouts.
//!
//! Layout structs are `#[repr(C)]` and built from these field types, so a struct declares its
//! byte order once and `zerocopy` converts it to and from bytes. ECMA-119 stores many numbers
//! twice, little-endian then big-endian ("both-byte orders", 7.2.3 and 7.3.3): [`Both16`] and
//! [`Both32`] model those pairs, and a reader can tell when the two copies disagree.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub use zerocopy::byteorder::{BigEndian as BE, LittleEndian as LE, U16, U32, U64};

/// A 16-bit number stored little-endian then big-endian (ECMA-119 7.2.3).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct Both16 {
    le: U16<LE>,
    be: U16<BE>,
}

/// A 32-bit number stored little-endian then big-endian (ECMA-119 7.3.3).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct Both32 {
    le: U32<LE>,
    be: U32<BE>,
}

impl Both16 {
    /// Both copies set to `v`.
    pub fn new(v: u16) -> Self {
        Self { le: U16::new(v), be: U16::new(v) }
    }
    /// The little-endian copy (what most readers use).
    pub fn le(self) -> u16 {
        self.le.get()
    }
    /// The big-endian copy.
    pub fn be(self) -> u16 {
        self.be.get()
    }
    /// The value when both copies agree, else `Err((le, be))`.
    pub fn get(self) -> Result<u16, (u16, u16)> {
        if self.le() == self.be() {
            Ok(self.le())
        } else {
            Err((self.le(), self.be()))
        }
    }
}

impl Both32 {
    /// Both copies set to `v`.
    pub fn new(v: u32) -> Self {
        Self { le: U32::new(v), be: U32::new(v) }
    }
    /// The little-endian copy (what most readers use).
    pub fn le(self) -> u32 {
        self.le.get()
    }
    /// The big-endian copy.
    pub fn be(self) -> u32 {
        self.be.get()
    }
    /// The value when both copies agree, else `Err((le, be))`.
    pub fn get(self) -> Result<u32, (u32, u32)> {
        if self.le() == self.be() {
            Ok(self.le())
        } else {
            Err((self.le(), self.be()))
        }
    }
}

/// Byte offset of a field in a layout struct, as a `u64` to add to an image offset (readers
/// report findings at `base + field_offset!(DirectoryRecordHeader, extent_lba)`, never at a
/// number typed by hand). Nested fields: `field_offset!(VolumeDescriptor, root_directory_record)
/// + field_offset!(DirectoryRecordHeader, data_length)`.
#[macro_export]
macro_rules! field_offset {
    ($ty:ty, $field:ident) => {
        (::core::mem::offset_of!($ty, $field) as u64)
    };
}
pub use crate::field_offset;

const _: () = assert!(core::mem::size_of::<Both16>() == 4);
const _: () = assert!(core::mem::size_of::<Both32>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_endian_bytes() {
        assert_eq!(Both32::new(0x0102_0304).as_bytes(), &[4, 3, 2, 1, 1, 2, 3, 4]);
        assert_eq!(Both16::new(0x0102).as_bytes(), &[2, 1, 1, 2]);
        let bad = Both32::read_from_bytes(&[1, 0, 0, 0, 0, 0, 0, 2][..]).unwrap();
        assert_eq!(bad.get(), Err((1, 2)));
    }
}
