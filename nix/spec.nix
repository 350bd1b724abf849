# The isoforge spec for make-iso9660-image.nix's arguments: a pure function (no nixpkgs, no
# builds) from those arguments to the attribute set `isoforge build --spec` reads once it is
# written with builtins.toJSON. docs/spec-file.md documents every key.
#
#   nix-instantiate --eval --strict --json -E \
#     'import ./nix/spec.nix { volumeID = "DEMO"; contents = [ { source = "/tmp/t"; target = "/"; } ]; }'
#
# Arguments only nixpkgs' builder uses (syslinux, stdenv, xorriso, ...) are accepted and
# ignored; storeContents (store paths put into the ISO itself) is not supported.
{
  isoName ? "cd.iso",
  volumeID,
  contents ? [ ],
  # A closure file name (exportReferencesGraph, closureInfo directory, store-path list) or a
  # list of store paths that is already closed under references.
  squashfsContents ? [ ],
  squashfsCompression ? "xz -Xdict-size 100%",
  bootable ? false,
  bootImage ? "",
  efiBootable ? false,
  efiBootImage ? "",
  usbBootable ? false,
  isohybridMbrImage ? "",
  compressImage ? false,
  storeContents ? [ ],
  # isoforge's own keys; null leaves them out of the spec (isoforge's defaults apply).
  efiDir ? null,
  layout ? null,
  epoch ? null,
  gptDiskGuid ? null,
  sortWeights ? { },
  threads ? null,
  sha256 ? false,
  ...
}:
assert builtins.isList storeContents;
if storeContents != [ ] then
  throw "isoforge: storeContents (store paths in the ISO itself) is not supported; use squashfsContents"
else
  let
    optional = name: value: if value == null then { } else { ${name} = value; };
  in
  {
    inherit
      isoName
      volumeID
      squashfsContents
      squashfsCompression
      bootable
      bootImage
      efiBootable
      efiBootImage
      usbBootable
      isohybridMbrImage
      compressImage
      sortWeights
      sha256
      ;
    contents = map (c: { inherit (c) source target; }) contents;
  }
  // optional "efiDir" efiDir
  // optional "layout" layout
  // optional "epoch" epoch
  // optional "gptDiskGuid" gptDiskGuid
  // optional "threads" threads
