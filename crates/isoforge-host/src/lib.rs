//! isoforge-host: everything isoforge does with host files, in one place.
//!
//! - [`snapshot`]: an input file is read as one consistent snapshot or not at all. Its
//!   identity, size and times are recorded when it is scanned; every reader checks them when it
//!   opens the file and again, through the same descriptor, after the last byte.
//! - [`fault`]: test-only fault injection (feature `fault-injection`).
//! - [`output`]: an output file appears at its path complete, or not at all, and a killed
//!   build leaves nothing beside it.
//! - [`cpu_time`]: the CPU time the process has used, for reports of how busy the cores were.
#![deny(missing_docs)]

pub mod fault;
pub mod output;
pub mod snapshot;

/// CPU time used so far by all threads of this process (`CLOCK_PROCESS_CPUTIME_ID`): with
/// the wall time of a phase, how busy the cores were. For reports only; nothing isoforge
/// writes depends on it.
pub fn cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    std::time::Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}
