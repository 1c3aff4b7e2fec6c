#!/usr/bin/env python3
"""A compromised production host, as a program (crates/cli/tests/untrusted_writers.rs).

It holds what such a host holds and nothing more: its own write credential
(docs/FORMAT.md 4.2) and a storage credential that can read, list and create
objects (never overwrite or delete: every create here is create-only). It
builds objects from docs/FORMAT.md alone, and tries, one subcommand per
attack, to poison, erase or spy on the backups of the other writers:

    oracle         decrypt everything its keys open, and test guessed documents
    forge-snapshot a snapshot for another host (own domain, or claiming another)
    forge-key      key files claiming full access, or another domain
    decoys         garbage under the IDs of blobs it can see, with an index file
                   that sorts first, and a pack no index names
    preplant       garbage under the IDs of a document not backed up yet
    squat-wal      a WAL name taken before its server archives it (or another
                   WAL object copied under that name)
    forge-hold     legal holds
    forge-mark     a prune mark dated two days back condemning every pack
    forge-index    index files claiming every pack, in its domain and another's

Each prints a JSON summary of what it did on stdout. Storage: --store local
--path DIR, --store s3 --endpoint URL --bucket B --prefix P (keys in
ATTACKER_S3_KEY_ID / ATTACKER_S3_SECRET), --store azure --endpoint URL
--account A --container C --prefix P (SAS in ATTACKER_AZURE_SAS). Secrets
never go on the command line.
"""
import argparse
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import blake3
import cbor2
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

HPKE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
DATA, TREE = 0, 1
ENTRY = struct.Struct("<B32sIII")


# ---------------------------------------------------------------- storage (FORMAT §1)

def object_path(kind, name):
    if kind == "data":
        return f"data/{name[:2]}/{name}"
    if kind == "wal":
        component, file = name.split("/", 1)
        group = file[:16] if len(file) >= 24 and all(c in "0123456789abcdefABCDEF" for c in file[:24]) else "history"
        return f"wal/{component}/{group}/{file}"
    return f"{kind}/{name}"


def name_of(kind, path):
    parts = path.split("/")
    if kind == "wal":
        return f"{parts[1]}/{parts[-1]}"
    return parts[-1]


class LocalStore:
    def __init__(self, root):
        self.root = root

    def list(self, kind):
        out, base = [], os.path.join(self.root, kind)
        for d, _, files in os.walk(base):
            for f in files:
                rel = os.path.relpath(os.path.join(d, f), self.root)
                out.append((name_of(kind, rel), os.path.getsize(os.path.join(d, f))))
        return sorted(out)

    def read(self, kind, name):
        with open(os.path.join(self.root, object_path(kind, name)), "rb") as f:
            return f.read()

    def create(self, kind, name, data):
        path = os.path.join(self.root, object_path(kind, name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True


class S3Store:
    def __init__(self, endpoint, bucket, prefix):
        import boto3
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id=os.environ["ATTACKER_S3_KEY_ID"],
                               aws_secret_access_key=os.environ["ATTACKER_S3_SECRET"])
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/"

    def list(self, kind):
        out, token = [], None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": self.prefix + kind + "/"}
            if token:
                kw["ContinuationToken"] = token
            r = self.s3.list_objects_v2(**kw)
            out += [(name_of(kind, o["Key"][len(self.prefix):]), o["Size"]) for o in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                return sorted(out)
            token = r["NextContinuationToken"]

    def read(self, kind, name):
        return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + object_path(kind, name))["Body"].read()

    def create(self, kind, name, data):
        from botocore.exceptions import ClientError
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.prefix + object_path(kind, name), Body=data, IfNoneMatch="*")
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise


class AzureStore:
    def __init__(self, endpoint, account, container, prefix):
        self.base = f"{endpoint.rstrip('/')}/{account}/{container}"
        self.prefix, self.sas = prefix.strip("/") + "/", os.environ["ATTACKER_AZURE_SAS"]

    def req(self, method, path, query="", body=None, headers=None):
        q = f"{query}&{self.sas}" if query else self.sas
        r = urllib.request.Request(f"{self.base}/{path}?{q}", data=body, method=method,
                                   headers={"x-ms-version": "2021-08-06", **(headers or {})})
        try:
            with urllib.request.urlopen(r) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def list(self, kind):
        out, marker = [], ""
        while True:
            q = f"restype=container&comp=list&prefix={self.prefix}{kind}/" + (f"&marker={marker}" if marker else "")
            status, body = self.req("GET", "", q)
            assert status == 200, (status, body[:300])
            root = ET.fromstring(body)
            for b in root.iter("Blob"):
                key = b.find("Name").text
                out.append((name_of(kind, key[len(self.prefix):]), int(b.find("Properties/Content-Length").text)))
            marker = (root.findtext("NextMarker") or "")
            if not marker:
                return sorted(out)

    def read(self, kind, name):
        status, body = self.req("GET", self.prefix + object_path(kind, name))
        assert status == 200, (status, body[:300])
        return body

    def create(self, kind, name, data):
        status, body = self.req("PUT", self.prefix + object_path(kind, name), body=data,
                                headers={"x-ms-blob-type": "BlockBlob", "If-None-Match": "*"})
        if status in (409, 412):
            return False
        assert status == 201, (status, body[:300])
        return True


# ---------------------------------------------------------------- the credential and objects (FORMAT §2-§15)

class Writer:
    def __init__(self, store, credential):
        c = json.load(open(credential))
        assert c["format"] == "reprise-write-credential" and c["version"] == 2, "a version 2 write credential"
        assert "recovery_secret" not in c
        self.store, self.cred = store, c
        self.repo_id = bytes.fromhex(c["repository_id"])
        self.sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(c["signing_key"]))
        self.key_id = self.sk.public_key().public_bytes_raw()
        self.domain = bytes.fromhex(c["domain"])
        self.id_key, self.catalog = bytes.fromhex(c["id_key"]), bytes.fromhex(c["catalog_key"])
        self.shared = bytes.fromhex(c["shared_key"])
        self.recovery_public = X25519PublicKey.from_public_bytes(bytes.fromhex(c["recovery_public"]))

    def blob_id(self, data):
        return blake3.blake3(data, key=self.id_key).digest()

    def sign(self, typ, data):
        """§2.4: data || signer || Ed25519(M)."""
        data = data + self.key_id
        m = b"reprise-signature-v2\0" + typ + b"\0" + self.repo_id + blake3.blake3(data).digest()
        return data + self.sk.sign(m)

    def put(self, kind, data, name=None):
        name = name or blake3.blake3(data).hexdigest()
        self.store.create(kind, name, data)
        return name

    def pack(self, kind, blobs, domain=None, catalog=None):
        """§6: blobs = [(blob id, plaintext)]. Returns (name, length, entries)."""
        domain, catalog = domain or self.domain, catalog or self.catalog
        key = AESGCM.generate_key(256)
        buf = bytearray(b"RPRSPAK2" + HPKE.encrypt(key, self.recovery_public, b"reprise pack key v1"))
        entries = []
        for bid, data in blobs:
            off = len(buf)
            ct = AESGCM(key).encrypt(b"\0\0\0\0" + struct.pack("<Q", off), b"\0" + data, bytes([kind]) + bid)
            buf += ct
            entries.append((kind, bid, off, len(ct), len(data)))
        directory = struct.pack("<I", len(entries)) + b"".join(ENTRY.pack(*e) for e in entries)
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(catalog).encrypt(nonce, directory, b"reprise pack directory v2")
        buf += sealed + struct.pack("<I", len(sealed)) + domain + b"RPRSPAK2"
        data = self.sign(b"pack", bytes(buf))
        return self.put("data", data), len(data), entries

    def index(self, packs, domain=None, catalog=None, grind_below=None):
        """§7. With grind_below, retries random nonces until the name sorts first."""
        domain, catalog = domain or self.domain, catalog or self.catalog
        plain = struct.pack("<II", 1, 0) + struct.pack("<I", len(packs))
        for name, length, entries in packs:
            plain += bytes.fromhex(name) + struct.pack("<QI", length, len(entries)) + b"".join(ENTRY.pack(*e) for e in entries)
        packed = zstandard.ZstdCompressor().compress(plain)
        clear = b"RPRSIDX2" + domain + struct.pack("<I", len(packs)) + b"".join(bytes.fromhex(p[0]) for p in packs)
        for tries in range(1, 200_000):
            nonce = os.urandom(12)
            data = self.sign(b"index", clear + nonce + AESGCM(catalog).encrypt(nonce, packed, b"RPRSIDX2"))
            name = blake3.blake3(data).hexdigest()
            if grind_below is None or name < grind_below:
                self.put("index", data, name)
                return name, tries
        raise SystemExit("could not grind an index name")

    def snapshot(self, header, body, domain=None, catalog=None):
        """§9."""
        domain, catalog = domain or self.domain, catalog or self.catalog
        nonce = os.urandom(12)
        h = nonce + AESGCM(catalog).encrypt(nonce, cbor2.dumps(header), b"reprise snapshot header v2")
        b = HPKE.encrypt(cbor2.dumps(body), self.recovery_public, b"reprise snapshot body v1")
        return self.put("snapshots", self.sign(b"snapshot", b"RPRSSNP2" + domain + struct.pack("<I", len(h)) + h + b))

    def wal(self, component, file, content, sysid=0):
        """§10: a WAL object of this writer's domain."""
        header = {"version": 1, "name": file, "size": len(content), "hash": self.blob_id(content),
                  "modified": now(), "pushed": now(), "host": "attacker", "system_identifier": sysid}
        nonce = os.urandom(12)
        h = nonce + AESGCM(self.catalog).encrypt(nonce, cbor2.dumps(header), b"reprise wal header v2")
        key = AESGCM.generate_key(256)
        body = AESGCM(key).encrypt(bytes(12), b"\0" + content, b"reprise wal v1" + file.encode())
        data = self.sign(b"wal", b"RPRSWAL2" + self.domain + struct.pack("<I", len(h)) + h
                         + HPKE.encrypt(key, self.recovery_public, b"reprise wal key v1") + body)
        return self.store.create("wal", f"{component}/{file}", data)

    def sealed(self, magic, key, aad, value, typ):
        nonce = os.urandom(12)
        return self.sign(typ, magic + nonce + AESGCM(key).encrypt(nonce, cbor2.dumps(value), aad))

    # -- what this writer can read of the repository

    def own_index(self):
        """Every index entry this writer's catalog key opens: (kind, id) -> [(pack, entry)]."""
        out = {}
        for name, _ in self.store.list("index"):
            data = self.store.read("index", name)
            if data[:8] != b"RPRSIDX2":
                continue
            n, = struct.unpack_from("<I", data, 40)
            try:
                buf = zstandard.ZstdDecompressor().decompressobj().decompress(
                    AESGCM(self.catalog).decrypt(data[44 + 32 * n:44 + 32 * n + 12], data[44 + 32 * n + 12:-96], b"RPRSIDX2"))
            except InvalidTag:
                continue
            s, = struct.unpack_from("<I", buf, 4)
            pos = 8 + 32 * s
            npacks, = struct.unpack_from("<I", buf, pos)
            pos += 4
            for _ in range(npacks):
                pname, _plen, count = struct.unpack_from("<32sQI", buf, pos)
                pos += 44
                for _ in range(count):
                    e = ENTRY.unpack_from(buf, pos)
                    pos += ENTRY.size
                    out.setdefault((e[0], e[1]), []).append((pname.hex(), e))
        return out


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def tree(nodes):
    return cbor2.dumps({"nodes": sorted(nodes, key=lambda n: n["name"])})


def file_node(name, content_ids, size):
    return {"name": name, "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "mtime_ns": time.time_ns(),
            "size": size, "content": content_ids}


def dir_node(name, subtree):
    return {"name": name, "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime_ns": time.time_ns(), "subtree": subtree}


# ---------------------------------------------------------------- attacks

def attack_oracle(w, a):
    """Everything the credential opens, and which guessed documents are in the repository."""
    opened = {k: 0 for k in ("index", "packs", "snapshots", "wal", "prune", "holds", "trust")}
    refused = {k: 0 for k in opened}
    plaintext = bytearray()

    def attempt(kind, fn):
        try:
            plaintext.extend(fn())
            opened[kind] += 1
        except (InvalidTag, ValueError, struct.error, IndexError, KeyError, AssertionError):
            refused[kind] += 1

    for name, _ in w.store.list("index"):
        data = w.store.read("index", name)
        n, = struct.unpack_from("<I", data, 40)
        attempt("index", lambda: zstandard.ZstdDecompressor().decompressobj().decompress(
            AESGCM(w.catalog).decrypt(data[44 + 32 * n:56 + 32 * n], data[56 + 32 * n:-96], b"RPRSIDX2")))
    for name, _ in w.store.list("data"):
        data = w.store.read("data", name)
        d, = struct.unpack_from("<I", data, len(data) - 140)
        sealed = data[len(data) - 140 - d:len(data) - 140]
        # (Pack keys are sealed to the recovery key, of which the credential
        # holds no part: only directories can be tried.)
        attempt("packs", lambda: AESGCM(w.catalog).decrypt(sealed[:12], sealed[12:], b"reprise pack directory v2"))
    for name, _ in w.store.list("snapshots"):
        data = w.store.read("snapshots", name)
        h, = struct.unpack_from("<I", data, 40)
        attempt("snapshots", lambda: AESGCM(w.catalog).decrypt(data[44:56], data[56:44 + h], b"reprise snapshot header v2"))
    for name, _ in w.store.list("wal"):
        data = w.store.read("wal", name)
        h, = struct.unpack_from("<I", data, 40)
        attempt("wal", lambda: AESGCM(w.catalog).decrypt(data[44:56], data[56:44 + h], b"reprise wal header v2"))
    for kind, key, aad in (("prune", w.shared, b"reprise prune mark v2"), ("holds", w.catalog, b"reprise hold v2"),
                           ("trust", w.catalog, b"reprise trust v2")):
        for name, _ in w.store.list(kind):
            data = w.store.read(kind, name)
            attempt(kind, lambda: AESGCM(key).decrypt(data[8:20], data[20:-96], aad))
    index = w.own_index()
    matches = [g for g in a.guess if (DATA, w.blob_id(g.encode())) in index]
    found = [n for n in a.needle if n.encode() in plaintext]
    return {"opened": opened, "refused": refused, "guesses": len(a.guess), "matches": matches,
            "needles_found": found, "own_blobs": len(index)}


def attack_forge_snapshot(w, a):
    """A backup that never happened, labelled for another host."""
    content = a.content.encode()
    domain = bytes.fromhex(a.as_domain) if a.as_domain else w.domain
    cid = w.blob_id(content)
    t = tree([file_node(a.file.encode(), [cid], len(content))])
    tid = w.blob_id(t)
    root = tree([dir_node(a.dir.encode(), tid)])
    rid = w.blob_id(root)
    p1 = w.pack(DATA, [(cid, content)], domain=domain)
    p2 = w.pack(TREE, [(tid, t), (rid, root)], domain=domain)
    idx, _ = w.index([p1, p2], domain=domain)
    header = {"version": 1, "time": now(), "host": a.host, "component": a.component, "kind": "files", "tags": [],
              "summary": {"files": 1, "dirs": 1, "bytes": len(content), "files_read": 1, "new_bytes": len(content),
                          "stored_bytes": 0, "new_blobs": 3, "duration_ms": 1, "errors": 0}}
    body = {"tree": rid, "paths": [b"/" + a.dir.encode()], "excludes": [], "user": "root", "errors": []}
    snap = w.snapshot(header, body, domain=domain)
    return {"snapshot": snap, "index": idx, "packs": [p1[0], p2[0]], "domain": domain.hex()}


def attack_forge_key(w, a):
    """Key files: one claiming full access, one a writer of the administrator's domain."""
    made = []
    for role, domain in (("full", None), ("write-only", "00" * 32)):
        k = {"format": "reprise-key", "version": 2, "key_id": w.key_id.hex(), "role": role, "created": now(),
             "host": "admin-host", "user": "root", "label": "initial key" if role == "full" else "clinic-a",
             "kdf": {"algorithm": "argon2id", "memory_kib": 64, "iterations": 1, "parallelism": 1,
                     "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
             "nonce": "AAAAAAAAAAAAAAAA", "sealed": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
             "endorsement": w.sk.sign(b"endorse me").hex()}
        if domain:
            k["domain"] = domain
        made.append(w.put("keys", (json.dumps(k, indent=2) + "\n").encode()))
    return {"keys": made}


def attack_decoys(w, a):
    """Garbage under every blob ID it can see (its own domain's: it sees no other), in a pack
    listed by an index file whose name sorts before every other, and in a pack no index names."""
    ids = list(w.own_index().keys())
    data_blobs = [(bid, os.urandom(64) + b"decoy") for kind, bid in ids if kind == DATA]
    tree_blobs = [(bid, cbor2.dumps({"nodes": []})) for kind, bid in ids if kind == TREE]
    packs = [w.pack(DATA, data_blobs), w.pack(TREE, tree_blobs)]
    first = min((n for n, _ in w.store.list("index")), default="f" * 64)
    idx, tries = w.index(packs, grind_below=first)
    unindexed = [w.pack(DATA, [(bid, os.urandom(80)) for bid, _ in data_blobs]),
                 w.pack(TREE, [(bid, b"\xa0") for bid, _ in tree_blobs])]
    return {"blobs": len(ids), "indexed_decoys": [p[0] for p in packs], "index": idx, "grind_tries": tries,
            "unindexed_decoys": [p[0] for p in unindexed]}


def attack_preplant(w, a):
    """Garbage under the chunk ID of a document before anyone backs it up (a document
    smaller than the chunker's minimum is one chunk: its ID is the keyed hash of it all)."""
    out = []
    for text in a.content:
        p = w.pack(DATA, [(w.blob_id(text.encode()), b"garbage instead of the document")])
        out.append(w.index([p])[0])
    return {"index": out}


def attack_squat_wal(w, a):
    if a.copy_from:
        data = w.store.read("wal", f"{a.component}/{a.copy_from}")
        created = w.store.create("wal", f"{a.component}/{a.file}", data)
        return {"copied": a.copy_from, "to": a.file, "created": created}
    content = b"forged WAL " * 1000
    if a.size is not None:  # a streamed range's length is in its name (§10.2)
        content = (content * (a.size // len(content) + 1))[:a.size]
    created = w.wal(a.component, a.file, content)
    return {"squatted": a.file, "created": created}


def attack_forge_hold(w, a):
    snap = bytes.fromhex(a.snapshot)
    value = {"snapshot": snap, "reason": "placed by the administrator", "time": now(), "host": "admin-host", "user": "root"}
    signed = w.put("holds", w.sealed(b"RPRSHLD2", w.catalog, b"reprise hold v2", value, b"hold"))
    nonce = os.urandom(12)
    unsigned = w.put("holds", nonce + AESGCM(w.catalog).encrypt(nonce, cbor2.dumps(value), b"reprise hold v1"))
    return {"holds": [signed, unsigned]}


def attack_forge_mark(w, a):
    packs = [bytes.fromhex(n) for n, _ in w.store.list("data")]
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - a.days_ago * 86400))
    value = {"time": t, "grace_secs": 3600, "packs": packs, "host": "admin-host", "user": "root"}
    mark = w.put("prune", w.sealed(b"RPRSMRK2", w.shared, b"reprise prune mark v2", value, b"mark"))
    return {"mark": mark, "packs": len(packs)}


def attack_forge_index(w, a):
    """Index files claiming every pack in storage with made-up entries: one in its own domain,
    one naming another domain."""
    fake = []
    for name, size in w.store.list("data"):
        fake.append((name, size, [(DATA, os.urandom(32), 88, 17, 0)]))
    own, _ = w.index(fake)
    other, _ = w.index(fake, domain=bytes.fromhex(a.domain))
    return {"own": own, "other_domain": other, "packs": len(fake)}


def attack_list_packs(w, a):
    """Not an attack: the pack names the storage lists (for the test's own checks)."""
    return [n for n, _ in w.store.list("data")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", choices=["local", "s3", "azure"], required=True)
    p.add_argument("--path")
    p.add_argument("--endpoint")
    p.add_argument("--bucket")
    p.add_argument("--account")
    p.add_argument("--container")
    p.add_argument("--prefix", default="")
    p.add_argument("--credential", required=True)
    sub = p.add_subparsers(dest="attack", required=True)
    o = sub.add_parser("oracle")
    o.add_argument("--guess", action="append", default=[])
    o.add_argument("--needle", action="append", default=[])
    f = sub.add_parser("forge-snapshot")
    f.add_argument("--host", required=True)
    f.add_argument("--component", required=True)
    f.add_argument("--dir", default="docs")
    f.add_argument("--file", required=True)
    f.add_argument("--content", required=True)
    f.add_argument("--as-domain")
    sub.add_parser("forge-key")
    sub.add_parser("list-packs")
    sub.add_parser("decoys")
    pp = sub.add_parser("preplant")
    pp.add_argument("--content", action="append", default=[])
    s = sub.add_parser("squat-wal")
    s.add_argument("--component", required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--copy-from")
    s.add_argument("--size", type=int, help="length of the forged file (default 11000 bytes)")
    h = sub.add_parser("forge-hold")
    h.add_argument("--snapshot", required=True)
    m = sub.add_parser("forge-mark")
    m.add_argument("--days-ago", type=float, default=2)
    i = sub.add_parser("forge-index")
    i.add_argument("--domain", required=True)
    a = p.parse_args()
    if a.store == "local":
        store = LocalStore(a.path)
    elif a.store == "s3":
        store = S3Store(a.endpoint, a.bucket, a.prefix)
    else:
        store = AzureStore(a.endpoint, a.account, a.container, a.prefix)
    w = Writer(store, a.credential)
    result = globals()["attack_" + a.attack.replace("-", "_")](w, a)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
