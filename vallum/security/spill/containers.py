"""Containers the spill scan looks inside, as they stream: compression, zip, PDF.

Each hands what it holds to a nested scanner (``owner.child()``), which sniffs its own
format again, so a zip in a gzip in base64 is read to the depth ``markings.MAX_DEPTH``.
All inflation draws on one budget per upload (``owner.budget``) against bombs.

- **gzip / bzip2 / xz**: decompressed incrementally (concatenated members too).
- **zip**: the central directory is at the end, which a stream cannot wait for, so the
  local file headers are walked as they arrive. Every member (any name) is inflated
  (method 8) or read as stored (method 0) into its own nested scanner, and its name is
  scanned as a line. A structure not understood is scanned as text.
- **PDF**: outside streams, and inside unfiltered or ``/FlateDecode`` streams (inflated
  with ``zlib.decompressobj``, whose ``eof`` finds the end without /Length), the string
  operands are extracted (escapes decoded, ``TJ`` arrays joined) as lines of text.
  Streams with other filters (images) are skipped. CID-font glyph ids are not decoded.
"""

from __future__ import annotations

import bz2
import lzma
import re
import struct
import zlib
from typing import Any

INFLATE_STEP = 256 * 1024


class Exhausted(Exception):
    """The upload's inflation budget ran out (a bomb, or beyond what is scanned)."""


def _inflate(owner: Any, z: Any, data: bytes, sink) -> bytes | None:
    """Feed ``z`` (zlib, bz2 or lzma decompressor) within the budget; return the bytes after
    the end of its stream once it ended, else None (it wants more input)."""
    zlib_like = hasattr(z, "unconsumed_tail")
    while True:
        budget = owner.budget.allowance()
        if budget <= 0:
            raise Exhausted()
        out = z.decompress(data, min(INFLATE_STEP, budget))
        owner.budget.spend(len(out))
        if out and sink is not None:
            sink(out)
        if z.eof:
            return z.unused_data
        if zlib_like:
            data = z.unconsumed_tail
            if not data:
                return None
        else:
            data = b""
            if z.needs_input:
                return None


_MAKERS = {"gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), "bzip2": bz2.BZ2Decompressor,
           "xz": lzma.LZMADecompressor}
_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}


class Decompress:
    """gzip, bzip2 or xz, member after member, into one nested scanner."""

    def __init__(self, owner: Any, kind: str) -> None:
        self._owner = owner
        self._kind = kind
        self._z: Any = _MAKERS[kind]()
        self._child = owner.child()
        self._broken = False

    def feed(self, data: bytes) -> None:
        while data and not self._broken and self._child is not None:
            try:
                rest = _inflate(self._owner, self._z, data, self._child.feed)
            except (zlib.error, OSError, EOFError, lzma.LZMAError):
                self._broken = True
                self._owner.leftover(data)      # corrupt: what is left, as text
                return
            if rest is None:
                return
            if not rest.startswith(_MAGIC[self._kind]):
                self._owner.leftover(rest)
                self._broken = True
                return
            self._z, data = _MAKERS[self._kind](), rest

    @property
    def ended(self) -> bool:
        return self._broken

    def finish(self) -> None:
        if self._child is not None:
            self._owner.adopt(self._child)


_CODEC_ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)


def _raw_lzma(props: bytes) -> Any:
    """A decompressor for a zip member's raw LZMA1 data, from its 5 property bytes."""
    if len(props) < 5 or props[0] >= 225:
        raise lzma.LZMAError("bad LZMA properties")
    d = props[0]
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[{
        "id": lzma.FILTER_LZMA1, "lc": d % 9, "lp": d // 9 % 5, "pb": d // 45,
        "dict_size": int.from_bytes(props[1:5], "little")}])


_LOCAL, _CENTRAL, _END, _END64 = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06"


class Zip:
    """Walks local file headers as they stream; see the module docstring."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._buf = b""
        self._state = "header"
        self._need = 30
        self._member: dict = {}
        self._z: Any = None
        self._child: Any = None
        self._remaining = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            st = self._state
            if st in ("raw", "done"):            # not understood, or after the central directory:
                self._owner.leftover(self._buf)  # text (which finds a zip appended to a zip)
                self._buf = b""
                return
            if st == "lzma":
                head = 4 + int.from_bytes(self._buf[2:4], "little") if len(self._buf) >= 4 else 9
                if len(self._buf) < head:
                    return
                try:
                    self._z = _raw_lzma(self._buf[4:head])
                except _CODEC_ERRORS:
                    self._state = "raw"
                    continue
                self._buf = self._buf[head:]
                if self._remaining < 0:
                    self._state = "inflate"
                else:
                    self._state, self._remaining = "coded", max(0, self._remaining - head)
                continue
            if st == "coded":                    # bzip2 or LZMA with a known compressed size
                take = min(self._remaining, len(self._buf))
                piece, self._buf = self._buf[:take], self._buf[take:]
                self._remaining -= take
                try:
                    if piece and not self._z.eof:
                        _inflate(self._owner, self._z, piece, self._child.feed if self._child else None)
                except _CODEC_ERRORS:
                    pass                         # corrupt member: what inflated was scanned
                if self._remaining:
                    return
                self._end_member()
                continue
            if st == "inflate":
                if not self._buf:
                    return
                data, self._buf = self._buf, b""
                try:
                    rest = _inflate(self._owner, self._z, data, self._child.feed if self._child else None)
                except _CODEC_ERRORS:
                    self._state, self._buf = "raw", data
                    continue
                if rest is None:
                    return
                self._end_member()
                self._buf = rest
                continue
            if st == "stored":
                take = min(self._remaining, len(self._buf))
                if take and self._child is not None:
                    self._child.feed(self._buf[:take])
                self._buf = self._buf[take:]
                self._remaining -= take
                if self._remaining:
                    return
                self._end_member()
                continue
            if len(self._buf) < self._need:
                return
            if st == "header":
                self._header()
            elif st == "name":
                self._name()
            elif st == "descriptor":
                self._descriptor()

    @property
    def ended(self) -> bool:
        return self._state in ("raw", "done")

    def _header(self) -> None:
        sig = self._buf[:4]
        if sig in (_CENTRAL, _END, _END64):
            self._state = "done"
            return
        if sig != _LOCAL:
            self._state = "raw"
            return
        (_, flags, method, _, _, _, csize, _, name_len, extra_len) = struct.unpack(
            "<HHHHHIIIHH", self._buf[4:30])
        self._member = {"flags": flags, "method": method, "csize": csize, "name_len": name_len}
        self._buf = self._buf[30:]
        self._state, self._need = "name", name_len + extra_len

    def _name(self) -> None:
        m = self._member
        name = self._buf[:m["name_len"]]
        self._buf = self._buf[self._need:]
        text = self._owner.text
        text.boundary()
        text.feed(name.replace(b"/", b"\n"))          # a marked member name is a marking too
        text.boundary()
        deferred = bool(m["flags"] & 0x08)
        self._child = self._owner.child()
        known = not deferred and m["csize"] != 0xFFFFFFFF
        if m["method"] == 8:
            self._z = zlib.decompressobj(-15)
            self._state = "inflate"
        elif m["method"] == 12:                  # bzip2: ends itself; the size bounds it when known
            self._z = bz2.BZ2Decompressor()
            self._state, self._remaining = ("coded", m["csize"]) if known else ("inflate", -1)
        elif m["method"] == 14:                  # LZMA: a 4-byte header and properties first
            self._state, self._remaining = "lzma", m["csize"] if known else -1
        elif m["method"] == 0 and not (deferred and m["csize"] == 0) and m["csize"] != 0xFFFFFFFF:
            self._state, self._remaining = "stored", m["csize"]
        else:
            self._state = "raw"                  # unknown method or unknowable size

    def _end_member(self) -> None:
        if self._child is not None:
            self._owner.adopt(self._child)
            self._child = None
        self._z = None
        if self._member.get("flags", 0) & 0x08:
            self._state, self._need = "descriptor", 4
        else:
            self._state, self._need = "header", 30

    def _descriptor(self) -> None:
        # Optional signature, crc, then 4- or 8-byte sizes: skip to the next header.
        for skip in (0, 12, 16, 20, 24):
            if len(self._buf) < skip + 4:
                self._need = skip + 4
                return
            if self._buf[skip:skip + 4] in (_LOCAL, _CENTRAL, _END, _END64):
                self._buf = self._buf[skip:]
                self._state, self._need = "header", 30
                return
        self._state = "raw"

    def finish(self) -> None:
        if self._state in ("raw", "done") and self._buf:
            self._owner.leftover(self._buf)
        if self._child is not None:
            self._owner.adopt(self._child)
            self._child = None
        self._buf = b""


# --- PDF ---------------------------------------------------------------------------
_STREAM_RE = re.compile(rb"(?<![A-Za-z])stream(?:\r\n|\n|\r)")
_FLATE_RE = re.compile(rb"/(?:FlateDecode|Fl)(?![A-Za-z])")
_DICT_WINDOW = 2048
_TOKEN = re.compile(rb"\((?:\\.|[^\\()]|\((?:\\.|[^\\()])*\))*\)|<[0-9A-Fa-f\s]*>|<<|>>|[\[\]]"
                    rb"|[-+]?(?:\d+\.?\d*|\.\d+)(?![A-Za-z])|T[jJ](?![A-Za-z])|[^\s()<>\[\]/]+|/[^\s()<>\[\]/]*",
                    re.DOTALL)
_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)\Z")
_ESCAPE = re.compile(rb"\\([nrtbf()\\]|[0-7]{1,3}|\r?\n)")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"", b"f": b"", b"(": b"(", b")": b")",
            b"\\": b"\\"}
PDF_CARRY = 256 * 1024


def _unescape(m: re.Match[bytes]) -> bytes:
    e = m.group(1)
    if e in _ESCAPES:
        return _ESCAPES[e]
    if e[:1] in b"01234567" and e[:1]:
        return bytes([int(e, 8) & 0xFF])
    return b""                                # a line continuation


def _string(token: bytes) -> bytes:
    if token[:1] == b"<":
        try:
            raw = bytes.fromhex(token[1:-1].decode("ascii").replace(" ", "").replace("\n", "")
                                .replace("\r", "").replace("\t", ""))
        except ValueError:
            return b""
    else:
        raw = _ESCAPE.sub(_unescape, token[1:-1])
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "replace").encode("utf-8")
    return raw


class PdfStrings:
    """Extracts string operands as lines: consecutive strings (``Tj`` after ``Tj``, a ``TJ``
    array) join; any other operator or name ends the line."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= PDF_CARRY:
            nl = self._buf.rfind(b"\n")
            cut = nl + 1 if nl > 0 else len(self._buf)
            self._extract(self._buf[:cut])
            self._buf = self._buf[cut:]

    def finish(self) -> None:
        self._extract(self._buf)
        self._buf = b""

    def _extract(self, data: bytes) -> None:
        out: list[bytes] = []
        line: list[bytes] = []
        in_array = False
        for m in _TOKEN.finditer(data):
            tok = m.group()
            first = tok[:1]
            if first == b"(" or (first == b"<" and tok[:2] != b"<<"):
                line.append(_string(tok))
            elif tok == b"[":
                in_array = True
            elif tok == b"]":
                in_array = False
            elif tok in (b"Tj", b"TJ"):
                continue
            elif _NUMBER.match(tok):
                if in_array and tok.startswith(b"-") and float(tok) <= -200:
                    line.append(b" ")                  # a word gap in a kerned TJ array
            elif line:
                out.append(b"".join(line))
                line = []
        if line:
            out.append(b"".join(line))
        if out:
            self._sink(b"\n" + b"\n".join(out) + b"\n")


class Pdf:
    """Splits a PDF into outside text and stream contents; see the module docstring."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._outside = PdfStrings(owner.text_pipe().feed)
        self._pend = b""
        self._ctx = b" "            # the byte before _pend, for the keyword's look-behind
        self._window = b""
        self._z: Any = None
        self._stream: PdfStrings | None = None
        self._skipping = False

    def feed(self, data: bytes) -> None:
        while data:
            if self._skipping:
                buf = self._pend + data
                i = buf.find(b"endstream")
                if i == -1:
                    self._pend = buf[-9:]
                    return
                self._skipping, self._pend, data = False, b"", buf[i:]
                continue
            if self._z is not None:
                try:
                    rest = _inflate(self._owner, self._z, data, self._stream.feed)   # type: ignore[union-attr]
                except zlib.error:
                    rest = data         # corrupt stream: scan what is left as outside text
                if rest is None:
                    return
                self._end_stream()
                data = rest
                continue
            buf = self._ctx + self._pend + data
            data = b""
            m = _STREAM_RE.search(buf, 1)
            if m is None:
                keep = min(len(buf) - 1, 10)
                self._emit(buf[1:len(buf) - keep])
                self._ctx, self._pend = buf[len(buf) - keep - 1:len(buf) - keep], buf[len(buf) - keep:]
                return
            self._emit(buf[1:m.end()])
            self._pend, self._ctx = b"", b"\n"
            stream_dict = self._window[-_DICT_WINDOW:].rsplit(b"endstream", 1)[-1]
            if _FLATE_RE.search(stream_dict):
                self._z = zlib.decompressobj()
                self._stream = PdfStrings(self._owner.text_pipe().feed)
            elif b"/Filter" in stream_dict:
                self._skipping = True        # images and other encodings: not text, skip
            self._window = b""
            data = buf[m.end():]

    def _end_stream(self) -> None:
        if self._stream is not None:
            self._stream.finish()
        self._z = self._stream = None

    def _emit(self, text: bytes) -> None:
        if text:
            self._outside.feed(text)
            self._window = (self._window + text)[-_DICT_WINDOW:]

    def finish(self) -> None:
        if self._z is not None:
            self._end_stream()
        if self._pend:
            self._outside.feed(self._pend)
            self._pend = b""
        self._outside.finish()


# --- streams without a container's magic, and containers inside other bytes -------------
class Speculative:
    """A body that is no known container may still be a compressed stream without a magic
    (raw deflate, zlib, legacy ``.lzma``): it is also inflated from its first byte, for as
    long as it inflates, into a nested scan. Text and random bytes fail within a few bytes;
    whatever inflated before the failure was scanned, and the body is read as text too."""

    def __init__(self, owner: Any, z: Any) -> None:
        self._owner = owner
        self._z = z
        self._child: Any = None
        self.ended = False

    def _sink(self, data: bytes) -> None:
        if self._child is None:
            self._child = self._owner.child()      # what inflated is read nowhere else
        self._child.feed(data)

    def feed(self, data: bytes) -> None:
        if self.ended:
            return
        try:
            self.ended = _inflate(self._owner, self._z, data, self._sink) is not None
        except _CODEC_ERRORS:
            self.ended = True

    def finish(self) -> None:
        self.ended = True
        if self._child is not None:
            self._owner.adopt(self._child)
            self._child = None


def _zlib_header(head: bytes) -> bool:
    return len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and (head[0] << 8 | head[1]) % 31 == 0


def _lzma_alone_header(head: bytes) -> bool:
    """props < 225, a dictionary of 4 KiB to 1.5 GiB, a size unknown or below 1 TiB."""
    if len(head) < 13 or head[0] >= 225:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    size = int.from_bytes(head[5:13], "little")
    return 1 << 12 <= dict_size <= 3 << 29 and (size == (1 << 64) - 1 or size < 1 << 40)


def speculations(owner: Any, head: bytes) -> list[Speculative]:
    """The magic-less streams ``head`` may start (raw deflate always: it has no header)."""
    out = [Speculative(owner, zlib.decompressobj(-15))]
    if _zlib_header(head):
        out.append(Speculative(owner, zlib.decompressobj(15)))
    if _lzma_alone_header(head):
        out.append(Speculative(owner, lzma.LZMADecompressor(lzma.FORMAT_ALONE)))
    return out


class TextAndStreams:
    """The router of a body read as text and, in parallel, as magic-less streams."""

    def __init__(self, owner: Any, streams: list[Speculative]) -> None:
        self._pipe = owner.text_pipe()
        self._streams = streams

    def feed(self, data: bytes) -> None:
        for s in self._streams:
            s.feed(data)
            if s.ended:
                s.finish()
        self._streams = [s for s in self._streams if not s.ended]
        self._pipe.feed(data)

    def finish(self) -> None:       # the text pipe is finished by its owner
        for s in self._streams:
            s.finish()


_EMBEDDED = (b"PK\x03\x04", b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00")
_EMBEDDED_ASCII = tuple(m for m in _EMBEDDED if m.isascii())     # all an ASCII buffer can hold
_CARRY = 9


def _magic_at(buf: bytes, p: int, magic: bytes) -> bool:
    if magic == b"BZh":           # "BZh" + block size + the block magic 1AY&SY
        return buf[p + 3:p + 4] in (b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9") \
            and buf[p + 4:p + 10] == b"1AY&SY"[:len(buf) - p - 4]
    if magic == b"\x1f\x8b\x08":
        return p + 3 >= len(buf) or buf[p + 3] & 0xE0 == 0       # reserved flag bits clear
    return True


class Embedded:
    """Containers inside a body that is no container (a self-extracting zip after its
    program, zips in a tar, a gzip after a header): each magic starts a nested scan at its
    offset, which ends with its container; the bytes around are read as text anyway."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._carry = b""
        self._child: Any = None

    def feed(self, data: bytes) -> None:
        buf = self._carry + data
        magics = _EMBEDDED_ASCII if buf.isascii() else _EMBEDDED     # text: two finds fewer
        hits = sorted(p for magic in magics for p in _finds(buf, magic, len(self._carry))
                      if _magic_at(buf, p, magic))
        pos = len(self._carry)           # what the current child has not been fed yet
        for bound in (*hits, len(buf)):
            # segment by segment: each byte goes to one child at most (linear, whatever the hits)
            if self._child is not None and not self._child.ended and pos < bound:
                self._child.feed(buf[pos:bound])
            pos = max(pos, bound)
            if bound < len(buf) and (self._child is None or self._child.ended):
                self._end()              # a hit inside a container being read is its own business
                self._child = self._owner.child(embedded=True)
                pos = bound
        self._carry = buf[-_CARRY:]

    def _end(self) -> None:
        if self._child is not None:
            self._owner.adopt(self._child)
            self._child = None

    def finish(self) -> None:
        self._end()


def _finds(buf: bytes, magic: bytes, fresh: int):
    """Offsets of ``magic`` in ``buf`` that end past ``fresh`` (not found in an earlier chunk)."""
    i = buf.find(magic, max(0, fresh - len(magic) + 1))
    while i != -1:
        yield i
        i = buf.find(magic, i + 1)
