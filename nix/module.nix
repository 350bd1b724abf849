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
#
# isoImage.isoforge.cacheDir (null, off, by default) names an isoforge block cache directory on
# the machine that builds the image, so a rebuild only compresses the squashfs blocks that
# changed; the image's bytes are the same with or without it. The Nix sandbox hides it unless
# the build machine's nix.conf makes it visible (as nixpkgs does for ccache):
#
#   install -d -m 2770 -g nixbld /var/cache/isoforge     # once, as root
#   extra-sandbox-paths = /var/cache/isoforge            # in /etc/nix/nix.conf
#
# or, if the build machine runs NixOS:
#
#   nix.settings.extra-sandbox-paths = [ "/var/cache/isoforge" ];
#   systemd.tmpfiles.rules = [ "d /var/cache/isoforge 2770 root nixbld -" ];
#
# then isoImage.isoforge.cacheDir = "/var/cache/isoforge"; in the image's configuration.
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
  options.isoImage.isoforge.cacheDir = lib.mkOption {
    type = lib.types.nullOr lib.types.str;
    default = null;
    example = "/var/cache/isoforge";
    description = ''
      An isoforge block cache directory (an absolute path, as a string) on the machine that
      builds the image, passed to the build as ISOFORGE_CACHE: a rebuild then compresses only
      the squashfs blocks that changed. The image's bytes do not depend on it. The build
      machine must make the directory visible in the sandbox
      (`extra-sandbox-paths = /var/cache/isoforge` in nix.conf) and writable by the build users
      (`install -d -m 2770 -g nixbld /var/cache/isoforge`); otherwise isoforge warns and builds
      without it. null: no cache.
    '';
  };

  config.system.build.isoImage = lib.mkForce (
    makeIsoImage (
      {
        inherit (cfg) isoName compressImage volumeID squashfsCompression;
        cache = cfg.isoforge.cacheDir;
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
