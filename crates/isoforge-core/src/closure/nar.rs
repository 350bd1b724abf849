//! NAR ("Nix ARchive") serialisation of a file tree, as `nix-store --dump` writes it (Nix
//! `src/libutil/archive.cc`; the grammar is in Eelco Dolstra's thesis, figure 5.2, and in the
//! Nix manual's "Nix Archive (NAR) format").
//!
//! Every token is a *string*: its length as a little-endian u64, its bytes, then zero bytes up
//! to the next multiple of 8. A NAR is the string `nix-archive-1` followed by one node:
//!
//! ```text
//! node      = "(" "type" "regular" ["executable" ""] "contents" <file bytes as a string> ")"
//!           | "(" "type" "symlink" "target" <target> ")"
//!           | "(" "type" "directory" { "entry" "(" "name" <name> "node" node ")" } ")"
//! ```
//!
//! Directory entries come in bytewise order of their names. A file is executable when its
//! owner-execute bit (`S_IXUSR`) is set; no other metadata (times, owners, other permission
//! bits, hard links, xattrs) is recorded. Fifos, sockets and devices cannot be serialised.
//!
//! The writer serialises a tree [`scan_path`] made (the same scan the store squashfs is built
//! from, so that the registration describes the bytes the image holds) and streams: a file's
//! bytes go from the host to the sink in 64 KiB pieces, read through the file's snapshot, so a
//! file that changed since it was scanned is an error, never a NAR of other bytes.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use isoforge_host::snapshot::HostFile;
use isoforge_squashfs::{FileData, InputNode, WriteError};

use super::ClosureError;

/// The magic string every NAR starts with.
pub const MAGIC: &str = "nix-archive-1";

const BUF: usize = 64 * 1024;

/// Writes the NAR serialisation of the host file, directory or symlink at `path` (not followed)
/// into `out`, and returns the number of bytes written (the NAR size Nix records): a
/// [`scan_path`] followed by [`write_nar_node`].
pub fn write_nar(path: &Path, out: &mut dyn Write) -> Result<u64, ClosureError> {
    let node = scan_path(path, false)?;
    write_nar_node(&node, path, out)
}

/// Scans a store path on the host, as the squashfs writer takes it: modes, owners and times as
/// on the host (not yet canonicalised), a snapshot of every regular file, symlinks not followed.
/// A fifo, socket or device is [`ClosureError::UnsupportedType`].
pub fn scan_path(path: &Path, exact_times: bool) -> Result<InputNode, ClosureError> {
    isoforge_squashfs::tree::scan_times(path, exact_times).map_err(|e| match e {
        WriteError::Read { path, source } => ClosureError::Read { path, source },
        WriteError::UnsupportedType { path, kind } => ClosureError::UnsupportedType { path, kind },
        other => ClosureError::Read { path: path.to_path_buf(), source: io::Error::other(other.to_string()) },
    })
}

/// Writes the NAR serialisation of a scanned tree into `out` and returns its size. `host` is
/// where `node` is on the host, for messages. A file is executable when its host owner-execute
/// bit is set, so `node` must carry the host's modes ([`scan_path`]), not canonical ones.
pub fn write_nar_node(node: &InputNode, host: &Path, out: &mut dyn Write) -> Result<u64, ClosureError> {
    let mut w = NarWriter { out, written: 0, buf: vec![0; BUF] };
    w.string(MAGIC.as_bytes(), host)?;
    w.node(node, host, None, b"")?;
    Ok(w.written)
}

/// Zero bytes to pad a string of `len` bytes to a multiple of 8.
pub fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

struct NarWriter<'a> {
    out: &'a mut dyn Write,
    written: u64,
    buf: Vec<u8>,
}

impl NarWriter<'_> {
    fn raw(&mut self, bytes: &[u8], path: &Path) -> Result<(), ClosureError> {
        self.out
            .write_all(bytes)
            .map_err(|source| ClosureError::Write { path: path.to_path_buf(), source })?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn string(&mut self, s: &[u8], path: &Path) -> Result<(), ClosureError> {
        let len = s.len() as u64;
        self.raw(&len.to_le_bytes(), path)?;
        self.raw(s, path)?;
        self.raw(&[0; 8][..padding(len)], path)
    }

    fn strings(&mut self, ss: &[&str], path: &Path) -> Result<(), ClosureError> {
        ss.iter().try_for_each(|s| self.string(s.as_bytes(), path))
    }

    /// Writes `node`, whose host path is `path`; a [`FileData::Scanned`] file is the entry
    /// `name` of the host directory `dir` its directory's entries were scanned from
    /// ([`isoforge_squashfs::Entries::host_dir`]).
    fn node(
        &mut self,
        node: &InputNode,
        path: &Path,
        dir: Option<&Arc<Path>>,
        name: &[u8],
    ) -> Result<(), ClosureError> {
        self.string(b"(", path)?;
        match node {
            InputNode::File { data, meta } => {
                self.strings(&["type", "regular"], path)?;
                if meta.mode & 0o100 != 0 {
                    self.strings(&["executable", ""], path)?;
                }
                self.string(b"contents", path)?;
                let host = data.host_file(dir, name).map_err(|e| ClosureError::Read {
                    path: path.to_path_buf(),
                    source: io::Error::other(e.to_string()),
                })?;
                match (host, data) {
                    (Some(h), _) => self.contents(&h, path)?,
                    (None, FileData::Bytes(b)) => self.string(b, path)?,
                    (None, _) => self.string(b"", path)?,
                }
            }
            InputNode::Symlink { target, .. } => {
                self.strings(&["type", "symlink", "target"], path)?;
                self.string(target, path)?;
            }
            InputNode::Dir { entries, .. } => {
                self.strings(&["type", "directory"], path)?;
                // Sorted raw names: bytewise order, as Nix's std::map<std::string, …>.
                for (name, child) in entries {
                    self.strings(&["entry", "(", "name"], path)?;
                    self.string(name, path)?;
                    self.string(b"node", path)?;
                    self.node(child, &path.join(OsStr::from_bytes(name)), entries.host_dir(), name)?;
                    self.string(b")", path)?;
                }
            }
        }
        self.string(b")", path)
    }

    /// A file's bytes as a NAR string of exactly its scanned size, read through its snapshot.
    fn contents(&mut self, host: &HostFile, path: &Path) -> Result<(), ClosureError> {
        let size = host.size();
        self.raw(&size.to_le_bytes(), path)?;
        let mut r = host.open()?;
        let mut buf = std::mem::take(&mut self.buf);
        while r.remaining() > 0 {
            let n = usize::try_from(r.remaining().min(BUF as u64)).unwrap_or(BUF);
            r.read_exact(&mut buf[..n])?;
            self.raw(&buf[..n], path)?;
        }
        self.buf = buf;
        r.finish()?;
        self.raw(&[0; 8][..padding(size)], path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn nar(path: &Path) -> Vec<u8> {
        let mut v = Vec::new();
        let n = write_nar(path, &mut v).unwrap();
        assert_eq!(n, v.len() as u64);
        v
    }

    fn s(out: &mut Vec<u8>, x: &[u8]) {
        out.extend_from_slice(&(x.len() as u64).to_le_bytes());
        out.extend_from_slice(x);
        out.resize(out.len() + padding(x.len() as u64), 0);
    }

    #[test]
    fn regular_file_bytes() {
        let tmp = isoforge_testing::tempdir();
        let f = tmp.path().join("f");
        fs::write(&f, b"hello\n").unwrap();
        let mut want = Vec::new();
        for t in ["nix-archive-1", "(", "type", "regular", "contents"] {
            s(&mut want, t.as_bytes());
        }
        s(&mut want, b"hello\n");
        s(&mut want, b")");
        assert_eq!(nar(&f), want);
        assert_eq!(&want[..8], &13u64.to_le_bytes());
        assert_eq!(want.len() % 8, 0);
    }

    #[test]
    fn executable_symlink_and_order() {
        let tmp = isoforge_testing::tempdir();
        let d = tmp.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("b"), b"").unwrap();
        fs::write(d.join("B"), b"12345678").unwrap();
        fs::set_permissions(d.join("B"), fs::Permissions::from_mode(0o500)).unwrap();
        symlink("b", d.join("a")).unwrap();
        fs::create_dir(d.join("e")).unwrap();
        let mut want = Vec::new();
        for t in ["nix-archive-1", "(", "type", "directory"] {
            s(&mut want, t.as_bytes());
        }
        // "B" (0x42) < "a" < "b" < "e".
        for t in ["entry", "(", "name", "B", "node", "(", "type", "regular", "executable", "", "contents"] {
            s(&mut want, t.as_bytes());
        }
        s(&mut want, b"12345678");
        for t in
            [")", ")", "entry", "(", "name", "a", "node", "(", "type", "symlink", "target", "b", ")", ")"]
        {
            s(&mut want, t.as_bytes());
        }
        for t in ["entry", "(", "name", "b", "node", "(", "type", "regular", "contents", "", ")", ")"] {
            s(&mut want, t.as_bytes());
        }
        for t in ["entry", "(", "name", "e", "node", "(", "type", "directory", ")", ")", ")"] {
            s(&mut want, t.as_bytes());
        }
        assert_eq!(nar(&d), want);
        // A symlink at the top is serialised, not followed.
        let l = tmp.path().join("l");
        symlink("/nonexistent", &l).unwrap();
        let mut want = Vec::new();
        for t in ["nix-archive-1", "(", "type", "symlink", "target", "/nonexistent", ")"] {
            s(&mut want, t.as_bytes());
        }
        assert_eq!(nar(&l), want);
    }

    #[test]
    fn large_file_streams() {
        let tmp = isoforge_testing::tempdir();
        let f = tmp.path().join("big");
        let data: Vec<u8> = (0..3 * BUF + 5).map(|i| (i * 7) as u8).collect();
        fs::write(&f, &data).unwrap();
        let v = nar(&f);
        // "nix-archive-1" takes 24 bytes, "(" "type" "regular" "contents" 16 each, the length 8.
        let start = 24 + 4 * 16 + 8;
        assert_eq!(&v[start - 8..start], &(data.len() as u64).to_le_bytes());
        assert_eq!(&v[start..start + data.len()], data.as_slice());
    }

    #[test]
    fn unsupported() {
        let tmp = isoforge_testing::tempdir();
        let sock = tmp.path().join("s");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = write_nar(&sock, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ClosureError::UnsupportedType { kind: "socket", .. }), "{e}");
        let e = write_nar(&tmp.path().join("missing"), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
