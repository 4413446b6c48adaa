"""Labels with stock clients: keys bound to a session level, labels shown and set through
user metadata and the reserved tag, and refusals that say why — through boto3 and the real
awscli only (no x-vallum-* header anywhere in this module)."""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tests.support.labels import TS, C, Cleared, S, U, aws
from tests.support.server import code, start_server, stop_server
from vallum.cli.main import app

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")
TAG = "vallum:label"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("stock") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def world(srv) -> Cleared:
    w = Cleared(srv)
    w.user("ts", TS)
    w.user("sec", S)
    w.user("unc", None)
    return w


def meta_label(head: dict) -> str | None:
    return head["Metadata"].get("vallum-label")


def message(exc) -> str:
    return exc.value.response["Error"]["Message"]


def test_cleared_user_uploads_with_a_stock_client_at_its_keys_level(world, srv):
    """The issue's case: a user cleared TS, a bucket [U, TS]; a key bound to SECRET
    uploads with no label header and the object is SECRET."""
    b = world.bucket(U, TS)
    key = world.key("ts", S)
    c = world.s3(key)
    c.put_object(Bucket=b, Key="plain.txt", Body=b"hello")
    head = c.head_object(Bucket=b, Key="plain.txt")
    assert meta_label(head) == S
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-vallum-classification"] == S
    # awscli: cp up, head-object shows the label, cp down reads it back.
    src = srv.data_dir.parent / "up.txt"
    src.write_bytes(b"from awscli")
    aws(srv, key, "s3", "cp", str(src), f"s3://{b}/cli.txt")
    head = json.loads(aws(srv, key, "s3api", "head-object", "--bucket", b, "--key", "cli.txt").stdout)
    assert head["Metadata"] == {"vallum-label": S}
    out = aws(srv, key, "s3", "cp", f"s3://{b}/cli.txt", "-").stdout
    assert out == "from awscli"


def test_unbound_cleared_key_defaults_to_its_clearance(world):
    b = world.bucket(U, TS)
    c = world.s3(world.key("ts"))
    c.put_object(Bucket=b, Key="k", Body=b"x")
    assert meta_label(c.head_object(Bucket=b, Key="k")) == TS


def test_session_above_the_ceiling_is_refused_with_the_reason(world, srv):
    b = world.bucket(U, C)
    key = world.key("ts", S)
    with pytest.raises(ClientError) as exc:
        world.s3(key).put_object(Bucket=b, Key="k", Body=b"x")
    assert code(exc) == "AccessDenied"
    assert "outside bucket range" in message(exc) and S in message(exc)
    assert "no label was sent" in message(exc)
    src = srv.data_dir.parent / "c.txt"
    src.write_bytes(b"x")
    out = aws(srv, key, "s3", "cp", str(src), f"s3://{b}/k", check=False)
    assert out.returncode != 0 and "outside bucket range" in out.stderr
    # Asking for a label in range is a write down from SECRET: named as such.
    with pytest.raises(ClientError) as exc:
        world.s3(key).put_object(Bucket=b, Key="k", Body=b"x", Metadata={"vallum-label": C})
    assert code(exc) == "AccessDenied" and "no write down" in message(exc)


def test_label_set_through_metadata_with_boto3_and_awscli(world, srv):
    b = world.bucket(U, TS)
    key = world.key("sec")                  # unbound: runs at its clearance, SECRET
    c = world.s3(key)
    c.put_object(Bucket=b, Key="m", Body=b"x", Metadata={"vallum-label": " secret ",
                                                         "other": "kept"})
    head = c.head_object(Bucket=b, Key="m")          # stored canonical, as the label
    assert head["Metadata"] == {"vallum-label": S, "other": "kept"}
    src = srv.data_dir.parent / "m.txt"
    src.write_bytes(b"y")
    aws(srv, key, "s3", "cp", str(src), f"s3://{b}/cli-m", "--metadata", "vallum-label=TOP SECRET")
    with pytest.raises(ClientError):        # written up: above the writer, hidden from it
        c.head_object(Bucket=b, Key="cli-m")
    top = world.s3(world.key("ts"))
    assert meta_label(top.head_object(Bucket=b, Key="cli-m")) == TS
    # A label in metadata and one in the tag header must agree.
    with pytest.raises(ClientError) as exc:
        c.put_object(Bucket=b, Key="both", Body=b"x", Metadata={"vallum-label": S},
                     Tagging=f"{TAG}={TS.replace(' ', '%20')}")
    assert code(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        c.put_object(Bucket=b, Key="bad", Body=b"x", Metadata={"vallum-label": "SEKRET"})
    assert code(exc) == "InvalidArgument" and "vallum-label" in message(exc)


def test_label_shown_and_raised_through_the_reserved_tag(world, srv):
    b = world.bucket(U, TS)
    key = world.key("ts", S)
    c = world.s3(key)
    world.s3(world.key("ts", C)).put_object(Bucket=b, Key="t", Body=b"x", Tagging="team=red")
    tags = {t["Key"]: t["Value"] for t in c.get_object_tagging(Bucket=b, Key="t")["TagSet"]}
    assert tags == {"team": "red", TAG: C}
    # Raise CONFIDENTIAL -> SECRET at the SECRET session, keeping the other tags.
    aws(srv, key, "s3api", "put-object-tagging", "--bucket", b, "--key", "t", "--tagging",
        json.dumps({"TagSet": [{"Key": "team", "Value": "blue"}, {"Key": TAG, "Value": S}]}))
    out = json.loads(aws(srv, key, "s3api", "get-object-tagging", "--bucket", b, "--key", "t").stdout)
    assert {t["Key"]: t["Value"] for t in out["TagSet"]} == {"team": "blue", TAG: S}
    assert meta_label(c.head_object(Bucket=b, Key="t")) == S
    # The reserved tag is not stored as a tag: the tag count is the user's.
    assert c.get_object(Bucket=b, Key="t")["TagCount"] == 1
    # A round trip of the tag set (same label) changes nothing.
    c.put_object_tagging(Bucket=b, Key="t", Tagging={"TagSet": [{"Key": TAG, "Value": S}]})
    assert meta_label(c.head_object(Bucket=b, Key="t")) == S


def test_cli_label_get_set_ls_and_bucket_create(world, srv):
    """`vallum label get|set|ls` and `vallum admin bucket create --floor --ceiling`, run
    through the real command (in-process) against the real server."""
    key = world.key("ts", S)
    user_env = {"VALLUM_ENDPOINT": srv.endpoint, "VALLUM_ACCESS_KEY": key[0],
                "VALLUM_SECRET_KEY": key[1], "VALLUM_REGION": srv.region}
    root_env = dict(user_env, VALLUM_ACCESS_KEY=srv.access_key, VALLUM_SECRET_KEY=srv.secret_key)

    def vallum(*args: str, env: dict[str, str] = user_env, ok: bool = True):
        out = CliRunner().invoke(app, list(args), env=env)
        assert (out.exit_code == 0) == ok, out.output
        return out

    name = "cli-" + os.urandom(5).hex()
    vallum("admin", "bucket", "create", name, "--floor", U, "--ceiling", S, env=root_env)
    h = srv.client().head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]
    assert (h["x-vallum-label-floor"], h["x-vallum-label-ceiling"]) == (U, S)
    bad = vallum("admin", "bucket", "create", name + "x", "--floor", S, "--ceiling", U,
                 env=root_env, ok=False)
    assert bad.exit_code == 1 and "InvalidArgument" in bad.output
    b = world.bucket(U, TS)
    c = world.s3(key)
    for k in ("docs/a", "other"):
        c.put_object(Bucket=b, Key=k, Body=b"x")
    world.s3(world.key("ts", C)).put_object(Bucket=b, Key="docs/b", Body=b"x")
    assert vallum("label", "get", b, "docs/a").output.strip() == S
    assert vallum("label", "get", b, "docs/b").output.strip() == C
    vallum("label", "set", b, "docs/b", "secret")
    assert meta_label(c.head_object(Bucket=b, Key="docs/b")) == S
    assert vallum("label", "ls", b, "--prefix", "docs/").output.splitlines() == [
        f"docs/a\t{S}", f"docs/b\t{S}"]
    down = vallum("label", "set", b, "docs/b", C, ok=False)
    assert down.exit_code == 1 and "AccessDenied" in down.output and "downgrade" in down.output
    missing = vallum("label", "get", b, "nope", ok=False)
    assert missing.exit_code == 1 and "NoSuchKey" in missing.output


def test_a_full_tag_set_round_trips_with_the_reserved_tag(world):
    b = world.bucket(U, TS)
    c = world.s3(world.key("sec"))
    ten = [{"Key": f"k{i}", "Value": "v"} for i in range(10)]
    c.put_object(Bucket=b, Key="full", Body=b"x")
    c.put_object_tagging(Bucket=b, Key="full", Tagging={"TagSet": ten})
    got = c.get_object_tagging(Bucket=b, Key="full")["TagSet"]
    assert len(got) == 11 and {"Key": TAG, "Value": S} in got
    c.put_object_tagging(Bucket=b, Key="full", Tagging={"TagSet": got})     # read, write back
    assert c.get_object(Bucket=b, Key="full")["TagCount"] == 10
    with pytest.raises(ClientError) as exc:                                 # 11 of the user's
        c.put_object_tagging(Bucket=b, Key="full", Tagging={"TagSet": [*ten, {"Key": "k10", "Value": "v"}]})
    assert code(exc) == "BadRequest"
