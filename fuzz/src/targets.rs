//! One function per reader. Each must return (never panic, never hang) on any input; the
//! readers report what is wrong as problems or errors, which are ignored here.

use isoforge_formats::fat::FatVolume;
use isoforge_formats::iso9660::el_torito::{decode_catalog, BootInfoChecksum};
use isoforge_formats::iso9660::read::{Hierarchy, IsoImage};
use isoforge_formats::part::gpt::read_gpt;
use isoforge_formats::part::layout::identify;
use isoforge_formats::part::mbr::Mbr;
use isoforge_inspect::diff::diff;
use isoforge_inspect::{
    bytemap::ByteMap, fat::FatInfo, squashfs::SquashfsInfo, system_area::SystemArea, verify, Image,
};

/// The ISO 9660 reader: descriptors, both walks, path tables, El Torito, the checks.
pub fn iso(data: &[u8]) {
    let src = data.to_vec();
    let Ok(img) = IsoImage::open(&src) else { return };
    let _ = img.walk(Hierarchy::Primary);
    let _ = img.walk(Hierarchy::Joliet);
    let _ = img.path_tables(Hierarchy::Primary);
    let _ = img.check();
}

/// The boot catalog decoder and the boot-info-table checksum.
pub fn el_torito(data: &[u8]) {
    let _ = decode_catalog(data);
    let mut sum = BootInfoChecksum::default();
    sum.update(data);
    let _ = sum.finish();
}

/// The MBR and GPT readers, on `data` as a whole disk.
pub fn part(data: &[u8]) {
    if let Ok(mbr) = Mbr::decode(data) {
        let _ = mbr.check(data.len() as u64 / 512);
        let _ = mbr.isohybrid_boot_lba();
    }
    let sectors = data.len() as u64 / 512;
    let mut rd = |off: u64, buf: &mut [u8]| {
        let start = usize::try_from(off).ok().filter(|&s| s <= data.len());
        match start.and_then(|s| data.get(s..s.checked_add(buf.len())?)) {
            Some(b) => {
                buf.copy_from_slice(b);
                Ok(())
            }
            None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
        }
    };
    let report = if sectors >= 2 { read_gpt(&mut rd, sectors).ok() } else { None };
    let _ = identify(data, report.as_ref());
    let src = data.to_vec();
    let _ = SystemArea::read(&src);
}

/// The FAT readers: the inspect model (fsck-level walk) and the plain volume reader.
pub fn fat(data: &[u8]) {
    let src = data.to_vec();
    let _ = FatInfo::read(&src);
    if let Ok(vol) = FatVolume::open(&src) {
        let _ = vol.verify();
        if let Ok(list) = vol.walk() {
            for e in list.iter().take(64) {
                let _ = vol.read_file(&e.entry, &mut std::io::sink());
            }
        }
    }
}

/// The squashfs readers: the inspect model (superblock against tables, tree, block lists) and
/// its byte map, and the plain reader's `verify`, walk and file reads.
pub fn squashfs(data: &[u8]) {
    let src = data.to_vec();
    if let Ok(info) = SquashfsInfo::read(&src) {
        let mut m = ByteMap::default();
        m.squashfs("s: ", 0, &info);
        m.finish();
    }
    if let Ok(mut a) = isoforge_squashfs::Archive::open(std::io::Cursor::new(data)) {
        let _ = a.verify();
        if let Ok(list) = a.walk() {
            for (_, n) in list.iter().filter(|(_, n)| n.size() > 0).take(64) {
                let _ = a.read_file(n, &mut std::io::sink());
            }
        }
    }
}

/// The whole-image model, verify, the byte map, and diff of the image with itself (which must
/// find it identical).
pub fn inspect(data: &[u8]) {
    let src = data.to_vec();
    let Ok(img) = Image::read(&src) else { return };
    let _ = verify::verify(&img, &src);
    let _ = ByteMap::build(&img, &src);
    if let Ok(r) = diff(&src, &src, 16) {
        assert!(r.identical(), "an image differs from itself: {:?}", r.differences);
    }
}

/// The initramfs reader: every segment (plain, gzip, zstd, xz), every member, and the squashfs
/// inspection of each member holding one (as `inspect` of a netboot initrd does).
pub fn cpio(data: &[u8]) {
    use isoforge_formats::cpio::read::read_initrd_with;
    let mut extracted = Vec::new();
    let mut src = std::io::Cursor::new(data);
    let (segments, _) = read_initrd_with(&mut src, &|name: &str| name.ends_with(".squashfs"), &mut extracted);
    for m in segments.iter().flat_map(|s| &s.members) {
        if let Some(at) = m.extracted.and_then(|a| usize::try_from(a).ok()) {
            let end = usize::try_from(m.size).ok().and_then(|n| at.checked_add(n));
            if let Some(bytes) = end.and_then(|e| extracted.get(at..e)) {
                let _ = SquashfsInfo::read(&bytes.to_vec());
            }
        }
    }
}
