//! `isoforge diff --summary`: the differences grouped by cause, verdict first.
//!
//! Every difference [`super::diff`] finds is classified where it is found, from what the differ
//! knows about it, never from the text it prints: the byte map's structure and field
//! (`PVD.` + `volume_creation_date`, `GPT.primary.` + `disk_guid`, `<payload>: FAT dirent … ` +
//! `wrt_date`), or the comparison that found it (a file matched by path, a squashfs inode field,
//! a squashfs table block). The groups, in the order printed:
//!
//! | group | what |
//! |---|---|
//! | dates and times | volume descriptor dates, directory record dates, Rock Ridge `TF`, FAT entry times, squashfs `mkfs_time` and inode mtimes |
//! | ids and serials | MBR disk signature, GPT disk and partition GUIDs, FAT volume serial (isoforge derives them from the epoch and the volume id unless they are given) |
//! | volume ids and labels | ISO 9660 identifiers, FAT volume label, GPT partition names |
//! | file contents | by file: content, size (`resized`), `added`, `removed`, `metadata` (mode, uid, gid) |
//! | recomputed | checksums (GPT CRCs, boot-info-table), copies (FAT backup boot sector), link counts and compressed squashfs tables, which follow from other changes |
//! | layout shifts | moved extents, location and size fields, allocation tables, structures at other offsets |
//! | other | anything else, by name |
//!
//! Layout shifts in a container (the ISO 9660 level, or one embedded payload) are *explained*
//! when a size changes in that container (a file resized, added or removed; a squashfs block
//! whose stored length changed; a payload that grew or shrank); recomputed structures are
//! explained when anything else in their container differs. The others are listed as
//! *unexplained*.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

/// The schema identifier of `diff --summary --json`.
pub const SCHEMA: &str = "isoforge-diff-summary/1";

/// Items shown per group in the text form (the JSON lists all of them).
const SHOWN: usize = 8;

/// What a difference follows from: the summary's groups, in the order printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Cause {
    /// Dates and times.
    Time,
    /// GUIDs, serials and signatures.
    Id,
    /// Volume ids and labels.
    Label,
    /// A file's content or metadata (by file).
    File,
    /// Checksums, copies and tables computed from other fields.
    Recomputed,
    /// Locations, sizes and allocation.
    Layout,
    /// Anything else.
    Other,
}

impl Cause {
    /// Every cause, in the order printed.
    pub const ALL: [Cause; 7] =
        [Cause::Time, Cause::Id, Cause::Label, Cause::File, Cause::Recomputed, Cause::Layout, Cause::Other];

    /// The group's title in the text form.
    pub fn title(self) -> &'static str {
        match self {
            Cause::Time => "dates and times",
            Cause::Id => "ids and serials",
            Cause::Label => "volume ids and labels",
            Cause::File => "file contents",
            Cause::Recomputed => "recomputed",
            Cause::Layout => "layout shifts",
            Cause::Other => "other",
        }
    }
}

/// How a file differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FileChange {
    /// Only in image B.
    Added,
    /// Only in image A.
    Removed,
    /// Its size differs.
    Resized,
    /// Its bytes differ.
    Content,
    /// Its mode, uid or gid differ.
    Metadata,
}

impl FileChange {
    fn as_str(self) -> &'static str {
        match self {
            FileChange::Added => "added",
            FileChange::Removed => "removed",
            FileChange::Resized => "resized",
            FileChange::Content => "content",
            FileChange::Metadata => "metadata",
        }
    }
}

/// How one difference is counted: its cause, the item of the group it adds to, and the container
/// it lies in (`""`: the ISO 9660 level; else an embedded payload's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    pub(crate) cause: Cause,
    pub(crate) item: String,
    pub(crate) within: String,
    pub(crate) change: Option<FileChange>,
    /// The container in which this changes a size (what follows may shift).
    pub(crate) resizes: Option<String>,
}

impl Class {
    /// A field or structure in `within`; `item` is prefixed with the payload's name.
    pub(crate) fn new(cause: Cause, within: &str, item: &str) -> Class {
        let item = if within.is_empty() { item.to_string() } else { format!("{within}: {item}") };
        Class { cause, item, within: within.to_string(), change: None, resizes: None }
    }

    /// A file (`path` inside the payload `within`) that differs by `change`. Added, removed and
    /// resized files change a size in their container.
    pub(crate) fn file(within: &str, path: &str, change: FileChange) -> Class {
        let mut c = Class::new(Cause::File, within, path);
        c.change = Some(change);
        if matches!(change, FileChange::Added | FileChange::Removed | FileChange::Resized) {
            c.resizes = Some(within.to_string());
        }
        c
    }

    /// Marks this difference as changing a size in `within`.
    pub(crate) fn resizing(mut self, within: &str) -> Class {
        self.resizes = Some(within.to_string());
        self
    }
}

/// The payload whose name prefixes `owner` (`/boot/efi.img: FAT.BPB.`), or whose file's
/// bytes `owner` names (`file /boot/efi.img`: bytes of the payload in none of its structures);
/// `""`: none.
pub(crate) fn within(payloads: &[String], owner: &str) -> String {
    match owner.strip_prefix("file ") {
        Some(p) if payloads.iter().any(|x| x == p) => p.to_string(),
        _ => split_payload(payloads, owner).0,
    }
}

/// The payload whose name prefixes `owner` (`/boot/efi.img: FAT.BPB.`), and the rest.
fn split_payload<'a>(payloads: &[String], owner: &'a str) -> (String, &'a str) {
    for p in payloads {
        if let Some(rest) = owner.strip_prefix(p.as_str()).and_then(|r| r.strip_prefix(": ")) {
            return (p.clone(), rest);
        }
    }
    (String::new(), owner)
}

/// Classifies bytes that differ in one structure of the byte maps: the region's owner
/// (`PVD.`, `dirrec /x `, `/boot/efi.img: FAT dirent /EFI `, `file /x`), its field
/// (`volume_creation_date`; `""` for a content region or a squashfs block) and whether it is a
/// content region. `payloads` are the names of the embedded payloads (owner prefixes).
pub(crate) fn classify_field(payloads: &[String], owner: &str, field: &str, content: bool) -> Class {
    use Cause::{Id, Label, Layout, Other, Recomputed, Time};
    let (within, rest) = split_payload(payloads, owner);
    let w = within.as_str();
    let full = format!("{rest}{field}").trim_end().to_string();
    if content || field.is_empty() {
        if let Some(path) = rest.strip_prefix("file ") {
            if payloads.iter().any(|p| p == path) && w.is_empty() {
                // A payload's bytes in none of its structures (free space, padding).
                return Class::new(Other, path, "bytes in no structure");
            }
            return Class::file(w, path, FileChange::Content);
        }
        let item = if rest.starts_with("directory ") {
            "directory contents"
        } else if rest.starts_with("path table ") {
            "path tables"
        } else if rest.starts_with("FAT directory ") || rest == "FAT.root_directory" {
            "FAT directory contents"
        } else if rest.starts_with("FAT.table[") {
            "FAT cluster chains"
        } else if rest == "FAT.backup_boot_sector" {
            return Class::new(Recomputed, w, "FAT backup boot sector");
        } else {
            return Class::new(Other, w, &full);
        };
        return Class::new(Layout, w, item);
    }
    let (cause, item): (Cause, &str) = match field {
        "volume_creation_date"
        | "volume_modification_date"
        | "volume_expiration_date"
        | "volume_effective_date" => (Time, "volume descriptor dates"),
        "recording_date" => (Time, "directory record dates"),
        "times (TF)" => (Time, "Rock Ridge times"),
        "crt_time_tenth" | "crt_time" | "crt_date" | "lst_acc_date" | "wrt_time" | "wrt_date" => {
            (Time, "FAT entry times")
        }
        "mkfs_time" => (Time, full.as_str()),
        "disk_signature" | "volume_serial" => (Id, full.as_str()),
        "disk_guid" => (Id, "GPT disk GUIDs"),
        "unique_partition_guid" => (Id, "GPT partition GUIDs"),
        "volume_id"
        | "volume_set_id"
        | "system_id"
        | "publisher_id"
        | "data_preparer_id"
        | "application_id"
        | "copyright_file_id"
        | "abstract_file_id"
        | "bibliographic_file_id"
        | "volume_label"
        | "partition_name"
        | "id_string" => (Label, full.as_str()),
        "name" if rest == "FAT volume label entry " => (Label, full.as_str()),
        "header_crc32" => (Recomputed, "GPT header CRCs"),
        "partition_entry_array_crc32" => (Recomputed, "GPT entry array CRCs"),
        "bi_csum" => (Recomputed, "boot-info-table checksums"),
        "checksum" => (Recomputed, full.as_str()),
        "nlink" => (Recomputed, "Rock Ridge link counts"),
        "volume_space_size"
        | "path_table_size"
        | "type_l_path_table"
        | "optional_type_l_path_table"
        | "type_m_path_table"
        | "optional_type_m_path_table" => (Layout, "volume descriptor sizes and locations"),
        "extent_lba" | "data_length" => (Layout, "directory record extents"),
        "serial" => (Layout, "Rock Ridge serial numbers"),
        "continuation (CE)" => (Layout, "Rock Ridge continuations"),
        "isohybrid_boot_lba" | "catalog_lba" => (Layout, full.as_str()),
        "starting_lba" | "size_in_lba" | "start_head" | "start_sector" | "start_track" | "end_head"
        | "end_sector" | "end_track"
            if rest.starts_with("MBR.") =>
        {
            (Layout, "MBR partition extents")
        }
        "starting_lba" | "ending_lba" => (Layout, "GPT partition extents"),
        "my_lba" | "alternate_lba" | "first_usable_lba" | "last_usable_lba" | "partition_entry_lba" => {
            (Layout, "GPT header locations")
        }
        "load_rba" | "load_size" => (Layout, "El Torito boot image extents"),
        "bi_pvd" | "bi_file" | "bi_length" => (Layout, "boot-info-table locations"),
        "tot_sec16" | "tot_sec32" | "fat_sz16" | "fat_sz32" | "hidd_sec" => (Layout, "FAT geometry"),
        "free_count" | "nxt_free" => (Layout, "FAT FSInfo counts"),
        "fst_clus_hi" | "fst_clus_lo" | "file_size" => (Layout, "FAT entry clusters and sizes"),
        "inodes"
        | "fragments"
        | "bytes_used"
        | "id_table_start"
        | "xattr_id_table_start"
        | "inode_table_start"
        | "directory_table_start"
        | "fragment_table_start"
        | "lookup_table_start"
        | "root_inode" => (Layout, "squashfs superblock sizes and locations"),
        "mode" | "uid" | "gid" | "symlink (SL)" if rest.starts_with("inode ") => {
            let path = rest.strip_prefix("inode ").unwrap_or(rest).trim_end();
            let change = if field == "symlink (SL)" { FileChange::Content } else { FileChange::Metadata };
            return Class::file(w, path, change);
        }
        _ => (Other, full.as_str()),
    };
    Class::new(cause, w, item)
}

/// One item of a group while counting.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counted {
    cause: Cause,
    name: String,
    within: String,
    count: u64,
    changes: BTreeSet<FileChange>,
}

/// The classes of every difference found (kept whatever `--max`), and the containers in which
/// sizes changed or anything else differed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// The names of the embedded payloads (owner prefixes of the byte maps).
    pub(crate) payloads: Vec<String>,
    total: u64,
    items: Vec<Counted>,
    index: BTreeMap<(Cause, String, String), usize>,
    resized: BTreeSet<String>,
    touched: BTreeSet<String>,
}

impl Tally {
    /// Counts one reported difference (`None`: its bytes lie in what another difference reports).
    pub(crate) fn difference(&mut self, class: Option<Class>) {
        self.total += 1;
        if let Some(c) = class {
            self.note(c);
        }
    }

    /// Counts a class without a reported difference (a squashfs block that only moved).
    pub(crate) fn note(&mut self, c: Class) {
        if let Some(r) = &c.resizes {
            self.resized.insert(r.clone());
        }
        if !matches!(c.cause, Cause::Layout | Cause::Recomputed) {
            self.touched.insert(c.within.clone());
        }
        let key = (c.cause, c.within.clone(), c.item.clone());
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.items.push(Counted {
                    cause: c.cause,
                    name: c.item,
                    within: c.within,
                    count: 0,
                    changes: BTreeSet::new(),
                });
                self.index.insert(key, self.items.len() - 1);
                self.items.len() - 1
            }
        };
        if let Some(item) = self.items.get_mut(i) {
            item.count += 1;
            item.changes.extend(c.change);
        }
    }

    fn explained(&self, item: &Counted) -> Option<bool> {
        match item.cause {
            Cause::Layout => Some(self.resized.contains(&item.within)),
            Cause::Recomputed => {
                Some(self.touched.contains(&item.within) || self.resized.contains(&item.within))
            }
            _ => None,
        }
    }

    /// The summary.
    pub(crate) fn summary(&self) -> Summary {
        let mut groups = Vec::new();
        for cause in Cause::ALL {
            let of: Vec<&Counted> = self.items.iter().filter(|i| i.cause == cause).collect();
            let parts: Vec<(Option<bool>, Vec<&Counted>)> = match cause {
                Cause::Layout | Cause::Recomputed => [true, false]
                    .into_iter()
                    .map(|e| (Some(e), of.iter().copied().filter(|i| self.explained(i) == Some(e)).collect()))
                    .collect(),
                _ => vec![(None, of)],
            };
            for (explained, items) in parts {
                if items.is_empty() {
                    continue;
                }
                groups.push(Group {
                    cause,
                    title: cause.title(),
                    explained,
                    count: items.iter().map(|i| i.count).sum(),
                    items: items
                        .iter()
                        .map(|i| Item {
                            name: i.name.clone(),
                            count: i.count,
                            changes: i.changes.iter().copied().collect(),
                        })
                        .collect(),
                });
            }
        }
        Summary { schema: SCHEMA, identical: self.total == 0, differences: self.total, groups }
    }
}

/// The differences of two images grouped by cause (`diff --summary`; JSON schema
/// `isoforge-diff-summary/1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// `isoforge-diff-summary/1`.
    pub schema: &'static str,
    /// True when the images are byte-identical.
    pub identical: bool,
    /// How many differences the full report has (whatever `--max`).
    pub differences: u64,
    /// The groups, in [`Cause::ALL`] order; layout shifts and recomputed structures in up to two
    /// groups each (explained first).
    pub groups: Vec<Group>,
}

/// The differences that follow from one cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Group {
    /// The cause.
    pub cause: Cause,
    /// Its title (`dates and times`).
    pub title: &'static str,
    /// For layout shifts and recomputed structures: whether the other changes explain them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained: Option<bool>,
    /// The differences (and moved squashfs blocks) counted in the group.
    pub count: u64,
    /// What they are, in image order: structures and fields (`directory record dates`), or files.
    pub items: Vec<Item>,
}

/// One item of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Item {
    /// A structure, a field or a file (`/boot/efi.img: /EFI/BOOT/BOOTX64.EFI`).
    pub name: String,
    /// Its differences.
    pub count: u64,
    /// For a file: how it differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FileChange>,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        let notes: Vec<&str> =
            self.changes.iter().filter(|c| **c != FileChange::Content).map(|c| c.as_str()).collect();
        if !notes.is_empty() {
            write!(f, " ({})", notes.join(", "))?;
        } else if self.changes.is_empty() && self.count > 1 {
            write!(f, " ×{}", self.count)?;
        }
        Ok(())
    }
}

impl fmt::Display for Group {
    /// `dates and times: 14 fields: volume descriptor dates ×4, …`; `file contents: 1 file: /x`;
    /// `layout shifts: 3, explained by the size changes above: files moved ×3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
        let count = match self.cause {
            Cause::File => plural(self.items.len() as u64, "file"),
            Cause::Time | Cause::Id | Cause::Label => plural(self.count, "field"),
            _ => self.count.to_string(),
        };
        write!(f, "{}: {count}", self.title)?;
        match (self.cause, self.explained) {
            (Cause::Layout, Some(true)) => f.write_str(", explained by the size changes above")?,
            (Cause::Recomputed, Some(true)) => f.write_str(", from the changes above")?,
            (_, Some(false)) => f.write_str(", unexplained")?,
            _ => {}
        }
        let shown: Vec<String> = self.items.iter().take(SHOWN).map(ToString::to_string).collect();
        write!(f, ": {}", shown.join(", "))?;
        if self.items.len() > SHOWN {
            write!(f, ", … {} more", self.items.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl fmt::Display for Summary {
    /// The verdict (`identical`, or `differ: N differences`), then one line per group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.identical {
            return writeln!(f, "identical");
        }
        let n = self.differences;
        writeln!(f, "differ: {n} difference{}", if n == 1 { "" } else { "s" })?;
        for g in &self.groups {
            writeln!(f, "{g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(owner: &str, field: &str) -> (Cause, String) {
        let c = classify_field(&["/boot/efi.img".to_string()], owner, field, false);
        (c.cause, c.item)
    }

    #[test]
    fn fields_are_classified_by_structure_and_field() {
        use Cause::*;
        let s = |x: &str| x.to_string();
        assert_eq!(class("PVD.", "volume_creation_date"), (Time, s("volume descriptor dates")));
        assert_eq!(class("joliet dirrec /boot ", "recording_date"), (Time, s("directory record dates")));
        assert_eq!(class("inode /boot ", "times (TF)"), (Time, s("Rock Ridge times")));
        assert_eq!(
            class("/boot/efi.img: FAT dirent /EFI ", "wrt_date"),
            (Time, s("/boot/efi.img: FAT entry times"))
        );
        assert_eq!(class("MBR.", "disk_signature"), (Id, s("MBR.disk_signature")));
        assert_eq!(class("GPT.backup.entry[2].", "unique_partition_guid"), (Id, s("GPT partition GUIDs")));
        assert_eq!(
            class("/boot/efi.img: FAT.BPB.", "volume_serial"),
            (Id, s("/boot/efi.img: FAT.BPB.volume_serial"))
        );
        assert_eq!(class("PVD.", "volume_id"), (Label, s("PVD.volume_id")));
        assert_eq!(
            class("/boot/efi.img: FAT volume label entry ", "name"),
            (Label, s("/boot/efi.img: FAT volume label entry name"))
        );
        assert_eq!(class("/boot/efi.img: FAT dirent /EFI ", "name").0, Other);
        assert_eq!(class("GPT.primary.", "header_crc32"), (Recomputed, s("GPT header CRCs")));
        assert_eq!(class("MBR.partition[1].", "size_in_lba"), (Layout, s("MBR partition extents")));
        assert_eq!(class("GPT.primary.entry[1].", "ending_lba"), (Layout, s("GPT partition extents")));
        assert_eq!(class("dirrec /x ", "extent_lba"), (Layout, s("directory record extents")));
        assert_eq!(class("PVD.", "application_id"), (Label, s("PVD.application_id")));
        assert_eq!(class("MBR.", "boot_code"), (Other, s("MBR.boot_code")));
        let c = classify_field(&[], "inode /bin/sh ", "mode", false);
        assert_eq!((c.cause, c.item.as_str(), c.change), (File, "/bin/sh", Some(FileChange::Metadata)));
        let c = classify_field(&["/boot/efi.img".into()], "/boot/efi.img: file /EFI/X", "", true);
        assert_eq!(
            (c.cause, c.item.as_str(), c.within.as_str()),
            (File, "/boot/efi.img: /EFI/X", "/boot/efi.img")
        );
        let c = classify_field(&[], "directory /boot", "", true);
        assert_eq!((c.cause, c.item.as_str()), (Layout, "directory contents"));
    }

    #[test]
    fn shifts_are_explained_by_size_changes_in_their_container() {
        let mut t = Tally::default();
        t.difference(Some(Class::new(Cause::Layout, "", "files moved")));
        t.difference(Some(Class::new(Cause::Layout, "/boot/efi.img", "FAT cluster chains")));
        t.difference(Some(Class::new(Cause::Recomputed, "", "GPT header CRCs")));
        let s = t.summary();
        let heads: Vec<String> = s.groups.iter().map(|g| g.to_string()).collect();
        assert_eq!(
            heads,
            [
                "recomputed: 1, unexplained: GPT header CRCs",
                "layout shifts: 2, unexplained: files moved, /boot/efi.img: FAT cluster chains",
            ]
        );
        t.difference(Some(Class::file("", "/readme.txt", FileChange::Resized)));
        t.difference(Some(Class::file("", "/readme.txt", FileChange::Content)));
        let s = t.summary();
        assert_eq!(
            s.to_string(),
            "differ: 5 differences\n\
             file contents: 1 file: /readme.txt (resized)\n\
             recomputed: 1, from the changes above: GPT header CRCs\n\
             layout shifts: 1, explained by the size changes above: files moved\n\
             layout shifts: 1, unexplained: /boot/efi.img: FAT cluster chains\n"
        );
        assert_eq!(Tally::default().summary().to_string(), "identical\n");
    }

    #[test]
    fn long_groups_are_cut_in_text_only() {
        let mut t = Tally::default();
        for i in 0..10 {
            t.difference(Some(Class::file("", &format!("/f{i}"), FileChange::Content)));
        }
        let s = t.summary();
        assert_eq!(s.groups[0].items.len(), 10);
        assert_eq!(
            s.groups[0].to_string(),
            "file contents: 10 files: /f0, /f1, /f2, /f3, /f4, /f5, /f6, /f7, … 2 more"
        );
    }
}
