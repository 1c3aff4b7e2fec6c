#!/usr/bin/env bash
# Runs every cargo-fuzz target of reprise-format for N seconds each.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     SECONDS defaults to 20; all targets by default
#
# Exits non-zero if any target crashes (panic, failed assertion, abort, timeout,
# out-of-memory) or fails to build. New corpus entries go to fuzz/corpus/<target>
# (gitignored), crash inputs to fuzz/artifacts/<target>/ (gitignored), one log
# per target to fuzz/logs/<target>.log (gitignored). The checked-in seeds in
# fuzz/seeds/<target>/ are read, never written.
#
# Needs only a stable Rust toolchain and a C++ compiler (libFuzzer is built from
# source by libfuzzer-sys): cargo-fuzz's nightly-only flags (-Zsanitizer, ...) are
# unlocked with RUSTC_BOOTSTRAP=1. cargo-fuzz is installed if missing.
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address. reprise-format forbids unsafe code,
#                   so ASan only checks dependencies' unsafe code; it costs 3-10x
#                   in executions per second.
#   FUZZ_ARGS       extra libFuzzer arguments, e.g. "-max_len=65536".
set -euo pipefail

secs="${1:-20}"
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [[ "$secs" -eq 0 ]]; then
    echo "usage: $0 [SECONDS>0] [TARGET...]" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"
CARGO_FUZZ_VERSION="0.13.2"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building ${#targets[@]} targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

mkdir -p logs
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    log="logs/$t.log"
    echo "==> $t for ${secs}s"
    # Read-only seeds come after the writable corpus directory.
    # shellcheck disable=SC2086
    if cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        ${FUZZ_ARGS:-} >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed+=("$t")
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    line="$(printf '%-18s %-6s execs=%-10s exec/s=%s' "$t" "$status" "${execs:-?}" "${rate:-?}")"
    summary+=("$line")
    echo "$line"
    if [[ $status != ok ]]; then
        grep -E -A1 "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to|Base64:" "$log" | head -20 || true
        echo "    full log: fuzz/$log"
    fi
done

echo
echo "==> summary (${secs}s per target, sanitizer: $sanitizer)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (inputs under fuzz/artifacts/<target>/; reproduce in fuzz/ with"
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer <target> artifacts/<target>/<file>)"
    exit 1
fi
echo "all ${#targets[@]} targets ran without a crash"
