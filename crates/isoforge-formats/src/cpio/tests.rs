use std::io::Cursor;

use super::read::{read_initrd, Compression};
use super::write::{StreamError, Writer};
use super::*;

fn archive() -> Vec<u8> {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    w.add("etc", S_IFDIR | 0o755, 7, b"").unwrap();
    w.add("etc/hello", S_IFREG | 0o644, 7, b"hello\n").unwrap();
    let size = w
        .add_streamed::<std::io::Error>("big", S_IFREG | 0o444, 7, |out| {
            use std::io::Write;
            out.write_all(&[1u8; 1001])
        })
        .map_err(|e| match e {
            StreamError::Cpio(e) => e.to_string(),
            StreamError::Producer(e) => e.to_string(),
        })
        .unwrap();
    assert_eq!(size, 1001);
    let (out, plan) = w.finish().unwrap();
    let bytes = out.into_inner();
    assert_eq!(plan.len, bytes.len() as u64);
    bytes
}

#[test]
fn hex_fields_round_trip() {
    for v in [0, 1, 0xABCDEF01, u32::MAX] {
        assert_eq!(Hex8::new(v).get(), Some(v));
    }
    assert_eq!(&Hex8::new(0x1ED).0, b"000001ED");
    assert_eq!(Hex8(*b"0000001g").get(), None);
}

#[test]
fn plan_aligns_names_and_data_to_four() {
    let p =
        plan(&[EntrySpec { name: "nix-store.squashfs".into(), mode: S_IFREG | 0o444, mtime: 0, size: 4097 }])
            .unwrap();
    assert_eq!(p.entries[0].data, 132);
    assert_eq!(p.entries[0].end, pad4(132 + 4097));
    assert_eq!(p.trailer, p.entries[0].end);
    assert_eq!(p.len, p.trailer + 124);
    assert_eq!(p.entries[0].ino, 1);
}

#[test]
fn too_large_and_bad_names_are_errors() {
    let big = EntrySpec { name: "a".into(), mode: S_IFREG, mtime: 0, size: MAX_FILE_SIZE + 1 };
    assert!(matches!(plan(&[big]), Err(CpioError::TooLarge { .. })));
    for name in ["", "/abs", TRAILER_NAME, "a\0b"] {
        let e = EntrySpec { name: name.into(), mode: S_IFREG, mtime: 0, size: 0 };
        assert!(matches!(plan(&[e]), Err(CpioError::BadName { .. })), "{name:?}");
    }
}

#[test]
fn reader_reads_what_the_writer_wrote() {
    let bytes = archive();
    assert_eq!(&bytes[..6], b"070701");
    let segs = read_initrd(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].compression, Compression::None);
    let names: Vec<_> = segs[0].members.iter().map(|m| (m.name.as_str(), m.ino, m.size)).collect();
    assert_eq!(names, [("etc", 1, 0), ("etc/hello", 2, 6), ("big", 3, 1001)]);
    assert_eq!(segs[0].members[1].head, b"hello\n");
    assert_eq!(segs[0].len, bytes.len() as u64);
}

#[test]
fn reader_walks_concatenated_and_compressed_segments() {
    let plain = archive();
    let mut all = plain.clone();
    all.extend_from_slice(&[0u8; 12]);
    let z = zstd::encode_all(&plain[..], 3).unwrap();
    all.extend_from_slice(&z);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    all.extend_from_slice(&gz.finish().unwrap());
    let segs = read_initrd(&mut Cursor::new(&all)).unwrap();
    let kinds: Vec<_> = segs.iter().map(|s| s.compression).collect();
    assert_eq!(kinds, [Compression::None, Compression::Zstd, Compression::Gzip]);
    assert_eq!(segs[1].offset, plain.len() as u64 + 12);
    assert_eq!(segs[1].len, z.len() as u64);
    assert_eq!(segs[2].members, segs[0].members);
}

#[test]
fn junk_is_an_error_naming_the_offset() {
    let mut bytes = archive();
    let n = bytes.len() as u64;
    bytes.extend_from_slice(b"junk");
    let e = read_initrd(&mut Cursor::new(&bytes)).unwrap_err().to_string();
    assert!(e.contains(&format!("byte {n}")), "{e}");
}
