//! Fault injection for the integration tests: deterministic interruptions and input changes at
//! named points of a real build, so the tests need no sleeps to win a race.
//!
//! Compiled in only with the `fault-injection` feature, which the CLI enables as a
//! dev-dependency: the `isoforge` binary that `cargo test` builds carries it, a release build
//! does not, and without the feature every function here is an empty inline function.
//!
//! The rules come from the environment variable `ISOFORGE_FAULT`, a comma-separated list of
//! `ACTION@WHERE`:
//!
//! | rule | effect |
//! |---|---|
//! | `kill@NAME` | SIGKILL this process the first time [`point`]`(NAME)` is reached |
//! | `kill@NAME#N` | the same, the N-th time (1-based) |
//! | `refuse@NAME` | [`refused`]`(NAME)` answers true: `refuse@o_tmpfile` makes every output use the named temporary file, as where the file system refuses `O_TMPFILE` |
//! | `truncate@read:SUFFIX:BYTES` | once a reader has read `BYTES` bytes of a file whose path ends with `SUFFIX`, truncate that file to half its size |
//! | `grow@read:SUFFIX:BYTES` | append 4096 bytes to it |
//! | `rewrite@read:SUFFIX:BYTES` | overwrite its first 4096 bytes in place (same size) with other bytes |
//! | `replace@read:SUFFIX:BYTES` | replace it by a new file of the same size and contents (new inode) |
//!
//! Each read rule fires once per process. The points a build passes are listed where they are
//! called ([`point`]'s callers); `docs/errors.md` names the ones the tests use.

use std::path::Path;

/// The environment variable holding the rules.
pub const ENV: &str = "ISOFORGE_FAULT";

/// Whether this build carries fault injection (the `fault-injection` feature), so that a
/// caller can skip preparing what only [`after_read`] would use.
pub const ENABLED: bool = cfg!(feature = "fault-injection");

/// Marks the named point of a build. With a matching `kill@NAME[#N]` rule the process is
/// killed with SIGKILL here, as `kill -9` from outside would.
#[inline]
pub fn point(name: &str) {
    #[cfg(feature = "fault-injection")]
    imp::point(name);
    #[cfg(not(feature = "fault-injection"))]
    let _ = name;
}

/// True when a `refuse@NAME` rule asks the build to take its fallback at `name`, as if the
/// host had refused the feature (always false without the feature).
#[inline]
pub fn refused(name: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    let refused = imp::refused(name);
    #[cfg(not(feature = "fault-injection"))]
    let refused = {
        let _ = name;
        false
    };
    refused
}

/// Tells the fault injector that a reader has read `pos` bytes of `path` so far. With a
/// matching read rule the file is changed on the host, once.
#[inline]
pub fn after_read(path: &Path, pos: u64) {
    #[cfg(feature = "fault-injection")]
    imp::after_read(path, pos);
    #[cfg(not(feature = "fault-injection"))]
    let _ = (path, pos);
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::collections::BTreeMap;
    use std::fs::OpenOptions;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::{Mutex, OnceLock};

    #[derive(Debug)]
    enum Rule {
        Kill { name: String, nth: u64 },
        Refuse { name: String },
        Read { action: ReadAction, suffix: Vec<u8>, bytes: u64 },
    }

    #[derive(Debug, Clone, Copy)]
    enum ReadAction {
        Truncate,
        Grow,
        Rewrite,
        Replace,
    }

    struct State {
        rules: Vec<Rule>,
        hits: BTreeMap<String, u64>,
        fired: Vec<bool>,
    }

    fn state() -> &'static Mutex<State> {
        static STATE: OnceLock<Mutex<State>> = OnceLock::new();
        STATE.get_or_init(|| {
            let rules = std::env::var(super::ENV).map(|s| parse(&s)).unwrap_or_default();
            let fired = vec![false; rules.len()];
            Mutex::new(State { rules, hits: BTreeMap::new(), fired })
        })
    }

    fn parse(s: &str) -> Vec<Rule> {
        let mut rules = Vec::new();
        for r in s.split(',').filter(|r| !r.is_empty()) {
            let Some((action, at)) = r.split_once('@') else {
                panic!("{}: rule {r:?} is not ACTION@WHERE", super::ENV)
            };
            if action == "kill" {
                let (name, nth) = match at.split_once('#') {
                    Some((n, k)) => (n, k.parse().unwrap_or_else(|_| panic!("bad count in {r:?}"))),
                    None => (at, 1),
                };
                rules.push(Rule::Kill { name: name.to_string(), nth });
                continue;
            }
            if action == "refuse" {
                rules.push(Rule::Refuse { name: at.to_string() });
                continue;
            }
            let action = match action {
                "truncate" => ReadAction::Truncate,
                "grow" => ReadAction::Grow,
                "rewrite" => ReadAction::Rewrite,
                "replace" => ReadAction::Replace,
                _ => panic!("{}: unknown action in {r:?}", super::ENV),
            };
            let rest =
                at.strip_prefix("read:").unwrap_or_else(|| panic!("{}: {r:?} needs read:", super::ENV));
            let Some((suffix, bytes)) = rest.rsplit_once(':') else {
                panic!("{}: {r:?} is not read:SUFFIX:BYTES", super::ENV)
            };
            let bytes = bytes.parse().unwrap_or_else(|_| panic!("bad byte count in {r:?}"));
            rules.push(Rule::Read { action, suffix: suffix.as_bytes().to_vec(), bytes });
        }
        rules
    }

    pub(super) fn point(name: &str) {
        let mut st = state().lock().unwrap_or_else(|e| e.into_inner());
        if st.rules.is_empty() {
            return;
        }
        let n = {
            let c = st.hits.entry(name.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        if st.rules.iter().any(|r| matches!(r, Rule::Kill { name: k, nth } if k == name && *nth == n)) {
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        }
    }

    pub(super) fn refused(name: &str) -> bool {
        let st = state().lock().unwrap_or_else(|e| e.into_inner());
        st.rules.iter().any(|r| matches!(r, Rule::Refuse { name: n } if n == name))
    }

    pub(super) fn after_read(path: &Path, pos: u64) {
        let mut st = state().lock().unwrap_or_else(|e| e.into_inner());
        let bytes = path.as_os_str().as_bytes();
        let mut todo = None;
        for (i, r) in st.rules.iter().enumerate() {
            if let Rule::Read { action, suffix, bytes: at } = r {
                if !st.fired[i] && pos >= *at && bytes.ends_with(suffix) {
                    todo = Some((i, *action));
                    break;
                }
            }
        }
        let Some((i, action)) = todo else { return };
        st.fired[i] = true;
        drop(st);
        change(path, action).unwrap_or_else(|e| panic!("fault injection on {}: {e}", path.display()));
    }

    fn change(path: &Path, action: ReadAction) -> std::io::Result<()> {
        match action {
            ReadAction::Truncate => {
                let len = std::fs::metadata(path)?.len();
                OpenOptions::new().write(true).open(path)?.set_len(len / 2)
            }
            ReadAction::Grow => OpenOptions::new().append(true).open(path)?.write_all(&[0x5a; 4096]),
            ReadAction::Rewrite => {
                let mut f = OpenOptions::new().read(true).write(true).open(path)?;
                let len = f.metadata()?.len().min(4096) as usize;
                let mut old = vec![0u8; len];
                std::io::Read::read_exact(&mut f, &mut old)?;
                for b in &mut old {
                    *b ^= 0xff;
                }
                f.seek(SeekFrom::Start(0))?;
                f.write_all(&old)
            }
            ReadAction::Replace => {
                let bytes = std::fs::read(path)?;
                let tmp = path.with_extension("isoforge-fault-replace");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)
            }
        }
    }
}
