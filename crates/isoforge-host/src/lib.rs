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

/// CPU time used so far by all threads of this process, user and system, from
/// `/proc/self/stat` (`utime` + `stime`, in clock ticks of 10 ms): with the wall time of a
/// phase, how busy the cores were. Zero when it cannot be read. For reports only; nothing
/// isoforge writes depends on it. (Not `clock_gettime`: rustix reaches it through the vDSO,
/// which fails under valgrind.)
pub fn cpu_time() -> std::time::Duration {
    /// `sysconf(_SC_CLK_TCK)`, 100 on every Linux architecture.
    const TICKS_PER_SECOND: u64 = 100;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return std::time::Duration::ZERO };
    // Fields after the command name (which may hold spaces, so split after its `)`):
    // state is field 3; utime and stime are fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else { return std::time::Duration::ZERO };
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let total = ticks(11) + ticks(12);
    std::time::Duration::from_millis(total * 1000 / TICKS_PER_SECOND)
}
