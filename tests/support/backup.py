"""Helpers of the backup tests: run the `vallum` CLI and capture a site's whole visible state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from botocore.exceptions import ClientError

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
