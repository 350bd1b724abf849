//! Error types of the writer and the reader.

use std::path::PathBuf;

use thiserror::Error;

/// Errors while building the input tree or writing an image.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A host path could not be examined or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A fifo, socket or device node: the writer stores only files, directories and symlinks.
    #[error("{path} is a {kind}; only regular files, directories and symlinks can go into a squashfs image")]
    UnsupportedType {
        /// The host path.
        path: PathBuf,
        /// "fifo", "socket", "block device", "character device" or "unknown file type".
        kind: &'static str,
    },
    /// A host file changed since it was scanned, or while it was read (its snapshot no longer
    /// matches: see [`isoforge_host::snapshot`]).
    #[error(transparent)]
    Snapshot(#[from] isoforge_host::snapshot::SnapshotError),
    /// A file's contents are not the size recorded in the input tree (the size comes from
    /// the contents, [`crate::FileData::size`], so only an inconsistent source reports it).
    #[error("{path}: the tree records {expected} bytes but the contents have {found}")]
    FileChanged {
        /// The host path.
        path: PathBuf,
        /// The size recorded in the tree.
        expected: u64,
        /// The number of bytes actually available.
        found: u64,
    },
    /// A file recorded as an entry of a scanned host directory ([`crate::FileData::Scanned`])
    /// in a directory whose entries were not scanned from one
    /// ([`crate::Entries::host_dir`] is `None`): the node was moved out of its scanned
    /// directory, so which host file it is is unknown.
    #[error("{name:?} is a scanned host file, but its directory records no host directory to read it from")]
    NoHostDir {
        /// The file's name, lossily decoded.
        name: String,
    },
    /// A name that squashfs cannot store (empty, longer than 256 bytes, `.`/`..`, contains `/` or NUL).
    #[error("invalid name {name:?} in directory {dir:?}: {why}")]
    BadName {
        /// The directory holding the name (image path).
        dir: String,
        /// The name, lossily decoded.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two closure entries with the same top-level name.
    #[error("duplicate top-level name {name:?}")]
    DuplicateName {
        /// The name, lossily decoded.
        name: String,
    },
    /// An option outside its allowed range.
    #[error("invalid option {option}: {why}")]
    BadOption {
        /// The option's name.
        option: &'static str,
        /// What is allowed.
        why: String,
    },
    /// A number that does not fit its on-disk field.
    #[error("{field} overflows: {value} does not fit")]
    Overflow {
        /// The structure and field.
        field: &'static str,
        /// The value that did not fit.
        value: u64,
    },
    /// A compressor reported an error.
    #[error("{compressor} compression failed: {message}")]
    Compress {
        /// The compressor's name.
        compressor: &'static str,
        /// Its message.
        message: String,
    },
    /// Writing the output failed.
    #[error("cannot write the image: {0}")]
    Output(#[source] std::io::Error),
    /// A host modification time that squashfs inodes cannot store, in a tree that keeps host
    /// times ([`crate::scan`], `keep_metadata` of [`crate::closure_tree`]).
    #[error(
        "{path}: modification time {mtime} is outside what squashfs inodes store: unsigned 32-bit \
         seconds, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z (0 to 4294967295)"
    )]
    TimeOutOfRange {
        /// The host path.
        path: PathBuf,
        /// Its modification time, seconds since 1970.
        mtime: i64,
    },
    /// The output file could not be created or committed ([`crate::write_to_path`]).
    #[error(transparent)]
    Target(#[from] isoforge_host::output::OutputError),
    /// Building the thread pool failed.
    #[error("cannot start {threads} compression threads: {message}")]
    ThreadPool {
        /// Requested threads.
        threads: usize,
        /// The pool builder's message.
        message: String,
    },
}

/// Errors while reading an image. Corrupt input yields one of these, never a panic.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading the underlying source failed (including a short read past its end).
    #[error("cannot read {what} at offset {offset}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// Byte offset relative to the start of the squashfs.
        offset: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A field holds a value the format does not allow.
    #[error("{structure}.{field} at offset {offset}: expected {expected}, found {found}")]
    Field {
        /// The structure (superblock, inode, directory header, ...).
        structure: &'static str,
        /// The field name.
        field: &'static str,
        /// Offset of the structure (image-relative for tables, or the uncompressed metadata
        /// position `block << 16 | offset` for metadata).
        offset: u64,
        /// What was allowed.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A block failed to decompress.
    #[error("{table} block at offset {offset}: {compressor} decompression failed: {message}")]
    Decompress {
        /// Which table or data area.
        table: &'static str,
        /// Byte offset of the block.
        offset: u64,
        /// The compressor.
        compressor: &'static str,
        /// The compressor's message.
        message: String,
    },
    /// A reference points outside its table.
    #[error("{table}: reference {reference:#x} is outside the table")]
    BadReference {
        /// Which table.
        table: &'static str,
        /// The reference (inode ref, table index, ...).
        reference: u64,
    },
    /// A limit that protects the reader from corrupt input was exceeded.
    #[error("{what} exceeds the reader's limit of {limit}")]
    Limit {
        /// What grew too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A path that does not exist in the image.
    #[error("no such path in the image: {0}")]
    NotFound(String),
    /// Writing extracted contents failed.
    #[error("cannot write extracted contents: {0}")]
    Sink(#[source] std::io::Error),
}
