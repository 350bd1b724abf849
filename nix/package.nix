# isoforge, built from this repository with nixpkgs' Rust tooling.
{ lib, rustPlatform }:
rustPlatform.buildRustPackage {
  pname = "isoforge";
  version = "0.1.0";
  src = lib.cleanSourceWith {
    src = ./..;
    # Build outputs and the boot-test assets are not sources.
    filter = path: type: !(type == "directory" && baseNameOf path == "target") && lib.cleanSourceFilter path type;
  };
  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [ "-p" "isoforge-cli" ];
  # The integration tests run xorriso, QEMU and a real Nix as root: CI runs them, not the build.
  cargoTestFlags = [ "--lib" ];
  meta = {
    description = "Deterministic bootable hybrid ISO images (NixOS live/installer kind) in one Rust process";
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "isoforge";
    platforms = lib.platforms.linux;
  };
}
