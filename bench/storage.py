#!/usr/bin/env python3
"""reprise's backup and restore throughput to local disk, Azurite (Azure
Blob Storage emulator) and moto (S3 server), side by side in one run
(Python 3 stdlib only).

  bench/storage.py [WORKDIR] [--reps N] [--files N]

Needs a release build (target/release/reprise, gen-dataset), Azurite
(tools/emulators/node_modules/.bin/azurite-blob) and moto (.venv/bin/moto_server),
as scripts/test-all installs them. Both servers run on this machine, on
loopback, on the same disk: the ratios measure reprise plus each emulator,
not a cloud service. Each restore is compared with the source (SHA-256 of
every file); a difference stops the run.
"""

import argparse
import base64
import hashlib
import hmac
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPRISE = os.path.join(ROOT, "target/release/reprise")
GEN = os.path.join(ROOT, "target/release/gen-dataset")
AZURITE = os.path.join(ROOT, "tools/emulators/node_modules/.bin/azurite-blob")
MOTO = os.path.join(ROOT, ".venv/bin/moto_server")
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def log(msg):
    print(f"[storage {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"server exited: {proc.args}")
            time.sleep(0.1)
    sys.exit(f"server not listening: {proc.args}")


def create_container(port, name):
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    to_sign = "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:2021-08-06\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{ACCOUNT}/{name}?restype=container", method="PUT",
                                 headers={"x-ms-date": date, "x-ms-version": "2021-08-06", "Authorization": f"SharedKey {ACCOUNT}:{sig}"})
    urllib.request.urlopen(req).close()


def create_bucket(port, name):
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/{name}", method="PUT")).close()


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def manifest(root):
    out = {}
    for dp, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dp, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def timed(argv, env):
    t = time.monotonic()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv[:6])}… failed: {r.stderr.strip()}")
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir", nargs="?", default="/tmp/reprise-storage-bench")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None, help="restore --threads (default: reprise's)")
    a = ap.parse_args()
    for p in (REPRISE, GEN, AZURITE, MOTO):
        if not os.access(p, os.X_OK):
            sys.exit(f"missing {p}: cargo build --release; scripts/test-all installs the emulators")
    w = os.path.abspath(a.workdir)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    src = os.path.join(w, "src")
    subprocess.run([GEN, "docs", src, str(a.files), "1"], check=True, stdout=subprocess.DEVNULL)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(src) for f in fs)
    want = manifest(src)
    az_port, s3_port = free_port(), free_port()
    servers = [
        subprocess.Popen([AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(az_port), "--location", os.path.join(w, "azurite"), "--skipApiVersionCheck", "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(s3_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_port(az_port, servers[0])
        wait_port(s3_port, servers[1])
        env = dict(os.environ, REPRISE_PASSWORD="storage-bench", XDG_CACHE_HOME=os.path.join(w, "cache"),
                   AZURE_STORAGE_ACCOUNT_KEY=KEY, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
        results = {"local": {"backup": [], "restore": []}, "azurite": {"backup": [], "restore": []}, "s3 (moto)": {"backup": [], "restore": []}}
        for rep in range(a.reps):
            for target in results:
                name = f"r{rep}"
                if target == "local":
                    url = os.path.join(w, f"local-{name}")
                elif target == "azurite":
                    create_container(az_port, f"bench-{name}")
                    url = f"azure://{ACCOUNT}/bench-{name}/repo?endpoint=http://127.0.0.1:{az_port}/{ACCOUNT}"
                else:
                    create_bucket(s3_port, f"bench-{name}")
                    url = f"s3://bench-{name}/repo?endpoint=http://127.0.0.1:{s3_port}"
                base = [REPRISE, "--repo", url]
                subprocess.run(base + ["init"], env=env, check=True, stdout=subprocess.DEVNULL)
                drop_caches()
                b = timed(base + ["backup", "--path", src, "--no-cache"], env)
                out = os.path.join(w, "restore")
                shutil.rmtree(out, ignore_errors=True)
                drop_caches()
                r = timed(base + ["restore", "latest", "--to", out] + (["--threads", str(a.threads)] if a.threads else []), env)
                got = manifest(os.path.join(out, src.lstrip("/")))
                if got != want:
                    sys.exit(f"{target}: the restore differs from the source")
                shutil.rmtree(out)
                results[target]["backup"].append(b)
                results[target]["restore"].append(r)
                log(f"rep {rep + 1} {target}: backup {b:.2f}s restore {r:.2f}s, verified")
    finally:
        for s in servers:
            s.terminate()
            s.wait()
    mib = size / 2**20
    med = {t: {k: statistics.median(v) for k, v in d.items()} for t, d in results.items()}
    print(f"Dataset: `gen-dataset docs OUT {a.files} 1`, {mib:.1f} MiB; median of {a.reps} [min–max]; cold page cache before each step; restore threads: {a.threads or 'default'}.\n")
    print("| Target | backup s | backup MiB/s | restore s | restore MiB/s | backup ÷ local | restore ÷ local |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for t, d in results.items():
        b, r = med[t]["backup"], med[t]["restore"]
        print(f"| {t} | {b:.2f} [{min(d['backup']):.2f}–{max(d['backup']):.2f}] | {mib / b:.0f} | {r:.2f} [{min(d['restore']):.2f}–{max(d['restore']):.2f}] | {mib / r:.0f} "
              f"| {b / med['local']['backup']:.2f}× | {r / med['local']['restore']:.2f}× |")


if __name__ == "__main__":
    main()
