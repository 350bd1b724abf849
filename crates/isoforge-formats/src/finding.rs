//! What the readers and checks find wrong with an image, in one vocabulary (issue 15).
//!
//! Every reader (ISO 9660, MBR and GPT, the FAT and squashfs payloads) and every check of
//! `isoforge verify` reports a [`Finding`]: how bad it is, the structure and its field, the byte
//! offset, and the expected and found values. Readers that can meet unbounded numbers of them
//! collect them in a [`Problems`] list, which keeps a bounded number and counts the rest.
//!
//! Offsets are from the start of the image. A reader of a payload inside an image (the FAT EFI
//! image, the store squashfs) only knows offsets from the payload's start: the consumer, which
//! knows where the payload lies, turns them into image offsets with one [`Finding::shifted`]
//! and names the payload with [`Finding::within`].
//!
//! ```
//! use isoforge_formats::finding::{Finding, Severity};
//! let f = Finding::error("squashfs.superblock", ".bytes_used", Some(40), "at most 4096", 8192)
//!     .shifted(1 << 20)
//!     .within("/nix-store.squashfs");
//! assert_eq!(
//!     f.to_string(),
//!     "error: /nix-store.squashfs: squashfs.superblock.bytes_used at byte 1048616 (0x100028): \
//!      expected at most 4096, found 8192"
//! );
//! assert_eq!(f.severity, Severity::Error);
//! ```

use std::borrow::Cow;
use std::fmt;

/// Most findings a reader keeps by default ([`Problems`]); later ones are counted, not stored.
pub const MAX_FINDINGS: usize = 10_000;

/// How bad a finding is. Ordered worst first (`verify` lists errors first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The image is inconsistent.
    Error,
    /// The image works, but a checker would complain (lost FAT clusters), or a reader limit
    /// stopped the reading.
    Warning,
    /// Worth knowing, not a problem (the nixos layout's intended GPT overlap).
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// What kind of inconsistency a [`Finding`] is, when its reader classifies it.
///
/// The ISO 9660 reader gives every finding a kind (most kinds are its own); the other readers
/// and checks leave [`Finding::kind`] `None`. [`ProblemKind::LimitExceeded`] is a
/// [`Severity::Warning`], every other kind an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The little- and big-endian copies of a both-byte-order number differ (ECMA-119 7.2.3,
    /// 7.3.3); the little-endian copy is used.
    BothEndianMismatch,
    /// A volume descriptor with a wrong identifier, version, or missing terminator.
    BadDescriptor,
    /// An extent (file, directory, path table, catalog, continuation) lies outside the image.
    ExtentOutsideImage,
    /// A directory record crosses a logical block boundary (ECMA-119 6.8.1.1).
    RecordCrossesBlock,
    /// A directory record length below 34 or past the end of the directory.
    BadRecordLength,
    /// A directory record whose contents are inconsistent (identifier, "."/"..", flags, names).
    BadRecord,
    /// A directory extent already visited (a loop or a hard-linked directory).
    DirectoryLoop,
    /// A SUSP continuation chain that comes back to an area it already read.
    ContinuationLoop,
    /// A SUSP continuation area outside the image or its block.
    ContinuationOutside,
    /// A System Use entry with an invalid length, or a SUSP/Rock Ridge inconsistency.
    BadSusp,
    /// A path table that cannot be decoded or is out of order.
    BadPathTable,
    /// Path tables that disagree with each other or with the directory tree.
    PathTableMismatch,
    /// A reader limit was reached; what lies beyond it was not read.
    LimitExceeded,
    /// An El Torito boot record or boot catalog problem.
    BadCatalog,
    /// A boot-info-table field that does not match the image.
    BootInfoTable,
    /// The image is shorter than its volume space size.
    ImageTruncated,
}

impl ProblemKind {
    /// How bad a finding of this kind is: a reached limit is a warning, the rest errors.
    pub fn severity(self) -> Severity {
        match self {
            ProblemKind::LimitExceeded => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// One thing found wrong (or worth a note) in an image: the structure and field, where, and
/// what should be there against what is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The reader's classification, when it makes one (the ISO 9660 reader does).
    pub kind: Option<ProblemKind>,
    /// The structure, with its path when it has one (`directory record /boot/grub`,
    /// `GPT primary header`, `FAT entry /EFI`).
    pub structure: String,
    /// The field, with the specification's name (`header_crc32`, `BPB_BytsPerSec`); empty when
    /// the finding is about the whole structure. A field starting with `.` is a member of a
    /// structure named with dots, as the FAT and squashfs readers and the byte map name them
    /// (`squashfs.superblock` + `.bytes_used`), and is written without a space.
    pub field: Cow<'static, str>,
    /// Byte offset of the field from the start of the image, when known (from the start of
    /// the payload until [`Finding::shifted`]).
    pub offset: Option<u64>,
    /// What the field should hold.
    pub expected: String,
    /// What it holds.
    pub found: String,
}

impl Finding {
    /// A finding without a kind.
    pub fn new(
        severity: Severity,
        structure: impl Into<String>,
        field: impl Into<Cow<'static, str>>,
        offset: Option<u64>,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Finding {
        Finding {
            severity,
            kind: None,
            structure: structure.into(),
            field: field.into(),
            offset,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// [`Finding::new`] with [`Severity::Error`].
    pub fn error(
        structure: impl Into<String>,
        field: impl Into<Cow<'static, str>>,
        offset: Option<u64>,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Finding {
        Finding::new(Severity::Error, structure, field, offset, expected, found)
    }

    /// The finding classified as `kind`.
    pub fn with_kind(self, kind: ProblemKind) -> Finding {
        Finding { kind: Some(kind), ..self }
    }

    /// The finding of a payload's reader with its offset moved from the payload's start to
    /// the image's: `base` is where the payload starts in the image.
    pub fn shifted(self, base: u64) -> Finding {
        Finding { offset: self.offset.map(|o| o.saturating_add(base)), ..self }
    }

    /// The finding named inside the payload `name` (`/boot/efi.img: FAT BPB_BytsPerSec`).
    pub fn within(self, name: &str) -> Finding {
        Finding { structure: format!("{name}: {}", self.structure), ..self }
    }

    /// The structure and the field: `GPT primary header header_crc32`,
    /// `squashfs.superblock.bytes_used`, or the structure alone when there is no field.
    pub fn location(&self) -> String {
        let sep = if self.field.is_empty() || self.field.starts_with('.') { "" } else { " " };
        format!("{}{sep}{}", self.structure, self.field)
    }

    /// Whether this is a problem (an error or a warning), not a note.
    pub fn is_problem(&self) -> bool {
        self.severity != Severity::Info
    }

    /// The finding as `inspect` lists it among what it read (text `note:` lines and the JSON
    /// `mismatches`): no severity, the field named as such,
    /// `GPT entry 1 (ISOHybrid) field starting_lba at byte 1056: expected …, found …`.
    pub fn note(&self) -> String {
        let mut s = self.structure.clone();
        if !self.field.is_empty() {
            s.push_str(" field ");
            s.push_str(&self.field);
        }
        if let Some(o) = self.offset {
            s.push_str(&format!(" at byte {o}"));
        }
        s.push_str(&format!(": expected {}, found {}", self.expected, self.found));
        s
    }
}

/// The form `isoforge verify` prints:
/// `error: GPT primary header header_crc32 at byte 528 (0x210): expected …, found …`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.location())?;
        if let Some(o) = self.offset {
            write!(f, " at byte {o} ({o:#x})")?;
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

/// A bounded list of findings: keeps at most `max`, counts the rest, and ends with one
/// [`ProblemKind::LimitExceeded`] warning saying how many were not kept. Corrupt images can
/// hold a problem per byte; this keeps a reader's memory bounded whatever the image says.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    list: Vec<Finding>,
    dropped: u64,
    max: usize,
}

impl Problems {
    /// An empty list keeping at most `max` findings.
    pub fn new(max: usize) -> Problems {
        Problems { list: Vec::new(), dropped: 0, max }
    }

    /// Keeps `f`, or counts it when the list is full.
    pub fn add(&mut self, f: Finding) {
        if self.list.len() < self.max {
            self.list.push(f);
        } else {
            self.dropped += 1;
        }
    }

    /// The kept findings, with one [`ProblemKind::LimitExceeded`] warning when some were not.
    pub fn finish(mut self) -> Vec<Finding> {
        if self.dropped > 0 {
            let note = Finding::new(
                Severity::Warning,
                "problem list",
                "max_problems",
                None,
                format!("at most {} problems", self.max),
                format!("{} more, not listed", self.dropped),
            );
            self.list.push(note.with_kind(ProblemKind::LimitExceeded));
        }
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_display_for_every_reader() {
        let gpt = Finding::error("GPT primary header", "header_crc32", Some(528), "0x1", "0x2");
        assert_eq!(
            gpt.to_string(),
            "error: GPT primary header header_crc32 at byte 528 (0x210): expected 0x1, found 0x2"
        );
        assert_eq!(gpt.note(), "GPT primary header field header_crc32 at byte 528: expected 0x1, found 0x2");
        let fat =
            Finding::new(Severity::Warning, "FAT directory /EFI", "", None, "a", "b").within("/efi.img");
        assert_eq!(fat.to_string(), "warning: /efi.img: FAT directory /EFI: expected a, found b");
        assert_eq!(fat.shifted(10).offset, None);
        let sq = Finding::error("squashfs.superblock", ".inodes", Some(4), 3, 2).shifted(100);
        assert_eq!((sq.location().as_str(), sq.offset), ("squashfs.superblock.inodes", Some(104)));
        // A path ending in a dot is still followed by a space.
        let iso = Finding::error("directory record /a.", "extent_lba", None, 1, 2);
        assert_eq!(iso.location(), "directory record /a. extent_lba");
    }

    #[test]
    fn the_list_is_bounded() {
        let mut p = Problems::new(2);
        for i in 0..5 {
            p.add(Finding::error("s", "f", Some(i), 0, i));
        }
        let list = p.finish();
        assert_eq!(list.len(), 3);
        let last = &list[2];
        assert_eq!((last.kind, last.severity), (Some(ProblemKind::LimitExceeded), Severity::Warning));
        assert_eq!(last.found, "3 more, not listed");
        assert!(Problems::new(0).finish().is_empty());
    }
}
