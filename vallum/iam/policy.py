"""The AWS IAM policy language: parse, validate and compile a JSON policy document.

A malformed document is refused when it is written (MalformedPolicy carries the
JSON position of the problem, e.g. ``Statement[1].Condition.StringLikeX``): unknown
actions, condition operators and condition keys are reported, never ignored, so a
typo can never silently widen or narrow access. Parsing yields frozen, pre-compiled
statements; the evaluator (evaluate.py) never re-parses text on the request path.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from vallum.iam import actions as known
from vallum.iam.glob import AnyGlob, Glob, any_of, compile_glob

VERSIONS = ("2012-10-17", "2008-10-17")
MAX_POLICY_BYTES = 20 * 1024

STRING_OPS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
              "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike"}
NUMERIC_OPS = {"NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
               "NumericGreaterThan", "NumericGreaterThanEquals"}
DATE_OPS = {"DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals",
            "DateGreaterThan", "DateGreaterThanEquals"}
ARN_OPS = {"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"}
IP_OPS = {"IpAddress", "NotIpAddress"}
OTHER_OPS = {"Bool", "BinaryEquals", "Null"}
OPERATORS = STRING_OPS | NUMERIC_OPS | DATE_OPS | ARN_OPS | IP_OPS | OTHER_OPS
NEGATED_OPS = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals",
               "DateNotEquals", "ArnNotEquals", "ArnNotLike", "NotIpAddress"}
QUALIFIERS = ("ForAnyValue", "ForAllValues")

GLOBAL_KEYS = frozenset("""
aws:sourceip aws:securetransport aws:currenttime aws:epochtime aws:username aws:userid
aws:principalaccount aws:principalarn aws:principaltype aws:multifactorauthpresent
aws:multifactorauthage aws:tokenissuetime aws:requestedregion aws:useragent aws:referer
aws:sourcevpc aws:sourcevpce aws:viaawsservice aws:calledvia aws:sourcearn aws:sourceaccount
aws:principalisawsservice aws:resourceaccount aws:tagkeys aws:principalorgid
""".split())
S3_KEYS = frozenset("""
s3:prefix s3:delimiter s3:max-keys s3:x-amz-server-side-encryption
s3:x-amz-server-side-encryption-aws-kms-key-id s3:x-amz-acl s3:x-amz-copy-source
s3:x-amz-metadata-directive s3:x-amz-storage-class s3:x-amz-content-sha256 s3:versionid
s3:signatureversion s3:authtype s3:signatureage s3:tlsversion s3:locationconstraint
s3:object-lock-mode s3:object-lock-retain-until-date s3:object-lock-remaining-retention-days
s3:object-lock-legal-hold s3:resourceaccount s3:requestobjecttagkeys s3:x-amz-grant-read
s3:x-amz-grant-write s3:x-amz-grant-read-acp s3:x-amz-grant-write-acp
s3:x-amz-grant-full-control s3:if-match s3:if-none-match
""".split())
STS_KEYS = frozenset({"sts:externalid", "sts:rolesessionname", "sts:sourceidentity",
                      "sts:durationseconds"})
# IAM's own request keys that the admin API sets (vallum/server/admin.py).
IAM_KEYS = frozenset({"iam:permissionsboundary", "iam:policyarn"})
KEY_PREFIXES = ("aws:principaltag/", "aws:requesttag/", "aws:resourcetag/",
                "s3:existingobjecttag/", "s3:requestobjecttag/")
# The verified client certificate of the connection (iam/certauth.py): every API's requests.
CERT_KEYS = frozenset({"vallum:certificatesubject", "vallum:certificateissuer",
                       "vallum:certificateserial", "vallum:certificatefingerprint"})
KNOWN_KEYS = GLOBAL_KEYS | S3_KEYS | STS_KEYS | IAM_KEYS | CERT_KEYS


class MalformedPolicy(ValueError):
    """A policy document that cannot be accepted; ``position`` says where."""

    def __init__(self, reason: str, position: str = "") -> None:
        super().__init__(f"{reason} (at {position})" if position else reason)
        self.reason = reason
        self.position = position


@dataclass(frozen=True)
class Condition:
    operator: str            # base operator, e.g. "StringLike"
    key: str                 # lower-case context key
    values: tuple[str, ...]
    qualifier: str = ""      # "" | "ForAnyValue" | "ForAllValues"
    if_exists: bool = False


@dataclass(frozen=True)
class PrincipalSpec:
    anyone: bool = False                 # "*" or {"AWS": "*"}
    aws: tuple[str, ...] = ()            # ARNs (account ids normalised to :root ARNs)
    canonical: tuple[str, ...] = ()
    other: tuple[str, ...] = ()          # Service / Federated: never match a Vallum caller


@dataclass(frozen=True)
class Statement:
    index: int
    sid: str
    effect: str                          # "Allow" | "Deny"
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None    # None: no Resource element (trust policies)
    not_resource: bool
    principal: PrincipalSpec | None
    not_principal: bool
    conditions: tuple[Condition, ...]
    action_re: AnyGlob                   # fullmatch(action): any of the actions (any case)
    resource_re: AnyGlob | None = None   # all resources at once, when none has ${...}

    @property
    def label(self) -> str:
        return self.sid or f"Statement[{self.index}]"


@dataclass(frozen=True)
class Policy:
    version: str
    statements: tuple[Statement, ...]
    text: str
    id: str = ""

    @property
    def variables(self) -> bool:
        """Policy variables (${aws:username}) exist only in version 2012-10-17."""
        return self.version == "2012-10-17"


# ---------------------------------------------------------------- wildcards

_VAR = re.compile(r"\$\{([^}]*)\}")
_LITERAL_VARS = {"*": "*", "?": "?", "$": "$"}


def expand(pattern: str, lookup) -> Glob | None:
    """Compile ``pattern`` with ${...} variables replaced (literally) by their values.

    None when a variable has no value in the request: the element then matches nothing,
    as in AWS. ``${*}``, ``${?}`` and ``${$}`` stand for the literal characters.
    """
    if "${" not in pattern:
        return compile_glob(pattern)
    parts: list[tuple[str, bool]] = []
    pos = 0
    for m in _VAR.finditer(pattern):
        parts.append((pattern[pos:m.start()], False))
        name = m.group(1)
        if name in _LITERAL_VARS:
            value: Any = _LITERAL_VARS[name]
        else:
            value = lookup(name.lower())
            if value is None or isinstance(value, list):
                return None
        parts.append((str(value), True))
        pos = m.end()
    parts.append((pattern[pos:], False))
    return Glob(parts)


def substitute(value: str, lookup) -> str | None:
    """``value`` with ${...} variables replaced by their values (None if one is missing)."""
    out, pos = [], 0
    for m in _VAR.finditer(value):
        out.append(value[pos:m.start()])
        name = m.group(1)
        found = _LITERAL_VARS.get(name)
        if found is None:
            v = lookup(name.lower())
            if v is None or isinstance(v, list):
                return None
            found = str(v)
        out.append(found)
        pos = m.end()
    out.append(value[pos:])
    return "".join(out)


# ---------------------------------------------------------------- parsing

def parse(document: str | bytes | dict, *, kind: str = "identity", bucket: str | None = None) -> Policy:
    """Parse and validate a policy.

    kind: "identity" (user/group/role policies), "session" (AssumeRole Policy),
    "resource" (bucket policies: Principal required, Resource in ``bucket``),
    "trust" (role trust policies: Principal required, Resource optional).
    """
    if isinstance(document, dict):
        doc, text = document, json.dumps(document)
    else:
        try:
            text = document.decode("utf-8") if isinstance(document, bytes) else document
            size = len(text.encode("utf-8"))
        except UnicodeError:
            raise MalformedPolicy("Policy is not valid UTF-8 text") from None
        if size > MAX_POLICY_BYTES:
            raise MalformedPolicy(f"Policy exceeds the maximum size of {MAX_POLICY_BYTES} bytes")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedPolicy(f"Policy is not valid JSON: {exc.msg}",
                                  f"line {exc.lineno} column {exc.colno}") from None
        except RecursionError:   # '[[[[...' fits in 20 KiB and exhausts the decoder's stack
            raise MalformedPolicy("Policy is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise MalformedPolicy("Policy must be a JSON object", "$")
    _only(doc, {"Version", "Id", "Statement"}, "")
    version = doc.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicy(f"Unsupported Version {version!r}; use 2012-10-17", "Version")
    raw = doc.get("Statement")
    if raw is None:
        raise MalformedPolicy("Missing required field Statement", "Statement")
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicy("Statement must not be empty", "Statement")
    statements, sids = [], set()
    for i, item in enumerate(items):
        st = _statement(item, i, kind, bucket)
        if st.sid and st.sid in sids:
            raise MalformedPolicy(f"Statement IDs (SID) must be unique: {st.sid}",
                                  f"Statement[{i}].Sid")
        sids.add(st.sid)
        statements.append(st)
    return Policy(version, tuple(statements), text, str(doc.get("Id", "")))


def _only(obj: dict, allowed: set[str], where: str) -> None:
    for k in obj:
        if k not in allowed:
            raise MalformedPolicy(f"Unknown field {k}", f"{where}.{k}" if where else k)


def _strings(value: Any, where: str, *, allow_empty: bool = False) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items and not allow_empty:
        raise MalformedPolicy("List must not be empty", where)
    for v in items:
        if not isinstance(v, str):
            raise MalformedPolicy("Expected a string", where)
    return items


def _statement(item: Any, i: int, kind: str, bucket: str | None) -> Statement:
    where = f"Statement[{i}]"
    if not isinstance(item, dict):
        raise MalformedPolicy("Statement must be an object", where)
    _only(item, {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal",
                 "NotPrincipal", "Condition"}, where)
    sid = item.get("Sid", "")
    if not isinstance(sid, str) or (sid and not re.fullmatch(r"[A-Za-z0-9 _.\-]+", sid)):
        raise MalformedPolicy("Sid must be alphanumeric", f"{where}.Sid")
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(f"Effect must be Allow or Deny, not {effect!r}", f"{where}.Effect")
    acts, not_action = _pair(item, "Action", "NotAction", where, required=True)
    actions = tuple(_action(a, f"{where}.{'NotAction' if not_action else 'Action'}")
                    for a in _strings(acts, where))
    res, not_resource = _pair(item, "Resource", "NotResource", where,
                              required=kind not in ("trust",))
    resources = None
    if res is not None:
        rwhere = f"{where}.{'NotResource' if not_resource else 'Resource'}"
        resources = tuple(_resource(r, rwhere, bucket if kind == "resource" else None)
                          for r in _strings(res, rwhere))
    prin, not_principal = _pair(item, "Principal", "NotPrincipal", where,
                                required=kind in ("resource", "trust"))
    if prin is not None and kind in ("identity", "session"):
        raise MalformedPolicy("Principal is not allowed in identity policies",
                              f"{where}.{'NotPrincipal' if not_principal else 'Principal'}")
    principal = None if prin is None else _principal(
        prin, f"{where}.{'NotPrincipal' if not_principal else 'Principal'}")
    conditions = _conditions(item.get("Condition", {}), f"{where}.Condition")
    resource_re = None
    if resources is not None and not any("${" in r for r in resources):
        resource_re = any_of(resources)
    return Statement(i, sid, effect, actions, not_action, resources, not_resource, principal,
                     not_principal, conditions, any_of(actions, True), resource_re)


def _pair(item: dict, a: str, b: str, where: str, *, required: bool) -> tuple[Any, bool]:
    if a in item and b in item:
        raise MalformedPolicy(f"{a} and {b} are mutually exclusive", f"{where}.{b}")
    if a in item:
        return item[a], False
    if b in item:
        return item[b], True
    if required:
        raise MalformedPolicy(f"Missing required field {a}", f"{where}.{a}")
    return None, False


def _action(action: str, where: str) -> str:
    if action == "*":
        return action
    service, sep, name = action.partition(":")
    if not sep or not name:
        raise MalformedPolicy(f"Action {action!r} must be service:name", where)
    names = known.LOWER.get(service.lower())
    if names is None:
        raise MalformedPolicy(f"Unknown service prefix in action {action!r}", where)
    rx = compile_glob(name, True)
    if not any(rx.fullmatch(n) for n in names):
        raise MalformedPolicy(f"Unknown action {action!r}", where)
    return action


def _resource(resource: str, where: str, bucket: str | None) -> str:
    if resource == "*":
        if bucket is not None:
            raise MalformedPolicy("Policy has invalid resource: '*' is not within the bucket",
                                  where)
        return resource
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[2]:
        raise MalformedPolicy(f"Policy has invalid resource {resource!r}: expected an ARN", where)
    if bucket is not None:
        if parts[2] != "s3" or not compile_glob(parts[5].split("/", 1)[0]).fullmatch(bucket):
            raise MalformedPolicy(f"Policy has invalid resource {resource!r}: "
                                  f"it does not refer to bucket {bucket}", where)
    return resource


_ACCOUNT = re.compile(r"[0-9]{12}")


def _principal(value: Any, where: str) -> PrincipalSpec:
    if value == "*":
        return PrincipalSpec(anyone=True)
    if not isinstance(value, dict) or not value:
        raise MalformedPolicy("Principal must be \"*\" or an object", where)
    _only(value, {"AWS", "CanonicalUser", "Service", "Federated"}, where)
    aws: list[str] = []
    anyone = False
    for v in _strings(value.get("AWS", []), f"{where}.AWS", allow_empty=True):
        if v == "*":
            anyone = True
        elif _ACCOUNT.fullmatch(v):
            aws.append(f"arn:aws:iam::{v}:root")
        elif re.fullmatch(r"arn:aws:(iam::[0-9]{12}:(root|user/.+|role/.+)"
                          r"|sts::[0-9]{12}:assumed-role/[^/]+/.+)", v):
            aws.append(v)
        else:
            raise MalformedPolicy(f"Invalid principal {v!r}", f"{where}.AWS")
    canonical = tuple(_strings(value.get("CanonicalUser", []), f"{where}.CanonicalUser",
                               allow_empty=True))
    other = tuple(_strings(value.get("Service", []), f"{where}.Service", allow_empty=True)
                  + _strings(value.get("Federated", []), f"{where}.Federated", allow_empty=True))
    return PrincipalSpec(anyone, tuple(aws), canonical, other)


# An OIDC provider's claim as AWS keys it: ``host[/path]:claim`` (iam/oidc.py); the dot
# in the host keeps a misspelt ``aws:``/``s3:`` key from passing as one.
_OIDC_KEY = re.compile(r"[a-z0-9\-]+(?:\.[a-z0-9\-]+)+(?::[0-9]{1,5})?(?:/[a-z0-9._~\-/]*)?"
                       r":[a-z0-9_.\-]+")


def _known_key(key: str) -> bool:
    k = key.lower()
    return (k in KNOWN_KEYS or any(k.startswith(p) and len(k) > len(p) for p in KEY_PREFIXES)
            or _OIDC_KEY.fullmatch(k) is not None)


def _conditions(block: Any, where: str) -> tuple[Condition, ...]:
    if not isinstance(block, dict):
        raise MalformedPolicy("Condition must be an object", where)
    out = []
    for raw_op, keys in block.items():
        op_where = f"{where}.{raw_op}"
        qualifier, _, op = raw_op.rpartition(":")
        if qualifier and qualifier not in QUALIFIERS:
            raise MalformedPolicy(f"Unknown condition qualifier {qualifier!r}", op_where)
        if_exists = op.endswith("IfExists") and op != "IfExists"
        base = op[: -len("IfExists")] if if_exists else op
        if base not in OPERATORS or (if_exists and base == "Null"):
            raise MalformedPolicy(f"Unknown condition operator {raw_op!r}", op_where)
        if not isinstance(keys, dict) or not keys:
            raise MalformedPolicy("Condition operator needs an object of keys", op_where)
        for key, values in keys.items():
            key_where = f"{op_where}.{key}"
            if not _known_key(key):
                raise MalformedPolicy(f"Unknown condition key {key!r}", key_where)
            vals = _condition_values(base, values, key_where)
            out.append(Condition(base, key.lower(), vals, qualifier, if_exists))
    return tuple(out)


def _condition_values(op: str, values: Any, where: str) -> tuple[str, ...]:
    items = values if isinstance(values, list) else [values]
    if not items:
        raise MalformedPolicy("Condition values must not be empty", where)
    out = []
    for v in items:
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        elif not isinstance(v, str):
            raise MalformedPolicy("Condition values must be strings, numbers or booleans", where)
        _check_value(op, v, where)
        out.append(v)
    return tuple(out)


def _check_value(op: str, v: str, where: str) -> None:
    if op in NUMERIC_OPS and to_number(v) is None:
        raise MalformedPolicy(f"{op} needs a number, not {v!r}", where)
    if op in DATE_OPS and to_epoch(v) is None:
        raise MalformedPolicy(f"{op} needs a date (ISO 8601 or epoch seconds), not {v!r}", where)
    if op in IP_OPS:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise MalformedPolicy(f"{op} needs an IP address or CIDR, not {v!r}", where) from None
    if op in ("Bool", "Null") and v.lower() not in ("true", "false"):
        raise MalformedPolicy(f"{op} needs true or false, not {v!r}", where)
    if op == "BinaryEquals":
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedPolicy(f"BinaryEquals needs base64, not {v!r}", where) from None


def to_number(v: str) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def to_epoch(v: str) -> float | None:
    """ISO 8601 date/time (UTC when no zone) or epoch seconds -> epoch seconds."""
    n = to_number(v)
    if n is not None:
        return n
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
