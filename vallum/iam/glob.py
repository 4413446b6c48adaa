"""Wildcard matching for policy resources, actions, StringLike and ArnLike, without regexes.

Why: a glob compiled to a regex (``.*a.*b.*...``) backtracks; one bucket policy with a
few stars and one anonymous GET stalled the whole gateway for seconds. Here a pattern
is split at its ``*`` into segments (``?`` matches any one character inside a segment):
the first segment must start the value, the last must end it, and each middle segment is
found at its leftmost place after the previous one. Leftmost is always right for globs,
so the scan only moves forward and never retries: the work is one pass over the value
per segment search (``str.find``, or a fixed-length ``re`` search for a segment with
``?``), never exponential.
"""

from __future__ import annotations

import re
from functools import lru_cache

# One segment: (length, needle), the needle a str (no "?") or a fixed-length re.Pattern.
Segment = tuple[int, "str | re.Pattern[str]"]


class Glob:
    """A compiled pattern; ``fullmatch(value)`` is True on a match, None otherwise (the
    re.Pattern convention callers already use)."""

    __slots__ = ("segments", "star", "fold", "minlen", "text")

    def __init__(self, parts: list[tuple[str, bool]], fold: bool = False) -> None:
        """``parts``: (text, literal) pieces; in a non-literal piece ``*`` and ``?`` are
        wildcards, in a literal one (a substituted policy variable) every char is itself."""
        self.fold = fold
        segments: list[list[str | None]] = [[]]        # None stands for "?"
        for text, literal in parts:
            if fold:
                text = text.lower()
            for c in text:
                if literal:
                    segments[-1].append(c)
                elif c == "*":
                    segments.append([])
                else:
                    segments[-1].append(None if c == "?" else c)
        self.star = len(segments) > 1
        self.segments: tuple[Segment, ...] = tuple(_segment(s, fold) for s in segments)
        self.minlen = sum(n for n, _ in self.segments)
        self.text = "".join(t for t, _ in parts)

    def fullmatch(self, value: str) -> bool | None:
        if self.fold:
            value = value.lower()
        segs = self.segments
        if not self.star:
            n, needle = segs[0]
            return True if len(value) == n and _at(needle, value, 0) else None
        if len(value) < self.minlen:
            return None
        first, last = segs[0], segs[-1]
        end = len(value) - last[0]
        if not _at(first[1], value, 0) or not _at(last[1], value, end):
            return None
        pos = first[0]
        for n, needle in segs[1:-1]:
            i = value.find(needle, pos, end) if isinstance(needle, str) else _search(needle, value, pos, end)
            if i < 0:
                return None
            pos = i + n
        return True

    def __repr__(self) -> str:
        return f"Glob({self.text!r})"


class AnyGlob:
    """Several patterns, matching when any does (a statement's Action or Resource list)."""

    __slots__ = ("globs",)

    def __init__(self, globs: tuple[Glob, ...]) -> None:
        self.globs = globs

    def fullmatch(self, value: str) -> bool | None:
        for g in self.globs:
            if g.fullmatch(value):
                return True
        return None


def _segment(chars: list[str | None], fold: bool) -> Segment:
    if None not in chars:
        return len(chars), "".join(chars)          # type: ignore[arg-type]
    body = "".join("." if c is None else re.escape(c) for c in chars)
    return len(chars), re.compile(body, re.DOTALL)


def _at(needle: str | re.Pattern[str], value: str, i: int) -> bool:
    if isinstance(needle, str):
        return value.startswith(needle, i)
    return needle.match(value, i) is not None


def _search(needle: re.Pattern[str], value: str, pos: int, end: int) -> int:
    m = needle.search(value, pos, end)
    return m.start() if m else -1


@lru_cache(maxsize=8192)
def compile_glob(pattern: str, ignore_case: bool = False) -> Glob:
    """'*' any run, '?' any one character; everything else literal."""
    return Glob([(pattern, False)], ignore_case)


def any_of(patterns: tuple[str, ...] | list[str], ignore_case: bool = False) -> AnyGlob:
    return AnyGlob(tuple(compile_glob(p, ignore_case) for p in patterns))
