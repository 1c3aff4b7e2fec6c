#!/usr/bin/env python3
"""What deduplication domains cost: two production hosts backing up data
that is mostly the same, with the binary of the previous format (one
deduplication key shared by every writer) and with this one (one domain per
write credential). See docs/BENCHMARKS.md section 10.

    bench/domains.sh --before BIN --after BIN [--work DIR] [--reps N] [--out FILE]

Each host has its own write credential and its own cache; host A backs up
first, then host B. Measured per run: the wall time of each backup (cold
page cache), and the bytes the repository holds afterwards. Every run
restores host B's snapshot with the full key and compares it with the
source. Reuses the conventions and helpers of bench/peers.py.
"""
import argparse
import hashlib
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (conventions: cold caches, contention, medians)

FILE = 400 * 1024
SHARED, UNIQUE = 120, 30  # files per host: 120 identical on both, 30 its own


def make_tree(root, host_seed):
    """host/shared/* (same bytes for every host) and host/own/* (different)."""
    if os.path.isdir(root):
        return
    os.makedirs(os.path.join(root, "shared"))
    os.makedirs(os.path.join(root, "own"))
    shared = random.Random(7)
    for i in range(SHARED):
        with open(os.path.join(root, "shared", f"doc-{i:03}.pdf"), "wb") as f:
            f.write(shared.randbytes(FILE))
    own = random.Random(host_seed)
    for i in range(UNIQUE):
        with open(os.path.join(root, "own", f"scan-{i:03}.bin"), "wb") as f:
            f.write(own.randbytes(FILE))
    # Old mtimes, as real documents have (the files cache trusts them).
    for dp, _, fns in os.walk(root):
        for n in fns:
            os.utime(os.path.join(dp, n), (1_700_000_000, 1_700_000_000))


def repo_bytes(repo):
    total = 0
    for dp, _, fns in os.walk(repo):
        for n in fns:
            total += os.path.getsize(os.path.join(dp, n))
    return total


def one_run(name, binary, data, rundir, can_drop):
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    repo = os.path.join(rundir, "repo")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": rundir, "REPRISE_PASSWORD": "bench passphrase",
           "XDG_CACHE_HOME": os.path.join(rundir, "cache-admin")}
    peers.run([binary, "--repo", repo, "init", "--kdf-memory", "64", "--kdf-iterations", "1"], env=env)
    out = {}
    for host in ("a", "b"):
        cred = os.path.join(rundir, f"{host}.credential")
        peers.run([binary, "--repo", repo, "key", "add", "--write-only", "--credential", cred], env=env)
    for host in ("a", "b"):
        cred = os.path.join(rundir, f"{host}.credential")
        henv = dict(env, XDG_CACHE_HOME=os.path.join(rundir, f"cache-{host}"))
        del henv["REPRISE_PASSWORD"]
        if can_drop:
            peers.drop_caches()
        t = peers.timed([binary, "--repo", repo, "--key-file", cred, "backup", "--path", os.path.join(data, host), "--host", f"host-{host}"],
                        henv, rundir, os.path.join(rundir, "time.txt"))
        out[f"backup_{host}_s"] = t["wall_s"]
        out[f"foreign_{host}"] = t["foreign_load"]
    out["repo_bytes"] = repo_bytes(repo)
    # The data really is there: host B's snapshot, restored with the full key.
    target = os.path.join(rundir, "restored")
    peers.run([binary, "--repo", repo, "restore", "latest", "--to", target], env=env)
    src = os.path.join(data, "b")
    got = peers.manifest(os.path.join(target, src.lstrip("/")))
    peers.compare(peers.manifest(src), got)
    shutil.rmtree(target)
    peers.log(f"{name}: A {out['backup_a_s']:.2f}s, B {out['backup_b_s']:.2f}s, repository {out['repo_bytes'] / 2**20:.1f} MiB")
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--before", required=True, help="reprise binary of the previous format")
    p.add_argument("--after", required=True, help="reprise binary with deduplication domains")
    p.add_argument("--work", default="/tmp/reprise-bench-domains")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out")
    p.add_argument("--cmdline", default="bench/domains.sh")
    a = p.parse_args()
    data = os.path.join(a.work, "data")
    for host, seed in (("a", 11), ("b", 22)):
        make_tree(os.path.join(data, host), seed)
    can_drop = peers.drop_caches()
    bins = {"before": os.path.abspath(a.before), "after": os.path.abspath(a.after)}
    results = {k: [] for k in bins}
    order = list(bins)
    for rep in range(a.reps):
        for name in (order if rep % 2 == 0 else order[::-1]):
            peers.settle(60)
            results[name].append(one_run(name, bins[name], data, os.path.join(a.work, f"run-{name}"), can_drop))
    per_host = (SHARED + UNIQUE) * FILE
    lines = [
        f"Command: `{a.cmdline}`",
        "",
        f"Data: two hosts, {SHARED + UNIQUE} files of {FILE // 1024} KiB each ({per_host / 2**20:.1f} MiB per host, incompressible); "
        f"{SHARED} files ({SHARED * FILE / 2**20:.1f} MiB) are the same bytes on both hosts. Each host backs up with its own write "
        f"credential; A first, then B. Median of {a.reps} runs [min–max]; cold page cache: {'yes' if can_drop else 'no'}.",
        "",
        "| binary | backup A (s) | backup B (s) | repository (MiB) |",
        "|---|---|---|---|",
    ]
    for name in bins:
        r = results[name]
        lines.append(f"| {name} | {peers.cell([x['backup_a_s'] for x in r])} | {peers.cell([x['backup_b_s'] for x in r])} | "
                     f"{peers.cell([x['repo_bytes'] for x in r], scale=2**20, digits=1)} |")
    mb = {n: peers.med([x["repo_bytes"] for x in results[n]]) for n in bins}
    tb = {n: peers.med([x["backup_b_s"] for x in results[n]]) for n in bins}
    lines += ["", f"Repository after/before: {mb['after'] / mb['before']:.2f}x; host B's backup after/before: {tb['after'] / tb['before']:.2f}x.", ""]
    lines += ["Machine:", ""] + peers.machine_info({"reprise": a.after}, can_drop, a.work, None) + [
        f"- before: `{a.before}` (sha256 {hashlib.sha256(open(a.before, 'rb').read()).hexdigest()[:16]}…)"]
    report = "\n".join(lines) + "\n"
    print(report)
    if a.out:
        with open(a.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
