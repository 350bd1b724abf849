//! Planning: names, geometry and a cluster run for every file and directory.

use super::bpb::{self, FatType, Geometry, NO_NAME};
use super::dir_entry::{
    self, assign_names, check_long_name, DirEntry, DosTime, EntryName, ATTR_ARCHIVE, ATTR_DIRECTORY,
    ATTR_VOLUME_ID,
};
use super::table::Run;
use super::{default_image_size, FatError, FatOptions, MIB};
use crate::tree::{Dir, FileSource, Node, NodeKind};
use crate::units::Cluster;

/// What a run of clusters holds.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// A directory's entries (padded with zeros to the run's end when written).
    Dir(Vec<u8>),
    /// A file's bytes, streamed from its source.
    File {
        /// Where the bytes come from.
        source: FileSource,
        /// Planned size.
        size: u64,
        /// Image path, for messages.
        path: String,
    },
}

/// One run of consecutive clusters and what goes into it.
#[derive(Debug, Clone)]
pub(crate) struct Extent {
    pub(crate) run: Run,
    pub(crate) content: Content,
}

/// A fully planned FAT image: every structure's bytes or source and its offset.
#[derive(Debug, Clone)]
pub struct FatPlan {
    pub(crate) geometry: Geometry,
    pub(crate) serial: u32,
    pub(crate) label: [u8; 11],
    /// The fixed FAT12/16 root directory's entries (empty on FAT32).
    pub(crate) root_fixed: Vec<u8>,
    /// Runs in increasing cluster order.
    pub(crate) extents: Vec<Extent>,
    pub(crate) clusters_used: u32,
    pub(crate) last_cluster: u32,
}

/// The tree with FAT names, before any cluster is assigned.
struct NDir {
    path: String,
    entries: Vec<NEntry>,
}

struct NEntry {
    name: EntryName,
    kind: NKind,
}

enum NKind {
    File { source: FileSource, size: u64, path: String },
    Dir(NDir),
}

fn child_path(parent: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn name_dir(dir: &Dir, path: &str) -> Result<NDir, FatError> {
    let mut long = Vec::with_capacity(dir.entries.len());
    for name in dir.entries.keys() {
        let units =
            check_long_name(name).map_err(|why| FatError::BadName { path: child_path(path, name), why })?;
        long.push(units);
    }
    let keys: Vec<&Vec<u8>> = dir.entries.keys().collect();
    let names = assign_names(&long).map_err(|(a, b)| FatError::CaseClash {
        path: child_path(path, keys[a.min(b)]),
        other: child_path(path, keys[a.max(b)]),
    })?;
    let mut entries = Vec::with_capacity(names.len());
    for ((raw, node), name) in dir.entries.iter().zip(names) {
        let p = child_path(path, raw);
        let kind = match &node.kind {
            NodeKind::Dir(d) => NKind::Dir(name_dir(d, &p)?),
            NodeKind::File(f) => {
                if f.size > u64::from(u32::MAX) {
                    return Err(FatError::FileTooLarge { path: p, size: f.size });
                }
                if let FileSource::Generated(id) = f.source {
                    return Err(FatError::Generated { path: p, id });
                }
                NKind::File { source: f.source.clone(), size: f.size, path: p }
            }
            NodeKind::Symlink(_) => return Err(FatError::Symlink { path: p }),
        };
        entries.push(NEntry { name, kind });
    }
    Ok(NDir { path: path.to_string(), entries })
}

/// 32-byte slots of a directory: `.` and `..` (not in the root), the label (root only), names.
fn slots(d: &NDir, root: bool, label: bool) -> u64 {
    let fixed = if root { u64::from(label) } else { 2 };
    fixed + d.entries.iter().map(|e| e.name.slots() as u64).sum::<u64>()
}

fn clusters_for(bytes: u64, cluster: u64) -> u64 {
    bytes.div_ceil(cluster)
}

/// Clusters the tree needs with `cluster`-byte clusters (the root's too when it is a chain).
fn clusters_needed(d: &NDir, root: bool, root_in_clusters: bool, label: bool, cluster: u64) -> u64 {
    let own =
        if root && !root_in_clusters { 0 } else { clusters_for(slots(d, root, label) * 32, cluster).max(1) };
    own + d
        .entries
        .iter()
        .map(|e| match &e.kind {
            NKind::File { size, .. } => clusters_for(*size, cluster),
            NKind::Dir(sub) => clusters_needed(sub, false, true, false, cluster),
        })
        .sum::<u64>()
}

fn check_dir_sizes(d: &NDir, root: bool, label: bool) -> Result<(), FatError> {
    let n = slots(d, root, label);
    if n > 65536 {
        return Err(FatError::DirTooLarge { path: d.path.clone(), entries: n });
    }
    for e in &d.entries {
        if let NKind::Dir(sub) = &e.kind {
            check_dir_sizes(sub, false, false)?;
        }
    }
    Ok(())
}

/// Why a tree does not fit a geometry: `Ok(None)` when it fits.
fn misfit(root: &NDir, g: &Geometry, label: bool) -> Result<Option<FatError>, FatError> {
    let fat32 = g.fat_type == FatType::Fat32;
    if !fat32 {
        let needed = slots(root, true, label);
        if needed > u64::from(g.root_entries) {
            return Ok(Some(FatError::RootDirFull { needed, max: g.root_entries, fat_type: g.fat_type }));
        }
    }
    let cs = g.cluster_size();
    let needed = clusters_needed(root, true, fat32, label, cs);
    if needed > u64::from(g.cluster_count) {
        return Ok(Some(FatError::DoesNotFit {
            size: g.image_size,
            fat_type: g.fat_type,
            needed: needed * cs,
            available: u64::from(g.cluster_count) * cs,
            cluster_size: cs,
            suggested: 0,
        }));
    }
    Ok(None)
}

/// The smallest whole-MiB size from `size` up that the tree fits, if any below the maximum
/// (0 if none). No size below `needed` (bytes of clusters) can fit, so the search starts there.
fn suggest(root: &NDir, size: u64, needed: u64, label: bool) -> u64 {
    let mut candidate = size.max(needed).div_ceil(MIB).max(1) * MIB;
    let mut step = MIB;
    for i in 0..100_000u32 {
        if candidate > bpb::MAX_IMAGE_SIZE {
            break;
        }
        if let Ok(g) = Geometry::for_size(candidate) {
            if matches!(misfit(root, &g, label), Ok(None)) {
                return candidate;
            }
        }
        // After 1024 single steps, grow the step to keep this quick for huge trees.
        if i >= 1024 && i % 64 == 0 {
            step *= 2;
        }
        candidate += step;
    }
    0
}

struct Layouter<'a> {
    g: &'a Geometry,
    cluster: u64,
    next: u32,
    t: DosTime,
    extents: Vec<Extent>,
}

impl Layouter<'_> {
    fn alloc(&mut self, clusters: u64) -> Run {
        // clusters_needed() checked the total against cluster_count, which fits u32.
        let len = u32::try_from(clusters).unwrap_or(u32::MAX);
        let run = Run { first: self.next, len };
        self.next = self.next.saturating_add(len);
        run
    }

    /// Places a directory and everything below it; returns its first cluster (0 for the
    /// fixed root) and, for the fixed root, its entries.
    fn place_dir(
        &mut self,
        d: &NDir,
        parent: u32,
        root: bool,
        label: Option<[u8; 11]>,
    ) -> Result<(u32, Vec<u8>), FatError> {
        let fat32 = self.g.fat_type == FatType::Fat32;
        let n = slots(d, root, label.is_some());
        let slot = if root && !fat32 {
            None
        } else {
            let run = self.alloc(clusters_for(n * 32, self.cluster).max(1));
            self.extents.push(Extent { run, content: Content::Dir(Vec::new()) });
            Some(self.extents.len() - 1)
        };
        let own = slot.map_or(0, |i| self.extents[i].run.first);
        // ".." of a directory in the root points to cluster 0, even on FAT32.
        let parent_of_children = if root { 0 } else { own };
        let mut firsts = Vec::with_capacity(d.entries.len());
        for e in &d.entries {
            let first = match &e.kind {
                NKind::File { source, size, path } => {
                    if *size == 0 {
                        0
                    } else {
                        let run = self.alloc(clusters_for(*size, self.cluster));
                        self.extents.push(Extent {
                            run,
                            content: Content::File {
                                source: source.clone(),
                                size: *size,
                                path: path.clone(),
                            },
                        });
                        run.first
                    }
                }
                NKind::Dir(sub) => self.place_dir(sub, parent_of_children, false, None)?.0,
            };
            firsts.push(first);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(n * 32).unwrap_or(0));
        let t = self.t;
        if !root {
            let dot = DirEntry::new(*b".          ", ATTR_DIRECTORY, Cluster::new(own), 0, t);
            let dotdot = DirEntry::new(*b"..         ", ATTR_DIRECTORY, Cluster::new(parent), 0, t);
            bytes.extend_from_slice(zerocopy::IntoBytes::as_bytes(&dot));
            bytes.extend_from_slice(zerocopy::IntoBytes::as_bytes(&dotdot));
        }
        if let Some(label) = label {
            // As mkfs.fat: no hundredths on the label entry.
            let mut e = DirEntry::new(label, ATTR_VOLUME_ID, Cluster::new(0), 0, t);
            e.crt_time_tenth = 0;
            if e.name[0] == dir_entry::DELETED {
                e.name[0] = 0x05;
            }
            bytes.extend_from_slice(zerocopy::IntoBytes::as_bytes(&e));
        }
        for (e, first) in d.entries.iter().zip(firsts) {
            let entry = match &e.kind {
                // Sizes were checked against u32::MAX when naming.
                NKind::File { size, .. } => DirEntry::new(
                    [0; 11],
                    ATTR_ARCHIVE,
                    Cluster::new(first),
                    u32::try_from(*size).unwrap_or(u32::MAX),
                    t,
                ),
                NKind::Dir(_) => DirEntry::new([0; 11], ATTR_DIRECTORY, Cluster::new(first), 0, t),
            };
            dir_entry::encode_entries(&e.name, &entry, &mut bytes);
        }
        match slot {
            Some(i) => {
                self.extents[i].content = Content::Dir(bytes);
                Ok((own, Vec::new()))
            }
            None => Ok((0, bytes)),
        }
    }
}

impl FatPlan {
    /// Plans an image of the directory `dir` (usually from [`crate::tree::scan`]).
    ///
    /// Errors: the root is not a directory; a symlink or generated file anywhere (named by
    /// path); a name FAT cannot hold or two names equal up to case; a bad label; a size no
    /// FAT layout accepts; a tree that does not fit (naming the image size, the bytes needed
    /// and a size that would fit).
    pub fn new(dir: &Node, opts: &FatOptions) -> Result<FatPlan, FatError> {
        let NodeKind::Dir(d) = &dir.kind else {
            return Err(FatError::RootNotDir);
        };
        let t = DosTime::from_epoch(opts.epoch)?;
        let label = bpb::volume_label(&opts.label)?;
        let label_entry = (label != NO_NAME).then_some(label);
        let named = name_dir(d, "/")?;
        check_dir_sizes(&named, true, label_entry.is_some())?;
        let size = opts.size.unwrap_or_else(|| default_image_size(dir));
        let g = Geometry::for_size(size)?;
        if let Some(mut e) = misfit(&named, &g, label_entry.is_some())? {
            if let FatError::DoesNotFit { suggested, needed, .. } = &mut e {
                *suggested = suggest(&named, size, *needed, label_entry.is_some());
            }
            return Err(e);
        }
        let mut lay = Layouter { g: &g, cluster: g.cluster_size(), next: 2, t, extents: Vec::new() };
        let (_, root_fixed) = lay.place_dir(&named, 0, true, label_entry)?;
        let extents = lay.extents;
        let last_cluster = extents.last().map_or(0, |e| e.run.first + e.run.len - 1);
        let clusters_used = extents.iter().map(|e| e.run.len).sum();
        Ok(FatPlan {
            geometry: g,
            serial: opts.serial,
            label,
            root_fixed,
            extents,
            clusters_used,
            last_cluster,
        })
    }

    /// Size of the image in bytes.
    pub fn image_size(&self) -> u64 {
        self.geometry.image_size
    }

    /// The geometry (FAT type, cluster size, BPB fields).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Clusters holding files and directories.
    pub fn clusters_used(&self) -> u32 {
        self.clusters_used
    }

    /// Clusters left free.
    pub fn free_clusters(&self) -> u32 {
        self.geometry.cluster_count.saturating_sub(self.clusters_used)
    }

    /// The boot sector the image starts with.
    pub fn boot_sector(&self) -> [u8; 512] {
        self.geometry.encode_boot_sector(self.serial, &self.label)
    }
}
