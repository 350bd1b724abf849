//! isoforge-core: deterministic, bootable hybrid ISO 9660 images.
//!
//! The crate writes and reads the on-disk formats of a NixOS-style live image:
//!
//! - [`iso9660`]: ISO 9660 level 3 with Rock Ridge and Joliet, El Torito boot catalog;
//! - [`fat`]: the FAT12/16/32 EFI system partition image;
//! - [`part`]: the isohybrid MBR and GPT in the system area;
//! - [`inspect`]: the model of a whole image, `verify` checks and `diff`;
//! - [`tree`]: the input tree built from grafts, shared by every format;
//! - [`closure`]: the Nix store closure, NAR hashing and `nix-path-registration`;
//! - [`progress`]: the observer a build reports its phases and written bytes to.
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
pub mod cpio;
pub mod endian;
pub mod fat;
pub mod image;
pub mod inspect;
pub mod iso9660;
pub mod netboot;
pub mod outputs;
pub mod part;
pub mod progress;
pub mod read_at;
pub mod spec;
pub mod store;
pub mod time;
pub mod tree;
pub mod units;
