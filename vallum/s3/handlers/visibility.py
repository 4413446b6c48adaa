"""The world as a MAC-restricted caller sees it: as if what it may not read did not exist.

A version, delete marker or upload above the caller's session level is absent for it,
and so is everything derived from it: a listing is computed over the visible records
only (its truncation flag, markers, continuation tokens, KeyCount and common prefixes
included), the latest version of a key is its newest *visible* version (IsLatest, GET and
HEAD without a versionId), and a key whose newest visible version is a delete marker is
deleted for the caller even if a hidden version lies on top.

Callers that read everything (system high) take the store's answer unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from vallum.http import Request
from vallum.meta.records import ListPage, ObjectRecord
from vallum.s3.handlers import labels
from vallum.security.mac.rules import Subject

# fetch((key marker, version/upload marker), n) -> the store's next page after the marker.
Fetch = Callable[[tuple[str, str], int], Awaitable[ListPage]]
# A fetch for the same listing under another prefix, without a delimiter (prefix checks).
FetchUnder = Callable[[str], Fetch]
_BATCH = 1000


def restricted(request: Request) -> Subject | None:
    """The caller's Subject when MAC hides anything from it, else None (system high)."""
    who = labels.subject(request)
    return who if who.read is not None else None


async def _stream(fetch: Fetch, start: tuple[str, str], first: int) -> AsyncGenerator[tuple[bool, Any], None]:
    """The store's listing as one ordered stream of (is_prefix, entry or prefix), fetched
    in growing batches. Entries and prefixes never tie: a key under a prefix is rolled up."""
    marker, n = start, max(1, min(first, _BATCH))
    while True:
        page = await fetch(marker, n)
        prefixes = page.common_prefixes
        i = 0
        for entry in page.entries:
            while i < len(prefixes) and prefixes[i] < entry.key:
                yield True, prefixes[i]
                i += 1
            yield False, entry
        for p in prefixes[i:]:
            yield True, p
        if not page.is_truncated or page.next_marker is None:
            return
        marker, n = (page.next_marker, page.next_version_marker or ""), min(n * 2, _BATCH)


Accept = Callable[[bool, Any], Awaitable[bool]]


async def _collect(items: AsyncGenerator[tuple[bool, Any], None], accept: Accept, max_keys: int,
                   version_of: Callable[[Any], str] | None) -> ListPage:
    """Up to ``max_keys`` accepted items; truncated only if another accepted item follows.
    The next marker names the last item returned, never one the caller cannot see."""
    entries: list[Any] = []
    prefixes: list[str] = []
    last: tuple[bool, Any] | None = None
    truncated = False
    async for is_prefix, item in items:
        if not await accept(is_prefix, item):
            continue
        if len(entries) + len(prefixes) == max_keys:
            truncated = True
            break
        (prefixes if is_prefix else entries).append(item)
        last = (is_prefix, item)
    await items.aclose()
    if last is None:
        return ListPage(entries, prefixes, truncated)
    is_prefix, item = last
    if is_prefix:
        return ListPage(entries, prefixes, truncated, next_marker=item)
    return ListPage(entries, prefixes, truncated, next_marker=item.key,
                    next_version_marker=version_of(item) if version_of else None)


class _Latest:
    """Per key, in version order (newest first): is this the key's newest visible version?"""

    def __init__(self, who: Subject) -> None:
        self.who = who
        self.key: str | None = None
        self.decided = False

    def newest_visible(self, rec: Any) -> bool | None:
        """True for the newest visible version of its key, False for an older visible one,
        None for a hidden one."""
        if rec.key != self.key:
            self.key, self.decided = rec.key, False
        if not labels.readable(self.who, rec):
            return None
        first = not self.decided
        self.decided = True
        return first


async def _any_live(who: Subject, fetch: Fetch) -> bool:
    """Is there a key whose newest visible version is an object (not a delete marker)?"""
    latest = _Latest(who)
    items = _stream(fetch, ("", ""), _BATCH)
    async for _, rec in items:
        if latest.newest_visible(rec) and not rec.delete_marker:
            await items.aclose()
            return True
    return False


async def _any_readable(who: Subject, fetch: Fetch) -> bool:
    items = _stream(fetch, ("", ""), _BATCH)
    async for _, rec in items:
        if labels.readable(who, rec):
            await items.aclose()
            return True
    return False


async def objects_page(who: Subject, versions: Fetch, under: FetchUnder,
                       start_after: str, max_keys: int) -> ListPage:
    """ListObjects for a restricted caller, from the version listing: a key is listed with
    its newest visible version unless that is a delete marker; a common prefix shows when
    some key under it is listed. ``versions`` lists versions with the request's prefix and
    delimiter; ``under(p)`` lists the versions under ``p``."""
    if max_keys <= 0:
        return ListPage([], [], False)
    latest = _Latest(who)

    async def accept(is_prefix: bool, item: Any) -> bool:
        if is_prefix:
            return await _any_live(who, under(item))
        if not latest.newest_visible(item) or item.delete_marker:
            return False
        item.is_latest = True
        return True

    return await _collect(_stream(versions, (start_after, ""), max_keys + 1), accept, max_keys, None)


async def versions_page(who: Subject, versions: Fetch, under: FetchUnder, start: tuple[str, str],
                        max_keys: int, newer_visible: Callable[[str, str], Awaitable[bool]]) -> ListPage:
    """ListObjectVersions for a restricted caller: visible versions only, IsLatest on each
    key's newest visible one. A page that starts inside a key (version-id-marker) asks
    ``newer_visible(key, version)`` whether a visible version precedes the marker."""
    if max_keys <= 0:
        return ListPage([], [], False)
    latest = _Latest(who)
    key_marker, version_marker = start

    async def accept(is_prefix: bool, item: Any) -> bool:
        if is_prefix:
            return await _any_readable(who, under(item))
        newest = latest.newest_visible(item)
        if newest is None:
            return False
        if newest and version_marker and item.key == key_marker:
            newest = not await newer_visible(item.key, version_marker)
        item.is_latest = newest
        return True

    return await _collect(_stream(versions, start, max_keys + 1), accept, max_keys,
                          lambda r: r.version_id)


async def uploads_page(who: Subject, uploads: Fetch, under: FetchUnder, start: tuple[str, str],
                       max_keys: int) -> ListPage:
    """ListMultipartUploads for a restricted caller: visible uploads only."""
    if max_keys <= 0:
        return ListPage([], [], False)

    async def accept(is_prefix: bool, item: Any) -> bool:
        if is_prefix:
            return await _any_readable(who, under(item))
        return labels.readable(who, item)

    return await _collect(_stream(uploads, start, max_keys + 1), accept, max_keys,
                          lambda u: u.upload_id)


async def latest_version(request: Request, bucket: str, key: str) -> ObjectRecord | None:
    """The key's latest version as the caller sees it: the newest version it may read
    (possibly a delete marker), or None when it may read none."""
    meta = request.services.meta
    record = await meta.get_object(bucket, key)
    who = restricted(request)
    if record is None or who is None or labels.readable(who, record):
        return record
    found = await newest_readable(request, who, bucket, key, stop_at=None)
    if found is None:
        _audit_hidden(request, record)
        return None
    return await meta.get_object(bucket, key, found.version_id)


class _Hidden(Exception):
    pass


def _audit_hidden(request: Request, record: ObjectRecord) -> None:
    """Nothing visible: the audit record says MAC hid the latest version (its label and
    the no-read-up rule, as labels.require_read records a refused read)."""
    try:
        labels.require_read(request, record, _Hidden())
    except _Hidden:
        return


async def newest_readable(request: Request, who: Subject, bucket: str, key: str,
                          stop_at: str | None) -> ObjectRecord | None:
    """The newest version of ``key`` that ``who`` may read, looking no further than
    version ``stop_at`` (included) when given."""
    meta = request.services.meta

    def fetch(m: tuple[str, str], n: int) -> Awaitable[ListPage]:
        return meta.list_versions(bucket, prefix=key, key_marker=m[0], version_id_marker=m[1],
                                  max_keys=n)

    items = _stream(fetch, ("", ""), 16)
    try:
        async for _, rec in items:
            if rec.key != key:
                return None
            if labels.readable(who, rec):
                return rec
            if rec.version_id == stop_at:
                return None
        return None
    finally:
        await items.aclose()
