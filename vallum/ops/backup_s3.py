"""Backups on an S3 target (``s3://BUCKET/PREFIX@http(s)://HOST[:PORT]``): the layout of a
backup directory (``objects/<aa>/<sha256>``, ``snapshots/<id>/manifest.json`` and
``manifest.mac``) under ``PREFIX`` in the bucket.

create: the snapshot is taken by backup_create into a private staging directory that holds
only the latest remote manifest (for increments) and, one at a time, each new object: it is
uploaded as soon as it is written and then removed, and an object the target already holds
(same SHA-256 name, same size) is not uploaded again. The manifest and its MAC go up last,
so a snapshot appears on the target only once every object it names is there.

verify / restore: the snapshot's manifest and MAC are fetched and authenticated under the
passphrase first, then exactly the objects it names are downloaded into a private staging
directory and checked (and restored) by the code that serves backup directories: a forged
manifest is refused before any object is fetched, and a damaged object is found by its
SHA-256 whatever the target answered.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vallum.ops import backup_manifest as bm
from vallum.ops.backup_create import CreateReport, Store, create
from vallum.ops.backup_keys import BackupError, BackupKeys

ENV_NAMES = ("VALLUM_BACKUP_S3_ACCESS_KEY", "VALLUM_BACKUP_S3_SECRET_KEY",
             "VALLUM_BACKUP_S3_CREDENTIALS_FILE")
ENV_CA_BUNDLE = "VALLUM_BACKUP_S3_CA_BUNDLE"


def is_target(text: str) -> bool:
    return text.startswith("s3://")


class Target:
    """One bucket and prefix on an S3 service, with credentials from the environment."""

    def __init__(self, text: str, env: dict[str, str] | Any = None) -> None:
        try:
            import boto3
            from botocore.config import Config

            from vallum.storage.s3upstream import load_credentials, parse_spec
        except ImportError as exc:
            raise BackupError(f"an S3 backup target needs the s3blobs extra ({exc})") from None
        env = os.environ if env is None else env
        try:
            self.spec = parse_spec(text)
            ak, sk = load_credentials(env, names=ENV_NAMES)
        except (ValueError, OSError) as exc:
            raise BackupError(f"S3 backup target: {exc}") from None
        ca = env.get(ENV_CA_BUNDLE) or True
        self.client = boto3.client(
            "s3", endpoint_url=self.spec.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
            region_name="us-east-1", verify=ca,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 5},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def key(self, rel: str) -> str:
        return self.spec.prefix + rel

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return fn(Bucket=self.spec.bucket, **kw)
        except (ClientError, BotoCoreError) as exc:
            raise BackupError(f"S3 backup target {self.spec}: {what} failed ({exc})") from None

    def listing(self, rel_prefix: str) -> Iterator[dict[str, Any]]:
        token: dict[str, str] = {}
        while True:
            page = self._call("ListObjectsV2", self.client.list_objects_v2,
                              Prefix=self.key(rel_prefix), **token)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def objects(self) -> set[tuple[str, int]]:
        """(sha256, size) of every object the target holds."""
        out = set()
        for item in self.listing(bm.OBJECTS + "/"):
            name = item["Key"].rsplit("/", 1)[-1]
            if len(name) == 64:
                out.add((name, int(item["Size"])))
        return out

    def snapshot_ids(self) -> list[str]:
        ids = set()
        for item in self.listing(bm.SNAPSHOTS + "/"):
            parts = item["Key"][len(self.key(bm.SNAPSHOTS + "/")):].split("/")
            if len(parts) == 2 and parts[1] == bm.MAC:        # the MAC goes up last
                ids.add(parts[0])
        return sorted(i for i in ids if bm.is_snapshot_id(i))

    def upload(self, src: Path, rel: str) -> None:
        with open(src, "rb") as f:
            self._call("PutObject", self.client.put_object, Key=self.key(rel), Body=f,
                       ContentLength=src.stat().st_size)

    def download(self, rel: str, dst: Path) -> bool:
        """Fetch ``rel`` into ``dst`` (0600); False if the target does not hold it."""
        from botocore.exceptions import ClientError
        try:
            resp = self.client.get_object(Bucket=self.spec.bucket, Key=self.key(rel))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise BackupError(f"S3 backup target {self.spec}: GetObject {rel} failed ({exc})") from None
        dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for block in resp["Body"].iter_chunks(bm.CHUNK):
                out.write(block)
        return True


class _UploadingStore(Store):
    """backup_create's store whose objects go to the target: written to staging, uploaded,
    removed; objects the target already holds are reused."""

    def __init__(self, root: Path, keys: BackupKeys, previous: dict[str, bm.Entry],
                 target: Target, remote: set[tuple[str, int]]) -> None:
        super().__init__(root, keys, previous)
        self.target, self.remote = target, remote

    def have(self, sha: str, size: int) -> bool:
        return (sha, size) in self.remote

    def place(self, tmp: Path, sha: str) -> None:
        size = tmp.stat().st_size
        try:
            if (sha, size) in self.remote:
                self.reused += 1
                return
            self.target.upload(tmp, f"{bm.OBJECTS}/{sha[:2]}/{sha}")
            self.remote.add((sha, size))
            self.copied += 1
        finally:
            tmp.unlink(missing_ok=True)


@contextmanager
def _staging(parent: str | None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="vallum-backup-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fetch_manifest(target: Target, root: Path, snapshot: str | None) -> str:
    ids = target.snapshot_ids()
    if snapshot is None:
        if not ids:
            raise BackupError(f"{target.spec}: no snapshot found")
        snapshot = ids[-1]
    elif snapshot not in ids:
        raise BackupError(f"{target.spec}: no snapshot {snapshot!r}")
    for name in (bm.MANIFEST, bm.MAC):
        rel = f"{bm.SNAPSHOTS}/{snapshot}/{name}"
        if not target.download(rel, root / rel):
            raise BackupError(f"{target.spec}: snapshot {snapshot} has no {name}")
    return snapshot


def create_to(data_dir: Path, text: str, passphrase: bytes, *, staging: str | None = None,
              meta_url: str | None = None) -> CreateReport:
    target = Target(text)
    with _staging(staging) as root:
        if target.snapshot_ids():
            _fetch_manifest(target, root, None)           # increments, and one passphrase per target
        remote = target.objects()
        report = create(data_dir, root, passphrase, meta_url=meta_url,
                        make_store=lambda r, k, prev: _UploadingStore(r, k, prev, target, remote))
        folder = f"{bm.SNAPSHOTS}/{report.snapshot}"
        target.upload(root / folder / bm.MANIFEST, f"{folder}/{bm.MANIFEST}")
        target.upload(root / folder / bm.MAC, f"{folder}/{bm.MAC}")    # the commit point
        return report


@contextmanager
def fetched(text: str, passphrase: bytes, snapshot: str | None = None, *,
            staging: str | None = None) -> Iterator[tuple[Path, str]]:
    """A private local copy of one snapshot of the target (its manifest authenticated before
    any object is fetched), as a backup directory: (root, snapshot id)."""
    target = Target(text)
    with _staging(staging) as root:
        snap = _fetch_manifest(target, root, snapshot)
        manifest, _ = bm.load(root, passphrase, snap)
        for entry in manifest.entries:
            path = bm.object_path(root, entry.object)
            if not path.exists():
                target.download(f"{bm.OBJECTS}/{entry.object[:2]}/{entry.object}", path)
        yield root, snap
