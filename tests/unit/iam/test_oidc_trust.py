"""Web identity in the policy language: ``HOST/PATH:claim`` condition keys parse (a
misspelt ``aws:`` key still does not), and a ``Federated`` principal names exactly its
provider's web identities, never an IAM caller (nor an ``AWS`` principal a web identity)."""

from __future__ import annotations

import pytest

from vallum import authz
from vallum.iam.oidc import WebIdentity
from vallum.iam.policy import MalformedPolicy, parse
from vallum.iam.principal import Principal

A = "111122223333"
IDP = f"arn:aws:iam::{A}:oidc-provider/idp.example.mil/realms/ops"
ROLE = f"arn:aws:iam::{A}:role/web"


def _trust(principal: dict, condition: dict | None = None):
    st = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRoleWithWebIdentity"}
    if condition:
        st["Condition"] = condition
    return parse({"Version": "2012-10-17", "Statement": [st]}, kind="trust")


@pytest.mark.parametrize("key", ["idp.example.mil/realms/ops:sub", "accounts.google.com:aud",
                                 "idp.example.mil:8443/x:amr", "idp.example.mil/r:unit_code"])
def test_oidc_keys_parse(key):
    _trust({"Federated": IDP}, {"StringEquals": {key: "v"}})


@pytest.mark.parametrize("key", ["aws:sub", "aws:principaltagx", "idp:sub", "sub",
                                 "idp.example.mil/realms/ops"])
def test_other_unknown_keys_still_refused(key):
    with pytest.raises(MalformedPolicy):
        _trust({"Federated": IDP}, {"StringEquals": {key: "v"}})


def _decide(who: Principal, trust, keys=None) -> bool:
    ctx = authz.Context(keys=keys or {}, resource_owner=A, trust_policy=trust)
    return authz.decide(who, "sts:AssumeRoleWithWebIdentity", ROLE, ctx).allowed


WEB = WebIdentity("", A, False, arn=IDP, user_id="alice")
USER = Principal("AKIA1", A, False, user="alice", arn=f"arn:aws:iam::{A}:user/alice")


def test_federated_names_its_web_identities_only():
    trust = _trust({"Federated": IDP})
    assert _decide(WEB, trust)
    assert not _decide(USER, trust)
    other = WebIdentity("", A, False, arn=IDP.replace("ops", "dev"), user_id="alice")
    assert not _decide(other, trust)


def test_aws_principals_never_name_a_web_identity():
    assert not _decide(WEB, _trust({"AWS": f"arn:aws:iam::{A}:root"}))
    with pytest.raises(MalformedPolicy):         # nor can one be written with its ARN
        _trust({"AWS": IDP})


def test_claim_conditions_decide():
    trust = _trust({"Federated": IDP}, {"StringEquals": {"idp.example.mil/realms/ops:sub": "alice"}})
    assert _decide(WEB, trust, {"idp.example.mil/realms/ops:sub": "alice"})
    assert not _decide(WEB, trust, {"idp.example.mil/realms/ops:sub": "mallory"})
    assert not _decide(WEB, trust)           # the claim missing: the condition fails
