# makeIsoImage: a drop-in for nixpkgs' nixos/lib/make-iso9660-image.nix that runs isoforge.
#
# Takes the same arguments (isoName, volumeID, contents, squashfsContents, squashfsCompression,
# bootable, bootImage, efiBootable, efiBootImage, usbBootable, isohybridMbrImage,
# compressImage) plus isoforge's own (see spec.nix), and produces the same $out layout:
# $out/iso/<isoName> (or .zst), $out/nix-support/hydra-build-products and .../system.
#
# squashfsContents is a list of store paths (roots, as nixpkgs takes them): their closure is
# computed with closureInfo, whose registration isoforge puts into the squashfs as is.
{
  lib,
  stdenvNoCC,
  closureInfo,
  isoforge,
}:
args@{
  isoName ? "cd.iso",
  squashfsContents ? [ ],
  ...
}:
let
  closure =
    if builtins.isList squashfsContents && squashfsContents != [ ] then
      "${closureInfo { rootPaths = squashfsContents; }}"
    else if builtins.isList squashfsContents then
      [ ]
    else
      squashfsContents;
  spec = import ./spec.nix (
    builtins.removeAttrs args [
      "lib"
      "stdenv"
      "stdenvNoCC"
      "closureInfo"
      "isoforge"
      "xorriso"
      "zstd"
      "syslinux"
      "libossp_uuid"
    ]
    // {
      squashfsContents = closure;
    }
  );
in
stdenvNoCC.mkDerivation {
  name = isoName;
  nativeBuildInputs = [ isoforge ];
  spec = builtins.toJSON spec;
  passAsFile = [ "spec" ];
  # stdenv sets SOURCE_DATE_EPOCH (315532800), which dates the image unless `epoch` is given.
  buildCommand = ''
    isoforge build --spec "$specPath" --out-dir "$out" --threads "$NIX_BUILD_CORES"
  '';
  meta.description = "ISO 9660 image ${isoName} built by isoforge";
}
