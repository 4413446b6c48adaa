"""A backup that was altered, or a restore that would undo WORM, is refused."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.support.backup import PASSPHRASE, cli
from tests.support.server import start_server, stop_server
from vallum.ops import backup_manifest as bm
from vallum.ops.backup_keys import BackupError
from vallum.ops.backup_restore import restore
from vallum.storage.retention import Lock

UNTIL = datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc)
LATER = datetime.datetime(2033, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A stopped site with a locked object, and a backup of it."""
    base = tmp_path_factory.mktemp("tamper")
    srv = start_server(base / "data")
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
        s3.put_object(Bucket="worm", Key="kept", Body=b"k" * 200_000)
        s3.put_object_retention(Bucket="worm", Key="kept",
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": UNTIL})
        s3.put_object(Bucket="worm", Key="held", Body=b"h")
        made = cli("backup", "create", "--data-dir", str(srv.data_dir), "--to", str(base / "backup"))
        assert made.returncode == 0, made.stderr
    finally:
        stop_server(srv)
    return {"base": base, "data": base / "data", "backup": base / "backup"}


def _copy(site, tmp_path) -> Path:
    dst = tmp_path / "backup"
    shutil.copytree(site["backup"], dst)
    return dst


def _manifest(backup: Path) -> tuple[Path, dict]:
    folder = backup / bm.SNAPSHOTS / bm.snapshot_ids(backup)[-1]
    return folder, json.loads((folder / bm.MANIFEST).read_text())


def _blob_object(backup: Path) -> Path:
    _, doc = _manifest(backup)
    entry = next(e for e in doc["entries"] if e["kind"] == "blob")
    return bm.object_path(backup, entry["object"])


def _refused_everywhere(backup: Path, tmp_path: Path, expect: str, code: int = 1) -> None:
    out = cli("backup", "verify", str(backup))
    assert out.returncode == code, out.stdout + out.stderr
    assert expect in out.stderr
    target = tmp_path / "restored"
    out = cli("backup", "restore", str(backup), "--data-dir", str(target))
    assert out.returncode == code, out.stdout + out.stderr
    assert expect in out.stderr
    assert not target.exists()
    assert not any(p.name.startswith(".restored.restoring") for p in tmp_path.iterdir())


def test_flipped_byte_in_a_blob(site, tmp_path):
    backup = _copy(site, tmp_path)
    obj = _blob_object(backup)
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))
    _refused_everywhere(backup, tmp_path, "is damaged")


def test_missing_blob(site, tmp_path):
    backup = _copy(site, tmp_path)
    _blob_object(backup).unlink()
    _refused_everywhere(backup, tmp_path, "missing")


@pytest.mark.parametrize("edit", ["size", "drop-entry", "path"], ids=["size", "drop-entry", "path"])
def test_manifest_edit(site, tmp_path, edit):
    backup = _copy(site, tmp_path)
    folder, doc = _manifest(backup)
    if edit == "size":
        doc["entries"][0]["size"] += 1
    elif edit == "drop-entry":
        doc["entries"].pop()
    else:
        doc["entries"][0]["path"] = "../outside"
    (folder / bm.MANIFEST).write_text(json.dumps(doc, sort_keys=True, indent=1))
    _refused_everywhere(backup, tmp_path, "altered")


def test_wrong_passphrase_is_named_as_such(site, tmp_path):
    for args in (["verify", str(site["backup"])],
                 ["restore", str(site["backup"]), "--data-dir", str(tmp_path / "r")],
                 ["create", "--data-dir", str(site["data"]), "--to", str(site["backup"])]):
        out = cli("backup", *args, passphrase="not the right passphrase")
        assert out.returncode == 4, out.stderr
        assert "wrong passphrase" in out.stderr
    assert not (tmp_path / "r").exists()


def test_passphrase_never_from_argv_and_required(site):
    out = cli("backup", "verify", str(site["backup"]), passphrase=None)
    assert out.returncode == 1 and "no passphrase" in out.stderr
    out = cli("backup", "verify", str(site["backup"]), "--passphrase", PASSPHRASE, passphrase=None)
    assert out.returncode == 2 and "No such option" in out.stderr


def test_secrets_are_not_stored_in_clear(site):
    data = site["data"]
    secrets = [(data / "master.key").read_bytes(), (data / "audit" / "audit-signing.key").read_bytes()]
    secrets += [v.encode() for v in json.loads((data / "object-keys.json").read_text())["keys"].values()]
    stored = b"".join(p.read_bytes() for p in (site["backup"] / bm.OBJECTS).rglob("*") if p.is_file())
    for secret in secrets:
        assert secret not in stored


def test_authentic_manifest_with_unsafe_path_is_refused(site, tmp_path):
    """Even the passphrase holder cannot make restore write outside its target."""
    backup = _copy(site, tmp_path)
    manifest, keys = bm.load(backup, PASSPHRASE.encode())
    evil = bm.Entry("../escaped", "file", 1, hashlib.sha256(b"x").hexdigest(),
                    hashlib.sha256(b"x").hexdigest(), 1)
    manifest.entries.append(evil)
    manifest.id = manifest.id[:-8] + "ffffffff"
    bm.write(backup, manifest, keys)
    with pytest.raises(BackupError, match="unsafe path"):
        restore(backup, tmp_path / "target", PASSPHRASE.encode(), snapshot=manifest.id)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "target").exists()


def _extend_locks(data: Path) -> None:
    srv = start_server(data)
    try:
        s3 = srv.client()
        s3.put_object_retention(Bucket="worm", Key="kept",
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": LATER})
        s3.put_object_legal_hold(Bucket="worm", Key="held", LegalHold={"Status": "ON"})
    finally:
        stop_server(srv)


def test_restore_cannot_weaken_object_locks(site, tmp_path):
    data = tmp_path / "site"
    shutil.copytree(site["data"], data)
    _extend_locks(data)
    digest = hashlib.sha256((data / "meta.sqlite3").read_bytes()).hexdigest()
    out = cli("backup", "restore", str(site["backup"]), "--data-dir", str(data))
    assert out.returncode == 1 and "not empty" in out.stderr
    out = cli("backup", "restore", str(site["backup"]), "--data-dir", str(data), "--replace")
    assert out.returncode == 1, out.stdout
    assert "would be shortened" in out.stderr and "legal hold would be lifted" in out.stderr
    assert hashlib.sha256((data / "meta.sqlite3").read_bytes()).hexdigest() == digest
    # A backup of the site as it is now restores over it: nothing is weakened.
    fresh = tmp_path / "fresh-backup"
    assert cli("backup", "create", "--data-dir", str(data), "--to", str(fresh)).returncode == 0
    out = cli("backup", "restore", str(fresh), "--data-dir", str(data), "--replace")
    assert out.returncode == 0, out.stderr
    assert "kept at" in out.stdout


def test_weakened_compares_every_kind_of_lock():
    from vallum.ops.backup_restore import weakened
    v = ("b", "k", "v1")
    now = 1000.0
    gov, comp = Lock("GOVERNANCE", 5000.0), Lock("COMPLIANCE", 5000.0)
    assert weakened({v: gov}, {v: Lock("GOVERNANCE", 6000.0)}, now) == []
    assert weakened({v: gov}, {v: Lock("GOVERNANCE", 4000.0)}, now)
    assert weakened({v: comp}, {v: Lock("GOVERNANCE", 9000.0)}, now)
    assert weakened({v: gov}, {}, now)                                   # the version would go
    assert weakened({v: Lock(legal_hold=True)}, {v: gov}, now)
    assert weakened({v: Lock("GOVERNANCE", 500.0)}, {}, now) == []      # expired: nothing to keep


def test_a_site_that_lost_a_blob_is_not_backed_up_as_if_whole(site, tmp_path):
    """A row pointing at a missing blob is a damaged site: the backup says so, names the blob,
    and writes no snapshot (rather than one that restores a broken object silently)."""
    data = tmp_path / "site"
    shutil.copytree(site["data"], data)
    blob = next((data / "blobs").rglob("*"), None)
    while blob is not None and blob.is_dir():
        blob = next(blob.iterdir())
    assert blob is not None
    blob.unlink()
    out = cli("backup", "create", "--data-dir", str(data), "--to", str(tmp_path / "b"))
    assert out.returncode == 1
    assert "lost 1 blob(s)" in out.stderr and blob.name in out.stderr
    assert bm.snapshot_ids(tmp_path / "b") == []
