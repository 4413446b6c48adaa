"""A do-nothing S3 endpoint that remembers only object sizes: the client's ceiling.

Why: on a 2-core machine the benchmark client competes with the server for CPU.
Running every workload against this sink (which does no storage, no auth and no
real work) shows the fastest the harness itself can go; a server figure close to
the sink's is bounded by the client, not by the server.

Run: python -m bench.sink --port PORT  (binds 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

CHUNK = 1024 * 1024
_ZEROS = bytes(CHUNK)


class SinkState:
    """Object sizes per bucket and open multipart uploads; never any bytes."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, int]] = {}
        self.uploads: dict[str, dict[int, int]] = {}


def _reply(status: int, reason: str, body: bytes = b"", extra: str = "", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {size}\r\n{extra}\r\n"
    return head.encode() + body


def _list_xml(bucket: str, keys: dict[str, int], query: dict[str, str]) -> bytes:
    prefix = query.get("prefix", "")
    limit = int(query.get("max-keys", "1000"))
    after = query.get("continuation-token") or query.get("start-after", "")
    names = sorted(k for k in keys if k.startswith(prefix) and k > after)
    page, more = names[:limit], len(names) > limit
    parts = [f"<ListBucketResult><Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"]
    parts.append(f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{limit}</MaxKeys>")
    parts.append(f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>")
    if more:
        parts.append(f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>")
    for name in page:
        parts.append(f"<Contents><Key>{escape(name)}</Key><Size>{keys[name]}</Size></Contents>")
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


async def _handle(state: SinkState, method: str, target: str, body_len: int,
                  writer: asyncio.StreamWriter) -> None:
    split = urlsplit(target)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    bucket, _, key = unquote(split.path).lstrip("/").partition("/")
    ok_xml = "Content-Type: application/xml\r\n"
    if not bucket:
        writer.write(_reply(200, "OK", b"<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>", ok_xml))
        return
    objects = state.buckets.setdefault(bucket, {})
    if not key:
        if method == "GET":
            writer.write(_reply(200, "OK", _list_xml(bucket, objects, query), ok_xml))
        else:
            writer.write(_reply(204 if method == "DELETE" else 200, "OK"))
        return
    if method == "PUT" and "uploadId" in query:
        state.uploads.setdefault(query["uploadId"], {})[int(query["partNumber"])] = body_len
        writer.write(_reply(200, "OK", extra='ETag: "0"\r\n'))
    elif method == "PUT":
        objects[key] = body_len
        writer.write(_reply(200, "OK", extra='ETag: "0"\r\n'))
    elif method == "POST" and "uploads" in query:
        upload = uuid.uuid4().hex
        state.uploads[upload] = {}
        xml = f"<InitiateMultipartUploadResult><UploadId>{upload}</UploadId></InitiateMultipartUploadResult>"
        writer.write(_reply(200, "OK", xml.encode(), ok_xml))
    elif method == "POST" and "uploadId" in query:
        objects[key] = sum(state.uploads.pop(query["uploadId"], {}).values())
        writer.write(_reply(200, "OK", b"<CompleteMultipartUploadResult/>", ok_xml))
    elif method in ("GET", "HEAD"):
        if key not in objects:
            writer.write(_reply(404, "Not Found"))
            return
        size = objects[key]
        if method == "HEAD":
            writer.write(_reply(200, "OK", length=size))
            return
        writer.write(_reply(200, "OK", length=size))
        sent = 0
        while sent < size:
            n = min(CHUNK, size - sent)
            writer.write(_ZEROS[:n] if n < CHUNK else _ZEROS)
            sent += n
            await writer.drain()
    elif method == "DELETE":
        objects.pop(key, None)
        writer.write(_reply(204, "No Content"))
    else:
        writer.write(_reply(400, "Bad Request"))


async def _serve_conn(state: SinkState, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            remaining = length
            while remaining:
                chunk = await reader.read(min(remaining, CHUNK))
                if not chunk:
                    return
                remaining -= len(chunk)
            await _handle(state, method, target, length, writer)
            await writer.drain()
    finally:
        writer.close()


async def _main(port: int) -> None:
    state = SinkState()
    server = await asyncio.start_server(
        lambda r, w: _serve_conn(state, r, w), "127.0.0.1", port, limit=CHUNK
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # the cheaper loop gives a higher, more useful ceiling

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_main(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
