"""The ``--blobs`` value: where object bodies live, and in how many copies.

``local:/PATH`` (a directory, typically another disk), ``s3://BUCKET/PREFIX@ENDPOINT``
(storage/s3upstream.py), or two of them separated by a comma: a mirror
(storage/mirror.py) that writes both before acknowledging and reads either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vallum.storage.base import BlobStore
from vallum.storage.headroom import Headroom, Reserve
from vallum.storage.localfs import LocalBlobStore
from vallum.storage.mirror import JOURNAL_FILE, MirrorBlobStore

MAX_COPIES = 2
USAGE = ("expected local:/PATH or s3://BUCKET/PREFIX@http(s)://HOST[:PORT], "
         "or two of them separated by a comma (a mirror)")


def _one(part: str) -> str:
    part = part.strip()
    if part.startswith("local:"):
        path = part[len("local:"):]
        if not path.startswith("/") or "\x00" in path:
            raise ValueError(f"{part!r}: local: needs an absolute path")
        return "local:" + os.path.normpath(path)
    if part.startswith("s3://"):
        from vallum.storage.s3upstream import parse_spec  # boto3 only when configured

        return str(parse_spec(part))
    raise ValueError(USAGE)


def parse(text: str) -> list[str]:
    """The normalized copies a ``--blobs`` value names; ValueError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(USAGE)
    copies = [_one(p) for p in text.split(",")]
    if len(copies) > MAX_COPIES:
        raise ValueError(f"at most {MAX_COPIES} copies")
    if len(set(copies)) != len(copies):
        raise ValueError("the two copies of a mirror must be different places")
    locals_ = [Path(c[len("local:"):]) for c in copies if c.startswith("local:")]
    for a in locals_:
        for b in locals_:
            if a != b and a.is_relative_to(b):
                raise ValueError(f"mirror copy {a} is inside the other copy {b}")
    return copies


def normalize(text: str) -> str:
    return ",".join(parse(text))


def local_roots(text: str | None) -> list[Path]:
    """The directories a ``--blobs`` value keeps copies in (their disks need headroom)."""
    return [Path(c[len("local:"):]) for c in parse(text) if c.startswith("local:")] if text else []


def build(text: str, data_dir: Path, reserve: Reserve, env: dict[str, str] | Any = None) -> BlobStore:
    """The (unencrypted) store a ``--blobs`` value names; a mirror records the damage its
    readers pass over in ``data_dir``/mirror-damage.jsonl."""
    stores: list[tuple[str, BlobStore]] = []
    for copy in parse(text):
        if copy.startswith("local:"):
            root = Path(copy[len("local:"):])
            if not root.is_dir():
                # Never created here: an unmounted disk would silently become a directory
                # on whatever filesystem holds the mount point.
                raise ValueError(f"{copy}: no such directory (create it on the disk it names)")
            stores.append((copy, LocalBlobStore(root, Headroom(root, reserve))))
        else:
            from vallum.storage.s3upstream import from_spec  # boto3 only when configured

            stores.append((copy, from_spec(copy, env)))
    if len(stores) == 1:
        return stores[0][1]
    return MirrorBlobStore(stores, journal=Path(data_dir) / JOURNAL_FILE)
