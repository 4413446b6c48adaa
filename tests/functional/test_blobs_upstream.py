"""`vallum serve --blobs s3://...` on a real SeaweedFS: objects round-trip, the upstream
holds ciphertext under opaque ids only, memory stays bounded for a large upload, and an
upstream that goes away mid-upload gives 503 and no object, never half of one."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from bench.servers import tree_rss_bytes
from tests.support.seaweed import seaweed
from tests.support.server import kill_amid_writes, start_server, stop_server

PREFIX = "gw/"
BLOB_KEY = re.compile(PREFIX + r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with seaweed(tmp_path_factory.mktemp("seaweed")) as up:
        yield up


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("vallum") / "data", "--blobs", upstream.spec(PREFIX),
                       env=upstream.env() | {"VALLUM_BLOBS_ATTEMPTS": "2"})
    yield srv
    stop_server(srv)


@pytest.fixture
def bucket(gateway):
    name = "up-" + uuid.uuid4().hex[:12]
    gateway.client().create_bucket(Bucket=name)
    return name


def _add_headers(client, headers: dict[str, str]) -> None:
    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
    client.meta.events.register("before-sign.s3.PutObject", add)


def test_objects_round_trip_and_ranges(gateway, bucket):
    s3 = gateway.client()
    small, large = os.urandom(5000), os.urandom(20 * 1024 * 1024 + 7)
    s3.put_object(Bucket=bucket, Key="small", Body=small)
    s3.put_object(Bucket=bucket, Key="large", Body=large)
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == small
    assert s3.get_object(Bucket=bucket, Key="large")["Body"].read() == large
    got = s3.get_object(Bucket=bucket, Key="large", Range="bytes=12345678-12345999")["Body"].read()
    assert got == large[12345678:12346000]
    assert s3.head_object(Bucket=bucket, Key="large")["ContentLength"] == len(large)
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    parts = [s3.upload_part(Bucket=bucket, Key="mpu", UploadId=mpu, PartNumber=n, Body=large[:5 << 20])
             for n in (1, 2)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=mpu, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": p["ETag"]} for n, p in zip((1, 2), parts, strict=True)]})
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == large[:5 << 20] * 2
    s3.delete_object(Bucket=bucket, Key="small")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="small")


def test_the_upstream_sees_only_ciphertext_under_opaque_ids(gateway, upstream, bucket):
    s3 = gateway.client()
    marker = b"PLAINTEXT-MARKER-" + uuid.uuid4().hex.encode()
    key = "key-name-" + uuid.uuid4().hex
    _add_headers(s3, {"x-vallum-classification": "TOP SECRET"})
    s3.put_object(Bucket=bucket, Key=key, Body=marker * 2000, Metadata={"owner": "meta-value-xyzzy"},
                  Tagging="project=tag-value-plugh")
    s3.put_object(Bucket=bucket, Key=key + "-small", Body=marker)
    stored = upstream.objects()
    assert stored and all(BLOB_KEY.fullmatch(k) for k in stored), list(stored)
    needles = [marker, key.encode(), bucket.encode(), b"meta-value-xyzzy", b"tag-value-plugh",
               b"TOP SECRET", b"TOP%20SECRET", b"PLAINTEXT-MARKER"]
    for name, body in stored.items():
        for needle in needles:
            assert needle not in body and needle.decode() not in name, (name, needle)
    # Nothing of the upstream's secret in the gateway's argv or its log.
    secret = upstream.server.secret_key
    with open(f"/proc/{gateway.proc.pid}/cmdline", "rb") as fh:
        assert secret.encode() not in fh.read()
    assert secret not in (gateway.data_dir.parent / f"{gateway.data_dir.name}-server.log").read_text()


def test_a_256_mib_upload_streams_in_bounded_memory(gateway, bucket):
    s3 = gateway.client()
    s3.put_object(Bucket=bucket, Key="warm", Body=os.urandom(1 << 20))
    base = tree_rss_bytes(gateway.proc.pid)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_bytes(gateway.proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    block = os.urandom(1 << 20)
    try:
        s3.upload_fileobj(io.BytesIO(block * 256), bucket, "big",
                          Config=__import__("boto3").s3.transfer.TransferConfig(
                              multipart_threshold=1 << 40))      # one 256 MiB PUT
    finally:
        done.set()
        sampler.join()
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == 256 << 20
    assert peak[0] - base < 96 << 20, (base, peak[0])


def _pause_when_an_upload_starts(upstream) -> threading.Thread:
    """Stop the upstream as soon as the gateway has begun a multipart upload there."""
    client = upstream.client()

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if client.list_multipart_uploads(Bucket=upstream.bucket, Prefix=PREFIX).get("Uploads"):
                upstream.pause()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_upstream_stopped_mid_upload_gives_503_and_no_object(gateway, upstream, bucket):
    s3 = gateway.client()
    acknowledged = os.urandom(200_000)          # above the inline size: its body is upstream
    s3.put_object(Bucket=bucket, Key="before", Body=acknowledged)
    before = set(upstream.objects())
    watcher = _pause_when_an_upload_starts(upstream)
    try:
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="cut", Body=os.urandom(48 << 20))
        watcher.join()
        assert exc.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="before")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    finally:
        watcher.join()
        upstream.resume()
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="cut")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert set(upstream.objects()) == before                     # no whole or partial object
    assert s3.get_object(Bucket=bucket, Key="before")["Body"].read() == acknowledged


@pytest.mark.parametrize("blobs,env,expect", [
    ("s3://bkt/p@gopher://127.0.0.1:1", {}, (2, "upstream endpoint must be")),
    ("s3://bkt/p@http://AKID:HIDDENSECRET@127.0.0.1:1", {}, (2, "credentials do not belong")),
    ("s3://bkt/p@http://127.0.0.1:1", {}, (1, "VALLUM_BLOBS_ACCESS_KEY")),
    ("s3://bkt/p@http://127.0.0.1:1", {"VALLUM_BLOBS_ACCESS_KEY": "AK",
                                        "VALLUM_BLOBS_SECRET_KEY": "HIDDENSECRET",
                                        "VALLUM_BLOBS_ATTEMPTS": "1"}, (1, "HeadBucket failed")),
], ids=["bad-endpoint", "secret-in-url", "no-credentials", "unreachable"])
def test_bad_blob_settings_refuse_to_start(tmp_path, blobs, env, expect):
    """A bad --blobs value, missing credentials or an unreachable upstream: `vallum serve`
    exits with a one-line reason and never echoes the secret."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VALLUM_BLOBS")}
    done = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "d"),
                           "--address", "127.0.0.1:1", "--blobs", blobs],
                          env=clean | env, capture_output=True, text=True, timeout=120)
    code, reason = expect
    assert done.returncode == code, done.stderr
    assert reason in done.stderr and "Traceback" not in done.stderr
    assert "HIDDENSECRET" not in done.stderr.replace(blobs, "") + done.stdout


def test_kill_9_during_uploads_loses_nothing_acknowledged_and_the_sweep_only_orphans(upstream,
                                                                                       tmp_path):
    """kill -9 of a gateway amid PUTs, plus a stray blob and a stale multipart upload under
    its prefix; restarted with no grace, its start-up sweep removes the leftovers and every
    acknowledged object reads back."""
    prefix, data_dir = "kill9/", tmp_path / "data"
    env = upstream.env() | {"VALLUM_BLOBS_SWEEP_GRACE": "0"}
    first = start_server(data_dir, "--blobs", upstream.spec(prefix), env=env)
    try:
        first.client().create_bucket(Bucket="kill-nine")
    except BaseException:
        stop_server(first)
        raise
    acked = kill_amid_writes(first, "kill-nine", at_least=12, growth=40)
    raw = upstream.client()
    orphan = prefix + "0" * 32
    raw.put_object(Bucket=upstream.bucket, Key=orphan, Body=b"left by a crash")
    raw.create_multipart_upload(Bucket=upstream.bucket, Key=prefix + "1" * 32)
    second = start_server(data_dir, "--blobs", upstream.spec(prefix), env=env)
    try:
        s3 = second.client()
        for key, body in acked.items():
            assert s3.get_object(Bucket="kill-nine", Key=key)["Body"].read() == body, key
        # The sweep left exactly the blobs the metadata references.
        listed = s3.list_objects_v2(Bucket="kill-nine")["KeyCount"]
        stored = upstream.objects(prefix)
        assert orphan not in stored and len(stored) == listed >= len(acked)
        assert not raw.list_multipart_uploads(Bucket=upstream.bucket, Prefix=prefix).get("Uploads")
    finally:
        stop_server(second)
