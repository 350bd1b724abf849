//! The file allocation table: one entry per cluster, 12, 16 or 32 (28 used) bits wide,
//! little-endian; FAT12 packs two entries into three bytes (fatgen103 section 4).
//!
//! Entry 0 holds the media byte in its low 8 bits with all other bits set, entry 1 is
//! all ones (the "clean shutdown" bits set), free clusters are 0 and the last cluster of a
//! chain holds an end-of-chain mark. We use `mkfs.fat`'s 0x?FF8 (`FAT_EOF`) everywhere, so an
//! image of an empty tree has the same FAT as `mkfs.fat` writes.

use std::io;

use super::bpb::FatType;

/// End-of-chain mark before masking (`mkfs.fat`'s `FAT_EOF`).
pub const END_OF_CHAIN: u32 = 0x0FFF_FFF8;

/// The bits of an entry that are used.
pub fn mask(ty: FatType) -> u32 {
    match ty {
        FatType::Fat12 => 0xFFF,
        FatType::Fat16 => 0xFFFF,
        FatType::Fat32 => 0x0FFF_FFFF,
    }
}

/// Whether a (masked) entry value marks the end of a chain (fatgen103: >= 0x?FF8).
pub fn is_end_of_chain(ty: FatType, value: u32) -> bool {
    value >= (0x0FFF_FFF8 & mask(ty))
}

/// A run of consecutive clusters holding one file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First cluster number (>= 2; a plain number here: the encoder does arithmetic on it).
    pub first: u32,
    /// Number of clusters (>= 1).
    pub len: u32,
}

/// The values of entries `0..` for a FAT whose used clusters are `runs` (ascending, disjoint).
fn entry_value(ty: FatType, media: u8, runs: &[Run], idx: &mut usize, cluster: u32) -> u32 {
    match cluster {
        0 => (0xFFFF_FF00 | u32::from(media)) & mask(ty),
        1 => mask(ty),
        c => {
            while *idx < runs.len() && runs[*idx].first + runs[*idx].len <= c {
                *idx += 1;
            }
            match runs.get(*idx) {
                Some(r) if r.first <= c => {
                    if c + 1 == r.first + r.len {
                        END_OF_CHAIN & mask(ty)
                    } else {
                        c + 1
                    }
                }
                _ => 0,
            }
        }
    }
}

/// Encodes the start of a FAT: entries 0 and 1 and every entry up to the last used cluster,
/// streamed to `out` in chunks. Returns the number of bytes produced; the rest of the FAT is
/// zero (free clusters) and left to the caller.
pub fn encode_fat_prefix(
    ty: FatType,
    media: u8,
    runs: &[Run],
    out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    const CHUNK: usize = 64 * 1024;
    let last = runs.last().map_or(1, |r| r.first + r.len - 1);
    // Entries 0..=last, rounded up to a pair for FAT12 (a pair fills 3 whole bytes).
    let count = match ty {
        FatType::Fat12 => (last + 1).div_ceil(2) * 2,
        _ => last + 1,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 8);
    let mut total = 0u64;
    let mut idx = 0usize;
    let mut c = 0u32;
    while c < count {
        match ty {
            FatType::Fat12 => {
                let a = entry_value(ty, media, runs, &mut idx, c);
                let b = if c < last { entry_value(ty, media, runs, &mut idx, c + 1) } else { 0 };
                buf.extend_from_slice(&[
                    (a & 0xFF) as u8,
                    ((a >> 8) | ((b & 0xF) << 4)) as u8,
                    (b >> 4) as u8,
                ]);
                c += 2;
            }
            FatType::Fat16 => {
                buf.extend_from_slice(&(entry_value(ty, media, runs, &mut idx, c) as u16).to_le_bytes());
                c += 1;
            }
            FatType::Fat32 => {
                buf.extend_from_slice(&entry_value(ty, media, runs, &mut idx, c).to_le_bytes());
                c += 1;
            }
        }
        if buf.len() >= CHUNK {
            out(&buf)?;
            total += buf.len() as u64;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        out(&buf)?;
        total += buf.len() as u64;
    }
    Ok(total)
}

/// Reads entry `cluster` of a FAT held in `fat`; `None` past its end.
pub fn read_entry(ty: FatType, fat: &[u8], cluster: u32) -> Option<u32> {
    let c = usize::try_from(cluster).ok()?;
    match ty {
        FatType::Fat12 => {
            let off = c + c / 2;
            let v = u16::from_le_bytes([*fat.get(off)?, *fat.get(off + 1)?]);
            Some(u32::from(if c % 2 == 0 { v & 0xFFF } else { v >> 4 }))
        }
        FatType::Fat16 => {
            let off = c * 2;
            Some(u32::from(u16::from_le_bytes([*fat.get(off)?, *fat.get(off + 1)?])))
        }
        FatType::Fat32 => {
            let off = c * 4;
            let b = fat.get(off..off + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x0FFF_FFFF)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(ty: FatType, runs: &[Run]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_fat_prefix(ty, 0xF8, runs, &mut |b| {
            v.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn empty_fats_match_mkfs() {
        assert_eq!(encode(FatType::Fat12, &[]), [0xF8, 0xFF, 0xFF]);
        assert_eq!(encode(FatType::Fat16, &[]), [0xF8, 0xFF, 0xFF, 0xFF]);
        // FAT32 with the root directory in cluster 2.
        assert_eq!(
            encode(FatType::Fat32, &[Run { first: 2, len: 1 }]),
            [0xF8, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0F, 0xF8, 0xFF, 0xFF, 0x0F]
        );
    }

    #[test]
    fn chains_round_trip() {
        let runs = [Run { first: 2, len: 3 }, Run { first: 5, len: 1 }, Run { first: 9, len: 4 }];
        for ty in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
            let fat = encode(ty, &runs);
            let eoc = END_OF_CHAIN & mask(ty);
            let expect = [(2, 3), (3, 4), (4, eoc), (5, eoc), (6, 0), (8, 0), (9, 10), (12, eoc)];
            for (c, v) in expect {
                assert_eq!(read_entry(ty, &fat, c), Some(v), "{ty} cluster {c}");
            }
            assert!(is_end_of_chain(ty, eoc));
            assert_eq!(read_entry(ty, &fat, 0), Some((0xFFFF_FFF8) & mask(ty)));
        }
    }
}
