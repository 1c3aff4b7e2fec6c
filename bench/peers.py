#!/usr/bin/env python3
"""reprise vs restic vs borg, side by side in one run (Python 3 stdlib only).

Run it through bench/peers.sh. For each dataset, each repetition and each
tool (in a rotating order), in a fresh directory on the same disk:

  init (not timed) -> drop caches -> first backup -> repository bytes
  (du -sb) -> drop caches -> no-change backup (caches kept, as a user's) ->
  drop caches -> restore into a fresh directory -> verify (entries, types,
  sizes and SHA-256 of every file against a manifest of the source)

Times are wall-clock around the process, peak RSS is /usr/bin/time's %M.
The report gives the median of the repetitions, [min-max] beside it.
A restore that differs from its source stops the run with exit status 1.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time

PASSWORD = "reprise-bench-passphrase"
TOOLS = ("reprise", "restic", "borg")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATASETS = {
    # name: (title, how to make it: a function of (out, gen) -> argv)
    "ref-docs": (
        "Signed documents, reference set (shared/bench/gen_docs.py OUT 4000 1)",
        lambda out, gen, shared: ["python3", os.path.join(shared, "gen_docs.py"), out, "4000", "1"],
    ),
    "docs": (
        "Signed documents, reprise's own generator (gen-dataset docs OUT 4000 1)",
        lambda out, gen, shared: [gen, "docs", out, "4000", "1"],
    ),
    "source": (
        "Source-code tree (gen-dataset source OUT 20000 1)",
        lambda out, gen, shared: [gen, "source", out, "20000", "1"],
    ),
}
SIGNED_DOCS = ("ref-docs", "docs")


def log(msg):
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"peers: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(argv, env=None, cwd=None, capture=False):
    r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        die(f"command failed ({r.returncode}): {shlex.join(argv)}\n{r.stderr[-4000:]}")
    return r.stdout if capture else None


def drop_caches():
    """Flushes dirty pages and drops the page cache; False if not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def busy_seconds():
    """CPU seconds the whole machine has spent busy (not idle, not iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def settle(max_wait, threshold=0.10):
    """Waits (up to max_wait s) until other processes use < threshold of the machine."""
    waited = 0.0
    while True:
        b0, t0 = busy_seconds(), time.perf_counter()
        time.sleep(2)
        share = (busy_seconds() - b0) / ((time.perf_counter() - t0) * NCPU)
        waited += 2
        if share < threshold or waited >= max_wait:
            return share, waited


def timed(argv, env, cwd, timefile):
    """Runs argv under /usr/bin/time; returns wall seconds, peak RSS KiB, CPU
    seconds, the share of the machine other processes used meanwhile, stdout."""
    full = ["/usr/bin/time", "-o", timefile, "-f", "%M %U %S"] + argv
    b0 = busy_seconds()
    t0 = time.perf_counter()
    r = subprocess.run(full, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    busy = busy_seconds() - b0
    if r.returncode != 0:
        die(f"command failed ({r.returncode}): {shlex.join(argv)}\n{r.stderr[-4000:]}")
    with open(timefile) as f:
        rss, user, sys_ = f.read().split()[-3:]
    cpu = float(user) + float(sys_)
    foreign = max(0.0, busy - cpu) / (wall * NCPU)
    return {"wall_s": wall, "rss_kib": int(rss), "cpu_s": cpu, "foreign_load": foreign, "stdout": r.stdout}


def manifest(root):
    """{relative path: (type, size, sha256)} of a tree, for verification."""
    out = {}
    for dp, dns, fns in os.walk(root):
        rel = os.path.relpath(dp, root)
        for d in dns:
            p = os.path.join(dp, d)
            out[os.path.normpath(os.path.join(rel, d))] = ("link", os.readlink(p)) if os.path.islink(p) else ("dir",)
        for fn in fns:
            p = os.path.join(dp, fn)
            key = os.path.normpath(os.path.join(rel, fn))
            if os.path.islink(p):
                out[key] = ("link", os.readlink(p))
                continue
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
            out[key] = ("file", os.path.getsize(p), h.hexdigest())
    return out


def compare(want, got):
    """First differences between two manifests, as text (empty if identical)."""
    diffs = []
    for k in sorted(set(want) | set(got)):
        if want.get(k) != got.get(k):
            diffs.append(f"  {k}: source {want.get(k, 'missing')} / restored {got.get(k, 'missing')}")
            if len(diffs) >= 20:
                break
    return "\n".join(diffs)


def du_bytes(path):
    return int(run(["du", "-sb", path], capture=True).split()[0])


class Tool:
    """One tool's commands, rooted in a fresh run directory."""

    def __init__(self, name, rundir, bins):
        self.name, self.rundir, self.bins = name, rundir, bins
        self.repo = os.path.join(rundir, "repo")
        self.cache = os.path.join(rundir, "cache")
        self.target = os.path.join(rundir, "restore")
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith(("REPRISE_", "RESTIC_", "BORG_")):
                del self.env[k]
        if name == "reprise":
            self.env["REPRISE_PASSWORD"] = PASSWORD
        elif name == "restic":
            self.env["RESTIC_PASSWORD"] = PASSWORD
        else:
            self.env["BORG_PASSPHRASE"] = PASSWORD
            # cache, security and config dirs all under the run directory
            self.env["BORG_BASE_DIR"] = os.path.join(rundir, "borgbase")

    def init(self):
        if self.name == "reprise":
            run([self.bins["reprise"], "--repo", self.repo, "init"], env=self.env, cwd=self.rundir)
        elif self.name == "restic":
            run([self.bins["restic"], "-r", self.repo, "--cache-dir", self.cache, "init"], env=self.env, cwd=self.rundir)
        else:
            run([self.bins["borg"], "init", "-e", "repokey-blake2", self.repo], env=self.env, cwd=self.rundir)

    def backup_argv(self, src, n):
        if self.name == "reprise":
            return [self.bins["reprise"], "--repo", self.repo, "--cache-dir", self.cache, "backup", "--path", src, "--json"]
        if self.name == "restic":
            return [self.bins["restic"], "-r", self.repo, "--cache-dir", self.cache, "backup", "-q", src]
        return [self.bins["borg"], "create", "--compression", "zstd,3", f"{self.repo}::b{n}", src]

    def restore_argv(self):
        if self.name == "reprise":
            return [self.bins["reprise"], "--repo", self.repo, "--cache-dir", self.cache, "restore", "latest", "--to", self.target]
        if self.name == "restic":
            return [self.bins["restic"], "-r", self.repo, "--cache-dir", self.cache, "restore", "-q", "latest", "--target", self.target]
        return [self.bins["borg"], "extract", f"{self.repo}::b2"]  # run with cwd = target


def one_run(tool_name, src, src_manifest, rundir, bins, can_drop):
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    t = Tool(tool_name, rundir, bins)
    t.init()
    tf = os.path.join(rundir, "time.out")
    out = {}
    can_drop and drop_caches()
    out["backup1"] = timed(t.backup_argv(src, 1), t.env, rundir, tf)
    out["repo_bytes"] = du_bytes(t.repo)
    can_drop and drop_caches()
    out["backup2"] = timed(t.backup_argv(src, 2), t.env, rundir, tf)
    if tool_name == "reprise":
        for k in ("backup1", "backup2"):
            try:
                out[k]["summary"] = json.loads(out[k]["stdout"])["header"]["summary"]
            except (ValueError, KeyError):
                die(f"reprise backup --json printed no summary: {out[k]['stdout'][:500]}")
        # the files cache must have answered every file the second time
        if out["backup2"]["summary"].get("files_read") != 0:
            log(f"  note: reprise's no-change backup read {out['backup2']['summary'].get('files_read')} files")
    os.makedirs(t.target)
    can_drop and drop_caches()
    out["restore"] = timed(t.restore_argv(), t.env, t.target if tool_name == "borg" else rundir, tf)
    for k in ("backup1", "backup2", "restore"):
        out[k].pop("stdout", None)
    # Every tool restores the absolute source path below the target.
    restored = os.path.join(t.target, src.lstrip("/"))
    if not os.path.isdir(restored):
        die(f"RESTORE MISMATCH: {tool_name} restored nothing at {restored}")
    d = compare(src_manifest, manifest(restored))
    if d:
        die(f"RESTORE MISMATCH: {tool_name} restored {restored} differently from {src}:\n{d}")
    out["verified"] = True
    shutil.rmtree(rundir)
    os.sync()
    return out


def med(values):
    return statistics.median(values)


def fmt_num(x, digits=2):
    return f"{x:.{digits}f}"


def cell(values, scale=1.0, digits=2):
    vs = [v / scale for v in values]
    m = med(vs)
    if len(vs) == 1:
        return fmt_num(m, digits)
    return f"{fmt_num(m, digits)} [{fmt_num(min(vs), digits)}–{fmt_num(max(vs), digits)}]"


METRICS = [
    # key, label, extractor, scale, digits, lower_is_better ratio form
    ("backup1", "First backup, s", lambda r: r["backup1"]["wall_s"], 1, 2, "time"),
    ("backup2", "No-change backup, s", lambda r: r["backup2"]["wall_s"], 1, 2, "time"),
    ("restore", "Restore, s", lambda r: r["restore"]["wall_s"], 1, 2, "time"),
    ("repo", "Repository, MiB (du -sb)", lambda r: r["repo_bytes"], 2**20, 1, "size"),
    ("rss_b", "Peak RSS first backup, MiB", lambda r: r["backup1"]["rss_kib"], 1024, 1, "size"),
    ("rss_r", "Peak RSS restore, MiB", lambda r: r["restore"]["rss_kib"], 1024, 1, "size"),
    ("cpu_b", "CPU first backup (user+sys), s", lambda r: r["backup1"]["cpu_s"], 1, 2, "time"),
    ("cpu_r", "CPU restore (user+sys), s", lambda r: r["restore"]["cpu_s"], 1, 2, "time"),
]
LOAD = ("Other processes' load during timed steps, % of machine (max of 3 steps)",
        lambda r: 100 * max(r[k]["foreign_load"] for k in ("backup1", "backup2", "restore")))


def medians(results, tool):
    return {k: med([f(r) for r in results[tool]]) for k, _, f, *_ in METRICS}


def ratio(kind, reprise, peer):
    if kind == "time":  # peer / reprise: > 1 means reprise is faster
        return peer / reprise if reprise > 0 else float("inf")
    return reprise / peer if peer > 0 else float("inf")  # reprise / peer: < 1 means reprise is smaller


def dataset_table(name, info, results):
    lines = [f"### {DATASETS[name][0]}", ""]
    lines.append(f"{info['files']} files, {info['bytes'] / 2**20:.1f} MiB (`du -sb` {info['du_bytes']} bytes); "
                 f"median of {len(results['reprise'])} runs, [min–max].")
    lines.append("")
    lines.append("| Metric | reprise | restic | borg | vs restic | vs borg |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for key, label, f, scale, digits, kind in METRICS:
        vals = {t: [f(r) for r in results[t]] for t in TOOLS}
        m = {t: med(v) for t, v in vals.items()}
        rl = "restic ÷ reprise" if kind == "time" else "reprise ÷ restic"
        bl = "borg ÷ reprise" if kind == "time" else "reprise ÷ borg"
        lines.append(f"| {label} | " + " | ".join(cell(vals[t], scale, digits) for t in TOOLS)
                     + f" | {ratio(kind, m['reprise'], m['restic']):.2f} ({rl}) | {ratio(kind, m['reprise'], m['borg']):.2f} ({bl}) |")
    vals = {t: [LOAD[1](r) for r in results[t]] for t in TOOLS}
    lines.append(f"| {LOAD[0]} | " + " | ".join(cell(vals[t], 1, 0) for t in TOOLS) + " | | |")
    s1 = [r["backup1"].get("summary", {}) for r in results["reprise"]]
    if s1 and s1[0]:
        lines.append("")
        lines.append(f"reprise's own summary (run 1): {s1[0].get('new_blobs')} new blobs, "
                     f"{s1[0].get('new_bytes', 0) / 2**20:.1f} MiB new after deduplication, "
                     f"{s1[0].get('stored_bytes', 0) / 2**20:.1f} MiB stored, backup reported {s1[0].get('duration_ms')} ms.")
    lines.append("")
    return lines


def targets_table(all_results):
    rows = ["| Dataset | Target | reprise | restic | Ratio | Result |", "|---|---|---:|---:|---:|---|"]
    for name in SIGNED_DOCS:
        if name not in all_results:
            continue
        a, b = medians(all_results[name], "reprise"), medians(all_results[name], "restic")
        checks = [
            ("first backup ≥ 1.5× faster than restic", "backup1", "s", b["backup1"] / a["backup1"], b["backup1"] / a["backup1"] >= 1.5, "×"),
            ("restore ≥ 1.5× faster than restic", "restore", "s", b["restore"] / a["restore"], b["restore"] / a["restore"] >= 1.5, "×"),
            ("repository ≤ 0.5× restic's bytes", "repo", "MiB", a["repo"] / b["repo"], a["repo"] / b["repo"] <= 0.5, ""),
            ("peak RSS (backup) ≤ restic's", "rss_b", "MiB", a["rss_b"] / b["rss_b"], a["rss_b"] <= b["rss_b"], ""),
            ("peak RSS (restore) ≤ restic's", "rss_r", "MiB", a["rss_r"] / b["rss_r"], a["rss_r"] <= b["rss_r"], ""),
        ]
        for label, key, unit, r, ok, suffix in checks:
            scale = 2**20 if key == "repo" else (1024 if key.startswith("rss") else 1)
            rows.append(f"| {name} | {label} | {a[key] / scale:.2f} {unit} | {b[key] / scale:.2f} {unit} | "
                        f"{r:.2f}{suffix} | {'PASS' if ok else 'MISS'} |")
    return rows


def machine_info(bins, can_drop, work, note):
    def out(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.strip()
        except OSError as e:
            return f"unavailable ({e})"

    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                fl = line.split(":", 1)[1].split()
                flags = " ".join(x for x in ("aes", "vaes", "avx2", "avx512f", "sha_ni") if x in fl)
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    git = out(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    with open(bins["reprise"], "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()[:16]
    origin = note or f"built from the workspace at `{git}`"
    fs = out(["df", "-T", work]).splitlines()[-1].split()
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores (flags: {flags}); RAM {mem_kib / 2**20:.1f} GiB",
        f"- Kernel: {platform.system()} {platform.release()}; work dir {work} on {fs[1]} ({fs[0]})",
        f"- reprise: `{out([bins['reprise'], '--version'])}`, {origin} (binary sha256 {sha}…)",
        *(f"- {tool}: `{out([bins[tool], flag])}`" for tool, flag in (("restic", "version"), ("borg", "--version")) if tool in bins),
        f"- Page cache dropped before every timed step: {'yes' if can_drop else 'NO (not permitted: warm-cache figures)'}",
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", nargs="?", default="/tmp/reprise-bench", help="where datasets, repositories and restores go")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per tool and dataset (median reported)")
    ap.add_argument("--datasets", default="ref-docs,docs,source", help="comma-separated subset of " + ",".join(DATASETS))
    ap.add_argument("--out", help="report file [default: WORKDIR/peers-TIMESTAMP.md]")
    ap.add_argument("--reprise", help="reprise binary to use instead of building one")
    ap.add_argument("--gen-dataset", help="gen-dataset binary to use instead of building one")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared", "bench"),
                    help="directory holding gen_docs.py [default: ../shared/bench beside the workspace]")
    ap.add_argument("--settle", type=float, default=15,
                    help="before each tool's run, wait up to this many seconds for other processes to quiet down")
    ap.add_argument("--max-load", type=float, default=0.30,
                    help="redo a tool's run when other processes used more than this share of the machine "
                         "during one of its timed steps (the run's own kernel writeback counts too: ~0.1)")
    ap.add_argument("--retries", type=int, default=2, help="redos allowed per run (the last attempt is kept)")
    ap.add_argument("--note", help="where the reprise binary comes from, for the report [default: git describe of the workspace]")
    ap.add_argument("--cmdline", help=argparse.SUPPRESS)
    args = ap.parse_args()
    started = time.time()
    work = os.path.abspath(args.workdir)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    for n in names:
        if n not in DATASETS:
            die(f"unknown dataset {n!r}; known: {', '.join(DATASETS)}")
    if args.reps < 1:
        die("--reps must be at least 1")

    bins = {"restic": shutil.which("restic"), "borg": shutil.which("borg")}
    for t in ("restic", "borg"):
        if not bins[t]:
            die(f"{t} not found: apt-get install -y restic borgbackup")
    if not os.access("/usr/bin/time", os.X_OK):
        die("/usr/bin/time not found: apt-get install -y time")

    os.makedirs(os.path.join(work, "bin"), exist_ok=True)
    tdir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not (args.reprise and args.gen_dataset):
        log("building reprise and gen-dataset (cargo build --release)")
        r = subprocess.run(["cargo", "build", "--release", "-p", "reprise", "-p", "reprise-bench"], cwd=ROOT)
        if r.returncode != 0:
            die("cargo build failed (pass --reprise BIN --gen-dataset BIN to use prebuilt binaries)")
    # Freeze the binaries for the whole run: the workspace may be rebuilt meanwhile.
    for name, given in (("reprise", args.reprise), ("gen-dataset", args.gen_dataset)):
        srcbin = given or os.path.join(tdir, "release", name)
        dst = os.path.join(work, "bin", name)
        shutil.copy2(srcbin, dst)
        bins[name] = dst

    if "ref-docs" in names and not os.path.isfile(os.path.join(args.shared, "gen_docs.py")):
        die(f"{args.shared}/gen_docs.py not found: pass --shared DIR")
    can_drop = drop_caches()
    if not can_drop:
        log("cannot drop the page cache (not root?): timings will be warm-cache")

    infos = {}
    for n in names:
        out = os.path.join(work, "data", n)
        stamp = out + ".done"
        argv = DATASETS[n][1](out, bins["gen-dataset"], args.shared)
        # what identifies the dataset: the generator's name and arguments, not where it lives
        want = shlex.join([os.path.basename(a) if i == 0 or a.endswith(".py") else a for i, a in enumerate(argv)])
        if not (os.path.exists(stamp) and open(stamp).read() == want):
            log(f"generating {n}: {shlex.join(argv)}")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            run(argv)
            with open(stamp, "w") as f:
                f.write(want)
        files, size = 0, 0
        for dp, _, fns in os.walk(out):
            for fn in fns:
                files += 1
                size += os.path.getsize(os.path.join(dp, fn))
        infos[n] = {"files": files, "bytes": size, "du_bytes": du_bytes(out)}

    all_results = {}
    discarded = []
    for n in names:
        src = os.path.join(work, "data", n)
        log(f"{n}: hashing the source tree for verification")
        want = manifest(src)
        res = {t: [] for t in TOOLS}
        for rep in range(args.reps):
            order = TOOLS[rep % 3:] + TOOLS[:rep % 3]  # rotate so no tool always goes first
            for t in order:
                for attempt in range(args.retries + 1):
                    share, waited = settle(args.settle)
                    log(f"{n} run {rep + 1}/{args.reps}: {t} (other load {share:.0%} after {waited:.0f}s wait)")
                    r = one_run(t, src, want, os.path.join(work, "runs", n, t), bins, can_drop)
                    load = max(r[k]["foreign_load"] for k in ("backup1", "backup2", "restore"))
                    log(f"  backup {r['backup1']['wall_s']:.2f}s, re-backup {r['backup2']['wall_s']:.2f}s, "
                        f"restore {r['restore']['wall_s']:.2f}s, repo {r['repo_bytes'] / 2**20:.1f} MiB, "
                        f"other load {load:.0%}, verified")
                    r["attempt"] = attempt + 1
                    if load <= args.max_load or attempt == args.retries:
                        break
                    log(f"  other processes used {load:.0%} of the machine (> {args.max_load:.0%}): discarded, redoing")
                    discarded.append({"dataset": n, "tool": t, "rep": rep + 1, "load": load,
                                      "backup1_s": r["backup1"]["wall_s"], "restore_s": r["restore"]["wall_s"]})
                res[t].append(r)
        all_results[n] = res

    duration = time.time() - started
    cmdline = args.cmdline or shlex.join(sys.argv)
    lines = ["## Peer comparison: reprise vs restic vs borg (file trees)", ""]
    lines.append(f"Produced by `{cmdline}` on {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}, "
                 f"in {duration / 60:.1f} min ({args.reps} runs per tool and dataset, every restore verified "
                 "against the source: same entries, types, sizes and SHA-256 of every file).")
    lines.append("")
    lines += machine_info(bins, can_drop, work, args.note)
    lines.append("- Settings: reprise defaults (FastCDC 4/16/64 KiB, zstd 3, Argon2id default); "
                 "restic defaults (repository v2, compression auto); "
                 "borg `init -e repokey-blake2`, `create --compression zstd,3` (borg's default is lz4).")
    lines.append(f"- Contention: runs during which other processes used > {args.max_load:.0%} of the machine in a timed step "
                 f"were discarded and redone (up to {args.retries} times; the last attempt is kept): "
                 + (f"{len(discarded)} discarded (" + ", ".join(f"{d['dataset']}/{d['tool']} run {d['rep']} at {d['load']:.0%}" for d in discarded) + ")."
                    if discarded else "none discarded."))
    lines.append("- Ratios: times as peer ÷ reprise (> 1: reprise faster); bytes and memory as reprise ÷ peer (< 1: reprise smaller).")
    lines.append("")
    for n in names:
        lines += dataset_table(n, infos[n], all_results[n])
    if any(n in all_results for n in SIGNED_DOCS):
        lines += ["### Targets (signed-documents data, medians)", ""] + targets_table(all_results) + [""]
    report = "\n".join(lines)
    print(report)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out or os.path.join(work, f"peers-{stamp}.md")
    with open(path, "w") as f:
        f.write(report)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({"command": cmdline, "duration_s": duration, "datasets": infos, "results": all_results, "discarded": discarded}, f, indent=1)
    log(f"report written to {path} (raw data beside it, .json); run took {duration / 60:.1f} min")


if __name__ == "__main__":
    main()
