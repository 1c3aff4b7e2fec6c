#!/usr/bin/env bash
# Prune at scale: reprise vs restic on a repository of a million chunks
# (one million small files, each one data blob in both tools); see
# bench/prune.py and docs/BENCHMARKS.md.
#
#   bench/prune.sh [--files N] [--delete alternate|first-half] [--reprise BIN] [--out FILE] [WORKDIR]
#
# WORKDIR (default /tmp/reprise-prune-bench) holds the dataset (N files:
# ~4 GiB on disk for a million, 1.6 GiB of content) and one repository at a
# time (~1.7 GiB for a million). Run as root so that the page cache can be
# dropped before every timed step. The report goes to
# bench/results/prune-DATE-COMMIT.md (raw figures beside it, .json).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmdline="bench/prune.sh"
for a in "$@"; do cmdline+=" $(printf '%q' "$a")"; done
exec python3 "$here/prune.py" --cmdline "$cmdline" "$@"
