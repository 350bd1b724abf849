//! Metadata blocks: the framing of the inode, directory, fragment, export and id tables.
//!
//! A table is a sequence of blocks, each a 2-byte little-endian header followed by at most
//! 8 KiB of data. Header bit 15 set means the data is stored uncompressed; bits 0–14 give the
//! stored length. Every block but a table's last holds exactly 8192 bytes once uncompressed.
//! A position inside a table is a [`MetaRef`]: the byte offset of a block's header relative to
//! the table start, and an offset inside that block's uncompressed data.

use std::collections::BTreeMap;

use crate::compress::{compress_block, decompress_block, decompress_error, Compressed, Compression};
use crate::error::{ReadError, WriteError};

/// Uncompressed size of a full metadata block.
pub const METADATA_SIZE: usize = 8192;
/// Header bit marking an uncompressed metadata block.
pub const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Largest metadata table (uncompressed) the reader builds.
pub const MAX_TABLE_UNCOMPRESSED: usize = 1 << 30;

/// A position inside a metadata table: `block` is the offset of the block header from the
/// table's start (compressed bytes), `offset` the position inside the block's uncompressed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct MetaRef {
    /// Byte offset of the block's header relative to the table start.
    pub block: u64,
    /// Offset inside the uncompressed block, below 8192.
    pub offset: u16,
}

impl MetaRef {
    /// The packed inode reference `block << 16 | offset` (block must fit 32 bits… in practice
    /// 48 bits, as the kernel reads it).
    pub fn to_inode_ref(self) -> u64 {
        (self.block << 16) | u64::from(self.offset)
    }
    /// Unpacks an inode reference.
    pub fn from_inode_ref(r: u64) -> MetaRef {
        MetaRef { block: r >> 16, offset: (r & 0xffff) as u16 }
    }
}

/// Writes a metadata table, compressing each 8 KiB block as it fills (blocks are compressed
/// in order, so the position of the block being filled is always known). The compressed
/// blocks are kept until [`MetadataWriter::write_out`] hands them on (a table written
/// straight into the image need not be held whole) or [`MetadataWriter::finish`].
#[derive(Debug)]
pub struct MetadataWriter {
    compression: Compression,
    block_size: u32,
    /// Compressed blocks not handed on yet.
    out: Vec<u8>,
    /// Bytes of compressed blocks handed on by [`MetadataWriter::write_out`].
    written_out: u64,
    pending: Vec<u8>,
    uncompressed_total: u64,
    /// Where compressed blocks are looked up and stored (a rebuild with unchanged tables
    /// compresses none of them).
    cache: Option<std::sync::Arc<crate::cache::BlockCache>>,
}

impl MetadataWriter {
    /// An empty table. `block_size` is the image's data block size (xz's default dictionary
    /// size, which the kernel preallocates for metadata blocks too).
    pub fn new(compression: Compression, block_size: u32) -> MetadataWriter {
        MetadataWriter {
            compression,
            block_size,
            out: Vec::new(),
            written_out: 0,
            pending: Vec::with_capacity(METADATA_SIZE),
            uncompressed_total: 0,
            cache: None,
        }
    }

    /// Compresses the blocks through `cache` ([`crate::cache::BlockCache::compress`], the same
    /// bytes as without it).
    pub fn with_cache(mut self, cache: Option<std::sync::Arc<crate::cache::BlockCache>>) -> MetadataWriter {
        self.cache = cache;
        self
    }

    /// Where the next byte written will land.
    pub fn position(&self) -> MetaRef {
        MetaRef { block: self.written_out + self.out.len() as u64, offset: self.pending.len() as u16 }
    }

    /// Hands the compressed blocks finished so far to `sink`, in order, and forgets them:
    /// the table is what all calls of `sink` got, followed by [`MetadataWriter::finish`]'s
    /// bytes.
    pub fn write_out<E>(&mut self, sink: impl FnOnce(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.out.is_empty() {
            return Ok(());
        }
        sink(&self.out)?;
        self.written_out += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// Appends bytes, flushing full blocks.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), WriteError> {
        while !bytes.is_empty() {
            let room = METADATA_SIZE - self.pending.len();
            let n = room.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() == METADATA_SIZE {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.uncompressed_total += self.pending.len() as u64;
        let compressed = match &self.cache {
            Some(c) => c.compress(&self.pending)?,
            None => compress_block(&self.pending, self.compression, self.block_size)?,
        };
        match compressed {
            Compressed::Packed(p) => {
                self.out.extend_from_slice(&(p.len() as u16).to_le_bytes());
                self.out.extend_from_slice(&p);
            }
            Compressed::Stored => {
                let h = self.pending.len() as u16 | METADATA_UNCOMPRESSED;
                self.out.extend_from_slice(&h.to_le_bytes());
                self.out.extend_from_slice(&self.pending);
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Flushes the last, possibly short, block and returns the table bytes (those not handed
    /// on by [`MetadataWriter::write_out`]) and the uncompressed size of the whole table.
    pub fn finish(mut self) -> Result<(Vec<u8>, u64), WriteError> {
        self.flush()?;
        Ok((self.out, self.uncompressed_total))
    }
}

/// Reads the metadata block whose header is at `pos` of `image` (a slice of a whole table or
/// of the image). Returns the uncompressed data and the position after the block.
pub fn read_block(
    image: &[u8],
    pos: usize,
    compressor: u16,
    table: &'static str,
    base: u64,
) -> Result<(Vec<u8>, usize), ReadError> {
    let at = base + pos as u64;
    let header = image.get(pos..pos + 2).ok_or(ReadError::BadReference { table, reference: at })?;
    let header = u16::from_le_bytes([header[0], header[1]]);
    let len = usize::from(header & !METADATA_UNCOMPRESSED);
    if len == 0 || len > METADATA_SIZE {
        return Err(ReadError::Field {
            structure: table,
            field: "metadata header length",
            offset: at,
            expected: "1 to 8192".to_string(),
            found: len.to_string(),
        });
    }
    let data = image.get(pos + 2..pos + 2 + len).ok_or(ReadError::Field {
        structure: table,
        field: "metadata header length",
        offset: at,
        expected: format!("at most {} bytes left", image.len().saturating_sub(pos + 2)),
        found: len.to_string(),
    })?;
    let out = if header & METADATA_UNCOMPRESSED != 0 {
        data.to_vec()
    } else {
        decompress_block(compressor, data, METADATA_SIZE)
            .map_err(|m| decompress_error(compressor, table, at, m))?
    };
    Ok((out, pos + 2 + len))
}

/// A whole metadata table decompressed into memory, with the map from block offsets to
/// uncompressed positions.
#[derive(Debug, Default)]
pub struct MetaTable {
    /// Uncompressed contents of all blocks, concatenated.
    pub data: Vec<u8>,
    /// Compressed block offset → uncompressed start.
    pub blocks: BTreeMap<u64, usize>,
    /// Table name for errors.
    pub name: &'static str,
}

impl MetaTable {
    /// Decompresses every block of `bytes` (a table's whole extent). Blocks other than the
    /// last must be full (8192 bytes).
    pub fn parse(
        bytes: &[u8],
        compressor: u16,
        name: &'static str,
        base: u64,
    ) -> Result<MetaTable, ReadError> {
        let mut t = MetaTable { name, ..MetaTable::default() };
        let mut pos = 0;
        let mut short_at = None;
        while pos < bytes.len() {
            if let Some(at) = short_at {
                return Err(ReadError::Field {
                    structure: name,
                    field: "metadata block size",
                    offset: base + at as u64,
                    expected: "8192 bytes (only the last block may be short)".to_string(),
                    found: "a short block followed by more".to_string(),
                });
            }
            let (block, next) = read_block(bytes, pos, compressor, name, base)?;
            if t.data.len() + block.len() > MAX_TABLE_UNCOMPRESSED {
                return Err(ReadError::Limit {
                    what: "uncompressed metadata table",
                    limit: MAX_TABLE_UNCOMPRESSED as u64,
                });
            }
            t.blocks.insert(pos as u64, t.data.len());
            if block.len() < METADATA_SIZE {
                short_at = Some(pos);
            }
            t.data.extend_from_slice(&block);
            pos = next;
        }
        Ok(t)
    }

    /// The uncompressed position of a reference.
    pub fn resolve(&self, r: MetaRef) -> Result<usize, ReadError> {
        let start = self
            .blocks
            .get(&r.block)
            .ok_or(ReadError::BadReference { table: self.name, reference: r.to_inode_ref() })?;
        let p = start + usize::from(r.offset);
        if usize::from(r.offset) >= METADATA_SIZE || p > self.data.len() {
            return Err(ReadError::BadReference { table: self.name, reference: r.to_inode_ref() });
        }
        Ok(p)
    }

    /// `len` bytes at uncompressed position `pos`.
    pub fn bytes(&self, pos: usize, len: usize) -> Result<&[u8], ReadError> {
        self.data
            .get(pos..pos.saturating_add(len))
            .ok_or(ReadError::BadReference { table: self.name, reference: pos as u64 })
    }

    /// The block offset holding uncompressed position `pos` (for directory index checks).
    pub fn block_of(&self, pos: usize) -> Option<u64> {
        self.blocks.iter().rev().find(|(_, &s)| s <= pos).map(|(&b, _)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_positions() {
        let mut w = MetadataWriter::new(Compression::Zstd { level: 3 }, 1 << 20);
        assert_eq!(w.position(), MetaRef { block: 0, offset: 0 });
        w.write(&[7u8; 5000]).unwrap();
        assert_eq!(w.position(), MetaRef { block: 0, offset: 5000 });
        w.write(&[9u8; 5000]).unwrap();
        let p = w.position();
        assert_eq!(p.offset, 10000 - 8192);
        assert!(p.block > 2 && p.block < 200, "first block compressed: {p:?}");
        let (bytes, raw) = w.finish().unwrap();
        assert_eq!(raw, 10000);
        let hdr = u16::from_le_bytes([bytes[0], bytes[1]]);
        assert_eq!(hdr & METADATA_UNCOMPRESSED, 0);
        assert_eq!(u64::from(hdr) + 2, p.block);
        let t = MetaTable::parse(&bytes, crate::compress::id::ZSTD, "test", 0).unwrap();
        assert_eq!(t.data.len(), 10000);
        assert_eq!(t.resolve(p).unwrap(), 10000 - (10000 - 8192) + usize::from(p.offset));
        assert!(t.data[..5000].iter().all(|&b| b == 7) && t.data[5000..].iter().all(|&b| b == 9));
    }

    #[test]
    fn uncompressed_blocks_have_bit_15() {
        let mut w = MetadataWriter::new(Compression::None, 4096);
        w.write(b"abc").unwrap();
        let (bytes, _) = w.finish().unwrap();
        assert_eq!(bytes, [3, 0x80, b'a', b'b', b'c']);
    }

    #[test]
    fn corrupt_header_is_an_error() {
        assert!(read_block(&[0, 0], 0, 6, "t", 0).is_err());
        assert!(read_block(&[10, 0x80, 1], 0, 6, "t", 0).is_err());
        assert!(read_block(&[3, 0, 1, 2, 3], 0, 6, "t", 0).is_err());
        assert!(read_block(&[1], 0, 6, "t", 0).is_err());
    }
}
