"""The platform root credentials: from the environment, or generated once and kept 0600."""

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
    creds = RootCredentials("VR" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18)),
                            secrets.token_urlsafe(30)[:40], generated=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key": creds.access_key, "secret_key": creds.secret_key}, f)
        f.flush()
        os.fsync(f.fileno())
    return creds
