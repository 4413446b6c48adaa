"""Pure S3 listing logic shared by every backend: prefix, marker, delimiter roll-up, truncation.

A backend supplies ordered entry streams; this module decides what a page
holds. When a key rolls up into a common prefix the stream is abandoned and
re-opened *past* that prefix (``successor``), so a delimiter listing costs one
seek per prefix however many keys sit under it.

Python compares str by code point, which is UTF-8 byte order for every valid
(surrogate-free) string, i.e. the order S3 lists in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from vallum.meta.records import ListPage

E = TypeVar("E")

_MAX_CHAR = 0x10FFFF


def successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``
    (None when no such string exists, e.g. for ""): the place to seek to skip them all."""
    chars = list(prefix)
    while chars:
        c = ord(chars.pop())
        if c < _MAX_CHAR:
            c += 1
            if 0xD800 <= c <= 0xDFFF:       # surrogates never occur in valid keys
                c = 0xE000
            return "".join(chars) + chr(c)
    return None


@dataclass
class Page(Generic[E]):
    """Entries and common prefixes of one page, and which kind came last in merged order."""

    entries: list[E]
    prefixes: list[str]
    truncated: bool
    last_entry_is_prefix: bool = False


def start_of(prefix: str, marker: str) -> tuple[str, bool]:
    """Where the scan begins: (key, inclusive). Past the marker, but never before the prefix."""
    if marker < prefix:
        return prefix, True
    return marker, False


def paginate(stream: Iterator[E], seek: Callable[[str], Iterator[E]], key_of: Callable[[E], str],
             *, prefix: str, delimiter: str, marker: str, limit: int) -> Page[E]:
    """Fill one page from ``stream`` (entries after the marker, in key order).

    ``seek(k)`` returns a fresh stream of entries with key >= k. A common prefix
    <= ``marker`` was returned on an earlier page, so it is skipped. The page is
    truncated only if another entry or prefix really follows.
    """
    page: Page[E] = Page([], [], False)
    if limit <= 0:                     # AWS: max-keys=0 answers empty, not truncated
        return page
    count = 0
    plen = len(prefix)
    while True:
        item = next(stream, None)
        if item is None:
            return page
        key = key_of(item)
        if not key.startswith(prefix):
            if key < prefix:
                continue
            return page                 # past every key under the prefix
        cut = key.find(delimiter, plen) if delimiter else -1
        if cut >= 0:
            common = key[:cut + len(delimiter)]
            if common > marker:
                if count == limit:
                    page.truncated = True
                    return page
                page.prefixes.append(common)
                page.last_entry_is_prefix = True
                count += 1
            nxt = successor(common)
            if nxt is None:
                return page
            stream = seek(nxt)
            continue
        if count == limit:
            page.truncated = True
            return page
        page.entries.append(item)
        page.last_entry_is_prefix = False
        count += 1


def to_list_page(page: Page[E], key_of: Callable[[E], str], convert: Callable[[E], object],
                 version_of: Callable[[E], str] | None = None) -> ListPage:
    """The contract's ListPage: markers name the last key (and version) or prefix returned."""
    next_marker = next_version = None
    if page.last_entry_is_prefix:
        next_marker = page.prefixes[-1]
    elif page.entries:
        last = page.entries[-1]
        next_marker = key_of(last)
        next_version = version_of(last) if version_of else None
    return ListPage([convert(e) for e in page.entries], page.prefixes, page.truncated,
                    next_marker=next_marker, next_version_marker=next_version)
