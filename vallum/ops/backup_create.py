"""`vallum backup create`: a consistent snapshot of a running site.

Order matters: the SQLite files are copied first, each in one read transaction of
SQLite's online backup API (writers carry on; WAL), the metadata before the key table.
Then exactly the blobs the copied metadata references are copied. A blob (or its data
key) deleted between those steps makes the attempt inconsistent, so it is taken again
with fresh copies, up to ATTEMPTS times. The active audit log is read under its writer's
lock (whole batches only, no padding); closed segments are immutable and copied after.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vallum.meta import codec
from vallum.ops import backup_keys, backup_pg
from vallum.ops import backup_manifest as bm
from vallum.ops.backup_keys import BackupError, BackupKeys
from vallum.security.audit.log import AUDIT_DIR, KEY_FILE, LOG_FILE
from vallum.security.crypto.keytable import KEYRING_FILE, KEYTABLE_FILE
from vallum.security.crypto.primitives import MASTER_KEY_FILE

META_FILE = "meta.sqlite3"
ROOT_FILE = "root-credentials.json"
SECRETS = {MASTER_KEY_FILE, KEYRING_FILE, KEYTABLE_FILE, ROOT_FILE, f"{AUDIT_DIR}/{KEY_FILE}"}
ATTEMPTS = 5
_SQLITE_MAGIC = b"SQLite format 3\0"
_BLOB_ID = re.compile(r"[0-9a-f]{32}")
# Not part of a site's state: writes in progress, locks, shared-memory signals, one
# process's operator status, SQLite's side files (the online backup reads through them).
_SKIP_DIRS = {"tmp", "blobs"}
_SKIP = re.compile(r".*(\.open-lock|-wal|-shm|-journal|\.bucket-changes|\.iam-changes"
                   r"|\.auth-lockouts)|lifecycle\.lock|operator/gateway-\d+\.json|test-clock-offset")


@dataclass
class CreateReport:
    snapshot: str
    files: int
    bytes: int
    copied: int          # objects written now
    reused: int          # objects already in the backup directory (incremental)
    attempts: int


class Store:
    """Writes objects into DIR/objects, skipping those already there."""

    def __init__(self, root: Path, keys: BackupKeys, previous: dict[str, bm.Entry]) -> None:
        self.root, self.keys, self.previous = root, keys, previous
        self.copied = self.reused = 0
        self.done: dict[str, bm.Entry] = {}       # immutable files stored by this run (retries)
        (root / bm.OBJECTS).mkdir(mode=0o700, parents=True, exist_ok=True)

    def have(self, sha: str, size: int) -> bool:
        try:
            return os.stat(bm.object_path(self.root, sha)).st_size == size
        except FileNotFoundError:
            return False

    def place(self, tmp: Path, sha: str) -> None:
        final = bm.object_path(self.root, sha)
        if final.exists():
            tmp.unlink()
            self.reused += 1
            return
        final.parent.mkdir(mode=0o700, exist_ok=True)
        os.rename(tmp, final)
        bm.fsync_dir(final.parent)
        self.copied += 1

    def add_bytes(self, path: str, kind: str, data: bytes, secret: bool = False) -> bm.Entry:
        plain_sha = hashlib.sha256(data).hexdigest()
        stored = backup_keys.seal_secret(self.keys, path, data) if secret else data
        sha = hashlib.sha256(stored).hexdigest() if secret else plain_sha
        if self.have(sha, len(stored)):
            self.reused += 1
        else:
            tmp = self._tmp()
            bm.write_file(tmp, stored)
            self.place(tmp, sha)
        return bm.Entry(path, kind, len(data), plain_sha, sha, len(stored), secret)

    def add_file(self, path: str, kind: str, src: Path, *, cached: bool = True) -> bm.Entry | None:
        """Copy a file; None if it is gone. ``cached``: the file is immutable (a blob, a closed
        audit segment), so one the last snapshot stored with the same size and mtime is reused
        without reading it."""
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, OSError):
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if cached and (mine := self.done.get(path)) is not None and mine.mtime_ns == st.st_mtime_ns:
                return mine
            prev = self.previous.get(path)
            if (cached and prev is not None and not prev.secret and prev.kind == kind and prev.size == st.st_size
                    and prev.mtime_ns == st.st_mtime_ns and self.have(prev.object, prev.stored)):
                self.reused += 1
                self.done[path] = bm.Entry(path, kind, prev.size, prev.sha256, prev.object,
                                           prev.stored, mtime_ns=st.st_mtime_ns)
                return self.done[path]
            tmp = self._tmp()
            h, size = hashlib.sha256(), 0
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600),
                      "wb") as out:
                while block := f.read(bm.CHUNK):
                    h.update(block)
                    out.write(block)
                    size += len(block)
                out.flush()
                os.fsync(out.fileno())
        sha = h.hexdigest()
        self.place(tmp, sha)
        entry = bm.Entry(path, kind, size, sha, sha, size, mtime_ns=st.st_mtime_ns)
        if cached:
            self.done[path] = entry
        return entry

    def _tmp(self) -> Path:
        return self.root / bm.OBJECTS / f".tmp-{uuid.uuid4().hex}"


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def copy_sqlite(src: Path, dst: Path) -> None:
    """One consistent copy of a live database (SQLite online backup, one step)."""
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")    # one self-contained file
        finally:
            target.close()
    finally:
        source.close()


def referenced_blobs(meta_copy: Path) -> set[str]:
    """Blob ids the metadata points at: versions (single blobs and multipart manifests) and
    the parts of uploads in progress."""
    found: set[str] = set()
    db = sqlite3.connect(f"file:{meta_copy}?mode=ro", uri=True)
    try:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "versions" in names:
            for blob_id, manifest in db.execute(
                    "SELECT blob_id, parts FROM versions WHERE blob_id IS NOT NULL OR parts IS NOT NULL"):
                if blob_id:
                    found.add(blob_id)
                found.update(codec.manifest_blob_ids(manifest))
        if "parts" in names:
            found.update(r[0] for r in db.execute("SELECT blob_id FROM parts"))
    finally:
        db.close()
    return found


def _keyed_blobs(keytable_copy: Path) -> set[str]:
    db = sqlite3.connect(f"file:{keytable_copy}?mode=ro", uri=True)
    try:
        return {r[0] for r in db.execute("SELECT blob_id FROM deks")}
    finally:
        db.close()


def _blob_path(blob_id: str) -> str:
    if not _BLOB_ID.fullmatch(blob_id):
        raise BackupError(f"the metadata references a malformed blob id {blob_id!r}")
    return f"blobs/{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"


def _databases(data_dir: Path) -> list[str]:
    """Top-level SQLite files, the metadata first and the key table right after it."""
    names = sorted(n for n in os.listdir(data_dir)
                   if not _SKIP.fullmatch(n) and (data_dir / n).is_file() and _is_sqlite(data_dir / n))
    order = {META_FILE: 0, KEYTABLE_FILE: 1}
    return sorted(names, key=lambda n: (order.get(n, 2), n))


def _consistent_core(data_dir: Path, store: Store, staging: Path, meta_url: str | None
                     ) -> tuple[list[bm.Entry], int]:
    """Databases and the blobs they reference, retried until they agree. The same blobs
    missing twice in a row are not a race but a damaged site: refused, naming them. With
    PostgreSQL metadata its dump comes first, as meta.sqlite3 does (backup_pg.py)."""
    before: set[str] = set()
    for attempt in range(1, ATTEMPTS + 1):
        entries: list[bm.Entry] = []
        copies: dict[str, Path] = {}
        pg_refs: set[str] = set()
        dump_path: Path | None = None
        if meta_url:
            with backup_pg.snapshot(meta_url) as (pg_refs, dump):
                dump_path = staging / f"{attempt}-{backup_pg.DUMP}"
                dump(dump_path)
        for name in _databases(data_dir):
            dst = staging / f"{attempt}-{name}"
            copy_sqlite(data_dir / name, dst)
            copies[name] = dst
        refs = (referenced_blobs(copies[META_FILE]) if META_FILE in copies else set()) | pg_refs
        keyed = _keyed_blobs(copies[KEYTABLE_FILE]) if KEYTABLE_FILE in copies else None
        lost = {b for b in refs if keyed is not None and b not in keyed}
        for blob_id in sorted(refs - lost):
            rel = _blob_path(blob_id)
            entry = store.add_file(rel, "blob", data_dir / rel)
            if entry is None:
                lost.add(blob_id)
            else:
                entries.append(entry)
        if not lost:
            if dump_path is not None:
                if (entry := store.add_file(backup_pg.DUMP, "pgdump", dump_path, cached=False)) is None:
                    raise BackupError(f"the PostgreSQL dump vanished from {staging}")
                entries.append(entry)
            for name, copy in copies.items():
                if name in SECRETS:
                    entries.append(store.add_bytes(name, "sqlite", copy.read_bytes(), secret=True))
                elif (entry := store.add_file(name, "sqlite", copy, cached=False)) is not None:
                    entries.append(entry)
                else:
                    raise BackupError(f"the staged copy of {name} vanished from {staging}")
            return entries, attempt
        if lost == before:
            shown = ", ".join(sorted(lost)[:5])
            raise BackupError(f"the site has lost {len(lost)} blob(s) (or their data keys) that its "
                              f"metadata references: {shown}. Run `vallum scrub` to find the objects "
                              "concerned; no snapshot was written")
        before = lost
        for copy in copies.values():
            copy.unlink()
        if dump_path is not None:
            dump_path.unlink(missing_ok=True)
        time.sleep(0.05 * attempt)
    raise BackupError(f"no consistent snapshot after {ATTEMPTS} attempts: blobs referenced by the "
                      "metadata kept disappearing (deletes racing the backup); try again")


def _audit(data_dir: Path, store: Store) -> list[bm.Entry]:
    """The audit directory: the active log read under the writer's lock (records only),
    then the closed segments, retention manifest and keys."""
    folder = data_dir / AUDIT_DIR
    if not folder.is_dir():
        return []
    for _ in range(ATTEMPTS):
        entries: list[bm.Entry] = []
        fd = os.open(folder / LOG_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino != os.stat(folder / LOG_FILE).st_ino:
                continue                                      # rotated meanwhile: take the new file
            with os.fdopen(os.dup(fd), "rb") as f:
                active = f.read().rstrip(b"\0")
            small = {}
            for rel in _walk(folder):
                if rel != LOG_FILE and not rel.startswith("segments/audit-"):
                    small[rel] = (folder / rel).read_bytes()
            closed = [rel for rel in _walk(folder) if rel.startswith("segments/audit-")]
        finally:
            os.close(fd)                                      # releases the lock
        entries.append(store.add_bytes(f"{AUDIT_DIR}/{LOG_FILE}", "audit", active))
        for rel, data in small.items():
            path = f"{AUDIT_DIR}/{rel}"
            entries.append(store.add_bytes(path, "audit", data, secret=path in SECRETS))
        complete = True
        for rel in closed:
            entry = store.add_file(f"{AUDIT_DIR}/{rel}", "audit", folder / rel)
            if entry is None:
                complete = False                              # pruned meanwhile: read again
                break
            entries.append(entry)
        if complete:
            return entries
    raise BackupError("the audit log kept changing under the backup (rotation or pruning); try again")


def _walk(folder: Path, skip: Callable[[str], bool] = lambda rel: False) -> list[str]:
    """Regular files under ``folder`` (no symlinks followed), relative POSIX paths."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath).relative_to(folder)
        dirnames[:] = sorted(d for d in dirnames if not skip((base / d).as_posix()))
        for name in sorted(filenames):
            rel = (base / name).as_posix()
            if not skip(rel) and (Path(dirpath) / name).is_file() and not (Path(dirpath) / name).is_symlink():
                out.append(rel)
    return out


def _rest(data_dir: Path, store: Store, done: set[str]) -> list[bm.Entry]:
    """Every other file of the site (keyring, credentials, operator journals)."""
    def skip(rel: str) -> bool:
        return rel in _SKIP_DIRS or rel == AUDIT_DIR or bool(_SKIP.fullmatch(rel)) or rel in done

    entries = []
    for rel in _walk(data_dir, skip):
        try:
            data = (data_dir / rel).read_bytes()
        except FileNotFoundError:
            continue
        if rel.endswith(".jsonl"):
            data = data[:data.rfind(b"\n") + 1]               # whole lines only
        entries.append(store.add_bytes(rel, "file", data, secret=rel in SECRETS))
    return entries


StoreFactory = Callable[[Path, BackupKeys, "dict[str, bm.Entry]"], "Store"]


def create(data_dir: Path, dest: Path, passphrase: bytes, *, clock: Callable[[], float] = time.time,
           make_store: StoreFactory | None = None, meta_url: str | None = None) -> CreateReport:
    """Take a snapshot into the backup directory ``dest``; ``make_store`` replaces where the
    objects go (backup_s3: to an S3 target, ``dest`` then only stages)."""
    data_dir, dest = Path(data_dir), Path(dest)
    if not (data_dir / META_FILE).is_file():
        raise BackupError(f"{data_dir} is not a Vallum data directory (no {META_FILE})")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    previous: dict[str, bm.Entry] = {}
    if bm.snapshot_ids(dest):
        last, _ = bm.load(dest, passphrase)     # one passphrase per backup directory
        previous = {e.path: e for e in last.entries}
    kdf = backup_keys.new_kdf()
    keys = backup_keys.derive(passphrase, kdf)
    now = clock()
    snap_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + uuid.uuid4().hex[:8]
    store = (make_store or Store)(dest, keys, previous)
    staging = dest / f".staging-{snap_id}"
    staging.mkdir(mode=0o700)
    try:
        entries, attempts = _consistent_core(data_dir, store, staging, meta_url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    entries += _audit(data_dir, store)
    entries += _rest(data_dir, store, {e.path for e in entries})
    bm.fsync_dir(dest / bm.OBJECTS)
    manifest = bm.Manifest(snap_id, now, str(data_dir.resolve()), kdf,
                           backup_keys.check_value(keys), entries)
    bm.write(dest, manifest, keys)
    return CreateReport(snap_id, len(entries), sum(e.size for e in entries), store.copied,
                        store.reused, attempts)
