//! The planning step: from an input [`Tree`] and [`IsoOptions`] to an [`IsoPlan`] that fixes
//! every identifier, block address and size. Planning reads no file contents except the BIOS
//! boot file's, for its boot-info-table checksum; the writer streams contents later.
//!
//! Block layout (2048-byte blocks), in order:
//!
//! | blocks | contents |
//! |---|---|
//! | 0–15 | system area (zero, or MBR/GPT from the hybrid layouts) |
//! | 16 | primary volume descriptor |
//! | 17 | El Torito boot record (when booting) |
//! | next | Joliet supplementary volume descriptor |
//! | next | volume descriptor set terminator |
//! | next | path tables: ISO L, ISO M, Joliet L, Joliet M |
//! | next | ISO directories in path table order, each followed by its SUSP continuation blocks |
//! | next | Joliet directories in path table order |
//! | next | boot catalog (a file of the tree) |
//! | next | file data: higher sort weight first, then depth-first ECMA-119 tree order |
//!
//! Directory records within a directory are in ECMA-119 9.3 order of their identifiers.
//! Rock Ridge attributes are rationalised like `xorriso -r`: owner 0:0, files `r--r--r--`
//! plus `x` for all when any `x` bit is set, directories `r-xr-xr-x`, symlinks `rwxrwxrwx`,
//! and every date is the epoch.

use isoforge_host::snapshot::SnapshotError;
use std::collections::BTreeMap;
use thiserror::Error;

use super::directory_record::{record_len, su_capacity, MAX_EXTENT_BYTES};
use super::el_torito::{self, BootInfoChecksum, CatalogEntry, BOOT_INFO_TABLE_MIN_FILE};
use super::naming::{self, EntryName};
use super::path_table;
use super::rock_ridge::{self, Nm, Px, Sl, Tf};
use super::susp::{Ce, FixedEntry, Sp, CE_LEN};
use super::volume_descriptor::DecDateTime;
use crate::time::{DateField, Epoch, EpochError};
use crate::tree::{FileSource, Node, NodeKind, Tree, TreeError};
use crate::units::{blocks_for, Lba2048, ISO_BLOCK};

/// Data preparer identifier written in every image: fixed, with no version number, so that
/// upgrading isoforge alone does not change the bytes of an image.
pub const PREPARER_ID: &str = "ISOFORGE";
/// Default path of the boot catalog in the image.
pub const DEFAULT_BOOT_CATALOG: &str = ".boot.cat";
/// Default number of 512-byte sectors the BIOS loads from a no-emulation boot image.
pub const DEFAULT_BOOT_LOAD_SIZE: u16 = 4;
/// Generated-file id of the boot catalog (the ISO writer produces it itself).
pub const CATALOG_GENERATED_ID: u32 = 0;
/// Block of the primary volume descriptor.
pub const PVD_LBA: Lba2048 = Lba2048::new(16);

/// Errors of the ISO planning and writing steps.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IsoError {
    /// The input tree could not be built.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The epoch is outside what the volume descriptors or directory records can hold.
    #[error(transparent)]
    Epoch(#[from] EpochError),
    /// An empty volume id.
    #[error("the volume id is empty")]
    VolumeIdEmpty,
    /// An identifier longer than its field.
    #[error("{field} is {len} bytes; at most {max} fit in the volume descriptor: {value:?}")]
    IdentifierTooLong {
        /// Which field ("volume id", "application id", "publisher").
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The field's size.
        max: usize,
        /// The value given.
        value: String,
    },
    /// A boot image path that is not in the image.
    #[error("boot image {path:?} is not in the image (graft it first)")]
    BootFileMissing {
        /// Image path.
        path: String,
    },
    /// A boot image path that names a directory or symlink.
    #[error("boot image {path:?} is not a regular file")]
    BootFileNotAFile {
        /// Image path.
        path: String,
    },
    /// A BIOS boot file too small for a boot-info-table.
    #[error("boot image {path:?} is {size} bytes; a boot-info-table needs at least 64")]
    BootFileTooSmall {
        /// Image path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// `--boot-load-size 0`.
    #[error("boot load size must be at least 1 sector")]
    BootLoadSizeZero,
    /// A sort weight for a path that is not in the image.
    #[error("sort weight given for {path:?}, which is not in the image")]
    SortWeightPath {
        /// Image path.
        path: String,
    },
    /// More directories than the 16-bit path table parent numbers can address.
    #[error("{count} directories; ISO 9660 path tables address at most 65535")]
    TooManyDirectories {
        /// The number of directories.
        count: usize,
    },
    /// The image would exceed 2^32 blocks of 2048 bytes (8 TiB).
    #[error("the image would be larger than ISO 9660 can address (8 TiB)")]
    ImageTooLarge,
    /// A host file could not be read, or changed since it was scanned (see
    /// [`isoforge_host::snapshot`]).
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Writing the image failed.
    #[error("cannot write the image: {0}")]
    Write(#[source] std::io::Error),
    /// A generated file's producer failed.
    #[error("cannot produce {what}: {message}")]
    Generated {
        /// Which generated file.
        what: String,
        /// The producer's error.
        message: String,
    },
}

/// The BIOS El Torito boot entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiosBoot {
    /// Image path of the boot file (e.g. `isolinux/isolinux.bin`).
    pub image: String,
    /// Number of 512-byte sectors to load (`-boot-load-size`).
    pub load_size: u16,
    /// Patch a boot-info-table into the image's copy of the boot file.
    pub boot_info_table: bool,
}

/// The UEFI El Torito entry to add (the FAT image must be in the tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiBoot {
    /// Image path of the FAT image (e.g. `boot/efi.img`).
    pub image: String,
}

/// Everything the ISO planner needs besides the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoOptions {
    /// Volume id, written verbatim (case kept) in the PVD; its first 16 characters are the
    /// Joliet volume id. 1–32 bytes.
    pub volume_id: String,
    /// Application id (up to 128 bytes; default empty).
    pub application_id: String,
    /// Publisher id (up to 128 bytes; default empty).
    pub publisher: String,
    /// The source of every date.
    pub epoch: Epoch,
    /// The BIOS boot entry, if any.
    pub bios_boot: Option<BiosBoot>,
    /// The UEFI boot entry, if any.
    pub efi_boot: Option<EfiBoot>,
    /// Image path of the boot catalog (only written when booting).
    pub boot_catalog: String,
    /// Sort weights: image path (file or directory, applying to everything below) → weight.
    /// Higher weights are placed first.
    pub sort_weights: BTreeMap<String, i32>,
    /// The id of a generated file whose size is only known once it has been written (the
    /// squashfs streamed into the image). Its size in the tree is an upper bound; it is placed
    /// after every other file, and [`IsoPlan::set_deferred_size`] gives its real size.
    pub deferred: Option<u32>,
}

impl IsoOptions {
    /// Options with the documented defaults for everything but the volume id and epoch.
    pub fn new(volume_id: impl Into<String>, epoch: Epoch) -> IsoOptions {
        IsoOptions {
            volume_id: volume_id.into(),
            application_id: String::new(),
            publisher: String::new(),
            epoch,
            bios_boot: None,
            efi_boot: None,
            boot_catalog: DEFAULT_BOOT_CATALOG.to_string(),
            sort_weights: BTreeMap::new(),
            deferred: None,
        }
    }
}

/// SUSP entries of one directory record, split between the record and continuation areas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SuLayout {
    /// Entries that stay in the record (the CE entry, when needed, is appended on encoding).
    pub(crate) inline: Vec<u8>,
    /// Contents of the continuation areas, chained by CE entries appended on encoding.
    pub(crate) areas: Vec<Vec<u8>>,
    /// Where each area was placed: (block, byte offset in the block).
    pub(crate) area_locations: Vec<(Lba2048, u32)>,
}

impl SuLayout {
    fn new(entries: Vec<Vec<u8>>, capacity: usize) -> SuLayout {
        let total: usize = entries.iter().map(Vec::len).sum();
        if total <= capacity {
            return SuLayout { inline: entries.concat(), ..SuLayout::default() };
        }
        let mut inline = Vec::new();
        let mut rest = entries.into_iter().peekable();
        while let Some(e) = rest.peek() {
            if inline.len() + e.len() + CE_LEN > capacity {
                break;
            }
            inline.extend_from_slice(e);
            rest.next();
        }
        let remaining: Vec<Vec<u8>> = rest.collect();
        SuLayout { inline, areas: pack_areas(remaining), area_locations: Vec::new() }
    }

    fn with_areas(inline: Vec<Vec<u8>>, area_entries: Vec<Vec<u8>>) -> SuLayout {
        SuLayout { inline: inline.concat(), areas: pack_areas(area_entries), area_locations: Vec::new() }
    }

    /// Bytes of system use in the record itself.
    pub(crate) fn inline_len(&self) -> usize {
        self.inline.len() + if self.areas.is_empty() { 0 } else { CE_LEN }
    }

    /// Length of continuation area `i` including its chaining CE.
    pub(crate) fn area_len(&self, i: usize) -> usize {
        self.areas[i].len() + if i + 1 < self.areas.len() { CE_LEN } else { 0 }
    }

    /// The record's system use bytes, with the CE pointing at the first area.
    pub(crate) fn encode_inline(&self) -> Vec<u8> {
        let mut v = self.inline.clone();
        if let Some(&(lba, off)) = self.area_locations.first() {
            v.extend(Ce::new(lba.get(), off, self.area_len(0) as u32).encode());
        }
        v
    }

    /// Continuation area `i`, with the CE to the next one.
    pub(crate) fn encode_area(&self, i: usize) -> Vec<u8> {
        let mut v = self.areas[i].clone();
        if let Some(&(lba, off)) = self.area_locations.get(i + 1) {
            v.extend(Ce::new(lba.get(), off, self.area_len(i + 1) as u32).encode());
        }
        v
    }
}

/// Packs entries into continuation areas of at most one block each, leaving room for the
/// chaining CE in every area but the last.
fn pack_areas(entries: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut areas: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let n = entries.len();
    for (i, e) in entries.into_iter().enumerate() {
        let last = i + 1 == n;
        let need = e.len() + if last { 0 } else { CE_LEN };
        if !cur.is_empty() && cur.len() + need > ISO_BLOCK as usize {
            areas.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(&e);
    }
    if !cur.is_empty() {
        areas.push(cur);
    }
    areas
}

/// What a planned node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlannedKind {
    /// A directory.
    Dir(PlannedDir),
    /// A regular file: index into [`IsoPlan::files`].
    File(usize),
    /// A symbolic link (Rock Ridge SL; zero-length record elsewhere).
    Symlink(Vec<u8>),
}

/// A planned directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PlannedDir {
    /// Children in ECMA-119 record order.
    pub(crate) children: Vec<usize>,
    /// Children in Joliet record order (symlinks left out: Joliet cannot hold them).
    pub(crate) joliet_children: Vec<usize>,
    /// ISO directory extent.
    pub(crate) extent: Lba2048,
    /// ISO directory size in bytes (whole blocks).
    pub(crate) size: u32,
    /// First block of this directory's continuation areas, and how many blocks.
    pub(crate) ce_extent: Lba2048,
    /// Number of continuation blocks.
    pub(crate) ce_blocks: u32,
    /// Joliet directory extent.
    pub(crate) joliet_extent: Lba2048,
    /// Joliet directory size in bytes.
    pub(crate) joliet_size: u32,
    /// Number in the ISO path table (1-based).
    pub(crate) number: u16,
    /// Number in the Joliet path table (1-based).
    pub(crate) joliet_number: u16,
    /// SUSP of the "." record.
    pub(crate) dot_su: SuLayout,
    /// SUSP of the ".." record.
    pub(crate) dotdot_su: SuLayout,
}

/// One node of the planned tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedNode {
    /// Index of the parent (the root is its own parent).
    pub(crate) parent: usize,
    /// Original name (Rock Ridge NM).
    pub(crate) name: Vec<u8>,
    /// ISO 9660 identifier.
    pub(crate) iso_id: Vec<u8>,
    /// Joliet identifier (UCS-2).
    pub(crate) joliet_id: Vec<u16>,
    /// Rock Ridge mode with file type bits.
    pub(crate) mode: u32,
    /// Rock Ridge link count.
    pub(crate) nlink: u32,
    /// Rock Ridge file serial number.
    pub(crate) serial: u32,
    /// SUSP of the record naming this node in its parent.
    pub(crate) su: SuLayout,
    /// What it is.
    pub(crate) kind: PlannedKind,
}

/// A planned file extent (or run of extents for files of 4 GiB and more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Image path, for messages and inspect.
    pub path: String,
    /// Where the bytes come from.
    pub source: FileSource,
    /// Size in bytes.
    pub size: u64,
    /// First block (0 for empty files).
    pub lba: Lba2048,
    /// Sort weight.
    pub weight: i32,
    /// The boot-info-table to patch into this file, if any.
    pub boot_info_table: Option<el_torito::BootInfoTable>,
}

impl PlannedFile {
    /// The extents of the file's directory records: (block, length), each at most
    /// [`MAX_EXTENT_BYTES`]. An empty file has one empty extent.
    pub fn extents(&self) -> Vec<(Lba2048, u32)> {
        if self.size == 0 {
            return vec![(self.lba, 0)];
        }
        let mut out = Vec::new();
        let mut left = self.size;
        let mut lba = u64::from(self.lba.get());
        while left > 0 {
            let n = left.min(MAX_EXTENT_BYTES);
            out.push((Lba2048::from_u64(lba).unwrap_or(Lba2048::new(u32::MAX)), n as u32));
            lba += blocks_for(n);
            left -= n;
        }
        out
    }
}

/// Block addresses of the fixed structures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FixedLayout {
    /// El Torito boot record.
    pub(crate) boot_record: Option<Lba2048>,
    /// Joliet SVD.
    pub(crate) svd: Lba2048,
    /// Terminator.
    pub(crate) terminator: Lba2048,
    /// ISO type L path table.
    pub(crate) l_path: Lba2048,
    /// ISO type M path table.
    pub(crate) m_path: Lba2048,
    /// Joliet type L path table.
    pub(crate) joliet_l_path: Lba2048,
    /// Joliet type M path table.
    pub(crate) joliet_m_path: Lba2048,
    /// ISO path table size in bytes.
    pub(crate) path_table_size: u32,
    /// Joliet path table size in bytes.
    pub(crate) joliet_path_table_size: u32,
}

/// The complete plan of an ISO 9660 filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoPlan {
    /// The options it was planned with.
    pub options: IsoOptions,
    /// All nodes; index 0 is the root.
    pub(crate) nodes: Vec<PlannedNode>,
    /// Directory node indexes in ISO path table order.
    pub(crate) dirs: Vec<usize>,
    /// Directory node indexes in Joliet path table order.
    pub(crate) joliet_dirs: Vec<usize>,
    /// Files in data order (ascending block).
    pub(crate) files: Vec<PlannedFile>,
    /// Fixed structure addresses.
    pub(crate) fixed: FixedLayout,
    /// The boot catalog entries (first is the default entry) and the catalog's file index.
    pub(crate) catalog: Option<(Vec<CatalogEntry>, usize)>,
    /// First block after the directories: where file data starts.
    pub(crate) metadata_end: Lba2048,
    /// First block after the last file extent: the end of the filesystem's data.
    pub data_end: Lba2048,
    /// Total blocks of the volume (PVD volume space size); at least `data_end`. The hybrid
    /// layouts raise it to cover padding.
    pub volume_blocks: u32,
    /// The epoch as the descriptors and records store it.
    pub(crate) dates: IsoDates,
}

/// The epoch encoded once, when planning, in the two forms ISO 9660 stores dates in; an epoch
/// either form cannot hold fails the plan ([`IsoError::Epoch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoDates {
    /// ECMA-119 8.4.26.1 dec-datetime of the volume descriptors (creation, modification,
    /// effective).
    pub descriptor: DecDateTime,
    /// ECMA-119 9.1.5 recording date of every directory record (and Rock Ridge `TF`).
    pub record: [u8; 7],
}

impl IsoDates {
    /// Encodes `epoch`; fails naming the structure that cannot hold it.
    pub fn new(epoch: Epoch) -> Result<IsoDates, EpochError> {
        epoch.check_all(&IsoDates::FIELDS)?;
        Ok(IsoDates {
            descriptor: DecDateTime::from_bytes(epoch.iso_dec_datetime()?),
            record: epoch.iso_dir_datetime()?,
        })
    }

    /// The date fields every ISO 9660 image has, narrowest range first.
    pub const FIELDS: [DateField; 2] = [DateField::IsoDirectoryRecord, DateField::IsoVolumeDescriptor];
}

fn rr_mode(node: &Node) -> u32 {
    match &node.kind {
        NodeKind::Dir(_) => 0o040_555,
        NodeKind::File(_) => 0o100_444 | if node.meta.mode & 0o111 != 0 { 0o111 } else { 0 },
        NodeKind::Symlink(_) => 0o120_777,
    }
}

fn check_identifier(field: &'static str, value: &str, max: usize) -> Result<(), IsoError> {
    if value.len() > max {
        return Err(IsoError::IdentifierTooLong { field, len: value.len(), max, value: value.to_string() });
    }
    Ok(())
}

/// Plans the filesystem for `tree`. Adds the boot catalog to the tree when booting.
pub fn plan(mut tree: Tree, options: &IsoOptions) -> Result<IsoPlan, IsoError> {
    let dates = IsoDates::new(options.epoch)?;
    if options.volume_id.is_empty() {
        return Err(IsoError::VolumeIdEmpty);
    }
    check_identifier("volume id", &options.volume_id, 32)?;
    check_identifier("application id", &options.application_id, 128)?;
    check_identifier("publisher", &options.publisher, 128)?;

    // Boot entries: validate and add the catalog.
    let booting = options.bios_boot.is_some() || options.efi_boot.is_some();
    let mut boot_info: Option<(String, BootInfoChecksum)> = None;
    if let Some(b) = &options.bios_boot {
        if b.load_size == 0 {
            return Err(IsoError::BootLoadSizeZero);
        }
        let file = boot_file(&tree, &b.image)?;
        if b.boot_info_table {
            if file.size < BOOT_INFO_TABLE_MIN_FILE {
                return Err(IsoError::BootFileTooSmall { path: b.image.clone(), size: file.size });
            }
            boot_info = Some((b.image.clone(), checksum_source(&file.source)?));
        }
    }
    if let Some(e) = &options.efi_boot {
        boot_file(&tree, &e.image)?;
    }
    if booting {
        let entries = options.bios_boot.is_some() as usize + options.efi_boot.is_some() as usize;
        let blocks = u64::from(el_torito::catalog_blocks(&vec![
            CatalogEntry {
                platform: 0,
                media_type: 0,
                load_segment: 0,
                system_type: 0,
                sector_count: 0,
                load_rba: 0,
            };
            entries
        ]));
        tree.add_generated(&options.boot_catalog, CATALOG_GENERATED_ID, blocks * ISO_BLOCK)?;
    }

    // Sort weights resolve to nodes by path.
    for path in options.sort_weights.keys() {
        if tree.get(path).is_none() {
            return Err(IsoError::SortWeightPath { path: path.clone() });
        }
    }

    let mut planner = Planner { options, nodes: Vec::new(), files: Vec::new(), file_order: Vec::new() };
    let epoch_date = dates.record;
    planner.add(&tree.root, 0, Vec::new(), &mut Vec::new(), 0);
    planner.finish_names(epoch_date);

    let mut nodes = planner.nodes;
    let mut files = planner.files;

    // Path table order (breadth-first, children in record order) for both hierarchies.
    let dirs = bfs(&nodes, false);
    let joliet_dirs = bfs(&nodes, true);
    if dirs.len() > 65_535 {
        return Err(IsoError::TooManyDirectories { count: dirs.len() });
    }
    for (i, &d) in dirs.iter().enumerate() {
        if let PlannedKind::Dir(pd) = &mut nodes[d].kind {
            pd.number = (i + 1) as u16;
        }
    }
    for (i, &d) in joliet_dirs.iter().enumerate() {
        if let PlannedKind::Dir(pd) = &mut nodes[d].kind {
            pd.joliet_number = (i + 1) as u16;
        }
    }
    let path_table_size = path_table_bytes(&nodes, &dirs, false);
    let joliet_path_table_size = path_table_bytes(&nodes, &joliet_dirs, true);

    // Fixed structures.
    let mut alloc = Allocator { next: u64::from(PVD_LBA.get()) + 1 };
    let boot_record = booting.then(|| alloc.take(1));
    let svd = alloc.take(1);
    let terminator = alloc.take(1);
    let pt_blocks = blocks_for(u64::from(path_table_size)).max(1);
    let jpt_blocks = blocks_for(u64::from(joliet_path_table_size)).max(1);
    let l_path = alloc.take(pt_blocks);
    let m_path = alloc.take(pt_blocks);
    let joliet_l_path = alloc.take(jpt_blocks);
    let joliet_m_path = alloc.take(jpt_blocks);

    // ISO directories and their continuation areas.
    for &d in &dirs {
        let size = dir_size(&nodes, &files, d, false);
        let extent = alloc.take(blocks_for(size));
        let ce_blocks = place_continuation_areas(&mut nodes, d, alloc.here());
        let ce_extent = alloc.take(u64::from(ce_blocks));
        if let PlannedKind::Dir(pd) = &mut nodes[d].kind {
            pd.extent = extent;
            pd.size = size as u32;
            pd.ce_extent = ce_extent;
            pd.ce_blocks = ce_blocks;
        }
    }
    for &d in &joliet_dirs {
        let size = dir_size(&nodes, &files, d, true);
        let extent = alloc.take(blocks_for(size));
        if let PlannedKind::Dir(pd) = &mut nodes[d].kind {
            pd.joliet_extent = extent;
            pd.joliet_size = size as u32;
        }
    }

    // File data: the catalog first when booting, then by weight, then tree order; the deferred
    // file last.
    let metadata_end = alloc.here();
    let catalog_index = files.iter().position(|f| f.source == FileSource::Generated(CATALOG_GENERATED_ID));
    let deferred_index =
        options.deferred.and_then(|id| files.iter().position(|f| f.source == FileSource::Generated(id)));
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| {
        (
            Some(i) != catalog_index,
            Some(i) == deferred_index,
            -i64::from(files[i].weight),
            planner.file_order[i],
        )
    });
    for &i in &order {
        if files[i].size == 0 {
            continue;
        }
        let lba = alloc.take(blocks_for(files[i].size));
        files[i].lba = lba;
    }
    if alloc.next > u64::from(u32::MAX) {
        return Err(IsoError::ImageTooLarge);
    }
    // Renumber files into data order and point nodes at their new indexes.
    let mut new_index = vec![0usize; files.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut ordered: Vec<Option<PlannedFile>> = vec![None; files.len()];
    for (old, f) in files.into_iter().enumerate() {
        ordered[new_index[old]] = Some(f);
    }
    let mut files: Vec<PlannedFile> = ordered.into_iter().flatten().collect();
    for n in &mut nodes {
        if let PlannedKind::File(i) = &mut n.kind {
            *i = new_index[*i];
        }
    }

    // Boot catalog and boot-info-table now that addresses are known.
    let mut catalog = None;
    if let Some(ci) = catalog_index.map(|i| new_index[i]) {
        let mut entries = Vec::new();
        if let Some(b) = &options.bios_boot {
            let fi =
                file_index(&nodes, &b.image).ok_or(IsoError::BootFileMissing { path: b.image.clone() })?;
            entries.push(CatalogEntry {
                platform: el_torito::PLATFORM_X86,
                media_type: el_torito::MEDIA_NO_EMULATION,
                load_segment: 0,
                system_type: 0,
                sector_count: b.load_size,
                load_rba: files[fi].lba.get(),
            });
            if let Some((_, sum)) = &boot_info {
                files[fi].boot_info_table = Some(el_torito::BootInfoTable {
                    pvd_lba: PVD_LBA.get().into(),
                    file_lba: files[fi].lba.get().into(),
                    file_length: u32::try_from(files[fi].size).unwrap_or(u32::MAX).into(),
                    checksum: sum.finish().into(),
                    reserved: [0; 40],
                });
            }
        }
        if let Some(e) = &options.efi_boot {
            let fi =
                file_index(&nodes, &e.image).ok_or(IsoError::BootFileMissing { path: e.image.clone() })?;
            entries.push(CatalogEntry {
                platform: el_torito::PLATFORM_EFI,
                media_type: el_torito::MEDIA_NO_EMULATION,
                load_segment: 0,
                system_type: 0,
                sector_count: efi_sector_count(files[fi].size),
                load_rba: files[fi].lba.get(),
            });
        }
        catalog = Some((entries, ci));
    }

    let data_end = alloc.here();
    Ok(IsoPlan {
        options: options.clone(),
        nodes,
        dirs,
        joliet_dirs,
        files,
        fixed: FixedLayout {
            boot_record,
            svd,
            terminator,
            l_path,
            m_path,
            joliet_l_path,
            joliet_m_path,
            path_table_size,
            joliet_path_table_size,
        },
        catalog,
        metadata_end,
        data_end,
        volume_blocks: data_end.get(),
        dates,
    })
}

/// El Torito load size of an EFI image, as xorriso writes it: whole 2048-byte blocks counted in
/// 512-byte sectors, or 0 when that does not fit 16 bits (images of 32 MiB − 2 KiB and more).
/// UEFI firmware reads the whole FAT through its directory entry or partition then; see
/// docs/spec/system-area.md.
pub(crate) fn efi_sector_count(size: u64) -> u16 {
    crate::part::layout::el_torito_efi_sector_count(size)
}

impl IsoPlan {
    /// Sets the real size of the deferred file (at most the size it was planned with, which
    /// fixed the number of its directory records' extents) and moves the data end after it.
    pub fn set_deferred_size(&mut self, size: u64) -> Result<(), IsoError> {
        let Some(id) = self.options.deferred else {
            return Err(IsoError::Generated {
                what: "deferred file".into(),
                message: "none was planned".into(),
            });
        };
        let Some(file) = self.files.iter_mut().find(|f| f.source == FileSource::Generated(id)) else {
            return Err(IsoError::Generated {
                what: "deferred file".into(),
                message: "not in the plan".into(),
            });
        };
        if size > file.size {
            return Err(IsoError::Generated {
                what: file.path.clone(),
                message: format!("{size} bytes, more than the {} bytes planned for it", file.size),
            });
        }
        file.size = size;
        let end = u64::from(file.lba.get()) + blocks_for(size);
        self.data_end = Lba2048::new(u32::try_from(end).map_err(|_| IsoError::ImageTooLarge)?);
        self.volume_blocks = self.data_end.get();
        Ok(())
    }

    /// The deferred file ([`IsoOptions::deferred`]), when one was planned: the last file of
    /// the data, so its start does not depend on its size.
    pub fn deferred_file(&self) -> Option<&PlannedFile> {
        self.files.iter().find(|f| self.is_deferred(f))
    }

    /// Whether `file` is the deferred file.
    pub(crate) fn is_deferred(&self, file: &PlannedFile) -> bool {
        self.options.deferred.is_some_and(|id| file.source == FileSource::Generated(id))
    }

    /// The planned file at an image path (`/boot/efi.img`), if it is a regular file.
    pub fn find_file(&self, path: &str) -> Option<&PlannedFile> {
        file_index(&self.nodes, path).and_then(|i| self.files.get(i))
    }
}

/// Hands out consecutive blocks.
struct Allocator {
    next: u64,
}

impl Allocator {
    fn take(&mut self, blocks: u64) -> Lba2048 {
        let at = self.here();
        self.next += blocks;
        at
    }

    /// The next free block. Checked against u32::MAX once all blocks are taken; saturate
    /// until then.
    fn here(&self) -> Lba2048 {
        Lba2048::from_u64(self.next).unwrap_or(Lba2048::new(u32::MAX))
    }
}

struct Planner<'a> {
    options: &'a IsoOptions,
    nodes: Vec<PlannedNode>,
    files: Vec<PlannedFile>,
    /// Depth-first position of each file, for data order ties.
    file_order: Vec<usize>,
}

impl Planner<'_> {
    /// Adds `node` and its subtree; returns its index.
    fn add(
        &mut self,
        node: &Node,
        parent: usize,
        name: Vec<u8>,
        path: &mut Vec<Vec<u8>>,
        weight: i32,
    ) -> usize {
        let idx = self.nodes.len();
        let path_s = crate::tree::display_path(path);
        let weight = self.options.sort_weights.get(&path_s).copied().unwrap_or(weight);
        let kind = match &node.kind {
            NodeKind::Dir(_) => PlannedKind::Dir(PlannedDir::default()),
            NodeKind::File(f) => {
                self.files.push(PlannedFile {
                    path: path_s.clone(),
                    source: f.source.clone(),
                    size: f.size,
                    lba: Lba2048::new(0),
                    weight,
                    boot_info_table: None,
                });
                self.file_order.push(self.file_order.len());
                PlannedKind::File(self.files.len() - 1)
            }
            NodeKind::Symlink(t) => PlannedKind::Symlink(t.clone()),
        };
        self.nodes.push(PlannedNode {
            parent: if idx == 0 { 0 } else { parent },
            name,
            iso_id: Vec::new(),
            joliet_id: Vec::new(),
            mode: rr_mode(node),
            nlink: 1,
            serial: (idx + 1) as u32,
            su: SuLayout::default(),
            kind,
        });
        if let NodeKind::Dir(d) = &node.kind {
            let mut children = Vec::with_capacity(d.entries.len());
            let mut subdirs = 0;
            for (child_name, child) in &d.entries {
                path.push(child_name.clone());
                let ci = self.add(child, idx, child_name.clone(), path, weight);
                path.pop();
                if matches!(child.kind, NodeKind::Dir(_)) {
                    subdirs += 1;
                }
                children.push(ci);
            }
            self.nodes[idx].nlink = 2 + subdirs;
            if let PlannedKind::Dir(pd) = &mut self.nodes[idx].kind {
                pd.children = children;
            }
        }
        idx
    }

    /// Assigns identifiers, record order and Rock Ridge entries.
    fn finish_names(&mut self, date: [u8; 7]) {
        for idx in 0..self.nodes.len() {
            let PlannedKind::Dir(pd) = &self.nodes[idx].kind else { continue };
            let children = pd.children.clone();
            let entries: Vec<EntryName> = children
                .iter()
                .map(|&c| EntryName {
                    name: &self.nodes[c].name,
                    is_dir: matches!(self.nodes[c].kind, PlannedKind::Dir(_)),
                })
                .collect();
            let iso = naming::iso_names(&entries);
            let joliet_candidates: Vec<usize> = children
                .iter()
                .copied()
                .filter(|&c| !matches!(self.nodes[c].kind, PlannedKind::Symlink(_)))
                .collect();
            let jentries: Vec<EntryName> = joliet_candidates
                .iter()
                .map(|&c| EntryName {
                    name: &self.nodes[c].name,
                    is_dir: matches!(self.nodes[c].kind, PlannedKind::Dir(_)),
                })
                .collect();
            let joliet = naming::joliet_names(&jentries);
            for (&c, id) in children.iter().zip(iso) {
                self.nodes[c].iso_id = id;
            }
            for (&c, id) in joliet_candidates.iter().zip(joliet) {
                self.nodes[c].joliet_id = id;
            }
            let mut ordered = children.clone();
            ordered.sort_by(|&a, &b| naming::ecma_order(&self.nodes[a].iso_id, &self.nodes[b].iso_id));
            let mut jordered = joliet_candidates;
            jordered
                .sort_by(|&a, &b| naming::joliet_order(&self.nodes[a].joliet_id, &self.nodes[b].joliet_id));
            if let PlannedKind::Dir(pd) = &mut self.nodes[idx].kind {
                pd.children = ordered;
                pd.joliet_children = jordered;
            }
        }
        // Rock Ridge entries of every record.
        for idx in 0..self.nodes.len() {
            let n = &self.nodes[idx];
            let mut entries = vec![Px::new(n.mode, n.nlink, 0, 0, n.serial).encode(), Tf::encode_short(date)];
            if idx != 0 {
                entries.extend(Nm::encode(&n.name));
                if let PlannedKind::Symlink(t) = &n.kind {
                    entries.extend(Sl::encode(t));
                }
                let cap = su_capacity(n.iso_id.len());
                self.nodes[idx].su = SuLayout::new(entries, cap);
            }
            if matches!(self.nodes[idx].kind, PlannedKind::Dir(_)) {
                let me = &self.nodes[idx];
                let parent = &self.nodes[me.parent];
                let dot_entries =
                    vec![Px::new(me.mode, me.nlink, 0, 0, me.serial).encode(), Tf::encode_short(date)];
                let dot = if idx == 0 {
                    let mut inline = vec![Sp::new(0).encode()];
                    inline.extend(dot_entries);
                    SuLayout::with_areas(inline, vec![rock_ridge::rrip_er()])
                } else {
                    SuLayout::new(dot_entries, su_capacity(1))
                };
                let dotdot = SuLayout::new(
                    vec![
                        Px::new(parent.mode, parent.nlink, 0, 0, parent.serial).encode(),
                        Tf::encode_short(date),
                    ],
                    su_capacity(1),
                );
                if let PlannedKind::Dir(pd) = &mut self.nodes[idx].kind {
                    pd.dot_su = dot;
                    pd.dotdot_su = dotdot;
                }
            }
        }
    }
}

fn boot_file<'t>(tree: &'t Tree, path: &str) -> Result<&'t crate::tree::FileNode, IsoError> {
    match tree.get(path) {
        None => Err(IsoError::BootFileMissing { path: path.to_string() }),
        Some(Node { kind: NodeKind::File(f), .. }) => Ok(f),
        Some(_) => Err(IsoError::BootFileNotAFile { path: path.to_string() }),
    }
}

fn checksum_source(source: &FileSource) -> Result<BootInfoChecksum, IsoError> {
    let mut sum = BootInfoChecksum::default();
    match source {
        FileSource::Host(host) => {
            let mut r = host.open()?;
            let mut buf = vec![0u8; 64 * 1024];
            while r.remaining() > 0 {
                let n = r.remaining().min(buf.len() as u64) as usize;
                r.read_exact(&mut buf[..n])?;
                sum.update(&buf[..n]);
            }
            r.finish()?;
        }
        FileSource::Bytes(b) => sum.update(b),
        FileSource::Generated(id) => {
            return Err(IsoError::Generated {
                what: format!("generated file {id}"),
                message: "a boot-info-table cannot be patched into a generated file".into(),
            })
        }
    }
    Ok(sum)
}

/// Finds the file index of an image path among planned nodes.
fn file_index(nodes: &[PlannedNode], path: &str) -> Option<usize> {
    let components = crate::tree::split_target(path).ok()?;
    let mut cur = 0usize;
    for c in &components {
        let PlannedKind::Dir(pd) = &nodes[cur].kind else { return None };
        cur = *pd.children.iter().find(|&&ch| nodes[ch].name == *c)?;
    }
    match nodes[cur].kind {
        PlannedKind::File(i) => Some(i),
        _ => None,
    }
}

fn bfs(nodes: &[PlannedNode], joliet: bool) -> Vec<usize> {
    let mut out = vec![0usize];
    let mut i = 0;
    while i < out.len() {
        if let PlannedKind::Dir(pd) = &nodes[out[i]].kind {
            let list = if joliet { &pd.joliet_children } else { &pd.children };
            out.extend(list.iter().copied().filter(|&c| matches!(nodes[c].kind, PlannedKind::Dir(_))));
        }
        i += 1;
    }
    out
}

fn path_table_bytes(nodes: &[PlannedNode], dirs: &[usize], joliet: bool) -> u32 {
    dirs.iter()
        .map(|&d| {
            let id_len = if d == 0 {
                1
            } else if joliet {
                nodes[d].joliet_id.len() * 2
            } else {
                nodes[d].iso_id.len()
            };
            path_table::record_len(id_len) as u32
        })
        .sum()
}

/// Lengths of a directory's records in order: ".", "..", then one record per child, one per
/// extent for multi-extent files.
pub(crate) fn dir_record_lengths(
    nodes: &[PlannedNode],
    files: &[PlannedFile],
    d: usize,
    joliet: bool,
) -> Vec<usize> {
    let PlannedKind::Dir(pd) = &nodes[d].kind else { return Vec::new() };
    let (dot_su, dotdot_su) =
        if joliet { (0, 0) } else { (pd.dot_su.inline_len(), pd.dotdot_su.inline_len()) };
    let mut out = vec![record_len(1, dot_su), record_len(1, dotdot_su)];
    let list = if joliet { &pd.joliet_children } else { &pd.children };
    for &c in list {
        let n = &nodes[c];
        let (id_len, su) =
            if joliet { (n.joliet_id.len() * 2, 0) } else { (n.iso_id.len(), n.su.inline_len()) };
        let count = match n.kind {
            PlannedKind::File(i) => files[i].extents().len(),
            _ => 1,
        };
        out.extend(std::iter::repeat_n(record_len(id_len, su), count));
    }
    out
}

/// Size in bytes (whole blocks) of a directory's extent: records never cross a block.
fn dir_size(nodes: &[PlannedNode], files: &[PlannedFile], d: usize, joliet: bool) -> u64 {
    let mut offset = 0u64;
    for len in dir_record_lengths(nodes, files, d, joliet) {
        let len = len as u64;
        if offset % ISO_BLOCK + len > ISO_BLOCK {
            offset = offset.div_ceil(ISO_BLOCK) * ISO_BLOCK;
        }
        offset += len;
    }
    offset.div_ceil(ISO_BLOCK) * ISO_BLOCK
}

/// Places the continuation areas of every record in directory `d` in blocks starting at
/// `start`; returns the number of blocks used.
fn place_continuation_areas(nodes: &mut [PlannedNode], d: usize, start: Lba2048) -> u32 {
    let PlannedKind::Dir(pd) = &nodes[d].kind else { return 0 };
    let children = pd.children.clone();
    let mut block = 0u32;
    let mut offset = 0u32;
    let mut used_any = false;
    let mut place = |su: &mut SuLayout| {
        su.area_locations.clear();
        for i in 0..su.areas.len() {
            let len = su.area_len(i) as u32;
            if offset + len > ISO_BLOCK as u32 {
                block += 1;
                offset = 0;
            }
            su.area_locations.push((Lba2048::new(start.get().saturating_add(block)), offset));
            offset += len;
            used_any = true;
        }
    };
    if let PlannedKind::Dir(pd) = &mut nodes[d].kind {
        place(&mut pd.dot_su);
        place(&mut pd.dotdot_su);
    }
    for c in children {
        place(&mut nodes[c].su);
    }
    if used_any {
        block + 1
    } else {
        0
    }
}
