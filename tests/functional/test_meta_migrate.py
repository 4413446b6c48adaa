"""`vallum meta migrate`: an embedded install made by the real server (objects, versions, a
multipart upload in progress, tags, labels, a job) is stopped, copied into a real PostgreSQL,
and the server started on it with the same data directory answers boto3 with every byte as
before. Refusals: a running gateway, a non-empty target, a password in argv."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import psycopg
import pytest

from tests.support.compute import client_of
from tests.support.postgres import PASSWORD, fresh_url, postgres  # noqa: F401 - fixture
from tests.support.server import start_server, stop_server

HEADER = "x-vallum-classification"
LABEL = "SECRET//SI/TK//REL TO USA, GBR"


def run_migrate(data, url, *extra):
    env = dict(os.environ, VALLUM_META_URL=url)
    return subprocess.run([sys.executable, "-m", "vallum", "meta", "migrate",
                           "--from", f"sqlite:{data}", *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def put_labelled(s3, bucket, key, body):
    def add(params, **_):
        params["headers"][HEADER] = LABEL

    s3.meta.events.register_first("before-call.s3.PutObject", add)
    try:
        return s3.put_object(Bucket=bucket, Key=key, Body=body)
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", add)


def snapshot(s3):
    """Every bucket's versions (bytes hashed), tags, labels and uploads in progress."""
    out = {}
    for b in sorted(x["Name"] for x in s3.list_buckets()["Buckets"]):
        listed = s3.list_object_versions(Bucket=b)
        for v in listed.get("Versions", []):
            got = s3.get_object(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])
            out[(b, v["Key"], v["VersionId"])] = (
                hashlib.sha256(got["Body"].read()).hexdigest(), got["ETag"], v["IsLatest"],
                got["ResponseMetadata"]["HTTPHeaders"].get(HEADER),
                s3.get_object_tagging(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])["TagSet"])
        for m in listed.get("DeleteMarkers", []):
            out[(b, m["Key"], m["VersionId"])] = ("marker", m["IsLatest"])
        for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", []):
            parts = s3.list_parts(Bucket=b, Key=u["Key"], UploadId=u["UploadId"])["Parts"]
            out[(b, u["Key"], u["UploadId"])] = [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts]
    return out


def test_migrate_an_embedded_install_and_serve_it_from_postgres(postgres, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    url = fresh_url()
    srv = start_server(data)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="plain")
        s3.create_bucket(Bucket="vers")
        s3.put_bucket_versioning(Bucket="vers", VersioningConfiguration={"Status": "Enabled"})
        for i in range(30):
            s3.put_object(Bucket="plain", Key=f"k/{i:03d}", Body=os.urandom(100 + i * 997))
        s3.put_object(Bucket="plain", Key="big", Body=os.urandom(300_000))
        put_labelled(s3, "plain", "classified", b"eyes only")
        s3.put_object_tagging(Bucket="plain", Key="k/001",
                              Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]})
        s3.put_object(Bucket="vers", Key="doc", Body=b"one")
        s3.put_object(Bucket="vers", Key="doc", Body=b"two")
        s3.delete_object(Bucket="vers", Key="doc")
        s3.put_object(Bucket="vers", Key="kept", Body=b"kept")
        first = os.urandom(5 * 1024 * 1024)
        up = s3.create_multipart_upload(Bucket="vers", Key="mp")["UploadId"]
        e1 = s3.upload_part(Bucket="vers", Key="mp", UploadId=up, PartNumber=1, Body=first)["ETag"]
        api = client_of(srv)
        job = api.submit({"runtime": "python", "name": "before", "output": "s3://plain/out/",
                          "code": "import os\nopen(os.environ['VALLUM_OUTPUT'] + '/r', 'w').write('ok')\n"})
        assert api.wait(job["id"], timeout=60)["state"] == "SUCCEEDED"
        before = snapshot(s3)

        refused = run_migrate(data, url)                  # the gateway still has the file open
        assert refused.returncode == 1 and "open in another process" in refused.stderr
    finally:
        stop_server(srv)
    with psycopg.connect(url) as conn:                    # nothing was written
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE "
                            "table_schema = current_schema()").fetchone()[0] == 0

    done = run_migrate(data, url)
    assert done.returncode == 0, done.stderr
    report = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    for table in ("buckets", "versions", "uploads", "parts", "compute_jobs", "compute_tasks"):
        assert " copied " in report[table] and report[table].endswith("match"), done.stdout
    assert report["usage"].split()[1] == "derived" and report["usage"].endswith("match")
    assert "MISMATCH" not in done.stdout and PASSWORD not in done.stdout + done.stderr

    again = run_migrate(data, url)                        # the target is not empty now
    assert again.returncode == 1 and "not empty" in again.stderr

    srv = start_server(data, env={"VALLUM_META_URL": url})
    try:
        s3 = srv.client()
        assert snapshot(s3) == before                     # every byte, version, tag, label
        # The upload in progress completes; new versions and jobs get fresh ids.
        s3.complete_multipart_upload(Bucket="vers", Key="mp", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}]})
        assert s3.get_object(Bucket="vers", Key="mp")["Body"].read() == first
        s3.put_object(Bucket="vers", Key="doc", Body=b"three")
        assert s3.get_object(Bucket="vers", Key="doc")["Body"].read() == b"three"
        assert len(s3.list_object_versions(Bucket="vers", Prefix="doc")["Versions"]) == 3
        api = client_of(srv)
        assert api.job(job["id"])["state"] == "SUCCEEDED"
        again_job = api.submit({"runtime": "python", "name": "after", "output": "s3://plain/o2/",
                                "code": "print('hi')\n"})
        assert api.wait(again_job["id"], timeout=60)["state"] == "SUCCEEDED"
        assert [j["name"] for j in api.jobs()][:2] == ["after", "before"]
        with psycopg.connect(url) as conn:                # the rows are in PostgreSQL
            assert conn.execute("SELECT count(*) FROM compute_jobs").fetchone()[0] == 2
    finally:
        stop_server(srv)


def test_refusals(postgres, tmp_path):  # noqa: F811
    url = fresh_url()
    with_password = run_migrate(tmp_path, url, "--to", url)
    assert with_password.returncode == 2 and "password" in with_password.stderr
    assert PASSWORD not in with_password.stderr
    missing = run_migrate(tmp_path / "nowhere", url)
    assert missing.returncode == 1 and "no SQLite metadata file" in missing.stderr
    wrong = subprocess.run([sys.executable, "-m", "vallum", "meta", "migrate", "--from",
                            str(tmp_path), "--to", "postgresql://u@127.0.0.1:1/x"],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "sqlite:PATH" in wrong.stderr


@pytest.mark.parametrize("spec", ["sqlite:", "mysql:/x"])
def test_malformed_source(spec, postgres, tmp_path):  # noqa: F811
    env = dict(os.environ, VALLUM_META_URL=fresh_url())
    out = subprocess.run([sys.executable, "-m", "vallum", "meta", "migrate", "--from", spec],
                         env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1
