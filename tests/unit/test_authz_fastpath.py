"""The gateway hot-path caches give the same answers as the slow path they replace.

authz.narrowed (the statement index) must never change a verdict, its reason or the
deciding statement; the small per-process memos in gate.py, state.py and metrics.py
must return what recomputing would.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.iam.corpus import ALICE, DECISIONS
from vallum import authz, metrics
from vallum.iam import evaluate as ev
from vallum.iam import gate
from vallum.iam.policy import parse
from vallum.iam.principal import Principal
from vallum.iam.root import RootCredentials
from vallum.server.config import Config
from vallum.server.state import Services

ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject", "s3:Get*",
           "s3:*", "*", "s3:?etObject", "iam:CreateUser"]
RESOURCES = ["*", "arn:aws:s3:::b", "arn:aws:s3:::b/*", "arn:aws:s3:::b/k", "arn:aws:s3:::bb/*",
             "arn:aws:s3:::b?/*", "arn:aws:s3:::*/k", "arn:aws:s3:::c/*",
             "arn:aws:s3:::b/${aws:username}/*", "arn:aws:s3:::${aws:username}/*",
             "arn:aws:s3:::B/*", "arn:aws:iam::111122223333:*"]
REQUEST_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetObjectVersion",
                   "iam:CreateUser"]
REQUEST_RESOURCES = ["arn:aws:s3:::b", "arn:aws:s3:::b/k", "arn:aws:s3:::b/alice/x",
                     "arn:aws:s3:::bb/k", "arn:aws:s3:::alice/k", "arn:aws:s3:::c", "arn:aws:s3:::b/",
                     "arn:aws:iam::111122223333:*"]
CONDITIONS = [None, {"StringEquals": {"aws:username": "alice"}},
              {"StringNotEquals": {"aws:username": "alice"}}]


@st.composite
def statements(draw, resource_policy: bool = False):
    out = []
    for i in range(draw(st.integers(1, 6))):
        s = {"Sid": f"S{i}", "Effect": draw(st.sampled_from(["Allow", "Allow", "Deny"])),
             draw(st.sampled_from(["Action", "Action", "NotAction"])):
                 draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3)),
             draw(st.sampled_from(["Resource", "Resource", "NotResource"])):
                 draw(st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=3))}
        cond = draw(st.sampled_from(CONDITIONS))
        if cond:
            s["Condition"] = cond
        if resource_policy:
            s["Principal"] = draw(st.sampled_from(["*", {"AWS": ALICE},
                                                   {"AWS": "arn:aws:iam::444455556666:root"}]))
        out.append(s)
    return out


def _parse(stmts, kind="identity"):
    return parse({"Version": "2012-10-17", "Statement": stmts}, kind=kind)


def _both(req: ev.Request, identity, session, resource, owner, boundary=(), trust=False):
    """(verdict on the full policies, verdict on the narrowed ones)."""
    kwargs = {"resource_account": owner, "require_resource": trust}
    full = ev.evaluate(req, identity=identity, session=session, resource=resource,
                       boundary=boundary, **kwargs)
    fast = ev.evaluate(req, identity=authz.narrowed(identity, req.action, req.resource),
                       session=authz.narrowed(session, req.action, req.resource),
                       resource=authz.narrowed(resource, req.action, req.resource),
                       boundary=authz.narrowed(boundary, req.action, req.resource), **kwargs)
    return full, fast


@settings(max_examples=400, deadline=None)
@given(ident=statements(), sess=st.one_of(st.none(), statements()),
       bucket=st.one_of(st.none(), statements(resource_policy=True)),
       action=st.sampled_from(REQUEST_ACTIONS), resource=st.sampled_from(REQUEST_RESOURCES),
       owner=st.sampled_from([None, "111122223333", "444455556666"]),
       bound=st.one_of(st.none(), statements()))
def test_narrowing_never_changes_a_verdict(ident, sess, bucket, action, resource, owner, bound):
    identity = (("identity", _parse(ident)),)
    session = (("session", _parse(sess, "session")),) if sess else ()
    res = (("bucket", _parse(bucket, "resource")),) if bucket else ()
    boundary = (("boundary", _parse(bound)),) if bound else ()
    caller = ev.Caller(ALICE, "111122223333")
    req = ev.Request(action, resource, {"aws:username": "alice"}, caller)
    full, fast = _both(req, identity, session, res, owner, boundary)
    assert fast == full


@pytest.mark.parametrize("case", DECISIONS, ids=[c["id"] for c in DECISIONS])
def test_narrowing_agrees_on_the_decision_corpus(case):
    from tests.unit.iam.corpus import CALLERS

    caller, keys = CALLERS[case.get("caller", "alice")]
    keys = {**keys, **case.get("keys", {})}
    version = case.get("version", "2012-10-17")

    def pol(stmts, kind="identity"):
        return parse({"Version": version, "Statement": stmts}, kind=kind)

    identity = (("identity", pol(case["identity"])),) if case.get("identity") else ()
    session = (("session", pol(case["session"], "session")),) if case.get("session") else ()
    resource = ((("bucket", pol(case["resource_policy"], "resource")),)
                if case.get("resource_policy") else ())
    if case.get("trust"):
        resource = (("trust", pol(case["trust"], "trust")),)
    boundary = (("boundary", pol(case["boundary"])),) if case.get("boundary") is not None else ()
    req = ev.Request(case.get("action", "s3:GetObject"), case.get("resource", "arn:aws:s3:::b/k"),
                     keys, caller)
    full, fast = _both(req, identity, session, resource, case.get("owner"), boundary,
                       bool(case.get("trust")))
    assert fast == full
    assert fast.allowed is case["expect"]


def test_a_boundary_that_allows_nothing_here_still_caps():
    everything = _parse([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])
    other_bucket = _parse([{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::c/*"}])
    p = Principal("AKIA1", "111122223333", user="alice", arn=ALICE,
                  policies=(("p", everything),), boundary=(("b", other_bucket),))
    assert authz.narrowed(p.boundary, "s3:GetObject", "arn:aws:s3:::b/k")[0][1].statements == ()
    no = authz.decide(p, "s3:GetObject", "arn:aws:s3:::b/k")
    assert not no.allowed and "permissions boundary" in no.reason
    assert authz.decide(p, "s3:GetObject", "arn:aws:s3:::c/k").allowed


def test_a_session_policy_that_allows_nothing_here_still_caps():
    everything = _parse([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])
    other_bucket = _parse([{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::c/*"}],
                          "session")
    p = Principal("ASIA1", "111122223333", user="alice", arn=ALICE,
                  policies=(("p", everything),), session_policies=(("s", other_bucket),))
    assert authz.narrowed(p.session_policies, "s3:GetObject", "arn:aws:s3:::b/k")[0][1].statements == ()
    assert not authz.decide(p, "s3:GetObject", "arn:aws:s3:::b/k").allowed
    assert authz.decide(p, "s3:GetObject", "arn:aws:s3:::c/k").allowed


def test_narrowed_views_are_cached_per_action_and_bucket():
    stmts = [{"Sid": f"T{i}", "Effect": "Allow", "Action": ["s3:GetObject"],
              "Resource": f"arn:aws:s3:::team-{i}/*"} for i in range(49)]
    stmts.append({"Sid": "Mine", "Effect": "Allow", "Action": "s3:*",
                  "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]})
    policies = (("p", _parse(stmts)),)
    view = authz.narrowed(policies, "s3:GetObject", "arn:aws:s3:::b/k1")
    assert [s.sid for s in view[0][1].statements] == ["Mine"]
    assert authz.narrowed(policies, "s3:GetObject", "arn:aws:s3:::b/other") is view
    team = authz.narrowed(policies, "s3:GetObject", "arn:aws:s3:::team-7/k")
    assert [s.sid for s in team[0][1].statements] == ["T7"]
    # A statement's label survives narrowing (Statement[i] keeps its index).
    unnamed = (("p", _parse([{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"},
                             {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}])),)
    alice = Principal("AKIA1", "111122223333", user="alice", arn=ALICE, policies=unnamed)
    assert authz.decide(alice, "s3:GetObject", "arn:aws:s3:::b/k").statement == "Statement[1]"


def test_iso_time_is_cached_per_second_only():
    for now in (0.0, 1.5, 1.9, 2.0, time.time(), time.time() + 86400.3):
        want = datetime.fromtimestamp(int(now), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert authz._iso(now) == want


def test_object_tag_need_is_remembered_per_policy_set():
    plain = (("p", _parse([{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])),)
    tagged = (("p", _parse([{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {
        "StringEquals": {"s3:ExistingObjectTag/team": "red"}}}])),)
    a = Principal("AKIA1", "111122223333", policies=plain)
    b = Principal("AKIA2", "111122223333", policies=tagged)
    c = Principal("ASIA3", "111122223333", policies=plain, session_policies=tagged)
    for _ in range(2):              # second round answers from the memo
        assert not gate._needs_object_tags(a, None)
        assert gate._needs_object_tags(b, None)
        assert gate._needs_object_tags(c, None)
        assert gate._needs_object_tags(a, tagged[0][1])


def test_caller_view_matches_dataclasses_replace(tmp_path: Path):
    services = Services(Config(data_dir=tmp_path), meta=object(), blobs=object(),
                        root=RootCredentials("ROOTKEY", "secret"))
    services.not_a_field = "extra attribute"      # type: ignore[attr-defined]
    user = Principal("AKIA1", "111122223333", user="alice", arn=ALICE)
    view = services.for_caller(user)
    want = dataclasses.replace(services, caller=user, tenant="111122223333", meta=view.meta)
    for f in dataclasses.fields(Services):
        assert getattr(view, f.name) is getattr(want, f.name), f.name
    assert not hasattr(view, "not_a_field")       # like replace: fields only
    assert view.meta._owner == "111122223333" and services.caller is None
    assert services.for_caller(Principal("ROOTKEY", "x", True)) is services


def test_metric_children_are_reused_and_count():
    before = metrics.REQUESTS.labels("UnitTestOp", "200")._value.get()
    metrics.observe("UnitTestOp", 200, 0.001)
    metrics.observe("UnitTestOp", 200, 0.002)
    assert metrics.REQUESTS.labels("UnitTestOp", "200")._value.get() == before + 2
    assert metrics._CHILDREN[("UnitTestOp", 200)][0] is metrics.REQUESTS.labels("UnitTestOp", "200")


def test_a_bucket_policy_keeps_its_narrowed_views_across_requests():
    """decide() hands narrowed() the same labelled tuple for the same parsed bucket policy,
    so the per-(action, bucket) views are reused instead of rebuilt on every request."""
    bucket = _parse([{"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "s3:GetObject",
                      "Resource": "arn:aws:s3:::b/*"}], "resource")
    first = authz._labelled(bucket)
    assert first is authz._labelled(bucket) and first == (("bucket-policy", bucket),)
    view = authz.narrowed(first, "s3:GetObject", "arn:aws:s3:::b/k")
    assert authz.narrowed(authz._labelled(bucket), "s3:GetObject", "arn:aws:s3:::b/x") is view
    alice = Principal("AKIA1", "111122223333", user="alice", arn=ALICE)
    ctx = authz.Context(resource_owner="111122223333", bucket_policy=bucket)
    assert authz.decide(alice, "s3:GetObject", "arn:aws:s3:::b/k", ctx).allowed
    assert not authz.decide(alice, "s3:PutObject", "arn:aws:s3:::b/k", ctx).allowed
