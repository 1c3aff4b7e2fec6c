#!/usr/bin/env python3
"""Turns criterion's results for crates/bench/benches/kernels.rs into a
Markdown table: each reprise kernel in MB/s (10^6 bytes per second, from the
median time), next to the limit measured in the same harness on this CPU.

usage: kernels_table.py CRITERION_DIR [COMMAND] [SECONDS]
"""
import json
import os
import platform
import sys

# (kernel benchmark, what it is, limit benchmark, what the limit is)
ROWS = [
    ("kernel/fastcdc-cut-random-8MiB", "FastCDC 4/16/64 KiB (`Chunker::cut`), random data",
     "limit/memcpy-256MiB", "memory bandwidth (256 MiB memcpy)"),
    ("kernel/fastcdc-cut-text-8MiB", "FastCDC 4/16/64 KiB (`Chunker::cut`), text",
     "limit/memcpy-256MiB", "memory bandwidth (256 MiB memcpy)"),
    ("kernel/keyed-blake3-blob_id-16KiB", "keyed BLAKE3 (`IdKey::blob_id`), 16 KiB chunks",
     "limit/blake3-unkeyed-1thread-16KiB", "unkeyed BLAKE3, 1 thread, 16 KiB inputs"),
    ("kernel/keyed-blake3-blob_id-8MiB", "keyed BLAKE3 (`IdKey::blob_id`), one 8 MiB input",
     "limit/blake3-unkeyed-1thread-8MiB", "unkeyed BLAKE3, 1 thread, 8 MiB"),
    ("kernel/keyed-blake3-blob_id-8MiB", "keyed BLAKE3 (`IdKey::blob_id`), one 8 MiB input",
     "limit/blake3-unkeyed-allcores-8MiB", "unkeyed BLAKE3, all cores (rayon), 8 MiB"),
    ("kernel/aes256gcm-seal_in_place-16KiB", "AES-256-GCM (`SymmetricKey::seal_in_place`), 16 KiB",
     "limit/ring-aes256gcm-16KiB", "`ring` AES-256-GCM, key expanded once, 16 KiB"),
    ("kernel/aes256gcm-seal_in_place-16KiB", "AES-256-GCM (`SymmetricKey::seal_in_place`), 16 KiB",
     "limit/ring-aes256gcm-8MiB", "`ring` AES-256-GCM, one 8 MiB buffer"),
    ("kernel/compress-l3-text-16KiB", "`pack::compress(_, 3)`, text, 16 KiB chunks",
     "limit/zstd-bulk-l3-text-16KiB", "`zstd::bulk::compress` level 3, text, 16 KiB"),
    ("kernel/compress-l3-random-16KiB", "`pack::compress(_, 3)`, random, 16 KiB chunks",
     "limit/memcpy-16KiB-pieces", "copying the chunk (what storing it costs)"),
    ("kernel/compress-l3-random-16KiB", "`pack::compress(_, 3)`, random, 16 KiB chunks",
     "limit/zstd-bulk-l3-random-16KiB", "`zstd::bulk::compress` level 3, random, 16 KiB"),
    ("kernel/compress-l3-random-64KiB", "`pack::compress(_, 3)`, random, 64 KiB chunks",
     "limit/memcpy-16KiB-pieces", "copying the chunk (what storing it costs)"),
    ("kernel/packwriter-add-16KiB", "`PackWriter::add` (seal + copies), 16 KiB",
     "limit/ring-aes256gcm-16KiB", "`ring` AES-256-GCM, key expanded once, 16 KiB"),
    ("path/new-chunk-1thread-mixed-8MiB", "whole new-chunk path, 1 thread, document-like mix (3/4 random)",
     "limit/memcpy-256MiB", "memory bandwidth (256 MiB memcpy)"),
    ("path/new-chunk-1thread-random-8MiB", "whole new-chunk path, 1 thread, random",
     "limit/memcpy-256MiB", "memory bandwidth (256 MiB memcpy)"),
    ("path/new-chunk-1thread-text-8MiB", "whole new-chunk path, 1 thread, text",
     "limit/memcpy-256MiB", "memory bandwidth (256 MiB memcpy)"),
]


def load(crit):
    """{full id: MB/s} for every benchmark with a byte throughput."""
    out = {}
    for dp, _, fns in os.walk(crit):
        if os.path.basename(dp) != "new" or "benchmark.json" not in fns or "estimates.json" not in fns:
            continue
        with open(os.path.join(dp, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dp, "estimates.json")) as f:
            est = json.load(f)
        nbytes = (bench.get("throughput") or {}).get("Bytes") or (bench.get("throughput") or {}).get("BytesDecimal")
        if not nbytes:
            continue
        ns = est["median"]["point_estimate"]
        out[bench["full_id"]] = nbytes / (ns / 1e9) / 1e6
    return out


def machine():
    cpu, flags = "unknown", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                fl = line.split(":", 1)[1].split()
                flags = [x for x in ("aes", "vaes", "vpclmulqdq", "avx2", "avx512f", "sha_ni") if x in fl]
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 2**20
    return f"{cpu}, {os.cpu_count()} cores ({' '.join(flags)}), {mem:.1f} GiB RAM, Linux {platform.release()}"


def main():
    crit = sys.argv[1]
    cmd = sys.argv[2] if len(sys.argv) > 2 else "bench/kernels.sh"
    secs = sys.argv[3] if len(sys.argv) > 3 else None
    mb = load(crit)
    missing = sorted({k for r in ROWS for k in (r[0], r[2])} - set(mb))
    if missing:
        print(f"kernels_table: no results for {', '.join(missing)} in {crit}", file=sys.stderr)
        sys.exit(1)
    print("## Kernel throughput (criterion, single thread unless noted)")
    print()
    print(f"Produced by `{cmd}`" + (f" in {int(secs) / 60:.1f} min" if secs else "") + f"; {machine()}.")
    print("MB/s = 10^6 bytes per second of input, from criterion's median time.")
    print()
    print("| Kernel | MB/s | Limit on this CPU | MB/s | Kernel ÷ limit |")
    print("|---|---:|---|---:|---:|")
    for k, kd, l, ld in ROWS:
        print(f"| {kd} | {mb[k]:,.0f} | {ld} | {mb[l]:,.0f} | {mb[k] / mb[l]:.2f} |")
    print()
    # The whole path is one thread doing every step in turn: compare it with
    # the sum of its parts measured separately.
    parts = {
        "random": ["kernel/fastcdc-cut-random-8MiB", "kernel/keyed-blake3-blob_id-16KiB",
                   "kernel/compress-l3-random-16KiB", "kernel/packwriter-add-16KiB"],
        "text": ["kernel/fastcdc-cut-text-8MiB", "kernel/keyed-blake3-blob_id-16KiB",
                 "kernel/compress-l3-text-16KiB", "kernel/packwriter-add-16KiB"],
    }
    print("| Whole new-chunk path, 1 thread | measured MB/s | sum of its parts (1 / Σ 1/MB/s) | measured ÷ parts | × 2 cores, MB/s |")
    print("|---|---:|---:|---:|---:|")
    for name, ks in parts.items():
        pred = 1 / sum(1 / mb[k] for k in ks)
        got = mb[f"path/new-chunk-1thread-{name}-8MiB"]
        print(f"| {name} | {got:,.0f} | {pred:,.0f} | {got / pred:.2f} | {2 * got:,.0f} |")
    got = mb["path/new-chunk-1thread-mixed-8MiB"]
    print(f"| mixed (3/4 random, 1/4 text) | {got:,.0f} | | | {2 * got:,.0f} |")
    print()
    print("All results (MB/s):")
    print()
    print("| Benchmark | MB/s |")
    print("|---|---:|")
    for k in sorted(mb):
        print(f"| `{k}` | {mb[k]:,.0f} |")


if __name__ == "__main__":
    main()
