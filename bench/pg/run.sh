#!/usr/bin/env bash
# reprise vs pgBackRest on PostgreSQL, side by side, in one run.
#
#   bench/pg/run.sh [WORKDIR] [options]
#
#   WORKDIR                default /tmp/reprise-pgbench (clusters, repositories,
#                          restores; results in WORKDIR/results)
#   --pgbench-scale N      pgbench -i -s N                        (default 100)
#   --pgbench-tx N         transactions of the run before incr #1 (default 60000)
#   --pgbench-short-tx N   transactions of the run before incr #2 (default 4000)
#   --medic-scale N        medicapp data(scale)                   (default 220, about 1 GB)
#   --medic-tx N           "day of activity" before incr #1       (default 20000)
#   --medic-short-tx N     before incr #2                         (default 2000)
#   --segments N           WAL segments for the archive-push test (default 120)
#   --reps N               repetitions of the archive-push test   (default 5)
#   --datasets LIST        pgbench,medic (default both)
#   --no-block             skip the extra pgBackRest repository with block
#                          incremental (repo-block=y, beta in 2.45)
#   --no-async             skip pgBackRest archive-push with archive-async=y
#   --no-analyze           skip the analysis of changed blocks (bench/pg/blocks.py on
#                          the backed-up files; untimed, after the timed steps)
#   --restore-only         the restores alone, side by side: backups and loads as
#                          usual (their times still recorded), then --restore-reps
#                          rounds of restores with the tools alternating; no
#                          block-incremental repository, archive-push test or
#                          block analysis
#   --restore-reps N       rounds of restores, each one checked (default 1;
#                          3 with --restore-only)
#   --keep                 keep the work directory's data (clusters are always stopped)
#   --quick                tiny scales, for checking the script (about 3 minutes)
#
# REPRISE_BIN=PATH measures that reprise binary instead of building this
# checkout's (gen-dataset, for MedicApp, is then taken as already built).
#
# Run as root (PostgreSQL and pgBackRest run as the postgres account).
# Every restore is started and checked against the source (row counts and
# sums; a mismatch aborts the run). The page cache of the files a timed step
# reads is dropped before it (drop_caches when allowed, else
# posix_fadvise(DONTNEED) on every file of the data directory or
# repository).
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cmdline="bench/pg/run.sh"
for a in "$@"; do cmdline+=" $(printf '%q' "$a")"; done

W=/tmp/reprise-pgbench
PGB_SCALE=100 PGB_TX=60000 PGB_SHORT_TX=4000
MED_SCALE=220 MED_TX=20000 MED_SHORT_TX=2000
SEGMENTS=120 REPS=5 DATASETS=pgbench,medic BLOCK=1 ASYNC=1 ANALYZE=1 KEEP=0
RESTORE_ONLY=0 RESTORE_REPS=
if [[ $# -gt 0 && $1 != --* ]]; then W=$1; shift; fi
while [[ $# -gt 0 ]]; do
    case $1 in
        --pgbench-scale) PGB_SCALE=$2; shift 2 ;;
        --pgbench-tx) PGB_TX=$2; shift 2 ;;
        --pgbench-short-tx) PGB_SHORT_TX=$2; shift 2 ;;
        --medic-scale) MED_SCALE=$2; shift 2 ;;
        --medic-tx) MED_TX=$2; shift 2 ;;
        --medic-short-tx) MED_SHORT_TX=$2; shift 2 ;;
        --segments) SEGMENTS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --datasets) DATASETS=$2; shift 2 ;;
        --no-block) BLOCK=0; shift ;;
        --no-async) ASYNC=0; shift ;;
        --no-analyze) ANALYZE=0; shift ;;
        --restore-only) RESTORE_ONLY=1 BLOCK=0 ANALYZE=0; shift ;;
        --restore-reps) RESTORE_REPS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --quick) PGB_SCALE=5 PGB_TX=4000 PGB_SHORT_TX=400 MED_SCALE=5 MED_TX=2000 MED_SHORT_TX=200 SEGMENTS=12 REPS=1; shift ;;
        -h|--help) sed -n '2,41p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
[[ -n $RESTORE_REPS ]] || { ((RESTORE_ONLY)) && RESTORE_REPS=3 || RESTORE_REPS=1; }
[[ $RESTORE_REPS =~ ^[1-9][0-9]*$ ]] || { echo "--restore-reps: give a whole number of rounds, at least 1" >&2; exit 2; }

PGBIN=/usr/lib/postgresql/15/bin
# REPRISE_BIN: a reprise binary to measure instead of this checkout's
# (before/after comparisons); nothing is built then.
REPRISE=${REPRISE_BIN:-$root/target/release/reprise}
PGBR=$(command -v pgbackrest || true)
[[ -n $PGBR ]] || { apt-get install -y pgbackrest >/dev/null; PGBR=$(command -v pgbackrest); }
GEN=$root/target/release/gen-dataset
if [[ -z ${REPRISE_BIN:-} ]] && command -v cargo >/dev/null; then (cd "$root" && cargo build --release -q && cargo build --release -q -p reprise-bench --bin gen-dataset); fi
[[ -x $REPRISE ]] || { echo "no $REPRISE: cargo build --release" >&2; exit 2; }
export REPRISE_PASSWORD=bench-passphrase-not-secret
PGBR_PASS=bench-cipher-passphrase-not-secret
COMPONENT=db

umask 022
mkdir -p "$W"
W=$(cd "$W" && pwd)
R=$W/results
rm -rf "$R"; mkdir -p "$R"
TSV=$R/results.tsv
LOG=$R/run.log
: >"$TSV"
CLUSTERS=$W/.clusters
: >"$CLUSTERS"
BG_PIDS=()
RUN_START=$(date +%s)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$LOG" >&2; }
die() { log "FAILED: $*"; exit 1; }
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TSV"; log "  $1 $2 $3 = $4"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
as_pg() { runuser -u postgres -- "$@"; }

cleanup() {
    local rc=$?
    set +e
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    if [[ -f $CLUSTERS ]]; then
        while read -r d; do
            [[ -f $d/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" stop -D "$d" -m immediate -w >/dev/null 2>&1
        done <"$CLUSTERS"
    fi
    if [[ $KEEP == 0 ]]; then
        rm -rf "$W/pgbench" "$W/medic" "$W/push" "$W/segments"
    fi
    if [[ $rc != 0 ]]; then
        echo "run.sh failed (exit $rc); log in $LOG" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'log "error at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# --- page cache -------------------------------------------------------------
CACHE_MODE=
evict() {
    sync
    if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        CACHE_MODE="drop_caches"
        return
    fi
    CACHE_MODE="posix_fadvise(DONTNEED) per file"
    python3 - "$@" <<'EOF'
import os, sys
for top in sys.argv[1:]:
    for dp, _, files in os.walk(top):
        for f in files:
            try:
                fd = os.open(os.path.join(dp, f), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
EOF
}

# --- machine ------------------------------------------------------------------
{
    echo "command: $cmdline"
    echo "date: $(date -u +%FT%TZ)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
    echo "ram: $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "kernel: $(uname -r)"
    echo "disk: $(df -h "$W" | awk 'NR==2 {print $1, $2}'); $(lsblk -d -n -o NAME,ROTA,SIZE | tr '\n' ' ')"
    if [[ -n ${REPRISE_BIN:-} ]]; then
        echo "reprise: $("$REPRISE" --version) (REPRISE_BIN=$REPRISE, not built from this checkout)"
    else
        echo "reprise: $("$REPRISE" --version) (git $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" status --short -- crates 2>/dev/null | awk '{printf ", modified: %s", $2}'))"
    fi
    echo "pgbackrest: $($PGBR version)"
    echo "postgresql: $("$PGBIN/postgres" --version)"
    echo "zstd/openssl: $(openssl version)"
} >"$R/machine.txt"
# Disk speed, for reading the numbers: 1 GiB written with fsync, read back cold.
dd if=/dev/zero of="$W/.ddtest" bs=1M count=1024 conv=fsync 2>&1 | tail -1 | sed 's/^/disk write (dd 1 GiB, fsync): /' >>"$R/machine.txt"
evict "$W/.ddtest"
dd if="$W/.ddtest" of=/dev/null bs=1M 2>&1 | tail -1 | sed 's/^/disk read (dd 1 GiB, cold): /' >>"$R/machine.txt"
rm -f "$W/.ddtest"
log "machine: $(tr '\n' ';' <"$R/machine.txt")"

# --- clusters -------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# pg_start DATA RUN PORT [-c k=v ...]: port and socket on the command line so
# that restored copies do not inherit them.
pg_start() {
    local data=$1 run=$2 port=$3; shift 3
    local opts="-c port=$port -c listen_addresses='' -c unix_socket_directories=$run"
    for o in "$@"; do opts+=" $o"; done
    mkdir -p "$run"; chown postgres:postgres "$run"; chmod 700 "$run"
    echo "$data" >>"$CLUSTERS"
    as_pg "$PGBIN/pg_ctl" start -D "$data" -l "$run/server.log" -o "$opts" -w -t 3600 >/dev/null \
        || die "pg_ctl start $data: $(tail -5 "$run/server.log")"
}
pg_stop() { as_pg "$PGBIN/pg_ctl" stop -D "$1" -m fast -w >/dev/null; }
psql_at() { local run=$1 port=$2 db=$3; shift 3; as_pg "$PGBIN/psql" -h "$run" -p "$port" -U postgres -d "$db" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# Waits until a started cluster accepts connections and has left recovery.
wait_promoted() {
    local run=$1 port=$2 data=$3
    local deadline=$((SECONDS + 3600))
    until [[ $(psql_at "$run" "$port" postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; do
        [[ -f $data/postmaster.pid ]] || die "restored cluster $data stopped during recovery: $(tail -5 "$run/server.log")"
        ((SECONDS < deadline)) || die "restored cluster $data still in recovery after an hour"
        sleep 0.02
    done
}

# --- one dataset ------------------------------------------------------------------
# Globals per dataset: D (dir), DATA, RUN, PORT, DB, RREPO, CRED, PLAN, BCONF
src() { psql_at "$RUN" "$PORT" "$DB" "$@"; }

wait_archived() {
    local want last deadline=$((SECONDS + 1800))
    want=$(src -c 'SELECT pg_walfile_name(pg_switch_wal())')
    while :; do
        last=$(src -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        [[ $last > $want || $last == "$want" ]] && break
        [[ $(src -c 'SELECT failed_count FROM pg_stat_archiver') == 0 ]] || die "archive_command failed: $(tail -3 "$D/archive.err" 2>/dev/null; tail -3 "$RUN/server.log")"
        ((SECONDS < deadline)) || die "$want not archived after 30 minutes"
        sleep 0.2
    done
    [[ $(src -c 'SELECT failed_count FROM pg_stat_archiver') == 0 ]] || die "archive_command failed: $(tail -3 "$D/archive.err")"
}

# The fingerprint a restore must reproduce.
fingerprint_sql() {
    if [[ $DB == bench ]]; then
        echo "SELECT (SELECT count(*) FROM pgbench_accounts) || ' accounts, abalance sum ' || (SELECT sum(abalance) FROM pgbench_accounts)
              || ', ' || (SELECT count(*) FROM pgbench_history) || ' history rows, delta sum ' || (SELECT coalesce(sum(delta), 0) FROM pgbench_history)
              || ', bbalance ' || (SELECT sum(bbalance) FROM pgbench_branches) || ', tbalance ' || (SELECT sum(tbalance) FROM pgbench_tellers)"
    else
        local q="SELECT ''" t
        for t in patients procedure_cases documents prescriptions appointments audit_log; do
            q+=" || '$t ' || (SELECT count(*) || '/' || sum(hashtext(x::text)::bigint) FROM $t x) || ' '"
        done
        echo "$q"
    fi
}

bytes_of() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
# reprise: everything but the WAL archive; pgBackRest: backup/ of a repository.
reprise_backup_bytes() { local s=0 d; for d in "$RREPO"/*; do [[ $(basename "$d") == wal ]] || s=$((s + $(bytes_of "$d"))); done; echo $s; }
pgbr_backup_bytes() { bytes_of "$1/backup"; }

pgbr() { as_pg "$PGBR" --config="$BCONF" --stanza=bench --log-level-console=warn "$@"; }

setup_dataset() {
    local name=$1
    D=$W/$name
    rm -rf "$D"; mkdir -p "$D"; chown postgres:postgres "$D"
    DATA=$D/data RUN=$D/run PORT=$(free_port)
    RREPO=$D/reprise-repo CRED=$D/reprise.credential PLAN=$D/reprise.toml
    export XDG_CACHE_HOME=$D/reprise-cache
    as_pg "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
    cat >"$PLAN" <<EOF
[repositories.main]
url = "$RREPO"
password_env = "REPRISE_PASSWORD"

[components.$COMPONENT]
type = "postgres"
connection = "host=$RUN port=$PORT user=postgres dbname=postgres"
data_directory = "$DATA"
archive_timeout = "600s"
EOF
    "$REPRISE" --repo "$RREPO" init >/dev/null
    "$REPRISE" --plan "$PLAN" key add --write-only --credential "$CRED" >/dev/null
    chown -R postgres:postgres "$RREPO" "$CRED"; chmod 600 "$CRED"
    # pgBackRest: repo1 as configured by the brief; repo2 the same plus block
    # incremental (beta in 2.45), reported apart.
    BCONF=$D/pgbackrest.conf
    {
        echo "[global]"
        echo "repo1-path=$D/pgbr-repo"
        echo "repo1-retention-full=9999"
        echo "repo1-cipher-type=aes-256-cbc"
        echo "repo1-cipher-pass=$PGBR_PASS"
        if [[ $BLOCK == 1 ]]; then
            echo "repo2-path=$D/pgbr-block-repo"
            echo "repo2-retention-full=9999"
            echo "repo2-cipher-type=aes-256-cbc"
            echo "repo2-cipher-pass=$PGBR_PASS"
            echo "repo2-bundle=y"
            echo "repo2-block=y"
            echo "beta=y"
        fi
        echo "compress-type=zst"
        echo "process-max=2"
        echo "start-fast=y"
        echo "log-path=$D/pgbr-log"
        echo "lock-path=$D/pgbr-lock"
        echo "spool-path=$D/pgbr-spool"
        echo "[bench]"
        echo "pg1-path=$DATA"
        echo "pg1-socket-path=$RUN"
        echo "pg1-port=$PORT"
        echo "pg1-user=postgres"
    } >"$BCONF"
    chown postgres:postgres "$BCONF"; chmod 600 "$BCONF"
    mkdir -p "$D/pgbr-log" "$D/pgbr-lock" "$D/pgbr-spool"; chown postgres:postgres "$D/pgbr-log" "$D/pgbr-lock" "$D/pgbr-spool"
    # archive_command: both tools in parallel, success only if both succeed;
    # while $D/collect exists, real segments are copied for the push test.
    cat >"$D/archive-reprise-and-pgbackrest.sh" <<EOF
#!/bin/bash
p=\$1 f=\$2
"$REPRISE" --repo "$RREPO" --key-file "$CRED" wal-push $COMPONENT "\$p" 2>>"$D/archive.err" & a=\$!
"$PGBR" --config="$BCONF" --stanza=bench --log-level-console=warn archive-push "\$p" 2>>"$D/archive.err" & b=\$!
ra=0 rb=0
wait \$a || ra=\$?
wait \$b || rb=\$?
if [[ -e "$D/collect" && \$f =~ ^[0-9A-F]{24}\$ && \$(ls "$W/segments" | wc -l) -lt $SEGMENTS ]]; then cp "\$p" "$W/segments/\$f"; fi
exit \$((ra | rb))
EOF
    chmod 755 "$D/archive-reprise-and-pgbackrest.sh"; chown postgres:postgres "$D/archive-reprise-and-pgbackrest.sh"
    cat >>"$DATA/postgresql.conf" <<EOF
# bench/pg/run.sh
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
wal_level = replica
archive_mode = on
archive_command = '$D/archive-reprise-and-pgbackrest.sh %p %f'
EOF
    pg_start "$DATA" "$RUN" "$PORT"
    pgbr stanza-create >/dev/null
}

# Timed backup of both tools (and the block-incremental pgBackRest repo).
# No autovacuum at work: the backups of one round must see the same files.
wait_quiet() {
    local deadline=$((SECONDS + 900))
    while [[ $(src -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'") != 0 ]]; do
        ((SECONDS < deadline)) || die "autovacuum still running after 15 minutes"
        sleep 1
    done
}

backups() {
    local label=$1 type=$2 t out s b
    wait_quiet
    wait_archived
    src -c CHECKPOINT
    # reprise
    evict "$DATA"
    b=$(reprise_backup_bytes)
    t=$(now)
    out=$("$REPRISE" --plan "$PLAN" --json backup $COMPONENT) || die "reprise backup: $out"
    s=$(since "$t")
    rec "$DSET" reprise "${label}_s" "$s"
    rec "$DSET" reprise "${label}_bytes" $(($(reprise_backup_bytes) - b))
    rec "$DSET" reprise "${label}_total_bytes" "$(jq -r '.header.summary.bytes' <<<"$out")"
    rec "$DSET" reprise "${label}_files_read" "$(jq -r '.header.summary.files_read' <<<"$out")"
    rec "$DSET" reprise "${label}_new_bytes" "$(jq -r '.header.summary.new_bytes' <<<"$out")"
    rec "$DSET" reprise "${label}_new_blobs" "$(jq -r '.header.summary.new_blobs' <<<"$out")"
    rec "$DSET" reprise "${label}_stored_bytes_json" "$(jq -r '.header.summary.stored_bytes' <<<"$out")"
    rec "$DSET" reprise "${label}_duration_ms_json" "$(jq -r '.header.summary.duration_ms' <<<"$out")"
    echo "$out" >"$R/$DSET-reprise-$label.json"
    # pgBackRest
    src -c CHECKPOINT
    evict "$DATA"
    b=$(pgbr_backup_bytes "$D/pgbr-repo")
    t=$(now)
    pgbr --repo=1 backup --type="$type" || die "pgbackrest backup --type=$type"
    s=$(since "$t")
    rec "$DSET" pgbackrest "${label}_s" "$s"
    rec "$DSET" pgbackrest "${label}_bytes" $(($(pgbr_backup_bytes "$D/pgbr-repo") - b))
    if [[ $BLOCK == 1 ]]; then
        src -c CHECKPOINT
        evict "$DATA"
        b=$(pgbr_backup_bytes "$D/pgbr-block-repo")
        t=$(now)
        pgbr --repo=2 backup --type="$type" || die "pgbackrest --repo=2 backup --type=$type"
        s=$(since "$t")
        rec "$DSET" pgbackrest-block "${label}_s" "$s"
        rec "$DSET" pgbackrest-block "${label}_bytes" $(($(pgbr_backup_bytes "$D/pgbr-block-repo") - b))
    fi
}

check_restored() {
    local tool=$1 run=$2 port=$3 got
    got=$(psql_at "$run" "$port" "$DB" -c "$(fingerprint_sql)") || die "$tool: cannot query the restored cluster"
    if [[ $got != "$FINGERPRINT" ]]; then
        log "source:   $FINGERPRINT"
        log "restored: $got"
        die "$DSET: the $tool restore differs from the source"
    fi
    log "  $tool restore verified: $got"
    echo "$tool: $got" >>"$R/$DSET-verified.txt"
}

# A timed step: its wall time, its own CPU (user + system, from
# /usr/bin/time into $TIMEF, which counts the children it waited for) and
# the share of the machine other processes used meanwhile (BENCHMARKS 1,
# "Contention": kernel writeback threads count as others).
TIMEF=$W/.time
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
step_begin() { T0=$(now); B0=$(busy_ticks); }
step_end() {
    local b1 u sy
    S=$(since "$T0")
    b1=$(busy_ticks)
    read -r u sy < <(tail -1 "$TIMEF")
    CPU=$(awk -v u="$u" -v s="$sy" 'BEGIN { printf "%.2f", u + s }')
    OTHER=$(awk -v b=$((b1 - B0)) -v hz="$(getconf CLK_TCK)" -v c="$CPU" -v w="$S" -v n="$(nproc)" \
        'BEGIN { o = (b / hz - c) / (w * n) * 100; if (o < 0) o = 0; printf "%.0f", o }')
}
timed() { /usr/bin/time -o "$TIMEF" -f '%U %S' "$@"; }

# reprise: files only (recovery settings written, not started), then a
# restore started, recovered, promoted (--start) and checked.
restore_reprise() {
    local r=$1 out dir
    dir=$D/restore/reprise-files
    evict "$RREPO"
    step_begin
    out=$(timed "$REPRISE" --plan "$PLAN" --json restore $COMPONENT --at latest --to "$dir") || die "reprise restore: $out"
    step_end
    rec "$DSET" reprise "restore_files_s_rep$r" "$S"
    rec "$DSET" reprise "restore_files_cpu_s_rep$r" "$CPU"
    rec "$DSET" reprise "restore_files_other_pct_rep$r" "$OTHER"
    rec "$DSET" reprise restored_bytes "$(bytes_of "$dir")"
    echo "$out" >"$R/$DSET-reprise-restore-files-$r.json"
    rm -rf "$dir"
    dir=$D/restore/reprise
    evict "$RREPO"
    step_begin
    out=$(timed "$REPRISE" --plan "$PLAN" --json restore $COMPONENT --at latest --to "$dir" --start --keep-running) || die "reprise restore --start: $out"
    step_end
    echo "$dir" >>"$CLUSTERS"
    echo "$out" >"$R/$DSET-reprise-restore-start-$r.json"
    rec "$DSET" reprise "restore_promoted_s_rep$r" "$S"
    rec "$DSET" reprise "restore_ms_json_rep$r" "$(jq -r .restore_ms <<<"$out")"
    rec "$DSET" reprise "recovery_ms_json_rep$r" "$(jq -r .recovery_ms <<<"$out")"
    rec "$DSET" reprise wal_segments_replayed "$(jq -r .wal_segments <<<"$out")"
    check_restored reprise "$(jq -r .socket_dir <<<"$out")" "$(jq -r .port <<<"$out")"
    pg_stop "$dir"
    rm -rf "$dir" "$dir.run"
}

# pgBackRest: restore into an empty directory, then start and wait for
# promotion, then check.
restore_pgbr() {
    local r=$1 dir=$D/restore/pgbackrest run=$D/restore/pgbackrest.run port s s2 t2
    port=$(free_port)
    mkdir -p "$dir"; chown postgres:postgres "$dir"; chmod 700 "$dir"
    evict "$D/pgbr-repo"
    step_begin
    timed runuser -u postgres -- "$PGBR" --config="$BCONF" --stanza=bench --log-level-console=warn --repo=1 --pg1-path="$dir" restore || die "pgbackrest restore"
    step_end
    s=$S
    rec "$DSET" pgbackrest "restore_files_s_rep$r" "$s"
    rec "$DSET" pgbackrest "restore_files_cpu_s_rep$r" "$CPU"
    rec "$DSET" pgbackrest "restore_files_other_pct_rep$r" "$OTHER"
    rec "$DSET" pgbackrest restored_bytes "$(bytes_of "$dir")"
    grep -h restore_command "$dir/postgresql.auto.conf" >"$R/$DSET-pgbackrest-restore-command.txt" || true
    t2=$(now)
    pg_start "$dir" "$run" "$port" -c archive_mode=off
    wait_promoted "$run" "$port" "$dir"
    s2=$(since "$t2")
    rec "$DSET" pgbackrest "recovery_s_rep$r" "$s2"
    rec "$DSET" pgbackrest "restore_promoted_s_rep$r" "$(awk -v a="$s" -v b="$s2" 'BEGIN { printf "%.2f", a + b }')"
    check_restored pgbackrest "$run" "$port"
    pg_stop "$dir"
    rm -rf "$dir" "$run"
}

# Rounds of restores of the latest backup, the tools alternating which goes
# first (BENCHMARKS 1, "Equal terms").
restores() {
    local r
    mkdir -p "$D/restore"; chown postgres:postgres "$D/restore"
    for ((r = 1; r <= RESTORE_REPS; r++)); do
        log "   restore round $r of $RESTORE_REPS"
        if ((r % 2)); then
            restore_reprise "$r"
            restore_pgbr "$r"
        else
            restore_pgbr "$r"
            restore_reprise "$r"
        fi
    done
}

# Untimed: the files of the three base backups, restored from reprise's
# snapshots, compared by bench/pg/blocks.py (what each incremental must store).
analyze_blocks() {
    [[ $ANALYZE == 1 ]] || return 0
    python3 -c 'import zstandard' 2>/dev/null || { log "   no python zstandard module: block analysis skipped"; return 0; }
    log "== analysis of changed blocks (untimed)"
    local prev=full step id
    "$REPRISE" --plan "$PLAN" restore "$(jq -r .id "$R/$DSET-reprise-full.json"):pgdata" --to "$D/an-full" >/dev/null || die "restore of the full snapshot"
    : >"$R/$DSET-blocks.md"
    for step in incr1 incr2; do
        id=$(jq -r .id "$R/$DSET-reprise-$step.json")
        "$REPRISE" --plan "$PLAN" restore "$id:pgdata" --to "$D/an-$step" >/dev/null || die "restore of the $step snapshot"
        python3 "$here/blocks.py" "$D/an-$prev" "$D/an-$step" --label "$prev → $step" >>"$R/$DSET-blocks.md" || die "blocks.py"
        rm -rf "$D/an-$prev"
        prev=$step
    done
    rm -rf "$D/an-$prev"
}

archive_sizes() {
    rec "$DSET" reprise wal_archive_bytes "$(bytes_of "$RREPO/wal")"
    rec "$DSET" pgbackrest wal_archive_bytes "$(bytes_of "$D/pgbr-repo/archive")"
    rec "$DSET" reprise repo_bytes "$(bytes_of "$RREPO")"
    rec "$DSET" pgbackrest repo_bytes "$(bytes_of "$D/pgbr-repo")"
    rec "$DSET" source wal_segments_archived "$(find "$D/pgbr-repo/archive" -name '0000*' -size +1k | wc -l)"
}

medic_load() {
    local step=$1 n=$2 half=$(($2 / 2))
    as_pg "$PGBIN/psql" -h "$RUN" -p "$PORT" -U postgres -d medicapp -X -q -v ON_ERROR_STOP=1 -v p="$P" -v step="$step" -v lo=1 -v hi="$half" -f "$here/medicapp-data.sql" &
    local a=$!
    as_pg "$PGBIN/psql" -h "$RUN" -p "$PORT" -U postgres -d medicapp -X -q -v ON_ERROR_STOP=1 -v p="$P" -v step="$step" -v lo=$((half + 1)) -v hi="$n" -f "$here/medicapp-data.sql" &
    local b=$!
    wait $a || die "medicapp load $step"
    wait $b || die "medicapp load $step"
}

pgbench_run() {
    local tx=$1 t
    t=$(now)
    as_pg "$PGBIN/pgbench" -h "$RUN" -p "$PORT" -U postgres -n -c 4 -j 2 -t $((tx / 4)) --random-seed=42 bench >"$R/$DSET-pgbench-$tx.txt" 2>&1 || die "pgbench: $(tail -3 "$R/$DSET-pgbench-$tx.txt")"
    rec "$DSET" source "load_${tx}tx_s" "$(since "$t")"
    rec "$DSET" source "load_${tx}tx_tps" "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$R/$DSET-pgbench-$tx.txt")"
}

medic_day() {
    local tx=$1 t
    t=$(now)
    as_pg "$PGBIN/pgbench" -h "$RUN" -p "$PORT" -U postgres -n -c 2 -j 2 -t $((tx / 2)) --random-seed=42 -D patients="$P" -f "$here/medicapp-day.pgbench" medicapp >"$R/$DSET-day-$tx.txt" 2>&1 || die "day of activity: $(tail -3 "$R/$DSET-day-$tx.txt")"
    rec "$DSET" source "load_${tx}tx_s" "$(since "$t")"
    rec "$DSET" source "load_${tx}tx_tps" "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$R/$DSET-day-$tx.txt")"
}

dataset_pgbench() {
    DSET=pgbench DB=bench
    log "== pgbench -i -s $PGB_SCALE"
    setup_dataset pgbench
    psql_at "$RUN" "$PORT" postgres -c 'CREATE DATABASE bench'
    local t; t=$(now)
    as_pg "$PGBIN/pgbench" -h "$RUN" -p "$PORT" -U postgres -i -s "$PGB_SCALE" -q bench >"$R/pgbench-init.txt" 2>&1 || die "pgbench -i: $(tail -3 "$R/pgbench-init.txt")"
    rec "$DSET" source init_s "$(since "$t")"
    wait_archived
    rec "$DSET" source db_bytes "$(src -c "SELECT pg_database_size('bench')")"
    rec "$DSET" source data_dir_bytes "$(bytes_of "$DATA/base" "$DATA/global")"
    log "== full backups"
    backups full full
    log "== pgbench run: $PGB_TX transactions (-c 4 -j 2 -t $((PGB_TX / 4)))"
    rm -rf "$W/segments"; mkdir -p "$W/segments"; chown postgres:postgres "$W/segments"; touch "$D/collect"
    pgbench_run "$PGB_TX"
    log "== incremental backups #1"
    backups incr1 incr
    log "== pgbench run: $PGB_SHORT_TX transactions"
    pgbench_run "$PGB_SHORT_TX"
    log "== incremental backups #2"
    backups incr2 incr
    wait_archived
    FINGERPRINT=$(src -c "$(fingerprint_sql)")
    log "source: $FINGERPRINT"
    wait_archived
    log "== restores of the latest backup"
    restores
    archive_sizes
    analyze_blocks
    # More real segments for the push test if the runs did not make enough.
    local n
    while ((!RESTORE_ONLY)) && n=$(find "$W/segments" -type f | wc -l) && ((n < SEGMENTS)); do
        log "   $n segments collected; more pgbench for the push test"
        as_pg "$PGBIN/pgbench" -h "$RUN" -p "$PORT" -U postgres -n -c 4 -j 2 -t 5000 bench >/dev/null 2>&1 || die "pgbench (extra WAL)"
        wait_archived
    done
    rm -f "$D/collect"
    ((RESTORE_ONLY)) || archive_push_test
    pg_stop "$DATA"
    [[ $KEEP == 1 ]] || rm -rf "$D"
}

dataset_medic() {
    DSET=medic DB=medicapp P=$((MED_SCALE * 1000))
    log "== medicapp data($MED_SCALE)"
    setup_dataset medic
    psql_at "$RUN" "$PORT" postgres -c 'CREATE DATABASE medicapp'
    # The demo's schema, from its one definition (crates/demo/src/medicapp.rs).
    "$GEN" medicapp-schema >"$D/medicapp-schema.sql" || die "gen-dataset medicapp-schema"
    chown postgres "$D/medicapp-schema.sql"
    src -f "$D/medicapp-schema.sql"
    src -f "$here/medicapp-functions.sql"
    local t; t=$(now)
    medic_load patients "$P"
    medic_load procedure_cases $((3 * P))
    medic_load documents $((3 * P))
    medic_load prescriptions $((2 * P))
    medic_load appointments $((2 * P))
    medic_load audit_log $((10 * P))
    # As pgbench -i does: without it, autovacuum sets hint bits and the
    # visibility map on every freshly loaded page during the day of
    # activity, and every incremental backup carries the whole database.
    src -c 'VACUUM ANALYZE'
    rec "$DSET" source init_s "$(since "$t")"
    wait_archived
    rec "$DSET" source db_bytes "$(src -c "SELECT pg_database_size('medicapp')")"
    rec "$DSET" source data_dir_bytes "$(bytes_of "$DATA/base" "$DATA/global")"
    log "== full backups"
    backups full full
    log "== day of activity: $MED_TX transactions"
    medic_day "$MED_TX"
    log "== incremental backups #1"
    backups incr1 incr
    log "== day of activity: $MED_SHORT_TX transactions"
    medic_day "$MED_SHORT_TX"
    log "== incremental backups #2"
    backups incr2 incr
    wait_archived
    FINGERPRINT=$(src -c "$(fingerprint_sql)")
    log "source: $FINGERPRINT"
    wait_archived
    log "== restores of the latest backup"
    restores
    archive_sizes
    analyze_blocks
    pg_stop "$DATA"
    [[ $KEEP == 1 ]] || rm -rf "$D"
}

# --- archive-push throughput ------------------------------------------------------
# Each tool pushes the same real segments, one process per segment as
# PostgreSQL runs archive_command, as postgres, into a fresh repository.
# Needs the pgbench cluster running (pgBackRest's stanza-create reads it).
# Before each timed loop: sync (no writeback of earlier work competes with
# the pushes' fsyncs) and the segments read into the page cache (PostgreSQL
# archives segments it has just written). The tools alternate order.
push_reprise() {
    local r=$1 segs=$W/segments dir=$W/push/reprise-$1 t s n
    n=$(find "$segs" -type f | wc -l)
    "$REPRISE" --repo "$dir" init >/dev/null
    "$REPRISE" --repo "$dir" key add --write-only --credential "$dir.cred" >/dev/null
    chown -R postgres:postgres "$dir" "$dir.cred"; chmod 600 "$dir.cred"
    cat "$segs"/* >/dev/null
    sync
    t=$(now)
    as_pg bash -c 'for f in "$1"/*; do "$2" --repo "$3" --key-file "$4" wal-push db "$f" || exit 1; done' _ "$segs" "$REPRISE" "$dir" "$dir.cred" || die "reprise wal-push"
    s=$(since "$t")
    [[ $(find "$dir/wal" -type f -name '0000*' | wc -l) == "$n" ]] || die "reprise archive holds $(find "$dir/wal" -type f | wc -l) files, not $n"
    rec wal reprise "push_s_rep$r" "$s"
    rec wal reprise "push_segs_per_s_rep$r" "$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.2f", n / s }')"
    rec wal reprise push_bytes "$(bytes_of "$dir/wal")"
    rm -rf "$dir" "$dir.cred"
}

push_pgbr() {
    local mode=$1 r=$2 segs=$W/segments dir=$W/push/pgbr-$1-$2 t s n got tool=pgbackrest
    [[ $mode == async ]] && tool=pgbackrest-async
    n=$(find "$segs" -type f | wc -l)
    mkdir -p "$dir/log" "$dir/lock" "$dir/spool"; chown -R postgres:postgres "$dir"
    sed -e "s|^repo1-path=.*|repo1-path=$dir/repo|" -e '/^repo2-/d' -e '/^beta=/d' -e "s|^spool-path=.*|spool-path=$dir/spool|" \
        -e "s|^lock-path=.*|lock-path=$dir/lock|" -e "s|^log-path=.*|log-path=$dir/log|" "$BCONF" >"$dir/pgbackrest.conf"
    [[ $mode == async ]] && sed -i 's|^\[global\]|[global]\narchive-async=y|' "$dir/pgbackrest.conf"
    chown postgres:postgres "$dir/pgbackrest.conf"; chmod 600 "$dir/pgbackrest.conf"
    as_pg "$PGBR" --config="$dir/pgbackrest.conf" --stanza=bench --log-level-console=warn stanza-create >/dev/null || die "stanza-create for the push test"
    # A data directory as pgBackRest sees it: pg_control (version and system
    # identifier checks) and pg_wal with archive_status/*.ready (async looks
    # ahead through them, as in a real pg_wal).
    local pgd=$dir/pgdata wal=$dir/pgdata/pg_wal
    mkdir -p "$pgd/global" "$wal/archive_status"
    cp "$DATA/PG_VERSION" "$pgd/"; cp "$DATA/global/pg_control" "$pgd/global/"
    cp "$segs"/* "$wal/"
    for f in "$segs"/*; do : >"$wal/archive_status/$(basename "$f").ready"; done
    chown -R postgres:postgres "$pgd"; chmod 700 "$pgd"
    cat "$wal"/0* >/dev/null
    sync
    t=$(now)
    as_pg bash -c 'for f in "$1"/0*; do "$2" --config="$3" --stanza=bench --log-level-console=warn --pg1-path="$4" archive-push "$f" || exit 1; done' _ "$wal" "$PGBR" "$dir/pgbackrest.conf" "$pgd" || die "pgbackrest archive-push ($mode)"
    s=$(since "$t")
    got=$(find "$dir/repo/archive" -type f -name '0000*' | wc -l)
    [[ $got == "$n" ]] || die "pgbackrest ($mode) archive holds $got segments, not $n"
    rec wal "$tool" "push_s_rep$r" "$s"
    rec wal "$tool" "push_segs_per_s_rep$r" "$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.2f", n / s }')"
    rec wal "$tool" push_bytes "$(bytes_of "$dir/repo/archive")"
    rm -rf "$dir"
}

archive_push_test() {
    local n r
    n=$(find "$W/segments" -type f | wc -l)
    log "== archive-push: $n segments, $REPS repetitions"
    rec wal source segments "$n"
    rec wal source segment_bytes "$(bytes_of "$W/segments")"
    mkdir -p "$W/push"; chown postgres:postgres "$W/push"
    for ((r = 1; r <= REPS; r++)); do
        if ((r % 2)); then
            push_reprise "$r"
            push_pgbr sync "$r"
        else
            push_pgbr sync "$r"
            push_reprise "$r"
        fi
        if [[ $ASYNC == 1 ]]; then push_pgbr async "$r"; fi
    done
}

IFS=, read -ra sets <<<"$DATASETS"
for s in "${sets[@]}"; do
    case $s in
        pgbench) dataset_pgbench ;;
        medic) dataset_medic ;;
        *) die "unknown dataset $s" ;;
    esac
done

rec run source total_s $(($(date +%s) - RUN_START))
echo "page cache: $CACHE_MODE" >>"$R/machine.txt"
python3 "$here/report.py" "$R" >"$R/results.md"
log "done in $(($(date +%s) - RUN_START)) s: $R/results.md"
cat "$R/results.md"
