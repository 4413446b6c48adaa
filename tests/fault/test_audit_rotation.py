"""Audit segments under real processes: two gateway workers rotating one log, and a kill -9
in the middle of rotations. Afterwards the retained set verifies against the printed
fingerprint and holds every acknowledged request exactly once."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.audit import printed_fingerprint
from tests.support.server import start_server, stop_server, wait_all_workers
from vallum.s3.sigv4 import sign_headers
from vallum.security.audit import log as audit
from vallum.security.audit import segments as audit_segments

TINY_SEGMENTS = {"VALLUM_AUDIT_SEGMENT_MB": "0.004"}     # a rotation every ~8 records

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")), reason="runs its own servers")


def caller(srv):
    def call(method: str, path: str) -> str | None:
        url = srv.endpoint + path
        headers = sign_headers(method, url, {}, hashlib.sha256(b"").hexdigest(), srv.access_key,
                               srv.secret_key, srv.region, time.time())
        req = urllib.request.Request(url, method=method, headers={**headers, "connection": "close"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                return resp.headers["x-amz-request-id"]
        except urllib.error.HTTPError as exc:
            return exc.headers["x-amz-request-id"]
        except OSError:
            return None                                 # the server was killed: not acknowledged
    return call


def retained_ids(data: Path) -> list[str]:
    audit_dir = data / "audit"
    files = [s.path for s in audit_segments.segments(audit_dir)] + [audit_dir / "audit.log"]
    return [r["request_id"] for r in audit.query(files) if r.get("request_id")]


def assert_verifies(data: Path) -> None:
    fp = printed_fingerprint(data)
    result = audit_segments.verify_retained(data / "audit", None, fp=fp)
    assert result.ok and result.sealed, result


def test_two_workers_rotate_one_chain(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, "--workers", "2", env=TINY_SEGMENTS)
    call = caller(srv)
    try:
        wait_all_workers(srv, 2)                         # readiness means one is up, not both
        bucket = "rot-" + uuid.uuid4().hex[:10]
        ids = [call("PUT", f"/{bucket}")]
        with ThreadPoolExecutor(8) as pool:
            ids += list(pool.map(lambda i: call("GET", f"/{bucket}/missing-{i}"), range(200)))
    finally:
        stop_server(srv)
    assert len({i[:8] for i in ids}) == 2                # both workers answered
    assert len(audit_segments.segments(data / "audit")) >= 5
    assert_verifies(data)
    seen = retained_ids(data)
    assert all(seen.count(i) == 1 for i in ids)


def test_kill_during_rotations_keeps_every_acknowledged_record(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, env=TINY_SEGMENTS)
    call = caller(srv)
    bucket = "kill-" + uuid.uuid4().hex[:10]
    acked: list[str] = [call("PUT", f"/{bucket}")]
    stop = threading.Event()

    def load(n: int) -> None:
        i = 0
        while not stop.is_set():
            rid = call("GET", f"/{bucket}/k{n}-{i}")
            if rid is not None:
                acked.append(rid)
            i += 1

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop_server(srv, "kill")
    stop.set()
    for t in threads:
        t.join()
    assert len(audit_segments.segments(data / "audit")) >= 2
    srv = start_server(data, env=TINY_SEGMENTS)
    try:
        call = caller(srv)
        acked += [call("GET", f"/{bucket}/after-{i}") for i in range(5)]
    finally:
        stop_server(srv)
    assert_verifies(data)
    seen = set(retained_ids(data))
    assert [i for i in acked if i not in seen] == []
