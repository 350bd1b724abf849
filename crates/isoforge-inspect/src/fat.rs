//! An embedded FAT image, read for `inspect`, checked for `verify` (fsck-level: FAT copies,
//! backup boot sector, FSInfo, every chain in range and loop-free, no cross-links, no lost
//! clusters, sizes that match their chains) and mapped for `diff`.
//!
//! The walk here, unlike [`FatVolume::walk`], keeps each entry's byte offsets and chain, stops
//! at directories it has seen (a directory entry pointing at an ancestor), and bounds the
//! entries listed and the clusters followed, so a corrupt image cannot make it loop or explode.

use std::collections::{BTreeMap, BTreeSet};

use zerocopy::IntoBytes;

use crate::endian::field_offset;
use crate::fat_fs::bpb::{decode_boot_sector, BootSector16, Bpb, DecodedBootSector, FatType};
use crate::fat_fs::dir_entry::{
    DecodedDir, DirEntry, ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_VOLUME_ID,
};
use crate::fat_fs::FatVolume;
use crate::finding::{Finding, Problems, Severity, MAX_FINDINGS};
use crate::read_at::{ReadAt, ReadTyped};
use crate::units::Cluster;

/// Largest FAT (one copy) read, in bytes.
pub const MAX_FAT_BYTES: u64 = 256 << 20;
/// Most directory bytes read in one walk.
pub const MAX_DIR_BYTES_TOTAL: u64 = 256 << 20;
/// Size of a directory entry, short or long-name (fatgen103 6).
const DIRENT: u64 = std::mem::size_of::<DirEntry>() as u64;

/// A file or directory of the FAT tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatEntry {
    /// Path from the root, `/`-separated.
    pub path: String,
    /// A directory.
    pub is_dir: bool,
    /// `DIR_Attr`.
    pub attr: u8,
    /// `DIR_FileSize`.
    pub size: u32,
    /// First cluster.
    pub first_cluster: u32,
    /// `DIR_WrtDate`, `DIR_WrtTime`.
    pub write_date: (u16, u16),
    /// Byte offset of the short entry in the FAT image.
    pub dirent_offset: u64,
    /// Byte offsets of the long-name entries before it, in order.
    pub lfn_offsets: Vec<u64>,
    /// The chain (empty for an empty file or an unreadable chain).
    pub clusters: Vec<u32>,
}

/// An embedded FAT file system, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatInfo {
    /// The decoded boot sector and geometry.
    pub boot: DecodedBootSector,
    /// The OEM name (BS_OEMName).
    pub oem_name: String,
    /// Volume label of the root directory's label entry, if any.
    pub root_label: Option<String>,
    /// Every file and directory, sorted by path component by component.
    pub entries: Vec<FatEntry>,
    /// The "." and ".." entries: (path of the entry, byte offset in the FAT image).
    pub dot_entries: Vec<(String, u64)>,
    /// Byte offset of the root directory's volume label entry.
    pub label_offset: Option<u64>,
    /// Clusters of the FAT32 root directory (empty on FAT12/16).
    pub root_clusters: Vec<u32>,
    /// Everything wrong, offsets from the start of the FAT image (at most [`MAX_FINDINGS`],
    /// then a count).
    pub problems: Vec<Finding>,
}

/// Whether the 512 bytes at `offset` of `src` decode as a FAT boot sector.
pub fn looks_like_fat(src: &dyn ReadAt, offset: u64) -> bool {
    src.read_typed::<BootSector16>(offset).is_ok_and(|s| decode_boot_sector(s.as_bytes()).is_ok())
}

impl FatInfo {
    /// The volume of `boot` before its directories are read: no entries, no label, no problems.
    pub(crate) fn empty(boot: DecodedBootSector, oem_name: String) -> FatInfo {
        FatInfo {
            boot,
            oem_name,
            root_label: None,
            entries: Vec::new(),
            dot_entries: Vec::new(),
            label_offset: None,
            root_clusters: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Reads the FAT file system in `src` (the window of the embedded image). `Err` says why it
    /// is not a FAT file system; everything else wrong is in `problems`.
    pub fn read(src: &dyn ReadAt) -> Result<FatInfo, String> {
        // The BPB every FAT boot sector starts with (the FAT32 fields after it are decoded by
        // `decode_boot_sector` from the same 512 bytes).
        let sector =
            src.read_typed::<BootSector16>(0).map_err(|e| format!("cannot read a boot sector: {e}"))?;
        let boot =
            decode_boot_sector(sector.as_bytes()).map_err(|e| format!("not a FAT boot sector: {e}"))?;
        let g = &boot.geometry;
        let fats_end = g.fat_offset(g.num_fats);
        if g.fat_bytes() > MAX_FAT_BYTES || fats_end > src.len() {
            return Err(format!(
                "its {} FATs of {} bytes end at byte {fats_end}, past the {} bytes of the image (or over {MAX_FAT_BYTES})",
                g.num_fats,
                g.fat_bytes(),
                src.len()
            ));
        }
        let vol = FatVolume::open(src).map_err(|e| e.to_string())?;
        let oem_name = String::from_utf8_lossy(&sector.bpb.oem_name).trim_end().to_string();
        let mut info = FatInfo::empty(boot.clone(), oem_name);
        let mut p = Problems::new(MAX_FINDINGS);
        if g.image_size > src.len() {
            p.add(Finding::error(
                "FAT.BPB",
                "total sectors",
                Some(field_offset!(Bpb, tot_sec16)),
                format!("at most the {} bytes of the embedded image", src.len()),
                format!("{} bytes", g.image_size),
            ));
        }
        match vol.verify() {
            Ok(list) => {
                for e in list {
                    p.add(fat_error(e));
                }
            }
            Err(e) => p.add(fat_error(e)),
        }
        info.walk(&vol, src, &mut p);
        info.check_chains(&vol, &mut p);
        info.problems = p.finish();
        Ok(info)
    }

    fn walk(&mut self, vol: &FatVolume<'_, dyn ReadAt + '_>, src: &dyn ReadAt, p: &mut Problems) {
        let g = self.boot.geometry.clone();
        let cs = g.cluster_size();
        let root = match vol.root() {
            Ok(r) => r,
            Err(e) => {
                p.add(fat_error(e));
                return;
            }
        };
        let root_chain = if g.fat_type == FatType::Fat32 {
            match vol.chain(Cluster::new(self.boot.root_cluster)) {
                Ok(c) => c.iter().map(|c| c.get()).collect(),
                Err(e) => {
                    p.add(fat_error(e));
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        self.root_clusters = root_chain.clone();
        // The label entry: the first root entry with only the volume-id attribute among the
        // first 16 (mkfs.fat writes it first).
        let root_at = match root_chain.first() {
            Some(&c) => g.cluster_offset(Cluster::new(c)),
            None => g.root_dir_offset(),
        };
        if let Ok(first) = src.read_typed::<[DirEntry; 16]>(root_at) {
            self.label_offset = first
                .iter()
                .position(|d| {
                    d.name[0] != 0
                        && d.name[0] != 0xE5
                        && d.attr & (ATTR_LONG_NAME | ATTR_DIRECTORY | ATTR_ARCHIVE) == ATTR_VOLUME_ID
                })
                .map(|i| first.at(i as u64 * DIRENT));
        }
        self.root_label = root.volume_label.map(|l| String::from_utf8_lossy(&l).trim_end().to_string());
        let mut visited = BTreeSet::new();
        if g.fat_type == FatType::Fat32 {
            visited.insert(self.boot.root_cluster);
        }
        let mut dir_bytes = 0u64;
        // (path, dir, chain of its clusters; empty: the fixed root)
        let mut stack: Vec<(String, DecodedDir, Vec<u32>)> = vec![(String::new(), root, root_chain)];
        let mut budget_hit = false;
        while let Some((prefix, dir, chain)) = stack.pop() {
            let at = |off: usize| -> u64 {
                let off = off as u64;
                if chain.is_empty() {
                    g.root_dir_offset() + off
                } else {
                    let idx = usize::try_from(off / cs.max(1)).unwrap_or(usize::MAX);
                    chain.get(idx).map_or(0, |&c| g.cluster_offset(Cluster::new(c)) + off % cs.max(1))
                }
            };
            let mut subdirs = Vec::new();
            for e in dir.entries.iter().filter(|e| e.is_dot()) {
                self.dot_entries.push((format!("{prefix}/{}", e.name), at(e.offset)));
            }
            for e in dir.entries.iter().filter(|e| !e.is_dot()) {
                if self.entries.len() >= super::MAX_FAT_ENTRIES {
                    budget_hit = true;
                    break;
                }
                let path = format!("{prefix}/{}", e.name);
                let lfn_slots = if e.has_long_name { e.name.encode_utf16().count().div_ceil(13) } else { 0 };
                let lfn_offsets = (0..lfn_slots)
                    .rev()
                    .filter_map(|k| e.offset.checked_sub(DIRENT as usize * (k + 1)))
                    .map(at)
                    .collect();
                self.entries.push(FatEntry {
                    path: path.clone(),
                    is_dir: e.is_dir(),
                    attr: e.entry.attr,
                    size: e.entry.file_size.get(),
                    first_cluster: e.entry.first_cluster().get(),
                    write_date: (e.entry.wrt_date.get(), e.entry.wrt_time.get()),
                    dirent_offset: at(e.offset),
                    lfn_offsets,
                    clusters: Vec::new(),
                });
                if e.entry.attr & ATTR_DIRECTORY != 0 {
                    subdirs.push((path, e.clone()));
                }
            }
            // Push in reverse so that directories are walked in on-disk order.
            for (path, e) in subdirs.into_iter().rev() {
                let first = e.entry.first_cluster().get();
                if !visited.insert(first) {
                    p.add(Finding::error(
                        format!("FAT directory {path}"),
                        "",
                        None,
                        "a directory not already listed",
                        format!("first cluster {first}, already walked (a loop or a cross-link)"),
                    ));
                    continue;
                }
                let chain = match vol.chain(Cluster::new(first)) {
                    Ok(c) => c.iter().map(|c| c.get()).collect::<Vec<_>>(),
                    Err(err) => {
                        p.add(fat_error(err));
                        continue;
                    }
                };
                dir_bytes = dir_bytes.saturating_add(chain.len() as u64 * cs);
                if dir_bytes > MAX_DIR_BYTES_TOTAL {
                    budget_hit = true;
                    break;
                }
                match vol.dir(&e) {
                    Ok(d) => stack.push((path, d, chain)),
                    Err(err) => p.add(fat_error(err)),
                }
            }
            if budget_hit {
                break;
            }
        }
        if budget_hit {
            p.add(Finding::error(
                "FAT directory tree",
                "",
                None,
                format!(
                    "at most {} entries and {MAX_DIR_BYTES_TOTAL} directory bytes",
                    super::MAX_FAT_ENTRIES
                ),
                "more (not listed)",
            ));
        }
        // Entries were pushed parent-first per directory; keep a stable depth-first order.
        self.entries.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    }

    /// Follows every chain: range, loops, length against the size, cross-links, lost clusters.
    fn check_chains(&mut self, vol: &FatVolume<'_, dyn ReadAt + '_>, p: &mut Problems) {
        let g = self.boot.geometry.clone();
        let cs = g.cluster_size().max(1);
        let mut owner: BTreeMap<u32, usize> = BTreeMap::new();
        let mut budget = u64::from(g.cluster_count).saturating_mul(4).saturating_add(1 << 20);
        for c in &self.root_clusters {
            owner.insert(*c, usize::MAX);
        }
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            if e.first_cluster == 0 {
                if e.is_dir || e.size > 0 {
                    p.add(Finding::error(
                        format!("FAT entry {}", e.path),
                        "first cluster",
                        Some(e.dirent_offset + field_offset!(DirEntry, fst_clus_lo)),
                        "a cluster for a directory or a non-empty file",
                        0,
                    ));
                }
                continue;
            }
            let chain = match vol.chain(Cluster::new(e.first_cluster)) {
                Ok(c) => c,
                Err(err) => {
                    p.add(Finding::error(format!("FAT chain of {}", e.path), "", None, "a valid chain", err));
                    continue;
                }
            };
            budget = budget.saturating_sub(chain.len() as u64);
            if budget == 0 {
                p.add(Finding::error(
                    "FAT chains",
                    "",
                    None,
                    "chains of bounded total length",
                    "more (not checked)",
                ));
                break;
            }
            if !e.is_dir {
                let want = u64::from(e.size).div_ceil(cs);
                if chain.len() as u64 != want {
                    p.add(Finding::error(
                        format!("FAT chain of {}", e.path),
                        "",
                        Some(e.dirent_offset + field_offset!(DirEntry, file_size)),
                        format!("{want} clusters for {} bytes", e.size),
                        format!("{} clusters", chain.len()),
                    ));
                }
            }
            for c in &chain {
                if let Some(&other) = owner.get(&c.get()) {
                    let other = if other == usize::MAX {
                        "/ (root)".to_string()
                    } else {
                        self.entries[other].path.clone()
                    };
                    p.add(Finding::error(
                        format!("FAT chain of {}", e.path),
                        "",
                        Some(g.fat_offset(0)),
                        format!("cluster {} used by one chain", c.get()),
                        format!("also in the chain of {other} (cross-linked)"),
                    ));
                    break;
                }
                owner.insert(c.get(), i);
            }
            self.entries[i].clusters = chain.iter().map(|c| c.get()).collect();
        }
        // Lost clusters: allocated (neither free nor bad) but in no chain.
        let bad = match g.fat_type {
            FatType::Fat12 => 0xFF7,
            FatType::Fat16 => 0xFFF7,
            FatType::Fat32 => 0x0FFF_FFF7,
        };
        let mut lost = 0u64;
        let mut first_lost = None;
        for c in 2..g.cluster_count.saturating_add(2) {
            let v = vol.fat_entry(Cluster::new(c)).unwrap_or(0);
            if v != 0 && v != bad && !owner.contains_key(&c) {
                lost += 1;
                first_lost.get_or_insert(c);
            }
        }
        if let Some(c) = first_lost {
            p.add(Finding::new(
                Severity::Warning,
                "FAT lost clusters",
                "",
                Some(g.fat_offset(0)),
                "every allocated cluster in some chain",
                format!("{lost} allocated clusters in no chain, the first {c}"),
            ));
        }
    }
}

fn fat_error(e: crate::fat_fs::FatError) -> Finding {
    match e {
        crate::fat_fs::FatError::Corrupt { offset, field, expected, found } => {
            Finding::error("FAT", field, Some(offset), expected, found)
        }
        other => Finding::error("FAT", "", None, "a readable FAT file system", other),
    }
}
