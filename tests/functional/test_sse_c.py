"""SSE-C (customer-provided keys) end to end with boto3 over TLS, as AWS S3 behaves:
PUT/GET/HEAD, ranges at chunk boundaries, CopyObject between keys, multipart with part
copies and partNumber reads, errors for missing/wrong/malformed keys and plain HTTP, and
the key never reaching the data directory, the server log or the audit log."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.sse import (
    CHUNK,
    KEY_A,
    KEY_B,
    copy_ssec,
    error,
    key_md5,
    ssec,
    tls_server_fixture,
    with_headers,
)
from vallum.s3 import sse


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    yield from tls_server_fixture(tmp_path_factory, "ssec")


@pytest.fixture(scope="module")
def s3s(tls):
    return tls.client()


@pytest.fixture
def bkt(s3s):
    name = "ssec-" + uuid.uuid4().hex[:16]
    s3s.create_bucket(Bucket=name)
    return name



# --- PUT / GET / HEAD ----------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 100, CHUNK * 3 + 17])
def test_put_get_head_round_trip(s3s, bkt, size):
    body = os.urandom(size)
    put = s3s.put_object(Bucket=bkt, Key="k", Body=body, **ssec(KEY_A))
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == key_md5(KEY_A)
    assert "ServerSideEncryption" not in put
    etag = put["ETag"].strip('"')
    assert etag != hashlib.md5(body).hexdigest()          # AWS: not the plaintext MD5
    got = s3s.get_object(Bucket=bkt, Key="k", **ssec(KEY_A))
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]                      # stable
    assert got["SSECustomerKeyMD5"] == key_md5(KEY_A)
    head = s3s.head_object(Bucket=bkt, Key="k", **ssec(KEY_A))
    assert head["ContentLength"] == size and head["ETag"] == put["ETag"]
    assert head["SSECustomerAlgorithm"] == "AES256"
    # Conditions work on the opaque ETag.
    assert s3s.get_object(Bucket=bkt, Key="k", IfMatch=put["ETag"], **ssec(KEY_A))["Body"].read() == body


@pytest.mark.parametrize("size", [100, CHUNK * 2 + 5])
def test_missing_and_wrong_key(s3s, bkt, size):
    s3s.put_object(Bucket=bkt, Key="k", Body=os.urandom(size), **ssec(KEY_A))
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="k")
    assert error(e) == (400, "InvalidRequest", sse.KEY_REQUIRED)
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="k", **ssec(KEY_B))
    assert error(e)[:2] == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3s.head_object(Bucket=bkt, Key="k")
    assert error(e)[0] == 400
    with pytest.raises(ClientError) as e:
        s3s.head_object(Bucket=bkt, Key="k", **ssec(KEY_B))
    assert error(e)[0] == 403
    with pytest.raises(ClientError) as e:       # range reads too
        s3s.get_object(Bucket=bkt, Key="k", Range="bytes=0-9", **ssec(KEY_B))
    assert error(e)[0] == 403
    # The key on an object that was not written with one: AWS refuses it.
    s3s.put_object(Bucket=bkt, Key="plain", Body=b"plain")
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="plain", **ssec(KEY_A))
    assert error(e) == (400, "InvalidRequest", sse.NOT_APPLICABLE)


def test_overwrite_with_another_key(s3s, bkt):
    s3s.put_object(Bucket=bkt, Key="k", Body=b"one", **ssec(KEY_A))
    s3s.put_object(Bucket=bkt, Key="k", Body=b"two", **ssec(KEY_B))
    assert s3s.get_object(Bucket=bkt, Key="k", **ssec(KEY_B))["Body"].read() == b"two"
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="k", **ssec(KEY_A))
    assert error(e)[0] == 403


def test_ranges_at_chunk_boundaries(s3s, bkt):
    body = os.urandom(CHUNK * 3 + 100)
    s3s.put_object(Bucket=bkt, Key="big", Body=body, **ssec(KEY_A))
    small = os.urandom(1000)
    s3s.put_object(Bucket=bkt, Key="small", Body=small, **ssec(KEY_A))
    n = len(body)
    cases = [(0, 0), (0, CHUNK - 1), (CHUNK - 1, CHUNK), (CHUNK, CHUNK), (CHUNK - 1, 2 * CHUNK),
             (2 * CHUNK - 1, 2 * CHUNK + 1), (CHUNK + 1, 3 * CHUNK - 1), (3 * CHUNK, n - 1),
             (n - 1, n - 1), (5, n - 1)]
    for lo, hi in cases:
        got = s3s.get_object(Bucket=bkt, Key="big", Range=f"bytes={lo}-{hi}", **ssec(KEY_A))
        assert got["Body"].read() == body[lo:hi + 1], (lo, hi)
        assert got["ContentRange"] == f"bytes {lo}-{hi}/{n}"
    assert s3s.get_object(Bucket=bkt, Key="big", Range="bytes=-70000",
                          **ssec(KEY_A))["Body"].read() == body[-70000:]
    assert s3s.get_object(Bucket=bkt, Key="big", Range=f"bytes={2 * CHUNK}-",
                          **ssec(KEY_A))["Body"].read() == body[2 * CHUNK:]
    assert s3s.get_object(Bucket=bkt, Key="small", Range="bytes=10-19",
                          **ssec(KEY_A))["Body"].read() == small[10:20]


# --- header errors, as AWS answers them ---------------------------------------------------
def _put_error(s3s, bkt, params: dict, set_=None, drop=()) -> tuple[int, str, str]:
    undo = with_headers(s3s, "PutObject", set_, drop)
    try:
        with pytest.raises(ClientError) as e:
            s3s.put_object(Bucket=bkt, Key="bad", Body=b"x", **params)
    finally:
        undo()
    return error(e)


def test_header_errors(s3s, bkt):
    b64 = base64.b64encode(KEY_A).decode()
    p = sse.PREFIX
    assert _put_error(s3s, bkt, ssec(KEY_A), drop=(p + "algorithm",)) == (400, "InvalidArgument", sse.BAD_ALGORITHM)
    assert _put_error(s3s, bkt, ssec(KEY_A), set_={p + "algorithm": "AES128"}) == \
        (400, "InvalidArgument", sse.BAD_ALGORITHM)
    assert _put_error(s3s, bkt, ssec(KEY_A), drop=(p + "key",)) == (400, "InvalidArgument", sse.MISSING_KEY)
    short = os.urandom(16)
    assert _put_error(s3s, bkt, ssec(short)) == (400, "InvalidArgument", sse.BAD_KEY)
    assert _put_error(s3s, bkt, ssec(KEY_A), drop=(p + "key-MD5",)) == (400, "InvalidArgument", sse.MISSING_MD5)
    assert _put_error(s3s, bkt, {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b64,
                                 "SSECustomerKeyMD5": key_md5(KEY_B)}) == \
        (400, "InvalidArgument", sse.MD5_MISMATCH)
    assert _put_error(s3s, bkt, {**ssec(KEY_A), "ServerSideEncryption": "AES256"}) == \
        (400, "InvalidArgument", sse.INCOMPATIBLE)
    with pytest.raises(ClientError) as e:
        s3s.head_object(Bucket=bkt, Key="bad")
    assert error(e)[0] == 404                               # nothing was stored


def test_plain_http_is_refused(server, s3):
    name = "ssec-http-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    try:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=name, Key="k", Body=b"x", **ssec(KEY_A))
        assert error(e) == (400, "InvalidRequest", sse.INSECURE)
        s3.put_object(Bucket=name, Key="k", Body=b"x")
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=name, Key="k", **ssec(KEY_A))
        assert error(e) == (400, "InvalidRequest", sse.INSECURE)
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(Bucket=name, Key="m", **ssec(KEY_A))
        assert error(e)[:2] == (400, "InvalidRequest")
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=name, Key="c", CopySource={"Bucket": name, "Key": "k"}, **copy_ssec(KEY_A))
        assert error(e) == (400, "InvalidRequest", sse.INSECURE)
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == ["k"]
    finally:
        s3.delete_object(Bucket=name, Key="k")
        s3.delete_bucket(Bucket=name)


# --- CopyObject ----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [300, CHUNK * 2 + 9])
def test_copy_between_keys(s3s, bkt, size):
    body = os.urandom(size)
    s3s.put_object(Bucket=bkt, Key="src", Body=body, **ssec(KEY_A))
    src = {"Bucket": bkt, "Key": "src"}
    with pytest.raises(ClientError) as e:                   # no source key
        s3s.copy_object(Bucket=bkt, Key="dst", CopySource=src)
    assert error(e) == (400, "InvalidRequest", sse.KEY_REQUIRED)
    with pytest.raises(ClientError) as e:                   # wrong source key
        s3s.copy_object(Bucket=bkt, Key="dst", CopySource=src, **copy_ssec(KEY_B))
    assert error(e)[:2] == (403, "AccessDenied")
    # SSE-C(A) -> SSE-C(B)
    out = s3s.copy_object(Bucket=bkt, Key="dst", CopySource=src, **copy_ssec(KEY_A), **ssec(KEY_B))
    assert out["SSECustomerKeyMD5"] == key_md5(KEY_B)
    assert s3s.get_object(Bucket=bkt, Key="dst", **ssec(KEY_B))["Body"].read() == body
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="dst", **ssec(KEY_A))
    assert error(e)[0] == 403
    # SSE-C(A) -> plain: a real MD5 ETag again
    plain = s3s.copy_object(Bucket=bkt, Key="plain", CopySource=src, **copy_ssec(KEY_A))
    assert plain["CopyObjectResult"]["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    assert s3s.get_object(Bucket=bkt, Key="plain")["Body"].read() == body
    # plain -> SSE-C(B)
    s3s.copy_object(Bucket=bkt, Key="again", CopySource={"Bucket": bkt, "Key": "plain"}, **ssec(KEY_B))
    assert s3s.get_object(Bucket=bkt, Key="again", **ssec(KEY_B))["Body"].read() == body
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="again")
    assert error(e)[0] == 400
    # A source key on a source that has none is refused.
    with pytest.raises(ClientError) as e:
        s3s.copy_object(Bucket=bkt, Key="x", CopySource={"Bucket": bkt, "Key": "plain"}, **copy_ssec(KEY_A))
    assert error(e) == (400, "InvalidRequest", sse.NOT_APPLICABLE)


def test_copy_in_place_rotates_the_key(s3s, bkt):
    body = os.urandom(CHUNK + 1)
    s3s.put_object(Bucket=bkt, Key="k", Body=body, Metadata={"m": "1"}, **ssec(KEY_A))
    s3s.copy_object(Bucket=bkt, Key="k", CopySource={"Bucket": bkt, "Key": "k"},
                    **copy_ssec(KEY_A), **ssec(KEY_B))
    got = s3s.get_object(Bucket=bkt, Key="k", **ssec(KEY_B))
    assert got["Body"].read() == body and got["Metadata"] == {"m": "1"}
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="k", **ssec(KEY_A))
    assert error(e)[0] == 403


# --- multipart -----------------------------------------------------------------------------
def test_multipart_with_part_copy_and_part_reads(s3s, bkt):
    mib = 1024 * 1024
    p1, p2 = os.urandom(5 * mib), os.urandom(5 * mib + 123)
    copied = os.urandom(3 * CHUNK + 7)
    s3s.put_object(Bucket=bkt, Key="copy-src", Body=copied, **ssec(KEY_B))
    up = s3s.create_multipart_upload(Bucket=bkt, Key="mp", **ssec(KEY_A))
    assert up["SSECustomerKeyMD5"] == key_md5(KEY_A)
    uid = up["UploadId"]
    with pytest.raises(ClientError) as e:               # a part without the key
        s3s.upload_part(Bucket=bkt, Key="mp", UploadId=uid, PartNumber=1, Body=p1)
    assert error(e) == (400, "InvalidRequest", sse.PART_KEY_REQUIRED)
    with pytest.raises(ClientError) as e:               # a part under another key
        s3s.upload_part(Bucket=bkt, Key="mp", UploadId=uid, PartNumber=1, Body=p1, **ssec(KEY_B))
    assert error(e) == (400, "InvalidArgument", sse.PART_KEY_MISMATCH)
    r1 = s3s.upload_part(Bucket=bkt, Key="mp", UploadId=uid, PartNumber=1, Body=p1, **ssec(KEY_A))
    assert r1["SSECustomerKeyMD5"] == key_md5(KEY_A)
    assert r1["ETag"].strip('"') != hashlib.md5(p1).hexdigest()
    r2 = s3s.upload_part(Bucket=bkt, Key="mp", UploadId=uid, PartNumber=2, Body=p2, **ssec(KEY_A))
    with pytest.raises(ClientError) as e:               # part copy without the source key
        s3s.upload_part_copy(Bucket=bkt, Key="mp", UploadId=uid, PartNumber=3,
                             CopySource={"Bucket": bkt, "Key": "copy-src"}, **ssec(KEY_A))
    assert error(e) == (400, "InvalidRequest", sse.KEY_REQUIRED)
    r3 = s3s.upload_part_copy(Bucket=bkt, Key="mp", UploadId=uid, PartNumber=3,
                              CopySource={"Bucket": bkt, "Key": "copy-src"},
                              CopySourceRange=f"bytes={CHUNK - 1}-{3 * CHUNK}",
                              **copy_ssec(KEY_B), **ssec(KEY_A))
    part3 = copied[CHUNK - 1:3 * CHUNK + 1]
    parts = [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]},
             {"PartNumber": 3, "ETag": r3["CopyPartResult"]["ETag"]}]
    with pytest.raises(ClientError) as e:               # Complete with another key
        s3s.complete_multipart_upload(Bucket=bkt, Key="mp", UploadId=uid,
                                      MultipartUpload={"Parts": parts}, **ssec(KEY_B))
    assert error(e)[0] == 400
    done = s3s.complete_multipart_upload(Bucket=bkt, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts})
    assert done["ETag"].endswith('-3"')
    whole = p1 + p2 + part3
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="mp")
    assert error(e)[0] == 400
    with pytest.raises(ClientError) as e:
        s3s.get_object(Bucket=bkt, Key="mp", PartNumber=2, **ssec(KEY_B))
    assert error(e)[0] == 403
    assert s3s.get_object(Bucket=bkt, Key="mp", **ssec(KEY_A))["Body"].read() == whole
    assert s3s.get_object(Bucket=bkt, Key="mp", PartNumber=2, **ssec(KEY_A))["Body"].read() == p2
    got3 = s3s.get_object(Bucket=bkt, Key="mp", PartNumber=3, **ssec(KEY_A))
    assert got3["Body"].read() == part3 and got3["PartsCount"] == 3
    assert s3s.head_object(Bucket=bkt, Key="mp", PartNumber=1, **ssec(KEY_A))["ContentLength"] == len(p1)
    lo, hi = len(p1) - CHUNK - 3, len(p1) + len(p2) + 10      # across both part boundaries
    got = s3s.get_object(Bucket=bkt, Key="mp", Range=f"bytes={lo}-{hi}", **ssec(KEY_A))["Body"].read()
    assert got == whole[lo:hi + 1]
    # A copy of the multipart SSE-C object under another key.
    s3s.copy_object(Bucket=bkt, Key="mp-copy", CopySource={"Bucket": bkt, "Key": "mp"},
                    **copy_ssec(KEY_A), **ssec(KEY_B))
    assert s3s.get_object(Bucket=bkt, Key="mp-copy", **ssec(KEY_B))["Body"].read() == whole


def test_plain_upload_refuses_part_keys(s3s, bkt):
    uid = s3s.create_multipart_upload(Bucket=bkt, Key="mp")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3s.upload_part(Bucket=bkt, Key="mp", UploadId=uid, PartNumber=1, Body=b"x", **ssec(KEY_A))
    assert error(e)[:2] == (400, "InvalidArgument")
    s3s.abort_multipart_upload(Bucket=bkt, Key="mp", UploadId=uid)


# --- the key is never kept -----------------------------------------------------------------
def _files(root: Path):
    for path in root.rglob("*"):
        if path.is_file():
            yield path


def test_key_never_reaches_disk_logs_or_audit(tls, s3s, bkt):
    key = os.urandom(32)
    marker = b"SSE-C-PLAINTEXT-" + uuid.uuid4().hex.encode()
    small, large = marker * 4, marker * (3 * CHUNK // len(marker))
    s3s.put_object(Bucket=bkt, Key="small", Body=small, **ssec(key))
    s3s.put_object(Bucket=bkt, Key="large", Body=large, **ssec(key))
    up = s3s.create_multipart_upload(Bucket=bkt, Key="mp", **ssec(key))
    r = s3s.upload_part(Bucket=bkt, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=large, **ssec(key))
    s3s.complete_multipart_upload(Bucket=bkt, Key="mp", UploadId=up["UploadId"],
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]})
    s3s.copy_object(Bucket=bkt, Key="copy", CopySource={"Bucket": bkt, "Key": "large"},
                    **copy_ssec(key), **ssec(key))
    with pytest.raises(ClientError):
        s3s.get_object(Bucket=bkt, Key="small", **ssec(os.urandom(32)))
    for k in ("small", "large", "mp", "copy"):
        assert marker in s3s.get_object(Bucket=bkt, Key=k, **ssec(key))["Body"].read()
    needles = {"raw key": key, "base64 key": base64.b64encode(key),
               "hex key": key.hex().encode(), "plaintext": marker}
    checked = 0
    for path in [*_files(tls.data_dir), tls.log_path]:
        data = path.read_bytes()
        checked += 1
        for what, needle in needles.items():
            assert needle not in data, f"{what} found in {path}"
    assert checked > 3
    assert (tls.data_dir / "audit").exists()
