"""A full disk through the API: writes refused with 507 before the disk is full, reads and
deletes served inside the reserve, readiness says so, an alert comes first, and deleting
through the API makes room again. Nothing acknowledged is lost.

The server runs on its own 64 MiB tmpfs (tests/support/smallfs.py) with a 16 MiB reserve.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, s3_for, uid
from tests.support.server import stop_server
from tests.support.smallfs import start_on_small_fs
from vallum.cli.admin import AdminClient

MiB = 1024 * 1024
OBJECT = 3 * MiB


@pytest.fixture
def small(tmp_path):
    srv = start_on_small_fs(tmp_path / "data", "64m", "--disk-reserve", "16MiB")
    try:
        yield srv
    finally:
        stop_server(srv)


def fill(s3, bucket: str) -> dict[str, str]:
    """PUT objects, smaller after each 507, until even one byte is refused: the acknowledged
    ones as key -> sha256."""
    acked: dict[str, str] = {}
    n = 0
    for size in (OBJECT, 256 * 1024, 16 * 1024, 1):
        for _ in range(400):
            body = os.urandom(size)
            try:
                s3.put_object(Bucket=bucket, Key=f"obj-{n:04d}", Body=body)
            except ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 507, exc.response
                assert exc.response["Error"]["Code"] == "XMinioStorageFull"
                assert "free" in exc.response["Error"]["Message"]
                break
            acked[f"obj-{n:04d}"] = hashlib.sha256(body).hexdigest()
            n += 1
        else:
            raise AssertionError(f"64 MiB filesystem never refused a {size}-byte object")
    return acked


def ready(endpoint: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(endpoint + "/-/health/ready", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(endpoint: str, name: str) -> float:
    with urllib.request.urlopen(endpoint + "/-/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} missing")


def alert_kinds(srv) -> list[str]:
    """The operator's alert journal, through the admin API (it lives on the server's tmpfs)."""
    root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
    return [a["kind"] for a in root.call("OperatorAlerts")["alerts"]]


def verify(s3, bucket: str, acked: dict[str, str]) -> None:
    for key, digest in acked.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, key


def test_full_disk_refuses_writes_serves_reads_and_frees_through_deletes(small):
    s3 = small.client()
    s3.create_bucket(Bucket="fill")
    assert ready(small.endpoint)[0] == 200
    acked = fill(s3, "fill")
    assert len(acked) >= 4

    # Refused before the disk is full: the reserve is still free, so deletes can work.
    assert metric(small.endpoint, "vallum_disk_state") == 2
    assert metric(small.endpoint, "vallum_disk_free_bytes") >= 8 * MiB
    assert metric(small.endpoint, "vallum_disk_writes_refused_total") >= 1
    status, text = ready(small.endpoint)
    assert status == 503 and "disk full" in text
    kinds = alert_kinds(small)
    assert kinds.index("disk_low") < kinds.index("disk_full")         # warned before refusing

    # Every kind of write is refused, small ones too; reads and listings are served.
    for attempt in (lambda: s3.put_object(Bucket="fill", Key="tiny", Body=b"x"),
                    lambda: s3.create_bucket(Bucket="another"),
                    lambda: s3.copy_object(Bucket="fill", Key="copy", CopySource="fill/obj-0000"),
                    lambda: s3.create_multipart_upload(Bucket="fill", Key="mp"),
                    lambda: s3.put_object_tagging(Bucket="fill", Key="obj-0000",
                                                  Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})):
        with pytest.raises(ClientError) as err:
            attempt()
        assert err.value.response["Error"]["Code"] == "XMinioStorageFull"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="fill")["Contents"]]
    assert sorted(listed) == sorted(acked)
    verify(s3, "fill", acked)
    for _ in range(200):                    # reads keep being audited inside the reserve
        s3.head_object(Bucket="fill", Key="obj-0000")

    # Deletes work inside the reserve (single and batch), and then writes are accepted again.
    s3.delete_object(Bucket="fill", Key="obj-0000")
    gone = sorted(acked)[1:4]
    out = s3.delete_objects(Bucket="fill", Delete={"Objects": [{"Key": k} for k in gone]})
    assert not out.get("Errors")
    for key in ["obj-0000", *gone]:
        del acked[key]
    body = os.urandom(OBJECT)
    s3.put_object(Bucket="fill", Key="after", Body=body)
    acked["after"] = hashlib.sha256(body).hexdigest()
    assert ready(small.endpoint)[0] == 200
    assert metric(small.endpoint, "vallum_disk_state") < 2
    verify(s3, "fill", acked)


def test_a_write_that_would_cross_the_reserve_is_refused_up_front(small):
    """An upload declaring more than the space above the reserve gets 507 before any byte
    is stored, while the disk is not yet full; a smaller one still fits."""
    s3 = small.client()
    s3.create_bucket(Bucket="big")
    free = metric(small.endpoint, "vallum_disk_free_bytes")
    reserve = metric(small.endpoint, "vallum_disk_reserve_bytes")
    too_big = int(free - reserve) + MiB
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="big", Key="huge", Body=b"\0" * too_big)
    assert err.value.response["Error"]["Code"] == "XMinioStorageFull"
    assert metric(small.endpoint, "vallum_disk_free_bytes") >= free - MiB   # nothing was kept
    assert ready(small.endpoint)[0] == 200
    s3.put_object(Bucket="big", Key="fits", Body=b"y" * MiB)
    assert s3.list_objects_v2(Bucket="big")["KeyCount"] == 1


def test_an_unauthorized_caller_learns_nothing_about_the_disk(small):
    """A full disk is told only to callers allowed to write: others get AccessDenied. The
    admin API (small SQLite writes inside the reserve) keeps working to set that up."""
    s3 = small.client()
    s3.create_bucket(Bucket="fill")
    fill(s3, "fill")
    tenant = Tenant(small, AdminClient(small.endpoint, small.access_key, small.secret_key, small.region))
    outsider = s3_for(small, *tenant.user(uid("nobody")))
    for attempt in (lambda: outsider.put_object(Bucket="fill", Key="x", Body=b"x"),
                    lambda: tenant.s3.put_object(Bucket="fill", Key="x", Body=b"x")):
        with pytest.raises(ClientError) as err:
            attempt()
        assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_concurrent_uploads_racing_for_the_last_space_get_200_or_507_never_500(small):
    """Uploads admitted together are stopped at the floor (half the reserve) or refused up
    front; none fails another way, every acknowledged one is whole, and a refused one
    leaves no partial blob behind (its space comes back)."""
    s3 = small.client()
    s3.create_bucket(Bucket="race")
    start_free = metric(small.endpoint, "vallum_disk_free_bytes")
    bodies = {f"r{i}": os.urandom(14 * MiB) for i in range(4)}
    outcome: dict[str, int] = {}

    def upload(key: str) -> None:
        try:
            small.client().put_object(Bucket="race", Key=key, Body=bodies[key])
            outcome[key] = 200
        except ClientError as exc:
            outcome[key] = exc.response["ResponseMetadata"]["HTTPStatusCode"]

    threads = [threading.Thread(target=upload, args=(k,)) for k in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(set(outcome.values())) in ([200, 507], [507]), outcome
    acked = {k: hashlib.sha256(bodies[k]).hexdigest() for k, v in outcome.items() if v == 200}
    verify(s3, "race", acked)
    for key in acked:
        s3.delete_object(Bucket="race", Key=key)
    assert metric(small.endpoint, "vallum_disk_free_bytes") >= start_free - 2 * MiB
    assert ready(small.endpoint)[0] == 200
