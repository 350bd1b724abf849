#!/usr/bin/env bash
# Build the boot-test kit that the boot tests (tests/support/bootkit.rs) read:
#
#   OUT/vmlinuz        Debian's amd64 kernel (the one the metapackage linux-image-amd64 depends on),
#                      taken from `apt-get download` + `dpkg-deb -x`: never installed on this machine
#   OUT/initrd.img     a gzip'ed newc cpio: static busybox, fixtures/boot/init as /init and the
#                      kernel modules the init needs (listed below) with their dependencies
#   OUT/manifest.txt   what went in: package versions, module load order, sha256 of every output
#
# Usage: bash .ci/boot-assets.sh [OUT]   (default OUT: target/boot-assets)
# Needs: apt (with `apt-get update` done), dpkg-deb, busybox-static, cpio, gzip, coreutils.
# Idempotent: the kernel package is downloaded once per version; the initramfs is rebuilt only
# when one of its inputs (this script, the init, busybox, the kernel) changed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-target/boot-assets}
mkdir -p "$out"
out=$(cd "$out" && pwd)
init_src=$here/fixtures/boot/init

# Drivers the init loads (insmod, dependencies first). QEMU's default `pc` machine puts both the
# CD-ROM and the disk on the PIIX IDE controller, which ata_piix drives; sr_mod and sd_mod give
# /dev/sr0 and /dev/sda. ahci and virtio are there for tests that pick a q35 machine or virtio.
modules="ata_piix ahci sr_mod sd_mod virtio_pci virtio_blk virtio_scsi isofs loop squashfs"

for cmd in apt-get apt-cache dpkg-deb dpkg-query cpio gzip tsort sha256sum; do
	command -v "$cmd" >/dev/null || {
		echo "boot-assets: $cmd not found (Debian packages: apt, dpkg, cpio, gzip, coreutils)" >&2
		exit 1
	}
done

busybox=/bin/busybox
[ -x "$busybox" ] || { echo "boot-assets: $busybox missing: install busybox-static" >&2; exit 1; }
case "$(ldd "$busybox" 2>&1 || true)" in
*'not a dynamic executable'*) ;;
*)
	echo "boot-assets: $busybox is not static: install the Debian package busybox-static" >&2
	exit 1
	;;
esac

# Which kernel: the package the metapackage depends on, e.g. linux-image-6.1.0-56-amd64.
pkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
if [ -z "$pkg" ]; then
	echo "boot-assets: cannot resolve linux-image-amd64 (run apt-get update first)" >&2
	exit 1
fi
pkgver=$(apt-cache show "$pkg" | awk '$1 == "Version:" { print $2; exit }')
kver=${pkg#linux-image-}

stamp=$( {
	echo "$pkg $pkgver"
	sha256sum "$0" "$init_src" "$busybox" | cut -d' ' -f1
	echo "$modules"
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
	[ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
	echo "boot-assets: $out is up to date ($pkg $pkgver)"
	exit 0
fi

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The .deb is kept in OUT/debs so that a rebuild of the initramfs does not download again.
mkdir -p "$out/debs"
deb=$(ls "$out/debs/${pkg}_"*"_amd64.deb" 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ] || ! dpkg-deb -f "$deb" Version | grep -qxF "$pkgver"; then
	rm -f "$out/debs/"*.deb
	(cd "$out/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$pkgver")
	deb=$(ls "$out/debs/${pkg}_"*"_amd64.deb" | head -n 1)
fi
echo "boot-assets: extracting $deb"
dpkg-deb -x "$deb" "$work/kernel"
moddir=$work/kernel/lib/modules/$kver
[ -f "$work/kernel/boot/vmlinuz-$kver" ] || { echo "boot-assets: no vmlinuz-$kver in $deb" >&2; exit 1; }
busybox depmod -b "$work/kernel" "$kver"

# Load order: each module after its dependencies. modules.dep gives every module's transitive
# dependencies but not their order, so the edges of every module in the closure go to tsort.
deps_of() { # the modules.dep line of module path or name $1, without the "name:" part
	local line
	line=$(grep -E "(^|/)${1##*/}:" "$moddir/modules.dep") || {
		echo "boot-assets: module ${1##*/} not in $pkg" >&2
		return 1
	}
	echo "${line#*:}"
}
closure=
for m in $modules; do
	line=$(grep -E "(^|/)${m}\.ko(\.[a-z]+)?:" "$moddir/modules.dep") || {
		echo "boot-assets: module $m not in $pkg" >&2
		exit 1
	}
	closure="$closure ${line%%:*} ${line#*:}"
done
order=$(
	for mod in $(printf '%s\n' $closure | LC_ALL=C sort -u); do
		echo "$mod $mod"
		for dep in $(deps_of "$mod"); do echo "$dep $mod"; done
	done | tsort
)

root=$work/root
mkdir -p "$root/bin" "$root/etc" "$root/lib/modules" "$root/dev" "$root/proc" "$root/sys" \
	"$root/tmp" "$root/mnt"
cp "$busybox" "$root/bin/busybox"
for app in $("$busybox" --list); do
	[ "$app" = busybox ] || ln -s busybox "$root/bin/$app"
done
cp "$init_src" "$root/init"
chmod 0755 "$root/init"
: >"$root/etc/isoforge-modules"
for ko in $order; do
	case "$ko" in
	*.ko) ;;
	*) echo "boot-assets: $ko is compressed; busybox insmod needs plain .ko" >&2; exit 1 ;;
	esac
	dst=$root/lib/modules/${ko##*/}
	cp "$moddir/$ko" "$dst"
	echo "${ko##*/}" >>"$root/etc/isoforge-modules"
done

# A reproducible archive: sorted names, fixed times, root-owned.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$work/initrd.img"

cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$out/vmlinuz"
mv -f "$work/initrd.img" "$out/initrd.img"
{
	echo "kernel-package: $pkg $pkgver"
	echo "kernel-deb-sha256: $(sha256sum "$deb" | cut -d' ' -f1)"
	echo "busybox: $(dpkg-query -W -f '${Package} ${Version}' busybox-static 2>/dev/null || echo unknown)"
	echo "modules: $(tr '\n' ' ' <"$root/etc/isoforge-modules")"
	(cd "$out" && sha256sum vmlinuz initrd.img)
} >"$out/manifest.txt"
echo "$stamp" >"$out/stamp"
cat "$out/manifest.txt"
