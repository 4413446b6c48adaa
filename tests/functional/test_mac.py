"""Mandatory access control end to end: clearances, session levels, hidden objects, copy and
multipart labels, bucket label ranges, audited downgrade, and inline bodies encrypted at rest.

Users of one account, cleared at different levels, work on the same bucket through boto3;
clearances are set with the admin API (root only), as `vallum admin user set-clearance` does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.mac import (
    LABEL,
    TS,
    S,
    U,
    World,
    put,
    with_headers,
)
from tests.support.server import code, start_server, stop_server
from vallum.cli.admin import AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API and data directory")

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("mac") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def world(srv) -> World:
    return World(srv)


def keys_v2(c, bucket: str, **kw) -> list[str]:
    out = c.list_objects_v2(Bucket=bucket, **kw)
    return [o["Key"] for o in out.get("Contents", [])] + [p["Prefix"] for p in out.get("CommonPrefixes", [])]


def test_listings_differ_by_clearance(world):
    b = world.bucket
    assert keys_v2(world.unc, b) == ["u.txt"]
    assert keys_v2(world.sec, b) == ["s.txt", "u.txt"]
    assert keys_v2(world.top, b) == ["s.txt", "ts/x.txt", "ts/y2.txt", "u.txt"]
    # A common prefix holding only objects above the caller is absent too.
    assert keys_v2(world.sec, b, Delimiter="/") == ["s.txt", "u.txt"]
    assert keys_v2(world.top, b, Delimiter="/") == ["s.txt", "u.txt", "ts/"]
    # v1, and paging one key at a time never shows a hidden key either.
    v1 = world.unc.list_objects(Bucket=b)
    assert [o["Key"] for o in v1["Contents"]] == ["u.txt"]
    pages = world.sec.get_paginator("list_objects_v2").paginate(Bucket=b, PaginationConfig={"PageSize": 1})
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == ["s.txt", "u.txt"]


def test_version_and_upload_listings_differ_by_clearance(world):
    b = world.bucket
    seen = {u: sorted(v["Key"] for v in world.s3(u).list_object_versions(Bucket=b).get("Versions", []))
            for u in ("unc", "sec", "top")}
    assert seen["unc"] == ["u.txt"]
    assert seen["sec"] == ["s.txt", "u.txt"]
    assert seen["top"] == ["s.txt", "ts/x.txt", "ts/y2.txt", "u.txt"]
    ups = {}
    for who, label in (("unc", U), ("sec", S), ("top", TS)):
        c = world.s3(who)
        add = with_headers(c, {LABEL: label})
        try:
            ups[who] = c.create_multipart_upload(Bucket=b, Key=f"up-{who}")["UploadId"]
        finally:
            c.meta.events.unregister("before-call.s3", add)
    try:
        listed = {u: sorted(x["Key"] for x in world.s3(u).list_multipart_uploads(Bucket=b).get("Uploads", []))
                  for u in ("unc", "sec", "top")}
        assert listed["unc"] == ["up-unc"]
        assert listed["sec"] == ["up-sec", "up-unc"]
        assert listed["top"] == ["up-sec", "up-top", "up-unc"]
        with pytest.raises(ClientError) as exc:       # a hidden upload does not exist for sec
            world.sec.list_parts(Bucket=b, Key="up-top", UploadId=ups["top"])
        assert code(exc) == "NoSuchUpload"
    finally:
        for who, upload_id in ups.items():
            world.top.abort_multipart_upload(Bucket=b, Key=f"up-{who}", UploadId=upload_id) \
                if who == "top" else world.s3(who).abort_multipart_upload(Bucket=b, Key=f"up-{who}",
                                                                          UploadId=upload_id)


def _error_view(exc, key: str) -> tuple:
    """Status, error fields and headers, with request ids, dates and the key name removed."""
    r = exc.value.response
    headers = {k: v for k, v in r["ResponseMetadata"]["HTTPHeaders"].items()
               if k not in ("x-amz-request-id", "x-amz-id-2", "date")}
    err = {k: v.replace(key, "KEY") for k, v in r["Error"].items()
           if k not in ("RequestId", "HostId", "Key")}
    return r["ResponseMetadata"]["HTTPStatusCode"], err, headers


@pytest.mark.parametrize("op", ["get", "head", "tagging", "copy"])
def test_hidden_object_is_indistinguishable_from_a_missing_one(world, srv, op):
    b, c = world.bucket, world.sec
    calls = {
        "get": lambda k: c.get_object(Bucket=b, Key=k),
        "head": lambda k: c.head_object(Bucket=b, Key=k),
        "tagging": lambda k: c.get_object_tagging(Bucket=b, Key=k),
        "copy": lambda k: c.copy_object(Bucket=b, Key="copy-dst", CopySource={"Bucket": b, "Key": k}),
    }
    views = []
    for key in ("ts/x.txt", "ts/z.txt"):          # above the clearance; missing (same length)
        with pytest.raises(ClientError) as exc:
            calls[op](key)
        views.append(_error_view(exc, key))
    assert views[0] == views[1]
    assert views[0][0] == 404
    assert not any("vallum" in h for h in views[0][2])      # no label header on the refusal


def test_refusal_is_audited_with_rule_and_label(world, srv):
    with pytest.raises(ClientError) as exc:
        world.unc.get_object(Bucket=world.bucket, Key="s.txt")
    rid = exc.value.response["ResponseMetadata"]["RequestId"]
    out = subprocess.run([sys.executable, "-m", "vallum", "audit", "export", "--data-dir", str(srv.data_dir),
                          "--bucket", world.bucket], capture_output=True, text=True, check=True)
    rec = next(json.loads(x) for x in out.stdout.splitlines() if json.loads(x).get("request_id") == rid)
    assert rec["status"] == 404 and rec["label"] == S
    assert rec["rule"].startswith("mac: no read up")


def test_no_write_down_and_session_levels(world):
    b = world.bucket
    with pytest.raises(ClientError) as exc:          # TS session writing UNCLASSIFIED
        put(world.top, b, "down.txt", b"x", U)
    assert code(exc) == "AccessDenied"
    assert "no write down" in exc.value.response["Error"]["Message"]    # says why
    world.sec.put_object(Bucket=b, Key="at-session.txt", Body=b"x")    # default: the session level
    assert world.sec.head_object(Bucket=b, Key="at-session.txt")["Metadata"]["vallum-label"] == S
    world.top.delete_object(Bucket=b, Key="at-session.txt")           # keep the listings below
    low = world.s3("top", U)                         # lowering the session level allows it ...
    put(low, b, "down.txt", b"x", U)
    with pytest.raises(ClientError) as exc:          # ... and reads at that level only
        low.get_object(Bucket=b, Key="s.txt")
    assert code(exc) == "NoSuchKey"
    assert keys_v2(low, b) == ["down.txt", "u.txt"]
    put(world.unc, b, "up.txt", b"x", S)             # writing up is allowed, reading it back is not
    with pytest.raises(ClientError) as exc:
        world.unc.head_object(Bucket=b, Key="up.txt")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:          # a session level above the clearance
        world.s3("sec", TS).list_objects_v2(Bucket=b)
    assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        world.s3("sec", "SEKRET").get_object(Bucket=b, Key="u.txt")
    assert code(exc) == "InvalidArgument"


def test_copy_keeps_the_least_upper_bound(world):
    b = world.bucket
    add = with_headers(world.sec, {LABEL: "SECRET//SI"})
    try:      # source SECRET//NOFORN joined with SECRET//SI
        world.sec.copy_object(Bucket=b, Key="joined.txt", CopySource={"Bucket": b, "Key": "s.txt"})
    finally:
        world.sec.meta.events.unregister("before-call.s3", add)
    head = world.top.head_object(Bucket=b, Key="joined.txt")
    assert head["ResponseMetadata"]["HTTPHeaders"][LABEL] == "SECRET//SI//NOFORN"
    with pytest.raises(ClientError):                 # sec lacks SI: the copy is above it now
        world.sec.head_object(Bucket=b, Key="joined.txt")
    # Copy without a label keeps the source's; the copier's session must be dominated by it.
    world.s3("top", S).copy_object(Bucket=b, Key="s-copy.txt", CopySource={"Bucket": b, "Key": "s.txt"})
    assert world.sec.head_object(Bucket=b, Key="s-copy.txt")["ResponseMetadata"]["HTTPHeaders"][LABEL] == S


def test_multipart_keeps_its_label_and_refuses_higher_sources(world):
    b, c = world.bucket, world.sec
    add = with_headers(c, {LABEL: S})
    try:
        up = c.create_multipart_upload(Bucket=b, Key="mp.bin")["UploadId"]
    finally:
        c.meta.events.unregister("before-call.s3", add)
    with pytest.raises(ClientError) as exc:          # a TS source cannot go into a SECRET upload
        world.top.upload_part_copy(Bucket=b, Key="mp.bin", UploadId=up, PartNumber=1,
                                   CopySource={"Bucket": b, "Key": "ts/x.txt"})
    assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:          # parts are spill-scanned
        c.upload_part(Bucket=b, Key="mp.bin", UploadId=up, PartNumber=1,
                      Body=b"TOP SECRET//SI//NOFORN\nplans\n")
    assert code(exc) == "SpillDetected"
    part = c.upload_part_copy(Bucket=b, Key="mp.bin", UploadId=up, PartNumber=1,
                              CopySource={"Bucket": b, "Key": "u.txt"})
    c.complete_multipart_upload(Bucket=b, Key="mp.bin", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    head = c.head_object(Bucket=b, Key="mp.bin")
    assert head["ResponseMetadata"]["HTTPHeaders"][LABEL] == S
    assert c.get_object(Bucket=b, Key="mp.bin")["Body"].read() == b"public"


def test_bucket_label_range(world):
    name = "rng-" + uuid.uuid4().hex[:12]
    c = world.s3("sec", "CONFIDENTIAL")
    add = with_headers(c, {"x-vallum-label-floor": "CONFIDENTIAL", "x-vallum-label-ceiling": S})
    try:
        c.create_bucket(Bucket=name)
    finally:
        c.meta.events.unregister("before-call.s3", add)
    h = c.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]
    assert h["x-vallum-label-floor"] == "CONFIDENTIAL" and h["x-vallum-label-ceiling"] == S
    c.put_object(Bucket=name, Key="floor", Body=b"x")          # default: the floor
    assert c.head_object(Bucket=name, Key="floor")["ResponseMetadata"]["HTTPHeaders"][LABEL] == "CONFIDENTIAL"
    for label in (TS, U):                                      # above the ceiling, below the floor
        with pytest.raises(ClientError) as exc:
            put(c, name, "out", b"x", label)
        assert code(exc) == "AccessDenied"
    bad = world.s3("sec")
    add = with_headers(bad, {"x-vallum-label-floor": S, "x-vallum-label-ceiling": "CONFIDENTIAL"})
    try:
        with pytest.raises(ClientError) as exc:
            bad.create_bucket(Bucket="rng-" + uuid.uuid4().hex[:12])
        assert code(exc) == "InvalidArgument"
    finally:
        bad.meta.events.unregister("before-call.s3", add)


def test_set_clearance_is_root_only(world):
    with pytest.raises(AdminError):
        world.admin.call("SetClearance", user="unc", clearance=TS)
    with pytest.raises(AdminError):
        world.root.call("SetClearance", account=world.account, user="unc", clearance="SEKRET")


def test_downgrade_needs_its_permission_and_is_audited(world, srv):
    b = world.bucket
    put(world.top, b, "dg.txt", b"to be released", TS)
    with pytest.raises(AdminError) as exc:           # s3:* is not enough
        world.admin_for("top").call("DowngradeLabel", bucket=b, key="dg.txt", label=S)
    assert exc.value.code == "AccessDenied"
    with pytest.raises(AdminError) as exc:           # a "downgrade" that raises is refused
        world.admin_for("officer").call("DowngradeLabel", bucket=b, key="s.txt", label=TS)
    assert exc.value.code == "InvalidArgument"
    with pytest.raises(AdminError) as exc:           # no permission: refused before any lookup
        world.admin_for("sec").call("DowngradeLabel", bucket=b, key="dg.txt", label=S)
    assert exc.value.code == "AccessDenied"
    out = world.admin_for("officer").call("DowngradeLabel", bucket=b, key="dg.txt", label=S)
    assert out["label"] == S and out["previous_label"] == TS
    assert world.sec.get_object(Bucket=b, Key="dg.txt")["Body"].read() == b"to be released"
    q = subprocess.run([sys.executable, "-m", "vallum", "audit", "export", "--data-dir", str(srv.data_dir),
                        "--bucket", b], capture_output=True, text=True, check=True)
    events = [json.loads(x) for x in q.stdout.splitlines() if '"label-downgrade"' in x]
    allowed = [e for e in events if e["decision"] == "allow"]
    assert len(allowed) == 1 and allowed[0]["from_label"] == TS and allowed[0]["label"] == S
    assert allowed[0]["principal"] == world.keys["officer"][0] and allowed[0]["key"] == "dg.txt"
    assert {e["decision"] for e in events} == {"allow", "deny"}
    text = subprocess.run([sys.executable, "-m", "vallum", "audit", "query", "--data-dir", str(srv.data_dir),
                           "--bucket", b, "--principal", world.keys["officer"][0]],
                          capture_output=True, text=True, check=True).stdout
    assert "DowngradeLabel" in text


def test_inline_bodies_are_encrypted_at_rest(srv):
    s3 = srv.client()
    bucket = "inl-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    body = (b"PLAINTEXT-MARKER-" + uuid.uuid4().hex.encode() + b"\n") * 100
    body = body[:4096]
    assert len(body) == 4096
    s3.put_object(Bucket=bucket, Key="small", Body=body)
    db = sqlite3.connect(f"file:{srv.data_dir / 'meta.sqlite3'}?mode=ro", uri=True)
    try:
        (stored,) = db.execute("SELECT inline FROM versions WHERE bucket=? AND key=?",
                               (bucket, "small")).fetchone()
    finally:
        db.close()
    assert stored is not None and len(stored) > len(body)
    assert b"PLAINTEXT-MARKER" not in bytes(stored) and body[:64] not in bytes(stored)
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == body
    for start, end in ((0, 0), (1, 100), (4000, 4095), (4095, 4095), (17, 3000)):
        got = s3.get_object(Bucket=bucket, Key="small", Range=f"bytes={start}-{end}")["Body"].read()
        assert got == body[start:end + 1]
    assert s3.get_object(Bucket=bucket, Key="small", Range="bytes=-10")["Body"].read() == body[-10:]
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "small"})
    assert s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == body
