"""Audit log of a running server, the `vallum audit` CLI, and tamper-evident blobs at rest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tests.functional.conftest import server_log, start_server, stop_server
from vallum.cli.main import app


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("needs the server's data directory")
    root = tmp_path_factory.mktemp("audit")
    srv = start_server(root / "data", "--audit-witness", f"file:{root / 'witness.jsonl'}")
    yield srv
    stop_server(srv)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "vallum", "audit", *args], capture_output=True, text=True)


def verify_in_process(*args):
    """`vallum audit verify` in this process (a fresh interpreter costs seconds on a busy box)."""
    r = CliRunner().invoke(app, ["audit", "verify", *args])
    return subprocess.CompletedProcess(args, r.exit_code, r.output, r.output)


def printed_fingerprint(data_dir: Path) -> str:
    """The audit key fingerprint `vallum serve` printed at first start (what an operator pins)."""
    text = server_log(Path(data_dir)).read_text()
    return re.search(r"Audit fingerprint:\s+([0-9a-f]{64})", text).group(1)


def test_every_request_is_audited_and_chain_verifies(own_server):
    s3 = own_server.client()
    name = "audit-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=name)
    rid = s3.put_object(Bucket=name, Key="k", Body=b"abc")["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=name, Key="missing")
    data = str(own_server.data_dir)
    out = cli("export", "--data-dir", data, "--bucket", name)
    assert out.returncode == 0, out.stderr
    recs = [json.loads(x) for x in out.stdout.splitlines()]
    put = next(r for r in recs if r["request_id"] == rid)
    assert put["operation"] == "PutObject" and put["key"] == "k" and put["status"] == 200
    assert put["principal"] == own_server.access_key and put["bytes_in"] == 3
    assert put["source_ip"] == "127.0.0.1" and put["decision"] == "allow" and put["label"] == "UNCLASSIFIED"
    assert any(r["status"] == 404 and r["key"] == "missing" for r in recs)
    running = cli("verify", "--data-dir", data, "--fingerprint", printed_fingerprint(data))
    # The server is running: its latest records are not under a signature yet.
    assert running.returncode == 3 and running.stdout.startswith("UNVERIFIED"), running.stdout + running.stderr
    q = cli("query", "--data-dir", data, "--bucket", name, "--principal", own_server.access_key)
    assert rid in q.stdout


def test_verify_names_an_edited_record(tmp_path, own_server):
    log = Path(own_server.data_dir) / "audit" / "audit.log"
    copy = tmp_path / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    lines[1] = lines[1].replace(b'"status":', b'"status":1', 1)
    copy.write_bytes(b"".join(lines))
    bad = cli("verify", "--log", str(copy), "--fingerprint", printed_fingerprint(own_server.data_dir))
    assert bad.returncode == 1 and "line 2" in bad.stdout, bad.stdout


def test_flipped_byte_on_disk_fails_the_get(own_server):
    s3 = own_server.client()
    name = "tamper-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=name)
    body = os.urandom(300_000)                       # > inline size: stored as an encrypted blob
    s3.put_object(Bucket=name, Key="big", Body=body)
    assert s3.get_object(Bucket=name, Key="big")["Body"].read() == body
    assert s3.get_object(Bucket=name, Key="big", Range="bytes=65530-131080")["Body"].read() == body[65530:131081]
    blobs = [p for p in (Path(own_server.data_dir) / "blobs").rglob("*") if p.is_file()]
    target = max(blobs, key=lambda p: p.stat().st_mtime)
    raw = bytearray(target.read_bytes())
    assert body[:64] not in raw                      # ciphertext at rest
    raw[len(raw) // 2] ^= 1
    target.write_bytes(raw)
    try:
        got = s3.get_object(Bucket=name, Key="big")["Body"].read()
    except Exception:  # noqa: BLE001 - a 500 or a cut connection is the required loud failure
        return
    pytest.fail(f"tampered blob was served ({'same' if got == body else 'WRONG'} bytes)")


def test_two_workers_write_one_intact_chain(tmp_path):
    """`--workers 2`: both gateway processes write the one preallocated log (each finds the
    other's records by scanning forward from its own tail); after a concurrent burst on
    fresh connections (spread over both workers by the kernel) the chain verifies and
    holds every request once."""
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("starts its own multi-worker server")
    import hashlib
    import time
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from vallum.s3.sigv4 import sign_headers

    srv = start_server(tmp_path / "data", "--workers", "2")

    def call(method: str, path: str) -> str:
        url = srv.endpoint + path
        headers = sign_headers(method, url, {}, hashlib.sha256(b"").hexdigest(), srv.access_key,
                               srv.secret_key, srv.region, time.time())
        req = urllib.request.Request(url, method=method, headers={**headers, "connection": "close"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                return resp.headers["x-amz-request-id"]
        except urllib.error.HTTPError as exc:
            return exc.headers["x-amz-request-id"]

    try:
        bucket = "aw-" + uuid.uuid4().hex[:10]
        ids = [call("PUT", f"/{bucket}")]
        with ThreadPoolExecutor(8) as pool:
            ids += list(pool.map(lambda i: call("GET", f"/{bucket}/missing-{i}"), range(300)))
    finally:
        stop_server(srv)
    assert len({i[:8] for i in ids}) == 2            # both workers answered (per-process id prefix)
    log = tmp_path / "data" / "audit" / "audit.log"
    ok = cli("verify", "--log", str(log), "--fingerprint", printed_fingerprint(tmp_path / "data"))
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    seen = [json.loads(x).get("request_id") for x in log.read_bytes().rstrip(b"\0").splitlines()]
    assert all(seen.count(i) == 1 for i in ids)


def test_clean_shutdown_seals_and_the_witness_holds_the_seal(tmp_path):
    """`vallum serve --audit-witness file:...`: a clean stop writes a signed seal, the
    witness outside the data directory has it, and verify against the printed
    fingerprint and the witness says OK; a cut tail is then reported."""
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("starts its own server")
    witness = tmp_path / "witness.jsonl"
    srv = start_server(tmp_path / "data", "--audit-witness", f"file:{witness}")
    try:
        srv.client().create_bucket(Bucket="seal-" + uuid.uuid4().hex[:8])
    finally:
        stop_server(srv)
    fp = printed_fingerprint(tmp_path / "data")
    assert "New audit signing key" in server_log(tmp_path / "data").read_text()
    log = tmp_path / "data" / "audit" / "audit.log"
    last = json.loads(witness.read_bytes().splitlines()[-1])
    assert last["seal"] and last["key_fingerprint"] == fp
    ok = verify_in_process("--log", str(log), "--fingerprint", fp, "--witness", str(witness))
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    lines = log.read_bytes().rstrip(b"\0").splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-2]))
    cut = verify_in_process("--log", str(log), "--fingerprint", fp)
    assert cut.returncode == 3 and "UNVERIFIED" in cut.stdout, cut.stdout + cut.stderr
    anchored = verify_in_process("--log", str(log), "--fingerprint", fp, "--witness", str(witness))
    assert anchored.returncode == 1, anchored.stdout + anchored.stderr
    (tmp_path / "data" / "witness.jsonl").write_text("")
    refused = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "data"),
                              "--audit-witness", f"file:{tmp_path / 'data' / 'witness.jsonl'}"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "outside the data directory" in refused.stderr, refused.stderr
