"""`vallum upgrade` and the schema check of `vallum serve`, on a data directory the server made."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.support.backup import cli
from tests.support.server import free_port, start_server, stop_server


def _serve_refused(data_dir) -> str:
    """Start `vallum serve` expecting it to refuse; its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "vallum", "serve", "--data-dir", str(data_dir),
                             "--address", f"127.0.0.1:{free_port()}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    return err


def test_previous_release_upgraded_then_served_intact_and_newer_refused(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        srv.client().create_bucket(Bucket="kept")
        srv.client().put_object(Bucket="kept", Key="k", Body=b"v" * 100_000)
    finally:
        stop_server(srv)
    for file in ("meta.sqlite3", "object-keys.sqlite3"):        # as the previous release left it
        with sqlite3.connect(data / file) as db:
            db.execute("DROP TABLE vallum_schema")

    err = _serve_refused(data)
    assert "needs a schema upgrade (meta 0 -> 1" in err and f"vallum upgrade --data-dir {data}" in err
    check = cli("upgrade", "--data-dir", str(data), "--check")
    assert check.returncode == 3 and "meta: 0 (this release: 1)" in check.stdout
    done = cli("upgrade", "--data-dir", str(data))
    assert done.returncode == 0 and "applied: meta 0 -> 1" in done.stdout
    assert cli("upgrade", "--data-dir", str(data)).stdout.strip().endswith("up to date")

    with sqlite3.connect(data / "meta.sqlite3") as db:             # one store behind: upgraded at start
        db.execute("DELETE FROM vallum_schema WHERE store = 'compute'")
    srv = start_server(data, "--auto-upgrade")
    try:
        assert srv.client().get_object(Bucket="kept", Key="k")["Body"].read() == b"v" * 100_000
    finally:
        stop_server(srv)
    with sqlite3.connect(data / "meta.sqlite3") as db:
        assert dict(db.execute("SELECT store, version FROM vallum_schema"))["compute"] == 1

    with sqlite3.connect(data / "meta.sqlite3") as db:
        db.execute("UPDATE vallum_schema SET version = 2 WHERE store = 'meta'")
    err = _serve_refused(data)
    assert "written by a newer Vallum: meta is version 2 (this Vallum knows 1)" in err
    refused = cli("upgrade", "--data-dir", str(data))
    assert refused.returncode == 1 and "newer Vallum" in refused.stderr
