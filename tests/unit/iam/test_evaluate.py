"""The evaluator against the corpus (tests/unit/iam/corpus.py), plus authz.decide()."""

from __future__ import annotations

import pytest

from tests.unit.iam.corpus import ALICE, CALLERS, CONDITIONS, DECISIONS
from vallum import authz
from vallum.iam import evaluate as ev
from vallum.iam.policy import parse
from vallum.iam.principal import Principal


def test_corpus_is_large_enough():
    assert len(CONDITIONS) + len(DECISIONS) >= 200
    operators = {row[0].split(":")[-1].removesuffix("IfExists") for row in CONDITIONS}
    from vallum.iam.policy import OPERATORS
    assert operators == OPERATORS
    assert {"ForAnyValue", "ForAllValues"} <= {row[0].split(":")[0] for row in CONDITIONS}


@pytest.mark.parametrize(("op", "key", "values", "have", "expect"), CONDITIONS,
                         ids=[f"{i}-{r[0]}-{r[3]!r}" for i, r in enumerate(CONDITIONS)])
def test_condition(op, key, values, have, expect):
    policy = parse({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {op: {key: values}}}]})
    keys = {"aws:username": "alice"}
    if have is not None:
        keys[key.lower()] = have
    caller = ev.Caller(ALICE, "111122223333")
    verdict = ev.evaluate(ev.Request("s3:GetObject", "arn:aws:s3:::b/k", keys, caller),
                          identity=[("p", policy)])
    assert verdict.allowed is expect, verdict.reason


def _policy(statements, version="2012-10-17", kind="identity"):
    return parse({"Version": version, "Statement": statements}, kind=kind)


@pytest.mark.parametrize("case", DECISIONS, ids=[c["id"] for c in DECISIONS])
def test_decision(case):
    caller, keys = CALLERS[case.get("caller", "alice")]
    keys = {**keys, **case.get("keys", {})}
    version = case.get("version", "2012-10-17")
    identity = [("identity", _policy(case["identity"], version))] if case.get("identity") else []
    session = [("session", _policy(case["session"], version))] if case.get("session") else []
    resource = ([("bucket", _policy(case["resource_policy"], version, "resource"))]
                if case.get("resource_policy") else [])
    if case.get("trust"):
        resource = [("trust", _policy(case["trust"], version, "trust"))]
    boundary = ([("boundary", _policy(case["boundary"], version))]
                if case.get("boundary") is not None else [])
    req = ev.Request(case.get("action", "s3:GetObject"), case.get("resource", "arn:aws:s3:::b/k"),
                     keys, caller)
    verdict = ev.evaluate(req, identity=identity, session=session, resource=resource,
                          boundary=boundary, resource_account=case.get("owner"),
                          require_resource=bool(case.get("trust")))
    assert verdict.allowed is case["expect"], verdict.reason


def test_verdict_names_the_deciding_statement():
    policy = _policy([{"Sid": "ReadAll", "Effect": "Allow", "Action": "s3:Get*", "Resource": "*"},
                      {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*",
                       "Resource": "arn:aws:s3:::b/secret/*"}])
    caller = ev.Caller(ALICE, "111122223333")
    ok = ev.evaluate(ev.Request("s3:GetObject", "arn:aws:s3:::b/x", {}, caller), identity=[("p", policy)])
    assert (ok.allowed, ok.statement) == (True, "ReadAll")
    no = ev.evaluate(ev.Request("s3:GetObject", "arn:aws:s3:::b/secret/x", {}, caller), identity=[("p", policy)])
    assert (no.allowed, no.statement) == (False, "NoSecrets") and "explicitly denied" in no.reason


def test_trust_policy_must_allow_even_in_one_account():
    trust = _policy([{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                      "Action": "sts:AssumeRole"}], kind="trust")
    allow_all = _policy([{"Effect": "Allow", "Action": "*", "Resource": "*"}])
    caller = ev.Caller(ALICE, "111122223333")
    req = ev.Request("sts:AssumeRole", "arn:aws:iam::111122223333:role/r", {}, caller)
    assert not ev.evaluate(req, identity=[("p", allow_all)], resource=[("t", trust)],
                           resource_account="111122223333", require_resource=True).allowed
    trust_me = _policy([{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"}],
                       kind="trust")
    assert ev.evaluate(req, resource=[("t", trust_me)], resource_account="111122223333",
                       require_resource=True).allowed


def test_authz_root_and_public_access_block():
    root = Principal("ROOT", "owner", True)
    assert authz.decide(root, "s3:DeleteBucket", "arn:aws:s3:::b").allowed
    public = _policy([{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::b/*"}], kind="resource")
    assert authz.is_public(public)
    ctx = authz.Context(resource_owner="111122223333", bucket_policy=public)
    assert authz.decide(authz.ANONYMOUS, "s3:GetObject", "arn:aws:s3:::b/k", ctx).allowed
    ctx.restrict_public = True
    assert not authz.decide(authz.ANONYMOUS, "s3:GetObject", "arn:aws:s3:::b/k", ctx).allowed
    restricted = _policy([{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                           "Resource": "arn:aws:s3:::b/*",
                           "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}], kind="resource")
    assert not authz.is_public(restricted)
    assert not authz.decide(authz.ANONYMOUS, "s3:GetObject", "arn:aws:s3:::b/k").allowed


def test_authz_principal_keys_feed_conditions():
    policy = _policy([{"Effect": "Allow", "Action": "s3:*", "Resource": "*",
                       "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}}}])
    red = Principal("AKIA1", "111122223333", user="alice", arn=ALICE, policies=(("p", policy),),
                    tags={"team": "red"})
    blue = Principal("AKIA2", "111122223333", user="bob", policies=(("p", policy),),
                     tags={"team": "blue"})
    assert authz.decide(red, "s3:GetObject", "arn:aws:s3:::b/k").allowed
    assert not authz.decide(blue, "s3:GetObject", "arn:aws:s3:::b/k").allowed
