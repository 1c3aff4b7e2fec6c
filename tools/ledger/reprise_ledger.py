#!/usr/bin/env python3
"""An independent verifier of reprise evidence ledgers, written from
docs/FORMAT.md (sections 2, 4 and 17) alone.

    reprise_ledger.py verify REPO [--witness DIR] (--key-file FILE | --password-file FILE)
                             [--verifier-key KEY ...] [--json]
        Recomputes every root of every ledger in the repository directory REPO,
        checks every checkpoint signature, and compares the log with every
        checkpoint the witness directory holds. Prints one line per finding;
        exits 0 when nothing shows tampering (notes, such as entries not yet
        witnessed, are printed but do not fail), 1 otherwise.

    reprise_ledger.py check-proof PROOF --verifier-key KEY [--json]
        Checks an inclusion proof written by `reprise ledger proof`, offline,
        with the verifier key given (never the proof's own list). Exits 0 when
        the proof holds, 1 otherwise.

--key-file takes a recovery key or a write credential; --password-file
opens the repository's key files with a passphrase (Argon2id, needs
argon2-cffi). Either gives the repository's shared key (section 2.3: derived
from "recovery_secret", or a write-only key's "shared_key"), from which the
entry key (section 17.2) and, without --verifier-key, the repository's
verifier key (section 17.4) are derived.

Needs: cryptography, cbor2, blake3 (and argon2-cffi for --password-file).
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization

RECORD_MAGIC = b"RPRSLED1"
ENTRY_AAD = b"reprise ledger entry v1"
EM_DASH = "\u2014"
NAME_DIGITS = 20


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(entry_cbor):
    return sha256(b"\x00" + entry_cbor)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")


# ---------------------------------------------------------------- keys (section 4)

def shared_key_of(secrets):
    """Section 2.3: a write-only key holds the shared key; a full-access key
    (or a recovery key file) derives it from the recovery secret."""
    if "shared_key" in secrets:
        return bytes.fromhex(secrets["shared_key"])
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes.fromhex(secrets["repository_id"]), info=b"reprise shared key v2")
    return hkdf.derive(bytes.fromhex(secrets["recovery_secret"]))


def entry_key(shared_key):
    """Section 17.2: the AES-256-GCM key of sealed entries."""
    import blake3

    return blake3.blake3(shared_key, derive_key_context="reprise ledger entry key v2").digest()


def admin_public_of(secrets):
    """Section 2.3 / 2.4: the administrator's Ed25519 public key, derived
    from the recovery secret (None without it)."""
    if "recovery_secret" not in secrets:
        return None
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes.fromhex(secrets["repository_id"]), info=b"reprise admin signing key v2")
    seed = hkdf.derive(bytes.fromhex(secrets["recovery_secret"]))
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def derive(secrets, info, length=32):
    """Section 2.3."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=bytes.fromhex(secrets["repository_id"]), info=info)
    return hkdf.derive(bytes.fromhex(secrets["recovery_secret"]))


def revoked_writers(repo, secrets, admin):
    """Section 15: writers the administrator revoked, by public key:
    (key ID hex, label, revocation time)."""
    import blake3

    out = {}
    tdir = os.path.join(repo, "trust")
    catalog = derive(secrets, b"reprise domain catalog key v2" + bytes(32))
    repository_id = bytes.fromhex(secrets["repository_id"])
    for name in sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []:
        with open(os.path.join(tdir, name), "rb") as f:
            data = f.read()
        if data[:8] != b"RPRSTRS2" or len(data) < 8 + 28 + 96:
            continue
        body, signer, sig = data[:-96], data[-96:-64], data[-64:]
        if signer != admin:
            continue
        message = b"reprise-signature-v2\0trust\0" + repository_id + blake3.blake3(data[:-64]).digest()
        try:
            Ed25519PublicKey.from_public_bytes(admin).verify(sig, message)
            record = cbor2.loads(AESGCM(catalog).decrypt(body[8:20], body[20:], b"reprise trust v2"))
        except Exception:
            continue
        if record.get("kind") == "revocation":
            key = record["key"]
            out[bytes(key["key_id"])] = ("writer", bytes(key["key_id"]).hex(), key.get("label", ""), record["time"])
    return out


def appenders_of(repo, secrets):
    """Section 17.8: who may append, by public key: the administrator,
    every write-only key file (version 2) and every revoked writer. Only
    with the recovery secret (a full-access key): a writer knows no other
    writer. Endorsements (section 4) are not checked here."""
    admin = admin_public_of(secrets)
    if admin is None:
        return None
    who = {admin: ("admin", admin.hex(), "administrator", None)}
    who.update(revoked_writers(repo, secrets, admin))
    keys_dir = os.path.join(repo, "keys")
    for name in sorted(os.listdir(keys_dir)) if os.path.isdir(keys_dir) else []:
        try:
            with open(os.path.join(keys_dir, name), "rb") as f:
                doc = json.load(f)
        except Exception:
            continue
        if doc.get("version") == 2 and doc.get("role") == "write-only" and "key_id" in doc:
            who.setdefault(bytes.fromhex(doc["key_id"]), ("writer", doc["key_id"], doc.get("label", ""), None))
    return who


def secrets_from_key_file(path):
    with open(path, "rb") as f:
        return json.load(f)


def secrets_from_passphrase(repo, password_file):
    from argon2.low_level import Type, hash_secret_raw

    with open(password_file, "rb") as f:
        passphrase = f.read().split(b"\n")[0].rstrip(b"\r")
    keys_dir = os.path.join(repo, "keys")
    for name in sorted(os.listdir(keys_dir)):
        with open(os.path.join(keys_dir, name), "rb") as f:
            doc = json.load(f)
        if "kdf" not in doc:
            continue  # a public record (a write credential's): nothing to open
        kdf = doc["kdf"]
        kek = hash_secret_raw(
            passphrase,
            base64.b64decode(kdf["salt"]),
            time_cost=kdf["iterations"],
            memory_cost=kdf["memory_kib"],
            parallelism=kdf["parallelism"],
            hash_len=32,
            type=Type.ID,
            version=0x13,
        )
        try:
            plain = AESGCM(kek).decrypt(base64.b64decode(doc["nonce"]), base64.b64decode(doc["sealed"]), b"reprise key v1")
        except Exception:
            continue
        secrets = json.loads(plain)
        return secrets
    raise SystemExit("no key file opens with this passphrase")


def repository_verifier_key(shared_key, repository_id):
    """Section 17.4: the key every key of the repository signs with today."""
    import blake3

    seed = blake3.blake3(shared_key, derive_key_context="reprise ledger checkpoint signing key v2").digest()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = "reprise-ledger/" + repository_id[:16]
    return make_verifier_key(name, public)


def key_id(name, public):
    return sha256(name.encode() + b"\n" + b"\x01" + public)[:4]


def make_verifier_key(name, public):
    return "%s+%s+%s" % (name, key_id(name, public).hex(), base64.b64encode(b"\x01" + public).decode())


def parse_verifier_key(text):
    name, kid, key = text.split("+", 2)
    raw = base64.b64decode(key)
    if len(kid) != 8 or raw[:1] != b"\x01" or len(raw) != 33:
        raise ValueError("not an Ed25519 verifier key: " + text)
    if key_id(name, raw[1:]) != bytes.fromhex(kid):
        raise ValueError("the key ID does not match the key: " + text)
    return (name, bytes.fromhex(kid)), Ed25519PublicKey.from_public_bytes(raw[1:])


# ---------------------------------------------------------------- checkpoints (section 17.4)

class Refused(Exception):
    pass


def open_checkpoint(note_bytes, trusted):
    """Returns (origin, size, root); raises Refused with the reason."""
    try:
        text = note_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("not UTF-8")
    if "\n\n" not in text or not text.endswith("\n"):
        raise Refused("not a signed note")
    body, sigs = text.rsplit("\n\n", 1)
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise Refused("not a checkpoint")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not re.fullmatch(r"0|[1-9][0-9]*", size_text):
        raise Refused("bad size line")
    try:
        root = base64.b64decode(root_text, validate=True)
    except Exception:
        raise Refused("bad root line")
    if len(root) != 32:
        raise Refused("bad root line")
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            raise Refused("bad signature line")
        name, _, b64 = line[2:].partition(" ")
        raw = base64.b64decode(b64)
        if len(raw) < 5:
            raise Refused("bad signature line")
        public = trusted.get((name, raw[:4]))
        if public is None:
            continue
        try:
            public.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise Refused("its signature by %s does not verify" % name)
        verified = True
    if not verified:
        raise Refused("no trusted key signed it")
    return origin, int(size_text), root


# ---------------------------------------------------------------- appenders (section 17.8)

WRITER_OPERATIONS = ("backup", "check", "note")


def note_appender(note_bytes, appenders):
    """The appender whose co-signature (a `reprise-key/<key ID>` line)
    verifies: ("admin"|"writer", key ID hex, label); None when there is
    none; "bad" when one by a known key does not verify."""
    text = note_bytes.decode("utf-8")
    body, sigs = text.rsplit("\n\n", 1)
    body += "\n"
    for line in sigs[:-1].split("\n"):
        name, _, b64 = line[2:].partition(" ")
        if not name.startswith("reprise-key/"):
            continue
        try:
            public = bytes.fromhex(name[len("reprise-key/"):])
            raw = base64.b64decode(b64)
        except ValueError:
            continue
        if len(public) != 32 or len(raw) != 68 or key_id(name, public) != raw[:4] or public not in appenders:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], body.encode())
        except InvalidSignature:
            return "bad"
        return appenders[public]
    return None


def judge_appender(i, note, entry, appenders, revoked_here):
    op = entry.get("operation")
    who = note_appender(note, appenders)
    if who is None:
        return "entry %d (%s): no key of this repository co-signed its append" % (i, op)
    if who == "bad":
        return "entry %d (%s): its appender's signature does not verify" % (i, op)
    kind, kid, label, revoked_at = who
    if kind == "admin":
        if op in ("key-revoke", "key-remove") and "key_id" in (entry.get("refs") or {}):
            revoked_here.setdefault(entry["refs"]["key_id"], i)
        return None
    if op not in WRITER_OPERATIONS:
        return "entry %d: a %s appended by write-only key %s (%s), which cannot do that" % (i, op, kid[:12], label)
    if kid in revoked_here:
        return "entry %d (%s): appended by write-only key %s after entry %d recorded its revocation" % (i, op, kid[:12], revoked_here[kid])
    if revoked_at is not None and parse_time(entry.get("time")) > parse_time(revoked_at):
        return "entry %d (%s): appended by write-only key %s after its revocation at %s" % (i, op, kid[:12], revoked_at)
    return None


def parse_time(text):
    import datetime

    return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))


# ---------------------------------------------------------------- records (section 17.2)

def decode_record(data):
    if data[:8] != RECORD_MAGIC:
        raise ValueError("bad magic")
    at = 8

    def take(n):
        nonlocal at
        if at + n > len(data):
            raise ValueError("truncated")
        s = data[at:at + n]
        at += n
        return s

    e = int.from_bytes(take(4), "little")
    sealed = take(e)
    c = int.from_bytes(take(4), "little")
    checkpoint = take(c)
    f = take(1)[0]
    frontier = [take(32) for _ in range(f)]
    if at != len(data):
        raise ValueError("bytes after the frontier")
    return sealed, checkpoint, frontier


def open_entry(sealed, entry_key_bytes):
    return AESGCM(entry_key_bytes).decrypt(sealed[:12], sealed[12:], ENTRY_AAD)


# ---------------------------------------------------------------- the tree (section 17.3)

def frontier_push(frontier, size, leaf):
    frontier = list(frontier)
    h = leaf
    k = size
    while k & 1:
        h = node_hash(frontier.pop(), h)
        k >>= 1
    frontier.append(h)
    return frontier


def frontier_root(frontier):
    if not frontier:
        return EMPTY_ROOT
    h = frontier[-1]
    for e in reversed(frontier[:-1]):
        h = node_hash(e, h)
    return h


def first_difference(size, a, b):
    """Leaves [first, end) under the first subtree where two frontiers differ."""
    start = 0
    widths = [1 << bit for bit in range(63, -1, -1) if size & (1 << bit)]
    for w, x, y in zip(widths, a, b):
        if x != y:
            return start, start + w
        start += w
    return None


# ---------------------------------------------------------------- verify (section 17.5)

def name_number(text):
    return int(text) if len(text) == NAME_DIGITS and text.isdigit() else None


def verify_repository(repo, witness, entry_key_bytes, trusted, appenders=None):
    ledger_dir = os.path.join(repo, "ledger")
    findings = []
    summaries = []
    records = {}
    if os.path.isdir(ledger_dir):
        for lid in sorted(os.listdir(ledger_dir)):
            path = os.path.join(ledger_dir, lid)
            if lid == "site":
                continue
            if not re.fullmatch(r"[0-9a-f]{32}", lid) or not os.path.isdir(os.path.join(path, "records")):
                findings.append(("foreign", 0, 0, "ledger/" + lid, "not a ledger object"))
                continue
            records[lid] = {}
            for n in os.listdir(os.path.join(path, "records")):
                i = name_number(n)
                if i is None:
                    findings.append(("foreign", 0, 0, "ledger/%s/records/%s" % (lid, n), "not a ledger record name"))
                else:
                    records[lid][i] = os.path.join(path, "records", n)
    witnessed = {}
    if witness:
        wdir = os.path.join(witness, "ledger")
        if not os.path.isfile(os.path.join(wdir, "witness")):
            raise SystemExit("%s is not a ledger witness (no ledger/witness)" % witness)
        for lid in os.listdir(wdir):
            cdir = os.path.join(wdir, lid, "checkpoints")
            if not os.path.isdir(cdir):
                continue
            for n in os.listdir(cdir):
                s = name_number(n)
                if s is not None:
                    witnessed.setdefault(lid, {})[s] = os.path.join(cdir, n)
    own = None
    site_path = os.path.join(ledger_dir, "site")
    if os.path.isfile(site_path):
        try:
            with open(site_path, "rb") as f:
                own = json.load(f)["ledger"]
        except Exception:
            findings.append(("altered", 0, 0, "ledger/site", "the site marker is not one"))
    if own is not None:
        records.setdefault(own, {})
    for lid in sorted(set(records) | set(witnessed)):
        if lid not in records:
            # A ledger of this repository (signed by a trusted key) that only
            # the witness knows: another site's, not carried here (a note).
            last = max(witnessed[lid])
            try:
                with open(witnessed[lid][last], "rb") as f:
                    origin, _, _ = open_checkpoint(f.read(), trusted)
                if origin == "reprise-ledger/" + lid:
                    findings.append(("elsewhere", 0, last - 1, witnessed[lid][last], "ledger %s: witnessed here, no record of it at this location" % lid))
            except Refused:
                pass
            continue
        summary, f = verify_ledger(lid, records[lid], witnessed.get(lid, {}), witness, entry_key_bytes, trusted, appenders)
        summaries.append(summary)
        findings.extend(f)
    return summaries, findings


def verify_ledger(lid, recs, witnessed, witness, entry_key_bytes, trusted, appenders=None):
    origin_expected = "reprise-ledger/" + lid
    size = max(recs) + 1 if recs else 0
    findings = []
    frontier = []  # recomputed; None after damage
    roots = {0: EMPTY_ROOT}
    signatures = 0
    missing = None
    revoked_here = {}  # writer key ID (hex) -> entry that recorded its revocation

    def obj(i):
        return "ledger/%s/records/%0*d" % (lid, NAME_DIGITS, i)

    for i in range(size):
        if i not in recs:
            if missing is None:
                missing = i
            frontier = None
            continue
        if missing is not None:
            findings.append(("removed", missing, i - 1, obj(missing), "records %d..%d were removed" % (missing, i - 1)))
            missing = None
        with open(recs[i], "rb") as f:
            data = f.read()
        try:
            sealed, note, stored = decode_record(data)
        except ValueError as e:
            findings.append(("altered", i, i, obj(i), "entry %d: not a record (%s)" % (i, e)))
            frontier = None
            continue
        try:
            plain = open_entry(sealed, entry_key_bytes)
        except Exception:
            plain = None
        try:
            origin, cp_size, cp_root = open_checkpoint(note, trusted)
        except Refused as e:
            findings.append(("altered", i, i, obj(i), "entry %d: its checkpoint is refused (%s)" % (i, e)))
            if frontier is not None and plain is not None:
                frontier = frontier_push(frontier, i, leaf_hash(plain))
                roots[i + 1] = frontier_root(frontier)
            else:
                frontier = None
            continue
        signatures += 1
        if origin != origin_expected:
            findings.append(("foreign", i, i, obj(i), "entry %d: holds a checkpoint of %s" % (i, origin)))
            frontier = None
            continue
        if cp_size != i + 1:
            findings.append(("reordered", i, i, obj(i), "entry %d: the record here was written as entry %d" % (i, cp_size - 1)))
            frontier = None
            continue
        if plain is not None:
            try:
                entry = cbor2.loads(plain)
                if entry.get("index") != i:
                    findings.append(("reordered", i, i, obj(i), "entry %d: holds entry %s" % (i, entry.get("index"))))
            except Exception:
                entry = None
                findings.append(("altered", i, i, obj(i), "entry %d: not CBOR" % i))
            if appenders is not None and isinstance(entry, dict):
                why = judge_appender(i, note, entry, appenders, revoked_here)
                if why:
                    findings.append(("forged", i, i, obj(i), why))
        signed = stored if (len(stored) == bin(i + 1).count("1") and frontier_root(stored) == cp_root) else None
        if signed is None:
            findings.append(("altered", i, i, obj(i), "entry %d: the stored frontier does not match its checkpoint" % i))
        if plain is None:
            findings.append(("altered", i, i, obj(i), "entry %d: does not decrypt" % i))
            roots[i + 1] = cp_root
            frontier = signed
        elif frontier is not None:
            frontier = frontier_push(frontier, i, leaf_hash(plain))
            roots[i + 1] = frontier_root(frontier)
            if roots[i + 1] != cp_root:
                d = first_difference(i + 1, frontier, signed) if signed is not None else None
                first, last = (d[0], min(d[1], i + 1) - 1) if d else (0, i)
                findings.append(("altered", first, last, obj(i), "entries %d..%d do not match the checkpoint of entry %d" % (first, last, i)))
        else:
            roots[i + 1] = cp_root
            frontier = signed
    if missing is not None:
        findings.append(("removed", missing, size - 1, obj(missing), "records %d..%d were removed" % (missing, size - 1)))

    matched = 0
    matched_max = 0
    forked = False
    held = set()
    truncated = None
    for s in sorted(witnessed):
        with open(witnessed[s], "rb") as f:
            note = f.read()
        try:
            origin, cp_size, cp_root = open_checkpoint(note, trusted)
        except Refused as e:
            findings.append(("altered", 0, s - 1, witnessed[s], "witnessed checkpoint %d is refused (%s)" % (s, e)))
            continue
        if origin != origin_expected or cp_size != s:
            findings.append(("reordered", 0, s - 1, witnessed[s], "stored as size %d, holds size %d of %s" % (s, cp_size, origin)))
            continue
        held.add(s)
        if s > size:
            truncated = s
            continue
        if roots.get(s) == cp_root:
            matched += 1
            matched_max = max(matched_max, s)
        elif s in roots and not forked:
            forked = True
            base = matched_max if matched_max < s else 0
            findings.append(("forked", min(base, s - 1), s - 1, witnessed[s], "the log differs from the witnessed checkpoint of size %d (it matches up to size %d)" % (s, base)))
    if truncated is not None:
        findings.append(("truncated", size, truncated - 1, witnessed[truncated], "entries %d..%d were removed from the end" % (size, truncated - 1)))
    last_held = max([s for s in held if s <= size], default=0)
    if witness and last_held < size:
        findings.append(("unwitnessed", last_held, size - 1, witness, "entries %d..%d are not witnessed yet" % (last_held, size - 1)))
    summary = {"ledger": lid, "size": size, "signatures": signatures, "witnessed": matched, "witnessed_size": matched_max or None,
               "root": base64.b64encode(roots[size]).decode() if frontier is not None and size in roots else None}
    return summary, findings


# ---------------------------------------------------------------- proofs (section 15.6, RFC 9162)

def verify_inclusion(index, size, leaf, path, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, path):
    if first > second or first == 0:
        return False
    if first == second:
        return not path and first_hash == second_hash
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def check_proof(proof, trusted):
    if proof.get("format") != "reprise-ledger-proof" or proof.get("version") != 1:
        return False, "not a version 1 reprise-ledger-proof"
    entry = base64.b64decode(proof["entry"])
    decoded = cbor2.loads(entry)
    if decoded.get("index") != proof["index"]:
        return False, "the entry is entry %s, the proof says %s" % (decoded.get("index"), proof["index"])
    try:
        origin, size, root = open_checkpoint(proof["checkpoint"].encode(), trusted)
    except Refused as e:
        return False, "checkpoint: %s" % e
    if origin != "reprise-ledger/" + proof["ledger"] or size != proof["tree_size"]:
        return False, "the checkpoint is of size %d of %s" % (size, origin)
    path = [base64.b64decode(h) for h in proof["inclusion"]]
    if not verify_inclusion(proof["index"], size, leaf_hash(entry), path, root):
        return False, "the entry is not in the tree the checkpoint signs"
    c = proof.get("consistency")
    if c is not None:
        if not verify_consistency(c["old_size"], size, base64.b64decode(c["old_root"]), root, [base64.b64decode(h) for h in c["proof"]]):
            return False, "the tree of size %d is not a prefix of the tree of size %d" % (c["old_size"], size)
    return True, "entry %d (%s) is in the tree of size %d signed by the key given" % (proof["index"], decoded.get("operation"), size)


# ---------------------------------------------------------------- command line

def trusted_keys(texts):
    out = {}
    for t in texts:
        ident, public = parse_verifier_key(t)
        out[ident] = public
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify")
    v.add_argument("repo")
    v.add_argument("--witness")
    v.add_argument("--key-file")
    v.add_argument("--password-file")
    v.add_argument("--verifier-key", action="append", default=[])
    v.add_argument("--json", action="store_true")
    p = sub.add_parser("check-proof")
    p.add_argument("proof")
    p.add_argument("--verifier-key", action="append", required=True)
    p.add_argument("--json", action="store_true")
    args = ap.parse_args()

    if args.command == "check-proof":
        with open(args.proof, "rb") as f:
            proof = json.load(f)
        ok, message = check_proof(proof, trusted_keys(args.verifier_key))
        if args.json:
            print(json.dumps({"holds": ok, "message": message}))
        else:
            print(("the proof holds: " if ok else "the proof does NOT hold: ") + message)
        return 0 if ok else 1

    if args.key_file:
        secrets = secrets_from_key_file(args.key_file)
    elif args.password_file:
        secrets = secrets_from_passphrase(args.repo, args.password_file)
    else:
        ap.error("give --key-file or --password-file")
    with open(os.path.join(args.repo, "config"), "rb") as f:
        repository_id = json.load(f)["id"]
    shared_key = shared_key_of(secrets)
    keys = args.verifier_key or [repository_verifier_key(shared_key, repository_id)]
    appenders = appenders_of(args.repo, secrets)
    summaries, findings = verify_repository(args.repo, args.witness, entry_key(shared_key), trusted_keys(keys), appenders)
    tampered = any(k not in ("unwitnessed", "elsewhere") for k, *_ in findings)
    if args.json:
        print(json.dumps({
            "ledgers": summaries,
            "findings": [{"kind": k, "first": a, "last": b, "object": o, "message": m} for k, a, b, o, m in findings],
            "tampered": tampered,
            "verifier_keys": keys,
        }, indent=2))
    else:
        for s in summaries:
            print("ledger %s: %d entries, %d signatures verified, %d witnessed checkpoints match" % (s["ledger"], s["size"], s["signatures"], s["witnessed"]))
        for k, a, b, o, m in findings:
            print("%s %d..%d %s: %s" % (k.upper(), a, b, o, m))
    return 1 if tampered else 0


if __name__ == "__main__":
    sys.exit(main())
