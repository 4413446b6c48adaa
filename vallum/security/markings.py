"""Streaming scan of an upload for classification markings (spill prevention).

Feed the body chunk by chunk (``feed``), then ``finish()`` returns the highest
label (the join of every marking seen) or None. Nothing is buffered beyond a
small carry-over window, so a marking split across chunk boundaries is still
found and memory stays constant whatever the body size.

What is recognised (upper case only, as markings are written):
- banners: a level word at a word boundary, optionally followed by ``//``
  segments: ``TOP SECRET//SI/TK//NOFORN``, ``SECRET//REL TO USA, GBR``, ``CUI``;
- portion marks: ``(S//NF)``, ``(TS//SI)``, ``(C)``, ``(U)`` at the start of a
  line or after white space (so ``FILE(S)`` is not a portion mark).
The scan is deliberately conservative: an upper-case ``SECRET`` in prose counts
as a SECRET banner, and ``(C)`` after a space as a CONFIDENTIAL portion mark.

Containers, chosen by the first bytes of the body:
- **plain text** (anything else that looks like text, see ``looks_binary``): the
  bytes are scanned as they are. Binary bodies are not scanned.
- **PDF** (``%PDF-``): bytes outside streams and uncompressed streams are
  scanned as text (literal strings such as ``(SECRET//NOFORN) Tj`` hold the
  marking verbatim); streams with any other /Filter (images) are skipped;
  ``/FlateDecode`` streams are inflated incrementally with
  ``zlib.decompressobj`` — its ``eof`` tells where the stream ends, so /Length
  is not needed — and the inflated content is scanned. Text drawn with CID
  fonts (glyph ids, not characters) is not decoded.
- **Office XML / zip** (``PK\\x03\\x04``): a zip's central directory is at the
  *end*, which a streaming scan cannot wait for. Instead the local file
  headers are walked as they arrive: each member's name and method come from
  its local header; members named ``*.xml``/``*.rels``/``*.txt`` are inflated
  (method 8, by decompressobj, which also finds the member's end when the
  sizes are deferred to a data descriptor) or read as stored (method 0), their
  XML tags stripped (paragraph/cell ends become new lines so words of
  different paragraphs do not join), and the text scanned. Other members are
  skipped by their compressed size (or inflated and discarded when the size
  is deferred). Unparseable zip structure falls back to scanning the raw bytes.

Inflation is capped (``max_inflated``, total bytes) against decompression
bombs; past it ``incomplete`` is set and the caller decides (Vallum refuses).
"""

from __future__ import annotations

import re
import struct
import zlib
from functools import lru_cache

from vallum.security.labels import DEFAULT_SCHEME, Label, LabelError, LevelScheme, parse

MAX_MARKING = 200          # longest marking text considered (bytes)
_KEEP = MAX_MARKING + 16   # carry-over so a match never straddles the scanned limit
INFLATE_STEP = 256 * 1024


class _Patterns:
    """What the scan looks for, compiled once per level scheme.

    Python's ``re`` runs at only ~40-100 MB/s on a pattern that opens with a
    look-behind or an alternation, far too slow for the 4 KiB PUT budget, so
    the scan works in three steps (measured in docs/security.md):
    1. a *prefilter*: ``bytes.translate`` deletes every byte that cannot be part
       of a marking (~2 us per 4 KiB); if no level word and no "(X/" remains in
       the residue, the chunk has no marking;
    2. *candidates*: ``bytes.find`` of each level word (C speed) and a
       literal-prefixed regex for portion marks;
    3. the full *marking* pattern (word-boundary look-arounds), matched only at
       candidate positions.
    """

    DELETE = bytes(c for c in range(256) if c not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ()/\\")

    def __init__(self, scheme: LevelScheme) -> None:
        names = [n.encode() for n, _ in scheme.levels]
        # Only the innermost words are searched: "SECRET" finds "TOP SECRET" too.
        self.words = [n for n in names if not any(o != n and o in n for o in names)]
        self.residue_words = [w.replace(b" ", b"") for w in self.words]
        # For a word found inside a longer level name, where that name would start.
        self.backs = {w: sorted({0} | {o.index(w) for o in names if o != w and w in o}, reverse=True)
                      for w in self.words}
        alt_names = b"|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        abbrevs = {a.encode() for _, a in scheme.levels} | set(names)
        alt_abbrevs = b"|".join(re.escape(a) for a in sorted(abbrevs, key=len, reverse=True))
        self.portion_start = re.compile(rb"\((?:" + alt_abbrevs + rb")[/)\\]")
        tail = rb"(?://[A-Z0-9 ,/\-]{1,%d})?" % (MAX_MARKING - 20)
        banner = rb"(?<![A-Za-z0-9/_])(?:" + alt_names + rb")" + tail + rb"(?![A-Za-z0-9_])"
        # A portion mark opens a paragraph: after white space, a line start, or (in a PDF
        # literal string) "(" and an escaped "\(".
        portion = rb"(?:(?<=[\s(])|^)\\?\((?:" + alt_abbrevs + rb")" + tail + rb"\\?\)"
        self.marking = re.compile(banner + b"|" + portion, re.MULTILINE)

    def maybe(self, buf: bytes) -> bool:
        residue = buf.translate(None, self.DELETE)
        if not residue:
            return False
        return (any(w in residue for w in self.residue_words)
                or self.portion_start.search(residue) is not None)


_PATTERNS: dict[int, _Patterns] = {}


def _patterns(scheme: LevelScheme) -> _Patterns:
    p = _PATTERNS.get(id(scheme))
    if p is None:
        p = _PATTERNS[id(scheme)] = _Patterns(scheme)
    return p


@lru_cache(maxsize=1024)
def _lenient(text: bytes, scheme: LevelScheme) -> Label | None:
    """Parse a matched marking, dropping trailing words that are not part of it
    (``SECRET//NOFORN THE END`` -> SECRET//NOFORN); never below the level word."""
    s = text.decode("ascii", "replace").strip().replace("\\", "")
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
    segments = s.split("//")
    try:
        best = parse(segments[0], scheme)
    except LabelError:
        return None
    for i in range(1, len(segments)):
        words = segments[i].split(" ")
        for k in range(len(words), 0, -1):
            candidate = "//".join([*segments[:i], " ".join(words[:k])]).rstrip(" ,/")
            try:
                best = parse(candidate, scheme)
                break
            except LabelError:
                continue
        else:
            return best
        if k < len(words):
            return best
    return best


class TextScanner:
    """Finds markings in a byte stream; see the module docstring."""

    def __init__(self, scheme: LevelScheme = DEFAULT_SCHEME) -> None:
        self.scheme = scheme
        self._p = _patterns(scheme)
        self._buf = b""
        self._done = 0                    # match starts before this index are decided
        self.highest: Label | None = None
        self.found: list[str] = []        # distinct markings, first few, for alerts
        self._seen: set[bytes] = set()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        buf = self._buf + data if self._buf else bytes(data)
        limit = len(buf) - _KEEP
        if limit > self._done:
            self._scan(buf, self._done, limit)
            self._done = limit
        cut = max(0, self._done - 8)      # keep a few bytes for the look-behind
        self._buf = buf[cut:]
        self._done -= cut

    def finish(self) -> Label | None:
        self._scan(self._buf, self._done, len(self._buf) + 1)
        self._buf, self._done = b"", 0
        return self.highest

    def boundary(self) -> None:
        """End of a text unit (a PDF stream, a zip member): words must not join across it."""
        self.feed(b"\n")

    def _scan(self, buf: bytes, pos: int, limit: int) -> None:
        p = self._p
        if not p.maybe(buf[max(0, pos - 8):limit + _KEEP]):
            return
        match = p.marking.match
        starts: list[int] = []
        for word in p.words:
            i = buf.find(word, pos, limit + len(word))
            while i != -1 and i < limit:
                starts.extend(i - back for back in p.backs[word] if i - back >= 0)
                i = buf.find(word, i + 1, limit + len(word))
        for c in p.portion_start.finditer(buf, pos):
            if c.start() >= limit:
                break
            starts.append(c.start())
            if c.start() > 0:
                starts.append(c.start() - 1)           # an escaped "\(" in a PDF string
        for start in starts:
            m = match(buf, start)
            if m is not None:
                self._record(m.group())

    def _record(self, text: bytes) -> None:
        if text in self._seen:            # the same banner on every page: joined already
            return
        if len(self._seen) < 4096:
            self._seen.add(text)
        label = _lenient(text, self.scheme)
        if label is None:
            return
        if len(self.found) < 16:
            banner = label.banner()
            if banner not in self.found:
                self.found.append(banner)
        self.highest = label if self.highest is None else self.highest.join(label)


class _Inflater:
    """Incremental zlib inflation with a shared budget; output goes to a callback."""

    def __init__(self, owner: MarkingScanner, raw: bool, sink) -> None:
        self._z = zlib.decompressobj(-15 if raw else 15)
        self._owner = owner
        self._sink = sink

    def feed(self, data: bytes) -> bytes | None:
        """Inflate; return the bytes after the end of the deflate stream once it ended, else None."""
        z = self._z
        while data:
            budget = self._owner.inflate_budget()
            if budget <= 0:
                raise _Exhausted()
            out = z.decompress(data, min(INFLATE_STEP, budget))
            self._owner.inflated += len(out)
            if out and self._sink is not None:
                self._sink(out)
            if z.eof:
                return z.unused_data
            data = z.unconsumed_tail
        return None


class _Exhausted(Exception):
    pass


_STREAM_RE = re.compile(rb"(?<![A-Za-z])stream(?:\r\n|\n|\r)")
_FLATE_RE = re.compile(rb"/(?:FlateDecode|Fl)(?![A-Za-z])")
_DICT_WINDOW = 2048


class _Pdf:
    """Splits a PDF into outside text and inflated FlateDecode stream content."""

    def __init__(self, owner: MarkingScanner) -> None:
        self._owner = owner
        self._text = owner.text
        self._pend = b""
        self._ctx = b" "            # the byte before _pend, for the keyword's look-behind
        self._window = b""
        self._inflater: _Inflater | None = None
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
            if self._inflater is not None:
                try:
                    rest = self._inflater.feed(data)
                except zlib.error:
                    rest = data         # corrupt stream: scan what is left as text
                    self._inflater = None
                if rest is None:
                    return
                self._inflater = None
                self._text.boundary()
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
                self._inflater = _Inflater(self._owner, raw=False, sink=self._text.feed)
                self._text.boundary()
            elif b"/Filter" in stream_dict:
                self._skipping = True        # images and other encodings: not text, skip
                self._pend = b""
            self._window = b""
            data = buf[m.end():]

    def _emit(self, text: bytes) -> None:
        if text:
            self._text.feed(text)
            self._window = (self._window + text)[-_DICT_WINDOW:]

    def finish(self) -> None:
        if self._pend:
            self._text.feed(self._pend)
            self._pend = b""


_XML_BREAK_RE = re.compile(rb"</?(?:w:p|a:p|si|c|row|w:tc|w:br|w:tab|a:br|text:p|p)(?:\s[^>]*)?/?>")
_XML_TAG_RE = re.compile(rb"<[^>]*>")
_SCANNED_SUFFIXES = (b".xml", b".rels", b".txt")
_LOCAL, _CENTRAL, _END, _END64 = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06"


class _XmlText:
    """Strips tags from a stream of XML, handing the text to the text scanner."""

    def __init__(self, text: TextScanner) -> None:
        self._text = text
        self._carry = b""

    def feed(self, data: bytes) -> None:
        buf = self._carry + data
        lt = buf.rfind(b"<")
        if lt != -1 and buf.find(b">", lt) == -1 and len(buf) - lt < 4096:
            buf, self._carry = buf[:lt], buf[lt:]
        else:
            self._carry = b""
        self._text.feed(_XML_TAG_RE.sub(b"", _XML_BREAK_RE.sub(b"\n", buf)))

    def finish(self) -> None:
        if self._carry:
            self._text.feed(self._carry)
            self._carry = b""
        self._text.boundary()


class _Zip:
    """Walks local file headers as they stream; see the module docstring."""

    def __init__(self, owner: MarkingScanner) -> None:
        self._owner = owner
        self._buf = b""
        self._state = "header"
        self._need = 30
        self._member: dict = {}
        self._inflater: _Inflater | None = None
        self._xml: _XmlText | None = None
        self._remaining = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            st = self._state
            if st == "raw":                      # structure not understood: scan as text
                self._owner.text.feed(self._buf)
                self._buf = b""
                return
            if st == "done":
                self._buf = b""
                return
            if st == "inflate":
                if not self._buf:
                    return
                data, self._buf = self._buf, b""
                try:
                    rest = self._inflater.feed(data)   # type: ignore[union-attr]
                except zlib.error:
                    self._state = "raw"
                    self._buf = data
                    continue
                if rest is None:
                    return
                self._end_member()
                self._buf = rest
                continue
            if st == "stored":
                take = min(self._remaining, len(self._buf))
                if take and self._xml is not None:
                    self._xml.feed(self._buf[:take])
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
        self._member = {"flags": flags, "method": method, "csize": csize}
        self._buf = self._buf[30:]
        self._state, self._need = "name", name_len + extra_len
        self._member["name_len"] = name_len

    def _name(self) -> None:
        m = self._member
        name = self._buf[:m["name_len"]].lower()
        self._buf = self._buf[self._need:]
        scan = name.endswith(_SCANNED_SUFFIXES)
        deferred = bool(m["flags"] & 0x08)
        self._xml = _XmlText(self._owner.text) if scan else None
        if m["method"] == 8:
            if not scan and not deferred and m["csize"] != 0xFFFFFFFF:
                self._state, self._remaining = "stored", m["csize"]      # skip unread
                return
            self._inflater = _Inflater(self._owner, raw=True,
                                       sink=self._xml.feed if self._xml else None)
            self._state = "inflate"
        elif m["method"] == 0 and not (deferred and m["csize"] == 0) and m["csize"] != 0xFFFFFFFF:
            self._state, self._remaining = "stored", m["csize"]
        else:
            self._state = "raw"                  # unknown method or unknowable size

    def _end_member(self) -> None:
        if self._xml is not None:
            self._xml.finish()
            self._xml = None
        self._inflater = None
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
        if self._state == "raw" and self._buf:
            self._owner.text.feed(self._buf)
        if self._xml is not None:
            self._xml.finish()
        self._buf = b""


SNIFF_BYTES = 4096
_CONTROL = bytes(c for c in range(32) if c not in b"\t\n\r\f\v\x1b") + b"\x7f"


def looks_binary(sample: bytes) -> bool:
    """True for content that is not text (images, archives, encrypted data, UTF-16).

    Random bytes spell "CUI" or "(C)" every few MiB, so scanning binary content as
    text would refuse large uploads at random; a NUL or more than 1% control
    characters in the first 4 KiB marks a body as binary (not scanned)."""
    if b"\0" in sample:
        return True
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    return controls * 100 > len(sample)


class _Skip:
    def feed(self, data: bytes) -> None:
        pass

    def finish(self) -> None:
        pass


class MarkingScanner:
    """The whole-upload scanner: detects the container, routes bytes, joins the labels."""

    def __init__(self, scheme: LevelScheme = DEFAULT_SCHEME, *, max_inflated: int = 1 << 30) -> None:
        self.text = TextScanner(scheme)
        self.max_inflated = max_inflated
        self.inflated = 0
        self.incomplete = False      # True when the inflation budget ran out
        self._head = b""
        self._router: _Pdf | _Zip | _Skip | None = None
        self._kind: str | None = None

    @property
    def kind(self) -> str | None:
        """"text", "pdf", "zip" or "binary" (not scanned) once known."""
        return self._kind

    @property
    def found(self) -> list[str]:
        return self.text.found

    def inflate_budget(self) -> int:
        return self.max_inflated - self.inflated

    def feed(self, data: bytes) -> None:
        if self._kind is None:
            self._head += data
            if len(self._head) < SNIFF_BYTES:
                return
            data, self._head = self._head, b""
            self._choose(data)
        try:
            if self._router is None:
                self.text.feed(data)
            elif not self.incomplete:
                self._router.feed(data)
        except _Exhausted:
            self.incomplete = True

    def _choose(self, head: bytes) -> None:
        if head.startswith(b"%PDF-"):
            self._kind, self._router = "pdf", _Pdf(self)
        elif head.startswith(_LOCAL):
            self._kind, self._router = "zip", _Zip(self)
        elif looks_binary(head[:SNIFF_BYTES]):
            self._kind, self._router = "binary", _Skip()
        else:
            self._kind = "text"

    def finish(self) -> Label | None:
        """The highest label marked anywhere in the body, None if no marking was found."""
        if self._kind is None and self._head:
            self._choose(self._head)
            head, self._head = self._head, b""
            (self._router or self.text).feed(head)
        if self._router is not None and not self.incomplete:
            self._router.finish()
        return self.text.finish()


def scan_bytes(data: bytes, scheme: LevelScheme = DEFAULT_SCHEME) -> Label | None:
    """Convenience for small bodies and tests."""
    s = MarkingScanner(scheme)
    s.feed(data)
    return s.finish()
