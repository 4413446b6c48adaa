"""Blob store on an upstream S3-compatible service (Ceph RGW, SeaweedFS, a cloud region).

Each blob is one upstream object ``PREFIX<blob id>``: the upstream sees opaque ids and
(behind EncryptedBlobStore, see security/setup.py) ciphertext only; keys, labels and
metadata stay in the gateway's data directory. A blob is visible only once the upstream
acknowledged it: a small blob is one PutObject, a large one a multipart upload completed
at commit (one part uploading while the next fills: about two parts of memory per writer), so
an interrupted write leaves no object, only an incomplete upload for `sweep`.

botocore retries 5xx, throttling and connection errors with jittered exponential
backoff; every call is idempotent (same key, same part number, same bytes). What still
fails is ``StorageUnavailable``: the gateway answers 503 and acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

from vallum.storage.base import (
    CHUNK,
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    BlobWriter,
    StorageError,
    StorageUnavailable,
    check_blob_id,
    check_range,
    check_size,
    new_blob_id,
)

PART_SIZE = 8 * 1024 * 1024          # upstream multipart part (S3 minimum is 5 MiB)
SWEEP_GRACE = 3600.0                 # seconds an unreferenced blob is presumed in flight
SIZE_CACHE = 65536                   # blob lengths remembered (blobs are immutable)
ATTEMPTS = 5                         # botocore tries per call (standard mode: backoff + jitter)
ENV_ACCESS_KEY = "VALLUM_BLOBS_ACCESS_KEY"
ENV_SECRET_KEY = "VALLUM_BLOBS_SECRET_KEY"  # noqa: S105 - a variable name
ENV_CREDENTIALS_FILE = "VALLUM_BLOBS_CREDENTIALS_FILE"
ENV_CA_BUNDLE = "VALLUM_BLOBS_CA_BUNDLE"
ENV_ATTEMPTS = "VALLUM_BLOBS_ATTEMPTS"
ENV_SWEEP_GRACE = "VALLUM_BLOBS_SWEEP_GRACE"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_RE = re.compile(r"[A-Za-z0-9._/-]{0,512}")
_ID_RE = re.compile(r"[0-9a-f]{32}")
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class UpstreamSpec:
    bucket: str
    prefix: str          # "" or ending in "/"
    endpoint: str        # scheme://host[:port]

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}@{self.endpoint}"


def parse_spec(text: str) -> UpstreamSpec:
    """``s3://BUCKET/PREFIX@http(s)://HOST[:PORT]``; ValueError naming what is wrong."""
    if not isinstance(text, str) or not text.startswith("s3://") or "@" not in text:
        raise ValueError("expected s3://BUCKET/PREFIX@http(s)://HOST[:PORT]")
    location, _, endpoint = text[len("s3://"):].partition("@")
    bucket, _, prefix = location.partition("/")
    if _BUCKET_RE.fullmatch(bucket) is None or ".." in bucket:
        raise ValueError(f"invalid upstream bucket name {bucket!r}")
    if _PREFIX_RE.fullmatch(prefix) is None or any(p in (".", "..") for p in prefix.split("/")) \
            or prefix.startswith("/") or "//" in prefix:
        raise ValueError("invalid upstream prefix (letters, digits, . _ - / only; no empty, . or .. parts)")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    try:
        url = urlsplit(endpoint)
        url.port                       # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("invalid upstream endpoint") from None
    if "@" in url.netloc:
        raise ValueError("credentials do not belong in the endpoint; set "
                         f"{ENV_ACCESS_KEY}/{ENV_SECRET_KEY} or {ENV_CREDENTIALS_FILE}")
    if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/") \
            or url.query or url.fragment:
        raise ValueError("upstream endpoint must be http(s)://HOST[:PORT]")
    return UpstreamSpec(bucket, prefix, f"{url.scheme}://{url.netloc}")


def load_credentials(env: dict[str, str] | Any = None, *,
                     names: tuple[str, str, str] = (ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_CREDENTIALS_FILE)
                     ) -> tuple[str, str]:
    """An S3 key pair: from the environment variables ``names`` (access key, secret key), or
    from the file the third names, which only its owner may read (``access_key = ...`` /
    ``secret_key = ...`` lines). Never from argv."""
    env = os.environ if env is None else env
    ak_name, sk_name, file_name = names
    ak, sk = env.get(ak_name, ""), env.get(sk_name, "")
    path = env.get(file_name, "")
    if ak and sk:
        return ak, sk
    if not path:
        raise ValueError(f"S3 credentials: set {ak_name} and {sk_name}, or {file_name} (a 0600 file)")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd) as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        values = {}
        for line in fh:
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
    ak, sk = values.get("access_key", ""), values.get("secret_key", "")
    if not ak or not sk:
        raise ValueError(f"{path}: needs access_key = ... and secret_key = ... lines")
    return ak, sk


def from_spec(text: str, env: dict[str, str] | Any = None) -> S3UpstreamBlobStore:
    """The store a ``--blobs`` value names, with credentials and CA bundle from ``env``."""
    env = os.environ if env is None else env
    spec = parse_spec(text)
    ak, sk = load_credentials(env)
    ca = env.get(ENV_CA_BUNDLE) or None
    if ca is not None and not Path(ca).is_file():
        raise ValueError(f"{ENV_CA_BUNDLE}: no such file {ca}")
    attempts = env.get(ENV_ATTEMPTS) or str(ATTEMPTS)
    if not attempts.isdigit() or not 1 <= int(attempts) <= 10:
        raise ValueError(f"{ENV_ATTEMPTS} must be a number of tries from 1 to 10")
    grace = env.get(ENV_SWEEP_GRACE) or str(int(SWEEP_GRACE))
    if not grace.isdigit():
        raise ValueError(f"{ENV_SWEEP_GRACE} must be a whole number of seconds")
    return S3UpstreamBlobStore(spec, ak, sk, ca_bundle=ca, attempts=int(attempts),
                               sweep_grace=float(grace))


def _code(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    return str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _unavailable(what: str, exc: Exception) -> StorageUnavailable:
    """An upstream failure after botocore's retries, without credentials or request details."""
    if isinstance(exc, ClientError):
        code = _code(exc)
        slow = code in ("SlowDown", "Throttling", "ThrottlingException", "503")
        return StorageUnavailable(f"upstream {what} failed: {code}", slow_down=slow)
    return StorageUnavailable(f"upstream {what} failed: {type(exc).__name__}")


class S3UpstreamBlobStore(BlobStore):
    """Blobs as objects ``PREFIX<id>`` in one upstream bucket; see the module docstring."""

    def __init__(self, spec: UpstreamSpec, access_key: str, secret_key: str, *,
                 ca_bundle: str | None = None, part_size: int = PART_SIZE,
                 sweep_grace: float = SWEEP_GRACE, attempts: int = ATTEMPTS) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum)")
        self.spec = spec
        self.part_size = part_size
        self.sweep_grace = sweep_grace
        self.attempts = attempts
        # Lengths seen on write or read: an encrypted GET asks for the length after the
        # header, and this saves that HEAD. Only delete (here) removes a blob of this prefix.
        self._sizes: OrderedDict[str, int] = OrderedDict()
        config = BotoConfig(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=10, read_timeout=60, max_pool_connections=64,
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session()
        self.client = session.client(
            "s3", endpoint_url=spec.endpoint, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, region_name="us-east-1", config=config,
            verify=ca_bundle if ca_bundle else True)
        # Clean-up after a failed write tries once: `sweep` removes whatever it leaves.
        self.cleanup = session.client(
            "s3", endpoint_url=spec.endpoint, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, region_name="us-east-1",
            config=config.merge(BotoConfig(retries={"mode": "standard", "max_attempts": 1})),
            verify=ca_bundle if ca_bundle else True)

    def key(self, blob_id: str) -> str:
        return self.spec.prefix + check_blob_id(blob_id)

    async def _call(self, what: str, fn: Callable[..., Any], **kw: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, Bucket=self.spec.bucket, **kw)
        except ClientError as exc:
            if _code(exc) in _MISSING and "Key" in kw:
                raise BlobMissing(kw["Key"][len(self.spec.prefix):]) from None
            raise _unavailable(what, exc) from None
        except BotoCoreError as exc:
            raise _unavailable(what, exc) from None

    # --- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        await self._call("HeadBucket", self.client.head_bucket)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)
        await asyncio.to_thread(self.cleanup.close)

    # --- writing -------------------------------------------------------------------------
    def writer(self) -> S3UpstreamBlobWriter:
        return S3UpstreamBlobWriter(self, new_blob_id())

    def writer_as(self, blob_id: str) -> S3UpstreamBlobWriter:
        self._sizes.pop(blob_id, None)          # the blob is about to be replaced
        return S3UpstreamBlobWriter(self, check_blob_id(blob_id))

    async def put(self, data: bytes) -> str:
        blob_id = new_blob_id()
        await self._call("PutObject", self.client.put_object, Key=self.key(blob_id), Body=bytes(data))
        self.remember(blob_id, len(data))
        return blob_id

    # --- reading -------------------------------------------------------------------------
    def remember(self, blob_id: str, size: int) -> None:
        self._sizes[blob_id] = size
        self._sizes.move_to_end(blob_id)
        if len(self._sizes) > SIZE_CACHE:
            self._sizes.popitem(last=False)

    async def size(self, blob_id: str) -> int:
        key = self.key(blob_id)
        known = self._sizes.get(blob_id)
        if known is not None:
            return known
        head = await self._call("HeadObject", self.client.head_object, Key=key)
        self.remember(blob_id, int(head["ContentLength"]))
        return int(head["ContentLength"])

    def read(self, blob_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
        key = self.key(blob_id)
        check_range(start, end, chunk_size)
        return self._stream(blob_id, key, start, end, chunk_size, expect_size)

    async def _stream(self, blob_id: str, key: str, start: int, end: int | None,
                      chunk_size: int, expect_size: int | None) -> AsyncIterator[bytes]:
        """One ranged GET for exactly [start, end): the upstream sends only those bytes.
        The object's total length comes from Content-Range (checked against expect_size)."""
        if end is not None and end <= start:
            check_size(blob_id, await self.size(blob_id), expect_size)
            return
        rng = f"bytes={start}-" + ("" if end is None else str(end - 1))
        try:
            resp = await self._call("GetObject", self.client.get_object, Key=key, Range=rng)
        except StorageUnavailable as exc:
            if "InvalidRange" not in str(exc):
                raise
            check_size(blob_id, await self.size(blob_id), expect_size)   # start past the end
            return
        body = resp["Body"]
        try:
            total = _total_length(resp)
            self.remember(blob_id, total)
            check_size(blob_id, total, expect_size)
            etag = resp.get("ETag")
            pos, stop = start, start + int(resp["ContentLength"])
            tries = 1
            while pos < stop:
                want = min(chunk_size, stop - pos)
                try:
                    data = await asyncio.to_thread(_read_exactly, body, want)
                except (BotoCoreError, OSError, HTTPError) as exc:
                    data, failure = b"", exc
                else:
                    failure = None
                if len(data) == want:
                    pos += want
                    yield data
                    continue
                # The connection broke mid-body: ask again for the rest of this same blob
                # (If-Match: the bytes we already sent stay consistent with what follows).
                if tries >= self.attempts:
                    raise _unavailable("GetObject body", failure or EOFError("short body"))
                tries += 1
                body.close()
                await asyncio.sleep(min(2.0 ** tries * 0.1, 5.0))
                extra = {"IfMatch": etag} if etag else {}
                resp = await self._call("GetObject", self.client.get_object, Key=key,
                                        Range=f"bytes={pos}-{stop - 1}", **extra)
                body = resp["Body"]
        finally:
            body.close()

    # --- removal -------------------------------------------------------------------------
    async def delete(self, blob_ids: list[str]) -> None:
        keys = [self.key(b) for b in blob_ids]
        for b in blob_ids:
            self._sizes.pop(b, None)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            resp = await self._call("DeleteObjects", self.client.delete_objects,
                                    Delete={"Objects": batch, "Quiet": True})
            errs = [e for e in resp.get("Errors", []) if e.get("Code") not in _MISSING]
            if errs:
                raise StorageUnavailable(f"upstream DeleteObjects failed for {len(errs)} blobs: "
                                         f"{errs[0].get('Code')}")

    async def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        """Abort incomplete uploads and delete unreferenced blobs, both only when older than
        ``sweep_grace`` (by the upstream's clock as it reports it): another gateway sharing
        the bucket may have a write in flight whose metadata is not committed yet."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.sweep_grace)
        count = 0
        uploads = self.client.get_paginator("list_multipart_uploads")
        try:
            upload_pages = await asyncio.to_thread(
                lambda: list(uploads.paginate(Bucket=self.spec.bucket, Prefix=self.spec.prefix)))
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("ListMultipartUploads", exc) from None
        for page in upload_pages:
            for up in page.get("Uploads", []):
                if up["Initiated"] <= cutoff and _ID_RE.fullmatch(up["Key"][len(self.spec.prefix):]):
                    await self._call("AbortMultipartUpload", self.client.abort_multipart_upload,
                                     Key=up["Key"], UploadId=up["UploadId"])
                    count += 1
        listing = self.client.get_paginator("list_objects_v2")
        pages = iter(listing.paginate(Bucket=self.spec.bucket, Prefix=self.spec.prefix))
        while True:
            # One page (up to 1000 ids) at a time; is_referenced runs on the loop thread.
            try:
                page = await asyncio.to_thread(next, pages, None)
            except (ClientError, BotoCoreError) as exc:
                raise _unavailable("ListObjectsV2", exc) from None
            if page is None:
                return count
            dead = []
            for obj in page.get("Contents", []):
                blob_id = obj["Key"][len(self.spec.prefix):]
                if _ID_RE.fullmatch(blob_id) and not is_referenced(blob_id) \
                        and obj["LastModified"] <= cutoff:
                    dead.append(blob_id)
            if dead:
                await self.delete(dead)
                count += len(dead)


def _total_length(resp: dict[str, Any]) -> int:
    content_range = resp.get("ContentRange") or ""
    total = content_range.rpartition("/")[2]
    if not total.isdigit():
        raise BlobCorrupt(f"upstream answered a ranged GET without a length: {content_range!r}")
    return int(total)


def _read_exactly(body: Any, n: int) -> bytes:
    parts = []
    while n > 0:
        data = body.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


class S3UpstreamBlobWriter(BlobWriter):
    """Buffers up to one part; the first full part starts a multipart upload; commit puts
    (small blob) or completes the upload. Nothing is visible upstream before commit."""

    def __init__(self, store: S3UpstreamBlobStore, blob_id: str) -> None:
        self.blob_id = blob_id
        self._store = store
        self._key = store.key(blob_id)
        self._buf = bytearray()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._state = "open"       # open -> committing -> committed | aborted | failed
        self._commit_failed = False   # the upstream may have applied a commit we never saw answered
        self._inflight: asyncio.Future[None] | None = None

    def _check_open(self) -> None:
        if self._state != "open":
            raise StorageError(f"writer for {self.blob_id} is {self._state}")

    async def write(self, data: bytes) -> None:
        self._check_open()
        self._buf += data
        self._size += len(data)
        try:
            while len(self._buf) >= self._store.part_size:
                part = bytes(self._buf[:self._store.part_size])
                del self._buf[:self._store.part_size]
                await self._send(part)
        except BaseException:
            if self._state == "open":
                self._state = "failed"
            raise

    async def _send(self, part: bytes) -> None:
        """Upload ``part`` while the caller reads the next one: at most one part in flight
        and one filling, so memory stays at two parts and parts complete in order."""
        await self._settle()
        s = self._store
        if self._upload_id is None:
            resp = await s._call("CreateMultipartUpload", s.client.create_multipart_upload, Key=self._key)
            self._upload_id = resp["UploadId"]
        self._inflight = asyncio.ensure_future(self._upload_part(part))

    async def _settle(self) -> None:
        """Wait for the part in flight (its error, if any, raises here)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _upload_part(self, part: bytes) -> None:
        s = self._store
        number = len(self._parts) + 1
        resp = await s._call("UploadPart", s.client.upload_part, Key=self._key,
                             UploadId=self._upload_id, PartNumber=number, Body=part)
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    async def commit(self) -> int:
        self._check_open()
        self._state = "committing"
        s = self._store
        try:
            await self._settle()
            if self._upload_id is None:
                await s._call("PutObject", s.client.put_object, Key=self._key, Body=bytes(self._buf))
            else:
                if self._buf:
                    await self._upload_part(bytes(self._buf))
                await self._complete()
        except BaseException:
            self._commit_failed = True
            if self._state == "committing":
                self._state = "failed"
            raise
        self._buf = bytearray()
        if self._state != "committing":
            raise StorageError(f"writer for {self.blob_id} was aborted during commit")
        self._state = "committed"
        s.remember(self.blob_id, self._size)
        return self._size

    async def _complete(self) -> None:
        s = self._store
        try:
            await s._call("CompleteMultipartUpload", s.client.complete_multipart_upload,
                          Key=self._key, UploadId=self._upload_id,
                          MultipartUpload={"Parts": self._parts})
        except StorageUnavailable as exc:
            # A retry of a completion the upstream already applied finds no upload:
            # the object is whole if it has our length.
            if "NoSuchUpload" not in str(exc):
                raise
            try:
                size = await s.size(self.blob_id)
            except BlobMissing:
                raise exc from None
            if size != self._size:
                raise
        self._upload_id = None

    async def abort(self) -> None:
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._buf = bytearray()
        s = self._store
        try:
            try:
                await self._settle()            # let a part in flight finish (or fail) first
            except StorageError:
                pass
            if self._upload_id is not None:
                await s._call("AbortMultipartUpload", s.cleanup.abort_multipart_upload,
                              Key=self._key, UploadId=self._upload_id)
                self._upload_id = None
            if self._commit_failed:
                await s._call("DeleteObject", s.cleanup.delete_object, Key=self._key)
        except StorageError:
            pass                   # the upstream is away: `sweep` removes what is left
