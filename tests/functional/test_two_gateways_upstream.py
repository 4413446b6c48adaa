"""Two gateways on one PostgreSQL sharing one upstream bucket (issue 19 with issue 18): a
body written through one is read through the other, byte for byte, whatever its size and
however it was uploaded; deletes and overwrites from either are seen by both; and a verify
of the shared upstream finds every body whole."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.postgres import fresh_url, postgres  # noqa: F401 - fixture
from tests.support.seaweed import seaweed
from tests.support.server import start_server, stop_server


@pytest.fixture(scope="module")
def pair(postgres, tmp_path_factory):  # noqa: F811 - the fixture imported above
    base = tmp_path_factory.mktemp("two-up")
    with seaweed(base) as up:
        data = base / "data"
        env = {"VALLUM_META_URL": fresh_url(), **up.env()}
        g1 = start_server(data, "--blobs", up.spec("shared/"), env=env)
        try:
            g2 = start_server(data, "--blobs", up.spec("shared/"), env=env)
        except BaseException:
            stop_server(g1)
            raise
        try:
            yield g1, g2, up, env
        finally:
            stop_server(g2)
            stop_server(g1)


def test_bodies_cross_gateways_byte_for_byte(pair):
    g1, g2, up, _ = pair
    a, b = g1.client(), g2.client()
    a.create_bucket(Bucket="shared-up")
    bodies = {"inline": b"small", "blob": os.urandom(300_000)}
    for key, body in bodies.items():
        a.put_object(Bucket="shared-up", Key=key, Body=body)
    mp = b.create_multipart_upload(Bucket="shared-up", Key="multi")["UploadId"]
    parts = [os.urandom(5 << 20), os.urandom(1 << 20)]
    etags = [a.upload_part(Bucket="shared-up", Key="multi", UploadId=mp, PartNumber=n + 1,
                           Body=p)["ETag"] for n, p in enumerate(parts)]        # parts through g1
    b.complete_multipart_upload(Bucket="shared-up", Key="multi", UploadId=mp, MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
    bodies["multi"] = b"".join(parts)
    for key, body in bodies.items():
        for client in (a, b):
            got = client.get_object(Bucket="shared-up", Key=key)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key
    # The upstream holds ciphertext only: no body appears in any upstream object.
    stored = up.objects("shared/")
    assert stored and not any(bodies["blob"][:4096] in v for v in stored.values())


def test_concurrent_writers_on_both_and_deletes_seen_by_both(pair):
    g1, g2, _, _ = pair
    a, b = g1.client(), g2.client()
    a.create_bucket(Bucket="shared-race")

    def write(i: int) -> None:
        (a if i % 2 else b).put_object(Bucket="shared-race", Key=f"k{i % 10}",
                                       Body=f"v{i}".encode() * 40_000)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(60)))
    for i in range(10):
        x = a.get_object(Bucket="shared-race", Key=f"k{i}")["Body"].read()
        assert x == b.get_object(Bucket="shared-race", Key=f"k{i}")["Body"].read()
        assert len(x) % 40_000 == 0 and x[:1] == b"v"
    b.delete_object(Bucket="shared-race", Key="k0")
    assert "Contents" not in a.list_objects_v2(Bucket="shared-race", Prefix="k0")


def test_verify_of_the_shared_upstream_is_clean(pair):
    g1, g2, up, env = pair
    g1.client().create_bucket(Bucket="shared-verify")
    g2.client().put_object(Bucket="shared-verify", Key="a", Body=os.urandom(200_000))
    done = subprocess.run([sys.executable, "-m", "vallum", "blobs", "verify", "--data-dir",
                           str(g1.data_dir), "--blobs", up.spec("shared/")],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    versions = int(re.search(r"(\d+) versions", done.stdout).group(1))
    assert versions >= 1 and " 0 problems" in done.stdout, done.stdout     # read from PostgreSQL
