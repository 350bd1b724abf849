//! Writing an output file safely: into a temporary file beside the target, renamed into place
//! only when complete.
//!
//! On any error, or when the [`AtomicOutput`] is dropped without [`AtomicOutput::commit`], the
//! temporary file is removed and the target path is untouched.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors creating or committing an output file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The temporary file beside the target could not be created.
    #[error("cannot create a temporary file beside {target}: {source}")]
    Create {
        /// The requested output path.
        target: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Flushing or renaming the finished file failed.
    #[error("cannot finish writing {target}: {source}")]
    Commit {
        /// The requested output path.
        target: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A file being written to a temporary path beside its target.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

impl AtomicOutput {
    /// Creates `.<name>.isoforge-tmp-<pid>-<n>` in the target's directory.
    ///
    /// The temporary name uses the process id only to avoid collisions between concurrent
    /// runs; it never reaches the output bytes.
    pub fn create(target: &Path) -> Result<AtomicOutput, OutputError> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut n = 0u32;
        loop {
            let temp = dir.join(format!(".{name}.isoforge-tmp-{}-{n}", std::process::id()));
            match OpenOptions::new().write(true).read(true).create_new(true).open(&temp) {
                Ok(file) => return Ok(AtomicOutput { target: target.to_path_buf(), temp, file: Some(file) }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(source) => return Err(OutputError::Create { target: target.to_path_buf(), source }),
            }
        }
    }

    /// The open temporary file (readable, writable and seekable).
    pub fn file(&mut self) -> &mut File {
        // `file` is only taken by `commit`, which consumes `self`.
        self.file.as_mut().unwrap_or_else(|| unreachable!("file taken before commit"))
    }

    /// The temporary path (for messages).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Syncs the file and renames it onto the target.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let target = self.target.clone();
        let commit = |e| OutputError::Commit { target: target.clone(), source: e };
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(commit)?;
        }
        fs::rename(&self.temp, &self.target).map_err(commit)?;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn dropped_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.iso");
        {
            let mut out = AtomicOutput::create(&target).unwrap();
            out.file().write_all(b"partial").unwrap();
        }
        assert!(!target.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn committed_output_replaces_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.iso");
        fs::write(&target, b"old").unwrap();
        let mut out = AtomicOutput::create(&target).unwrap();
        out.file().write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
