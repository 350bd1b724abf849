//! Volume descriptors (ECMA-119 8): primary (8.4), supplementary for Joliet (8.5), El Torito
//! boot record (El Torito 1.0, 2.0) and the set terminator (8.3).
//!
//! Every descriptor is one 2048-byte block starting at block 16. isoforge writes, in order:
//! the PVD, the boot record when booting, the Joliet SVD, the terminator.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::endian::{field_offset, Both16, Both32, BE, LE, U32};

/// Standard identifier of every descriptor (ECMA-119 8.1.2).
pub const STANDARD_ID: [u8; 5] = *b"CD001";
/// Descriptor type: boot record.
pub const TYPE_BOOT_RECORD: u8 = 0;
/// Descriptor type: primary volume descriptor.
pub const TYPE_PRIMARY: u8 = 1;
/// Descriptor type: supplementary volume descriptor (Joliet).
pub const TYPE_SUPPLEMENTARY: u8 = 2;
/// Descriptor type: volume descriptor set terminator.
pub const TYPE_TERMINATOR: u8 = 255;
/// Joliet UCS-2 level 3 escape sequence (Joliet specification 5).
pub const JOLIET_ESCAPE_LEVEL3: [u8; 3] = *b"%/E";
/// El Torito boot system identifier, zero padded to 32 bytes (El Torito 1.0, 2.0).
pub const EL_TORITO_ID: &[u8] = b"EL TORITO SPECIFICATION";

/// A volume descriptor date and time, "dec-datetime" (ECMA-119 8.4.26.1), 17 bytes: sixteen
/// ASCII digits `YYYYMMDDHHMMSScc` and the offset from GMT. All digits '0' and offset 0 mean
/// "not specified" ([`DATE_NOT_SPECIFIED`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DecDateTime {
    /// Year from 1 to 9999, four digits. BP 1–4.
    pub year: [u8; 4],
    /// Month of the year from 1 to 12, two digits. BP 5–6.
    pub month: [u8; 2],
    /// Day of the month from 1 to 31, two digits. BP 7–8.
    pub day: [u8; 2],
    /// Hour of the day from 0 to 23, two digits. BP 9–10.
    pub hour: [u8; 2],
    /// Minute of the hour from 0 to 59, two digits. BP 11–12.
    pub minute: [u8; 2],
    /// Second of the minute from 0 to 59, two digits. BP 13–14.
    pub second: [u8; 2],
    /// Hundredths of a second from 0 to 99, two digits. BP 15–16.
    pub hundredths: [u8; 2],
    /// Offset from GMT in 15-minute intervals, −48 (west) to +52 (east). BP 17.
    pub gmt_offset: i8,
}
const _: () = assert!(core::mem::size_of::<DecDateTime>() == 17);

impl DecDateTime {
    /// The date of 17 stored bytes ([`crate::time::Epoch::iso_dec_datetime`] encodes them).
    pub fn from_bytes(raw: [u8; 17]) -> DecDateTime {
        zerocopy::transmute!(raw)
    }

    /// The sixteen digits as stored (every field but the GMT offset).
    pub fn digits(&self) -> &[u8] {
        &self.as_bytes()[..field_offset!(DecDateTime, gmt_offset) as usize]
    }
}

/// The first 7 bytes every volume descriptor shares (ECMA-119 8.1), read to tell the type.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DescriptorHeader {
    /// Volume descriptor type (0, 1, 2, 255). BP 1.
    pub descriptor_type: u8,
    /// "CD001". BP 2–6.
    pub standard_id: [u8; 5],
    /// Volume descriptor version (1). BP 7.
    pub version: u8,
}
const _: () = assert!(core::mem::size_of::<DescriptorHeader>() == 7);

/// Primary (type 1) or supplementary (type 2) volume descriptor, ECMA-119 8.4 / 8.5.
///
/// In an SVD, `volume_flags` is meaningful and `escape_sequences` holds the Joliet escape;
/// identifiers are then UCS-2 big-endian instead of a-/d-characters.
#[repr(C)]
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct VolumeDescriptor {
    /// 1 (primary) or 2 (supplementary). BP 1.
    pub descriptor_type: u8,
    /// "CD001". BP 2–6.
    pub standard_id: [u8; 5],
    /// 1. BP 7.
    pub version: u8,
    /// 0 in a PVD; volume flags in an SVD. BP 8.
    pub volume_flags: u8,
    /// System identifier (a-characters / UCS-2). BP 9–40.
    pub system_id: [u8; 32],
    /// Volume identifier (d-characters / UCS-2). BP 41–72.
    pub volume_id: [u8; 32],
    /// Zero. BP 73–80.
    pub unused1: [u8; 8],
    /// Volume space size in logical blocks. BP 81–88.
    pub volume_space_size: Both32,
    /// Zero in a PVD; escape sequences in an SVD. BP 89–120.
    pub escape_sequences: [u8; 32],
    /// Volume set size. BP 121–124.
    pub volume_set_size: Both16,
    /// Volume sequence number. BP 125–128.
    pub volume_sequence_number: Both16,
    /// Logical block size (2048). BP 129–132.
    pub logical_block_size: Both16,
    /// Path table size in bytes. BP 133–140.
    pub path_table_size: Both32,
    /// Location of the type L path table. BP 141–144.
    pub type_l_path_table: U32<LE>,
    /// Location of the optional type L path table. BP 145–148.
    pub optional_type_l_path_table: U32<LE>,
    /// Location of the type M path table. BP 149–152.
    pub type_m_path_table: U32<BE>,
    /// Location of the optional type M path table. BP 153–156.
    pub optional_type_m_path_table: U32<BE>,
    /// Directory record of the root directory (34 bytes). BP 157–190.
    pub root_directory_record: [u8; 34],
    /// Volume set identifier. BP 191–318.
    pub volume_set_id: [u8; 128],
    /// Publisher identifier. BP 319–446.
    pub publisher_id: [u8; 128],
    /// Data preparer identifier. BP 447–574.
    pub data_preparer_id: [u8; 128],
    /// Application identifier. BP 575–702.
    pub application_id: [u8; 128],
    /// Copyright file identifier. BP 703–739.
    pub copyright_file_id: [u8; 37],
    /// Abstract file identifier. BP 740–776.
    pub abstract_file_id: [u8; 37],
    /// Bibliographic file identifier. BP 777–813.
    pub bibliographic_file_id: [u8; 37],
    /// Volume creation date and time (8.4.26.1). BP 814–830.
    pub creation_date: DecDateTime,
    /// Volume modification date and time. BP 831–847.
    pub modification_date: DecDateTime,
    /// Volume expiration date and time ("not specified": zeros). BP 848–864.
    pub expiration_date: DecDateTime,
    /// Volume effective date and time ("not specified": zeros). BP 865–881.
    pub effective_date: DecDateTime,
    /// File structure version (1). BP 882.
    pub file_structure_version: u8,
    /// Reserved. BP 883.
    pub reserved1: u8,
    /// Application use. BP 884–1395.
    pub application_use: [u8; 512],
    /// Reserved. BP 1396–2048.
    pub reserved2: [u8; 653],
}
const _: () = assert!(core::mem::size_of::<VolumeDescriptor>() == 2048);

/// El Torito boot record volume descriptor (El Torito 1.0, 2.0).
#[repr(C)]
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct BootRecord {
    /// 0.
    pub descriptor_type: u8,
    /// "CD001".
    pub standard_id: [u8; 5],
    /// 1.
    pub version: u8,
    /// "EL TORITO SPECIFICATION", zero padded.
    pub boot_system_id: [u8; 32],
    /// Zero.
    pub boot_id: [u8; 32],
    /// Absolute block of the boot catalog (little-endian), offset 0x47.
    pub catalog_lba: U32<LE>,
    /// Zero.
    pub unused: [u8; 1973],
}
const _: () = assert!(core::mem::size_of::<BootRecord>() == 2048);

/// A "dec-datetime" meaning "not specified": sixteen '0' digits and a zero offset (8.4.26.1).
pub const DATE_NOT_SPECIFIED: DecDateTime = DecDateTime {
    year: *b"0000",
    month: *b"00",
    day: *b"00",
    hour: *b"00",
    minute: *b"00",
    second: *b"00",
    hundredths: *b"00",
    gmt_offset: 0,
};

/// Pads `s` with `fill` to `N` bytes; errors when longer.
pub fn padded<const N: usize>(s: &[u8], fill: u8) -> Option<[u8; N]> {
    if s.len() > N {
        return None;
    }
    let mut out = [fill; N];
    out[..s.len()].copy_from_slice(s);
    Some(out)
}

/// Encodes `s` as UCS-2 big-endian padded with UCS-2 spaces to `N` bytes, truncated to whole
/// characters that fit (Joliet identifiers; characters outside the BMP become '_').
pub fn ucs2_padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for pair in out.chunks_exact_mut(2) {
        pair.copy_from_slice(&[0x00, 0x20]);
    }
    for (i, c) in s.chars().take(N / 2).enumerate() {
        let unit = u16::try_from(u32::from(c)).unwrap_or(u16::from(b'_'));
        out[2 * i..2 * i + 2].copy_from_slice(&unit.to_be_bytes());
    }
    out
}

impl VolumeDescriptor {
    /// A descriptor of `descriptor_type` with every field zero/blank except the constants.
    pub fn blank(descriptor_type: u8) -> VolumeDescriptor {
        let mut vd = VolumeDescriptor::new_zeroed();
        vd.descriptor_type = descriptor_type;
        vd.standard_id = STANDARD_ID;
        vd.version = 1;
        vd.file_structure_version = 1;
        vd.volume_set_size = Both16::new(1);
        vd.volume_sequence_number = Both16::new(1);
        vd.logical_block_size = Both16::new(2048);
        vd
    }
}

/// A volume descriptor set terminator block (ECMA-119 8.3).
pub fn terminator() -> [u8; 2048] {
    let mut b = [0u8; 2048];
    b[0] = TYPE_TERMINATOR;
    b[1..6].copy_from_slice(&STANDARD_ID);
    b[6] = 1;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_offsets() {
        let mut vd = VolumeDescriptor::blank(TYPE_PRIMARY);
        vd.volume_space_size = Both32::new(0x11223344);
        vd.type_l_path_table = U32::new(0x55);
        vd.creation_date = DecDateTime::from_bytes(*b"1980010100000000\0");
        let b = vd.as_bytes();
        assert_eq!(&b[1..6], b"CD001");
        assert_eq!(&b[80..88], &[0x44, 0x33, 0x22, 0x11, 0x11, 0x22, 0x33, 0x44]);
        assert_eq!(&b[128..132], &[0x00, 0x08, 0x08, 0x00]);
        assert_eq!(b[140], 0x55);
        assert_eq!(&b[813..829], b"1980010100000000");
        assert_eq!(b[881], 1);
    }

    #[test]
    fn dec_datetime_fields() {
        let d = DecDateTime::from_bytes(*b"2024022912345678\x04");
        assert_eq!((&d.year, &d.month, &d.hundredths, d.gmt_offset), (b"2024", b"02", b"78", 4));
        assert_eq!(d.digits(), b"2024022912345678");
        assert_eq!(DATE_NOT_SPECIFIED.as_bytes(), b"0000000000000000\0");
        assert_eq!(field_offset!(VolumeDescriptor, creation_date), 813);
    }

    #[test]
    fn boot_record_catalog_offset() {
        let mut br = BootRecord::new_zeroed();
        br.catalog_lba = U32::new(0x1234);
        assert_eq!(&br.as_bytes()[0x47..0x4b], &[0x34, 0x12, 0, 0]);
    }

    #[test]
    fn ucs2() {
        let v: [u8; 8] = ucs2_padded("aé");
        assert_eq!(v, [0, b'a', 0, 0xe9, 0, 0x20, 0, 0x20]);
    }
}
