"""Text views for the spill scan: what a reader would see, whatever the bytes hide it in.

Every text (and every body that is no known container: binary bodies are scanned too,
since the grammar in grammar.py does not fire on random bytes) passes here:

- **normalisation**: a run of NULs is a line break (tar padding, UTF-32 gaps), a lone NUL
  is dropped (UTF-16 without a byte-order mark is then ASCII), control characters are
  dropped; non-ASCII UTF-8 is folded to the letters a reader sees (unicode.py:
  look-alike capitals, full-width forms, combining marks, zero-width characters);
- **markup** (the text starts with ``<``: XML, HTML, Office parts): tags are removed,
  block-level tags become line breaks, character references are decoded; in other text
  (HTML inside an email) block-level tags still become line breaks;
- **base64 runs** of 40 or more characters, or shorter ones ending in ``=`` padding (MIME parts, data URIs, whole base64 bodies)
  are decoded and scanned as a nested body (which may itself be gzip, zip, PDF...);
- **quoted-printable**: once a body names that encoding (MIME), the rest of it is also
  scanned decoded.
"""

from __future__ import annotations

import binascii
import codecs
import html
import re
from typing import Any, cast

from vallum.security.spill.containers import Embedded
from vallum.security.spill.decode import EncodedRuns, worth_decoding
from vallum.security.spill.unicode import fold

_CONTROLS = bytes(c for c in range(1, 32) if c not in b"\t\n\r\f\v") + b"\x7f"
_PLAIN = bytes(range(32, 127)) + b"\t\n\r\f\v"      # printable ASCII: nothing to normalise


def _utf8(data: bytes) -> bool:
    """Is ``data`` UTF-8 text (a character cut at either end allowed)? Fails fast on binary."""
    start = 0
    while start < 3 and start < len(data) and data[start] & 0xC0 == 0x80:
        start += 1
    try:
        codecs.utf_8_decode(data[start:], "strict", False)
    except UnicodeDecodeError:
        return False
    return True


class Normaliser:
    """Bytes -> the text a reader sees (see the module docstring); stateful across chunks."""

    def __init__(self) -> None:
        self._nul = False        # the previous chunk ended in a NUL
        self._cut = b""          # a UTF-8 character cut by the chunk boundary, kept for the next

    def __call__(self, data: bytes) -> bytes:
        if self._cut:
            data, self._cut = self._cut + data, b""
        if not self._nul and data.isascii() and not data.translate(None, _PLAIN):
            return data                            # (isascii first: binary fails it at once)
        keep = _partial_char(data)
        if keep:
            data, self._cut = data[:-keep], data[-keep:]
        if self._nul:
            data = b"\x00" + data
            self._nul = False
        if b"\x00" in data:
            if data.endswith(b"\x00") and len(data) > 1:
                data, self._nul = data[:-1], True
            data = data.replace(b"\x00\x00", b"\n\x00").replace(b"\x00", b"")
        data = data.translate(None, _CONTROLS)
        if not data.isascii() and _utf8(data):      # binary noise is rarely UTF-8: fails fast
            data = fold(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        return data

    def flush(self) -> bytes:
        """The bytes held back at the end of the stream (an incomplete character)."""
        cut, self._cut, self._nul = self._cut, b"", False
        return cut


def _partial_char(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character that is not complete."""
    for k in range(1, min(3, len(data)) + 1):
        b = data[-k]
        if b & 0xC0 == 0xC0:                     # a lead byte: how long is its character?
            return k if (2 if b < 0xE0 else 3 if b < 0xF0 else 4) > k else 0
        if b & 0xC0 != 0x80:                     # ASCII: nothing cut
            return 0
    return 0


_BREAK = re.compile(
    rb"</?(?:w:p|a:p|w:br|a:br|w:cr|text:p|text:h|row|p|br|div|h[1-6]|li|tr|title|table|section|header"
    rb"|footer|blockquote|pre|hr|oddHeader|oddFooter|evenHeader|evenFooter|firstHeader|firstFooter"
    rb"|dc:title|dc:subject|cp:keywords|dc:description|cp:category)(?:\s[^<>]{0,1024})?/?>", re.IGNORECASE)
_CELL = re.compile(rb"</?(?:w:tab|td|th|c|si|w:tc)(?:\s[^<>]{0,1024})?/?>")
_TAG = re.compile(rb"<[^<>]{0,4096}>")        # bounded: an unclosed "<" never rescans the rest
_EXCEL_SECTION = re.compile(rb"&[LCR](?=[A-Z(])")


class Markup:
    """Strips tags from a stream of XML/HTML and hands the text on."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self._carry = b""

    def feed(self, data: bytes) -> None:
        buf = self._carry + data
        lt = buf.rfind(b"<")
        if lt != -1 and buf.find(b">", lt) == -1 and len(buf) - lt < 4096:
            buf, self._carry = buf[:lt], buf[lt:]
        else:
            self._carry = b""
        amp = buf.rfind(b"&")
        if amp != -1 and len(buf) - amp < 12 and b";" not in buf[amp:] and not self._carry:
            buf, self._carry = buf[:amp], buf[amp:]
        text = _TAG.sub(b"", _CELL.sub(b" ", _BREAK.sub(b"\n", buf)))
        if b"&" in text:
            text = fold(html.unescape(text.decode("utf-8", "surrogateescape"))).encode("utf-8", "surrogateescape")
            text = _EXCEL_SECTION.sub(b"\n", text)     # spreadsheet header sections: &L &C &R
        self._sink(text.replace(b"\xc2\xa0", b" "))

    def finish(self) -> None:
        if self._carry:
            carry, self._carry = self._carry, b""
            self._sink(_TAG.sub(b"", carry))


_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_MAP = bytes(b"A"[0] if c in _B64_CHARS else b"="[0] if c == b"="[0] else b" "[0] for c in range(256))
_B64_LONG = b"A" * 40
_B64_DELIMS = frozenset(b" \t\r\n\"':=,>([")
_B64_BODY = re.compile(rb"[A-Za-z0-9+/\r\n]*")      # up to padding (or any other byte)
_B64_TAIL = re.compile(rb"[A-Za-z0-9+/]{1,39}\Z")


def _run_start(buf: bytes, t: bytes, pos: int, long_at: int) -> int:
    """Where the next base64 run starts: 40 characters in a row (the first such at or after
    ``pos`` is ``long_at``, found once per chunk), or a delimited run of 8 or more ending in
    padding. Found with C-speed find in ``t``, ``buf`` translated by _B64_MAP (a regex here
    ran at 4 MB/s)."""
    end = len(buf) if long_at == -1 else long_at
    j = t.find(b"A=", pos, end) if t.find(b"=", pos, end) != -1 else -1     # memchr first: C speed
    while j != -1:
        start = max(pos, t.rfind(b" ", pos, j) + 1, t.rfind(b"=", pos, j) + 1)
        if j + 1 - start >= 8 and (start == 0 or buf[start - 1] in _B64_DELIMS):
            return start
        j = t.find(b"A=", j + 2, end)
    if long_at == -1:
        return -1
    return max(pos, t.rfind(b" ", pos, long_at) + 1, t.rfind(b"=", pos, long_at) + 1)   # never behind pos


class Base64Runs:
    """Finds base64 runs in a text stream and scans each one decoded, as a nested body.

    A run starts at 40 base64 characters in a row (or fewer, padded with ``=``) and continues across line breaks
    (MIME wraps at 76); it ends at any other character or after padding."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._carry = b""
        self._child: Any = None        # the run's nested scanner, once its start is worth one
        self._open = False
        self._head = b""               # a run's first decoded bytes (most runs are identifiers)
        self._pending = b""            # base64 characters not yet a multiple of four

    def feed(self, data: bytes) -> None:
        buf = self._carry + data
        self._carry = b""
        pos = 0
        t = buf.translate(_B64_MAP)
        long_at = t.find(_B64_LONG)
        while pos < len(buf):
            if self._open:
                # cast: _B64_BODY is a starred class, so it matches (maybe empty) at any pos
                end = cast(re.Match[bytes], _B64_BODY.match(buf, pos)).end()
                if buf[end:end + 1] == b"=":             # padding ends the run
                    stop = end
                    while buf[stop:stop + 1] == b"=":
                        stop += 1
                    self._decode(buf[pos:stop])
                    self._close()
                    pos = stop
                    continue
                self._decode(buf[pos:end])
                if end == len(buf):
                    return
                self._close()
                pos = end
                continue
            if long_at != -1 and long_at < pos:
                long_at = t.find(_B64_LONG, pos)
            start = _run_start(buf, t, pos, long_at)
            if start == -1:
                tail = _B64_TAIL.search(buf, max(pos, len(buf) - 39))
                if tail is not None:
                    self._carry = tail.group()
                return
            self._open = True
            pos = start

    def _decode(self, piece: bytes) -> None:
        chars = self._pending + piece.translate(None, b"\r\n")
        n = len(chars) // 4 * 4
        self._pending = chars[n:]
        if not n:
            return
        try:
            decoded = binascii.a2b_base64(chars[:n])
        except binascii.Error:
            return
        if self._child is None:
            self._head += decoded
            if len(self._head) < 512:
                return
            decoded, self._head = self._head, b""
            self._child = self._owner.child()
        self._child.feed(decoded)

    def _close(self) -> None:
        child, head = self._child, self._head
        self._child, self._open, self._head, self._pending = None, False, b"", b""
        if child is None and head and worth_decoding(self._owner, head):
            child = self._owner.child()
            child.feed(head)
        if child is not None:
            self._owner.adopt(child)

    def finish(self) -> None:
        if self._open:
            if self._pending:
                self._decode(b"=" * (-len(self._pending) % 4))
            self._close()




class QuotedPrintable:
    """Once the text names quoted-printable, scans the rest decoded as well."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._child: Any = None
        self._carry = b""

    def feed(self, data: bytes) -> None:
        if self._child is None:
            buf = self._carry + data
            seen = (b"rintable" in buf or b"RINTABLE" in buf) and b"quoted-printable" in buf.lower()
            self._carry = data[-16:]
            if not seen:
                return
            self._child = self._owner.child()
            if self._child is None:
                return
            self._carry = b""
        buf = self._carry + data
        nl = buf.rfind(b"\n")
        if nl == -1 and len(buf) < 4096:
            self._carry = buf
            return
        cut = nl + 1 if nl != -1 else len(buf)
        self._carry = buf[cut:]
        self._child.feed(binascii.a2b_qp(buf[:cut]))

    def finish(self) -> None:
        if self._child is not None:
            if self._carry:
                self._child.feed(binascii.a2b_qp(self._carry))
            self._owner.adopt(self._child)
            self._child = None


_RTF_BREAK = re.compile(rb"\\(?:par|pard|line|sect|page|row|cell|tab)(?![a-z])-?\d* ?")
_RTF_HEX = re.compile(rb"\\'([0-9a-fA-F]{2})")
_RTF_UNICODE = re.compile(rb"\\u(-?\d{1,6}) ?\??")
_RTF_WORD = re.compile(rb"\\(?:[a-zA-Z]{1,32}-?\d{0,10} ?|\*)")
_RTF_OPEN = re.compile(rb"\\[a-zA-Z']{0,32}-?\d{0,10}\Z")


def _rtf_char(m: re.Match[bytes]) -> bytes:
    n = int(m.group(1))
    return chr(n % 65536).encode("utf-8", "surrogatepass") if n else b""


class Rtf:
    """RTF (the text starts with ``{\\rtf``): control words removed, paragraph and row
    ends as line breaks, ``\\'hh`` and ``\\uN`` characters decoded, groups opened."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self._carry = b""

    def feed(self, data: bytes) -> None:
        buf = self._carry + data
        cut = _RTF_OPEN.search(buf, max(0, len(buf) - 48))
        if cut is not None:
            buf, self._carry = buf[:cut.start()], buf[cut.start():]
        else:
            self._carry = b""
        text = _RTF_BREAK.sub(b"\n", buf).replace(b";}", b";\n")     # font and colour table entries
        text = _RTF_HEX.sub(lambda m: bytes([int(m.group(1), 16)]).decode("cp1252", "replace").encode(), text)
        text = _RTF_UNICODE.sub(_rtf_char, text)
        text = _RTF_WORD.sub(b"", text).replace(b"\\{", b"\x00").replace(b"\\}", b"\x00")
        self._sink(fold(text.translate(None, b"{}\x00").decode("utf-8", "surrogateescape"))
                   .encode("utf-8", "surrogateescape"))

    def finish(self) -> None:
        if self._carry:
            carry, self._carry = self._carry, b""
            self._sink(carry)


_SPACED = re.compile(rb"(?<![^ \t\r\n])[!-~](?:[ \t][!-~])+(?![^ \t\r\n])")      # "S E C R E T / / N F"
_DOTTED = re.compile(rb"(?<![A-Za-z])[A-Z](?:[.\-_*][A-Z](?![A-Za-z])){2,}")  # "S.E.C.R.E.T", "T-O-P"


_SPACED_SHAPE = bytes(0x78 if 33 <= c <= 126 else 0x73 if c in b" \t" else 0x6E for c in range(256))
_DOTTED_SHAPE = bytes(0x41 if 65 <= c <= 90 else 0x2E if c in b".-_*" else 0x20 for c in range(256))


def _close_up(buf: bytes) -> bytes:
    """Prefiltered at C speed: " x x " (two one-character words) or "A.A.A" must occur,
    and the pattern runs only where it does."""
    buf = _sub_at(buf, (b" " + buf + b" ").translate(_SPACED_SHAPE), b"sxsxs", _SPACED, b" \t")
    return _sub_at(buf, buf.translate(_DOTTED_SHAPE), b"A.A.A", _DOTTED, b".-_*")


def _sub_at(buf: bytes, shape: bytes, needle: bytes, pattern: re.Pattern[bytes], drop: bytes) -> bytes:
    """``buf`` with the matches of ``pattern`` near each ``needle`` of ``shape`` closed up."""
    i = shape.find(needle)
    if i == -1:
        return buf
    out, last = [], 0
    while i != -1:
        m = pattern.search(buf, max(last, i - 1), i + 4096)
        if m is None:
            i = shape.find(needle, i + 1)
            continue
        out += [buf[last:m.start()], m.group().translate(None, drop)]
        last = m.end()
        i = shape.find(needle, max(last, i + 1))
    out.append(buf[last:])
    return b"".join(out)


class LetterSpaced:
    """Closes up letter-spaced text before the grammar: single characters, three or more,
    each after one space (``S E C R E T / / N F``; a wider gap stays a word break), and
    single capitals joined by one dot, dash or star each (``S.E.C.R.E.T``)."""

    def __init__(self, sink, worth) -> None:
        self._sink = sink
        self._worth = worth
        self._carry = b""

    def feed(self, data: bytes) -> None:
        buf = self._carry + data
        self._carry = b""
        if not self._worth(buf, spaced=True):
            self._sink(buf)
            return
        nl = buf.rfind(b"\n", max(0, len(buf) - 256))      # the last line, if short, waits for its end
        if nl != -1:
            buf, self._carry = buf[:nl + 1], buf[nl + 1:]
        self._sink(_close_up(buf))

    def finish(self) -> None:
        if self._carry:
            carry, self._carry = self._carry, b""
            self._sink(_close_up(carry))


class TextPipe:
    """Routes a text body through the views above into its scanner (``owner.text``)."""

    def __init__(self, owner: Any, *, decode: bool = True) -> None:
        self._owner = owner
        self._norm = Normaliser()
        self._text = LetterSpaced(owner.text.feed, owner.text.worth)
        self._markup: Markup | Rtf | None = None
        self._decided = False
        self._views: list[Any] = [Base64Runs(owner), QuotedPrintable(owner), EncodedRuns(owner)] if decode else []
        self._embedded = Embedded(owner) if decode else None

    def feed(self, data: bytes) -> None:
        if self._embedded is not None:
            self._embedded.feed(data)
        self._emit(self._norm(data))

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        for view in self._views:
            view.feed(data)
        if not self._decided:
            head = data.lstrip()
            if not head:
                return
            self._decided = True
            if head.startswith(b"<"):
                self._markup = Markup(self._text.feed)
            elif head.startswith(b"{\\rtf"):
                self._markup = Rtf(self._text.feed)
        if self._markup is not None:
            self._markup.feed(data)
        else:           # HTML inside a text (an email part): block tags still end lines
            self._text.feed(_BREAK.sub(b"\n", data) if b"<" in data else data)

    def finish(self) -> None:
        self._emit(self._norm.flush())
        if self._markup is not None:
            self._markup.finish()
        self._text.finish()
        for view in self._views:
            view.finish()
        if self._embedded is not None:
            self._embedded.finish()
