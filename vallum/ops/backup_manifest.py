"""A backup directory: content-addressed objects and one authenticated manifest per snapshot.

Layout of ``DIR``::

    objects/<sha[0:2]>/<sha>          every stored file, named by the SHA-256 of its bytes
    snapshots/<id>/manifest.json      what the snapshot holds: path, kind, size, SHA-256
    snapshots/<id>/manifest.mac       HMAC-SHA-256 of manifest.json under the passphrase

Naming objects by content is what makes a second backup incremental: a blob already
stored is not copied again. Secrets are stored wrapped (their object is the SHA-256 of
the wrapped bytes; the manifest also records the plaintext's size and SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vallum.ops import backup_keys
from vallum.ops.backup_keys import BackupError, BackupKeys

FORMAT = "vallum-backup/1"
OBJECTS, SNAPSHOTS = "objects", "snapshots"
MANIFEST, MAC = "manifest.json", "manifest.mac"
KINDS = ("sqlite", "blob", "audit", "file", "pgdump")
_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
_SHA = re.compile(r"[0-9a-f]{64}")
_PART = re.compile(r"[A-Za-z0-9._-]{1,255}")
CHUNK = 1024 * 1024


@dataclass
class Entry:
    path: str          # relative to the data directory, POSIX separators
    kind: str          # sqlite | blob | audit | file
    size: int          # of the file as restored
    sha256: str        # of the file as restored
    object: str        # SHA-256 of the stored bytes (== sha256 unless secret)
    stored: int        # size of the stored bytes
    secret: bool = False
    mtime_ns: int = 0  # of the source file: an unchanged blob is not read again


@dataclass
class Manifest:
    id: str
    created: float
    source: str
    kdf: dict[str, Any]
    check: str
    entries: list[Entry]
    format: str = FORMAT

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        return json.dumps(doc, sort_keys=True, indent=1).encode()


def safe_relpath(path: str) -> str:
    """``path`` if it names a file inside the data directory, else BackupError (a manifest
    must never make restore write outside its target)."""
    parts = PurePosixPath(path).parts
    if (not parts or path.startswith("/") or "\\" in path
            or any(p in (".", "..") or not _PART.fullmatch(p) for p in parts)):
        raise BackupError(f"the manifest names an unsafe path {path!r}")
    return path


def object_path(root: Path, sha: str) -> Path:
    if not _SHA.fullmatch(sha):
        raise BackupError(f"the manifest names a malformed object {sha!r}")
    return root / OBJECTS / sha[:2] / sha


def is_snapshot_id(name: str) -> bool:
    return _ID.fullmatch(name) is not None


def snapshot_ids(root: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root / SNAPSHOTS) if _ID.fullmatch(n))
    except FileNotFoundError:
        return []


def write(root: Path, manifest: Manifest, keys: BackupKeys) -> Path:
    """Write the manifest and its MAC (0600), then fsync: the snapshot exists once this returns."""
    (root / SNAPSHOTS).mkdir(mode=0o700, exist_ok=True)
    folder = root / SNAPSHOTS / manifest.id
    folder.mkdir(mode=0o700)
    body = manifest.to_bytes()
    for name, data in ((MANIFEST, body), (MAC, backup_keys.mac(keys, body).encode())):
        write_file(folder / name, data)
    fsync_dir(folder)
    fsync_dir(folder.parent)
    return folder


def load(root: Path, passphrase: bytes, snapshot: str | None = None) -> tuple[Manifest, BackupKeys]:
    """The snapshot's manifest (the latest by default), authenticated under ``passphrase``."""
    ids = snapshot_ids(root)
    if snapshot is None:
        if not ids:
            raise BackupError(f"{root}: no snapshot found (expected {SNAPSHOTS}/<id>/{MANIFEST})")
        snapshot = ids[-1]
    elif snapshot not in ids:
        raise BackupError(f"{root}: no snapshot {snapshot!r}")
    folder = root / SNAPSHOTS / snapshot
    try:
        body = (folder / MANIFEST).read_bytes()
        tag = (folder / MAC).read_text()
        doc = json.loads(body)
        kdf, check_value = doc["kdf"], doc["check"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"snapshot {snapshot}: manifest unreadable ({exc})") from None
    keys = backup_keys.derive(passphrase, kdf)
    backup_keys.check(keys, check_value)
    if not backup_keys.mac_ok(keys, body, tag):
        raise BackupError(f"snapshot {snapshot}: the manifest was altered (its MAC does not match)")
    try:
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown format {doc.get('format')!r}")
        entries = [Entry(**e) for e in doc["entries"]]
        manifest = Manifest(doc["id"], float(doc["created"]), str(doc["source"]), kdf, check_value,
                            entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupError(f"snapshot {snapshot}: manifest malformed ({exc})") from None
    if manifest.id != snapshot:
        raise BackupError(f"snapshot {snapshot}: the manifest names another snapshot")
    for e in entries:
        safe_relpath(e.path)
        object_path(root, e.object)
        if e.kind not in KINDS or not _SHA.fullmatch(e.sha256):
            raise BackupError(f"snapshot {snapshot}: malformed entry for {e.path!r}")
    if len({e.path for e in entries}) != len(entries):
        raise BackupError(f"snapshot {snapshot}: a path appears twice")
    return manifest, keys


def verify(root: Path, manifest: Manifest, keys: BackupKeys) -> list[str]:
    """Every problem with the stored objects (empty: the snapshot restores intact)."""
    problems = []
    for e in manifest.entries:
        path = object_path(root, e.object)
        try:
            data_sha, size = hash_file(path)
        except FileNotFoundError:
            problems.append(f"{e.path}: missing (object {e.object})")
            continue
        if size != e.stored or data_sha != e.object:
            problems.append(f"{e.path}: object {e.object} is damaged (size or SHA-256 differs)")
            continue
        if e.secret:
            try:
                plain = backup_keys.open_secret(keys, e.path, path.read_bytes())
            except Exception:  # noqa: BLE001 - any failure to open is the finding
                problems.append(f"{e.path}: the wrapped secret does not open")
                continue
            if len(plain) != e.size or hashlib.sha256(plain).hexdigest() != e.sha256:
                problems.append(f"{e.path}: the secret's content differs from the manifest")
    return problems


def hash_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def write_file(path: Path, data: bytes) -> None:
    """Create ``path`` 0600 (never over an existing file or through a symlink), fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
