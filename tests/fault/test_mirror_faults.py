"""Faults of a mirrored gateway (`--blobs local:/A,local:/B`), through boto3.

- The disk reserve counts both disks: the second disk of the mirror is a 64 MiB tmpfs
  (tests/support/smallfs.py) while the data directory and the first disk have room to
  spare; writes are refused with 507 when the small one reaches the reserve, reads are
  served, and a delete makes room again.
- kill -9 of the gateway amid uploads: every acknowledged object reads back after the
  restart, the start-up sweep leaves on each disk exactly the blobs the metadata
  references, and `vallum blobs verify` finds both copies of every blob whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tests.support.server import kill_amid_writes, start_server, stop_server
from tests.support.smallfs import start_on_small_fs
from vallum.cli.main import app

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="starts its own gateway on its own disks")
MiB = 1024 * 1024


def metric(endpoint: str, name: str) -> float:
    with urllib.request.urlopen(endpoint + "/-/metrics", timeout=5) as r:  # noqa: S310
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} missing")


def ready(endpoint: str) -> int:
    try:
        with urllib.request.urlopen(endpoint + "/-/health/ready", timeout=5) as r:  # noqa: S310
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_reserve_counts_the_fuller_disk_of_the_mirror(tmp_path):
    disk1, disk2 = tmp_path / "disk1", tmp_path / "disk2"
    disk1.mkdir()
    srv = start_on_small_fs(tmp_path / "data", "64m", "--disk-reserve", "16MiB",
                            "--blobs", f"local:{disk1},local:{disk2}", mount_at=disk2)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="fill")
        assert metric(srv.endpoint, "vallum_disk_free_bytes") <= 64 * MiB   # the small disk counts
        acked, n = {}, 0
        for _ in range(40):
            body = os.urandom(3 * MiB)
            try:
                s3.put_object(Bucket="fill", Key=f"obj-{n}", Body=body)
            except ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 507, exc.response
                assert exc.response["Error"]["Code"] == "XMinioStorageFull"
                break
            acked[f"obj-{n}"] = hashlib.sha256(body).hexdigest()
            n += 1
        else:
            raise AssertionError("a 64 MiB mirror disk never refused a write")
        assert 8 <= len(acked) <= 16                 # refused at the reserve of the small disk
        assert sum(1 for p in (disk1 / "blobs").rglob("*") if p.is_file()) == len(acked)
        for key, digest in acked.items():
            assert hashlib.sha256(s3.get_object(Bucket="fill", Key=key)["Body"].read()).hexdigest() == digest
        s3.delete_object(Bucket="fill", Key="obj-0")
        s3.delete_object(Bucket="fill", Key="obj-1")
        s3.put_object(Bucket="fill", Key="after", Body=os.urandom(3 * MiB))
        assert ready(srv.endpoint) == 200
    finally:
        stop_server(srv)


def test_kill_9_during_uploads_loses_nothing_acknowledged_and_leaves_both_copies_whole(tmp_path):
    disk1, disk2, data_dir = tmp_path / "disk1", tmp_path / "disk2", tmp_path / "data"
    spec = f"local:{disk1},local:{disk2}"
    disk1.mkdir()
    disk2.mkdir()
    first = start_server(data_dir, "--blobs", spec)
    try:
        first.client().create_bucket(Bucket="kill-nine")
    except BaseException:
        stop_server(first)
        raise
    acked = kill_amid_writes(first, "kill-nine", at_least=15, growth=20)
    second = start_server(data_dir, "--blobs", spec)
    try:
        s3 = second.client()
        for key, body in acked.items():
            assert s3.get_object(Bucket="kill-nine", Key=key)["Body"].read() == body, key
        listed = s3.list_objects_v2(Bucket="kill-nine")["KeyCount"]
        for disk in (disk1, disk2):               # the sweep left exactly the referenced blobs
            assert sum(1 for p in (disk / "blobs").rglob("*") if p.is_file()) == listed
            assert not list((disk / "tmp").iterdir())
        r = CliRunner().invoke(app, ["blobs", "verify", "--data-dir", str(data_dir), "--blobs", spec,
                                     "--json", "--rate", "0", "--restart"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["findings"] == []
    finally:
        stop_server(second)
