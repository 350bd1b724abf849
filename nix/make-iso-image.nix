# makeIsoImage: a drop-in for nixpkgs' nixos/lib/make-iso9660-image.nix that runs isoforge.
#
# Takes the same arguments (isoName, volumeID, contents, squashfsContents, squashfsCompression,
# bootable, bootImage, efiBootable, efiBootImage, usbBootable, isohybridMbrImage,
# compressImage) plus isoforge's own (see spec.nix), and produces the same $out layout:
# $out/iso/<isoName> (or .zst), $out/nix-support/hydra-build-products and .../system.
#
# squashfsContents is a list of store paths (roots, as nixpkgs takes them): their closure is
# computed with closureInfo, whose registration isoforge puts into the squashfs as is.
#
# cache (off by default): the absolute path, as a string, of an isoforge block cache directory
# on the machine that builds, e.g. "/var/cache/isoforge". It reaches the builder as
# ISOFORGE_CACHE, so a rebuild only compresses the blocks that changed. The image's bytes never
# depend on it (`nix-build --check` finds identical bytes, and a build without a cache gives the
# same image); setting it only changes the derivation. The Nix sandbox hides the directory
# unless nix.conf makes it visible, the pattern nixpkgs uses for ccache:
#
#   install -d -m 2770 -g nixbld /var/cache/isoforge     # once, as root
#   extra-sandbox-paths = /var/cache/isoforge            # in /etc/nix/nix.conf
#
# (on NixOS: nix.settings.extra-sandbox-paths = [ "/var/cache/isoforge" ]; and
# systemd.tmpfiles.rules = [ "d /var/cache/isoforge 2770 root nixbld -" ];). A directory that
# is missing, hidden or not writable makes isoforge warn and build without it; it never fails
# the build. See docs/spec/nix.md.
{
  lib,
  stdenvNoCC,
  closureInfo,
  isoforge,
}:
args@{
  isoName ? "cd.iso",
  squashfsContents ? [ ],
  cache ? null,
  ...
}:
# A path literal (/var/cache/isoforge, unquoted) would be copied into the store.
assert
  cache == null
  || builtins.isString cache && builtins.substring 0 1 cache == "/"
  || throw "isoforge: makeIsoImage's cache must be null or an absolute path as a string, such as \"/var/cache/isoforge\" (a path literal would be copied into the store)";
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
      "cache"
    ]
    // {
      squashfsContents = closure;
    }
  );
in
stdenvNoCC.mkDerivation (
  {
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
  # isoforge build reads it as it would --cache; the output does not depend on it.
  // (if cache == null then { } else { ISOFORGE_CACHE = cache; })
)
