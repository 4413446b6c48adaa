"""SSE-S3 headers (x-amz-server-side-encryption) as clients send and expect them, SSE-KMS
refused, and VALLUM_ENCRYPTION=off: no AES256 claimed, SSE-C bodies still encrypted."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.sse import (
    CHUNK,
    KEY_A,
    error,
    ssec,
    tls_server_fixture,
    with_headers,
)
from vallum.s3 import sse


def test_aes256_is_accepted_and_echoed(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"data", ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    # Every object is encrypted at rest, asked or not: S3 reports AES256 for all of them.
    plain = s3.put_object(Bucket=bucket, Key="p", Body=b"data")
    assert plain["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="k")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="p")["ServerSideEncryption"] == "AES256"
    copied = s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"},
                            ServerSideEncryption="AES256")
    assert copied["ServerSideEncryption"] == "AES256"
    # A copy onto itself that only asks for encryption is legal (it changes the encryption).
    s3.copy_object(Bucket=bucket, Key="p", CopySource={"Bucket": bucket, "Key": "p"},
                   ServerSideEncryption="AES256")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="p", CopySource={"Bucket": bucket, "Key": "p"})
    assert error(e)[1] == "InvalidRequest"


def test_multipart_echoes_aes256(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="AES256")
    assert up["ServerSideEncryption"] == "AES256"
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 10)
    assert part["ServerSideEncryption"] == "AES256"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["ServerSideEncryption"] == "AES256"


def test_invalid_and_kms_values(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="AES128")
    assert error(e) == (400, "InvalidArgument", sse.UNSUPPORTED_METHOD)
    assert e.value.response["Error"]["ArgumentName"] == "x-amz-server-side-encryption"
    for value in ("aws:kms", "aws:kms:dsse"):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption=value)
        assert error(e) == (501, "NotImplemented", sse.KMS_NOT_IMPLEMENTED)
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(Bucket=bucket, Key="k", ServerSideEncryption=value)
        assert error(e)[:2] == (501, "NotImplemented")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", SSEKMSKeyId="alias/x")
    assert error(e) == (400, "InvalidArgument", sse.KMS_WITHOUT_KMS)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert error(e)[0] == 404                       # nothing was stored


def test_header_refused_on_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    undo = with_headers(s3, "GetObject", {"x-amz-server-side-encryption": "AES256"})
    try:
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="k")
    finally:
        undo()
    assert error(e) == (400, "InvalidArgument", sse.NOT_ON_READ)


# --- VALLUM_ENCRYPTION=off (a benchmark switch) --------------------------------------------
@pytest.fixture(scope="module")
def plain_tls(tmp_path_factory):
    yield from tls_server_fixture(tmp_path_factory, "ssec-off", {"VALLUM_ENCRYPTION": "off"})


def test_encryption_off_claims_nothing_but_sse_c_still_encrypts(plain_tls):
    s3 = plain_tls.client()
    name = "off-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    put = s3.put_object(Bucket=name, Key="plain", Body=b"x", ServerSideEncryption="AES256")
    assert "ServerSideEncryption" not in put               # not encrypted: not claimed
    assert "ServerSideEncryption" not in s3.head_object(Bucket=name, Key="plain")
    markers = {k: b"MARK-" + k.encode() + b"-" + uuid.uuid4().hex.encode() for k in ("clear", "inline", "blob")}
    s3.put_object(Bucket=name, Key="clear", Body=markers["clear"] * 3)
    s3.put_object(Bucket=name, Key="inline", Body=markers["inline"] * 3, **ssec(KEY_A))
    big = markers["blob"] * (2 * CHUNK // len(markers["blob"]))
    s3.put_object(Bucket=name, Key="blob", Body=big, **ssec(KEY_A))
    assert s3.get_object(Bucket=name, Key="blob", **ssec(KEY_A))["Body"].read() == big
    assert s3.get_object(Bucket=name, Key="blob", Range=f"bytes={CHUNK - 2}-{CHUNK + 2}",
                         **ssec(KEY_A))["Body"].read() == big[CHUNK - 2:CHUNK + 3]
    assert s3.get_object(Bucket=name, Key="inline", **ssec(KEY_A))["Body"].read() == markers["inline"] * 3
    head = s3.head_object(Bucket=name, Key="blob", **ssec(KEY_A))
    assert head["SSECustomerAlgorithm"] == "AES256" and "ServerSideEncryption" not in head
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=name, Key="blob")
    assert error(e)[0] == 400
    found = {k: False for k in markers}
    for path in plain_tls.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for k, m in markers.items():
                found[k] = found[k] or m in data
    # The check can see plaintext (the clear object is on disk in clear), and sees no SSE-C one.
    assert found == {"clear": True, "inline": False, "blob": False}
