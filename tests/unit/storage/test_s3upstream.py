"""The upstream S3 blob store beyond the shared contract: its --blobs value, credentials,
ranged reads that fetch only their bytes, multipart, and a sweep that spares young blobs.
Runs against a real SeaweedFS (one per module)."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest

from tests.support.seaweed import seaweed
from vallum.security import setup as security_setup
from vallum.server.config import load
from vallum.storage.base import BlobMissing, StorageUnavailable
from vallum.storage.s3upstream import (
    PART_SIZE,
    S3UpstreamBlobStore,
    from_spec,
    load_credentials,
    parse_spec,
)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with seaweed(tmp_path_factory.mktemp("seaweed")) as up:
        yield up


def fresh_prefix() -> str:
    return f"u{secrets.token_hex(4)}/"


# --- the --blobs value and credentials (no upstream needed) ---------------------------------
def test_spec_parses_bucket_prefix_and_endpoint():
    spec = parse_spec("s3://my-bucket/a/b@https://ceph.example:7480")
    assert (spec.bucket, spec.prefix, spec.endpoint) == ("my-bucket", "a/b/", "https://ceph.example:7480")
    assert parse_spec("s3://bkt@http://127.0.0.1:8333").prefix == ""
    assert str(parse_spec(str(spec))) == str(spec)


@pytest.mark.parametrize("bad", [
    "my-bucket/p@http://h", "s3://my-bucket/p", "s3://My_Bucket/p@http://h", "s3://ab/p@http://h",
    "s3://bkt/../x@http://h", "s3://bkt//x@http://h", "s3://bkt/a/./b@http://h",
    "s3://bkt/p@ftp://h", "s3://bkt/p@http://", "s3://bkt/p@http://h/path", "s3://bkt/p@http://h?x=1",
    "s3://bkt/p@http://h:99999", "s3://bkt/p q@http://h", "s3://bkt/p\n@http://h",
], ids=lambda b: b.encode().hex())
def test_malformed_specs_are_refused(bad):
    with pytest.raises(ValueError):
        parse_spec(bad)


def test_credentials_in_the_endpoint_are_refused_without_echoing_them():
    with pytest.raises(ValueError) as exc:
        parse_spec("s3://bkt/p@http://AKID:TOPSECRETKEY@127.0.0.1:1")
    assert "TOPSECRETKEY" not in str(exc.value)


def test_config_setting_and_environment(monkeypatch):
    cfg = load({"blobs": "s3://bkt/p@http://127.0.0.1:1"}, env={})
    assert cfg.blobs == "s3://bkt/p/@http://127.0.0.1:1"
    assert load(env={"VALLUM_BLOBS": "s3://bkt@http://h:1"}).blobs == "s3://bkt/@http://h:1"
    assert load(env={}).blobs is None
    with pytest.raises(ValueError):
        load({"blobs": "s3://bkt/p@gopher://h"}, env={})


def test_credentials_from_env_or_a_private_file_only(tmp_path):
    assert load_credentials({"VALLUM_BLOBS_ACCESS_KEY": "a", "VALLUM_BLOBS_SECRET_KEY": "s"}) == ("a", "s")
    with pytest.raises(ValueError):
        load_credentials({})
    with pytest.raises(ValueError):
        load_credentials({"VALLUM_BLOBS_ACCESS_KEY": "a"})       # half a pair is no pair
    path = tmp_path / "creds"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"access_key = AK1\nsecret_key = S=1\n")
    os.close(fd)
    assert load_credentials({"VALLUM_BLOBS_CREDENTIALS_FILE": str(path)}) == ("AK1", "S=1")
    os.chmod(path, 0o640)
    with pytest.raises(ValueError, match="chmod 600"):
        load_credentials({"VALLUM_BLOBS_CREDENTIALS_FILE": str(path)})
    os.chmod(path, 0o600)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(OSError):
        load_credentials({"VALLUM_BLOBS_CREDENTIALS_FILE": str(link)})
    (tmp_path / "empty").write_bytes(b"")
    os.chmod(tmp_path / "empty", 0o600)
    with pytest.raises(ValueError):
        load_credentials({"VALLUM_BLOBS_CREDENTIALS_FILE": str(tmp_path / "empty")})


def test_a_missing_ca_bundle_is_refused():
    with pytest.raises(ValueError, match="CA_BUNDLE"):
        from_spec("s3://bkt/p@https://127.0.0.1:1", {
            "VALLUM_BLOBS_ACCESS_KEY": "a", "VALLUM_BLOBS_SECRET_KEY": "s",
            "VALLUM_BLOBS_CA_BUNDLE": "/nonexistent/ca.pem"})


# --- against SeaweedFS -------------------------------------------------------------------------
def test_wrong_upstream_credentials_fail_at_open(upstream):
    async def main():
        spec = upstream.store().spec
        store = S3UpstreamBlobStore(spec, "WRONGKEY", "wrong-secret", attempts=1)
        with pytest.raises(StorageUnavailable) as exc:
            await store.open()
        assert "wrong-secret" not in str(exc.value)

    asyncio.run(main())


def test_ranged_reads_fetch_only_the_chunks_they_need(upstream, tmp_path):
    """Through the encryption layer, as the gateway uses it: a 100-byte range of a 40 MiB
    object costs the header read plus one envelope chunk, not the object."""
    fetched: list[int] = []

    async def main():
        inner = upstream.store(prefix=fresh_prefix())
        inner.client.meta.events.register(
            "after-call.s3.GetObject",
            lambda parsed, **_: fetched.append(int(parsed["ContentLength"])))
        store = security_setup.blob_store(tmp_path, inner)
        await store.open()
        try:
            data = os.urandom(40 * 1024 * 1024)
            w = store.writer()
            for i in range(0, len(data), 3 * 1024 * 1024):
                await w.write(data[i:i + 3 * 1024 * 1024])
            await w.commit()
            fetched.clear()
            start = 25 * 1024 * 1024 + 12345
            got = b"".join([c async for c in store.read(w.blob_id, start, start + 100)])
            assert got == data[start:start + 100]
        finally:
            await store.close()

    asyncio.run(main())
    assert fetched and sum(fetched) < 2 * 1024 * 1024, fetched


def test_large_blobs_go_up_as_multipart_and_nothing_shows_before_commit(upstream):
    prefix = fresh_prefix()
    client = upstream.client()

    async def main():
        store = upstream.store(prefix=prefix)
        await store.open()
        w = store.writer()
        data = os.urandom(2 * PART_SIZE + 12345)
        await w.write(data[:PART_SIZE + 1])
        uploads = client.list_multipart_uploads(Bucket=upstream.bucket, Prefix=prefix).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [prefix + w.blob_id]
        assert client.list_objects_v2(Bucket=upstream.bucket, Prefix=prefix)["KeyCount"] == 0
        await w.write(data[PART_SIZE + 1:])
        assert await w.commit() == len(data)
        assert b"".join([c async for c in store.read(w.blob_id)]) == data
        assert not client.list_multipart_uploads(Bucket=upstream.bucket, Prefix=prefix).get("Uploads")
        # An abandoned writer leaves only an incomplete upload, never an object.
        lost = store.writer()
        await lost.write(os.urandom(PART_SIZE))
        await lost.abort()
        assert not client.list_multipart_uploads(Bucket=upstream.bucket, Prefix=prefix).get("Uploads")
        with pytest.raises(BlobMissing):
            await store.size(lost.blob_id)
        await store.close()

    asyncio.run(main())


def test_sweep_spares_young_blobs_and_other_prefixes_and_aborts_old_uploads(upstream):
    prefix = fresh_prefix()
    client = upstream.client()
    client.put_object(Bucket=upstream.bucket, Key=prefix + "not-a-blob", Body=b"x")
    neighbour = fresh_prefix()

    async def main():
        other = upstream.store(prefix=neighbour, sweep_grace=0)
        theirs = await other.put(b"another gateway's blob")
        young = upstream.store(prefix=prefix)                 # the default grace (an hour)
        orphan = await young.put(b"orphan")
        interrupted = young.writer()
        await interrupted.write(os.urandom(PART_SIZE))       # an upload in flight
        assert await young.sweep(lambda _b: False) == 0      # all too young to judge
        assert await young.size(orphan) == 6
        old = upstream.store(prefix=prefix, sweep_grace=0)
        assert await old.sweep(lambda _b: False) == 2        # the orphan and the upload
        with pytest.raises(BlobMissing):
            await old.size(orphan)
        assert not client.list_multipart_uploads(Bucket=upstream.bucket, Prefix=prefix).get("Uploads")
        assert await other.size(theirs) == len(b"another gateway's blob")
        client.head_object(Bucket=upstream.bucket, Key=prefix + "not-a-blob")   # not ours: kept
        for s in (other, young, old):
            await s.close()

    asyncio.run(main())


def test_a_read_cut_mid_body_resumes_or_fails_and_never_gives_wrong_bytes(upstream):
    data = os.urandom(48 * 1024 * 1024)

    async def main():
        store = upstream.store(prefix=fresh_prefix())
        blob_id = await store.put(data)
        # The upstream dies after the first chunk and stays away: a clean error, and what
        # came before it is a true prefix of the blob.
        impatient = upstream.store(prefix=store.spec.prefix, attempts=2)
        got = []
        with pytest.raises(StorageUnavailable):
            async for chunk in impatient.read(blob_id):
                got.append(chunk)
                if len(got) == 1:
                    upstream.pause()
        joined = b"".join(got)
        assert len(joined) < len(data) and data.startswith(joined)
        # It dies, then comes back while the reader retries: the whole blob, byte for byte.
        await asyncio.to_thread(upstream.resume)
        gets: list[str] = []
        store.client.meta.events.register("before-call.s3.GetObject",
                                          lambda params, **_: gets.append(params["headers"]["Range"]))
        got = []
        restart = None
        async for chunk in store.read(blob_id):
            got.append(chunk)
            if len(got) == 1:
                upstream.pause()
                restart = asyncio.get_running_loop().run_in_executor(None, upstream.resume)
        await restart
        assert b"".join(got) == data
        assert len(gets) > 1 and gets[0] == "bytes=0-" and gets[-1].startswith("bytes=") \
            and gets[-1] != gets[0], gets                      # resumed, not restarted
        await store.close()
        await impatient.close()

    asyncio.run(main())


@pytest.mark.parametrize("code,status,expect", [
    ("SlowDown", 503, "SlowDown"), ("InternalError", 500, "ServiceUnavailable"),
    ("AccessDenied", 403, "ServiceUnavailable"), ("ServiceUnavailable", 503, "ServiceUnavailable"),
])
def test_upstream_failures_become_503_codes_without_details(code, status, expect):
    """What the client is answered for an upstream error botocore gave up on: never a 500,
    never the upstream's message (it may name the upstream bucket or key)."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from vallum.s3 import errors
    from vallum.storage.s3upstream import _unavailable

    exc = ClientError({"Error": {"Code": code, "Message": "bucket vallum-secret-bucket"},
                       "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")
    mapped = _unavailable("PutObject", exc)
    assert mapped.code == expect and errors.by_code(mapped.code).status == 503
    assert "vallum-secret-bucket" not in str(mapped)
    down = _unavailable("GetObject", EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert down.code == "ServiceUnavailable" and "127.0.0.1" not in str(down)


def test_an_https_upstream_is_verified_against_the_ca_bundle(tmp_path):
    """With VALLUM_BLOBS_CA_BUNDLE the upstream's certificate must chain to that CA; without
    it (the system's CAs) the same upstream is refused: no silent plain or unverified TLS."""
    from tests.support.server import dev_certs

    certs = dev_certs(tmp_path / "certs")
    with seaweed(tmp_path) as up:
        endpoint = up.serve_tls(certs)
        env = up.env() | {"VALLUM_BLOBS_ATTEMPTS": "1"}

        async def main():
            spec = f"s3://{up.bucket}/tls/@{endpoint}"
            trusted = from_spec(spec, env | {"VALLUM_BLOBS_CA_BUNDLE": str(certs / "ca.pem")})
            await trusted.open()
            blob_id = await trusted.put(b"over tls")
            assert b"".join([c async for c in trusted.read(blob_id)]) == b"over tls"
            await trusted.close()
            untrusted = from_spec(spec, env)
            with pytest.raises(StorageUnavailable):
                await untrusted.open()
            await untrusted.close()

        asyncio.run(main())


def test_a_completion_applied_upstream_but_never_answered_is_accepted_once_whole(upstream):
    """Idempotent commit: the upstream completed the upload but its answer was lost, and the
    completion is sent again. SeaweedFS answers it 200; AWS and Ceph answer NoSuchUpload,
    which the writer accepts after checking the object's length (not reachable here)."""
    client = upstream.client()

    async def main():
        store = upstream.store(prefix=fresh_prefix())
        w = store.writer()
        data = os.urandom(2 * PART_SIZE)
        await w.write(data)
        await w._settle()                                   # both parts are up
        client.complete_multipart_upload(Bucket=upstream.bucket, Key=store.key(w.blob_id),
                                         UploadId=w._upload_id,
                                         MultipartUpload={"Parts": w._parts})
        assert await w.commit() == len(data)
        assert b"".join([c async for c in store.read(w.blob_id)]) == data
        await store.close()

    asyncio.run(main())
