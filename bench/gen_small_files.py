#!/usr/bin/env python3
"""Writes N small files of random bytes, deterministic for a seed (stdlib only).

    bench/gen_small_files.py OUT N [SEED] [--per-dir 1000] [--min 200] [--max 3072]

OUT/dNNNNN/fNNNNN, PER_DIR files a directory, each MIN..MAX bytes (uniform)
of seeded pseudo-random bytes: smaller than reprise's minimum chunk (4 KiB)
and restic's (512 KiB), so every file is exactly one data blob in both
tools, and incompressible, so no tool gains from compression. Used by
bench/prune.sh for a repository of a million chunks.
"""

import argparse
import os
import random
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("n", type=int)
    ap.add_argument("seed", type=int, nargs="?", default=1)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--min", type=int, default=200)
    ap.add_argument("--max", type=int, default=3072)
    a = ap.parse_args()
    if a.n < 0 or a.per_dir < 1 or not 0 < a.min <= a.max:
        sys.exit("gen_small_files: bad arguments")
    rng = random.Random(a.seed)
    t0 = time.perf_counter()
    total = 0
    dirs = (a.n + a.per_dir - 1) // a.per_dir
    width = max(5, len(str(dirs)))
    for d in range(dirs):
        dp = os.path.join(a.out, f"d{d:0{width}d}")
        os.makedirs(dp, exist_ok=True)
        for i in range(min(a.per_dir, a.n - d * a.per_dir)):
            size = rng.randint(a.min, a.max)
            data = rng.randbytes(size)
            fd = os.open(os.path.join(dp, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            total += size
    # Fixed times, so that the tree (and the tree blobs) are the same for
    # every run with the same arguments.
    for d in range(dirs):
        dp = os.path.join(a.out, f"d{d:0{width}d}")
        for fn in os.listdir(dp):
            os.utime(os.path.join(dp, fn), (1_700_000_000, 1_700_000_000))
        os.utime(dp, (1_700_000_000, 1_700_000_000))
    print(f"small-files: {a.n} files in {dirs} directories, {total} bytes in {a.out} "
          f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
