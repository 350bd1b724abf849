//! The model of a whole hybrid image, and what `isoforge inspect`, `verify` and `diff` are
//! built on.
//!
//! [`Image::read`] reads everything the other readers know about one image: the system area
//! ([`SystemArea`]: MBR, isohybrid boot-file field, primary and backup GPT), the volume
//! descriptor set, the El Torito catalog and boot-info-table, both directory hierarchies with
//! their path tables, and every payload recognised inside the image ([`EmbeddedImage`]: the FAT
//! EFI image and the squashfs store). Nothing is held in memory but the metadata: file
//! contents stay in the source and are streamed by [`verify`] and [`diff`].
//!
//! Images come from anywhere: every loop and allocation here is bounded (by the readers'
//! [`Limits`](crate::iso9660::read::Limits) and by [`MAX_FAT_ENTRIES`] and friends), and what is
//! wrong becomes a finding, never a panic.
//!
//! ```no_run
//! use isoforge_inspect::{verify, Image};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = std::fs::File::open("nixos.iso")?;
//! let image = Image::read(&file)?;
//! println!("{} entries", image.primary.entries.len());
//! for f in verify::verify(&image, &file)? {
//!     println!("{f}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Crates
//!
//! isoforge-inspect is the read side: it depends on `isoforge-formats` (the readers of each
//! format) and `isoforge-squashfs` (the store squashfs reader), and nothing depends on it but
//! the `isoforge` command and `isoforge-core`'s re-export. Inside it, [`verify`], [`diff`],
//! [`bytemap`], [`json`] and [`text`] are built on the model in this module and its payload
//! readers ([`system_area`], [`fat`], [`squashfs`], [`initrd`]).
#![deny(missing_docs)]

pub mod bytemap;
pub mod diff;
pub mod fat;
pub mod initrd;
pub mod json;
pub mod squashfs;
pub mod system_area;
pub mod text;
pub mod verify;

// The formats this crate reads, under the paths the read side has always used
// (`crate::iso9660` is `isoforge_formats::iso9660`); the FAT format is `crate::fat_fs`, since
// `crate::fat` is this crate's FAT reader.
use isoforge_formats::{cpio, endian, fat as fat_fs, finding, iso9660, part, read_at, units};

use thiserror::Error;

use crate::endian::{LE, U64};
use crate::finding::Finding;
use crate::iso9660::el_torito::{Emulation, PLATFORM_EFI};
use crate::iso9660::read::{
    BootRecordInfo, DescriptorInfo, ElTorito, EntryKind, Hierarchy, IsoImage, Listing, PathTables, ReadError,
    VolumeSummary,
};
use crate::iso9660::volume_descriptor::VolumeDescriptor;
use crate::part::gpt::Guid;
use crate::part::mbr::OS_TYPE_EFI;
use crate::read_at::{ReadAt, ReadAtError, ReadTyped};
use crate::units::{sector_bytes, Lba2048, Lba512, ISO_BLOCK};

pub use fat::FatInfo;
pub use squashfs::SquashfsInfo;
pub use system_area::SystemArea;

/// Most entries of an embedded FAT tree listed; further ones are counted as a problem.
pub const MAX_FAT_ENTRIES: usize = 1_000_000;

/// Errors that stop [`Image::read`]: the source is not an ISO 9660 image or cannot be read.
/// Everything else wrong with an image is a problem kept in the model.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The ISO 9660 reader could not read the image.
    #[error(transparent)]
    Iso(#[from] ReadError),
    /// Reading the source failed outside the ISO 9660 reader.
    #[error(transparent)]
    Io(#[from] ReadAtError),
}

/// A window `offset..offset + len` of another source: how a payload inside a file (the FAT
/// image inside the ISO) is read with the readers that expect a whole image.
pub struct SubRead<'a> {
    /// The enclosing source.
    pub src: &'a dyn ReadAt,
    /// Where the window starts in it.
    pub offset: u64,
    /// Length of the window (clamped to the source).
    pub len: u64,
}

impl<'a> SubRead<'a> {
    /// The window `offset..offset + len` of `src`, clamped to the end of `src`.
    pub fn new(src: &'a dyn ReadAt, offset: u64, len: u64) -> SubRead<'a> {
        let len = len.min(src.len().saturating_sub(offset));
        SubRead { src, offset, len }
    }
}

impl ReadAt for SubRead<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at offset {offset} runs past the end of the embedded image ({} bytes)",
                    buf.len(),
                    self.len
                ),
            ));
        }
        self.src.read_at(self.offset + offset, buf)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// A payload recognised inside the image.
///
/// New payload kinds are new variants: the FAT EFI image and the squashfs store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Payload {
    /// A FAT12/16/32 file system.
    Fat(Box<FatInfo>),
    /// A squashfs 4.0 file system (the Nix store image).
    Squashfs(Box<SquashfsInfo>),
    /// Something was expected here (an ESP, an El Torito EFI image) but is not readable as any
    /// known payload.
    Unrecognised {
        /// Why it could not be read.
        why: String,
    },
}

/// A payload inside the image, and how it was found.
#[derive(Debug, Clone)]
pub struct EmbeddedImage {
    /// The name used in reports: the ISO 9660 path of the file holding it, else a description
    /// of where it lies (`ESP at block 1234`).
    pub name: String,
    /// Byte offset in the image.
    pub offset: u64,
    /// Length in bytes (clamped to the image).
    pub len: u64,
    /// Every way it was found: `file`, `El Torito EFI entry`, `MBR partition N`, `GPT entry N`.
    pub found_by: Vec<String>,
    /// What it holds.
    pub payload: Payload,
}

/// One boot catalog entry with where it lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSlot {
    /// Section: 0 for the initial/default entry, then 1, 2, … for each section header.
    pub section: usize,
    /// Entry within the section (0 for the default entry).
    pub entry: usize,
    /// Byte offset of the 32-byte entry in the image.
    pub offset: u64,
    /// Platform id (of the validation entry for the default entry, of the section header else).
    pub platform: u8,
    /// Boot indicator byte.
    pub boot_indicator: u8,
    /// Media type.
    pub media_type: u8,
    /// Load segment.
    pub load_segment: u16,
    /// System type.
    pub system_type: u8,
    /// Sector count ("load size"): 512-byte virtual sectors.
    pub load_size: u16,
    /// Load block (2048 bytes).
    pub load_rba: u32,
    /// Whether the boot image carries GRUB's `--grub2-boot-info` patch (its own 512-byte
    /// sector + 5 at byte [`GRUB2_BOOT_INFO_OFFSET`]).
    pub grub2_boot_info: bool,
}

impl CatalogSlot {
    /// The report name: `ElTorito.section[S].entry[E]`.
    pub fn name(&self) -> String {
        format!("ElTorito.section[{}].entry[{}]", self.section, self.entry)
    }

    /// What the BIOS emulates for this image (floppy, hard disk, none).
    pub fn emulation(&self) -> Emulation {
        Emulation::of(self.media_type)
    }
}

/// The fields of a primary or supplementary volume descriptor that
/// [`VolumeSummary`] leaves out (ECMA-119 8.4, 8.5), decoded from the descriptor the ISO 9660
/// reader read ([`IsoImage::pvd_descriptor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorExtras {
    /// Volume flags (BP 8; 0 in a PVD).
    pub volume_flags: u8,
    /// Escape sequences (BP 89–120; the Joliet level in an SVD), hex.
    pub escape_sequences: String,
    /// Volume set size (little-endian copy).
    pub volume_set_size: u16,
    /// Volume sequence number (little-endian copy).
    pub volume_sequence_number: u16,
    /// Copyright file identifier, trimmed.
    pub copyright_file_id: String,
    /// Abstract file identifier, trimmed.
    pub abstract_file_id: String,
    /// Bibliographic file identifier, trimmed.
    pub bibliographic_file_id: String,
    /// Lowercase hex SHA-256 of the 512-byte application use field.
    pub application_use_sha256: String,
}

impl DescriptorExtras {
    fn of(vd: &VolumeDescriptor, joliet: bool) -> DescriptorExtras {
        use sha2::{Digest, Sha256};
        let text = |raw: &[u8]| {
            if joliet {
                crate::iso9660::read::ucs2(raw)
            } else {
                let end = raw.iter().rposition(|&b| b != b' ' && b != 0).map_or(0, |i| i + 1);
                String::from_utf8_lossy(&raw[..end]).into_owned()
            }
        };
        DescriptorExtras {
            volume_flags: vd.volume_flags,
            escape_sequences: system_area::hex(&vd.escape_sequences),
            volume_set_size: vd.volume_set_size.le(),
            volume_sequence_number: vd.volume_sequence_number.le(),
            copyright_file_id: text(&vd.copyright_file_id),
            abstract_file_id: text(&vd.abstract_file_id),
            bibliographic_file_id: text(&vd.bibliographic_file_id),
            application_use_sha256: system_area::hex(&Sha256::digest(vd.application_use)),
        }
    }
}

/// A whole hybrid image, read.
#[derive(Debug, Clone)]
pub struct Image {
    /// Length of the image in bytes.
    pub len: u64,
    /// The first 32 KiB and the backup GPT.
    pub system_area: SystemArea,
    /// Every volume descriptor, terminator included.
    pub descriptors: Vec<DescriptorInfo>,
    /// The primary volume descriptor.
    pub pvd: VolumeSummary,
    /// The rest of the primary volume descriptor's fields.
    pub pvd_extras: DescriptorExtras,
    /// The Joliet supplementary volume descriptor.
    pub joliet: Option<VolumeSummary>,
    /// The rest of the Joliet descriptor's fields.
    pub joliet_extras: Option<DescriptorExtras>,
    /// The El Torito boot record.
    pub boot_record: Option<BootRecordInfo>,
    /// The boot catalog as the ISO 9660 reader decoded and checked it.
    pub el_torito: Option<ElTorito>,
    /// Each catalog entry with its byte offset (from the entries in `el_torito`).
    pub catalog: Vec<CatalogSlot>,
    /// The ISO 9660 hierarchy (with Rock Ridge).
    pub primary: Listing,
    /// The Joliet hierarchy.
    pub joliet_tree: Option<Listing>,
    /// Path tables of each hierarchy.
    pub path_tables: Vec<PathTables>,
    /// Every problem the ISO 9660 reader found.
    pub iso_problems: Vec<Finding>,
    /// Payloads found inside the image.
    pub embedded: Vec<EmbeddedImage>,
}

impl Image {
    /// Reads every structure of the image at `src`.
    ///
    /// Fails only when `src` is not an ISO 9660 image (no primary volume descriptor) or a read
    /// inside the image fails; inconsistencies are kept in the model (`iso_problems`,
    /// `system_area.mismatches`, the payloads' problems) for [`verify`].
    pub fn read(src: &dyn ReadAt) -> Result<Image, InspectError> {
        let system_area = SystemArea::read(src)?;
        let iso = IsoImage::open(src)?;
        let report = iso.check()?;
        let catalog = catalog_slots(src, report.el_torito.as_ref(), &report.primary)?;
        let mut image = Image {
            len: src.len(),
            system_area,
            descriptors: iso.descriptors().to_vec(),
            pvd: iso.pvd().clone(),
            pvd_extras: DescriptorExtras::of(iso.pvd_descriptor(), false),
            joliet: iso.joliet().cloned(),
            joliet_extras: iso.joliet_descriptor().map(|vd| DescriptorExtras::of(vd, true)),
            boot_record: iso.boot_record().copied(),
            el_torito: report.el_torito,
            catalog,
            primary: report.primary,
            joliet_tree: report.joliet,
            path_tables: report.path_tables,
            iso_problems: report.problems,
            embedded: Vec::new(),
        };
        let facts = image_facts(&image, src)?;
        image.system_area.recognise(src, &facts);
        image.embedded = find_embedded(&image, src);
        Ok(image)
    }

    /// The hierarchy `h`, when present.
    pub fn listing(&self, h: Hierarchy) -> Option<&Listing> {
        match h {
            Hierarchy::Primary => Some(&self.primary),
            Hierarchy::Joliet => self.joliet_tree.as_ref(),
        }
    }

    /// The El Torito EFI entry (platform 0xEF), if any.
    pub fn efi_entry(&self) -> Option<&CatalogSlot> {
        self.catalog.iter().find(|c| c.platform == PLATFORM_EFI)
    }

    /// The El Torito BIOS entry (the default entry, platform 0).
    pub fn bios_entry(&self) -> Option<&CatalogSlot> {
        self.catalog.iter().find(|c| c.section == 0 && c.platform == 0)
    }

    /// Path of the ISO 9660 file whose first extent starts at block `lba`, if any.
    pub fn file_at_block(&self, lba: u32) -> Option<&crate::iso9660::read::Entry> {
        self.primary.entries.iter().find(|e| e.kind == EntryKind::File && e.size > 0 && e.first_lba() == lba)
    }
}

/// The catalog entries the ISO 9660 reader decoded ([`crate::iso9660::el_torito::decode_catalog`],
/// the one decoder of the catalog), each with its byte offset in the image and whether its
/// boot image carries GRUB's `--grub2-boot-info` patch.
fn catalog_slots(
    src: &dyn ReadAt,
    et: Option<&ElTorito>,
    listing: &Listing,
) -> Result<Vec<CatalogSlot>, InspectError> {
    let Some(et) = et else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(et.entries.len());
    for d in &et.entries {
        let e = &d.entry;
        let file = listing
            .entries
            .iter()
            .find(|f| f.kind == EntryKind::File && f.size > 0 && f.first_lba() == e.load_rba);
        out.push(CatalogSlot {
            section: d.section,
            entry: d.index,
            offset: d.offset,
            platform: e.platform,
            boot_indicator: d.boot_indicator,
            media_type: e.media_type,
            load_segment: e.load_segment,
            system_type: e.system_type,
            load_size: e.sector_count,
            load_rba: e.load_rba,
            grub2_boot_info: match file {
                Some(f) => grub2_boot_info(src, e.load_rba, f.size)?,
                None => false,
            },
        });
    }
    Ok(out)
}

/// The facts [`SystemArea::recognise`] needs: the volume size, the first boot image and
/// whether it is isohybrid-suitable (libisofs: a valid boot-info-table and isolinux's magic
/// `fb c0 78 70` at byte 64), and where the tree's data ends.
fn image_facts(image: &Image, src: &dyn ReadAt) -> Result<system_area::ImageFacts, InspectError> {
    let first = image.catalog.first();
    let table_ok = image.el_torito.as_ref().and_then(|e| e.boot_info.as_ref()).is_some_and(|b| {
        use crate::iso9660::read::FieldCheck::Valid;
        [b.pvd_lba, b.file_lba, b.file_length, b.checksum] == [Valid; 4]
    });
    let mut isohybrid_suitable = false;
    if let Some(e) = first.filter(|_| table_ok) {
        let at = Lba2048::new(e.load_rba).byte_offset() + ISOLINUX_MAGIC_OFFSET;
        if at + ISOLINUX_MAGIC.len() as u64 <= src.len() {
            isohybrid_suitable = *src.read_located::<[u8; 4]>(at, "boot image")? == ISOLINUX_MAGIC;
        }
    }
    let tree_end = image
        .primary
        .entries
        .iter()
        .chain(image.joliet_tree.iter().flat_map(|l| &l.entries))
        .flat_map(|e| &e.extents)
        .map(|&(lba, len)| u64::from(lba) + u64::from(len).div_ceil(ISO_BLOCK))
        .max()
        .unwrap_or(0);
    Ok(system_area::ImageFacts {
        volume_blocks: image.pvd.volume_space_size,
        boot_image: first.map(|e| e.load_rba),
        isohybrid_suitable,
        tree_end,
    })
}

/// Bytes 64..68 of isolinux.bin (and of every boot file made for an isohybrid MBR), which
/// libisofs checks before calling an MBR "isohybrid".
pub const ISOLINUX_MAGIC: [u8; 4] = [0xfb, 0xc0, 0x78, 0x70];
/// Where [`ISOLINUX_MAGIC`] is in the boot file (byte offset).
pub const ISOLINUX_MAGIC_OFFSET: u64 = 64;

/// Byte offset in a boot image of GRUB's boot-info patch (`xorriso --grub2-boot-info`): a
/// 64-bit little-endian 512-byte sector address at bytes 2548..2556 (libisofs
/// `Libisofs_grub2_elto_patch_poS`).
pub const GRUB2_BOOT_INFO_OFFSET: u64 = 512 * 5 - 12;

/// Whether the boot image of `size` bytes at block `lba` carries the `--grub2-boot-info`
/// patch: bytes 2548..2556 hold its own 512-byte sector address + 5 (xorrisofs(1)), the rule
/// libisofs reads back as "grub2-boot-info".
fn grub2_boot_info(src: &dyn ReadAt, lba: u32, size: u64) -> Result<bool, InspectError> {
    const LEN: u64 = std::mem::size_of::<U64<LE>>() as u64;
    let at = Lba2048::new(lba).byte_offset() + GRUB2_BOOT_INFO_OFFSET;
    if size < GRUB2_BOOT_INFO_OFFSET + LEN || at + LEN > src.len() {
        return Ok(false);
    }
    let sector = src.read_located::<U64<LE>>(at, "GRUB2 boot info of a boot image")?;
    Ok(sector.get() == Lba2048::new(lba).to_lba512().get() + 5)
}

/// Finds the payloads: the El Torito EFI image, the ESP of the MBR and of the GPT, and every
/// `*.img` file of the ISO 9660 tree that starts with a FAT boot sector. Candidates at the same
/// offset are one payload found several ways. Every single-extent file of the tree whose first
/// 4 bytes are the squashfs magic `hsqs` (nixpkgs' `/nix-store.squashfs`) is a candidate too.
fn find_embedded(image: &Image, src: &dyn ReadAt) -> Vec<EmbeddedImage> {
    // (offset, length hint, how, name from the tree)
    let mut cands: Vec<(u64, Option<u64>, String)> = Vec::new();
    if let Some(e) = image.efi_entry() {
        let len = image
            .file_at_block(e.load_rba)
            .map(|f| f.size)
            .or((e.load_size > 0).then_some(sector_bytes(u32::from(e.load_size))));
        cands.push((Lba2048::new(e.load_rba).byte_offset(), len, e.name()));
    }
    for p in &image.system_area.partitions {
        if p.os_type == OS_TYPE_EFI && p.sectors > 0 {
            cands.push((sector_bytes(p.start_lba), Some(sector_bytes(p.sectors)), p.name()));
        }
    }
    if let Some(g) = &image.system_area.gpt {
        for p in &g.entries {
            if p.type_guid == Guid::EFI_SYSTEM.to_string() && p.last_lba >= p.first_lba {
                let sectors = p.last_lba - p.first_lba + 1;
                cands.push((
                    Lba512::new(p.first_lba).saturating_byte_offset(),
                    Some(Lba512::new(sectors).saturating_byte_offset()),
                    p.name(),
                ));
            }
        }
    }
    for e in &image.primary.entries {
        if e.kind == EntryKind::File && e.size >= 512 && e.name.to_ascii_lowercase().ends_with(b".img") {
            if let [(lba, _)] = e.extents[..] {
                if fat::looks_like_fat(src, Lba2048::new(lba).byte_offset()) {
                    cands.push((Lba2048::new(lba).byte_offset(), Some(e.size), "file".into()));
                }
            }
        }
        if e.kind == EntryKind::File && e.size >= 96 {
            if let [(lba, _)] = e.extents[..] {
                if squashfs::looks_like_squashfs(src, Lba2048::new(lba).byte_offset()) {
                    cands.push((Lba2048::new(lba).byte_offset(), Some(e.size), "file".into()));
                }
            }
        }
    }
    cands.sort_by_key(|c| c.0);
    let mut out: Vec<EmbeddedImage> = Vec::new();
    for (offset, len, how) in cands {
        if let Some(last) = out.last_mut().filter(|l| l.offset == offset) {
            last.found_by.push(how);
            if let Some(l) = len {
                last.len = last.len.max(l.min(image.len.saturating_sub(offset)));
            }
            continue;
        }
        let len = len.unwrap_or(0).min(image.len.saturating_sub(offset));
        let name = match offset.checked_div(ISO_BLOCK) {
            Some(b) if offset % ISO_BLOCK == 0 => {
                match u32::try_from(b).ok().and_then(|b| image.file_at_block(b)) {
                    Some(f) => f.path_lossy(),
                    None => format!("payload at block {b}"),
                }
            }
            _ => format!("payload at byte {offset}"),
        };
        out.push(EmbeddedImage {
            name,
            offset,
            len,
            found_by: vec![how],
            payload: Payload::Unrecognised { why: String::new() },
        });
    }
    for e in &mut out {
        // The tree's file size is the best length: partitions may be rounded up.
        if let Some(f) = u32::try_from(e.offset / ISO_BLOCK).ok().and_then(|b| image.file_at_block(b)) {
            if e.offset % ISO_BLOCK == 0 {
                e.len = f.size.min(image.len.saturating_sub(e.offset));
            }
        }
        let sub = SubRead::new(src, e.offset, e.len);
        e.payload = recognise(&sub);
    }
    out
}

/// Reads a payload: squashfs when the window starts with its magic, FAT when it starts with a
/// FAT boot sector.
fn recognise(sub: &SubRead<'_>) -> Payload {
    if squashfs::looks_like_squashfs(sub, 0) {
        return match SquashfsInfo::read(sub) {
            Ok(s) => Payload::Squashfs(Box::new(s)),
            Err(why) => Payload::Unrecognised { why },
        };
    }
    match FatInfo::read(sub) {
        Ok(f) => Payload::Fat(Box::new(f)),
        Err(why) => Payload::Unrecognised { why },
    }
}
