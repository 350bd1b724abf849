# makeNetboot: the netboot files of nixpkgs' installer/netboot/netboot.nix (netbootRamdisk's
# initrd, netbootIpxeScript's netboot.ipxe, the kernel) built by `isoforge netboot` in one
# derivation:
#
#   $out/bzImage  $out/initrd  $out/netboot.ipxe  $out/nix-support/hydra-build-products
#
# storeContents are the roots of the store squashfs (netboot.storeContents); their closure is
# computed with closureInfo, whose registration goes into the squashfs as is. The other
# arguments are those of netboot-args.nix (kernel, initrd, init, kernelParams, compressor,
# compressorLevel, compression, epoch). The squashfs streams into the initrd: no
# intermediate nix-store.squashfs derivation, and a store over 4 GiB fails the build with a
# message instead of giving an initrd without its store (nixpkgs #399607).
{
  lib,
  stdenvNoCC,
  closureInfo,
  isoforge,
}:
args@{
  name ? "netboot",
  storeContents,
  ...
}:
let
  closure = "${closureInfo { rootPaths = storeContents; }}";
  cli = import ./netboot-args.nix (
    builtins.removeAttrs args [ "name" "storeContents" ] // { inherit closure; }
  );
in
stdenvNoCC.mkDerivation {
  inherit name;
  nativeBuildInputs = [ isoforge ];
  # stdenv sets SOURCE_DATE_EPOCH (315532800), which dates the squashfs unless `epoch` is given.
  buildCommand = ''
    isoforge ${lib.escapeShellArgs cli} --out-dir "$out" --threads "$NIX_BUILD_CORES"
  '';
  meta.description = "NixOS netboot files built by isoforge";
}
