"""authz.context_for (the one context builder) and the rule authz.decide names when
PublicAccessBlock set a public bucket policy aside."""

from __future__ import annotations

import json

from vallum import authz
from vallum.iam.policy import parse
from vallum.iam.principal import Principal
from vallum.meta.records import BucketRecord

OWNER, OTHER = "111122223333", "444455556666"
PUBLIC = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "Public", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::b/*"}]})
RESTRICT = ("<PublicAccessBlockConfiguration><RestrictPublicBuckets>true"
            "</RestrictPublicBuckets></PublicAccessBlockConfiguration>")
ARN = "arn:aws:s3:::b/k"


def bucket(**config: str) -> BucketRecord:
    return BucketRecord("b", 0.0, owner=OWNER, config=config)


def outsider(*statements: dict) -> Principal:
    doc = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    return Principal("AKIAOUT", OTHER, user="out", arn=f"arn:aws:iam::{OTHER}:user/out",
                     policies=(("inline", parse(doc)),) if statements else ())


def test_context_carries_the_buckets_owner_policy_block_and_the_objects_tags():
    ctx = authz.context_for({"aws:sourceip": "10.0.0.1"}, bucket(policy=PUBLIC,
                                                                 publicAccessBlock=RESTRICT),
                            object_tags={"Team": "red"})
    assert ctx.resource_owner == OWNER and ctx.restrict_public
    assert ctx.bucket_policy is not None and ctx.bucket_policy.statements[0].sid == "Public"
    assert ctx.keys == {"aws:sourceip": "10.0.0.1", "aws:resourceaccount": OWNER,
                        "s3:resourceaccount": OWNER, "s3:existingobjecttag/team": "red"}
    assert authz.context_for({"k": "v"}) == authz.Context(keys={"k": "v"})


def test_a_request_cannot_name_the_resource_account():
    ctx = authz.context_for({"aws:resourceaccount": OTHER}, bucket())
    assert ctx.keys["aws:resourceaccount"] == OWNER


def test_the_block_is_named_as_the_deciding_rule():
    reader = outsider({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    assert authz.decide(reader, "s3:GetObject", ARN,
                        authz.context_for({}, bucket(policy=PUBLIC))).allowed
    d = authz.decide(reader, "s3:GetObject", ARN,
                     authz.context_for({}, bucket(policy=PUBLIC, publicAccessBlock=RESTRICT)))
    assert (d.allowed, d.policy, d.statement) == (False, "public-access-block",
                                                  "RestrictPublicBuckets")


def test_an_explicit_deny_still_names_itself_under_the_block():
    reader = outsider({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                      {"Sid": "No", "Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"})
    d = authz.decide(reader, "s3:GetObject", ARN,
                     authz.context_for({}, bucket(policy=PUBLIC, publicAccessBlock=RESTRICT)))
    assert not d.allowed and d.statement == "No"


def test_the_owners_own_callers_are_not_blocked():
    me = Principal("AKIAME", OWNER, user="me", arn=f"arn:aws:iam::{OWNER}:user/me")
    d = authz.decide(me, "s3:GetObject", ARN,
                     authz.context_for({}, bucket(policy=PUBLIC, publicAccessBlock=RESTRICT)))
    assert d.allowed and d.policy == "bucket-policy"
