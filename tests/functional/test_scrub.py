"""`vallum scrub` on a real data directory with injected rot: every corrupt, truncated or
missing body is reported (exit 1, JSON), a clean pass exits 0, and a stopped pass resumes
from its cursor without checking anything twice."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.integrity import blob_files, flip, put, truncate
from tests.support.server import start_server, stop_server
from vallum.cli.main import app


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("needs the server's data directory")
    server = start_server(tmp_path_factory.mktemp("scrub") / "data")
    yield server
    stop_server(server)


def scrub(srv, *args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(app, ["scrub", "--data-dir", str(srv.data_dir), "--json", "--rate", "0", *args])
    assert r.exit_code in (0, 1, 3), r.output
    return r.exit_code, json.loads(r.stdout)


def corrupt_inline(srv, bucket: str, key: str) -> None:
    db = sqlite3.connect(Path(srv.data_dir) / "meta.sqlite3")
    try:
        (raw,) = db.execute("SELECT inline FROM versions WHERE bucket=? AND key=?", (bucket, key)).fetchone()
        db.execute("UPDATE versions SET inline=? WHERE bucket=? AND key=?",
                   (raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:], bucket, key))
        db.commit()
    finally:
        db.close()


def test_scrub_reports_every_kind_of_rot_and_resumes(srv, tmp_path):
    s3 = srv.client()
    bucket = "scrub-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    paths = {k: put(srv, s3, bucket, k, os.urandom(200_000)) for k in ("a", "b", "c", "d", "e")}
    old = paths["e"]                                    # "e" gets a second version; its first rots
    paths["e2"] = put(srv, s3, bucket, "e", os.urandom(100_000))
    s3.put_object(Bucket=bucket, Key="tiny", Body=b"small enough to live in the metadata row")
    s3.put_object(Bucket=bucket, Key="ok-tiny", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="a")            # a delete marker: nothing to read
    before = blob_files(srv)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=os.urandom(size))["ETag"]
             for n, size in ((1, 5 * 1024 * 1024), (2, 70_000))]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
    part_blobs = sorted(blob_files(srv) - before, key=lambda p: p.stat().st_size)
    versions = 9                                        # a, b, c, d, e (x2), tiny, ok-tiny, mp

    code, clean = scrub(srv, "--restart")
    assert code == 0 and clean["complete"] and clean["findings"] == []
    assert clean["versions"] >= versions

    flip(paths["b"], 5000)
    truncate(paths["c"], 10)
    paths["d"].unlink()
    flip(old, 100)
    truncate(part_blobs[0], 1)                          # the 70 KB second part
    corrupt_inline(srv, bucket, "tiny")
    expect = {("b", "corrupt"), ("c", "corrupt"), ("d", "missing"), ("e", "corrupt"),
              ("mp", "corrupt"), ("tiny", "corrupt")}

    code, report = scrub(srv, "--restart")
    mine = [f for f in report["findings"] if f["bucket"] == bucket]
    assert code == 1 and report["complete"]
    assert {(f["key"], f["problem"]) for f in mine} == expect
    old_version = next(f for f in mine if f["key"] == "e")
    assert old_version["version_id"] != s3.head_object(Bucket=bucket, Key="e")["VersionId"]
    assert next(f for f in mine if f["key"] == "mp")["blob_id"] == part_blobs[0].name

    # Resumable: stop after 3 versions, then continue from the cursor.
    cursor = tmp_path / "cursor.json"
    code, first = scrub(srv, "--restart", "--cursor", str(cursor), "--max-versions", "3")
    assert code in (1, 3) and not first["complete"] and first["versions"] == 3
    assert cursor.stat().st_mode & 0o777 == 0o600
    code, rest = scrub(srv, "--cursor", str(cursor))
    assert code == 1 and rest["complete"]
    assert rest["versions"] == report["versions"]       # nothing checked twice or skipped
    assert sorted(map(json.dumps, rest["findings"])) == sorted(map(json.dumps, report["findings"]))
    # A finished pass leaves a complete cursor: the next run starts a new pass.
    code, again = scrub(srv, "--cursor", str(cursor), "--max-versions", "1")
    assert again["versions"] == 1


def test_scrub_usage_errors(tmp_path):
    r = CliRunner().invoke(app, ["scrub", "--data-dir", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no Vallum data directory" in r.output
