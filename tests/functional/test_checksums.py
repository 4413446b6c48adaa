"""Integrity checks on upload: Content-MD5, x-amz-checksum-* headers and trailers, multipart checksums.

Expected values are computed here with independent code (zlib, crc32c, hashlib, awscrt),
never read back from the server. Over plain http botocore sends flexible checksums as
headers; the aws-chunked trailer form (what SDKs send over https) is built by hand below.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import random
import zlib
from urllib.parse import urlsplit

import crc32c as crc32c_lib
import pytest
from awscrt import checksums as crt
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

MiB = 1024 * 1024

# Raw checksum bytes (big-endian for CRCs) for each algorithm S3 supports.
RAW = {
    "CRC32": lambda b: zlib.crc32(b).to_bytes(4, "big"),
    "CRC32C": lambda b: crc32c_lib.crc32c(b).to_bytes(4, "big"),
    "CRC64NVME": lambda b: crt.crc64nvme(b).to_bytes(8, "big"),
    "SHA1": lambda b: hashlib.sha1(b).digest(),
    "SHA256": lambda b: hashlib.sha256(b).digest(),
}
ALGS = list(RAW)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def checksum(alg: str, body: bytes) -> str:
    return b64(RAW[alg](body))


def data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def err(exc: pytest.ExceptionInfo) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def assert_absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# --- Content-MD5 ---------------------------------------------------------------------------

def test_content_md5_good(s3, bucket):
    body = b"integrity matters" * 100
    r = s3.put_object(Bucket=bucket, Key="md5", Body=body,
                      ContentMD5=b64(hashlib.md5(body).digest()))
    assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == body


def test_content_md5_mismatch_is_bad_digest(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"what was sent",
                      ContentMD5=b64(hashlib.md5(b"something else").digest()))
    assert err(e) == ("BadDigest", 400)
    assert_absent(s3, bucket, "md5")


@pytest.mark.parametrize("value", ["not base64 at all!", b64(b"short"), b64(b"x" * 20)])
def test_content_md5_malformed_is_invalid_digest(s3, bucket, value):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=value)
    assert err(e) == ("InvalidDigest", 400)
    assert_absent(s3, bucket, "md5")


def test_content_md5_on_upload_part(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"part",
                       ContentMD5=b64(hashlib.md5(b"trap").digest()))
    assert err(e) == ("BadDigest", 400)
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid).get("Parts", []) == []


# --- flexible checksums on PutObject --------------------------------------------------------

@pytest.mark.parametrize("alg", ALGS)
def test_sdk_computed_checksum_is_stored_and_returned(s3, bucket, alg):
    body = data(70_001, 1)
    want = checksum(alg, body)
    r = s3.put_object(Bucket=bucket, Key=f"c-{alg}", Body=body, ChecksumAlgorithm=alg)
    assert r[f"Checksum{alg}"] == want
    head = s3.head_object(Bucket=bucket, Key=f"c-{alg}", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == want
    assert head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key=f"c-{alg}", ChecksumMode="ENABLED")
    assert got[f"Checksum{alg}"] == want
    assert got["Body"].read() == body


@pytest.mark.parametrize("alg", ALGS)
def test_precomputed_checksum_good_and_bad(s3, bucket, alg):
    body = data(10_000, 2)
    r = s3.put_object(Bucket=bucket, Key="pre", Body=body, **{f"Checksum{alg}": checksum(alg, body)})
    assert r[f"Checksum{alg}"] == checksum(alg, body)
    # A wrong value: AWS answers BadDigest ("The CRC32 you specified did not match the
    # calculated checksum.") and keeps the previous object.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="pre", Body=b"other bytes",
                      **{f"Checksum{alg}": checksum(alg, body)})
    assert err(e) == ("BadDigest", 400)
    assert s3.get_object(Bucket=bucket, Key="pre")["Body"].read() == body
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="never", Body=body,
                      **{f"Checksum{alg}": checksum(alg, b"x")})
    assert err(e) == ("BadDigest", 400)
    assert_absent(s3, bucket, "never")


def test_checksum_survives_copy(s3, bucket):
    body = data(3000, 3)
    s3.put_object(Bucket=bucket, Key="src", Body=body, ChecksumAlgorithm="SHA256")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   ChecksumAlgorithm="SHA256")
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == checksum("SHA256", body)


# --- aws-chunked trailing checksums, sent by hand -------------------------------------------

def aws_chunked(body: bytes, trailer_name: str, trailer_value: str, chunk: int = 16384) -> bytes:
    """The unsigned aws-chunked encoding SDKs use: hex-size chunks, a 0 chunk, then the trailer."""
    out = bytearray()
    for i in range(0, len(body), chunk):
        piece = body[i:i + chunk]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n" + f"{trailer_name}:{trailer_value}\r\n\r\n".encode()
    return bytes(out)


def signed_headers(server, method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
    url = server.endpoint + path
    req = AWSRequest(method=method, url=url, headers=headers, data=b"")
    SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    return dict(req.headers.items())


def trailer_put(server, bucket: str, key: str, body: bytes, alg: str, value: str,
                transfer_chunked: bool) -> tuple[int, bytes]:
    name = f"x-amz-checksum-{alg.lower()}"
    headers = {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "content-encoding": "aws-chunked",
        "x-amz-trailer": name,
        "x-amz-decoded-content-length": str(len(body)),
        "x-amz-sdk-checksum-algorithm": alg,
    }
    headers = signed_headers(server, "PUT", f"/{bucket}/{key}", headers)
    payload = aws_chunked(body, name, value)
    u = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        if transfer_chunked:
            # botocore's trailer mode: HTTP chunked framing around the aws-chunked body.
            parts = [payload[i:i + 7000] for i in range(0, len(payload), 7000)]
            conn.request("PUT", f"/{bucket}/{key}", body=iter(parts), headers=headers,
                         encode_chunked=True)
        else:
            headers["Content-Length"] = str(len(payload))
            conn.request("PUT", f"/{bucket}/{key}", body=payload, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("transfer_chunked", [False, True], ids=["content-length", "te-chunked"])
@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA256", "CRC64NVME"])
def test_trailing_checksum_stored(server, s3, bucket, alg, transfer_chunked):
    body = data(50_000, 4)
    status, text = trailer_put(server, bucket, "tr", body, alg, checksum(alg, body), transfer_chunked)
    assert status == 200, text
    head = s3.head_object(Bucket=bucket, Key="tr", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == checksum(alg, body)
    assert head["ContentLength"] == len(body)
    got = s3.get_object(Bucket=bucket, Key="tr")
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


@pytest.mark.parametrize("transfer_chunked", [False, True], ids=["content-length", "te-chunked"])
def test_trailing_checksum_mismatch_rejected(server, s3, bucket, transfer_chunked):
    body = data(40_000, 5)
    status, text = trailer_put(server, bucket, "bad-tr", body, "CRC32", checksum("CRC32", b"no"),
                               transfer_chunked)
    assert status == 400, text
    assert b"<Code>BadDigest</Code>" in text
    assert_absent(s3, bucket, "bad-tr")


# --- multipart ------------------------------------------------------------------------------

def _mp_parts() -> list[bytes]:
    return [data(5 * MiB, 6), data(777_777, 7)]


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_multipart_composite_checksum(s3, bucket, alg):
    parts = _mp_parts()
    uid = s3.create_multipart_upload(Bucket=bucket, Key="comp", ChecksumAlgorithm=alg,
                                     ChecksumType="COMPOSITE")["UploadId"]
    done = []
    for n, body in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="comp", UploadId=uid, PartNumber=n, Body=body,
                           ChecksumAlgorithm=alg)
        assert r[f"Checksum{alg}"] == checksum(alg, body)
        done.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{alg}": r[f"Checksum{alg}"]})
    listed = s3.list_parts(Bucket=bucket, Key="comp", UploadId=uid)["Parts"]
    assert [p[f"Checksum{alg}"] for p in listed] == [checksum(alg, b) for b in parts]
    want = b64(RAW[alg](b"".join(RAW[alg](b) for b in parts))) + f"-{len(parts)}"
    out = s3.complete_multipart_upload(Bucket=bucket, Key="comp", UploadId=uid,
                                       MultipartUpload={"Parts": done})
    assert out[f"Checksum{alg}"] == want
    head = s3.head_object(Bucket=bucket, Key="comp", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == want
    assert head["ChecksumType"] == "COMPOSITE"
    assert s3.get_object(Bucket=bucket, Key="comp")["Body"].read() == b"".join(parts)


def test_multipart_composite_wrong_part_checksum_in_complete(s3, bucket):
    parts = _mp_parts()
    uid = s3.create_multipart_upload(Bucket=bucket, Key="comp", ChecksumAlgorithm="CRC32")["UploadId"]
    done = []
    for n, body in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="comp", UploadId=uid, PartNumber=n, Body=body,
                           ChecksumAlgorithm="CRC32")
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    done[1]["ChecksumCRC32"] = checksum("CRC32", b"not the part")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="comp", UploadId=uid,
                                     MultipartUpload={"Parts": done})
    assert err(e) == ("InvalidPart", 400)
    assert_absent(s3, bucket, "comp")


def test_upload_part_wrong_checksum_is_bad_digest(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="p", ChecksumAlgorithm="SHA256")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="p", UploadId=uid, PartNumber=1, Body=b"part one",
                       ChecksumSHA256=checksum("SHA256", b"part two"))
    assert err(e) == ("BadDigest", 400)
    assert s3.list_parts(Bucket=bucket, Key="p", UploadId=uid).get("Parts", []) == []


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "CRC64NVME"])
def test_multipart_full_object_checksum(s3, bucket, alg):
    parts = _mp_parts()
    whole = b"".join(parts)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="full", ChecksumAlgorithm=alg,
                                     ChecksumType="FULL_OBJECT")["UploadId"]
    done = []
    for n, body in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="full", UploadId=uid, PartNumber=n, Body=body,
                           ChecksumAlgorithm=alg)
        assert r[f"Checksum{alg}"] == checksum(alg, body)
        done.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{alg}": r[f"Checksum{alg}"]})
    out = s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=uid,
                                       MultipartUpload={"Parts": done},
                                       ChecksumType="FULL_OBJECT",
                                       **{f"Checksum{alg}": checksum(alg, whole)})
    assert out[f"Checksum{alg}"] == checksum(alg, whole)
    head = s3.head_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == checksum(alg, whole)
    assert head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert got["Body"].read() == whole


def test_multipart_full_object_wrong_whole_checksum(s3, bucket):
    parts = _mp_parts()
    uid = s3.create_multipart_upload(Bucket=bucket, Key="full", ChecksumAlgorithm="CRC32C",
                                     ChecksumType="FULL_OBJECT")["UploadId"]
    done = []
    for n, body in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key="full", UploadId=uid, PartNumber=n, Body=body,
                           ChecksumAlgorithm="CRC32C")
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32C": r["ChecksumCRC32C"]})
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=uid,
                                     MultipartUpload={"Parts": done}, ChecksumType="FULL_OBJECT",
                                     ChecksumCRC32C=checksum("CRC32C", b"not the object"))
    assert err(e) == ("BadDigest", 400)
    assert_absent(s3, bucket, "full")
