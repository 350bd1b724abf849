# Without flakes: `nix-build nix -A isoforge`, or in Nix code
#   (import ./nix { inherit pkgs; }).makeIsoImage { ... }
{
  pkgs ? import <nixpkgs> { },
}:
let
  isoforge = pkgs.callPackage ./package.nix { };
in
{
  inherit isoforge;
  makeIsoImage = pkgs.callPackage ./make-iso-image.nix { inherit isoforge; };
  # The pure spec generator: make-iso9660-image.nix's arguments -> the spec attribute set.
  spec = import ./spec.nix;
  nixosModule = import ./module.nix { inherit isoforge; };
  # The netboot counterparts: `isoforge netboot` as a derivation, and a module for netboot.nix.
  makeNetboot = pkgs.callPackage ./make-netboot.nix { inherit isoforge; };
  netbootArgs = import ./netboot-args.nix;
  netbootModule = import ./netboot-module.nix { inherit isoforge; };
}
