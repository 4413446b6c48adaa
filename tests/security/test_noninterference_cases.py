"""The leaks the noninterference property found, each pinned by a targeted example.

A low caller (session UNCLASSIFIED) must see the world as if TOP SECRET versions, delete
markers and uploads did not exist: listings do not say "truncated" when only hidden
entries follow, a hidden newer version (or delete marker) does not hide the visible
version under it from GET, HEAD, copy or the listings, and IsLatest names the newest
version the caller may see. Runs the gateway in process (tests/support/inprocess.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import xml.etree.ElementTree as ET  # noqa: S405 - parses our own answers

import pytest

from tests.support.inprocess import InProcess

LOW = {"x-vallum-session-level": "UNCLASSIFIED"}
TS = {"x-vallum-classification": "TOP SECRET"}
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture
def gw():
    loop = asyncio.new_event_loop()
    gw = InProcess.open(loop)
    yield gw
    gw.close()
    loop.close()


def bucket(gw: InProcess, name: str, *, versioned: bool) -> str:
    assert gw.call("PUT", f"/{name}").status == 200
    if versioned:
        body = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        assert gw.call("PUT", f"/{name}", {"versioning": ""}, {"content-md5": md5}, body).status == 200
    return name


def put(gw: InProcess, path: str, body: bytes, headers: dict[str, str]) -> str | None:
    reply = gw.call("PUT", path, headers=headers, body=body)
    assert reply.status == 200, reply
    return reply.header("x-amz-version-id")


def listing(gw: InProcess, name: str, query: dict[str, str]) -> ET.Element:
    reply = gw.call("GET", f"/{name}", query, LOW)
    assert reply.status == 200, reply
    return ET.fromstring(reply.body)


def texts(doc: ET.Element, path: str) -> list[str]:
    return [e.text or "" for e in doc.iter(NS + path)]


def one(doc: ET.Element, name: str) -> str | None:
    found = doc.find(NS + name)
    return None if found is None else found.text


# ---------------------------------------------------------------- truncation
@pytest.mark.parametrize("query", [{"list-type": "2", "max-keys": "2"},
                                   {"max-keys": "2", "delimiter": "/"},
                                   {"versions": "", "max-keys": "2"}])
def test_listing_is_not_truncated_when_only_hidden_keys_follow(gw, query):
    name = bucket(gw, "trunc", versioned=True)
    for key in ("a", "b"):
        put(gw, f"/{name}/{key}", b"low", LOW)
    for key in ("c", "d/e"):
        put(gw, f"/{name}/{key}", b"high", TS)
    doc = listing(gw, name, query)
    assert one(doc, "IsTruncated") == "false"
    for marker in ("NextContinuationToken", "NextMarker", "NextKeyMarker", "NextVersionIdMarker"):
        assert one(doc, marker) is None
    if "list-type" in query:
        assert one(doc, "KeyCount") == "2"


def test_upload_listing_is_not_truncated_when_only_hidden_uploads_follow(gw):
    name = bucket(gw, "uploads", versioned=False)
    for key, headers in (("a", LOW), ("b", TS), ("c", TS)):
        assert gw.call("POST", f"/{name}/{key}", {"uploads": ""}, headers).status == 200
    doc = listing(gw, name, {"uploads": "", "max-uploads": "1"})
    assert texts(doc, "Key") == ["a"]
    assert one(doc, "IsTruncated") == "false"
    assert one(doc, "NextKeyMarker") is None


def test_common_prefix_of_hidden_keys_only_is_absent_and_does_not_fill_the_page(gw):
    name = bucket(gw, "prefixes", versioned=False)
    put(gw, f"/{name}/a/x", b"low", LOW)
    put(gw, f"/{name}/b/x", b"high", TS)
    put(gw, f"/{name}/c/x", b"low", LOW)
    doc = listing(gw, name, {"list-type": "2", "delimiter": "/", "max-keys": "2"})
    assert texts(doc, "Prefix")[1:] == ["a/", "c/"]      # [0] is the request's Prefix
    assert one(doc, "IsTruncated") == "false"


# ---------------------------------------------------------------- a hidden newer version
def test_get_and_head_answer_the_visible_version_under_a_hidden_newer_one(gw):
    name = bucket(gw, "newer", versioned=True)
    low_version = put(gw, f"/{name}/k", b"low body", LOW)
    put(gw, f"/{name}/k", b"high body", TS)
    got = gw.call("GET", f"/{name}/k", headers=LOW)
    assert (got.status, got.body, got.header("x-amz-version-id")) == (200, b"low body", low_version)
    head = gw.call("HEAD", f"/{name}/k", headers=LOW)
    assert (head.status, head.header("x-amz-version-id")) == (200, low_version)


def test_hidden_delete_marker_does_not_delete_the_visible_version_for_the_low_caller(gw):
    name = bucket(gw, "marker", versioned=True)
    low_version = put(gw, f"/{name}/k", b"low body", LOW)
    put(gw, f"/{name}/k", b"high body", TS)
    assert gw.call("DELETE", f"/{name}/k").status == 204       # system high: marker labelled TS
    assert gw.call("DELETE", f"/{name}/k").status == 204       # a marker over that marker: TS too
    got = gw.call("GET", f"/{name}/k", headers=LOW)
    assert (got.status, got.body, got.header("x-amz-delete-marker")) == (200, b"low body", None)
    doc = listing(gw, name, {"list-type": "2"})
    assert texts(doc, "Key") == ["k"]
    doc = listing(gw, name, {"versions": ""})
    assert texts(doc, "VersionId") == [low_version]
    assert texts(doc, "IsLatest") == ["true"]


def test_is_latest_names_the_newest_visible_version(gw):
    name = bucket(gw, "latest", versioned=True)
    older = put(gw, f"/{name}/k", b"1", LOW)
    newer = put(gw, f"/{name}/k", b"2", LOW)
    put(gw, f"/{name}/k", b"3", TS)
    doc = listing(gw, name, {"versions": ""})
    assert texts(doc, "VersionId") == [newer, older]
    assert texts(doc, "IsLatest") == ["true", "false"]
    # A page that starts inside the key still knows the newer visible version came first.
    doc = listing(gw, name, {"versions": "", "key-marker": "k", "version-id-marker": newer})
    assert (texts(doc, "VersionId"), texts(doc, "IsLatest")) == ([older], ["false"])
    doc = listing(gw, name, {"versions": "", "max-keys": "1"})
    assert (one(doc, "NextKeyMarker"), one(doc, "NextVersionIdMarker")) == ("k", newer)


def test_listing_shows_the_visible_version_under_a_hidden_newer_one(gw):
    name = bucket(gw, "listed", versioned=True)
    put(gw, f"/{name}/p/k", b"low body", LOW)
    put(gw, f"/{name}/p/k", b"high", TS)
    etag = '"' + hashlib.md5(b"low body", usedforsecurity=False).hexdigest() + '"'
    doc = listing(gw, name, {"list-type": "2"})
    assert (texts(doc, "Key"), texts(doc, "ETag"), texts(doc, "Size")) == (["p/k"], [etag], ["8"])
    doc = listing(gw, name, {"delimiter": "/"})
    assert texts(doc, "Prefix")[1:] == ["p/"]


def test_copy_source_is_the_visible_version_under_a_hidden_newer_one(gw):
    name = bucket(gw, "copy", versioned=True)
    put(gw, f"/{name}/src", b"low body", LOW)
    put(gw, f"/{name}/src", b"high body", TS)
    copied = gw.call("PUT", f"/{name}/dst", headers=dict(LOW, **{"x-amz-copy-source": f"/{name}/src"}))
    assert copied.status == 200, copied
    assert gw.call("GET", f"/{name}/dst", headers=LOW).body == b"low body"


def test_conditional_write_sees_the_visible_version_under_a_hidden_newer_one(gw):
    name = bucket(gw, "cond", versioned=True)
    put(gw, f"/{name}/k", b"low body", LOW)
    put(gw, f"/{name}/k", b"high body", TS)
    refused = gw.call("PUT", f"/{name}/k", headers=dict(LOW, **{"if-none-match": "*"}), body=b"new")
    assert refused.status == 412, refused
    etag = '"' + hashlib.md5(b"low body", usedforsecurity=False).hexdigest() + '"'
    ok = gw.call("PUT", f"/{name}/k", headers=dict(LOW, **{"if-match": etag}), body=b"new")
    assert ok.status == 200, ok


def test_object_acl_answers_for_the_visible_version_under_a_hidden_newer_one(gw):
    name = bucket(gw, "acl", versioned=True)
    low_version = put(gw, f"/{name}/k", b"low body", LOW)
    put(gw, f"/{name}/k", b"high body", TS)
    acl = gw.call("GET", f"/{name}/k", {"acl": ""}, LOW)
    assert (acl.status, acl.header("x-amz-version-id")) == (200, low_version), acl


# ---------------------------------------------------------------- tag conditions
def test_a_tag_condition_reads_the_version_the_caller_sees(gw):
    """A Deny on reading objects tagged project=x holds for the version the low caller is
    served, whatever hidden version lies on top (before: the gate read the hidden latest
    version, saw no tags, and let the tagged visible version out)."""
    made = gw.admin("CreateAccount", name="tags")[1]
    key = made["admin_key"]
    admin = gw.as_user(key["access_key_id"], key["secret_access_key"])
    assert admin.admin("CreateUser", user="lo")[0] == 200
    assert admin.admin("PutInlinePolicy", kind="user", target="lo", name="p", document={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})[0] == 200
    key = admin.admin("CreateAccessKey", user="lo")[1]
    lo = gw.as_user(key["access_key_id"], key["secret_access_key"])
    name = bucket(admin, "tagged", versioned=True)
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{name}/*",
        "Condition": {"StringEquals": {"s3:ExistingObjectTag/project": "x"}}}]}).encode()
    assert admin.call("PUT", f"/{name}", {"policy": ""}, body=policy).status == 204
    put(lo, f"/{name}/k", b"low", {"x-amz-tagging": "project=x"})
    assert lo.call("GET", f"/{name}/k").status == 403
    put(gw, f"/{name}/k", b"high", TS)                    # hidden newer version, untagged
    assert lo.call("GET", f"/{name}/k").status == 403
    assert lo.call("HEAD", f"/{name}/k").status == 403


# ---------------------------------------------------------------- the policy simulator
def test_the_simulator_tells_an_uncleared_admin_nothing_about_hidden_objects(gw):
    """An account admin with no clearance simulates reads of its own bucket's keys: a TOP
    SECRET object (tagged) answers exactly as a missing key, both for the admin itself and
    for a cleared role whose policy tests the tag (before: the label and the tag leaked)."""
    made = gw.admin("CreateAccount", name="sim")[1]
    key = made["admin_key"]
    admin = gw.as_user(key["access_key_id"], key["secret_access_key"])
    account = made["account"]["id"]
    name = bucket(admin, "simulated", versioned=False)
    put(gw, f"/{name}/hid", b"high", {**TS, "x-amz-tagging": "proj=x"})
    assert admin.admin("CreateRole", role="cleared", trust_policy={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
            "AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})[0] == 200
    assert gw.admin("SetClearance", account=account, role="cleared",
                    clearance="TOP SECRET")[0] == 200
    assert admin.admin("PutInlinePolicy", kind="role", target="cleared", name="probe", document={
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/proj": "x"}}}]})[0] == 200

    def simulate(key: str, **who) -> tuple[int, dict]:
        return admin.admin("Simulate", action="s3:GetObject",
                           resource=f"arn:aws:s3:::{name}/{key}", **who)

    assert simulate("hid", role="cleared") == simulate("missing", role="cleared")
    assert simulate("hid", user="admin") == simulate("missing", user="admin")
