"""Labels from rclone and s3fs, unmodified: a key bound to a session level syncs a tree
and every object lands at that level; a label asked for through user metadata
(`rclone --metadata-set`, s3fs's `Metadata`) is stored and shown back; a write outside
the bucket's range fails with the rule named; and a sync never sees what is above it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.labels import TS, C, Cleared, S, U
from tests.support.rclone import rclone
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("rclone") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def world(srv) -> Cleared:
    w = Cleared(srv)
    w.user("ts", TS)
    w.user("sec", S)
    return w


def _tree(root: Path, n: int) -> Path:
    for i in range(n):
        f = root / f"d{i % 4}" / f"f{i:03d}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"file {i}\n")
    return root


def test_rclone_sync_lands_at_the_keys_level_and_check_passes(world, srv, tmp_path):
    b = world.bucket(U, TS)
    key = world.key("ts", S)                       # a SECRET session of a TS-cleared user
    src = _tree(tmp_path / "src", 40)
    rclone(srv, key, tmp_path, "sync", str(src), f"v:{b}/tree")
    rclone(srv, key, tmp_path, "check", str(src), f"v:{b}/tree")
    listed = json.loads(rclone(srv, key, tmp_path, "lsjson", "-R", "--files-only", "--metadata",
                               f"v:{b}/tree").stdout)
    assert len(listed) == 40
    assert {e["Metadata"].get("vallum-label") for e in listed} == {S}
    # A second sync has nothing to do: the label metadata does not make rclone re-upload.
    again = rclone(srv, key, tmp_path, "sync", str(src), f"v:{b}/tree", "-v")
    assert "Copied" not in again.stderr, again.stderr[-2000:]


def test_rclone_sets_a_label_through_metadata(world, srv, tmp_path):
    b = world.bucket(U, TS)
    key = world.key("ts")                          # unbound: works at its clearance, TS
    (tmp_path / "memo.txt").write_text("memo")
    # No write down from a TS session to SECRET: the rule is named, nothing is stored.
    down = rclone(srv, key, tmp_path, "copyto", str(tmp_path / "memo.txt"), f"v:{b}/memo.txt",
                  "--metadata", "--metadata-set", "vallum-label=SECRET", check=False)
    assert down.returncode != 0 and "no write down" in down.stderr
    rclone(srv, key, tmp_path, "copyto", str(tmp_path / "memo.txt"), f"v:{b}/memo.txt")
    # The same person's SECRET-bound key writes at SECRET, and may say so.
    sec_session = world.key("ts", S)
    rclone(srv, sec_session, tmp_path, "copyto", str(tmp_path / "memo.txt"), f"v:{b}/memo2.txt",
           "--metadata", "--metadata-set", "vallum-label=SECRET")
    info = json.loads(rclone(srv, sec_session, tmp_path, "lsjson", "--metadata",
                             f"v:{b}/memo2.txt").stdout)
    assert info[0]["Metadata"]["vallum-label"] == S
    refused = rclone(srv, sec_session, tmp_path, "copyto", str(tmp_path / "memo.txt"),
                     f"v:{b}/memo3.txt", "--metadata", "--metadata-set",
                     "vallum-label=CONFIDENTIAL", check=False)
    assert refused.returncode != 0 and "no write down" in refused.stderr
    # The TS-level write: invisible to the SECRET session's listing, visible at TS.
    seen_low = json.loads(rclone(srv, sec_session, tmp_path, "lsjson", f"v:{b}").stdout)
    assert "memo.txt" not in {e["Path"] for e in seen_low}
    seen_top = json.loads(rclone(srv, key, tmp_path, "lsjson", "--metadata", f"v:{b}").stdout)
    labels = {e["Path"]: e["Metadata"].get("vallum-label") for e in seen_top}
    assert labels == {"memo.txt": TS, "memo2.txt": S}


def test_rclone_outside_the_bucket_range_names_the_rule(world, srv, tmp_path):
    b = world.bucket(U, C)
    key = world.key("sec", S)
    (tmp_path / "x.txt").write_text("x")
    out = rclone(srv, key, tmp_path, "copyto", str(tmp_path / "x.txt"), f"v:{b}/x.txt", check=False)
    assert out.returncode != 0
    assert "outside bucket range" in out.stderr and S in out.stderr


def _fs(srv, key: tuple[str, str], **extra):
    import s3fs
    return s3fs.S3FileSystem(key=key[0], secret=key[1], use_listings_cache=False, client_kwargs={
        "endpoint_url": srv.endpoint, "region_name": "us-east-1"},
        config_kwargs={"s3": {"addressing_style": "path"}}, **extra)


def test_s3fs_writes_and_reads_labels(world, srv):
    b = world.bucket(U, TS)
    key = world.key("ts", S)
    fs = _fs(srv, key)
    with fs.open(f"{b}/plain.txt", "wb") as f:
        f.write(b"plain")
    assert fs.info(f"{b}/plain.txt")["size"] == 5
    assert fs.getxattr(f"{b}/plain.txt", "vallum-label") == S
    # s3fs sends user metadata given to the filesystem (s3_additional_kwargs) with every
    # upload: written up from SECRET to TOP SECRET, the object leaves the writer's view.
    up = _fs(srv, key, s3_additional_kwargs={"Metadata": {"vallum-label": TS}})
    with up.open(f"{b}/raised.txt", "wb") as f:
        f.write(b"raised")
    fs.invalidate_cache()
    assert not fs.exists(f"{b}/raised.txt")
    assert fs.ls(b, refresh=True) == [f"{b}/plain.txt"]
    top = _fs(srv, world.key("ts"))
    assert top.getxattr(f"{b}/raised.txt", "vallum-label") == TS
    assert top.cat(f"{b}/raised.txt") == b"raised"
