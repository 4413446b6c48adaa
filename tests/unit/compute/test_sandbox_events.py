"""Pure parts of the sandbox, events and credentials modules."""

from __future__ import annotations

import json
import signal

from vallum.compute import sandbox as sbx
from vallum.compute.credentials import session_policy
from vallum.compute.object_events import event_matches, s3_record, trigger_matches
from vallum.compute.runner import redact, safe_relpath
from vallum.compute.spec import Quota, parse_job


def test_describe_exit_statuses():
    assert sbx.describe(0).ok
    assert sbx.describe(3).reason == "exit code 3"
    assert "CPU-time" in sbx.describe(-signal.SIGXCPU).reason
    assert sbx.describe(128 + signal.SIGKILL).exit_code == 137


def test_bwrap_command_isolates(tmp_path):
    box = sbx.Sandbox("bwrap")
    s = sbx.Scratch(tmp_path / "job", tmp_path / "log", tmp_path / "sock", 12345)
    cmd = box.command(s, ["python3", "x.py"], {"AWS_SECRET_ACCESS_KEY": "s3cr3t"},
                      sbx.Limits(memory_mb=64, max_procs=7))
    joined = " ".join(cmd)
    assert "--unshare-all" in cmd and "--die-with-parent" in cmd
    assert "s3cr3t" not in joined and "--setenv" not in cmd     # the environment, not argv
    assert f"--size {64 * 1024 * 1024} --tmpfs /dev/shm" in joined
    assert f"--size {64 * 1024 * 1024} --tmpfs /tmp" in joined
    assert "--share-net" not in cmd
    assert f"--ro-bind {tmp_path}/job/in /job/in" in joined
    assert "--remount-ro /" in joined
    assert f"--as={64 * 1024 * 1024}" in cmd and "--nproc=7" in cmd
    assert cmd[-2:] == ["python3", "x.py"]


def test_key_paths_cannot_escape():
    assert safe_relpath("in/a/b.txt", "in/") == "a/b.txt"
    assert safe_relpath("in/../../etc/passwd", "in/") is None
    assert safe_relpath("in/", "in/") is None


def test_redaction():
    assert redact(b"key=SECRET123 token=TOK", ["SECRET123", "TOK"]) == \
        b"key=[REDACTED] token=[REDACTED]"


def test_s3_event_record_shape():
    rec = s3_record("ObjectCreated:Put", bucket="b", key="a b/c+d", size=3, etag="e",
                    version_id="null", principal_id="AK", source_ip="127.0.0.1",
                    request_id="R", region="us-east-1", bucket_owner="o", when=0)
    assert rec["eventTime"] == "1970-01-01T00:00:00.000Z"
    assert rec["s3"]["object"] == {"key": "a+b/c%2Bd", "size": 3, "eTag": "e",
                                   "sequencer": rec["s3"]["object"]["sequencer"]}
    json.dumps(rec)


def test_event_patterns():
    assert event_matches(["s3:ObjectCreated:*"], "ObjectCreated:CompleteMultipartUpload")
    assert not event_matches(["s3:ObjectCreated:Put"], "ObjectCreated:Copy")
    t = {"bucket": "b", "prefix": "in/", "suffix": ".csv", "events": ["s3:ObjectRemoved:*"]}
    assert trigger_matches(t, "b", "in/x.csv", "ObjectRemoved:Delete")
    assert not trigger_matches(t, "b", "in/x.csv", "ObjectCreated:Put")
    assert not trigger_matches(t, "c", "in/x.csv", "ObjectRemoved:Delete")


def test_session_policy_scopes_inputs_and_output():
    spec = parse_job({"runtime": "python", "code": "", "inputs": ["s3://in/a.txt", "s3://in/d/"],
                      "output": "s3://out/p/"}, Quota())
    doc = session_policy(spec)
    get, lst, put = doc["Statement"]
    assert get["Resource"] == ["arn:aws:s3:::in/a.txt", "arn:aws:s3:::in/d/*"]
    assert lst["Condition"]["StringLike"]["s3:prefix"] == ["d/*"]
    assert put["Resource"] == ["arn:aws:s3:::out/p/*"] and put["Action"] == ["s3:PutObject"]
