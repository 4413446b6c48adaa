"""End to end: the operator in contain mode against the real server and boto3 clients.

A few users of one account work normally; then one of them copies a bucket out as
fast as one client can, retrying throttled requests. Its key must be suspended before
10% of the bucket has left, the others must keep working, and the alert and the action
must be journalled, served as JSON under /-/admin/ and POSTed to the webhook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.server import REGION, start_server, stop_server

OBJECTS = 1000
SIZE = 64 * 1024


def admin(server, action: str, args: dict) -> dict:
    body = json.dumps(args).encode()
    url = f"{server.endpoint}/-/admin/v1/{action}"
    req = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(req)
    http = urllib.request.Request(url, data=body, headers=dict(req.headers.items()), method="POST")
    with urllib.request.urlopen(http, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def client(server, key: dict):
    return boto3.client("s3", endpoint_url=server.endpoint, region_name=REGION,
                        aws_access_key_id=key["access_key_id"],
                        aws_secret_access_key=key["secret_access_key"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


class Webhook:
    """Collects what the operator POSTs to its webhook, on 127.0.0.1."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                outer.alerts.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhook():
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture(scope="module")
def contained(tmp_path_factory, webhook):
    data = tmp_path_factory.mktemp("operator") / "data"
    srv = start_server(data, env={"VALLUM_OPERATOR": "contain", "VALLUM_OPERATOR_WEBHOOK": webhook.url})
    try:
        yield srv
    finally:
        stop_server(srv)


def test_bulk_copy_out_is_suspended_before_ten_percent(contained, webhook):
    srv = contained
    account = admin(srv, "CreateAccount", {"name": "ops"})["account"]["id"]
    admin(srv, "CreatePolicy", {"account": account, "policy": "s3all", "document": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
    keys = {}
    for user in ("alice", "bob", "mallory"):
        admin(srv, "CreateUser", {"account": account, "user": user})
        admin(srv, "AttachPolicy", {"account": account, "kind": "user", "target": user, "policy": "s3all"})
        keys[user] = admin(srv, "CreateAccessKey", {"account": account, "user": user})
    s3 = {u: client(srv, k) for u, k in keys.items()}

    s3["alice"].create_bucket(Bucket="projects")
    body = b"x" * SIZE
    names = [f"team{i % 20:02d}/report-{i:04d}.bin" for i in range(OBJECTS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3["alice"].put_object(Bucket="projects", Key=k, Body=body), names))

    # Normal work: each user reads and writes a little.
    for user in ("alice", "bob", "mallory"):
        c = s3[user]
        c.list_objects_v2(Bucket="projects", Prefix="team01/", MaxKeys=20)
        for i in range(5):
            c.get_object(Bucket="projects", Key=names[i * 7 + len(user)])["Body"].read()
        c.put_object(Bucket="projects", Key=f"notes/{user}.txt", Body=b"hello")

    # Mallory copies the whole bucket out, as fast as one client goes, retrying whatever
    # is throttled at once (as copy tools do with SlowDown) until the key is refused.
    copied = throttled = 0
    refused = None
    paginator = s3["mallory"].get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket="projects"):
            for obj in page.get("Contents", []):
                while True:
                    try:
                        s3["mallory"].get_object(Bucket="projects", Key=obj["Key"])["Body"].read()
                        copied += 1
                        break
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] != "SlowDown" or throttled > 5000:
                            raise
                        throttled += 1
    except ClientError as exc:
        refused = exc.response["Error"]["Code"]
    assert refused in ("AccessDenied", "InvalidAccessKeyId"), refused
    print(f"copied {copied} of {OBJECTS} ({throttled} throttled attempts) before {refused}")
    assert copied < OBJECTS // 10, f"{copied} of {OBJECTS} objects left before suspension"

    # Suspended in IAM too (every gateway refuses it), and stays refused.
    with pytest.raises(ClientError):
        s3["mallory"].get_object(Bucket="projects", Key=names[0])
    user = admin(srv, "GetUser", {"account": account, "user": "mallory"})
    assert [k["status"] for k in user["keys"]] == ["Inactive"]

    # The others are untouched.
    for who in ("alice", "bob"):
        assert s3[who].get_object(Bucket="projects", Key=names[3])["Body"].read() == body
        assert [k["status"] for k in admin(srv, "GetUser", {"account": account, "user": who})["keys"]] == ["Active"]

    # Journalled, visible to the CLI, and releasable by an admin.
    run = [sys.executable, "-m", "vallum", "operator"]
    env_dir = ["--data-dir", str(srv.data_dir)]
    out = subprocess.run(run + ["alerts", *env_dir, "--json"], capture_output=True, text=True, check=True)
    alerts = [json.loads(line) for line in out.stdout.splitlines()]
    mine = [a for a in alerts if a["entity"] == keys["mallory"]["access_key_id"]]
    assert mine and mine[0]["kind"] == "exfiltration", alerts
    assert all(a["entity"] not in (keys["alice"]["access_key_id"], keys["bob"]["access_key_id"])
               for a in alerts)
    # The same alerts as JSON under /-/admin/ (root: every account) and on the webhook.
    doc = admin(srv, "OperatorAlerts", {"kind": "exfiltration"})
    assert doc["count"] >= 1 and doc["alerts"][0]["entity"] == keys["mallory"]["access_key_id"]
    assert admin(srv, "OperatorAlerts", {"account": account})["count"] == len(mine)
    deadline = time.monotonic() + 5
    while len(webhook.alerts) < len(alerts) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [a["entity"] for a in webhook.alerts] == [a["entity"] for a in alerts]
    assert webhook.alerts[0]["kind"] == "exfiltration" and webhook.alerts[0]["reason"]

    out = subprocess.run(run + ["release", keys["mallory"]["access_key_id"], *env_dir,
                                "--reason", "test: confirmed with the user"],
                         capture_output=True, text=True, check=True)
    assert "released" in out.stdout
    deadline = time.monotonic() + 5
    while True:
        try:
            s3["mallory"].head_object(Bucket="projects", Key=names[0])
            break
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_rclone_sync_then_check_is_neither_throttled_nor_refused(contained):
    """What a new tenant admin does first (issue 16): `rclone sync` of 500 files in 40
    directories (a listing per directory, four transfers), then `rclone check` (the
    listings again). No SlowDown, no containment; and `operator status` says the mode
    the gateway really runs in."""
    srv = contained
    account = admin(srv, "CreateAccount", {"name": "survey"})["account"]["id"]
    admin(srv, "CreatePolicy", {"account": account, "policy": "s3all", "document": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
    admin(srv, "CreateUser", {"account": account, "user": "tenantadmin"})
    admin(srv, "AttachPolicy", {"account": account, "kind": "user", "target": "tenantadmin", "policy": "s3all"})
    key = admin(srv, "CreateAccessKey", {"account": account, "user": "tenantadmin"})
    s3 = client(srv, key)           # no retries: one SlowDown fails the run, as it failed rclone's check
    s3.create_bucket(Bucket="survey-data")
    dirs = [f"upload/set{k:02d}/" for k in range(40)]

    def list_all():
        with ThreadPoolExecutor(4) as pool:        # rclone's 4 checkers
            list(pool.map(lambda d: s3.list_objects_v2(Bucket="survey-data", Prefix=d, Delimiter="/"), dirs))

    list_all()
    with ThreadPoolExecutor(4) as pool:            # rclone's 4 transfers
        list(pool.map(lambda i: s3.put_object(Bucket="survey-data", Key=f"{dirs[i % 40]}file-{i:04d}.dat",
                                              Body=b"s" * 2048), range(500)))
    list_all()                                     # rclone check
    total = sum(s3.list_objects_v2(Bucket="survey-data", Prefix=d)["KeyCount"] for d in dirs)
    assert total == 500

    time.sleep(1.2)                                # the detector runs at most 50 ms late; let it
    out = subprocess.run([sys.executable, "-m", "vallum", "operator", "status", "--json",
                          "--data-dir", str(srv.data_dir)], capture_output=True, text=True, check=True,
                         env={**os.environ, "VALLUM_OPERATOR": ""})
    doc = json.loads(out.stdout)
    assert doc["default_mode"] == "contain", doc
    assert key["access_key_id"] not in doc["contained"], doc["contained"]
