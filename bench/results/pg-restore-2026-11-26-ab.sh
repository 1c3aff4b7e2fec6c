#!/bin/bash
# Alternating restores of the data a bench/pg/run.sh --keep run left in /tmp/rs-pgbench:
# before, after, pgBackRest, page cache dropped before each. Kept as the record of how
# the by-hand figures of BENCHMARKS 6 were measured.
# usage: rs-ab.sh ROUNDS
set -eu
W=/tmp/rs-pgbench/pgbench
export REPRISE_PASSWORD=bench-passphrase-not-secret XDG_CACHE_HOME=$W/reprise-cache
# The two binaries compared (copies of target/release/reprise at each commit).
BEFORE=${BEFORE:-/work/rs-reprise-before} AFTER=${AFTER:-/work/rs-reprise-window}
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
one() { # tool
    local tool=$1 dir=/tmp/rs-pgbench/ab-$1 t0 b0 s b1 u sy
    rm -rf "$dir"
    if [[ $tool == pgbr ]]; then mkdir -p "$dir"; chown postgres:postgres "$dir"; chmod 700 "$dir"; fi
    sync; echo 3 >/proc/sys/vm/drop_caches
    t0=$(date +%s.%N); b0=$(busy)
    case $tool in
        before) /usr/bin/time -o /tmp/rs-ab.time -f '%U %S' $BEFORE --plan $W/reprise.toml restore db --at latest --to "$dir" >/dev/null ;;
        after) /usr/bin/time -o /tmp/rs-ab.time -f '%U %S' $AFTER --plan $W/reprise.toml restore db --at latest --to "$dir" >/dev/null ;;
        pgbr) /usr/bin/time -o /tmp/rs-ab.time -f '%U %S' runuser -u postgres -- pgbackrest --config=$W/pgbackrest.conf --stanza=bench --log-level-console=warn --repo=1 --pg1-path="$dir" restore ;;
    esac
    s=$(awk -v a=$t0 -v b=$(date +%s.%N) 'BEGIN{printf "%.2f", b-a}'); b1=$(busy)
    read -r u sy < <(tail -1 /tmp/rs-ab.time)
    awk -v t=$tool -v s=$s -v u=$u -v sy=$sy -v b=$((b1-b0)) -v hz=$(getconf CLK_TCK) 'BEGIN{o=(b/hz-u-sy)/(s*2)*100; if(o<0)o=0; printf "%s\t%.2f\tcpu %.2f\tother %.0f%%\n", t, s, u+sy, o}'
    du -sb "$dir" | cut -f1 >/tmp/rs-ab.size.$tool
    rm -rf "$dir"
}
for ((r = 1; r <= $1; r++)); do
    case $((r % 3)) in
        1) order="before after pgbr" ;;
        2) order="after pgbr before" ;;
        0) order="pgbr before after" ;;
    esac
    for t in $order; do echo -n "round $r "; one $t; done
done
