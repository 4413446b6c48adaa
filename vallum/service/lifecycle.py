"""The lifecycle worker: applies every bucket's lifecycle rules in the background.

One sweep walks each bucket that has a configuration: its versions key by key
(vallum.service.lifecycle_rules decides what is due) and its incomplete
multipart uploads. It never removes a version that object lock protects (the
decision is vallum.storage.retention's, with no bypass). Each change re-checks,
inside the metadata transaction, that the key did not move meanwhile.

With several gateway processes on one data directory, only one sweeps at a
time: the sweep holds an exclusive ``flock`` on ``<data>/lifecycle.lock`` and
records when it last ran there, so the others skip. Gateways sharing a PostgreSQL
metadata database first elect one host by advisory lock (vallum/meta/leader.py).

Every expiration that commits is announced as an object event, under AWS's lifecycle
names (``LifecycleExpiration:Delete`` / ``LifecycleExpiration:DeleteMarkerCreated``, never
``ObjectRemoved:*``), so ``s3:LifecycleExpiration:*`` triggers fire. Aborted multipart
uploads, as in AWS, send none.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from vallum.compute.object_events import LIFECYCLE_DELETE, LIFECYCLE_MARKER, lifecycle_event
from vallum.meta.base import UploadMissing
from vallum.meta.leader import AdvisoryLeader
from vallum.meta.records import NULL_VERSION, BucketRecord, ObjectRecord
from vallum.s3 import errors
from vallum.security.mac.object_labels import lifecycle_may_touch
from vallum.service.clock import Clock
from vallum.service.lifecycle_rules import Rule, parse_lifecycle, plan_key, upload_due
from vallum.storage.retention import lock_of, why_not_remove

log = logging.getLogger("vallum.lifecycle")

CONFIG_KEY = "lifecycle"
DEFAULT_INTERVAL = 3600.0
TEST_INTERVAL = 0.2
PAGE = 1000


class _Moved(Exception):
    """The key changed between planning and acting: leave it for the next sweep."""


@dataclass
class SweepStats:
    expired: int = 0          # current versions expired (delete marker added or removed)
    deleted: int = 0          # versions / delete markers permanently removed
    kept_locked: int = 0      # due but protected by object lock
    aborted: int = 0          # incomplete multipart uploads aborted


def new_version_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")


class LifecycleWorker:
    def __init__(self, services, clock: Clock, *, interval: float | None = None) -> None:
        self.services = services
        self.clock = clock
        default = TEST_INTERVAL if clock.is_test else DEFAULT_INTERVAL
        self.interval = interval if interval is not None else float(
            os.environ.get("VALLUM_LIFECYCLE_INTERVAL", default))
        data_dir = Path(services.config.data_dir)
        self.lock_path = data_dir / "lifecycle.lock"
        # Gateways sharing a PostgreSQL metadata database elect one sweeper among them.
        url = services.config.meta_url
        self.leader = AdvisoryLeader(url, "lifecycle") if url else None
        self.task: asyncio.Task | None = None

    # -- running ---------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name="vallum-lifecycle")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        if self.leader is not None:
            await asyncio.to_thread(self.leader.release)

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep_if_leader()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed sweep must not stop later ones
                log.exception("lifecycle sweep failed")
            await asyncio.sleep(self.interval)

    async def sweep_if_leader(self) -> SweepStats | None:
        """Sweep unless another process holds the lease or swept less than an interval ago."""
        if self.leader is not None and not await asyncio.to_thread(self.leader.held):
            return None
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            last = os.pread(fd, 64, 0).decode(errors="replace").strip()
            started = time.time()
            if last and started - float(last or 0) < self.interval * 0.9:
                return None
            offset = self.clock.offset()
            stats = await self.sweep(time.time() + offset)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{started}\n".encode(), 0)
            if self.clock.is_test and self.clock.offset_file is not None:
                # Tells a functional test that a whole sweep ran with the offset it wrote,
                # and (one line per sweep, written under the lease) who swept and when, so a
                # test can show that sweeps of several processes never overlap.
                done = self.clock.offset_file.with_suffix(".swept")
                done.write_text(f"{offset}\n")
                with open(self.clock.offset_file.with_suffix(".sweeps"), "a") as trace:
                    trace.write(f"{os.getpid()} {started!r} {time.time()!r}\n")
            return stats
        finally:
            os.close(fd)

    # -- one sweep ---------------------------------------------------------------
    async def sweep(self, now: float) -> SweepStats:
        stats = SweepStats()
        for bucket in await self.services.meta.list_buckets():
            text = bucket.config.get(CONFIG_KEY)
            if not text:
                continue
            try:
                rules = parse_lifecycle(text.encode())
            except errors.S3Error:
                log.warning("bucket %s has an invalid lifecycle configuration; skipped", bucket.name)
                continue
            await self._sweep_versions(bucket, rules, now, stats)
            await self._sweep_uploads(bucket, rules, now, stats)
        return stats

    async def _sweep_versions(self, bucket: BucketRecord, rules: list[Rule], now: float,
                              stats: SweepStats) -> None:
        if not any(r.enabled and (r.expiration_days or r.expiration_date or r.noncurrent_days
                                  or r.expired_object_delete_marker) for r in rules):
            return
        meta = self.services.meta
        key_marker = version_marker = ""
        group: list[ObjectRecord] = []
        while True:
            page = await meta.list_versions(bucket.name, key_marker=key_marker,
                                            version_id_marker=version_marker, max_keys=PAGE)
            for rec in page.entries:
                if group and group[0].key != rec.key:
                    await self._apply(bucket, group, rules, now, stats)
                    group = []
                group.append(rec)
            if not page.is_truncated or not page.entries:
                break
            key_marker, version_marker = page.next_marker or "", page.next_version_marker or ""
        if group:
            await self._apply(bucket, group, rules, now, stats)

    async def _apply(self, bucket: BucketRecord, versions: list[ObjectRecord], rules: list[Rule],
                     now: float, stats: SweepStats) -> None:
        for action in plan_key(versions, rules, now):
            if not lifecycle_may_touch(bucket.config, action.record.extra):
                continue            # above the rule setter's level (MAC): never its to delete
            try:
                if action.kind == "expire-current":
                    await self._expire_current(bucket, action.record, now, stats)
                else:
                    await self._delete_version(action.record, now, stats)
            except _Moved:
                continue

    def _locked(self, record: ObjectRecord, now: float) -> bool:
        return not record.delete_marker and why_not_remove(
            lock_of(record.extra), now, bypass_requested=False, may_bypass=False) is not None

    async def _expire_current(self, bucket: BucketRecord, current: ObjectRecord, now: float,
                              stats: SweepStats) -> None:
        meta = self.services.meta

        def still_current(latest: ObjectRecord | None) -> None:
            # put_object shows the latest version; delete_version the one being removed.
            if latest is None or latest.version_id != current.version_id or latest.delete_marker \
                    or not latest.is_latest:
                raise _Moved()
            if version_id_is_null and self._locked(latest, now):
                raise _Moved()

        version_id_is_null = bucket.versioning != "Enabled"
        if bucket.versioning in ("Enabled", "Suspended"):
            version_id = new_version_id() if bucket.versioning == "Enabled" else NULL_VERSION
            if version_id == NULL_VERSION and current.version_id == NULL_VERSION and self._locked(current, now):
                stats.kept_locked += 1
                return
            # Stamped with the sweep's clock (a test clock moves it too), and labelled like
            # the version it shadows so it is seen by exactly those who saw that version.
            marker = ObjectRecord(bucket=bucket.name, key=current.key, version_id=version_id,
                                  delete_marker=True, last_modified=now)
            if current.extra.get("label"):
                marker.extra["label"] = current.extra["label"]
            obsolete = await meta.put_object(marker, precondition=still_current)
            await self.services.discard_blobs(obsolete)
            stats.expired += 1
            await self._announce(LIFECYCLE_MARKER, marker, now)
            return
        if self._locked(current, now):
            stats.kept_locked += 1
            return
        removed, obsolete = await meta.delete_version(bucket.name, current.key, current.version_id,
                                                      precondition=still_current)
        await self.services.discard_blobs(obsolete)
        stats.expired += removed is not None
        if removed is not None:
            await self._announce(LIFECYCLE_DELETE, removed, now)

    async def _delete_version(self, record: ObjectRecord, now: float, stats: SweepStats) -> None:
        if self._locked(record, now):
            stats.kept_locked += 1
            return
        meta = self.services.meta
        was_latest = record.is_latest

        def unchanged(target: ObjectRecord | None) -> None:
            # Sees the version being removed: it must still be in the state it was planned
            # in (noncurrent, or a lone latest marker) and still unlocked.
            if target is None or target.is_latest != was_latest or self._locked(target, now):
                raise _Moved()

        removed, obsolete = await meta.delete_version(record.bucket, record.key, record.version_id,
                                                      precondition=unchanged)
        await self.services.discard_blobs(obsolete)
        stats.deleted += removed is not None
        if removed is not None:
            await self._announce(LIFECYCLE_DELETE, removed, now)

    async def _announce(self, event_name: str, record: ObjectRecord, now: float) -> None:
        """The object event of one committed expiration; a failure to record it is logged,
        never allowed to stop the sweep (the change itself already happened)."""
        try:
            await lifecycle_event(self.services, event_name, bucket=record.bucket,
                                  key=record.key, version_id=record.version_id, when=now,
                                  label=(record.extra or {}).get("label"))
        except Exception:  # noqa: BLE001
            log.exception("lifecycle: could not record the %s event of %s/%s", event_name,
                          record.bucket, record.key)

    async def _sweep_uploads(self, bucket: BucketRecord, rules: list[Rule], now: float,
                             stats: SweepStats) -> None:
        if not any(r.enabled and r.abort_days for r in rules):
            return
        meta = self.services.meta
        key_marker = upload_marker = ""
        due_ids: list[str] = []
        while True:
            page = await meta.list_uploads(bucket.name, key_marker=key_marker, upload_id_marker=upload_marker,
                                           max_uploads=PAGE)
            due_ids += [u.upload_id for u in page.entries if upload_due(u.key, u.initiated, rules, now)
                        and lifecycle_may_touch(bucket.config, u.extra)]
            if not page.is_truncated or not page.entries:
                break
            key_marker, upload_marker = page.next_marker or "", page.next_version_marker or ""
        for upload_id in due_ids:
            try:
                obsolete = await meta.abort_upload(upload_id)
            except UploadMissing:       # completed or aborted meanwhile
                continue
            await self.services.discard_blobs(obsolete)
            stats.aborted += 1
