//! Reading a FAT image: boot sector, FAT, directories and files, with the checks the writer
//! promises (both FAT copies equal, backup boot sector equal, FSInfo free count right).

use std::io::Write;

use super::bpb::{self, Bpb, DecodedBootSector, FatType, FsInfo};
use super::dir_entry::{decode_dir, DecodedDir, DecodedEntry};
use super::table;
use super::FatError;
use crate::endian::field_offset;
use crate::read_at::{Located, ReadTyped};
use crate::units::{Cluster, Lba512};

pub use crate::read_at::ReadAt;

/// An opened FAT volume: its boot sector and first FAT, read eagerly.
pub struct FatVolume<'a, R: ReadAt + ?Sized> {
    r: &'a R,
    boot: DecodedBootSector,
    fat: Vec<u8>,
}

/// A file or directory found by [`FatVolume::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// Image path, `/`-separated, starting with `/`.
    pub path: String,
    /// The directory entry.
    pub entry: DecodedEntry,
}

impl<'a, R: ReadAt + ?Sized> FatVolume<'a, R> {
    /// Reads and checks the boot sector and reads the first FAT.
    pub fn open(r: &'a R) -> Result<Self, FatError> {
        let mut sector = [0u8; 512];
        r.read_at(0, &mut sector).map_err(|source| FatError::ReadImage { offset: 0, source })?;
        let boot = bpb::decode_boot_sector(&sector)?;
        let g = &boot.geometry;
        let len = usize::try_from(g.fat_bytes()).map_err(|_| FatError::Corrupt {
            offset: field_offset!(Bpb, fat_sz16),
            field: "sectors per FAT",
            expected: "a FAT that fits in memory".into(),
            found: g.sectors_per_fat.to_string(),
        })?;
        let off = g.fat_offset(0);
        // Untrusted sizes: never allocate a FAT the source does not hold.
        if off.saturating_add(g.fat_bytes()) > r.len() {
            return Err(FatError::Corrupt {
                offset: field_offset!(Bpb, fat_sz16),
                field: "sectors per FAT",
                expected: format!("a FAT within the image's {} bytes", r.len()),
                found: format!("{} bytes at byte {off}", g.fat_bytes()),
            });
        }
        let mut fat = vec![0u8; len];
        r.read_at(off, &mut fat).map_err(|source| FatError::ReadImage { offset: off, source })?;
        Ok(FatVolume { r, boot, fat })
    }

    /// The decoded boot sector.
    pub fn boot_sector(&self) -> &DecodedBootSector {
        &self.boot
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, FatError> {
        let mut v = vec![0u8; len];
        self.r.read_at(offset, &mut v).map_err(|source| FatError::ReadImage { offset, source })?;
        Ok(v)
    }

    /// The FSInfo sector (FAT32 only), decoded, with its byte offset.
    pub fn fsinfo(&self) -> Result<Option<Located<bpb::DecodedFsInfo>>, FatError> {
        if self.boot.geometry.fat_type != FatType::Fat32 {
            return Ok(None);
        }
        let off = Lba512::new(u64::from(self.boot.fsinfo_sector)).saturating_byte_offset();
        let info =
            self.r.read_typed::<FsInfo>(off).map_err(|source| FatError::ReadImage { offset: off, source })?;
        Ok(Some(Located::new(info.offset, bpb::decode_fsinfo(&info)?)))
    }

    /// FAT entry of a cluster.
    pub fn fat_entry(&self, cluster: Cluster) -> Option<u32> {
        table::read_entry(self.boot.geometry.fat_type, &self.fat, cluster.get())
    }

    /// The clusters of the chain starting at `first`, checked for range and loops.
    pub fn chain(&self, first: Cluster) -> Result<Vec<Cluster>, FatError> {
        let g = &self.boot.geometry;
        let max = g.cluster_count + 1;
        let mut out = Vec::new();
        let first = first.get();
        let mut c = first;
        loop {
            if c < 2 || c > max {
                return Err(FatError::Corrupt {
                    offset: g.fat_offset(0),
                    field: "cluster chain",
                    expected: format!("clusters 2..={max}"),
                    found: format!("cluster {c} in the chain from {first}"),
                });
            }
            if out.len() > g.cluster_count as usize {
                return Err(FatError::Corrupt {
                    offset: g.fat_offset(0),
                    field: "cluster chain",
                    expected: "an end-of-chain mark".into(),
                    found: format!("a loop in the chain from {first}"),
                });
            }
            out.push(Cluster::new(c));
            let next = self.fat_entry(Cluster::new(c)).unwrap_or(0);
            if table::is_end_of_chain(g.fat_type, next) {
                return Ok(out);
            }
            c = next;
        }
    }

    fn read_chain(&self, first: Cluster) -> Result<Vec<u8>, FatError> {
        let g = &self.boot.geometry;
        let cs = usize::try_from(g.cluster_size()).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for c in self.chain(first)? {
            out.extend_from_slice(&self.read(g.cluster_offset(c), cs)?);
        }
        Ok(out)
    }

    /// The root directory.
    pub fn root(&self) -> Result<DecodedDir, FatError> {
        let g = &self.boot.geometry;
        if g.fat_type == FatType::Fat32 {
            let first = Cluster::new(self.boot.root_cluster);
            decode_dir(&self.read_chain(first)?, g.cluster_offset(first))
        } else {
            let len = usize::try_from(g.root_dir_bytes()).unwrap_or(0);
            decode_dir(&self.read(g.root_dir_offset(), len)?, g.root_dir_offset())
        }
    }

    /// The directory an entry points to.
    pub fn dir(&self, entry: &DecodedEntry) -> Result<DecodedDir, FatError> {
        let first = entry.entry.first_cluster();
        if first.get() == 0 {
            return self.root();
        }
        decode_dir(&self.read_chain(first)?, self.boot.geometry.cluster_offset(first))
    }

    /// Every file and directory, depth-first in on-disk order, `.` and `..` left out.
    pub fn walk(&self) -> Result<Vec<WalkEntry>, FatError> {
        let mut out = Vec::new();
        let root = self.root()?;
        let mut seen = std::collections::BTreeSet::new();
        self.walk_dir(&root, "", &mut out, 0, &mut seen)?;
        Ok(out)
    }

    fn walk_dir(
        &self,
        d: &DecodedDir,
        prefix: &str,
        out: &mut Vec<WalkEntry>,
        depth: u32,
        seen: &mut std::collections::BTreeSet<u32>,
    ) -> Result<(), FatError> {
        if depth > 1000 {
            return Err(FatError::Corrupt {
                offset: 0,
                field: "directory tree",
                expected: "at most 1000 levels".into(),
                found: format!("more under {prefix}"),
            });
        }
        for e in d.entries.iter().filter(|e| !e.is_dot()) {
            let path = format!("{prefix}/{}", e.name);
            out.push(WalkEntry { path: path.clone(), entry: e.clone() });
            if e.is_dir() {
                // A directory listed twice (a loop or a cross-link) would make the walk
                // exponential: each directory is walked once.
                if !seen.insert(e.entry.first_cluster().get()) {
                    return Err(FatError::Corrupt {
                        offset: 0,
                        field: "directory tree",
                        expected: "each directory once".into(),
                        found: format!("{path} points at cluster {} again", e.entry.first_cluster().get()),
                    });
                }
                let sub = self.dir(e)?;
                self.walk_dir(&sub, &path, out, depth + 1, seen)?;
            }
        }
        Ok(())
    }

    /// The entry at an image path (names compared case-insensitively, long or short).
    pub fn lookup(&self, path: &str) -> Result<DecodedEntry, FatError> {
        let not_found = || FatError::NotFound { path: path.to_string() };
        let mut dir = self.root()?;
        let mut found: Option<DecodedEntry> = None;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if let Some(prev) = &found {
                if !prev.is_dir() {
                    return Err(not_found());
                }
                dir = self.dir(prev)?;
            }
            let want = part.to_uppercase();
            let e = dir
                .entries
                .iter()
                .find(|e| e.name.to_uppercase() == want || e.entry.display_name() == want)
                .ok_or_else(not_found)?;
            found = Some(e.clone());
        }
        found.ok_or_else(not_found)
    }

    /// Streams a file's bytes (its size, from its chain) to `out`.
    pub fn read_file(&self, entry: &DecodedEntry, out: &mut dyn Write) -> Result<(), FatError> {
        let size = u64::from(entry.entry.file_size.get());
        if size == 0 {
            return Ok(());
        }
        let g = &self.boot.geometry;
        let cs = g.cluster_size();
        let chain = self.chain(entry.entry.first_cluster())?;
        if (chain.len() as u64) < size.div_ceil(cs) {
            return Err(FatError::Corrupt {
                offset: g.fat_offset(0),
                field: "file chain",
                expected: format!("{} clusters for {size} bytes", size.div_ceil(cs)),
                found: format!("{} clusters", chain.len()),
            });
        }
        let mut left = size;
        for c in chain {
            if left == 0 {
                break;
            }
            let n = left.min(cs);
            let off = g.cluster_offset(c);
            let bytes = self.read(off, usize::try_from(n).unwrap_or(0))?;
            out.write_all(&bytes).map_err(|source| FatError::Write { offset: off, source })?;
            left -= n;
        }
        Ok(())
    }

    /// Checks what the writer promises beyond the boot sector: every FAT copy equals the
    /// first, the FAT32 backup boot sector equals the boot sector, and the FSInfo free count
    /// is the number of free clusters. Returns every mismatch found.
    pub fn verify(&self) -> Result<Vec<FatError>, FatError> {
        let g = &self.boot.geometry;
        let mut problems = Vec::new();
        for copy in 1..g.num_fats {
            let off = g.fat_offset(copy);
            let other = self.read(off, self.fat.len())?;
            if let Some(i) = other.iter().zip(&self.fat).position(|(a, b)| a != b) {
                problems.push(FatError::Corrupt {
                    offset: off + i as u64,
                    field: "FAT copy",
                    expected: format!("{:#04x} as in FAT 0", self.fat[i]),
                    found: format!("{:#04x}", other[i]),
                });
            }
        }
        if g.fat_type == FatType::Fat32 {
            let boot = self.read(0, 512)?;
            let off = Lba512::new(u64::from(self.boot.backup_boot_sector)).saturating_byte_offset();
            if self.boot.backup_boot_sector != 0 && self.read(off, 512)? != boot {
                problems.push(FatError::Corrupt {
                    offset: off,
                    field: "backup boot sector",
                    expected: "a copy of sector 0".into(),
                    found: "different bytes".into(),
                });
            }
            if let Some(info) = self.fsinfo()? {
                let free = (2..g.cluster_count + 2)
                    .filter(|&c| self.fat_entry(Cluster::new(c)) == Some(0))
                    .count() as u32;
                if info.free_count != free && info.free_count != u32::MAX {
                    problems.push(FatError::Corrupt {
                        offset: info.at(field_offset!(FsInfo, free_count)),
                        field: "FSI_Free_Count",
                        expected: free.to_string(),
                        found: info.free_count.to_string(),
                    });
                }
            }
        }
        Ok(problems)
    }
}
