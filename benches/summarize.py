#!/usr/bin/env python3
"""Summarises benches/compare.sh's raw CSV: medians per tool and the targets of issue 6."""
import csv
import statistics
import sys
from collections import defaultdict


def main(path):
    rows = list(csv.DictReader(open(path)))
    groups = defaultdict(list)
    for r in rows:
        groups[(r["experiment"], r["tool"], r["level"], r["threads"])].append(r)

    def med(key, field):
        vals = [float(r[field]) for r in groups.get(key, [])]
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
        }

    print("| experiment | tool | zstd | threads | runs | wall s (median) | CPU s | peak RSS MiB | written MiB | image MiB | load1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(groups, key=lambda k: (k[0], -int(k[2]), k[3], k[1])):
        s = stats(key)
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {s['n']} | {s['wall']:.1f} | {s['cpu']:.1f} "
            f"| {s['rss'] / 2**20:.0f} | {s['written'] / 2**20:.0f} | {s['size'] / 2**20:.1f} | {s['load']:.1f} |"
        )
    print()
    print("| target | measured | met |")
    print("|---|---|---|")
    threads = sorted({k[3] for k in groups if k[0] == "build"})
    t = threads[-1] if threads else "2"

    def target(name, value, limit, fmt="{:.2f}", higher=False):
        if value is None:
            print(f"| {name} | not measured | — |")
            return
        ok = value >= limit if higher else value <= limit
        print(f"| {name} | {fmt.format(value)} | {'yes' if ok else 'no'} |")

    def ratio(a, b, field):
        if a is None or b is None or not b[field]:
            return None
        return a[field] / b[field]

    o19, r19 = stats(("build", "isoforge", "19", t)), stats(("build", "reference", "19", t))
    o3, r3 = stats(("build", "isoforge", "3", t)), stats(("build", "reference", "3", t))
    sq2, sq1 = stats(("squashfs", "isoforge", "19", t)), stats(("squashfs", "isoforge", "19", "1"))
    msq = stats(("squashfs", "mksquashfs", "19", t))
    target("zstd-19 build wall ≤ 0.85 × reference", ratio(o19, r19, "wall"), 0.85)
    target("zstd-19 image size ≤ 1.00 × reference", ratio(o19, r19, "size"), 1.00, "{:.4f}")
    target("zstd-3 build wall ≤ 0.6 × reference", ratio(o3, r3, "wall"), 0.6)
    target("bytes written ≤ 1.05 × image size (zstd-19)", ratio(o19, o19, "written") and o19["written"] / o19["size"], 1.05)
    target("peak RSS ≤ 0.5 × mksquashfs's (zstd-19 build)", o19 and msq and o19["rss"] / msq["rss"], 0.5)
    target("compression 1 → 2 threads speed-up ≥ 1.8 (isoforge squashfs, wall)", sq1 and sq2 and sq1["wall"] / sq2["wall"], 1.8, higher=True)
    print()
    print("Reference pipeline for comparison: " + ", ".join(
        f"{n} {ratio(a, b, 'wall'):.2f}× wall, {ratio(a, b, 'cpu'):.2f}× CPU, {ratio(a, b, 'written'):.2f}× written, {ratio(a, b, 'rss'):.2f}× RSS"
        for n, a, b in [("zstd-19 build", o19, r19), ("zstd-3 build", o3, r3), ("squashfs alone zstd-19", sq2, msq)]
        if a and b
    ))


if __name__ == "__main__":
    main(sys.argv[1])
