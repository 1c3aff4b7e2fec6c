#!/usr/bin/env python3
"""Prune at scale: reprise vs restic on a repository of a million chunks
(Python 3 stdlib only). Run it through bench/prune.sh.

The dataset (bench/gen_small_files.py) is N small files of random bytes,
200 B-3 KiB each, 1000 a directory: every file is smaller than both
tools' minimum chunk (reprise 4 KiB, restic 512 KiB), so it is exactly one
data blob in both, and both repositories have the same shape: N data
blobs plus one tree blob a directory.

For each tool, in a fresh directory on the same disk:

  init -> drop caches -> backup #1 of the whole tree (timed) -> half the
  files leave the tree (every other directory, or the first half, see
  --delete) -> drop caches -> backup #2 (timed) -> the files come back ->
  stats -> forget backup #1 (reprise: its snapshot object is removed, which
  is what `forget` does; restic: `forget ID`) -> drop caches -> prune
  (timed; reprise `--grace 0`, i.e. mark and sweep in one run, as restic
  deletes at once; both `--max-unused 5%`) -> stats -> drop caches ->
  check (timed; must pass) -> repository removed.

Times are wall-clock around the process; peak RSS is /usr/bin/time's %M.
"Memory per million chunks" is peak RSS x 1e6 / blobs in the repository.
A check that fails after prune makes the run exit with status 1.
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peers import ROOT, busy_seconds, die, drop_caches, du_bytes, machine_info, NCPU, run, settle  # noqa: E402

PASSWORD = "reprise-bench-passphrase"
TOOLS = ("reprise", "restic")
FIXED_TIME = 1_700_000_000


def log(msg):
    print(f"[prune {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def du_kib(path):
    """Disk blocks used below path, KiB (du -sk)."""
    if not os.path.exists(path):
        return 0
    return int(run(["du", "-sk", path], capture=True).split()[0])


class Disk:
    """The most disk the run used: the dataset plus what is under runs/
    (repository and cache) at its largest, sampled after every step."""

    def __init__(self, runs):
        self.runs = runs
        self.data_kib = 0
        self.runs_peak_kib = 0

    def sample(self):
        self.runs_peak_kib = max(self.runs_peak_kib, du_kib(self.runs))

    @property
    def peak(self):
        return (self.data_kib + self.runs_peak_kib) * 1024


def timed(argv, env, cwd, timefile, check=True):
    """Runs argv under /usr/bin/time: wall s, peak RSS KiB, CPU s, other
    processes' share of the machine meanwhile, exit status, stdout, stderr."""
    full = ["/usr/bin/time", "-o", timefile, "-f", "%M %U %S %F %R"] + argv
    b0 = busy_seconds()
    t0 = time.perf_counter()
    r = subprocess.run(full, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    busy = busy_seconds() - b0
    if r.returncode != 0 and check:
        die(f"command failed ({r.returncode}): {shlex.join(argv)}\n{r.stderr[-4000:]}")
    with open(timefile) as f:
        last = f.read().split("\n")
        fields = [ln for ln in last if ln.strip()][-1].split()
    rss, user, sys_, majflt, minflt = fields[-5:]
    cpu = float(user) + float(sys_)
    foreign = max(0.0, busy - cpu) / (wall * NCPU)
    return {"argv": argv, "wall_s": wall, "rss_kib": int(rss), "cpu_s": cpu, "major_faults": int(majflt),
            "minor_faults": int(minflt), "foreign_load": foreign, "rc": r.returncode, "stdout": r.stdout,
            "stderr": r.stderr[-4000:]}


def count_files(path):
    return sum(len(fns) for _, _, fns in os.walk(path))


class Tool:
    def __init__(self, name, rundir, bins):
        self.name, self.rundir, self.bins = name, rundir, bins
        self.repo = os.path.join(rundir, "repo")
        self.cache = os.path.join(rundir, "cache")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("REPRISE_", "RESTIC_"))}
        self.env["REPRISE_PASSWORD" if name == "reprise" else "RESTIC_PASSWORD"] = PASSWORD

    def base(self):
        if self.name == "reprise":
            return [self.bins["reprise"], "--repo", self.repo, "--cache-dir", self.cache]
        return [self.bins["restic"], "-r", self.repo, "--cache-dir", self.cache]

    def init(self, kdf_memory=None):
        extra = ["--kdf-memory", str(kdf_memory)] if kdf_memory and self.name == "reprise" else []
        run(self.base() + ["init"] + extra, env=self.env, cwd=self.rundir)

    def backup_argv(self, src):
        if self.name == "reprise":
            return self.base() + ["--json", "backup", "--path", src]
        return self.base() + ["backup", "-q", "--json", src]

    def snapshot_ids(self):
        out = run(self.base() + ["--json", "snapshots"], env=self.env, cwd=self.rundir, capture=True)
        return [s["id"] for s in json.loads(out)]

    def forget(self, snap):
        if self.name == "reprise":
            # What `reprise forget` does to a snapshot its policy lets go.
            os.remove(os.path.join(self.repo, "snapshots", snap))
        else:
            run(self.base() + ["forget", snap], env=self.env, cwd=self.rundir)

    def prune_argv(self, max_unused):
        if self.name == "reprise":
            return self.base() + ["--json", "prune", "--grace", "0", "--max-unused", f"{max_unused:g}"]
        return self.base() + ["prune", "--max-unused", f"{max_unused:g}%"]

    def baseline_argv(self):
        """A command that opens the repository and does next to nothing: its
        peak RSS is the tool's floor (reprise: the Argon2id KDF's memory;
        restic: scrypt's)."""
        return self.base() + ["snapshots"]

    def check_argv(self):
        return self.base() + ["check"]

    def stats(self):
        """Blobs, packs and bytes, from the tool itself and from the disk."""
        out = {"repo_bytes": du_bytes(self.repo), "pack_files": count_files(os.path.join(self.repo, "data"))}
        if self.name == "reprise":
            s = json.loads(run(self.base() + ["--json", "stats"], env=self.env, cwd=self.rundir, capture=True))
            out.update(blobs=s["data_blobs"] + s["tree_blobs"], data_blobs=s["data_blobs"], tree_blobs=s["tree_blobs"],
                       packs=s["packs"], pack_bytes=s["stored_bytes"])
        else:
            # Every blob the index lists, as reprise's stats count them
            # (`stats --mode raw-data` counts only those snapshots reference).
            lines = run(self.base() + ["list", "blobs"], env=self.env, cwd=self.rundir, capture=True).splitlines()
            kinds = [ln.split()[0] for ln in lines if ln.strip()]
            out.update(blobs=len(kinds), data_blobs=kinds.count("data"), tree_blobs=kinds.count("tree"),
                       packs=out["pack_files"], pack_bytes=du_bytes(os.path.join(self.repo, "data")))
        return out


def removed_dirs(src, how):
    dirs = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    if how == "alternate":
        return dirs[1::2]
    return dirs[: len(dirs) // 2]


def take_out(src, aside, names):
    os.makedirs(aside, exist_ok=True)
    for d in names:
        os.rename(os.path.join(src, d), os.path.join(aside, d))


def put_back(src, aside):
    if not os.path.isdir(aside):
        return
    for d in os.listdir(aside):
        os.rename(os.path.join(aside, d), os.path.join(src, d))
    os.rmdir(aside)
    os.utime(src, (FIXED_TIME, FIXED_TIME))


def one_run(tool_name, src, aside, rundir, bins, args, can_drop, disk):
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    t = Tool(tool_name, rundir, bins)
    t.init(args.reprise_kdf_memory)
    tf = os.path.join(rundir, "time.out")
    out = {}

    def step(name, argv, **kw):
        can_drop and drop_caches()
        r = timed(argv, t.env, rundir, tf, **kw)
        disk.sample()
        log(f"  {tool_name} {name}: {r['wall_s']:.1f} s, peak RSS {r['rss_kib'] / 1024:.0f} MiB, "
            f"CPU {r['cpu_s']:.1f} s, other load {r['foreign_load']:.0%}" + (f", EXIT {r['rc']}" if r["rc"] else ""))
        out[name] = r
        return r

    step("baseline", t.baseline_argv())
    step("backup1", t.backup_argv(src))
    out["after_backup1"] = t.stats()
    first = t.snapshot_ids()
    if len(first) != 1:
        die(f"{tool_name}: expected one snapshot after the first backup, found {first}")
    take_out(src, aside, removed_dirs(src, args.delete))
    try:
        step("backup2", t.backup_argv(src))
    finally:
        put_back(src, aside)
    out["before_prune"] = t.stats()
    t.forget(first[0])
    r = step("prune", t.prune_argv(args.max_unused))
    if tool_name == "reprise":
        try:
            out["prune_report"] = json.loads(r["stdout"])
        except ValueError:
            die(f"reprise prune --json printed no report: {r['stdout'][:500]}")
    else:
        out["prune_log"] = r["stdout"][-3000:]
    out["after_prune"] = t.stats()
    r = step("check", t.check_argv(), check=False)
    out["check_ok"] = r["rc"] == 0
    if not out["check_ok"]:
        log(f"  {tool_name} CHECK FAILED after prune:\n{r['stdout'][-2000:]}\n{r['stderr'][-2000:]}")
    for k in ("baseline", "backup1", "backup2", "check"):
        out[k].pop("stdout", None)
    for k in ("baseline", "backup1", "backup2", "prune", "check"):
        if out[k]["rc"] == 0:
            out[k].pop("stderr", None)
    out["prune"].pop("stdout", None)
    if not args.keep_repos:
        shutil.rmtree(rundir)
    os.sync()
    return out


def mib(kib):
    return kib / 1024


def table(results, info):
    have = [t for t in TOOLS if t in results]
    both = len(have) == 2

    def row(label, f, fmt, kind=None):
        vals = {t: f(results[t]) for t in have}
        cells = [fmt(vals[t]) for t in have]
        ratio = ""
        if both and kind:
            a, b = vals["reprise"], vals["restic"]
            ratio = f"{a / b:.2f}" if b else "–"
        return f"| {label} | " + " | ".join(cells) + (f" | {ratio} |" if both else " |")

    n = lambda x: f"{x:,}".replace(",", " ")  # noqa: E731
    s1 = lambda x: f"{x:.1f}"  # noqa: E731
    s2 = lambda x: f"{x:.2f}"  # noqa: E731
    per_m = lambda rss_kib, blobs: mib(rss_kib) * 1e6 / blobs if blobs else 0.0  # noqa: E731
    head = "| Metric | " + " | ".join(have) + (" | reprise ÷ restic |" if both else " |")
    lines = [head, "|---|" + "---:|" * len(have) + ("---:|" if both else "")]
    lines += [
        row("Blobs after backup #1 (data + tree)", lambda r: r["after_backup1"]["blobs"], n),
        row("Backup #1, s", lambda r: r["backup1"]["wall_s"], s1, "x"),
        row("Backup #1 peak RSS, MiB", lambda r: mib(r["backup1"]["rss_kib"]), s1, "x"),
        row("Baseline peak RSS (`snapshots`: opening the repository), MiB", lambda r: mib(r["baseline"]["rss_kib"]), s1, "x"),
        row("**Backup memory per million chunks, MiB**", lambda r: per_m(r["backup1"]["rss_kib"], r["after_backup1"]["blobs"]), s1, "x"),
        row("Backup #2 (half the files gone), s", lambda r: r["backup2"]["wall_s"], s1, "x"),
        row("Backup #2 peak RSS, MiB", lambda r: mib(r["backup2"]["rss_kib"]), s1, "x"),
        row("Blobs before prune (both snapshots)", lambda r: r["before_prune"]["blobs"], n),
        row("Packs before prune", lambda r: r["before_prune"]["pack_files"], n),
        row("Repository before prune, MiB (du -sb)", lambda r: r["before_prune"]["repo_bytes"] / 2**20, s1, "x"),
        row("**Prune, s**", lambda r: r["prune"]["wall_s"], s2, "x"),
        row("Prune CPU (user+sys), s", lambda r: r["prune"]["cpu_s"], s2, "x"),
        row("**Prune peak RSS, MiB**", lambda r: mib(r["prune"]["rss_kib"]), s1, "x"),
        row("**Prune memory per million chunks, MiB**", lambda r: per_m(r["prune"]["rss_kib"], r["before_prune"]["blobs"]), s1, "x"),
        row("Blobs after prune (in the index)", lambda r: r["after_prune"]["blobs"], n),
        row("Packs after prune", lambda r: r["after_prune"]["pack_files"], n),
        row("Repository after prune, MiB (du -sb)", lambda r: r["after_prune"]["repo_bytes"] / 2**20, s1, "x"),
        row("Check after prune, s", lambda r: r["check"]["wall_s"], s2, "x"),
        row("Check after prune", lambda r: "pass" if r["check_ok"] else "**FAIL**", str),
        row("Other processes' load, % of machine (max of the timed steps)",
            lambda r: 100 * max(r[k]["foreign_load"] for k in ("backup1", "backup2", "prune", "check")), lambda x: f"{x:.0f}"),
    ]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", nargs="?", default="/tmp/reprise-prune-bench")
    ap.add_argument("--files", type=int, default=1_000_000, help="files (= data blobs) in the dataset [1000000]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-dir", type=int, default=1000, help="files a directory [1000]")
    ap.add_argument("--delete", choices=("alternate", "first-half"), default="alternate",
                    help="which half of the directories backup #2 no longer sees: every other one (every pack "
                         "half used: prune repacks) or the first half (whole packs unused: prune deletes) [alternate]")
    ap.add_argument("--max-unused", type=float, default=5, help="percent, given to both tools [5, both defaults]")
    ap.add_argument("--tools", default="reprise,restic")
    ap.add_argument("--reprise-kdf-memory", type=int, metavar="KIB",
                    help="Argon2id memory for reprise's key (diagnosis: its 64 MiB default is the floor of every "
                         "command's peak RSS and hides per-chunk memory at small scales) [reprise's default]")
    ap.add_argument("--reprise", help="reprise binary to use instead of building one")
    ap.add_argument("--note", help="where the reprise binary comes from, for the report")
    ap.add_argument("--out", help="report file [default: bench/results/prune-DATE-COMMIT.md]")
    ap.add_argument("--keep-repos", action="store_true", help="leave the repositories in WORKDIR/runs")
    ap.add_argument("--settle", type=float, default=15, help="wait up to this many seconds for the machine to quiet down before each tool")
    ap.add_argument("--cmdline", help=argparse.SUPPRESS)
    args = ap.parse_args()
    started = time.time()
    work = os.path.abspath(args.workdir)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            die(f"unknown tool {t!r}; known: {', '.join(TOOLS)}")
    bins = {"restic": shutil.which("restic")}
    if "restic" in tools and not bins["restic"]:
        die("restic not found: apt-get install -y restic")
    if not os.access("/usr/bin/time", os.X_OK):
        die("/usr/bin/time not found: apt-get install -y time")

    os.makedirs(os.path.join(work, "bin"), exist_ok=True)
    if not args.reprise:
        log("building reprise (cargo build --release -p reprise)")
        if subprocess.run(["cargo", "build", "--release", "-p", "reprise"], cwd=ROOT).returncode != 0:
            die("cargo build failed (pass --reprise BIN to use a prebuilt binary)")
    tdir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bins["reprise"] = os.path.join(work, "bin", "reprise")
    shutil.copy2(args.reprise or os.path.join(tdir, "release", "reprise"), bins["reprise"])  # frozen for the run
    if subprocess.run([bins["reprise"], "prune", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        die(f"{bins['reprise']} has no prune subcommand")

    disk = Disk(os.path.join(work, "runs"))
    src = os.path.join(work, "data", f"small-files-{args.files}-{args.seed}-{args.per_dir}")
    aside = src + ".removed"
    stamp = src + ".done"
    put_back(src, aside)  # an interrupted run may have left half the tree aside
    gen = ["python3", os.path.join(HERE, "gen_small_files.py"), src, str(args.files), str(args.seed), "--per-dir", str(args.per_dir)]
    if not os.path.exists(stamp):
        log(f"generating: {shlex.join(gen)}")
        shutil.rmtree(src, ignore_errors=True)
        t0 = time.perf_counter()
        run(gen)
        os.utime(src, (FIXED_TIME, FIXED_TIME))
        log(f"  {time.perf_counter() - t0:.0f} s")
        with open(stamp, "w") as f:
            f.write(shlex.join(gen[1:]))
    nfiles = count_files(src)
    if nfiles != args.files:
        die(f"{src} holds {nfiles} files, not {args.files}: remove it and {stamp} to regenerate")
    info = {"files": nfiles, "bytes": sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fns in os.walk(src) for f in fns),
            "du_bytes": du_kib(src) * 1024, "dirs": len(os.listdir(src))}
    disk.data_kib = info["du_bytes"] // 1024
    log(f"dataset: {info['files']} files in {info['dirs']} directories, {info['bytes'] / 2**20:.0f} MiB "
        f"({info['du_bytes'] / 2**20:.0f} MiB on disk)")
    can_drop = drop_caches()
    if not can_drop:
        log("cannot drop the page cache (not root?): timings will be warm-cache")

    results = {}
    for t in tools:
        share, waited = settle(args.settle)
        log(f"{t} (other load {share:.0%} after {waited:.0f}s wait)")
        results[t] = one_run(t, src, aside, os.path.join(work, "runs", t), bins, args, can_drop, disk)

    duration = time.time() - started
    cmdline = args.cmdline or shlex.join(sys.argv)
    when = datetime.datetime.now().astimezone()
    lines = ["## Prune at a million chunks: reprise vs restic", ""]
    lines.append(f"Produced by `{cmdline}` on {when.strftime('%Y-%m-%d %H:%M %Z')}, in {duration / 60:.1f} min "
                 f"(one run per tool; peak disk used by the run {disk.peak / 2**30:.1f} GiB).")
    lines.append("")
    lines += machine_info(bins, can_drop, work, args.note)
    half = "every other directory" if args.delete == "alternate" else "the first half of the directories"
    lines.append(f"- Dataset: `{shlex.join(gen[1:])}`: {info['files']} files of 200 B–3 KiB random bytes in "
                 f"{info['dirs']} directories, {info['bytes'] / 2**20:.0f} MiB ({info['du_bytes'] / 2**20:.0f} MiB on disk): "
                 "one data blob per file in both tools.")
    lines.append(f"- Steps: backup #1 of the tree; {half} taken away; backup #2; backup #1 forgotten "
                 "(reprise: its snapshot object removed, as `forget` does; restic: `forget ID`); "
                 f"prune (reprise `--grace 0 --max-unused {args.max_unused:g}`: mark and sweep in one run; "
                 f"restic `--max-unused {args.max_unused:g}%`); check. Page cache dropped before each timed step; "
                 "each tool keeps its own cache directory, as a user's would.")
    if args.reprise_kdf_memory:
        lines.append(f"- **reprise's key made with `init --kdf-memory {args.reprise_kdf_memory}`** (not the default 65536 KiB): "
                     "a diagnostic run, not a comparison.")
    lines.append("- Ratios: reprise ÷ restic (< 1: reprise faster or smaller). Memory per million chunks: "
                 "peak RSS × 10⁶ ÷ blobs in the repository. The baseline (peak RSS of `snapshots`: opening the "
                 "repository, i.e. key derivation and runtime) dominates at small scales; it is not subtracted, "
                 "as the key derivation's memory is freed before the index is loaded.")
    lines.append("")
    lines += table(results, info)
    rep = results.get("reprise", {}).get("prune_report")
    if rep:
        lines.append("")
        lines.append(f"reprise's prune report: {rep.get('snapshots')} snapshot(s), {rep.get('used_blobs')} used blobs; "
                     f"deleted {rep.get('deleted_packs')} packs ({rep.get('deleted_bytes', 0) / 2**20:.1f} MiB), "
                     f"repacked {rep.get('repacked_packs')} packs ({rep.get('repacked_bytes', 0) / 2**20:.1f} MiB read, "
                     f"{rep.get('repack_written_bytes', 0) / 2**20:.1f} MiB written), "
                     f"{rep.get('index_files_rewritten')} index files rewritten, "
                     f"{rep.get('unused_bytes_left', 0) / 2**20:.1f} MiB unused left; {rep.get('duration_ms')} ms reported.")
    if "restic" in results:
        summary = [ln.strip() for ln in results["restic"].get("prune_log", "").splitlines()
                   if ln.strip().startswith(("to repack", "this removes", "to delete", "total prune", "remaining", "unused size after"))]
        if summary:
            lines.append("")
            lines.append("restic's prune plan: " + "; ".join(summary) + ".")
    lines.append("")
    report = "\n".join(lines)
    print(report)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip() or "unknown"
    path = args.out or os.path.join(HERE, "results", f"prune-{when.strftime('%Y-%m-%d')}-{commit}-{args.delete}.md")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(report)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({"command": cmdline, "duration_s": duration, "dataset": info, "peak_disk_bytes": disk.peak,
                   "results": results}, f, indent=1)
    log(f"report written to {path} (raw data beside it, .json); run took {duration / 60:.1f} min, "
        f"peak disk {disk.peak / 2**30:.2f} GiB")
    if not all(r["check_ok"] for r in results.values()):
        die("a check failed after prune (see above)")


if __name__ == "__main__":
    main()
