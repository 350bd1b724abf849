//! `isoforge verify`: the consistency checks of a whole image.
//!
//! - every problem the ISO 9660 reader found (descriptors, both-endian copies, directory records,
//!   Rock Ridge, path tables, extents outside the image, the El Torito catalog, the
//!   boot-info-table, a truncated image);
//! - the MBR and GPT checks (signatures, CRCs, backup vs primary, entries in range); the
//!   `nixos` layout's and every isohybrid hybrid GPT's intended overlap ("ISOHybrid…" starting
//!   at sector 0 and containing the other partitions) is information, not an error;
//! - the El Torito EFI entry's start equals the ESP's in the MBR and in the GPT, and the ESP is
//!   as large as the EFI image file;
//! - the isohybrid boot-file field (MBR bytes 432..440) names the BIOS boot image; GRUB's MBR
//!   (`grub2-mbr`: that sector + 4, as `--grub2-boot-info` intends) is a note, and so is boot
//!   code that is neither ISOLINUX's nor GRUB's;
//! - floppy and hard disk emulation boot images get no boot-info-table check (the ISO 9660
//!   reader does none);
//! - no two file or directory extents overlap (identical extents, shared data, are allowed);
//! - every embedded payload is readable, and a FAT one passes fsck-level checks.

use super::{Image, InspectError, Payload};
use crate::endian::field_offset;
use crate::iso9660::el_torito::BootEntry;
use crate::iso9660::read::EntryKind;
use crate::part::gpt::{GptEntry, Guid};
use crate::part::layout::Layout;
use crate::part::mbr::{Mbr, MbrPartitionRecord, OS_TYPE_EFI};
use crate::read_at::ReadAt;
use crate::units::{Lba2048, Lba512};

pub use crate::finding::{Finding, Severity};

/// Most overlap findings reported (the rest are counted in one finding).
pub const MAX_OVERLAP_FINDINGS: usize = 1000;

/// Whether `findings` hold a problem (an error or a warning): `verify`'s exit status 1.
pub fn has_problems(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_problem)
}

/// Runs every check on `image` (read from `src`) and returns the findings, errors first.
pub fn verify(image: &Image, src: &dyn ReadAt) -> Result<Vec<Finding>, InspectError> {
    // The ISO 9660 reader's findings come with their severity (a reached limit is a warning).
    let mut out = image.iso_problems.clone();
    system_area(image, &mut out);
    efi_range(image, src, &mut out)?;
    isohybrid_field(image, &mut out);
    overlaps(image, &mut out);
    for e in &image.embedded {
        // The payload readers' offsets are from the payload's start.
        let inside = |p: &Finding| p.clone().shifted(e.offset).within(&e.name);
        match &e.payload {
            Payload::Fat(f) => out.extend(f.problems.iter().map(inside)),
            Payload::Squashfs(q) => out.extend(q.problems.iter().map(inside)),
            Payload::Unrecognised { why } => out.push(Finding::error(
                format!("{} (found by {})", e.name, e.found_by.join(", ")),
                "",
                Some(e.offset),
                "a FAT or squashfs file system",
                why,
            )),
        }
    }
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.offset.cmp(&b.offset)));
    Ok(out)
}

fn system_area(image: &Image, out: &mut Vec<Finding>) {
    let sa = &image.system_area;
    let nixos = sa.layout == Some(Layout::Nixos);
    let hybrid = nixos || sa.isohybrid_gpt();
    for m in &sa.mismatches {
        // The isohybrid "hybrid" GPT (xorriso, syslinux isohybrid --uefi): "ISOHybrid…"
        // (entry 1) covers the whole image from sector 0, so it starts before the first usable
        // sector and contains the other entries.
        let intended = hybrid
            && m.structure.starts_with("GPT entry")
            && m.field == "starting_lba"
            && (m.structure.starts_with("GPT entry 1 (")
                || m.expected.starts_with("no overlap with entry 1 "));
        let mut f = m.clone();
        if intended {
            f.severity = Severity::Info;
            f.expected = if nixos {
                format!("{} (nixos layout: intended, as xorriso does)", m.expected)
            } else {
                format!("{} (isohybrid hybrid GPT: intended, as xorriso and isohybrid do)", m.expected)
            };
        }
        out.push(f);
    }
}

/// Whether the `len` bytes at `a` and at `b` are equal (an ESP appended as a copy of the El
/// Torito EFI image, as `xorriso -append_partition` makes).
fn same_bytes(src: &dyn ReadAt, a: u64, b: u64, len: u64) -> Result<bool, InspectError> {
    let mut x = vec![0u8; 1 << 20];
    let mut y = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let n = usize::try_from((len - done).min(1 << 20)).unwrap_or(1 << 20);
        if src.read_at(a + done, &mut x[..n]).is_err() || src.read_at(b + done, &mut y[..n]).is_err() {
            return Ok(false);
        }
        if x[..n] != y[..n] {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}

/// Byte offset of field `field` of MBR partition record `index` (1-based).
fn mbr_record_field(index: usize, field: u64) -> u64 {
    let record = std::mem::size_of::<MbrPartitionRecord>() as u64;
    field_offset!(Mbr, partition_record) + record * (index as u64).saturating_sub(1) + field
}

fn efi_range(image: &Image, src: &dyn ReadAt, out: &mut Vec<Finding>) -> Result<(), InspectError> {
    let Some(efi) = image.efi_entry() else { return Ok(()) };
    let start = Lba2048::new(efi.load_rba).to_lba512();
    let file = image.file_at_block(efi.load_rba);
    let size_sectors = file.map(|f| f.size.div_ceil(512));
    let entry_off = efi.offset;
    // A separate ESP holding the same bytes as the El Torito image is a copy: information.
    let copy = |part_start: u64| -> Result<bool, InspectError> {
        match file {
            Some(f)
                if f.size > 0
                    && Lba512::new(part_start)
                        .byte_offset()
                        .and_then(|s| s.checked_add(f.size))
                        .is_some_and(|e| e <= image.len) =>
            {
                same_bytes(
                    src,
                    start.saturating_byte_offset(),
                    Lba512::new(part_start).saturating_byte_offset(),
                    f.size,
                )
            }
            _ => Ok(false),
        }
    };
    for p in image.system_area.partitions.iter().filter(|p| p.os_type == OS_TYPE_EFI) {
        if u64::from(p.start_lba) != start.get() {
            let is_copy = copy(u64::from(p.start_lba))?;
            out.push(Finding::new(
                if is_copy { Severity::Info } else { Severity::Error },
                p.name(),
                format!("start_lba (the ESP) vs {}.load_rba", efi.name()),
                Some(mbr_record_field(p.index, field_offset!(MbrPartitionRecord, starting_lba))),
                format!("sector {} (El Torito EFI image at block {})", start.get(), efi.load_rba),
                if is_copy {
                    format!("sector {}, a byte-identical copy of the EFI image", p.start_lba)
                } else {
                    format!("sector {}", p.start_lba)
                },
            ));
        }
        if let Some(n) = size_sectors.filter(|&n| n != u64::from(p.sectors)) {
            out.push(Finding::new(
                Severity::Error,
                p.name(),
                "size_in_lba (the ESP) vs the EFI image file",
                Some(mbr_record_field(p.index, field_offset!(MbrPartitionRecord, size_in_lba))),
                format!("{n} sectors"),
                format!("{} sectors", p.sectors),
            ));
        }
    }
    if let Some(g) = &image.system_area.gpt {
        let base = g
            .primary
            .as_ref()
            .map(|h| Lba512::new(h.header.partition_entry_lba.get()).saturating_byte_offset());
        for p in g.entries.iter().filter(|p| p.type_guid == Guid::EFI_SYSTEM.to_string()) {
            let entry = std::mem::size_of::<GptEntry>() as u64;
            let off = base.map(|b| b.saturating_add(u64::from(p.index.saturating_sub(1)) * entry));
            if p.first_lba != start.get() {
                let is_copy = copy(p.first_lba)?;
                out.push(Finding::new(
                    if is_copy { Severity::Info } else { Severity::Error },
                    p.name(),
                    format!("starting_lba (the ESP) vs {}.load_rba", efi.name()),
                    off.map(|o| o.saturating_add(field_offset!(GptEntry, starting_lba))),
                    format!("sector {} (El Torito EFI image at block {})", start.get(), efi.load_rba),
                    if is_copy {
                        format!("sector {}, a byte-identical copy of the EFI image", p.first_lba)
                    } else {
                        format!("sector {}", p.first_lba)
                    },
                ));
            }
            let len = p.last_lba.saturating_sub(p.first_lba) + 1;
            if let Some(n) = size_sectors.filter(|&n| n != len) {
                out.push(Finding::new(
                    Severity::Error,
                    p.name(),
                    "ending_lba (the ESP) vs the EFI image file",
                    off.map(|o| o.saturating_add(field_offset!(GptEntry, ending_lba))),
                    format!("{} ({n} sectors)", p.first_lba.saturating_add(n).saturating_sub(1)),
                    format!("{} ({len} sectors)", p.last_lba),
                ));
            }
        }
    }
    if efi.load_rba == 0 || Lba2048::new(efi.load_rba).byte_offset() >= image.len {
        out.push(Finding::new(
            Severity::Error,
            efi.name(),
            "load_rba",
            Some(entry_off + field_offset!(BootEntry, load_rba)),
            "a block inside the image",
            efi.load_rba,
        ));
    }
    Ok(())
}

/// The MBR's boot-file field (bytes 432..440) against the first El Torito boot image at
/// block `N`: ISOLINUX's isohybrid MBR holds sector `4N`; GRUB's MBR (`--grub2-mbr`, what
/// `grub-mkrescue` and every `xorriso --grub2-boot-info` image write) holds `4N + 4`, the
/// image's second 2048-byte block, on purpose. Only an MBR recognised as isohybrid code (it
/// holds "isolinux") with neither value is an error; other boot code's bytes there are its own
/// business (a note).
fn isohybrid_field(image: &Image, out: &mut Vec<Finding>) {
    let sa = &image.system_area;
    if sa.boot_code_zero || !sa.mbr_signature_ok {
        return;
    }
    let Some(bios) = image.bios_entry() else { return };
    let want = Lba2048::new(bios.load_rba).to_lba512().get();
    let found = sa.isohybrid_boot_lba;
    if found == want {
        return;
    }
    let emulation = bios.emulation();
    let image_name = if emulation.is_emulated() {
        format!("the BIOS boot image at block {}, {} emulation", bios.load_rba, emulation.name())
    } else {
        format!("the BIOS boot image at block {}", bios.load_rba)
    };
    if sa.recognition.grub2_mbr {
        out.push(Finding::new(
            Severity::Info,
            "MBR",
            "grub2 boot info (bytes 432..440, grub2-mbr)",
            Some(432),
            format!("sector {} ({image_name}, + 4: GRUB's MBR loads from there)", want + 4),
            format!("sector {found}"),
        ));
    } else if sa.boot_code_looks_isolinux() {
        out.push(Finding::new(
            Severity::Error,
            "MBR",
            "isohybrid boot-file field (bytes 432..440)",
            Some(432),
            format!("sector {want} ({image_name})"),
            format!("sector {found}"),
        ));
    } else {
        out.push(Finding::new(
            Severity::Info,
            "MBR",
            "bytes 432..440 (boot code neither isohybrid nor grub2-mbr)",
            Some(432),
            format!("sector {want} (isohybrid) or {} (grub2-mbr) for {image_name}", want + 4),
            format!("{found:#x}, left to the boot code"),
        ));
    }
}

fn overlaps(image: &Image, out: &mut Vec<Finding>) {
    // (start, end, path); identical extents are shared data, not an overlap.
    let mut ext: Vec<(u64, u64, &[u8])> = Vec::new();
    for e in &image.primary.entries {
        if e.is_relocation_link() {
            continue;
        }
        let dir = e.kind == EntryKind::Dir;
        for &(lba, len) in e.extents.iter().take(if dir { 1 } else { usize::MAX }) {
            if len > 0 {
                let s = Lba2048::new(lba).byte_offset();
                ext.push((s, s + u64::from(len), &e.path));
            }
        }
    }
    ext.sort();
    ext.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
    let mut reported = 0usize;
    let mut more = 0u64;
    let mut cur: Option<(u64, u64, &[u8])> = None;
    for &(s, e, p) in &ext {
        if let Some((cs, ce, cp)) = cur {
            if s < ce {
                if reported < MAX_OVERLAP_FINDINGS {
                    out.push(Finding::new(
                        Severity::Error,
                        format!("extent of {}", String::from_utf8_lossy(p)),
                        "",
                        Some(s),
                        format!("no overlap with {} (bytes {cs:#x}..{ce:#x})", String::from_utf8_lossy(cp)),
                        format!("bytes {s:#x}..{e:#x}"),
                    ));
                    reported += 1;
                } else {
                    more += 1;
                }
                if e <= ce {
                    continue;
                }
            }
        }
        cur = Some((s, e, p));
    }
    if more > 0 {
        out.push(Finding::new(
            Severity::Error,
            "file extents",
            "",
            None,
            "no overlaps",
            format!("{more} more overlaps, not listed"),
        ));
    }
}
