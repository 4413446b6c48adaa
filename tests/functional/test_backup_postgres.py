"""`vallum backup` of a site whose metadata is on PostgreSQL: the dump is taken in one exported
snapshot with the blobs it references, restored into an empty schema of another database
location, and the restored site (data directory + schema) serves what the original did."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.backup import PASSPHRASE, populate, site_state
from tests.support.iam import s3_for
from tests.support.postgres import fresh_database_url, fresh_url, postgres  # noqa: F401 - fixture
from tests.support.server import start_server, stop_server


def backup(*args: str, meta: str | None):
    env = {k: v for k, v in os.environ.items() if k != "VALLUM_META_URL"}
    env["VALLUM_BACKUP_PASSPHRASE"] = PASSPHRASE
    if meta:
        env["VALLUM_META_URL"] = meta
    return subprocess.run([sys.executable, "-m", "vallum", "backup", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory):  # noqa: F811 - the fixture imported above
    base = tmp_path_factory.mktemp("backup-pg")
    url = fresh_url()
    srv = start_server(base / "data", env={"VALLUM_META_URL": url})
    try:
        buckets, key = populate(srv)
        made = backup("create", "--data-dir", str(srv.data_dir), "--to", str(base / "backup"), meta=url)
        assert made.returncode == 0, made.stderr
        before = site_state(srv.client(), buckets)
        yield {"base": base, "url": url, "buckets": buckets, "key": key, "before": before}
    finally:
        stop_server(srv)


def test_restored_site_on_a_new_database_serves_everything(site):
    schema = site["url"].rsplit("%3D", 1)[1]
    target = fresh_database_url(schema)                # a new database, the schema absent
    out = backup("restore", str(site["base"] / "backup"), "--data-dir", str(site["base"] / "restored"),
                 meta=target)
    assert out.returncode == 0, out.stderr
    assert not (site["base"] / "restored" / "postgres.dump").exists()   # in the database now
    srv = start_server(site["base"] / "restored", env={"VALLUM_META_URL": target})
    try:
        assert site_state(srv.client(), site["buckets"]) == site["before"]
        assert s3_for(srv, *site["key"]).list_buckets()["Buckets"] == []    # IAM came with it
    finally:
        stop_server(srv)


def test_restore_refuses_without_a_database_or_over_a_live_one(site):
    """No database given, the live site's own schema, or another schema of the same database
    (the dump would recreate the live one's name): each refused, nothing written."""
    out = backup("restore", str(site["base"] / "backup"), "--data-dir", str(site["base"] / "r2"),
                 meta=None)
    assert out.returncode == 1 and "holds PostgreSQL metadata" in out.stderr
    out = backup("restore", str(site["base"] / "backup"), "--data-dir", str(site["base"] / "r3"),
                 meta=site["url"])                       # the live site's schema: has tables
    assert out.returncode == 1 and "restore into an empty schema" in out.stderr
    out = backup("restore", str(site["base"] / "backup"), "--data-dir", str(site["base"] / "r4"),
                 meta=fresh_url())
    assert out.returncode == 1 and "already exists in the target database" in out.stderr
    assert not any((site["base"] / r).exists() for r in ("r2", "r3", "r4"))


def test_a_password_in_the_meta_flag_is_refused(site):
    out = backup("create", "--data-dir", str(site["base"] / "data"), "--to", str(site["base"] / "b2"),
                 "--meta", "postgresql://u:hunter2@127.0.0.1:1/db", meta=None)
    assert out.returncode == 1 and "process list" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout
