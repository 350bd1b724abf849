use std::io::{Cursor, Seek, SeekFrom, Write};

use sha2::Digest;

use super::*;
use isoforge_formats::cpio::read::read_initrd;

/// A stand-in for the squashfs writer: 96 placeholder bytes, the data, then the "superblock"
/// patched last, as the real writer does.
fn fake_squashfs(
    data: &[u8],
) -> impl FnOnce(&mut SegmentSink<'_, Cursor<Vec<u8>>>) -> Result<(), isoforge_squashfs::WriteError> + '_ {
    move |w| {
        let out = |e| isoforge_squashfs::WriteError::Output(e);
        let start = w.stream_position().map_err(out)?;
        w.write_all(&[0u8; 96]).map_err(out)?;
        w.write_all(data).map_err(out)?;
        let end = w.stream_position().map_err(out)?;
        w.seek(SeekFrom::Start(start)).map_err(out)?;
        w.write_all(&[b's'; 96]).map_err(out)?;
        w.seek(SeekFrom::Start(end)).map_err(out)?;
        Ok(())
    }
}

fn payload() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0u32..200_000 {
        v.extend_from_slice(&(i.wrapping_mul(2654435761) >> 7).to_le_bytes()[..3]);
        v.push(b'a' + (i % 7) as u8);
    }
    v
}

#[test]
fn every_compression_gives_one_segment_the_reader_decodes() {
    let data = payload();
    let mut want = vec![b's'; 96];
    want.extend_from_slice(&data);
    let sha: String = sha2::Sha256::digest(&want).iter().map(|b| format!("{b:02x}")).collect();
    for c in ["none", "gzip", "gzip:1", "zstd", "zstd:3", "xz"] {
        let c: InitrdCompression = c.parse().unwrap();
        let mut out = Cursor::new(b"070701 pretend initrd".to_vec());
        out.seek(SeekFrom::End(0)).unwrap();
        let (start, len) = write_segment(c, 1, 12345, &mut out, fake_squashfs(&data)).unwrap();
        let bytes = out.into_inner();
        assert_eq!(start, 24, "{c}: padded to 4");
        assert_eq!(start + len, bytes.len() as u64, "{c}");
        let seg = &bytes[start as usize..];
        let segs = read_initrd(&mut Cursor::new(seg)).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(segs.len(), 1, "{c}");
        assert_eq!(segs[0].len, len, "{c}");
        let m = &segs[0].members[0];
        assert_eq!(
            (m.name.as_str(), m.size, m.mtime, m.ino, m.mode),
            ("nix-store.squashfs", want.len() as u64, 12345, 1, 0o100444),
            "{c}"
        );
        assert_eq!(m.sha256, sha, "{c}");
        // Deterministic.
        let mut again = Cursor::new(b"070701 pretend initrd".to_vec());
        again.seek(SeekFrom::End(0)).unwrap();
        write_segment(c, 2, 12345, &mut again, fake_squashfs(&data)).unwrap();
        assert_eq!(again.into_inner(), bytes, "{c}: same bytes with 1 and 2 threads");
    }
}

#[test]
fn compression_names_parse() {
    assert_eq!("zstd".parse::<InitrdCompression>(), Ok(InitrdCompression::Zstd(10)));
    assert_eq!("gzip".parse::<InitrdCompression>(), Ok(InitrdCompression::Gzip(9)));
    assert!("zstd:0".parse::<InitrdCompression>().is_err());
    assert!("lz4".parse::<InitrdCompression>().is_err());
    assert!("none:3".parse::<InitrdCompression>().is_err());
}

#[test]
fn ipxe_script_is_netboot_nix_shaped() {
    assert_eq!(
        ipxe_script("/nix/store/x-system/init", "console=ttyS0 loglevel=4"),
        "#!ipxe\n# Kernel parameters of a chaining script come in as ${cmdline}.\nkernel bzImage init=/nix/store/x-system/init initrd=initrd console=ttyS0 loglevel=4 ${cmdline}\ninitrd initrd\nboot\n"
    );
}
