#!/usr/bin/env bash
# What synchronous streaming costs: commit latency and transactions/s with
# no standby, reprise wal-stream asynchronous and --synchronous (local disk
# and an S3 server, moto), and pg_receivewal --synchronous; see
# bench/stream.py and docs/BENCHMARKS.md.
#
#   bench/stream.sh [--seconds N] [--repeat N] [--clients 1,8] [--storage local,s3] [--reprise BIN] [--moto PATH] [WORKDIR]
#
# Run as root, after `cargo build --release -p reprise`. Every run is
# bounded (--seconds, 10 by default; 7 setups x 2 client counts x --repeat 3). The
# report goes to bench/results/stream-DATE-COMMIT.md (raw figures beside
# it, .json).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmdline="bench/stream.sh"
for a in "$@"; do cmdline+=" $(printf '%q' "$a")"; done
exec python3 "$here/stream.py" --cmdline "$cmdline" "$@"
