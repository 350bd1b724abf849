//! Inodes: a 16-byte common header followed by a type-specific body, stored in the inode
//! table (metadata blocks). Source: squashfs_fs.h `struct squashfs_*_inode`.
//!
//! The writer emits basic directory, extended directory, basic file, extended file and basic
//! symlink inodes. The reader also recognises the other types (devices, fifos, sockets and
//! their extended forms) and reports them without a body.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::ReadError;
use crate::metadata::MetaTable;

/// Inode type numbers (`SQUASHFS_*_TYPE`). Directory entries store the basic type.
pub mod kind {
    /// Basic directory.
    pub const DIR: u16 = 1;
    /// Basic regular file.
    pub const REG: u16 = 2;
    /// Basic symlink.
    pub const SYMLINK: u16 = 3;
    /// Block device.
    pub const BLKDEV: u16 = 4;
    /// Character device.
    pub const CHRDEV: u16 = 5;
    /// Fifo.
    pub const FIFO: u16 = 6;
    /// Socket.
    pub const SOCKET: u16 = 7;
    /// Extended directory.
    pub const LDIR: u16 = 8;
    /// Extended regular file.
    pub const LREG: u16 = 9;
    /// Extended symlink.
    pub const LSYMLINK: u16 = 10;
    /// Extended types 11–14 (devices, fifo, socket with xattrs).
    pub const LSOCKET: u16 = 14;
}

/// No fragment (`SQUASHFS_INVALID_FRAG`) and no xattr (`SQUASHFS_INVALID_XATTR`).
pub const INVALID: u32 = u32::MAX;

/// The header every inode starts with (`struct squashfs_base_inode`), 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct BaseInode {
    /// Inode type, see [`kind`].
    pub inode_type: U16,
    /// Permission bits (`mode & 0o7777`).
    pub mode: U16,
    /// Index of the owner in the id table.
    pub uid: U16,
    /// Index of the group in the id table.
    pub guid: U16,
    /// Modification time, seconds since 1970 (unsigned).
    pub mtime: U32,
    /// Inode number, 1..=inodes.
    pub inode_number: U32,
}
const _: () = assert!(std::mem::size_of::<BaseInode>() == 16);

/// Basic directory body (`squashfs_dir_inode` after the header), 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DirBody {
    /// Directory table block of the listing, relative to the table start.
    pub start_block: U32,
    /// 2 + number of subdirectories.
    pub nlink: U32,
    /// Listing size in bytes + 3.
    pub file_size: U16,
    /// Offset of the listing in its uncompressed block.
    pub offset: U16,
    /// Inode number of the parent (root: inodes + 1).
    pub parent_inode: U32,
}
const _: () = assert!(std::mem::size_of::<DirBody>() == 16);

/// Extended directory body (`squashfs_ldir_inode`), 24 bytes, followed by `i_count` indexes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct LdirBody {
    /// 2 + number of subdirectories.
    pub nlink: U32,
    /// Listing size in bytes + 3.
    pub file_size: U32,
    /// Directory table block of the listing.
    pub start_block: U32,
    /// Parent inode number.
    pub parent_inode: U32,
    /// Number of directory index entries that follow.
    pub i_count: U16,
    /// Offset of the listing in its uncompressed block.
    pub offset: U16,
    /// Xattr index or [`INVALID`].
    pub xattr: U32,
}
const _: () = assert!(std::mem::size_of::<LdirBody>() == 24);

/// A directory index entry (`squashfs_dir_index`), 12 bytes followed by `size + 1` name bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct DirIndexRaw {
    /// Byte offset of a directory header from the start of the listing.
    pub index: U32,
    /// Directory table block (relative to the table start) holding that header.
    pub start_block: U32,
    /// Name length − 1 of the header's first entry.
    pub size: U32,
}
const _: () = assert!(std::mem::size_of::<DirIndexRaw>() == 12);

/// Basic file body (`squashfs_reg_inode`), 16 bytes followed by the block size list.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct RegBody {
    /// Image offset of the first data block.
    pub start_block: U32,
    /// Fragment index or [`INVALID`].
    pub fragment: U32,
    /// Offset of the tail in the uncompressed fragment block.
    pub offset: U32,
    /// File size in bytes.
    pub file_size: U32,
}
const _: () = assert!(std::mem::size_of::<RegBody>() == 16);

/// Extended file body (`squashfs_lreg_inode`), 40 bytes followed by the block size list.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct LregBody {
    /// Image offset of the first data block.
    pub start_block: U64,
    /// File size in bytes.
    pub file_size: U64,
    /// Bytes saved by sparse (all-zero) blocks.
    pub sparse: U64,
    /// Link count.
    pub nlink: U32,
    /// Fragment index or [`INVALID`].
    pub fragment: U32,
    /// Offset in the fragment block.
    pub offset: U32,
    /// Xattr index or [`INVALID`].
    pub xattr: U32,
}
const _: () = assert!(std::mem::size_of::<LregBody>() == 40);

/// Symlink body (`squashfs_symlink_inode`), 8 bytes followed by the target.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct SymlinkBody {
    /// Link count.
    pub nlink: U32,
    /// Target length in bytes.
    pub symlink_size: U32,
}
const _: () = assert!(std::mem::size_of::<SymlinkBody>() == 8);

/// The block size word of a data block or fragment: bit 24 set means stored uncompressed,
/// bits 0–23 give the stored length; 0 means a sparse (all-zero) block.
pub const DATA_UNCOMPRESSED: u32 = 1 << 24;

/// The stored length of a data block or fragment from its size word (without the
/// [`DATA_UNCOMPRESSED`] flag).
pub fn stored_len(word: u32) -> u32 {
    word & (DATA_UNCOMPRESSED - 1)
}

/// A decoded directory index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirIndex {
    /// Offset of the header from the start of the listing.
    pub index: u32,
    /// Directory table block holding the header.
    pub start_block: u32,
    /// First name in that header.
    pub name: Vec<u8>,
}

/// A decoded inode body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InodeBody {
    /// A directory (basic or extended).
    Dir {
        /// Directory table block of the listing.
        start_block: u32,
        /// Offset inside that block.
        offset: u16,
        /// Listing size + 3.
        file_size: u32,
        /// Link count.
        nlink: u32,
        /// Parent inode number.
        parent_inode: u32,
        /// Directory index (extended directories only).
        index: Vec<DirIndex>,
    },
    /// A regular file (basic or extended).
    File {
        /// Offset of the first data block.
        start_block: u64,
        /// Size in bytes.
        file_size: u64,
        /// Fragment index or [`INVALID`].
        fragment: u32,
        /// Offset in the fragment.
        frag_offset: u32,
        /// One size word per full block (and the last partial block when there is no fragment).
        blocks: Vec<u32>,
        /// Sparse byte count (extended only).
        sparse: u64,
        /// Link count.
        nlink: u32,
    },
    /// A symlink.
    Symlink {
        /// Target bytes.
        target: Vec<u8>,
        /// Link count.
        nlink: u32,
    },
    /// A device, fifo or socket (not produced by the writer).
    Special,
}

/// A decoded inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// The raw header.
    pub base: BaseInode,
    /// The body.
    pub body: InodeBody,
    /// Encoded size in bytes (header + body + lists).
    pub encoded_len: usize,
}

/// Number of size words in a file inode's block list.
pub fn block_count(file_size: u64, block_size: u32, has_fragment: bool) -> u64 {
    let bs = u64::from(block_size);
    if has_fragment {
        file_size / bs
    } else {
        file_size.div_ceil(bs)
    }
}

fn bad(field: &'static str, pos: usize, expected: impl Into<String>, found: impl ToString) -> ReadError {
    ReadError::Field {
        structure: "inode",
        field,
        offset: pos as u64,
        expected: expected.into(),
        found: found.to_string(),
    }
}

fn read<T: FromBytes + KnownLayout + Immutable>(t: &MetaTable, pos: usize) -> Result<T, ReadError> {
    let bytes = t.bytes(pos, std::mem::size_of::<T>())?;
    T::read_from_bytes(bytes).map_err(|_| ReadError::BadReference { table: t.name, reference: pos as u64 })
}

impl Inode {
    /// Decodes the inode at uncompressed position `pos` of the inode table.
    pub fn decode(t: &MetaTable, pos: usize, block_size: u32) -> Result<Inode, ReadError> {
        let base: BaseInode = read(t, pos)?;
        let p = pos + 16;
        let (body, len) = match base.inode_type.get() {
            kind::DIR => {
                let b: DirBody = read(t, p)?;
                let body = InodeBody::Dir {
                    start_block: b.start_block.get(),
                    offset: b.offset.get(),
                    file_size: u32::from(b.file_size.get()),
                    nlink: b.nlink.get(),
                    parent_inode: b.parent_inode.get(),
                    index: Vec::new(),
                };
                (body, 32)
            }
            kind::LDIR => {
                let b: LdirBody = read(t, p)?;
                let mut q = p + 24;
                let count = usize::from(b.i_count.get());
                let mut index = Vec::with_capacity(count.min(4096));
                for _ in 0..count {
                    let raw: DirIndexRaw = read(t, q)?;
                    let n = raw.size.get() as usize + 1;
                    if n > 256 {
                        return Err(bad("dir_index.size", q, "0 to 255", raw.size.get()));
                    }
                    let name = t.bytes(q + 12, n)?.to_vec();
                    index.push(DirIndex { index: raw.index.get(), start_block: raw.start_block.get(), name });
                    q += 12 + n;
                }
                let body = InodeBody::Dir {
                    start_block: b.start_block.get(),
                    offset: b.offset.get(),
                    file_size: b.file_size.get(),
                    nlink: b.nlink.get(),
                    parent_inode: b.parent_inode.get(),
                    index,
                };
                (body, q - pos)
            }
            ty @ (kind::REG | kind::LREG) => {
                let (start_block, file_size, fragment, frag_offset, sparse, nlink, head) = if ty == kind::REG
                {
                    let b: RegBody = read(t, p)?;
                    (
                        u64::from(b.start_block.get()),
                        u64::from(b.file_size.get()),
                        b.fragment.get(),
                        b.offset.get(),
                        0,
                        1,
                        16,
                    )
                } else {
                    let b: LregBody = read(t, p)?;
                    (
                        b.start_block.get(),
                        b.file_size.get(),
                        b.fragment.get(),
                        b.offset.get(),
                        b.sparse.get(),
                        b.nlink.get(),
                        40,
                    )
                };
                let n = block_count(file_size, block_size, fragment != INVALID);
                let list = p + head;
                let avail = (t.data.len().saturating_sub(list) / 4) as u64;
                if n > avail {
                    return Err(bad("file_size", pos, format!("at most {avail} blocks in the table"), n));
                }
                let n = n as usize;
                let raw = t.bytes(list, n * 4)?;
                let blocks =
                    raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                let body =
                    InodeBody::File { start_block, file_size, fragment, frag_offset, blocks, sparse, nlink };
                (body, 16 + head + n * 4)
            }
            ty @ (kind::SYMLINK | kind::LSYMLINK) => {
                let b: SymlinkBody = read(t, p)?;
                let n = b.symlink_size.get() as usize;
                if n > 4096 {
                    return Err(bad("symlink_size", pos, "at most 4096", n));
                }
                let target = t.bytes(p + 8, n)?.to_vec();
                let extra = if ty == kind::LSYMLINK { 4 } else { 0 };
                (InodeBody::Symlink { target, nlink: b.nlink.get() }, 24 + n + extra)
            }
            kind::BLKDEV | kind::CHRDEV => (InodeBody::Special, 24),
            kind::FIFO | kind::SOCKET => (InodeBody::Special, 20),
            11 | 12 => (InodeBody::Special, 28),
            13 | kind::LSOCKET => (InodeBody::Special, 24),
            other => return Err(bad("inode_type", pos, "1 to 14", other)),
        };
        Ok(Inode { base, body, encoded_len: len })
    }
}

/// Encodes a basic or extended directory inode. The extended form is used when there is a
/// directory index or the listing is too big for the basic form's 16-bit size.
pub fn encode_dir(
    base: BaseInode,
    start_block: u32,
    offset: u16,
    file_size: u32,
    nlink: u32,
    parent: u32,
    index: &[DirIndex],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    match u16::try_from(file_size) {
        Ok(fs) if index.is_empty() => {
            let mut b = base;
            b.inode_type = U16::new(kind::DIR);
            out.extend_from_slice(b.as_bytes());
            let body = DirBody {
                start_block: U32::new(start_block),
                nlink: U32::new(nlink),
                file_size: U16::new(fs),
                offset: U16::new(offset),
                parent_inode: U32::new(parent),
            };
            out.extend_from_slice(body.as_bytes());
        }
        _ => {
            let mut b = base;
            b.inode_type = U16::new(kind::LDIR);
            out.extend_from_slice(b.as_bytes());
            let body = LdirBody {
                nlink: U32::new(nlink),
                file_size: U32::new(file_size),
                start_block: U32::new(start_block),
                parent_inode: U32::new(parent),
                i_count: U16::new(index.len() as u16),
                offset: U16::new(offset),
                xattr: U32::new(INVALID),
            };
            out.extend_from_slice(body.as_bytes());
            for i in index {
                let raw = DirIndexRaw {
                    index: U32::new(i.index),
                    start_block: U32::new(i.start_block),
                    size: U32::new(i.name.len() as u32 - 1),
                };
                out.extend_from_slice(raw.as_bytes());
                out.extend_from_slice(&i.name);
            }
        }
    }
    out
}

/// What a file inode records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileLayout {
    /// Offset of the first data block (0 when there is none).
    pub start_block: u64,
    /// Size in bytes.
    pub file_size: u64,
    /// Fragment index or [`INVALID`].
    pub fragment: u32,
    /// Offset in the fragment block.
    pub frag_offset: u32,
    /// Block size words.
    pub blocks: Vec<u32>,
    /// Bytes in sparse blocks.
    pub sparse: u64,
}

/// Encodes a file inode: basic when every number fits 32 bits and there are no sparse blocks
/// (mksquashfs's rule), extended otherwise.
pub fn encode_file(base: BaseInode, f: &FileLayout) -> Vec<u8> {
    let mut out = Vec::with_capacity(56 + f.blocks.len() * 4);
    let small = (u32::try_from(f.start_block), u32::try_from(f.file_size));
    match small {
        (Ok(start), Ok(size)) if f.sparse == 0 => {
            let mut b = base;
            b.inode_type = U16::new(kind::REG);
            out.extend_from_slice(b.as_bytes());
            let body = RegBody {
                start_block: U32::new(start),
                fragment: U32::new(f.fragment),
                offset: U32::new(f.frag_offset),
                file_size: U32::new(size),
            };
            out.extend_from_slice(body.as_bytes());
        }
        _ => {
            let mut b = base;
            b.inode_type = U16::new(kind::LREG);
            out.extend_from_slice(b.as_bytes());
            let body = LregBody {
                start_block: U64::new(f.start_block),
                file_size: U64::new(f.file_size),
                sparse: U64::new(f.sparse),
                nlink: U32::new(1),
                fragment: U32::new(f.fragment),
                offset: U32::new(f.frag_offset),
                xattr: U32::new(INVALID),
            };
            out.extend_from_slice(body.as_bytes());
        }
    }
    for w in &f.blocks {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// Encodes a basic symlink inode.
pub fn encode_symlink(base: BaseInode, target: &[u8]) -> Vec<u8> {
    let mut b = base;
    b.inode_type = U16::new(kind::SYMLINK);
    let mut out = b.as_bytes().to_vec();
    let body = SymlinkBody { nlink: U32::new(1), symlink_size: U32::new(target.len() as u32) };
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(target);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{MetaRef, MetadataWriter};

    fn base(n: u32) -> BaseInode {
        BaseInode {
            inode_type: U16::new(0),
            mode: U16::new(0o444),
            uid: U16::new(0),
            guid: U16::new(0),
            mtime: U32::new(1),
            inode_number: U32::new(n),
        }
    }

    fn table(bytes: &[u8]) -> MetaTable {
        let mut w = MetadataWriter::new(crate::Compression::None, 4096);
        w.write(bytes).unwrap();
        MetaTable::parse(&w.finish().unwrap().0, 1, "inode table", 0).unwrap()
    }

    #[test]
    fn file_inode_basic_and_extended() {
        let f = FileLayout {
            start_block: 96,
            file_size: 5000,
            fragment: 2,
            frag_offset: 77,
            blocks: vec![1234],
            sparse: 0,
        };
        let b = encode_file(base(5), &f);
        assert_eq!(b.len(), 16 + 16 + 4);
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), kind::REG);
        let i = Inode::decode(&table(&b), 0, 4096).unwrap();
        assert_eq!(i.encoded_len, b.len());
        assert!(
            matches!(i.body, InodeBody::File { file_size: 5000, fragment: 2, frag_offset: 77, ref blocks, .. } if blocks == &[1234])
        );

        let big = FileLayout {
            start_block: 96,
            file_size: 5 << 30,
            fragment: INVALID,
            frag_offset: 0,
            blocks: vec![0; 5 << 10],
            sparse: 5 << 30,
        };
        let b = encode_file(base(6), &big);
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), kind::LREG);
        assert_eq!(b.len(), 16 + 40 + 4 * (5 << 10));
        let i = Inode::decode(&table(&b), 0, 1 << 20).unwrap();
        assert!(
            matches!(i.body, InodeBody::File { file_size, sparse, .. } if file_size == 5 << 30 && sparse == 5 << 30)
        );
    }

    #[test]
    fn dir_inode_basic_and_extended() {
        let b = encode_dir(base(1), 10, 20, 3 + 30, 2, 9, &[]);
        assert_eq!(b.len(), 32);
        let i = Inode::decode(&table(&b), 0, 4096).unwrap();
        assert!(matches!(
            i.body,
            InodeBody::Dir { start_block: 10, offset: 20, file_size: 33, parent_inode: 9, .. }
        ));
        let idx = vec![DirIndex { index: 8200, start_block: 300, name: b"zz".to_vec() }];
        let b = encode_dir(base(1), 10, 20, 70_000, 3, 9, &idx);
        assert_eq!(b.len(), 16 + 24 + 12 + 2);
        let i = Inode::decode(&table(&b), 0, 4096).unwrap();
        assert_eq!(i.encoded_len, b.len());
        assert!(matches!(i.body, InodeBody::Dir { file_size: 70_000, ref index, .. } if index == &idx));
    }

    #[test]
    fn symlink_and_truncation() {
        let b = encode_symlink(base(2), b"../target");
        assert_eq!(b.len(), 24 + 9);
        let t = table(&b);
        let i = Inode::decode(&t, 0, 4096).unwrap();
        assert!(matches!(i.body, InodeBody::Symlink { ref target, .. } if target == b"../target"));
        assert!(Inode::decode(&table(&b[..30]), 0, 4096).is_err());
        let _ = MetaRef::default();
    }
}
