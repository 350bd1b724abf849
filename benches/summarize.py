#!/usr/bin/env python3
"""Summarises benches/compare.sh's raw CSV: medians per tool, rows for the README's table, and
the targets of issues 6, 12 and 13. Reads the CSVs of older runs too (no cache columns)."""
import csv
import os
import statistics
import sys
from collections import defaultdict


def settings(path):
    """compare.sh's settings from the environment.txt beside the CSV (defaults when absent)."""
    found = {"big_size": "5G", "files": "1000000"}
    env = os.path.join(os.path.dirname(os.path.abspath(path)), "environment.txt")
    if os.path.exists(env):
        for line in open(env):
            if line.startswith("settings:"):
                for word in line.split()[1:]:
                    key, _, value = word.partition("=")
                    found[key] = value
    return found


def main(path):
    conf = settings(path)
    big_label = conf["big_size"].replace("G", " GiB").replace("M", " MiB")
    files_label = f"{int(conf['files']):,}" if conf["files"].isdigit() else conf["files"]
    rows = list(csv.DictReader(open(path)))
    groups = defaultdict(list)
    for r in rows:
        groups[(r["experiment"], r["tool"], r["level"], r["threads"])].append(r)

    def med(key, field):
        vals = [float(r[field]) for r in groups.get(key, []) if r.get(field) not in (None, "")]
        return statistics.median(vals) if vals else None

    def stats(key):
        if key not in groups:
            return None
        return {
            "n": len(groups[key]),
            "wall": med(key, "wall_s"),
            "cpu": med(key, "user_s") + med(key, "sys_s"),
            "rss": med(key, "max_rss_kb") * 1024,
            "written": med(key, "fs_out_blocks") * 512,
            "size": med(key, "image_bytes"),
            "load": med(key, "load1"),
            "cache": med(key, "cache_bytes"),
            "cache_disk": med(key, "cache_disk_bytes"),
        }

    print("| experiment | tool | zstd | threads | runs | wall s (median) | CPU s | peak RSS MiB | written MiB | image MiB | load1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    order = {"build": 0, "squashfs": 1, "cache-cold": 2, "cache-nochange": 3, "cache-onechange": 4, "incompressible": 5, "files": 6}
    for key in sorted(groups, key=lambda k: (order.get(k[0], 9), k[0], -int(k[2]), k[3], k[1])):
        s = stats(key)
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {s['n']} | {s['wall']:.2f} | {s['cpu']:.1f} "
            f"| {s['rss'] / 2**20:.0f} | {s['written'] / 2**20:.0f} | {s['size'] / 2**20:.1f} | {s['load']:.1f} |"
        )
    threads = sorted({k[3] for k in groups if k[0] in ("build", "cache-cold", "files")}, key=int)
    t = threads[-1] if threads else "2"

    def st(exp, tool, level, th=None):
        return stats((exp, tool, level, th or t))

    def ratio(a, b, field):
        if a is None or b is None or not b.get(field) or a.get(field) is None:
            return None
        return a[field] / b[field]

    o19, r19 = st("build", "isoforge", "19"), st("build", "reference", "19")
    o3, r3 = st("build", "isoforge", "3"), st("build", "reference", "3")
    sq2, sq1 = st("squashfs", "isoforge", "19"), st("squashfs", "isoforge", "19", "1")
    msq = st("squashfs", "mksquashfs", "19")
    sq3, msq3 = st("squashfs", "isoforge", "3"), st("squashfs", "mksquashfs", "3")
    cold_no, cold_c = st("cache-cold", "isoforge", "19"), st("cache-cold", "isoforge-cache", "19")
    nochange = st("cache-nochange", "isoforge-cache", "19")
    one, one_ref = st("cache-onechange", "isoforge-cache", "19"), st("cache-onechange", "reference", "19")
    big, big_ref = st("incompressible", "isoforge", "3"), st("incompressible", "reference", "3")
    fm, fm_ref = st("files", "isoforge", "3"), st("files", "reference", "3")

    # Rows in the README table's format: | | isoforge | nixpkgs pipeline | ratio | target |
    print()
    print("| | isoforge | nixpkgs pipeline | ratio | target |")
    print("|---|---|---|---|---|")

    def row(name, a, b, field, target=None, limit=None, unit="s", higher=False, fmt="{:.2f}"):
        if a is None or a.get(field) is None:
            return
        def show(x):
            if x is None:
                return "—"
            if unit == "s":
                return f"{x[field]:.1f} s" if x[field] >= 10 else f"{x[field]:.2f} s"
            if unit == "MiB":
                return f"{x[field] / 2**20:.0f} MiB"
            return f"{x[field]:,.0f} B"
        r = ratio(a, b, field)
        verdict = ""
        if target and r is not None and limit is not None:
            ok = r >= limit if higher else r <= limit
            verdict = f"{target}: {'met' if ok else 'missed'}"
        elif target:
            verdict = target
        rs = fmt.format(r) if r is not None else "—"
        print(f"| {name} | {show(a)} | {show(b)} | {rs} | {verdict} |")

    def n(x):
        return f" (median of {x['n']})" if x else ""

    row(f"zstd 19 build, wall{n(o19)}", o19, r19, "wall", "≤ 0.70", 0.70)
    row("zstd 19 build, CPU", o19, r19, "cpu")
    row("zstd 19 image size", o19, r19, "size", "≤ 1.00", 1.00, unit="B", fmt="{:.3f}")
    row("zstd 19 bytes written", o19, r19, "written", unit="MiB")
    row("zstd 19 peak RSS", o19, r19, "rss", "≤ 0.5", 0.5, unit="MiB")
    row(f"zstd 3 build, wall{n(o3)}", o3, r3, "wall", "≤ 0.50", 0.50)
    row("zstd 3 build, CPU", o3, r3, "cpu")
    row(f"squashfs alone, zstd 19, wall (mksquashfs -processors {t}){n(sq2)}", sq2, msq, "wall")
    row("squashfs alone, zstd 19, CPU", sq2, msq, "cpu")
    row(f"squashfs alone, zstd 3, wall (mksquashfs -processors {t}){n(sq3)}", sq3, msq3, "wall")
    row(f"{big_label} incompressible, zstd 3, wall{n(big)}", big, big_ref, "wall", "≤ 0.50", 0.50)
    row(f"{files_label} small files, zstd 3, wall{n(fm)}", fm, fm_ref, "wall", "≤ 0.25", 0.25)
    row(f"{files_label} small files, zstd 3, peak RSS", fm, fm_ref, "rss", "≤ 0.5", 0.5, unit="MiB")
    # Cache rows: against the reference's cold build (of the changed closure for one change).
    row(f"cache: one store path changed, wall (vs reference cold build of it){n(one)}", one, one_ref, "wall", "≤ 0.05", 0.05)
    row(f"cache: nothing changed, wall (vs reference cold build){n(nochange)}", nochange, r19 or one_ref, "wall", "≤ 0.03", 0.03)
    row(f"cache: cold, empty cache (vs isoforge without a cache){n(cold_c)}", cold_c, cold_no, "wall", "≤ 1.05", 1.05)
    squashfs_size = sq2["size"] if sq2 else None
    cache_ratio = None
    if cold_c and cold_c.get("cache_disk") is not None and squashfs_size:
        cache_ratio = cold_c["cache_disk"] / squashfs_size
        print(
            f"| cache size on disk (vs isoforge's zstd 19 squashfs) | {cold_c['cache_disk'] / 2**20:.0f} MiB "
            f"| {squashfs_size / 2**20:.0f} MiB | {cache_ratio:.2f} | ≤ 1.1: {'met' if cache_ratio <= 1.1 else 'missed'} |"
        )
    if sq1 and sq2:
        print(
            f"| compression, 1 → {t} threads (wall) | {sq1['wall']:.1f} s → {sq2['wall']:.1f} s | | "
            f"{sq1['wall'] / sq2['wall']:.2f} × | ≥ 1.8 ×: {'met' if sq1['wall'] / sq2['wall'] >= 1.8 else 'missed'} |"
        )

    print()
    print("| target | measured | met |")
    print("|---|---|---|")

    def target(name, value, limit, fmt="{:.2f}", higher=False):
        if value is None:
            print(f"| {name} | not measured | — |")
            return
        ok = value >= limit if higher else value <= limit
        print(f"| {name} | {fmt.format(value)} | {'yes' if ok else 'no'} |")

    target("zstd-19 build wall ≤ 0.70 × reference (issue 13)", ratio(o19, r19, "wall"), 0.70)
    target("zstd-19 image size ≤ 1.00 × reference", ratio(o19, r19, "size"), 1.00, "{:.4f}")
    target("zstd-3 build wall ≤ 0.50 × reference (issue 13)", ratio(o3, r3, "wall"), 0.50)
    target(f"{big_label} incompressible, zstd-3 wall ≤ 0.50 × reference", ratio(big, big_ref, "wall"), 0.50)
    target(f"{files_label} files, zstd-3 wall ≤ 0.25 × reference", ratio(fm, fm_ref, "wall"), 0.25)
    target(f"{files_label} files, peak RSS ≤ 0.5 × the reference's (mksquashfs)", ratio(fm, fm_ref, "rss"), 0.5)
    target("bytes written ≤ 1.05 × image size (zstd-19)", o19 and o19["written"] / o19["size"], 1.05)
    target("peak RSS ≤ 0.5 × mksquashfs's (zstd-19 build)", o19 and msq and o19["rss"] / msq["rss"], 0.5)
    target("compression 1 → 2 threads speed-up ≥ 1.8 (isoforge squashfs, wall)", sq1 and sq2 and sq1["wall"] / sq2["wall"], 1.8, higher=True)
    target("cache: one path changed ≤ 0.05 × reference cold build of the changed closure", ratio(one, one_ref, "wall"), 0.05, "{:.3f}")
    target("cache: nothing changed ≤ 0.03 × reference cold build", ratio(nochange, r19 or one_ref, "wall"), 0.03, "{:.3f}")
    target("cache: cold with an empty cache ≤ 1.05 × cold without", ratio(cold_c, cold_no, "wall"), 1.05)
    target("cache size on disk ≤ 1.1 × squashfs size", cache_ratio, 1.1)
    print()
    pairs = [("zstd-19 build", o19, r19), ("zstd-3 build", o3, r3), ("squashfs alone zstd-19", sq2, msq),
             ("incompressible zstd-3", big, big_ref), ("small files zstd-3", fm, fm_ref)]
    print("Reference pipeline for comparison: " + ", ".join(
        f"{name} {ratio(a, b, 'wall'):.2f}× wall, {ratio(a, b, 'cpu'):.2f}× CPU, {ratio(a, b, 'written'):.2f}× written, {ratio(a, b, 'rss'):.2f}× RSS"
        for name, a, b in pairs
        if a and b
    ))
    sys_msq = st("squashfs", "mksquashfs-system", "19")
    if sys_msq and msq:
        print(f"System mksquashfs against the reference one (squashfs alone, zstd 19): {sys_msq['wall'] / msq['wall']:.2f}× wall.")


if __name__ == "__main__":
    main(sys.argv[1])
