"""The pure IAM evaluator: policies + one request -> allow or deny, and why.

AWS's order, exactly: an explicit Deny in any applicable policy (identity, session,
permissions boundary, resource) wins; otherwise the request is allowed by an Allow in an
identity policy, capped by the session policy and the permissions boundary when there
are any, or in the resource policy; otherwise it is denied by default. When the resource
belongs to another account, both sides must allow.

The caps and resource policies, as AWS documents them ("Permissions boundaries for IAM
entities", "Policy evaluation logic"): a resource-policy statement naming the caller's
own ARN (an IAM user, or a role session's session ARN) grants directly and is not
limited by an implicit deny in a boundary or session policy; one naming the role ARN
behind a session is limited by both, like the role's identity policies; one naming the
account only counts together with an identity Allow. A resource-policy ``Deny`` with
``NotPrincipal`` applies to any caller that has a permissions boundary, whatever it
names (AWS's documented behaviour).
No I/O: the caller hands in parsed policies and the request's context keys.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vallum.iam.glob import compile_glob
from vallum.iam.policy import (
    DATE_OPS,
    NEGATED_OPS,
    NUMERIC_OPS,
    Condition,
    Policy,
    PrincipalSpec,
    Statement,
    expand,
    substitute,
    to_epoch,
    to_number,
)


@dataclass(frozen=True)
class Caller:
    """Who asks, as resource and trust policies see it."""

    arn: str = "*"                       # "*" for anonymous
    account: str = ""
    role_arn: str = ""                   # for role sessions: the role's ARN
    anonymous: bool = False
    federated: bool = False              # a web identity: ``arn`` is its OIDC provider's


ANONYMOUS_CALLER = Caller("*", "", "", True)


@dataclass
class Request:
    action: str
    resource: str
    keys: Mapping[str, Any] = field(default_factory=dict)   # lower-case key -> str | list[str]
    caller: Caller = ANONYMOUS_CALLER


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    policy: str = ""          # label of the deciding policy ("" for default deny)
    statement: str = ""       # Sid or Statement[i]


# How a resource-policy statement names the caller, strongest first.
DIRECT, ROLE, ACCOUNT = 0, 1, 2


@dataclass(frozen=True)
class Hit:
    policy: str
    statement: Statement
    kind: int = DIRECT        # resource policies: DIRECT (the caller or "*"), ROLE, ACCOUNT


# ---------------------------------------------------------------- matching

def _lookup(keys: Mapping[str, Any]):
    return lambda name: keys.get(name)


def action_matches(st: Statement, action: str) -> bool:
    hit = st.action_re.fullmatch(action) is not None
    return hit != st.not_action


def resource_matches(st: Statement, resource: str, keys: Mapping[str, Any], variables: bool) -> bool:
    if st.resources is None:
        return True
    if st.resource_re is not None:
        return (st.resource_re.fullmatch(resource) is not None) != st.not_resource
    hit = False
    for pattern in st.resources:
        rx = expand(pattern, _lookup(keys)) if variables else compile_glob(pattern)
        if rx is not None and rx.fullmatch(resource):
            hit = True
            break
    return hit != st.not_resource


def principal_match(spec: PrincipalSpec, caller: Caller) -> int | None:
    """DIRECT (the caller's own ARN, or everyone), ROLE (the role behind a session),
    ACCOUNT (the caller's account) or None."""
    if spec.anyone:
        return DIRECT
    if caller.anonymous:
        return None
    if caller.federated:                 # only {"Federated": <its provider>} names it
        return DIRECT if caller.arn in spec.other else None
    best = None
    for arn in spec.aws:
        if arn == caller.arn:
            return DIRECT
        if caller.role_arn and arn == caller.role_arn:
            best = ROLE
        elif best is None and arn.endswith(":root") and arn == f"arn:aws:iam::{caller.account}:root":
            best = ACCOUNT
    if best is None and caller.account and caller.account in spec.canonical:
        best = ACCOUNT
    return best


def _principal_applies(st: Statement, caller: Caller, bounded: bool) -> int | None:
    if st.principal is None:
        return DIRECT
    if st.not_principal:
        if bounded and st.effect == "Deny":
            return DIRECT             # AWS: NotPrincipal + Deny denies any bounded caller
        return None if principal_match(st.principal, caller) is not None else DIRECT
    return principal_match(st.principal, caller)


# ---------------------------------------------------------------- conditions

def _values_of(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        return [str(v) for v in raw]
    return [str(raw)]


def _one(op: str, have: str, want: str, keys: Mapping[str, Any], variables: bool) -> bool:
    """Does request value ``have`` match policy value ``want`` under the positive form of op?"""
    if op.startswith("String"):
        if variables and "${" in want:
            if "Like" in op:
                rx = expand(want, _lookup(keys))
                return rx is not None and rx.fullmatch(have) is not None
            found = substitute(want, _lookup(keys))
            if found is None:
                return False
            want = found
        if "Like" in op:
            return compile_glob(want).fullmatch(have) is not None
        if "IgnoreCase" in op:
            return have.casefold() == want.casefold()
        return have == want
    if op.startswith("Arn"):
        rx = expand(want, _lookup(keys)) if variables else compile_glob(want)
        return rx is not None and rx.fullmatch(have) is not None
    if op in NUMERIC_OPS:
        return _compare(op.removeprefix("Numeric"), to_number(have), to_number(want))
    if op in DATE_OPS:
        return _compare(op.removeprefix("Date"), to_epoch(have), to_epoch(want))
    if op == "Bool":
        return have.lower() == want.lower()
    if op == "BinaryEquals":
        try:
            return hmac.compare_digest(base64.b64decode(have), base64.b64decode(want))
        except ValueError:
            return False
    if op.endswith("IpAddress"):
        try:
            return ipaddress.ip_address(have.split("%")[0]) in ipaddress.ip_network(want, strict=False)
        except ValueError:
            return False
    raise AssertionError(op)


_POSITIVE = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
             "StringNotLike": "StringLike", "NumericNotEquals": "NumericEquals",
             "DateNotEquals": "DateEquals", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike",
             "NotIpAddress": "IpAddress"}


def _compare(rel: str, a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return False
    return {"Equals": a == b, "LessThan": a < b, "LessThanEquals": a <= b,
            "GreaterThan": a > b, "GreaterThanEquals": a >= b}[rel]


def condition_holds(c: Condition, keys: Mapping[str, Any], variables: bool = True) -> bool:
    have = _values_of(keys.get(c.key))
    if c.operator == "Null":
        absent = not have
        return any((v.lower() == "true") == absent for v in c.values)
    negated = c.operator in NEGATED_OPS
    positive = _POSITIVE.get(c.operator, c.operator)

    def matches(value: str) -> bool:
        hit = any(_one(positive, value, want, keys, variables) for want in c.values)
        return not hit if negated else hit

    if c.qualifier == "ForAllValues":
        return all(matches(v) for v in have) if have else True
    if c.qualifier == "ForAnyValue":
        return any(matches(v) for v in have) if have else c.if_exists
    if not have:
        return c.if_exists or negated
    return any(matches(v) for v in have) if not negated else all(matches(v) for v in have)


def statement_applies(st: Statement, req: Request, variables: bool) -> bool:
    """Action, resource and conditions (the principal is checked by the caller)."""
    return ((st.action_re.fullmatch(req.action) is not None) != st.not_action
            and resource_matches(st, req.resource, req.keys, variables)
            and all(condition_holds(c, req.keys, variables) for c in st.conditions))


# ---------------------------------------------------------------- decisions

def _scan(policies: Sequence[tuple[str, Policy]], req: Request, *, resource_policy: bool,
          bounded: bool = False) -> tuple[Hit | None, Hit | None]:
    """First explicit Deny and best Allow among ``policies`` for this request."""
    deny = allow = None
    for label, policy in policies:
        for st in policy.statements:
            if resource_policy:
                kind = _principal_applies(st, req.caller, bounded)
                if kind is None:
                    continue
            else:
                kind = DIRECT
            if not statement_applies(st, req, policy.variables):
                continue
            if st.effect == "Deny":
                return Hit(label, st), allow
            if allow is None or kind < allow.kind:
                allow = Hit(label, st, kind)
    return deny, allow


def evaluate(req: Request, *, identity: Sequence[tuple[str, Policy]] = (),
             resource: Sequence[tuple[str, Policy]] = (),
             session: Sequence[tuple[str, Policy]] = (),
             boundary: Sequence[tuple[str, Policy]] = (),
             resource_account: str | None = None, require_resource: bool = False) -> Verdict:
    """Decide one request. ``resource_account`` None means 'the caller's own account'.

    ``boundary``: the caller's permissions boundary (a user's, or the role's for a role
    session); empty means none. A boundary, like a session policy, grants nothing: it
    caps identity allows (and resource allows naming the role), and its Deny wins.
    ``require_resource``: the resource policy must allow even inside one account (role
    trust policies: an identity policy alone never lets anyone assume a role).
    """
    id_deny, id_allow = _scan(identity, req, resource_policy=False)
    if id_deny:
        return _deny(id_deny)
    s_deny, s_allow = _scan(session, req, resource_policy=False)
    if s_deny:
        return _deny(s_deny)
    b_deny, b_allow = _scan(boundary, req, resource_policy=False)
    if b_deny:
        return _deny(b_deny)
    r_deny, r_allow = _scan(resource, req, resource_policy=True, bounded=bool(boundary))
    if r_deny:
        return _deny(r_deny)
    capped = ""
    if session and not s_allow:
        capped = "the session policy"
    elif boundary and not b_allow:
        capped = "the permissions boundary"
    if capped:
        id_allow = None          # the caps limit what identity policies grant ...
        if r_allow and r_allow.kind == ROLE:
            r_allow = None       # ... and what a resource policy grants the role
    same_account = (not req.caller.anonymous
                    and (resource_account is None or resource_account == req.caller.account))
    if req.caller.anonymous:
        if r_allow:
            return _allow(r_allow, "allowed by the resource policy (anonymous)")
        return Verdict(False, "anonymous access is not granted by any policy")
    if same_account and require_resource:
        if r_allow and (r_allow.kind != ACCOUNT or id_allow):
            return _allow(r_allow, "allowed by the trust policy")
        return Verdict(False, "the trust policy does not allow this caller" if not r_allow
                       else "the trust policy trusts the account but no identity policy allows")
    if same_account:
        if id_allow:
            return _allow(id_allow, "allowed by an identity policy")
        if r_allow and r_allow.kind != ACCOUNT:
            return _allow(r_allow, "allowed by the resource policy")
        if capped:
            return Verdict(False, f"no allow within {capped} (implicit deny)")
        return Verdict(False, "no policy allows this request (default deny)")
    if id_allow and r_allow:
        return _allow(r_allow, "cross-account: allowed by both the identity and resource policy")
    if r_allow:
        return Verdict(False, "cross-account: the resource policy allows but no identity "
                              "policy of the caller does" + (f" within {capped}" if capped else ""))
    if id_allow:
        return Verdict(False, "cross-account: no resource policy of the owner allows this")
    return Verdict(False, "no policy allows this request (default deny)")


def _deny(hit: Hit) -> Verdict:
    return Verdict(False, f"explicitly denied by {hit.policy} {hit.statement.label}",
                   hit.policy, hit.statement.label)


def _allow(hit: Hit, reason: str) -> Verdict:
    return Verdict(True, f"{reason} ({hit.policy} {hit.statement.label})", hit.policy,
                   hit.statement.label)
