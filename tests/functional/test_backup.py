"""`vallum backup create|verify|restore` on a real server under load, compared object by object."""

from __future__ import annotations

import re
import threading

import pytest

from tests.support.backup import body, cli, fingerprint, modes, populate, site_state, vallum
from tests.support.iam import s3_for, uid
from tests.support.server import start_server, stop_server


class _Load(threading.Thread):
    """Writes (and deletes some of) numbered blobs until stopped: the backup runs meanwhile."""

    def __init__(self, srv, bucket: str) -> None:
        super().__init__(daemon=True)
        self.s3, self.bucket, self.stop, self.acked, self.errors = srv.client(), bucket, threading.Event(), 0, []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self.s3.put_object(Bucket=self.bucket, Key=f"load/{i:06d}", Body=body(i))
                if i % 3 == 2:
                    self.s3.delete_object(Bucket=self.bucket, Key=f"load/{i - 1:06d}")
                self.acked = i
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
            i += 1


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("backup")
    srv = start_server(base / "data")
    try:
        buckets, key = populate(srv)
        load_bucket = "bk-load-" + uid("b")[-6:]
        srv.client().create_bucket(Bucket=load_bucket)
        for i in range(20):                             # acknowledged before the backup: must all survive
            srv.client().put_object(Bucket=load_bucket, Key=f"before/{i}", Body=body(i))
        load = _Load(srv, load_bucket)
        load.start()
        try:
            made = vallum("backup", "create", "--data-dir", str(srv.data_dir), "--to", str(base / "backup"))
        finally:
            load.stop.set()
            load.join(30)
        assert made.returncode == 0, made.stderr
        assert not load.errors, load.errors[:3]
        assert load.acked > 3, "the load did not overlap the backup"
        before = site_state(srv.client(), buckets)
        second = cli("backup", "create", "--data-dir", str(srv.data_dir), "--to", str(base / "backup"))
        pin = fingerprint(srv.data_dir)
        yield {"base": base, "buckets": buckets, "load": load_bucket, "key": key, "before": before,
               "first": made.stdout, "second": second, "pin": pin, "srv": srv}
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def restored(site):
    target = site["base"] / "restored"
    out = cli("backup", "restore", str(site["base"] / "backup"), "--data-dir", str(target),
              "--snapshot", _snapshot(site["first"]))
    assert out.returncode == 0, out.stderr
    return target


def _snapshot(stdout: str) -> str:
    return re.search(r"snapshot (\S+):", stdout).group(1)


def test_backup_verifies_and_is_private(site):
    out = cli("backup", "verify", str(site["base"] / "backup"))
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout
    assert modes(site["base"] / "backup") <= {("dir", 0o700), ("file", 0o600)}


def test_second_backup_copies_no_unchanged_blob(site):
    second = site["second"]
    assert second.returncode == 0, second.stderr
    copied, reused = map(int, re.search(r"(\d+) objects copied, (\d+) already", second.stdout).groups())
    first_copied = int(re.search(r"(\d+) objects copied", site["first"]).group(1))
    assert reused >= 20 and copied < first_copied      # only what changed since (databases, audit, new blobs)


def test_restored_site_serves_everything(site, restored):
    assert modes(restored) <= {("dir", 0o700), ("file", 0o600)}
    srv = start_server(restored)
    try:
        s3 = srv.client()
        assert site_state(s3, site["buckets"]) == site["before"]
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert set(site["buckets"]) | {site["load"]} <= names
        keys = {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=site["load"])
                for o in p.get("Contents", [])}
        assert {f"before/{i}" for i in range(20)} <= keys
        for key in keys:                                 # whatever the snapshot caught is whole
            i = int(key.split("/")[1])
            assert s3.get_object(Bucket=site["load"], Key=key)["Body"].read() == body(i)
        alice = s3_for(srv, *site["key"])                # IAM keys survive (the secrets unwrap)
        assert alice.list_buckets()["Buckets"] == []
        # retention and legal hold still hold
        with pytest.raises(Exception) as exc:
            s3.delete_object(Bucket=site["buckets"][0], Key="doc",
                             VersionId=site["before"][site["buckets"][0]]["versions"][0]["version"])
        assert "AccessDenied" in str(exc.value)
    finally:
        stop_server(srv)
    out = cli("audit", "verify", "--data-dir", str(restored), "--fingerprint", site["pin"])
    assert out.returncode == 0, out.stdout + out.stderr


def test_restored_audit_log_verifies_before_serving(site, tmp_path):
    target = tmp_path / "fresh"
    out = cli("backup", "restore", str(site["base"] / "backup"), "--data-dir", str(target))
    assert out.returncode == 0, out.stderr
    out = cli("audit", "verify", "--data-dir", str(target), "--fingerprint", site["pin"])
    assert out.returncode == 0, out.stdout + out.stderr
    query = cli("audit", "query", "--data-dir", str(target), passphrase=None)
    assert re.search(r"^\S+ \d+ restore ", query.stdout, re.M), query.stdout
