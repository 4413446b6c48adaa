"""multipart/form-data (RFC 7578) as a stream: the body of a browser form upload (PostObject).

Why not ``email`` or ``cgi``: they want the whole body, and a POST upload can be 5 GiB.
``Parser`` is sans-I/O: ``feed`` bytes in pieces of any size, get events out
(``Part`` at each part's headers, ``bytes`` of its content, ``END`` when the closing
delimiter arrives); only a delimiter's length of content is ever held back. ``FormReader``
drives it from an async byte stream the way PostObject needs: the fields before the file
(bounded in total), then the file's content as a stream. Anything not well formed raises
``FormError``; the handler answers it as S3 does (MalformedPOSTRequest).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 8192          # one part's header block
MAX_PREAMBLE = 1024              # bytes before the first delimiter
END = "end"                      # the closing delimiter has been read
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")  # RFC 2046 bchars
_PADDING = b" \t"


class FormError(ValueError):
    """The body is not well-formed multipart/form-data."""


class FormTooLarge(FormError):
    """The fields before the file exceed the reader's limit."""


@dataclass
class Part:
    """One part's headers: its form field name, and a file name when it is a file."""

    name: str
    filename: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type, or None when it is not one."""
    if not content_type:
        return None
    kind, params = _header_params(content_type)
    if kind.lower() != "multipart/form-data":
        return None
    raw = params.get("boundary")
    if raw is None:
        return None
    try:
        boundary = raw.encode("ascii")
    except UnicodeEncodeError:
        return None
    return boundary if _BOUNDARY.fullmatch(boundary) else None


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """``type; a=b; c="d"`` -> ("type", {"a": "b", "c": "d"}); names lower-cased."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            if rest[i:].strip():
                raise FormError(f"malformed header parameter: {rest[i:i + 40]!r}")
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            out = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(rest[i])
                i += 1
            if i >= n:
                raise FormError("unterminated quoted header parameter")
            i += 1
            val = "".join(out)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            val = rest[i:end].strip()
            i = end
        if not name or name in params:
            raise FormError(f"empty or repeated header parameter {name!r}")
        params[name] = val
    return head.strip(), params


def _part(block: bytes) -> Part:
    """A Part from its header block (the lines between the delimiter and the blank line)."""
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip() or name != name.strip():
            raise FormError("malformed part header line")
        try:
            key, text = name.decode("ascii").lower(), value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise FormError("part header is not UTF-8") from None
        if key in headers:
            raise FormError(f"repeated part header {key}")
        headers[key] = text
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise FormError("a part has no Content-Disposition")
    kind, params = _header_params(disposition)
    if kind.lower() != "form-data" or "name" not in params:
        raise FormError("a part's Content-Disposition is not form-data with a name")
    return Part(params["name"], params.get("filename"), headers.get("content-type"), headers)


class Parser:
    """Sans-I/O multipart parser: ``feed`` returns the events the bytes complete."""

    def __init__(self, boundary: bytes) -> None:
        self.dash = b"--" + boundary
        self.delimiter = b"\r\n" + self.dash
        self.buf = b""
        self.state = "preamble"
        self.seen = 0             # bytes consumed before the first delimiter

    def feed(self, data: bytes) -> list[object]:
        if self.state == END:
            return []             # the epilogue is ignored (RFC 2046)
        self.buf += data
        events: list[object] = []
        while True:
            step = getattr(self, "_" + self.state)(events)
            if not step or self.state == END:
                break
        if self.state == END:
            self.buf = b""
        return events

    def close(self) -> None:
        """The stream ended: raise unless the closing delimiter was read."""
        if self.state != END:
            raise FormError("the body ends before its closing delimiter")

    def _preamble(self, events: list[object]) -> bool:
        if self.seen == 0 and self.buf.startswith(self.dash):   # the body's very start
            at, skip = 0, len(self.dash)
        else:
            at = self.buf.find(self.delimiter)
            skip = len(self.delimiter)
        if at < 0:
            keep = len(self.delimiter) - 1
            self.seen += max(0, len(self.buf) - keep)
            self.buf = self.buf[-keep:] if len(self.buf) > keep else self.buf
            if self.seen > MAX_PREAMBLE:
                raise FormError("no delimiter at the start of the body")
            return False
        if self.seen + at > MAX_PREAMBLE:
            raise FormError("no delimiter at the start of the body")
        self.buf = self.buf[at + skip:]
        self.state = "after_delimiter"
        return True

    def _after_delimiter(self, events: list[object]) -> bool:
        stripped = self.buf.lstrip(_PADDING)
        if len(stripped) < 2:
            if len(self.buf) - len(stripped) > 64:
                raise FormError("padding after a delimiter is too long")
            return False
        if stripped.startswith(b"--"):
            self.state = END
            events.append(END)
            return True
        if not stripped.startswith(b"\r\n"):
            raise FormError("a delimiter is followed by neither CRLF nor '--'")
        self.buf = stripped[2:]
        self.state = "headers"
        return True

    def _headers(self, events: list[object]) -> bool:
        if self.buf.startswith(b"\r\n"):      # a part with no header lines
            raise FormError("a part has no Content-Disposition")
        at = self.buf.find(b"\r\n\r\n")
        if at < 0:
            if len(self.buf) > MAX_HEADER_BYTES:
                raise FormError("a part's headers are too long")
            return False
        if at > MAX_HEADER_BYTES:
            raise FormError("a part's headers are too long")
        events.append(_part(self.buf[:at]))
        self.buf = self.buf[at + 4:]
        self.state = "content"
        return True

    def _content(self, events: list[object]) -> bool:
        at = self.buf.find(self.delimiter)
        if at < 0:
            keep = len(self.delimiter) - 1
            if len(self.buf) > keep:
                events.append(self.buf[:-keep])
                self.buf = self.buf[-keep:]
            return False
        if at:
            events.append(self.buf[:at])
        self.buf = self.buf[at + len(self.delimiter):]
        self.state = "after_delimiter"
        return True


class FormReader:
    """PostObject's view of a form: the fields before the part named ``file``, then its bytes.

    ``field_limit`` bounds the fields' part headers and values together (S3's limit on
    what may precede the file); the file streams through, never held whole."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes, *, field_limit: int) -> None:
        self._chunks = chunks
        self._parser = Parser(boundary)
        self._events: deque[object] = deque()
        self._ended = False
        self.field_limit = field_limit

    async def _next(self) -> object:
        while not self._events:
            if self._ended:
                return END
            try:
                data = await anext(self._chunks)
            except StopAsyncIteration:
                self._parser.close()
                self._ended = True
                continue
            self._events.extend(self._parser.feed(data))
        return self._events.popleft()

    async def fields(self) -> tuple[list[tuple[str, str]], Part | None]:
        """Every field before the file, in order (names as sent), and the file's Part
        (None when the form ends without one)."""
        out: list[tuple[str, str]] = []
        used = 0
        current: Part | None = None
        value: list[bytes] = []
        while True:
            event = await self._next()
            if isinstance(event, Part):
                if current is not None:
                    out.append((current.name, _text(value)))
                if event.name.lower() == "file":
                    return out, event
                current, value = event, []
                # Each part's headers count too: empty fields must not come for free.
                used += sum(len(k) + len(v) + 4 for k, v in event.headers.items())
            elif isinstance(event, bytes):
                used += len(event)
                value.append(event)
            else:                                   # END
                if current is not None:
                    out.append((current.name, _text(value)))
                return out, None
            if used > self.field_limit:
                raise FormTooLarge("the form fields before the file are too large")

    async def file(self) -> AsyncIterator[bytes]:
        """The file part's content, after ``fields`` returned its Part."""
        while True:
            event = await self._next()
            if isinstance(event, bytes):
                yield event
            else:
                return

    async def rest(self, limit: int) -> bool:
        """Read past the file to the end (fields after the file are ignored, as S3 does);
        False when more than ``limit`` bytes follow (the caller stops reading)."""
        read = 0
        while not self._ended:
            event = await self._next()
            if isinstance(event, bytes):
                read += len(event)
                if read > limit:
                    return False
        return True


def _text(value: list[bytes]) -> str:
    try:
        return b"".join(value).decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("a form field is not UTF-8") from None
