"""`vallum serve` on a small filesystem of its own: a tmpfs of a given size mounted on its
data directory inside a private mount namespace (``unshare --mount --map-root-user``),
so the mount needs no privileges and disappears with the server process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Server,
    free_port,
    server_log,
    wait_ready,
)

# mount, then become the server (argv after the script: data dir, size, command...)
_MOUNT_THEN_EXEC = 'mount -t tmpfs -o "size=$2,mode=0700" vallum-test "$1" && shift 2 && exec "$@"'


def start_on_small_fs(data_dir: Path, size: str, *extra: str, mount_at: Path | None = None) -> Server:
    """Start the server with ``data_dir`` (or ``mount_at``, e.g. one disk of a mirror) a
    fresh tmpfs of ``size`` (e.g. "64m")."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("the disk-full tests need util-linux's unshare")
    data_dir.mkdir(parents=True, exist_ok=True)
    mount_at = mount_at or data_dir
    mount_at.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, VALLUM_ROOT_ACCESS_KEY=ACCESS_KEY, VALLUM_ROOT_SECRET_KEY=SECRET_KEY)
    log_path = server_log(data_dir)
    argv = [unshare, "--mount", "--map-root-user", "--propagation", "private", "--",
            "sh", "-c", _MOUNT_THEN_EXEC, "sh", str(mount_at), size,
            sys.executable, "-m", "vallum", "serve", "--data-dir", str(data_dir),
            "--address", f"127.0.0.1:{port}", *extra]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_ready(endpoint, proc, log_path=log_path)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return Server(endpoint, ACCESS_KEY, SECRET_KEY, REGION, data_dir, proc)
