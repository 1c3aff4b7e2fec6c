"""S3 side of the ransomware test (crates/cli/tests/ransomware.rs), with
boto3 (installed with moto[server]) as an independent S3 client.

    setup ENDPOINT BUCKET LOCK   the storage administrator: creates the bucket
                                 (LOCK=1: with Object Lock, hence versioning),
                                 an `operator` IAM user (s3:*) and a
                                 `producer` IAM user (GetObject, PutObject,
                                 ListBucket), then turns on moto's IAM
                                 enforcement. Prints their keys as JSON.
    attack ENDPOINT BUCKET PREFIX   the compromised host, with the producer's
                                 keys (AWS_ACCESS_KEY_ID / _SECRET_ in the
                                 environment): every destructive request it
                                 can think of, on every object it can list.
                                 Prints what it listed, two control
                                 requests that must succeed (a read, a
                                 create), then one JSON line per attempt
                                 with the HTTP status and error code.
    versions ENDPOINT BUCKET PREFIX  key -> versions (oldest first), as JSON.
    locks ENDPOINT BUCKET PREFIX  key -> {mode, until, version} of every
                                 object (HEAD), as JSON.
    delete-version ENDPOINT BUCKET KEY  deletes the key's current version
                                 (by its version ID); prints the outcome.
    undo-overwrites ENDPOINT BUCKET PREFIX   the operator: for each key whose
                                 newest version is not its first one, deletes
                                 the newer versions (reprise writes each name
                                 once, so the first version is the real one,
                                 and becomes current again with its lock);
                                 if a newer version is locked, copies the
                                 first one back on top instead. Prints the
                                 keys repaired.

Keys go through the environment, never the command line.
"""

import datetime
import json
import os
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint, key_id=None, secret=None, service="s3"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def setup(endpoint, bucket, lock):
    # moto checks nothing until IAM enforcement is turned on below.
    s3 = client(endpoint, "AKIASETUP", "setup")
    iam = client(endpoint, "AKIASETUP", "setup", "iam")
    if lock == "1":
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=bucket)
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]

    def user(name, actions):
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}
        iam.put_user_policy(UserName=name, PolicyName=f"reprise-{name}", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return {"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}

    # The producer's policy as moto can enforce it: moto evaluates no
    # condition keys (a statement with a Condition never matches there),
    # so the `s3:if-none-match` condition of docs/STORAGE.md is left out.
    out = {
        "operator": user("operator", ["s3:*"]),
        "producer": user("producer", ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]),
    }
    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req).read()
    print(json.dumps(out))


def listing(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def attempt(kind, key, fn):
    """Prints the service's answer as it was: HTTP status and error code.
    Which answers count as a refusal is the test's decision, not this
    script's (a 500 or a signature error is not a refusal)."""
    try:
        fn()
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = e.response.get("Error", {}).get("Code", "")
        print(json.dumps({"kind": kind, "key": key, "outcome": "error", "status": status, "error": code}))
        return
    print(json.dumps({"kind": kind, "key": key, "outcome": "accepted", "status": 200}))


def attack(endpoint, bucket, prefix):
    s3 = client(endpoint)
    keys = listing(s3, bucket, prefix)
    # What the host can see, for the test to check the attack reached every
    # kind of object.
    print(json.dumps({"kind": "listing", "keys": keys}))
    # Controls: the producer's keys do read and create (so the refusals
    # below are the permissions at work, not a broken signature).
    if keys:
        attempt("control: read an object", keys[0], lambda: s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    attempt("control: create a new object", "control/probe", lambda: s3.put_object(Bucket=bucket, Key="control/probe", Body=b"probe", IfNoneMatch="*"))
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
    # Every key: find its version (HEAD is allowed to a reader), then try.
    for key in keys:
        version = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
        attempt("delete object", key, lambda: s3.delete_object(Bucket=bucket, Key=key))
        if version:
            attempt("delete the object's version", key, lambda: s3.delete_object(Bucket=bucket, Key=key, VersionId=version))
            attempt("delete the version, bypassing governance", key, lambda: s3.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True))
            attempt("shorten retention (PutObjectRetention)", key, lambda: s3.put_object_retention(Bucket=bucket, Key=key, VersionId=version, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": past}, BypassGovernanceRetention=True))
            attempt("lift legal hold", key, lambda: s3.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=version, LegalHold={"Status": "OFF"}))
        attempt("delete objects (batch)", key, lambda: check_batch(s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})))
        attempt("overwrite if it exists (If-None-Match *)", key, lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"encrypted by ransomware", IfNoneMatch="*"))
        attempt("overwrite (plain PutObject)", key, lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"encrypted by ransomware"))
    attempt("list object versions", "", lambda: s3.list_object_versions(Bucket=bucket, Prefix=prefix))
    attempt("delete the bucket", "", lambda: s3.delete_bucket(Bucket=bucket))
    attempt("suspend versioning", "", lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}))
    attempt("lifecycle rule expiring everything", "", lambda: s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [{"ID": "wipe", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]},
    ))
    attempt("bucket policy granting the host delete", "", lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}],
    })))
    attempt("change the Object Lock configuration", "", lambda: s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}))


def check_batch(answer):
    # DeleteObjects may answer 200 and list per-key errors: reported as
    # the 200 it was, with the key's error code.
    errors = answer.get("Errors", [])
    if errors:
        raise ClientError({"Error": {"Code": errors[0].get("Code", "")}, "ResponseMetadata": {"HTTPStatusCode": 200}}, "DeleteObjects")


def versions(s3, bucket, prefix):
    out = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            out.setdefault(v["Key"], []).append((v["VersionId"], v["IsLatest"]))
    # S3 lists the versions of a key newest first.
    return {k: list(reversed(vs)) for k, vs in out.items()}


def undo_overwrites(endpoint, bucket, prefix):
    s3 = client(endpoint)
    repaired = []
    for key, vs in versions(s3, bucket, prefix).items():
        first = vs[0]
        if first[1]:
            continue
        try:
            for version, _ in vs[1:]:
                s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        except ClientError:
            s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": first[0]})
        repaired.append(key)
    print(json.dumps(repaired))


def main():
    cmd, endpoint, bucket, arg = sys.argv[1:5]
    if cmd == "setup":
        setup(endpoint, bucket, arg)
    elif cmd == "attack":
        attack(endpoint, bucket, arg)
    elif cmd == "versions":
        vs = versions(client(endpoint), bucket, arg)
        print(json.dumps({k: [{"version": v[0], "latest": v[1]} for v in x] for k, x in vs.items()}))
    elif cmd == "locks":
        s3 = client(endpoint)
        out = {}
        for key in listing(s3, bucket, arg):
            h = s3.head_object(Bucket=bucket, Key=key)
            until = h.get("ObjectLockRetainUntilDate")
            out[key] = {"mode": h.get("ObjectLockMode"), "until": until.strftime("%Y-%m-%dT%H:%M:%SZ") if until else None, "version": h.get("VersionId")}
        print(json.dumps(out))
    elif cmd == "delete-version":
        s3 = client(endpoint)
        version = s3.head_object(Bucket=bucket, Key=arg)["VersionId"]
        attempt("delete the version", arg, lambda: s3.delete_object(Bucket=bucket, Key=arg, VersionId=version))
        s3.head_object(Bucket=bucket, Key=arg, VersionId=version)
    elif cmd == "undo-overwrites":
        undo_overwrites(endpoint, bucket, arg)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
