"""Decode layers of the spill scan: text that is another text encoded (base64 has its own,
faster view in text.py; this module reads the rest).

- **runs**: a token of 16 or more printable characters without spaces (continued on the
  next line when it wraps) is decoded as hex, base32, URL-safe or short base64, Ascii85 or
  base85, whichever its alphabet allows; what decodes to text (or to a known container) is
  scanned as a nested body, which sniffs and decodes again (base64 of base64, hex of gzip),
  to the depth and within the budget of the whole scan;
- **hex bytes** separated by spaces or colons (``54 4f 50 20``) are read as hex;
- **uuencode**: the lines between ``begin 644 name`` and ``end``;
- **UTF-7**: ``+AFQ-`` shifted runs decoded in place, in a copy of their lines;
- **rot13**: text (lines of a feed 90% printable) rotated, scanned for the strong forms only (banner lines, ``//``
  markings, portion marks of two letters or more): a one-letter portion mark rotated
  (``(F) text`` is ``(S) text``) is ordinary enumeration too often.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import zlib
from collections.abc import Iterator
from typing import Any

from vallum.security.spill.grammar import ROT13, TextScanner
from vallum.security.spill.unicode import fold

LINE_CARRY = 64 * 1024        # a line longer than this is cut (a run continues across the cut)
RUN_STEP = 64 * 1024          # a run's characters are decoded this many at a time
HEAD = 512                    # decoded bytes looked at before a run is worth a nested scan

# Prefilters at C speed (a regex over every byte runs at 30-60 MB/s): printable characters
# as "x", hex digits as "h", spaces and colons as "s"; a run or hex bytes exist only where
# their translated shape does.
_SHAPE = bytes(0x78 if 33 <= c <= 126 else 0x20 for c in range(256))
_HEX_SHAPE = bytes(0x68 if bytes([c]) in b"0123456789abcdefABCDEF" else 0x73 if c in b" :" else 0x2E
                   for c in range(256))
_RUN_SHAPE = b"x" * 16
_HEX_BYTES_SHAPE = b"hhs" * 7 + b"hh"
_LAST_LINE = re.compile(rb"[ \t]*\r?\n[ \t]*([!-~]{1,15})[ \t]*(?=\r?\n|\Z)")     # a wrapped run's short end
_HEX_BYTES = re.compile(rb"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}[ :]){7,}[0-9A-Fa-f]{2}(?![0-9A-Za-z])")
_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} [^\n]*\n", re.MULTILINE)
_UTF7 = re.compile(rb"\+[A-Za-z0-9+/]{3,}-?")
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_ALPHABETS = {       # kind -> (characters, quantum); tried in this order
    "hex": (b"0123456789abcdefABCDEF", 2),
    "base32": (b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=", 8),
    "base64": (_B64, 4),
    "base64url": (_B64[:-3] + b"-_=", 4),
    "ascii85": (bytes(range(33, 118)) + b"z~<", 5),
    "base85": (b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~", 5),
}
_STRIP = b"\"'(),;:[]{}<>`."
# A token's class shape: "z" for the base64 characters neither hex nor base32 holds (g-z,
# "+", "/"), "b" for the other base64 characters, "o" for other printable ones. A token of
# 40 or more "b"/"z" with a "z" is a long base64 run, which the base64 view reads and
# ``_kinds`` gives nothing: while no run is open it is skipped (most lines of a base64
# body; a Python step per such line ran at 8 MiB/s).
_CLASS = bytes(0x7A if c in b"ghijklmnopqrstuvwxyz+/" else 0x62 if c in _B64 else 0x6F if 33 <= c <= 126
               else 0x20 for c in range(256))
_MAGIC = (b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\xff\xfe", b"\xfe\xff", b"{\\rtf")
_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"
_TEXT = bytes(range(33, 127)) + b" \n\t\r"


def _decode(kind: str, chars: bytes) -> bytes:
    """Decode ``chars`` (whole quanta, padding allowed) of ``kind``; b"" when they are not."""
    try:
        if kind == "hex":
            return binascii.unhexlify(chars)
        if kind == "base32":
            return base64.b32decode(chars + b"=" * (-len(chars) % 8))
        if kind == "base64":
            return binascii.a2b_base64(chars)
        if kind == "base64url":
            return base64.urlsafe_b64decode(chars + b"=" * (-len(chars) % 4))
        if kind == "ascii85":
            return base64.a85decode(chars)
        return base64.b85decode(chars)
    except (ValueError, binascii.Error):
        return b""


def _form(kind: str, raw: bytes) -> bytes:
    """A token as encoded text of ``kind``: quotes and brackets around it are not part of
    it, except in the 85 alphabets, which hold brackets."""
    if kind in ("ascii85", "base85"):
        return raw[1:-1] if len(raw) > 1 and raw[:1] == raw[-1:] and raw[:1] in b"\"'" else raw
    return raw.strip(_STRIP)


def _fits(kind: str, raw: bytes) -> bool:
    token = _form(kind, raw)
    return bool(token) and not token.translate(None, _ALPHABETS[kind][0])


def _kinds(raw: bytes, base64_view: bool) -> list[str]:
    """Which encodings ``raw``'s alphabet allows (the base64 view in text.py reads
    base64 runs of 40 characters or more, and padded ones), and whose first characters
    decode to something worth reading (text, a container, a deflate stream)."""
    narrow = raw.strip(_STRIP)
    if not narrow.translate(None, _B64):             # the base64 alphabet: hex, base32 or base64
        if len(narrow) < 16:
            return []
        if not narrow.translate(None, _ALPHABETS["hex"][0]):
            kinds = ["hex"]                          # valid base32/64 too: not decoded twice
        else:
            kinds = [] if narrow.translate(None, _ALPHABETS["base32"][0]) else ["base32"]
            if not (base64_view and (len(narrow) >= 40 or narrow.endswith(b"="))):
                kinds.append("base64")
    else:
        kinds = [k for k in ("base64url", "ascii85", "base85") if len(_form(k, raw)) >= 16
                 and not _form(k, raw).translate(None, _ALPHABETS[k][0])]
    return [k for k in kinds if _plausible(k, _form(k, raw))]


_DIGITS85 = {"ascii85": {c: c - 33 for c in range(33, 118)},
             "base85": {c: i for i, c in enumerate(_ALPHABETS["base85"][0])}}


def _head85(token: bytes, kind: str) -> bytes:
    """The first (up to) 16 bytes of an Ascii85/base85 token, b"" if they do not decode (the
    library decoders cost 100 us a call, and most tokens tried are paths and URLs)."""
    digits = _DIGITS85[kind]
    out = bytearray()
    for g in range(0, min(len(token), 20) - 4, 5):
        if kind == "ascii85" and token[g] == 0x7A:       # "z": four zero bytes (then misaligned: give up)
            return b""
        n = 0
        for c in token[g:g + 5]:
            d = digits.get(c)
            if d is None:
                return b""
            n = n * 85 + d
        if n > 0xFFFFFFFF:
            return b""
        out += n.to_bytes(4, "big")
    return bytes(out)


def _plausible(kind: str, token: bytes) -> bool:
    """Do the first characters of ``token`` decode to what a run must start with? (Cheap:
    most long tokens are paths, URLs and identifiers, which decode to noise.)"""
    quantum = _ALPHABETS[kind][1]
    if quantum == 5:
        decoded = _head85(token.removeprefix(b"<~") if kind == "ascii85" else token, kind)
    else:
        head = token[:quantum * 8]
        decoded = _decode(kind, head[:len(head) // quantum * quantum])
    if not decoded:
        return False
    if decoded.startswith(_MAGIC) or not decoded.translate(None, _PRINTABLE):
        return True
    for wbits in (-15, 15):
        try:
            zlib.decompressobj(wbits).decompress(decoded, 1)
            return True                              # still a plausible deflate stream
        except zlib.error:
            pass
    return False


class _Run:
    """One encoded run being decoded into its nested scan."""

    def __init__(self, owner: Any, kind: str) -> None:
        self.owner = owner
        self.kind = kind
        self.quantum = _ALPHABETS[kind][1]
        self.pending = b""
        self.head = b""
        self.child: Any = None
        self.dead = False
        self.started = False

    def feed(self, chars: bytes, final: bool = False) -> None:
        if self.dead:
            return
        if self.kind == "ascii85" and not self.started and chars.startswith(b"<~"):
            chars = chars[2:]                                   # Adobe's start mark
        self.started = True
        chars = self.pending + chars
        if self.kind == "ascii85" and b"~>" in chars:          # Adobe's end mark
            chars, final = chars[:chars.index(b"~>")], True
        n = len(chars) if final else len(chars) // self.quantum * self.quantum
        if self.kind == "hex" and n % 2:
            n -= 1
        self.pending = chars[n:]
        decoded = _decode(self.kind, chars[:n]) if n else b""
        if n and not decoded and not final:
            self.dead = True           # not this encoding after all
            return                     # (at the end: a partial group; what came before counts)
        if self.child is None:
            self.head += decoded
            if len(self.head) < HEAD and not final:
                return
            decoded, self.head = self.head, b""
            if not decoded or not worth_decoding(self.owner, decoded):
                self.dead = True
                return
            self.child = self.owner.child()
        if decoded:
            self.child.feed(decoded)

    def close(self) -> None:
        self.feed(b"", final=True)
        if self.child is not None:
            self.owner.adopt(self.child)
            self.child = None


def worth_decoding(owner: Any, head: bytes) -> bool:
    """Is a decoded run's start text (or a container) worth a nested scan?"""
    if head.startswith(_MAGIC):
        return True
    if owner.text.worth(head):
        return True
    if len(head.translate(None, _PRINTABLE)) * 10 <= len(head):        # 90% printable
        return True
    for wbits in (-15, 15):                                            # raw deflate or zlib, no magic
        try:
            if len(zlib.decompressobj(wbits).decompress(head, 64)) >= 16:
                return True
        except zlib.error:
            pass
    return False


_INERT = re.compile(rb"(?:(?=[bz]{40})b*z[bz]* +)+")     # long base64 runs, over _CLASS


class _RunsOf:
    """(start, end) of every run of 16 or more printable characters, found in ``shape``
    (the text translated by _SHAPE) with finds, at C speed. While ``skip_base64`` is set,
    long base64 runs (see _CLASS), one after the other, are passed over in one match."""

    def __init__(self, shape: bytes, buf: bytes) -> None:
        self._shape = shape
        self._buf = buf
        self._cls = b""
        self._pos = shape.find(_RUN_SHAPE)
        self.skip_base64 = False

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return self

    def __next__(self) -> tuple[int, int]:
        shape, pos = self._shape, self._pos
        while pos != -1:
            end = shape.find(b" ", pos + 16)
            end = len(shape) if end == -1 else end
            if self.skip_base64 and end - pos >= 40:
                self._cls = self._cls or self._buf.translate(_CLASS)
                m = _INERT.match(self._cls, pos)
                if m is not None:
                    pos = shape.find(_RUN_SHAPE, m.end())
                    continue
            self._pos = shape.find(_RUN_SHAPE, end)
            return pos, end
        self._pos = -1
        raise StopIteration


def _utf7_word(token: bytes) -> bytes | None:
    """A UTF-7 shifted run as the text it encodes, if that is printable and reads as
    Latin letters (look-alikes folded); None for noise."""
    try:
        text = codecs.utf_7_decode(token if token.endswith(b"-") else token + b"-")[0]
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or (not text.isascii() and max(text) >= "\u3000" and max(text) < "\ua4d0"):
        return None                      # CJK and the like: nothing folds to a Latin letter there
    return text.encode("utf-8") if fold(text).isascii() else None


class EncodedRuns:
    """Finds encoded runs in a text stream and scans each decoded (the module docstring)."""

    def __init__(self, owner: Any, *, base64_view: bool = True) -> None:
        self._owner = owner
        self._base64_view = base64_view
        self._carry = b""
        self._runs: list[_Run] = []          # the runs open at the end of the last line fed
        self._uu: Any = None                 # a uuencoded body's scan, between begin and end
        self._rot = TextScanner(owner.scheme, weak_marks=False)

    def feed(self, data: bytes) -> None:
        buf = self._carry + data
        nl = buf.rfind(b"\n")
        if nl == -1 and len(buf) < LINE_CARRY:
            self._carry = buf
            return
        cut = nl + 1 if nl != -1 else len(buf)
        self._carry = buf[cut:]
        self._lines(buf[:cut])

    def finish(self) -> None:
        if self._carry:
            carry, self._carry = self._carry, b""
            self._lines(carry + b"\n")
        self._close_runs()
        if self._uu is not None:
            self._owner.adopt(self._uu)
            self._uu = None
        self._owner.text.absorb(self._rot.finish(), self._rot.found)

    def _lines(self, buf: bytes) -> None:
        if self._uu is not None or b"begin" in buf:
            buf = self._uudecode(buf)
        shape = buf.translate(_SHAPE)
        self._tokens(buf, shape)
        hexes = buf.translate(_HEX_SHAPE).find(_HEX_BYTES_SHAPE)
        for m in _HEX_BYTES.finditer(buf, max(0, hexes - 1)) if hexes != -1 else ():
            run = _Run(self._owner, "hex")
            run.feed(m.group().translate(None, b" :"))
            run.close()
        if b"+" in buf:
            self._utf7(buf)
        if self._rot.worth(buf, rot13=True):          # prefiltered without rotating everything
            text = len(buf) - len(buf.translate(None, _TEXT))
            if text * 10 >= len(buf) * 9:                       # rot13 is of text (90% printable)
                self._rot.feed(buf.translate(ROT13))

    def _tokens(self, buf: bytes, shape: bytes) -> None:
        runs, self._runs = self._runs, []
        prev_end = 0
        tokens = _RunsOf(shape, buf)
        # a token _kinds gives nothing, read while no run is open, changes nothing: skipped
        tokens.skip_base64 = self._base64_view and not runs
        for start, end in tokens:
            token = buf[start:end]
            gap = buf[prev_end:start] if runs and start - prev_end <= 64 else b"x"
            joins = not gap.strip() and (b"\n" in gap or prev_end == 0)   # the buffer starts a line
            if not joins:
                self._close(runs)
                runs = [_Run(self._owner, k) for k in _kinds(token, self._base64_view)]
            else:
                still = [r for r in runs if _fits(r.kind, token)]
                self._close([r for r in runs if r not in still])
                runs = still
            for run in runs:
                run.feed(_form(run.kind, token))
            runs = [r for r in runs if not r.dead]
            prev_end = end
            last = _LAST_LINE.match(buf, end) if runs else None
            if last is not None:
                for run in runs:
                    if _fits(run.kind, last.group(1)):
                        run.feed(_form(run.kind, last.group(1)))
                self._close(runs)
                runs = []
                prev_end = last.end()
            tokens.skip_base64 = self._base64_view and not runs
        if runs and len(buf) - prev_end <= 64 and not buf[prev_end:].strip():
            self._runs = runs                 # the run may go on in the next line
        else:
            self._close(runs)

    def _close(self, runs: list[_Run]) -> None:
        for run in runs:
            run.close()

    def _close_runs(self) -> None:
        runs, self._runs = self._runs, []
        self._close(runs)

    def _uudecode(self, buf: bytes) -> bytes:
        """Decode the uuencoded lines of ``buf`` into their nested scan; return the rest."""
        pos = 0
        out = []
        while pos < len(buf):
            if self._uu is None:
                m = _UU_BEGIN.search(buf, pos)
                if m is None:
                    break
                out.append(buf[pos:m.end()])
                pos = m.end()
                self._uu = self._owner.child()
                continue
            nl = buf.find(b"\n", pos)
            line = buf[pos:nl if nl != -1 else len(buf)].rstrip(b"\r")
            pos = nl + 1 if nl != -1 else len(buf)
            if line.startswith(b"end") and line.strip() in (b"end", b"===="):
                self._owner.adopt(self._uu)
                self._uu = None
                continue
            try:
                decoded = binascii.a2b_uu(line)
            except binascii.Error:
                self._owner.adopt(self._uu)
                self._uu = None
                out.append(line + b"\n")
                continue
            self._uu.feed(decoded)
        out.append(buf[pos:])
        return b"".join(out)

    def _utf7(self, buf: bytes) -> None:
        """The lines holding UTF-7 shifted runs that decode to Latin letters, decoded in
        place, scanned as a nested body (most "+abc" in code and binary is noise)."""
        windows: list[tuple[int, int]] = []
        for m in _UTF7.finditer(buf):
            if _utf7_word(m.group()) is None:
                continue
            lo = buf.rfind(b"\n", max(0, m.start() - 512), m.start()) + 1 or max(0, m.start() - 512)
            hi = buf.find(b"\n", m.end(), m.end() + 512)
            hi = min(len(buf), m.end() + 512) if hi == -1 else hi
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
            else:
                windows.append((lo, hi))
        if windows:
            child = self._owner.child()
            for lo, hi in windows:
                child.feed(_UTF7.sub(lambda w: _utf7_word(w.group()) or w.group(), buf[lo:hi]) + b"\n")
            self._owner.adopt(child)
