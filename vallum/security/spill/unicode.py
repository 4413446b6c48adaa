"""What a reader sees in non-ASCII text, for the spill scan: letters that look like the
Latin letters of a marking read as them.

``fold`` maps compatibility forms (full-width ``ＳＥＣＲＥＴ``, mathematical letters,
ligatures) to their plain letters (NFKD), drops combining marks (``S\u0301ECRET``, accents
over every letter) and zero-width characters, turns Unicode spaces into spaces, and reads
the Cyrillic, Greek and other capitals that are drawn like Latin ones as those (``ТОР`` in
Cyrillic is ``TOP``). Real Greek or Russian prose folds to Latin-looking noise, never to a
marking: no script here has look-alikes for every letter of the level words (Cyrillic
has no R, F, D or L; Greek no S, C, D, F, L, R).
"""

from __future__ import annotations

import unicodedata
from functools import cache

_LOOKALIKE = {
    # Cyrillic capitals and the lower-case forms drawn like Latin ones
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H",
    "\u041e": "O", "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0425": "X", "\u0405": "S",
    "\u0406": "I", "\u0408": "J", "\u04c0": "I", "\u0423": "Y", "\u050c": "G", "\u051a": "Q",
    "\u051c": "W", "\u0500": "D", "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p",
    "\u0441": "c", "\u0443": "y", "\u0445": "x", "\u0455": "s", "\u0456": "i", "\u0458": "j",
    # Greek
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I",
    "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T",
    "\u03a5": "Y", "\u03a7": "X", "\u03f9": "C", "\u03f3": "j", "\u03bf": "o",
    # Armenian, Cherokee, Lisu and Latin small capitals drawn like Latin capitals
    "\u0555": "O", "\u054d": "U", "\u0547": "C", "\u13a0": "D", "\u13a1": "R", "\u13a2": "T",
    "\u13a9": "Y", "\u13aa": "A", "\u13ab": "J", "\u13ac": "E", "\u13b3": "W", "\u13b7": "M",
    "\u13bb": "H", "\u13bd": "Y", "\u13c0": "G", "\u13c2": "h", "\u13c3": "Z", "\u13cf": "b",
    "\u13d4": "W", "\u13d5": "S", "\u13d9": "V", "\u13da": "S", "\u13de": "L", "\u13df": "C",
    "\u13e2": "P", "\u13e6": "K", "\ua4d0": "B", "\ua4d1": "P", "\ua4d2": "d", "\ua4d3": "D",
    "\ua4d4": "T", "\ua4d6": "G", "\ua4d7": "K", "\ua4d9": "J", "\ua4da": "C", "\ua4dc": "Z",
    "\ua4dd": "F", "\ua4df": "M", "\ua4e0": "N", "\ua4e1": "L", "\ua4e2": "S", "\ua4e3": "R",
    "\ua4e6": "V", "\ua4e7": "H", "\ua4ea": "W", "\ua4eb": "X", "\ua4ec": "Y", "\ua4ee": "A",
    "\ua4f0": "E", "\ua4f2": "I", "\ua4f3": "O", "\ua4f4": "U",
    # slashes and dashes drawn like "/" and "-"
    "\u2044": "/", "\u2215": "/", "\u29f8": "/", "\u2010": "-", "\u2011": "-", "\u2012": "-",
    "\u2013": "-", "\u2212": "-",
}
_SPACES = (0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
_INVISIBLE = (0xAD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, *range(0x200B, 0x2010),
              *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0x3164, 0xFEFF, 0xFFA0)


@cache
def _table() -> dict[int, str | None]:
    """Built on first use (a fifth of a second): most bodies are ASCII."""
    table: dict[int, str | None] = {ord(k): v for k, v in _LOOKALIKE.items()}
    table.update({c: " " for c in _SPACES})
    table.update({c: None for c in _INVISIBLE})
    for c in (*range(0x300, 0xD800), *range(0xF900, 0x20000)):   # combining marks (planes 0 and 1)
        if unicodedata.category(chr(c)) == "Mn":
            table[c] = None
    for c in range(0xFE00, 0xFE10):                  # variation selectors
        table[c] = None
    for c in range(0xE0100, 0xE01F0):
        table[c] = None
    for c in range(0xE0000, 0xE0080):                # tag characters
        table[c] = None
    return table


def fold(text: str) -> str:
    """``text`` as the Latin letters a reader sees (see the module docstring)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKD", text).translate(_table())
