# A NixOS module that makes system.build.isoImage use isoforge instead of
# make-iso9660-image.nix (xorriso + mksquashfs). Import it next to nixpkgs'
# installer/cd-dvd/iso-image.nix:
#
#   imports = [
#     "${modulesPath}/installer/cd-dvd/iso-image.nix"
#     ((import /path/to/isoforge/nix { inherit pkgs; }).nixosModule)
#   ];
#
# or, with the flake, `isoforge.nixosModules.default`. The isoImage.* options keep their
# meaning. The store goes into isoforge's own squashfs (the closure of
# isoImage.storeContents), so the /nix-store.squashfs that iso-image.nix builds with
# mksquashfs is dropped from the contents.
{ isoforge }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.isoImage;
  makeIsoImage = pkgs.callPackage ./make-iso-image.nix { inherit isoforge; };
in
{
  system.build.isoImage = lib.mkForce (
    makeIsoImage (
      {
        inherit (cfg) isoName compressImage volumeID squashfsCompression;
        contents = builtins.filter (c: c.target != "/nix-store.squashfs") cfg.contents;
        squashfsContents = cfg.storeContents;
        bootable = cfg.makeBiosBootable;
        bootImage = "/isolinux/isolinux.bin";
        sortWeights = lib.optionalAttrs cfg.makeBiosBootable { "/isolinux" = 1; };
      }
      // lib.optionalAttrs (cfg.makeUsbBootable && cfg.makeBiosBootable) {
        usbBootable = true;
        isohybridMbrImage = "${pkgs.syslinux}/share/syslinux/isohdpfx.bin";
      }
      // lib.optionalAttrs cfg.makeEfiBootable {
        efiBootable = true;
        efiBootImage = "boot/efi.img";
      }
    )
  );
}
