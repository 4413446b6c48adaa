"""`vallum backup` to an S3 target: a real SeaweedFS holds the backup; create (twice:
incremental), verify and restore read and write it, and a restored site serves what the
original did. A damaged, missing or forged object on the target is found."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.support.backup import PASSPHRASE, populate, site_state
from tests.support.iam import s3_for
from tests.support.seaweed import seaweed
from tests.support.server import start_server, stop_server


def backup(up, *args: str, passphrase: str = PASSPHRASE):
    """`vallum backup ARGS` with the target's keys and the passphrase in the environment."""
    env = {**os.environ, "VALLUM_BACKUP_PASSPHRASE": passphrase,
           "VALLUM_BACKUP_S3_ACCESS_KEY": up.server.access_key,
           "VALLUM_BACKUP_S3_SECRET_KEY": up.server.secret_key}
    return subprocess.run([sys.executable, "-m", "vallum", "backup", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("backup-s3")
    with seaweed(base) as up:
        srv = start_server(base / "data")
        try:
            buckets, key = populate(srv)
            target = up.spec("site-a/backups/")
            first = backup(up, "create", "--data-dir", str(srv.data_dir), "--to", target)
            assert first.returncode == 0, first.stderr
            srv.client().put_object(Bucket=buckets[1], Key="later", Body=b"after the first")
            second = backup(up, "create", "--data-dir", str(srv.data_dir), "--to", target)
            assert second.returncode == 0, second.stderr
            before = site_state(srv.client(), buckets)
            yield {"up": up, "target": target, "base": base, "buckets": buckets, "key": key,
                   "first": first.stdout, "second": second.stdout, "before": before, "srv": srv}
        finally:
            stop_server(srv)


def test_second_snapshot_uploads_only_what_changed(site):
    copied, reused = map(int, re.search(r"(\d+) objects copied, (\d+) already", site["second"]).groups())
    first = int(re.search(r"(\d+) objects copied", site["first"]).group(1))
    assert reused > 0 and copied < first
    keys = site["up"].objects("site-a/backups/")
    assert all(k.startswith("site-a/backups/objects/") or k.startswith("site-a/backups/snapshots/")
               for k in keys)
    assert len([k for k in keys if k.endswith("/manifest.mac")]) == 2


def test_target_sees_no_secret_in_the_clear(site):
    """Key table, keyring, master key and root credentials are wrapped before they leave."""
    secret = site["srv"].secret_key.encode()
    for name, data in site["up"].objects("site-a/backups/").items():
        assert secret not in data, name


def test_verify_and_restore_from_the_target(site, tmp_path):
    out = backup(site["up"], "verify", site["target"])
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr
    target_dir = tmp_path / "restored"
    out = backup(site["up"], "restore", site["target"], "--data-dir", str(target_dir))
    assert out.returncode == 0, out.stderr
    srv = start_server(target_dir)
    try:
        assert site_state(srv.client(), site["buckets"]) == site["before"]
        assert srv.client().get_object(Bucket=site["buckets"][1], Key="later")["Body"].read() \
            == b"after the first"
        assert s3_for(srv, *site["key"]).list_buckets()["Buckets"] == []     # IAM secrets unwrapped
    finally:
        stop_server(srv)


def test_wrong_passphrase_and_a_damaged_object_are_found(site):
    up = site["up"]
    assert backup(up, "verify", site["target"], passphrase="not the passphrase!!").returncode == 4
    c, bucket = up.client(), up.bucket
    stored = up.objects("site-a/backups/")
    latest = max(k for k in stored if k.endswith("/manifest.json"))   # what verify checks
    named = json.loads(stored[latest])["entries"][0]["object"]
    victim = f"site-a/backups/objects/{named[:2]}/{named}"
    original = c.get_object(Bucket=bucket, Key=victim)["Body"].read()
    try:
        c.put_object(Bucket=bucket, Key=victim, Body=bytes([original[0] ^ 1]) + original[1:])
        out = backup(up, "verify", site["target"])
        assert out.returncode == 1 and "damaged" in out.stderr, out.stderr
        c.delete_object(Bucket=bucket, Key=victim)
        out = backup(up, "verify", site["target"])
        assert out.returncode == 1 and "missing" in out.stderr, out.stderr
    finally:
        c.put_object(Bucket=bucket, Key=victim, Body=original)
    assert backup(up, "verify", site["target"]).returncode == 0


def test_a_forged_manifest_is_refused(site):
    up = site["up"]
    c, bucket = up.client(), up.bucket
    macs = sorted(k for k in up.objects("site-a/backups/snapshots/") if k.endswith("manifest.json"))
    latest = macs[-1]
    original = c.get_object(Bucket=bucket, Key=latest)["Body"].read()
    try:
        c.put_object(Bucket=bucket, Key=latest, Body=original.replace(b'"kind"', b'"kind" ', 1))
        out = backup(up, "verify", site["target"])
        assert out.returncode == 1 and "altered" in out.stderr, out.stderr
    finally:
        c.put_object(Bucket=bucket, Key=latest, Body=original)


def test_bad_targets_are_refused_with_the_reason(site, tmp_path):
    up = site["up"]
    for bad, why in ((f"s3://Bad_Bucket/x@{up.endpoint}", "bucket"),
                     (f"s3://{up.bucket}/../x@{up.endpoint}", "prefix"),
                     (f"s3://{up.bucket}/x@http://user:pw@127.0.0.1:1", "credentials")):
        out = backup(up, "create", "--data-dir", str(site["srv"].data_dir), "--to", bad)
        assert out.returncode == 1 and why in out.stderr, (bad, out.stderr)
    env_less = backup(up, "verify", f"s3://{up.bucket}/empty/@{up.endpoint}")
    assert env_less.returncode == 1 and "no snapshot" in env_less.stderr
