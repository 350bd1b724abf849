//! Writing a planned image in increasing offset order.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use super::bpb::{self, FatType, SECTOR_SIZE};
use super::plan::{Content, FatPlan};
use super::table;
use super::FatError;
use crate::tree::FileSource;
use crate::units::Cluster;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

enum Target<'a> {
    /// Every byte is written, zeros included.
    Stream(&'a mut dyn Write),
    /// Runs of zeros are skipped with a seek; the file is extended at the end (sparse).
    File(&'a mut File),
}

/// The output with its offset, so every structure can check it starts where it was planned.
struct Out<'a> {
    target: Target<'a>,
    offset: u64,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), FatError> {
        let offset = self.offset;
        let r = match &mut self.target {
            Target::Stream(w) => w.write_all(bytes),
            Target::File(f) => f.write_all(bytes),
        };
        r.map_err(|source| FatError::Write { offset, source })?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn zeros(&mut self, n: u64) -> Result<(), FatError> {
        let offset = self.offset;
        match &mut self.target {
            Target::Stream(w) => {
                let mut left = n;
                while left > 0 {
                    let k = left.min(ZEROS.len() as u64) as usize;
                    w.write_all(&ZEROS[..k]).map_err(|source| FatError::Write { offset, source })?;
                    left -= k as u64;
                }
            }
            Target::File(f) => {
                let delta = i64::try_from(n).map_err(|_| FatError::Write {
                    offset,
                    source: io::Error::new(io::ErrorKind::InvalidInput, "seek too far"),
                })?;
                f.seek(SeekFrom::Current(delta)).map_err(|source| FatError::Write { offset, source })?;
            }
        }
        self.offset += n;
        Ok(())
    }

    /// Zeros up to `to` (which must not be behind).
    fn zeros_to(&mut self, to: u64) -> Result<(), FatError> {
        debug_assert!(to >= self.offset, "zeros_to({to}) behind offset {}", self.offset);
        self.zeros(to.saturating_sub(self.offset))
    }
}

impl FatPlan {
    /// Streams the image to `out`, from byte 0 to [`FatPlan::image_size`], every byte written.
    pub fn write(&self, out: &mut dyn Write) -> Result<(), FatError> {
        let mut o = Out { target: Target::Stream(out), offset: 0 };
        self.write_inner(&mut o)?;
        if let Target::Stream(w) = &mut o.target {
            w.flush().map_err(|source| FatError::Write { offset: o.offset, source })?;
        }
        Ok(())
    }

    /// Writes the image into `file` from its start, seeking over runs of zeros so the result
    /// is sparse, then sets the file's length to [`FatPlan::image_size`]. The file is
    /// truncated first.
    pub fn write_to_file(&self, file: &mut File) -> Result<(), FatError> {
        let size = self.image_size();
        let prepare = |f: &mut File| -> io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0)).map(|_| ())
        };
        prepare(file).map_err(|source| FatError::Write { offset: 0, source })?;
        let mut o = Out { target: Target::File(file), offset: 0 };
        self.write_inner(&mut o)?;
        file.set_len(size).map_err(|source| FatError::Write { offset: size, source })?;
        file.flush().map_err(|source| FatError::Write { offset: size, source })
    }

    fn write_inner(&self, o: &mut Out<'_>) -> Result<(), FatError> {
        let g = &self.geometry;
        let ss = u64::from(SECTOR_SIZE);
        let boot = self.boot_sector();

        // Reserved area: boot sector; on FAT32 also FSInfo, backup boot sector and backup FSInfo.
        debug_assert_eq!(o.offset, 0);
        o.put(&boot)?;
        if g.fat_type == FatType::Fat32 {
            let fsinfo = bpb::encode_fsinfo(self.free_clusters(), self.last_cluster.max(2));
            let info = u64::from(bpb::FSINFO_SECTOR);
            let backup = u64::from(bpb::BACKUP_BOOT_SECTOR);
            o.zeros_to(info * ss)?;
            o.put(&fsinfo)?;
            o.zeros_to(backup * ss)?;
            o.put(&boot)?;
            // mkfs.fat copies FSInfo after the backup boot sector too.
            o.zeros_to((backup + info) * ss)?;
            o.put(&fsinfo)?;
        }
        o.zeros_to(u64::from(g.reserved_sectors) * ss)?;

        // The FATs.
        let runs: Vec<table::Run> = self.extents.iter().map(|e| e.run).collect();
        for copy in 0..g.num_fats {
            let start = g.fat_offset(copy);
            debug_assert_eq!(o.offset, start, "FAT {copy}");
            let mut err = None;
            let written = table::encode_fat_prefix(g.fat_type, g.media, &runs, &mut |b| match o.put(b) {
                Ok(()) => Ok(()),
                Err(e) => {
                    err = Some(e);
                    Err(io::Error::other("write failed"))
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
            let written = written.map_err(|source| FatError::Write { offset: o.offset, source })?;
            debug_assert!(written <= g.fat_bytes());
            o.zeros_to(start + g.fat_bytes())?;
        }

        // The fixed FAT12/16 root directory.
        debug_assert_eq!(o.offset, g.root_dir_offset());
        if g.fat_type != FatType::Fat32 {
            o.put(&self.root_fixed)?;
            o.zeros_to(g.root_dir_offset() + g.root_dir_bytes())?;
        }

        // The data area, run by run.
        debug_assert_eq!(o.offset, g.data_offset());
        let mut buf = vec![0u8; 256 * 1024];
        for e in &self.extents {
            let start = g.cluster_offset(Cluster::new(e.run.first));
            let end = start + u64::from(e.run.len) * g.cluster_size();
            debug_assert_eq!(o.offset, start, "run at cluster {}", e.run.first);
            o.zeros_to(start)?;
            match &e.content {
                Content::Dir(bytes) => o.put(bytes)?,
                Content::File { source, size, path } => copy_file(o, source, *size, path, &mut buf)?,
            }
            o.zeros_to(end)?;
        }
        o.zeros_to(self.image_size())?;
        debug_assert_eq!(o.offset, self.image_size());
        Ok(())
    }
}

fn copy_file(
    o: &mut Out<'_>,
    source: &FileSource,
    size: u64,
    path: &str,
    buf: &mut [u8],
) -> Result<(), FatError> {
    match source {
        FileSource::Bytes(b) => {
            if b.len() as u64 != size {
                return Err(FatError::SizeChanged {
                    path: path.into(),
                    expected: size,
                    found: b.len() as u64,
                });
            }
            o.put(b)
        }
        FileSource::Host(host) => {
            let mut r = host.open()?;
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                r.read_exact(&mut buf[..n])?;
                o.put(&buf[..n])?;
                left -= n as u64;
            }
            Ok(r.finish()?)
        }
        FileSource::Generated(id) => Err(FatError::Generated { path: path.to_string(), id: *id }),
    }
}
