"""A stored body that fails its integrity check answers an error, never a 200 it cannot keep.

``checked_body`` reads the first chunk of a response body (which opens and authenticates
the blob's header, its length against the metadata and its first sealed chunk) before
the handler returns, so the status line is not yet sent: a failure there is a
StorageError that the gateway answers ``500 InternalError`` through ``failed``. A
failure later in a long stream, after the headers went out, can only cut the connection;
it is logged, counted and audited as a failed read with the bytes actually handed to
the connection, so the record never says a truncated answer was whole.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import Counter

from vallum import metrics
from vallum.s3 import errors
from vallum.storage.base import StorageError

log = logging.getLogger("vallum.integrity")

FAILURES = Counter("vallum_blob_integrity_failures_total",
                   "Stored object bodies that failed their integrity check (corrupt, truncated "
                   "or missing), by when: before the status line or during the body",
                   ["stage"], registry=metrics.REGISTRY)


def _where(request: Any) -> tuple[str, str, str]:
    endpoint = getattr(request, "endpoint", None)
    return (getattr(endpoint, "bucket", None) or "-", getattr(endpoint, "key", None) or "-",
            (getattr(endpoint, "query", None) or {}).get("versionId") or "-")


def failed(request: Any, request_id: str, exc: StorageError) -> errors.S3Error:
    """Log and count a body that failed before the status line; the error to answer."""
    bucket, key, version = _where(request)
    FAILURES.labels("before-headers").inc()
    log.error("integrity failure: request %s bucket %s key %s version %s: %s",
              request_id, bucket, key, version, exc)
    return errors.InternalError()


async def checked_body(request: Any, body: AsyncIterator[bytes], length: int) -> AsyncIterator[bytes]:
    """``body`` with its first chunk already read (StorageError raises here, before any
    header is sent); a later failure is reported (``_stream_failed``) and re-raised."""
    try:
        first = await anext(body)
    except StopAsyncIteration:
        first = b""
    if not first and length:
        raise StorageError(f"body ended before its first byte ({length} expected)")
    return _rest(request, first, body, length)


async def _rest(request: Any, first: bytes, body: AsyncIterator[bytes], length: int) -> AsyncIterator[bytes]:
    sent = 0
    try:
        yield first
        sent = len(first)                   # the caller asked for more: that chunk went out
        async for chunk in body:
            yield chunk
            sent += len(chunk)
        if sent != length:
            raise StorageError(f"body ended after {sent} of {length} bytes")
    except StorageError as exc:
        await _stream_failed(request, exc, sent, length)
        raise


async def _stream_failed(request: Any, exc: StorageError, sent: int, length: int) -> None:
    bucket, key, version = _where(request)
    FAILURES.labels("during-body").inc()
    log.error("integrity failure after the headers were sent: request %s bucket %s key %s "
              "version %s: %s; %d of %d bytes sent, connection cut",
              request.request_id, bucket, key, version, exc, sent, length)
    audit = getattr(request.services, "audit", None)
    if audit is None:
        return
    try:
        await audit.append({
            "type": "read_failed", "request_id": request.request_id, "principal": request.principal,
            "operation": request.endpoint.name, "bucket": bucket, "key": key,
            "version": None if version == "-" else version, "status": 500,
            "error": "InternalError", "bytes_out": sent, "bytes_expected": length,
        })
    except Exception:  # noqa: BLE001 - the connection is being cut either way; say so loudly
        log.exception("audit of the failed read %s could not be written", request.request_id)
