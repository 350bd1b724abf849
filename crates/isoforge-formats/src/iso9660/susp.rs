//! System Use Sharing Protocol entries (SUSP 1.12, IEEE P1281 draft).
//!
//! A System Use area (the tail of a directory record, ECMA-119 9.1.13, or a continuation area)
//! holds entries of the form `signature(2) length(1) version(1) data` (SUSP 4.1). This module
//! owns the common header and the entries SUSP itself defines: `CE` (5.1), `SP` (5.3), `ST`
//! (5.4) and `ER` (5.5), each as a typed layout with its encoder and decoder side by side.
//! The Rock Ridge entries carried in the same areas are in [`super::rock_ridge`].
//!
//! Byte positions below are the spec's BP numbers (1-based, from the entry's first byte).

use std::fmt;
use std::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::endian::Both32;

/// Version byte of every entry isoforge writes and of every SUSP 1.12 / RRIP 1.12 entry.
pub const ENTRY_VERSION: u8 = 1;

/// The header of every SUSP entry (SUSP 4.1, BP 1–4).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SuspHeader {
    /// Signature word, two ASCII letters. BP 1–2.
    pub signature: [u8; 2],
    /// Length of the whole entry in bytes, header included. BP 3.
    pub length: u8,
    /// System Use entry version. BP 4.
    pub version: u8,
}
const _: () = assert!(size_of::<SuspHeader>() == 4);

impl SuspHeader {
    /// The header of a `length`-byte entry with `signature`, version 1.
    pub const fn new(signature: [u8; 2], length: u8) -> SuspHeader {
        SuspHeader { signature, length, version: ENTRY_VERSION }
    }
}

/// Why an entry could not be decoded as its signature says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuspError {
    /// The entry is shorter than its fixed layout.
    #[error("{entry} entry: length {found}, expected at least {expected}")]
    TooShort {
        /// The entry's signature ("PX").
        entry: Signature,
        /// Bytes its layout needs.
        expected: usize,
        /// Its length byte.
        found: usize,
    },
    /// An "ER" entry's identifier, descriptor and source run past the entry.
    #[error(
        "ER entry: LEN_ID + LEN_DES + LEN_SRC = {expected} bytes after the 8-byte header, found {found}"
    )]
    ErOverrun {
        /// Bytes the three length fields announce.
        expected: usize,
        /// Bytes the entry has after its header.
        found: usize,
    },
    /// An "SL" component record runs past the entry.
    #[error("SL entry: component record at entry byte {offset} of length {length} runs past the entry's {entry_len} bytes")]
    SlComponentOverrun {
        /// Byte offset of the component record in the entry.
        offset: usize,
        /// Its component length byte.
        length: usize,
        /// The entry's length.
        entry_len: usize,
    },
}

/// A two-letter entry signature, shown as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 2]);

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// One raw entry of a System Use area, borrowed from it (made by [`entries`]: at least the
/// 4 header bytes long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspEntry<'a> {
    offset: usize,
    header: SuspHeader,
    bytes: &'a [u8],
}

impl<'a> SuspEntry<'a> {
    /// Byte offset of the entry in its area.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// The whole entry, header included (`length` bytes).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The two-letter signature.
    pub fn signature(&self) -> [u8; 2] {
        self.header.signature
    }
    /// The version byte.
    pub fn version(&self) -> u8 {
        self.header.version
    }
    /// The bytes after the 4-byte header.
    pub fn data(&self) -> &'a [u8] {
        self.bytes.get(size_of::<SuspHeader>()..).unwrap_or_default()
    }
}

/// Splits a System Use area into entries, in order. Stops at a zero byte (padding), after an
/// "ST" entry (SUSP 5.4; the ST is the last entry returned), or at an entry whose length byte
/// is below 4 or runs past the area: that entry's offset is returned beside the entries before
/// it.
pub fn entries(su: &[u8]) -> (Vec<SuspEntry<'_>>, Option<usize>) {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some((header, _)) = su.get(i..).and_then(|r| SuspHeader::read_from_prefix(r).ok()) {
        if header.signature[0] == 0 {
            break;
        }
        let len = usize::from(header.length);
        if len < size_of::<SuspHeader>() || i + len > su.len() {
            return (out, Some(i));
        }
        out.push(SuspEntry { offset: i, header, bytes: &su[i..i + len] });
        if &header.signature == St::SIGNATURE {
            break;
        }
        i += len;
    }
    (out, None)
}

/// An entry of fixed layout: a `#[repr(C)]` struct starting with its [`SuspHeader`].
pub trait FixedEntry: FromBytes + IntoBytes + KnownLayout + Immutable + Unaligned + Sized {
    /// The entry's signature.
    const SIGNATURE: &'static [u8; 2];
    /// Its length in bytes (the struct's size).
    const LEN: usize = size_of::<Self>();

    /// The header this layout's entries carry.
    fn header() -> SuspHeader {
        // Every fixed layout is at most 44 bytes: the cast cannot truncate.
        SuspHeader::new(*Self::SIGNATURE, Self::LEN as u8)
    }

    /// The encoded entry.
    fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// Decodes `e`, whose signature the caller has matched; bytes past the layout are ignored.
    fn decode(e: &SuspEntry<'_>) -> Result<Self, SuspError> {
        Self::read_from_prefix(e.bytes()).map(|(v, _)| v).map_err(|_| SuspError::TooShort {
            entry: Signature(*Self::SIGNATURE),
            expected: Self::LEN,
            found: e.bytes().len(),
        })
    }
}

/// Both-endian fields of a decoded entry: (name, offset in the entry, value), for the reader's
/// byte-order check.
pub type BothFields = Vec<(&'static str, usize, Both32)>;

/// "CE": continuation area (SUSP 5.1, 28 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Ce {
    /// "CE", 28, 1. BP 1–4.
    pub header: SuspHeader,
    /// Block location of the continuation area. BP 5–12.
    pub block_location: Both32,
    /// Offset to the start of the continuation area within that block. BP 13–20.
    pub offset: Both32,
    /// Length of the continuation area in bytes. BP 21–28.
    pub length: Both32,
}
const _: () = assert!(size_of::<Ce>() == 28);

impl FixedEntry for Ce {
    const SIGNATURE: &'static [u8; 2] = b"CE";
}

/// Length of a "CE" entry.
pub const CE_LEN: usize = Ce::LEN;

impl Ce {
    /// A CE pointing at `length` bytes at byte `offset` of block `block`.
    pub fn new(block: u32, offset: u32, length: u32) -> Ce {
        Ce {
            header: Self::header(),
            block_location: Both32::new(block),
            offset: Both32::new(offset),
            length: Both32::new(length),
        }
    }

    /// Both-endian fields, named as the reader reports them.
    pub fn both_fields(&self) -> BothFields {
        vec![
            ("CE block", std::mem::offset_of!(Ce, block_location), self.block_location),
            ("CE offset", std::mem::offset_of!(Ce, offset), self.offset),
            ("CE length", std::mem::offset_of!(Ce, length), self.length),
        ]
    }
}

/// "SP" check bytes (SUSP 5.3).
pub const SP_CHECK_BYTES: [u8; 2] = [0xBE, 0xEF];

/// "SP": SUSP in use, in the root's "." record (SUSP 5.3, 7 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Sp {
    /// "SP", 7, 1. BP 1–4.
    pub header: SuspHeader,
    /// BE EF. BP 5–6.
    pub check_bytes: [u8; 2],
    /// Bytes skipped at the start of every other System Use area (LEN_SKP). BP 7.
    pub len_skp: u8,
}
const _: () = assert!(size_of::<Sp>() == 7);

impl FixedEntry for Sp {
    const SIGNATURE: &'static [u8; 2] = b"SP";
}

impl Sp {
    /// An SP with `len_skp` bytes skipped.
    pub fn new(len_skp: u8) -> Sp {
        Sp { header: Self::header(), check_bytes: SP_CHECK_BYTES, len_skp }
    }
}

/// "ST": end of the System Use entries of this area (SUSP 5.4, 4 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct St {
    /// "ST", 4, 1. BP 1–4.
    pub header: SuspHeader,
}
const _: () = assert!(size_of::<St>() == 4);

impl FixedEntry for St {
    const SIGNATURE: &'static [u8; 2] = b"ST";
}

impl St {
    /// The ST entry.
    pub fn new() -> St {
        St { header: Self::header() }
    }
}

impl Default for St {
    fn default() -> St {
        St::new()
    }
}

/// The fixed part of an "ER" entry (SUSP 5.5, BP 1–8); identifier, descriptor and source follow.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct ErHeader {
    /// "ER", length, 1. BP 1–4.
    pub header: SuspHeader,
    /// Length of the extension identifier. BP 5.
    pub len_id: u8,
    /// Length of the extension descriptor. BP 6.
    pub len_des: u8,
    /// Length of the extension source. BP 7.
    pub len_src: u8,
    /// Extension version. BP 8.
    pub ext_ver: u8,
}
const _: () = assert!(size_of::<ErHeader>() == 8);

/// An "ER" entry: an extension declared in the root's System Use (SUSP 5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Er<'a> {
    /// Extension identifier (EXT_ID), e.g. `RRIP_1991A`.
    pub id: &'a [u8],
    /// Extension descriptor (EXT_DES).
    pub descriptor: &'a [u8],
    /// Extension source (EXT_SRC).
    pub source: &'a [u8],
    /// Extension version (EXT_VER).
    pub version: u8,
}

impl Er<'_> {
    /// Signature of ER entries.
    pub const SIGNATURE: &'static [u8; 2] = b"ER";

    /// The encoded entry; `None` when the texts do not fit one 255-byte entry.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let len = size_of::<ErHeader>() + self.id.len() + self.descriptor.len() + self.source.len();
        let header = ErHeader {
            header: SuspHeader::new(*Self::SIGNATURE, u8::try_from(len).ok()?),
            len_id: u8::try_from(self.id.len()).ok()?,
            len_des: u8::try_from(self.descriptor.len()).ok()?,
            len_src: u8::try_from(self.source.len()).ok()?,
            ext_ver: self.version,
        };
        let mut v = header.as_bytes().to_vec();
        v.extend_from_slice(self.id);
        v.extend_from_slice(self.descriptor);
        v.extend_from_slice(self.source);
        Some(v)
    }

    /// Decodes an ER entry.
    pub fn decode<'a>(e: &SuspEntry<'a>) -> Result<Er<'a>, SuspError> {
        let (h, rest) = ErHeader::read_from_prefix(e.bytes()).map_err(|_| SuspError::TooShort {
            entry: Signature(*Self::SIGNATURE),
            expected: size_of::<ErHeader>(),
            found: e.bytes().len(),
        })?;
        let (id_len, des_len, src_len) =
            (usize::from(h.len_id), usize::from(h.len_des), usize::from(h.len_src));
        let need = id_len + des_len + src_len;
        if need > rest.len() {
            return Err(SuspError::ErOverrun { expected: need, found: rest.len() });
        }
        let (id, rest) = rest.split_at(id_len);
        let (descriptor, rest) = rest.split_at(des_len);
        Ok(Er { id, descriptor, source: &rest[..src_len], version: h.ext_ver })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> SuspEntry<'_> {
        let (list, bad) = entries(bytes);
        assert_eq!((list.len(), bad), (1, None));
        list.into_iter().next().unwrap()
    }

    #[test]
    fn sp_round_trip() {
        let b = Sp::new(0).encode();
        assert_eq!(b, [b'S', b'P', 7, 1, 0xBE, 0xEF, 0]);
        assert_eq!(Sp::decode(&one(&b)).unwrap(), Sp::new(0));
    }

    #[test]
    fn ce_round_trip() {
        let b = Ce::new(20, 100, 237).encode();
        assert_eq!(b.len(), CE_LEN);
        assert_eq!(&b[..4], b"CE\x1c\x01");
        assert_eq!(&b[4..12], &[20, 0, 0, 0, 0, 0, 0, 20]);
        let ce = Ce::decode(&one(&b)).unwrap();
        assert_eq!((ce.block_location.get(), ce.offset.get(), ce.length.get()), (Ok(20), Ok(100), Ok(237)));
        let fields: Vec<usize> = ce.both_fields().iter().map(|f| f.1).collect();
        assert_eq!(fields, [4, 12, 20]);
        let short = [b'C', b'E', 12, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Ce::decode(&one(&short)),
            Err(SuspError::TooShort { entry: Signature(*b"CE"), expected: 28, found: 12 })
        );
    }

    #[test]
    fn er_round_trip() {
        let er = Er { id: b"RRIP_1991A", descriptor: b"DES", source: b"SRC", version: 1 };
        let b = er.encode().unwrap();
        assert_eq!(&b[..8], &[b'E', b'R', 24, 1, 10, 3, 3, 1]);
        assert_eq!(Er::decode(&one(&b)).unwrap(), er);
        let mut cut = b.clone();
        cut[2] = 20;
        cut.truncate(20);
        assert_eq!(Er::decode(&one(&cut)), Err(SuspError::ErOverrun { expected: 16, found: 12 }));
        assert!(Er { id: &[b'x'; 250], ..er }.encode().is_none());
    }

    #[test]
    fn splitting_stops_at_st_padding_and_bad_lengths() {
        let mut area = Sp::new(0).encode();
        area.extend(St::new().encode());
        area.extend(Sp::new(1).encode());
        let (list, bad) = entries(&area);
        assert_eq!((list.len(), bad), (2, None));
        assert_eq!(St::decode(&list[1]), Ok(St::new()));
        let (list, bad) = entries(&[b'P', b'X', 3, 1, 0, 0]);
        assert_eq!((list.len(), bad), (0, Some(0)));
        let mut area = Sp::new(0).encode();
        area.extend([b'P', b'X', 44, 1]);
        let (list, bad) = entries(&area);
        assert_eq!((list.len(), bad), (1, Some(7)));
        assert_eq!(list[0].signature(), *b"SP");
        let (list, bad) = entries(&[0, 0, 0, 0, 0]);
        assert_eq!((list.len(), bad), (0, None));
    }

    #[test]
    fn signature_display() {
        assert_eq!(Signature(*b"PX").to_string(), "PX");
        assert_eq!(Signature([b'P', 0]).to_string(), "P\\x00");
    }
}
