"""The operator with `vallum serve --workers 2`: one view of a principal across the
gateway processes, every containment applied by every process, baselines on disk.

Two keep-alive connections, one held by each worker (told apart by the request-id
prefix each process stamps), take turns reading a bucket with a stolen-looking key.
Neither worker serves enough of the sweep to decide on its own (the unfamiliar-caller
bar is 12 distinct objects); only a detector that sees both halves contains it.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import stat
import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.support.server import REGION, start_server, stop_server

OBJECTS = 40
SIZE = 128 * 1024
TIGHT_READS = 12            # abuse_rules.Tuning.tight_burst: objects in 10 s one process would need to see
PACE = 0.5                  # s between requests: each worker serves one read a second at most


def admin(srv, action: str, args: dict) -> dict:
    body = json.dumps(args).encode()
    url = f"{srv.endpoint}/-/admin/v1/{action}"
    req = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(srv.access_key, srv.secret_key), "s3", REGION).add_auth(req)
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    try:
        conn.request("POST", urlsplit(url).path, body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data
        return json.loads(data or b"{}")
    finally:
        conn.close()


def s3_client(srv, key: dict):
    return boto3.client("s3", endpoint_url=srv.endpoint, region_name=REGION,
                        aws_access_key_id=key["access_key_id"],
                        aws_secret_access_key=key["secret_access_key"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def worker_connections(srv) -> dict[str, http.client.HTTPConnection]:
    """One keep-alive connection per worker process, keyed by its request-id prefix."""
    conns: dict[str, http.client.HTTPConnection] = {}
    netloc = urlsplit(srv.endpoint).netloc
    for _ in range(60):
        conn = http.client.HTTPConnection(netloc, timeout=10)
        conn.request("GET", "/-/health/ready")
        resp = conn.getresponse()
        resp.read()
        worker = resp.headers["x-amz-request-id"][:8]
        if worker in conns:
            conn.close()
        else:
            conns[worker] = conn
        if len(conns) == 2:
            return conns
    raise AssertionError("the two workers never both accepted a connection")


def get(conn: http.client.HTTPConnection, url: str) -> tuple[int, str, str]:
    """(status, worker prefix, S3 error code) of a presigned GET on this connection."""
    parts = urlsplit(url)
    conn.request("GET", f"{parts.path}?{parts.query}")
    resp = conn.getresponse()
    body = resp.read()
    code = ""
    if resp.status != 200 and b"<Code>" in body:
        code = body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode()
    return resp.status, resp.headers["x-amz-request-id"][:8], code


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    data = tmp_path_factory.mktemp("operator-workers") / "data"
    srv = start_server(data, "--workers", "2", env={"VALLUM_OPERATOR": "contain"})
    try:
        yield srv
    finally:
        stop_server(srv)


def test_a_sweep_split_across_two_workers_is_contained_by_both(two_workers):
    srv = two_workers
    account = admin(srv, "CreateAccount", {"name": "split"})["account"]["id"]
    admin(srv, "CreatePolicy", {"account": account, "policy": "s3all", "document": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
    keys = {}
    for user in ("alice", "mallory"):
        admin(srv, "CreateUser", {"account": account, "user": user})
        admin(srv, "AttachPolicy", {"account": account, "kind": "user", "target": user, "policy": "s3all"})
        keys[user] = admin(srv, "CreateAccessKey", {"account": account, "user": user})
    alice, mallory = s3_client(srv, keys["alice"]), s3_client(srv, keys["mallory"])
    alice.create_bucket(Bucket="shared")
    names = [f"dir{i % 8}/obj-{i:03d}.bin" for i in range(OBJECTS)]
    for name in names:
        alice.put_object(Bucket="shared", Key=name, Body=b"y" * SIZE)
    urls = [mallory.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": n},
                                           ExpiresIn=600) for n in names]

    conns = worker_connections(srv)
    workers = list(conns)
    served: dict[str, list[float]] = {w: [] for w in workers}
    refused: dict[str, str] = {}
    i = 0
    # Turn by turn, paced, until both processes refuse the key (each process keeps a few
    # throttle tokens); retrying what is refused, as copy tools do.
    # (60 requests: each process alone serves 30 in 30 s, under every per-minute bar too.)
    while len(refused) < 2 and i < 60:
        worker = workers[i % 2]
        status, who, code = get(conns[worker], urls[i % len(urls)])
        assert who == worker
        if status == 200:
            served[worker].append(time.monotonic())
        else:
            assert code in ("SlowDown", "AccessDenied"), (status, code)
            refused.setdefault(worker, code)
        i += 1
        time.sleep(PACE)
    for conn in conns.values():
        conn.close()
    assert set(refused) == set(workers), f"only {sorted(refused)} refused the sweep"
    # Neither process alone ever served the unfamiliar-caller bar's burst (12 objects in
    # 10 s): only the sum of both halves crosses it.
    for times in served.values():
        assert max(sum(1 for u in times if t <= u < t + 10.0) for t in times) < TIGHT_READS
    assert sum(len(t) for t in served.values()) < 40

    alerts = [json.loads(line) for line in
              (srv.data_dir / "operator" / "alerts.jsonl").read_text().splitlines()]
    mine = [a for a in alerts if a["entity"] == keys["mallory"]["access_key_id"]]
    assert mine and mine[0]["kind"] == "exfiltration"
    assert mine[0]["features"]["burst_10s"] >= TIGHT_READS                 # it saw both halves
    assert not [a for a in alerts if a["entity"] == keys["alice"]["access_key_id"]]
    actions = [json.loads(line) for line in
               (srv.data_dir / "operator" / "actions.jsonl").read_text().splitlines()]
    assert actions[0]["action"] == "throttle" and actions[0]["rate"] > 0


def test_baselines_are_on_disk_0600_after_shutdown(tmp_path):
    """A gateway writes the baselines at exit; a restart takes them back (the unit tests
    check the veteran who stays alert-only across it)."""
    data = tmp_path / "data"
    srv = start_server(data, env={"VALLUM_OPERATOR": "observe"})
    try:
        account = admin(srv, "CreateAccount", {"name": "keep"})["account"]["id"]
        admin(srv, "CreatePolicy", {"account": account, "policy": "s3all", "document": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
        admin(srv, "CreateUser", {"account": account, "user": "bob"})
        admin(srv, "AttachPolicy", {"account": account, "kind": "user", "target": "bob", "policy": "s3all"})
        key = admin(srv, "CreateAccessKey", {"account": account, "user": "bob"})
        bob = s3_client(srv, key)
        bob.create_bucket(Bucket="bobs")
        for i in range(20):        # a sweep by a new key: alerted on (observe), so remembered
            bob.put_object(Bucket="bobs", Key=f"k{i}", Body=b"z" * 100_000)
        for i in range(20):
            bob.get_object(Bucket="bobs", Key=f"k{i}")["Body"].read()
    finally:
        stop_server(srv)
    db = data / "operator" / "operator.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT principal, doc FROM baselines").fetchall())
    doc = json.loads(rows[key["access_key_id"]])
    assert doc["account"] == account and "exfiltration" in doc["last_alert"]
    assert {"GetObject", "PutObject"} <= set(doc["allowed"]) and "bobs" in doc["buckets"]
