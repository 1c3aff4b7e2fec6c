#!/usr/bin/env python3
"""Markdown tables from bench/pg/run.sh's results.tsv (dataset, tool, metric, value).

    python3 bench/pg/report.py RESULTS_DIR > results.md
"""
import statistics
import sys
from collections import defaultdict
from pathlib import Path

res = Path(sys.argv[1])
v = defaultdict(dict)
for line in (res / "results.tsv").read_text().splitlines():
    d, tool, metric, value = line.split("\t")
    try:
        v[(d, tool)][metric] = float(value)
    except ValueError:
        v[(d, tool)][metric] = value


def get(d, tool, m):
    return v.get((d, tool), {}).get(m)


def reps(d, tool, prefix, scale=1.0):
    """Median of a metric over restore rounds (`PREFIX_repN`), and the rounds listed."""
    runs = sorted((k for k in v.get((d, tool), {}) if k.startswith(prefix + "_rep")), key=lambda k: int(k.rsplit("_rep", 1)[1]))
    vals = [v[(d, tool)][k] * scale for k in runs]
    if not vals:
        return None, ""
    return statistics.median(vals), ", ".join(f"{x:.2f}" for x in vals)


def mib(b):
    return "–" if b is None else f"{b / 1048576:,.1f} MiB"


def sec(s):
    return "–" if s is None else f"{s:.1f} s"


def ratio(a, b):
    """a / b, as 'x.xx×'."""
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


out = []
w = out.append
machine = (res / "machine.txt").read_text() if (res / "machine.txt").exists() else ""
w("## Machine and command\n")
w("```")
w(machine.rstrip())
w("```\n")

targets = []
names = {"pgbench": "pgbench", "medic": "MedicApp schema"}
for d in ("pgbench", "medic"):
    if (d, "reprise") not in v:
        continue
    src = v[(d, "source")]
    block = (d, "pgbackrest-block") in v
    w(f"## {names[d]}\n")
    w(f"Database {mib(src.get('db_bytes'))} (`pg_database_size`), data directory base+global {mib(src.get('data_dir_bytes'))}; "
      f"load {sec(src.get('init_s'))}. WAL archived over the run: {int(src.get('wal_segments_archived', 0))} segments.\n")
    loads = sorted((k for k in src if k.startswith("load_") and k.endswith("tx_s")), key=lambda k: -int(k[5:-4]))
    for k in loads:
        n = k[5:-4]
        w(f"- run of {n} transactions: {sec(src[k])} ({src.get(f'load_{n}tx_tps', 0):.0f} tps)")
    w("")
    hdr = "| backup | reprise time | pgBackRest time | pgBR/reprise | reprise stored | pgBackRest stored | pgBR/reprise |"
    sep = "|---|---:|---:|---:|---:|---:|---:|"
    if block:
        hdr += " pgBR block-incr (beta) time | stored |"
        sep += "---:|---:|"
    w(hdr)
    w(sep)
    labels = {"full": "full", "incr1": f"incremental #1 (after {loads[0][5:-4] if loads else '?'} tx)",
              "incr2": f"incremental #2 (after {loads[1][5:-4] if len(loads) > 1 else '?'} tx)"}
    for step in ("full", "incr1", "incr2"):
        rs, ps = get(d, "reprise", f"{step}_s"), get(d, "pgbackrest", f"{step}_s")
        rb, pb = get(d, "reprise", f"{step}_bytes"), get(d, "pgbackrest", f"{step}_bytes")
        row = f"| {labels[step]} | {sec(rs)} | {sec(ps)} | {ratio(ps, rs)} | {mib(rb)} | {mib(pb)} | {ratio(pb, rb)} |"
        if block:
            row += f" {sec(get(d, 'pgbackrest-block', f'{step}_s'))} | {mib(get(d, 'pgbackrest-block', f'{step}_bytes'))} |"
        w(row)
        if step == "full":
            targets.append((f"{names[d]}: full backup time, reprise ≤ pgBackRest", f"{sec(rs)} vs {sec(ps)}", rs is not None and ps is not None and rs <= ps))
        else:
            targets.append((f"{names[d]}: {labels[step]} stored bytes, reprise ≤ ½ pgBackRest", f"{mib(rb)} vs {mib(pb)} ({ratio(rb, pb)})",
                            rb is not None and pb is not None and rb <= pb / 2))
    w("")
    w("reprise stored = growth of the repository without its WAL folder; pgBackRest stored = growth of `backup/` (encrypted, zstd).\n")
    w("| reprise detail (`summary`) | files re-read (files cache) | new blocks | their raw size | stored |")
    w("|---|---:|---:|---:|---:|")
    for step in ("full", "incr1", "incr2"):
        r = v[(d, "reprise")]
        w(f"| {labels[step]} | {int(r.get(f'{step}_files_read', 0))} of {int(r.get('full_files_read', 0))} | "
          f"{int(r.get(f'{step}_new_blobs', 0)):,} | {mib(r.get(f'{step}_new_bytes'))} | {mib(r.get(f'{step}_stored_bytes_json'))} |")
    w("")
    rounds = max((int(k.rsplit("_rep", 1)[1]) for k in v[(d, "reprise")] if k.startswith("restore_files_s_rep")), default=0)
    w(f"Restores of the latest backup: {rounds} round(s), the tools alternating which goes first; medians, then every round.\n")
    w("| restore of the latest backup | reprise | pgBackRest | pgBR/reprise | reprise, rounds | pgBackRest, rounds |")
    w("|---|---:|---:|---:|---|---|")

    def row(label, rm, pm, scale=1.0):
        (rmed, rall), (pmed, pall) = reps(d, "reprise", rm, scale), reps(d, "pgbackrest", pm)
        w(f"| {label} | {sec(rmed)} | {sec(pmed)} | {ratio(pmed, rmed)} | {rall} | {pall} |")
        return rmed, pmed

    rf, pf = row("files into an empty directory", "restore_files_s", "restore_files_s")
    row("of which CPU (user + system)", "restore_files_cpu_s", "restore_files_cpu_s")
    rp, pp = row("restore + recovery until promoted", "restore_promoted_s", "restore_promoted_s")
    row("of which recovery (start → promoted)", "recovery_ms_json", "recovery_s", 0.001)
    w(f"| restored data directory | {mib(get(d, 'reprise', 'restored_bytes'))} | {mib(get(d, 'pgbackrest', 'restored_bytes'))} | | | |")
    w("")
    others = [int(x) for t in ("reprise", "pgbackrest") for k, x in v[(d, t)].items() if k.startswith("restore_files_other_pct_rep")]
    if others:
        w(f"Share of the machine other processes used during the timed file restores: {min(others)}–{max(others)} %.\n")
    w(f"WAL segments replayed: {int(get(d, 'reprise', 'wal_segments_replayed') or 0)}. "
      f"WAL archive size: reprise {mib(get(d, 'reprise', 'wal_archive_bytes'))}, pgBackRest {mib(get(d, 'pgbackrest', 'wal_archive_bytes'))}; "
      f"whole repository: reprise {mib(get(d, 'reprise', 'repo_bytes'))}, pgBackRest {mib(get(d, 'pgbackrest', 'repo_bytes'))}.\n")
    verified = res / f"{d}-verified.txt"
    if verified.exists():
        w("Verified (each restored cluster started, promoted and queried):\n")
        w("```")
        w(verified.read_text().rstrip())
        w("```\n")
    blocks = res / f"{d}-blocks.md"
    if blocks.exists() and blocks.read_text().strip():
        w("What changed between the backups (files of reprise's snapshots compared by `bench/pg/blocks.py`, untimed):\n")
        w(blocks.read_text().rstrip())
        w("")
    targets.append((f"{names[d]}: restore time (files), reprise ≤ pgBackRest", f"{sec(rf)} vs {sec(pf)}", rf is not None and pf is not None and rf <= pf))
    targets.append((f"{names[d]}: restore until promoted, reprise ≤ pgBackRest", f"{sec(rp)} vs {sec(pp)}", rp is not None and pp is not None and rp <= pp))

if ("wal", "reprise") in v:
    ws = v[("wal", "source")]
    w("## archive-push throughput\n")
    w(f"{int(ws['segments'])} real segments ({mib(ws['segment_bytes'])}) from the pgbench run, pushed one process per segment, "
      "sequentially, as postgres, into a fresh repository each time; segments in the page cache (as when PostgreSQL archives them).\n")
    w("| tool | segments/s (median) | runs | archive size | vs reprise |")
    w("|---|---:|---|---:|---:|")
    med = {}
    for tool in ("reprise", "pgbackrest", "pgbackrest-async"):
        runs = sorted((k for k in v.get(("wal", tool), {}) if k.startswith("push_segs_per_s_rep")))
        if not runs:
            continue
        vals = [v[("wal", tool)][k] for k in runs]
        med[tool] = statistics.median(vals)
    for tool, m in med.items():
        runs = sorted(k for k in v[("wal", tool)] if k.startswith("push_segs_per_s_rep"))
        vals = ", ".join(f"{v[('wal', tool)][k]:.1f}" for k in runs)
        w(f"| {tool} | {m:.1f} | {vals} | {mib(get('wal', tool, 'push_bytes'))} | {ratio(m, med['reprise'])} |")
    w("")
    if "pgbackrest" in med:
        targets.append(("archive-push segments/s, reprise ≥ pgBackRest (sync)", f"{med['reprise']:.1f} vs {med['pgbackrest']:.1f}", med["reprise"] >= med["pgbackrest"]))
    if "pgbackrest-async" in med:
        w(f"(pgBackRest async, for reference: {med['pgbackrest-async']:.1f} segments/s.)\n")

w("## Targets\n")
w("| target | measured (reprise vs pgBackRest) | |")
w("|---|---|---|")
for name, meas, ok in targets:
    w(f"| {name} | {meas} | {'PASS' if ok else 'MISS'} |")
w("")
total = get("run", "source", "total_s")
if total:
    w(f"Total run: {total / 60:.1f} min.")
print("\n".join(out))
