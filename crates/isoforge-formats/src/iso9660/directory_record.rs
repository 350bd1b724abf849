//! Directory records (ECMA-119 9.1).
//!
//! A record is a 33-byte fixed part, the file identifier, a padding byte when the identifier
//! length is even, then the system use area (Rock Ridge/SUSP entries). Its length is at most
//! 255 bytes, and a record never crosses a logical block boundary (9.1.1, 6.8.1.1): the rest of
//! a block that cannot hold the next record is zero.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::endian::{Both16, Both32};

/// File flag: the entry is hidden (9.1.6 bit 0).
pub const FLAG_HIDDEN: u8 = 0x01;
/// File flag: the entry is a directory (bit 1).
pub const FLAG_DIRECTORY: u8 = 0x02;
/// File flag: this is not the final record of a multi-extent file (bit 7).
pub const FLAG_MULTI_EXTENT: u8 = 0x80;
/// Largest extent isoforge writes for one record of a multi-extent file: 4 GiB − 2 KiB, as
/// xorriso splits (the 32-bit data length rounded down to whole blocks).
pub const MAX_EXTENT_BYTES: u64 = 0xFFFF_F800;
/// Largest directory record: 255 rounded down to the even length every record has (9.1.1;
/// an odd system use area is followed by a zero padding byte).
pub const MAX_RECORD_LEN: usize = 254;

/// A directory record's "recording date and time" (ECMA-119 9.1.5), 7 bytes of binary
/// numbers. All zero means "not specified".
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct DirDateTime {
    /// Number of years since 1900. BP 1.
    pub years_since_1900: u8,
    /// Month of the year from 1 to 12. BP 2.
    pub month: u8,
    /// Day of the month from 1 to 31. BP 3.
    pub day: u8,
    /// Hour of the day from 0 to 23. BP 4.
    pub hour: u8,
    /// Minute of the hour from 0 to 59. BP 5.
    pub minute: u8,
    /// Second of the minute from 0 to 59. BP 6.
    pub second: u8,
    /// Offset from GMT in 15-minute intervals, −48 (west) to +52 (east). BP 7.
    pub gmt_offset: i8,
}
const _: () = assert!(core::mem::size_of::<DirDateTime>() == 7);

impl DirDateTime {
    /// The date of 7 stored bytes ([`crate::time::Epoch::iso_dir_datetime`] encodes them).
    pub fn from_bytes(raw: [u8; 7]) -> DirDateTime {
        zerocopy::transmute!(raw)
    }
}

/// The fixed 33-byte part of a directory record (ECMA-119 9.1, BP 1–33).
#[repr(C)]
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DirectoryRecordHeader {
    /// Length of the whole record. BP 1.
    pub length: u8,
    /// Extended attribute record length (0). BP 2.
    pub extended_attribute_length: u8,
    /// Location of the extent. BP 3–10.
    pub extent_lba: Both32,
    /// Data length in bytes. BP 11–18.
    pub data_length: Both32,
    /// Recording date and time (9.1.5). BP 19–25.
    pub recording_date: DirDateTime,
    /// File flags (9.1.6). BP 26.
    pub file_flags: u8,
    /// File unit size (0: not interleaved). BP 27.
    pub file_unit_size: u8,
    /// Interleave gap size (0). BP 28.
    pub interleave_gap: u8,
    /// Volume sequence number (1). BP 29–32.
    pub volume_sequence_number: Both16,
    /// Length of the file identifier. BP 33.
    pub file_identifier_length: u8,
}
const _: () = assert!(core::mem::size_of::<DirectoryRecordHeader>() == 33);

/// Length of a record with an identifier of `id_len` bytes and `su_len` bytes of system use,
/// including the padding bytes that keep it even.
pub fn record_len(id_len: usize, su_len: usize) -> usize {
    let n = 33 + id_len + (1 - id_len % 2) + su_len;
    n + n % 2
}

/// Space left for system use in a record whose identifier is `id_len` bytes.
pub fn su_capacity(id_len: usize) -> usize {
    MAX_RECORD_LEN - record_len(id_len, 0)
}

/// A directory record to encode.
#[derive(Debug, Clone)]
pub struct DirectoryRecord<'a> {
    /// Extent location (2048-byte blocks).
    pub extent_lba: u32,
    /// Data length in bytes.
    pub data_length: u32,
    /// Recording date (from the epoch).
    pub recording_date: [u8; 7],
    /// File flags.
    pub flags: u8,
    /// File identifier bytes (0x00 for ".", 0x01 for "..").
    pub identifier: &'a [u8],
    /// System use area (already encoded SUSP entries).
    pub system_use: &'a [u8],
}

impl DirectoryRecord<'_> {
    /// Encoded length; `None` when over 255 bytes.
    pub fn encoded_len(&self) -> Option<usize> {
        let n = record_len(self.identifier.len(), self.system_use.len());
        (n <= MAX_RECORD_LEN && self.identifier.len() <= 255).then_some(n)
    }

    /// Appends the encoded record to `out`. Callers size records with [`Self::encoded_len`] first; an
    /// oversized record is truncated to 255 bytes here rather than panicking.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = record_len(self.identifier.len(), self.system_use.len()).min(MAX_RECORD_LEN);
        debug_assert!(self.encoded_len().is_some(), "oversized directory record");
        let header = DirectoryRecordHeader {
            length: len as u8,
            extended_attribute_length: 0,
            extent_lba: Both32::new(self.extent_lba),
            data_length: Both32::new(self.data_length),
            recording_date: DirDateTime::from_bytes(self.recording_date),
            file_flags: self.flags,
            file_unit_size: 0,
            interleave_gap: 0,
            volume_sequence_number: Both16::new(1),
            file_identifier_length: self.identifier.len().min(255) as u8,
        };
        let start = out.len();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(self.identifier);
        if self.identifier.len() % 2 == 0 {
            out.push(0);
        }
        out.extend_from_slice(self.system_use);
        out.resize(start + len, 0);
    }
}

/// A decoded directory record borrowing from the directory extent.
#[derive(Debug, Clone)]
pub struct RawRecord<'a> {
    /// The fixed part.
    pub header: DirectoryRecordHeader,
    /// The file identifier.
    pub identifier: &'a [u8],
    /// The system use area.
    pub system_use: &'a [u8],
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordProblem {
    /// The length byte is below 34 or beyond the buffer.
    BadLength(usize),
    /// The identifier runs past the record.
    IdentifierOverrun(usize),
}

/// Decodes the record at the start of `b` (which must not be a zero length byte).
pub fn decode_record(b: &[u8]) -> Result<RawRecord<'_>, RecordProblem> {
    let len = usize::from(*b.first().ok_or(RecordProblem::BadLength(0))?);
    if len < 34 || len > b.len() {
        return Err(RecordProblem::BadLength(len));
    }
    let rec = &b[..len];
    let (header, rest) =
        DirectoryRecordHeader::read_from_prefix(rec).map_err(|_| RecordProblem::BadLength(len))?;
    let id_len = usize::from(header.file_identifier_length);
    if id_len > rest.len() {
        return Err(RecordProblem::IdentifierOverrun(id_len));
    }
    let identifier = &rest[..id_len];
    let su_start = (id_len + (1 - id_len % 2)).min(rest.len());
    Ok(RawRecord { header, identifier, system_use: &rest[su_start..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode() {
        let rec = DirectoryRecord {
            extent_lba: 20,
            data_length: 2048,
            recording_date: [80, 1, 1, 0, 0, 0, 0],
            flags: FLAG_DIRECTORY,
            identifier: b"BOOT",
            system_use: b"PX",
        };
        let mut out = Vec::new();
        rec.encode_into(&mut out);
        assert_eq!(out.len(), 33 + 4 + 1 + 2);
        let mut odd = Vec::new();
        DirectoryRecord { system_use: b"SPX", ..rec.clone() }.encode_into(&mut odd);
        assert_eq!(odd.len(), 33 + 4 + 1 + 3 + 1);
        assert_eq!(out[0] as usize, out.len());
        assert_eq!(&out[2..10], &[20, 0, 0, 0, 0, 0, 0, 20]);
        let d = decode_record(&out).unwrap();
        assert_eq!(d.identifier, b"BOOT");
        assert_eq!(d.system_use, b"PX");
        assert_eq!(d.header.extent_lba.get(), Ok(20));
        assert_eq!((d.header.recording_date.years_since_1900, d.header.recording_date.month), (80, 1));
        assert_eq!(&out[18..25], d.header.recording_date.as_bytes());
    }

    #[test]
    fn odd_identifier_has_no_pad() {
        assert_eq!(record_len(1, 0), 34);
        assert_eq!(record_len(2, 0), 36);
        assert_eq!(su_capacity(33), 254 - 66);
        assert_eq!(record_len(1, 7), 42);
    }
}
