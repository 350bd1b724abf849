#!/usr/bin/env bash
# Regenerates the seed corpus of every fuzz target (see README.md beside this script).
# Usage: fuzz/seeds/make.sh [path/to/isoforge]   (default: builds it with cargo)
# Needs: xorriso, genisoimage, mkfs.fat (dosfstools), mtools, squashfs-tools, isolinux (isolinux.bin, isohdpfx.bin).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
isoforge="${1:-}"
if [ -z "$isoforge" ]; then
  cargo build -q --manifest-path "$root/Cargo.toml" -p isoforge-cli
  isoforge="$root/target/debug/isoforge"
fi
export SOURCE_DATE_EPOCH=315532800
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A tiny tree: a BIOS boot file, a small "kernel", a deep path, a long name, a symlink.
mkdir -p "$work/tree/isolinux" "$work/tree/boot" "$work/tree/a/b/c/d/e/f/g/h/i" "$work/efi/EFI/BOOT"
cp /usr/lib/ISOLINUX/isolinux.bin "$work/tree/isolinux/"
head -c 3000 /dev/zero | tr '\0' 'k' > "$work/tree/boot/bzImage"
echo deep > "$work/tree/a/b/c/d/e/f/g/h/i/file"
echo long > "$work/tree/a-rather-long-file-name-for-joliet-and-rock-ridge.txt"
ln -s boot/bzImage "$work/tree/kernel"
head -c 2000 /dev/zero | tr '\0' 'e' > "$work/efi/EFI/BOOT/BOOTX64.EFI"

mkdir -p "$here"/{iso,el_torito,part,fat,inspect,squashfs,cpio}
# Hand-made regression inputs (regression-*) are kept.
find "$here"/{iso,el_torito,part,fat,inspect,squashfs,cpio} -type f ! -name "regression-*" -delete

# FAT payloads: isoforge's and mkfs.fat's (FAT12; FAT32 needs >= 32 MiB, too big for a seed).
"$isoforge" fat --dir "$work/efi" -o "$here/fat/isoforge-64k.img" --size 64K >/dev/null
mkfs.fat --invariant -i 12345678 -n EFIBOOT -C "$here/fat/mkfs-fat-64k.img" 64 >/dev/null
mmd -i "$here/fat/mkfs-fat-64k.img" ::/EFI ::/EFI/BOOT
mcopy -i "$here/fat/mkfs-fat-64k.img" "$work/efi/EFI/BOOT/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

# Images: isoforge (layout none, and nixos), genisoimage (no padding), xorriso (nixpkgs flags).
"$isoforge" build -o "$work/none.iso" --volume-id SEED --graft "/=$work/tree" \
  --bios-boot isolinux/isolinux.bin --boot-catalog isolinux/boot.cat \
  --efi-dir "$work/efi" --efi-size 64K --layout none >/dev/null
"$isoforge" build -o "$work/nixos.iso" --volume-id SEED --graft "/=$work/tree" \
  --bios-boot isolinux/isolinux.bin --boot-catalog isolinux/boot.cat \
  --efi-dir "$work/efi" --efi-size 64K --isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin --layout nixos >/dev/null
"$isoforge" build -o "$work/gpt.iso" --volume-id SEED --graft "/=$work/tree" \
  --efi-dir "$work/efi" --efi-size 64K --layout gpt >/dev/null
cp "$here/fat/isoforge-64k.img" "$work/tree/efi.img"
genisoimage -quiet -no-pad -R -J -V SEED -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot \
  -boot-load-size 4 -boot-info-table -eltorito-alt-boot -e efi.img -no-emul-boot \
  -o "$work/genisoimage.iso" "$work/tree"
xorriso -volume_date all_file_dates =315532800 -as mkisofs -quiet -iso-level 3 -full-iso9660-filenames \
  -joliet -joliet-long -rational-rock -volid SEED -eltorito-boot isolinux/isolinux.bin \
  -eltorito-catalog isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
  -eltorito-alt-boot -e efi.img -no-emul-boot -isohybrid-gpt-basdat \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -output "$work/xorriso.iso" "$work/tree" 2>/dev/null

for i in none genisoimage; do cp "$work/$i.iso" "$here/iso/"; done
# The inspect target also runs on the iso seeds (.ci/fuzz.sh passes both directories).
# The hybrid images are 1 MiB (cylinder-aligned); the part target gets their first 32 KiB
# (MBR + primary GPT) and their last 32 KiB is left out, so its backup GPT is "missing".
for i in nixos gpt xorriso; do head -c 32768 "$work/$i.iso" > "$here/part/$i-system-area.bin"; done
cp "$work/nixos.iso" "$here/inspect/nixos.iso"
# Boot catalogs: the block the El Torito boot record points at.
for i in none genisoimage xorriso; do
  lba=$(od -An -tu4 -j $((17 * 2048 + 0x47)) -N4 "$work/$i.iso" | tr -d ' ')
  dd if="$work/$i.iso" of="$here/el_torito/$i-catalog.bin" bs=2048 skip="$lba" count=1 status=none
done

# Squashfs payloads: isoforge's store image of a tiny fake store (4 KiB blocks: a file of two
# blocks and a tail, a fragment, a symlink, nix-path-registration), and mksquashfs images of the
# same directory (gzip with fragments and an export table; xz without fragments or export table).
h1=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
h2=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
mkdir -p "$work/store/nix/store/$h1-app/bin" "$work/store/nix/store/$h2-lib/lib"
printf '#!/bin/sh\necho app\n' > "$work/store/nix/store/$h1-app/bin/app"
ln -s app "$work/store/nix/store/$h1-app/bin/alias"
head -c 9000 /dev/zero | tr '\0' 'l' > "$work/store/nix/store/$h2-lib/lib/libx.so"
printf '/nix/store/%s-app\n/nix/store/%s-lib\n' "$h1" "$h2" > "$work/closure"
"$isoforge" squashfs -o "$here/squashfs/isoforge-zstd.squashfs" --closure "$work/closure" \
  --store-root "$work/store" --block-size 4K --compression zstd:3 >/dev/null
mksquashfs "$work/store/nix/store" "$here/squashfs/mksquashfs-gzip.squashfs" -quiet -noappend \
  -comp gzip -b 4K -all-root >/dev/null
mksquashfs "$work/store/nix/store" "$here/squashfs/mksquashfs-xz.squashfs" -quiet -noappend \
  -comp xz -b 4K -no-fragments -no-exports -all-root >/dev/null
# A store image: the whole-image target reads the squashfs inside it.
"$isoforge" build -o "$here/inspect/store.iso" --volume-id SEED --closure "$work/closure" \
  --store-root "$work/store" --block-size 4K --compression zstd:3 >/dev/null
# Netboot initrds: a one-file GNU cpio stage 1, then isoforge's store segment of the same store
# in each compression (the kernel is any file with "HdrS" at 0x202).
echo stage1 > "$work/stage1.txt"
(cd "$work" && echo stage1.txt | cpio --quiet -o -H newc --reproducible) > "$work/stage1.cpio"
{ head -c 514 /dev/zero; printf HdrS; } > "$work/kernel"
for c in zstd gzip xz none; do
  "$isoforge" netboot --closure "$work/closure" --store-root "$work/store" --block-size 4K \
    --compression zstd:3 --kernel "$work/kernel" --initrd "$work/stage1.cpio" --init /init \
    --initrd-compression "$c" --out-dir "$work/netboot-$c" >/dev/null
  cp "$work/netboot-$c/initrd" "$here/cpio/netboot-$c.initrd"
done
ls -l "$here"/*/
