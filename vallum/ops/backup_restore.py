"""`vallum backup restore`: rebuild a site from a verified snapshot.

The snapshot is checked whole before anything is written, and rebuilt in a sibling
directory that takes the target's name only at the end (a failed restore leaves nothing
half-made). Restoring over an existing site refuses if it would shorten any object-lock
retention or lift any legal hold that site holds now: a restore must not be a way around
WORM. A ``restore`` record is added to the restored audit log and the log sealed, so
`vallum audit verify` passes on the result and shows when it was restored and from what.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vallum.ops import backup_keys, backup_pg
from vallum.ops import backup_manifest as bm
from vallum.ops.backup_create import META_FILE
from vallum.ops.backup_keys import BackupError
from vallum.security.audit.log import AUDIT_DIR, KEY_FILE, LOG_FILE, AuditLog
from vallum.storage.retention import COMPLIANCE, Lock, lock_of


@dataclass
class RestoreReport:
    snapshot: str
    files: int
    bytes: int
    replaced: Path | None        # where the site that was replaced now is


VersionId = tuple[str, str, str]


def locks(meta: Path) -> dict[VersionId, Lock]:
    """Every version under a retention or a legal hold, from a metadata database."""
    if not meta.is_file():
        return {}
    db = sqlite3.connect(f"file:{meta}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT bucket, key, version_id, extra FROM versions "
                          "WHERE extra LIKE '%retention%' OR extra LIKE '%legal_hold%'").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()
    out = {}
    for bucket, key, version_id, extra in rows:
        lock = lock_of(json.loads(extra or "{}"))
        if lock.legal_hold or lock.mode is not None:
            out[(bucket, key, version_id)] = lock
    return out


def weakened(current: dict[VersionId, Lock], restored: dict[VersionId, Lock], now: float) -> list[str]:
    """How restoring would weaken the locks the current site holds (empty: it would not)."""
    found = []
    for vid, lock in sorted(current.items()):
        name = f"{vid[0]}/{vid[1]} version {vid[2]}"
        new = restored.get(vid)
        if lock.legal_hold and (new is None or not new.legal_hold):
            found.append(f"{name}: its legal hold would be lifted")
        elif lock.retained(now) and lock.until is not None and (
                new is None or new.until is None or new.until < lock.until
                or (lock.mode == COMPLIANCE and new.mode != COMPLIANCE)):
            found.append(f"{name}: its {lock.mode} retention until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(lock.until))} would be shortened")
    return found


def _write_entry(root: Path, target: Path, entry: bm.Entry, keys: backup_keys.BackupKeys) -> None:
    dest = target / entry.path
    for parent in reversed(dest.relative_to(target).parents):
        (target / parent).mkdir(mode=0o700, exist_ok=True)
    data = bm.object_path(root, entry.object).read_bytes()
    if entry.secret:
        data = backup_keys.open_secret(keys, entry.path, data)
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise BackupError(f"{entry.path}: changed in the backup directory during the restore")
    bm.write_file(dest, data)


async def _record_restore(target: Path, record: dict) -> None:
    log = AuditLog(target)
    await log.open()
    try:
        await log.append(record)
    finally:
        await log.close()       # seals the log


def restore(source: Path, data_dir: Path, passphrase: bytes, *, snapshot: str | None = None,
            replace: bool = False, clock: Callable[[], float] = time.time,
            meta_url: str | None = None) -> RestoreReport:
    """Rebuild the site in ``data_dir``; a snapshot of a PostgreSQL site also needs
    ``meta_url``, an absent or empty schema its metadata is loaded into."""
    source, data_dir = Path(source), Path(data_dir).absolute()
    manifest, keys = bm.load(source, passphrase, snapshot)
    problems = bm.verify(source, manifest, keys)
    if problems:
        raise BackupError("the backup is damaged; nothing was restored:\n  " + "\n  ".join(problems[:20]))
    has_dump = any(e.kind == "pgdump" for e in manifest.entries)
    if has_dump and not meta_url:
        raise BackupError(f"snapshot {manifest.id} holds PostgreSQL metadata: give the database to "
                          "load it into (--meta URL or VALLUM_META_URL; an absent or empty schema)")
    occupied = data_dir.exists() and any(data_dir.iterdir())
    if occupied and not replace:
        raise BackupError(f"{data_dir} is not empty: restore into a new directory, or stop its server "
                          "and pass --replace (refused if it would weaken any object lock)")
    work = data_dir.with_name(f".{data_dir.name}.restoring-{manifest.id}")
    work.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    work.mkdir(mode=0o700)
    replaced = None
    try:
        for entry in manifest.entries:
            _write_entry(source, work, entry, keys)
        for folder, _, _ in os.walk(work):
            bm.fsync_dir(Path(folder))
        if occupied:
            found = weakened(locks(data_dir / META_FILE), locks(work / META_FILE), clock())
            if found:
                raise BackupError(f"refused: restoring snapshot {manifest.id} over {data_dir} would "
                                  f"weaken {len(found)} object lock(s), e.g.\n  " + "\n  ".join(found[:10]))
        if (work / AUDIT_DIR / LOG_FILE).is_file() and (work / AUDIT_DIR / KEY_FILE).is_file():
            asyncio.run(_record_restore(work, {"type": "restore", "snapshot": manifest.id,
                                               "backup_created": manifest.created,
                                               "source": manifest.source}))
        if has_dump and meta_url:
            backup_pg.restore(work / backup_pg.DUMP, meta_url)
            (work / backup_pg.DUMP).unlink()               # in the database now, not a site file
        if occupied:
            replaced = data_dir.with_name(f"{data_dir.name}.replaced-{manifest.id}")
            os.rename(data_dir, replaced)
        elif data_dir.exists():
            data_dir.rmdir()
        os.rename(work, data_dir)
        bm.fsync_dir(data_dir.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return RestoreReport(manifest.id, len(manifest.entries), sum(e.size for e in manifest.entries),
                         replaced)
