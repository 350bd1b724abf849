//! Byte maps: which structure each byte of an image belongs to (for `diff`).
//!
//! A [`ByteMap`] is a list of named regions — every volume descriptor field, path table,
//! directory record field and Rock Ridge entry, catalog entry field, MBR and GPT field, each
//! file's content extents, and, inside an embedded FAT image, its boot sector fields, FATs,
//! directory entries and file clusters. Regions nest (a FAT field lies inside the content of
//! `/boot/efi.img`; an MBR field inside the system area): [`ByteMap::finish`] flattens them into
//! disjoint leaves, each byte going to the smallest region that covers it. Bytes in no region
//! are "unattributed": `diff` reports them by offset.
//!
//! Names: a region's name is its owner followed by its field: `PVD.volume_creation_date`,
//! `GPT.primary.disk_guid`, `ElTorito.section[1].entry[0].load_size`,
//! `dirrec /boot/bzImage extent_lba`, `inode /boot/bzImage mode`,
//! `/boot/efi.img: FAT.BPB.volume_serial`, `/boot/efi.img: FAT dirent /EFI/BOOT wrt_date`.
//! Content regions (files, path tables, FATs, directories) carry the offset of their first byte
//! within the whole (the file), so a report says `file /boot/bzImage bytes 0x1000..0x1010`.

use std::collections::{BTreeSet, BinaryHeap};
use std::mem::{offset_of, size_of, size_of_val};

use zerocopy::{FromBytes, FromZeros};

use super::{Image, InspectError, Payload};
use crate::fat_fs::bpb::{BootSector16, BootSector32, Bpb, ExtBpb, FatType, FsInfo};
use crate::fat_fs::dir_entry::DirEntry;
use crate::iso9660::directory_record::{decode_record, DirectoryRecordHeader};
use crate::iso9660::el_torito::{BootEntry, BootInfoTable, ValidationEntry};
use crate::iso9660::read::{EntryKind, Listing};
use crate::iso9660::rock_ridge::{Px, PX_LEN_WITHOUT_SERIAL};
use crate::iso9660::susp::{entries, FixedEntry};
use crate::iso9660::volume_descriptor::{BootRecord, VolumeDescriptor};
use crate::part::gpt::{GptEntry, GptHeader};
use crate::part::layout::SYSTEM_AREA_BYTES;
use crate::part::mbr::{Mbr, MbrPartitionRecord, ISOHYBRID_BOOT_LBA};
use crate::read_at::{ReadAt, ReadTyped};
use crate::units::{Cluster, Lba2048, Lba512, ISO_BLOCK, SECTOR};

/// Most directory bytes re-read to map directory records, over the whole image.
pub const MAX_DIRECTORY_BYTES_MAPPED: u64 = 1 << 30;

/// A named byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// First byte (image offset).
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Index of the owner's name in [`ByteMap::owners`].
    pub owner: u32,
    /// The field ("" for a content region).
    pub field: &'static str,
    /// A content region: differences are reported with offsets relative to `rel`.
    pub content: bool,
    /// For content: the offset of `start` within the whole (the file, the table).
    pub rel: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leaf {
    start: u64,
    end: u64,
    region: u32,
}

/// The regions of one image, and their flattening.
#[derive(Debug, Clone, Default)]
pub struct ByteMap {
    /// Owner names (`PVD.`, `file /boot/bzImage`, `inode /x `): a region's name is its owner's
    /// name followed by its field.
    pub owners: Vec<String>,
    /// Every region, as added.
    pub regions: Vec<Region>,
    leaves: Vec<Leaf>,
}

/// Adds one region per listed field of a zerocopy layout struct at `base`, named by the struct
/// field (or the alias after `=>`).
macro_rules! fields {
    ($map:expr, $ty:ty, $base:expr, $owner:expr, [$($f:ident $(=> $alias:literal)?),* $(,)?]) => {{
        let z = <$ty as FromZeros>::new_zeroed();
        $(
            $map.field(u64::saturating_add($base, offset_of!($ty, $f) as u64), size_of_val(&z.$f) as u64, $owner,
                fields!(@name $f $(, $alias)?));
        )*
    }};
    (@name $f:ident) => { stringify!($f) };
    (@name $f:ident, $alias:literal) => { $alias };
}

impl ByteMap {
    /// The map of `img` (read from `src`, which directory records are re-read from).
    pub fn build(img: &Image, src: &dyn ReadAt) -> Result<ByteMap, InspectError> {
        let mut m = ByteMap::default();
        m.system_area(img);
        m.descriptors(img);
        m.path_tables(img);
        let mut budget = MAX_DIRECTORY_BYTES_MAPPED;
        m.directories(&img.primary, "dirrec ", src, &mut budget)?;
        if let Some(j) = &img.joliet_tree {
            m.directories(j, "joliet dirrec ", src, &mut budget)?;
        }
        m.files(&img.primary);
        m.el_torito(img);
        for e in &img.embedded {
            match &e.payload {
                Payload::Fat(f) => m.fat(&format!("{}: ", e.name), e.offset, f),
                Payload::Squashfs(q) => m.squashfs(&format!("{}: ", e.name), e.offset, q),
                _ => {}
            }
        }
        m.finish();
        Ok(m)
    }

    /// The index of owner `name`, added when new (owners are few per structure, so a linear
    /// search of the last few is enough: owners are added in runs).
    pub fn owner(&mut self, name: impl Into<String>) -> u32 {
        let name = name.into();
        if let Some(i) = self.owners.iter().rev().take(4).position(|o| *o == name) {
            return u32::try_from(self.owners.len() - 1 - i).unwrap_or(u32::MAX);
        }
        self.owners.push(name);
        u32::try_from(self.owners.len() - 1).unwrap_or(u32::MAX)
    }

    /// Adds a field region.
    pub fn field(&mut self, start: u64, len: u64, owner: u32, field: &'static str) {
        if len > 0 {
            self.regions.push(Region {
                start,
                end: start.saturating_add(len),
                owner,
                field,
                content: false,
                rel: 0,
            });
        }
    }

    /// Adds a content region whose first byte is byte `rel` of its whole.
    pub fn content(&mut self, start: u64, len: u64, owner: u32, rel: u64) {
        if len > 0 {
            self.regions.push(Region {
                start,
                end: start.saturating_add(len),
                owner,
                field: "",
                content: true,
                rel,
            });
        }
    }

    /// The full name of region `r` (owner and field).
    pub fn name(&self, r: u32) -> String {
        let Some(reg) = self.regions.get(r as usize) else { return "unattributed".into() };
        let owner = self.owners.get(reg.owner as usize).map_or("", String::as_str);
        format!("{owner}{}", reg.field).trim_end().to_string()
    }

    /// The region `r`.
    pub fn region(&self, r: u32) -> Option<&Region> {
        self.regions.get(r as usize)
    }

    /// Flattens the regions into disjoint leaves: each byte goes to the smallest region covering
    /// it (the one added first among equals).
    pub fn finish(&mut self) {
        let mut order: Vec<u32> = (0..u32::try_from(self.regions.len()).unwrap_or(u32::MAX)).collect();
        order.sort_by_key(|&i| self.regions[i as usize].start);
        let mut bounds: Vec<u64> = self.regions.iter().flat_map(|r| [r.start, r.end]).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut active: BTreeSet<(u64, u32)> = BTreeSet::new();
        let mut ends: BinaryHeap<std::cmp::Reverse<(u64, u64, u32)>> = BinaryHeap::new();
        let mut next = 0usize;
        let mut leaves: Vec<Leaf> = Vec::new();
        for w in bounds.windows(2) {
            let (a, b) = (w[0], w[1]);
            while let Some(&i) = order.get(next) {
                let r = &self.regions[i as usize];
                if r.start > a {
                    break;
                }
                let len = r.end - r.start;
                active.insert((len, i));
                ends.push(std::cmp::Reverse((r.end, len, i)));
                next += 1;
            }
            while let Some(std::cmp::Reverse((end, len, i))) = ends.peek().copied() {
                if end > a {
                    break;
                }
                ends.pop();
                active.remove(&(len, i));
            }
            if let Some(&(_, i)) = active.first() {
                match leaves.last_mut() {
                    Some(l) if l.region == i && l.end == a => l.end = b,
                    _ => leaves.push(Leaf { start: a, end: b, region: i }),
                }
            }
        }
        self.leaves = leaves;
    }

    /// The region holding byte `pos` (`None`: unattributed) and where that attribution ends.
    pub fn at(&self, pos: u64) -> (Option<u32>, u64) {
        let i = self.leaves.partition_point(|l| l.start <= pos);
        if i > 0 {
            let l = self.leaves[i - 1];
            if l.end > pos {
                return (Some(l.region), l.end);
            }
        }
        (None, self.leaves.get(i).map_or(u64::MAX, |l| l.start))
    }

    fn system_area(&mut self, img: &Image) {
        let sa = &img.system_area;
        let all = self.owner("system area");
        self.content(0, SYSTEM_AREA_BYTES as u64, all, 0);
        let mbr = self.owner("MBR.");
        let code = offset_of!(Mbr, boot_code) as u64;
        let lba = ISOHYBRID_BOOT_LBA;
        self.field(code, lba.start as u64, mbr, "boot_code");
        self.field(code + lba.start as u64, lba.len() as u64, mbr, "isohybrid_boot_lba");
        fields!(self, Mbr, 0, mbr, [unique_mbr_disk_signature => "disk_signature", unknown, signature]);
        for i in 0..4u64 {
            let o = self.owner(format!("MBR.partition[{}].", i + 1));
            let base = offset_of!(Mbr, partition_record) as u64 + i * size_of::<MbrPartitionRecord>() as u64;
            fields!(
                self,
                MbrPartitionRecord,
                base,
                o,
                [
                    boot_indicator,
                    start_head,
                    start_sector,
                    start_track,
                    os_indicator,
                    end_head,
                    end_sector,
                    end_track,
                    starting_lba,
                    size_in_lba,
                ]
            );
        }
        let Some(g) = &sa.gpt else { return };
        for (name, h) in [("primary", &g.primary), ("backup", &g.backup)] {
            let Some(h) = h else { continue };
            let base = h.header.offset;
            let o = self.owner(format!("GPT.{name}."));
            fields!(
                self,
                GptHeader,
                base,
                o,
                [
                    signature,
                    revision,
                    header_size,
                    header_crc32,
                    reserved,
                    my_lba,
                    alternate_lba,
                    first_usable_lba,
                    last_usable_lba,
                    disk_guid,
                    partition_entry_lba,
                    number_of_partition_entries,
                    size_of_partition_entry,
                    partition_entry_array_crc32,
                ]
            );
            // The rest of the header's sector.
            self.field(h.header.end(), SECTOR - size_of::<GptHeader>() as u64, o, "reserved_tail");
            let x = &h.header;
            let arr = Lba512::new(x.partition_entry_lba.get()).saturating_byte_offset();
            let arr_len = x.entry_array_bytes().min(crate::part::gpt::MAX_ENTRY_ARRAY_BYTES);
            let ao = self.owner(format!("GPT.{name}.entry_array"));
            self.content(arr, arr_len, ao, 0);
            for p in &g.entries {
                let o = self.owner(format!("GPT.{name}.entry[{}].", p.index));
                let at =
                    arr.saturating_add(u64::from(p.index.saturating_sub(1)) * size_of::<GptEntry>() as u64);
                fields!(
                    self,
                    GptEntry,
                    at,
                    o,
                    [
                        partition_type_guid,
                        unique_partition_guid,
                        starting_lba,
                        ending_lba,
                        attributes,
                        partition_name,
                    ]
                );
            }
        }
    }

    fn descriptors(&mut self, img: &Image) {
        for d in &img.descriptors {
            let base = Lba2048::new(d.lba).byte_offset();
            match d.role {
                "primary" | "joliet" => {
                    let p = if d.role == "primary" { "PVD" } else { "SVD" };
                    let o = self.owner(format!("{p}."));
                    fields!(self, VolumeDescriptor, base, o, [
                        descriptor_type, standard_id, version, volume_flags, system_id, volume_id,
                        unused1, volume_space_size, escape_sequences, volume_set_size,
                        volume_sequence_number, logical_block_size, path_table_size,
                        type_l_path_table, optional_type_l_path_table, type_m_path_table,
                        optional_type_m_path_table, root_directory_record, volume_set_id,
                        publisher_id, data_preparer_id, application_id, copyright_file_id,
                        abstract_file_id, bibliographic_file_id,
                        creation_date => "volume_creation_date",
                        modification_date => "volume_modification_date",
                        expiration_date => "volume_expiration_date",
                        effective_date => "volume_effective_date",
                        file_structure_version, reserved1, application_use, reserved2,
                    ]);
                    let r = self.owner(format!("{p}.root_directory_record."));
                    let rb = base + offset_of!(VolumeDescriptor, root_directory_record) as u64;
                    self.record_header(rb, r);
                }
                "el torito" => {
                    let o = self.owner("BootRecord.");
                    fields!(
                        self,
                        BootRecord,
                        base,
                        o,
                        [descriptor_type, standard_id, version, boot_system_id, boot_id, catalog_lba, unused,]
                    );
                }
                "terminator" => {
                    let o = self.owner("VDST");
                    self.field(base, ISO_BLOCK, o, "");
                }
                other => {
                    let o = self.owner(format!("volume descriptor at block {} ({other}) ", d.lba));
                    self.content(base, ISO_BLOCK, o, 0);
                }
            }
        }
    }

    fn record_header(&mut self, base: u64, o: u32) {
        fields!(
            self,
            DirectoryRecordHeader,
            base,
            o,
            [
                length,
                extended_attribute_length,
                extent_lba,
                data_length,
                recording_date,
                file_flags,
                file_unit_size,
                interleave_gap,
                volume_sequence_number,
                file_identifier_length,
            ]
        );
    }

    fn path_tables(&mut self, img: &Image) {
        for (p, v) in [("PVD", Some(&img.pvd)), ("SVD", img.joliet.as_ref())] {
            let Some(v) = v else { continue };
            for (kind, lba) in [
                ("L", v.l_path_table),
                ("optional L", v.optional_l_path_table),
                ("M", v.m_path_table),
                ("optional M", v.optional_m_path_table),
            ] {
                if lba != 0 {
                    let o = self.owner(format!("path table {kind} of the {p}"));
                    self.content(Lba2048::new(lba).byte_offset(), u64::from(v.path_table_size), o, 0);
                }
            }
        }
    }

    fn directories(
        &mut self,
        l: &Listing,
        prefix: &str,
        src: &dyn ReadAt,
        budget: &mut u64,
    ) -> Result<(), InspectError> {
        let by_record: std::collections::BTreeMap<u64, &[u8]> =
            l.entries.iter().map(|e| (e.record_offset, e.path.as_slice())).collect();
        let skip = l.susp.as_ref().map_or(0usize, |s| usize::from(s.skip));
        let rr = l.has_rock_ridge();
        for d in l.entries.iter().filter(|e| e.kind == EntryKind::Dir && !e.is_relocation_link()) {
            let Some(&(lba, len)) = d.extents.first() else { continue };
            let start = Lba2048::new(lba).byte_offset();
            let len = u64::from(len);
            let dpath = String::from_utf8_lossy(&d.path).into_owned();
            let o = self.owner(format!("directory {dpath}"));
            self.content(start, len, o, 0);
            if len > *budget || start.checked_add(len).is_none_or(|e| e > src.len()) {
                continue;
            }
            *budget -= len;
            let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
            src.read_into(start, &mut buf, "directory")?;
            for (bi, block) in buf.chunks(ISO_BLOCK as usize).enumerate() {
                let mut pos = 0usize;
                // The fixed part and a one-byte identifier.
                let min_record = size_of::<DirectoryRecordHeader>() + 1;
                while pos + min_record <= block.len() {
                    let rlen = usize::from(block[pos]);
                    if rlen == 0 {
                        break;
                    }
                    if rlen < min_record || pos + rlen > block.len() {
                        break;
                    }
                    let at = start + (bi as u64) * ISO_BLOCK + pos as u64;
                    let rec = &block[pos..pos + rlen];
                    let (id_len, id, system_use) = match decode_record(rec) {
                        Ok(r) => (r.identifier.len(), r.identifier, r.system_use),
                        Err(_) => {
                            let id_len = DirectoryRecordHeader::read_from_prefix(rec)
                                .map_or(0, |(h, _)| usize::from(h.file_identifier_length));
                            (id_len, &[][..], &[][..])
                        }
                    };
                    let name = match by_record.get(&at) {
                        Some(p) => String::from_utf8_lossy(p).into_owned(),
                        None if id == [0] => format!("{}/.", dpath.trim_end_matches('/')),
                        None if id == [1] => format!("{}/..", dpath.trim_end_matches('/')),
                        None => format!("{}/{}", dpath.trim_end_matches('/'), String::from_utf8_lossy(id)),
                    };
                    let ro = self.owner(format!("{prefix}{name} "));
                    self.record_header(at, ro);
                    self.field(
                        at + size_of::<DirectoryRecordHeader>() as u64,
                        id_len as u64,
                        ro,
                        "file_identifier",
                    );
                    if rr && !system_use.is_empty() {
                        self.susp(system_use, at + (rlen - system_use.len()) as u64, skip, &name);
                    }
                    pos += rlen;
                }
            }
        }
        Ok(())
    }

    fn susp(&mut self, su: &[u8], base: u64, skip: usize, name: &str) {
        let ino = self.owner(format!("inode {name} "));
        let (list, _) = entries(su.get(skip..).unwrap_or_default());
        for e in &list {
            let at = base + (skip + e.offset()) as u64;
            let len = e.bytes().len();
            let field = match &e.signature() {
                b"PX" => {
                    if len >= Px::LEN {
                        fields!(self, Px, at, ino, [
                            file_mode => "mode", file_links => "nlink", file_user_id => "uid",
                            file_group_id => "gid", file_serial_number => "serial",
                        ]);
                    } else if len >= PX_LEN_WITHOUT_SERIAL {
                        fields!(self, Px, at, ino, [
                            file_mode => "mode", file_links => "nlink", file_user_id => "uid",
                            file_group_id => "gid",
                        ]);
                    }
                    "PX"
                }
                b"TF" => "times (TF)",
                b"NM" => "name (NM)",
                b"SL" => "symlink (SL)",
                b"PN" => "device (PN)",
                b"CE" => "continuation (CE)",
                b"SP" => "SUSP SP",
                b"ER" => "SUSP ER",
                b"ST" => "SUSP ST",
                b"RR" => "RR flags",
                b"CL" | b"PL" | b"RE" => "relocation (CL/PL/RE)",
                b"ZF" => "zisofs (ZF)",
                _ => "system use entry",
            };
            self.field(at, len as u64, ino, field);
        }
    }

    fn files(&mut self, l: &Listing) {
        for e in l.entries.iter().filter(|e| e.kind == EntryKind::File && e.size > 0) {
            let o = self.owner(format!("file {}", e.path_lossy()));
            let mut rel = 0u64;
            for &(lba, len) in &e.extents {
                self.content(Lba2048::new(lba).byte_offset(), u64::from(len), o, rel);
                rel += u64::from(len);
            }
        }
    }

    fn el_torito(&mut self, img: &Image) {
        let Some(br) = img.boot_record else { return };
        let cat = Lba2048::new(br.catalog_lba).byte_offset();
        let o = self.owner("ElTorito.catalog");
        self.content(cat, ISO_BLOCK, o, 0);
        let v = self.owner("ElTorito.validation_entry.");
        fields!(
            self,
            ValidationEntry,
            cat,
            v,
            [header_id, platform_id, reserved, id_string, checksum, key55, key_aa]
        );
        for s in &img.catalog {
            let o = self.owner(format!("{}.", s.name()));
            fields!(self, BootEntry, s.offset, o, [
                boot_indicator, media_type, load_segment, system_type, unused1,
                sector_count => "load_size", load_rba, selection_criteria_type, vendor_criteria,
            ]);
        }
        if let Some(b) = img.el_torito.as_ref().and_then(|e| e.boot_info.as_ref()).filter(|b| b.present) {
            let at = b.table.offset;
            // Named after the boot file: its bytes belong to that file (a move explains them).
            let o = match img.file_at_block(b.load_rba) {
                Some(f) => self.owner(format!("{}: boot-info-table.", f.path_lossy())),
                None => self.owner("boot-info-table."),
            };
            fields!(self, BootInfoTable, at, o, [
                pvd_lba => "bi_pvd", file_lba => "bi_file", file_length => "bi_length",
                checksum => "bi_csum", reserved,
            ]);
        }
    }

    fn fat(&mut self, p: &str, base: u64, f: &super::FatInfo) {
        let g = &f.boot.geometry;
        let bpb = self.owner(format!("{p}FAT.BPB."));
        fields!(
            self,
            Bpb,
            base,
            bpb,
            [
                jmp_boot,
                oem_name,
                byts_per_sec,
                sec_per_clus,
                rsvd_sec_cnt,
                num_fats,
                root_ent_cnt,
                tot_sec16,
                media,
                fat_sz16,
                sec_per_trk,
                num_heads,
                hidd_sec,
                tot_sec32,
            ]
        );
        let boot = self.owner(format!("{p}FAT.boot_sector."));
        let ext_at = if g.fat_type == FatType::Fat32 {
            fields!(
                self,
                BootSector32,
                base,
                bpb,
                [fat_sz32, ext_flags, fs_ver, root_clus, fs_info, bk_boot_sec, reserved]
            );
            fields!(self, BootSector32, base, boot, [boot_code, signature]);
            base + offset_of!(BootSector32, ext) as u64
        } else {
            fields!(self, BootSector16, base, boot, [boot_code, signature]);
            base + offset_of!(BootSector16, ext) as u64
        };
        fields!(self, ExtBpb, ext_at, bpb, [
            drv_num, reserved1, boot_sig, vol_id => "volume_serial", vol_lab => "volume_label",
            fil_sys_type,
        ]);
        if g.fat_type == FatType::Fat32 {
            let fi = self.owner(format!("{p}FAT.FSInfo."));
            let at = base + f.boot.sector_offset(f.boot.fsinfo_sector);
            fields!(
                self,
                FsInfo,
                at,
                fi,
                [lead_sig, reserved1, struc_sig, free_count, nxt_free, reserved2, trail_sig]
            );
            if f.boot.backup_boot_sector != 0 {
                let bb = self.owner(format!("{p}FAT.backup_boot_sector"));
                self.content(base + f.boot.sector_offset(f.boot.backup_boot_sector), 512, bb, 0);
            }
        }
        for copy in 0..g.num_fats {
            let o = self.owner(format!("{p}FAT.table[{copy}]"));
            self.content(base + g.fat_offset(copy), g.fat_bytes(), o, 0);
        }
        if g.fat_type != FatType::Fat32 {
            let o = self.owner(format!("{p}FAT.root_directory"));
            self.content(base + g.root_dir_offset(), g.root_dir_bytes(), o, 0);
        } else {
            let o = self.owner(format!("{p}FAT directory /"));
            self.clusters(base, g, &f.root_clusters, u64::MAX, o);
        }
        if let Some(l) = f.label_offset {
            let d = self.owner(format!("{p}FAT volume label entry "));
            self.dirent(base + l, d);
        }
        for (path, off) in &f.dot_entries {
            let d = self.owner(format!("{p}FAT dirent {path} "));
            self.dirent(base + off, d);
        }
        for e in &f.entries {
            let d = self.owner(format!("{p}FAT dirent {} ", e.path));
            self.dirent(base + e.dirent_offset, d);
            for &l in &e.lfn_offsets {
                self.field(base + l, 32, d, "long_name");
            }
            let c = if e.is_dir {
                self.owner(format!("{p}FAT directory {}", e.path))
            } else {
                self.owner(format!("{p}file {}", e.path))
            };
            let size = if e.is_dir { u64::MAX } else { u64::from(e.size) };
            self.clusters(base, g, &e.clusters, size, c);
        }
    }

    fn dirent(&mut self, at: u64, d: u32) {
        fields!(
            self,
            DirEntry,
            at,
            d,
            [
                name,
                attr,
                nt_res,
                crt_time_tenth,
                crt_time,
                crt_date,
                lst_acc_date,
                fst_clus_hi,
                wrt_time,
                wrt_date,
                fst_clus_lo,
                file_size,
            ]
        );
    }

    /// The regions of an embedded squashfs at `base`: superblock fields, the compressor options
    /// block, each metadata block of each table (`squashfs.inode_table metadata block 3`), each
    /// lookup table's index, each file's data blocks (`/x content block 0`, counted from 0) and
    /// each fragment block, named by the files whose tails it holds.
    pub fn squashfs(&mut self, p: &str, base: u64, q: &super::SquashfsInfo) {
        use isoforge_squashfs::inode::DATA_UNCOMPRESSED;
        use isoforge_squashfs::superblock::Superblock;
        let sb = self.owner(format!("{p}squashfs.superblock."));
        fields!(
            self,
            Superblock,
            base,
            sb,
            [
                s_magic,
                inodes,
                mkfs_time,
                block_size,
                fragments,
                compression,
                block_log,
                flags,
                no_ids,
                s_major,
                s_minor,
                root_inode,
                bytes_used,
                id_table_start,
                xattr_id_table_start,
                inode_table_start,
                directory_table_start,
                fragment_table_start,
                lookup_table_start,
            ]
        );
        if q.compressor_options.is_some() {
            let o = self.owner(format!("{p}squashfs.compressor_options"));
            // The options block: 2-byte header and at most a few bytes of options.
            let len = q.compressor_options.as_ref().map_or(0, |x| x.len() as u64 / 2);
            self.field(base + size_of::<Superblock>() as u64, 2 + len, o, "");
        }
        for t in &q.tables {
            for (i, &(o, l)) in t.blocks.iter().enumerate() {
                let ow = self.owner(format!("{p}squashfs.{} metadata block {i}", t.name));
                self.field(base.saturating_add(o), l, ow, "");
            }
            if let Some((o, l)) = t.index {
                let ow = self.owner(format!("{p}squashfs.{} index", t.name));
                self.field(base.saturating_add(o), l, ow, "");
            }
        }
        let mut users: std::collections::BTreeMap<u32, Vec<&str>> = std::collections::BTreeMap::new();
        for e in &q.entries {
            if let super::squashfs::SquashfsKind::File { blocks, fragment, .. } = &e.kind {
                for (i, &(o, w)) in blocks.iter().enumerate() {
                    let len = u64::from(w & (DATA_UNCOMPRESSED - 1));
                    if len > 0 {
                        let ow = self.owner(format!("{p}{} content block {i}", e.path));
                        self.field(base.saturating_add(o), len, ow, "");
                    }
                }
                if let Some((f, _)) = fragment {
                    users.entry(*f).or_default().push(&e.path);
                }
            }
        }
        for (i, &(o, w)) in q.fragments.iter().enumerate() {
            let len = u64::from(w & (DATA_UNCOMPRESSED - 1));
            let files = users.get(&u32::try_from(i).unwrap_or(u32::MAX)).map_or(&[][..], Vec::as_slice);
            let shown: Vec<&str> = files.iter().take(3).copied().collect();
            let more = if files.len() > 3 { format!(", … {} files", files.len()) } else { String::new() };
            let ow =
                self.owner(format!("{p}squashfs fragment block {i} (tails of {}{more})", shown.join(", ")));
            self.field(base.saturating_add(o), len, ow, "");
        }
    }

    /// Content regions for a chain, one per run of consecutive clusters, up to `size` bytes.
    fn clusters(&mut self, base: u64, g: &crate::fat_fs::bpb::Geometry, chain: &[u32], size: u64, o: u32) {
        let cs = g.cluster_size();
        let mut rel = 0u64;
        let mut i = 0;
        while i < chain.len() && rel < size {
            let mut j = i + 1;
            while j < chain.len() && chain[j] == chain[j - 1].wrapping_add(1) {
                j += 1;
            }
            let len = ((j - i) as u64 * cs).min(size - rel);
            self.content(base + g.cluster_offset(Cluster::new(chain[i])), len, o, rel);
            rel += len;
            i = j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_go_to_the_smallest_region() {
        let mut m = ByteMap::default();
        let file = m.owner("file /efi.img");
        let bpb = m.owner("/efi.img: FAT.BPB.");
        m.content(100, 1000, file, 0);
        m.field(111, 2, bpb, "byts_per_sec");
        m.field(2000, 4, bpb, "vol_id");
        m.finish();
        assert_eq!(m.at(50), (None, 100));
        let (r, end) = m.at(100);
        assert_eq!((m.name(r.unwrap()), end), ("file /efi.img".to_string(), 111));
        let (r, end) = m.at(112);
        assert_eq!((m.name(r.unwrap()), end), ("/efi.img: FAT.BPB.byts_per_sec".to_string(), 113));
        let (r, end) = m.at(113);
        assert_eq!((m.name(r.unwrap()), end), ("file /efi.img".to_string(), 1100));
        assert_eq!(m.at(1100), (None, 2000));
        assert_eq!(m.at(2004), (None, u64::MAX));
    }

    #[test]
    fn fields_follow_the_layout() {
        let mut m = ByteMap::default();
        let o = m.owner("PVD.");
        fields!(m, VolumeDescriptor, 32768, o, [volume_space_size, creation_date => "volume_creation_date"]);
        m.finish();
        // ECMA-119 8.4: volume space size at BP 81-88, creation date at BP 814-830.
        assert_eq!(m.regions[0].start, 32768 + 80);
        assert_eq!(m.regions[0].end, 32768 + 88);
        assert_eq!(m.regions[1].start, 32768 + 813);
        assert_eq!(m.name(1), "PVD.volume_creation_date");
    }

    /// FSInfo and the backup boot sector lie at `BPB_FSInfo` and `BPB_BkBootSec` sectors of
    /// `BPB_BytsPerSec` bytes, not of 512 (a hand-built FAT32 BPB with 4096-byte sectors).
    #[test]
    fn fat32_sectors_are_the_bpb_sectors() {
        use crate::fat_fs::bpb::{DecodedBootSector, Geometry};
        let geometry = Geometry {
            fat_type: FatType::Fat32,
            sectors_per_cluster: 1,
            reserved_sectors: 64,
            num_fats: 2,
            root_entries: 0,
            total_sectors: 70_000,
            media: 0xF8,
            sectors_per_fat: 1,
            sectors_per_track: 32,
            heads: 64,
            hidden_sectors: 0,
            drive_number: 0x80,
            cluster_count: 65_525,
            image_size: 70_000 * 512,
        };
        let boot = DecodedBootSector {
            geometry,
            serial: 1,
            label: *b"NO NAME    ",
            root_cluster: 2,
            fsinfo_sector: 1,
            backup_boot_sector: 6,
            bytes_per_sector: 4096,
        };
        let info = super::super::FatInfo::empty(boot, String::new());
        let base = 1 << 20;
        let mut m = ByteMap::default();
        m.fat("/efi.img: ", base, &info);
        m.finish();
        let name = |pos| m.at(pos).0.map(|r| m.name(r));
        assert_eq!(name(base + 4096).as_deref(), Some("/efi.img: FAT.FSInfo.lead_sig"));
        assert_eq!(name(base + 6 * 4096).as_deref(), Some("/efi.img: FAT.backup_boot_sector"));
        assert_eq!(name(base + 512), None);
        assert_eq!(name(base + 6 * 512), None);
    }
}
