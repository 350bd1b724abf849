#!/usr/bin/env bash
# Compares `isoforge build` with the nixpkgs pipeline (mksquashfs + mkfs.vfat/mtools/faketime +
# xorriso) on generated closures, interleaved (A B A B), and writes the raw CSV, the tool
# versions, the closures' shapes, the command and a summary into benches/runs/<date>-<host>/.
#
#   benches/compare.sh [--shape nixos] [--size 300M] [--seed 1] [--threads 2]
#                      [--reps19 2] [--reps3 3] [--sqreps 1] [--cachereps 2] [--bigreps 1]
#                      [--big-size 5G] [--files 1000000] [--cases LIST]
#                      [--mksquashfs PATH] [--isoforge PATH] [--work DIR] [--run-dir DIR]
#
# --isoforge PATH runs that binary instead of the repository's release build. A run into a
# --run-dir that already holds a raw.csv appends to it (and to environment.txt), so cases
# can be run one at a time; fixtures in --work are reused.
#
# Cases (--cases, comma-separated; default all of them):
#   build           whole builds at zstd 19 and zstd 3 (reps19, reps3 pairs) on the closure
#                   of --shape/--size (gen-closure; nixos by default, legacy for the first one)
#   squashfs        `isoforge squashfs --threads T` against `mksquashfs -processors T` alone at
#                   zstd 19 and 3 (sqreps pairs; the system mksquashfs too when --mksquashfs
#                   names another), and isoforge with 1 thread (compression scaling)
#   cache           issue 12, at zstd 19, cachereps rounds of: cold build without a cache and
#                   with an empty one (alternating which goes first), the cache's size on disk,
#                   a rebuild with nothing changed, then one file of one mid-sized store path
#                   changed (gen-closure --mutate) and rebuilt with the cache, against the
#                   reference's cold build of that changed closure; skipped with a message
#                   while `isoforge build --help` has no --cache
#   incompressible  --big-size (5G) of incompressible data (gen-closure --shape
#                   incompressible), whole builds at zstd 3, bigreps pairs
#   files           --files (1,000,000) small files in 1,000 store paths (gen-closure
#                   --files), whole builds at zstd 3, bigreps pairs (wall and peak RSS)
#
# Needs (Debian): squashfs-tools, dosfstools, mtools, faketime, xorriso, isolinux,
# syslinux-common, grub-efi-amd64-bin, time (GNU time, /usr/bin/time). Disk: about 4 × the
# closure for each case (the closure, the reference's squashfs and ISO, isoforge's image);
# the incompressible case needs about 25 GB free.
#
# mksquashfs: nixpkgs ships 4.7.x, Debian 12 has 4.5.1. To compare against 4.7, build it
# from upstream outside the repository (nothing of it belongs in this tree):
#   apt-get install build-essential libzstd-dev liblzma-dev zlib1g-dev liblz4-dev liblzo2-dev
#   git clone https://github.com/plougher/squashfs-tools && cd squashfs-tools
#   git archive --prefix=squashfs-tools-4.7.2/ 4.7.2 | tar -x -C "$HOME/build"
#   make -C "$HOME/build/squashfs-tools-4.7.2/squashfs-tools" ZSTD_SUPPORT=1 XZ_SUPPORT=1 \
#       LZ4_SUPPORT=1 LZO_SUPPORT=1 LZMA_XZ_SUPPORT=1      # nixpkgs' makeFlags for 4.7.2
#   benches/compare.sh --mksquashfs "$HOME/build/squashfs-tools-4.7.2/squashfs-tools/mksquashfs"
# Both versions (the one the reference pipeline runs and the system's) go into
# environment.txt.
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
#   cache     for the cold build with an empty cache: the cache directory's apparent size
#             and its size on disk (du), after the build
# The page cache is warm (one untimed warm-up build of each, or a read of the closure,
# first); nothing drops caches.
set -euo pipefail

shape=nixos size=300M seed=1 threads=2 reps19=2 reps3=3 sqreps=1 cachereps=2 bigreps=1
big_size=5G files=1000000 cases=build,squashfs,cache,incompressible,files
mksquashfs=$(command -v mksquashfs || true)
isoforge=
work=${TMPDIR:-/var/tmp}/isoforge-bench
run_dir=
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --shape) shape=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --reps19) reps19=$2; shift 2 ;;
        --reps3) reps3=$2; shift 2 ;;
        --sqreps) sqreps=$2; shift 2 ;;
        --cachereps) cachereps=$2; shift 2 ;;
        --bigreps) bigreps=$2; shift 2 ;;
        --big-size) big_size=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        --cases) cases=$2; shift 2 ;;
        --mksquashfs) mksquashfs=$2; shift 2 ;;
        --isoforge) isoforge=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --run-dir) run_dir=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
has_case() { case ",$cases," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

repo=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${run_dir:-$repo/benches/runs/$(date -u +%Y-%m-%d)-$(hostname -s)}
mkdir -p "$work" "$run_dir"
work=$(cd "$work" && pwd)
export SOURCE_DATE_EPOCH=315532800
unset ISOFORGE_CACHE
TIME=/usr/bin/time
for t in $TIME "$mksquashfs" mkfs.vfat mcopy mmd faketime xorriso; do
    command -v "$t" >/dev/null || { echo "compare.sh: ${t:-mksquashfs} is missing" >&2; exit 2; }
done
MKSQUASHFS=$(readlink -f "$(command -v "$mksquashfs")")
SYSTEM_MKSQUASHFS=$(readlink -f "$(command -v mksquashfs || echo "$MKSQUASHFS")")
export MKSQUASHFS SYSTEM_MKSQUASHFS

echo "== building (release)"
if [ -z "$isoforge" ]; then
    (cd "$repo" && cargo build --release -q -p isoforge-cli -p isoforge-benches)
    isoforge=$repo/target/release/isoforge
else
    (cd "$repo" && cargo build --release -q -p isoforge-benches)
    isoforge=$(readlink -f "$isoforge")
fi
gen=$repo/target/release/gen-closure

# make_fixture DIR ARGS...: generates a closure unless DIR already holds one.
make_fixture() {
    local dir=$1
    shift
    if [ ! -f "$dir/closure-info/registration" ]; then
        echo "== generating a closure: gen-closure $* ($(date +%T))"
        if [ -e "$dir" ]; then chmod -R u+w "$dir"; rm -rf "$dir"; fi
        "$gen" "$@" --out "$dir"
    fi
}
fixture=$work/fixture-$shape-$seed-$size
make_fixture "$fixture" --shape "$shape" --seed "$seed" --size "$size"
"$gen" --mutate "$fixture" --variant 0 >/dev/null  # undo a mutation an aborted run left
big_fixture=$work/fixture-incompressible-$seed-$big_size
files_fixture=$work/fixture-files-$seed-$files
if has_case incompressible; then
    make_fixture "$big_fixture" --shape incompressible --seed "$seed" --size "$big_size"
fi
if has_case files; then make_fixture "$files_fixture" --seed "$seed" --files "$files"; fi

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
# processors, $4 = "squashfs" to stop after mksquashfs. The closure is $FIXTURE, the
# mksquashfs $MKSQUASHFS.
cat >"$work/reference.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
level=$1 out=$2 procs=$3 only=${4:-} fixture=$FIXTURE inputs=$INPUTS
tmp=$(mktemp -d "$(dirname "$out")/ref.XXXXXX")
cd "$tmp"
cp "$fixture/closure-info/registration" nix-path-registration
sq=nix-store.squashfs
[ "$only" = squashfs ] && sq=$out
"$MKSQUASHFS" nix-path-registration $(sed "s|^|$fixture/root|" "$fixture/closure-info/store-paths") "$sq" \
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
export FIXTURE=$fixture INPUTS=$inputs MBR=$mbr CACHE=$work/cache OURS_FLAGS=

# Each takes: level output threads. The closure is $FIXTURE; $OURS_FLAGS go to isoforge.
ours() {
    # shellcheck disable=SC2086
    "$isoforge" build -o "$2" --volume-id NIXOS_BENCH --graft "/isolinux=$INPUTS/iso/isolinux" \
        --bios-boot /isolinux/isolinux.bin --boot-catalog /isolinux/boot.cat \
        --efi-dir "$INPUTS/efi" --isohybrid-mbr "$MBR" \
        --closure "$FIXTURE/closure-info" --store-root "$FIXTURE/root" \
        --compression "zstd:$1" --threads "$3" $OURS_FLAGS >/dev/null
}
ours_cache() { OURS_FLAGS="--cache $CACHE" ours "$@"; }
ours_sq() {
    "$isoforge" squashfs -o "$2" --closure "$FIXTURE/closure-info" --store-root "$FIXTURE/root" \
        --compression "zstd:$1" --threads "$3" >/dev/null
}
ref() { "$work/reference.sh" "$1" "$2" "$3"; }
ref_sq() { "$work/reference.sh" "$1" "$2" "$3" squashfs; }
ref_sq_system() { MKSQUASHFS=$SYSTEM_MKSQUASHFS "$work/reference.sh" "$1" "$2" "$3" squashfs; }
export -f ours ours_cache ours_sq ref ref_sq ref_sq_system
export isoforge work

csv=$run_dir/raw.csv
[ -f "$csv" ] || echo "experiment,tool,level,threads,rep,wall_s,user_s,sys_s,max_rss_kb,fs_out_blocks,image_bytes,load1,cache_bytes,cache_disk_bytes" >"$csv"
# measure experiment tool level threads rep fn [keep]: one timed run; keep=0 deletes the
# output (large cases) instead of keeping the last one of each kind.
measure() {
    local out=$work/out-$2.img tf=$work/time.txt keep=${7:-1}
    rm -f "$out"
    sync
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    $TIME -f "%e,%U,%S,%M,%O" -o "$tf" bash -c "$6 $3 $out $4"
    local size cache_bytes= cache_disk=
    size=$(stat -c %s "$out")
    if [ "${MEASURE_CACHE:-}" = 1 ] && [ -d "$CACHE" ]; then
        cache_bytes=$(du -s -B1 --apparent-size "$CACHE" | cut -f1)
        cache_disk=$(du -s -B1 "$CACHE" | cut -f1)
    fi
    echo "$1,$2,$3,$4,$5,$(cat "$tf"),$size,$load,$cache_bytes,$cache_disk" | tee -a "$csv"
    if [ "$keep" = 1 ]; then mv "$out" "$work/last-$1-$2-$3-$4.img"; else rm -f "$out"; fi
}
# use_fixture DIR: the closure the next runs build.
use_fixture() { FIXTURE=$1; export FIXTURE; }
# warm DIR: reads every file of a closure once (page cache).
warm() { find "$1/root" -type f -print0 | xargs -0 cat >/dev/null; }
banner() { echo "== $* ($(date +%T))"; }

has_cache=0
if "$isoforge" build --help 2>&1 | grep -q -- '--cache'; then has_cache=1; fi

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(hostname -s); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "memory: $(free -b | awk '/Mem:/ {print $2}') bytes"
    echo "kernel: $(uname -r)"
    echo "load before: $(cat /proc/loadavg)"
    echo "isoforge: $("$isoforge" --version) [$isoforge]; repository at $(git -C "$repo" rev-parse --short HEAD);" \
        "build --cache: $([ $has_cache = 1 ] && echo yes || echo no)"
    echo "mksquashfs (reference pipeline): $("$MKSQUASHFS" -version 2>&1 | head -1) [$MKSQUASHFS]"
    echo "mksquashfs (system): $("$SYSTEM_MKSQUASHFS" -version 2>&1 | head -1) [$SYSTEM_MKSQUASHFS]"
    echo "xorriso: $(xorriso -version 2>/dev/null | head -1)"
    echo "dosfstools: $(dpkg-query -W -f='${Version}' dosfstools 2>/dev/null || echo '?')"
    echo "mtools: $(mcopy --version | head -1)"
    echo "faketime: $(dpkg-query -W -f='${Version}' faketime 2>/dev/null || echo '?')"
    for f in "$fixture" "$big_fixture" "$files_fixture"; do
        [ -f "$f/closure-info/registration" ] || continue
        echo "fixture $(basename "$f"): registration sha256 $(sha256sum "$f/closure-info/registration" | cut -c1-16)"
        echo "  $("$gen" --stats "$f" | sed -n 1p)"
    done
    echo "command: benches/compare.sh ${args[*]}"
    echo "settings: shape=$shape size=$size seed=$seed threads=$threads reps19=$reps19 reps3=$reps3" \
        "sqreps=$sqreps cachereps=$cachereps bigreps=$bigreps big_size=$big_size files=$files cases=$cases"
} | tee -a "$run_dir/environment.txt"

use_fixture "$fixture"
if has_case build || has_case squashfs || has_case cache; then
    banner "warm-up (not timed)"
    ours 3 "$work/warm.iso" "$threads"; ref 3 "$work/warm.iso" "$threads"; rm -f "$work/warm.iso"
fi

if has_case build; then
    for level in 19 3; do
        reps=$reps19; [ "$level" = 3 ] && reps=$reps3
        banner "build, zstd $level, $reps pairs"
        for rep in $(seq 1 "$reps"); do
            measure build isoforge "$level" "$threads" "$rep" ours
            measure build reference "$level" "$threads" "$rep" ref
        done
    done
fi

if has_case squashfs; then
    same_mksquashfs=1; [ "$MKSQUASHFS" = "$SYSTEM_MKSQUASHFS" ] || same_mksquashfs=0
    for level in 19 3; do
        banner "squashfs alone, zstd $level, $sqreps pairs"
        for rep in $(seq 1 "$sqreps"); do
            measure squashfs isoforge "$level" "$threads" "$rep" ours_sq
            measure squashfs mksquashfs "$level" "$threads" "$rep" ref_sq
            if [ $same_mksquashfs = 0 ]; then
                measure squashfs mksquashfs-system "$level" "$threads" "$rep" ref_sq_system
            fi
        done
    done
    # Thread scaling of compression (1 thread; the $threads-thread runs are above).
    banner "squashfs alone, zstd 19, 1 thread"
    for rep in $(seq 1 "$sqreps"); do
        measure squashfs isoforge 19 1 "$rep" ours_sq
    done
fi

mutated=0
restore() { if [ $mutated = 1 ]; then "$gen" --mutate "$fixture" --variant 0 >/dev/null; mutated=0; fi; }
trap restore EXIT
if has_case cache && [ $has_cache = 0 ]; then
    echo "== skipping the cache cases: \`isoforge build --help\` has no --cache yet (issue 12)"
elif has_case cache; then
    banner "cache (issue 12), zstd 19, $cachereps rounds"
    for rep in $(seq 1 "$cachereps"); do
        rm -rf "$CACHE"
        if [ $((rep % 2)) = 1 ]; then
            measure cache-cold isoforge 19 "$threads" "$rep" ours
            MEASURE_CACHE=1 measure cache-cold isoforge-cache 19 "$threads" "$rep" ours_cache
        else
            MEASURE_CACHE=1 measure cache-cold isoforge-cache 19 "$threads" "$rep" ours_cache
            measure cache-cold isoforge 19 "$threads" "$rep" ours
        fi
        measure cache-nochange isoforge-cache 19 "$threads" "$rep" ours_cache
        mutated=1
        "$gen" --mutate "$fixture" --variant 1
        measure cache-onechange isoforge-cache 19 "$threads" "$rep" ours_cache
        measure cache-onechange reference 19 "$threads" "$rep" ref
        restore
    done
    rm -rf "$CACHE"
fi

if has_case incompressible; then
    use_fixture "$big_fixture"
    banner "incompressible ($big_size), zstd 3, $bigreps pairs"
    warm "$big_fixture"
    for rep in $(seq 1 "$bigreps"); do
        measure incompressible isoforge 3 "$threads" "$rep" ours 0
        measure incompressible reference 3 "$threads" "$rep" ref 0
    done
fi

if has_case files; then
    use_fixture "$files_fixture"
    banner "$files small files, zstd 3, $bigreps pairs"
    warm "$files_fixture"
    for rep in $(seq 1 "$bigreps"); do
        measure files isoforge 3 "$threads" "$rep" ours 0
        measure files reference 3 "$threads" "$rep" ref 0
    done
fi
echo "load after: $(cat /proc/loadavg)" | tee -a "$run_dir/environment.txt"
banner done

python3 "$repo/benches/summarize.py" "$csv" | tee "$run_dir/summary.md"
