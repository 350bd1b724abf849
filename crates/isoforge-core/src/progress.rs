//! Observing a build: phases, byte counters and stale temporary files removed.
//!
//! The pipeline calls a [`Progress`] observer when a phase starts and ends and as it writes
//! bytes. The library never prints and never reads the clock: an observer that wants timings
//! (the CLI's `-v`, `--json` and progress bar) takes them itself. Every method has an empty
//! default, and [`NoProgress`] is the observer of the plain entry points.
//!
//! Phases of `build_to_path`, in order (see [`crate::image`]): [`Phase::Scan`] (grafts, EFI
//! directory, closure paths), [`Phase::Registration`] (NAR-hashing every store path when the
//! registration is generated; reads the whole closure once), [`Phase::Plan`] (ISO layout),
//! [`Phase::Duplicates`] (the squashfs's duplicate files found), [`Phase::Compress`] (the
//! squashfs's data compressed and streamed into its extent), [`Phase::Tables`] (its inode,
//! directory and lookup tables), [`Phase::Plan`]
//! again (system area, with the squashfs's real size), [`Phase::Write`] (the rest of the
//! image, once: metadata, grafted files, FAT image, tail), [`Phase::Finish`] (the output
//! synced and named). Without a store there are no registration, duplicates, compress or tables phases. A phase may
//! be reported more than once; observers should add up durations.

/// A step of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Reading the input trees' metadata and the closure.
    Scan,
    /// Hashing the closure for `nix-path-registration`.
    Registration,
    /// Planning the ISO layout, and with a store the system area once the squashfs's size is
    /// known.
    Plan,
    /// Finding the store's files identical to earlier ones (squashfs duplicates).
    Duplicates,
    /// Compressing the store squashfs's data (and writing it into its extent of the image).
    Compress,
    /// Writing the store squashfs's inode, directory and lookup tables.
    Tables,
    /// Writing the rest of the image around the squashfs: the ISO metadata, the grafted and
    /// generated files, the tail.
    Write,
    /// Syncing and naming the output.
    Finish,
}

impl Phase {
    /// All phases, in pipeline order.
    pub const ALL: [Phase; 8] = [
        Phase::Scan,
        Phase::Registration,
        Phase::Plan,
        Phase::Duplicates,
        Phase::Compress,
        Phase::Tables,
        Phase::Write,
        Phase::Finish,
    ];

    /// A short lower-case name (`scan`, `registration`, …), stable for machine-readable output.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Scan => "scan",
            Phase::Registration => "registration",
            Phase::Plan => "plan",
            Phase::Write => "write",
            Phase::Duplicates => "duplicates",
            Phase::Compress => "compress",
            Phase::Tables => "tables",
            Phase::Finish => "finish",
        }
    }
}

/// An observer of a build. Called from the building thread only, in order; implementations
/// must be cheap (counters are reported per buffer flush, not per byte).
pub trait Progress {
    /// `phase` starts; `input_bytes` is what it will read when known (file bytes of the
    /// closure for registration and compress).
    fn phase_start(&self, phase: Phase, input_bytes: Option<u64>) {
        let _ = (phase, input_bytes);
    }
    /// `phase` ended.
    fn phase_end(&self, phase: Phase) {
        let _ = phase;
    }
    /// `n` more bytes were written to the output (compressed bytes, during compress).
    fn written(&self, n: u64) {
        let _ = n;
    }
    /// During compress: a block of `n` input bytes was written; with a block cache,
    /// `cache` is (hits, lookups) so far.
    fn input_read(&self, n: u64, cache: Option<(u64, u64)>) {
        let _ = (n, cache);
    }
    /// A temporary file or directory that a killed build left beside the output was removed
    /// when the output was created (see [`isoforge_host::output`]).
    fn stale_removed(&self, stale: &StaleFile) {
        let _ = stale;
    }
}

use isoforge_host::output::{AtomicOutput, StaleFile};

/// Reports the stale temporary files `out`'s creation removed.
pub(crate) fn report_stale(p: &dyn Progress, out: &AtomicOutput) {
    for stale in out.stale_removed() {
        p.stale_removed(stale);
    }
}

/// The observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Runs `f` as `phase`, reporting its start and end (also when it fails).
pub(crate) fn phase<T>(p: &dyn Progress, phase: Phase, input: Option<u64>, f: impl FnOnce() -> T) -> T {
    p.phase_start(phase, input);
    let r = f();
    p.phase_end(phase);
    r
}

/// A `Write` (and `Seek`) wrapper that reports the bytes going through it.
pub(crate) struct Counted<'a, W> {
    pub(crate) inner: W,
    pub(crate) progress: &'a dyn Progress,
}

impl<W: std::io::Write> std::io::Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.written(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: std::io::Seek> std::io::Seek for Counted<'_, W> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io::Write;

    #[derive(Default)]
    struct Log(RefCell<Vec<String>>);
    impl Progress for Log {
        fn phase_start(&self, phase: Phase, input: Option<u64>) {
            self.0.borrow_mut().push(format!("start {} {input:?}", phase.name()));
        }
        fn phase_end(&self, phase: Phase) {
            self.0.borrow_mut().push(format!("end {}", phase.name()));
        }
        fn written(&self, n: u64) {
            self.0.borrow_mut().push(format!("wrote {n}"));
        }
    }

    #[test]
    fn phases_and_counts_reach_the_observer() {
        let log = Log::default();
        let v = phase(&log, Phase::Plan, Some(3), || {
            let mut c = Counted { inner: Vec::new(), progress: &log };
            c.write_all(b"abc").unwrap();
            c.inner
        });
        assert_eq!(v, b"abc");
        assert_eq!(*log.0.borrow(), ["start plan Some(3)", "wrote 3", "end plan"]);
        NoProgress.written(1);
    }
}
