"""The real rclone against a gateway whose operator contains: what a new tenant admin does
first (issue 16), `rclone sync` of 500 files in 40 directories then `rclone check`, is
neither throttled nor refused, and the key is not contained afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support.rclone import rclone
from tests.support.server import start_server, stop_server
from vallum.cli.admin import AdminClient

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")


@pytest.fixture(scope="module")
def contained(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("op-rclone") / "data", env={"VALLUM_OPERATOR": "contain"})
    try:
        yield srv
    finally:
        stop_server(srv)


def test_rclone_sync_and_check_of_500_files(contained, tmp_path):
    srv = contained
    admin = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
    account = admin.call("CreateAccount", name="survey")["account"]["id"]
    admin.call("CreatePolicy", account=account, policy="s3all", document={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    admin.call("CreateUser", account=account, user="tenantadmin")
    admin.call("AttachPolicy", account=account, kind="user", target="tenantadmin", policy="s3all")
    made = admin.call("CreateAccessKey", account=account, user="tenantadmin")
    key = (made["access_key_id"], made["secret_access_key"])
    src = tmp_path / "survey"
    for i in range(500):
        f = src / f"set{i % 40:02d}" / f"file-{i:04d}.dat"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"s" * 2048)
    rclone(srv, key, tmp_path, "mkdir", "v:survey-data")
    rclone(srv, key, tmp_path, "sync", str(src), "v:survey-data/upload", timeout=600)
    check = rclone(srv, key, tmp_path, "check", str(src), "v:survey-data/upload", check=False)
    assert check.returncode == 0 and "SlowDown" not in check.stderr, check.stderr[-3000:]
    assert "0 differences found" in check.stderr
    time.sleep(1.2)                                 # the detector runs at most 50 ms late
    out = subprocess.run([sys.executable, "-m", "vallum", "operator", "status", "--json",
                          "--data-dir", str(srv.data_dir)], capture_output=True, text=True, check=True,
                         env={**os.environ, "VALLUM_OPERATOR": ""})
    assert key[0] not in json.loads(out.stdout)["contained"]
