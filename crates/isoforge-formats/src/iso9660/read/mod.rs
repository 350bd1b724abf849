//! The ISO 9660 reader: volume descriptors, both directory hierarchies (ISO 9660 with Rock
//! Ridge, and Joliet), path tables, El Torito, and the consistency checks `verify` is built on.
//!
//! Images come from anywhere (isoforge, xorriso, genisoimage, hadris-iso) and may be huge or
//! corrupt, so the reader:
//!
//! - reads through [`ReadAt`] a few blocks at a time, never the whole image;
//! - bounds every allocation and loop by [`Limits`] (directory size, entries, depth, SUSP
//!   continuation chains, name bytes, path table size), and stops directory and continuation
//!   loops with visited sets;
//! - never panics on bad bytes: what does not match the specification becomes a [`Finding`]
//!   naming the structure, field, byte offset, and expected vs found value, and reading goes
//!   on with the little-endian copy or without the broken part. Only I/O failures and an image
//!   without a primary volume descriptor are errors ([`ReadError`]).
//!
//! ```no_run
//! use isoforge_formats::iso9660::read::{Hierarchy, IsoImage};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = std::fs::File::open("nixos.iso")?;
//! let image = IsoImage::open(&file)?;
//! let listing = image.walk(Hierarchy::Primary)?;
//! for e in &listing.entries {
//!     println!("{} {}", e.path_lossy(), e.size);
//! }
//! let report = image.check()?;
//! for p in &report.problems {
//!     eprintln!("{p}");
//! }
//! # Ok(()) }
//! ```

mod boot;
mod path_tables;
mod walk;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io::Write;

use thiserror::Error;

use super::directory_record::{decode_record, DirDateTime, DirectoryRecordHeader};
use super::volume_descriptor::{
    BootRecord, DecDateTime, VolumeDescriptor, EL_TORITO_ID, STANDARD_ID, TYPE_BOOT_RECORD, TYPE_PRIMARY,
    TYPE_SUPPLEMENTARY, TYPE_TERMINATOR,
};
use crate::endian::{field_offset, Both16, Both32};
use crate::finding::{Finding, Problems};
use crate::read_at::{Located, ReadAt, ReadAtError, ReadTyped};
use crate::units::{Lba2048, ISO_BLOCK};

pub use crate::finding::ProblemKind;
pub use boot::{BootInfoCheck, ElTorito, FieldCheck};
pub use path_tables::{PathTableEntry, PathTables};
pub use walk::{Entry, EntryKind, Listing, RelocatedRecord, SuspInfo};

/// Block of the first volume descriptor (ECMA-119 6.2.1: after the 16-block system area).
pub const FIRST_DESCRIPTOR_LBA: u32 = 16;

/// Bounds on what the reader allocates and how long it loops, whatever the image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most volume descriptors read before giving up on finding the terminator.
    pub max_descriptors: u32,
    /// Largest directory extent read, in bytes.
    pub max_directory_bytes: u64,
    /// Most entries in one hierarchy.
    pub max_entries: usize,
    /// Deepest directory level descended into (the root is level 0).
    pub max_depth: usize,
    /// Most continuation areas followed for one directory record.
    pub max_ce_chain: usize,
    /// Largest single continuation area, in bytes.
    pub max_ce_area: u32,
    /// Most bytes of continuation areas read in one walk.
    pub max_ce_bytes_total: u64,
    /// Most bytes of full paths kept in one listing.
    pub max_name_bytes_total: u64,
    /// Largest path table read, in bytes.
    pub max_path_table_bytes: u32,
    /// Largest boot catalog read, in bytes.
    pub max_catalog_bytes: u64,
    /// Most problems kept per list; later ones are counted, not stored.
    pub max_problems: usize,
}

impl Default for Limits {
    /// Generous for any real image (a NixOS installer has ~100,000 entries, depth < 30)
    /// while keeping a corrupt one within a few GiB of memory and a bounded time.
    fn default() -> Self {
        Limits {
            max_descriptors: 64,
            max_directory_bytes: 64 << 20,
            max_entries: 4_000_000,
            max_depth: 1000,
            max_ce_chain: 64,
            max_ce_area: 64 << 10,
            max_ce_bytes_total: 256 << 20,
            max_name_bytes_total: 1 << 30,
            max_path_table_bytes: 64 << 20,
            max_catalog_bytes: 64 << 10,
            max_problems: 10_000,
        }
    }
}

/// Errors that stop reading: the source failed, or it is not an ISO 9660 image at all.
/// Everything else found wrong in an image is a [`Finding`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading the source failed.
    #[error(transparent)]
    Io(#[from] ReadAtError),
    /// Block 16 does not hold a volume descriptor, or no primary volume descriptor was found.
    #[error("not an ISO 9660 image: {why}")]
    NotIso {
        /// What was found instead.
        why: String,
    },
    /// A Joliet listing was asked for but the image has no Joliet descriptor.
    #[error("the image has no Joliet supplementary volume descriptor")]
    NoJoliet,
    /// A file extent to read lies (partly) outside the image.
    #[error("{path}: extent at block {lba} ({len} bytes) lies outside the image ({image_len} bytes)")]
    ExtentOutsideImage {
        /// The file's path.
        path: String,
        /// First block of the extent.
        lba: u32,
        /// Length of the extent.
        len: u32,
        /// Length of the image.
        image_len: u64,
    },
    /// Writing a file's contents to the caller's sink failed.
    #[error("cannot write the contents of {path}: {source}")]
    Write {
        /// The file's path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The ISO 9660 reader's ways of adding to a [`Problems`] list: every finding gets a kind, and
/// its severity from the kind.
impl Problems {
    pub(crate) fn push(
        &mut self,
        kind: ProblemKind,
        structure: impl Into<String>,
        field: &'static str,
        offset: Option<u64>,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) {
        self.add(Finding::new(kind.severity(), structure, field, offset, expected, found).with_kind(kind));
    }

    /// Checks a both-byte-order pair, reporting a mismatch; returns the little-endian copy.
    pub(crate) fn both32(&mut self, v: Both32, structure: &str, field: &'static str, offset: u64) -> u32 {
        self.both(v.get(), structure, field, offset)
    }

    /// [`Problems::both32`] for 16-bit pairs.
    pub(crate) fn both16(&mut self, v: Both16, structure: &str, field: &'static str, offset: u64) -> u16 {
        self.both(v.get(), structure, field, offset)
    }

    /// The value of a both-byte-order pair (`Err((le, be))` when the copies differ, as
    /// [`Both32::get`] gives it), reporting a mismatch; the little-endian copy wins.
    fn both<T: Copy + fmt::Display>(
        &mut self,
        v: Result<T, (T, T)>,
        structure: &str,
        field: &'static str,
        offset: u64,
    ) -> T {
        v.unwrap_or_else(|(le, be)| {
            self.push(
                ProblemKind::BothEndianMismatch,
                structure,
                field,
                Some(offset),
                format!("big-endian copy {le} (equal to the little-endian one)"),
                format!("little-endian {le}, big-endian {be}"),
            );
            le
        })
    }
}

/// A date and time as ISO 9660 stores them, with its offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Full year.
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59 (60 for a leap second).
    pub second: u8,
    /// Hundredths of a second (volume descriptor dates only; 0 in directory records).
    pub hundredths: u8,
    /// Offset from UTC in 15-minute intervals, −48 (west) to +52 (east).
    pub gmt_offset: i8,
}

impl DateTime {
    /// Seconds since 1970-01-01T00:00:00Z (hundredths dropped, the UTC offset applied).
    pub fn unix_seconds(&self) -> i64 {
        // Days from civil (Howard Hinnant's algorithm, public domain description).
        let (y, m, d) = (i64::from(self.year), i64::from(self.month), i64::from(self.day));
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second)
            - i64::from(self.gmt_offset) * 15 * 60
    }

    fn plausible(&self) -> bool {
        (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second <= 60
            && self.hundredths < 100
            && (-48..=52).contains(&self.gmt_offset)
    }
}

/// Parses a volume descriptor "dec-datetime" (ECMA-119 8.4.26.1): `None` when "not specified"
/// (all digits zero) or not a valid date.
pub fn parse_dec_datetime(raw: &DecDateTime) -> Option<DateTime> {
    // A field's digits as a number; `None` for anything but ASCII digits.
    fn num(digits: &[u8]) -> Option<u16> {
        digits.iter().try_fold(0u16, |n, &c| c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0')))
    }
    // Two digits always fit a byte.
    let small = |digits: &[u8; 2]| num(digits).and_then(|n| u8::try_from(n).ok());
    let d = DateTime {
        year: num(&raw.year)?,
        month: small(&raw.month)?,
        day: small(&raw.day)?,
        hour: small(&raw.hour)?,
        minute: small(&raw.minute)?,
        second: small(&raw.second)?,
        hundredths: small(&raw.hundredths)?,
        gmt_offset: raw.gmt_offset,
    };
    (d.year != 0 && d.plausible()).then_some(d)
}

/// Parses a directory record "recording date and time" (ECMA-119 9.1.5): `None` when all
/// zero ("not specified") or not a valid date.
pub fn parse_dir_datetime(raw: &DirDateTime) -> Option<DateTime> {
    if *raw == DirDateTime::default() {
        return None;
    }
    let d = DateTime {
        year: 1900 + u16::from(raw.years_since_1900),
        month: raw.month,
        day: raw.day,
        hour: raw.hour,
        minute: raw.minute,
        second: raw.second,
        hundredths: 0,
        gmt_offset: raw.gmt_offset,
    };
    d.plausible().then_some(d)
}

/// A volume descriptor date: the stored fields and their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeDate {
    /// The 17 bytes as stored.
    pub raw: DecDateTime,
    /// The date, or `None` when "not specified" or invalid.
    pub parsed: Option<DateTime>,
}

impl VolumeDate {
    fn new(raw: DecDateTime) -> VolumeDate {
        VolumeDate { raw, parsed: parse_dec_datetime(&raw) }
    }
}

/// The root directory record of a volume descriptor (BP 157–190).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRecord {
    /// Extent of the root directory.
    pub extent_lba: u32,
    /// Size of the root directory in bytes.
    pub data_length: u32,
    /// File flags (0x02 expected).
    pub flags: u8,
    /// Recording date, as stored.
    pub recording_date: DirDateTime,
}

/// Which Joliet level an SVD's escape sequence announces (Joliet specification 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JolietLevel {
    /// `%/@`.
    Level1,
    /// `%/C`.
    Level2,
    /// `%/E`.
    Level3,
}

/// A primary or Joliet supplementary volume descriptor, decoded (ECMA-119 8.4, 8.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSummary {
    /// Block of the descriptor.
    pub descriptor_lba: u32,
    /// Descriptor type (1 primary, 2 supplementary).
    pub descriptor_type: u8,
    /// The Joliet level, for a Joliet SVD.
    pub joliet: Option<JolietLevel>,
    /// System identifier, trailing spaces trimmed.
    pub system_id: String,
    /// Volume identifier, trailing spaces trimmed.
    pub volume_id: String,
    /// Volume set identifier, trimmed.
    pub volume_set_id: String,
    /// Publisher identifier, trimmed.
    pub publisher_id: String,
    /// Data preparer identifier, trimmed.
    pub preparer_id: String,
    /// Application identifier, trimmed.
    pub application_id: String,
    /// Volume space size in logical blocks.
    pub volume_space_size: u32,
    /// Logical block size in bytes (2048 expected; the reader assumes 2048).
    pub block_size: u16,
    /// Path table size in bytes.
    pub path_table_size: u32,
    /// Block of the type L path table.
    pub l_path_table: u32,
    /// Block of the optional type L path table (0: none).
    pub optional_l_path_table: u32,
    /// Block of the type M path table.
    pub m_path_table: u32,
    /// Block of the optional type M path table (0: none).
    pub optional_m_path_table: u32,
    /// The root directory record.
    pub root: RootRecord,
    /// Volume creation date.
    pub creation_date: VolumeDate,
    /// Volume modification date.
    pub modification_date: VolumeDate,
    /// Volume expiration date.
    pub expiration_date: VolumeDate,
    /// Volume effective date.
    pub effective_date: VolumeDate,
    /// File structure version (1 expected).
    pub file_structure_version: u8,
}

/// One descriptor of the volume descriptor set, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorInfo {
    /// Its block.
    pub lba: u32,
    /// Its type byte.
    pub descriptor_type: u8,
    /// What the reader made of it: "primary", "joliet", "supplementary", "el torito",
    /// "boot record", "partition", "terminator", "unknown".
    pub role: &'static str,
}

/// The El Torito boot record volume descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRecordInfo {
    /// Its block.
    pub lba: u32,
    /// Block of the boot catalog.
    pub catalog_lba: u32,
}

/// A hierarchy of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hierarchy {
    /// The ISO 9660 tree (with Rock Ridge when present).
    Primary,
    /// The Joliet tree.
    Joliet,
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hierarchy::Primary => "ISO 9660",
            Hierarchy::Joliet => "Joliet",
        })
    }
}

/// Everything [`IsoImage::check`] reads and every problem found on the way.
#[derive(Debug, Clone)]
pub struct Report {
    /// The ISO 9660 hierarchy.
    pub primary: Listing,
    /// The Joliet hierarchy, when present.
    pub joliet: Option<Listing>,
    /// Path tables of each hierarchy.
    pub path_tables: Vec<PathTables>,
    /// The El Torito catalog, when present.
    pub el_torito: Option<ElTorito>,
    /// Every problem: descriptors, both walks, path tables and their cross-checks, El Torito,
    /// and the comparison of the Joliet files with the ISO 9660 files.
    pub problems: Vec<Finding>,
}

/// An opened ISO 9660 image: its volume descriptor set, decoded. The hierarchies, path tables
/// and boot catalog are read on demand.
pub struct IsoImage<'a> {
    src: &'a dyn ReadAt,
    limits: Limits,
    descriptors: Vec<DescriptorInfo>,
    primary: VolumeSummary,
    primary_descriptor: Located<VolumeDescriptor>,
    joliet: Option<VolumeSummary>,
    joliet_descriptor: Option<Located<VolumeDescriptor>>,
    boot_record: Option<BootRecordInfo>,
    problems: Vec<Finding>,
}

impl fmt::Debug for IsoImage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsoImage")
            .field("len", &self.src.len())
            .field("descriptors", &self.descriptors)
            .field("primary", &self.primary)
            .field("joliet", &self.joliet)
            .field("boot_record", &self.boot_record)
            .finish_non_exhaustive()
    }
}

/// Decodes the space-padded a-/d-character identifier `raw`.
fn trimmed(raw: &[u8]) -> String {
    let end = raw.iter().rposition(|&b| b != b' ' && b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Decodes a UCS-2 big-endian identifier, trailing spaces and NULs trimmed.
pub fn ucs2(raw: &[u8]) -> String {
    let units = raw.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let s: String = char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
    s.trim_end_matches([' ', '\0']).to_string()
}

impl<'a> IsoImage<'a> {
    /// Opens an image with the default [`Limits`].
    pub fn open(src: &'a dyn ReadAt) -> Result<IsoImage<'a>, ReadError> {
        IsoImage::open_with(src, Limits::default())
    }

    /// Reads the volume descriptor set from block 16 up to the terminator (at most
    /// `limits.max_descriptors` blocks) and keeps the primary, Joliet and El Torito descriptors.
    pub fn open_with(src: &'a dyn ReadAt, limits: Limits) -> Result<IsoImage<'a>, ReadError> {
        let mut problems = Problems::new(limits.max_problems);
        let mut descriptors = Vec::new();
        let mut primary: Option<(VolumeSummary, Located<VolumeDescriptor>)> = None;
        let mut joliet: Option<(VolumeSummary, Located<VolumeDescriptor>)> = None;
        let mut boot_record = None;
        let mut terminated = false;
        for i in 0..limits.max_descriptors {
            let lba = FIRST_DESCRIPTOR_LBA.saturating_add(i);
            let offset = Lba2048::new(lba).byte_offset();
            if offset + ISO_BLOCK > src.len() {
                if primary.is_none() {
                    return Err(ReadError::NotIso {
                        why: format!(
                            "the image is {} bytes, too short for a volume descriptor at block {lba}",
                            src.len()
                        ),
                    });
                }
                problems.push(
                    ProblemKind::BadDescriptor,
                    "volume descriptor set",
                    "terminator",
                    Some(offset),
                    "a set terminator (type 255)",
                    "the end of the image",
                );
                terminated = true;
                break;
            }
            // Every descriptor is one block that starts with the same 7 bytes (ECMA-119 8.1):
            // read as a primary/supplementary descriptor, its header fields are those bytes.
            let head = src.read_located::<VolumeDescriptor>(offset, "volume descriptor")?;
            let ty = head.descriptor_type;
            if head.standard_id != STANDARD_ID {
                if primary.is_none() {
                    return Err(ReadError::NotIso {
                        why: format!(
                            "block {lba} has standard identifier {:?}, not \"CD001\"",
                            String::from_utf8_lossy(&head.standard_id)
                        ),
                    });
                }
                problems.push(
                    ProblemKind::BadDescriptor,
                    format!("volume descriptor at block {lba}"),
                    "standard_id",
                    Some(offset + field_offset!(VolumeDescriptor, standard_id)),
                    "\"CD001\" (or a set terminator before this block)",
                    format!("{:?}", String::from_utf8_lossy(&head.standard_id)),
                );
                terminated = true;
                break;
            }
            if head.version != 1 {
                problems.push(
                    ProblemKind::BadDescriptor,
                    format!("volume descriptor at block {lba}"),
                    "version",
                    Some(offset + field_offset!(VolumeDescriptor, version)),
                    1,
                    head.version,
                );
            }
            let role = match ty {
                TYPE_TERMINATOR => "terminator",
                TYPE_BOOT_RECORD => {
                    let br = src.read_located::<BootRecord>(offset, "boot record")?;
                    if br.boot_system_id.starts_with(EL_TORITO_ID) {
                        if boot_record.is_none() {
                            boot_record = Some(BootRecordInfo { lba, catalog_lba: br.catalog_lba.get() });
                        }
                        "el torito"
                    } else {
                        "boot record"
                    }
                }
                TYPE_PRIMARY | TYPE_SUPPLEMENTARY => {
                    let vd = head;
                    let level = match &vd.escape_sequences[..3] {
                        b"%/@" => Some(JolietLevel::Level1),
                        b"%/C" => Some(JolietLevel::Level2),
                        b"%/E" => Some(JolietLevel::Level3),
                        _ => None,
                    };
                    if ty == TYPE_PRIMARY {
                        if primary.is_none() {
                            primary = Some((summary(&vd, lba, None, &mut problems), vd));
                        } else {
                            problems.push(
                                ProblemKind::BadDescriptor,
                                format!("volume descriptor at block {lba}"),
                                "descriptor_type",
                                Some(offset),
                                "one primary volume descriptor",
                                "a second one (ignored)",
                            );
                        }
                        "primary"
                    } else if level.is_some() && joliet.is_none() {
                        joliet = Some((summary(&vd, lba, level, &mut problems), vd));
                        "joliet"
                    } else {
                        "supplementary"
                    }
                }
                3 => "partition",
                _ => "unknown",
            };
            descriptors.push(DescriptorInfo { lba, descriptor_type: ty, role });
            if ty == TYPE_TERMINATOR {
                terminated = true;
                break;
            }
        }
        if !terminated {
            problems.push(
                ProblemKind::LimitExceeded,
                "volume descriptor set",
                "terminator",
                None,
                format!("a set terminator within {} descriptors", limits.max_descriptors),
                "none",
            );
        }
        let (primary, primary_descriptor) = primary.ok_or_else(|| ReadError::NotIso {
            why: "the volume descriptor set has no primary volume descriptor".into(),
        })?;
        if let Some((j, jd)) = &joliet {
            if j.volume_space_size != primary.volume_space_size {
                problems.push(
                    ProblemKind::BadDescriptor,
                    "Joliet supplementary volume descriptor",
                    "volume_space_size",
                    Some(jd.at(field_offset!(VolumeDescriptor, volume_space_size))),
                    format!("{} blocks, as the primary volume descriptor", primary.volume_space_size),
                    format!("{} blocks", j.volume_space_size),
                );
            }
        }
        let image_blocks = src.len() / ISO_BLOCK;
        if u64::from(primary.volume_space_size) > image_blocks {
            problems.push(
                ProblemKind::ImageTruncated,
                "primary volume descriptor",
                "volume_space_size",
                Some(primary_descriptor.at(field_offset!(VolumeDescriptor, volume_space_size))),
                format!("at most the image's {image_blocks} blocks"),
                format!("{} blocks", primary.volume_space_size),
            );
        }
        let (joliet, joliet_descriptor) = joliet.unzip();
        Ok(IsoImage {
            src,
            limits,
            descriptors,
            primary,
            primary_descriptor,
            joliet,
            joliet_descriptor,
            boot_record,
            problems: problems.finish(),
        })
    }

    /// The primary volume descriptor.
    pub fn pvd(&self) -> &VolumeSummary {
        &self.primary
    }

    /// The primary volume descriptor as stored, with its byte offset.
    pub fn pvd_descriptor(&self) -> &Located<VolumeDescriptor> {
        &self.primary_descriptor
    }

    /// The Joliet supplementary volume descriptor, if any.
    pub fn joliet(&self) -> Option<&VolumeSummary> {
        self.joliet.as_ref()
    }

    /// The Joliet supplementary volume descriptor as stored, with its byte offset.
    pub fn joliet_descriptor(&self) -> Option<&Located<VolumeDescriptor>> {
        self.joliet_descriptor.as_ref()
    }

    /// The El Torito boot record, if any.
    pub fn boot_record(&self) -> Option<&BootRecordInfo> {
        self.boot_record.as_ref()
    }

    /// Every descriptor of the set, terminator included, in block order.
    pub fn descriptors(&self) -> &[DescriptorInfo] {
        &self.descriptors
    }

    /// Problems found in the volume descriptor set.
    pub fn problems(&self) -> &[Finding] {
        &self.problems
    }

    /// The limits this image was opened with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Length of the image in bytes.
    pub fn len(&self) -> u64 {
        self.src.len()
    }

    /// Whether the image is empty (never true for an opened image).
    pub fn is_empty(&self) -> bool {
        self.src.len() == 0
    }

    fn volume(&self, h: Hierarchy) -> Result<&VolumeSummary, ReadError> {
        match h {
            Hierarchy::Primary => Ok(&self.primary),
            Hierarchy::Joliet => self.joliet.as_ref().ok_or(ReadError::NoJoliet),
        }
    }

    /// Whether `len` bytes at `offset` lie inside the image.
    fn inside(&self, offset: u64, len: u64) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.src.len())
    }

    /// Reads `len` bytes at `offset` (the caller checked the bounds and the size limit).
    fn read_vec(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; len];
        self.src.read_into(offset, &mut v, what)?;
        Ok(v)
    }

    /// Streams the contents of a file entry into `out` through a 1 MiB buffer; returns the
    /// number of bytes written. Fails when an extent lies outside the image.
    pub fn read_file(&self, entry: &Entry, out: &mut dyn Write) -> Result<u64, ReadError> {
        let mut buf = vec![0u8; (1 << 20).min(usize::try_from(entry.size).unwrap_or(usize::MAX)).max(1)];
        let mut written = 0u64;
        for &(lba, len) in &entry.extents {
            let start = Lba2048::new(lba).byte_offset();
            if len > 0 && !self.inside(start, u64::from(len)) {
                return Err(ReadError::ExtentOutsideImage {
                    path: entry.path_lossy(),
                    lba,
                    len,
                    image_len: self.src.len(),
                });
            }
            let mut done = 0u64;
            while done < u64::from(len) {
                let n = (u64::from(len) - done).min(buf.len() as u64) as usize;
                self.src.read_into(start + done, &mut buf[..n], "file extent")?;
                out.write_all(&buf[..n])
                    .map_err(|source| ReadError::Write { path: entry.path_lossy(), source })?;
                done += n as u64;
            }
            written += u64::from(len);
        }
        Ok(written)
    }

    /// Reads everything: both hierarchies, their path tables (cross-checked against the
    /// trees), the El Torito catalog and boot-info-table, and compares the Joliet files with
    /// the ISO 9660 ones (same extents and sizes). All problems are gathered in the report.
    pub fn check(&self) -> Result<Report, ReadError> {
        let mut problems = self.problems.clone();
        let primary = self.walk(Hierarchy::Primary)?;
        problems.extend(primary.problems.iter().cloned());
        let joliet = match self.joliet {
            Some(_) => Some(self.walk(Hierarchy::Joliet)?),
            None => None,
        };
        if let Some(j) = &joliet {
            problems.extend(j.problems.iter().cloned());
        }
        let mut tables = Vec::new();
        for listing in std::iter::once(&primary).chain(joliet.as_ref()) {
            let t = self.path_tables(listing.hierarchy)?;
            problems.extend(t.problems.iter().cloned());
            problems.extend(t.cross_check(listing, self.limits.max_problems));
            tables.push(t);
        }
        if let Some(j) = &joliet {
            problems.extend(compare_hierarchies(&primary, j, self.limits.max_problems));
        }
        let el_torito = self.el_torito(&primary)?;
        if let Some(e) = &el_torito {
            problems.extend(e.problems.iter().cloned());
        }
        Ok(Report { primary, joliet, path_tables: tables, el_torito, problems })
    }
}

/// Every Joliet file must be an ISO 9660 file: same extents and size (both trees share data).
fn compare_hierarchies(primary: &Listing, joliet: &Listing, max: usize) -> Vec<Finding> {
    use std::collections::BTreeMap;
    let mut problems = Problems::new(max);
    let by_extent: BTreeMap<&[(u32, u32)], &Entry> = primary
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File && e.size > 0)
        .map(|e| (e.extents.as_slice(), e))
        .collect();
    for j in joliet.entries.iter().filter(|e| e.kind == EntryKind::File && e.size > 0) {
        if !by_extent.contains_key(j.extents.as_slice()) {
            problems.push(
                ProblemKind::BadRecord,
                format!("Joliet directory record {}", j.path_lossy()),
                "extent_lba",
                Some(j.record_offset + field_offset!(DirectoryRecordHeader, extent_lba)),
                "the extents of an ISO 9660 file",
                format!("{:?}, which no ISO 9660 file has", j.extents),
            );
        }
    }
    problems.finish()
}

/// Offset of the root directory record in a volume descriptor.
const ROOT_RECORD: u64 = field_offset!(VolumeDescriptor, root_directory_record);

fn summary(
    vd: &Located<VolumeDescriptor>,
    lba: u32,
    joliet: Option<JolietLevel>,
    p: &mut Problems,
) -> VolumeSummary {
    let name =
        if joliet.is_some() { "Joliet supplementary volume descriptor" } else { "primary volume descriptor" };
    let text = |raw: &[u8]| if joliet.is_some() { ucs2(raw) } else { trimmed(raw) };
    let volume_space_size = p.both32(
        vd.volume_space_size,
        name,
        "volume_space_size",
        vd.at(field_offset!(VolumeDescriptor, volume_space_size)),
    );
    p.both16(
        vd.volume_set_size,
        name,
        "volume_set_size",
        vd.at(field_offset!(VolumeDescriptor, volume_set_size)),
    );
    p.both16(
        vd.volume_sequence_number,
        name,
        "volume_sequence_number",
        vd.at(field_offset!(VolumeDescriptor, volume_sequence_number)),
    );
    let block_size = p.both16(
        vd.logical_block_size,
        name,
        "logical_block_size",
        vd.at(field_offset!(VolumeDescriptor, logical_block_size)),
    );
    if block_size != 2048 {
        p.push(
            ProblemKind::BadDescriptor,
            name,
            "logical_block_size",
            Some(vd.at(field_offset!(VolumeDescriptor, logical_block_size))),
            2048,
            block_size,
        );
    }
    let path_table_size = p.both32(
        vd.path_table_size,
        name,
        "path_table_size",
        vd.at(field_offset!(VolumeDescriptor, path_table_size)),
    );
    let root = match decode_record(&vd.root_directory_record) {
        Ok(r) => {
            let extent_lba = p.both32(
                r.header.extent_lba,
                name,
                "root_directory_record.extent_lba",
                vd.at(ROOT_RECORD + field_offset!(DirectoryRecordHeader, extent_lba)),
            );
            let data_length = p.both32(
                r.header.data_length,
                name,
                "root_directory_record.data_length",
                vd.at(ROOT_RECORD + field_offset!(DirectoryRecordHeader, data_length)),
            );
            if r.header.length != 34 || r.identifier != [0] {
                p.push(
                    ProblemKind::BadRecord,
                    name,
                    "root_directory_record",
                    Some(vd.at(field_offset!(VolumeDescriptor, root_directory_record))),
                    "length 34 and identifier 0x00",
                    format!("length {} and identifier {:02x?}", r.header.length, r.identifier),
                );
            }
            if r.header.file_flags & 0x02 == 0 {
                p.push(
                    ProblemKind::BadRecord,
                    name,
                    "root_directory_record.file_flags",
                    Some(vd.at(ROOT_RECORD + field_offset!(DirectoryRecordHeader, file_flags))),
                    "the directory bit 0x02",
                    format!("{:#04x}", r.header.file_flags),
                );
            }
            RootRecord {
                extent_lba,
                data_length,
                flags: r.header.file_flags,
                recording_date: r.header.recording_date,
            }
        }
        Err(e) => {
            p.push(
                ProblemKind::BadRecordLength,
                name,
                "root_directory_record",
                Some(vd.at(field_offset!(VolumeDescriptor, root_directory_record))),
                "a 34-byte directory record",
                format!("{e:?}"),
            );
            RootRecord { extent_lba: 0, data_length: 0, flags: 0, recording_date: DirDateTime::default() }
        }
    };
    if vd.file_structure_version != 1 {
        p.push(
            ProblemKind::BadDescriptor,
            name,
            "file_structure_version",
            Some(vd.at(field_offset!(VolumeDescriptor, file_structure_version))),
            1,
            vd.file_structure_version,
        );
    }
    VolumeSummary {
        descriptor_lba: lba,
        descriptor_type: vd.descriptor_type,
        joliet,
        system_id: text(&vd.system_id),
        volume_id: text(&vd.volume_id),
        volume_set_id: text(&vd.volume_set_id),
        publisher_id: text(&vd.publisher_id),
        preparer_id: text(&vd.data_preparer_id),
        application_id: text(&vd.application_id),
        volume_space_size,
        block_size,
        path_table_size,
        l_path_table: vd.type_l_path_table.get(),
        optional_l_path_table: vd.optional_type_l_path_table.get(),
        m_path_table: vd.type_m_path_table.get(),
        optional_m_path_table: vd.optional_type_m_path_table.get(),
        root,
        creation_date: VolumeDate::new(vd.creation_date),
        modification_date: VolumeDate::new(vd.modification_date),
        expiration_date: VolumeDate::new(vd.expiration_date),
        effective_date: VolumeDate::new(vd.effective_date),
        file_structure_version: vd.file_structure_version,
    }
}
