#!/usr/bin/env python3
"""Where reprise's time and memory go, on the datasets bench/peers.sh made.

usage: python3 bench/profile.py [WORKDIR] [--reps N] [--out FILE]

WORKDIR is a bench/peers.sh work directory (default /tmp/reprise-bench):
its bin/reprise and data/{ref-docs,source} are used as they are. Measures,
each step after dropping the page cache, median of --reps runs:

1. the disk's cold-read floor: `find | xargs -P N cat` (no backup tool);
2. reprise's first backup with --threads 1, 2, 4, 8 (default: cores);
3. peak RSS: opening a repository (the Argon2id KDF) with the default
   64 MiB and with --kdf-memory 8192, backup/restore with the latter, and
   the backup's RSS against --threads and the pack size;
4. syscalls per restored and per backed-up file (strace -f -c), reprise
   next to restic, on the source-code tree;
5. context switches and CPU use (perf stat, software events) of the same.

Python 3 stdlib only; needs strace and perf for 4 and 5 (skipped if absent).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (same directory: drop_caches, timed)

PW = "reprise-bench-passphrase"


def env_for(tool, base):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("REPRISE_", "RESTIC_", "BORG_"))}
    e["REPRISE_PASSWORD" if tool == "reprise" else "RESTIC_PASSWORD"] = PW
    return e


def sh(argv, env=None, cwd=None):
    r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        peers.die(f"failed: {' '.join(argv)}\n{r.stderr[-2000:]}")
    return r.stdout


MAX_LOAD = [0.0]


def cold(argv, env, cwd, tf):
    """One measured step: wait for a quiet machine, drop caches, run."""
    peers.settle(15)
    peers.drop_caches()
    r = peers.timed(argv, env, cwd, tf)
    MAX_LOAD[0] = max(MAX_LOAD[0], r["foreign_load"])
    return r


def read_floor(work, ds, reps, tf):
    rows = []
    for p in (1, 2, 16):
        argv = ["sh", "-c", f"find '{work}/data/{ds}' -type f -print0 | xargs -0 -n 50 -P {p} cat > /dev/null"]
        rows.append((p, statistics.median(cold(argv, None, work, tf)["wall_s"] for _ in range(reps))))
    return rows


def reprise_repo(bin_, d, kdf_mem=None):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    argv = [bin_, "--repo", f"{d}/repo", "init"] + (["--kdf-memory", str(kdf_mem)] if kdf_mem else [])
    sh(argv, env_for("reprise", d))
    return [bin_, "--repo", f"{d}/repo", "--cache-dir", f"{d}/cache"]


def strace_counts(argv, env, cwd, out):
    peers.settle(15)
    peers.drop_caches()
    sh(["strace", "-f", "-c", "-o", out] + argv, env, cwd)
    counts = {}
    with open(out) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and p[0][0].isdigit() and p[-1] not in ("total", "syscall"):
                try:
                    counts[p[-1]] = int(p[3])
                except ValueError:
                    pass
    return counts


def perf_stat(argv, env, cwd, out):
    peers.settle(15)
    peers.drop_caches()
    sh(["perf", "stat", "-x,", "-o", out, "-e", "task-clock,context-switches,cpu-migrations,page-faults"] + argv, env, cwd)
    vals = {}
    with open(out) as f:
        for line in f:
            p = line.strip().split(",")
            if len(p) > 3 and not line.startswith("#"):
                vals[p[2]] = float(p[0]) if p[0].replace(".", "").isdigit() else None
    return vals


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", nargs="?", default="/tmp/reprise-bench")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    work = os.path.abspath(a.workdir)
    rep_bin = os.path.join(work, "bin", "reprise")
    restic = shutil.which("restic")
    for ds in ("ref-docs", "source"):
        if not os.path.isdir(os.path.join(work, "data", ds)):
            peers.die(f"{work}/data/{ds} missing: run bench/peers.sh {work} first")
    scratch = tempfile.mkdtemp(prefix="profile-", dir=work)
    tf = os.path.join(scratch, "time.out")
    started = time.time()
    L = ["## Where reprise's time and memory go", ""]
    L.append(f"Produced by `python3 bench/profile.py {' '.join(sys.argv[1:])}`; page cache dropped before every "
             f"measured step; median of {a.reps}.")
    L.append("")

    # 1 + 2: cold-read floor and thread sweep
    L += ["### Cold read of the source tree vs reprise's first backup", "",
          "| Dataset | What | Wall s | CPU s | Peak RSS MiB |", "|---|---|---:|---:|---:|"]
    for ds in ("ref-docs", "source"):
        peers.log(f"read floor, {ds}")
        for p, w in read_floor(work, ds, a.reps, tf):
            L.append(f"| {ds} | `find | xargs -P {p} cat` (read only) | {w:.2f} | | |")
        for th in (1, 2, 4, 8):
            peers.log(f"reprise backup --threads {th}, {ds}")
            runs = []
            for _ in range(a.reps):
                base = reprise_repo(rep_bin, os.path.join(scratch, "t"))
                runs.append(cold(base + ["backup", "--path", f"{work}/data/{ds}", "--threads", str(th)],
                                 env_for("reprise", scratch), scratch, tf))
            m = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "rss_kib")}
            dflt = " (default: cores)" if th == os.cpu_count() else ""
            L.append(f"| {ds} | reprise backup `--threads {th}`{dflt} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['rss_kib'] / 1024:.1f} |")
    L.append("")

    # 3: memory floor
    peers.log("peak RSS vs KDF memory")
    L += ["### Peak RSS and the passphrase KDF (ref-docs)", "",
          "| Argon2id memory | `snapshots` (open only) MiB | first backup MiB | restore MiB |", "|---|---:|---:|---:|"]
    for mem in (None, 8192):
        base = reprise_repo(rep_bin, os.path.join(scratch, "k"), mem)
        e = env_for("reprise", scratch)
        b = cold(base + ["backup", "--path", f"{work}/data/ref-docs"], e, scratch, tf)
        o = cold(base + ["snapshots"], e, scratch, tf)
        r = cold(base + ["restore", "latest", "--to", os.path.join(scratch, "k", "out")], e, scratch, tf)
        L.append(f"| {'65536 KiB (default)' if mem is None else f'{mem} KiB'} | {o['rss_kib'] / 1024:.1f} | "
                 f"{b['rss_kib'] / 1024:.1f} | {r['rss_kib'] / 1024:.1f} |")
    L.append("")
    peers.log("backup peak RSS vs threads and pack size (8 MiB KDF)")
    L += ["With the KDF at 8 MiB, what the backup pipeline itself holds (ref-docs, first backup):", "",
          "| `--threads` | pack size (`init --pack-size`) | Peak RSS MiB |", "|---:|---|---:|"]
    for th in (1, 2, 4):
        for pack in (None, 2):
            runs = []
            for _ in range(a.reps):
                base = reprise_repo(rep_bin, os.path.join(scratch, "k"), 8192)
                if pack:  # re-init with a smaller pack target
                    shutil.rmtree(os.path.join(scratch, "k"))
                    os.makedirs(os.path.join(scratch, "k"))
                    sh([rep_bin, "--repo", f"{scratch}/k/repo", "init", "--kdf-memory", "8192", "--pack-size", str(pack)],
                       env_for("reprise", scratch))
                runs.append(cold(base + ["backup", "--path", f"{work}/data/ref-docs", "--threads", str(th)],
                                 env_for("reprise", scratch), scratch, tf))
            L.append(f"| {th} | {f'{pack} MiB' if pack else '8 MiB (default)'} | "
                     f"{statistics.median(r['rss_kib'] for r in runs) / 1024:.1f} |")
    shutil.rmtree(os.path.join(scratch, "k"))
    L.append("")

    # 4 + 5: syscalls and scheduling on the source tree
    if shutil.which("strace") and restic:
        peers.log("strace / perf on the source tree")
        src = f"{work}/data/source"
        nfiles = sum(len(f) for _, _, f in os.walk(src))
        tools = {}
        for tool in ("reprise", "restic"):
            d = os.path.join(scratch, tool)
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            e = env_for(tool, d)
            if tool == "reprise":
                base = reprise_repo(rep_bin, d)
                backup = base + ["backup", "--path", src]
                restore = base + ["restore", "latest", "--to", f"{d}/out"]
            else:
                base = [restic, "-r", f"{d}/repo", "--cache-dir", f"{d}/cache"]
                sh(base + ["init"], e)
                backup = base + ["backup", "-q", src]
                restore = base + ["restore", "-q", "latest", "--target", f"{d}/out"]
            tools[tool] = {"backup": strace_counts(backup, e, d, f"{d}/strace-b.txt")}
            tools[tool]["restore"] = strace_counts(restore, e, d, f"{d}/strace-r.txt")
            if shutil.which("perf"):
                shutil.rmtree(f"{d}/out")
                tools[tool]["perf-restore"] = perf_stat(restore, e, d, f"{d}/perf-r.txt")
                if tool == "reprise":
                    base = reprise_repo(rep_bin, d)
                    backup = base + ["backup", "--path", src]
                else:
                    shutil.rmtree(f"{d}/repo")
                    shutil.rmtree(f"{d}/cache", ignore_errors=True)
                    sh(base + ["init"], e)
                tools[tool]["perf-backup"] = perf_stat(backup, e, d, f"{d}/perf-b.txt")
            shutil.rmtree(d)
        for step in ("backup", "restore"):
            names = sorted(set(tools["reprise"][step]) | set(tools["restic"][step]),
                           key=lambda k: -max(tools["reprise"][step].get(k, 0), tools["restic"][step].get(k, 0)))[:10]
            L += [f"### System calls, {step} of the source tree ({nfiles} files; strace -f -c, counts)", "",
                  "| Syscall | reprise | per file | restic | per file |", "|---|---:|---:|---:|---:|"]
            for k in ["(all)"] + names:
                rv = sum(tools["reprise"][step].values()) if k == "(all)" else tools["reprise"][step].get(k, 0)
                sv = sum(tools["restic"][step].values()) if k == "(all)" else tools["restic"][step].get(k, 0)
                L.append(f"| {k} | {rv:,} | {rv / nfiles:.2f} | {sv:,} | {sv / nfiles:.2f} |")
            L.append("")
        if "perf-backup" in tools["reprise"]:
            L += ["### Scheduling (perf stat, software events), source tree", "",
                  "| Step | Tool | task-clock ms | context switches | CPU migrations | page faults |", "|---|---|---:|---:|---:|---:|"]
            for step in ("backup", "restore"):
                for tool in ("reprise", "restic"):
                    v = tools[tool][f"perf-{step}"]
                    L.append(f"| {step} | {tool} | {v.get('task-clock') or 0:,.0f} | {v.get('context-switches') or 0:,.0f} | "
                             f"{v.get('cpu-migrations') or 0:,.0f} | {v.get('page-faults') or 0:,.0f} |")
            L.append("")
    shutil.rmtree(scratch, ignore_errors=True)
    L.append(f"(profile took {(time.time() - started) / 60:.1f} min; the most other processes used of the machine "
             f"during a timed step: {MAX_LOAD[0]:.0%}, kernel writeback of the step's own I/O included)")
    text = "\n".join(L)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
