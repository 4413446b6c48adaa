"""Where a classification marking is, in its real grammar (the text half of spill prevention).

A level word in a document is not a marking: ``Copyright (C) 2024``, ``SECRET LABS AB``,
the Italian ``A CUI`` and a CSV column of ``CUI`` values are ordinary text. Markings
follow CAPCO / CUI-registry conventions, and only these forms count:

- a **banner line**: a line that holds a marking and nothing else but decoration
  (``*``, ``-``, ``=``, ``#``, ``|``, tags, an optional ``Classification:``):
  ``TOP SECRET``, ``SECRET//NOFORN``, ``CUI``, ``CONTROLLED UNCLASSIFIED INFORMATION``;
- an **inline control marking**: a level followed by ``//`` segments anywhere
  (``TOP SECRET//SI//NOFORN``, ``CUI//SP-PRVCY``): the ``//`` grammar does not occur in prose;
- a **portion mark** opening a line (after indentation or a list bullet) and followed by
  the portion's text: ``(S//NF) text``, ``(TS) text``, ``(C) text`` (alone on its line only
  with ``//``: ``(TS)`` alone is a PostScript string). A bare one-letter mark (``(C)``,
  ``(S)``) is *weak*: it does not count when followed by a year or "Copyright"; the
  weak ones are dropped when the document also enumerates with ``(A)``/``(B)`` at line
  starts (legal lists, not portions), and a weak ``(C)`` when the document mentions
  copyright (``(C) Free Software Foundation`` opening a line of a notice).

Words of a multi-word level (``TOP SECRET``) may be separated by any run of white space,
line breaks included, so ``TOP\\nSECRET`` reads as TOP SECRET, never as SECRET.
Markings are upper case, as they are written. The scan is streaming: a bounded window
(``KEEP`` bytes ahead, ``BACK`` bytes behind) is carried between chunks.
"""

from __future__ import annotations

import re
from functools import lru_cache

from vallum.security.mac.labels import Label, LabelError, LevelScheme, parse

MAX_MARKING = 200          # longest marking text considered (bytes)
KEEP = 512                 # carried ahead: longer than any match (decoration + marking)
BACK = 256                 # carried behind: to find the start of a candidate's line (and two before)
_WS = rb"[ \t\r\n\f\v]{0,16}"        # none too: "TOPSECRET", a letter-spaced banner closed up
_DECO = rb"(?:[ \t\r\f\v*=#~|_.:\-]|<[^<>\n]{0,40}>){0,40}"
# after the marking: a field's closing quote and comma (after a key), or a CSV row's empty cells
_FIELD_END = (rb"(?(k)[\"']?[ \t]*[,;]?|(?(q)[\"'](?=(?:[ \t]*[,;][ \t]*(?:[\"'][\"'])?){2})))"
              rb"(?:(?:[ \t]*[,;](?:[ \t]*[\"'][\"'])?){2,})?")
_KEY = rb"[\"']?(?i:classification|classif|security[ _-]?classification)[\"']?[ \t]*[:=][ \t]*[\"']?"
ROT13 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                        b"NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")
_ALIASES = {"CUI": ("CONTROLLED UNCLASSIFIED INFORMATION", "CONTROLLED")}


def _words(name: str) -> bytes:
    return _WS.join(re.escape(w.encode()) for w in name.split())


class Grammar:
    """The compiled patterns of one level scheme (see the module docstring)."""

    DELETE = bytes(c for c in range(256) if c not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ()/")

    def __init__(self, scheme: LevelScheme) -> None:
        names = [n for n, _ in scheme.levels]
        self.alias = {a: n for n in names for a in _ALIASES.get(n, ())}
        every = sorted({*names, *self.alias}, key=len, reverse=True)
        banner_only = [a for a in self.alias if a != "CONTROLLED UNCLASSIFIED INFORMATION"]
        last: dict[bytes, list[list[str]]] = {}
        for n in every:
            last.setdefault(n.split()[-1].encode(), []).append(n.split()[:-1])
        self.closed_up = {n.replace(" ", ""): n for n in every if " " in n}
        self.words = sorted(last)          # a name is found by its last word
        self.residue_words = list(self.words)
        alt = b"|".join(_words(n) for n in every)
        alt_inline = b"|".join(_words(n) for n in every if n not in banner_only)
        abbrevs = sorted({a.encode() for _, a in scheme.levels} | {n.encode() for n in names},
                         key=len, reverse=True)
        alt_abbrev = b"|".join(re.escape(a) for a in abbrevs)
        tail = rb"//[A-Z0-9][A-Z0-9 ,/\-]{0,%d}" % (MAX_MARKING - 20)
        self.line = re.compile(
            rb"^" + _DECO + rb"(?:(?P<k>" + _KEY + rb")|(?P<q>[\"']))?(?P<m>(?:" + alt + rb")(?:" + tail
            + rb")?|(?:" + alt_abbrev + rb")" + tail + rb")" + _FIELD_END + _DECO + rb"$", re.MULTILINE)
        # a "classification" field anywhere (minified JSON, XML attributes): the value, whole
        self.key = re.compile(rb"(?<![A-Za-z])" + _KEY + rb"\Z")
        self.field = re.compile(rb"(?P<m>(?:" + alt + rb")(?:" + tail + rb")?)(?=[\"'<,;}\]\r\n]|\Z)")
        multi = [re.escape(a) for a in abbrevs if len(a) > 1 and a.decode() not in names]   # TS
        self.inline = re.compile(rb"(?<![A-Za-z0-9/_])(?P<m>(?:" + b"|".join([alt_inline, *multi]) + rb")" + tail
                                 + rb")(?![a-z0-9_])")
        # abbreviated levels hold no level word: found by "TS//", "S//" (a banner line, or inline for TS)
        short = [re.escape(a.encode()) for _, a in scheme.levels if a not in names]
        self.abbrev_slashes = [a.encode() + b"//" for _, a in scheme.levels if a not in names]
        self.abbrev_start = re.compile(rb"(?<![A-Za-z0-9_])(?:" + b"|".join(short) + rb")//[A-Z0-9]")
        self.portion_start = re.compile(rb"\((?:" + alt_abbrev + rb")[/)]")
        self.portion = re.compile(
            rb"[ \t\f\v]*(?:[-*>]|\xe2\x80\xa2|\d{1,3}[.)]|[a-z][.)])?[ \t]*(?P<m>\((?:" + alt_abbrev + rb")(?:"
            + tail + rb")?\))")
        self.enumerator = re.compile(rb"\n[ \t]*\([A-Z]\)[ \t]")
        single = {a for a in abbrevs if len(a) == 1}
        self.weak = single
        self.enum_letters = bytes(c for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" if bytes([c]) not in single)
        # For a name's last word, the words that would precede it (TOP before SECRET).
        self.before: dict[bytes, re.Pattern[bytes]] = {}
        for w, leads in last.items():
            alts = [_WS.join(re.escape(x.encode()) for x in p) + _WS for p in leads if p]
            if alts:
                self.before[w] = re.compile(rb"(?:" + b"|".join(alts) + rb")\Z")

    def candidates(self, buf: bytes) -> tuple[list[bytes], bool, list[bytes]]:
        """The level words, whether a portion mark, and the "TS//" forms that may occur in
        ``buf``: found in its residue (a few bytes in a hundred of text or binary), since a
        word made of the characters the residue keeps occurs in ``buf`` only if it does
        there; a word with other characters (a custom scheme's) is always a candidate."""
        residue = buf.translate(None, self.DELETE)
        if not residue:
            return [], False, []
        return ([w for w in self.words if w in residue or w.translate(None, self.DELETE) != w],
                self.portion_start.search(residue) is not None,
                [a for a in self.abbrev_slashes if a in residue or a.translate(None, self.DELETE) != a])

    def maybe(self, buf: bytes, *, spaced: bool = False, rot13: bool = False) -> bool:
        """Cheap prefilter: False when no level word, no "(X" and no "TS//" can be in ``buf``
        (``spaced``: nor once letter-spaced text is closed up; ``rot13``: in ``buf`` rotated,
        which is the residue rotated: rot13 maps the kept characters among themselves)."""
        residue = buf.translate(None, self.DELETE)
        if not residue:
            return False
        if rot13:
            residue = residue.translate(ROT13)
        if any(w in residue for w in self.residue_words) or self.portion_start.search(residue) is not None:
            return True
        if b"//" not in residue:
            return False
        where = residue if spaced else buf.translate(ROT13) if rot13 else buf
        return any(a in where for a in self.abbrev_slashes)


_GRAMMARS: dict[int, Grammar] = {}


def grammar(scheme: LevelScheme) -> Grammar:
    g = _GRAMMARS.get(id(scheme))
    if g is None:
        g = _GRAMMARS[id(scheme)] = Grammar(scheme)
    return g


@lru_cache(maxsize=2048)
def lenient(text: bytes, scheme: LevelScheme) -> Label | None:
    """Parse a matched marking, dropping trailing words that are not part of it
    (``SECRET//NOFORN THE END`` -> SECRET//NOFORN); never below the level word."""
    s = " ".join(text.decode("ascii", "replace").split())
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
    segments = s.split("//")
    g = grammar(scheme)
    head = g.closed_up.get(segments[0], segments[0])          # "TOPSECRET" -> "TOP SECRET"
    head = g.alias.get(head, head)
    segments[0] = head
    try:
        best = parse(head, scheme)
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
    """Finds markings in a stream of text bytes; ``finish`` gives their join (or None)."""

    def __init__(self, scheme: LevelScheme, *, weak_marks: bool = True) -> None:
        self.scheme = scheme
        self.weak_marks = weak_marks      # one-letter portion marks count (not in a rot13 view)
        self._g = grammar(scheme)
        self._buf = b"\n"                 # the stream starts at a line start
        self._done = 1                    # candidates before this index are decided
        self.highest: Label | None = None
        self._weak: dict[bytes, Label] = {}   # one-letter portion marks, decided at the end
        self._enumerates = False          # "(A)", "(B)" open lines: a legal list, not portions
        self._copyright = False           # "(C)" opening a line of a copyright notice
        self.found: list[str] = []        # distinct markings, first few, for alerts
        self._seen: set[bytes] = set()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        buf = self._buf + data
        if not self._copyright and (b"opyright" in data or b"OPYRIGHT" in data or b"\xc2\xa9" in data):
            self._copyright = True
        if not self._enumerates and b"(" in data:
            for m in self._g.enumerator.finditer(buf, max(0, self._done - 8)):
                if m.group()[-3] in self._g.enum_letters:
                    self._enumerates = True
                    break
        limit = len(buf) - KEEP
        if limit > self._done:
            self._scan(buf, self._done, limit)
            self._done = limit
        cut = max(0, self._done - BACK)
        self._buf = buf[cut:]
        self._done -= cut

    def worth(self, data: bytes, *, spaced: bool = False, rot13: bool = False) -> bool:
        """Could ``data`` (``rot13``: rotated) hold a marking? (the prefilter, for decoded fragments)"""
        return self._g.maybe(data, spaced=spaced, rot13=rot13)

    def boundary(self) -> None:
        """End of a text unit (a PDF string, a zip member): words must not join across it."""
        self.feed(b"\n")

    def absorb(self, label: Label | None, found: list[str]) -> None:
        """Join what a nested scan (a decoded or inflated part) found."""
        if label is None:
            return
        for banner in found:
            if len(self.found) < 16 and banner not in self.found:
                self.found.append(banner)
        self.highest = label if self.highest is None else self.highest.join(label)

    def finish(self) -> Label | None:
        self._scan(self._buf + b"\n", self._done, len(self._buf))
        self._buf, self._done = b"\n", 1
        for letter, label in self._weak.items():
            if not self._enumerates and not (letter == b"C" and self._copyright):
                self.absorb(label, [label.banner()])
        self._weak = {}
        return self.highest

    def _scan(self, buf: bytes, pos: int, limit: int) -> None:
        g = self._g
        lo, hi = max(0, pos - BACK), limit + KEEP
        # only what the residue holds is looked for (no copy of the window when it is whole)
        words, portions, abbrevs = g.candidates(buf if lo == 0 and hi >= len(buf) else buf[lo:hi])
        for word in words:
            i = buf.find(word, pos, limit + len(word))
            while i != -1 and i < limit:
                self._at_word(buf, i, word)
                i = buf.find(word, i + 1, limit + len(word))
        for c in g.portion_start.finditer(buf, pos, limit + 8) if portions else ():
            if c.start() >= limit:
                break
            self._at_portion(buf, c.start())
        for a in abbrevs:                               # finds, then the pattern: C speed
            i = buf.find(a, pos, limit + len(a))
            while i != -1 and i < limit:
                if g.abbrev_start.match(buf, i) is not None:
                    self._at_word(buf, i, b"")
                i = buf.find(a, i + 1, limit + len(a))

    def _line_starts(self, buf: bytes, i: int, lines: int) -> list[int]:
        """Starts of the line holding ``i`` and of up to ``lines - 1`` lines before it."""
        starts, floor, at = [], max(0, i - BACK + 8), i
        for _ in range(lines):
            nl = buf.rfind(b"\n", floor, at)
            if nl == -1:
                break
            starts.append(nl + 1)
            at = nl
        return starts

    def _at_word(self, buf: bytes, i: int, word: bytes) -> None:
        g = self._g
        start = i
        before = g.before.get(word)
        if before is not None:
            m = before.search(buf, max(0, i - 64), i)
            if m is not None:
                start = m.start()
        for s in (start, i):
            m = g.inline.match(buf, s)
            if m is not None:
                self._record(m.group("m"))
                break
        if g.key.search(buf, max(0, start - 48), start) is not None:
            m = g.field.match(buf, start)
            if m is not None:
                self._record(m.group("m"))
        for ls in self._line_starts(buf, start, 3):
            m = g.line.match(buf, ls)
            if m is not None and m.start("m") <= i < m.end("m"):
                self._record(m.group("m"))
                return

    def _at_portion(self, buf: bytes, p: int) -> None:
        starts = self._line_starts(buf, p, 1)
        if not starts:
            return
        m = self._g.portion.match(buf, starts[0])
        if m is None or m.start("m") != p:
            return
        mark = m.group("m")
        after = buf[m.end():m.end() + 64]
        if after[:1] not in (b" ", b"\t", b"\r", b"\n", b""):
            return                                  # glued: "(S)ection", "(C)opyright"
        text = after.split(b"\n", 1)[0].strip()
        if not text and b"//" not in mark:
            return                                  # "(TS)" alone on a line: a PostScript string
        inner = mark[1:-1]
        if inner in self._g.weak:
            if not self.weak_marks:
                return
            if text[:1].isdigit() or text[:9].lower() == b"copyright":
                return                              # "(C) 2024", "(C) Copyright 1997"
            label = lenient(mark, self.scheme)
            if label is not None:
                self._weak[inner] = label
            return
        self._record(mark)

    def _record(self, text: bytes) -> None:
        if text in self._seen:            # the same banner on every page: joined already
            return
        if len(self._seen) < 4096:
            self._seen.add(text)
        label = lenient(text, self.scheme)
        if label is not None:
            self.absorb(label, [label.banner()])
