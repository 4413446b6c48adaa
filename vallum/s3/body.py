"""The request body as a stream of payload bytes, with SigV4 payload checks.

Decodes ``aws-chunked`` framing (chunk signatures, trailers), counts bytes
against the declared length and verifies a signed payload's SHA-256 when the
stream ends, so a handler that drained the body knows it is exactly what the
client signed. Nothing here is buffered beyond one ASGI message.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from vallum.s3 import errors
from vallum.s3.chunked import AwsChunkedDecoder
from vallum.s3.sigv4 import AuthResult

Receive = Callable[[], Awaitable[dict[str, Any]]]
MAX_SMALL_BODY = 2 * 1024 * 1024
HEAD_BYTES = 4096


class Body:
    def __init__(self, receive: Receive, headers: Any, auth: AuthResult | None) -> None:
        self._receive = receive
        self.trailers: dict[str, str] = {}
        self._started = False
        self.done = False
        payload = auth.payload if auth else ""
        encoding = headers.get("content-encoding", "")
        streaming = payload.startswith("streaming") or "aws-chunked" in encoding.lower()
        self._decoder: AwsChunkedDecoder | None = None
        if streaming:
            signed = payload in ("streaming-signed", "streaming-signed-trailer")
            trailer = payload.endswith("trailer") if signed else (
                payload.endswith("trailer") or "x-amz-trailer" in headers)
            self._decoder = AwsChunkedDecoder(auth if signed else None, signed=signed, trailer=trailer)
        self.streaming = streaming
        declared = headers.get("x-amz-decoded-content-length") if streaming else headers.get("content-length")
        try:
            self.length: int | None = int(declared) if declared is not None else None
        except ValueError:
            raise errors.InvalidArgument("Invalid content length", ArgumentName="Content-Length") from None
        if self.length is not None and self.length < 0:
            raise errors.InvalidArgument("Invalid content length", ArgumentName="Content-Length")
        self._sha = hashlib.sha256() if payload == "signed" else None
        self._expected_sha = auth.content_sha256 if auth and payload == "signed" else None
        self.has_body = (self.length or 0) > 0 or "transfer-encoding" in headers
        self.head = b""     # the first HEAD_BYTES of the payload, kept as it streams (the operator's entropy sample)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Payload bytes as they arrive; raises at the end if the body is not what was declared."""
        if self._started:
            raise RuntimeError("body already consumed")
        self._started = True
        count = 0
        decoder = self._decoder
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise errors.IncompleteBody()
            data = message.get("body", b"")
            more = message.get("more_body", False)
            if decoder is not None and data:
                data = decoder.feed(data)
            if data:
                if count < HEAD_BYTES:
                    self.head += data[:HEAD_BYTES - count]
                count += len(data)
                if self.length is not None and count > self.length:
                    raise errors.IncompleteBody("The request body is longer than its declared length.")
                if self._sha is not None:
                    self._sha.update(data)
                yield data
            if not more:
                break
        if decoder is not None:
            self.trailers = decoder.finish()
        if self.length is not None and count != self.length:
            raise errors.IncompleteBody()
        if self._sha is not None and self._sha.hexdigest() != self._expected_sha:
            raise errors.XAmzContentSHA256Mismatch(
                ClientComputedContentSHA256=self._expected_sha or "",
                S3ComputedContentSHA256=self._sha.hexdigest())
        self.length = count
        self.done = True

    async def read(self, limit: int = MAX_SMALL_BODY) -> bytes:
        """The whole body of a small request (XML configurations, multi-delete)."""
        if self.length is not None and self.length > limit:
            raise errors.MaxMessageLengthExceeded()
        parts: list[bytes] = []
        size = 0
        async for data in self.chunks():
            size += len(data)
            if size > limit:
                raise errors.MaxMessageLengthExceeded()
            parts.append(data)
        return b"".join(parts)

    async def drain(self) -> None:
        """Consume and verify a body the operation does not use."""
        if not self._started:
            async for _ in self.chunks():
                pass
