//! Issue 7: Nix integration, against a real Nix (Debian's `nix-bin`, Nix 2.8).
//!
//! - `nix-instantiate --parse` accepts every `.nix` file in `nix/`;
//! - the pure spec generator `nix/spec.nix` evaluates (`nix-instantiate --eval --strict
//!   --json`) to JSON that `isoforge build --spec` builds, into an `--out-dir` laid out as
//!   nixpkgs' `$out` (`iso/`, `nix-support/hydra-build-products`, `nix-support/system`, the
//!   `.sha256` file), the `.zst` decompressing to the plain build and not depending on the
//!   thread count;
//! - spec errors (unknown key, wrong type, missing key) exit 2 naming the key, with no output;
//! - a real derivation written with plain `builtins.derivation` (busybox as the builder,
//!   isoforge added to the store) gets its closure through `exportReferencesGraph`, runs
//!   `isoforge build --spec --out-dir $out` with nixpkgs-style arguments (a prebuilt
//!   `efi.img` among the contents, `efiBootImage` naming it), passes `nix-build --check`
//!   (rebuilt, same bytes), and its image boots in QEMU (SeaBIOS from a CD-ROM, OVMF from a
//!   disk) with the initramfs checking files inside the store squashfs;
//! - issue 12: `isoImage.isoforge.cacheDir` / `makeIsoImage`'s `cache` become `ISOFORGE_CACHE`
//!   in the derivation and nothing else; a derivation passing `ISOFORGE_CACHE` (busybox's
//!   closure at zstd 19), built with an empty cache, fills it, and `nix-build --check` with the
//!   warm cache finds the same bytes with every block a hit; without a cache, the same image;
//! - issue 14: a netboot derivation (its command line from `nix/netboot-args.nix`) builds
//!   netboot.nix's files, passes `nix-build --check`, and its kernel and initrd boot to the
//!   store check; `nix/netboot-module.nix` with nixpkgs stubbed gives that command line.
//!
//! Builds run in the machine's `/nix/store` with `sandbox = false` and no build users (root),
//! set through `NIX_CONFIG`, as in `tests/closure.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::bootkit::{self, BootSpec};
use support::qemu::{self, Firmware, Media};
use support::{isoforge_bin, mkdir_p, run, run_ok_stdout, sha256_file, skip, tool, write_file};

const NIX_CONFIG: &str = "sandbox = false\nbuild-users-group =\nsubstituters =\nfsync-metadata = false\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn nix(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", NIX_CONFIG).env_remove("NIX_REMOTE").env_remove("NIX_STORE_DIR");
    c
}

fn isoforge() -> Command {
    let mut c = Command::new(isoforge_bin());
    c.env_remove("SOURCE_DATE_EPOCH").env_remove("system");
    c
}

/// Whether `nix-instantiate` runs (a skip note otherwise; a failure under `CI=true`).
fn have_nix() -> bool {
    if !tool("nix-instantiate") || !tool("nix-store") || !tool("nix-build") {
        return false;
    }
    if let Err(e) = support::nix_first_use() {
        panic!("nix-store --version failed: {e}");
    }
    true
}

fn nix_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(repo().join("nix"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nix"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_nix_file_parses() {
    let files = nix_files();
    for name in ["default.nix", "flake.nix", "spec.nix", "make-iso-image.nix", "module.nix", "package.nix"] {
        assert!(files.iter().any(|f| f.ends_with(name)), "nix/{name} missing");
    }
    if !have_nix() {
        return;
    }
    for f in files {
        run(nix("nix-instantiate").arg("--parse").arg(&f));
    }
}

/// `nix-instantiate --eval --strict --json -E expr`: the value of `expr` as JSON on stdout.
fn nix_eval(expr: &str) -> Command {
    let mut c = nix("nix-instantiate");
    c.args(["--eval", "--strict", "--json", "-E", expr]);
    c
}

/// `nix/spec.nix` applied to `args` (a Nix attribute set expression), as JSON text.
fn eval_spec(args: &str) -> String {
    let spec_nix = repo().join("nix/spec.nix");
    run_ok_stdout(&mut nix_eval(&format!("import {} ({args})", spec_nix.display())))
}

#[test]
fn spec_generator_evaluates_to_json_the_cli_builds() {
    if !have_nix() || !tool("zstd") || !tool("sha256sum") {
        return;
    }
    let dir = support::tempdir();
    let tree = repo().join("fixtures/demo/tree");
    let args = format!(
        r#"{{ isoName = "demo.iso"; volumeID = "NIX-DEMO"; contents = [ {{ source = "{}"; target = "/"; }} ];
             compressImage = true; sha256 = true; epoch = 1700000000; syslinux = null; }}"#,
        tree.display()
    );
    let json = eval_spec(&args);
    assert!(json.contains(r#""volumeID":"NIX-DEMO""#), "{json}");
    // Keys isoforge does not know are not emitted (the nixpkgs-only `syslinux` is dropped).
    assert!(!json.contains("syslinux"), "{json}");
    let spec = dir.path().join("spec.json");
    write_file(&spec, &json);

    let out = dir.path().join("out");
    let text = run_ok_stdout(isoforge().args(["build", "--spec"]).arg(&spec).arg("--out-dir").arg(&out));
    assert!(text.contains("demo.iso.zst"), "{text}");
    let zst = out.join("iso/demo.iso.zst");
    let products = fs::read_to_string(out.join("nix-support/hydra-build-products")).unwrap();
    assert_eq!(products, format!("file iso {}\n", zst.display()));
    let system = fs::read_to_string(out.join("nix-support/system")).unwrap();
    assert_eq!(system, format!("{}-{}\n", std::env::consts::ARCH, std::env::consts::OS));
    let mut names: Vec<String> = fs::read_dir(out.join("iso"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["demo.iso.zst", "demo.iso.zst.sha256"]);
    run(Command::new("sha256sum").arg("-c").arg("demo.iso.zst.sha256").current_dir(out.join("iso")));

    // The .zst holds exactly the image `-o` builds from the same spec; the flag overrides
    // the spec's volume id.
    let plain = dir.path().join("plain.iso");
    run(isoforge().args(["build", "--spec"]).arg(&spec).arg("-o").arg(&plain));
    let unz = dir.path().join("unz.iso");
    run(Command::new("zstd").args(["-q", "-d", "-o"]).arg(&unz).arg(&zst));
    assert_eq!(sha256_file(&unz), sha256_file(&plain));
    let info = run_ok_stdout(Command::new("isoinfo").arg("-d").arg("-i").arg(&plain));
    assert!(info.contains("Volume id: NIX-DEMO"), "{info}");
    let other = dir.path().join("other.iso");
    run(isoforge()
        .args(["build", "--spec"])
        .arg(&spec)
        .arg("-o")
        .arg(&other)
        .args(["--volume-id", "FLAG-ID"]));
    let info = run_ok_stdout(Command::new("isoinfo").arg("-d").arg("-i").arg(&other));
    assert!(info.contains("Volume id: FLAG-ID"), "{info}");

    // 1 and 3 zstd workers: the same .zst.
    for threads in ["1", "3"] {
        let o = dir.path().join(format!("out-{threads}"));
        run(isoforge()
            .args(["build", "--spec"])
            .arg(&spec)
            .arg("--out-dir")
            .arg(&o)
            .args(["--threads", threads]));
        assert_eq!(sha256_file(&o.join("iso/demo.iso.zst")), sha256_file(&zst), "{threads} threads");
    }
    // A non-empty output directory is refused and left alone.
    let o = isoforge().args(["build", "--spec"]).arg(&spec).arg("--out-dir").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(zst.exists());
}

/// `nix/module.nix` and `nix/make-iso-image.nix` with nixpkgs stubbed out (`mkDerivation`
/// returns its attributes, `closureInfo` a fixed path): the `isoImage.*` options become the
/// spec, the mksquashfs-built `/nix-store.squashfs` is dropped from the contents, the closure
/// comes from closureInfo, and the command accepts the spec. `isoImage.isoforge.cacheDir`
/// (`@CACHE@`) becomes the derivation's `ISOFORGE_CACHE` and nothing else.
const MODULE_STUB: &str = r#"let
  stubs = {
    lib = { };
    stdenvNoCC.mkDerivation = a: a;
    closureInfo = { rootPaths }: "/nix/store/00000000000000000000000000000000-closure-info";
  };
  pkgs = {
    callPackage = path: extra: import path (stubs // extra);
    syslinux = "/nix/store/11111111111111111111111111111111-syslinux";
  };
  lib = {
    mkForce = x: x;
    optionalAttrs = c: a: if c then a else { };
    mkOption = o: o;
    types = { nullOr = t: { nullOr = t; }; str = "str"; };
  };
  config.isoImage = {
    isoName = "nixos.iso"; compressImage = true; volumeID = "NIXOS_ISO";
    squashfsCompression = "zstd -Xcompression-level 19";
    contents = [ { source = "/tmp/k"; target = "/boot/bzImage"; } { source = "/tmp/sq"; target = "/nix-store.squashfs"; } ];
    storeContents = [ "/nix/store/22222222222222222222222222222222-toplevel" ];
    makeBiosBootable = true; makeUsbBootable = true; makeEfiBootable = true;
    isoforge.cacheDir = @CACHE@;
  };
  module = import @MODULE@ { isoforge = "/nix/store/33333333333333333333333333333333-isoforge"; };
  evaluated = module { inherit config lib pkgs; };
in evaluated.config.system.build.isoImage // { cacheOption = evaluated.options.isoImage.isoforge.cacheDir; }
"#;

#[test]
fn module_and_make_iso_image_give_a_spec_the_cli_accepts() {
    if !have_nix() {
        return;
    }
    let dir = support::tempdir();
    let stub = |cache: &str| {
        let expr = dir.path().join("stub.nix");
        write_file(
            &expr,
            MODULE_STUB
                .replace("@MODULE@", &repo().join("nix/module.nix").display().to_string())
                .replace("@CACHE@", cache),
        );
        expr
    };
    let expr = stub("null");
    let out = run_ok_stdout(&mut nix_eval(&format!(
        "let d = import {}; in {{ inherit (d) spec name buildCommand; }}",
        expr.display()
    )));
    // Off by default: the option defaults to null and a null adds nothing to the derivation.
    let off = run_ok_stdout(&mut nix_eval(&format!(
        "let d = import {}; in [ (d ? ISOFORGE_CACHE) d.cacheOption.default d.cacheOption.example ]",
        expr.display()
    )));
    assert_eq!(off.trim(), r#"[false,null,"/var/cache/isoforge"]"#);
    // Set: ISOFORGE_CACHE in the builder's environment, the spec unchanged.
    let on = run_ok_stdout(&mut nix_eval(&format!(
        "let d = import {}; in {{ inherit (d) spec name buildCommand ISOFORGE_CACHE; }}",
        stub(r#""/var/cache/isoforge""#).display()
    )));
    assert_eq!(on.replacen(r#""ISOFORGE_CACHE":"/var/cache/isoforge","#, "", 1), out, "{on}");
    // A path literal (it would be copied into the store) or a relative path is refused.
    for bad in ["/var/cache/isoforge", r#""var/cache/isoforge""#] {
        let o = nix_eval(&format!("(import {}).ISOFORGE_CACHE", stub(bad).display())).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad}: {err}");
        assert!(
            err.contains("makeIsoImage's cache must be null or an absolute path as a string"),
            "{bad}: {err}"
        );
    }
    assert!(out.contains(r#""name":"nixos.iso""#), "{out}");
    assert!(out.contains("isoforge build --spec"), "{out}");
    // The spec is a JSON string inside the JSON answer.
    let start = out.find(r#""spec":""#).unwrap() + 8;
    let end = out.rfind('"').unwrap();
    let spec = out[start..end].replace(r#"\""#, "\"");
    for needle in [
        r#""squashfsContents":"/nix/store/00000000000000000000000000000000-closure-info""#,
        r#""efiBootImage":"boot/efi.img""#,
        r#""isohybridMbrImage":"/nix/store/11111111111111111111111111111111-syslinux/share/syslinux/isohdpfx.bin""#,
        r#""sortWeights":{"/isolinux":1}"#,
    ] {
        assert!(spec.contains(needle), "{needle} not in {spec}");
    }
    assert!(!spec.contains("nix-store.squashfs"), "{spec}");
    let file = dir.path().join("spec.json");
    write_file(&file, &spec);
    // The spec parses; the build then fails on the first missing host path, the stub kernel
    // /tmp/k (the stubs are not real), not on a key.
    let o = isoforge()
        .args(["build", "--spec"])
        .arg(&file)
        .arg("-o")
        .arg(dir.path().join("x.iso"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(
        err,
        format!(
            "isoforge: error: building {}: cannot read /tmp/k: No such file or directory (os error 2)\n",
            dir.path().join("x.iso").display()
        )
    );
}

#[test]
fn spec_errors_name_the_key() {
    let dir = support::tempdir();
    let spec = dir.path().join("bad.json");
    let iso = dir.path().join("bad.iso");
    for (json, message) in [
        (
            r#"{"volumeID": "X", "isoNmae": "x.iso"}"#,
            r#"unknown key "isoNmae" in the spec (known keys: isoName, volumeID, contents, squashfsContents, squashfsCompression, bootable, bootImage, efiBootable, efiBootImage, usbBootable, isohybridMbrImage, compressImage, efiDir, layout, epoch, gptDiskGuid, sortWeights, threads, sha256, blockSize, efiSerial)"#,
        ),
        (
            r#"{"volumeID": "X", "compressImage": "yes"}"#,
            r#"spec key "compressImage": expected a boolean, found string "yes""#,
        ),
        (r#"{"volumeID": ["X"]}"#, r#"spec key "volumeID": expected a string, found a list"#),
        (r#"{"isoName": "x.iso"}"#, r#"spec key "volumeID" is required"#),
        (
            r#"{"volumeID": "X", "contents": [{"source": "/", "target": "/", "mode": 1}]}"#,
            r#"spec key "contents[0]": expected { source = path; target = string; }, found unknown field `mode`, expected `source` or `target`"#,
        ),
        (
            r#"{"volumeID": "X", "squashfsCompression": "lzo"}"#,
            r#"spec key "squashfsCompression": unknown compression "lzo": use zstd, xz, gzip, lz4, or null for none"#,
        ),
        (
            r#"{"volumeID": "X", "sortWeights": [1]}"#,
            r#"spec key "sortWeights": expected an attribute set of whole numbers, found a list"#,
        ),
    ] {
        write_file(&spec, json);
        let out = isoforge().args(["build", "--spec"]).arg(&spec).arg("-o").arg(&iso).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{json}: {err}");
        assert_eq!(err, format!("isoforge: error: spec {}: {message}\n", spec.display()), "{json}");
        assert!(!iso.exists());
    }
    // Without --spec the old required flags stay required.
    let out = isoforge().args(["build", "--volume-id", "X"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The derivation's results.
struct Built {
    /// The image in the derivation's output.
    image: PathBuf,
    /// What the boot checks.
    spec: BootSpec,
}

const LABEL: &str = "IsoForge-Nix.7";
const ISO_NAME: &str = "isoforge-nix-test.iso";

/// What every derivation of these tests starts with: busybox from the store (`bb`, `sh`), a
/// closure `payload` that refers to busybox, and `iso NAME SPEC ENV`, a derivation whose builder
/// runs the isoforge under test on `nix/spec.nix` applied to SPEC (nixpkgs-style arguments),
/// the squashfs from payload's closure (the exportReferencesGraph file `closure`), with the
/// attributes ENV added. [`derivations`] fills in the `@...@` store paths.
const PRELUDE: &str = r#"
let
  bb = builtins.storePath "@BUSYBOX@";
  sh = "${bb}/bin/busybox";
  payload = builtins.derivation {
    name = "isoforge-nix-test-payload";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-e" "-c" "${sh} mkdir -p $out/share; echo 'payload using ${sh}' > $out/share/hello.txt" ];
  };
  iso = name: spec: env: builtins.derivation ({
    inherit name;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-e" "-c" "${builtins.storePath "@ISOFORGE@"}/bin/isoforge build --spec $specPath --out-dir $out" ];
    PATH = "${bb}/bin";
    spec = builtins.toJSON (import @SPEC_NIX@ spec);
    passAsFile = [ "spec" ];
    exportReferencesGraph = [ "closure" payload ];
  } // env);
in
"#;

/// The Nix expression [`PRELUDE`] `body`, with the store paths of `tools`, `nix/spec.nix` and
/// [`ISO_NAME`] filled in.
fn derivations(tools: &StoreTools, body: &str) -> String {
    format!("{PRELUDE}{body}")
        .replace("@BUSYBOX@", &tools.busybox)
        .replace("@ISOFORGE@", &tools.isoforge)
        .replace("@SPEC_NIX@", &repo().join("nix/spec.nix").display().to_string())
        .replace("@ISO_NAME@", ISO_NAME)
}

/// The image derivation (after [`PRELUDE`]): isolinux boot, a prebuilt `efi.img` in the
/// contents named by `efiBootImage`, `usbBootable` with the isohybrid MBR; `again` is the same
/// under another name.
const EXPR: &str = r#"
let
  image = name: iso name {
    isoName = "@ISO_NAME@";
    volumeID = "@LABEL@";
    contents = [ { source = builtins.storePath "@TREE@"; target = "/"; } ];
    squashfsContents = "closure";
    squashfsCompression = "zstd -Xcompression-level 19";
    bootable = true;
    bootImage = "/isolinux/isolinux.bin";
    efiBootable = true;
    efiBootImage = "boot/efi.img";
    usbBootable = true;
    isohybridMbrImage = builtins.storePath "@MBR@";
    sortWeights = { "/isolinux" = 1; };
    sha256 = true;
  } { };
in { inherit payload; image = image "isoforge-nix-test-image"; again = image "isoforge-nix-test-image-again"; }
"#;

fn add_to_store(path: &Path) -> String {
    run_ok_stdout(nix("nix-store").arg("--add").arg(path)).trim().to_string()
}

fn built() -> Option<&'static Built> {
    static B: OnceLock<Option<Built>> = OnceLock::new();
    B.get_or_init(build).as_ref()
}

const BUSYBOX: &str = "/bin/busybox";

/// The builder's tools in the store.
struct StoreTools {
    /// A store path holding `bin/busybox`.
    busybox: String,
    /// A store path holding `bin/isoforge`, the binary under test.
    isoforge: String,
}

/// Adds busybox and the isoforge under test to the machine's store, through scratch copies
/// in `dir` (emptied first), or `None` after a skip note when Nix, root or busybox is missing.
fn store_tools(dir: &Path) -> Option<StoreTools> {
    if !have_nix() {
        return None;
    }
    let uid = run_ok_stdout(Command::new("id").arg("-u"));
    if uid.trim() != "0" {
        skip("building in /nix/store needs root");
        return None;
    }
    if !Path::new(BUSYBOX).exists() {
        skip("/bin/busybox not found (Debian package busybox-static)");
        return None;
    }
    for d in ["/nix/store", "/nix/var/nix"] {
        mkdir_p(Path::new(d));
    }
    let _ = fs::remove_dir_all(dir);
    // busybox picks its applet from argv[0]: the builder must be called .../busybox.
    let bb_dir = dir.join("isoforge-test-busybox");
    mkdir_p(&bb_dir.join("bin"));
    fs::copy(BUSYBOX, bb_dir.join("bin/busybox")).unwrap();
    let busybox = add_to_store(&bb_dir);
    // The isoforge binary under test (dynamically linked against the host's glibc, which the
    // unsandboxed builder can load).
    let bin_dir = dir.join("isoforge-test-isoforge");
    mkdir_p(&bin_dir.join("bin"));
    fs::copy(isoforge_bin(), bin_dir.join("bin/isoforge")).unwrap();
    let isoforge = add_to_store(&bin_dir);
    Some(StoreTools { busybox, isoforge })
}

fn build() -> Option<Built> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nix-derivation");
    let tools = store_tools(&dir)?;
    let bb = tools.busybox.as_str();
    let busybox = Path::new(BUSYBOX);
    let kit = bootkit::bootkit(LABEL)?;
    let mbr = add_to_store(&kit.isohdpfx);
    let expr_file = dir.join("image.nix");
    let expr = |tree: &str| {
        derivations(&tools, EXPR).replace("@LABEL@", LABEL).replace("@MBR@", &mbr).replace("@TREE@", tree)
    };
    // The payload first: the boot checks name files inside it.
    write_file(&expr_file, expr("/nix/store/00000000000000000000000000000000-unused"));
    let payload = run_ok_stdout(nix("nix-build").arg(&expr_file).args(["--no-out-link", "-A", "payload"]));
    let payload = payload.trim();
    let base = |p: &str| p.trim_start_matches("/nix/store/").to_string();
    let hello = Path::new(payload).join("share/hello.txt");
    let spec = BootSpec::new(LABEL)
        .check("/boot/bzImage", Some(&sha256_file(&kit.kernel)))
        .squashfs("/nix-store.squashfs")
        .sqcheck(&format!("/{}/share/hello.txt", base(payload)), Some(&sha256_file(&hello)))
        .sqcheck(&format!("/{}/bin/busybox", base(bb)), Some(&sha256_file(busybox)))
        .sqcheck("/nix-path-registration", None);
    let tree = dir.join("isoforge-test-iso-tree");
    mkdir_p(&tree);
    bootkit::write_iso_tree(&kit, &spec, &tree);
    // nixpkgs' way: a prebuilt FAT image among the contents, named by efiBootImage.
    if !bootkit::efi_img(&kit, &tree.join("boot/efi.img")) {
        return None;
    }
    let tree_store = add_to_store(&tree);
    write_file(&expr_file, expr(&tree_store));
    let out = run_ok_stdout(nix("nix-build").arg(&expr_file).args(["--no-out-link", "-A", "image"]));
    let out = PathBuf::from(out.trim());

    // The nixpkgs $out layout.
    let image = out.join("iso").join(ISO_NAME);
    let products = fs::read_to_string(out.join("nix-support/hydra-build-products")).unwrap();
    assert_eq!(products, format!("file iso {}\n", image.display()));
    let current =
        run_ok_stdout(nix("nix-instantiate").args(["--eval", "--json", "-E", "builtins.currentSystem"]));
    let system = fs::read_to_string(out.join("nix-support/system")).unwrap();
    assert_eq!(format!("\"{}\"", system.trim_end()), current.trim());
    let sums = fs::read_to_string(out.join("iso").join(format!("{ISO_NAME}.sha256"))).unwrap();
    let sha = sha256_file(&image);
    assert_eq!(sums, format!("{sha}  {ISO_NAME}\n"));

    // Reproducible: `--check` builds again and compares the output with the first build;
    // a differently named derivation gives the same image bytes.
    run(nix("nix-build").arg(&expr_file).args(["--no-out-link", "--check", "-A", "image"]));
    let again = run_ok_stdout(nix("nix-build").arg(&expr_file).args(["--no-out-link", "-A", "again"]));
    assert_eq!(sha256_file(&Path::new(again.trim()).join("iso").join(ISO_NAME)), sha);

    // The closure reached the squashfs: both store paths, and the registration.
    if tool("bsdtar") && tool("unsquashfs") {
        let sq = dir.join("store.squashfs");
        let bytes = run(Command::new("bsdtar").arg("-xOf").arg(&image).arg("nix-store.squashfs")).stdout;
        fs::write(&sq, bytes).unwrap();
        let list = run_ok_stdout(Command::new("unsquashfs").args(["-l", "-d", ""]).arg(&sq));
        for p in [payload, bb] {
            assert!(list.lines().any(|l| l == format!("/{}", base(p))), "{p} not in the squashfs:\n{list}");
        }
        let reg = run(Command::new("unsquashfs").arg("-cat").arg(&sq).arg("nix-path-registration")).stdout;
        let reg = String::from_utf8(reg).unwrap();
        assert!(reg.lines().any(|l| l == payload) && reg.lines().any(|l| l == bb), "{reg}");
    }
    Some(Built { image, spec })
}

fn boot(firmware: Firmware, media: Media) {
    if !qemu::available(firmware) {
        return;
    }
    let Some(b) = built() else { return };
    qemu::expect_boot(&b.image, firmware, media, &b.spec.marker());
}

/// Builds the derivation (the first call) and boots its image with SeaBIOS from a CD-ROM.
#[test]
fn derivation_image_boots_bios_cdrom() {
    boot(Firmware::Bios, Media::Cdrom);
}

/// The same image with OVMF from a disk: the prebuilt efi.img as the GPT's EFI partition.
#[test]
fn derivation_image_boots_uefi_disk() {
    boot(Firmware::Uefi, Media::Disk);
}

/// The spec and the flags build the same bytes; a prebuilt EFI image among the contents named
/// by `efiBootImage` (nixpkgs' way) gives the same image as `efiDir`/`--efi-dir` building it:
/// the same El Torito EFI entry and the same GPT EFI partition.
#[test]
fn spec_equals_flags_and_prebuilt_efi_image_equals_built() {
    if !tool("bsdtar") {
        return;
    }
    let dir = support::tempdir();
    let d = dir.path();
    write_file(
        &d.join("efi/EFI/BOOT/BOOTX64.EFI"),
        (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>(),
    );
    write_file(&d.join("tree/hello.txt"), "hello\n");
    let flags = d.join("flags.iso");
    run(isoforge()
        .args(["build", "-o"])
        .arg(&flags)
        .args(["--volume-id", "EFI-TEST", "--graft"])
        .arg(format!("/={}", d.join("tree").display()))
        .arg("--efi-dir")
        .arg(d.join("efi")));
    let img = d.join("prebuilt/efi.img");
    mkdir_p(img.parent().unwrap());
    fs::write(&img, run(Command::new("bsdtar").arg("-xOf").arg(&flags).arg("boot/efi.img")).stdout).unwrap();
    let tree = d.join("tree").display().to_string();
    for (name, json) in [
        (
            "built",
            format!(
                r#"{{"volumeID": "EFI-TEST", "contents": [{{"source": "{tree}", "target": "/"}}], "efiBootable": true, "efiDir": "{}"}}"#,
                d.join("efi").display()
            ),
        ),
        (
            "prebuilt",
            format!(
                r#"{{"volumeID": "EFI-TEST", "contents": [{{"source": "{tree}", "target": "/"}}, {{"source": "{}", "target": "/boot/efi.img"}}],
                    "efiBootable": true, "efiBootImage": "boot/efi.img"}}"#,
                img.display()
            ),
        ),
    ] {
        let spec = d.join(format!("{name}.json"));
        write_file(&spec, json);
        let iso = d.join(format!("{name}.iso"));
        run(isoforge().args(["build", "--spec"]).arg(&spec).arg("-o").arg(&iso));
        assert_eq!(sha256_file(&iso), sha256_file(&flags), "{name}");
    }
}

/// The block cache in a Nix build (issue 12), after [`PRELUDE`]: `payload` in the squashfs at
/// zstd 19, by a derivation that passes `ISOFORGE_CACHE` in its environment as
/// `nix/make-iso-image.nix` does (`cache` argument), and by one without a cache.
const CACHE_EXPR: &str = r#"
let
  spec = {
    isoName = "@ISO_NAME@";
    volumeID = "ISOFORGE-CACHE";
    contents = [ { source = "${payload}/share"; target = "/share"; } ];
    squashfsContents = "closure";
    squashfsCompression = "zstd -Xcompression-level 19";
    sha256 = true;
  };
in {
  cached = iso "isoforge-nix-test-cached-image" spec { ISOFORGE_CACHE = "@CACHE@"; };
  uncached = iso "isoforge-nix-test-uncached-image" spec { };
}
"#;

/// The cache's entries: the files under `DIR/blocks` that are not temporaries.
fn cache_entries(cache: &Path) -> usize {
    let mut n = 0;
    let mut todo = vec![cache.join("blocks")];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                n += 1;
            }
        }
    }
    n
}

/// The cache's `builds.log`, one JSON object per build.
fn cache_log(cache: &Path) -> Vec<serde_json::Value> {
    let log = cache.join("builds.log");
    let text = fs::read_to_string(&log).unwrap_or_else(|e| panic!("read {}: {e}", log.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} in {}: {e}", log.display())))
        .collect()
}

/// The counter `key` of a `builds.log` record.
fn counter(record: &serde_json::Value, key: &str) -> u64 {
    record[key].as_u64().unwrap_or_else(|| panic!("no counter {key:?} in {record}"))
}

/// A derivation whose builder gets `ISOFORGE_CACHE` (visible because the tests build with
/// `sandbox = false`; a sandboxed build needs `extra-sandbox-paths`): built with an empty cache,
/// it fills the cache; `nix-build --check` then rebuilds it with the warm cache and finds the
/// same bytes, every block taken from the cache (`builds.log`) and none compressed, no warning; a derivation without a
/// cache gives the same image.
#[test]
fn derivation_with_a_block_cache_passes_check_with_the_warm_cache() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nix-cache-derivation");
    let Some(tools) = store_tools(&dir) else { return };
    let cache = dir.join("cache");
    mkdir_p(&cache);
    let expr_file = dir.join("image.nix");
    write_file(&expr_file, derivations(&tools, CACHE_EXPR).replace("@CACHE@", &cache.display().to_string()));
    let build = |attr: &str, check: bool| -> String {
        let mut c = nix("nix-build");
        c.arg(&expr_file).args(["--no-out-link", "-A", attr]);
        if check {
            c.arg("--check");
        }
        String::from_utf8_lossy(&run(&mut c).stderr).into_owned()
    };

    // The first build with the empty cache. The store may hold the output from an earlier run
    // (its derivation names this same cache directory): then `--check` is that build.
    let drv = run_ok_stdout(nix("nix-instantiate").arg(&expr_file).args(["-A", "cached"]));
    let out = run_ok_stdout(nix("nix-store").args(["-q", "--outputs"]).arg(drv.trim()));
    let out = PathBuf::from(out.trim());
    let valid = nix("nix-store").arg("--check-validity").arg(&out).output().unwrap().status.success();
    let stderr = build("cached", valid);
    assert!(!stderr.contains("isoforge: warning"), "{stderr}");
    assert!(cache.join("blocks").is_dir(), "the build did not use the cache {}:\n{stderr}", cache.display());
    let entries = cache_entries(&cache);
    assert!(entries > 0, "the first build stored no block in {}:\n{stderr}", cache.display());
    assert!(cache.join("CACHEDIR.TAG").is_file());
    let log = cache_log(&cache);
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(counter(&log[0], "stores") > 0, "{}", log[0]);
    assert_eq!(counter(&log[0], "corrupt"), 0, "{}", log[0]);
    let image = out.join("iso").join(ISO_NAME);
    let sha = sha256_file(&image);

    // `--check` with the warm cache: the same bytes (else nix-build fails), nothing compressed.
    let stderr = build("cached", true);
    let log = cache_log(&cache);
    assert_eq!(log.len(), 2, "{log:?}");
    let warm = &log[1];
    let lookups = counter(warm, "lookups");
    assert!(lookups > 0, "{warm}");
    assert_eq!(counter(warm, "hits"), lookups, "a block of the unchanged closure missed: {warm}");
    assert_eq!(counter(warm, "misses"), 0, "{warm}");
    assert_eq!(counter(warm, "stores"), 0, "{warm}");
    assert_eq!(cache_entries(&cache), entries);
    // A healthy cache gives no warning (printed without -v, into the build log).
    assert!(!stderr.contains("isoforge: warning"), "{stderr}");
    assert_eq!(sha256_file(&image), sha);

    // Without a cache: the same image.
    let plain = run_ok_stdout(nix("nix-build").arg(&expr_file).args(["--no-out-link", "-A", "uncached"]));
    assert_eq!(sha256_file(&Path::new(plain.trim()).join("iso").join(ISO_NAME)), sha);
}

/// Issue 14: a netboot derivation in plain `builtins.derivation`, its command line from
/// `nix/netboot-args.nix`, the isoforge under test as the builder, the closure through
/// `exportReferencesGraph`, the boot kit's kernel and initrd as the inputs.
const NETBOOT_EXPR: &str = r#"
let
  bb = builtins.storePath "@BUSYBOX@";
  sh = "${bb}/bin/busybox";
  payload = builtins.derivation {
    name = "isoforge-nix-test-netboot-payload";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-e" "-c" "${sh} mkdir -p $out/share; echo 'netboot payload using ${sh}' > $out/share/hello.txt" ];
  };
  netboot = builtins.derivation {
    name = "isoforge-nix-test-netboot";
    system = builtins.currentSystem;
    builder = "${builtins.storePath "@ISOFORGE@"}/bin/isoforge";
    args = import @NETBOOT_ARGS@ {
      kernel = "${builtins.storePath "@KERNEL@"}/file";
      initrd = "${builtins.storePath "@INITRD@"}/file";
      init = "${payload}/init";
      closure = "closure";
      kernelParams = [ @PARAMS@ ];
      compressor = "zstd";
    } ++ [ "--out-dir" (builtins.placeholder "out") ];
    exportReferencesGraph = [ "closure" payload ];
  };
in { inherit payload netboot; }
"#;

/// The netboot derivation builds into netboot.nix's layout, passes `nix-build --check` (a
/// second build gives the same bytes), and its kernel and initrd boot (SeaBIOS, direct kernel
/// boot) to the store check of the payload's file inside `/nix-store.squashfs`.
#[test]
fn netboot_derivation_passes_check_and_boots() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nix-netboot-derivation");
    let Some(tools) = store_tools(&dir) else { return };
    let Some(kit) = bootkit::assets() else {
        skip("no boot assets (run `bash .ci/boot-assets.sh target/boot-assets` or set ISOFORGE_BOOT_ASSETS)");
        return;
    };
    let single = |p: &Path, name: &str| {
        let d = dir.join(name);
        mkdir_p(&d);
        fs::copy(p, d.join("file")).unwrap();
        format!("{}/file", add_to_store(&d))
    };
    let kernel = single(&kit.kernel, "isoforge-test-kernel");
    let initrd = single(&kit.initrd, "isoforge-test-initrd");
    let expr_file = dir.join("netboot.nix");
    let expr = |params: &str| {
        NETBOOT_EXPR
            .replace("@BUSYBOX@", &tools.busybox)
            .replace("@ISOFORGE@", &tools.isoforge)
            .replace("@NETBOOT_ARGS@", &repo().join("nix/netboot-args.nix").display().to_string())
            .replace("@KERNEL@", kernel.trim_end_matches("/file"))
            .replace("@INITRD@", initrd.trim_end_matches("/file"))
            .replace("@PARAMS@", params)
    };
    write_file(&expr_file, expr(""));
    let payload = run_ok_stdout(nix("nix-build").arg(&expr_file).args(["--no-out-link", "-A", "payload"]));
    let payload = payload.trim().to_string();
    let hello = Path::new(&payload).join("share/hello.txt");
    let base = payload.trim_start_matches("/nix/store");
    let params = [
        "console=ttyS0,115200".to_string(),
        "panic=-1".into(),
        "isoforge.label=NIXNET".into(),
        "isoforge.netboot=/nix-store.squashfs".into(),
        format!("isoforge.sqcheck={base}/share/hello.txt:{}", sha256_file(&hello)),
    ];
    let quoted: Vec<String> = params.iter().map(|p| format!("\"{p}\"")).collect();
    write_file(&expr_file, expr(&quoted.join(" ")));
    let out = run_ok_stdout(nix("nix-build").arg(&expr_file).args(["--no-out-link", "-A", "netboot"]));
    let out = PathBuf::from(out.trim());
    let products = fs::read_to_string(out.join("nix-support/hydra-build-products")).unwrap();
    assert_eq!(
        products,
        format!(
            "file bzImage {0}/bzImage\nfile initrd {0}/initrd\nfile ipxe {0}/netboot.ipxe\n",
            out.display()
        )
    );
    let script = fs::read_to_string(out.join("netboot.ipxe")).unwrap();
    assert!(
        script.contains(&format!(
            "kernel bzImage init={payload}/init initrd=initrd {} ${{cmdline}}\n",
            params.join(" ")
        )),
        "{script}"
    );
    assert_eq!(sha256_file(&out.join("bzImage")), sha256_file(&kit.kernel));
    // Reproducible: --check builds again and compares.
    run(nix("nix-build").arg(&expr_file).args(["--no-out-link", "--check", "-A", "netboot"]));
    if !qemu::available(Firmware::Bios) {
        return;
    }
    let args: Vec<std::ffi::OsString> = vec![
        "-kernel".into(),
        out.join("bzImage").into(),
        "-initrd".into(),
        out.join("initrd").into(),
        "-append".into(),
        params.join(" ").into(),
    ];
    let log =
        qemu::boot_args("nix-netboot", Firmware::Bios, &args, "ISOFORGE-BOOT-OK NIXNET", qemu::BOOT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(log.contains("ISOFORGE-DEVICE initramfs"), "{log}");
}

/// `nix/netboot-module.nix` and `nix/make-netboot.nix` with nixpkgs stubbed out as above: the
/// NixOS options (kernel, initrd, init, kernelParams, compressor, storeContents) become the
/// `isoforge netboot` command of `system.build.isoforgeNetboot`, and `netbootRamdisk` and
/// `netbootIpxeScript` point at it.
const NETBOOT_MODULE_STUB: &str = r#"let
  stubs = {
    lib.escapeShellArgs = args: builtins.concatStringsSep " " (map (a: "'" + a + "'") args);
    stdenvNoCC.mkDerivation = a: a;
    closureInfo = { rootPaths }: "/nix/store/00000000000000000000000000000000-closure-info";
  };
  pkgs.callPackage = path: extra: import path (stubs // extra);
  lib = {
    mkForce = x: x;
    mkIf = c: x: if c then x else { };
    mkOption = o: o;
    types = { nullOr = t: { nullOr = t; }; str = "str"; bool = "bool"; };
  };
  config = {
    netboot.isoforge = { enable = true; compression = "xz"; };
    netboot.storeContents = [ "/nix/store/22222222222222222222222222222222-toplevel" ];
    system.nixos.label = "test";
    system.build.kernel = "/nix/store/44444444444444444444444444444444-linux";
    system.boot.loader.kernelFile = "bzImage";
    system.build.initialRamdisk = "/nix/store/55555555555555555555555555555555-initrd";
    system.boot.loader.initrdFile = "initrd";
    system.build.toplevel = "/nix/store/22222222222222222222222222222222-toplevel";
    system.build.isoforgeNetboot = evaluated.config.system.build.isoforgeNetboot;
    boot.kernelParams = [ "console=ttyS0" "loglevel=4" ];
    boot.initrd.compressor = "gzip";
  };
  module = import @MODULE@ { isoforge = "/nix/store/33333333333333333333333333333333-isoforge"; };
  evaluated = module { inherit config lib pkgs; };
  b = evaluated.config.system.build;
in { inherit (b.isoforgeNetboot) name buildCommand; same = b.netbootRamdisk == b.isoforgeNetboot && b.netbootIpxeScript == b.isoforgeNetboot; }
"#;

#[test]
fn netboot_module_gives_the_command() {
    if !have_nix() {
        return;
    }
    let dir = support::tempdir();
    let expr = dir.path().join("stub.nix");
    write_file(
        &expr,
        NETBOOT_MODULE_STUB.replace("@MODULE@", &repo().join("nix/netboot-module.nix").display().to_string()),
    );
    let out = run_ok_stdout(nix("nix-instantiate").args(["--eval", "--strict", "--json"]).arg(&expr));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "netboot-test");
    assert_eq!(v["same"], true, "{out}");
    let cmd = v["buildCommand"].as_str().unwrap();
    let want = "isoforge 'netboot' '--closure' '/nix/store/00000000000000000000000000000000-closure-info' \
                '--kernel' '/nix/store/44444444444444444444444444444444-linux/bzImage' \
                '--initrd' '/nix/store/55555555555555555555555555555555-initrd/initrd' \
                '--init' '/nix/store/22222222222222222222222222222222-toplevel/init' \
                '--cmdline' 'console=ttyS0 loglevel=4' '--initrd-compression' 'gzip' '--compression' 'xz' \
                --out-dir \"$out\" --threads \"$NIX_BUILD_CORES\"";
    assert_eq!(cmd.trim(), want);
    // The arguments parse: the command fails on the stub kernel, not on a flag.
    let args: Vec<String> = cmd
        .trim()
        .split(" --out-dir")
        .next()
        .unwrap()
        .split("' '")
        .map(|a| a.trim_start_matches("isoforge '").trim_matches('\'').to_string())
        .collect();
    let o = isoforge().args(&args).arg("--out-dir").arg(dir.path().join("out")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot read the kernel /nix/store/44444444444444444444444444444444-linux/bzImage"),
        "{err}"
    );
}
