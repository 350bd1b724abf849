//! `isoforge inspect --json`: the model as JSON, schema `isoforge-inspect/1`
//! (docs/inspect-json.md). The report is a set of `#[derive(Serialize)]` views of the model
//! ([`image`], [`squashfs`]); [`pretty`] writes any `Serialize` value with serde_json and
//! [`Layout`], which keeps the schema's text form: keys in declaration order (fixed,
//! documented), two-space indentation, short arrays of integers (CHS triples, extents) on one
//! line, control characters other than `\n`, `\r` and `\t` as `\u00XX`.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

use super::{CatalogSlot, Image, Payload};
use crate::iso9660::read::{Entry, EntryKind, FieldCheck, Listing, VolumeDate, VolumeSummary};

/// The schema identifier written as `"schema"`.
pub const SCHEMA: &str = "isoforge-inspect/1";

/// `value` as pretty-printed JSON in the schema's [`Layout`], with a final newline.
///
/// Fails only when `value`'s `Serialize` implementation does (the views of this crate never
/// do: every map key is a string).
pub fn pretty<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, Layout::default()))?;
    out.push(b'\n');
    // serde_json writes UTF-8 only (strings are `str`, escapes ASCII).
    String::from_utf8(out).map_err(|e| serde_json::Error::io(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// The serde_json [`Formatter`] of the schema's text form. An array or object is rendered when
/// it ends (an array of at most four integers fits on one line, which needs its length), so
/// each open one collects its finished members here.
#[derive(Debug, Default)]
pub struct Layout {
    open: Vec<Open>,
}

#[derive(Debug, Default)]
struct Open {
    array: bool,
    members: Vec<Vec<u8>>,
    current: Vec<u8>,
}

impl Layout {
    /// Where the next bytes go: the innermost open member, else (at the top) the writer.
    fn put<W: ?Sized + io::Write>(&mut self, writer: &mut W, bytes: &[u8]) -> io::Result<()> {
        match self.open.last_mut() {
            Some(open) => {
                open.current.extend_from_slice(bytes);
                Ok(())
            }
            None => writer.write_all(bytes),
        }
    }

    fn begin(&mut self, array: bool) {
        self.open.push(Open { array, ..Open::default() });
    }

    fn member_done(&mut self) {
        if let Some(open) = self.open.last_mut() {
            let m = std::mem::take(&mut open.current);
            open.members.push(m);
        }
    }

    fn end<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        let Some(open) = self.open.pop() else { return Ok(()) };
        let depth = self.open.len();
        let (l, r) = if open.array { (b'[', b']') } else { (b'{', b'}') };
        let mut s = vec![l];
        let integer = |m: &Vec<u8>| {
            !m.is_empty() && m.iter().enumerate().all(|(i, &b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
        };
        if open.members.is_empty() {
        } else if open.array && open.members.len() <= 4 && open.members.iter().all(integer) {
            s.extend_from_slice(&open.members.join(&b", "[..]));
        } else {
            for (i, m) in open.members.iter().enumerate() {
                s.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
                s.extend(std::iter::repeat_n(b' ', 2 * (depth + 1)));
                s.extend_from_slice(m);
            }
            s.push(b'\n');
            s.extend(std::iter::repeat_n(b' ', 2 * depth));
        }
        s.push(r);
        self.put(writer, &s)
    }
}

macro_rules! numbers {
    ($($name:ident: $t:ty),*) => {$(
        fn $name<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: $t) -> io::Result<()> {
            self.put(writer, value.to_string().as_bytes())
        }
    )*};
}

impl Formatter for Layout {
    numbers!(write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128,
        write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128);

    fn write_null<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"null")
    }
    fn write_bool<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: bool) -> io::Result<()> {
        self.put(writer, if value { b"true" } else { b"false" })
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.put(writer, value.to_string().as_bytes())
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        self.put(writer, value.to_string().as_bytes())
    }
    fn write_number_str<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: &str) -> io::Result<()> {
        self.put(writer, value.as_bytes())
    }
    fn begin_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"\"")
    }
    fn end_string<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b"\"")
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.put(writer, fragment.as_bytes())
    }
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let control;
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::AsciiControl(c) => {
                control = format!("\\u{c:04x}");
                control.as_bytes()
            }
        };
        self.put(writer, s)
    }
    fn write_byte_array<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: &[u8]) -> io::Result<()> {
        self.begin_array(writer)?;
        for (i, b) in value.iter().enumerate() {
            self.begin_array_value(writer, i == 0)?;
            self.write_u8(writer, *b)?;
            self.end_array_value(writer)?;
        }
        self.end_array(writer)
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.begin(true);
        Ok(())
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.end(writer)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W, _first: bool) -> io::Result<()> {
        Ok(())
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.member_done();
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.begin(false);
        Ok(())
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.end(writer)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, _writer: &mut W, _first: bool) -> io::Result<()> {
        Ok(())
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.put(writer, b": ")
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.member_done();
        Ok(())
    }
    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.put(writer, fragment.as_bytes())
    }
}

// ---------------------------------------------------------------------------------------------
// The views. Field order is the schema's key order (docs/inspect-json.md).

/// An `{"offset", "length"}` range.
#[derive(Debug, Serialize)]
pub struct Range {
    offset: u64,
    length: u64,
}

impl Range {
    /// The range `(offset, length)`.
    pub fn new((offset, length): (u64, u64)) -> Range {
        Range { offset, length }
    }
}

/// A squashfs data block or fragment block: where it starts, its stored length, and whether it
/// is compressed (from its size word).
#[derive(Debug, Serialize)]
struct DataBlock {
    offset: u64,
    size: u64,
    compressed: bool,
}

fn data_block(offset: u64, word: u32) -> DataBlock {
    use isoforge_squashfs::inode::{stored_len, DATA_UNCOMPRESSED};
    DataBlock { offset, size: stored_len(word).into(), compressed: word & DATA_UNCOMPRESSED == 0 }
}

#[derive(Debug, Serialize)]
struct SquashfsSuperblock {
    s_magic: u64,
    inodes: u64,
    mkfs_time: u64,
    block_size: u64,
    fragments: u64,
    compression: u64,
    block_log: u64,
    flags: u64,
    no_ids: u64,
    s_major: u64,
    s_minor: u64,
    root_inode: u64,
    bytes_used: u64,
    id_table_start: u64,
    xattr_id_table_start: u64,
    inode_table_start: u64,
    directory_table_start: u64,
    fragment_table_start: u64,
    lookup_table_start: u64,
}

#[derive(Debug, Serialize)]
struct SquashfsTableView<'a> {
    name: &'a str,
    start: Option<u64>,
    end: Option<u64>,
    metadata_blocks: usize,
    index: Option<Range>,
}

#[derive(Debug, Serialize)]
struct FragmentRef {
    index: u64,
    offset: u64,
}

#[derive(Debug, Serialize)]
struct SquashfsEntryView<'a> {
    path: &'a str,
    kind: &'a str,
    inode: u64,
    mode: u64,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nlink: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocks: Option<Vec<DataBlock>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fragment: Option<Option<FragmentRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inode_type: Option<u64>,
}

/// The `"type": "squashfs"` payload (docs/inspect-json.md).
#[derive(Debug, Serialize)]
pub struct SquashfsView<'a> {
    r#type: &'static str,
    superblock: SquashfsSuperblock,
    compressor: &'a str,
    compressor_options: Option<&'a str>,
    ids: &'a [u32],
    fragment_blocks: Vec<DataBlock>,
    export_entries: Option<usize>,
    tables: Vec<SquashfsTableView<'a>>,
    entries: usize,
    problems: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    tree: Option<Vec<SquashfsEntryView<'a>>>,
}

fn squashfs_entry(e: &super::squashfs::SquashfsEntry) -> SquashfsEntryView<'_> {
    use super::squashfs::SquashfsKind;
    let mut v = SquashfsEntryView {
        path: e.path.as_str(),
        kind: e.kind_name(),
        inode: e.inode_number.into(),
        mode: e.mode.into(),
        uid: e.uid.into(),
        gid: e.gid.into(),
        mtime: e.mtime.into(),
        size: e.size(),
        nlink: None,
        blocks: None,
        fragment: None,
        target: None,
        inode_type: None,
    };
    match &e.kind {
        SquashfsKind::Dir { nlink, .. } => v.nlink = Some((*nlink).into()),
        SquashfsKind::File { blocks, fragment, .. } => {
            v.blocks = Some(blocks.iter().map(|&(o, w)| data_block(o, w)).collect());
            v.fragment = Some(fragment.map(|(i, off)| FragmentRef { index: i.into(), offset: off.into() }));
        }
        SquashfsKind::Symlink { target } => v.target = Some(target.as_str()),
        SquashfsKind::Special { inode_type } => v.inode_type = Some((*inode_type).into()),
    }
    v
}

/// The squashfs payload `q` (`tree`: with every entry).
pub fn squashfs(q: &super::SquashfsInfo, tree: bool) -> SquashfsView<'_> {
    let sb = &q.superblock;
    SquashfsView {
        r#type: "squashfs",
        superblock: SquashfsSuperblock {
            s_magic: sb.s_magic.get().into(),
            inodes: sb.inodes.get().into(),
            mkfs_time: sb.mkfs_time.get().into(),
            block_size: sb.block_size.get().into(),
            fragments: sb.fragments.get().into(),
            compression: sb.compression.get().into(),
            block_log: sb.block_log.get().into(),
            flags: sb.flags.get().into(),
            no_ids: sb.no_ids.get().into(),
            s_major: sb.s_major.get().into(),
            s_minor: sb.s_minor.get().into(),
            root_inode: sb.root_inode.get(),
            bytes_used: sb.bytes_used.get(),
            id_table_start: sb.id_table_start.get(),
            xattr_id_table_start: sb.xattr_id_table_start.get(),
            inode_table_start: sb.inode_table_start.get(),
            directory_table_start: sb.directory_table_start.get(),
            fragment_table_start: sb.fragment_table_start.get(),
            lookup_table_start: sb.lookup_table_start.get(),
        },
        compressor: q.compressor.as_str(),
        compressor_options: q.compressor_options.as_deref(),
        ids: &q.ids,
        fragment_blocks: q.fragments.iter().map(|&(o, w)| data_block(o, w)).collect(),
        export_entries: q.export_entries,
        tables: q
            .tables
            .iter()
            .map(|t| SquashfsTableView {
                name: t.name,
                start: t.start(),
                end: t.end(),
                metadata_blocks: t.blocks.len(),
                index: t.index.map(Range::new),
            })
            .collect(),
        entries: q.entries.len(),
        problems: q.problems.len(),
        tree: tree.then(|| q.entries.iter().map(squashfs_entry).collect()),
    }
}

#[derive(Debug, Serialize)]
struct DateView {
    raw: String,
    gmt_offset: i8,
    unix: Option<i64>,
}

fn date(d: &VolumeDate) -> DateView {
    DateView {
        raw: String::from_utf8_lossy(d.raw.digits()).into_owned(),
        gmt_offset: d.raw.gmt_offset,
        unix: d.parsed.map(|p| p.unix_seconds()),
    }
}

#[derive(Debug, Serialize)]
struct VolumeView<'a> {
    volume_flags: u8,
    escape_sequences: &'a str,
    volume_set_size: u16,
    volume_sequence_number: u16,
    copyright_file_id: &'a str,
    abstract_file_id: &'a str,
    bibliographic_file_id: &'a str,
    application_use_sha256: &'a str,
    descriptor_lba: u64,
    system_id: &'a str,
    volume_id: &'a str,
    volume_set_id: &'a str,
    publisher_id: &'a str,
    preparer_id: &'a str,
    application_id: &'a str,
    volume_space_size: u64,
    logical_block_size: u64,
    path_table_size: u64,
    type_l_path_table: u64,
    optional_type_l_path_table: u64,
    type_m_path_table: u64,
    optional_type_m_path_table: u64,
    root_extent_lba: u64,
    root_data_length: u64,
    volume_creation_date: DateView,
    volume_modification_date: DateView,
    volume_expiration_date: DateView,
    volume_effective_date: DateView,
    file_structure_version: u8,
}

fn volume<'a>(v: &'a VolumeSummary, x: &'a super::DescriptorExtras) -> VolumeView<'a> {
    VolumeView {
        volume_flags: x.volume_flags,
        escape_sequences: x.escape_sequences.as_str(),
        volume_set_size: x.volume_set_size,
        volume_sequence_number: x.volume_sequence_number,
        copyright_file_id: x.copyright_file_id.as_str(),
        abstract_file_id: x.abstract_file_id.as_str(),
        bibliographic_file_id: x.bibliographic_file_id.as_str(),
        application_use_sha256: x.application_use_sha256.as_str(),
        descriptor_lba: v.descriptor_lba.into(),
        system_id: v.system_id.as_str(),
        volume_id: v.volume_id.as_str(),
        volume_set_id: v.volume_set_id.as_str(),
        publisher_id: v.publisher_id.as_str(),
        preparer_id: v.preparer_id.as_str(),
        application_id: v.application_id.as_str(),
        volume_space_size: v.volume_space_size.into(),
        logical_block_size: v.block_size.into(),
        path_table_size: v.path_table_size.into(),
        type_l_path_table: v.l_path_table.into(),
        optional_type_l_path_table: v.optional_l_path_table.into(),
        type_m_path_table: v.m_path_table.into(),
        optional_type_m_path_table: v.optional_m_path_table.into(),
        root_extent_lba: v.root.extent_lba.into(),
        root_data_length: v.root.data_length.into(),
        volume_creation_date: date(&v.creation_date),
        volume_modification_date: date(&v.modification_date),
        volume_expiration_date: date(&v.expiration_date),
        volume_effective_date: date(&v.effective_date),
        file_structure_version: v.file_structure_version,
    }
}

fn check(c: FieldCheck) -> &'static str {
    match c {
        FieldCheck::Valid => "valid",
        FieldCheck::Invalid { .. } => "invalid",
        FieldCheck::Unknown => "unknown",
    }
}

#[derive(Debug, Serialize)]
struct SlotView {
    name: String,
    section: usize,
    entry: usize,
    offset: u64,
    platform_id: u8,
    boot_indicator: u8,
    media_type: u8,
    load_segment: u16,
    system_type: u8,
    load_size: u16,
    load_rba: u32,
    emulation: String,
    grub2_boot_info: bool,
}

fn slot(c: &CatalogSlot) -> SlotView {
    SlotView {
        name: c.name(),
        section: c.section,
        entry: c.entry,
        offset: c.offset,
        platform_id: c.platform,
        boot_indicator: c.boot_indicator,
        media_type: c.media_type,
        load_segment: c.load_segment,
        system_type: c.system_type,
        load_size: c.load_size,
        load_rba: c.load_rba,
        emulation: c.emulation().name(),
        grub2_boot_info: c.grub2_boot_info,
    }
}

#[derive(Debug, Serialize)]
struct EntryView {
    path: String,
    kind: &'static str,
    size: u64,
    extents: Vec<[u64; 2]>,
    record_offset: u64,
    mode: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    nlink: Option<u64>,
    symlink: Option<String>,
}

fn entry(e: &Entry) -> EntryView {
    let rr = e.rr.as_ref();
    EntryView {
        path: e.path_lossy(),
        kind: match e.kind {
            EntryKind::Dir => "dir",
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
        },
        size: e.size,
        extents: e.extents.iter().map(|&(l, n)| [l.into(), n.into()]).collect(),
        record_offset: e.record_offset,
        mode: rr.and_then(|r| r.mode).map(Into::into),
        uid: rr.and_then(|r| r.uid).map(Into::into),
        gid: rr.and_then(|r| r.gid).map(Into::into),
        nlink: rr.and_then(|r| r.nlink).map(Into::into),
        symlink: rr.and_then(|r| r.symlink.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned()),
    }
}

#[derive(Debug, Serialize)]
struct ListingView {
    entries: usize,
    files: usize,
    directories: usize,
    rock_ridge: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tree: Option<Vec<EntryView>>,
}

fn listing(l: &Listing, tree: bool) -> ListingView {
    ListingView {
        entries: l.entries.len(),
        files: l.entries.iter().filter(|e| e.kind == EntryKind::File).count(),
        directories: l.entries.iter().filter(|e| e.kind == EntryKind::Dir).count(),
        rock_ridge: l.has_rock_ridge(),
        tree: tree.then(|| l.entries.iter().map(entry).collect()),
    }
}

#[derive(Debug, Serialize)]
struct GptHeaderView {
    lba: u64,
    header_crc32: u32,
    header_crc_valid: bool,
    my_lba: u64,
    alternate_lba: u64,
    first_usable_lba: u64,
    last_usable_lba: u64,
    disk_guid: String,
    disk_guid_bytes: String,
    partition_entry_lba: u64,
    number_of_partition_entries: u32,
    size_of_partition_entry: u32,
    partition_entry_array_crc32: u32,
    entries_crc_valid: Option<bool>,
}

#[derive(Debug, Serialize)]
struct GptEntryView<'a> {
    index: u32,
    type_guid: &'a str,
    type_guid_bytes: &'a str,
    unique_guid: &'a str,
    unique_guid_bytes: &'a str,
    first_lba: u64,
    last_lba: u64,
    attributes: u64,
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct GptView<'a> {
    primary: Option<GptHeaderView>,
    backup: Option<GptHeaderView>,
    entries: Vec<GptEntryView<'a>>,
    entry_array: &'static str,
}

#[derive(Debug, Serialize)]
struct MbrPartitionView {
    index: usize,
    boot_indicator: u8,
    r#type: u8,
    start_chs: [u32; 3],
    end_chs: [u32; 3],
    start_lba: u32,
    sectors: u32,
}

#[derive(Debug, Serialize)]
struct MbrView<'a> {
    signature_valid: bool,
    boot_code_sha256: &'a str,
    boot_code_zero: bool,
    isohybrid_boot_lba: u64,
    disk_signature: u32,
    partitions: Vec<MbrPartitionView>,
}

#[derive(Debug, Serialize)]
struct AppendedView<'a> {
    name: &'a str,
    number: u32,
    start_lba: u64,
    sectors: u64,
}

#[derive(Debug, Serialize)]
struct ApmEntryView<'a> {
    index: u32,
    name: &'a str,
    r#type: &'a str,
    start: u32,
    blocks: u32,
}

#[derive(Debug, Serialize)]
struct ApmView<'a> {
    block_size: u32,
    entries: Vec<ApmEntryView<'a>>,
}

#[derive(Debug, Serialize)]
struct SystemAreaView<'a> {
    layout: Option<&'static str>,
    mbr: MbrView<'a>,
    gpt: Option<GptView<'a>>,
    mismatches: Vec<String>,
    summary: String,
    isohybrid: bool,
    protective_msdos_label: bool,
    grub2_mbr: bool,
    partition_offset: u64,
    appended_partitions: Vec<AppendedView<'a>>,
    apm: Option<ApmView<'a>>,
}

fn system_area(sa: &super::SystemArea) -> SystemAreaView<'_> {
    let header = |h: &Option<super::system_area::GptHeaderInfo>| {
        h.as_ref().map(|h| {
            let x = &h.header;
            GptHeaderView {
                lba: h.at,
                header_crc32: x.header_crc32.get(),
                header_crc_valid: h.header_crc_valid,
                my_lba: x.my_lba.get(),
                alternate_lba: x.alternate_lba.get(),
                first_usable_lba: x.first_usable_lba.get(),
                last_usable_lba: x.last_usable_lba.get(),
                disk_guid: x.disk_guid.to_string(),
                disk_guid_bytes: super::system_area::hex(&x.disk_guid.0),
                partition_entry_lba: x.partition_entry_lba.get(),
                number_of_partition_entries: x.number_of_partition_entries.get(),
                size_of_partition_entry: x.size_of_partition_entry.get(),
                partition_entry_array_crc32: x.partition_entry_array_crc32.get(),
                entries_crc_valid: h.entries_crc_valid,
            }
        })
    };
    let chs = |c: (u32, u32, u32)| [c.0, c.1, c.2];
    SystemAreaView {
        layout: sa.layout.map(|l| l.name()),
        mbr: MbrView {
            signature_valid: sa.mbr_signature_ok,
            boot_code_sha256: sa.boot_code_sha256.as_str(),
            boot_code_zero: sa.boot_code_zero,
            isohybrid_boot_lba: sa.isohybrid_boot_lba,
            disk_signature: sa.disk_signature,
            partitions: sa
                .partitions
                .iter()
                .map(|p| MbrPartitionView {
                    index: p.index,
                    boot_indicator: p.boot_indicator,
                    r#type: p.os_type,
                    start_chs: chs(p.start_chs),
                    end_chs: chs(p.end_chs),
                    start_lba: p.start_lba,
                    sectors: p.sectors,
                })
                .collect(),
        },
        gpt: sa.gpt.as_ref().map(|g| GptView {
            primary: header(&g.primary),
            backup: header(&g.backup),
            entries: g
                .entries
                .iter()
                .map(|p| GptEntryView {
                    index: p.index,
                    type_guid: p.type_guid.as_str(),
                    type_guid_bytes: p.type_guid_bytes.as_str(),
                    unique_guid: p.unique_guid.as_str(),
                    unique_guid_bytes: p.unique_guid_bytes.as_str(),
                    first_lba: p.first_lba,
                    last_lba: p.last_lba,
                    attributes: p.attributes,
                    name: p.name.as_str(),
                })
                .collect(),
            entry_array: if g.overlapping { "overlapping" } else { "separated" },
        }),
        mismatches: sa.mismatches.iter().map(crate::finding::Finding::note).collect(),
        summary: sa.recognition.summary.join(" "),
        isohybrid: sa.recognition.isohybrid,
        protective_msdos_label: sa.recognition.protective_msdos_label,
        grub2_mbr: sa.recognition.grub2_mbr,
        partition_offset: sa.recognition.partition_offset,
        appended_partitions: sa
            .recognition
            .appended
            .iter()
            .map(|a| AppendedView {
                name: a.name.as_str(),
                number: a.number,
                start_lba: a.start,
                sectors: a.sectors,
            })
            .collect(),
        apm: sa.apm.as_ref().map(|a| ApmView {
            block_size: a.block_size,
            entries: a
                .entries
                .iter()
                .map(|e| ApmEntryView {
                    index: e.index,
                    name: e.name.as_str(),
                    r#type: e.type_name.as_str(),
                    start: e.start,
                    blocks: e.blocks,
                })
                .collect(),
        }),
    }
}

#[derive(Debug, Serialize)]
struct BootInfoView {
    present: bool,
    file: Option<String>,
    bi_pvd: u32,
    bi_file: u32,
    bi_length: u32,
    bi_csum: u32,
    pvd_lba_check: &'static str,
    file_lba_check: &'static str,
    file_length_check: &'static str,
    checksum_check: &'static str,
}

#[derive(Debug, Serialize)]
struct ElToritoView {
    boot_record_lba: u32,
    catalog_lba: u32,
    entries: Vec<SlotView>,
    boot_info_table: Option<BootInfoView>,
}

#[derive(Debug, Serialize)]
struct FatEntryView<'a> {
    path: &'a str,
    kind: &'static str,
    size: u32,
    attr: u8,
    first_cluster: u32,
    clusters: usize,
}

#[derive(Debug, Serialize)]
struct FatView<'a> {
    r#type: &'static str,
    fat_type: String,
    oem_name: &'a str,
    bytes_per_sector: u32,
    sectors_per_cluster: u64,
    reserved_sectors: u64,
    num_fats: u64,
    root_entries: u64,
    total_sectors: u64,
    media: u64,
    sectors_per_fat: u64,
    sectors_per_track: u64,
    heads: u64,
    hidden_sectors: u64,
    cluster_count: u64,
    volume_serial: u32,
    volume_label: String,
    root_label: Option<&'a str>,
    entries: usize,
    problems: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    tree: Option<Vec<FatEntryView<'a>>>,
}

/// What an embedded payload holds (`"type"` says which).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum PayloadView<'a> {
    Fat(Box<FatView<'a>>),
    Squashfs(Box<SquashfsView<'a>>),
    Unrecognised { r#type: &'static str, why: &'a str },
}

#[derive(Debug, Serialize)]
struct EmbeddedView<'a> {
    name: &'a str,
    offset: u64,
    length: u64,
    found_by: &'a [String],
    payload: PayloadView<'a>,
}

fn embedded(e: &super::EmbeddedImage, tree: bool) -> EmbeddedView<'_> {
    let payload = match &e.payload {
        Payload::Fat(f) => {
            let g = &f.boot.geometry;
            PayloadView::Fat(Box::new(FatView {
                r#type: "fat",
                fat_type: g.fat_type.to_string(),
                oem_name: f.oem_name.as_str(),
                bytes_per_sector: 512,
                sectors_per_cluster: g.sectors_per_cluster.into(),
                reserved_sectors: g.reserved_sectors.into(),
                num_fats: g.num_fats.into(),
                root_entries: g.root_entries.into(),
                total_sectors: g.total_sectors.into(),
                media: g.media.into(),
                sectors_per_fat: g.sectors_per_fat.into(),
                sectors_per_track: g.sectors_per_track.into(),
                heads: g.heads.into(),
                hidden_sectors: g.hidden_sectors.into(),
                cluster_count: g.cluster_count.into(),
                volume_serial: f.boot.serial,
                volume_label: String::from_utf8_lossy(&f.boot.label).trim_end().to_string(),
                root_label: f.root_label.as_deref(),
                entries: f.entries.len(),
                problems: f.problems.len(),
                tree: tree.then(|| {
                    f.entries
                        .iter()
                        .map(|x| FatEntryView {
                            path: x.path.as_str(),
                            kind: if x.is_dir { "dir" } else { "file" },
                            size: x.size,
                            attr: x.attr,
                            first_cluster: x.first_cluster,
                            clusters: x.clusters.len(),
                        })
                        .collect()
                }),
            }))
        }
        Payload::Squashfs(q) => PayloadView::Squashfs(Box::new(squashfs(q, tree))),
        Payload::Unrecognised { why } => {
            PayloadView::Unrecognised { r#type: "unrecognised", why: why.as_str() }
        }
    };
    EmbeddedView { name: e.name.as_str(), offset: e.offset, length: e.len, found_by: &e.found_by, payload }
}

#[derive(Debug, Serialize)]
struct DescriptorView {
    lba: u32,
    r#type: u8,
    role: &'static str,
}

/// The whole report of an ISO image (docs/inspect-json.md).
#[derive(Debug, Serialize)]
pub struct ImageView<'a> {
    schema: &'static str,
    size: u64,
    system_area: SystemAreaView<'a>,
    volume_descriptors: Vec<DescriptorView>,
    primary: VolumeView<'a>,
    joliet: Option<VolumeView<'a>>,
    el_torito: Option<ElToritoView>,
    iso9660: ListingView,
    joliet_tree: Option<ListingView>,
    embedded: Vec<EmbeddedView<'a>>,
    problems: usize,
}

/// The whole model as a JSON view (`tree`: include every entry of both hierarchies and of the
/// FAT); [`pretty`] writes it.
pub fn image(img: &Image, tree: bool) -> ImageView<'_> {
    let el_torito = img.boot_record.map(|br| {
        let bi = img.el_torito.as_ref().and_then(|e| e.boot_info.as_ref());
        ElToritoView {
            boot_record_lba: br.lba,
            catalog_lba: br.catalog_lba,
            entries: img.catalog.iter().map(slot).collect(),
            boot_info_table: bi.map(|b| BootInfoView {
                present: b.present,
                file: b.file.as_ref().map(|f| String::from_utf8_lossy(f).into_owned()),
                bi_pvd: b.table.pvd_lba.get(),
                bi_file: b.table.file_lba.get(),
                bi_length: b.table.file_length.get(),
                bi_csum: b.table.checksum.get(),
                pvd_lba_check: check(b.pvd_lba),
                file_lba_check: check(b.file_lba),
                file_length_check: check(b.file_length),
                checksum_check: check(b.checksum),
            }),
        }
    });
    ImageView {
        schema: SCHEMA,
        size: img.len,
        system_area: system_area(&img.system_area),
        volume_descriptors: img
            .descriptors
            .iter()
            .map(|d| DescriptorView { lba: d.lba, r#type: d.descriptor_type, role: d.role })
            .collect(),
        primary: volume(&img.pvd, &img.pvd_extras),
        joliet: match (&img.joliet, &img.joliet_extras) {
            (Some(v), Some(x)) => Some(volume(v, x)),
            _ => None,
        },
        el_torito,
        iso9660: listing(&img.primary, tree),
        joliet_tree: img.joliet_tree.as_ref().map(|l| listing(l, tree)),
        embedded: img.embedded.iter().map(|e| embedded(e, tree)).collect(),
        problems: img.iso_problems.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct D {
        e: Option<u8>,
        f: bool,
    }

    #[derive(Serialize)]
    struct T {
        a: &'static str,
        b: Vec<i32>,
        c: Vec<u8>,
        d: D,
        g: Vec<u32>,
        h: Vec<&'static str>,
    }

    #[test]
    fn pretty_printing_is_stable_and_escaped() {
        let j = T {
            a: "q\"\\\n\u{1}\u{8}/",
            b: vec![1, -2],
            c: vec![],
            d: D { e: None, f: true },
            g: vec![1, 2, 3, 4, 5],
            h: vec!["x"],
        };
        assert_eq!(
            pretty(&j).unwrap(),
            "{\n  \"a\": \"q\\\"\\\\\\n\\u0001\\u0008/\",\n  \"b\": [1, -2],\n  \"c\": [],\n  \"d\": {\n    \"e\": null,\n    \"f\": true\n  },\n  \"g\": [\n    1,\n    2,\n    3,\n    4,\n    5\n  ],\n  \"h\": [\n    \"x\"\n  ]\n}\n"
        );
    }
}
