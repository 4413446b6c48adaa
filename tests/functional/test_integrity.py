"""Rot on disk never answers 200: a blob that fails its integrity check before the status
line answers 500 InternalError (audited, counted, logged with request id, bucket and key);
one that fails later in a long stream is audited as a failed read with the bytes sent."""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.integrity import blob_files, flip, put, truncate
from tests.support.server import server_log, start_server, stop_server

SMALL = 300_000                    # > inline size: one blob, a few 64 KiB sealed chunks
LARGE = 3 * 1024 * 1024 + 12345    # several 1 MiB reads: a failure late in the body comes after the headers


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("needs the server's data directory")
    server = start_server(tmp_path_factory.mktemp("integrity") / "data")
    yield server
    stop_server(server)




def records(srv) -> list[dict]:
    log = Path(srv.data_dir) / "audit" / "audit.log"
    return [json.loads(x) for x in log.read_bytes().rstrip(b"\0").splitlines() if x.strip(b"\0")]


def refused(call) -> str:
    """The request id of a call that must answer 500 InternalError."""
    with pytest.raises(ClientError) as info:
        call()
    meta = info.value.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 500, info.value.response
    assert info.value.response["Error"]["Code"] == "InternalError"
    return meta["RequestId"]


def metric(srv, prefix: str) -> float:
    """The value of the one sample whose line starts with ``prefix`` (0 if absent)."""
    with urllib.request.urlopen(srv.endpoint + "/-/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return next((float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(prefix)), 0.0)


def failures(srv) -> dict[str, float]:
    with urllib.request.urlopen(srv.endpoint + "/-/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("vallum_blob_integrity_failures_total{"):
            name, value = line.rsplit(" ", 1)
            out[name.split('stage="')[1].split('"')[0]] = float(value)
    return out


def assert_failed_request(srv, bucket: str, key: str, request_id: str) -> None:
    """Audited as the 500 it was (not 200 with the full length), and logged with id and key."""
    rec = next(r for r in records(srv) if r.get("request_id") == request_id and r["type"] == "request")
    assert rec["status"] == 500 and rec["error"] == "InternalError"
    assert rec["bucket"] == bucket and rec["key"] == key
    assert rec["bytes_out"] < 1000                  # the error body, not the object
    lines = [x for x in server_log(Path(srv.data_dir)).read_text().splitlines() if request_id in x]
    assert any("integrity failure" in x and bucket in x and key in x for x in lines), lines


@pytest.fixture
def bucket(srv):
    s3 = srv.client()
    name = "rot-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("damage", ["flip-middle", "flip-header", "truncate-tail", "truncate-chunk"])
def test_damaged_small_blob_answers_500(srv, bucket, damage):
    s3 = srv.client()
    body = os.urandom(SMALL)
    path = put(srv, s3, bucket, "obj", body)
    size = path.stat().st_size
    {"flip-middle": lambda: flip(path, size // 2), "flip-header": lambda: flip(path, 9),
     "truncate-tail": lambda: truncate(path, 7), "truncate-chunk": lambda: truncate(path, 65536 + 16)}[damage]()
    before = failures(srv).get("before-headers", 0)
    rid = refused(lambda: s3.get_object(Bucket=bucket, Key="obj"))
    assert_failed_request(srv, bucket, "obj", rid)
    # A range that the damage does not touch still fails: the blob is not what was stored.
    if damage != "flip-middle":
        refused(lambda: s3.get_object(Bucket=bucket, Key="obj", Range="bytes=0-99"))
    assert failures(srv)["before-headers"] >= before + 1


def test_damaged_large_blob_first_chunk_and_ranges_answer_500(srv, bucket):
    s3 = srv.client()
    body = os.urandom(LARGE)
    path = put(srv, s3, bucket, "large", body)
    truncate(path, 1)
    rid = refused(lambda: s3.get_object(Bucket=bucket, Key="large"))
    assert_failed_request(srv, bucket, "large", rid)
    refused(lambda: s3.get_object(Bucket=bucket, Key="large", Range="bytes=100-200"))
    refused(lambda: s3.get_object(Bucket=bucket, Key="large", Range=f"bytes={LARGE - 50}-"))


def test_corruption_late_in_a_large_body_is_audited_as_a_failed_read(srv, bucket):
    s3 = srv.client()
    body = os.urandom(LARGE)
    path = put(srv, s3, bucket, "late", body)
    flip(path, path.stat().st_size - 100)            # the last sealed chunk
    # A range inside the damaged chunk fails before the status line.
    refused(lambda: s3.get_object(Bucket=bucket, Key="late", Range=f"bytes={LARGE - 200}-{LARGE - 1}"))
    # A range that ends before it is whole and authentic.
    got = s3.get_object(Bucket=bucket, Key="late", Range="bytes=0-1048575")["Body"].read()
    assert got == body[:1048576]
    before = failures(srv).get("during-body", 0)
    errors_before = metric(srv, 'vallum_s3_requests_total{operation="GetObject",status="500"}')
    resp = s3.get_object(Bucket=bucket, Key="late")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    received = b""
    with pytest.raises(Exception):  # noqa: B017,PT011 - botocore names a cut stream in several ways
        stream = resp["Body"]
        while chunk := stream.read(65536):
            received += chunk
        pytest.fail(f"got the whole body ({len(received)} bytes) from a corrupt blob")
    rid = resp["ResponseMetadata"]["RequestId"]
    failed = [r for r in records(srv) if r.get("request_id") == rid and r["type"] == "read_failed"]
    assert len(failed) == 1, "the cut read has no failure record"
    rec = failed[0]
    assert rec["status"] == 500 and rec["bucket"] == bucket and rec["key"] == "late"
    assert len(received) <= rec["bytes_out"] < LARGE and rec["bytes_expected"] == LARGE
    assert received == body[:len(received)]         # what was sent was authentic
    assert failures(srv)["during-body"] == before + 1
    # The request is counted (as the server error it was), not lost with the connection.
    assert metric(srv, 'vallum_s3_requests_total{operation="GetObject",status="500"}') == errors_before + 1
    lines = [x for x in server_log(Path(srv.data_dir)).read_text().splitlines() if rid in x]
    assert any("integrity failure" in x and bucket in x and "late" in x for x in lines), lines


def test_truncated_part_of_a_multipart_object(srv, bucket):
    s3 = srv.client()
    part1, part2 = os.urandom(5 * 1024 * 1024), os.urandom(300_000)
    before = blob_files(srv)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=part1)["ETag"]
    after_one = blob_files(srv)
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=2, Body=part2)["ETag"]
    second = (blob_files(srv) - after_one).pop()
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert len(blob_files(srv) - before) == 2
    truncate(second, 16)
    refused(lambda: s3.get_object(Bucket=bucket, Key="mp", PartNumber=2))
    refused(lambda: s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={len(part1)}-{len(part1) + 10}"))
    resp = s3.get_object(Bucket=bucket, Key="mp")    # part 1 is whole: the status line went out
    with pytest.raises(Exception):  # noqa: B017,PT011
        resp["Body"].read()
    rid = resp["ResponseMetadata"]["RequestId"]
    assert any(r.get("request_id") == rid and r["type"] == "read_failed" for r in records(srv))


def test_missing_blob_answers_500(srv, bucket):
    s3 = srv.client()
    path = put(srv, s3, bucket, "gone", os.urandom(SMALL))
    path.unlink()
    rid = refused(lambda: s3.get_object(Bucket=bucket, Key="gone"))
    assert_failed_request(srv, bucket, "gone", rid)


def test_corrupt_inline_body_answers_500(srv, bucket):
    s3 = srv.client()
    s3.put_object(Bucket=bucket, Key="tiny", Body=b"x" * 100)
    db = sqlite3.connect(Path(srv.data_dir) / "meta.sqlite3")
    try:
        (raw,) = db.execute("SELECT inline FROM versions WHERE bucket=? AND key=?", (bucket, "tiny")).fetchone()
        raw = bytearray(raw)
        raw[-5] ^= 1
        db.execute("UPDATE versions SET inline=? WHERE bucket=? AND key=?", (bytes(raw), bucket, "tiny"))
        db.commit()
    finally:
        db.close()
    rid = refused(lambda: s3.get_object(Bucket=bucket, Key="tiny"))
    assert_failed_request(srv, bucket, "tiny", rid)


def test_copy_from_a_corrupt_source_answers_500_and_names_the_request(srv, bucket):
    """Every path that reads a stored body goes through the same check (CopyObject,
    UploadPartCopy): the copy fails loudly, nothing corrupt is copied."""
    s3 = srv.client()
    path = put(srv, s3, bucket, "src", os.urandom(SMALL))
    truncate(path, 3)
    rid = refused(lambda: s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}))
    lines = [x for x in server_log(Path(srv.data_dir)).read_text().splitlines() if rid in x]
    assert any("integrity failure" in x and bucket in x for x in lines), lines
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="dst")
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp-dst")["UploadId"]
    refused(lambda: s3.upload_part_copy(Bucket=bucket, Key="mp-dst", UploadId=up, PartNumber=1,
                                        CopySource={"Bucket": bucket, "Key": "src"}))
