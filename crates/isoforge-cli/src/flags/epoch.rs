//! The epoch of a command and where it came from: `--epoch`, else the spec file's `epoch`,
//! else `SOURCE_DATE_EPOCH`, else the Nix default. The library checks that every structure of
//! the image can hold it; the CLI checks first, before any work, so that the message names
//! the value's origin (`--epoch 32503680000 (3000-01-01T00:00:00Z): the squashfs ...`).

use std::path::Path;

use isoforge_formats::time::{Epoch, EpochError};

/// An epoch and the words that name its origin in messages.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The epoch.
    pub epoch: Epoch,
    /// `--epoch`, `spec file F: epoch`, `SOURCE_DATE_EPOCH` or `the default epoch`.
    pub origin: String,
}

impl Resolved {
    /// Names the origin in an epoch range error.
    pub fn name(&self, e: EpochError) -> EpochError {
        e.with_origin(self.origin.clone())
    }
}

/// Resolves the epoch from the flag, the spec file's value (with the file's path) and the
/// environment.
pub fn resolve(flag: Option<i64>, spec: Option<(&Path, i64)>) -> anyhow::Result<Resolved> {
    let sde = std::env::var("SOURCE_DATE_EPOCH").ok();
    let (explicit, origin) = match (flag, spec) {
        (Some(v), _) => (Some(v), "--epoch".to_string()),
        (None, Some((path, v))) => (Some(v), format!("spec file {}: epoch", path.display())),
        (None, None) if sde.is_some() => (None, "SOURCE_DATE_EPOCH".to_string()),
        (None, None) => (None, "the default epoch".to_string()),
    };
    let epoch = Epoch::resolve(explicit, sde.as_deref()).map_err(anyhow::Error::msg)?;
    Ok(Resolved { epoch, origin })
}
