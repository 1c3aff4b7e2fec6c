#!/usr/bin/env python3
"""What an incremental backup has to store, measured on two copies of a data
directory (the files of two base backups, restored by bench/pg/run.sh).

    python3 bench/pg/blocks.py OLD_DIR NEW_DIR [--label TEXT]

For the files under base/ and global/ (relations: what both tools back up,
apart from a few small files), prints one Markdown table row set:

* files that differ: what a file-level incremental (pgBackRest without block
  incremental) copies, and their size compressed whole with zstd -3;
* changed 8 KiB pages, and changed blocks of 32 KiB, 128 KiB and
  1 MiB: the share of the data a block-level incremental must store at each
  granularity;
* the changed 32 KiB blocks compressed one by one with zstd -3 (how reprise
  compresses them), against the same bytes compressed as one stream.

Needs the `zstandard` module (pip install zstandard).
"""
import argparse
import os
import sys

import zstandard

ap = argparse.ArgumentParser()
ap.add_argument("old")
ap.add_argument("new")
ap.add_argument("--label", default="")
a = ap.parse_args()

PAGE = 8192
GRAINS = (8192, 32768, 131072, 1048576)
cctx = zstandard.ZstdCompressor(level=3)

total = 0
files = 0
changed_files = 0
changed_file_bytes = 0
changed_file_zstd = 0
changed = {g: 0 for g in GRAINS}
blocks32_zstd = 0
blocks32_stream = cctx.compressobj()
blocks32_stream_len = 0
total_zstd_whole = 0
total_zstd_blocks = 0

for sub in ("base", "global"):
    top = os.path.join(a.new, sub)
    for dp, _, names in os.walk(top):
        for n in sorted(names):
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, a.new)
            with open(p, "rb") as f:
                new = f.read()
            try:
                with open(os.path.join(a.old, rel), "rb") as f:
                    old = f.read()
            except FileNotFoundError:
                old = b""
            files += 1
            total += len(new)
            whole = len(cctx.compress(new))
            total_zstd_whole += whole
            for i in range(0, len(new), 32768):
                total_zstd_blocks += len(cctx.compress(new[i : i + 32768]))
            if new == old:
                continue
            changed_files += 1
            changed_file_bytes += len(new)
            changed_file_zstd += whole
            for g in GRAINS:
                for i in range(0, len(new), g):
                    if new[i : i + g] != old[i : i + g]:
                        changed[g] += min(g, len(new) - i)
                        if g == 32768:
                            blk = new[i : i + g]
                            blocks32_zstd += len(cctx.compress(blk))
                            blocks32_stream_len += len(blocks32_stream.compress(blk))
blocks32_stream_len += len(blocks32_stream.flush())

mib = lambda b: f"{b / 1048576:,.1f} MiB"
pct = lambda b: f"{100 * b / total:.0f}%" if total else "–"
print(f"**{a.label or a.new}**\n")
print(f"Relation files (base/, global/): {files} files, {mib(total)}; compressed with zstd -3 whole files {mib(total_zstd_whole)}, "
      f"in independent 32 KiB blocks {mib(total_zstd_blocks)} ({total_zstd_blocks / max(total_zstd_whole, 1):.2f}×).\n")
print("| what changed | raw | share | zstd -3 |")
print("|---|---:|---:|---:|")
print(f"| files that differ ({changed_files}), whole: a file-level incremental | {mib(changed_file_bytes)} | {pct(changed_file_bytes)} | {mib(changed_file_zstd)} |")
for g in GRAINS:
    label = f"{g // 1024} KiB blocks that differ" + (" (reprise's block)" if g == 32768 else "")
    extra = ""
    if g == 32768:
        extra = f"{mib(blocks32_zstd)} one by one; {mib(blocks32_stream_len)} as one stream"
    print(f"| {label} | {mib(changed[g])} | {pct(changed[g])} | {extra} |")
print()
sys.stdout.flush()
