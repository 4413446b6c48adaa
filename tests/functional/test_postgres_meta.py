"""`vallum serve` with object metadata on PostgreSQL: a real server on a real PostgreSQL
(tests/support/postgres.py) answers boto3 like the embedded store does, the rows land in
PostgreSQL, and the database password never reaches argv or the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.support.postgres import PASSWORD, fresh_url, postgres  # noqa: F401 - fixture
from tests.support.server import code, server_log, start_server, stop_server


@pytest.fixture(scope="module")
def pg_server(postgres, tmp_path_factory):  # noqa: F811 - the fixture imported above
    url = fresh_url()
    data = tmp_path_factory.mktemp("pgmeta") / "data"
    srv = start_server(data, env={"VALLUM_META_URL": url})     # the password in env, not argv
    yield srv, url
    stop_server(srv)


def test_boto3_round_trip_on_postgres(pg_server):
    srv, url = pg_server
    s3 = srv.client()
    s3.create_bucket(Bucket="pgb")
    s3.put_object(Bucket="pgb", Key="dir/a.txt", Body=b"hello")
    s3.put_object(Bucket="pgb", Key="dir/b.txt", Body=b"world" * 1000)
    s3.put_object(Bucket="pgb", Key="top", Body=b"")
    assert s3.get_object(Bucket="pgb", Key="dir/a.txt")["Body"].read() == b"hello"
    assert s3.head_object(Bucket="pgb", Key="dir/b.txt")["ContentLength"] == 5000
    listed = s3.list_objects_v2(Bucket="pgb", Delimiter="/")
    assert [c["Prefix"] for c in listed["CommonPrefixes"]] == ["dir/"]
    assert [o["Key"] for o in listed["Contents"]] == ["top"]
    page = s3.list_objects_v2(Bucket="pgb", MaxKeys=2)
    assert page["IsTruncated"] and [o["Key"] for o in page["Contents"]] == ["dir/a.txt", "dir/b.txt"]

    # Versioning: two versions, a delete marker, the old version still readable.
    s3.put_bucket_versioning(Bucket="pgb", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="pgb", Key="v", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket="pgb", Key="v", Body=b"two")["VersionId"]
    s3.delete_object(Bucket="pgb", Key="v")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="pgb", Key="v")
    assert code(err) == "NoSuchKey"
    assert s3.get_object(Bucket="pgb", Key="v", VersionId=v1)["Body"].read() == b"one"
    versions = s3.list_object_versions(Bucket="pgb", Prefix="v")
    assert [v["VersionId"] for v in versions["Versions"]] == [v2, v1]
    assert len(versions["DeleteMarkers"]) == 1 and versions["DeleteMarkers"][0]["IsLatest"]

    # Multipart: a 5 MiB part and a short last one.
    up = s3.create_multipart_upload(Bucket="pgb", Key="mp")["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="pgb")["Uploads"]] == [up]
    first, last = os.urandom(5 * 1024 * 1024), b"tail"
    e1 = s3.upload_part(Bucket="pgb", Key="mp", UploadId=up, PartNumber=1, Body=first)["ETag"]
    e2 = s3.upload_part(Bucket="pgb", Key="mp", UploadId=up, PartNumber=2, Body=last)["ETag"]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="pgb", Key="mp", UploadId=up)["Parts"]] == [1, 2]
    s3.complete_multipart_upload(Bucket="pgb", Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket="pgb", Key="mp")["Body"].read() == first + last
    assert s3.list_multipart_uploads(Bucket="pgb").get("Uploads", []) == []

    # The rows are in PostgreSQL, not in a SQLite file beside the blobs.
    with psycopg.connect(url) as conn:
        keys = {r[0] for r in conn.execute("SELECT key FROM versions WHERE bucket = 'pgb'")}
        usage = conn.execute("SELECT SUM(objects) FROM usage WHERE bucket = 'pgb'").fetchone()[0]
    assert keys == {"dir/a.txt", "dir/b.txt", "top", "v", "mp"}
    assert usage == 6           # five keys, "v" twice; the delete marker is not counted


def test_nul_in_a_key_is_refused_with_invalid_argument(pg_server):
    srv, _ = pg_server
    s3 = srv.client()
    s3.create_bucket(Bucket="pgnul")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="pgnul", Key="a\x00b", Body=b"x")
    assert code(err) == "InvalidArgument"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert s3.list_objects_v2(Bucket="pgnul")["KeyCount"] == 0


def test_start_up_log_names_the_store_without_the_password(pg_server):
    srv, _ = pg_server
    with urllib.request.urlopen(srv.endpoint + "/-/health/ready", timeout=10) as ready:
        assert ready.status == 200             # the database answers
    log = server_log(srv.data_dir).read_text()
    assert "Object metadata:    PostgreSQL postgresql://vallum:***@127.0.0.1:" in log
    assert "with IAM, authentication lockouts, operator state and compute; audit, key table and " \
        "blobs stay in the data directory" in log
    assert PASSWORD not in log


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://vallum:hunter2-not-on-argv@127.0.0.1:1/vallum",    # a password on argv
     "--meta takes a postgresql:// URL without a password"),
    ("sqlite:///tmp/meta.db", "must be a postgresql:// URL"),
], ids=["password-on-argv", "sqlite-url"])
def test_meta_flag_refuses_passwords_and_other_urls(tmp_path, url, message):
    out = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "d"),
                          "--meta", url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr
    assert "hunter2" not in out.stdout + out.stderr


def test_unreachable_database_fails_start_up_with_a_precise_message(tmp_path):
    # Port 1 on loopback: nothing listens there.
    out = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "d"),
                          "--address", "127.0.0.1:1"],
                         env=dict(os.environ, VALLUM_META_URL="postgresql://vallum:pw-xyz@127.0.0.1:1/v",
                                  VALLUM_META_OPEN_TIMEOUT="1"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "PostgreSQL metadata store postgresql://vallum:***@127.0.0.1:1/v" in out.stderr
    assert "pw-xyz" not in out.stdout + out.stderr


def test_scrub_reads_the_postgres_store_not_an_empty_sqlite_one(pg_server):
    srv, url = pg_server
    s3 = srv.client()
    s3.create_bucket(Bucket="pgscrub")
    s3.put_object(Bucket="pgscrub", Key="big", Body=os.urandom(200 * 1024))
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM versions WHERE delete_marker = 0").fetchone()[0]
    out = subprocess.run([sys.executable, "-m", "vallum", "scrub", "--data-dir", str(srv.data_dir),
                          "--json", "--rate", "0", "--restart", "--cursor",
                          str(srv.data_dir.parent / "pg-scrub-cursor.json")],
                         env=dict(os.environ, VALLUM_META_URL=url), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["versions"] == stored and stored > 0
    assert report["findings"] == []
