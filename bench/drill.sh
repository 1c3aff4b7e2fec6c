#!/usr/bin/env bash
# The drill benchmark (issue 11, item 8): a PostgreSQL database of at least
# 5 GB (pgbench plus the MedicApp schema) and its signed documents, restored
# by reprise and by pgBackRest from backups of the same cluster taken in the
# same run; every phase timed, each restored cluster started until
# consistent and promoted, then checked against the source.
#
#   bench/drill.sh [WORKDIR] [options]
#
#   WORKDIR              default /tmp/reprise-drill (removed at the end unless --keep)
#   --pgbench-scale N    pgbench -i -s N           (default 260, about 3.9 GB)
#   --medic-scale N      MedicApp data(scale)      (default 300, about 1.3 GB)
#   --docs N             signed documents, gen_docs.py (default 8000, about 1.8 GB)
#   --tx N               pgbench transactions after the backups, replayed
#                        by each restore        (default 20000)
#   --reps N             rounds of restores, the tools alternating (default 1)
#   --drill              the reprise side as `reprise drill run bench`
#                        (BENCHMARKS 6) instead of its phases one command each
#   --keep               keep the work directory
#   --quick              tiny scales, for checking the script (about 2 minutes)
#
# Run as root (PostgreSQL and pgBackRest run as postgres). Needs about 3.5×
# the database size free under WORKDIR; the script checks before it starts.
# Settings as bench/pg/run.sh (BENCHMARKS 6): pgBackRest process-max=2,
# zstd 3, aes-256-cbc; reprise defaults. The page cache is dropped before
# every timed step.
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
W=/tmp/reprise-drill
PGB_SCALE=260 MED_SCALE=300 DOCS=8000 TX=20000 REPS=1 DRILL=0 KEEP=0
if [[ $# -gt 0 && $1 != --* ]]; then W=$1; shift; fi
while [[ $# -gt 0 ]]; do
    case $1 in
        --pgbench-scale) PGB_SCALE=$2; shift 2 ;;
        --medic-scale) MED_SCALE=$2; shift 2 ;;
        --docs) DOCS=$2; shift 2 ;;
        --tx) TX=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --drill) DRILL=1; shift ;;
        --keep) KEEP=1; shift ;;
        --quick) PGB_SCALE=5 MED_SCALE=5 DOCS=200 TX=2000; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument $1: see --help" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }

PGBIN=/usr/lib/postgresql/15/bin
REPRISE=${REPRISE_BIN:-$root/target/release/reprise}
GEN=$root/target/release/gen-dataset
GEN_DOCS=$root/../shared/bench/gen_docs.py
[[ -f $GEN_DOCS ]] || GEN_DOCS=/work/shared/bench/gen_docs.py
PGBR=$(command -v pgbackrest || true)
[[ -n $PGBR ]] || { apt-get install -y pgbackrest >/dev/null; PGBR=$(command -v pgbackrest); }
if [[ -z ${REPRISE_BIN:-} ]] && command -v cargo >/dev/null; then
    (cd "$root" && cargo build --release -q -p reprise --bin reprise && cargo build --release -q -p reprise-bench --bin gen-dataset)
fi
for f in "$REPRISE" "$GEN"; do [[ -x $f ]] || { echo "no $f: cargo build --release" >&2; exit 2; }; done
[[ -f $GEN_DOCS ]] || { echo "no gen_docs.py (shared/bench/gen_docs.py)" >&2; exit 2; }
export REPRISE_PASSWORD=bench-passphrase-not-secret
PGBR_PASS=bench-cipher-passphrase-not-secret

# Database ≈ 15 MB per pgbench scale unit + 4.4 MB per MedicApp unit; the
# source, both repositories, one restored copy and the documents twice.
need_gb=$(((PGB_SCALE * 15 + MED_SCALE * 5) * 35 / 10 / 1000 + DOCS * 230 * 3 / 1000000 + 1))
mkdir -p "$W"; W=$(cd "$W" && pwd)
free_gb=$(df -BG --output=avail "$W" | tail -1 | tr -dc 0-9)
((free_gb >= need_gb)) || { echo "$W has $free_gb GB free, this dataset needs about $need_gb GB: choose another WORKDIR or smaller scales" >&2; exit 2; }

umask 022
R=$W/results
rm -rf "$R"; mkdir -p "$R"
TSV=$R/results.tsv LOG=$R/run.log
: >"$TSV"
CLUSTERS=()
RUN_START=$(date +%s)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$LOG" >&2; }
die() { log "FAILED: $*"; exit 1; }
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$TSV"; log "  $1 $2 = $3"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
as_pg() { runuser -u postgres -- "$@"; }

cleanup() {
    local rc=$? d
    set +e
    for d in "${CLUSTERS[@]}"; do
        [[ -f $d/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" stop -D "$d" -m immediate -w >/dev/null 2>&1
    done
    # Health data must not linger: everything but the results goes.
    if [[ $KEEP == 0 ]]; then
        find "$W" -mindepth 1 -maxdepth 1 ! -name results -exec rm -rf {} +
    fi
    [[ $rc == 0 ]] || echo "drill.sh failed (exit $rc); log in $LOG" >&2
    exit $rc
}
trap cleanup EXIT
trap 'log "error at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

evict() { sync; echo 3 >/proc/sys/vm/drop_caches; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_start() {
    local data=$1 run=$2 port=$3; shift 3
    local opts="-c port=$port -c listen_addresses='' -c unix_socket_directories=$run" o
    for o in "$@"; do opts+=" $o"; done
    mkdir -p "$run"; chown postgres:postgres "$run"; chmod 700 "$run"
    CLUSTERS+=("$data")
    as_pg "$PGBIN/pg_ctl" start -D "$data" -l "$run/server.log" -o "$opts" -w -t 3600 >/dev/null || die "pg_ctl start $data: $(tail -5 "$run/server.log")"
}
pg_stop() { as_pg "$PGBIN/pg_ctl" stop -D "$1" -m fast -w >/dev/null; }
psql_at() { local run=$1 port=$2 db=$3; shift 3; as_pg "$PGBIN/psql" -h "$run" -p "$port" -U postgres -d "$db" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
src() { psql_at "$RUN" "$PORT" "$@"; }
wait_promoted() {
    local run=$1 port=$2 data=$3 deadline=$((SECONDS + 3600))
    until [[ $(psql_at "$run" "$port" postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; do
        [[ -f $data/postmaster.pid ]] || die "restored cluster $data stopped during recovery: $(tail -5 "$run/server.log")"
        ((SECONDS < deadline)) || die "restored cluster $data still in recovery after an hour"
        sleep 0.05
    done
}
wait_archived() {
    local want last deadline=$((SECONDS + 1800))
    want=$(src postgres -c 'SELECT pg_walfile_name(pg_switch_wal())')
    while last=$(src postgres -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"); [[ $last < $want ]]; do
        [[ $(src postgres -c 'SELECT failed_count FROM pg_stat_archiver') == 0 ]] || die "archive_command failed: $(tail -3 "$W/archive.err")"
        ((SECONDS < deadline)) || die "$want not archived after 30 minutes"
        sleep 0.2
    done
}
# What every restore must reproduce: counts and sums of every table of both databases.
fingerprint() {
    local run=$1 port=$2 q t
    psql_at "$run" "$port" bench -c "SELECT count(*) || '/' || sum(abalance) || ' ' || (SELECT count(*) || '/' || coalesce(sum(delta), 0) FROM pgbench_history) FROM pgbench_accounts"
    q="SELECT ''"
    for t in patients procedure_cases documents prescriptions appointments audit_log; do
        q+=" || '$t ' || (SELECT count(*) || '/' || sum(hashtext(x::text)::bigint) FROM $t x) || ' '"
    done
    psql_at "$run" "$port" medicapp -c "$q"
}
check_cluster() {
    local tool=$1 got
    got=$(fingerprint "$2" "$3") || die "$tool: cannot query the restored cluster"
    [[ $got == "$FINGERPRINT" ]] || { log "source:   $FINGERPRINT"; log "restored: $got"; die "the $tool restore differs from the source"; }
    log "  $tool: restored cluster verified"
}
manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

# --- the source ---------------------------------------------------------------
D=$W/src DATA=$W/src/data RUN=$W/src/run PORT=$(free_port)
mkdir -p "$D"; chown postgres:postgres "$D"
as_pg "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
RREPO=$W/reprise-repo PLAN=$W/reprise.toml DOCS_DIR=$W/documents
export XDG_CACHE_HOME=$W/reprise-cache
cat >"$PLAN" <<EOF
[repositories.main]
url = "$RREPO"
password_env = "REPRISE_PASSWORD"

[components.db]
type = "postgres"
connection = "host=$RUN port=$PORT user=postgres dbname=postgres"
data_directory = "$DATA"
archive_timeout = "600s"

[components.db.objectives]
rpo = "1h"
rto = "2h"

[components.documents]
type = "files"
paths = ["$DOCS_DIR"]

[components.documents.objectives]
rpo = "1h"
rto = "4h"

# The drill --drill runs: the database at its latest point and the
# documents, checked as the seed's monthly test asks (counts, pg_amcheck,
# a read of the packs used).
[drills.bench]
components = ["db", "documents"]
target = "latest"
scratch = "$W/drill-scratch"

[[drills.bench.sql]]
label = "pgbench accounts"
component = "db"
database = "bench"
query = "SELECT count(*) FROM pgbench_accounts"
equals = $((PGB_SCALE * 100000))

[[drills.bench.sql]]
label = "Nombre de patients correct"
component = "db"
database = "medicapp"
query = "SELECT count(*) FROM patients"
equals = $((MED_SCALE * 1000))
EOF
mkdir -p "$W/drill-scratch"
"$REPRISE" --repo "$RREPO" init >/dev/null
CRED=$W/reprise.credential
"$REPRISE" --plan "$PLAN" key add --write-only --credential "$CRED" >/dev/null
chown -R postgres:postgres "$RREPO" "$CRED"; chmod 600 "$CRED"
BCONF=$W/pgbackrest.conf
mkdir -p "$W/pgbr-repo" "$W/pgbr-log" "$W/pgbr-lock" "$W/pgbr-spool"
cat >"$BCONF" <<EOF
[global]
repo1-path=$W/pgbr-repo
repo1-retention-full=9999
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$PGBR_PASS
compress-type=zst
process-max=2
start-fast=y
log-path=$W/pgbr-log
lock-path=$W/pgbr-lock
spool-path=$W/pgbr-spool
[bench]
pg1-path=$DATA
pg1-socket-path=$RUN
pg1-port=$PORT
pg1-user=postgres
EOF
chown -R postgres:postgres "$BCONF" "$W/pgbr-repo" "$W/pgbr-log" "$W/pgbr-lock" "$W/pgbr-spool"; chmod 600 "$BCONF"
pgbr() { as_pg "$PGBR" --config="$BCONF" --stanza=bench --log-level-console=warn "$@"; }
cat >"$W/archive-reprise-and-pgbackrest.sh" <<EOF
#!/bin/bash
"$REPRISE" --repo "$RREPO" --key-file "$CRED" wal-push db "\$1" 2>>"$W/archive.err" & a=\$!
"$PGBR" --config="$BCONF" --stanza=bench --log-level-console=warn archive-push "\$1" 2>>"$W/archive.err" & b=\$!
ra=0 rb=0
wait \$a || ra=\$?
wait \$b || rb=\$?
exit \$((ra | rb))
EOF
chmod 755 "$W/archive-reprise-and-pgbackrest.sh"
: >"$W/archive.err"; chown postgres:postgres "$W/archive.err"
cat >>"$DATA/postgresql.conf" <<EOF
# bench/drill.sh
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_level = replica
archive_mode = on
archive_command = '$W/archive-reprise-and-pgbackrest.sh %p'
EOF
pg_start "$DATA" "$RUN" "$PORT"
pgbr stanza-create >/dev/null

log "== dataset: pgbench -s $PGB_SCALE, MedicApp data($MED_SCALE), $DOCS documents"
t=$(now)
src postgres -c 'CREATE DATABASE bench' -c 'CREATE DATABASE medicapp'
as_pg "$PGBIN/pgbench" -h "$RUN" -p "$PORT" -U postgres -i -s "$PGB_SCALE" -q bench >"$R/pgbench-init.txt" 2>&1 || die "pgbench -i: $(tail -3 "$R/pgbench-init.txt")"
"$GEN" medicapp-schema >"$W/medicapp-schema.sql"; chown postgres "$W/medicapp-schema.sql"
src medicapp -f "$W/medicapp-schema.sql"
src medicapp -f "$here/pg/medicapp-functions.sql"
P=$((MED_SCALE * 1000))
for step in patients:1 procedure_cases:3 documents:3 prescriptions:2 appointments:2 audit_log:10; do
    n=$((${step#*:} * P))
    src medicapp -v p="$P" -v step="${step%:*}" -v lo=1 -v hi="$n" -f "$here/pg/medicapp-data.sql" || die "medicapp load ${step%:*}"
done
src medicapp -c 'VACUUM ANALYZE'
src bench -c 'VACUUM ANALYZE'
python3 "$GEN_DOCS" "$DOCS_DIR" "$DOCS" 1
rec source load_s "$(since "$t")"
rec source db_bytes "$(src postgres -c "SELECT sum(pg_database_size(datname)) FROM pg_database")"
rec source documents_bytes "$(du -sb "$DOCS_DIR" | cut -f1)"
((PGB_SCALE < 200 || $(src postgres -c "SELECT sum(pg_database_size(datname)) FROM pg_database") >= 5 * 1000 ** 3)) \
    || die "the database is under 5 GB: raise --pgbench-scale"

log "== backups (untimed here: BENCHMARKS 6 times them)"
src postgres -c CHECKPOINT
"$REPRISE" --plan "$PLAN" backup db >/dev/null || die "reprise backup db"
"$REPRISE" --plan "$PLAN" backup documents >/dev/null || die "reprise backup documents"
pgbr backup --type=full || die "pgbackrest backup"
log "== $TX transactions after the backups: WAL each restore replays"
as_pg "$PGBIN/pgbench" -h "$RUN" -p "$PORT" -U postgres -n -c 4 -j 2 -t $((TX / 4)) --random-seed=42 bench >"$R/pgbench-run.txt" 2>&1 || die "pgbench: $(tail -3 "$R/pgbench-run.txt")"
wait_archived
FINGERPRINT=$(fingerprint "$RUN" "$PORT")
manifest "$DOCS_DIR" >"$W/documents.sha256"
pg_stop "$DATA"
log "== source stopped; restores"

# --- pgBackRest: restore, start until consistent and promoted ------------------
pgbackrest_side() {
    local r=$1 dir=$W/restore-pgbr run=$W/restore-pgbr.run port s t
    port=$(free_port)
    mkdir -p "$dir"; chown postgres:postgres "$dir"; chmod 700 "$dir"
    evict
    t=$(now)
    pgbr --pg1-path="$dir" restore || die "pgbackrest restore"
    s=$(since "$t")
    rec pgbackrest "restore_files_s_rep$r" "$s"
    t=$(now)
    pg_start "$dir" "$run" "$port" -c archive_mode=off
    wait_promoted "$run" "$port" "$dir"
    t=$(since "$t")
    rec pgbackrest "recovery_s_rep$r" "$t"
    rec pgbackrest "rto_s_rep$r" "$(awk -v a="$s" -v b="$t" 'BEGIN { printf "%.2f", a + b }')"
    check_cluster pgbackrest "$run" "$port"
    pg_stop "$dir"
    rm -rf "$dir" "$run"
}

# --- reprise: the drill's phases -------------------------------------------------
# Its phases one command each (restore --start, restore of the documents,
# the script's own checks); --drill runs `reprise drill run bench` instead
# (the [drills.bench] section of the plan), which BENCHMARKS 6 reports.
reprise_side() {
    local r=$1 dir=$W/restore-reprise docs=$W/restore-documents out t t0
    evict
    t0=$(now)
    if ((DRILL)); then
        out=$("$REPRISE" --plan "$PLAN" --json drill run bench) || die "reprise drill run: $out"
        rec reprise "drill_wall_s_rep$r" "$(since "$t0")"
        echo "$out" >"$R/reprise-drill-$r.json"
        [[ $(jq -r .verdict <<<"$out") == passed ]] || die "the drill did not pass: $(jq -c .failure <<<"$out")"
        # Every phase the drill timed, as the record holds it.
        while IFS=$'\t' read -r name ms; do
            rec reprise "drill_${name}_s_rep$r" "$(awk -v m="$ms" 'BEGIN { printf "%.2f", m / 1000 }')"
        done < <(jq -r '.phases[] | [(.phase + (if .component then "_" + .component else "" end) + (if .label then "_" + (.label | gsub("[^A-Za-z0-9]+"; "-")) else "" end)), .ms] | @tsv' <<<"$out")
        rec reprise "rto_s_rep$r" "$(jq -r '.rto_ms / 1000' <<<"$out")"
        return
    fi
    out=$("$REPRISE" --plan "$PLAN" --json restore db --at latest --to "$dir" --start --keep-running) || die "reprise restore db --start: $out"
    echo "$out" >"$R/reprise-restore-db-$r.json"
    rec reprise "db_until_promoted_s_rep$r" "$(since "$t0")"
    rec reprise "restore_files_s_rep$r" "$(jq -r '.restore_ms / 1000' <<<"$out")"
    rec reprise "recovery_s_rep$r" "$(jq -r '.recovery_ms / 1000' <<<"$out")"
    CLUSTERS+=("$dir")
    t=$(now)
    "$REPRISE" --plan "$PLAN" restore documents --to "$docs" >/dev/null || die "reprise restore documents"
    rec reprise "documents_s_rep$r" "$(since "$t")"
    t=$(now)
    check_cluster reprise "$(jq -r .socket_dir <<<"$out")" "$(jq -r .port <<<"$out")"
    local root
    root=$(find "$docs" -type d -name "$(basename "$DOCS_DIR")" -print -quit)
    [[ -n $root ]] || root=$docs
    diff -q <(manifest "$root") "$W/documents.sha256" >/dev/null || die "the restored documents differ from the source"
    rec reprise "checks_s_rep$r" "$(since "$t")"
    rec reprise "rto_s_rep$r" "$(since "$t0")"
    pg_stop "$dir"
    rm -rf "$dir" "$dir.run" "$docs"
}

for ((r = 1; r <= REPS; r++)); do
    if ((r % 2)); then reprise_side "$r"; pgbackrest_side "$r"; else pgbackrest_side "$r"; reprise_side "$r"; fi
done
rec source total_s $(($(date +%s) - RUN_START))
{
    echo "# Drill benchmark, $(date -u +%FT%TZ), reprise $(git -C "$root" rev-parse --short HEAD)"
    echo
    echo "pgbench -s $PGB_SCALE + MedicApp data($MED_SCALE) + $DOCS documents; $TX transactions replayed; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo '| phase | value (s or bytes) |'
    echo '|---|---:|'
    awk -F'\t' '{ printf "| %s %s | %s |\n", $1, $2, $3 }' "$TSV"
} >"$R/results.md"
log "done: $R/results.md"
cat "$R/results.md"
