//! `isoforge inspect --json`: the model as JSON, schema `isoforge-inspect/1`
//! (docs/inspect-json.md). A small hand-written writer: objects keep the order the code gives
//! (fixed, documented), so output is deterministic without a map type.

use std::fmt::Write as _;

use super::{CatalogSlot, Image, Payload};
use crate::iso9660::read::{Entry, FieldCheck, Listing, VolumeDate, VolumeSummary};

/// The schema identifier written as `"schema"`.
pub const SCHEMA: &str = "isoforge-inspect/1";

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer (every number in the schema is one).
    Int(i128),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in the given order.
    Obj(Vec<(&'static str, Json)>),
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}
impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}
macro_rules! from_int {
    ($($t:ty),*) => {$(impl From<$t> for Json { fn from(v: $t) -> Json { Json::Int(v as i128) } })*};
}
from_int!(u8, u16, u32, u64, usize, i8, i64);
impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Json {
        v.map_or(Json::Null, Into::into)
    }
}

impl Json {
    /// Pretty-printed text, two-space indentation, a final newline.
    pub fn pretty(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s.push('\n');
        s
    }

    fn write(&self, s: &mut String, indent: usize) {
        match self {
            Json::Null => s.push_str("null"),
            Json::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(s, "{i}");
            }
            Json::Str(t) => quote(s, t),
            Json::Arr(a) if a.is_empty() => s.push_str("[]"),
            Json::Obj(o) if o.is_empty() => s.push_str("{}"),
            // Short arrays of numbers (CHS triples, extents) stay on one line.
            Json::Arr(a) if a.len() <= 4 && a.iter().all(|v| matches!(v, Json::Int(_))) => {
                s.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    v.write(s, indent);
                }
                s.push(']');
            }
            Json::Arr(a) => {
                s.push('[');
                for (i, v) in a.iter().enumerate() {
                    s.push_str(if i == 0 { "\n" } else { ",\n" });
                    pad(s, indent + 1);
                    v.write(s, indent + 1);
                }
                s.push('\n');
                pad(s, indent);
                s.push(']');
            }
            Json::Obj(o) => {
                s.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    s.push_str(if i == 0 { "\n" } else { ",\n" });
                    pad(s, indent + 1);
                    quote(s, k);
                    s.push_str(": ");
                    v.write(s, indent + 1);
                }
                s.push('\n');
                pad(s, indent);
                s.push('}');
            }
        }
    }
}

fn pad(s: &mut String, n: usize) {
    for _ in 0..n {
        s.push_str("  ");
    }
}

fn quote(s: &mut String, t: &str) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

macro_rules! obj {
    ($($k:literal : $v:expr),* $(,)?) => { Json::Obj(vec![$(($k, Json::from($v))),*]) };
}

/// The `"type": "squashfs"` payload (docs/inspect-json.md).
/// A squashfs data block or fragment block: where it starts, its stored length, and whether it
/// is compressed (from its size word).
fn data_block(offset: u64, word: u32) -> Json {
    use isoforge_squashfs::inode::{stored_len, DATA_UNCOMPRESSED};
    obj! {
        "offset": offset,
        "size": stored_len(word),
        "compressed": word & DATA_UNCOMPRESSED == 0,
    }
}

pub(crate) fn squashfs(q: &super::SquashfsInfo, tree: bool) -> Json {
    use super::squashfs::SquashfsKind;
    let sb = &q.superblock;
    let mut o = vec![
        ("type", Json::from("squashfs")),
        (
            "superblock",
            obj! {
                "s_magic": sb.s_magic.get(),
                "inodes": sb.inodes.get(),
                "mkfs_time": sb.mkfs_time.get(),
                "block_size": sb.block_size.get(),
                "fragments": sb.fragments.get(),
                "compression": sb.compression.get(),
                "block_log": sb.block_log.get(),
                "flags": sb.flags.get(),
                "no_ids": sb.no_ids.get(),
                "s_major": sb.s_major.get(),
                "s_minor": sb.s_minor.get(),
                "root_inode": sb.root_inode.get(),
                "bytes_used": sb.bytes_used.get(),
                "id_table_start": sb.id_table_start.get(),
                "xattr_id_table_start": sb.xattr_id_table_start.get(),
                "inode_table_start": sb.inode_table_start.get(),
                "directory_table_start": sb.directory_table_start.get(),
                "fragment_table_start": sb.fragment_table_start.get(),
                "lookup_table_start": sb.lookup_table_start.get(),
            },
        ),
        ("compressor", q.compressor.as_str().into()),
        ("compressor_options", q.compressor_options.clone().into()),
        ("ids", Json::Arr(q.ids.iter().map(|&i| i.into()).collect())),
        ("fragment_blocks", Json::Arr(q.fragments.iter().map(|&(o, w)| data_block(o, w)).collect())),
        ("export_entries", q.export_entries.into()),
        (
            "tables",
            Json::Arr(
                q.tables
                    .iter()
                    .map(|t| {
                        obj! {
                            "name": t.name,
                            "start": t.start(),
                            "end": t.end(),
                            "metadata_blocks": t.blocks.len(),
                            "index": t.index.map(|(o, l)| obj! { "offset": o, "length": l }),
                        }
                    })
                    .collect(),
            ),
        ),
        ("entries", q.entries.len().into()),
        ("problems", q.problems.len().into()),
    ];
    if tree {
        let tree = q
            .entries
            .iter()
            .map(|e| {
                let mut x = vec![
                    ("path", Json::from(e.path.as_str())),
                    ("kind", e.kind_name().into()),
                    ("inode", e.inode_number.into()),
                    ("mode", e.mode.into()),
                    ("uid", e.uid.into()),
                    ("gid", e.gid.into()),
                    ("mtime", e.mtime.into()),
                    ("size", e.size().into()),
                ];
                match &e.kind {
                    SquashfsKind::Dir { nlink, .. } => x.push(("nlink", (*nlink).into())),
                    SquashfsKind::File { blocks, fragment, .. } => {
                        x.push((
                            "blocks",
                            Json::Arr(blocks.iter().map(|&(o, w)| data_block(o, w)).collect()),
                        ));
                        x.push((
                            "fragment",
                            fragment.map_or(Json::Null, |(i, off)| obj! { "index": i, "offset": off }),
                        ));
                    }
                    SquashfsKind::Symlink { target } => x.push(("target", target.as_str().into())),
                    SquashfsKind::Special { inode_type } => x.push(("inode_type", (*inode_type).into())),
                }
                Json::Obj(x)
            })
            .collect();
        o.push(("tree", Json::Arr(tree)));
    }
    Json::Obj(o)
}

fn date(d: &VolumeDate) -> Json {
    obj! {
        "raw": String::from_utf8_lossy(&d.raw[..16]).into_owned(),
        "gmt_offset": i8::from_le_bytes([d.raw[16]]),
        "unix": d.parsed.map(|p| p.unix_seconds()),
    }
}

fn volume(v: &VolumeSummary, x: &super::DescriptorExtras) -> Json {
    obj! {
        "volume_flags": x.volume_flags,
        "escape_sequences": x.escape_sequences.as_str(),
        "volume_set_size": x.volume_set_size,
        "volume_sequence_number": x.volume_sequence_number,
        "copyright_file_id": x.copyright_file_id.as_str(),
        "abstract_file_id": x.abstract_file_id.as_str(),
        "bibliographic_file_id": x.bibliographic_file_id.as_str(),
        "application_use_sha256": x.application_use_sha256.as_str(),
        "descriptor_lba": v.descriptor_lba,
        "system_id": v.system_id.as_str(),
        "volume_id": v.volume_id.as_str(),
        "volume_set_id": v.volume_set_id.as_str(),
        "publisher_id": v.publisher_id.as_str(),
        "preparer_id": v.preparer_id.as_str(),
        "application_id": v.application_id.as_str(),
        "volume_space_size": v.volume_space_size,
        "logical_block_size": v.block_size,
        "path_table_size": v.path_table_size,
        "type_l_path_table": v.l_path_table,
        "optional_type_l_path_table": v.optional_l_path_table,
        "type_m_path_table": v.m_path_table,
        "optional_type_m_path_table": v.optional_m_path_table,
        "root_extent_lba": v.root.extent_lba,
        "root_data_length": v.root.data_length,
        "volume_creation_date": date(&v.creation_date),
        "volume_modification_date": date(&v.modification_date),
        "volume_expiration_date": date(&v.expiration_date),
        "volume_effective_date": date(&v.effective_date),
        "file_structure_version": v.file_structure_version,
    }
}

fn check(c: FieldCheck) -> Json {
    match c {
        FieldCheck::Valid => "valid".into(),
        FieldCheck::Invalid { .. } => "invalid".into(),
        FieldCheck::Unknown => "unknown".into(),
    }
}

fn slot(c: &CatalogSlot) -> Json {
    obj! {
        "name": c.name(),
        "section": c.section,
        "entry": c.entry,
        "offset": c.offset,
        "platform_id": c.platform,
        "boot_indicator": c.boot_indicator,
        "media_type": c.media_type,
        "load_segment": c.load_segment,
        "system_type": c.system_type,
        "load_size": c.load_size,
        "load_rba": c.load_rba,
        "emulation": c.emulation().name(),
        "grub2_boot_info": c.grub2_boot_info,
    }
}

fn entry(e: &Entry) -> Json {
    let rr = e.rr.as_ref();
    obj! {
        "path": e.path_lossy(),
        "kind": match e.kind { crate::iso9660::read::EntryKind::Dir => "dir", crate::iso9660::read::EntryKind::File => "file", crate::iso9660::read::EntryKind::Symlink => "symlink" },
        "size": e.size,
        "extents": Json::Arr(e.extents.iter().map(|&(l, n)| Json::Arr(vec![l.into(), n.into()])).collect()),
        "record_offset": e.record_offset,
        "mode": rr.and_then(|r| r.mode),
        "uid": rr.and_then(|r| r.uid),
        "gid": rr.and_then(|r| r.gid),
        "nlink": rr.and_then(|r| r.nlink),
        "symlink": rr.and_then(|r| r.symlink.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned()),
    }
}

fn listing(l: &Listing, tree: bool) -> Json {
    let files = l.entries.iter().filter(|e| e.kind == crate::iso9660::read::EntryKind::File).count();
    let dirs = l.entries.iter().filter(|e| e.kind == crate::iso9660::read::EntryKind::Dir).count();
    let mut o = vec![
        ("entries", Json::from(l.entries.len())),
        ("files", files.into()),
        ("directories", dirs.into()),
        ("rock_ridge", l.has_rock_ridge().into()),
    ];
    if tree {
        o.push(("tree", Json::Arr(l.entries.iter().map(entry).collect())));
    }
    Json::Obj(o)
}

/// The whole model as JSON (`tree`: include every entry of both hierarchies and of the FAT).
pub fn image(img: &Image, tree: bool) -> Json {
    let sa = &img.system_area;
    let gpt = sa.gpt.as_ref().map(|g| {
        let header = |h: &Option<super::system_area::GptHeaderInfo>| -> Json {
            match h {
                None => Json::Null,
                Some(h) => {
                    let x = &h.header;
                    obj! {
                        "lba": h.at,
                        "header_crc32": x.header_crc32.get(),
                        "header_crc_valid": h.header_crc_valid,
                        "my_lba": x.my_lba.get(),
                        "alternate_lba": x.alternate_lba.get(),
                        "first_usable_lba": x.first_usable_lba.get(),
                        "last_usable_lba": x.last_usable_lba.get(),
                        "disk_guid": x.disk_guid.to_string(),
                        "disk_guid_bytes": super::system_area::hex(&x.disk_guid.0),
                        "partition_entry_lba": x.partition_entry_lba.get(),
                        "number_of_partition_entries": x.number_of_partition_entries.get(),
                        "size_of_partition_entry": x.size_of_partition_entry.get(),
                        "partition_entry_array_crc32": x.partition_entry_array_crc32.get(),
                        "entries_crc_valid": h.entries_crc_valid,
                    }
                }
            }
        };
        obj! {
            "primary": header(&g.primary),
            "backup": header(&g.backup),
            "entries": Json::Arr(g.entries.iter().map(|p| obj! {
                "index": p.index,
                "type_guid": p.type_guid.as_str(),
                "type_guid_bytes": p.type_guid_bytes.as_str(),
                "unique_guid": p.unique_guid.as_str(),
                "unique_guid_bytes": p.unique_guid_bytes.as_str(),
                "first_lba": p.first_lba,
                "last_lba": p.last_lba,
                "attributes": p.attributes,
                "name": p.name.as_str(),
            }).collect()),
            "entry_array": if g.overlapping { "overlapping" } else { "separated" },
        }
    });
    let chs = |c: (u32, u32, u32)| Json::Arr(vec![c.0.into(), c.1.into(), c.2.into()]);
    let system_area = obj! {
        "layout": sa.layout.map(|l| l.name()),
        "mbr": obj! {
            "signature_valid": sa.mbr_signature_ok,
            "boot_code_sha256": sa.boot_code_sha256.as_str(),
            "boot_code_zero": sa.boot_code_zero,
            "isohybrid_boot_lba": sa.isohybrid_boot_lba,
            "disk_signature": sa.disk_signature,
            "partitions": Json::Arr(sa.partitions.iter().map(|p| obj! {
                "index": p.index,
                "boot_indicator": p.boot_indicator,
                "type": p.os_type,
                "start_chs": chs(p.start_chs),
                "end_chs": chs(p.end_chs),
                "start_lba": p.start_lba,
                "sectors": p.sectors,
            }).collect()),
        },
        "gpt": gpt.unwrap_or(Json::Null),
        "mismatches": Json::Arr(sa.mismatches.iter().map(|m| Json::from(m.to_string())).collect()),
        "summary": sa.recognition.summary.join(" "),
        "isohybrid": sa.recognition.isohybrid,
        "protective_msdos_label": sa.recognition.protective_msdos_label,
        "grub2_mbr": sa.recognition.grub2_mbr,
        "partition_offset": sa.recognition.partition_offset,
        "appended_partitions": Json::Arr(sa.recognition.appended.iter().map(|a| obj! {
            "name": a.name.as_str(),
            "number": a.number,
            "start_lba": a.start,
            "sectors": a.sectors,
        }).collect()),
        "apm": match &sa.apm {
            None => Json::Null,
            Some(a) => obj! {
                "block_size": a.block_size,
                "entries": Json::Arr(a.entries.iter().map(|e| obj! {
                    "index": e.index,
                    "name": e.name.as_str(),
                    "type": e.type_name.as_str(),
                    "start": e.start,
                    "blocks": e.blocks,
                }).collect()),
            },
        },
    };
    let el_torito = img.boot_record.map(|br| {
        let bi = img.el_torito.as_ref().and_then(|e| e.boot_info.as_ref());
        obj! {
            "boot_record_lba": br.lba,
            "catalog_lba": br.catalog_lba,
            "entries": Json::Arr(img.catalog.iter().map(slot).collect()),
            "boot_info_table": match bi {
                None => Json::Null,
                Some(b) => obj! {
                    "present": b.present,
                    "file": b.file.as_ref().map(|f| String::from_utf8_lossy(f).into_owned()),
                    "bi_pvd": b.table.pvd_lba.get(),
                    "bi_file": b.table.file_lba.get(),
                    "bi_length": b.table.file_length.get(),
                    "bi_csum": b.table.checksum.get(),
                    "pvd_lba_check": check(b.pvd_lba),
                    "file_lba_check": check(b.file_lba),
                    "file_length_check": check(b.file_length),
                    "checksum_check": check(b.checksum),
                },
            },
        }
    });
    let embedded = Json::Arr(
        img.embedded
            .iter()
            .map(|e| {
                let payload = match &e.payload {
                    Payload::Fat(f) => {
                        let g = &f.boot.geometry;
                        let mut o = vec![
                            ("type", Json::from("fat")),
                            ("fat_type", Json::from(g.fat_type.to_string())),
                            ("oem_name", f.oem_name.as_str().into()),
                            ("bytes_per_sector", 512u32.into()),
                            ("sectors_per_cluster", g.sectors_per_cluster.into()),
                            ("reserved_sectors", g.reserved_sectors.into()),
                            ("num_fats", g.num_fats.into()),
                            ("root_entries", g.root_entries.into()),
                            ("total_sectors", g.total_sectors.into()),
                            ("media", g.media.into()),
                            ("sectors_per_fat", g.sectors_per_fat.into()),
                            ("sectors_per_track", g.sectors_per_track.into()),
                            ("heads", g.heads.into()),
                            ("hidden_sectors", g.hidden_sectors.into()),
                            ("cluster_count", g.cluster_count.into()),
                            ("volume_serial", f.boot.serial.into()),
                            (
                                "volume_label",
                                String::from_utf8_lossy(&f.boot.label).trim_end().to_string().into(),
                            ),
                            ("root_label", f.root_label.clone().into()),
                            ("entries", f.entries.len().into()),
                            ("problems", f.problems.len().into()),
                        ];
                        if tree {
                            o.push((
                                "tree",
                                Json::Arr(
                                    f.entries
                                        .iter()
                                        .map(|x| {
                                            obj! {
                                                "path": x.path.as_str(),
                                                "kind": if x.is_dir { "dir" } else { "file" },
                                                "size": x.size,
                                                "attr": x.attr,
                                                "first_cluster": x.first_cluster,
                                                "clusters": x.clusters.len(),
                                            }
                                        })
                                        .collect(),
                                ),
                            ));
                        }
                        Json::Obj(o)
                    }
                    Payload::Squashfs(q) => squashfs(q, tree),
                    Payload::Unrecognised { why } => obj! { "type": "unrecognised", "why": why.as_str() },
                };
                obj! {
                    "name": e.name.as_str(),
                    "offset": e.offset,
                    "length": e.len,
                    "found_by": Json::Arr(e.found_by.iter().map(|s| Json::from(s.as_str())).collect()),
                    "payload": payload,
                }
            })
            .collect(),
    );
    obj! {
        "schema": SCHEMA,
        "size": img.len,
        "system_area": system_area,
        "volume_descriptors": Json::Arr(img.descriptors.iter().map(|d| obj! {
            "lba": d.lba, "type": d.descriptor_type, "role": d.role,
        }).collect()),
        "primary": volume(&img.pvd, &img.pvd_extras),
        "joliet": match (&img.joliet, &img.joliet_extras) {
            (Some(v), Some(x)) => volume(v, x),
            _ => Json::Null,
        },
        "el_torito": el_torito.unwrap_or(Json::Null),
        "iso9660": listing(&img.primary, tree),
        "joliet_tree": img.joliet_tree.as_ref().map(|l| listing(l, tree)).unwrap_or(Json::Null),
        "embedded": embedded,
        "problems": img.iso_problems.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_printing_is_stable_and_escaped() {
        let j = Json::Obj(vec![
            ("a", Json::Str("q\"\\\n\u{1}".into())),
            ("b", Json::Arr(vec![Json::Int(1), Json::Int(-2)])),
            ("c", Json::Arr(vec![])),
            ("d", Json::Obj(vec![("e", Json::Null), ("f", Json::Bool(true))])),
        ]);
        assert_eq!(
            j.pretty(),
            "{\n  \"a\": \"q\\\"\\\\\\n\\u0001\",\n  \"b\": [1, -2],\n  \"c\": [],\n  \"d\": {\n    \"e\": null,\n    \"f\": true\n  }\n}\n"
        );
    }
}
