//! criterion micro-benchmarks: the parts of a build that do not depend on disk or compressor
//! speed.
//!
//! - `plan_iso_100k`: planning an ISO of 100,000 files in 1,600 directories (names, Rock Ridge,
//!   Joliet, path tables, extents) from an in-memory tree;
//! - `fat_image`: planning and writing a FAT image of 2,000 small in-memory files;
//! - `squashfs_metadata`: writing a squashfs of 20,000 tiny files with no compression, which
//!   leaves the inode, directory, fragment and export tables as the work.
//!
//! `cargo bench -p isoforge-benches` runs them; `cargo bench --no-run` only builds them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use isoforge_benches::synthetic_tree;
use isoforge_formats::fat::{FatOptions, FatPlan};
use isoforge_formats::iso9660::plan::{plan, IsoOptions};
use isoforge_formats::time::Epoch;
use isoforge_squashfs::{Compression, InputNode, Meta, Options};

fn plan_iso(c: &mut Criterion) {
    let tree = synthetic_tree(100_000, 64, 1);
    let options = IsoOptions::new("BENCH", Epoch::NIX_DEFAULT);
    let mut g = c.benchmark_group("iso");
    g.sample_size(10);
    g.bench_function("plan_iso_100k", |b| {
        b.iter_batched(|| tree.clone(), |t| plan(t, &options).unwrap(), BatchSize::LargeInput)
    });
    g.finish();
}

fn fat_image(c: &mut Criterion) {
    let tree = synthetic_tree(2_000, 32, 2);
    // 2,000 files of one cluster each: the nixpkgs size rule (content + 10 %) is too small.
    let mut options = FatOptions::new(Epoch::NIX_DEFAULT);
    options.size = Some(8 << 20);
    c.bench_function("fat_image_2k", |b| {
        b.iter(|| {
            let p = FatPlan::new(&tree.root, &options).unwrap();
            let mut out = Vec::with_capacity(usize::try_from(p.image_size()).unwrap());
            p.write(&mut out).unwrap();
            out.len()
        })
    });
}

fn squashfs_tree(files: usize) -> InputNode {
    let meta = Meta { mode: 0o444, uid: 0, gid: 0, mtime: 1 };
    let dir_meta = Meta { mode: 0o555, ..meta };
    let mut root = BTreeMap::new();
    for d in 0..files / 100 {
        let mut entries = BTreeMap::new();
        for f in 0..100 {
            let bytes: Vec<u8> = if f % 4 == 0 { Vec::new() } else { format!("{d}/{f}\n").into_bytes() };
            entries.insert(format!("file-{f:03}").into_bytes(), InputNode::bytes_file(bytes, meta));
        }
        root.insert(
            format!("dir-{d:04}").into_bytes(),
            InputNode::Dir { entries: entries.into(), meta: dir_meta },
        );
    }
    InputNode::Dir { entries: root.into(), meta: dir_meta }
}

fn squashfs_metadata(c: &mut Criterion) {
    let tree = squashfs_tree(20_000);
    let options = Options { compression: Compression::None, threads: 1, ..Options::default() };
    let mut g = c.benchmark_group("squashfs");
    g.sample_size(10);
    g.bench_function("squashfs_metadata_20k", |b| {
        b.iter(|| {
            let mut out = Cursor::new(Vec::new());
            isoforge_squashfs::write(&tree, &options, &mut out).unwrap().total_size
        })
    });
    g.finish();
}

criterion_group!(benches, plan_iso, fat_image, squashfs_metadata);
criterion_main!(benches);
