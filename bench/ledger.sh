#!/usr/bin/env bash
# What the evidence ledger costs: one append next to a no-change backup, and
# 100,000 appends then verify; see bench/ledger.py and docs/BENCHMARKS.md
# section 11.
#
#   bench/ledger.sh [--reps N] [--count N] [WORKDIR]
#
# Builds the release binaries first. WORKDIR (default
# /tmp/reprise-ledger-bench) holds the signed-documents dataset (917 MiB)
# and the repositories. The report goes to bench/results/ledger-DATE-COMMIT.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
cargo build --release -p reprise -p reprise-bench --bin reprise --bin ledger-bench --bin gen-dataset
cmdline="bench/ledger.sh"
for a in "$@"; do cmdline+=" $(printf '%q' "$a")"; done
exec python3 "$here/ledger.py" --cmdline "$cmdline" "$@"
