//! The streaming writer: emits an [`IsoPlan`] in ascending offset order into an
//! [`ImageSink`] (any `Write + Seek`), in one pass from byte 0 to the image size.
//!
//! File contents are copied from their host files through a bounded buffer (1 MiB), never
//! held whole in memory. Each structure is written at the offset the plan gave it; debug
//! builds assert every offset. The one region not written here is the deferred file (the
//! store squashfs): the pipeline compresses it into its extent first and the writer seeks
//! over it, so no byte of the image is written twice.

use std::io::{self, Write};

use zerocopy::IntoBytes;

use super::directory_record::{DirectoryRecord, FLAG_DIRECTORY, FLAG_MULTI_EXTENT};
use super::el_torito::{self, BOOT_INFO_TABLE_OFFSET};
use super::path_table::PathTableRecord;
use super::plan::{IsoError, IsoPlan, PlannedKind, CATALOG_GENERATED_ID, PREPARER_ID, PVD_LBA};
use super::volume_descriptor::{self as vd, padded, ucs2_padded, BootRecord, VolumeDescriptor};
use crate::endian::{Both32, BE, LE, U32};
use crate::tree::FileSource;
use crate::units::{Lba2048, ISO_BLOCK};
use isoforge_host::snapshot::HostFile;

/// Size of the system area (blocks 0–15).
pub const SYSTEM_AREA_BYTES: usize = 16 * 2048;
const COPY_BUFFER: usize = 1 << 20;

/// Producer of generated files (the EFI image, later the squashfs).
pub trait GeneratedContent {
    /// Writes exactly the planned number of bytes of generated file `id` into `out`.
    fn write_generated(&mut self, id: u32, out: &mut dyn Write) -> Result<(), String>;
}

/// A producer for plans without generated files (other than the boot catalog).
#[derive(Debug, Default)]
pub struct NoGenerated;

impl GeneratedContent for NoGenerated {
    fn write_generated(&mut self, id: u32, _out: &mut dyn Write) -> Result<(), String> {
        Err(format!("no producer for generated file {id}"))
    }
}

/// What surrounds the ISO filesystem in the image file: the system area, the image size and
/// regions written after the filesystem's data (a backup GPT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFrame {
    /// Bytes of the system area (at most 32 KiB; zero-padded).
    pub system_area: Vec<u8>,
    /// Total image size in bytes; at least the plan's volume size.
    pub image_size: u64,
    /// Regions after the data end: (byte offset, bytes), ascending and not overlapping.
    pub tail: Vec<(u64, Vec<u8>)>,
}

impl ImageFrame {
    /// A plain ISO: zero system area, image size = volume size.
    pub fn plain(plan: &IsoPlan) -> ImageFrame {
        ImageFrame {
            system_area: Vec::new(),
            image_size: u64::from(plan.volume_blocks) * ISO_BLOCK,
            tail: Vec::new(),
        }
    }
}

/// The output of [`write_image`]: a byte stream that can also pass over a region whose bytes
/// are already in place (the deferred file, written into the image before the rest of it).
/// Every `Write + Seek` is one; passing over is a relative seek.
pub trait ImageSink: Write {
    /// Moves the stream `n` bytes forward without writing them.
    fn skip(&mut self, n: u64) -> io::Result<()>;
}

impl<W: Write + io::Seek> ImageSink for W {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "skip too far"))?;
        self.seek(io::SeekFrom::Current(n)).map(|_| ())
    }
}

/// A `Write` that counts bytes and maps errors to [`IsoError::Write`]. `offset` is the image
/// offset of the stream; `written` counts the bytes actually written (not those skipped).
struct Sink<'a> {
    out: &'a mut dyn ImageSink,
    offset: u64,
    written: u64,
}

impl Sink<'_> {
    fn put(&mut self, b: &[u8]) -> Result<(), IsoError> {
        self.out.write_all(b).map_err(IsoError::Write)?;
        self.offset += b.len() as u64;
        self.written += b.len() as u64;
        Ok(())
    }
    fn zeros_to(&mut self, offset: u64) -> Result<(), IsoError> {
        debug_assert!(offset >= self.offset, "writer moved backwards: {} -> {}", self.offset, offset);
        let zeros = [0u8; 64 * 1024];
        while self.offset < offset {
            let n = (offset - self.offset).min(zeros.len() as u64) as usize;
            self.put(&zeros[..n])?;
        }
        Ok(())
    }
    fn skip(&mut self, n: u64) -> Result<(), IsoError> {
        self.out.skip(n).map_err(IsoError::Write)?;
        self.offset += n;
        Ok(())
    }
    fn at(&self, lba: Lba2048) {
        debug_assert_eq!(self.offset, lba.byte_offset(), "planned offset of {lba}");
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.offset += n as u64;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes the whole image in increasing offset order, from byte 0 to the frame's image size,
/// each structure at the offset the plan gave it (asserted in debug builds): the system area,
/// the volume descriptors, the path tables and the directories (the metadata region, up to
/// [`IsoPlan::metadata_end`]), the file data, zeros to the data end, the frame's tail regions
/// (the backup GPT) and zeros to the image size.
///
/// The plan's deferred file ([`super::plan::IsoOptions::deferred`], the squashfs, last of the
/// files) is not written but passed over with [`ImageSink::skip`]: the caller has written its
/// bytes into its extent before, and [`IsoPlan::set_deferred_size`] has given its real size.
/// Every other generated file comes from `generated`. Returns the bytes written (the image
/// size less the deferred file's bytes).
pub fn write_image(
    plan: &IsoPlan,
    frame: &ImageFrame,
    generated: &mut dyn GeneratedContent,
    out: &mut dyn ImageSink,
) -> Result<u64, IsoError> {
    let mut s = Sink { out, offset: 0, written: 0 };
    write_metadata(plan, frame, &mut s)?;
    write_file_data(plan, generated, &mut s)?;
    write_tail(plan, frame, &mut s)?;
    s.flush().map_err(IsoError::Write)?;
    Ok(s.written)
}

/// The metadata region, from byte 0 to [`IsoPlan::metadata_end`].
fn write_metadata(plan: &IsoPlan, frame: &ImageFrame, s: &mut Sink<'_>) -> Result<(), IsoError> {
    let mut system_area = frame.system_area.clone();
    system_area.resize(SYSTEM_AREA_BYTES, 0);
    s.put(&system_area)?;

    s.at(PVD_LBA);
    s.put(primary_descriptor(plan).as_bytes())?;
    if let Some(lba) = plan.fixed.boot_record {
        s.at(lba);
        s.put(boot_record(plan).as_bytes())?;
    }
    s.at(plan.fixed.svd);
    s.put(joliet_descriptor(plan).as_bytes())?;
    s.at(plan.fixed.terminator);
    s.put(&vd::terminator())?;

    for (lba, joliet, msb) in [
        (plan.fixed.l_path, false, false),
        (plan.fixed.m_path, false, true),
        (plan.fixed.joliet_l_path, true, false),
        (plan.fixed.joliet_m_path, true, true),
    ] {
        s.zeros_to(lba.byte_offset())?;
        s.at(lba);
        s.put(&path_table(plan, joliet, msb))?;
    }

    for &d in &plan.dirs {
        let PlannedKind::Dir(pd) = &plan.nodes[d].kind else { continue };
        s.zeros_to(pd.extent.byte_offset())?;
        s.at(pd.extent);
        let bytes = directory_extent(plan, d, false);
        debug_assert_eq!(bytes.len() as u64, u64::from(pd.size));
        s.put(&bytes)?;
        if pd.ce_blocks > 0 {
            s.at(pd.ce_extent);
            s.put(&continuation_blocks(plan, d))?;
        }
    }
    for &d in &plan.joliet_dirs {
        let PlannedKind::Dir(pd) = &plan.nodes[d].kind else { continue };
        s.zeros_to(pd.joliet_extent.byte_offset())?;
        s.at(pd.joliet_extent);
        let bytes = directory_extent(plan, d, true);
        debug_assert_eq!(bytes.len() as u64, u64::from(pd.joliet_size));
        s.put(&bytes)?;
    }
    s.zeros_to(plan.metadata_end.byte_offset())?;
    s.at(plan.metadata_end);
    Ok(())
}

/// The file data that follows the metadata region, in ascending block order; the deferred
/// file is passed over.
fn write_file_data(
    plan: &IsoPlan,
    generated: &mut dyn GeneratedContent,
    s: &mut Sink<'_>,
) -> Result<(), IsoError> {
    for file in &plan.files {
        if file.size == 0 {
            continue;
        }
        s.zeros_to(file.lba.byte_offset())?;
        s.at(file.lba);
        let start = s.offset;
        match &file.source {
            _ if plan.is_deferred(file) => s.skip(file.size)?,
            FileSource::Host(host) => copy_host_file(s, host, file.size, file.boot_info_table.as_ref())?,
            FileSource::Bytes(b) => {
                let mut b = b.to_vec();
                if let Some(t) = &file.boot_info_table {
                    patch(&mut b, 0, t.as_bytes());
                }
                s.put(&b)?;
            }
            FileSource::Generated(CATALOG_GENERATED_ID) => {
                let entries = plan.catalog.as_ref().map(|(e, _)| e.as_slice()).unwrap_or(&[]);
                let mut cat = el_torito::encode_catalog(entries);
                cat.resize(file.size as usize, 0);
                s.put(&cat)?;
            }
            FileSource::Generated(id) => {
                generated
                    .write_generated(*id, s)
                    .map_err(|message| IsoError::Generated { what: file.path.clone(), message })?;
            }
        }
        let written = s.offset - start;
        if written != file.size {
            return Err(IsoError::Generated {
                what: file.path.clone(),
                message: format!("planned {} bytes, produced {written}", file.size),
            });
        }
    }
    Ok(())
}

/// What follows the last file: zeros to the data end, the frame's tail regions (the backup
/// GPT), zeros to the image size.
fn write_tail(plan: &IsoPlan, frame: &ImageFrame, s: &mut Sink<'_>) -> Result<(), IsoError> {
    s.zeros_to(plan.data_end.byte_offset())?;
    s.at(plan.data_end);
    for (offset, bytes) in &frame.tail {
        s.zeros_to(*offset)?;
        s.put(bytes)?;
    }
    s.zeros_to(frame.image_size.max(u64::from(plan.volume_blocks) * ISO_BLOCK))
}

/// Copies `patch_bytes` over `buf` where they overlap, `buf` holding file bytes from
/// `buf_start`; the table sits at file offset 8.
fn patch(buf: &mut [u8], buf_start: u64, table: &[u8]) {
    let table_start = BOOT_INFO_TABLE_OFFSET as u64;
    for (i, &b) in table.iter().enumerate() {
        let pos = table_start + i as u64;
        if pos >= buf_start && pos < buf_start + buf.len() as u64 {
            buf[(pos - buf_start) as usize] = b;
        }
    }
}

fn copy_host_file(
    s: &mut Sink<'_>,
    host: &HostFile,
    size: u64,
    table: Option<&el_torito::BootInfoTable>,
) -> Result<(), IsoError> {
    let mut r = host.open()?;
    let mut buf = vec![0u8; COPY_BUFFER.min(size as usize).max(1)];
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        if let Some(t) = table {
            patch(&mut buf[..n], done, t.as_bytes());
        }
        s.put(&buf[..n])?;
        done += n as u64;
    }
    Ok(r.finish()?)
}

fn root_record(extent: Lba2048, size: u32, date: [u8; 7]) -> [u8; 34] {
    let mut v = Vec::with_capacity(34);
    DirectoryRecord {
        extent_lba: extent.get(),
        data_length: size,
        recording_date: date,
        flags: FLAG_DIRECTORY,
        identifier: &[0],
        system_use: &[],
    }
    .encode_into(&mut v);
    let mut out = [0u8; 34];
    out.copy_from_slice(&v[..34]);
    out
}

fn primary_descriptor(plan: &IsoPlan) -> VolumeDescriptor {
    let o = &plan.options;
    let date = plan.dates.descriptor;
    let mut d = VolumeDescriptor::blank(vd::TYPE_PRIMARY);
    let spaces32 = [b' '; 32];
    d.system_id = spaces32;
    // Checked by the planner: 1–32 bytes.
    d.volume_id = padded(o.volume_id.as_bytes(), b' ').unwrap_or(spaces32);
    d.volume_space_size = Both32::new(plan.volume_blocks);
    d.path_table_size = Both32::new(plan.fixed.path_table_size);
    d.type_l_path_table = U32::<LE>::new(plan.fixed.l_path.get());
    d.type_m_path_table = U32::<BE>::new(plan.fixed.m_path.get());
    if let PlannedKind::Dir(root) = &plan.nodes[0].kind {
        d.root_directory_record = root_record(root.extent, root.size, plan.dates.record);
    }
    d.volume_set_id = [b' '; 128];
    d.publisher_id = padded(o.publisher.as_bytes(), b' ').unwrap_or([b' '; 128]);
    d.data_preparer_id = padded(PREPARER_ID.as_bytes(), b' ').unwrap_or([b' '; 128]);
    d.application_id = padded(o.application_id.as_bytes(), b' ').unwrap_or([b' '; 128]);
    d.copyright_file_id = [b' '; 37];
    d.abstract_file_id = [b' '; 37];
    d.bibliographic_file_id = [b' '; 37];
    d.creation_date = date;
    d.modification_date = date;
    d.expiration_date = vd::DATE_NOT_SPECIFIED;
    d.effective_date = vd::DATE_NOT_SPECIFIED;
    d.application_use = [b' '; 512];
    d
}

/// The Joliet volume id: the first 16 characters of the volume id.
pub(crate) fn joliet_volume_id(volume_id: &str) -> String {
    volume_id.chars().take(16).collect()
}

fn joliet_descriptor(plan: &IsoPlan) -> VolumeDescriptor {
    let o = &plan.options;
    let date = plan.dates.descriptor;
    let mut d = VolumeDescriptor::blank(vd::TYPE_SUPPLEMENTARY);
    d.system_id = ucs2_padded("");
    d.volume_id = ucs2_padded(&joliet_volume_id(&o.volume_id));
    d.volume_space_size = Both32::new(plan.volume_blocks);
    d.escape_sequences[..3].copy_from_slice(&vd::JOLIET_ESCAPE_LEVEL3);
    d.path_table_size = Both32::new(plan.fixed.joliet_path_table_size);
    d.type_l_path_table = U32::<LE>::new(plan.fixed.joliet_l_path.get());
    d.type_m_path_table = U32::<BE>::new(plan.fixed.joliet_m_path.get());
    if let PlannedKind::Dir(root) = &plan.nodes[0].kind {
        d.root_directory_record = root_record(root.joliet_extent, root.joliet_size, plan.dates.record);
    }
    d.volume_set_id = ucs2_padded("");
    d.publisher_id = ucs2_padded(&o.publisher);
    d.data_preparer_id = ucs2_padded(PREPARER_ID);
    d.application_id = ucs2_padded(&o.application_id);
    d.copyright_file_id = ucs2_padded("");
    d.abstract_file_id = ucs2_padded("");
    d.bibliographic_file_id = ucs2_padded("");
    d.creation_date = date;
    d.modification_date = date;
    d.expiration_date = vd::DATE_NOT_SPECIFIED;
    d.effective_date = vd::DATE_NOT_SPECIFIED;
    d.application_use = [b' '; 512];
    d
}

fn boot_record(plan: &IsoPlan) -> BootRecord {
    use zerocopy::FromZeros;
    let mut br = BootRecord::new_zeroed();
    br.descriptor_type = vd::TYPE_BOOT_RECORD;
    br.standard_id = vd::STANDARD_ID;
    br.version = 1;
    br.boot_system_id[..vd::EL_TORITO_ID.len()].copy_from_slice(vd::EL_TORITO_ID);
    if let Some((_, ci)) = &plan.catalog {
        br.catalog_lba = U32::new(plan.files[*ci].lba.get());
    }
    br
}

fn joliet_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_be_bytes()).collect()
}

fn path_table(plan: &IsoPlan, joliet: bool, msb: bool) -> Vec<u8> {
    let dirs = if joliet { &plan.joliet_dirs } else { &plan.dirs };
    let mut out = Vec::new();
    for &d in dirs {
        let n = &plan.nodes[d];
        let (PlannedKind::Dir(pd), PlannedKind::Dir(parent)) = (&n.kind, &plan.nodes[n.parent].kind) else {
            continue;
        };
        let id = if d == 0 {
            vec![0]
        } else if joliet {
            joliet_bytes(&n.joliet_id)
        } else {
            n.iso_id.clone()
        };
        let (extent, parent_no) =
            if joliet { (pd.joliet_extent, parent.joliet_number) } else { (pd.extent, parent.number) };
        PathTableRecord { identifier: &id, extent_lba: extent.get(), parent: parent_no }
            .encode_into(&mut out, msb);
    }
    let blocks = out.len().div_ceil(ISO_BLOCK as usize).max(1);
    out.resize(blocks * ISO_BLOCK as usize, 0);
    out
}

/// Encodes the extent of directory `d` (ISO or Joliet hierarchy), padded to its planned size.
pub(crate) fn directory_extent(plan: &IsoPlan, d: usize, joliet: bool) -> Vec<u8> {
    let date = plan.dates.record;
    let node = &plan.nodes[d];
    let (PlannedKind::Dir(pd), PlannedKind::Dir(parent)) = (&node.kind, &plan.nodes[node.parent].kind) else {
        return Vec::new();
    };
    let loc = |p: &super::plan::PlannedDir| {
        if joliet {
            (p.joliet_extent.get(), p.joliet_size)
        } else {
            (p.extent.get(), p.size)
        }
    };
    let block = ISO_BLOCK as usize;
    let mut out: Vec<u8> = Vec::new();
    // Appends one record, starting a new block when it would cross one (ECMA-119 6.8.1.1).
    let mut push = |(extent_lba, data_length): (u32, u32),
                    flags: u8,
                    identifier: &[u8],
                    system_use: &[u8]| {
        let rec =
            DirectoryRecord { extent_lba, data_length, recording_date: date, flags, identifier, system_use };
        let len = rec.encoded_len().unwrap_or(255);
        if out.len() % block + len > block {
            out.resize(out.len().div_ceil(block) * block, 0);
        }
        rec.encode_into(&mut out);
    };
    let su = |layout: &super::plan::SuLayout| if joliet { Vec::new() } else { layout.encode_inline() };
    push(loc(pd), FLAG_DIRECTORY, &[0], &su(&pd.dot_su));
    push(loc(parent), FLAG_DIRECTORY, &[1], &su(&pd.dotdot_su));
    let list = if joliet { &pd.joliet_children } else { &pd.children };
    for &c in list {
        let n = &plan.nodes[c];
        let id = if joliet { joliet_bytes(&n.joliet_id) } else { n.iso_id.clone() };
        let system_use = su(&n.su);
        match &n.kind {
            PlannedKind::Dir(cd) => push(loc(cd), FLAG_DIRECTORY, &id, &system_use),
            PlannedKind::File(fi) => {
                let extents = plan.files[*fi].extents();
                let last = extents.len() - 1;
                for (i, (lba, len)) in extents.into_iter().enumerate() {
                    let flags = if i < last { FLAG_MULTI_EXTENT } else { 0 };
                    push((lba.get(), len), flags, &id, &system_use);
                }
            }
            PlannedKind::Symlink(_) => push((0, 0), 0, &id, &system_use),
        }
    }
    let planned = loc(pd).1 as usize;
    let blocks = out.len().div_ceil(block).max(1);
    out.resize((blocks * block).max(planned), 0);
    out
}

/// The continuation blocks that follow directory `d`'s extent.
fn continuation_blocks(plan: &IsoPlan, d: usize) -> Vec<u8> {
    let PlannedKind::Dir(pd) = &plan.nodes[d].kind else { return Vec::new() };
    let mut out = vec![0u8; pd.ce_blocks as usize * ISO_BLOCK as usize];
    let mut put = |su: &super::plan::SuLayout| {
        for (i, &(lba, off)) in su.area_locations.iter().enumerate() {
            let bytes = su.encode_area(i);
            let at = (lba.get() - pd.ce_extent.get()) as usize * ISO_BLOCK as usize + off as usize;
            out[at..at + bytes.len()].copy_from_slice(&bytes);
        }
    };
    put(&pd.dot_su);
    put(&pd.dotdot_su);
    for &c in &pd.children {
        put(&plan.nodes[c].su);
    }
    out
}
