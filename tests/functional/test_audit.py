"""Audit log of a running server, the `vallum audit` CLI, and tamper-evident blobs at rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tests.support.audit import printed_fingerprint
from tests.support.server import server_log, start_server, stop_server
from vallum.cli.admin import AdminClient
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
            # Until both workers answered: on a loaded machine the second may start late.
            for batch in range(20):
                ids += list(pool.map(lambda i: call("GET", f"/{bucket}/missing-{i}"),
                                     range(batch * 150, (batch + 1) * 150)))
                if len({i[:8] for i in ids}) == 2:
                    break
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


# --- who did what (issue 13, High 5) ---------------------------------------------------------
def records_by_id(data_dir) -> dict[str, dict]:
    log = Path(data_dir) / "audit" / "audit.log"
    recs = [json.loads(x) for x in log.read_bytes().rstrip(b"\0").splitlines()]
    return {r["request_id"]: r for r in recs if r.get("request_id")}


def refused(call) -> tuple[int, str]:
    with pytest.raises(ClientError) as info:
        call()
    meta = info.value.response["ResponseMetadata"]
    return meta["HTTPStatusCode"], meta["RequestId"]


def s3_client(srv, key, secret, headers=None):
    c = boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                     region_name=srv.region, config=Config(s3={"addressing_style": "path"},
                                                           retries={"max_attempts": 1}))
    if headers:
        c.meta.events.register("before-call.s3", lambda params, **_: params["headers"].update(headers))
    return c


def test_failed_authentication_records_the_claimed_key_id(own_server):
    bucket = "authn-" + uuid.uuid4().hex[:8]
    own_server.client().create_bucket(Bucket=bucket)
    forged = s3_client(own_server, "AKIAFORGEDCLAIM00001", "not-the-secret")
    _, unknown_id = refused(lambda: forged.get_object(Bucket=bucket, Key="k"))
    wrong = s3_client(own_server, own_server.access_key, "not-the-secret")
    _, wrong_id = refused(lambda: wrong.put_object(Bucket=bucket, Key="k", Body=b"x"))
    url = s3_client(own_server, "AKIAPRESIGNEDCLAIM01", "x").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=30)  # noqa: S310 - loopback
    presigned_id = info.value.headers["x-amz-request-id"]
    recs = records_by_id(own_server.data_dir)
    for rid, key, action, target in (
            (unknown_id, "AKIAFORGEDCLAIM00001", "s3:GetObject", f"arn:aws:s3:::{bucket}/k"),
            (wrong_id, own_server.access_key, "s3:PutObject", f"arn:aws:s3:::{bucket}/k"),
            (presigned_id, "AKIAPRESIGNEDCLAIM01", "s3:GetObject", f"arn:aws:s3:::{bucket}/p")):
        rec = recs[rid]
        assert rec["principal"] == key and rec["principal_claimed"] is True, rec
        assert rec["decision"] == "deny" and rec["rule"].startswith("authentication: "), rec
        assert rec["action"] == action and rec["target"] == target, rec


def test_mac_refusals_are_recorded_as_deny(own_server):
    """No read up answers 404 (the object stays hidden) and a session level above the
    clearance answers 403: both are MAC refusals, recorded as deny with the MAC rule."""
    root = AdminClient(own_server.endpoint, own_server.access_key, own_server.secret_key, own_server.region)
    out = root.call("CreateAccount", name="audit-" + uuid.uuid4().hex[:8])
    account, admin_key = out["account"]["id"], out["admin_key"]
    admin = AdminClient(own_server.endpoint, admin_key["access_key_id"], admin_key["secret_access_key"],
                        own_server.region)
    admin.call("CreateUser", user="low")
    admin.call("PutInlinePolicy", kind="user", target="low", name="p", document={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    key = admin.call("CreateAccessKey", user="low")
    low_key = key["access_key_id"]
    bucket = "mac-audit-" + uuid.uuid4().hex[:8]
    owner = s3_client(own_server, admin_key["access_key_id"], admin_key["secret_access_key"])
    owner.create_bucket(Bucket=bucket)
    root.call("SetClearance", account=account, user="low", clearance="UNCLASSIFIED")
    low = s3_client(own_server, low_key, key["secret_access_key"])
    low.put_object(Bucket=bucket, Key="open", Body=b"u")
    top = s3_client(own_server, own_server.access_key, own_server.secret_key,
                    {"x-vallum-classification": "TOP SECRET"})
    top.put_object(Bucket=bucket, Key="hidden", Body=b"ts")
    ok_id = low.get_object(Bucket=bucket, Key="open")["ResponseMetadata"]["RequestId"]
    status, hidden_id = refused(lambda: low.get_object(Bucket=bucket, Key="hidden"))
    assert status == 404
    above = s3_client(own_server, low_key, key["secret_access_key"], {"x-vallum-session-level": "SECRET"})
    status, above_id = refused(lambda: above.get_object(Bucket=bucket, Key="open"))
    assert status == 403
    recs = records_by_id(own_server.data_dir)
    for rid in (hidden_id, above_id):
        rec = recs[rid]
        assert rec["decision"] == "deny" and rec["rule"].startswith("mac: "), rec
        assert rec["principal"] == low_key and rec["account"] == account, rec
    ok = recs[ok_id]
    assert (ok["principal"], ok["principal_claimed"], ok["account"], ok["action"], ok["target"], ok["decision"]) \
        == (low_key, False, account, "s3:GetObject", f"arn:aws:s3:::{bucket}/open", "allow"), ok
    admin_recs = [r for r in recs.values() if r.get("operation") == "admin"
                  and r.get("action") == "iam:CreateAccessKey"]
    assert any(r["principal"] == admin_key["access_key_id"] for r in admin_recs), admin_recs


# --- retention: segments, export, prune (issue 17) ---------------------------------------------
def test_rotated_segments_export_prune_and_verify(tmp_path):
    """A server with a tiny segment size rotates its log; after a clean stop the retained
    set verifies against the printed fingerprint, query reads across segments, exported
    segments verify offline, and after a prune what remains still verifies; a removed
    retained segment is then named."""
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("starts its own server")
    data = tmp_path / "data"
    srv = start_server(data, env={"VALLUM_AUDIT_SEGMENT_MB": "0.01"})
    try:
        s3 = srv.client()
        name = "rot-audit-" + uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=name)
        first_id = s3.put_object(Bucket=name, Key="k0", Body=b"x")["ResponseMetadata"]["RequestId"]
        for i in range(60):
            s3.head_bucket(Bucket=name)
    finally:
        stop_server(srv)
    fp = printed_fingerprint(data)
    segments = sorted((data / "audit" / "segments").glob("audit-*.log"))
    assert len(segments) >= 2, "the log was not rotated"
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in segments)
    ok = verify_in_process("--data-dir", str(data), "--fingerprint", fp)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout
    found = CliRunner().invoke(app, ["audit", "query", "--data-dir", str(data), "--bucket", name])
    assert first_id in found.stdout

    archive = tmp_path / "archive"
    exported = CliRunner().invoke(app, ["audit", "export", "--data-dir", str(data), "--archive", str(archive)])
    assert exported.exit_code == 0, exported.output
    assert len(list(archive.glob("*.log.gz"))) == len(segments)
    no_policy = CliRunner().invoke(app, ["audit", "prune", "--data-dir", str(data), "--archive", str(archive)],
                                   env={"VALLUM_AUDIT_RETAIN_DAYS": ""})
    assert no_policy.exit_code == 2
    kept = CliRunner().invoke(app, ["audit", "prune", "--data-dir", str(data), "--archive", str(archive),
                                    "--retain-days", "30"])
    assert kept.exit_code == 0 and len(list((data / "audit" / "segments").glob("audit-*.log"))) == len(segments)
    pruned = CliRunner().invoke(app, ["audit", "prune", "--data-dir", str(data), "--archive", str(archive),
                                      "--retain-days", "0"])
    assert pruned.exit_code == 0 and "pruned" in pruned.stdout, pruned.output
    assert not list((data / "audit" / "segments").glob("audit-*.log"))
    ok = verify_in_process("--data-dir", str(data), "--fingerprint", fp)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout
    offline = verify_in_process("--archive", str(archive), "--fingerprint", fp)
    assert offline.returncode == 0 and offline.stdout.startswith("OK"), offline.stdout
    (data / "audit" / "segments" / "manifest.json").unlink()
    broken = verify_in_process("--data-dir", str(data), "--fingerprint", fp)
    assert broken.returncode == 1 and "BROKEN" in broken.stdout, broken.stdout
