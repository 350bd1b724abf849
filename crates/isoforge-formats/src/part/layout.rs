//! System area layouts: a pure planner from the ISO writer's numbers to the bytes of blocks
//! 0–15, the padded image size and the backup GPT.
//!
//! # How the ISO writer uses it
//!
//! 1. Plan the ISO 9660 file system first: the BIOS boot file (isolinux.bin) and the EFI image
//!    (efi.img) get their extents, and the file system ends at block `iso_blocks` (one past the
//!    last block it writes).
//! 2. Call [`plan_system_area`]. The plan fixes [`SystemAreaPlan::image_blocks`], the size of
//!    the whole image in 2048-byte blocks. Like xorriso, write that number as the PVD's (and
//!    Joliet SVD's) volume space size: the padding and the backup GPT belong to the volume.
//! 3. Write: blocks 0–15 = [`SystemAreaPlan::encode_system_area`], the file system up to
//!    `iso_blocks`, zeros up to [`SystemAreaPlan::backup_gpt_start`] (or to `image_blocks`),
//!    then [`SystemAreaPlan::encode_backup_gpt`] (16 blocks, ending the image).
//!
//! No layout moves the EFI image out of the file system: in every layout the partitions point
//! at the efi.img file's extent inside the ISO 9660 volume.
//!
//! # Layouts
//!
//! - [`Layout::Nixos`] reproduces `xorriso -as mkisofs ... -isohybrid-mbr isohdpfx.bin
//!   -isohybrid-gpt-basdat` as nixpkgs calls it: isohybrid MBR (whole-image partition 1, EFI
//!   partition 2 of type 0xEF) plus xorriso's deliberately invalid "hybrid" GPT (overlapping
//!   "ISOHybrid" and "ISOHybrid1" Basic Data partitions), size aligned to MBR cylinders.
//! - [`Layout::Gpt`] writes a valid GPT whose only partition is an EFI System Partition over
//!   efi.img, behind a protective MBR. When a BIOS boot file is given the MBR keeps the
//!   isohybrid boot code and gains a second, active, one-sector record of type 0x00 (xorriso's
//!   `--mbr-force-bootable`, as archiso uses it); size aligned to 1 MiB.
//! - [`Layout::None`]: El Torito only, the system area stays zero.
//!
//! See `docs/spec/system-area.md` for the reference facts measured on xorriso 1.5.4 and the
//! reasons behind each choice.

use std::fmt;
use std::str::FromStr;

use super::gpt::{
    crc32, encode_entry_array, GptEntry, GptHeader, Guid, ATTR_READ_ONLY, ATTR_REQUIRED, GPT_ENTRY_SIZE,
    GPT_HEADER_SIZE, GPT_REVISION_1_0, GPT_SIGNATURE,
};
use super::mbr::{
    Chs, Geometry, Mbr, MbrPartitionRecord, BOOT_ACTIVE, ISOHYBRID_BOOT_LBA, OS_TYPE_EFI, OS_TYPE_EMPTY,
    OS_TYPE_GPT_PROTECTIVE, OS_TYPE_ISOHYBRID_NO_GPT,
};
use super::PartError;
use crate::endian::{U32, U64};
use crate::time::{Epoch, EpochError};
use crate::units::{Lba2048, ISO_BLOCK, SECTOR};

/// Size of the system area in bytes (blocks 0–15).
pub const SYSTEM_AREA_BYTES: usize = 32 * 1024;
/// Sector of the primary partition entry array.
pub const GPT_ENTRIES_LBA: u64 = 2;
/// Entries in the partition entry array: sectors 2–63 of the system area, 4 entries each (as
/// xorriso writes; UEFI requires at least 128).
pub const GPT_ENTRY_COUNT: u32 = 248;
/// Sectors of the partition entry array.
pub const GPT_ENTRY_SECTORS: u64 = GPT_ENTRY_COUNT as u64 / 4;
/// First usable sector: right after the system area.
pub const GPT_FIRST_USABLE: u64 = GPT_ENTRIES_LBA + GPT_ENTRY_SECTORS;
/// The 2048-byte blocks reserved at the end of the image for the backup GPT: one unused
/// sector, the 62-sector entry array, the header in the very last sector (xorriso's layout).
pub const BACKUP_GPT_BLOCKS: u32 = 16;
/// The alignment of [`Layout::Gpt`] images: 1 MiB.
pub const GPT_LAYOUT_ALIGN_BLOCKS: u64 = 512;
/// GPT partition attributes xorriso gives its isohybrid partitions: required + read-only.
pub const ISOHYBRID_ATTRIBUTES: u64 = ATTR_REQUIRED | ATTR_READ_ONLY;
/// Name of the EFI System Partition in [`Layout::Gpt`].
pub const ESP_NAME: &str = "EFI System Partition";
/// The namespace of derived disk GUIDs: UUID v5 of the URL namespace and the name
/// `isoforge:gpt-disk-guid` (6120c0e1-2cfd-5299-a1b7-26d3487e23de). Fixed forever: changing it
/// changes every image.
pub const DISK_GUID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x61, 0x20, 0xc0, 0xe1, 0x2c, 0xfd, 0x52, 0x99, 0xa1, 0xb7, 0x26, 0xd3, 0x48, 0x7e, 0x23, 0xde,
]);

/// Which partition tables go into the system area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// xorriso's isohybrid MBR + hybrid GPT, as nixpkgs builds it.
    Nixos,
    /// Protective MBR (with isohybrid boot code if BIOS boot is wanted) + valid GPT with an
    /// EFI System Partition.
    Gpt,
    /// Nothing: El Torito only, zero system area.
    None,
}

impl Layout {
    /// The layout's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nixos => "nixos",
            Layout::Gpt => "gpt",
            Layout::None => "none",
        }
    }

    /// The default: `nixos` when an isohybrid MBR template is given, else `gpt` when there is an
    /// EFI image, else `none`.
    pub fn default_for(has_mbr_template: bool, has_efi_image: bool) -> Layout {
        match (has_mbr_template, has_efi_image) {
            (true, _) => Layout::Nixos,
            (false, true) => Layout::Gpt,
            (false, false) => Layout::None,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nixos" => Ok(Layout::Nixos),
            "gpt" => Ok(Layout::Gpt),
            "none" => Ok(Layout::None),
            _ => Err(format!("unknown system area layout {s:?} (expected nixos, gpt or none)")),
        }
    }
}

/// The EFI image (a FAT file system) as a file of the ISO 9660 volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EfiImage {
    /// First block of the file's extent.
    pub start: Lba2048,
    /// The file's size in bytes.
    pub size: u64,
}

impl EfiImage {
    /// Blocks the file's extent occupies.
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(ISO_BLOCK)
    }
}

/// Everything the planner needs, all numbers fixed by the ISO planner beforehand.
#[derive(Debug, Clone, Copy)]
pub struct SystemAreaRequest<'a> {
    /// The layout.
    pub layout: Layout,
    /// The isohybrid MBR template (isohdpfx.bin). Only bytes 0–431 are used; at least 432
    /// bytes are required when given.
    pub mbr_template: Option<&'a [u8]>,
    /// Where the BIOS boot file (isolinux.bin) starts.
    pub bios_boot: Option<Lba2048>,
    /// Where the EFI image lies.
    pub efi_image: Option<EfiImage>,
    /// Blocks the ISO 9660 file system occupies: one past its last written block.
    pub iso_blocks: u32,
    /// Zero blocks to add after the file system before any alignment
    /// ([`SystemAreaRequest::XORRISO_PAD_BLOCKS`] to match xorriso's default `-pad`).
    pub pad_blocks: u32,
    /// The volume identifier (seeds the derived disk GUID).
    pub volume_id: &'a str,
    /// The image's epoch (seeds the disk signature and the derived disk GUID).
    pub epoch: Epoch,
    /// The GPT disk GUID; derived from `volume_id` and `epoch` when `None`.
    pub disk_guid: Option<Guid>,
}

impl SystemAreaRequest<'_> {
    /// xorriso's `-as mkisofs` default `-pad`: 300 KiB after the file system, counted as part of
    /// the image.
    pub const XORRISO_PAD_BLOCKS: u32 = 150;
}

/// The planned system area: sizes fixed, structures built, ready to encode.
#[derive(Debug, Clone)]
pub struct SystemAreaPlan {
    /// The layout planned.
    pub layout: Layout,
    /// The file system size given in the request.
    pub iso_blocks: u32,
    /// Total image size in 2048-byte blocks: file system, padding, alignment and backup GPT.
    /// This is the volume space size to record in the volume descriptors.
    pub image_blocks: u32,
    /// The CHS geometry of the MBR's CHS fields (`None` for [`Layout::None`]).
    pub geometry: Option<Geometry>,
    /// The MBR disk signature (0 for [`Layout::None`]).
    pub disk_signature: u32,
    /// The GPT disk GUID, when there is a GPT.
    pub disk_guid: Option<Guid>,
    mbr: Option<Mbr>,
    gpt: Option<PlannedGpt>,
}

#[derive(Debug, Clone)]
struct PlannedGpt {
    header: GptHeader,
    entries: Vec<GptEntry>,
    array: Vec<u8>,
}

impl SystemAreaPlan {
    /// Total image size in bytes.
    pub fn image_bytes(&self) -> u64 {
        u64::from(self.image_blocks) * ISO_BLOCK
    }

    /// Where the 16-block backup GPT area starts (it ends the image), if there is a GPT.
    pub fn backup_gpt_start(&self) -> Option<Lba2048> {
        self.gpt.as_ref().map(|_| Lba2048::new(self.image_blocks - BACKUP_GPT_BLOCKS))
    }

    /// Zero blocks the writer emits between the file system's end and the backup GPT (or the
    /// image end).
    pub fn tail_zero_blocks(&self) -> u32 {
        let end = self.backup_gpt_start().map_or(self.image_blocks, |l| l.get());
        end - self.iso_blocks
    }

    /// The MBR, if the layout writes one.
    pub fn mbr(&self) -> Option<&Mbr> {
        self.mbr.as_ref()
    }

    /// The primary GPT header, if the layout writes a GPT.
    pub fn gpt_header(&self) -> Option<&GptHeader> {
        self.gpt.as_ref().map(|g| &g.header)
    }

    /// The used GPT entries, in array order.
    pub fn gpt_entries(&self) -> &[GptEntry] {
        self.gpt.as_ref().map_or(&[], |g| &g.entries)
    }

    /// The 32 KiB of blocks 0–15: MBR in sector 0, GPT header in sector 1, entry array in
    /// sectors 2–63 (zeros where the layout has nothing).
    pub fn encode_system_area(&self) -> Vec<u8> {
        let mut out = vec![0u8; SYSTEM_AREA_BYTES];
        if let Some(mbr) = &self.mbr {
            out[..512].copy_from_slice(&mbr.encode());
        }
        if let Some(g) = &self.gpt {
            out[512..1024].copy_from_slice(&g.header.encode_sector());
            let at = GPT_ENTRIES_LBA as usize * 512;
            out[at..at + g.array.len()].copy_from_slice(&g.array);
        }
        out
    }

    /// The 16 blocks that end the image: one zero sector, the backup entry array, the backup
    /// header (`None` without a GPT).
    pub fn encode_backup_gpt(&self) -> Option<Vec<u8>> {
        let g = self.gpt.as_ref()?;
        let total_sectors = u64::from(self.image_blocks) * 4;
        let header_lba = total_sectors - 1;
        let entries_lba = header_lba - GPT_ENTRY_SECTORS;
        let backup = g.header.backup(entries_lba);
        let area_start = u64::from(self.image_blocks - BACKUP_GPT_BLOCKS) * 4;
        let mut out = vec![0u8; BACKUP_GPT_BLOCKS as usize * ISO_BLOCK as usize];
        let at = ((entries_lba - area_start) * SECTOR) as usize;
        out[at..at + g.array.len()].copy_from_slice(&g.array);
        let len = out.len();
        out[len - 512..].copy_from_slice(&backup.encode_sector());
        Some(out)
    }
}

/// The El Torito "sector count" xorriso 1.5.4 writes for a no-emulation EFI boot image of
/// `size` bytes when no `-boot-load-size` is given: the image's 2048-byte blocks × 4, or 0 when
/// that exceeds 65535 (firmware then reads the whole image via the file system or the EFI
/// partition). Measured: 2 MiB → 4096, 2049 KiB → 4100, 32766 KiB → 65532, 32767 KiB → 0.
pub(crate) fn el_torito_efi_sector_count(size: u64) -> u16 {
    let sectors = size.div_ceil(ISO_BLOCK).saturating_mul(4);
    u16::try_from(sectors).unwrap_or(0)
}

/// The disk signature: CRC-32 of the epoch's 16-digit ECMA-119 date `YYYYMMDDhhmmsscc` (UTC).
/// xorriso does exactly this with the `-volume_date uuid` string, which `SOURCE_DATE_EPOCH` sets,
/// so images built by nixpkgs (SOURCE_DATE_EPOCH=315532800) carry 0x9fb6382f. An epoch outside
/// the years 1–9999 has no such date and is an error.
pub fn disk_signature(epoch: Epoch) -> Result<u32, EpochError> {
    Ok(crc32(&epoch.iso_dec_datetime()?[..16]))
}

/// The disk GUID derived when none is given: UUID v5 in [`DISK_GUID_NAMESPACE`] of the name
/// `volume_id` (UTF-8) ‖ 0x00 ‖ epoch seconds (i64, big-endian), stored mixed-endian so that
/// `sgdisk`/`blkid` print the v5 UUID.
pub(crate) fn derived_disk_guid(volume_id: &str, epoch: Epoch) -> Guid {
    let mut name = Vec::with_capacity(volume_id.len() + 9);
    name.extend_from_slice(volume_id.as_bytes());
    name.push(0);
    name.extend_from_slice(&epoch.0.to_be_bytes());
    Guid::from_uuid(uuid::Uuid::new_v5(&DISK_GUID_NAMESPACE, &name))
}

/// The geometry libisofs picks for an image of `sectors` 512-byte sectors: 64 heads × 32
/// sectors if 1024 such cylinders hold it; else the fewest heads (≤ 255) with 32 sectors; else
/// 63 sectors and the fewest heads that are a multiple of 4 (so cylinders stay multiples of
/// 2048 bytes); else 255 × 63.
pub(crate) fn isohybrid_geometry(sectors: u64) -> Geometry {
    let fits = |g: Geometry| u64::from(g.heads) * u64::from(g.sectors) * 1024 >= sectors;
    if fits(Geometry::ISOHYBRID) {
        return Geometry::ISOHYBRID;
    }
    let heads32 = sectors.div_ceil(32 * 1024);
    if heads32 <= 255 {
        return Geometry { heads: heads32 as u32, sectors: 32 };
    }
    let heads63 = sectors.div_ceil(63 * 1024).next_multiple_of(4);
    if heads63 <= 255 {
        return Geometry { heads: heads63 as u32, sectors: 63 };
    }
    Geometry { heads: 255, sectors: 63 }
}

/// libisofs' isohybrid size rule: pad `blocks` to a whole number of cylinders of the chosen
/// geometry, unless that would take more than 1024 cylinders or the padding is not whole
/// 2048-byte blocks (then no padding). Returns the geometry and the padded size in blocks.
pub(crate) fn isohybrid_align(blocks: u64) -> (Geometry, u64) {
    let bytes = blocks * ISO_BLOCK;
    let g = isohybrid_geometry(blocks * 4);
    let cyl = g.cylinder_bytes();
    if bytes > cyl * 1024 {
        return (g, blocks);
    }
    let padded = bytes.next_multiple_of(cyl);
    if (padded - bytes) % ISO_BLOCK != 0 {
        return (g, blocks);
    }
    (g, padded / ISO_BLOCK)
}

/// Plans the system area for `req`. Pure: no I/O, no clock.
pub fn plan_system_area(req: &SystemAreaRequest<'_>) -> Result<SystemAreaPlan, PartError> {
    if let Some(efi) = req.efi_image {
        check_efi(req, efi)?;
    }
    if let Some(boot) = req.bios_boot {
        if boot.get() >= req.iso_blocks || boot.get() < 16 {
            return Err(PartError::OutsideFileSystem {
                what: "BIOS boot file",
                start: boot.to_lba512().get(),
                end: boot.to_lba512().get() + 4,
                fs_end: u64::from(req.iso_blocks) * 4,
            });
        }
    }
    match req.layout {
        Layout::None => {
            let image_blocks =
                to_u32("image size in blocks", u64::from(req.iso_blocks) + u64::from(req.pad_blocks))?;
            Ok(SystemAreaPlan {
                layout: req.layout,
                iso_blocks: req.iso_blocks,
                image_blocks,
                geometry: None,
                disk_signature: 0,
                disk_guid: None,
                mbr: None,
                gpt: None,
            })
        }
        Layout::Nixos => plan_nixos(req),
        Layout::Gpt => plan_gpt(req),
    }
}

fn check_efi(req: &SystemAreaRequest<'_>, efi: EfiImage) -> Result<(), PartError> {
    if efi.size < ISO_BLOCK {
        return Err(PartError::EfiImageTooSmall { start: efi.start, size: efi.size });
    }
    let start = efi.start.to_lba512().get();
    if start < GPT_FIRST_USABLE {
        return Err(PartError::BeforeFirstUsable {
            name: "EFI image",
            start,
            first_usable: GPT_FIRST_USABLE,
        });
    }
    let end_block = u64::from(efi.start.get()) + efi.blocks();
    if end_block > u64::from(req.iso_blocks) {
        return Err(PartError::OutsideFileSystem {
            what: "EFI image",
            start,
            end: end_block * 4,
            fs_end: u64::from(req.iso_blocks) * 4,
        });
    }
    Ok(())
}

fn to_u32(field: &'static str, v: u64) -> Result<u32, PartError> {
    u32::try_from(v).map_err(|_| PartError::Overflow { field, value: u128::from(v) })
}

fn template_code<'a>(req: &SystemAreaRequest<'a>) -> Result<Option<&'a [u8]>, PartError> {
    match req.mbr_template {
        Some(t) if t.len() < ISOHYBRID_BOOT_LBA.start => Err(PartError::TemplateTooShort { found: t.len() }),
        Some(t) => Ok(Some(&t[..ISOHYBRID_BOOT_LBA.start])),
        None => Ok(None),
    }
}

fn base_mbr(code: Option<&[u8]>, boot: Option<Lba2048>, signature: u32) -> Mbr {
    let mut mbr = Mbr::default();
    if let (Some(code), Some(boot)) = (code, boot) {
        mbr.boot_code[..ISOHYBRID_BOOT_LBA.start].copy_from_slice(code);
        mbr.boot_code[ISOHYBRID_BOOT_LBA].copy_from_slice(&boot.to_lba512().get().to_le_bytes());
    }
    mbr.unique_mbr_disk_signature = U32::new(signature);
    mbr
}

fn disk_guid(req: &SystemAreaRequest<'_>) -> Guid {
    req.disk_guid.unwrap_or_else(|| derived_disk_guid(req.volume_id, req.epoch))
}

fn build_gpt(image_blocks: u32, guid: Guid, entries: Vec<GptEntry>) -> Result<PlannedGpt, PartError> {
    let total_sectors = u64::from(image_blocks) * 4;
    let backup_header = total_sectors - 1;
    let last_usable = backup_header - GPT_ENTRY_SECTORS - 1;
    let array = encode_entry_array(&entries, GPT_ENTRY_COUNT)?;
    let header = GptHeader {
        signature: GPT_SIGNATURE,
        revision: U32::new(GPT_REVISION_1_0),
        header_size: U32::new(GPT_HEADER_SIZE),
        header_crc32: U32::new(0),
        reserved: U32::new(0),
        my_lba: U64::new(1),
        alternate_lba: U64::new(backup_header),
        first_usable_lba: U64::new(GPT_FIRST_USABLE),
        last_usable_lba: U64::new(last_usable),
        disk_guid: guid,
        partition_entry_lba: U64::new(GPT_ENTRIES_LBA),
        number_of_partition_entries: U32::new(GPT_ENTRY_COUNT),
        size_of_partition_entry: U32::new(GPT_ENTRY_SIZE),
        partition_entry_array_crc32: U32::new(crc32(&array)),
    }
    .with_crc();
    Ok(PlannedGpt { header, entries, array })
}

fn plan_nixos(req: &SystemAreaRequest<'_>) -> Result<SystemAreaPlan, PartError> {
    let code = template_code(req)?
        .ok_or(PartError::MissingInput { layout: "nixos", what: "an isohybrid MBR template" })?;
    let boot = req.bios_boot.ok_or(PartError::MissingInput { layout: "nixos", what: "a BIOS boot file" })?;
    let has_gpt = req.efi_image.is_some();
    let backup = if has_gpt { u64::from(BACKUP_GPT_BLOCKS) } else { 0 };
    let base = u64::from(req.iso_blocks) + u64::from(req.pad_blocks) + backup;
    let (geometry, total) = isohybrid_align(base);
    let image_blocks = to_u32("image size in blocks", total)?;
    let total_sectors = total * 4;
    let signature = disk_signature(req.epoch)?;

    let mut mbr = base_mbr(Some(code), Some(boot), signature);
    mbr.partition_record[0] = MbrPartitionRecord::new(
        BOOT_ACTIVE,
        Chs::isohybrid(0, geometry),
        if has_gpt { OS_TYPE_EMPTY } else { OS_TYPE_ISOHYBRID_NO_GPT },
        Chs::isohybrid(total_sectors - 1, geometry),
        0,
        u32::try_from(total_sectors).unwrap_or(u32::MAX),
    );

    let (gpt, guid) = if let Some(efi) = req.efi_image {
        let start = efi.start.to_lba512().get();
        mbr.partition_record[1] = MbrPartitionRecord::new(
            0,
            Chs::DUMMY,
            OS_TYPE_EFI,
            Chs::DUMMY,
            to_u32("MBR partition 2 starting_lba", start)?,
            to_u32("MBR partition 2 size_in_lba", efi.size.div_ceil(SECTOR))?,
        );
        let guid = disk_guid(req);
        // xorriso counts whole 2048-byte blocks of the boot image (rounding down) and clamps
        // both partitions at the start of the backup GPT area.
        let limit = (total - u64::from(BACKUP_GPT_BLOCKS)) * 4;
        let efi_end = ((u64::from(efi.start.get()) + efi.size / ISO_BLOCK) * 4).min(limit) - 1;
        let entries = vec![
            GptEntry::new(
                Guid::BASIC_DATA,
                guid.xorriso_partition_guid(1),
                0,
                limit - 1,
                ISOHYBRID_ATTRIBUTES,
                "ISOHybrid",
            )?,
            GptEntry::new(
                Guid::BASIC_DATA,
                guid.xorriso_partition_guid(2),
                start,
                efi_end,
                ISOHYBRID_ATTRIBUTES,
                "ISOHybrid1",
            )?,
        ];
        (Some(build_gpt(image_blocks, guid, entries)?), Some(guid))
    } else {
        (None, None)
    };

    Ok(SystemAreaPlan {
        layout: Layout::Nixos,
        iso_blocks: req.iso_blocks,
        image_blocks,
        geometry: Some(geometry),
        disk_signature: signature,
        disk_guid: guid,
        mbr: Some(mbr),
        gpt,
    })
}

fn plan_gpt(req: &SystemAreaRequest<'_>) -> Result<SystemAreaPlan, PartError> {
    let efi = req.efi_image.ok_or(PartError::MissingInput { layout: "gpt", what: "an EFI image" })?;
    let code = template_code(req)?;
    match (code, req.bios_boot) {
        (None, Some(_)) => {
            return Err(PartError::MissingInput {
                layout: "gpt",
                what: "an isohybrid MBR template (for BIOS boot from disk)",
            })
        }
        (Some(_), None) => {
            return Err(PartError::Inconsistent {
                layout: "gpt",
                what: "an isohybrid MBR template needs a BIOS boot file to point at",
            })
        }
        _ => {}
    }
    let base = u64::from(req.iso_blocks) + u64::from(req.pad_blocks) + u64::from(BACKUP_GPT_BLOCKS);
    let total = base.next_multiple_of(GPT_LAYOUT_ALIGN_BLOCKS);
    let image_blocks = to_u32("image size in blocks", total)?;
    let total_sectors = total * 4;
    let geometry = isohybrid_geometry(total_sectors);
    let signature = disk_signature(req.epoch)?;
    let bios = req.bios_boot.is_some();

    let mut mbr = base_mbr(code, req.bios_boot, signature);
    mbr.partition_record[0] = MbrPartitionRecord::new(
        0,
        Chs::uefi(1, geometry),
        OS_TYPE_GPT_PROTECTIVE,
        Chs::uefi(total_sectors - 1, geometry),
        1,
        u32::try_from(total_sectors - 1).unwrap_or(u32::MAX),
    );
    if bios {
        // xorriso's --mbr-force-bootable with a protective MBR (as archiso uses it): BIOSes that
        // insist on an active partition find this one, while the 0xEE record stays inactive
        // for UEFI firmware that rejects an active protective record.
        mbr.partition_record[1] = MbrPartitionRecord::new(
            BOOT_ACTIVE,
            Chs::uefi(0, geometry),
            OS_TYPE_EMPTY,
            Chs::uefi(0, geometry),
            0,
            1,
        );
    }

    let guid = disk_guid(req);
    let start = efi.start.to_lba512().get();
    let end = start + efi.size.div_ceil(SECTOR) - 1;
    let entries =
        vec![GptEntry::new(Guid::EFI_SYSTEM, guid.xorriso_partition_guid(1), start, end, 0, ESP_NAME)?];
    let gpt = build_gpt(image_blocks, guid, entries)?;

    Ok(SystemAreaPlan {
        layout: Layout::Gpt,
        iso_blocks: req.iso_blocks,
        image_blocks,
        geometry: Some(geometry),
        disk_signature: signature,
        disk_guid: Some(guid),
        mbr: Some(mbr),
        gpt: Some(gpt),
    })
}

/// Which layout an image's system area looks like, for `inspect`: `mbr` is sector 0 and `gpt`
/// what [`super::gpt::read_gpt`] found. `None` when it matches none of isoforge's layouts
/// (another tool's, or damaged).
///
/// - [`Layout::None`]: sector 0 all zero and no GPT;
/// - [`Layout::Nixos`]: an active record 1 from sector 0 of type 0x00 or 0x17, and either no
///   GPT (BIOS only) or one whose entry 1 is "ISOHybrid";
/// - [`Layout::Gpt`]: a protective MBR and a GPT with an EFI System Partition.
pub fn identify(mbr_sector: &[u8], gpt: Option<&super::gpt::GptReport>) -> Option<Layout> {
    let has_gpt = gpt.is_some_and(|g| g.primary.is_some() || g.backup.is_some());
    if mbr_sector.iter().take(512).all(|&b| b == 0) {
        return (!has_gpt).then_some(Layout::None);
    }
    let mbr = Mbr::decode(mbr_sector).ok()?;
    if mbr.signature != super::mbr::MBR_SIGNATURE {
        return None;
    }
    let first = mbr.partition_record[0];
    if mbr.is_protective() {
        let esp = gpt?.entries.iter().any(|(_, e)| e.partition_type_guid == Guid::EFI_SYSTEM);
        return esp.then_some(Layout::Gpt);
    }
    let isohybrid = first.boot_indicator == BOOT_ACTIVE
        && first.starting_lba.get() == 0
        && matches!(first.os_indicator, OS_TYPE_EMPTY | OS_TYPE_ISOHYBRID_NO_GPT);
    if !isohybrid {
        return None;
    }
    match gpt {
        Some(g) if has_gpt => {
            g.entries.first().filter(|(_, e)| e.name() == "ISOHybrid").map(|_| Layout::Nixos)
        }
        _ => Some(Layout::Nixos),
    }
}

#[cfg(test)]
mod tests {
    use super::super::gpt::{read_gpt, GptReport};
    use super::*;

    const TEMPLATE: [u8; 432] = [0x90; 432];

    fn req(layout: Layout, iso_blocks: u32) -> SystemAreaRequest<'static> {
        SystemAreaRequest {
            layout,
            mbr_template: Some(&TEMPLATE),
            bios_boot: Some(Lba2048::new(1058)),
            efi_image: Some(EfiImage { start: Lba2048::new(34), size: 2 * 1024 * 1024 }),
            iso_blocks,
            pad_blocks: SystemAreaRequest::XORRISO_PAD_BLOCKS,
            volume_id: "NIXOS_TEST",
            epoch: Epoch::NIX_DEFAULT,
            disk_guid: None,
        }
    }

    /// Assemble a whole in-memory image (zeros for the file system).
    fn image(plan: &SystemAreaPlan) -> Vec<u8> {
        let mut img = vec![0u8; plan.image_bytes() as usize];
        img[..SYSTEM_AREA_BYTES].copy_from_slice(&plan.encode_system_area());
        if let (Some(at), Some(b)) = (plan.backup_gpt_start(), plan.encode_backup_gpt()) {
            let o = at.byte_offset() as usize;
            img[o..o + b.len()].copy_from_slice(&b);
        }
        img
    }

    fn report(img: &[u8]) -> GptReport {
        let mut rd = |off: u64, buf: &mut [u8]| {
            buf.copy_from_slice(&img[off as usize..off as usize + buf.len()]);
            Ok(())
        };
        read_gpt(&mut rd, img.len() as u64 / 512).unwrap()
    }

    #[test]
    fn nixos_padding_matches_xorriso() {
        // Measured with xorriso 1.5.4 (see docs/spec/system-area.md): file data ending at
        // block E gives an image of roundup(E + 150 + 16, 512) blocks.
        for (e, want) in [(1225, 1536), (1368, 1536), (1370, 1536), (1371, 2048)] {
            let p = plan_system_area(&req(Layout::Nixos, e)).unwrap();
            assert_eq!(p.image_blocks, want, "E={e}");
            assert_eq!(p.backup_gpt_start(), Some(Lba2048::new(want - 16)));
            assert_eq!(p.tail_zero_blocks(), want - 16 - e);
        }
        // 1.1 GB: geometry 66/32, 1020 cylinders (measured: 2154240 sectors).
        let p = plan_system_area(&req(Layout::Nixos, 538_188)).unwrap();
        assert_eq!(p.geometry, Some(Geometry { heads: 66, sectors: 32 }));
        assert_eq!(u64::from(p.image_blocks) * 4, 2_154_240);
        // BIOS only: no GPT, no backup, type 0x17.
        let mut r = req(Layout::Nixos, 1225);
        r.efi_image = None;
        let p = plan_system_area(&r).unwrap();
        assert_eq!(p.image_blocks, 1536);
        assert!(p.backup_gpt_start().is_none() && p.encode_backup_gpt().is_none());
        assert_eq!(p.mbr().unwrap().partition_record[0].os_indicator, 0x17);
    }

    #[test]
    fn geometry_rule() {
        assert_eq!(isohybrid_geometry(2048 * 1024), Geometry::ISOHYBRID);
        assert_eq!(isohybrid_geometry(2048 * 1024 + 1), Geometry { heads: 65, sectors: 32 });
        assert_eq!(isohybrid_geometry(255 * 32 * 1024), Geometry { heads: 255, sectors: 32 });
        assert_eq!(isohybrid_geometry(255 * 32 * 1024 + 1), Geometry { heads: 132, sectors: 63 });
        assert_eq!(isohybrid_geometry(252 * 63 * 1024), Geometry { heads: 252, sectors: 63 });
        assert_eq!(isohybrid_geometry(252 * 63 * 1024 + 1), Geometry { heads: 255, sectors: 63 });
        // 255 x 63 cylinders are not whole 2048-byte blocks: aligned only when the padding
        // happens to be (every 4th cylinder count), never past 1024 cylinders.
        let blocks = 252 * 63 * 1024 / 4 + 1;
        assert_eq!(isohybrid_align(blocks).1, 1012 * 255 * 63 / 4);
        let blocks = 1012 * 255 * 63 / 4 + 1;
        assert_eq!(isohybrid_align(blocks).1, blocks);
        let blocks = 255 * 63 * 1024 / 4 + 1;
        assert_eq!(isohybrid_align(blocks).1, blocks);
    }

    #[test]
    fn nixos_bytes() {
        let p = plan_system_area(&req(Layout::Nixos, 1225)).unwrap();
        let sa = p.encode_system_area();
        assert_eq!(&sa[..432], &TEMPLATE[..]);
        assert_eq!(&sa[432..446], &[0x88, 0x10, 0, 0, 0, 0, 0, 0, 0x2f, 0x38, 0xb6, 0x9f, 0, 0]);
        // Partition records as xorriso 1.5.4 wrote them for the same numbers.
        assert_eq!(&sa[446..462], &[0x80, 0, 1, 0, 0, 0x3f, 0x20, 2, 0, 0, 0, 0, 0, 0x18, 0, 0]);
        assert_eq!(
            &sa[462..478],
            &[0, 0xfe, 0xff, 0xff, 0xef, 0xfe, 0xff, 0xff, 0x88, 0, 0, 0, 0, 0x10, 0, 0]
        );
        assert_eq!(&sa[478..510], &[0; 32]);
        assert_eq!(&sa[510..512], &[0x55, 0xaa]);
        // GPT header fields (xorriso: alternate 6143, first usable 64, last usable 6080, 248 entries).
        assert_eq!(
            &sa[512 + 32..512 + 56],
            &[0xff, 0x17, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x17, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&sa[512 + 72..512 + 88], &[2, 0, 0, 0, 0, 0, 0, 0, 0xf8, 0, 0, 0, 0x80, 0, 0, 0]);
        // Entries: ISOHybrid 0..=6079, ISOHybrid1 136..=4231, attributes 0x1000000000000001.
        assert_eq!(
            &sa[1024 + 32..1024 + 56],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0xbf, 0x17, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x10]
        );
        assert_eq!(&sa[1152 + 32..1152 + 48], &[0x88, 0, 0, 0, 0, 0, 0, 0, 0x87, 0x10, 0, 0, 0, 0, 0, 0]);
        let img = image(&p);
        let r = report(&img);
        // Exactly the two deliberate violations of xorriso's hybrid GPT.
        let fields: Vec<_> = r.mismatches.iter().map(|m| m.field.as_ref()).collect();
        assert_eq!(fields, ["starting_lba", "starting_lba"], "{:?}", r.mismatches);
        assert_eq!(r.entries.len(), 2);
        // Backup area: the sector before the entries is zero, the header is last.
        let b = p.encode_backup_gpt().unwrap();
        assert_eq!(&b[..512], &[0; 512]);
        assert_eq!(&b[b.len() - 512..b.len() - 504], b"EFI PART");
    }

    #[test]
    fn nixos_matches_captured_xorriso_bytes() {
        // fixtures/part/README.md: the same numbers, boot code zeroed.
        let head = include_bytes!("../../../../fixtures/part/xorriso-1.5.4-nixos-head.bin");
        let backup_header = include_bytes!("../../../../fixtures/part/xorriso-1.5.4-nixos-backup-header.bin");
        let zero = [0u8; 432];
        let mut r = req(Layout::Nixos, 1225);
        r.mbr_template = Some(&zero);
        r.disk_guid = Some(Guid::from_xorriso_hex("5c0af4a4af1651f18ca7257154097569").unwrap());
        let p = plan_system_area(&r).unwrap();
        assert_eq!(p.image_blocks, 1536);
        let sa = p.encode_system_area();
        assert_eq!(&sa[..2048], &head[..]);
        assert!(sa[2048..].iter().all(|&b| b == 0));
        let b = p.encode_backup_gpt().unwrap();
        assert_eq!(&b[b.len() - 512..], &backup_header[..]);
        assert_eq!(&b[512..512 + 62 * 512], &sa[1024..1024 + 62 * 512]);
    }

    #[test]
    fn nixos_xorriso_guid_rule() {
        let mut r = req(Layout::Nixos, 1225);
        r.disk_guid = Some(Guid::from_xorriso_hex("00112233445566778899aabbccddeeff").unwrap());
        let p = plan_system_area(&r).unwrap();
        let e = p.gpt_entries();
        assert_eq!(
            e[0].unique_partition_guid,
            Guid::from_xorriso_hex("00112233445566778898aabbccddeeff").unwrap()
        );
        assert_eq!(
            e[1].unique_partition_guid,
            Guid::from_xorriso_hex("0011223344556677889baabbccddeeff").unwrap()
        );
    }

    #[test]
    fn nixos_odd_efi_size_rounds_like_xorriso() {
        // efi.img of 2049 KiB: MBR counts 4098 sectors, the GPT whole blocks only (4096).
        let mut r = req(Layout::Nixos, 1226);
        r.efi_image = Some(EfiImage { start: Lba2048::new(34), size: 2049 * 1024 });
        let p = plan_system_area(&r).unwrap();
        assert_eq!(p.mbr().unwrap().partition_record[1].size_in_lba.get(), 4098);
        assert_eq!(p.gpt_entries()[1].sectors(), 4096);
    }

    #[test]
    fn gpt_layout_is_valid() {
        let p = plan_system_area(&req(Layout::Gpt, 1225)).unwrap();
        assert_eq!(p.image_blocks, 1536); // roundup(1225 + 150 + 16, 512)
        let img = image(&p);
        let r = report(&img);
        assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].1.partition_type_guid, Guid::EFI_SYSTEM);
        assert_eq!(r.entries[0].1.name(), ESP_NAME);
        assert_eq!((r.entries[0].1.starting_lba.get(), r.entries[0].1.ending_lba.get()), (136, 4231));
        let mbr = Mbr::decode(&img).unwrap();
        assert!(mbr.is_protective());
        // As xorriso 1.5.4 -appended_part_as_gpt --mbr-force-bootable writes them.
        let b = mbr.encode();
        assert_eq!(&b[446..462], &[0, 0, 2, 0, 0xee, 0x3f, 0x20, 2, 1, 0, 0, 0, 0xff, 0x17, 0, 0]);
        assert_eq!(&b[462..478], &[0x80, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&mbr.partition_record[2..], &[MbrPartitionRecord::default(); 2]);
        assert!(mbr.check(6144).is_empty(), "{:?}", mbr.check(6144));
        assert_eq!(mbr.isohybrid_boot_lba(), 1058 * 4);

        // EFI only: no boot code, record not active.
        let mut r = req(Layout::Gpt, 1225);
        r.mbr_template = None;
        r.bios_boot = None;
        let p = plan_system_area(&r).unwrap();
        let mbr = p.mbr().unwrap();
        assert_eq!(mbr.boot_code, [0; 440]);
        assert_eq!(&mbr.partition_record[1..], &[MbrPartitionRecord::default(); 3]);
        assert!(report(&image(&p)).mismatches.is_empty());
    }

    #[test]
    fn identify_layouts() {
        for layout in [Layout::Nixos, Layout::Gpt, Layout::None] {
            let p = plan_system_area(&req(layout, 1225)).unwrap();
            let img = image(&p);
            let g = report(&img);
            assert_eq!(identify(&img[..512], Some(&g)), Some(layout), "{layout}");
        }
        let mut r = req(Layout::Nixos, 1225);
        r.efi_image = None;
        let img = image(&plan_system_area(&r).unwrap());
        assert_eq!(identify(&img[..512], Some(&report(&img))), Some(Layout::Nixos));
        let mut other = [0u8; 512];
        other[510] = 0x55;
        other[511] = 0xaa;
        assert_eq!(identify(&other, None), None);
    }

    #[test]
    fn none_layout() {
        let p = plan_system_area(&req(Layout::None, 1225)).unwrap();
        assert_eq!(p.image_blocks, 1375);
        assert!(p.encode_system_area().iter().all(|&b| b == 0));
        assert!(p.encode_backup_gpt().is_none());
        assert_eq!(p.tail_zero_blocks(), 150);
    }

    #[test]
    fn derived_guid_and_signature_are_deterministic() {
        let a = plan_system_area(&req(Layout::Gpt, 1225)).unwrap();
        let b = plan_system_area(&req(Layout::Gpt, 1225)).unwrap();
        assert_eq!(a.encode_system_area(), b.encode_system_area());
        assert_eq!(a.encode_backup_gpt(), b.encode_backup_gpt());
        let g = derived_disk_guid("NIXOS_TEST", Epoch::NIX_DEFAULT);
        assert_eq!(a.disk_guid, Some(g));
        assert_eq!(g.to_uuid().get_version_num(), 5);
        assert_ne!(g, derived_disk_guid("NIXOS_TEST", Epoch(315_532_801)));
        assert_ne!(g, derived_disk_guid("NIXOS_TEST2", Epoch::NIX_DEFAULT));
        // xorriso with SOURCE_DATE_EPOCH=1700000000 wrote signature 0x624e3853.
        assert_eq!(disk_signature(Epoch(1_700_000_000)).unwrap(), 0x624e_3853);
        assert_eq!(disk_signature(Epoch::NIX_DEFAULT).unwrap(), 0x9fb6_382f);
    }

    #[test]
    fn efi_load_size() {
        assert_eq!(el_torito_efi_sector_count(2 * 1024 * 1024), 4096);
        assert_eq!(el_torito_efi_sector_count(2049 * 1024), 4100);
        assert_eq!(el_torito_efi_sector_count(32766 * 1024), 65532);
        assert_eq!(el_torito_efi_sector_count(32767 * 1024), 0);
        assert_eq!(el_torito_efi_sector_count(40_000 * 1024), 0);
    }

    #[test]
    fn request_errors() {
        let mut r = req(Layout::Nixos, 1225);
        r.mbr_template = None;
        assert!(matches!(plan_system_area(&r), Err(PartError::MissingInput { layout: "nixos", .. })));
        let mut r = req(Layout::Nixos, 1225);
        r.mbr_template = Some(&TEMPLATE[..100]);
        assert!(matches!(plan_system_area(&r), Err(PartError::TemplateTooShort { found: 100 })));
        let mut r = req(Layout::Gpt, 1225);
        r.efi_image = None;
        assert!(matches!(plan_system_area(&r), Err(PartError::MissingInput { layout: "gpt", .. })));
        let mut r = req(Layout::Gpt, 1225);
        r.bios_boot = None;
        assert!(matches!(plan_system_area(&r), Err(PartError::Inconsistent { .. })));
        let mut r = req(Layout::Gpt, 1000);
        r.efi_image = Some(EfiImage { start: Lba2048::new(990), size: 40 * 2048 });
        assert!(matches!(plan_system_area(&r), Err(PartError::OutsideFileSystem { what: "EFI image", .. })));
        let mut r = req(Layout::Gpt, 1225);
        r.efi_image = Some(EfiImage { start: Lba2048::new(15), size: 4096 });
        assert!(matches!(plan_system_area(&r), Err(PartError::BeforeFirstUsable { .. })));
        let mut r = req(Layout::Gpt, 1225);
        r.efi_image = Some(EfiImage { start: Lba2048::new(40), size: 100 });
        assert!(matches!(plan_system_area(&r), Err(PartError::EfiImageTooSmall { .. })));
        let mut r = req(Layout::Gpt, u32::MAX - 10);
        r.bios_boot = Some(Lba2048::new(20));
        assert!(matches!(plan_system_area(&r), Err(PartError::Overflow { .. })));
        assert_eq!("gpt".parse::<Layout>(), Ok(Layout::Gpt));
        assert!("x".parse::<Layout>().is_err());
        assert_eq!(Layout::default_for(true, true), Layout::Nixos);
        assert_eq!(Layout::default_for(false, true), Layout::Gpt);
        assert_eq!(Layout::default_for(false, false), Layout::None);
    }
}
