#!/usr/bin/env bash
# Compares `isoforge build` with the nixpkgs pipeline (mksquashfs + mkfs.vfat/mtools/faketime +
# xorriso) on the same generated closure, interleaved (A B A B), and writes the raw CSV, the
# tool versions, the command and a summary into benches/runs/<date>-<host>/.
#
#   benches/compare.sh [--size 300M] [--seed 1] [--threads 2] [--reps19 2] [--reps3 3]
#                      [--sqreps 1] [--work DIR] [--run-dir DIR]
#
# Needs (Debian): squashfs-tools, dosfstools, mtools, faketime, xorriso, isolinux,
# syslinux-common, grub-efi-amd64-bin, time (GNU time, /usr/bin/time).
#
# What is measured, per run, by GNU time around the whole command (a shell script for the
# reference, so every child counts):
#   wall      elapsed seconds
#   cpu       user + system seconds of the process and all its children
#   rss_kb    peak resident set size of the largest single process (getrusage's ru_maxrss
#             of the children: for the reference pipeline, its biggest step, mksquashfs)
#   written   bytes written to the file system: ru_oublock × 512, which Linux derives from
#             the task's write_bytes I/O accounting (a page counts when it goes from clean to
#             dirty, so a page rewritten while still dirty counts once; temporary outputs of
#             the reference pipeline — the squashfs and the FAT image — count, as they do in
#             a Nix build, where they are store paths of their own)
#   size      the image's size in bytes
# The page cache is warm (one untimed warm-up build of each first); nothing drops caches.
set -euo pipefail

size=300M seed=1 threads=2 reps19=2 reps3=3 sqreps=1
work=${TMPDIR:-/var/tmp}/isoforge-bench
run_dir=
while [ $# -gt 0 ]; do
    case $1 in
        --size) size=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --reps19) reps19=$2; shift 2 ;;
        --reps3) reps3=$2; shift 2 ;;
        --sqreps) sqreps=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --run-dir) run_dir=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${run_dir:-$repo/benches/runs/$(date -u +%Y-%m-%d)-$(hostname -s)}
mkdir -p "$work" "$run_dir"
work=$(cd "$work" && pwd)
export SOURCE_DATE_EPOCH=315532800
TIME=/usr/bin/time
for t in $TIME mksquashfs mkfs.vfat mcopy mmd faketime xorriso; do
    command -v "$t" >/dev/null || { echo "compare.sh: $t is missing" >&2; exit 2; }
done

echo "== building (release)"
(cd "$repo" && cargo build --release -q -p isoforge-cli -p isoforge-benches)
isoforge=$repo/target/release/isoforge
fixture=$work/fixture-$seed-$size
if [ ! -f "$fixture/closure-info/registration" ]; then
    echo "== generating the closure ($size, seed $seed)"
    if [ -e "$fixture" ]; then chmod -R u+w "$fixture"; rm -rf "$fixture"; fi
    "$repo/target/release/gen-closure" --seed "$seed" --size "$size" --out "$fixture"
fi

# The rest of the image: isolinux for BIOS, a GRUB EFI binary for UEFI.
inputs=$work/inputs
rm -rf "$inputs"
mkdir -p "$inputs/iso/isolinux" "$inputs/efi/EFI/BOOT"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$inputs/iso/isolinux/"
cp /usr/lib/grub/x86_64-efi/monolithic/grubx64.efi "$inputs/efi/EFI/BOOT/BOOTX64.EFI"
printf 'search --set=root --label NIXOS_BENCH\nconfigfile /EFI/BOOT/grub.cfg\n' >"$inputs/efi/EFI/BOOT/grub.cfg"
mbr=/usr/lib/ISOLINUX/isohdpfx.bin

# The reference pipeline, step by step as nixpkgs runs it (make-squashfs.nix, iso-image.nix's
# efiImg, make-iso9660-image.sh), in a fresh directory; $1 = zstd level, $2 = output, $3 =
# processors, $4 = "squashfs" to stop after mksquashfs.
cat >"$work/reference.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
level=$1 out=$2 procs=$3 only=${4:-} fixture=$FIXTURE inputs=$INPUTS
tmp=$(mktemp -d "$(dirname "$out")/ref.XXXXXX")
cd "$tmp"
cp "$fixture/closure-info/registration" nix-path-registration
sq=nix-store.squashfs
[ "$only" = squashfs ] && sq=$out
mksquashfs nix-path-registration $(sed "s|^|$fixture/root|" "$fixture/closure-info/store-paths") "$sq" \
    -no-hardlinks -keep-as-directory -all-root -b 1048576 -comp zstd -Xcompression-level "$level" \
    -processors "$procs" -root-mode 0755 -no-progress -quiet
if [ "$only" = squashfs ]; then cd /; rm -rf "$tmp"; exit 0; fi
# efiImg
mkdir contents && (cd contents && cp -rp "$inputs/efi/." . && find . -exec touch --date=2000-01-01 {} +)
usage_size=$(( $(du -s --block-size=1M --apparent-size contents | tr -cd '[:digit:]') * 1024 * 1024 ))
image_size=$(( (usage_size * 110) / 100 ))
image_size=$(( (image_size / 1048576 + 1) * 1048576 ))
truncate --size=$image_size efi.img
faketime "2000-01-01 00:00:00" mkfs.vfat --invariant -i 12345678 -n EFIBOOT efi.img >/dev/null
(cd contents && for d in $(find EFI -type d | sort); do faketime "2000-01-01 00:00:00" mmd -i ../efi.img "::/$d"; done
 for f in $(find EFI -type f | sort); do mcopy -pm -i ../efi.img "$f" "::/$f"; done)
# make-iso9660-image.sh
xorriso -volume_date all_file_dates ="$SOURCE_DATE_EPOCH" -as mkisofs -iso-level 3 \
    -full-iso9660-filenames -joliet -joliet-long -rational-rock -volid NIXOS_BENCH \
    -eltorito-boot isolinux/isolinux.bin -eltorito-catalog isolinux/boot.cat -no-emul-boot \
    -boot-load-size 4 -boot-info-table -eltorito-alt-boot -e boot/efi.img -no-emul-boot \
    -isohybrid-gpt-basdat -isohybrid-mbr "$MBR" -quiet -output "$out" -graft-points \
    isolinux="$inputs/iso/isolinux" boot/efi.img=efi.img nix-store.squashfs=nix-store.squashfs
cd /
rm -rf "$tmp"
EOF
chmod +x "$work/reference.sh"
export FIXTURE=$fixture INPUTS=$inputs MBR=$mbr

ours() { # level out threads
    "$isoforge" build -o "$2" --volume-id NIXOS_BENCH --graft "/isolinux=$inputs/iso/isolinux" \
        --bios-boot /isolinux/isolinux.bin --boot-catalog /isolinux/boot.cat \
        --efi-dir "$inputs/efi" --isohybrid-mbr "$mbr" \
        --closure "$fixture/closure-info" --store-root "$fixture/root" \
        --compression "zstd:$1" --threads "$3" >/dev/null
}
ours_sq() {
    "$isoforge" squashfs -o "$2" --closure "$fixture/closure-info" --store-root "$fixture/root" \
        --compression "zstd:$1" --threads "$3" >/dev/null
}
ref() { "$work/reference.sh" "$1" "$2" "$3"; }
ref_sq() { "$work/reference.sh" "$1" "$2" "$3" squashfs; }
export -f ours ours_sq ref ref_sq
export isoforge inputs mbr fixture work

csv=$run_dir/raw.csv
echo "experiment,tool,level,threads,rep,wall_s,user_s,sys_s,max_rss_kb,fs_out_blocks,image_bytes,load1" >"$csv"
measure() { # experiment tool level threads rep fn
    local out=$work/out-$2.img tf=$work/time.txt
    rm -f "$out"
    sync
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    $TIME -f "%e,%U,%S,%M,%O" -o "$tf" bash -c "$6 $3 $out $4"
    local size
    size=$(stat -c %s "$out")
    echo "$1,$2,$3,$4,$5,$(cat "$tf"),$size,$load" | tee -a "$csv"
    cp "$out" "$work/last-$1-$2-$3-$4.img"
    rm -f "$out"
}

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(hostname -s); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "memory: $(free -b | awk '/Mem:/ {print $2}') bytes"
    echo "kernel: $(uname -r)"
    echo "load before: $(cat /proc/loadavg)"
    echo "isoforge: $(git -C "$repo" rev-parse --short HEAD) ($("$isoforge" --version))"
    echo "mksquashfs: $(mksquashfs -version 2>&1 | head -1)"
    echo "xorriso: $(xorriso -version 2>/dev/null | head -1)"
    echo "dosfstools: $(dpkg-query -W -f='${Version}' dosfstools 2>/dev/null || echo '?')"
    echo "mtools: $(mcopy --version | head -1)"
    echo "faketime: $(dpkg-query -W -f='${Version}' faketime 2>/dev/null || echo '?')"
    echo "fixture: gen-closure --seed $seed --size $size; $(wc -l <"$fixture/closure-info/store-paths") store paths;" \
        "$(du -sb --apparent-size "$fixture/root" | cut -f1) bytes apparent;" \
        "registration sha256 $(sha256sum "$fixture/closure-info/registration" | cut -c1-16)"
    echo "command: benches/compare.sh --size $size --seed $seed --threads $threads --reps19 $reps19 --reps3 $reps3 --sqreps $sqreps"
} | tee "$run_dir/environment.txt"

echo "== warm-up (not timed)"
ours 3 "$work/warm.iso" "$threads"; ref 3 "$work/warm.iso" "$threads"; rm -f "$work/warm.iso"

for level in 19 3; do
    reps=$reps19; [ "$level" = 3 ] && reps=$reps3
    for rep in $(seq 1 "$reps"); do
        measure build isoforge "$level" "$threads" "$rep" ours
        measure build reference "$level" "$threads" "$rep" ref
    done
done
for rep in $(seq 1 "$sqreps"); do
    measure squashfs isoforge 19 "$threads" "$rep" ours_sq
    measure squashfs mksquashfs 19 "$threads" "$rep" ref_sq
done
# Thread scaling of compression (1 thread; the 2-thread runs are above).
for rep in $(seq 1 "$sqreps"); do
    measure squashfs isoforge 19 1 "$rep" ours_sq
done
echo "load after: $(cat /proc/loadavg)" | tee -a "$run_dir/environment.txt"

python3 "$repo/benches/summarize.py" "$csv" | tee "$run_dir/summary.md"
