//! isoforge-core: deterministic, bootable hybrid ISO 9660 images from a Nix store closure.
//!
//! The crate is the pipeline and the Nix glue on top of the formats:
//!
//! - [`image`]: the pipeline `isoforge build` runs;
//! - [`closure`]: the Nix store closure, NAR hashing and `nix-path-registration`;
//! - [`store`]: the store squashfs of a closure;
//! - [`spec`] and [`outputs`]: the JSON spec a Nix derivation writes and nixpkgs' `$out` layout;
//! - [`netboot`]: the netboot initrd and its store segment;
//! - [`progress`]: the observer a build reports its phases and written bytes to.
//!
//! # Crates
//!
//! | crate | what | depends on |
//! |---|---|---|
//! | `isoforge-host` | host I/O at the edges: input snapshots, atomic outputs | |
//! | `isoforge-squashfs` | the squashfs writer and reader | host |
//! | `isoforge-formats` | ISO 9660/Rock Ridge/Joliet/El Torito, FAT, MBR/GPT, cpio, the input tree | host, squashfs |
//! | `isoforge-inspect` | the read side: the model of a whole image, `verify`, `diff`, the byte map | formats, squashfs, host |
//! | `isoforge-core` (this crate) | the pipeline and the Nix glue | formats, inspect, squashfs, host |
//!
//! So that a Nix tool needs one dependency to build, inspect and diff an image, this crate
//! re-exports the formats' modules under their names ([`iso9660`], [`fat`], [`part`],
//! [`cpio`], [`tree`], [`time`], [`units`], [`endian`], [`read_at`]) and the read side as
//! [`inspect`]: `isoforge_core::fat` is `isoforge_formats::fat`. The pipeline itself uses
//! nothing of `isoforge-inspect`.
//!
//! Every writer follows the same rule: a pure planning step turns inputs into a plan that fixes
//! every extent, address and size, then a writer streams bytes in increasing offset order.
//! Nothing reads the clock: every date, serial and GUID derives from one [`time::Epoch`].
//!
//! The pipeline that `isoforge build` runs is [`image`]: an [`image::ImageSpec`] (grafts, ISO
//! options, the EFI image, the system area layout, the store closure) in, one file out.
//! [`spec`] reads the JSON spec a Nix derivation writes (`isoforge build --spec`) and
//! [`outputs`] writes nixpkgs' `$out` layout (`--out-dir`), so Nix tooling can link the crate
//! and build the same images the command builds.
//!
//! # Example
//!
//! The image `isoforge build -o demo.iso --volume-id DEMO --epoch 315532800 --graft /=DIR`
//! writes, byte for byte:
//!
//! ```
//! use isoforge_core::image::{build_to_path, Graft, ImageSpec};
//! use isoforge_core::iso9660::plan::IsoOptions;
//! use isoforge_core::time::Epoch;
//!
//! let dir = tempfile::tempdir()?;
//! let tree = dir.path().join("tree");
//! std::fs::create_dir_all(tree.join("docs"))?;
//! std::fs::write(tree.join("docs/hello.txt"), "hello\n")?;
//!
//! let mut spec = ImageSpec::new(IsoOptions::new("DEMO", Epoch(315532800)));
//! spec.grafts.push(Graft::parse(&format!("/={}", tree.display()))?);
//! let report = build_to_path(&spec, &dir.path().join("demo.iso"))?;
//! assert_eq!(report.image_size, std::fs::metadata(dir.path().join("demo.iso"))?.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same image from a spec file, into a Nix-style output directory
//! (`isoforge build --spec spec.json --out-dir out`):
//!
//! ```
//! use isoforge_core::outputs::{build_out_dir, OutDirOptions};
//! use isoforge_core::spec::SpecFile;
//! use isoforge_core::time::Epoch;
//!
//! let dir = tempfile::tempdir()?;
//! let tree = dir.path().join("tree");
//! std::fs::create_dir_all(&tree)?;
//! std::fs::write(tree.join("hello.txt"), "hello\n")?;
//! let json = format!(
//!     r#"{{ "isoName": "demo.iso", "volumeID": "DEMO", "epoch": 315532800,
//!          "contents": [ {{ "source": "{}", "target": "/" }} ] }}"#,
//!     tree.display()
//! );
//! let file = SpecFile::from_json(&json)?;
//! let epoch = Epoch(file.epoch.unwrap_or(315532800));
//! let spec = file.image_spec_in(epoch, dir.path())?;
//! let options = OutDirOptions {
//!     iso_name: file.iso_name.clone(),
//!     compress: file.compress_image,
//!     sha256: true,
//!     system: "x86_64-linux".into(),
//!     threads: 0,
//! };
//! let out = dir.path().join("out");
//! let report = build_out_dir(&spec, &options, &out)?;
//! assert_eq!(report.image, out.join("iso/demo.iso"));
//! assert!(std::fs::read_to_string(out.join("nix-support/hydra-build-products"))?.starts_with("file iso "));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod closure;
pub mod image;
pub mod netboot;
pub mod outputs;
pub mod progress;
pub mod spec;
pub mod store;

pub use isoforge_formats::{cpio, endian, fat, finding, iso9660, part, read_at, time, tree, units};
pub use isoforge_inspect as inspect;
