//! The reader: parses the superblock and every table of a squashfs 4.0 image read from any
//! `Read + Seek` source (starting at its current position), lists the tree and extracts file
//! contents.
//!
//! Every size read from the image is checked against the image's extent before anything is
//! allocated for it, and every walk is bounded (depth, visited directories), so corrupt input
//! yields a [`ReadError`], never a panic or a runaway allocation.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::compress::{decompress_block, decompress_error};
use crate::dir::read_listing;
use crate::error::ReadError;
use crate::inode::{block_count, kind, stored_len, FileLayout, Inode, InodeBody, DATA_UNCOMPRESSED, INVALID};
use crate::metadata::{read_block, MetaRef, MetaTable, METADATA_SIZE};
use crate::superblock::{flags, Superblock, NO_TABLE, SUPERBLOCK_SIZE};

/// Largest metadata table (compressed) the reader accepts.
pub const MAX_TABLE_BYTES: u64 = 1 << 30;
pub use crate::metadata::MAX_TABLE_UNCOMPRESSED;
/// Deepest directory nesting the reader walks.
pub const MAX_DEPTH: usize = 4096;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir {
        /// Listing position in the directory table.
        listing: MetaRef,
        /// Listing size + 3.
        file_size: u32,
        /// Link count.
        nlink: u32,
        /// Parent inode number.
        parent_inode: u32,
        /// Number of directory index entries.
        index_count: usize,
    },
    /// A regular file.
    File {
        /// Where its data is.
        layout: FileLayout,
        /// Whether the inode was the extended form.
        extended: bool,
    },
    /// A symlink.
    Symlink {
        /// Its target.
        target: Vec<u8>,
    },
    /// A device, fifo or socket, with its inode type.
    Special {
        /// The inode type number.
        inode_type: u16,
    },
}

/// One inode as the reader presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its reference in the inode table.
    pub inode_ref: u64,
    /// Inode number.
    pub inode_number: u32,
    /// Permission bits.
    pub mode: u16,
    /// Owner (resolved through the id table).
    pub uid: u32,
    /// Group (resolved through the id table).
    pub gid: u32,
    /// Modification time.
    pub mtime: u32,
    /// What it is.
    pub kind: EntryKind,
}

impl Node {
    /// File size (0 for non-files).
    pub fn size(&self) -> u64 {
        match &self.kind {
            EntryKind::File { layout, .. } => layout.file_size,
            _ => 0,
        }
    }
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir { .. })
    }
}

/// An open image.
#[derive(Debug)]
pub struct Archive<R> {
    src: R,
    base: u64,
    sb: Superblock,
    inodes: MetaTable,
    dirs: MetaTable,
    fragments: Vec<(u64, u32)>,
    ids: Vec<u32>,
    export: Option<Vec<u64>>,
    compressor_options: Option<Vec<u8>>,
    frag_cache: Option<(u32, Vec<u8>)>,
}

impl<R: Read + Seek> Archive<R> {
    /// Opens the image that starts at `src`'s current position and reads all its tables.
    pub fn open(mut src: R) -> Result<Archive<R>, ReadError> {
        let base =
            src.stream_position().map_err(|source| ReadError::Io { what: "position", offset: 0, source })?;
        let end = src.seek(SeekFrom::End(0)).map_err(|source| ReadError::Io {
            what: "length",
            offset: 0,
            source,
        })?;
        let available = end.saturating_sub(base);
        let mut a = Archive {
            src,
            base,
            sb: zeroed_superblock(),
            inodes: MetaTable::default(),
            dirs: MetaTable::default(),
            fragments: Vec::new(),
            ids: Vec::new(),
            export: None,
            compressor_options: None,
            frag_cache: None,
        };
        let raw = a.read_at(0, SUPERBLOCK_SIZE, "superblock")?;
        let sb = Superblock::decode(&raw)?;
        a.sb = sb;
        let used = sb.bytes_used.get();
        if used > available {
            return Err(sb_field("bytes_used", format!("at most the source's {available} bytes"), used));
        }
        let c = sb.compression.get();
        if sb.flags.get() & flags::COMPRESSOR_OPTIONS != 0 {
            let raw = a.read_at(
                SUPERBLOCK_SIZE as u64,
                METADATA_SIZE.min((used - SUPERBLOCK_SIZE as u64) as usize),
                "compressor options",
            )?;
            let (opts, _) = read_block(&raw, 0, c, "compressor options", SUPERBLOCK_SIZE as u64)?;
            a.compressor_options = Some(opts);
        }
        // Lookup tables, read from the end of the image backwards as the kernel does: each
        // table ends where the next one starts.
        let mut next_table = used;
        let ids =
            a.lookup_table(sb.id_table_start.get(), u64::from(sb.no_ids.get()) * 4, next_table, "id table")?;
        if sb.no_ids.get() == 0 {
            return Err(sb_field("no_ids", "at least 1", 0));
        }
        next_table = ids.1;
        a.ids = ids.0.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let inode_count = u64::from(sb.inodes.get());
        if sb.lookup_table_start.get() != NO_TABLE {
            let (bytes, first) =
                a.lookup_table(sb.lookup_table_start.get(), inode_count * 8, next_table, "export table")?;
            next_table = first;
            a.export = Some(
                bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
            );
        }
        let frag_count = u64::from(sb.fragments.get());
        if frag_count > 0 {
            let (bytes, first) =
                a.lookup_table(sb.fragment_table_start.get(), frag_count * 16, next_table, "fragment table")?;
            next_table = first;
            a.fragments = bytes
                .chunks_exact(16)
                .map(|c| {
                    (
                        u64::from_le_bytes(c[0..8].try_into().unwrap_or([0; 8])),
                        u32::from_le_bytes([c[8], c[9], c[10], c[11]]),
                    )
                })
                .collect();
        }
        let it = sb.inode_table_start.get();
        let dt = sb.directory_table_start.get();
        if !(it <= dt && dt <= next_table) {
            return Err(sb_field(
                "directory_table_start",
                format!("between inode_table_start ({it}) and the next table ({next_table})"),
                dt,
            ));
        }
        if dt - it > MAX_TABLE_BYTES || next_table - dt > MAX_TABLE_BYTES {
            return Err(ReadError::Limit { what: "metadata table size", limit: MAX_TABLE_BYTES });
        }
        let raw = a.read_at(it, (dt - it) as usize, "inode table")?;
        a.inodes = MetaTable::parse(&raw, c, "inode table", it)?;
        let raw = a.read_at(dt, (next_table - dt) as usize, "directory table")?;
        a.dirs = MetaTable::parse(&raw, c, "directory table", dt)?;
        Ok(a)
    }

    /// Reads a table of `len` bytes of entries stored as metadata blocks whose u64 positions
    /// are listed at `start`. Returns the entries and the position of the first block.
    fn lookup_table(
        &mut self,
        start: u64,
        len: u64,
        next_table: u64,
        name: &'static str,
    ) -> Result<(Vec<u8>, u64), ReadError> {
        let blocks = len.div_ceil(METADATA_SIZE as u64);
        let index_end =
            start.checked_add(blocks * 8).ok_or(ReadError::BadReference { table: name, reference: start })?;
        if index_end > next_table {
            return Err(ReadError::Field {
                structure: name,
                field: "index",
                offset: start,
                expected: format!("{blocks} pointers ending by {next_table}"),
                found: format!("ending at {index_end}"),
            });
        }
        let index = self.read_at(start, (blocks * 8) as usize, name)?;
        // Grown as blocks are read: `len` comes from the superblock and is not trusted.
        let mut out = Vec::with_capacity((len as usize).min(1 << 20));
        let mut first = start;
        let mut prev = None;
        for (n, p) in index.chunks_exact(8).enumerate() {
            let p = u64::from_le_bytes(p.try_into().unwrap_or([0; 8]));
            if n == 0 {
                first = p;
            }
            // Blocks must be in order, before the index, and each at most one block long.
            let limit = if n + 1 == blocks as usize { start } else { u64::MAX };
            let too_far = prev.is_some_and(|q| p - q > METADATA_SIZE as u64 + 2);
            if prev.is_some_and(|q| p <= q) || too_far || p >= limit || p < SUPERBLOCK_SIZE as u64 {
                return Err(ReadError::BadReference { table: name, reference: p });
            }
            prev = Some(p);
            let avail = (start.saturating_sub(p)).min(METADATA_SIZE as u64 + 2) as usize;
            let raw = self.read_at(p, avail, name)?;
            let (block, _) = read_block(&raw, 0, self.sb.compression.get(), name, p)?;
            let want = (len as usize - out.len()).min(METADATA_SIZE);
            if block.len() < want {
                return Err(ReadError::Field {
                    structure: name,
                    field: "metadata block size",
                    offset: p,
                    expected: format!("at least {want} bytes"),
                    found: block.len().to_string(),
                });
            }
            out.extend_from_slice(&block[..want]);
        }
        Ok((out, first))
    }

    fn read_at(&mut self, offset: u64, len: usize, what: &'static str) -> Result<Vec<u8>, ReadError> {
        let io = |source| ReadError::Io { what, offset, source };
        self.src.seek(SeekFrom::Start(self.base + offset)).map_err(io)?;
        let mut buf = Vec::new();
        (&mut self.src).take(len as u64).read_to_end(&mut buf).map_err(io)?;
        if buf.len() != len {
            return Err(ReadError::Io {
                what,
                offset,
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("wanted {len} bytes, got {}", buf.len()),
                ),
            });
        }
        Ok(buf)
    }

    /// The superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The raw compressor options, when present.
    pub fn compressor_options(&self) -> Option<&[u8]> {
        self.compressor_options.as_deref()
    }

    /// The id table.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The fragment table: (start, size word) per fragment block.
    pub fn fragments(&self) -> &[(u64, u32)] {
        &self.fragments
    }

    /// The export table (inode refs by inode number − 1), when present.
    pub fn export_table(&self) -> Option<&[u64]> {
        self.export.as_deref()
    }

    /// Decodes the inode at `inode_ref`.
    pub fn inode(&self, inode_ref: u64) -> Result<Node, ReadError> {
        let r = MetaRef::from_inode_ref(inode_ref);
        let pos = self.inodes.resolve(r)?;
        let i = Inode::decode(&self.inodes, pos, self.sb.block_size.get())?;
        let id = |x: u16| {
            self.ids
                .get(usize::from(x))
                .copied()
                .ok_or(ReadError::BadReference { table: "id table", reference: u64::from(x) })
        };
        let kind = match i.body {
            InodeBody::Dir { start_block, offset, file_size, nlink, parent_inode, index } => EntryKind::Dir {
                listing: MetaRef { block: u64::from(start_block), offset },
                file_size,
                nlink,
                parent_inode,
                index_count: index.len(),
            },
            InodeBody::File { start_block, file_size, fragment, frag_offset, blocks, sparse, .. } => {
                EntryKind::File {
                    layout: FileLayout { start_block, file_size, fragment, frag_offset, blocks, sparse },
                    extended: i.base.inode_type.get() == kind::LREG,
                }
            }
            InodeBody::Symlink { target, .. } => EntryKind::Symlink { target },
            InodeBody::Special => EntryKind::Special { inode_type: i.base.inode_type.get() },
        };
        let number = i.base.inode_number.get();
        if number == 0 || number > self.sb.inodes.get() {
            return Err(ReadError::Field {
                structure: "inode",
                field: "inode_number",
                offset: inode_ref,
                expected: format!("1 to {}", self.sb.inodes.get()),
                found: number.to_string(),
            });
        }
        Ok(Node {
            inode_ref,
            inode_number: number,
            mode: i.base.mode.get(),
            uid: id(i.base.uid.get())?,
            gid: id(i.base.guid.get())?,
            mtime: i.base.mtime.get(),
            kind,
        })
    }

    /// The root directory.
    pub fn root(&self) -> Result<Node, ReadError> {
        let n = self.inode(self.sb.root_inode.get())?;
        if !n.is_dir() {
            return Err(sb_field("root_inode", "a directory inode", format!("{:?}", n.kind)));
        }
        Ok(n)
    }

    /// The entries of a directory, in name order. Checks each entry's type against its inode.
    pub fn read_dir(&self, dir: &Node) -> Result<Vec<(Vec<u8>, Node)>, ReadError> {
        let EntryKind::Dir { listing, file_size, .. } = &dir.kind else {
            return Err(ReadError::BadReference { table: "directory table", reference: dir.inode_ref });
        };
        let pos = self.dirs.resolve(*listing)?;
        let entries = read_listing(&self.dirs, pos, *file_size)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let n = self.inode(e.inode.to_inode_ref())?;
            let basic = match &n.kind {
                EntryKind::Dir { .. } => kind::DIR,
                EntryKind::File { .. } => kind::REG,
                EntryKind::Symlink { .. } => kind::SYMLINK,
                EntryKind::Special { inode_type } => {
                    if *inode_type > 7 {
                        inode_type - 7
                    } else {
                        *inode_type
                    }
                }
            };
            if e.entry_type != basic || e.inode_number != n.inode_number {
                return Err(ReadError::Field {
                    structure: "directory entry",
                    field: "type/inode_number",
                    offset: pos as u64,
                    expected: format!("type {basic}, inode {}", n.inode_number),
                    found: format!("type {}, inode {}", e.entry_type, e.inode_number),
                });
            }
            out.push((e.name, n));
        }
        Ok(out)
    }

    /// Every entry below the root as (`/`-joined path, node), in depth-first name order; the
    /// root itself is listed first with the path "".
    pub fn walk(&self) -> Result<Vec<(Vec<u8>, Node)>, ReadError> {
        let root = self.root()?;
        let mut out = vec![(Vec::new(), root.clone())];
        let mut visited = BTreeSet::new();
        visited.insert(root.inode_ref);
        self.walk_into(&root, Vec::new(), 0, &mut visited, &mut out)?;
        Ok(out)
    }

    fn walk_into(
        &self,
        dir: &Node,
        path: Vec<u8>,
        depth: usize,
        visited: &mut BTreeSet<u64>,
        out: &mut Vec<(Vec<u8>, Node)>,
    ) -> Result<(), ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::Limit { what: "directory depth", limit: MAX_DEPTH as u64 });
        }
        for (name, node) in self.read_dir(dir)? {
            let mut p = path.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&name);
            out.push((p.clone(), node.clone()));
            if node.is_dir() {
                if !visited.insert(node.inode_ref) {
                    return Err(ReadError::BadReference {
                        table: "directory table (cycle)",
                        reference: node.inode_ref,
                    });
                }
                self.walk_into(&node, p, depth + 1, visited, out)?;
            }
        }
        Ok(())
    }

    /// Checks the promises that a listing does not exercise: every directory's `parent_inode`
    /// and `nlink`, that the inode numbers are exactly 1..=inodes, and that the export table
    /// maps each number to an inode with that number. Returns one message per mismatch (empty
    /// when all hold); structural corruption is an error.
    pub fn verify(&self) -> Result<Vec<String>, ReadError> {
        let list = self.walk()?;
        let mut problems = Vec::new();
        let inodes = self.sb.inodes.get();
        let mut numbers = BTreeSet::new();
        // Directory path → inode number, to check parents.
        let mut dir_numbers = std::collections::BTreeMap::new();
        for (path, node) in &list {
            numbers.insert(node.inode_number);
            if node.is_dir() {
                dir_numbers.insert(path.clone(), node.inode_number);
            }
        }
        for (path, node) in &list {
            let EntryKind::Dir { nlink, parent_inode, .. } = &node.kind else { continue };
            let shown = String::from_utf8_lossy(path);
            let parent = match path.iter().rposition(|&b| b == b'/') {
                _ if path.is_empty() => inodes.saturating_add(1),
                Some(i) => dir_numbers.get(&path[..i]).copied().unwrap_or(0),
                None => dir_numbers.get(&Vec::new()).copied().unwrap_or(0),
            };
            if *parent_inode != parent {
                problems.push(format!("/{shown}: parent_inode {parent_inode}, expected {parent}"));
            }
            let subdirs = self.read_dir(node)?.iter().filter(|(_, n)| n.is_dir()).count() as u32;
            if *nlink != 2 + subdirs {
                problems.push(format!("/{shown}: nlink {nlink}, expected {}", 2 + subdirs));
            }
        }
        // Exactly 1..=inodes, without building that set (`inodes` comes from the superblock):
        // `numbers.len()` distinct values from 1 to `inodes` are all of them.
        let exact = numbers.len() as u64 == u64::from(inodes)
            && numbers.first().is_none_or(|&n| n == 1)
            && numbers.last().is_none_or(|&n| n == inodes);
        if !exact {
            problems.push(format!(
                "inode numbers: {} distinct in the tree, expected exactly 1..={inodes}",
                numbers.len()
            ));
        }
        if let Some(export) = &self.export {
            for (i, &r) in export.iter().enumerate() {
                match self.inode(r) {
                    Ok(n) if n.inode_number as usize == i + 1 => {}
                    Ok(n) => problems.push(format!("export[{}] points at inode {}", i + 1, n.inode_number)),
                    Err(e) => problems.push(format!("export[{}]: {e}", i + 1)),
                }
            }
        }
        Ok(problems)
    }

    /// Finds a path (`/`-separated, relative to the root).
    pub fn lookup(&self, path: &[u8]) -> Result<Node, ReadError> {
        let mut node = self.root()?;
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let entries = self.read_dir(&node)?;
            node = entries
                .into_iter()
                .find(|(n, _)| n == comp)
                .map(|(_, n)| n)
                .ok_or_else(|| ReadError::NotFound(String::from_utf8_lossy(path).into_owned()))?;
        }
        Ok(node)
    }

    /// Streams a file's contents into `out`; returns the byte count. Checks that every block
    /// decompresses to exactly the expected length.
    pub fn read_file(&mut self, file: &Node, out: &mut dyn Write) -> Result<u64, ReadError> {
        let EntryKind::File { layout, .. } = &file.kind else {
            return Err(ReadError::BadReference {
                table: "inode table (not a file)",
                reference: file.inode_ref,
            });
        };
        let bs = u64::from(self.sb.block_size.get());
        let has_frag = layout.fragment != INVALID;
        let n = block_count(layout.file_size, self.sb.block_size.get(), has_frag);
        if n != layout.blocks.len() as u64 {
            return Err(ReadError::BadReference {
                table: "inode table (block list)",
                reference: file.inode_ref,
            });
        }
        let mut pos = layout.start_block;
        let mut written = 0u64;
        for &w in &layout.blocks {
            let want = (layout.file_size - written).min(bs) as usize;
            let stored = stored_len(w) as usize;
            let bytes = if stored == 0 {
                vec![0u8; want]
            } else {
                let b = self.stored_block(Stored::Data, pos, w)?;
                pos += stored as u64;
                b
            };
            if bytes.len() != want {
                return Err(ReadError::Field {
                    structure: "file",
                    field: "block length",
                    offset: pos,
                    expected: want.to_string(),
                    found: bytes.len().to_string(),
                });
            }
            out.write_all(&bytes).map_err(ReadError::Sink)?;
            written += want as u64;
        }
        if has_frag {
            let tail = (layout.file_size - written) as usize;
            let frag = self.fragment_block(layout.fragment)?;
            let start = layout.frag_offset as usize;
            let bytes = frag.get(start..start + tail).ok_or(ReadError::BadReference {
                table: "fragment block",
                reference: u64::from(layout.frag_offset),
            })?;
            out.write_all(bytes).map_err(ReadError::Sink)?;
            written += tail as u64;
        }
        if written != layout.file_size {
            return Err(ReadError::BadReference {
                table: "inode table (file size)",
                reference: file.inode_ref,
            });
        }
        Ok(written)
    }

    /// Reads a whole file into memory (for tests and small files).
    pub fn read_to_vec(&mut self, file: &Node) -> Result<Vec<u8>, ReadError> {
        let mut v = Vec::new();
        self.read_file(file, &mut v)?;
        Ok(v)
    }

    fn fragment_block(&mut self, index: u32) -> Result<Vec<u8>, ReadError> {
        if let Some((i, b)) = &self.frag_cache {
            if *i == index {
                return Ok(b.clone());
            }
        }
        let &(start, word) = self
            .fragments
            .get(index as usize)
            .ok_or(ReadError::BadReference { table: "fragment table", reference: u64::from(index) })?;
        let block = self.stored_block(Stored::Fragment, start, word)?;
        self.frag_cache = Some((index, block.clone()));
        Ok(block)
    }

    /// The bytes of the data or fragment block stored at `start` with size word `word` (not a
    /// sparse block): 1 to block-size stored bytes inside the image, decompressed unless the
    /// word marks them stored uncompressed.
    fn stored_block(&mut self, kind: Stored, start: u64, word: u32) -> Result<Vec<u8>, ReadError> {
        let (structure, field, what, table) = match kind {
            Stored::Data => ("file", "block size", "data block", "data"),
            Stored::Fragment => ("fragment entry", "size", "fragment block", "fragment"),
        };
        let stored = stored_len(word) as usize;
        let bs = self.sb.block_size.get() as usize;
        if stored == 0 || stored > bs || start.saturating_add(stored as u64) > self.sb.bytes_used.get() {
            return Err(ReadError::Field {
                structure,
                field,
                offset: start,
                expected: format!("1 to {bs} bytes inside the image"),
                found: stored.to_string(),
            });
        }
        let raw = self.read_at(start, stored, what)?;
        if word & DATA_UNCOMPRESSED != 0 {
            return Ok(raw);
        }
        let c = self.sb.compression.get();
        decompress_block(c, &raw, bs).map_err(|m| decompress_error(c, table, start, m))
    }
}

/// What a data or fragment block read by `Archive::stored_block` belongs to (for errors).
#[derive(Clone, Copy)]
enum Stored {
    Data,
    Fragment,
}

fn sb_field(field: &'static str, expected: impl Into<String>, found: impl ToString) -> ReadError {
    ReadError::Field {
        structure: "superblock",
        field,
        offset: 0,
        expected: expected.into(),
        found: found.to_string(),
    }
}

/// A placeholder until the real superblock is read.
fn zeroed_superblock() -> Superblock {
    use zerocopy::FromZeros;
    Superblock::new_zeroed()
}
