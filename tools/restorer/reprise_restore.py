#!/usr/bin/env python3
"""Independent restorer for reprise repositories (format versions 1 and 2).

Written from docs/FORMAT.md alone, so that snapshots stay readable without the
reprise binary. Section numbers in comments ("§6.1") refer to that document.
Writers are untrusted (§2.5): an object counts only when its signature holds
and its signer may write it; blobs are looked up and checked in the domain of
the snapshot that needs them.

    python3 reprise_restore.py --repo DIR (--recovery-key FILE | --password-env VAR)
                               [--snapshot ID-or-prefix|latest] [--list] --target DIR [--wal-dir DIR]
"""
import argparse
import base64
import json
import os
import stat
import struct
import sys

import blake3
import cbor2
import zstandard
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HPKE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)  # §2.1
PACK_MAGIC, INDEX_MAGIC, SNAP_MAGIC = b"RPRSPAK1", b"RPRSIDX1", b"RPRSSNP1"  # version 1 (legacy)
PACK2, INDEX2, SNAP2, TRUST2 = b"RPRSPAK2", b"RPRSIDX2", b"RPRSSNP2", b"RPRSTRS2"  # version 2
DATA, TREE = 0, 1  # §5 blob kinds
ENTRY = struct.Struct("<B32sIII")  # §6.2: kind, blob id, offset, stored length, plaintext length
ADMIN_DOMAIN, LEGACY_DOMAIN = bytes(32), b"\xff" * 32  # §2.3
SIG_BLOCK = 96  # §2.4: signer (32) || signature (64)


class RestoreError(Exception):
    pass


def warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def read_named(path):
    """Read an object whose file name is the BLAKE3 of its bytes (§1) and check it."""
    data = read(path)
    if blake3.blake3(data).hexdigest() != os.path.basename(path):
        raise RestoreError(f"{path}: damaged (BLAKE3 of the file does not match its name)")
    return data


def catalog_open(key, sealed, aad, what):
    """§2.2: nonce (12) || ciphertext || tag (16), AES-256-GCM under catalog_key."""
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], aad)
    except (InvalidTag, ValueError):
        raise RestoreError(f"{what}: damaged or wrong key (AES-GCM authentication failed)") from None


def hpke_open(secret, sealed, info, what):
    """§2.1: HPKE base mode, empty AAD, sealed = enc || ciphertext || tag."""
    try:
        return HPKE.decrypt(sealed, secret, info)
    except Exception:
        raise RestoreError(f"{what}: damaged or wrong recovery key (HPKE open failed)") from None


def zstd_frame(data, what):
    """Decompress one zstd frame whether or not it records its content size."""
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except zstandard.ZstdError as e:
        raise RestoreError(f"{what}: bad zstd data ({e})") from None


# ---------------------------------------------------------------- config and keys (§3, §4)

def read_config(repo):
    try:
        cfg = json.loads(read(os.path.join(repo, "config")))
    except FileNotFoundError:
        raise RestoreError(f"{repo}: no config file; not a reprise repository") from None
    if cfg.get("format") != "reprise-repository":
        raise RestoreError(f"config: format {cfg.get('format')!r} is not reprise-repository")
    if cfg.get("version") not in (1, 2):
        raise RestoreError(f"config: version {cfg.get('version')!r} unknown (this reader knows 1 and 2)")
    return cfg


def check_secrets(s, cfg, what):
    """§4: the secrets object must belong to this repository and be a full key."""
    if s.get("repository_id") != cfg["id"]:
        raise RestoreError(f"{what}: belongs to repository {s.get('repository_id')}, not {cfg['id']}")
    if not s.get("recovery_secret"):
        raise RestoreError(f"{what}: write-only key; it cannot read backups (no recovery_secret)")
    secret = bytes.fromhex(s["recovery_secret"])
    sk = X25519PrivateKey.from_private_bytes(secret)
    if sk.public_key().public_bytes_raw().hex() != s.get("recovery_public"):
        raise RestoreError(f"{what}: recovery_public does not match recovery_secret")
    repo_id = bytes.fromhex(cfg["id"])
    admin = Ed25519PrivateKey.from_private_bytes(derive(secret, repo_id, b"reprise admin signing key v2", 32))
    return {"recovery_secret": sk, "repo_id": repo_id, "secret": secret,
            "admin": admin.public_key().public_bytes_raw(),
            # §2.3: the legacy domain is the master set's own keys (version 1).
            "domains": {LEGACY_DOMAIN: (bytes.fromhex(s["id_key"]), bytes.fromhex(s["catalog_key"]))}}


def derive(secret, repo_id, info, length):
    """§2.3: HKDF-SHA256, IKM = recovery_secret, salt = repository_id."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=repo_id, info=info).derive(secret)


def domain_keys(keys, domain):
    """(id_key, catalog_key) of a domain (§2.3)."""
    if domain not in keys["domains"]:
        keys["domains"][domain] = (derive(keys["secret"], keys["repo_id"], b"reprise domain id key v2" + domain, 32),
                                   derive(keys["secret"], keys["repo_id"], b"reprise domain catalog key v2" + domain, 32))
    return keys["domains"][domain]


def domain_name(domain):
    return {ADMIN_DOMAIN: "admin", LEGACY_DOMAIN: "legacy"}.get(domain, domain.hex()[:12])


# ---------------------------------------------------------------- signatures and trust (§2.4, §2.5, §4, §14, §15)

def sig_message(typ, repo_id, signed):
    """§2.4: M = "reprise-signature-v2" 0 TYPE 0 repository_id BLAKE3(S)."""
    return b"reprise-signature-v2\0" + typ + b"\0" + repo_id + blake3.blake3(signed).digest()


def verify_signed(typ, repo_id, data, what):
    """Checks an object's signature block; returns (signer, object without the block)."""
    if len(data) < SIG_BLOCK:
        raise RestoreError(f"{what}: too short for a signature")
    signer, sig = data[-SIG_BLOCK:-64], data[-64:]
    try:
        Ed25519PublicKey.from_public_bytes(signer).verify(sig, sig_message(typ, repo_id, data[:-64]))
    except (InvalidSignature, ValueError):
        raise RestoreError(f"{what}: signature does not verify (altered or forged)") from None
    return signer, data[:-SIG_BLOCK]


def lp(b):
    return struct.pack("<I", len(b)) + b


def endorsed_bytes(k):
    """§4: the bytes the administrator's endorsement signs."""
    kdf = k.get("kdf") or {}
    b64 = lambda v: base64.b64decode(v) if v else b""  # noqa: E731
    return (bytes.fromhex(k["key_id"]) + bytes([0 if k["role"] == "full" else 1, 1 if k.get("credential") else 0])
            + (bytes.fromhex(k["domain"]) if k.get("domain") else bytes(32))
            + lp((k.get("bound_host") or "").encode()) + lp(k["created"].encode()) + lp(k.get("host", "").encode())
            + lp(k.get("user", "").encode()) + lp(k.get("label", "").encode())
            + struct.pack("<III", kdf.get("memory_kib", 0), kdf.get("iterations", 0), kdf.get("parallelism", 0))
            + lp(b64(kdf.get("salt"))) + lp(b64(k.get("nonce"))) + lp(b64(k.get("sealed"))))


class Trust:
    """Who may have written what (§2.5): endorsed writers, revocations, the legacy record."""

    def __init__(self, repo, keys, cfg):
        self.admin, self.repo_id = keys["admin"], keys["repo_id"]
        self.writers = {}  # key ID -> {"domain", "label", "revoked": None | set of (kind, name)}
        kdir = os.path.join(repo, "keys")
        for name in sorted(os.listdir(kdir)) if os.path.isdir(kdir) else []:
            try:
                k = json.loads(read_named(os.path.join(kdir, name)))
                if k.get("version") != 2 or k.get("role") != "write-only":
                    continue
                Ed25519PublicKey.from_public_bytes(self.admin).verify(
                    bytes.fromhex(k["endorsement"]), sig_message(b"key", self.repo_id, endorsed_bytes(k)))
            except (RestoreError, ValueError, KeyError, TypeError, InvalidSignature) as e:
                warn(f"key file {name} ignored: not endorsed by the administrator ({type(e).__name__}: {e})")
                continue
            self.writers[bytes.fromhex(k["key_id"])] = {"domain": bytes.fromhex(k["domain"]), "label": k.get("label", ""), "revoked": None}
        self.legacy = None if cfg["version"] == 1 else set()  # None: never upgraded, every unsigned object counts
        tdir = os.path.join(repo, "trust")
        for name in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
            try:
                data = read_named(os.path.join(tdir, name))
                if data[:8] != TRUST2:
                    raise RestoreError("bad magic")
                signer, body = verify_signed(b"trust", self.repo_id, data, f"trust record {name}")
                if signer != self.admin:
                    raise RestoreError("not signed by the administrator")
                rec = cbor2.loads(catalog_open(domain_keys(keys, ADMIN_DOMAIN)[1], body[8:], b"reprise trust v2", f"trust record {name}"))
            except (RestoreError, ValueError) as e:
                warn(f"trust record {name} ignored: {e}")
                continue
            objs = rec.get("objects", {})
            listed = {("pack", i.hex()) for i in objs.get("packs", [])} | {("index", i.hex()) for i in objs.get("index", [])} \
                | {("snapshot", i.hex()) for i in objs.get("snapshots", [])} | {("wal", w) for w in objs.get("wal", [])}
            if rec.get("kind") == "legacy":
                self.legacy = (self.legacy or set()) | listed
            elif rec.get("kind") == "revocation":
                key = rec["key"]
                w = self.writers.setdefault(bytes(key["key_id"]), {"domain": bytes(key["domain"]), "label": key.get("label", ""), "revoked": None})
                w["revoked"] = (w["revoked"] or set()) | listed

    def judge(self, kind, name, signer, domain):
        """§2.5: the domain of a trusted object, or raise RestoreError saying why it is ignored."""
        if signer is None:
            if self.legacy is None or (kind, name) in self.legacy:
                return LEGACY_DOMAIN
            raise RestoreError("unsigned object written after the upgrade")
        if signer == self.admin:
            return domain
        w = self.writers.get(signer)
        if w is None:
            raise RestoreError(f"signed by unknown key {signer.hex()[:12]} (not endorsed by the administrator)")
        if domain != w["domain"]:
            raise RestoreError(f"signed by writer {signer.hex()[:12]} of domain {domain_name(w['domain'])}, but names domain {domain_name(domain)}")
        if w["revoked"] is not None and (kind, name) not in w["revoked"]:
            raise RestoreError(f"written by revoked key {signer.hex()[:12]} after its revocation")
        return domain

    def writer(self, signer):
        if signer is None:
            return "legacy (unsigned)"
        if signer == self.admin:
            return "administrator"
        w = self.writers.get(signer, {})
        return f"{signer.hex()[:12]} ({w.get('label', '')})" if w.get("label") else signer.hex()[:12]


def open_recovery_file(path, cfg):
    """§4.1: the secrets object, unencrypted, with format and version."""
    s = json.loads(read(path))
    if s.get("format") != "reprise-recovery-key" or s.get("version") != 1:
        raise RestoreError(f"{path}: not a version 1 reprise-recovery-key file")
    return check_secrets(s, cfg, path)


def open_key_files(repo, passphrase, cfg):
    """§4: try every key file with the passphrase; use the first full key that opens."""
    kdir, opened_write_only = os.path.join(repo, "keys"), False
    for name in sorted(os.listdir(kdir)):
        path = os.path.join(kdir, name)
        data = read(path)
        if blake3.blake3(data).hexdigest() != name:
            warn(f"{path}: BLAKE3 does not match the name; trying it anyway (AES-GCM still authenticates it)")
        try:
            k = json.loads(data)
        except ValueError:
            warn(f"{path}: not JSON, skipped")
            continue
        if k.get("format") != "reprise-key" or k.get("version") not in (1, 2):
            warn(f"{path}: not a version 1 or 2 reprise-key file, skipped")
            continue
        if "sealed" not in k:
            continue  # §4.2: a write credential's public record holds no secrets
        kdf = k["kdf"]
        if kdf.get("algorithm") != "argon2id":
            warn(f"{path}: unknown KDF {kdf.get('algorithm')!r}, skipped")
            continue
        kek = hash_secret_raw(passphrase, base64.b64decode(kdf["salt"]), time_cost=kdf["iterations"],
                              memory_cost=kdf["memory_kib"], parallelism=kdf["parallelism"],
                              hash_len=32, type=Type.ID, version=0x13)
        try:
            plain = AESGCM(kek).decrypt(base64.b64decode(k["nonce"]), base64.b64decode(k["sealed"]),
                                        b"reprise key v1")
        except InvalidTag:
            continue  # another key's passphrase
        s = json.loads(plain)
        if s.get("version") == 2 or not s.get("recovery_secret"):
            opened_write_only = True
            continue
        return check_secrets(s, cfg, path)
    if opened_write_only:
        raise RestoreError("the passphrase opens only write-only keys, which cannot read backups")
    raise RestoreError("wrong passphrase: it opens none of the key files")


# ---------------------------------------------------------------- index (§6.2, §7)

def parse_entries(buf, pos, count, pack, index):
    for _ in range(count):
        kind, bid, off, n, plen = ENTRY.unpack_from(buf, pos)
        pos += ENTRY.size
        # Keyed by (kind, id): the kind is part of the blob's AAD (§6.1).
        index.setdefault((kind, bid), []).append((pack, off, n, plen))
    return pos


def load_index(repo, keys, trust, domain):
    """§7 index files of one domain, then §6 packs of that domain no trusted index lists (§11 step 4).

    Returns (index, sizes): (kind, blob id) -> [(pack, offset, length, plaintext length)]; pack -> length."""
    index, sizes, claimed = {}, {}, set()
    cat_key = domain_keys(keys, domain)[1]
    idir = os.path.join(repo, "index")
    for name in sorted(os.listdir(idir)) if os.path.isdir(idir) else []:
        path = os.path.join(idir, name)
        try:
            data = read_named(path)
            if data[:8] == INDEX_MAGIC:  # version 1: legacy domain
                file_domain, signer, sealed, aad = LEGACY_DOMAIN, None, data[8:], INDEX_MAGIC
            elif data[:8] == INDEX2:
                file_domain = data[8:40]
                npacks, = struct.unpack_from("<I", data, 40)
                claimed.update(data[44 + 32 * i:76 + 32 * i].hex() for i in range(npacks))
                signer, body = verify_signed(b"index", keys["repo_id"], data, path)
                sealed, aad = body[44 + 32 * npacks:], INDEX2
            else:
                raise RestoreError(f"{path}: bad magic")
            if trust.judge("index", name, signer, file_domain) != domain:
                continue
            buf = zstd_frame(catalog_open(cat_key, sealed, aad, path), path)
            version, = struct.unpack_from("<I", buf, 0)
            if version != 1:
                raise RestoreError(f"{path}: index version {version} unknown")
            s, = struct.unpack_from("<I", buf, 4)
            pos = 8 + 32 * s  # superseded index names: we simply take the union
            npacks, = struct.unpack_from("<I", buf, pos)
            pos += 4
            found, packs = {}, {}
            for _ in range(npacks):
                pname, plen, count = struct.unpack_from("<32sQI", buf, pos)
                pos = parse_entries(buf, pos + 44, count, pname.hex(), found)
                packs[pname.hex()] = plen
            if pos != len(buf):
                raise RestoreError(f"{path}: {len(buf) - pos} trailing bytes")
        except (RestoreError, struct.error, OSError) as e:
            warn(f"index file {name} unreadable or not trusted, falling back to pack directories: {e}")
            continue
        for key, locs in found.items():
            known = index.setdefault(key, [])
            known.extend(loc for loc in locs if loc not in known)
        sizes.update(packs)
        claimed.update(packs)
    for pack in list_packs(repo):
        if pack not in sizes and pack not in claimed:
            try:
                read_pack_directory(repo, pack, keys, trust, domain, index)
            except (RestoreError, struct.error, OSError) as e:
                warn(f"pack {pack}: directory unreadable or not trusted, its blobs are unavailable: {e}")
    return index, sizes


def list_packs(repo):
    ddir = os.path.join(repo, "data")
    for sub in sorted(os.listdir(ddir)) if os.path.isdir(ddir) else []:
        if len(sub) == 2 and os.path.isdir(os.path.join(ddir, sub)):
            for name in sorted(os.listdir(os.path.join(ddir, sub))):
                if len(name) == 64 and name.startswith(sub):
                    yield name


def pack_path(repo, pack):
    return os.path.join(repo, "data", pack[:2], pack)  # §1


def read_pack_directory(repo, pack, keys, trust, domain, index):
    """§6 tail: version 2 ... || directory (D) || u32 D || domain || magic || signer || signature;
    version 1 ... || directory (D) || u32 D || magic. §6.2 directory plaintext."""
    data = read(pack_path(repo, pack))
    if data[-8:] == PACK_MAGIC:
        d, = struct.unpack_from("<I", data, len(data) - 12)
        tail, pack_domain, signer, aad = 12, LEGACY_DOMAIN, None, b"reprise pack directory v1"
    elif data[-104:-96] == PACK2:
        d, = struct.unpack_from("<I", data, len(data) - 140)
        tail, pack_domain, aad = 140, data[-136:-104], b"reprise pack directory v2"
        signer, _ = verify_signed(b"pack", keys["repo_id"], data, f"pack {pack}")
    else:
        raise RestoreError("bad pack trailer")
    if trust.judge("pack", pack, signer, pack_domain) != domain:
        return
    if d + tail + 88 > len(data):
        raise RestoreError("bad pack trailer")
    buf = catalog_open(domain_keys(keys, domain)[1], data[len(data) - tail - d:len(data) - tail], aad, f"pack {pack} directory")
    count, = struct.unpack_from("<I", buf, 0)
    if 4 + count * ENTRY.size != len(buf):
        raise RestoreError("directory length does not match its count")
    parse_entries(buf, 4, count, pack, index)
    warn(f"pack {pack}: not in any readable index file; used its own directory ({count} blobs)")


# ---------------------------------------------------------------- blobs (§6, §6.1)

class BlobReader:
    def __init__(self, repo, keys, index, sizes, domain):
        self.repo, self.keys, self.index, self.sizes = repo, keys, index, sizes
        self.id_key = domain_keys(keys, domain)[0]  # §6.1: the domain's id key checks every blob
        self.pack_keys = {}

    def pack_key(self, pack, f):
        if pack not in self.pack_keys:
            f.seek(0)
            head = f.read(88)
            if head[:8] not in (PACK_MAGIC, PACK2) or len(head) != 88:
                raise RestoreError(f"pack {pack}: bad magic or truncated")
            self.pack_keys[pack] = hpke_open(self.keys["recovery_secret"], head[8:],
                                             b"reprise pack key v1", f"pack {pack} key")
        return self.pack_keys[pack]

    def read_copy(self, kind, bid, pack, off, n, plen):
        with open(pack_path(self.repo, pack), "rb") as f:
            key = self.pack_key(pack, f)
            f.seek(off)
            sealed = f.read(n)
        if len(sealed) != n:
            raise RestoreError("pack is truncated")
        try:  # nonce = 4 zero bytes || u64(offset); AAD = kind byte || blob id
            plain = AESGCM(key).decrypt(b"\0\0\0\0" + struct.pack("<Q", off), sealed, bytes([kind]) + bid)
        except InvalidTag:
            raise RestoreError("AES-GCM authentication failed (damaged pack)") from None
        if plain[:1] == b"\0":
            data = plain[1:]
        elif plain[:1] == b"\1":
            try:
                data = zstandard.ZstdDecompressor().decompress(plain[1:], max_output_size=plen)
            except zstandard.ZstdError as e:
                raise RestoreError(f"bad zstd payload ({e})") from None
        else:
            raise RestoreError(f"unknown compression byte {plain[:1].hex()}")
        # §6.1: the reader must check the keyed BLAKE3 of the plaintext.
        if blake3.blake3(data, key=self.id_key).digest() != bid or len(data) != plen:
            raise RestoreError("content does not match its blob ID")
        return data

    def get(self, kind, bid):
        locs = self.index.get((kind, bid))
        what = f"{'tree' if kind == TREE else 'data'} blob {bid.hex()}"
        if not locs:
            raise RestoreError(f"{what}: not found in any index or pack directory")
        errors = []
        for loc in locs:  # §7: the same blob may be in several packs; any copy will do
            try:
                data = self.read_copy(kind, bid, *loc)
                if errors:
                    warn(f"{what}: damaged copy skipped ({'; '.join(errors)}); a good copy was used")
                return data
            except (RestoreError, OSError) as e:
                size = self.sizes.get(loc[0])
                note = ""
                if size is not None and os.path.exists(pack_path(self.repo, loc[0])) \
                        and os.path.getsize(pack_path(self.repo, loc[0])) != size:
                    note = f"; pack length differs from the index's {size}"
                errors.append(f"in pack {loc[0]} at offset {loc[1]}: {e}{note}")
        raise RestoreError(f"{what} is damaged: " + "; ".join(errors))


# ---------------------------------------------------------------- snapshots (§9)

def load_snapshots(repo, keys, trust):
    """§9: every trusted, readable snapshot: (name, header, body, domain, writer)."""
    snaps, sdir = [], os.path.join(repo, "snapshots")
    for name in sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []:
        try:
            data = read_named(os.path.join(sdir, name))
            if data[:8] == SNAP_MAGIC:
                domain, signer, rest, aad = LEGACY_DOMAIN, None, data[8:], b"reprise snapshot header v1"
            elif data[:8] == SNAP2:
                signer, body = verify_signed(b"snapshot", keys["repo_id"], data, f"snapshot {name}")
                domain, rest, aad = data[8:40], body[40:], b"reprise snapshot header v2"
            else:
                raise RestoreError("bad magic")
            domain = trust.judge("snapshot", name, signer, domain)
            h, = struct.unpack_from("<I", rest, 0)
            header = cbor2.loads(catalog_open(domain_keys(keys, domain)[1], rest[4:4 + h], aad, f"snapshot {name} header"))
            if header.get("version") != 1:
                raise RestoreError(f"snapshot version {header.get('version')!r} unknown")
        except (RestoreError, struct.error, ValueError) as e:
            warn(f"snapshot {name} unreadable or not trusted: {e}")
            continue
        snaps.append((name, header, rest[4 + h:], domain, trust.writer(signer)))
    return snaps


def time_key(t):
    """Sort key for RFC 3339 UTC times with 0-9 fractional digits ('...:36Z', '...:36.79Z')."""
    main, _, frac = t.rstrip("Z").partition(".")
    return main, frac.ljust(9, "0")


def select_snapshot(snaps, which):
    if not snaps:
        raise RestoreError("the repository has no readable snapshots")
    if which == "latest":
        return max(snaps, key=lambda s: time_key(s[1].get("time", "")))
    found = [s for s in snaps if s[0].startswith(which.lower())]
    if len(found) != 1:
        raise RestoreError(f"snapshot {which!r}: {'no match' if not found else 'ambiguous prefix'}")
    return found[0]


# ---------------------------------------------------------------- trees and restore (§8, §10)

def check_name(name):
    """§8: one path component, never '.', '..', empty, or containing '/' or NUL."""
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    if not isinstance(name, bytes) or name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
        raise RestoreError(f"refusing unsafe entry name {name!r}")
    return name


class Restorer:
    def __init__(self, blobs):
        self.blobs, self.links, self.dir_meta = blobs, {}, []
        self.root = os.geteuid() == 0
        self.files = self.bytes = self.dirs = self.symlinks = self.hardlinks = self.skipped = self.failed = 0

    def tree(self, bid):
        t = cbor2.loads(self.blobs.get(TREE, bid))
        nodes, names = t["nodes"], set()
        for n in nodes:
            name = check_name(n["name"])
            if name in names:
                raise RestoreError(f"tree {bid.hex()}: duplicate name {name!r}")
            names.add(name)
        return nodes

    def restore_dir(self, bid, path):
        for node in self.tree(bid):
            child = os.path.join(path, check_name(node["name"]))
            try:
                self.restore_node(node, child)
            except RestoreError as e:  # damaged content: report, keep restoring the rest
                print(f"error: {os.fsdecode(child)} not restored: {e}", file=sys.stderr)
                self.failed += 1

    def restore_node(self, node, path):
        typ = node.get("type")
        # Hard links (§8): non-directories with links > 1 and the same (device, inode).
        ident = (node.get("device"), node.get("inode"))
        if typ != "dir" and node.get("links", 1) > 1 and ident in self.links:
            os.link(self.links[ident], path, follow_symlinks=False)
            self.hardlinks += 1
            return
        if typ == "file":
            self.restore_file(node, path)
        elif typ == "dir":
            os.mkdir(path, 0o700)
            self.restore_dir(node["subtree"], path)
            self.dirs += 1
            self.dir_meta.append((node, path))  # children first; applied by finish()
            return
        elif typ == "symlink":
            os.symlink(node["target"], path)
            self.symlinks += 1
        elif typ == "fifo":
            os.mkfifo(path, 0o600)
        elif typ in ("char", "block") and self.root:
            os.mknod(path, 0o600 | (stat.S_IFCHR if typ == "char" else stat.S_IFBLK), node.get("rdev", 0))
        else:  # sockets cannot be restored; devices need root
            warn(f"skipped {typ} {os.fsdecode(path)}")
            self.skipped += 1
            return
        if node.get("links", 1) > 1 and None not in ident:
            self.links[ident] = path
        self.apply_metadata(node, path, typ == "symlink")

    def finish(self):
        """Directory mode and mtime last, so that neither restrictive modes nor new entries interfere."""
        for node, path in self.dir_meta:
            self.apply_metadata(node, path, False)

    def restore_file(self, node, path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for bid in node.get("content") or []:  # absent for empty files
                    data = self.blobs.get(DATA, bid)
                    f.write(data)
                    size += len(data)
            if "size" in node and size != node["size"]:
                raise RestoreError(f"restored {size} bytes, the tree says {node['size']}")
        except RestoreError:
            os.unlink(path)  # never leave a partial or wrong file behind
            raise
        self.files += 1
        self.bytes += size

    def apply_metadata(self, node, path, is_link):
        if self.root and "uid" in node and "gid" in node:
            os.chown(path, node["uid"], node["gid"], follow_symlinks=False)  # before chmod: chown clears setuid
        if not is_link and "mode" in node:
            os.chmod(path, node["mode"] & 0o7777)
        if "mtime_ns" in node:  # no atime is stored; use mtime for both
            os.utime(path, ns=(node["mtime_ns"], node["mtime_ns"]), follow_symlinks=not is_link)


# ---------------------------------------------------------------- WAL (§10)

WAL_MAGIC, WAL2 = b"RPRSWAL1", b"RPRSWAL2"  # version 1 (legacy), version 2
SEGMENT_SIZE = 16 * 1024 * 1024
HEX = set("0123456789ABCDEFabcdef")


def is_hex(s, n):
    return len(s) == n and all(c in HEX for c in s)


def base_name(name):
    """§10.1: '<file>@<writer>' is a copy of <file> stored beside a name another writer took."""
    return name.partition("@")[0]


class WalDamaged(RestoreError):
    """A WAL object whose bytes do not verify at all (§10.1): bad magic, truncated, signature that fails."""


def open_wal_object(path, name, component, keys, trust):
    """§10: v2 magic || domain (32) || u32 H || header (H, §2.2) || sealed key (80, §2.1) || body || signature
    block (§2.4); v1 without domain and signature. Checks the signature and judges the signer (§2.5): raises
    RestoreError saying why the object is ignored. Returns (header, plaintext)."""
    data = read(path)
    if data[:8] == WAL2 and len(data) >= 44 + SIG_BLOCK:
        try:
            signer, data = verify_signed(b"wal", keys["repo_id"], data, f"WAL object {name}")
        except RestoreError as e:
            raise WalDamaged(str(e)) from None
        domain, data = data[8:40], data[40:]
        aad = b"reprise wal header v2"
    elif data[:8] == WAL_MAGIC and len(data) >= 12:
        signer, domain, data = None, None, data[8:]
        aad = b"reprise wal header v1"
    else:
        raise WalDamaged(f"WAL object {name}: bad magic or truncated")
    domain = trust.judge("wal", f"{component}/{name}", signer, domain)
    id_key, catalog_key = domain_keys(keys, domain)
    h, = struct.unpack_from("<I", data, 0)
    header = cbor2.loads(catalog_open(catalog_key, data[4:4 + h], aad, f"WAL object {name} header"))
    if header.get("version") != 1:
        raise RestoreError(f"WAL object {name}: version {header.get('version')!r} unknown")
    if header.get("name") != base_name(name):
        raise RestoreError(f"WAL object {name}: its header names {header.get('name')!r} (a file copied under another name)")
    rest = data[4 + h:]
    file_key = hpke_open(keys["recovery_secret"], rest[:80], b"reprise wal key v1", f"WAL object {name} key")
    try:
        plain = AESGCM(file_key).decrypt(b"\0" * 12, rest[80:], b"reprise wal v1" + header["name"].encode())
    except InvalidTag:
        raise RestoreError(f"WAL object {name}: damaged (AES-GCM authentication failed)") from None
    if plain[:1] == b"\0":
        body = plain[1:]
    elif plain[:1] == b"\1":
        body = zstd_frame(plain[1:], f"WAL object {name}")
    else:
        raise RestoreError(f"WAL object {name}: unknown compression byte {plain[:1].hex()}")
    if len(body) != header.get("size") or blake3.blake3(body, key=id_key).digest() != header.get("hash"):
        raise RestoreError(f"WAL object {name}: damaged (length or keyed BLAKE3 differs from its header)")
    return header, body


def list_wal(repo, component):
    """§1, §10: wal/<component>/<group>/<name> -> {file name: [object names, the plain name first]}, and
    {object name: path}."""
    root, files, paths = os.path.join(repo, "wal", component), {}, {}
    for group in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        gdir = os.path.join(root, group)
        for name in sorted(os.listdir(gdir)) if os.path.isdir(gdir) else []:
            paths[name] = os.path.join(gdir, name)
            files.setdefault(base_name(name), []).append(name)
    for names in files.values():
        names.sort(key=lambda n: (n != base_name(n), n))
    return files, paths


def read_wal_file(file, objects, component, keys, trust, system_id, strict):
    """§10.1: the plain name when it is trusted and (system_id known) from that server, else the first copy
    beside it that is. Not strict (whole files): a trusted copy of another server when no copy fits, as
    reprise does. Strict (streamed ranges, §10.2): only a fitting copy counts. None: no trusted copy."""
    files, paths = objects
    fallback, damaged = None, None
    for name in files.get(file, []):
        try:
            header, body = open_wal_object(paths[name], name, component, keys, trust)
        except WalDamaged as e:
            damaged = damaged or e
            continue
        except RestoreError as e:
            warn(f"WAL object {component}/{name} ignored: {e}")
            continue
        if not system_id or header.get("system_identifier") == system_id:
            return body
        if fallback is None:
            fallback = body
        warn(f"WAL object {component}/{name}: from server {header.get('system_identifier')}, not {system_id}")
    if damaged and fallback is None:
        # §10.1: the file may be the genuine one, damaged; recovery must not end there.
        raise damaged
    return None if strict else fallback


def stream_range(name):
    """§10.2: '<segment>.stream.<FROM>-<TO>' -> (segment, FROM, TO), else None."""
    seg, sep, rng = name.partition(".stream.")
    frm, dash, to = rng.partition("-")
    if sep and dash and is_hex(seg, 24) and is_hex(frm, 8) and is_hex(to, 8) and int(frm, 16) < int(to, 16):
        return seg, int(frm, 16), int(to, 16)
    return None


def assemble_streamed(ranges, read_range):
    """§10.2 step 2: contiguous ranges from offset 0, overlaps equal, zeros after; ranges with no trusted
    copy from this server (read_range gives None) are left out and the covering ranges chosen again."""
    candidates = sorted(r for r in ranges if r[1] <= SEGMENT_SIZE)
    while True:
        out, covered, left_out = bytearray(SEGMENT_SIZE), 0, None
        for frm, to, name in candidates:
            if frm > covered:
                break  # a hole: what follows it is unusable
            if to <= covered:
                continue
            data = read_range(name)
            if data is None:
                left_out = (frm, to, name)
                break
            if len(data) != to - frm:
                raise RestoreError(f"WAL object {name}: {len(data)} bytes for a range of {to - frm}")
            if out[frm:covered] != data[:covered - frm]:
                raise RestoreError(f"WAL object {name}: disagrees with an overlapping range of its segment")
            out[frm:to] = data
            covered = to
        if left_out is None:
            return bytes(out) if covered else None
        candidates.remove(left_out)


def restore_wal(repo, component, keys, trust, wal_dir, system_id=None):
    """Writes every WAL file of the component into wal_dir as recovery reads them (§10.2). system_id: the
    server being recovered (from the restored pg_control), when known."""
    objects = list_wal(repo, component)
    files = objects[0]
    if not files:
        raise RestoreError(f"no WAL of component {component!r} in the repository")
    os.makedirs(wal_dir, exist_ok=True)
    ranges, copies, written = {}, {}, 0
    for name in files:
        r = stream_range(name)
        if r:
            ranges.setdefault(r[0], []).append((r[1], r[2], name))
            continue
        seg, sep, millis = name.partition(".partial.")
        if sep and is_hex(seg, 24) and millis.isdigit():
            copies[seg] = max(copies.get(seg, (-1, None)), (int(millis), name))
            continue
        data = read_wal_file(name, objects, component, keys, trust, system_id, False)  # §10 step 1
        if data is not None:
            write_wal_file(wal_dir, name, data)
            written += 1
    for seg in sorted(set(ranges) | set(copies)):
        if os.path.exists(os.path.join(wal_dir, seg)):
            continue  # the whole segment was written above
        data = assemble_streamed(ranges.get(seg, []), lambda n: read_wal_file(n, objects, component, keys, trust, system_id, True))
        if data is None and seg in copies:
            data = read_wal_file(copies[seg][1], objects, component, keys, trust, system_id, False)  # §10.2 step 3
        if data is not None:
            write_wal_file(wal_dir, seg, data)
            written += 1
    return written


def write_wal_file(wal_dir, name, data):
    if "/" in name or name in (".", ".."):
        raise RestoreError(f"refusing unsafe WAL file name {name!r}")
    fd = os.open(os.path.join(wal_dir, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def prepare_recovery(target, wal_dir):
    """§10.3: recovery.signal, and a restore_command that copies from wal_dir."""
    pgdata = os.path.join(target, "pgdata")
    if not os.path.isdir(pgdata):
        raise RestoreError(f"{pgdata}: the snapshot holds no pgdata/ (not a postgres-base snapshot)")
    open(os.path.join(pgdata, "recovery.signal"), "wb").close()
    quoted = os.path.abspath(wal_dir).replace("'", "''")
    with open(os.path.join(pgdata, "postgresql.auto.conf"), "a") as f:
        f.write(f"\n# written by reprise_restore.py\nrestore_command = 'cp \"{quoted}/%f\" \"%p\"'\n")


def main():
    p = argparse.ArgumentParser(description="Restore a reprise snapshot without reprise (docs/FORMAT.md).")
    p.add_argument("--repo", required=True, help="local repository directory")
    k = p.add_mutually_exclusive_group(required=True)
    k.add_argument("--recovery-key", metavar="FILE", help="recovery key file (reprise key export-recovery)")
    k.add_argument("--password-env", metavar="VAR", help="environment variable holding the passphrase")
    p.add_argument("--snapshot", default="latest", help="snapshot ID, unique prefix, or 'latest' (default)")
    p.add_argument("--list", action="store_true", help="list snapshots and exit")
    p.add_argument("--target", help="empty or new directory to restore into")
    p.add_argument("--wal-dir", metavar="DIR", help="also write the snapshot's component's WAL here (segments, "
                   "history files, streamed segments assembled, §10); for a postgres-base snapshot, set up "
                   "recovery in TARGET/pgdata to read it")
    a = p.parse_args()
    if not a.list and not a.target:
        p.error("--target is required unless --list is given")

    cfg = read_config(a.repo)
    if a.recovery_key:
        keys = open_recovery_file(a.recovery_key, cfg)
    else:
        if a.password_env not in os.environ:
            raise RestoreError(f"environment variable {a.password_env} is not set")
        keys = open_key_files(a.repo, os.environb[os.fsencode(a.password_env)], cfg)
    trust = Trust(a.repo, keys, cfg)
    snaps = load_snapshots(a.repo, keys, trust)
    if a.list:
        for name, h, _, domain, writer in sorted(snaps, key=lambda s: time_key(s[1].get("time", ""))):
            print(f"{name}  {h.get('time')}  {h.get('host')}  {h.get('component')}  {h.get('kind')}  {domain_name(domain)}  {writer}")
        return 0
    name, header, body, domain, writer = select_snapshot(snaps, a.snapshot)

    target = os.path.abspath(a.target)
    if os.path.lexists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise RestoreError(f"target {target} exists and is not an empty directory")
    body = cbor2.loads(hpke_open(keys["recovery_secret"], body, b"reprise snapshot body v1",
                                 f"snapshot {name} body"))
    if body.get("errors"):
        warn(f"snapshot {name[:8]} recorded {len(body['errors'])} entries it could not read at backup time")
    index, sizes = load_index(a.repo, keys, trust, domain)
    os.makedirs(target, exist_ok=True)
    r = Restorer(BlobReader(a.repo, keys, index, sizes, domain))
    r.restore_dir(body["tree"], os.fsencode(target))  # §9: the root tree is '/'
    r.finish()
    if r.failed:
        raise RestoreError(f"{r.failed} entries of snapshot {name[:8]} could not be restored "
                           f"(damaged data, see above); {r.files} files, {r.bytes} bytes restored")
    print(f"restored snapshot {name[:8]} ({header.get('time')}, {header.get('host')}, written by {writer}) to {target}: "
          f"{r.files} files, {r.bytes} bytes, {r.dirs} dirs, {r.symlinks} symlinks, "
          f"{r.hardlinks} hard links, {r.skipped} skipped")
    if a.wal_dir:
        # §10.1: the server being recovered, from the restored control file (its first 8 bytes).
        control = os.path.join(target, "pgdata", "global", "pg_control")
        system_id = struct.unpack("<Q", read(control)[:8])[0] if os.path.isfile(control) else None
        count = restore_wal(a.repo, header.get("component", ""), keys, trust, a.wal_dir, system_id)
        if header.get("kind") == "postgres-base":
            prepare_recovery(target, a.wal_dir)
        print(f"wrote {count} WAL files of component {header.get('component')!r} to {a.wal_dir}"
              + ("; recovery set up in pgdata/ (start the server on it)" if header.get("kind") == "postgres-base" else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except (RestoreError, OSError, KeyError, ValueError, TypeError, struct.error) as e:
        msg = str(e) if isinstance(e, (RestoreError, OSError)) else f"malformed data: {type(e).__name__}: {e}"
        print(f"reprise_restore: error: {msg}", file=sys.stderr)
        sys.exit(1)
