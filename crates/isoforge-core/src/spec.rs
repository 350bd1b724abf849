//! The JSON spec file a Nix derivation writes (`isoforge build --spec FILE.json`), and its
//! mapping onto an [`ImageSpec`].
//!
//! The keys mirror the arguments of nixpkgs' `nixos/lib/make-iso9660-image.nix` (`isoName`,
//! `volumeID`, `contents`, `squashfsContents`, `squashfsCompression`, `bootable`, `bootImage`,
//! `efiBootable`, `efiBootImage`, `usbBootable`, `isohybridMbrImage`, `compressImage`), so that a
//! derivation can pass its arguments through `builtins.toJSON` unchanged, plus isoforge's own
//! (`efiDir`, `layout`, `epoch`, `gptDiskGuid`, `sortWeights`, `threads`, `sha256`,
//! `blockSize`, `efiSerial`).
//! `docs/spec-file.md` documents every key, its default and where it differs from nixpkgs.
//!
//! The top level is deserialized with serde (`deny_unknown_fields`) into one JSON value per
//! known key, and each value is then converted on its own, so that errors name the key: an
//! unknown key ([`SpecError::UnknownKey`]), a value of the wrong type
//! ([`SpecError::WrongType`]), a missing required key ([`SpecError::Missing`]) or a value that
//! does not fit ([`SpecError::Invalid`]).
//!
//! Relative host paths are taken relative to the current directory (as flags are), not to the
//! spec file: inside a derivation the spec lives in the store while `exportReferencesGraph`
//! files are written into the build directory.
//!
//! ```
//! use isoforge_core::spec::SpecFile;
//! use isoforge_core::time::Epoch;
//!
//! let spec = SpecFile::from_json(r#"{
//!     "isoName": "demo.iso",
//!     "volumeID": "DEMO",
//!     "contents": [ { "source": "fixtures/demo/tree", "target": "/" } ],
//!     "squashfsCompression": "zstd -Xcompression-level 19"
//! }"#)?;
//! assert_eq!(spec.iso_name, "demo.iso");
//! let image = spec.image_spec(Epoch(315532800))?;
//! assert_eq!(image.iso.volume_id, "DEMO");
//! assert_eq!(image.grafts[0].target, "/");
//! # Ok::<(), isoforge_core::spec::SpecError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::marker::PhantomData;

use isoforge_squashfs::Compression;
use serde::de::value::MapDeserializer;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::image::{EfiSpec, Graft, HybridSpec, ImageSpec, DEFAULT_EFI_IMAGE};
use crate::store::StoreSpec;
use isoforge_formats::fat::{FatOptions, DEFAULT_SERIAL};
use isoforge_formats::iso9660::plan::{BiosBoot, EfiBoot, IsoOptions, DEFAULT_BOOT_LOAD_SIZE};
use isoforge_formats::part::gpt::Guid;
use isoforge_formats::part::layout::Layout;
use isoforge_formats::time::Epoch;

/// `isoName`'s default, as in make-iso9660-image.nix.
pub const DEFAULT_ISO_NAME: &str = "cd.iso";
/// `squashfsCompression`'s default, as in make-iso9660-image.nix.
pub const DEFAULT_SQUASHFS_COMPRESSION: &str = "xz -Xdict-size 100%";

/// Every key the spec accepts, in the order of the documentation.
pub const KEYS: &[&str] = &[
    "isoName",
    "volumeID",
    "contents",
    "squashfsContents",
    "squashfsCompression",
    "bootable",
    "bootImage",
    "efiBootable",
    "efiBootImage",
    "usbBootable",
    "isohybridMbrImage",
    "compressImage",
    "efiDir",
    "layout",
    "epoch",
    "gptDiskGuid",
    "sortWeights",
    "threads",
    "sha256",
    "blockSize",
    "efiSerial",
];

/// Errors reading a spec file or mapping it onto an image; each names the key.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read.
    #[error("spec file {path}: {source}")]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not JSON, or not a JSON object.
    #[error("spec is not a JSON object: {0}")]
    Syntax(String),
    /// A key isoforge does not know.
    #[error("unknown key {key:?} in the spec (known keys: {known})")]
    UnknownKey {
        /// The key.
        key: String,
        /// The known keys, comma-separated.
        known: String,
    },
    /// A key whose value has the wrong JSON type.
    #[error("spec key {key:?}: expected {expected}, found {found}")]
    WrongType {
        /// The key (with an index for list items, e.g. `contents[2].source`).
        key: String,
        /// What the key takes.
        expected: &'static str,
        /// What the value is (JSON type, or serde's description).
        found: String,
    },
    /// A required key is absent.
    #[error("spec key {key:?} is required")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A value of the right type that does not fit (e.g. a compression isoforge lacks).
    #[error("spec key {key:?}: {why}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// One `contents` entry: a host path and where it goes in the image (make-iso9660-image.nix's
/// `{ source, target }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Host file, directory or symlink.
    pub source: PathBuf,
    /// Path in the image.
    pub target: String,
}

/// `squashfsContents`: what goes into `/nix-store.squashfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SquashfsContents {
    /// A string: a closure file (store paths one a line), a closureInfo directory or an
    /// exportReferencesGraph file.
    Closure(PathBuf),
    /// A list of store paths, taken as the complete closure (as closureInfo's `store-paths`
    /// would list it: every reference must be in the list).
    Paths(Vec<String>),
}

/// A parsed spec file. Field docs give the JSON key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecFile {
    /// `isoName`: the image's file name (default `cd.iso`).
    pub iso_name: String,
    /// `volumeID` (required): the volume id, 1–32 bytes.
    pub volume_id: String,
    /// `contents`: grafts.
    pub contents: Vec<Content>,
    /// `squashfsContents`: the store closure; `null` or `[]` for none.
    pub squashfs_contents: Option<SquashfsContents>,
    /// `squashfsCompression`: parsed from nixpkgs' mksquashfs syntax; `null` is
    /// [`Compression::None`]; `None` when the key is absent (the squashfs of `squashfsContents`
    /// then uses nixpkgs' [`DEFAULT_SQUASHFS_COMPRESSION`]).
    pub squashfs_compression: Option<Compression>,
    /// `bootable` + `bootImage`: the BIOS boot file's path in the image.
    pub boot_image: Option<String>,
    /// `efiBootable`.
    pub efi_bootable: bool,
    /// `efiBootImage`: path in the image of the FAT image (built from `efiDir`, or prebuilt
    /// among the contents).
    pub efi_boot_image: Option<String>,
    /// `efiDir`: build the FAT image from this host directory.
    pub efi_dir: Option<PathBuf>,
    /// `usbBootable` + `isohybridMbrImage`: the isohybrid MBR template.
    pub isohybrid_mbr: Option<PathBuf>,
    /// `compressImage`: write `<isoName>.zst` (only with an output directory).
    pub compress_image: bool,
    /// `layout`: `nixos`, `gpt` or `none`.
    pub layout: Option<Layout>,
    /// `epoch`: seconds since 1970 for every date.
    pub epoch: Option<i64>,
    /// `gptDiskGuid`.
    pub gpt_disk_guid: Option<Guid>,
    /// `sortWeights`: image path → weight.
    pub sort_weights: BTreeMap<String, i32>,
    /// `threads`: compression threads (0 or absent: all cores).
    pub threads: Option<usize>,
    /// `sha256`: also write `<file>.sha256` (only with an output directory).
    pub sha256: bool,
    /// `blockSize`: the squashfs block size in bytes (default [`BLOCK_SIZE`], nixpkgs' 1 MiB).
    pub block_size: Option<u32>,
    /// `efiSerial`: the volume serial of the FAT image built from `efiDir` (default
    /// [`DEFAULT_SERIAL`]).
    pub efi_serial: Option<u32>,
}

fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an attribute set".into(),
    }
}

/// The spec file as its JSON gives it: every key isoforge knows, each value still JSON
/// (`null` when the key is absent, except `squashfsCompression`, whose `null` means "no
/// compression"). `deny_unknown_fields` makes a misspelt key an error naming it
/// ([`SpecError::UnknownKey`]); [`SpecFile::from_json`] then converts each value with an error
/// naming its key and the type it takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSpec {
    #[serde(rename = "isoName")]
    iso_name: Value,
    #[serde(rename = "volumeID")]
    volume_id: Value,
    contents: Value,
    #[serde(rename = "squashfsContents")]
    squashfs_contents: Value,
    #[serde(rename = "squashfsCompression", deserialize_with = "present")]
    squashfs_compression: Option<Value>,
    bootable: Value,
    #[serde(rename = "bootImage")]
    boot_image: Value,
    #[serde(rename = "efiBootable")]
    efi_bootable: Value,
    #[serde(rename = "efiBootImage")]
    efi_boot_image: Value,
    #[serde(rename = "usbBootable")]
    usb_bootable: Value,
    #[serde(rename = "isohybridMbrImage")]
    isohybrid_mbr_image: Value,
    #[serde(rename = "compressImage")]
    compress_image: Value,
    #[serde(rename = "efiDir")]
    efi_dir: Value,
    layout: Value,
    epoch: Value,
    #[serde(rename = "gptDiskGuid")]
    gpt_disk_guid: Value,
    #[serde(rename = "sortWeights")]
    sort_weights: Value,
    threads: Value,
    sha256: Value,
    #[serde(rename = "blockSize")]
    block_size: Value,
    #[serde(rename = "efiSerial")]
    efi_serial: Value,
}

/// A key that is present, even with `null`: `Some(value)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The error of deserializing the top level into [`RawSpec`]: the unknown key, kept apart
/// from serde's words so that [`SpecError::UnknownKey`] can name it.
#[derive(Debug)]
enum TopLevelError {
    UnknownKey(String),
    Other(String),
}

impl std::fmt::Display for TopLevelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopLevelError::UnknownKey(k) => write!(f, "unknown key {k:?}"),
            TopLevelError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TopLevelError {}

impl de::Error for TopLevelError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        TopLevelError::Other(msg.to_string())
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        TopLevelError::UnknownKey(field.to_string())
    }
}

/// A JSON value as a deserializer with the error type `E` (serde_json's own deserializer of a
/// [`Value`] only has [`serde_json::Error`]).
struct JsonValue<E>(Value, PhantomData<E>);

impl<'de, E: de::Error> IntoDeserializer<'de, E> for JsonValue<E> {
    type Deserializer = JsonValue<E>;

    fn into_deserializer(self) -> JsonValue<E> {
        self
    }
}

impl<'de, E: de::Error> Deserializer<'de> for JsonValue<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.0.deserialize_any(visitor).map_err(E::custom)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl RawSpec {
    fn from_map(map: Map<String, Value>) -> Result<RawSpec, SpecError> {
        let de = MapDeserializer::new(map.into_iter().map(|(k, v)| (k, JsonValue(v, PhantomData))));
        RawSpec::deserialize(de).map_err(|e| match e {
            TopLevelError::UnknownKey(key) => SpecError::UnknownKey { key, known: KEYS.join(", ") },
            TopLevelError::Other(m) => SpecError::Syntax(m),
        })
    }
}

/// Converts the value of `key`; `null` counts as absent.
fn typed<T: DeserializeOwned>(
    v: Value,
    key: &'static str,
    expected: &'static str,
) -> Result<Option<T>, SpecError> {
    if v.is_null() {
        return Ok(None);
    }
    let found = json_kind(&v);
    serde_json::from_value(v).map(Some).map_err(|e| {
        let why = e.to_string();
        // A type mismatch names the value's kind; anything else (an unknown field of a
        // nested object, a number out of range) is serde's message.
        let found = if why.starts_with("invalid type") { found } else { why };
        SpecError::WrongType { key: key.to_string(), expected, found }
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Path in the image as the planner looks it up: no leading `/`.
fn image_path(s: &str) -> String {
    s.trim_start_matches('/').to_string()
}

fn invalid(key: &str, why: impl Into<String>) -> SpecError {
    SpecError::Invalid { key: key.to_string(), why: why.into() }
}

/// Parses nixpkgs' `squashfsCompression` (mksquashfs's `-comp` argument and its options):
/// `zstd [-Xcompression-level N]`, `xz [-Xdict-size N%|BYTES|NK|NM] [-Xbcj x86]`,
/// `gzip [-Xcompression-level N]`, `lz4`. Options isoforge does not implement are errors.
pub fn parse_compression(text: &str) -> Result<Compression, String> {
    parse_compression_of(text, BLOCK_SIZE)
}

/// [`parse_compression`] for squashfs blocks of `block_size` bytes: an xz `-Xdict-size N%` is
/// a share of the block size, as in mksquashfs.
pub(crate) fn parse_compression_of(text: &str, block_size: u32) -> Result<Compression, String> {
    let mut words = text.split_whitespace();
    let algo = words.next().ok_or("empty compression (use null for none)")?;
    let opts: Vec<&str> = words.collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        let name = opts[i];
        let value = opts.get(i + 1).copied().ok_or_else(|| format!("{name} needs a value"))?;
        pairs.push((name, value));
        i += 2;
    }
    let level = |value: &str, max: u8| -> Result<u8, String> {
        match value.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("{algo} -Xcompression-level {value:?} is not a whole number from 1 to {max}")),
        }
    };
    let unsupported = |name: &str| Err(format!("{algo} option {name} is not supported by isoforge"));
    match algo {
        "zstd" | "gzip" => {
            let max = if algo == "zstd" { 22 } else { 9 };
            let mut l = if algo == "zstd" { 15 } else { 9 };
            for (name, value) in pairs {
                match name {
                    "-Xcompression-level" => l = level(value, max)?,
                    _ => return unsupported(name),
                }
            }
            Ok(if algo == "zstd" { Compression::Zstd { level: l } } else { Compression::Gzip { level: l } })
        }
        "xz" => {
            let mut dict_size = None;
            let mut x86_bcj = false;
            for (name, value) in pairs {
                match (name, value) {
                    ("-Xdict-size", "100%") => dict_size = None,
                    ("-Xdict-size", v) => dict_size = Some(DictSize::parse(v)?),
                    ("-Xbcj", "x86") => x86_bcj = true,
                    _ => return unsupported(&format!("{name} {value}")),
                }
            }
            let dict_size = dict_size.map(|d| d.bytes(block_size)).transpose()?;
            Ok(Compression::Xz { dict_size, x86_bcj })
        }
        "lz4" => match pairs.first() {
            None => Ok(Compression::Lz4),
            Some((name, _)) => unsupported(name),
        },
        _ => Err(format!("unknown compression {algo:?}: use zstd, xz, gzip, lz4, or null for none")),
    }
}

/// The squashfs block size of a spec without `blockSize` (nixpkgs' `-b 1048576`).
pub const BLOCK_SIZE: u32 = 1 << 20;
/// The smallest squashfs block size (`blockSize`).
const MIN_BLOCK_SIZE: u32 = 4096;
/// The largest squashfs block size (`blockSize`).
const MAX_BLOCK_SIZE: u32 = 1 << 20;

/// Parses a FAT volume serial as `--efi-serial` and `efiSerial` take it: up to 8 hex digits,
/// with an optional `0x` and dashes (`12345678`, `0x12345678`, `1234-5678`).
pub fn parse_serial(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = t.chars().filter(|&c| c != '-').collect();
    if digits.is_empty() || digits.len() > 8 {
        return Err(format!("serial {s:?}: expected up to 8 hex digits"));
    }
    u32::from_str_radix(&digits, 16).map_err(|_| format!("serial {s:?}: not a hex number"))
}

enum DictSize {
    Percent(u32),
    Bytes(u32),
}

impl DictSize {
    fn parse(v: &str) -> Result<DictSize, String> {
        let bad = || format!("-Xdict-size {v:?} is not N%, BYTES, NK or NM");
        if let Some(p) = v.strip_suffix('%') {
            return p.parse().map(DictSize::Percent).map_err(|_| bad());
        }
        let (num, mul) = match v.as_bytes().last() {
            Some(b'k' | b'K') => (&v[..v.len() - 1], 1 << 10),
            Some(b'm' | b'M') => (&v[..v.len() - 1], 1 << 20),
            _ => (v, 1),
        };
        let n: u32 = num.parse().map_err(|_| bad())?;
        n.checked_mul(mul).map(DictSize::Bytes).ok_or_else(bad)
    }

    fn bytes(&self, block: u32) -> Result<u32, String> {
        match self {
            DictSize::Bytes(b) => Ok(*b),
            DictSize::Percent(p) if (1..=100).contains(p) => Ok(block / 100 * p + block % 100 * p / 100),
            DictSize::Percent(p) => Err(format!("-Xdict-size {p}% is not from 1% to 100%")),
        }
    }
}

impl SpecFile {
    /// A spec with `volumeID` and every other key at its default (as `{"volumeID": ...}`).
    pub fn new(volume_id: impl Into<String>) -> SpecFile {
        SpecFile {
            iso_name: DEFAULT_ISO_NAME.to_string(),
            volume_id: volume_id.into(),
            contents: Vec::new(),
            squashfs_contents: None,
            squashfs_compression: None,
            boot_image: None,
            efi_bootable: false,
            efi_boot_image: None,
            efi_dir: None,
            isohybrid_mbr: None,
            compress_image: false,
            layout: None,
            epoch: None,
            gpt_disk_guid: None,
            sort_weights: BTreeMap::new(),
            threads: None,
            sha256: false,
            block_size: None,
            efi_serial: None,
        }
    }

    /// Reads and parses a spec file.
    pub fn read(path: &Path) -> Result<SpecFile, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
        SpecFile::from_json(&text)
    }

    /// Parses the JSON text of a spec.
    pub fn from_json(text: &str) -> Result<SpecFile, SpecError> {
        let value: Value = serde_json::from_str(text).map_err(|e| SpecError::Syntax(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(SpecError::Syntax(format!("the top level is {}", json_kind(&value))));
        };
        let raw = RawSpec::from_map(map)?;
        let iso_name =
            typed::<String>(raw.iso_name, "isoName", "a string")?.unwrap_or(DEFAULT_ISO_NAME.into());
        let volume_id = typed::<String>(raw.volume_id, "volumeID", "a string")?;
        let contents: Vec<Value> =
            typed(raw.contents, "contents", "a list of { source, target }")?.unwrap_or_default();
        let contents = contents
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let found = json_kind(&v);
                serde_json::from_value::<Content>(v).map_err(|e| {
                    let why = e.to_string();
                    let found = if why.starts_with("invalid type") { found } else { why };
                    SpecError::WrongType {
                        key: format!("contents[{i}]"),
                        expected: "{ source = path; target = string; }",
                        found,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let squashfs_contents = match raw.squashfs_contents {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(SquashfsContents::Closure(PathBuf::from(s))),
            Value::Array(items) => {
                let mut paths = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => paths.push(s),
                        other => {
                            return Err(SpecError::WrongType {
                                key: format!("squashfsContents[{i}]"),
                                expected: "a store path (string)",
                                found: json_kind(&other),
                            })
                        }
                    }
                }
                (!paths.is_empty()).then_some(SquashfsContents::Paths(paths))
            }
            other => {
                return Err(SpecError::WrongType {
                    key: "squashfsContents".into(),
                    expected: "a closure file path or a list of store paths",
                    found: json_kind(&other),
                })
            }
        };
        // The block size first: an xz dictionary given in percent is a share of it.
        let block_size = typed::<u64>(raw.block_size, "blockSize", "a whole number of bytes")?
            .map(|b| match u32::try_from(b) {
                Ok(b) if b.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&b) => Ok(b),
                _ => Err(invalid("blockSize", format!("{b} is not a power of two from 4096 to 1048576"))),
            })
            .transpose()?;
        let squashfs_compression = match raw.squashfs_compression {
            None => None,
            Some(Value::Null) => Some(Compression::None),
            Some(Value::String(s)) => Some(
                parse_compression_of(&s, block_size.unwrap_or(BLOCK_SIZE))
                    .map_err(|e| invalid("squashfsCompression", e))?,
            ),
            Some(other) => {
                return Err(SpecError::WrongType {
                    key: "squashfsCompression".into(),
                    expected: "a string like \"zstd -Xcompression-level 19\", or null",
                    found: json_kind(&other),
                })
            }
        };
        let bootable = typed::<bool>(raw.bootable, "bootable", "a boolean")?.unwrap_or(false);
        let boot_image = non_empty(typed(raw.boot_image, "bootImage", "a path in the image (string)")?);
        let efi_bootable = typed::<bool>(raw.efi_bootable, "efiBootable", "a boolean")?.unwrap_or(false);
        let efi_boot_image =
            non_empty(typed(raw.efi_boot_image, "efiBootImage", "a path in the image (string)")?);
        let usb_bootable = typed::<bool>(raw.usb_bootable, "usbBootable", "a boolean")?.unwrap_or(false);
        let mbr = non_empty(typed(raw.isohybrid_mbr_image, "isohybridMbrImage", "a host path (string)")?);
        let compress_image =
            typed::<bool>(raw.compress_image, "compressImage", "a boolean")?.unwrap_or(false);
        let efi_dir = non_empty(typed(raw.efi_dir, "efiDir", "a host path (string)")?).map(PathBuf::from);
        let layout = typed::<String>(raw.layout, "layout", "\"nixos\", \"gpt\" or \"none\"")?
            .map(|s| s.parse::<Layout>().map_err(|e| invalid("layout", e)))
            .transpose()?;
        let epoch = typed::<i64>(raw.epoch, "epoch", "a whole number of seconds")?;
        let gpt_disk_guid = typed::<String>(raw.gpt_disk_guid, "gptDiskGuid", "a GUID string")?
            .map(|s| Guid::parse(&s).map_err(|e| invalid("gptDiskGuid", e.to_string())))
            .transpose()?;
        let sort_weights = typed::<BTreeMap<String, i32>>(
            raw.sort_weights,
            "sortWeights",
            "an attribute set of whole numbers",
        )?
        .unwrap_or_default();
        let threads = typed::<usize>(raw.threads, "threads", "a whole number")?;
        let sha256 = typed::<bool>(raw.sha256, "sha256", "a boolean")?.unwrap_or(false);
        let efi_serial = typed::<String>(raw.efi_serial, "efiSerial", "a hex string like \"12345678\"")?
            .map(|s| parse_serial(&s).map_err(|e| invalid("efiSerial", e)))
            .transpose()?;
        let volume_id = volume_id.ok_or(SpecError::Missing { key: "volumeID" })?;
        // make-iso9660-image.nix's rules: the boot image only counts with `bootable`, the MBR
        // template only with `usbBootable`.
        let boot_image = match (bootable, boot_image) {
            (true, None) => return Err(invalid("bootImage", "bootable = true needs bootImage")),
            (true, b) => b,
            (false, _) => None,
        };
        let isohybrid_mbr = match (usb_bootable, mbr) {
            (true, None) => {
                return Err(invalid("isohybridMbrImage", "usbBootable = true needs isohybridMbrImage"))
            }
            (true, m) => m.map(PathBuf::from),
            (false, _) => None,
        };
        if efi_bootable && efi_dir.is_none() && efi_boot_image.is_none() {
            return Err(invalid("efiBootImage", "efiBootable = true needs efiBootImage or efiDir"));
        }
        if !efi_bootable && efi_dir.is_some() {
            return Err(invalid("efiDir", "efiDir needs efiBootable = true"));
        }
        if iso_name.is_empty() || iso_name.contains('/') || iso_name == "." || iso_name == ".." {
            return Err(invalid("isoName", format!("{iso_name:?} is not a file name")));
        }
        Ok(SpecFile {
            iso_name,
            volume_id,
            contents,
            squashfs_contents,
            squashfs_compression,
            boot_image,
            efi_bootable,
            efi_boot_image,
            efi_dir,
            isohybrid_mbr,
            compress_image,
            layout,
            epoch,
            gpt_disk_guid,
            sort_weights,
            threads,
            sha256,
            block_size,
            efi_serial,
        })
    }

    /// The image this spec describes, dated `epoch` (the caller resolves it: a flag, else
    /// [`SpecFile::epoch`], else `SOURCE_DATE_EPOCH`, else the default). A list of store paths
    /// in `squashfsContents` needs a file: use [`SpecFile::image_spec_in`].
    pub fn image_spec(&self, epoch: Epoch) -> Result<ImageSpec, SpecError> {
        if let Some(SquashfsContents::Paths(_)) = self.squashfs_contents {
            return Err(invalid("squashfsContents", "a list of store paths needs a scratch directory"));
        }
        self.image_spec_in(epoch, Path::new("."))
    }

    /// Like [`SpecFile::image_spec`]; a list of store paths in `squashfsContents` is written to
    /// `scratch/store-paths`, which must outlive the build.
    pub fn image_spec_in(&self, epoch: Epoch, scratch: &Path) -> Result<ImageSpec, SpecError> {
        let mut iso = IsoOptions::new(self.volume_id.clone(), epoch);
        iso.sort_weights = self.sort_weights.clone();
        iso.bios_boot = self.boot_image.as_ref().map(|b| BiosBoot {
            image: image_path(b),
            load_size: DEFAULT_BOOT_LOAD_SIZE,
            boot_info_table: true,
        });
        let grafts = self
            .contents
            .iter()
            .map(|c| Graft { target: c.target.clone(), source: c.source.clone() })
            .collect();
        let efi_path = self.efi_boot_image.as_deref().map(image_path);
        let efi = match (&self.efi_dir, self.efi_bootable) {
            (Some(dir), true) => Some(EfiSpec {
                dir: dir.clone(),
                image_path: efi_path.unwrap_or_else(|| DEFAULT_EFI_IMAGE.to_string()),
                fat: FatOptions {
                    serial: self.efi_serial.unwrap_or(DEFAULT_SERIAL),
                    ..FatOptions::new(epoch)
                },
            }),
            (None, true) => {
                iso.efi_boot = efi_path.map(|image| EfiBoot { image });
                None
            }
            _ => None,
        };
        let hybrid = HybridSpec {
            layout: self.layout,
            isohybrid_mbr: self.isohybrid_mbr.clone(),
            gpt_disk_guid: self.gpt_disk_guid,
        };
        let closure = match &self.squashfs_contents {
            None => None,
            Some(SquashfsContents::Closure(p)) => Some(p.clone()),
            Some(SquashfsContents::Paths(paths)) => {
                let file = scratch.join("store-paths");
                let text: String = paths.iter().map(|p| format!("{p}\n")).collect();
                std::fs::write(&file, text)
                    .map_err(|e| invalid("squashfsContents", format!("{}: {e}", file.display())))?;
                Some(file)
            }
        };
        let compression = match self.squashfs_compression {
            Some(c) => c,
            None => parse_compression(DEFAULT_SQUASHFS_COMPRESSION)
                .map_err(|e| invalid("squashfsCompression", e))?,
        };
        let store = closure.map(|closure| {
            let mut s = StoreSpec::new(closure);
            s.squashfs.compression = compression;
            s.squashfs.block_size = self.block_size.unwrap_or(BLOCK_SIZE);
            s.squashfs.threads = self.threads.unwrap_or(0);
            s
        });
        Ok(ImageSpec { grafts, iso, efi, hybrid, store })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> SpecError {
        match SpecFile::from_json(text) {
            Err(e) => e,
            Ok(s) => panic!("{text} parsed: {s:?}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let e = err(r#"{"volumeID": "X", "isoNmae": "a.iso"}"#);
        assert!(matches!(&e, SpecError::UnknownKey { key, .. } if key == "isoNmae"), "{e}");
        let e = err(r#"{"volumeID": 3}"#);
        assert!(matches!(&e, SpecError::WrongType { key, .. } if key == "volumeID"), "{e}");
        assert!(e.to_string().contains("number 3"), "{e}");
        let e = err(r#"{"isoName": "a.iso"}"#);
        assert!(matches!(e, SpecError::Missing { key: "volumeID" }));
        let e = err(r#"{"volumeID": "X", "contents": [{"source": "/a", "target": "/"}, {"source": "/b"}]}"#);
        assert!(e.to_string().contains("contents[1]") && e.to_string().contains("target"), "{e}");
        let e = err(r#"{"volumeID": "X", "squashfsCompression": "zstd -Xfoo 1"}"#);
        assert!(e.to_string().contains("squashfsCompression") && e.to_string().contains("-Xfoo"), "{e}");
        let e = err(r#"{"volumeID": "X", "bootable": true}"#);
        assert!(e.to_string().contains("bootImage"), "{e}");
        let e = err(r#"{"volumeID": "X", "sortWeights": {"/a": "high"}}"#);
        assert!(e.to_string().contains("sortWeights"), "{e}");
        let e = err("[1]");
        assert!(matches!(e, SpecError::Syntax(_)));
    }

    #[test]
    fn nixpkgs_compression_strings() {
        let c = |s: &str| parse_compression(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(c("zstd -Xcompression-level 19"), Compression::Zstd { level: 19 });
        assert_eq!(c("zstd"), Compression::Zstd { level: 15 });
        assert_eq!(c("xz -Xdict-size 100%"), Compression::Xz { dict_size: None, x86_bcj: false });
        assert_eq!(
            c("xz -Xdict-size 50% -Xbcj x86"),
            Compression::Xz { dict_size: Some(1 << 19), x86_bcj: true }
        );
        assert_eq!(c("xz -Xdict-size 64K"), Compression::Xz { dict_size: Some(1 << 16), x86_bcj: false });
        assert_eq!(c("gzip"), Compression::Gzip { level: 9 });
        assert_eq!(c("gzip -Xcompression-level 1"), Compression::Gzip { level: 1 });
        assert_eq!(c("lz4"), Compression::Lz4);
        for bad in
            ["", "lzo", "lz4 -Xhc", "zstd -Xcompression-level 23", "xz -Xbcj arm", "zstd -Xcompression-level"]
        {
            assert!(parse_compression(bad).is_err(), "{bad:?}");
        }
        let s = SpecFile::from_json(r#"{"volumeID": "X", "squashfsCompression": null}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.squashfs_compression, Some(Compression::None));
        let s = SpecFile::from_json(r#"{"volumeID": "X", "squashfsContents": "c"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.squashfs_compression, None);
        assert_eq!(s.iso_name, DEFAULT_ISO_NAME);
        // Absent: nixpkgs' default, applied when the spec becomes an image.
        let store = s.image_spec(Epoch(1)).unwrap_or_else(|e| panic!("{e}")).store;
        let store = store.unwrap_or_else(|| panic!("no store"));
        assert_eq!(store.squashfs.compression, Compression::Xz { dict_size: None, x86_bcj: false });
        assert_eq!(store.squashfs.block_size, BLOCK_SIZE);
    }

    #[test]
    fn every_key_is_known() {
        for key in KEYS {
            let text = format!(r#"{{"volumeID": "X", "{key}": null}}"#);
            let parsed = SpecFile::from_json(&text);
            assert!(!matches!(parsed, Err(SpecError::UnknownKey { .. })), "{key}: {parsed:?}");
        }
        let e = err(r#"{"volumeID": "X", "squashfs_compression": "lz4"}"#);
        assert_eq!(
            e.to_string(),
            format!("unknown key \"squashfs_compression\" in the spec (known keys: {})", KEYS.join(", "))
        );
    }

    #[test]
    fn block_size_and_efi_serial() {
        let s = SpecFile::from_json(
            r#"{"volumeID": "X", "squashfsContents": "c", "blockSize": 131072, "efiSerial": "0xdead-beef",
                "efiBootable": true, "efiDir": "efi", "squashfsCompression": "xz -Xdict-size 50%"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.block_size, Some(1 << 17));
        assert_eq!(s.efi_serial, Some(0xdead_beef));
        // The dictionary percentage is of the spec's block size.
        assert_eq!(
            s.squashfs_compression,
            Some(Compression::Xz { dict_size: Some(1 << 16), x86_bcj: false })
        );
        let i = s.image_spec(Epoch(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.store.map(|s| s.squashfs.block_size), Some(1 << 17));
        assert_eq!(i.efi.map(|e| e.fat.serial), Some(0xdead_beef));
        let e = err(r#"{"volumeID": "X", "blockSize": 3000}"#);
        assert_eq!(e.to_string(), "spec key \"blockSize\": 3000 is not a power of two from 4096 to 1048576");
        let e = err(r#"{"volumeID": "X", "blockSize": "1M"}"#);
        assert_eq!(
            e.to_string(),
            "spec key \"blockSize\": expected a whole number of bytes, found string \"1M\""
        );
        let e = err(r#"{"volumeID": "X", "efiSerial": "xyz"}"#);
        assert_eq!(e.to_string(), "spec key \"efiSerial\": serial \"xyz\": not a hex number");
        let e = err(r#"{"volumeID": "X", "efiSerial": 5}"#);
        assert_eq!(
            e.to_string(),
            "spec key \"efiSerial\": expected a hex string like \"12345678\", found number 5"
        );
        // Without the keys: the defaults.
        let s = SpecFile::from_json(r#"{"volumeID": "X", "efiBootable": true, "efiDir": "efi"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let i = s.image_spec(Epoch(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.efi.map(|e| e.fat.serial), Some(DEFAULT_SERIAL));
    }

    #[test]
    fn serials() {
        assert_eq!(parse_serial("12345678"), Ok(0x1234_5678));
        assert_eq!(parse_serial("0xDEADbeef"), Ok(0xDEAD_BEEF));
        assert_eq!(parse_serial("1234-5678"), Ok(0x1234_5678));
        assert!(parse_serial("123456789").is_err());
        assert!(parse_serial("xyz").is_err());
    }

    #[test]
    fn maps_onto_an_image_spec() {
        let s = SpecFile::from_json(
            r#"{
              "isoName": "n.iso", "volumeID": "NIXOS", "bootable": true, "bootImage": "/isolinux/isolinux.bin",
              "efiBootable": true, "efiBootImage": "boot/efi.img", "usbBootable": true,
              "isohybridMbrImage": "/x/isohdpfx.bin", "squashfsContents": "closure",
              "squashfsCompression": "zstd -Xcompression-level 19", "threads": 2,
              "sortWeights": {"/isolinux": 1}
            }"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let i = s.image_spec(Epoch(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.iso.bios_boot.as_ref().map(|b| b.image.as_str()), Some("isolinux/isolinux.bin"));
        // A prebuilt EFI image in the contents: the El Torito entry names it, nothing is built.
        assert_eq!(i.iso.efi_boot, Some(EfiBoot { image: "boot/efi.img".into() }));
        assert!(i.efi.is_none());
        assert_eq!(i.hybrid.isohybrid_mbr, Some(PathBuf::from("/x/isohdpfx.bin")));
        let store = i.store.unwrap_or_else(|| panic!("no store"));
        assert_eq!(store.squashfs.compression, Compression::Zstd { level: 19 });
        assert_eq!(store.squashfs.threads, 2);
        assert_eq!(i.iso.sort_weights.get("/isolinux"), Some(&1));
    }
}
