#!/usr/bin/env bash
# What deduplication domains cost: two hosts backing up mostly the same data,
# with the previous format's binary and with this one; see bench/domains.py
# and docs/BENCHMARKS.md section 10.
#
#   bench/domains.sh --before BIN --after BIN [--work DIR] [--reps N] [--out FILE]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmdline="bench/domains.sh"
for a in "$@"; do cmdline+=" $(printf '%q' "$a")"; done
exec python3 "$here/domains.py" --cmdline "$cmdline" "$@"
