//! Path tables (ECMA-119 9.4): read both (type L and type M, and the optional copies), compare
//! them, and cross-check every record against the directory tree.

use std::collections::BTreeMap;

use super::{Finding, Hierarchy, IsoImage, Listing, ProblemKind, Problems, ReadError};
use crate::endian::field_offset;
use crate::iso9660::path_table::{decode, DecodedPathRecord};
use crate::iso9660::read::EntryKind;
use crate::iso9660::volume_descriptor::VolumeDescriptor;
use crate::units::Lba2048;

/// One path table record with its number and full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTableEntry {
    /// Directory number (1-based; the root is 1).
    pub number: u16,
    /// Identifier as recorded (`[0]` for the root; UCS-2 bytes in Joliet).
    pub identifier: Vec<u8>,
    /// Extent of the directory.
    pub extent_lba: u32,
    /// Number of the parent directory.
    pub parent: u16,
    /// Identifiers from the root down to this directory (empty for the root), when the parent
    /// chain is valid.
    pub components: Option<Vec<Vec<u8>>>,
}

/// The path tables of one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTables {
    /// Which hierarchy.
    pub hierarchy: Hierarchy,
    /// The type L table's records (the reference), empty when it could not be read.
    pub records: Vec<PathTableEntry>,
    /// Problems: unreadable or undecodable tables, L/M/optional copies that differ, order.
    pub problems: Vec<Finding>,
}

impl IsoImage<'_> {
    /// Reads and decodes the path tables of a hierarchy and compares the type M and optional
    /// tables with the type L one.
    pub fn path_tables(&self, h: Hierarchy) -> Result<PathTables, ReadError> {
        let vol = self.volume(h)?;
        let mut p = Problems::new(self.limits.max_problems);
        let name = format!("{h} path table");
        let size = vol.path_table_size;
        let size_off =
            Lba2048::new(vol.descriptor_lba).byte_offset() + field_offset!(VolumeDescriptor, path_table_size);
        let read_table = |lba: u32,
                          msb: bool,
                          field: &'static str,
                          p: &mut Problems|
         -> Result<Option<Vec<DecodedPathRecord>>, ReadError> {
            let structure = format!("{name} (type {}) at block {lba}", if msb { "M" } else { "L" });
            if size > self.limits.max_path_table_bytes {
                p.push(
                    ProblemKind::LimitExceeded,
                    structure,
                    "path_table_size",
                    Some(size_off),
                    format!("at most {} bytes", self.limits.max_path_table_bytes),
                    format!("{size} bytes (not read)"),
                );
                return Ok(None);
            }
            let start = Lba2048::new(lba).byte_offset();
            if lba < 17 || !self.inside(start, u64::from(size)) {
                p.push(
                    ProblemKind::ExtentOutsideImage,
                    structure,
                    field,
                    None,
                    format!("a table after the descriptors, within the image's {} bytes", self.len()),
                    format!("block {lba} + {size} bytes"),
                );
                return Ok(None);
            }
            let bytes = self.read_vec(start, size as usize, "path table")?;
            match decode(&bytes, msb) {
                Some(r) => Ok(Some(r)),
                None => {
                    p.push(
                        ProblemKind::BadPathTable,
                        structure,
                        "directory_identifier_length",
                        Some(start),
                        format!("records of non-zero identifier length filling exactly {size} bytes"),
                        "a record of length 0 or running past the end",
                    );
                    Ok(None)
                }
            }
        };
        let l = read_table(vol.l_path_table, false, "type_l_path_table", &mut p)?;
        let m = read_table(vol.m_path_table, true, "type_m_path_table", &mut p)?;
        let mut copies = vec![("type M", vol.m_path_table, m)];
        if vol.optional_l_path_table != 0 {
            let o = read_table(vol.optional_l_path_table, false, "optional_type_l_path_table", &mut p)?;
            copies.push(("optional type L", vol.optional_l_path_table, o));
        }
        if vol.optional_m_path_table != 0 {
            let o = read_table(vol.optional_m_path_table, true, "optional_type_m_path_table", &mut p)?;
            copies.push(("optional type M", vol.optional_m_path_table, o));
        }
        let Some(l) = l else {
            return Ok(PathTables { hierarchy: h, records: Vec::new(), problems: p.finish() });
        };
        for (what, lba, copy) in &copies {
            let Some(copy) = copy else { continue };
            compare(&l, copy, &format!("{name} ({what}) at block {lba}"), &mut p);
        }
        let records = number(&l, &name, &mut p);
        Ok(PathTables { hierarchy: h, records, problems: p.finish() })
    }
}

fn compare(l: &[DecodedPathRecord], other: &[DecodedPathRecord], structure: &str, p: &mut Problems) {
    if l.len() != other.len() {
        p.push(
            ProblemKind::PathTableMismatch,
            structure,
            "records",
            None,
            format!("{} records, as the type L table", l.len()),
            other.len(),
        );
    }
    for (i, (a, b)) in l.iter().zip(other).enumerate() {
        if a != b {
            p.push(
                ProblemKind::PathTableMismatch,
                structure,
                "record",
                None,
                format!("record {} as in the type L table: {a:?}", i + 1),
                format!("{b:?}"),
            );
        }
    }
}

/// Numbers the records, resolves their parent chains and checks the ordering rule (ECMA-119
/// 6.9.1: by level, then parent number).
fn number(l: &[DecodedPathRecord], name: &str, p: &mut Problems) -> Vec<PathTableEntry> {
    let mut out: Vec<PathTableEntry> = Vec::with_capacity(l.len());
    let mut prev_parent = 1u16;
    for (i, r) in l.iter().enumerate() {
        let number = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let structure = format!("{name} record {number}");
        let components = if i == 0 {
            if r.identifier != [0] || r.parent != 1 {
                p.push(
                    ProblemKind::BadPathTable,
                    structure,
                    "record",
                    None,
                    "the root: identifier 00, parent 1",
                    format!("identifier {:02x?}, parent {}", r.identifier, r.parent),
                );
            }
            Some(Vec::new())
        } else if r.parent == 0 || usize::from(r.parent) > i {
            p.push(
                ProblemKind::BadPathTable,
                structure,
                "parent_directory_number",
                None,
                format!("a directory listed before this one (1..={i})"),
                r.parent,
            );
            None
        } else {
            out[usize::from(r.parent) - 1].components.as_ref().map(|c| {
                let mut c = c.clone();
                c.push(r.identifier.clone());
                c
            })
        };
        if i > 0 && r.parent < prev_parent {
            p.push(
                ProblemKind::BadPathTable,
                format!("{name} record {number}"),
                "parent_directory_number",
                None,
                format!("at least {prev_parent} (records ordered by parent number)"),
                r.parent,
            );
        }
        if i > 0 {
            prev_parent = r.parent;
        }
        out.push(PathTableEntry {
            number,
            identifier: r.identifier.clone(),
            extent_lba: r.extent_lba,
            parent: r.parent,
            components,
        });
    }
    out
}

impl PathTables {
    /// Cross-checks the records with a walk of the same hierarchy: every directory of the tree
    /// has a record with its extent, and every record is a directory of the tree.
    pub fn cross_check(&self, listing: &Listing, max_problems: usize) -> Vec<Finding> {
        let mut p = Problems::new(max_problems);
        if self.records.is_empty() {
            return p.finish();
        }
        let name = format!("{} path table", self.hierarchy);
        // Identifier paths of the tree's directories. A relocated directory ("CL" placeholder)
        // has the path of its "RE" record, known once that record's parent has a path: a
        // second pass resolves relocations found after their placeholders.
        let mut comps: Vec<Option<Vec<Vec<u8>>>> = Vec::new();
        let mut moved: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for _pass in 0..2 {
            comps = Vec::with_capacity(listing.entries.len());
            for (i, e) in listing.entries.iter().enumerate() {
                let c = if i == 0 {
                    Some(Vec::new())
                } else if e.is_relocation_link() {
                    moved.get(&e.first_lba()).cloned()
                } else if e.kind == EntryKind::Dir {
                    comps.get(e.parent).cloned().flatten().map(|mut c| {
                        c.push(e.iso_identifier.clone());
                        c
                    })
                } else {
                    None
                };
                comps.push(c);
            }
            for r in &listing.relocated {
                if let Some(Some(c)) = comps.get(r.parent) {
                    let mut c = c.clone();
                    c.push(r.iso_identifier.clone());
                    moved.insert(r.extent_lba, c);
                }
            }
            if listing.relocated.is_empty() {
                break;
            }
        }
        let mut tree: BTreeMap<Vec<Vec<u8>>, (u32, String)> = BTreeMap::new();
        for (e, c) in listing.entries.iter().zip(&comps) {
            if let Some(c) = c {
                tree.insert(c.clone(), (e.first_lba(), e.path_lossy()));
            }
        }
        let mut in_table: BTreeMap<&[Vec<u8>], ()> = BTreeMap::new();
        for r in &self.records {
            let Some(c) = &r.components else { continue };
            in_table.insert(c.as_slice(), ());
            match tree.get(c) {
                None => p.push(
                    ProblemKind::PathTableMismatch,
                    format!("{name} record {}", r.number),
                    "directory_identifier",
                    None,
                    "a directory of the tree",
                    format!("{}, not found in the tree", show(c, self.hierarchy)),
                ),
                Some((lba, path)) if *lba != r.extent_lba => p.push(
                    ProblemKind::PathTableMismatch,
                    format!("{name} record {} ({path})", r.number),
                    "extent_location",
                    None,
                    format!("block {lba}, as the directory record"),
                    format!("block {}", r.extent_lba),
                ),
                Some(_) => {}
            }
        }
        for (c, (_, path)) in &tree {
            if !in_table.contains_key(c.as_slice()) {
                p.push(
                    ProblemKind::PathTableMismatch,
                    name.clone(),
                    "records",
                    None,
                    format!("a record for directory {path}"),
                    "none",
                );
            }
        }
        p.finish()
    }
}

fn show(c: &[Vec<u8>], h: Hierarchy) -> String {
    let mut s = String::new();
    for id in c {
        s.push('/');
        match h {
            Hierarchy::Primary => s.push_str(&String::from_utf8_lossy(id)),
            Hierarchy::Joliet => s.push_str(&super::ucs2(id)),
        }
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}
