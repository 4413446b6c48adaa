"""Helpers of the backup tests: run the `vallum` CLI, fill a site with every feature a backup
must keep, and capture a site's whole visible state."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from botocore.exceptions import ClientError

from tests.support.iam import uid
from vallum.cli.admin import AdminClient

PASSPHRASE = "correct horse battery staple 42"
LABEL_HEADER = "x-vallum-classification"


def vallum(*args: str, passphrase: str | None = PASSPHRASE, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    """Run `vallum ARGS`, the passphrase in the environment (never argv)."""
    env = dict(os.environ)
    env.pop("VALLUM_BACKUP_PASSPHRASE", None)
    if passphrase is not None:
        env["VALLUM_BACKUP_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "vallum", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def cli(*args: str, passphrase: str | None = PASSPHRASE) -> subprocess.CompletedProcess:
    """`vallum ARGS` run in this process (the same typer app, no interpreter start-up), with
    the passphrase in the environment; the process umask is put back afterwards."""
    from typer.testing import CliRunner

    from vallum.cli.main import app

    umask = os.umask(0o077)
    os.umask(umask)
    try:
        r = CliRunner().invoke(app, list(args), env={"VALLUM_BACKUP_PASSPHRASE": passphrase})
    finally:
        os.umask(umask)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(list(args), r.exit_code, r.stdout, r.stderr)


def fingerprint(data_dir: Path) -> str:
    out = cli("audit", "key", "--data-dir", str(data_dir), passphrase=None)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("fingerprint:")[1].split()[0]


def _or_error(call, **kw):
    try:
        out = call(**kw)
    except ClientError as exc:
        return ("error", exc.response["Error"]["Code"])
    out.pop("ResponseMetadata", None)
    return out


def site_state(s3, buckets: list[str]) -> dict:
    """Everything a client can see of ``buckets``: every version's body, metadata, label,
    tags, retention and legal hold; the bucket's versioning, policy, tags and lock settings."""
    state: dict = {}
    for b in buckets:
        versions = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=b):
            for v in page.get("Versions", []):
                kw = {"Bucket": b, "Key": v["Key"], "VersionId": v["VersionId"]}
                got = s3.get_object(**kw)
                versions.append({
                    "key": v["Key"], "version": v["VersionId"], "etag": v["ETag"],
                    "size": v["Size"], "latest": v["IsLatest"], "body": got["Body"].read(),
                    "meta": got.get("Metadata"), "type": got.get("ContentType"),
                    "label": got["ResponseMetadata"]["HTTPHeaders"].get(LABEL_HEADER),
                    "tags": s3.get_object_tagging(**kw)["TagSet"],
                    "retention": _or_error(s3.get_object_retention, **kw),
                    "hold": _or_error(s3.get_object_legal_hold, **kw)})
            for m in page.get("DeleteMarkers", []):
                versions.append({"key": m["Key"], "version": m["VersionId"], "marker": True,
                                 "latest": m["IsLatest"]})
        state[b] = {
            "versions": versions,
            "versioning": s3.get_bucket_versioning(Bucket=b).get("Status"),
            "policy": _or_error(s3.get_bucket_policy, Bucket=b),
            "tags": _or_error(s3.get_bucket_tagging, Bucket=b),
            "lock": _or_error(s3.get_object_lock_configuration, Bucket=b)}
    return state


def modes(root: Path) -> set[tuple[str, int]]:
    """(kind, permission bits) of every file and directory under ``root``."""
    found = {("dir", root.stat().st_mode & 0o777)}
    for path in root.rglob("*"):
        found.add(("dir" if path.is_dir() else "file", path.stat().st_mode & 0o777))
    return found


LOCK_UNTIL = datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc)
BLOB = 100 * 1024          # above the inline limit: stored as a blob


def body(i: int) -> bytes:
    return (f"load-{i:06d}-".encode() * (BLOB // 12 + 1))[:BLOB]


def populate(srv) -> tuple[list[str], tuple[str, str]]:
    """Buckets with every feature the comparison covers; a tenant user's key."""
    s3 = srv.client()
    locked, plain = "bk-locked-" + uid("b")[-6:], "bk-plain-" + uid("b")[-6:]
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket=plain)
    for n in range(3):                                                 # versions, inline and blob
        s3.put_object(Bucket=locked, Key="doc", Body=f"v{n}".encode() * (n * 30000 + 1),
                      Metadata={"n": str(n)}, ContentType="text/x-test")
    s3.put_object_retention(Bucket=locked, Key="doc", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": LOCK_UNTIL})
    s3.put_object_legal_hold(Bucket=locked, Key="doc", LegalHold={"Status": "ON"})
    s3.put_object(Bucket=locked, Key="gone", Body=b"x")
    s3.delete_object(Bucket=locked, Key="gone")                        # a delete marker
    s3.put_object(Bucket=plain, Key="tagged", Body=b"t" * BLOB, Tagging="team=red&level=2")

    def label(params, **_):
        params["headers"]["x-vallum-classification"] = "secret//tk/si//rel to usa,gbr"
    s3.meta.events.register_first("before-call.s3.PutObject", label)
    s3.put_object(Bucket=plain, Key="labelled", Body=b"classified")
    s3.meta.events.unregister("before-call.s3.PutObject", label)
    up = s3.create_multipart_upload(Bucket=plain, Key="multi")
    parts = [s3.upload_part(Bucket=plain, Key="multi", UploadId=up["UploadId"], PartNumber=n,
                            Body=bytes([n]) * (5 * 1024 * 1024 if n == 1 else 1000))["ETag"]
             for n in (1, 2)]
    s3.complete_multipart_upload(Bucket=plain, Key="multi", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), parts)]})
    s3.put_bucket_policy(Bucket=plain, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
         "Resource": f"arn:aws:s3:::{plain}"}]}))
    s3.put_bucket_tagging(Bucket=plain, Tagging={"TagSet": [{"Key": "owner", "Value": "ops"}]})
    root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
    acct = root.call("CreateAccount", name=uid("acct"))
    admin = AdminClient(srv.endpoint, acct["admin_key"]["access_key_id"],
                        acct["admin_key"]["secret_access_key"], srv.region)
    admin.call("CreateUser", user="alice")
    admin.call("PutInlinePolicy", kind="user", target="alice", name="p", document={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                                                "Resource": "*"}]})
    key = admin.call("CreateAccessKey", user="alice")
    return [locked, plain], (key["access_key_id"], key["secret_access_key"])
