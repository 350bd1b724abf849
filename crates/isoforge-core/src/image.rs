//! The build pipeline: grafts and options in, one image file out.
//!
//! [`ImageSpec`] says what goes into the image; [`build_to_path`] (or [`build_to_output`],
//! into an output the caller commits) builds it into a file that is unnamed until complete,
//! then named (see [`isoforge_host::output`]), so a failed or killed build leaves the target
//! as it was. There is one write path, in four phases:
//!
//! 1. **Gather** ([`plan_image`]): all host metadata is read here: the grafted trees, the EFI
//!    directory, the closure (and its registration, NAR-hashed when generated), the MBR
//!    template and the BIOS boot file's checksum. Then the FAT image's size is fixed (it is a
//!    file of the ISO tree) and the ISO layout planned, with the store squashfs at its upper
//!    bound ([`crate::store::PreparedStore::upper_bound`]). The squashfs is the deferred file,
//!    placed after every other file, so its start does not depend on its size; its directory
//!    records' extent count is planned from the upper bound.
//! 2. **Compress**: the squashfs is compressed straight into its extent of the output file
//!    (the only phase that seeks back: the squashfs writer patches its 96-byte superblock once
//!    at the end).
//! 3. **Plan** ([`finish_plan`], pure): the squashfs's real size ends the data; the system
//!    area, whose MBR/GPT describe the image's final size and the FAT image's place in it, and
//!    the frame (backup GPT) follow. The PVD's volume space size covers the whole image,
//!    padding and backup GPT included, as xorriso writes it.
//! 4. **Write** ([`iso_write::write_image`]): everything else, from byte 0 to the image size
//!    in increasing offset order through one counted sink, every planned offset asserted in
//!    debug builds: the metadata region (written once, with final values), the grafted and
//!    generated files, then a seek over the squashfs, zeros to the data end, the backup GPT
//!    and zeros to the image size.
//!
//! No byte of the image is written twice, except the squashfs superblock:
//! [`BuildReport::bytes_written`] is the image size, plus 96 with a store.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use isoforge_host::output::{AtomicOutput, OutputError};
use thiserror::Error;

use crate::progress::{phase, report_stale, Counted, NoProgress, Phase, Progress};
use crate::store::{self, PreparedStore, StoreError, StoreSpec};
use isoforge_formats::fat::{FatError, FatOptions, FatPlan};
use isoforge_formats::iso9660::plan::IsoDates;
use isoforge_formats::iso9660::plan::{self, EfiBoot, IsoError, IsoOptions, IsoPlan};
use isoforge_formats::iso9660::write::{self as iso_write, GeneratedContent, ImageFrame};
use isoforge_formats::part::gpt::Guid;
use isoforge_formats::part::layout::{plan_system_area, EfiImage, Layout, SystemAreaPlan, SystemAreaRequest};
use isoforge_formats::part::PartError;
use isoforge_formats::time::{DateField, EpochError};
use isoforge_formats::tree::{Tree, TreeError};

/// Default path of the EFI FAT image in the ISO (as nixpkgs places it).
pub const DEFAULT_EFI_IMAGE: &str = "boot/efi.img";
/// Generated-file id of the EFI FAT image.
pub const EFI_GENERATED_ID: u32 = 1;
/// Generated-file id of the store squashfs.
pub const SQUASHFS_GENERATED_ID: u32 = 2;
/// Bytes of an isohybrid MBR template that reach the image (the rest of the sector is the
/// partition table and signature).
pub const MBR_TEMPLATE_BYTES: usize = 432;

/// Errors of the whole pipeline.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The epoch is outside what a structure of the image can hold.
    #[error(transparent)]
    Epoch(#[from] EpochError),
    /// A graft argument without `=`.
    #[error("graft {0:?} is not TARGET=SOURCE")]
    BadGraft(String),
    /// Building the input tree failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Planning or writing the ISO failed.
    #[error(transparent)]
    Iso(#[from] IsoError),
    /// The output file could not be created or committed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The EFI FAT image could not be planned or written.
    #[error("EFI image from {dir}: {source}")]
    Fat {
        /// The EFI directory.
        dir: PathBuf,
        /// The FAT builder's error.
        source: FatError,
    },
    /// The system area could not be planned.
    #[error(transparent)]
    Part(#[from] PartError),
    /// The isohybrid MBR template could not be used.
    #[error("isohybrid MBR template {path}: {why}")]
    MbrTemplate {
        /// Host path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Options that do not go together.
    #[error("{0}")]
    Conflict(String),
    /// The store squashfs could not be made.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The EFI system partition image to build and add as the El Torito EFI entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiSpec {
    /// Host directory whose tree becomes the FAT image (e.g. holding `EFI/BOOT/BOOTX64.EFI`).
    pub dir: PathBuf,
    /// Path of the image in the ISO.
    pub image_path: String,
    /// FAT options (size, serial, label, epoch).
    pub fat: FatOptions,
}

/// What goes into the first 32 KiB and the end of the image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HybridSpec {
    /// The layout; `None` picks [`Layout::default_for`] (nixos with an MBR template, gpt with
    /// an EFI image only, none otherwise).
    pub layout: Option<Layout>,
    /// Host path of the isohybrid MBR template (isohdpfx.bin).
    pub isohybrid_mbr: Option<PathBuf>,
    /// GPT disk GUID; derived from the volume id and epoch when not given.
    pub gpt_disk_guid: Option<Guid>,
}

/// One graft: an image path and the host path whose contents go there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graft {
    /// Path in the image.
    pub target: String,
    /// Host file, directory or symlink.
    pub source: PathBuf,
}

impl Graft {
    /// Parses `TARGET=SOURCE` (the first `=` splits; xorriso's `\=` escaping is not needed
    /// for the paths isoforge is given).
    pub fn parse(s: &str) -> Result<Graft, BuildError> {
        let (t, src) = s.split_once('=').ok_or_else(|| BuildError::BadGraft(s.to_string()))?;
        if src.is_empty() {
            return Err(BuildError::BadGraft(s.to_string()));
        }
        Ok(Graft { target: t.to_string(), source: PathBuf::from(src) })
    }
}

/// Everything an image is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Grafted contents.
    pub grafts: Vec<Graft>,
    /// ISO 9660 options (volume id, epoch, BIOS boot entry, sort weights).
    pub iso: IsoOptions,
    /// The EFI image to build, if the image boots under UEFI. Without it, `iso.efi_boot` may
    /// name a prebuilt FAT image among the grafted files: it becomes the El Torito EFI entry and
    /// the EFI partition of the system area all the same.
    pub efi: Option<EfiSpec>,
    /// The system area layout.
    pub hybrid: HybridSpec,
    /// The store closure to put in a squashfs, if any.
    pub store: Option<StoreSpec>,
}

impl ImageSpec {
    /// A spec with no grafts, no boot entries, no store and the default layout.
    pub fn new(iso: IsoOptions) -> ImageSpec {
        ImageSpec { grafts: Vec::new(), iso, efi: None, hybrid: HybridSpec::default(), store: None }
    }

    /// Checks that every structure of this image can hold its epoch: the store squashfs
    /// (unsigned 32-bit seconds) when there is a store, the FAT image (1980–2107) when there
    /// is an EFI image to build, and the ISO 9660 directory records (1900–2155) and volume
    /// descriptors (years 1–9999) always. The error names the first structure, in that
    /// order, that cannot. [`plan_image`] calls it before it reads anything.
    pub fn check_epoch(&self) -> Result<(), EpochError> {
        if self.store.is_some() {
            self.iso.epoch.check(DateField::Squashfs)?;
        }
        if let Some(efi) = &self.efi {
            efi.fat.epoch.check(DateField::Fat)?;
        }
        self.iso.epoch.check_all(&IsoDates::FIELDS)
    }
}

/// A complete plan of an image: ISO, system area, and the producers of generated files.
#[derive(Debug)]
pub struct ImagePlan {
    /// The ISO 9660 plan (its volume size already covers the whole image).
    pub iso: IsoPlan,
    /// The system area plan; `None` until every size is known ([`finish_plan`]).
    pub system_area: Option<SystemAreaPlan>,
    /// The frame (system area bytes, image size, backup GPT).
    pub frame: ImageFrame,
    /// The EFI image's plan, when there is one.
    pub fat: Option<(PathBuf, FatPlan)>,
    /// The store squashfs input, when there is one (its size is known once written).
    pub store: Option<PreparedStore>,
    /// The layout and template used for the system area.
    layout: Layout,
    template: Option<Vec<u8>>,
}

/// The producers of the generated files the write phase writes (the squashfs, written in the
/// compress phase, is passed over).
struct Producers<'a> {
    fat: Option<&'a (PathBuf, FatPlan)>,
}

impl GeneratedContent for Producers<'_> {
    fn write_generated(&mut self, id: u32, out: &mut dyn Write) -> Result<(), String> {
        match (id, self.fat) {
            (EFI_GENERATED_ID, Some((_, fat))) => fat.write(out).map_err(|e| e.to_string()),
            _ => Err(format!("no producer for generated file {id}")),
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Bytes the build wrote into the image file: the image size, plus
    /// [`SQUASHFS_SUPERBLOCK_PATCH`] (96) with a store, whose squashfs writer writes its
    /// superblock once more at the end of compression. Nothing else is written twice.
    pub bytes_written: u64,
    /// Size of the image file.
    pub image_size: u64,
    /// ISO volume size in 2048-byte blocks.
    pub volume_blocks: u32,
    /// What the store squashfs writer reported, when there is a store.
    pub squashfs: Option<isoforge_squashfs::Summary>,
}

/// Builds the input tree from the grafts. The result does not depend on graft order.
pub(crate) fn build_tree(grafts: &[Graft]) -> Result<Tree, BuildError> {
    let mut tree = Tree::new();
    for g in grafts {
        tree.graft(&g.target, &g.source)?;
    }
    Ok(tree)
}

fn read_mbr_template(path: &Path) -> Result<Vec<u8>, BuildError> {
    let bad = |why: String| BuildError::MbrTemplate { path: path.to_path_buf(), why };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if bytes.len() < MBR_TEMPLATE_BYTES || bytes.len() > 512 {
        return Err(bad(format!("{} bytes; an isohybrid MBR template has 432 to 512", bytes.len())));
    }
    Ok(bytes)
}

/// The gather phase (see the [module docs](self)): reads every input's metadata and plans the
/// image. With a store, the squashfs size is only an upper bound until it is compressed: the
/// system area is planned by [`finish_plan`] once it is known; without one, the plan is
/// complete.
pub fn plan_image(spec: &ImageSpec) -> Result<ImagePlan, BuildError> {
    plan_image_with(spec, &NoProgress)
}

/// [`plan_image`], reporting the scan, registration and plan phases to `progress`.
pub fn plan_image_with(spec: &ImageSpec, progress: &dyn Progress) -> Result<ImagePlan, BuildError> {
    spec.check_epoch()?;
    let mut tree = phase(progress, Phase::Scan, None, || build_tree(&spec.grafts))?;
    let mut iso_options = spec.iso.clone();
    let mut fat = None;
    if let Some(efi) = &spec.efi {
        let node = phase(progress, Phase::Scan, None, || isoforge_formats::tree::scan(&efi.dir))?;
        let fat_err = |source| BuildError::Fat { dir: efi.dir.clone(), source };
        let plan = FatPlan::new(&node, &efi.fat).map_err(fat_err)?;
        tree.add_generated(&efi.image_path, EFI_GENERATED_ID, plan.image_size())?;
        iso_options.efi_boot = Some(EfiBoot { image: efi.image_path.clone() });
        fat = Some((efi.dir.clone(), plan));
    }
    let mut prepared = None;
    if let Some(st) = &spec.store {
        let p = store::prepare_with(st, spec.iso.epoch, progress)?;
        tree.add_generated(&st.image_path, SQUASHFS_GENERATED_ID, p.upper_bound)?;
        iso_options.deferred = Some(SQUASHFS_GENERATED_ID);
        prepared = Some(p);
    }
    let template = spec.hybrid.isohybrid_mbr.as_deref().map(read_mbr_template).transpose()?;
    let has_efi = spec.efi.is_some() || spec.iso.efi_boot.is_some();
    let layout = spec.hybrid.layout.unwrap_or(Layout::default_for(template.is_some(), has_efi));
    if template.is_some() && layout == Layout::None {
        return Err(BuildError::Conflict("--isohybrid-mbr has no effect with --layout none".into()));
    }
    let iso = phase(progress, Phase::Plan, None, || plan::plan(tree, &iso_options))?;
    let mut plan = ImagePlan {
        iso,
        system_area: None,
        frame: ImageFrame::default(),
        fat,
        store: prepared,
        layout,
        template,
    };
    if plan.store.is_none() {
        finish_plan(&mut plan, spec)?;
    }
    Ok(plan)
}

/// The plan phase: plans the system area and the frame once every size is known (with a
/// store, after [`IsoPlan::set_deferred_size`]). Pure.
pub fn finish_plan(plan: &mut ImagePlan, spec: &ImageSpec) -> Result<(), BuildError> {
    let iso = &mut plan.iso;
    let bios_boot = iso.options.bios_boot.as_ref().and_then(|b| iso.find_file(&b.image)).map(|f| f.lba);
    // The El Torito EFI entry's image: the one built from `spec.efi`, or a prebuilt FAT image
    // grafted with the contents and named by `spec.iso.efi_boot` (nixpkgs' `efiBootImage`).
    let efi_image = iso
        .options
        .efi_boot
        .as_ref()
        .and_then(|e| iso.find_file(&e.image))
        .map(|f| EfiImage { start: f.lba, size: f.size });
    let system_area = plan_system_area(&SystemAreaRequest {
        layout: plan.layout,
        mbr_template: plan.template.as_deref(),
        bios_boot,
        efi_image,
        iso_blocks: iso.data_end.get(),
        pad_blocks: SystemAreaRequest::XORRISO_PAD_BLOCKS,
        volume_id: &iso.options.volume_id,
        epoch: iso.options.epoch,
        disk_guid: spec.hybrid.gpt_disk_guid,
    })?;
    iso.volume_blocks = system_area.image_blocks;
    let mut tail = Vec::new();
    if let (Some(start), Some(bytes)) = (system_area.backup_gpt_start(), system_area.encode_backup_gpt()) {
        tail.push((start.byte_offset(), bytes));
    }
    plan.frame = ImageFrame {
        system_area: system_area.encode_system_area(),
        image_size: system_area.image_bytes(),
        tail,
    };
    plan.system_area = Some(system_area);
    Ok(())
}

fn squashfs_options(spec: &ImageSpec) -> Result<isoforge_squashfs::Options, BuildError> {
    let mut o = spec.store.as_ref().map(|s| s.squashfs).unwrap_or_default();
    o.mkfs_time = spec.iso.epoch.squashfs_seconds()?;
    Ok(o)
}

/// Bytes the squashfs writer writes twice: its superblock, written as a placeholder first and
/// patched once at the end.
pub const SQUASHFS_SUPERBLOCK_PATCH: u64 = 96;

/// A `Write + Seek` that counts the bytes written through it.
struct Tally<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for Tally<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The compress, plan and write phases (see the [module docs](self)) of a gathered plan, into
/// `file`, a new empty file.
fn write_plan_to_file(
    plan: &mut ImagePlan,
    spec: &ImageSpec,
    file: &mut File,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let write_err = |e| BuildError::Iso(IsoError::Write(e));
    // Compress: the squashfs into its extent, which starts after every other file.
    let mut compressed_bytes = 0;
    let mut squashfs = None;
    if let Some(store) = &plan.store {
        let Some(start) = plan.iso.deferred_file().map(|f| f.lba.byte_offset()) else {
            let message = "not in the plan".to_string();
            return Err(IsoError::Generated { what: "deferred file".into(), message }.into());
        };
        let options = squashfs_options(spec)?;
        file.seek(SeekFrom::Start(start)).map_err(write_err)?;
        let mut out = Tally { inner: Counted { inner: &mut *file, progress }, bytes: 0 };
        let summary = store.write_squashfs(&options, progress, &mut out).map_err(StoreError::from)?;
        compressed_bytes = out.bytes;
        debug_assert_eq!(file.stream_position().ok(), Some(start + summary.total_size));
        // Plan: the real size ends the data; the system area and frame follow.
        phase(progress, Phase::Plan, None, || -> Result<(), BuildError> {
            plan.iso.set_deferred_size(summary.total_size)?;
            finish_plan(plan, spec)
        })?;
        squashfs = Some(summary);
    }
    // Fault point: a kill here has compressed the squashfs and written nothing else.
    isoforge_host::fault::point("image-metadata");
    // Write: everything but the squashfs, from byte 0, once.
    let written = phase(progress, Phase::Write, None, || -> Result<u64, BuildError> {
        file.seek(SeekFrom::Start(0)).map_err(write_err)?;
        let mut producers = Producers { fat: plan.fat.as_ref() };
        let mut w = BufWriter::with_capacity(1 << 20, Counted { inner: &mut *file, progress });
        let n = iso_write::write_image(&plan.iso, &plan.frame, &mut producers, &mut w)?;
        w.flush().map_err(write_err)?;
        Ok(n)
    })?;
    debug_assert_eq!(file.stream_position().ok(), Some(plan.frame.image_size));
    Ok(BuildReport {
        bytes_written: written + compressed_bytes,
        image_size: plan.frame.image_size,
        volume_blocks: plan.iso.volume_blocks,
        squashfs,
    })
}

/// Plans and writes the image to `path` through an [`AtomicOutput`]: an unnamed file in the
/// target's directory that gets its name only when the image is complete (a named temporary
/// beside it where the file system has no unnamed files). On error, or when the process is
/// killed, the target is untouched and nothing is left beside it. Planning happens before the
/// output is created; stale temporary files of killed builds are removed then and reported
/// to [`Progress::stale_removed`] by [`build_to_path_with`]. A store squashfs is compressed
/// straight into its place in the image, and the rest written around it once (see the
/// [module docs](self) for the phases).
///
/// # Example
///
/// A UEFI-bootable image with a store closure, as `isoforge build -o live.iso --volume-id
/// LIVE --graft /=TREE --efi-dir EFI --closure paths.txt --store-root ROOT --compression
/// zstd:3` builds it (`--store-root` reads `/nix/store/…` from `ROOT/nix/store/…`):
///
/// ```
/// use isoforge_core::closure::ClosureOptions;
/// use isoforge_core::fat::FatOptions;
/// use isoforge_core::image::{build_to_path, EfiSpec, Graft, ImageSpec, DEFAULT_EFI_IMAGE};
/// use isoforge_core::iso9660::plan::IsoOptions;
/// use isoforge_core::store::StoreSpec;
/// use isoforge_core::time::Epoch;
/// use isoforge_squashfs::Compression;
///
/// let dir = tempfile::tempdir()?;
/// let d = dir.path();
/// std::fs::create_dir_all(d.join("tree/boot"))?;
/// std::fs::write(d.join("tree/boot/readme.txt"), "hi\n")?;
/// std::fs::create_dir_all(d.join("efi/EFI/BOOT"))?;
/// std::fs::write(d.join("efi/EFI/BOOT/BOOTX64.EFI"), vec![0u8; 4096])?;
/// let path = "/nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello";
/// std::fs::create_dir_all(d.join("root").join(&path[1..]).join("bin"))?;
/// std::fs::write(d.join("root").join(&path[1..]).join("bin/hello"), "#!/bin/sh\n")?;
/// std::fs::write(d.join("paths.txt"), format!("{path}\n"))?;
///
/// let epoch = Epoch(315532800);
/// let mut spec = ImageSpec::new(IsoOptions::new("LIVE", epoch));
/// spec.grafts.push(Graft { target: "/".into(), source: d.join("tree") });
/// spec.efi = Some(EfiSpec {
///     dir: d.join("efi"),
///     image_path: DEFAULT_EFI_IMAGE.into(),
///     fat: FatOptions::new(epoch),
/// });
/// let mut store = StoreSpec::new(d.join("paths.txt"));
/// store.closure_options = ClosureOptions { store_root: d.join("root"), ..ClosureOptions::default() };
/// store.squashfs.compression = Compression::Zstd { level: 3 };
/// spec.store = Some(store);
/// let report = build_to_path(&spec, &d.join("live.iso"))?;
/// assert!(report.volume_blocks > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_to_path(spec: &ImageSpec, path: &Path) -> Result<BuildReport, BuildError> {
    build_to_path_with(spec, path, &NoProgress)
}

/// [`build_to_path`], reporting phases and written bytes to `progress` (see
/// [`crate::progress`] for the phases).
pub fn build_to_path_with(
    spec: &ImageSpec,
    path: &Path,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let mut plan = plan_image_with(spec, progress)?;
    let mut out = AtomicOutput::create(path)?;
    report_stale(progress, &out);
    let report = write_plan_to_file(&mut plan, spec, out.file(), progress)?;
    phase(progress, Phase::Finish, None, || out.commit())?;
    Ok(report)
}

/// Plans `spec` and writes the image into `out`, an output the caller created and commits
/// (or drops, discarding the image). `--out-dir` uses it to keep the image unnamed until its
/// directory is assembled. Stale temporary files `out`'s creation removed are not reported
/// here: the caller has them from [`AtomicOutput::stale_removed`].
pub fn build_to_output(
    spec: &ImageSpec,
    out: &mut AtomicOutput,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let mut plan = plan_image_with(spec, progress)?;
    write_plan_to_file(&mut plan, spec, out.file(), progress)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::closure::ClosureOptions;
    use isoforge_formats::time::Epoch;

    /// Records the phases in order and adds up the bytes written.
    #[derive(Default)]
    struct Log {
        phases: RefCell<Vec<Phase>>,
        written: RefCell<u64>,
    }

    impl Progress for Log {
        fn phase_start(&self, phase: Phase, _input: Option<u64>) {
            let mut p = self.phases.borrow_mut();
            if p.last() != Some(&phase) {
                p.push(phase);
            }
        }
        fn written(&self, n: u64) {
            *self.written.borrow_mut() += n;
        }
    }

    fn spec(d: &Path, with_store: bool) -> ImageSpec {
        std::fs::create_dir_all(d.join("tree/boot")).unwrap();
        std::fs::write(d.join("tree/boot/readme.txt"), "hi\n").unwrap();
        std::fs::create_dir_all(d.join("efi/EFI/BOOT")).unwrap();
        std::fs::write(d.join("efi/EFI/BOOT/BOOTX64.EFI"), vec![1u8; 4096]).unwrap();
        let epoch = Epoch(315532800);
        let mut spec = ImageSpec::new(IsoOptions::new("PIPE", epoch));
        spec.grafts.push(Graft { target: "/".into(), source: d.join("tree") });
        spec.efi = Some(EfiSpec {
            dir: d.join("efi"),
            image_path: DEFAULT_EFI_IMAGE.into(),
            fat: FatOptions::new(epoch),
        });
        if with_store {
            let path = "nix/store/0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello";
            std::fs::create_dir_all(d.join("root").join(path).join("bin")).unwrap();
            std::fs::write(d.join("root").join(path).join("bin/hello"), vec![b'h'; 300_000]).unwrap();
            std::fs::write(d.join("paths.txt"), format!("/{path}\n")).unwrap();
            let mut store = StoreSpec::new(d.join("paths.txt"));
            store.closure_options =
                ClosureOptions { store_root: d.join("root"), ..ClosureOptions::default() };
            store.squashfs.compression = isoforge_squashfs::Compression::Zstd { level: 3 };
            spec.store = Some(store);
        }
        spec
    }

    /// Issue 12: one write path. Every byte of the image is written once, but the squashfs
    /// superblock, and compression comes before the rest of the image is written.
    #[test]
    fn every_byte_is_written_once() {
        for with_store in [false, true] {
            let dir = isoforge_testing::tempdir();
            let spec = spec(dir.path(), with_store);
            let log = Log::default();
            let iso = dir.path().join("out.iso");
            let report = build_to_path_with(&spec, &iso, &log).unwrap();
            let size = std::fs::metadata(&iso).unwrap().len();
            assert_eq!(report.image_size, size);
            let patch = if with_store { SQUASHFS_SUPERBLOCK_PATCH } else { 0 };
            assert_eq!(report.bytes_written, size + patch, "store: {with_store}");
            assert_eq!(*log.written.borrow(), report.bytes_written, "store: {with_store}");
            let expected: &[Phase] = if with_store {
                &[
                    Phase::Scan,
                    Phase::Registration,
                    Phase::Plan,
                    Phase::Duplicates,
                    Phase::Compress,
                    Phase::Tables,
                    Phase::Plan,
                ]
            } else {
                &[Phase::Scan, Phase::Plan]
            };
            let phases = log.phases.borrow();
            assert_eq!(&phases[..phases.len() - 2], expected, "store: {with_store}");
            assert_eq!(&phases[phases.len() - 2..], [Phase::Write, Phase::Finish]);
        }
    }
}
