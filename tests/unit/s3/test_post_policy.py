"""POST policies (s3/post_policy.py) and form signatures (s3/post_signature.py): S3's
conditions and messages, and that nothing but an S3Error escapes a hostile policy."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vallum.s3 import errors, post_policy, post_signature, sigv2

NOW = 1_800_000_000.0          # 2027-01-15
LATER = "2027-06-01T00:00:00.000Z"


def b64(doc) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def check(conditions, form, bucket="b", expiration=LATER):
    post_policy.check(post_policy.parse(b64({"expiration": expiration, "conditions": conditions})),
                      form, bucket, NOW)


def denied(conditions, form, bucket="b", expiration=LATER) -> str:
    with pytest.raises(errors.AccessDenied) as exc:
        check(conditions, form, bucket, expiration)
    return exc.value.message


def test_conditions_hold():
    check([{"bucket": "b"}, ["starts-with", "$key", "in/"], {"acl": "private"},
           ["eq", "$x-amz-meta-a", "1"], ["starts-with", "$Content-Type", "image/"],
           ["content-length-range", 1, 10]],
          {"key": "in/x", "acl": "private", "x-amz-meta-a": "1",
           "content-type": "image/png, image/gif", "policy": "p", "x-ignore-y": "z"})


def test_refusals_name_what_failed():
    assert denied([], {}, expiration="2020-01-01T00:00:00Z") == \
        "Invalid according to Policy: Policy expired."
    assert denied([["starts-with", "$key", "in/"]], {"key": "out"}) == \
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "in/"]'
    assert denied([{"bucket": "b"}], {}, bucket="c") == \
        'Invalid according to Policy: Policy Condition failed: {"bucket":"b"}'
    assert denied([{"key": "k"}], {"key": "k", "x-amz-meta-a": "1", "acl": "x"}) == \
        "Invalid according to Policy: Extra input fields: acl, x-amz-meta-a"
    # A condition on a field the form lacks tests "" (starts-with "" always holds).
    check([["starts-with", "$success_action_status", ""]], {})
    assert "Condition failed" in denied([{"success_action_status": "201"}], {})
    assert "Condition failed" in denied([["starts-with", "$content-type", "image/"]],
                                        {"content-type": "image/png,text/html"})


def test_content_length_range_is_the_narrowest_given():
    p = post_policy.parse(b64({"expiration": LATER, "conditions": [
        ["content-length-range", 0, 100], ["content-length-range", "5", "50"]]}))
    assert p.length_range == (5, 50)


@pytest.mark.parametrize("doc,message", [
    ("%%%", "Invalid Policy: Invalid JSON."),
    (b64([1]), "Invalid Policy: Invalid JSON."),
    (b64({"conditions": []}), "Invalid Policy: Policy missing expiration."),
    (b64({"expiration": LATER}), "Invalid Policy: Policy missing conditions."),
    (b64({"expiration": "2027-13-01T00:00:00Z", "conditions": []}),
     "Invalid Policy: Invalid 'expiration' value: '2027-13-01T00:00:00Z'"),
    (b64({"expiration": LATER, "conditions": [["content-length-range", 5, 1]]}),
     "Invalid Policy: Invalid content-length-range condition."),
    (b64({"expiration": LATER, "conditions": [["matches", "$key", ".*"]]}),
     "Invalid Policy: Invalid Condition: unknown operation 'matches'."),
    (b64({"expiration": LATER, "conditions": [{"a": "1", "b": "2"}]}),
     "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one "
     "property specified."),
])
def test_invalid_documents(doc, message):
    with pytest.raises(errors.InvalidPolicyDocument) as exc:
        post_policy.parse(doc)
    assert exc.value.message == message


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(json_values, st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4))
def test_hostile_documents_only_raise_s3_errors(conditions, form):
    doc = b64({"expiration": LATER, "conditions": conditions})
    try:
        post_policy.check(post_policy.parse(doc), form, "b", NOW)
    except errors.S3Error:
        pass


def test_signature_v2_and_v4_claims():
    policy = b64({"expiration": LATER, "conditions": []})
    v2 = post_signature.claim({"awsaccesskeyid": "AK", "signature": sigv2.sign("s", policy),
                               "policy": policy}, "us-east-1")
    assert v2 is not None and v2.version == "v2"
    post_signature.verify(v2, "s", policy)
    with pytest.raises(errors.SignatureDoesNotMatch):
        post_signature.verify(v2, "other", policy)
    with pytest.raises(errors.InvalidArgument, match="'x-amz-signature'"):
        post_signature.claim({"policy": policy}, "us-east-1")
    v4 = {"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": "AK/20270115/eu-west-1/s3/aws4_request",
          "x-amz-date": "20270115T000000Z", "x-amz-signature": "00", "policy": policy}
    with pytest.raises(errors.InvalidArgument, match="region 'eu-west-1' is wrong"):
        post_signature.claim(v4, "us-east-1")
    with pytest.raises(errors.InvalidArgument, match="x-amz-date"):
        post_signature.claim(dict(v4, **{"x-amz-date": "20270116T000000Z"}), "eu-west-1")
    assert post_signature.claim({"key": "k"}, "us-east-1") is None
