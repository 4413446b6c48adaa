"""The platform root credentials: from the environment, or generated once and kept 0600.

A generated secret is shown once, when it is created (`vallum serve`'s first start or
`vallum admin root rotate`); afterwards it is only in the 0600 file, never printed
or logged again."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

_KEY_ALPHABET = string.ascii_uppercase + string.digits
ROOT_FILE = "root-credentials.json"


@dataclass(frozen=True)
class RootCredentials:
    access_key: str
    secret_key: str
    generated: bool = False      # True when created by this call (print it once)


def load_or_create(data_dir: Path) -> RootCredentials:
    env_key = os.environ.get("VALLUM_ROOT_ACCESS_KEY")
    env_secret = os.environ.get("VALLUM_ROOT_SECRET_KEY")
    if env_key and env_secret:
        return RootCredentials(env_key, env_secret)
    if bool(env_key) != bool(env_secret):
        raise ValueError("set both VALLUM_ROOT_ACCESS_KEY and VALLUM_ROOT_SECRET_KEY, or neither")
    path = data_dir / ROOT_FILE
    if path.exists():
        doc = json.loads(path.read_text())
        return RootCredentials(doc["access_key"], doc["secret_key"])
    creds = RootCredentials(_new_access_key(), _new_secret(), generated=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    _write(path, creds, exclusive=True)
    return creds


def rotate(data_dir: Path) -> RootCredentials:
    """A new root secret for the generated credentials (same access key), replacing the
    file atomically. Gateways read it at start: restart them. ValueError when the root
    comes from the environment or the data directory has no generated credentials."""
    if os.environ.get("VALLUM_ROOT_ACCESS_KEY") or os.environ.get("VALLUM_ROOT_SECRET_KEY"):
        raise ValueError("the root credentials come from VALLUM_ROOT_ACCESS_KEY/"
                         "VALLUM_ROOT_SECRET_KEY: change them there")
    path = data_dir / ROOT_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no {ROOT_FILE} in {data_dir}: it is created at the first "
                         "`vallum serve`") from None
    creds = RootCredentials(doc["access_key"], _new_secret(), generated=True)
    tmp = path.with_name(ROOT_FILE + ".new")
    tmp.unlink(missing_ok=True)
    _write(tmp, creds, exclusive=True)
    os.replace(tmp, path)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return creds


def _new_access_key() -> str:
    return "VR" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))


def _new_secret() -> str:
    return secrets.token_urlsafe(30)[:40]


def _write(path: Path, creds: RootCredentials, *, exclusive: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key": creds.access_key, "secret_key": creds.secret_key}, f)
        f.flush()
        os.fsync(f.fileno())
