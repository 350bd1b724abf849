//! El Torito: the boot catalog the boot record points at, and the boot-info-table of the
//! BIOS boot file (mkisofs `-boot-info-table`: 56 bytes at offset 8 of the file).

use super::{EntryKind, Finding, IsoImage, Listing, ProblemKind, Problems, ReadError};
use crate::endian::field_offset;
use crate::iso9660::el_torito::{
    decode_catalog, BootEntry, BootInfoChecksum, BootInfoTable, CatalogProblem, DecodedEntry,
    BOOT_INFO_TABLE_OFFSET, PLATFORM_X86,
};
use crate::iso9660::volume_descriptor::BootRecord;
use crate::read_at::{Located, ReadTyped};
use crate::units::{sector_bytes, Lba2048, ISO_BLOCK};

/// The outcome of checking one boot-info-table field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldCheck {
    /// The field holds what the image says it should.
    Valid,
    /// It does not.
    Invalid {
        /// What it should hold.
        expected: u32,
        /// What it holds.
        found: u32,
    },
    /// The expected value is unknown (the boot file was not found in the tree).
    Unknown,
}

impl FieldCheck {
    fn of(expected: Option<u32>, found: u32) -> FieldCheck {
        match expected {
            None => FieldCheck::Unknown,
            Some(e) if e == found => FieldCheck::Valid,
            Some(expected) => FieldCheck::Invalid { expected, found },
        }
    }
}

/// The boot-info-table of the BIOS boot file, checked field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfoCheck {
    /// Block the BIOS entry loads from.
    pub load_rba: u32,
    /// Path of the tree entry whose first extent starts there, if any.
    pub file: Option<Vec<u8>>,
    /// That file's size.
    pub file_size: Option<u64>,
    /// The 56 bytes at offset 8 of the boot image, with their byte offset in the image.
    pub table: Located<BootInfoTable>,
    /// Whether a table is present: its PVD block is 16 and its file block the load block.
    /// An absent table is no problem (the image was made without `-boot-info-table`).
    pub present: bool,
    /// PVD block (expected: the primary volume descriptor's block).
    pub pvd_lba: FieldCheck,
    /// File block (expected: the load block).
    pub file_lba: FieldCheck,
    /// File length (expected: the boot file's size in the tree).
    pub file_length: FieldCheck,
    /// Checksum of the file from byte 64 on (expected: computed over the image's copy).
    pub checksum: FieldCheck,
}

/// The El Torito boot catalog and what was checked about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElTorito {
    /// Block of the catalog (from the boot record).
    pub catalog_lba: u32,
    /// Decoded entries: the default entry, then section entries, each at the byte offset of
    /// its 32-byte entry in the image.
    pub entries: Vec<Located<DecodedEntry>>,
    /// The boot-info-table check of the default entry, when it is an x86 BIOS entry without
    /// emulation (an emulated diskette or disk image carries none).
    pub boot_info: Option<BootInfoCheck>,
    /// Problems: catalog outside the image or invalid, boot images outside the image, a present
    /// boot-info-table with wrong fields.
    pub problems: Vec<Finding>,
}

impl IsoImage<'_> {
    /// Reads the boot catalog when the image has an El Torito boot record, and checks the BIOS
    /// boot file's boot-info-table. `listing` (the ISO 9660 walk) gives the file sizes.
    pub fn el_torito(&self, listing: &Listing) -> Result<Option<ElTorito>, ReadError> {
        let Some(br) = self.boot_record else { return Ok(None) };
        let mut p = Problems::new(self.limits.max_problems);
        let cat_start = Lba2048::new(br.catalog_lba).byte_offset();
        let catalog_entry = listing
            .entries
            .iter()
            .find(|e| e.kind == EntryKind::File && e.first_lba() == br.catalog_lba && e.size > 0);
        // The catalog file's size when the tree has it, else one block; never past the image.
        let cat_len = catalog_entry
            .map_or(ISO_BLOCK, |e| e.size)
            .min(self.limits.max_catalog_bytes)
            .min(self.len().saturating_sub(cat_start))
            .max(64);
        let mut out = ElTorito {
            catalog_lba: br.catalog_lba,
            entries: Vec::new(),
            boot_info: None,
            problems: Vec::new(),
        };
        if br.catalog_lba == 0 || !self.inside(cat_start, 64) {
            p.push(
                ProblemKind::ExtentOutsideImage,
                "El Torito boot record",
                "catalog_lba",
                Some(Lba2048::new(br.lba).byte_offset() + field_offset!(BootRecord, catalog_lba)),
                format!("a catalog block within the image's {} bytes", self.len()),
                format!("block {}", br.catalog_lba),
            );
            out.problems = p.finish();
            return Ok(Some(out));
        }
        let cat = self.read_vec(cat_start, usize::try_from(cat_len).unwrap_or(2048), "boot catalog")?;
        match decode_catalog(&cat) {
            Ok(c) => {
                if c.checksum_sum != 0 {
                    p.push(
                        ProblemKind::BadCatalog,
                        format!("El Torito boot catalog at block {}", br.catalog_lba),
                        "validation entry",
                        Some(cat_start),
                        "header id 1, key bytes 55 AA, words summing to 0",
                        format!("{:?}", CatalogProblem::BadChecksum(c.checksum_sum)),
                    );
                }
                out.entries =
                    c.entries.into_iter().map(|e| Located::new(cat_start + e.offset as u64, e)).collect();
            }
            Err(e) => p.push(
                ProblemKind::BadCatalog,
                format!("El Torito boot catalog at block {}", br.catalog_lba),
                "validation entry",
                Some(cat_start),
                "header id 1, key bytes 55 AA, words summing to 0",
                format!("{e:?}"),
            ),
        }
        for (i, e) in out.entries.iter().enumerate() {
            let start = Lba2048::new(e.entry.load_rba).byte_offset();
            let len = sector_bytes(u32::from(e.entry.sector_count));
            if !self.inside(start, len.max(1)) {
                p.push(
                    ProblemKind::ExtentOutsideImage,
                    format!("El Torito boot catalog entry {i}"),
                    "load_rba",
                    Some(e.at(field_offset!(BootEntry, load_rba))),
                    format!("a boot image within the image's {} bytes", self.len()),
                    format!("block {} + {} sectors", e.entry.load_rba, e.entry.sector_count),
                );
            }
        }
        // A floppy or hard disk emulation image is read as a drive: no boot-info-table there.
        let bios = out
            .entries
            .first()
            .filter(|e| e.section == 0 && e.entry.platform == PLATFORM_X86 && !e.emulation().is_emulated());
        if let Some(bios) = bios {
            out.boot_info = self.boot_info(listing, bios.entry.load_rba, &mut p)?;
        }
        out.problems = p.finish();
        Ok(Some(out))
    }

    fn boot_info(
        &self,
        listing: &Listing,
        load_rba: u32,
        p: &mut Problems,
    ) -> Result<Option<BootInfoCheck>, ReadError> {
        let start = Lba2048::new(load_rba).byte_offset();
        let table_off = start + BOOT_INFO_TABLE_OFFSET as u64;
        if !self.inside(table_off, std::mem::size_of::<BootInfoTable>() as u64) {
            return Ok(None);
        }
        let table = self.src.read_located::<BootInfoTable>(table_off, "boot-info-table")?;
        let file = listing.entries.iter().find(|e| e.kind == EntryKind::File && e.first_lba() == load_rba);
        let pvd = self.primary.descriptor_lba;
        let present = table.pvd_lba.get() == pvd && table.file_lba.get() == load_rba;
        // The file's size: from the tree, else (for a hidden file) what the table claims.
        let size = file.map(|f| f.size).or_else(|| present.then_some(u64::from(table.file_length.get())));
        let checksum = match size {
            Some(size) if size <= 64 << 20 && self.inside(start, size) => {
                let mut sum = BootInfoChecksum::default();
                let mut buf = vec![0u8; 64 << 10];
                let mut done = 0u64;
                while done < size {
                    let n = (size - done).min(buf.len() as u64) as usize;
                    self.src.read_into(start + done, &mut buf[..n], "boot file")?;
                    sum.update(&buf[..n]);
                    done += n as u64;
                }
                Some(sum.finish())
            }
            _ => None,
        };
        let check = BootInfoCheck {
            load_rba,
            file: file.map(|f| f.path.clone()),
            file_size: file.map(|f| f.size),
            present,
            pvd_lba: FieldCheck::of(Some(pvd), table.pvd_lba.get()),
            file_lba: FieldCheck::of(Some(load_rba), table.file_lba.get()),
            file_length: FieldCheck::of(
                file.map(|f| u32::try_from(f.size).unwrap_or(u32::MAX)),
                table.file_length.get(),
            ),
            checksum: FieldCheck::of(checksum, table.checksum.get()),
            table,
        };
        if check.present {
            let name = format!(
                "boot-info-table of {}",
                file.map_or_else(|| format!("the boot image at block {load_rba}"), |f| f.path_lossy())
            );
            for (field, at, c) in [
                ("bi_pvd", field_offset!(BootInfoTable, pvd_lba), check.pvd_lba),
                ("bi_file", field_offset!(BootInfoTable, file_lba), check.file_lba),
                ("bi_length", field_offset!(BootInfoTable, file_length), check.file_length),
                ("bi_csum", field_offset!(BootInfoTable, checksum), check.checksum),
            ] {
                if let FieldCheck::Invalid { expected, found } = c {
                    p.push(
                        ProblemKind::BootInfoTable,
                        name.clone(),
                        field,
                        Some(check.table.at(at)),
                        expected,
                        found,
                    );
                }
            }
        }
        Ok(Some(check))
    }
}
