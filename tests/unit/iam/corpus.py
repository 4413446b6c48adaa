"""Evaluator corpus: policy / request / expected decision.

CONDITIONS rows: (operator, key, policy values, request value, expected) where the request
value None means the key is absent. Each row becomes one identity policy
``Allow * on * if <operator> {key: values}``; the expected decision is whether the
condition holds. DECISIONS rows spell out whole requests (identity, session and
resource policies, caller, resource owner) to pin AWS's evaluation order.
"""

from __future__ import annotations

from vallum.iam import evaluate as ev

ALICE = "arn:aws:iam::111122223333:user/alice"
T, F = True, False

# Callers the DECISIONS rows name.
CALLERS = {
    "alice": (ev.Caller(ALICE, "111122223333"), {"aws:username": "alice"}),
    "bob@other": (ev.Caller("arn:aws:iam::444455556666:user/bob", "444455556666"), {"aws:username": "bob"}),
    "session": (ev.Caller("arn:aws:sts::111122223333:assumed-role/reader/job", "111122223333",
                          "arn:aws:iam::111122223333:role/reader"), {}),
    "anonymous": (ev.ANONYMOUS_CALLER, {}),
}

CONDITIONS = [
    # -- String
    ("StringEquals", "s3:prefix", "home/", "home/", T),
    ("StringEquals", "s3:prefix", "home/", "Home/", F),
    ("StringEquals", "s3:prefix", "home/", None, F),
    ("StringEquals", "s3:prefix", ["a/", "home/"], "home/", T),
    ("StringEquals", "s3:prefix", ["a/", "b/"], "home/", F),
    ("StringEquals", "s3:prefix", "home/*", "home/x", F),          # no wildcards in Equals
    ("StringEqualsIfExists", "s3:prefix", "home/", None, T),
    ("StringEqualsIfExists", "s3:prefix", "home/", "work/", F),
    ("StringEqualsIfExists", "s3:prefix", "home/", "home/", T),
    ("StringNotEquals", "s3:prefix", "home/", "home/", F),
    ("StringNotEquals", "s3:prefix", "home/", "work/", T),
    ("StringNotEquals", "s3:prefix", "home/", None, T),
    ("StringNotEquals", "s3:prefix", ["a", "b"], "b", F),
    ("StringNotEquals", "s3:prefix", ["a", "b"], "c", T),
    ("StringNotEqualsIfExists", "s3:prefix", "home/", None, T),
    ("StringNotEqualsIfExists", "s3:prefix", "home/", "home/", F),
    ("StringEqualsIgnoreCase", "s3:prefix", "HOME/", "home/", T),
    ("StringEqualsIgnoreCase", "s3:prefix", "HOME/", "work/", F),
    ("StringEqualsIgnoreCase", "s3:prefix", "HOME/", None, F),
    ("StringNotEqualsIgnoreCase", "s3:prefix", "HOME/", "home/", F),
    ("StringNotEqualsIgnoreCase", "s3:prefix", "HOME/", "work/", T),
    ("StringNotEqualsIgnoreCase", "s3:prefix", "HOME/", None, T),
    ("StringLike", "s3:prefix", "home/*", "home/a/b", T),
    ("StringLike", "s3:prefix", "home/*", "home/", T),
    ("StringLike", "s3:prefix", "home/*", "work/a", F),
    ("StringLike", "s3:prefix", "h?me/", "home/", T),
    ("StringLike", "s3:prefix", "h?me/", "hoome/", F),
    ("StringLike", "s3:prefix", "*", "anything", T),
    ("StringLike", "s3:prefix", "*", None, F),
    ("StringLike", "s3:prefix", "HOME/*", "home/x", F),             # case-sensitive
    ("StringLike", "s3:prefix", ["a*", "b*"], "bee", T),
    ("StringLikeIfExists", "s3:prefix", "home/*", None, T),
    ("StringLikeIfExists", "s3:prefix", "home/*", "x", F),
    ("StringNotLike", "s3:prefix", "home/*", "home/x", F),
    ("StringNotLike", "s3:prefix", "home/*", "work/x", T),
    ("StringNotLike", "s3:prefix", "home/*", None, T),
    ("StringNotLike", "s3:prefix", ["a*", "b*"], "bee", F),
    ("StringNotLikeIfExists", "s3:prefix", "a*", None, T),
    ("StringEquals", "s3:x-amz-server-side-encryption", "AES256", "AES256", T),
    ("StringEquals", "s3:x-amz-server-side-encryption", "AES256", "aws:kms", F),
    ("StringNotEquals", "s3:x-amz-server-side-encryption", "AES256", None, T),
    ("StringEquals", "s3:delimiter", "/", "/", T),
    ("StringEquals", "s3:x-amz-acl", "private", "public-read", F),
    ("StringEquals", "aws:principaltag/team", "red", "red", T),
    ("StringEquals", "aws:principaltag/team", "red", "blue", F),
    ("StringEquals", "s3:existingobjecttag/classification", "public", "public", T),
    ("StringEquals", "s3:existingobjecttag/classification", "public", "secret", F),
    ("StringEquals", "s3:existingobjecttag/classification", "public", None, F),
    ("StringEquals", "aws:principalaccount", "111122223333", "111122223333", T),
    ("StringEquals", "aws:PrincipalAccount", "111122223333", "444455556666", F),   # key names are case-insensitive
    ("StringEquals", "aws:username", "${aws:username}", "alice", T),
    ("StringLike", "s3:prefix", "home/${aws:username}/*", "home/alice/docs", T),
    ("StringLike", "s3:prefix", "home/${aws:username}/*", "home/bob/docs", F),
    ("StringEquals", "s3:prefix", "${*}", "*", T),
    ("StringEquals", "s3:prefix", "${*}", "x", F),
    # -- Numeric
    ("NumericEquals", "s3:max-keys", "10", "10", T),
    ("NumericEquals", "s3:max-keys", 10, "10.0", T),
    ("NumericEquals", "s3:max-keys", "10", "11", F),
    ("NumericEquals", "s3:max-keys", "10", None, F),
    ("NumericEquals", "s3:max-keys", "10", "ten", F),
    ("NumericNotEquals", "s3:max-keys", "10", "10", F),
    ("NumericNotEquals", "s3:max-keys", "10", "11", T),
    ("NumericNotEquals", "s3:max-keys", "10", None, T),
    ("NumericLessThan", "s3:max-keys", "100", "50", T),
    ("NumericLessThan", "s3:max-keys", "100", "100", F),
    ("NumericLessThan", "s3:max-keys", "100", "150", F),
    ("NumericLessThan", "s3:max-keys", "100", None, F),
    ("NumericLessThanEquals", "s3:max-keys", "100", "100", T),
    ("NumericLessThanEquals", "s3:max-keys", "100", "101", F),
    ("NumericLessThanEquals", "s3:max-keys", "100", "-5", T),
    ("NumericGreaterThan", "s3:max-keys", "100", "101", T),
    ("NumericGreaterThan", "s3:max-keys", "100", "100", F),
    ("NumericGreaterThanEquals", "s3:max-keys", "100", "100", T),
    ("NumericGreaterThanEquals", "s3:max-keys", "100", "99.5", F),
    ("NumericLessThanIfExists", "s3:max-keys", "100", None, T),
    ("NumericLessThanIfExists", "s3:max-keys", "100", "500", F),
    ("NumericGreaterThanEqualsIfExists", "s3:max-keys", "1", None, T),
    ("NumericLessThan", "s3:max-keys", ["10", "100"], "50", T),
    # -- Date
    ("DateLessThan", "aws:currenttime", "2030-01-01T00:00:00Z", "2026-06-01T12:00:00Z", T),
    ("DateLessThan", "aws:currenttime", "2020-01-01T00:00:00Z", "2026-06-01T12:00:00Z", F),
    ("DateLessThan", "aws:currenttime", "2030-01-01", "2026-06-01T12:00:00Z", T),
    ("DateLessThan", "aws:currenttime", "2030-01-01T00:00:00Z", None, F),
    ("DateLessThanEquals", "aws:currenttime", "2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z", T),
    ("DateLessThanEquals", "aws:currenttime", "2026-06-01T11:59:59Z", "2026-06-01T12:00:00Z", F),
    ("DateGreaterThan", "aws:currenttime", "2020-01-01T00:00:00Z", "2026-06-01T12:00:00Z", T),
    ("DateGreaterThan", "aws:currenttime", "2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z", F),
    ("DateGreaterThanEquals", "aws:currenttime", "2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z", T),
    ("DateGreaterThanEquals", "aws:currenttime", "2027-01-01T00:00:00Z", "2026-06-01T12:00:00Z", F),
    ("DateEquals", "aws:currenttime", "2026-06-01T12:00:00Z", "2026-06-01T12:00:00+00:00", T),
    ("DateEquals", "aws:currenttime", "2026-06-01T12:00:00Z", "2026-06-01T12:00:01Z", F),
    ("DateNotEquals", "aws:currenttime", "2026-06-01T12:00:00Z", "2026-06-01T12:00:01Z", T),
    ("DateNotEquals", "aws:currenttime", "2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z", F),
    ("DateNotEquals", "aws:currenttime", "2026-06-01T12:00:00Z", None, T),
    ("DateGreaterThan", "aws:epochtime", "1700000000", "1800000000", T),
    ("DateGreaterThan", "aws:epochtime", "1900000000", "1800000000", F),
    ("DateLessThan", "aws:tokenissuetime", "2026-01-01T00:00:00Z", "2025-12-31T23:00:00Z", T),
    ("DateLessThanIfExists", "aws:tokenissuetime", "2026-01-01T00:00:00Z", None, T),
    ("DateGreaterThanIfExists", "aws:tokenissuetime", "2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z", F),
    # -- Bool
    ("Bool", "aws:securetransport", "true", "true", T),
    ("Bool", "aws:securetransport", True, "true", T),
    ("Bool", "aws:securetransport", "true", "false", F),
    ("Bool", "aws:securetransport", "false", "false", T),
    ("Bool", "aws:securetransport", "true", None, F),
    ("Bool", "aws:securetransport", "TRUE", "true", T),
    ("BoolIfExists", "aws:multifactorauthpresent", "false", None, T),
    ("BoolIfExists", "aws:multifactorauthpresent", "false", "true", F),
    # -- IP
    ("IpAddress", "aws:sourceip", "10.0.0.0/8", "10.1.2.3", T),
    ("IpAddress", "aws:sourceip", "10.0.0.0/8", "192.168.1.1", F),
    ("IpAddress", "aws:sourceip", "203.0.113.5/32", "203.0.113.5", T),
    ("IpAddress", "aws:sourceip", "203.0.113.5", "203.0.113.6", F),
    ("IpAddress", "aws:sourceip", ["10.0.0.0/8", "192.168.0.0/16"], "192.168.4.4", T),
    ("IpAddress", "aws:sourceip", "2001:db8::/32", "2001:db8::1", T),
    ("IpAddress", "aws:sourceip", "2001:db8::/32", "2001:db9::1", F),
    ("IpAddress", "aws:sourceip", "10.0.0.0/8", "2001:db8::1", F),
    ("IpAddress", "aws:sourceip", "10.0.0.0/8", None, F),
    ("IpAddress", "aws:sourceip", "10.0.0.0/8", "not-an-ip", F),
    ("NotIpAddress", "aws:sourceip", "10.0.0.0/8", "10.1.2.3", F),
    ("NotIpAddress", "aws:sourceip", "10.0.0.0/8", "192.168.1.1", T),
    ("NotIpAddress", "aws:sourceip", "10.0.0.0/8", None, T),
    ("NotIpAddress", "aws:sourceip", ["10.0.0.0/8", "127.0.0.0/8"], "127.0.0.1", F),
    ("IpAddressIfExists", "aws:sourceip", "10.0.0.0/8", None, T),
    ("NotIpAddressIfExists", "aws:sourceip", "10.0.0.0/8", "10.0.0.1", F),
    # -- ARN
    ("ArnEquals", "aws:principalarn", ALICE, ALICE, T),
    ("ArnEquals", "aws:principalarn", ALICE, "arn:aws:iam::111122223333:user/bob", F),
    ("ArnLike", "aws:principalarn", "arn:aws:iam::111122223333:user/*", ALICE, T),
    ("ArnLike", "aws:principalarn", "arn:aws:iam::444455556666:user/*", ALICE, F),
    ("ArnLike", "aws:principalarn", "arn:aws:iam::*:user/alice", ALICE, T),
    ("ArnLike", "aws:principalarn", "arn:aws:iam::111122223333:user/*", None, F),
    ("ArnNotEquals", "aws:principalarn", ALICE, ALICE, F),
    ("ArnNotEquals", "aws:principalarn", ALICE, "arn:aws:iam::111122223333:user/bob", T),
    ("ArnNotLike", "aws:principalarn", "arn:aws:iam::111122223333:*", ALICE, F),
    ("ArnNotLike", "aws:principalarn", "arn:aws:iam::444455556666:*", ALICE, T),
    ("ArnNotLike", "aws:principalarn", "arn:aws:iam::444455556666:*", None, T),
    ("ArnLikeIfExists", "aws:sourcearn", "arn:aws:s3:::logs", None, T),
    ("ArnLike", "aws:sourcearn", "arn:aws:s3:::log?", "arn:aws:s3:::logs", T),
    ("ArnEquals", "aws:principalarn", "arn:aws:iam::111122223333:user/${aws:username}", ALICE, T),
    # -- Null
    ("Null", "s3:x-amz-server-side-encryption", "true", None, T),
    ("Null", "s3:x-amz-server-side-encryption", "true", "AES256", F),
    ("Null", "s3:x-amz-server-side-encryption", "false", "AES256", T),
    ("Null", "s3:x-amz-server-side-encryption", "false", None, F),
    ("Null", "aws:tokenissuetime", True, None, T),
    ("Null", "aws:tagkeys", "true", [], T),
    # -- Binary
    ("BinaryEquals", "s3:x-amz-content-sha256", "QUJD", "QUJD", T),
    ("BinaryEquals", "s3:x-amz-content-sha256", "QUJD", "QUJE", F),
    ("BinaryEqualsIfExists", "s3:x-amz-content-sha256", "QUJD", None, T),
    # -- set operators over multi-valued keys
    ("ForAnyValue:StringEquals", "aws:tagkeys", ["b", "c"], ["a", "b"], T),
    ("ForAnyValue:StringEquals", "aws:tagkeys", ["c"], ["a", "b"], F),
    ("ForAnyValue:StringEquals", "aws:tagkeys", ["c"], None, F),
    ("ForAnyValue:StringEquals", "aws:tagkeys", ["c"], [], F),
    ("ForAnyValue:StringLike", "aws:tagkeys", ["team-*"], ["cost", "team-red"], T),
    ("ForAnyValue:StringNotEquals", "aws:tagkeys", ["a"], ["a", "b"], T),
    ("ForAnyValue:StringNotEquals", "aws:tagkeys", ["a"], ["a"], F),
    ("ForAllValues:StringEquals", "aws:tagkeys", ["a", "b", "c"], ["a", "b"], T),
    ("ForAllValues:StringEquals", "aws:tagkeys", ["a", "b"], ["a", "z"], F),
    ("ForAllValues:StringEquals", "aws:tagkeys", ["a"], None, T),
    ("ForAllValues:StringEquals", "aws:tagkeys", ["a"], [], T),
    ("ForAllValues:StringLike", "aws:tagkeys", ["team-*"], ["team-a", "team-b"], T),
    ("ForAllValues:StringLike", "aws:tagkeys", ["team-*"], ["team-a", "cost"], F),
    ("ForAllValues:StringNotEquals", "aws:tagkeys", ["secret"], ["a", "b"], T),
    ("ForAllValues:StringNotEquals", "aws:tagkeys", ["secret"], ["a", "secret"], F),
    ("ForAnyValue:StringEqualsIgnoreCase", "s3:requestobjecttagkeys", ["TEAM"], ["team"], T),
    ("ForAllValues:StringEqualsIfExists", "aws:tagkeys", ["a"], None, T),
    ("ForAnyValue:StringEqualsIfExists", "aws:tagkeys", ["a"], None, T),
    ("ForAnyValue:NumericLessThan", "aws:tagkeys", ["5"], ["1", "9"], T),
    ("ForAllValues:NumericLessThan", "aws:tagkeys", ["5"], ["1", "9"], F),
    ("ForAnyValue:IpAddress", "aws:tagkeys", ["10.0.0.0/8"], ["1.1.1.1", "10.0.0.9"], T),
    ("ForAnyValue:ArnLike", "aws:tagkeys", ["arn:aws:s3:::a*"], ["arn:aws:s3:::bb"], F),
]

S3_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}

# Whole requests. Fields: identity/session/resource: statement lists; action; resource;
# keys; caller ("alice" | "bob@other" | "anonymous" | "session"); owner: resource account
# (None: the caller's own); expect: allowed?
GET_B = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
PUT_B = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}
ROLE = "arn:aws:iam::111122223333:role/reader"
SESSION = "arn:aws:sts::111122223333:assumed-role/reader/job"


def _grant(principal, action="s3:GetObject", effect="Allow"):
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": "arn:aws:s3:::b/*"}


NOT_ALICE_DENY = {"Effect": "Deny", "NotPrincipal": {"AWS": ALICE}, "Action": "s3:*",
                  "Resource": "arn:aws:s3:::b/*"}

BOUNDARY_CASES = [
    dict(id="boundary-intersection-allows", identity=[S3_ALL], boundary=[GET_B], expect=T),
    dict(id="boundary-caps-identity", identity=[S3_ALL], boundary=[GET_B], action="s3:PutObject", expect=F),
    dict(id="boundary-grants-nothing-alone", identity=[], boundary=[S3_ALL], expect=F),
    dict(id="boundary-other-resource", identity=[S3_ALL], boundary=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::c/*"}], expect=F),
    dict(id="boundary-identity-narrower", identity=[GET_B], boundary=[S3_ALL], action="s3:PutObject", expect=F),
    dict(id="boundary-explicit-deny-wins", identity=[S3_ALL], boundary=[S3_ALL, {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"}], resource="arn:aws:s3:::b/secret/x", expect=F),
    dict(id="boundary-deny-beats-user-resource-grant", identity=[], boundary=[{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}], resource_policy=[_grant({"AWS": ALICE})], owner="111122223333", expect=F),
    dict(id="boundary-identity-deny-wins", identity=[S3_ALL, {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}], boundary=[S3_ALL], expect=F),
    dict(id="boundary-condition-holds", identity=[S3_ALL], boundary=[{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}], keys={"aws:sourceip": "10.1.2.3"}, expect=T),
    dict(id="boundary-condition-fails", identity=[S3_ALL], boundary=[{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}], keys={"aws:sourceip": "192.0.2.1"}, expect=F),
    dict(id="boundary-notaction", identity=[S3_ALL], boundary=[{"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"}], action="s3:DeleteObject", expect=F),
    dict(id="boundary-variables", identity=[S3_ALL], boundary=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/home/${aws:username}/*"}], resource="arn:aws:s3:::b/home/alice/x", expect=T),
    dict(id="boundary-variables-other-home", identity=[S3_ALL], boundary=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/home/${aws:username}/*"}], resource="arn:aws:s3:::b/home/bob/x", expect=F),
    # resource policies in the same account
    dict(id="boundary-user-arn-grant-not-limited", identity=[], boundary=[PUT_B], resource_policy=[_grant({"AWS": ALICE})], owner="111122223333", expect=T),
    dict(id="boundary-star-grant-not-limited", identity=[], boundary=[PUT_B], resource_policy=[_grant("*")], owner="111122223333", expect=T),
    dict(id="boundary-account-grant-needs-identity-within", identity=[S3_ALL], boundary=[PUT_B], resource_policy=[_grant({"AWS": "arn:aws:iam::111122223333:root"})], owner="111122223333", expect=F),
    dict(id="boundary-account-grant-with-identity", identity=[S3_ALL], boundary=[S3_ALL], resource_policy=[_grant({"AWS": "arn:aws:iam::111122223333:root"})], owner="111122223333", expect=T),
    dict(id="boundary-role-arn-grant-limited", caller="session", identity=[], boundary=[PUT_B], resource_policy=[_grant({"AWS": ROLE})], owner="111122223333", expect=F),
    dict(id="boundary-role-arn-grant-within", caller="session", identity=[], boundary=[GET_B], resource_policy=[_grant({"AWS": ROLE})], owner="111122223333", expect=T),
    dict(id="boundary-session-arn-grant-not-limited", caller="session", identity=[], boundary=[PUT_B], resource_policy=[_grant({"AWS": SESSION})], owner="111122223333", expect=T),
    dict(id="boundary-role-session-identity-capped", caller="session", identity=[S3_ALL], boundary=[GET_B], action="s3:PutObject", expect=F),
    dict(id="boundary-role-session-identity-within", caller="session", identity=[S3_ALL], boundary=[GET_B], expect=T),
    dict(id="boundary-and-session-policy-both-cap", caller="session", identity=[S3_ALL], boundary=[S3_ALL], session=[PUT_B], expect=F),
    dict(id="boundary-and-session-policy-both-allow", caller="session", identity=[S3_ALL], boundary=[GET_B], session=[S3_ALL], expect=T),
    dict(id="session-policy-limits-role-arn-grant", caller="session", identity=[], session=[PUT_B], resource_policy=[_grant({"AWS": ROLE})], owner="111122223333", expect=F),
    dict(id="session-policy-spares-session-arn-grant", caller="session", identity=[], session=[PUT_B], resource_policy=[_grant({"AWS": SESSION})], owner="111122223333", expect=T),
    # NotPrincipal + Deny denies every caller that has a boundary, whatever it names
    dict(id="boundary-notprincipal-deny-always-applies", identity=[S3_ALL], boundary=[S3_ALL], resource_policy=[NOT_ALICE_DENY], owner="111122223333", expect=F),
    dict(id="no-boundary-notprincipal-deny-spares", identity=[S3_ALL], resource_policy=[NOT_ALICE_DENY], owner="111122223333", expect=T),
    # cross-account: the boundary caps the caller's identity side
    dict(id="boundary-cross-account-within", caller="bob@other", identity=[S3_ALL], boundary=[GET_B], resource_policy=[_grant({"AWS": "arn:aws:iam::444455556666:root"})], owner="111122223333", expect=T),
    dict(id="boundary-cross-account-capped", caller="bob@other", identity=[S3_ALL], boundary=[PUT_B], resource_policy=[_grant({"AWS": "arn:aws:iam::444455556666:root"})], owner="111122223333", expect=F),
    dict(id="boundary-cross-account-user-named-still-needs-identity", caller="bob@other", identity=[S3_ALL], boundary=[PUT_B], resource_policy=[_grant({"AWS": "arn:aws:iam::444455556666:user/bob"})], owner="111122223333", expect=F),
    # trust policies (AssumeRole): the caller's boundary caps its identity side
    dict(id="boundary-trust-account-capped", identity=[{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}], boundary=[S3_ALL], trust=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}], action="sts:AssumeRole", resource=ROLE, owner="111122223333", expect=F),
    dict(id="boundary-trust-account-within", identity=[{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}], boundary=[{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}], trust=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}], action="sts:AssumeRole", resource=ROLE, owner="111122223333", expect=T),
    dict(id="boundary-trust-user-named-not-limited", identity=[], boundary=[S3_ALL], trust=[{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"}], action="sts:AssumeRole", resource=ROLE, owner="111122223333", expect=T),
]

DECISIONS = [
    # action matching
    dict(id="action-exact", identity=[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}], action="s3:GetObject", expect=T),
    dict(id="action-other", identity=[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}], action="s3:PutObject", expect=F),
    dict(id="action-case-insensitive", identity=[{"Effect": "Allow", "Action": "S3:getobject", "Resource": "*"}], action="s3:GetObject", expect=T),
    dict(id="action-wildcard", identity=[{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}], action="s3:GetObjectTagging", expect=T),
    dict(id="action-wildcard-miss", identity=[{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}], action="s3:PutObject", expect=F),
    dict(id="action-question", identity=[{"Effect": "Allow", "Action": "s3:?etObject", "Resource": "*"}], action="s3:GetObject", expect=T),
    dict(id="action-star", identity=[{"Effect": "Allow", "Action": "*", "Resource": "*"}], action="s3:DeleteBucket", expect=T),
    dict(id="action-list", identity=[{"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "*"}], action="s3:GetObject", expect=T),
    dict(id="action-other-service", identity=[{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}], action="s3:GetObject", expect=F),
    dict(id="notaction-allows-rest", identity=[{"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"}], action="s3:GetObject", expect=T),
    dict(id="notaction-excludes", identity=[{"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"}], action="s3:DeleteObject", expect=F),
    dict(id="notaction-deny", identity=[S3_ALL, {"Effect": "Deny", "NotAction": "s3:Get*", "Resource": "*"}], action="s3:PutObject", expect=F),
    dict(id="notaction-deny-spares", identity=[S3_ALL, {"Effect": "Deny", "NotAction": "s3:Get*", "Resource": "*"}], action="s3:GetObject", expect=T),
    # resource matching
    dict(id="resource-exact", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/k"}], resource="arn:aws:s3:::b/k", expect=T),
    dict(id="resource-prefix", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/home/*"}], resource="arn:aws:s3:::b/home/a/b", expect=T),
    dict(id="resource-prefix-miss", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/home/*"}], resource="arn:aws:s3:::b/work/a", expect=F),
    dict(id="resource-case-sensitive", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/Home/*"}], resource="arn:aws:s3:::b/home/a", expect=F),
    dict(id="resource-bucket-vs-object", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}], resource="arn:aws:s3:::b/k", expect=F),
    dict(id="resource-question", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/?"}], resource="arn:aws:s3:::b/k", expect=T),
    dict(id="resource-list", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"]}], resource="arn:aws:s3:::b/k", expect=T),
    dict(id="notresource", identity=[{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}], resource="arn:aws:s3:::b/k", expect=T),
    dict(id="notresource-excludes", identity=[{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}], resource="arn:aws:s3:::secret/k", expect=F),
    dict(id="variable-username", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}], resource="arn:aws:s3:::b/alice/x", expect=T),
    dict(id="variable-other-user", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}], resource="arn:aws:s3:::b/bob/x", expect=F),
    dict(id="variable-missing", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:principaltag/dept}/*"}], resource="arn:aws:s3:::b/x/y", expect=F),
    dict(id="variable-tag", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:principaltag/dept}/*"}], resource="arn:aws:s3:::b/ops/y", keys={"aws:principaltag/dept": "ops"}, expect=T),
    dict(id="variable-literal-star", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${*}"}], resource="arn:aws:s3:::b/x", expect=F),
    dict(id="variable-literal-star-hit", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${*}"}], resource="arn:aws:s3:::b/*", expect=T),
    dict(id="variable-old-version-literal", version="2008-10-17", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}], resource="arn:aws:s3:::b/alice/x", expect=F),
    dict(id="variable-old-version-literal-hit", version="2008-10-17", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}], resource="arn:aws:s3:::b/${aws:username}/x", expect=T),
    # several conditions: AND across keys and operators, OR across values
    dict(id="conditions-and-both", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:securetransport": "true"}, "IpAddress": {"aws:sourceip": "10.0.0.0/8"}}}], keys={"aws:securetransport": "true", "aws:sourceip": "10.0.0.1"}, expect=T),
    dict(id="conditions-and-one", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:securetransport": "true"}, "IpAddress": {"aws:sourceip": "10.0.0.0/8"}}}], keys={"aws:securetransport": "false", "aws:sourceip": "10.0.0.1"}, expect=F),
    dict(id="conditions-two-keys", identity=[{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}}}], keys={"s3:prefix": "a"}, expect=F),
    # deny overrides allow
    dict(id="deny-beats-allow-same-policy", identity=[S3_ALL, {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}], action="s3:DeleteObject", expect=F),
    dict(id="deny-other-action", identity=[S3_ALL, {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"}], action="s3:GetObject", expect=T),
    dict(id="deny-order-irrelevant", identity=[{"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}, S3_ALL], resource="arn:aws:s3:::b/k", expect=F),
    dict(id="deny-conditional-not-met", identity=[S3_ALL, {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:securetransport": "false"}}}], keys={"aws:securetransport": "true"}, expect=T),
    dict(id="deny-conditional-met", identity=[S3_ALL, {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:securetransport": "false"}}}], keys={"aws:securetransport": "false"}, expect=F),
    dict(id="resource-deny-beats-identity-allow", identity=[S3_ALL], resource_policy=[{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", expect=F),
    dict(id="identity-deny-beats-resource-allow", identity=[{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", expect=F),
    dict(id="session-deny-beats-allow", identity=[S3_ALL], session=[S3_ALL, {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}], caller="session", action="s3:PutObject", expect=F),
    dict(id="default-deny-empty", identity=[], expect=F),
    dict(id="default-deny-unrelated", identity=[{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::other"}], expect=F),
    # session policies cap the role
    dict(id="session-within-role", identity=[S3_ALL], session=[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}], caller="session", action="s3:GetObject", expect=T),
    dict(id="session-outside", identity=[S3_ALL], session=[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}], caller="session", action="s3:PutObject", expect=F),
    dict(id="session-beyond-role", identity=[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}], session=[S3_ALL], caller="session", action="s3:PutObject", expect=F),
    # resource policies in one account
    dict(id="same-account-resource-direct", identity=[], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    dict(id="same-account-resource-account-root", identity=[], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="same-account-resource-star", identity=[], resource_policy=[{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    dict(id="resource-other-principal", identity=[], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bob"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="resource-notprincipal-excludes", identity=[], resource_policy=[{"Effect": "Allow", "NotPrincipal": {"AWS": ALICE}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="resource-notprincipal-deny", identity=[S3_ALL], resource_policy=[{"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:user/bob"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="resource-notprincipal-deny-spares", identity=[S3_ALL], resource_policy=[{"Effect": "Deny", "NotPrincipal": {"AWS": ALICE}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    dict(id="resource-account-id-principal", identity=[S3_ALL], resource_policy=[{"Effect": "Deny", "Principal": {"AWS": "111122223333"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="resource-canonical-user", identity=[S3_ALL], resource_policy=[{"Effect": "Deny", "Principal": {"CanonicalUser": "111122223333"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="resource-service-principal-never-matches", identity=[], resource_policy=[{"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="session-named-by-role-arn", identity=[], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/reader"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], caller="session", resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    dict(id="session-named-by-session-arn", identity=[], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:sts::111122223333:assumed-role/reader/job"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], caller="session", resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    # cross-account: both sides
    dict(id="cross-both", caller="bob@other", identity=[S3_ALL], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    dict(id="cross-identity-only", caller="bob@other", identity=[S3_ALL], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="cross-resource-only", caller="bob@other", identity=[], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:user/bob"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="cross-resource-star-still-needs-identity", caller="bob@other", identity=[], resource_policy=[{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="cross-wrong-account", caller="bob@other", identity=[S3_ALL], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::777788889999:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="cross-action-not-granted", caller="bob@other", identity=[S3_ALL], resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], action="s3:PutObject", resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="cross-condition-on-principal-account", caller="bob@other", identity=[S3_ALL], resource_policy=[{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {"StringEquals": {"aws:principalaccount": "444455556666"}}}], resource="arn:aws:s3:::b/k", owner="111122223333", keys={"aws:principalaccount": "444455556666"}, expect=T),
    # anonymous
    dict(id="anonymous-public", caller="anonymous", resource_policy=[{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    dict(id="anonymous-aws-star", caller="anonymous", resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=T),
    dict(id="anonymous-account-grant", caller="anonymous", resource_policy=[{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}], resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="anonymous-no-policy", caller="anonymous", resource="arn:aws:s3:::b/k", owner="111122223333", expect=F),
    dict(id="anonymous-ip-condition", caller="anonymous", resource_policy=[{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {"IpAddress": {"aws:sourceip": "10.0.0.0/8"}}}], resource="arn:aws:s3:::b/k", owner="111122223333", keys={"aws:sourceip": "192.0.2.1"}, expect=F),
    dict(id="anonymous-deny-wins", caller="anonymous", resource_policy=[{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/private/*"}], resource="arn:aws:s3:::b/private/k", owner="111122223333", expect=F),
    # permissions boundaries (AWS "Permissions boundaries for IAM entities"): the effective
    # permissions are identity ∩ boundary; an explicit Deny in either wins; a resource policy
    # naming the user ARN or the session ARN is not limited, one naming the role ARN is.
    *BOUNDARY_CASES,
]
