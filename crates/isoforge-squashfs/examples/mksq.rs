//! Builds a squashfs from a host directory: `mksq SRC OUT [threads] [comp]`.
use isoforge_squashfs::{scan, write_to_path, Compression, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mut tree = scan(args[1].as_ref())?;
    tree.all_root();
    let threads = args.get(3).map(|t| t.parse()).transpose()?.unwrap_or(0);
    let compression = match args.get(4).map(String::as_str) {
        Some("xz") => Compression::Xz { dict_size: None, x86_bcj: true },
        Some("gzip") => Compression::Gzip { level: 9 },
        Some("lz4") => Compression::Lz4,
        Some("none") => Compression::None,
        Some(l) => Compression::Zstd { level: l.parse()? },
        None => Compression::default(),
    };
    let t = std::time::Instant::now();
    let s = write_to_path(&tree, &Options { threads, compression, ..Options::default() }, args[2].as_ref())?;
    eprintln!("{s:#?}\n{:?}", t.elapsed());
    Ok(())
}
