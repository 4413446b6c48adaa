"""`vallum keys rotate` / `retire`: a new object master key, every data key and inline body
re-wrapped under it, then the old key removed; objects written before read back after each
step, and a running gateway keeps serving through the rotation."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.support.server import start_server, stop_server
from vallum.security.crypto import envelope

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's data directory")

BIG = os.urandom(200 * 1024 + 7)          # a blob (over the 64 KiB inline limit)
SMALL = b"small inline body " * 20       # kept, encrypted, in the metadata row


def keys_cli(data_dir, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VALLUM_OBJECT_MASTER_KEY"}
    return subprocess.run([sys.executable, "-m", "vallum", "keys", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env=env, timeout=60)


def keyring(data_dir) -> dict:
    return json.loads((data_dir / "object-keys.json").read_text())


def wrapped_under(data_dir) -> tuple[set[str], set[str]]:
    """(master key ids of data-key rows, master key ids of inline bodies)."""
    with sqlite3.connect(data_dir / "object-keys.sqlite3") as db:
        deks = {r[0] for r in db.execute("SELECT kek FROM deks")}
    with sqlite3.connect(data_dir / "meta.sqlite3") as db:
        inline = {envelope.small_key_id(bytes(r[0]))
                  for r in db.execute("SELECT inline FROM versions WHERE inline IS NOT NULL")}
    return deks, inline


def read_all(s3, bucket: str) -> dict[str, bytes]:
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in ("big", "small", "after")
            if k != "after" or any(o["Key"] == "after" for o in s3.list_objects_v2(Bucket=bucket)["Contents"])}


def test_rotate_then_retire_the_old_key(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="rot")
        s3.put_object(Bucket="rot", Key="big", Body=BIG)
        s3.put_object(Bucket="rot", Key="small", Body=SMALL)
        old = keyring(data)["current"]
        assert wrapped_under(data) == ({old}, {old})

        out = keys_cli(data, "rotate")                # while the gateway runs
        assert out.returncode == 0, out.stderr
        new = keyring(data)["current"]
        assert new != old and set(keyring(data)["keys"]) == {old, new}
        assert wrapped_under(data) == ({new}, {new})
        assert read_all(s3, "rot") == {"big": BIG, "small": SMALL}   # reloads the keyring
        s3.put_object(Bucket="rot", Key="after", Body=SMALL)         # ... and writes under the new key
    finally:
        stop_server(srv)
    assert wrapped_under(data) == ({new}, {new})

    out = keys_cli(data, "retire")
    assert out.returncode == 0, out.stderr
    assert f"retired: {old}" in out.stdout
    assert set(keyring(data)["keys"]) == {new}      # the old key is gone for good
    assert old not in (data / "object-keys.json").read_text()

    srv = start_server(data)
    try:
        assert read_all(srv.client(), "rot") == {"big": BIG, "small": SMALL, "after": SMALL}
    finally:
        stop_server(srv)


def test_rotate_with_retire_in_one_step_and_refusals(tmp_path):
    data = tmp_path / "data"
    out = keys_cli(data, "rotate")                    # no keyring yet: a usage error
    assert out.returncode == 2 and "no object keyring" in out.stderr
    srv = start_server(data)
    try:
        srv.client().create_bucket(Bucket="rot")
        srv.client().put_object(Bucket="rot", Key="big", Body=BIG)
        srv.client().put_object(Bucket="rot", Key="small", Body=SMALL)
    finally:
        stop_server(srv)
    old = keyring(data)["current"]
    out = keys_cli(data, "rotate", "--retire")
    assert out.returncode == 0, out.stderr
    ring = keyring(data)
    assert list(ring["keys"]) == [ring["current"]] and ring["current"] != old
    env = dict(os.environ, VALLUM_OBJECT_MASTER_KEY="A" * 43 + "=")
    refused = subprocess.run([sys.executable, "-m", "vallum", "keys", "rotate", "--data-dir", str(data)],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 1 and "external KMS" in refused.stderr
    srv = start_server(data)
    try:
        s3 = srv.client()
        assert s3.get_object(Bucket="rot", Key="big")["Body"].read() == BIG
        assert s3.get_object(Bucket="rot", Key="small")["Body"].read() == SMALL
    finally:
        stop_server(srv)
