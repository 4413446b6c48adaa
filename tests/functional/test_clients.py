"""Other S3 clients against the server: the AWS CLI, the MinIO Python SDK and s3fs.

Each client has its own request shapes (awscli's transfer manager and sync, minio's own
signer and multipart streaming, s3fs's aiobotocore paging and ranged reads), so passing boto3
tests is not enough.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def composite_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


# --- awscli ---------------------------------------------------------------------------------

@pytest.fixture
def aws(server, tmp_path):
    """Run `python -m awscli ...` against the server with only our credentials in scope."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
               AWS_DEFAULT_REGION=server.region, AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "no-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url", server.endpoint],
                           env=env, capture_output=True, text=True, timeout=120)
        if check:
            assert p.returncode == 0, f"aws {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
        return p

    return run


def test_awscli_mb_cp_ls_rb(aws, s3, tmp_path):
    name = "cli-" + uuid.uuid4().hex[:16]
    aws("s3", "mb", f"s3://{name}")
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    small, big = data(1234, 1), data(12 * MiB + 5, 2)
    (tmp_path / "small.txt").write_bytes(small)
    (tmp_path / "big.bin").write_bytes(big)
    aws("s3", "cp", str(tmp_path / "small.txt"), f"s3://{name}/dir/small.txt")
    aws("s3", "cp", str(tmp_path / "big.bin"), f"s3://{name}/dir/big.bin")
    # awscli's defaults: 8 MiB threshold and 8 MiB parts -> a two-part upload.
    head = s3.head_object(Bucket=name, Key="dir/big.bin")
    assert head["ETag"] == composite_etag([big[:8 * MiB], big[8 * MiB:]])
    assert head["ContentLength"] == len(big)
    aws("s3", "cp", f"s3://{name}/dir/small.txt", str(tmp_path / "small.down"))
    aws("s3", "cp", f"s3://{name}/dir/big.bin", str(tmp_path / "big.down"))
    assert (tmp_path / "small.down").read_bytes() == small
    assert (tmp_path / "big.down").read_bytes() == big
    out = aws("s3", "ls", "--recursive", f"s3://{name}").stdout
    rows = sorted((line.split()[3], int(line.split()[2])) for line in out.strip().splitlines())
    assert rows == [("dir/big.bin", len(big)), ("dir/small.txt", len(small))]
    out = aws("s3", "ls", f"s3://{name}/").stdout
    assert "PRE dir/" in out
    missing = aws("s3", "cp", f"s3://{name}/nope", str(tmp_path / "nope"), check=False)
    assert missing.returncode != 0 and "404" in missing.stderr
    not_empty = aws("s3", "rb", f"s3://{name}", check=False)
    assert not_empty.returncode != 0 and "BucketNotEmpty" in not_empty.stderr
    aws("s3", "rb", "--force", f"s3://{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_awscli_sync_both_ways_and_rm_recursive(aws, s3, bucket, tmp_path):
    src = tmp_path / "src"
    files = {"a.txt": b"alpha", "sub/b.txt": b"bravo" * 100, "sub/deeper/c.bin": data(70_000, 3),
             "sub/deeper/d e.txt": b"space in name", "z.txt": b""}
    for rel, body in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(body)
    aws("s3", "sync", str(src), f"s3://{bucket}/tree")
    assert sorted(keys(s3, bucket)) == sorted(f"tree/{k}" for k in files)
    for rel, body in files.items():
        assert s3.get_object(Bucket=bucket, Key=f"tree/{rel}")["Body"].read() == body

    # A second sync uploads only what changed (different size -> re-uploaded).
    (src / "a.txt").write_bytes(b"alpha, longer now")
    (src / "new.txt").write_bytes(b"new file")
    out = aws("s3", "sync", str(src), f"s3://{bucket}/tree").stdout
    uploaded = sorted(line.split(" to ")[1].strip() for line in out.splitlines() if line.startswith("upload:"))
    assert uploaded == [f"s3://{bucket}/tree/a.txt", f"s3://{bucket}/tree/new.txt"]

    dst = tmp_path / "dst"
    aws("s3", "sync", f"s3://{bucket}/tree", str(dst))
    assert _tree(dst) == _tree(src)

    out = aws("s3", "ls", "--recursive", f"s3://{bucket}/tree/").stdout
    assert sorted(line.split(None, 3)[3] for line in out.strip().splitlines()) == \
        sorted(f"tree/{k}" for k in _tree(src))

    s3.put_object(Bucket=bucket, Key="keep/me", Body=b"x")
    aws("s3", "rm", "--recursive", f"s3://{bucket}/tree/")
    assert keys(s3, bucket) == ["keep/me"]


def test_awscli_s3api_put_get_head(aws, s3, bucket, tmp_path):
    body = data(5000, 4)
    (tmp_path / "in.bin").write_bytes(body)
    put = json.loads(aws("s3api", "put-object", "--bucket", bucket, "--key", "api/obj",
                         "--body", str(tmp_path / "in.bin"), "--content-type", "image/png",
                         "--metadata", "k1=v1").stdout)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "api/obj").stdout)
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {"k1": "v1"}
    assert head["ETag"] == put["ETag"]
    got = json.loads(aws("s3api", "get-object", "--bucket", bucket, "--key", "api/obj",
                         "--range", "bytes=10-99", str(tmp_path / "out.bin")).stdout)
    assert got["ContentRange"] == f"bytes 10-99/{len(body)}"
    assert (tmp_path / "out.bin").read_bytes() == body[10:100]
    missing = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr


# --- MinIO Python SDK -----------------------------------------------------------------------

@pytest.fixture
def mc(server):
    from minio import Minio

    u = urlsplit(server.endpoint)
    return Minio(f"{u.hostname}:{u.port}", access_key=server.access_key,
                 secret_key=server.secret_key, secure=False, region=server.region)


def test_minio_sdk(mc, s3, tmp_path):
    from minio.deleteobjects import DeleteObject
    from minio.error import S3Error

    name = "mc-" + uuid.uuid4().hex[:16]
    mc.make_bucket(name)
    try:
        assert mc.bucket_exists(name)
        small = data(3000, 5)
        r = mc.put_object(name, "m/small", io.BytesIO(small), len(small),
                          content_type="text/plain", metadata={"x-amz-meta-tag": "t1"})
        assert r.etag == hashlib.md5(small).hexdigest()
        # Unknown length: the SDK streams 5 MiB parts as a multipart upload.
        big = data(11 * MiB + 17, 6)
        mc.put_object(name, "m/stream", io.BytesIO(big), -1, part_size=5 * MiB)
        st = mc.stat_object(name, "m/stream")
        assert st.size == len(big)
        assert f'"{st.etag}"' == composite_etag([big[i:i + 5 * MiB] for i in range(0, len(big), 5 * MiB)])
        st = mc.stat_object(name, "m/small")
        assert st.size == len(small) and st.content_type == "text/plain"
        assert st.metadata.get("x-amz-meta-tag") == "t1"

        src = tmp_path / "f.bin"
        src.write_bytes(data(6 * MiB + 1, 7))
        mc.fput_object(name, "m/f/file.bin", str(src), part_size=5 * MiB)
        mc.fget_object(name, "m/f/file.bin", str(tmp_path / "f.down"))
        assert (tmp_path / "f.down").read_bytes() == src.read_bytes()

        resp = mc.get_object(name, "m/small", offset=100, length=50)
        try:
            assert resp.read() == small[100:150]
        finally:
            resp.close()
            resp.release_conn()

        listed = sorted(o.object_name for o in mc.list_objects(name, recursive=True))
        assert listed == ["m/f/file.bin", "m/small", "m/stream"]
        top = sorted(o.object_name for o in mc.list_objects(name, prefix="m/"))
        assert top == ["m/f/", "m/small", "m/stream"]

        url = mc.presigned_get_object(name, "m/small")
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.read() == small

        errors = list(mc.remove_objects(name, [DeleteObject(k) for k in listed]))
        assert errors == []
        assert list(mc.list_objects(name, recursive=True)) == []
        with pytest.raises(S3Error) as e:
            mc.stat_object(name, "m/small")
        assert e.value.code in ("NoSuchKey", "ResponseHeadersOnly")   # HEAD has no error body
    finally:
        for o in mc.list_objects(name, recursive=True):
            mc.remove_object(name, o.object_name)
        mc.remove_bucket(name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# --- s3fs -----------------------------------------------------------------------------------

@pytest.fixture
def fs(server):
    import s3fs

    return s3fs.S3FileSystem(key=server.access_key, secret=server.secret_key,
                             client_kwargs={"endpoint_url": server.endpoint,
                                            "region_name": server.region},
                             skip_instance_cache=True, use_listings_cache=False)


def test_s3fs(fs, s3, bucket):
    with fs.open(f"{bucket}/d/a.txt", "wb") as f:
        f.write(b"hello s3fs")
    big = data(12 * MiB + 3, 8)
    with fs.open(f"{bucket}/d/e/big.bin", "wb", block_size=5 * MiB) as f:
        for i in range(0, len(big), MiB):
            f.write(big[i:i + MiB])
    head = s3.head_object(Bucket=bucket, Key="d/e/big.bin")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].endswith('-3"')          # s3fs wrote 5 + 5 + 2 MiB parts

    with fs.open(f"{bucket}/d/a.txt", "rb") as f:
        assert f.read() == b"hello s3fs"
    with fs.open(f"{bucket}/d/e/big.bin", "rb", block_size=2 * MiB) as f:
        f.seek(5 * MiB - 7)
        assert f.read(100) == big[5 * MiB - 7:5 * MiB + 93]
    assert fs.cat_file(f"{bucket}/d/e/big.bin", start=10, end=2000) == big[10:2000]
    assert fs.cat_file(f"{bucket}/d/e/big.bin", start=-500) == big[-500:]

    assert sorted(fs.ls(f"{bucket}/d", detail=False)) == [f"{bucket}/d/a.txt", f"{bucket}/d/e"]
    info = fs.info(f"{bucket}/d/a.txt")
    assert info["size"] == 10 and info["type"] == "file"
    assert fs.info(f"{bucket}/d/e")["type"] == "directory"
    assert sorted(fs.find(f"{bucket}/d")) == [f"{bucket}/d/a.txt", f"{bucket}/d/e/big.bin"]
    assert fs.exists(f"{bucket}/d/a.txt") and not fs.exists(f"{bucket}/d/nope")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{bucket}/d/nope")

    fs.rm(f"{bucket}/d/a.txt")
    assert keys(s3, bucket) == ["d/e/big.bin"]
    fs.rm(f"{bucket}/d", recursive=True)
    assert keys(s3, bucket) == []
