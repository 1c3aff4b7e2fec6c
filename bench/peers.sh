#!/usr/bin/env bash
# reprise vs restic vs borg on three datasets, in one run; see bench/peers.py
# and docs/BENCHMARKS.md.
#
#   bench/peers.sh [WORKDIR] [--reps N] [--datasets ref-docs,docs,source] [--out FILE]
#                  [--reprise BIN --gen-dataset BIN]
#
# WORKDIR (default /tmp/reprise-bench) holds the datasets, the repositories
# and the restores of all three tools: the same disk for all. Run as root so
# that the page cache can be dropped before every timed step.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmdline="bench/peers.sh"
for a in "$@"; do cmdline+=" $(printf '%q' "$a")"; done
exec python3 "$here/peers.py" --cmdline "$cmdline" "$@"
