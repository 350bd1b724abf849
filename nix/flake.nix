# The flake lives in nix/ beside the rest of the Nix code; from a checkout of the repository:
#   nix build ./nix#isoforge
# (Nix copies the whole git repository, so ./.. is the workspace.)
{
  description = "isoforge: deterministic bootable hybrid ISO images from a Nix store closure";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        isoforge = pkgs.callPackage ./package.nix { };
        default = isoforge;
      });
      lib = forAll (pkgs: {
        makeIsoImage = pkgs.callPackage ./make-iso-image.nix { isoforge = self.packages.${pkgs.system}.isoforge; };
        makeNetboot = pkgs.callPackage ./make-netboot.nix { isoforge = self.packages.${pkgs.system}.isoforge; };
      });
      # System-independent: the pure spec generator.
      spec = import ./spec.nix;
      nixosModules.default =
        { pkgs, ... }@args:
        import ./module.nix { isoforge = self.packages.${pkgs.system}.isoforge; } args;
      nixosModules.netboot =
        { pkgs, ... }@args:
        import ./netboot-module.nix { isoforge = self.packages.${pkgs.system}.isoforge; } args;
    };
}
