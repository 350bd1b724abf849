//! The Nix store closure of a live image, and the `nix-path-registration` file that describes it.
//!
//! A NixOS live image carries its store in `/nix-store.squashfs`, with a `nix-path-registration`
//! file at the root that stage 2 loads with `nix-store --load-db`. This module
//!
//! - reads the list of store paths ([`Closure::load`]) from a plain list, an
//!   `exportReferencesGraph` file, a registration file or a closureInfo directory, detecting the
//!   format, validating every path and collapsing duplicates ([`input`]);
//! - serialises a store path as a NAR and hashes it, streaming ([`nar`]);
//! - finds references as Nix's scanner does ([`refscan`]);
//! - writes the registration in closureInfo's format ([`registration`]).
//!
//! Formats and sources are summarised in `docs/spec/nix.md`.
//!
//! ```no_run
//! use isoforge_core::closure::{registration, Closure, ClosureOptions, RegistrationOptions};
//! let closure = Closure::load("store-paths".as_ref(), &ClosureOptions::default())?;
//! closure.check_host()?;
//! let reg = registration(&closure, &RegistrationOptions::default())?;
//! std::fs::write("nix-path-registration", reg)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod base32;
pub mod hash;
pub mod input;
pub mod nar;
pub mod refscan;
pub mod registration;
pub mod store_path;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

pub use hash::Sha256;
pub use input::{Closure, ClosureOptions, InputFormat};
pub use registration::{
    path_infos, registration, write_registration, PathInfo, ReferenceMode, RegistrationOptions,
};
pub use store_path::{StorePath, DEFAULT_STORE_DIR};

/// What is wrong with one line of a closure input file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LineError {
    /// A path that does not start with `/`.
    #[error("{text:?} is a relative path; store paths are absolute (like /nix/store/<hash>-<name>)")]
    Relative {
        /// The line.
        text: String,
    },
    /// Text that is no path at all.
    #[error("{text:?} is not a store path")]
    NotAPath {
        /// The line.
        text: String,
    },
    /// An absolute path outside the store directory.
    #[error("{path} is not in the store {store_dir}")]
    NotInStore {
        /// The path.
        path: String,
        /// The store directory.
        store_dir: String,
    },
    /// A path below a store path: a closure lists store paths themselves.
    #[error("{path} is a path inside the store path {store_path}, not a store path")]
    InsideStorePath {
        /// The path.
        path: String,
        /// The store path it is in.
        store_path: String,
    },
    /// A base name that is not `<32 base-32 digits>-<valid name>`.
    #[error("invalid store path name {base:?}: {why}")]
    BadStorePath {
        /// The base name.
        base: String,
        /// What is wrong.
        why: String,
    },
    /// Bytes that are not UTF-8 (store paths are ASCII).
    #[error("the line is not UTF-8 text")]
    NotUtf8,
    /// A reference count (or NAR size) that is not a decimal number.
    #[error("expected {what}, found {found:?}")]
    Expected {
        /// What the format has here.
        what: &'static str,
        /// The line.
        found: String,
    },
    /// The file ends inside a block.
    #[error("the file ends where {what} was expected")]
    UnexpectedEnd {
        /// What the format has here.
        what: &'static str,
    },
    /// A path that appears twice with different references (or hashes).
    #[error("{path} was already described at line {first_line} with different {what}")]
    Conflicting {
        /// The store path.
        path: String,
        /// The line of the first description.
        first_line: u64,
        /// "references", "NAR hash" or "NAR size".
        what: &'static str,
    },
    /// A reference to a path that the input does not list: the input is not a closure.
    #[error("reference {reference} of {path} is not in the closure")]
    NotInClosure {
        /// The referring store path.
        path: String,
        /// The reference.
        reference: String,
    },
    /// A registration (closureInfo's, or one given apart) and the closure list different paths.
    #[error("{path} {why}")]
    Mismatch {
        /// The store path.
        path: String,
        /// "is in the registration but not in the closure", or the reverse.
        why: &'static str,
    },
}

/// Errors reading a closure, serialising its paths or writing a registration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClosureError {
    /// A line of an input file is wrong.
    #[error("{}:{line}: {error}", file.display())]
    Syntax {
        /// The input file.
        file: PathBuf,
        /// The line, from 1.
        line: u64,
        /// What is wrong.
        error: LineError,
    },
    /// A host file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A directory given as input that is not a closureInfo output.
    #[error("{}: not a closureInfo directory: {why}", dir.display())]
    NotClosureInfo {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        why: String,
    },
    /// A store path of the closure is not on the host.
    #[error("{}:{line}: {store_path} is not on the host (looked for {}): {source}", file.display(), host.display())]
    Missing {
        /// The input file that lists it.
        file: PathBuf,
        /// Its line there.
        line: u64,
        /// The store path.
        store_path: String,
        /// Where it should be on the host.
        host: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An invalid `store_dir` option.
    #[error("invalid store directory {dir:?}: {why}")]
    BadStoreDir {
        /// The option as given.
        dir: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A fifo, socket or device inside a store path: a NAR cannot hold it.
    #[error("{} is a {kind}; only regular files, directories and symlinks can go into a squashfs image", path.display())]
    UnsupportedType {
        /// The host path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A file that changed since it was scanned, or while it was serialised (see
    /// [`isoforge_host::snapshot`]).
    #[error(transparent)]
    Snapshot(#[from] isoforge_host::snapshot::SnapshotError),
    /// The NAR sink failed.
    #[error("writing the NAR of {}: {source}", path.display())]
    Write {
        /// The host path being serialised.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// [`ReferenceMode::FromInput`] for an input without references (a plain list).
    #[error("{}: a {format} gives no references; scan for them instead", file.display())]
    NoReferences {
        /// The input file.
        file: PathBuf,
        /// Its format.
        format: InputFormat,
    },
    /// A closure input that lists no store path (only blank lines, or nothing): almost
    /// always a mistake of the caller, such as a derivation that wrote no `store-paths`.
    #[error("{}: the closure is empty: the file lists no store paths", file.display())]
    Empty {
        /// The input file (`store-paths` of a closureInfo directory).
        file: PathBuf,
    },
    /// A registration with CRLF line ends that would go into the image verbatim.
    #[error(
        "{}:{line}: the registration has CRLF line ends; it is copied into the image as \
         nix-path-registration, whose reader (nix-store --load-db) needs LF line ends: convert it \
         (dos2unix) or leave it out to have it generated",
        file.display()
    )]
    CrlfRegistration {
        /// The registration file.
        file: PathBuf,
        /// The first line that ends in CRLF.
        line: u64,
    },
    /// A closure larger than the 2^32 paths the index type holds.
    #[error("{}: more than 4294967295 store paths", file.display())]
    TooManyPaths {
        /// The input file.
        file: PathBuf,
    },
}
