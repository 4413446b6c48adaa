"""Scrub: read every stored object version end to end and report what fails its integrity check.

Bit rot in a blob is otherwise found only when a client happens to read it. The scrubber
walks every bucket and every version (``list_versions`` order), authenticates every
sealed chunk of every blob against the length the metadata recorded (and every inline
body), and reports each version that is corrupt or whose blob is missing. It is
rate-limited (bytes per second) so it can run beside the server, and resumable: after
each version the position and the findings so far are written to a cursor file, and a
later run continues from there. SSE-C versions cannot be authenticated without the
customer's key; their blobs are checked for presence, header and length only.

A blob store that keeps several copies (a mirror, storage/mirror.py) has each copy
checked on its own, and with ``heal`` a damaged copy is rewritten from a whole one. An
upstream that does not answer is reported as ``unavailable``, not as rot.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vallum.meta.base import MetaStore
from vallum.meta.records import ObjectRecord
from vallum.security.crypto import ssec
from vallum.security.crypto.inline import unseal
from vallum.storage.base import BlobMissing, BlobStore, StorageError, StorageUnavailable, check_size

CURSOR_VERSION = 1


@dataclass
class Finding:
    bucket: str
    key: str
    version_id: str
    problem: str            # "corrupt" | "missing" | "unreadable" (I/O error) | "unavailable" (upstream away)
    blob_id: str | None
    detail: str
    copy: str = ""          # which copy of a mirror ("" with one copy)
    repaired: bool = False  # rewritten from a whole copy and read back whole


@dataclass
class Progress:
    """What a pass has done so far; saved as the cursor file after every version."""

    bucket: str = ""                    # the last version checked (the resume point)
    key: str = ""
    version_id: str = ""
    versions: int = 0
    bytes: int = 0
    length_only: int = 0                # SSE-C versions: presence, header and length checked
    findings: list[Finding] = field(default_factory=list)
    complete: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"cursor_version": CURSOR_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Progress:
        if doc.get("cursor_version") != CURSOR_VERSION:
            raise ValueError("not a scrub cursor file (or from another version)")
        doc = {k: v for k, v in doc.items() if k != "cursor_version"}
        doc["findings"] = [Finding(**f) for f in doc.get("findings", [])]
        return cls(**doc)


def load_cursor(path: Path) -> Progress:
    """The saved progress of an unfinished pass, or a fresh one."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return Progress()
    except json.JSONDecodeError as exc:
        raise ValueError(f"scrub cursor {path} is not JSON: {exc}") from None
    progress = Progress.from_json(doc)
    return Progress() if progress.complete else progress


def save_cursor(path: Path, progress: Progress) -> None:
    """Atomically (temp file, fsync, rename), mode 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(progress.to_json(), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RateLimit:
    """At most ``per_second`` bytes per second on average (0: unlimited)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self.started = clock()
        self.done = 0

    async def spend(self, n: int) -> None:
        self.done += n
        if self.per_second <= 0:
            return
        ahead = self.done / self.per_second - (self.clock() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)


def _blobs_of(record: ObjectRecord) -> list[tuple[str, int]]:
    if record.parts:
        return [(p.blob_id, p.size) for p in record.parts]
    return [(record.blob_id, record.size)] if record.blob_id else []


async def _check_copy(store: BlobStore, blob_id: str, size: int, customer: bool,
                      limit: RateLimit) -> BaseException | None:
    """The error reading one copy of a blob end to end gives, or None when it is whole."""
    try:
        if customer:
            actual = await store.size(blob_id)
            check_size(blob_id, actual, size)
        else:
            async for chunk in store.read(blob_id, expect_size=size):
                await limit.spend(len(chunk))
    except (StorageError, OSError) as exc:   # OSError: a local copy the disk cannot read
        return exc
    return None


def _problem(exc: BaseException) -> str:
    if isinstance(exc, BlobMissing):
        return "missing"
    if isinstance(exc, StorageUnavailable):
        return "unavailable"            # an upstream that did not answer: not known to be bad
    if isinstance(exc, OSError):
        return "unreadable"             # a local copy the disk could not read
    return "corrupt"


async def check_version(blobs: BlobStore, record: ObjectRecord,
                        limit: RateLimit) -> tuple[list[Finding], bool, dict[str, list[str]]]:
    """Findings for one version (one per damaged copy of each blob), whether it could be
    checked for length only (SSE-C), and for each damaged blob the copies found whole."""
    def finding(problem: str, blob_id: str | None, detail: str, copy: str = "") -> Finding:
        return Finding(record.bucket, record.key, record.version_id, problem, blob_id, detail, copy)

    customer = ssec.is_customer_encrypted(record.extra)
    if record.inline is not None:
        if customer:
            return [], True, {}
        try:
            await limit.spend(len(unseal(blobs, record.inline)))
        except StorageError as exc:
            return [finding("corrupt", None, f"inline body: {exc}")], False, {}
        return [], False, {}
    out, whole = [], {}
    copies = blobs.replicas()
    for blob_id, size in _blobs_of(record):
        good = []
        for name, store in copies:
            failure = await _check_copy(store, blob_id, size, customer, limit)
            if failure is None:
                good.append(name)
                continue
            detail = f"blob {blob_id} is missing" if isinstance(failure, BlobMissing) else str(failure)
            out.append(finding(_problem(failure), blob_id, f"copy {name}: {detail}" if name else detail,
                               name))
        if len(good) < len(copies):
            whole[blob_id] = good
    return out, customer, whole


async def repair(blobs: BlobStore, record: ObjectRecord, found: list[Finding],
                 whole: dict[str, list[str]], limit: RateLimit) -> None:
    """Rewrite each damaged copy from a whole one, then check it again: a finding is marked
    repaired only when its copy now reads back whole. An unavailable copy (an upstream
    that did not answer) is left alone: the next pass finds out whether it came back."""
    sizes = dict(_blobs_of(record))
    customer = ssec.is_customer_encrypted(record.extra)
    copies = dict(blobs.replicas())
    for f in found:
        if f.blob_id is None or not f.copy or f.problem == "unavailable" or not whole.get(f.blob_id):
            continue
        try:
            await blobs.repair(f.blob_id, whole[f.blob_id][0], [f.copy])
        except (StorageError, OSError) as exc:
            f.detail += f"; repair failed: {exc}"
            continue
        again = await _check_copy(copies[f.copy], f.blob_id, sizes[f.blob_id], customer, limit)
        if again is None:
            f.repaired = True
        else:
            f.detail += f"; still damaged after repair: {again}"


async def _still_stored(meta: MetaStore, record: ObjectRecord) -> bool:
    """Whether the version still exists with the same bodies (a scrub beside a running
    server must not report a blob a concurrent delete removed)."""
    now = await meta.get_object(record.bucket, record.key, record.version_id)
    return (now is not None and now.blob_ids() == record.blob_ids()
            and now.inline == record.inline)


async def scrub(meta: MetaStore, blobs: BlobStore, progress: Progress, *, rate: float = 0,
                save: Callable[[Progress], None] = lambda p: None,
                stop: Callable[[Progress], bool] = lambda p: False,
                page: int = 1000, heal: bool = False) -> Progress:
    """Continue the pass ``progress`` describes until it completes or ``stop`` says so
    (checked after each version); ``save`` is called after each version. With ``heal``,
    a damaged copy of a mirrored blob is rewritten from a whole one (``repair``)."""
    limit = RateLimit(rate)
    for bucket in sorted(b.name for b in await meta.list_buckets()):
        if bucket < progress.bucket:
            continue
        key_marker, version_marker = ((progress.key, progress.version_id)
                                      if bucket == progress.bucket else ("", ""))
        while True:
            listing = await meta.list_versions(bucket, key_marker=key_marker,
                                               version_id_marker=version_marker, max_keys=page)
            for entry in listing.entries:
                if entry.delete_marker:
                    continue
                record = await meta.get_object(bucket, entry.key, entry.version_id)
                if record is None:          # deleted since the listing
                    continue
                before = limit.done
                found, length_only, whole = await check_version(blobs, record, limit)
                if found and not await _still_stored(meta, record):
                    found = []              # deleted or replaced while we read it: not rot
                if found and heal:
                    await repair(blobs, record, found, whole, limit)
                progress.findings += found
                progress.versions += 1
                progress.length_only += length_only
                progress.bytes += limit.done - before
                progress.bucket, progress.key, progress.version_id = bucket, entry.key, entry.version_id
                save(progress)
                if stop(progress):
                    return progress
            if not listing.is_truncated or not listing.entries:
                break
            last = listing.entries[-1]
            key_marker = listing.next_marker or last.key
            version_marker = listing.next_version_marker or last.version_id
    progress.complete = True
    save(progress)
    return progress
