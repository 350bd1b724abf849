# A NixOS module that makes nixpkgs' installer/netboot/netboot.nix build its files with
# isoforge. Import it next to netboot.nix (or netboot-minimal.nix):
#
#   imports = [
#     "${modulesPath}/installer/netboot/netboot-minimal.nix"
#     ((import /path/to/isoforge/nix { inherit pkgs; }).netbootModule)
#   ];
#
# system.build.isoforgeNetboot is one directory holding bzImage, initrd (the stage-1 initrd
# with the store squashfs appended, compressed with boot.initrd.compressor) and netboot.ipxe;
# system.build.netbootRamdisk and system.build.netbootIpxeScript point at it, so
# `${netbootRamdisk}/initrd`, `${netbootIpxeScript}/netboot.ipxe` and kexecTree keep working.
# netboot.isoforge.enable = false restores nixpkgs' own builders.
{ isoforge }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.netboot.isoforge;
  makeNetboot = pkgs.callPackage ./make-netboot.nix { inherit isoforge; };
  compressor = config.boot.initrd.compressor;
in
{
  options.netboot.isoforge = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Build the netboot initrd and iPXE script with isoforge.";
    };
    compression = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "xz";
      description = ''
        The store squashfs's compression in isoforge's form (zstd:19, xz, gzip:9, lz4,
        none); null: isoforge's default, zstd:19.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    system.build.isoforgeNetboot = makeNetboot {
      name = "netboot-${config.system.nixos.label}";
      storeContents = config.netboot.storeContents;
      kernel = "${config.system.build.kernel}/${config.system.boot.loader.kernelFile}";
      initrd = "${config.system.build.initialRamdisk}/${config.system.boot.loader.initrdFile}";
      init = "${config.system.build.toplevel}/init";
      kernelParams = config.boot.kernelParams;
      # A compressor given as a function or a command cannot be mapped: zstd, as NixOS.
      compressor = if builtins.isString compressor && builtins.elem compressor [ "zstd" "gzip" "xz" "cat" ] then compressor else "zstd";
      inherit (cfg) compression;
    };
    system.build.netbootRamdisk = lib.mkForce config.system.build.isoforgeNetboot;
    system.build.netbootIpxeScript = lib.mkForce config.system.build.isoforgeNetboot;
  };
}
