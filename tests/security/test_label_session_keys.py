"""Adversarial tests of credentials bound to a session level and of labels set through
stock S3 calls (metadata, the reserved tag): nothing a key, a header, a tag or a copy
does lifts a request above its bound level, writes down, or lowers a label; refusals
change nothing and are audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.labels import TS, C, Cleared, S, U
from tests.support.server import code, start_server, stop_server
from vallum.cli.admin import AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API and data directory")
TAG = "vallum:label"
LEVEL_TAG = "vallum:session-level"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("lblkeys") / "data")
    yield server
    stop_server(server)


class World(Cleared):
    """A TS user with a SECRET-bound key, a SECRET user, a TS role, and a bucket [U, TS]
    holding one object at each of U, C, S, TS."""

    def __init__(self, server) -> None:
        super().__init__(server)
        self.user("ts", TS, {"Effect": "Allow", "Action": ["s3:*", "sts:*",
                                                           "vallum:DowngradeLabel"],
                             "Resource": "*"})
        self.user("sec", S)
        self.sec_key = self.key("sec")
        self.ts_key = self.key("ts")
        self.s_key = self.key("ts", S)
        self.c_key = self.key("ts", C)
        self.u_key = self.key("ts", U)
        self.b = self.bucket(U, TS)
        for key, name in ((self.u_key, "u"), (self.c_key, "c"), (self.s_key, "s"),
                          (self.ts_key, "ts")):          # each at its key's level
            self.s3(key).put_object(Bucket=self.b, Key=name, Body=name.encode())
        self.admin.call("CreateRole", role="ts-role", trust_policy={
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{self.account}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
        self.admin.call("PutInlinePolicy", kind="role", target="ts-role", name="p",
                        document={"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
        self.root.call("SetClearance", account=self.account, role="ts-role", clearance=TS)

    def sts(self, key: tuple[str, str], token: str | None = None):
        return boto3.client("sts", endpoint_url=self.server.endpoint, aws_access_key_id=key[0],
                            aws_secret_access_key=key[1], aws_session_token=token,
                            region_name=self.server.region, config=Config(retries={"max_attempts": 1}))

    def visible(self, key: tuple[str, str], token: str | None = None) -> list[str]:
        out = self.s3(key, token).list_objects_v2(Bucket=self.b)
        return sorted(o["Key"] for o in out.get("Contents", []))

    def label(self, name: str) -> str:
        head = self.s3(self.ts_key).head_object(Bucket=self.b, Key=name)
        return head["ResponseMetadata"]["HTTPHeaders"]["x-vallum-classification"]


@pytest.fixture(scope="module")
def world(srv) -> World:
    return World(srv)


def with_header(c, name: str, value: str):
    def add(params, **_):
        params["headers"][name] = value
    c.meta.events.register_first("before-call.s3", add)
    return c


def audit(srv, bucket: str, request_id: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "vallum", "audit", "export", "--data-dir",
                          str(srv.data_dir), "--bucket", bucket], capture_output=True, text=True,
                         check=True)
    return next(r for r in map(json.loads, out.stdout.splitlines()) if r.get("request_id") == request_id)


# ---------------------------------------------------------------- issuing
@pytest.mark.parametrize("level, want", [(TS, "ValidationError"), ("SEKRET", "ValidationError"),
                                         (["SECRET"], "ValidationError")],
                         ids=["above-clearance", "malformed", "not-a-string"])
def test_a_key_above_its_holders_clearance_is_refused_at_issue(world, level, want):
    before = world.admin.call("ListAccessKeys", user="sec")["keys"]
    with pytest.raises(AdminError) as exc:
        world.root.call("CreateAccessKey", account=world.account, user="sec", session_level=level)
    assert exc.value.code == want
    assert world.admin.call("ListAccessKeys", user="sec")["keys"] == before


def test_an_uncleared_admin_cannot_mint_a_bound_key_for_a_cleared_user(world):
    with pytest.raises(AdminError) as exc:
        world.admin.call("CreateAccessKey", user="sec", session_level=C)
    assert exc.value.code == "AccessDenied"


def test_a_role_session_above_the_roles_clearance_is_refused(world):
    sts = world.sts(world.ts_key)
    arn = f"arn:aws:iam::{world.account}:role/ts-role"
    world.root.call("SetClearance", account=world.account, role="ts-role", clearance=S)
    try:
        with pytest.raises(ClientError) as exc:
            sts.assume_role(RoleArn=arn, RoleSessionName="hi", Tags=[{"Key": LEVEL_TAG, "Value": TS}])
        assert code(exc) == "ValidationError"
        with pytest.raises(ClientError) as exc:
            sts.assume_role(RoleArn=arn, RoleSessionName="bad", Tags=[{"Key": LEVEL_TAG, "Value": "SEKRET"}])
        assert code(exc) == "ValidationError"
    finally:
        world.root.call("SetClearance", account=world.account, role="ts-role", clearance=TS)


# ---------------------------------------------------------------- using
def test_a_secret_key_of_a_ts_user_reads_secret_only(world):
    assert world.visible(world.ts_key) == ["c", "s", "ts", "u"]
    assert world.visible(world.s_key) == ["c", "s", "u"]
    c = world.s3(world.s_key)
    with pytest.raises(ClientError) as exc:
        c.get_object(Bucket=world.b, Key="ts")
    assert code(exc) == "NoSuchKey"
    assert c.get_object(Bucket=world.b, Key="s")["Body"].read() == b"s"


@pytest.mark.parametrize("header", [TS, U, "SEKRET"], ids=["raise", "lower", "malformed"])
def test_a_header_does_not_change_a_bound_level(world, header):
    c = with_header(world.s3(world.s_key), "x-vallum-session-level", header)
    with pytest.raises(ClientError) as exc:
        c.get_object(Bucket=world.b, Key="ts" if header == TS else "u")
    assert code(exc) in ("AccessDenied", "InvalidArgument")
    if code(exc) == "AccessDenied":
        assert "fixed" in exc.value.response["Error"]["Message"]


def test_a_bound_key_does_not_write_down_and_says_why(world, srv):
    c = world.s3(world.s_key)
    for how in ({"Metadata": {"vallum-label": C}}, {"Tagging": f"{TAG}={C}"}):
        with pytest.raises(ClientError) as exc:
            c.put_object(Bucket=world.b, Key="down", Body=b"x", **how)
        assert code(exc) == "AccessDenied"
        assert "no write down" in exc.value.response["Error"]["Message"]
    rid = exc.value.response["ResponseMetadata"]["RequestId"]
    rec = audit(srv, world.b, rid)
    assert rec["decision"] == "deny" and rec["rule"].startswith("mac: no write down")
    assert rec["label"] == C
    with pytest.raises(ClientError):
        world.s3(world.ts_key).head_object(Bucket=world.b, Key="down")


def test_rotation_and_session_tokens_keep_the_bound_level(world):
    rotated = world.root.call("RotateAccessKey", account=world.account,
                              access_key_id=world.key("ts", S)[0])
    assert rotated["session_level"] == S
    listed = world.root.call("ListAccessKeys", account=world.account, user="ts")["keys"]
    assert {k["access_key_id"]: k["session_level"] for k in listed}[rotated["access_key_id"]] == S
    new = (rotated["access_key_id"], rotated["secret_access_key"])
    assert world.visible(new) == ["c", "s", "u"]
    creds = world.sts(world.s_key).get_session_token()["Credentials"]
    assert world.visible((creds["AccessKeyId"], creds["SecretAccessKey"]),
                         creds["SessionToken"]) == ["c", "s", "u"]


def test_a_role_session_bound_by_a_session_tag(world):
    arn = f"arn:aws:iam::{world.account}:role/ts-role"
    creds = world.sts(world.ts_key).assume_role(
        RoleArn=arn, RoleSessionName="at-c", Tags=[{"Key": LEVEL_TAG, "Value": C}])["Credentials"]
    key, token = (creds["AccessKeyId"], creds["SecretAccessKey"]), creds["SessionToken"]
    assert world.visible(key, token) == ["c", "u"]
    c = with_header(world.s3(key, token), "x-vallum-session-level", TS)
    with pytest.raises(ClientError) as exc:
        c.list_objects_v2(Bucket=world.b)
    assert code(exc) == "AccessDenied"
    # A SECRET-bound key cannot take on a TOP SECRET role session by a tag either.
    with pytest.raises(ClientError) as exc:
        world.sts(world.s_key).assume_role(RoleArn=arn, RoleSessionName="up",
                                           Tags=[{"Key": LEVEL_TAG, "Value": TS}])
    assert code(exc) == "AccessDenied"


def test_a_bound_key_cannot_downgrade_above_its_level(world):
    from vallum.cli.admin import AdminClient
    admin = AdminClient(world.server.endpoint, *world.s_key, world.server.region)
    with pytest.raises(AdminError) as exc:
        admin.call("DowngradeLabel", bucket=world.b, key="ts", label=S)
    assert exc.value.code in ("NoSuchKey", "AccessDenied")
    assert world.label("ts") == TS


def test_a_clearance_lowered_below_a_keys_level_stops_the_key(world):
    world.user("later", S)
    key = world.key("later", S)
    assert world.visible(key) == ["c", "s", "u"]
    world.root.call("SetClearance", account=world.account, user="later", clearance=C)
    with pytest.raises(ClientError) as exc:
        world.visible(key)
    assert code(exc) == "AccessDenied"


# ---------------------------------------------------------------- relabelling
@pytest.mark.parametrize("obj, label, rule", [
    ("s", C, "downgrade"),                    # lowering is DowngradeLabel's, not tagging's
    ("c", TS, "above session level"),         # raising above the session
    ("u", C, "no write down"),                # the SECRET session writing CONFIDENTIAL
], ids=["lower", "above-session", "write-down"])
def test_relabel_refusals_say_why_and_change_nothing(world, srv, obj, label, rule):
    c = world.s3(world.s_key)
    before = world.label(obj)
    with pytest.raises(ClientError) as exc:
        c.put_object_tagging(Bucket=world.b, Key=obj, Tagging={"TagSet": [
            {"Key": TAG, "Value": label}, {"Key": "x", "Value": "y"}]})
    assert code(exc) == "AccessDenied"
    assert rule in exc.value.response["Error"]["Message"]
    assert world.label(obj) == before
    tags = world.s3(world.ts_key).get_object_tagging(Bucket=world.b, Key=obj)["TagSet"]
    assert {"Key": "x", "Value": "y"} not in tags
    if label == C and obj == "s":            # audited (one export: it is a subprocess)
        rec = audit(srv, world.b, exc.value.response["ResponseMetadata"]["RequestId"])
        assert rec["decision"] == "deny" and rec["rule"].startswith("mac: relabel")


def test_an_allowed_relabel_is_audited_with_both_labels(world, srv):
    world.s3(world.c_key).put_object(Bucket=world.b, Key="raised", Body=b"x")
    world.s3(world.s_key).put_object_tagging(Bucket=world.b, Key="raised", Tagging={
        "TagSet": [{"Key": TAG, "Value": S}]})
    assert world.label("raised") == S
    out = subprocess.run([sys.executable, "-m", "vallum", "audit", "export", "--data-dir",
                          str(srv.data_dir)], capture_output=True, text=True, check=True)
    events = [r for r in map(json.loads, out.stdout.splitlines())
              if r.get("event") == "label-raise" and r.get("key") == "raised"]
    assert len(events) == 1
    assert (events[0]["from_label"], events[0]["label"], events[0]["principal"]) == (C, S, world.s_key[0])


def test_relabel_outside_the_bucket_range_is_refused(world):
    b = world.bucket(U, C)
    world.s3(world.c_key).put_object(Bucket=b, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        world.s3(world.s_key).put_object_tagging(Bucket=b, Key="k", Tagging={"TagSet": [{"Key": TAG, "Value": S}]})
    assert code(exc) == "AccessDenied" and "outside bucket range" in exc.value.response["Error"]["Message"]


def test_relabel_of_a_hidden_object_answers_as_a_missing_one(world):
    c = world.s3(world.s_key)
    views = []
    for key in ("ts", "zz"):                 # above the key's level; missing
        with pytest.raises(ClientError) as exc:
            c.put_object_tagging(Bucket=world.b, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": TS}]})
        err = {k: v.replace(key, "KEY") for k, v in exc.value.response["Error"].items()
               if k not in ("Key", "RequestId", "HostId")}
        views.append((exc.value.response["ResponseMetadata"]["HTTPStatusCode"], err))
    assert views[0] == views[1] and views[0][0] == 404
    assert world.label("ts") == TS


def test_relabel_with_marked_tags_is_a_spill_and_changes_nothing(world):
    c = world.s3(world.s_key)
    world.s3(world.c_key).put_object(Bucket=world.b, Key="spill", Body=b"x")
    with pytest.raises(ClientError) as exc:
        c.put_object_tagging(Bucket=world.b, Key="spill", Tagging={"TagSet": [
            {"Key": TAG, "Value": S}, {"Key": "note", "Value": "TOP SECRET//SI//NOFORN"}]})
    assert code(exc) == "SpillDetected"
    assert world.label("spill") == C


def test_a_copy_cannot_lower_a_label_through_metadata(world):
    c = world.s3(world.s_key)
    c.copy_object(Bucket=world.b, Key="copied", CopySource={"Bucket": world.b, "Key": "s"},
                  MetadataDirective="REPLACE", Metadata={"vallum-label": S})
    assert world.label("copied") == S
    # Asking for a lower label keeps the source's: a copy keeps the least upper bound.
    c.copy_object(Bucket=world.b, Key="copied2", CopySource={"Bucket": world.b, "Key": "s"},
                  MetadataDirective="REPLACE", Metadata={"vallum-label": U, "k": "v"})
    head = world.s3(world.ts_key).head_object(Bucket=world.b, Key="copied2")
    assert head["Metadata"] == {"vallum-label": S, "k": "v"}


def test_the_label_metadata_must_be_signed(world):
    c = world.s3(world.s_key)
    url = c.generate_presigned_url("put_object", Params={"Bucket": world.b, "Key": "presigned"})
    req = urllib.request.Request(url, data=b"x", method="PUT",
                                 headers={"x-amz-meta-vallum-label": TS})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)  # noqa: S310 - loopback test server
    assert exc.value.code == 403


# ---------------------------------------------------------------- the simulator agrees
@pytest.mark.parametrize("floor, ceiling, label, allowed, rule", [
    (U, TS, None, True, ""),                       # default: the session level, in range
    (U, C, None, False, "bucket-range"),           # the session is above the ceiling
    (U, TS, C, False, "no-write-down"),            # asking for a lower label
], ids=["default-in-range", "above-ceiling", "write-down"])
def test_policy_simulate_agrees_with_the_gateway_on_uploads(world, floor, ceiling, label,
                                                             allowed, rule):
    b = world.bucket(floor, ceiling)
    sim = world.root.call("Simulate", account=world.account, user="sec", action="s3:PutObject",
                          resource=f"arn:aws:s3:::{b}/k", label=label)
    c = world.s3(world.sec_key)
    extra = {"Metadata": {"vallum-label": label}} if label else {}
    try:
        c.put_object(Bucket=b, Key="k", Body=b"x", **extra)
        gateway = True
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
        gateway = False
    assert (sim["decision"] == "allow") == allowed == gateway
    if not allowed:
        assert sim["policy"] == "mac" and sim["statement"] == rule
