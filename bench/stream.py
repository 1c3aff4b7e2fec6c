#!/usr/bin/env python3
"""What synchronous streaming costs: commit latency and transactions/s with
no standby, with `reprise wal-stream` asynchronous, and with
`reprise wal-stream --synchronous` (a commit returns once its WAL is in the
repository), on local storage and on an S3 server; and, for comparison,
`pg_receivewal --synchronous` (a commit returns once its WAL is in
pg_receivewal's local spool, what reprise did before). Python 3 stdlib
only; run it through bench/stream.sh, as root (the server runs as the
`postgres` account).

One PostgreSQL server (wal_level replica, fsync on, synchronous_commit on)
in WORKDIR; the load is pgbench with one single-row INSERT per
transaction, for --seconds per run (bounded), with 1 and 8 clients. The
standby the server waits for is set with ALTER SYSTEM
synchronous_standby_names and a reload. Latencies are pgbench's
per-transaction log; "commits per stored range" is transactions divided by
the ranges the stream stored (its --json report): the group commit.

The S3 server is moto (a Python emulator on this machine): its latency is
not AWS's; the figures show how latency of the store shows in commits.
"""

import argparse
import datetime
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "reprise-bench-passphrase"


def log(msg):
    print(f"[stream {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"stream: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(argv, env=None, capture=False, user=None):
    if user:
        argv = ["runuser", "-u", user, "--"] + argv
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        die(f"command failed ({r.returncode}): {' '.join(argv)}\n{r.stderr[-3000:]}")
    return r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bindir, work):
        self.bindir, self.work = bindir, work
        self.data, self.sock = os.path.join(work, "pg"), os.path.join(work, "sock")
        os.makedirs(self.sock, exist_ok=True)
        shutil.chown(work, "postgres")
        shutil.chown(self.sock, "postgres")
        self.port = free_port()
        run([f"{bindir}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-instructions"], user="postgres")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nlocal replication all trust\n")
        opts = f"-c port={self.port} -c listen_addresses='' -c unix_socket_directories={self.sock} -c wal_level=replica -c max_wal_senders=6"
        run([f"{bindir}/pg_ctl", "start", "-W", "-D", self.data, "-l", os.path.join(work, "pg.log"), "-o", opts], user="postgres")
        for _ in range(200):
            if subprocess.run([f"{bindir}/pg_isready", "-h", self.sock, "-p", str(self.port)], stdout=subprocess.DEVNULL).returncode == 0:
                return
            time.sleep(0.1)
        die("the server did not start")

    def conn(self):
        return f"host={self.sock} port={self.port} user=postgres dbname=postgres"

    def sql(self, q):
        return run([f"{self.bindir}/psql", "-X", "-At", "-h", self.sock, "-p", str(self.port), "-U", "postgres", "-c", q], capture=True).strip()

    def wait_for(self, app, state):
        for _ in range(600):
            if self.sql(f"SELECT coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = '{app}' AND state = 'streaming'), '')") == state:
                return
            time.sleep(0.1)
        die(f"{app} never became a {state} standby")

    def waits_for(self, names):
        self.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        self.sql("SELECT pg_reload_conf()")
        time.sleep(0.5)

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bindir}/pg_ctl", "stop", "-m", "immediate", "-D", self.data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pgbench(server, clients, seconds, tag, work):
    script = os.path.join(work, "insert.sql")
    with open(script, "w") as f:
        f.write("INSERT INTO t (v) VALUES ('commit');\n")
    logdir = os.path.join(work, "logs", tag)
    os.makedirs(logdir, exist_ok=True)
    out = run([f"{server.bindir}/pgbench", "-n", "-h", server.sock, "-p", str(server.port), "-U", "postgres", "-c", str(clients), "-j", str(min(clients, 2)),
               "-T", str(seconds), "-f", script, "--log", f"--log-prefix={logdir}/tx", "postgres"], capture=True)
    tps = float(next(line for line in out.splitlines() if line.startswith("tps =")).split()[2])
    lat = []
    for path in glob.glob(f"{logdir}/tx*"):
        with open(path) as f:
            for line in f:
                lat.append(int(line.split()[2]) / 1000.0)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]  # noqa: E731
    return {"tps": tps, "transactions": len(lat), "latency_ms_mean": statistics.fmean(lat), "latency_ms_p50": q(0.50), "latency_ms_p99": q(0.99)}


class Stream:
    """`reprise wal-stream` as a separate process."""

    def __init__(self, reprise, plan, env, synchronous, logpath):
        args = [reprise, "--json", "--plan", plan, "wal-stream", "db"] + (["--synchronous"] if synchronous else [])
        self.log = open(logpath, "w")
        self.p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def stop(self):
        self.p.terminate()
        out, _ = self.p.communicate(timeout=120)
        self.log.close()
        try:
            return json.loads(out)
        except ValueError:
            die(f"wal-stream printed no report: {out!r}")


def moto(work, program):
    port = free_port()
    logf = open(os.path.join(work, "moto.log"), "w")
    p = subprocess.Popen([program, "-H", "127.0.0.1", "-p", str(port)], stdout=logf, stderr=logf)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/bench", method="PUT")
    urllib.request.urlopen(req).read()
    return p, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reprise", default=os.path.join(ROOT, "target/release/reprise"))
    ap.add_argument("--bindir", default=max(glob.glob("/usr/lib/postgresql/*/bin")))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--storage", default="local,s3")
    ap.add_argument("--moto", default=os.environ.get("REPRISE_TEST_MOTO", shutil.which("moto_server") or ""))
    ap.add_argument("--cmdline", default="bench/stream.sh")
    ap.add_argument("--out")
    ap.add_argument("work", nargs="?", default="/tmp/reprise-stream-bench")
    a = ap.parse_args()
    if os.geteuid() != 0:
        die("run as root: the server runs as the postgres account")
    if not os.access(a.reprise, os.X_OK):
        die(f"{a.reprise}: build it first (cargo build --release -p reprise)")
    clients = [int(c) for c in a.clients.split(",")]
    storages = a.storage.split(",")
    if "s3" in storages and not a.moto:
        die("S3 needs moto_server (pip install 'moto[server]', or --moto PATH)")
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    server = Server(a.bindir, a.work)
    mproc = None
    results = []
    try:
        server.sql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        env0 = {k: v for k, v in os.environ.items() if not k.startswith("REPRISE_")}
        env0.update({"REPRISE_PASSWORD": PASSWORD, "XDG_CACHE_HOME": os.path.join(a.work, "cache")})

        def measure(config, storage):
            for rep in range(a.repeat):
                for c in clients:
                    tag = f"{config}-{storage}-{c}-{rep}".replace(" ", "_").replace("/", "_")
                    log(f"{tag}: pgbench {a.seconds}s")
                    r = pgbench(server, c, a.seconds, tag, a.work)
                    r.update({"config": config, "storage": storage, "clients": c, "repetition": rep})
                    results.append(r)

        server.waits_for("")
        measure("no standby", "-")

        # pg_receivewal --synchronous: acknowledged once in its local spool.
        spool = os.path.join(a.work, "receivewal")
        os.makedirs(spool)
        shutil.chown(spool, "postgres")
        run([f"{a.bindir}/pg_receivewal", "-h", server.sock, "-p", str(server.port), "-U", "postgres", "--slot", "bench_rw", "--create-slot"], user="postgres")
        rw = subprocess.Popen(["runuser", "-u", "postgres", "--", f"{a.bindir}/pg_receivewal", "-h", server.sock, "-p", str(server.port), "-U", "postgres",
                               "--slot", "bench_rw", "--synchronous", "-D", spool], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server.wait_for("pg_receivewal", "async")
        server.waits_for("pg_receivewal")
        server.wait_for("pg_receivewal", "sync")
        measure("pg_receivewal --synchronous (local spool)", "local disk")
        server.waits_for("")
        rw.terminate()
        rw.wait()
        server.sql("SELECT pg_drop_replication_slot('bench_rw')")

        for storage in storages:
            env = dict(env0)
            if storage == "local":
                url = os.path.join(a.work, "repo")
            else:
                if mproc is None:
                    mproc, mport = moto(a.work, a.moto)
                url = f"s3://bench/repo?endpoint=http://127.0.0.1:{mport}"
                env.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"})
            run([a.reprise, "--repo", url, "init", "--kdf-memory", "64", "--kdf-iterations", "1"], env=env)
            plan = os.path.join(a.work, f"plan-{storage}.toml")
            with open(plan, "w") as f:
                f.write(f'[repositories.main]\nurl = "{url}"\n\n[components.db]\ntype = "postgres"\nconnection = "{server.conn()}"\n')
            label = "local disk" if storage == "local" else "S3 (moto)"
            for rep in range(a.repeat):
                for synchronous in (False, True):
                    config = "reprise wal-stream --synchronous" if synchronous else "reprise wal-stream (asynchronous)"
                    for c in clients:
                        stream = Stream(a.reprise, plan, env, synchronous, os.path.join(a.work, f"stream-{storage}-{synchronous}-{c}-{rep}.log"))
                        server.wait_for("reprise_db", "async")
                        server.waits_for("reprise_db" if synchronous else "")
                        if synchronous:
                            server.wait_for("reprise_db", "sync")
                        tag = f"{config}-{storage}-{c}-{rep}"
                        log(f"{tag}: pgbench {a.seconds}s")
                        r = pgbench(server, c, a.seconds, tag.replace(" ", "_").replace("/", "_"), a.work)
                        server.waits_for("")
                        report = stream.stop()
                        r.update({"config": config, "storage": label, "clients": c, "repetition": rep, "ranges_stored": report.get("ranges_stored"),
                                  "commits_per_range": r["transactions"] / max(1, report.get("ranges_stored") or 1)})
                        results.append(r)
    finally:
        server.stop()
        if mproc:
            mproc.terminate()
            mproc.wait()

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown")
    lines = [
        f"# wal-stream: synchronous vs asynchronous vs no standby ({datetime.date.today()}, commit {commit})",
        "",
        f"Command: `{a.cmdline}`; {a.seconds} s per run; pgbench, one single-row INSERT per transaction; "
        f"PostgreSQL {os.path.basename(os.path.dirname(a.bindir))}; {os.cpu_count()} CPUs ({cpu}); load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        f"Medians of {a.repeat} runs, [min–max].",
        "",
        "| setup | storage | clients | tps | latency mean (ms) | p50 | p99 | commits per stored range |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups = {}
    for r in results:
        groups.setdefault((r["config"], r["storage"], r["clients"]), []).append(r)
    for (config, storage, c), rs in groups.items():
        med = lambda k: statistics.median(x[k] for x in rs)  # noqa: E731
        span = lambda k, f: f"[{min(x[k] for x in rs):{f}}–{max(x[k] for x in rs):{f}}]"  # noqa: E731
        cpr = f"{med('commits_per_range'):.1f}" if "commits_per_range" in rs[0] else "-"
        lines.append(f"| {config} | {storage} | {c} | {med('tps'):.0f} {span('tps', '.0f')} | {med('latency_ms_mean'):.2f} {span('latency_ms_mean', '.2f')} | "
                     f"{med('latency_ms_p50'):.2f} | {med('latency_ms_p99'):.2f} | {cpr} |")
    report = "\n".join(lines) + "\n"
    print(report)
    out = a.out or os.path.join(HERE, "results", f"stream-{datetime.date.today()}-{commit}.md")
    with open(out, "w") as f:
        f.write(report)
    with open(out[:-3] + ".json", "w") as f:
        json.dump(results, f, indent=1)
    log(f"report: {out}")


if __name__ == "__main__":
    main()
