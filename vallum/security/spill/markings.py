"""Streaming scan of an upload for classification markings (spill prevention).

Feed the body chunk by chunk (``feed``), then ``finish()`` returns the highest label (the
join of every marking found) or None. Memory stays bounded whatever the body size: each
layer carries a small window between chunks.

The scan reads what a person would read, however the bytes encode it:
- the body's format is sniffed from its first bytes: PDF, zip (docx, xlsx, any archive),
  gzip, bzip2, xz (containers.py); UTF-16/UTF-32 with a byte-order mark are decoded;
  everything else (text, HTML, email, and binary) goes through the text views of
  text.py (NULs, controls, markup, base64 runs, quoted-printable);
- what a container or an encoding holds is scanned by a *nested* scanner, which sniffs
  again, to ``MAX_DEPTH`` levels; deeper containers are not opened and the scan is
  reported ``incomplete`` (Vallum then refuses: fail closed);
- inflation shares one budget per upload: ``max_inflated`` bytes when given, else
  ``64 MiB + 32 x`` the bytes received (zip and gzip bombs stop there, ``incomplete``).

Which text is a marking (banner lines, ``//`` markings, portion marks; not ``(C) 2024``)
is the grammar of grammar.py.
"""

from __future__ import annotations

import binascii
import codecs
import logging
import re
from email.header import decode_header
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from vallum.security.mac.labels import DEFAULT_SCHEME, Label, LevelScheme
from vallum.security.spill import containers
from vallum.security.spill.grammar import MAX_MARKING, TextScanner
from vallum.security.spill.text import TextPipe

__all__ = ["MAX_MARKING", "MarkingScanner", "TextScanner", "scan_bytes", "scan_text"]

log = logging.getLogger(__name__)
MAX_DEPTH = 6
SNIFF_BYTES = 512
BASE_BUDGET = 64 * 1024 * 1024
RATIO_BUDGET = 32

_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_CONTAINERS = ((b"%PDF-", "pdf"), (b"PK\x03\x04", "zip"), (b"\x1f\x8b", "gzip"),
               (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


class Budget:
    """Bytes one upload may inflate, shared by every nested scanner."""

    def __init__(self, fixed: int | None) -> None:
        self.fixed = fixed
        self.received = 0
        self.inflated = 0
        self.exhausted = False
        self.reason = ""

    def allowance(self) -> int:
        cap = self.fixed if self.fixed is not None else BASE_BUDGET + RATIO_BUDGET * self.received
        return cap - self.inflated

    def spend(self, n: int) -> None:
        self.inflated += n


class _Decoded:
    """A text encoding with a byte-order mark, decoded to UTF-8 for the text views."""

    def __init__(self, owner: MarkingScanner, encoding: str) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self._pipe = owner.text_pipe()

    def feed(self, data: bytes) -> None:
        self._pipe.feed(self._decoder.decode(data).encode("utf-8"))

    def finish(self) -> None:
        self._pipe.feed(self._decoder.decode(b"", final=True).encode("utf-8"))


class MarkingScanner:
    """The scanner of one body (or one nested part of it): sniffs, routes, joins labels."""

    def __init__(self, scheme: LevelScheme = DEFAULT_SCHEME, *, max_inflated: int | None = None,
                 depth: int = 0, budget: Budget | None = None, embedded: bool = False) -> None:
        self.scheme = scheme
        self.depth = depth
        self.embedded = embedded     # started at a magic inside bytes that are read as text anyway
        self.budget = budget if budget is not None else Budget(max_inflated)
        self.text = TextScanner(scheme)
        self._pipe: TextPipe | None = None
        self._head = b""
        self._router: Any = None     # container, decoder or text pipe: set by _choose
        self._kind: str | None = None
        self._done = False

    @property
    def kind(self) -> str | None:
        """The sniffed format ("text", "pdf", "zip", "gzip", "utf-16-le", ...) once known."""
        return self._kind

    @property
    def found(self) -> list[str]:
        return self.text.found

    @property
    def incomplete(self) -> bool:
        """True when part of the body could not be scanned (budget or depth): refuse it."""
        return self.budget.exhausted

    @property
    def ended(self) -> bool:
        """True once a container body ended (or broke): what follows is not its business."""
        return bool(getattr(self._router, "ended", False))

    def child(self, *, embedded: bool = False) -> MarkingScanner:
        """A scanner for a part this one holds (an archive member, a decoded run)."""
        return MarkingScanner(self.scheme, depth=self.depth + 1, budget=self.budget, embedded=embedded)

    def leftover(self, data: bytes) -> None:
        """Bytes a container does not account for (corrupt, or after its end): read as text,
        unless this scan started inside bytes that are read as text already."""
        if not self.embedded:
            self.text_pipe().feed(data)

    def adopt(self, child: MarkingScanner) -> None:
        self.text.absorb(child.finish(), child.found)

    def text_pipe(self) -> TextPipe:
        if self._pipe is None:
            self._pipe = TextPipe(self, decode=self.depth < MAX_DEPTH)
        return self._pipe

    def feed(self, data: bytes) -> None:
        if self.depth == 0:
            self.budget.received += len(data)
        if self.budget.exhausted or not data:
            return
        if self._kind is None:
            self._head += data
            if len(self._head) < SNIFF_BYTES:
                return
            data, self._head = self._head, b""
            self._choose(data)
        self._guarded(self._router.feed, data)

    def _guarded(self, step, *args) -> None:
        try:
            step(*args)
        except containers.Exhausted:
            self.budget.exhausted = True
            self.budget.reason = "the decompressed content exceeds the scan budget"
        except Exception:                     # a scanner fault never lets a body through
            log.exception("spill scan fault (%s body): the upload is refused", self._kind)
            self.budget.exhausted = True
            self.budget.reason = "the content could not be parsed"

    def _choose(self, head: bytes) -> None:
        for magic, kind in _CONTAINERS:
            if head.startswith(magic):
                if self.depth >= MAX_DEPTH:
                    self.budget.exhausted = True
                    self.budget.reason = f"containers nested deeper than {MAX_DEPTH} levels"
                    break
                self._kind = kind
                self._router = (containers.Pdf(self) if kind == "pdf" else containers.Zip(self)
                                if kind == "zip" else containers.Decompress(self, kind))
                return
        for bom, encoding in _BOMS:
            if head.startswith(bom):
                self._kind, self._router = encoding, _Decoded(self, encoding)
                return
        self._kind = "text"
        self._router = containers.TextAndStreams(self, containers.speculations(self, head)) \
            if self.depth < MAX_DEPTH and not self.embedded else self.text_pipe()

    def finish(self) -> Label | None:
        """The highest label marked anywhere in the body, None if no marking was found."""
        if self._done:
            return self.text.highest
        self._done = True
        if self._kind is None:
            self._choose(self._head)
            head, self._head = self._head, b""
            if head and not self.budget.exhausted:
                self._guarded(self._router.feed, head)
        if not self.budget.exhausted:
            self._guarded(self._router.finish)
            if self._pipe is not None and self._pipe is not self._router:
                self._guarded(self._pipe.finish)
        return self.text.finish()


def scan_bytes(data: bytes, scheme: LevelScheme = DEFAULT_SCHEME) -> Label | None:
    """Convenience for small bodies and tests."""
    s = MarkingScanner(scheme)
    s.feed(data)
    return s.finish()


_B64_TOKEN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


_PARAM = re.compile(r"^\s*[A-Za-z0-9!#$&+.^_`|~-]+\*?=\s*")


def _field_views(value: str) -> list[bytes]:
    """A short field as written; with path separators as line breaks (``//`` kept, so
    ``reports/TS//NF/x`` holds the line ``TS//NF``); percent-decoded; as header parameters
    (``attachment; filename="TOP SECRET"``, ``max-age=60, TOP SECRET``: each value a line, RFC 5987 values decoded);
    with RFC 2047 words decoded (how S3 carries non-ASCII metadata) and base64 tokens decoded."""
    raw = value.encode("utf-8", "surrogateescape")
    views = [raw, raw.replace(b"/", b"\n"), re.sub(rb"(?<!/)/(?!/)", b"\n", raw)]
    if "%" in value:
        views.append(unquote_to_bytes(value))
    if ";" in value or "=" in value or "," in value:
        params = []
        for part in re.split(r"[;,]", value):
            part = _PARAM.sub("", part).strip().strip('"')
            if "''" in part:                            # RFC 5987: charset'language'value
                part = unquote(part.split("'", 2)[-1], errors="replace")
            params.append(part)
        views.append("\n".join(params).encode("utf-8", "surrogateescape"))
    if "=?" in value:
        try:
            views += [part if isinstance(part, bytes) else part.encode() for part, _ in decode_header(value)]
        except (ValueError, LookupError):
            pass
    for token in _B64_TOKEN.findall(value):
        if len(token) % 4 == 0:
            try:
                views.append(binascii.a2b_base64(token))
            except binascii.Error:
                pass
    return views


def scan_text(value: str, scheme: LevelScheme = DEFAULT_SCHEME) -> tuple[Label | None, bool]:
    """Scan a short field (a key name, a metadata value, a tag): (label, incomplete).
    Path separators count as line breaks, so a key ``CUI/plan.txt`` has a banner line."""
    found: Label | None = None
    incomplete = False
    for view in _field_views(value):
        s = MarkingScanner(scheme)
        s.feed(view)
        label = s.finish()
        incomplete |= s.incomplete
        if label is not None:
            found = label if found is None else found.join(label)
    return found, incomplete
