# The `isoforge netboot` command line for the inputs of nixpkgs' installer/netboot/netboot.nix:
# a pure function (no nixpkgs, no builds) from those inputs to the list of arguments; the
# caller adds `--out-dir`. make-netboot.nix and the real-Nix test (tests/nix.rs) use it.
#
#   nix-instantiate --eval --strict --json -E 'import ./nix/netboot-args.nix {
#     kernel = "/k"; initrd = "/i"; init = "/s/init"; closure = "closure"; }'
{
  # The kernel image (system.build.kernel + "/bzImage").
  kernel,
  # The stage-1 initrd file (system.build.initialRamdisk + "/initrd").
  initrd,
  # The system's init (system.build.toplevel + "/init").
  init,
  # A closure file name (exportReferencesGraph), a closureInfo directory or a store-path list.
  closure,
  # boot.kernelParams.
  kernelParams ? [ ],
  # boot.initrd.compressor: "zstd" (NixOS's default), "gzip", "xz", or "cat" (none).
  compressor ? "zstd",
  # A level for zstd (1-22) or gzip (1-9); null: NixOS's default arguments (-10, -9).
  compressorLevel ? null,
  # The store squashfs's compression in isoforge's form (zstd:19, xz, gzip:9, lz4, none);
  # null: isoforge's default (zstd:19).
  compression ? null,
  epoch ? null,
  threads ? null,
  ...
}:
let
  known = {
    zstd = "zstd";
    gzip = "gzip";
    xz = "xz";
    cat = "none";
    none = "none";
  };
  algo =
    if builtins.isString compressor && builtins.hasAttr compressor known then
      known.${compressor}
    else
      throw "isoforge: netboot compressor must be one of zstd, gzip, xz, cat (none), not ${builtins.toJSON compressor}";
  initrdCompression = if compressorLevel == null then algo else "${algo}:${toString compressorLevel}";
  opt = flag: value: if value == null then [ ] else [ flag (toString value) ];
in
[
  "netboot"
  "--closure"
  closure
  "--kernel"
  "${kernel}"
  "--initrd"
  "${initrd}"
  "--init"
  init
  "--cmdline"
  (builtins.concatStringsSep " " kernelParams)
  "--initrd-compression"
  initrdCompression
]
++ opt "--compression" compression
++ opt "--epoch" epoch
++ opt "--threads" threads
