#!/usr/bin/env python3
"""What the evidence ledger costs (docs/BENCHMARKS.md section 11).

    bench/ledger.sh [--reps N] [--count N] [--reprise BIN] [--bench BIN] [WORKDIR]

1. In process (`ledger-bench no-change`): a no-change backup of the signed
   documents set (gen-dataset docs 4000 1, 917 MiB), then one witnessed
   append, REPS times on one repository: medians and the append's share.
2. Through the binary: `reprise backup` (no change), `reprise ledger note`,
   `reprise hold add`, `reprise check`, REPS times each, wall time: the
   append's cost next to the operations it records.
3. In process (`ledger-bench appends`): COUNT witnessed appends, then
   `verify`, and bytes per entry; then `reprise ledger verify` on that
   repository through the binary.

Caches stay warm (a no-change backup reads metadata only, and a warm cache
makes it faster, hence the append's share larger). Each step reports how
busy the machine was with other work; the report says so when it was above
30 %. The report goes to bench/results/ledger-DATE-COMMIT.md, raw figures
beside it (.json).
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(x for i, x in enumerate(v) if i not in (3, 4))


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


def timed(cmd, env, cwd):
    """Runs a command; returns (wall seconds, share of the machine others used)."""
    b0, c0, t0 = busy(), children_cpu(), time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(map(str, cmd)), out.stderr))
    others = ((busy() - b0) / 100.0 - (children_cpu() - c0)) / (wall * os.cpu_count())
    return wall, max(0.0, min(1.0, others)), out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir", nargs="?", default="/tmp/reprise-ledger-bench")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--reprise", default=str(ROOT / "target/release/reprise"))
    ap.add_argument("--bench", default=str(ROOT / "target/release/ledger-bench"))
    ap.add_argument("--gen", default=str(ROOT / "target/release/gen-dataset"))
    ap.add_argument("--cmdline", default="bench/ledger.sh")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    docs = work / "docs"
    if not docs.exists():
        subprocess.run([a.gen, "docs", str(docs), "4000", "1"], check=True)
    started = time.time()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = {"commit": commit, "cmdline": a.cmdline, "cores": os.cpu_count(), "reps": a.reps, "count": a.count}

    # 1. In process.
    for d in ("nc", "cli", "ap"):
        shutil.rmtree(work / d, ignore_errors=True)
    out = subprocess.run([a.bench, "no-change", str(docs), str(work / "nc"), str(a.reps)], check=True, capture_output=True, text=True).stdout
    results["in_process"] = json.loads(out)

    # 2. Through the binary, with a real passphrase KDF (Argon2id 64 MiB).
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPRISE_")}
    cli = work / "cli"
    cli.mkdir()
    env.update({"REPRISE_PASSWORD": "bench passphrase", "REPRISE_CACHE_DIR": str(cli / "cache"), "REPRISE_LEDGER_WITNESS": str(cli / "witness")})
    r = [a.reprise, "--repo", str(cli / "repo")]
    subprocess.run(r + ["init"], env=env, check=True, capture_output=True)
    subprocess.run(r + ["ledger", "witness-init", str(cli / "witness")], env=env, check=True, capture_output=True)
    first, _, _ = timed(r + ["backup", "--path", str(docs)], env, work)
    snap = json.loads(subprocess.run(r + ["--json", "snapshots"], env=env, check=True, capture_output=True, text=True).stdout)[-1]["id"]
    steps = {
        "backup (no change)": r + ["backup", "--path", str(docs)],
        "ledger note (an append alone)": r + ["ledger", "note", "bench"],
        "hold add": r + ["hold", "add", snap, "--reason", "bench"],
        "check (structure)": r + ["check"],
    }
    cli_results = {"first_backup_s": first}
    for name, cmd in steps.items():
        walls, others = [], []
        for _ in range(a.reps):
            w, o, _ = timed(cmd, env, work)
            walls.append(w)
            others.append(o)
        cli_results[name] = {"wall_s": walls, "others_busy": others, "median_s": statistics.median(walls)}
    results["cli"] = cli_results

    # 3. Many appends, then verify.
    out = subprocess.run([a.bench, "appends", str(work / "ap"), str(a.count)], check=True, capture_output=True, text=True).stdout
    results["appends"] = json.loads(out)
    venv = {k: v for k, v in env.items() if k != "REPRISE_LEDGER_WITNESS"}
    venv.update({"REPRISE_PASSWORD": "bench", "REPRISE_CACHE_DIR": str(work / "ap/cache")})
    w, o, _ = timed([a.reprise, "--repo", str(work / "ap/repo"), "--witness", str(work / "ap/witness"), "ledger", "verify"], venv, work)
    results["appends"]["cli_verify_s"] = w
    results["appends"]["cli_verify_others_busy"] = o
    results["minutes"] = (time.time() - started) / 60

    day = datetime.date.today().isoformat()
    stem = ROOT / "bench/results" / ("ledger-%s-%s" % (day, commit))
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(report(results, day))
    print(stem.with_suffix(".md").read_text())


def report(res, day):
    ip, cli, ap = res["in_process"], res["cli"], res["appends"]
    busy = lambda v: max(v) * 100
    lines = [
        "# The evidence ledger's cost, %s, commit %s" % (day, res["commit"]),
        "",
        "Command: `%s` (%.1f minutes; %d cores). Warm caches. \"Others\" is the" % (res["cmdline"], res["minutes"], res["cores"]),
        "largest share of the machine other processes used during a repetition.",
        "",
        "## One append next to a no-change backup (in process, %d repetitions)" % ip["reps"],
        "",
        "Dataset: %d files, %.1f MiB (first backup %.2f s)." % (ip["files"], ip["bytes"] / 2**20, ip["first_backup_s"]),
        "",
        "| step | median | min–max | others |",
        "|---|---:|---:|---:|",
        "| no-change backup | %.1f ms | %.1f–%.1f ms | %.0f %% |" % (ip["median_no_change_backup_s"] * 1e3, min(ip["no_change_backup_s"]) * 1e3, max(ip["no_change_backup_s"]) * 1e3, busy(ip["others_busy"])),
        "| witnessed append | %.2f ms | %.2f–%.2f ms | |" % (ip["median_append_s"] * 1e3, min(ip["append_s"]) * 1e3, max(ip["append_s"]) * 1e3),
        "",
        "**The append adds %.1f %% to a no-change backup** (target: at most 5 %%: %s)." % (ip["append_share"] * 100, "PASS" if ip["append_share"] <= 0.05 else "MISS"),
        "",
        "## Through the binary (%d repetitions, wall time)" % res["reps"],
        "",
        "| command | median | min–max | others |",
        "|---|---:|---:|---:|",
    ]
    for name in ("backup (no change)", "ledger note (an append alone)", "hold add", "check (structure)"):
        c = cli[name]
        lines.append("| `%s` | %.3f s | %.3f–%.3f s | %.0f %% |" % (name, c["median_s"], min(c["wall_s"]), max(c["wall_s"]), busy(c["others_busy"])))
    lines += [
        "",
        "Each command opens the repository (one Argon2id run, 64 MiB) and records one entry.",
        "",
        "## %d appends, then verify" % ap["count"],
        "",
        "| measure | value |",
        "|---|---:|",
        "| appends, total | %.1f s (others %.0f %%) |" % (ap["append_total_s"], ap["append_others_busy"] * 100),
        "| per append, mean / slowest | %.2f ms / %.1f ms |" % (ap["append_mean_ms"], ap["append_slowest_ms"]),
        "| `verify` in process | %.1f s, %.0f µs per entry (others %.0f %%) |" % (ap["verify_s"], ap["verify_us_per_entry"], ap["verify_others_busy"] * 100),
        "| `reprise ledger verify` | %.1f s (others %.0f %%) |" % (ap["cli_verify_s"], ap["cli_verify_others_busy"] * 100),
        "| proof of the middle entry | %.1f s, %d hashes |" % (ap["proof_s"], ap["proof_path_hashes"]),
        "| repository, per entry | %.0f bytes (%.0f on disk) |" % (ap["repository_bytes_per_entry"], ap["repository_disk_bytes_per_entry"]),
        "| witness, per entry | %.0f bytes (%.0f on disk) |" % (ap["witness_bytes_per_entry"], ap["witness_disk_bytes_per_entry"]),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
