#!/usr/bin/env bash
# Kernel micro-benchmarks (crates/bench/benches/kernels.rs, criterion), each
# next to the limit this CPU puts on it, printed as a Markdown table.
#
#   bench/kernels.sh [--out FILE]
#
# The table also goes to FILE [default: $TARGET/criterion/kernels.md].
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/criterion/kernels.md"
if [[ "${1:-}" == "--out" ]]; then out="$2"; fi
cd "$root"
# Stale results of renamed benchmarks must not reach the table.
rm -rf "$target/criterion/limit" "$target/criterion/kernel" "$target/criterion/path"
start=$(date +%s)
cargo bench -p reprise-bench --bench kernels >&2
python3 "$root/bench/kernels_table.py" "$target/criterion" "bench/kernels.sh${1:+ $*}" "$(( $(date +%s) - start ))" | tee "$out"
echo "table written to $out" >&2
