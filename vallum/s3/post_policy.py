"""The POST policy of a browser form upload (PostObject): parsed and checked exactly as S3 does.

A policy is base64 JSON: ``expiration`` (ISO 8601, UTC) and ``conditions``, each one of
``{"field": "value"}`` (exact match), ``["eq", "$field", "value"]``,
``["starts-with", "$field", "prefix"]`` or ``["content-length-range", min, max]``.
Every condition must hold for the form as sent (a field the form lacks is ""), and every
form field must be named by a condition, except the ones S3 exempts (the signature, the
policy, the file and ``x-ignore-*``): a field the signer did not foresee is refused, so a
form cannot add metadata, an ACL or a label its signer did not allow. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
from dataclasses import dataclass, field

from vallum.s3 import errors

# Fields S3 does not require a condition for (lower case).
EXEMPT = frozenset({"awsaccesskeyid", "signature", "x-amz-signature", "file", "policy"})
_EXPIRATION = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z")
_DENIED = "Invalid according to Policy: "


@dataclass(frozen=True)
class Condition:
    op: str                     # "eq" or "starts-with"
    name: str                   # lower-case field name, without "$"
    value: str
    text: str                   # how S3 quotes it in its refusal

    def holds(self, actual: str) -> bool:
        if self.op == "eq":
            return actual == self.value
        if self.name == "content-type" and "," in actual:   # S3: each listed type must match
            return all(v.strip().startswith(self.value) for v in actual.split(","))
        return actual.startswith(self.value)


@dataclass(frozen=True)
class PostPolicy:
    expiration: float
    conditions: tuple[Condition, ...] = ()
    length_range: tuple[int, int] | None = None
    named: frozenset[str] = field(default_factory=frozenset)   # fields some condition covers


def _invalid(detail: str) -> errors.S3Error:
    return errors.InvalidPolicyDocument(f"Invalid Policy: {detail}")


def _expiration(value: object) -> float:
    m = _EXPIRATION.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise _invalid(f"Invalid 'expiration' value: '{str(value)[:64]}'")
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        raise _invalid(f"Invalid 'expiration' value: '{value}'")
    return float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))


def _condition(item: object) -> Condition | tuple[int, int]:
    if isinstance(item, dict):
        if len(item) != 1:
            raise _invalid("Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.")
        (name, value), = item.items()
        if not isinstance(value, str):
            raise _invalid(f"Invalid Simple-Condition: value of '{name}' must be a string.")
        return Condition("eq", name.lower().lstrip("$"), value,
                         json.dumps({name: value}, separators=(",", ":")))
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise _invalid("Invalid Condition: a condition must be an object or a list.")
    op = item[0].lower()
    if op == "content-length-range":
        if len(item) != 3 or not all(type(v) is int or (isinstance(v, str) and v.isdigit())
                                     for v in item[1:]):
            raise _invalid("Invalid content-length-range condition.")
        lo, hi = int(item[1]), int(item[2])
        if lo < 0 or hi < lo:
            raise _invalid("Invalid content-length-range condition.")
        return lo, hi
    if op not in ("eq", "starts-with"):
        raise _invalid(f"Invalid Condition: unknown operation '{item[0][:32]}'.")
    if len(item) != 3 or not all(isinstance(v, str) for v in item[1:]) \
            or not item[1].startswith("$") or len(item[1]) < 2:
        raise _invalid(f"Invalid Condition: '{item[0][:32]}' takes a \"$field\" and a string.")
    return Condition(op, item[1][1:].lower(), item[2], json.dumps(item))


def parse(encoded: str) -> PostPolicy:
    """The policy of a form's ``policy`` field; InvalidPolicyDocument when it is not one."""
    try:
        doc = json.loads(base64.b64decode(encoded.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeError, ValueError):
        raise _invalid("Invalid JSON.") from None
    if not isinstance(doc, dict):
        raise _invalid("Invalid JSON.")
    if "expiration" not in doc:
        raise _invalid("Policy missing expiration.")
    if "conditions" not in doc:
        raise _invalid("Policy missing conditions.")
    if not isinstance(doc["conditions"], list):
        raise _invalid("Invalid 'conditions' value: must be a list.")
    expiration = _expiration(doc["expiration"])
    conditions: list[Condition] = []
    length: tuple[int, int] | None = None
    for item in doc["conditions"]:
        parsed = _condition(item)
        if isinstance(parsed, tuple):
            length = parsed if length is None else (max(length[0], parsed[0]), min(length[1], parsed[1]))
        else:
            conditions.append(parsed)
    return PostPolicy(expiration, tuple(conditions), length,
                      frozenset(c.name for c in conditions))


def check(policy: PostPolicy, form: dict[str, str], bucket: str, now: float) -> None:
    """AccessDenied, with S3's message, unless the form satisfies the policy at ``now``.

    ``form``: every field as sent, names lower-cased, with ``key`` after its
    ``${filename}`` substitution; ``bucket``: the bucket the request names."""
    if now >= policy.expiration:
        raise errors.AccessDenied(_DENIED + "Policy expired.")
    for cond in policy.conditions:
        actual = bucket if cond.name == "bucket" else form.get(cond.name, "")
        if not cond.holds(actual):
            raise errors.AccessDenied(f"{_DENIED}Policy Condition failed: {cond.text}")
    extra = [name for name in form if name not in policy.named and name not in EXEMPT
             and not name.startswith("x-ignore-")]
    if extra:
        raise errors.AccessDenied(_DENIED + "Extra input fields: " + ", ".join(sorted(extra)))
