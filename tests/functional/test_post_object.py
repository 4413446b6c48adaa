"""PostObject (browser form uploads) against the real server: forms built by boto3's
generate_presigned_post (or signed here, V4 and V2), posted by ``requests`` as a browser
posts them (multipart/form-data, fields first, the file last); the answers S3 gives;
and the refusals: forged, expired or widened policies, sizes out of range, other tenants,
too-low clearances, spill, malformed bodies, header injection through the redirect."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import uuid
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.iam import Tenant
from tests.support.labels import ALLOW_S3, TS, Cleared, S, U
from tests.support.server import code, start_server, stop_server
from vallum.cli.admin import AdminClient

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("post") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def s3(srv):
    return srv.client(signature_version="s3v4")


@pytest.fixture(scope="module", params=["s3v4", "s3"])
def signer(srv, request):
    """boto3 with each way it signs a POST form: SigV4 fields, or SigV2 (its default)."""
    return srv.client(signature_version=request.param)


@pytest.fixture
def bucket(s3):
    name = "post-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


def post(srv, bucket: str, fields: dict, body: bytes = b"hello form", *, filename="f.txt",
         content_type="text/plain", **kw) -> requests.Response:
    """POST the form as a browser does: every field, then the file."""
    return requests.post(f"{srv.endpoint}/{bucket}", data=fields,
                         files={"file": (filename, body, content_type)},
                         allow_redirects=False, timeout=30, **kw)


def error(resp: requests.Response) -> tuple[str, str]:
    """(Code, Message) of an S3 error document."""
    doc = ElementTree.fromstring(resp.content)  # noqa: S314 - our own server's answer
    return doc.findtext("Code") or "", doc.findtext("Message") or ""


def v4_fields(srv, policy: dict, key: str, secret: str, *, sign_with: str | None = None,
              date: datetime.datetime | None = None) -> dict:
    """A SigV4 POST form's auth fields for ``policy`` (which must list them), signed here."""
    now = date or datetime.datetime.now(datetime.timezone.utc)
    day, stamp = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    cred = f"{key}/{day}/{srv.region}/s3/aws4_request"
    policy = dict(policy, conditions=[*policy["conditions"], {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                                      {"x-amz-credential": cred}, {"x-amz-date": stamp}])
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    k = ("AWS4" + (sign_with or secret)).encode()
    for part in (day, srv.region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, encoded.encode(), hashlib.sha256).hexdigest()
    return {"policy": encoded, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": cred,
            "x-amz-date": stamp, "x-amz-signature": sig}


def expires(seconds: int = 600) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------- what a browser gets


def test_boto3_presigned_post_stores_the_file(srv, s3, signer, bucket):
    form = signer.generate_presigned_post(bucket, "up/a.txt", ExpiresIn=300)
    v4 = signer.meta.config.signature_version == "s3v4"
    assert ("x-amz-signature" in form["fields"]) is v4 and ("signature" in form["fields"]) is not v4
    resp = post(srv, bucket, form["fields"], b"form body")
    assert resp.status_code == 204, resp.text
    etag = resp.headers["ETag"]
    assert etag == '"' + hashlib.md5(b"form body").hexdigest() + '"'
    assert resp.headers["Location"].endswith(f"/{bucket}/up/a.txt")
    got = s3.get_object(Bucket=bucket, Key="up/a.txt")
    assert got["Body"].read() == b"form body" and got["ETag"] == etag
    assert got["ContentType"] == "text/plain"          # from the file part


@pytest.mark.parametrize("status", ["200", "201", "204", "302"])
def test_success_action_status(srv, s3, signer, bucket, status):
    form = signer.generate_presigned_post(bucket, "s.txt", Fields={"success_action_status": status},
                                      Conditions=[{"success_action_status": status}])
    resp = post(srv, bucket, form["fields"])
    want = int(status) if status in ("200", "201") else 204
    assert resp.status_code == want, resp.text
    if status == "201":
        assert "<PostResponse" in resp.text and f"<Bucket>{bucket}</Bucket>" in resp.text
        assert "<Key>s.txt</Key>" in resp.text and "<ETag>&quot;" in resp.text
    else:
        assert resp.content == b""


def test_redirect_is_303_with_bucket_key_and_etag(srv, s3, bucket):
    target = "https://app.example/done?x=1"
    form = s3.generate_presigned_post(bucket, "r.txt", Fields={"success_action_redirect": target},
                                      Conditions=[{"success_action_redirect": target}])
    resp = post(srv, bucket, form["fields"], b"redirected")
    assert resp.status_code == 303
    loc = urlsplit(resp.headers["Location"])
    assert (loc.scheme, loc.netloc, loc.path) == ("https", "app.example", "/done")
    q = parse_qs(loc.query)
    assert q["x"] == ["1"] and q["bucket"] == [bucket] and q["key"] == ["r.txt"]
    assert q["etag"] == ['"' + hashlib.md5(b"redirected").hexdigest() + '"']


@pytest.mark.parametrize("target", ["https://evil.example/\r\nSet-Cookie: a=b",
                                    "javascript:alert(1)", "https://ok.example/ä", "/relative"])
def test_a_redirect_that_is_no_http_url_is_ignored(srv, s3, bucket, target):
    """S3 ignores a redirect it cannot take as a URL; no byte of it reaches a header."""
    form = s3.generate_presigned_post(bucket, "i.txt", Fields={"success_action_redirect": target},
                                      Conditions=[{"success_action_redirect": target}])
    resp = post(srv, bucket, form["fields"])
    assert resp.status_code == 204, resp.text
    assert "Set-Cookie" not in resp.headers and "evil" not in resp.headers.get("Location", "")


def test_filename_variable_and_starts_with(srv, s3, bucket):
    form = s3.generate_presigned_post(bucket, "uploads/${filename}",
                                      Conditions=[["starts-with", "$key", "uploads/"]])
    resp = post(srv, bucket, form["fields"], b"pic", filename="cat.png", content_type="image/png")
    assert resp.status_code == 204, resp.text
    head = s3.head_object(Bucket=bucket, Key="uploads/cat.png")
    assert head["ContentType"] == "image/png"
    # The same policy, a key outside its prefix: refused with the condition S3 names.
    fields = dict(form["fields"], key="elsewhere/${filename}")
    resp = post(srv, bucket, fields, filename="cat.png")
    assert resp.status_code == 403
    assert error(resp) == ("AccessDenied", 'Invalid according to Policy: Policy Condition '
                           'failed: ["starts-with", "$key", "uploads/"]')


def test_metadata_content_type_and_tagging_fields(srv, s3, bucket):
    tagging = "<Tagging><TagSet><Tag><Key>team</Key><Value>blue</Value></Tag></TagSet></Tagging>"
    fields = {"x-amz-meta-owner": "ana", "Content-Type": "text/csv", "tagging": tagging,
              "Cache-Control": "max-age=60"}
    form = s3.generate_presigned_post(bucket, "m.csv", Fields=fields,
                                      Conditions=[{k: v} for k, v in fields.items()])
    resp = post(srv, bucket, form["fields"], b"a,b\n")
    assert resp.status_code == 204, resp.text
    head = s3.head_object(Bucket=bucket, Key="m.csv")
    assert head["Metadata"] == {"owner": "ana"}
    assert head["ContentType"] == "text/csv" and head["CacheControl"] == "max-age=60"
    tags = s3.get_object_tagging(Bucket=bucket, Key="m.csv")["TagSet"]
    assert tags == [{"Key": "team", "Value": "blue"}]


def test_content_length_range_is_enforced(srv, s3, bucket):
    form = s3.generate_presigned_post(bucket, "sized.bin",
                                      Conditions=[["content-length-range", 10, 1000]])
    assert post(srv, bucket, form["fields"], b"x" * 500).status_code == 204
    s3.delete_object(Bucket=bucket, Key="sized.bin")
    big = post(srv, bucket, form["fields"], b"x" * (2 * 1024 * 1024))
    assert big.status_code == 400 and error(big)[0] == "EntityTooLarge"
    small = post(srv, bucket, form["fields"], b"x" * 9)
    assert small.status_code == 400 and error(small)[0] == "EntityTooSmall"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_a_large_file_streams_through(srv, s3, bucket):
    body = os.urandom(24 * 1024 * 1024 + 7)
    form = s3.generate_presigned_post(bucket, "big.bin")
    resp = post(srv, bucket, form["fields"], body, content_type="application/octet-stream")
    assert resp.status_code == 204, resp.text
    got = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_signature_v2_policy(srv, s3, bucket):
    policy = {"expiration": expires(), "conditions": [{"bucket": bucket}, {"key": "v2.txt"}]}
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    sig = base64.b64encode(hmac.new(srv.secret_key.encode(), encoded.encode(),
                                    hashlib.sha1).digest()).decode()
    fields = {"key": "v2.txt", "AWSAccessKeyId": srv.access_key, "policy": encoded, "signature": sig}
    resp = post(srv, bucket, fields, b"v2")
    assert resp.status_code == 204, resp.text
    forged = dict(fields, signature=base64.b64encode(b"\0" * 20).decode())
    resp = post(srv, bucket, forged)
    assert resp.status_code == 403 and error(resp)[0] == "SignatureDoesNotMatch"


# ---------------------------------------------------------------- policy refusals


def test_forged_and_tampered_policies(srv, s3, bucket):
    base = {"expiration": expires(), "conditions": [{"bucket": bucket}, {"key": "f.txt"}]}
    fields = dict(v4_fields(srv, base, srv.access_key, srv.secret_key, sign_with="wrong"), key="f.txt")
    resp = post(srv, bucket, fields)
    assert resp.status_code == 403 and error(resp)[0] == "SignatureDoesNotMatch"
    good = dict(v4_fields(srv, base, srv.access_key, srv.secret_key), key="f.txt")
    widened = dict(base, conditions=[{"bucket": bucket}, ["starts-with", "$key", ""]])
    tampered = dict(good, policy=base64.b64encode(json.dumps(widened).encode()).decode())
    resp = post(srv, bucket, tampered)
    assert resp.status_code == 403 and error(resp)[0] == "SignatureDoesNotMatch"
    unknown = dict(v4_fields(srv, base, "AKIDONOTEXIST0000000", "x"), key="f.txt")
    resp = post(srv, bucket, unknown)
    assert resp.status_code == 403 and error(resp)[0] == "InvalidAccessKeyId"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_expired_policy(srv, s3, signer, bucket):
    form = signer.generate_presigned_post(bucket, "late.txt", ExpiresIn=-5)
    resp = post(srv, bucket, form["fields"])
    assert resp.status_code == 403
    assert error(resp) == ("AccessDenied", "Invalid according to Policy: Policy expired.")


def test_a_field_the_policy_does_not_name_is_refused(srv, s3, signer, bucket):
    form = signer.generate_presigned_post(bucket, "x.txt")
    for name, value in [("x-amz-meta-added", "1"), ("acl", "public-read"),
                        ("x-vallum-classification", "UNCLASSIFIED"), ("Content-Type", "text/html")]:
        resp = post(srv, bucket, dict(form["fields"], **{name: value}))
        assert resp.status_code == 403, name
        assert error(resp) == ("AccessDenied", "Invalid according to Policy: Extra input fields: "
                               + name.lower())
    # x-ignore-* fields are S3's escape hatch: not checked, not stored.
    resp = post(srv, bucket, dict(form["fields"], **{"x-ignore-note": "hi"}))
    assert resp.status_code == 204
    assert s3.head_object(Bucket=bucket, Key="x.txt")["Metadata"] == {}


def test_a_policy_for_another_bucket_is_refused(srv, s3, bucket):
    form = s3.generate_presigned_post("some-other-bucket", "k.txt")
    resp = post(srv, bucket, form["fields"])
    assert resp.status_code == 403
    assert error(resp)[1].startswith("Invalid according to Policy: Policy Condition failed: "
                                     '{"bucket":"some-other-bucket"}')


@pytest.mark.parametrize("policy,message", [
    ("bm90IGpzb24=", "Invalid Policy: Invalid JSON."),
    (base64.b64encode(b'{"conditions": []}').decode(), "Invalid Policy: Policy missing expiration."),
    (base64.b64encode(b'{"expiration": "2099-01-01T00:00:00Z"}').decode(),
     "Invalid Policy: Policy missing conditions."),
    (base64.b64encode(b'{"expiration": "tomorrow", "conditions": []}').decode(),
     "Invalid Policy: Invalid 'expiration' value: 'tomorrow'"),
])
def test_invalid_policy_documents(srv, bucket, policy, message):
    day = datetime.datetime.now(datetime.timezone.utc)
    cred = f"{srv.access_key}/{day:%Y%m%d}/{srv.region}/s3/aws4_request"
    k = ("AWS4" + srv.secret_key).encode()
    for part in (f"{day:%Y%m%d}", srv.region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    fields = {"key": "p.txt", "policy": policy, "x-amz-algorithm": "AWS4-HMAC-SHA256",
              "x-amz-credential": cred, "x-amz-date": f"{day:%Y%m%dT%H%M%SZ}",
              "x-amz-signature": hmac.new(k, policy.encode(), hashlib.sha256).hexdigest()}
    resp = post(srv, bucket, fields)
    assert resp.status_code == 400
    assert error(resp) == ("InvalidPolicyDocument", message)


# ---------------------------------------------------------------- identity, MAC, spill


def test_the_signers_permissions_are_checked(srv, bucket, s3):
    root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
    t = Tenant(srv, root)
    reader = t.user("reader", {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                               "Resource": "*"})
    writer = t.user("writer", {"Effect": "Allow", "Action": "s3:PutObject",
                               "Resource": "arn:aws:s3:::*/in/*"})
    own = "own-" + uuid.uuid4().hex[:10]
    t.s3.create_bucket(Bucket=own)
    cond = {"expiration": expires(), "conditions": [{"bucket": own}, ["starts-with", "$key", ""]]}
    resp = post(srv, own, dict(v4_fields(srv, cond, *reader), key="in/a.txt"))
    assert resp.status_code == 403 and error(resp) == ("AccessDenied", "Access Denied")
    resp = post(srv, own, dict(v4_fields(srv, cond, *writer), key="out/a.txt"))
    assert resp.status_code == 403
    resp = post(srv, own, dict(v4_fields(srv, cond, *writer), key="in/a.txt"))
    assert resp.status_code == 204, resp.text
    assert t.s3.get_object(Bucket=own, Key="in/a.txt")["Body"].read() == b"hello form"
    # Tenant B's admin signs a policy for tenant A's (the root's) bucket: refused.
    cond_a = {"expiration": expires(), "conditions": [{"bucket": bucket}, {"key": "b.txt"}]}
    resp = post(srv, bucket, dict(v4_fields(srv, cond_a, *t.admin_key), key="b.txt"))
    assert resp.status_code in (403, 404) and error(resp)[0] in ("AccessDenied", "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="b.txt")
    assert code(exc) == "404"


def test_anonymous_form_needs_a_bucket_policy(srv, s3, bucket):
    resp = post(srv, bucket, {"key": "anon.txt"})
    assert resp.status_code == 403 and error(resp)[0] == "AccessDenied"
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/drop/*"}]}))
    assert post(srv, bucket, {"key": "drop/anon.txt"}).status_code == 204
    assert post(srv, bucket, {"key": "other/anon.txt"}).status_code == 403


def test_labels_and_clearance(srv):
    """The label comes from the form (x-amz-meta-vallum-label), the session level from its
    x-vallum-session-level field; MAC judges both against the signer as for PutObject: no
    session above the clearance, no write down, writing up allowed (and then unreadable)."""
    w = Cleared(srv)
    w.user("sec", S, ALLOW_S3)
    b = w.bucket(U, TS)
    at_secret, at_unclassified = w.key("sec"), w.key("sec", U)

    def form(key, name: str, **extra: str) -> requests.Response:
        cond = {"expiration": expires(), "conditions": [
            {"bucket": b}, {"key": name}, *({k: v} for k, v in extra.items())]}
        return post(srv, b, dict(v4_fields(srv, cond, *key), key=name, **extra))

    label = "x-amz-meta-vallum-label"
    assert form(at_secret, "s.txt", **{label: S}).status_code == 204
    assert w.s3(at_secret).head_object(Bucket=b, Key="s.txt")["Metadata"][label[11:]] == S
    assert form(at_unclassified, "u.txt", **{label: U}).status_code == 204
    down = form(at_secret, "down.txt", **{label: U})
    assert down.status_code == 403 and "no write down" in error(down)[1]
    up = form(at_secret, "up.txt", **{label: TS})
    assert up.status_code == 204                                      # *-property: write up
    with pytest.raises(ClientError) as exc:
        w.s3(at_secret).head_object(Bucket=b, Key="up.txt")
    assert code(exc) == "404"
    # The label as the reserved tag in a tagging field: TOP SECRET, so SECRET cannot see it.
    tagged = form(at_secret, "tag.txt", tagging="<Tagging><TagSet><Tag><Key>vallum:label</Key>"
                  f"<Value>{TS}</Value></Tag></TagSet></Tagging>")
    assert tagged.status_code == 204, tagged.text
    with pytest.raises(ClientError) as exc:
        w.s3(at_secret).head_object(Bucket=b, Key="tag.txt")
    assert code(exc) == "404"
    high = form(at_secret, "high.txt", **{"x-vallum-session-level": TS})
    assert high.status_code == 403 and error(high)[0] == "AccessDenied"
    # A key bound to UNCLASSIFIED cannot lift its session level through a form field.
    lifted = form(at_unclassified, "lift.txt", **{"x-vallum-session-level": S, label: S})
    assert lifted.status_code == 403 and error(lifted)[0] == "AccessDenied"
    with pytest.raises(ClientError):
        w.s3(at_secret).head_object(Bucket=b, Key="lift.txt")


def test_spill_in_the_file_is_refused(srv, s3, bucket):
    form = s3.generate_presigned_post(bucket, "memo.txt")
    memo = b"TOP SECRET//SI//NOFORN\nThe plan.\nTOP SECRET//SI//NOFORN\n"
    resp = post(srv, bucket, form["fields"], memo)
    assert resp.status_code == 403 and error(resp)[0] == "SpillDetected"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


# ---------------------------------------------------------------- malformed forms


def raw_post(srv, bucket: str, body: bytes, boundary: str = "XyZ") -> requests.Response:
    return requests.post(f"{srv.endpoint}/{bucket}", data=body, timeout=30,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def form_body(parts: list[tuple[str, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, value in parts:
        disp = f'form-data; name="{name}"' + ('; filename="f.bin"' if name == "file" else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_malformed_forms(srv, s3, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    # Boundary look-alikes inside the file are content; only CRLF "--" boundary delimits.
    content = b"a--XyZ--\r\n--Xy\r\nZ--\r\n-XyZ\r\n"
    ok = form_body([("key", b"raw.bin"), ("file", content)])
    resp = raw_post(srv, bucket, ok)
    assert resp.status_code == 204, resp.text
    assert s3.get_object(Bucket=bucket, Key="raw.bin")["Body"].read() == content
    # A part smuggled inside the file after a real delimiter comes after the file: ignored.
    smuggled = form_body([("key", b"smuggle.bin"), ("file", b"x\r\n--XyZ\r\nContent-Disposition: "
                                                           b'form-data; name="key"\r\n\r\nother')])
    assert raw_post(srv, bucket, smuggled).status_code == 204
    assert s3.get_object(Bucket=bucket, Key="smuggle.bin")["Body"].read() == b"x"
    resp = requests.post(f"{srv.endpoint}/{bucket}", data={"key": "k"}, timeout=30)
    assert resp.status_code == 412 and error(resp)[0] == "PreconditionFailed"
    for bad in [ok[:-9],                                   # no closing delimiter
                ok.replace(b"Content-Disposition", b"Content-Dispositio"),
                b"garbage" * 400,
                form_body([("key", b"k"), ("file", b"a\r\n--XyZ-not-a-delimiter")]),
                ok.replace(b'name="key"', b'name="key')]:
        resp = raw_post(srv, bucket, bad)
        assert resp.status_code == 400 and error(resp)[0] == "MalformedPOSTRequest", bad[:80]
    dup = form_body([("key", b"a"), ("KEY", b"b"), ("file", b"x")])
    resp = raw_post(srv, bucket, dup)
    assert resp.status_code == 400 and error(resp)[0] == "InvalidArgument"
    nofile = form_body([("key", b"a")])
    resp = raw_post(srv, bucket, nofile)
    assert resp.status_code == 400 and error(resp)[0] == "InvalidArgument"
    late_key = form_body([("file", b"x"), ("key", b"a")])
    resp = raw_post(srv, bucket, late_key)
    assert resp.status_code == 400 and "field named 'key'" in error(resp)[1]
    trailing = form_body([("key", b"t"), ("file", b"x"), ("after", b"a" * 70000)])
    resp = raw_post(srv, bucket, trailing)
    assert resp.status_code == 400 and error(resp)[0] == "MaxMessageLengthExceeded"
    ignored = form_body([("key", b"ignored.bin"), ("file", b"x"), ("x-amz-meta-late", b"1")])
    assert raw_post(srv, bucket, ignored).status_code == 204
    assert s3.head_object(Bucket=bucket, Key="ignored.bin")["Metadata"] == {}
    huge = form_body([("x-ignore-pad", b"p" * 30000), ("key", b"h"), ("file", b"x")])
    resp = raw_post(srv, bucket, huge)
    assert resp.status_code == 400 and error(resp)[0] == "MaxPostPreDataLengthExceededError"
    injected = form_body([("key", b"inj"), ("x-amz-meta-a", b"1\r\nSet-Cookie: x=y"), ("file", b"x")])
    resp = raw_post(srv, bucket, injected)
    assert resp.status_code == 400 and error(resp)[0] == "InvalidArgument"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["ignored.bin", "raw.bin", "smuggle.bin"]


# ---------------------------------------------------------------- quota, audit, strict modes


def test_quota_applies_to_form_uploads(srv):
    root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
    t = Tenant(srv, root)
    name = "quota-" + uuid.uuid4().hex[:10]
    t.s3.create_bucket(Bucket=name)
    t.admin.call("SetBucketQuota", bucket=name, max_bytes=100 * 1024)
    cond = {"expiration": expires(), "conditions": [{"bucket": name}, ["starts-with", "$key", ""]]}
    assert post(srv, name, dict(v4_fields(srv, cond, *t.admin_key), key="a"),
                os.urandom(60 * 1024)).status_code == 204
    resp = post(srv, name, dict(v4_fields(srv, cond, *t.admin_key), key="b"), os.urandom(50 * 1024))
    assert resp.status_code == 403 and error(resp)[0] == "QuotaExceeded"
    keys = [o["Key"] for o in t.s3.list_objects_v2(Bucket=name).get("Contents", [])]
    assert keys == ["a"]


def test_the_audit_record_names_the_signer(srv, s3, signer, bucket):
    form = signer.generate_presigned_post(bucket, "audited.txt")
    ok = post(srv, bucket, form["fields"])
    assert ok.status_code == 204
    name = "x-amz-signature" if "x-amz-signature" in form["fields"] else "signature"
    forged = post(srv, bucket, dict(form["fields"], **{name: form["fields"][name][:-4] + "AAA="}))
    assert forged.status_code == 403
    log = srv.data_dir / "audit" / "audit.log"
    recs = {r["request_id"]: r for r in (json.loads(x) for x in
                                         log.read_bytes().rstrip(b"\0").splitlines())
            if r.get("request_id")}
    good = recs[ok.headers["x-amz-request-id"]]
    assert (good["principal"], good["operation"], good["action"], good["target"], good["decision"]) \
        == (srv.access_key, "PostObject", "s3:PutObject", f"arn:aws:s3:::{bucket}/audited.txt", "allow")
    bad = recs[forged.headers["x-amz-request-id"]]
    assert bad["principal"] == srv.access_key and bad["decision"] == "deny"
    assert bad["error"] == "SignatureDoesNotMatch"


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("post-strict") / "data", "--fips",
                          "--require-signed-payload")
    server.client().create_bucket(Bucket="strict")
    yield server
    stop_server(server)


def test_fips_refuses_v2_policies_and_strict_mode_refuses_forms(strict):
    policy = base64.b64encode(json.dumps({"expiration": expires(), "conditions": [
        {"bucket": "strict"}, {"key": "k"}]}).encode()).decode()
    sig = base64.b64encode(hmac.new(strict.secret_key.encode(), policy.encode(),
                                    hashlib.sha1).digest()).decode()
    v2 = post(strict, "strict", {"key": "k", "AWSAccessKeyId": strict.access_key,
                                 "policy": policy, "signature": sig})
    assert v2.status_code == 400 and error(v2)[0] == "InvalidRequest"
    form = strict.client(signature_version="s3v4").generate_presigned_post("strict", "k")
    v4 = post(strict, "strict", form["fields"])
    assert v4.status_code == 403 and error(v4)[0] == "AccessDenied"
    assert "Contents" not in strict.client().list_objects_v2(Bucket="strict")


def test_a_header_signed_form_is_verified_before_it_is_stored(srv, s3, bucket):
    """A POST signed in its Authorization header (no policy: the header's signer posts) with
    a signed payload: a body that is not the one signed is refused, and nothing is stored,
    because the whole body is read and its hash checked before the file is committed."""
    signed_body = form_body([("key", b"hdr.bin"), ("file", b"the signed bytes")])
    sent_body = form_body([("key", b"hdr.bin"), ("file", b"other bytes!!!!!")])
    assert len(signed_body) == len(sent_body)
    for body, status in ((sent_body, 400), (signed_body, 204)):
        req = AWSRequest(method="POST", url=f"{srv.endpoint}/{bucket}", data=signed_body,
                         headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
        S3SigV4Auth(Credentials(srv.access_key, srv.secret_key), "s3", srv.region).add_auth(req)
        parts = urlsplit(srv.endpoint)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("POST", f"/{bucket}", body=body, headers=dict(req.headers.items()))
            resp = conn.getresponse()
            text = resp.read()
        finally:
            conn.close()
        assert resp.status == status, text
        if status == 400:
            assert b"<Code>XAmzContentSHA256Mismatch</Code>" in text
            with pytest.raises(ClientError):
                s3.head_object(Bucket=bucket, Key="hdr.bin")
    assert s3.get_object(Bucket=bucket, Key="hdr.bin")["Body"].read() == b"the signed bytes"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(min_value=0, max_value=400), st.binary(min_size=0, max_size=6),
       st.sampled_from(["XyZ", "a", "x" * 70, "----WebKitFormBoundaryAbC"]))
def test_mutated_forms_never_fail_the_server(srv, s3, fuzz_bucket, at, patch, boundary):
    """A valid form with bytes replaced anywhere: an S3 answer (stored or refused), never a
    500 and never a hung connection."""
    body = bytearray(form_body([("key", b"fuzz/${filename}"), ("x-amz-meta-a", b"1"),
                                ("file", b"payload " * 20)], boundary))
    at %= len(body)
    body[at:at + len(patch)] = patch
    resp = raw_post(srv, fuzz_bucket, bytes(body), boundary)
    assert resp.status_code in (204, 400, 403, 412), resp.text
    if resp.status_code != 204:
        assert error(resp)[0], resp.text


@pytest.fixture(scope="module")
def fuzz_bucket(srv):
    s3 = srv.client()
    name = "fuzz-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{name}/*"}]}))
    return name


def test_empty_file_and_unicode_names(srv, s3, fuzz_bucket):
    assert raw_post(srv, fuzz_bucket, form_body([("key", b"empty.bin"), ("file", b"")])).status_code == 204
    assert s3.head_object(Bucket=fuzz_bucket, Key="empty.bin")["ContentLength"] == 0
    resp = requests.post(f"{srv.endpoint}/{fuzz_bucket}", data={"key": "résumés/${filename}"},
                         files={"file": ("naïve café.txt", b"cv", "text/plain")}, timeout=30)
    assert resp.status_code == 204, resp.text
    got = s3.get_object(Bucket=fuzz_bucket, Key="résumés/naïve café.txt")
    assert got["Body"].read() == b"cv"
