//! `isoforge inspect`: the readable summary of an [`Image`].

use std::fmt::Write as _;

use super::{Image, Payload};
use crate::iso9660::read::EntryKind;

/// The readable summary; `tree` adds every entry of both hierarchies and of each FAT.
pub fn summary(img: &Image, tree: bool) -> String {
    let mut s = String::new();
    let sa = &img.system_area;
    let _ = writeln!(s, "image: {} bytes ({} blocks of 2048)", img.len, img.len / 2048);
    let _ = writeln!(
        s,
        "system area: layout {}",
        sa.layout.map_or("unknown (not an isoforge layout)", |l| l.name())
    );
    let _ = writeln!(s, "  recognised (xorriso -report_system_area terms): {}", sa.recognition.describe());
    let _ = writeln!(
        s,
        "  MBR: signature {}, boot code sha256 {}{}, isohybrid boot-file field {} (512-byte sector), disk signature {:#010x}",
        if sa.mbr_signature_ok { "55 AA" } else { "absent" },
        sa.boot_code_sha256,
        if sa.boot_code_zero { " (all zero)" } else { "" },
        sa.isohybrid_boot_lba,
        sa.disk_signature
    );
    for p in &sa.partitions {
        let _ = writeln!(
            s,
            "  {}: boot {:#04x} type {:#04x} start {} sectors {} CHS {:?}..{:?}",
            p.name(),
            p.boot_indicator,
            p.os_type,
            p.start_lba,
            p.sectors,
            p.start_chs,
            p.end_chs
        );
    }
    if let Some(g) = &sa.gpt {
        for (name, h) in [("primary", &g.primary), ("backup", &g.backup)] {
            match h {
                Some(h) => {
                    let _ = writeln!(
                        s,
                        "  GPT {name} header at sector {}: disk GUID {}, entries at {} ({} × {}), header CRC {}, entries CRC {}",
                        h.at,
                        h.header.disk_guid,
                        h.header.partition_entry_lba.get(),
                        h.header.number_of_partition_entries.get(),
                        h.header.size_of_partition_entry.get(),
                        if h.header_crc_valid { "valid" } else { "INVALID" },
                        match h.entries_crc_valid { Some(true) => "valid", Some(false) => "INVALID", None => "unreadable" }
                    );
                }
                None => {
                    let _ = writeln!(s, "  GPT {name} header: absent");
                }
            }
        }
        for p in &g.entries {
            let _ = writeln!(
                s,
                "  {}: {:?} type {} guid {} sectors {}..={} attributes {:#x}",
                p.name(),
                p.name,
                p.type_guid,
                p.unique_guid,
                p.first_lba,
                p.last_lba,
                p.attributes
            );
        }
    }
    if let Some(a) = &sa.apm {
        let _ = writeln!(s, "  APM: block size {}", a.block_size);
        for e in &a.entries {
            let _ = writeln!(
                s,
                "  APM.entry[{}]: {:?} type {:?} start {} blocks {}",
                e.index, e.name, e.type_name, e.start, e.blocks
            );
        }
    }
    for m in &sa.mismatches {
        let _ = writeln!(s, "  note: {}", m.note());
    }
    let _ = writeln!(s, "volume descriptors:");
    for d in &img.descriptors {
        let _ = writeln!(s, "  block {}: type {} ({})", d.lba, d.descriptor_type, d.role);
    }
    for (name, v) in
        std::iter::once(("PVD", Some(&img.pvd))).chain(std::iter::once(("Joliet SVD", img.joliet.as_ref())))
    {
        let Some(v) = v else { continue };
        let _ = writeln!(
            s,
            "{name}: volume id {:?}, system id {:?}, publisher {:?}, preparer {:?}, application {:?}",
            v.volume_id, v.system_id, v.publisher_id, v.preparer_id, v.application_id
        );
        let _ = writeln!(
            s,
            "  {} blocks, path table {} bytes at L {} / M {}, root at block {} ({} bytes)",
            v.volume_space_size,
            v.path_table_size,
            v.l_path_table,
            v.m_path_table,
            v.root.extent_lba,
            v.root.data_length
        );
        let _ = writeln!(
            s,
            "  created {}, modified {}, expires {}, effective {}",
            String::from_utf8_lossy(v.creation_date.raw.digits()),
            String::from_utf8_lossy(v.modification_date.raw.digits()),
            String::from_utf8_lossy(v.expiration_date.raw.digits()),
            String::from_utf8_lossy(v.effective_date.raw.digits())
        );
    }
    if let Some(br) = img.boot_record {
        let _ = writeln!(s, "El Torito: catalog at block {}", br.catalog_lba);
        for c in &img.catalog {
            let file = img.file_at_block(c.load_rba).map(|f| f.path_lossy()).unwrap_or_default();
            let _ = writeln!(
                s,
                "  {}: platform {:#04x} boot {:#04x} media {} (emulation {}{}) segment {:#x} load_size {} load_rba {} {}",
                c.name(),
                c.platform,
                c.boot_indicator,
                c.media_type,
                c.emulation().name(),
                if c.grub2_boot_info { ", grub2-boot-info" } else { "" },
                c.load_segment,
                c.load_size,
                c.load_rba,
                file
            );
        }
        if let Some(b) = img.el_torito.as_ref().and_then(|e| e.boot_info.as_ref()) {
            let _ = writeln!(
                s,
                "  boot-info-table: {} (pvd {:?}, file {:?}, length {:?}, checksum {:?})",
                if b.present { "present" } else { "absent" },
                b.pvd_lba,
                b.file_lba,
                b.file_length,
                b.checksum
            );
        }
    }
    for (name, l) in [("ISO 9660", Some(&img.primary)), ("Joliet", img.joliet_tree.as_ref())] {
        let Some(l) = l else { continue };
        let files = l.entries.iter().filter(|e| e.kind == EntryKind::File).count();
        let _ = writeln!(
            s,
            "{name} tree: {} entries ({files} files){}",
            l.entries.len(),
            if l.has_rock_ridge() { ", Rock Ridge" } else { "" }
        );
        if tree {
            for e in &l.entries {
                let mode = e.rr.as_ref().and_then(|r| r.mode).map(|m| format!("{m:o}")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  {:>7} {:>12} {:?} {}",
                    mode,
                    e.size,
                    e.extents.first().map_or(0, |x| x.0),
                    e.path_lossy()
                );
            }
        }
    }
    for e in &img.embedded {
        let _ = writeln!(
            s,
            "embedded {} at byte {} ({} bytes), found by {}",
            e.name,
            e.offset,
            e.len,
            e.found_by.join(", ")
        );
        match &e.payload {
            Payload::Fat(f) => {
                let g = &f.boot.geometry;
                let _ = writeln!(
                    s,
                    "  {}: {} sectors, {} per cluster, {} clusters, {} FATs of {} sectors, serial {:#010x}, label {:?}, {} entries, {} problems",
                    g.fat_type,
                    g.total_sectors,
                    g.sectors_per_cluster,
                    g.cluster_count,
                    g.num_fats,
                    g.sectors_per_fat,
                    f.boot.serial,
                    String::from_utf8_lossy(&f.boot.label).trim_end(),
                    f.entries.len(),
                    f.problems.len()
                );
                if tree {
                    for x in &f.entries {
                        let _ = writeln!(
                            s,
                            "  {:>4} {:>12} {}",
                            if x.is_dir { "dir" } else { "file" },
                            x.size,
                            x.path
                        );
                    }
                }
            }
            Payload::Squashfs(q) => squashfs(&mut s, q, tree),
            Payload::Unrecognised { why } => {
                let _ = writeln!(s, "  unreadable: {why}");
            }
        }
    }
    let _ = writeln!(s, "problems: {} (run `isoforge verify` for the list)", img.iso_problems.len());
    s
}

/// Deepest squashfs path listed by `inspect --tree` in text (a Nix store has 100,000+ files;
/// `--json --tree` lists them all).
pub const SQUASHFS_TREE_DEPTH: usize = 2;

pub(crate) fn squashfs(s: &mut String, q: &super::SquashfsInfo, tree: bool) {
    let sb = &q.superblock;
    let _ = writeln!(
        s,
        "  squashfs {}.{}: {}, block size {}, {} inodes, {} ids, {} fragments, {} bytes used, mkfs_time {}, flags {:#06x}, {} entries, {} problems",
        sb.s_major.get(),
        sb.s_minor.get(),
        q.compressor,
        sb.block_size.get(),
        sb.inodes.get(),
        sb.no_ids.get(),
        sb.fragments.get(),
        sb.bytes_used.get(),
        sb.mkfs_time.get(),
        sb.flags.get(),
        q.entries.len(),
        q.problems.len()
    );
    for t in &q.tables {
        let _ = writeln!(
            s,
            "  {}: bytes {}..{}, {} metadata blocks",
            t.name,
            t.start().unwrap_or(0),
            t.end().unwrap_or(0),
            t.blocks.len()
        );
    }
    if tree {
        let mut hidden = 0usize;
        for e in &q.entries {
            if e.path.matches('/').count() > SQUASHFS_TREE_DEPTH {
                hidden += 1;
                continue;
            }
            let target = match &e.kind {
                super::squashfs::SquashfsKind::Symlink { target } => format!(" -> {target}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  {:>7} {:04o} {}/{} {:>12} {:>10} {}{target}",
                e.kind_name(),
                e.mode & 0o7777,
                e.uid,
                e.gid,
                e.size(),
                e.mtime,
                e.path
            );
        }
        if hidden > 0 {
            let _ = writeln!(s, "  … {hidden} deeper entries (inspect --json --tree lists them all)");
        }
    }
}
