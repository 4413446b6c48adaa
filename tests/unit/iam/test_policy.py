"""Policy parsing: malformed documents are refused with the position of the problem."""

from __future__ import annotations

import json

import pytest

from vallum.iam.policy import MalformedPolicy, parse

OK = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}


def doc(*statements, version="2012-10-17"):
    return {"Version": version, "Statement": list(statements)}


@pytest.mark.parametrize(("document", "kind", "position", "reason"), [
    ("{not json", "identity", "line 1 column 2", "not valid JSON"),
    ("[]", "identity", "$", "JSON object"),
    ({"Version": "2012-10-17"}, "identity", "Statement", "Missing required field Statement"),
    ({"Version": "2001-01-01", "Statement": [OK]}, "identity", "Version", "Unsupported Version"),
    ({"Version": "2012-10-17", "Statement": [OK], "Extra": 1}, "identity", "Extra", "Unknown field"),
    (doc({**OK, "Effect": "Maybe"}), "identity", "Statement[0].Effect", "Effect"),
    (doc(OK, {**OK, "Action": "s3:Gett*"}), "identity", "Statement[1].Action", "Unknown action"),
    (doc({**OK, "Action": "ec2:RunInstances"}), "identity", "Statement[0].Action", "Unknown service"),
    (doc({**OK, "Action": "s3"}), "identity", "Statement[0].Action", "service:name"),
    (doc({"Effect": "Allow", "Resource": "*"}), "identity", "Statement[0].Action", "Missing required field Action"),
    (doc({**OK, "NotAction": "s3:PutObject"}), "identity", "Statement[0].NotAction", "mutually exclusive"),
    (doc({"Effect": "Allow", "Action": "s3:*"}), "identity", "Statement[0].Resource", "Missing required field Resource"),
    (doc({**OK, "Resource": "bucket/key"}), "identity", "Statement[0].Resource", "invalid resource"),
    (doc({**OK, "Principal": "*"}), "identity", "Statement[0].Principal", "not allowed in identity"),
    (doc({**OK, "Resource": "arn:aws:s3:::b/*"}), "resource", "Statement[0].Principal", "Missing required field Principal"),
    (doc({**OK, "Principal": "*", "Resource": "arn:aws:s3:::other/*"}), "resource", "Statement[0].Resource", "does not refer to bucket"),
    (doc({**OK, "Principal": {"AWS": "alice"}, "Resource": "arn:aws:s3:::b/*"}), "resource", "Statement[0].Principal.AWS", "Invalid principal"),
    (doc({**OK, "Principal": {"Robot": "x"}, "Resource": "arn:aws:s3:::b/*"}), "resource", "Statement[0].Principal.Robot", "Unknown field"),
    (doc({**OK, "Condition": {"StringEqualz": {"s3:prefix": "a"}}}), "identity", "Statement[0].Condition.StringEqualz", "Unknown condition operator"),
    (doc({**OK, "Condition": {"ForSomeValues:StringEquals": {"s3:prefix": "a"}}}), "identity", "Statement[0].Condition.ForSomeValues:StringEquals", "qualifier"),
    (doc({**OK, "Condition": {"NullIfExists": {"s3:prefix": "true"}}}), "identity", "Statement[0].Condition.NullIfExists", "Unknown condition operator"),
    (doc({**OK, "Condition": {"StringEquals": {"s3:prefx": "a"}}}), "identity", "Statement[0].Condition.StringEquals.s3:prefx", "Unknown condition key"),
    (doc({**OK, "Condition": {"StringEquals": {"aws:PrincipalTag/": "a"}}}), "identity", "Statement[0].Condition.StringEquals.aws:PrincipalTag/", "Unknown condition key"),
    (doc({**OK, "Condition": {"NumericLessThan": {"s3:max-keys": "ten"}}}), "identity", "Statement[0].Condition.NumericLessThan.s3:max-keys", "needs a number"),
    (doc({**OK, "Condition": {"DateLessThan": {"aws:CurrentTime": "yesterday"}}}), "identity", "Statement[0].Condition.DateLessThan.aws:CurrentTime", "needs a date"),
    (doc({**OK, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.300/8"}}}), "identity", "Statement[0].Condition.IpAddress.aws:SourceIp", "IP address"),
    (doc({**OK, "Condition": {"Bool": {"aws:SecureTransport": "yes"}}}), "identity", "Statement[0].Condition.Bool.aws:SecureTransport", "true or false"),
    (doc({**OK, "Condition": {"BinaryEquals": {"s3:x-amz-content-sha256": "!!"}}}), "identity", "Statement[0].Condition.BinaryEquals.s3:x-amz-content-sha256", "base64"),
    (doc({**OK, "Condition": {"StringEquals": {}}}), "identity", "Statement[0].Condition.StringEquals", "object of keys"),
    (doc({**OK, "Condition": {"StringEquals": {"s3:prefix": []}}}), "identity", "Statement[0].Condition.StringEquals.s3:prefix", "must not be empty"),
    (doc({**OK, "Sid": "a"}, {**OK, "Sid": "a"}), "identity", "Statement[1].Sid", "unique"),
    (doc({**OK, "Sid": "has/slash"}), "identity", "Statement[0].Sid", "alphanumeric"),
    ({"Version": "2012-10-17", "Statement": []}, "identity", "Statement", "must not be empty"),
])
def test_malformed(document, kind, position, reason):
    with pytest.raises(MalformedPolicy) as exc:
        parse(document if isinstance(document, str) else json.dumps(document), kind=kind, bucket="b")
    assert exc.value.position == position
    assert reason in exc.value.reason


def test_valid_forms():
    p = parse(doc({"Sid": "One", "Effect": "Deny", "NotAction": ["s3:Delete*"], "NotResource": "arn:aws:s3:::b/*"}))
    st = p.statements[0]
    assert (st.not_action, st.not_resource, st.label) == (True, True, "One")
    single = parse({"Statement": OK})           # Statement may be one object; Version defaults
    assert single.version == "2008-10-17" and not single.variables
    bucket = parse(doc({**OK, "Principal": {"AWS": ["111122223333", "arn:aws:iam::111122223333:user/a"]},
                        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}), kind="resource", bucket="b")
    assert bucket.statements[0].principal.aws == ("arn:aws:iam::111122223333:root",
                                                  "arn:aws:iam::111122223333:user/a")
    trust = parse(doc({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                       "Action": "sts:AssumeRole"}), kind="trust")
    assert trust.statements[0].resources is None


def test_size_limit():
    big = doc(*[{**OK, "Sid": f"S{i}"} for i in range(400)])
    with pytest.raises(MalformedPolicy, match="maximum size"):
        parse(json.dumps(big))
