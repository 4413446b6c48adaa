"""The IAM query protocol's wire format: form parameters in, AWS's XML out.

Why here and not in the handlers: every action answers the same envelope
(``<XResponse xmlns=...><XResult>...</XResult><ResponseMetadata>``), the same error
document and the same pagination (Marker / IsTruncated / MaxItems), and renders the
same entity shapes (User, Group, Role, Policy) in several answers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote

from vallum.s3.xml import escape

NS = "https://iam.amazonaws.com/doc/2010-05-08/"
VERSION = "2010-05-08"
# AWS's name patterns (users, roles: 64; groups, policies: 128); checked before a name
# goes into a resource ARN, so no name can widen the ARN a decision is made on.
_NAME = re.compile(r"[A-Za-z0-9+=,.@_\-]+")
_MAX_NAME = {"userName": 64, "roleName": 64, "groupName": 128, "policyName": 128}
T = TypeVar("T")


class QueryError(Exception):
    """A refused IAM call: ``code`` and ``status`` as AWS IAM answers them."""

    def __init__(self, code: str, message: str, status: int = 400, rule: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.rule = rule or f"invalid: {code}"


def error_xml(code: str, message: str, status: int, request_id: str) -> bytes:
    kind = "Sender" if status < 500 else "Receiver"
    return (f'<ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()


def response_xml(action: str, result: str | None, request_id: str) -> bytes:
    inner = f"<{action}Result>{result}</{action}Result>" if result is not None else ""
    return (f'<{action}Response xmlns="{NS}">{inner}<ResponseMetadata><RequestId>'
            f"{request_id}</RequestId></ResponseMetadata></{action}Response>").encode()


def validation(field: str, constraint: str, value: str | None = None) -> QueryError:
    shown = "null" if value is None else f"'{value[:64]}'"
    return QueryError("ValidationError", f"1 validation error detected: Value {shown} at "
                      f"'{field}' failed to satisfy constraint: {constraint}")


def text(params: dict[str, str], name: str, *, required: bool = True,
         max_len: int = 131072) -> str:
    """A string parameter; ValidationError (as AWS words it) when required and absent."""
    field = name[0].lower() + name[1:]
    value = params.get(name)
    if value is None or (required and value == ""):
        if required:
            raise validation(field, "Member must not be null")
        return ""
    if len(value) > max_len:
        raise validation(field, f"Member must have length less than or equal to {max_len}", value)
    return value


def name(params: dict[str, str], param: str, *, required: bool = True) -> str:
    """An entity name parameter (UserName, GroupName, RoleName, PolicyName), checked
    against AWS's pattern and length."""
    field = param[0].lower() + param[1:]
    value = text(params, param, required=required)
    if not value and not required:
        return ""
    limit = _MAX_NAME.get(field, 128)
    if len(value) > limit:
        raise validation(field, f"Member must have length less than or equal to {limit}", value)
    if not _NAME.fullmatch(value):
        raise validation(field, "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
                         value)
    return value


def members(params: dict[str, str], prefix: str) -> list[str]:
    """``Prefix.member.1``, ``Prefix.member.2``, ... in order."""
    out, i = [], 1
    while f"{prefix}.member.{i}" in params:
        out.append(params[f"{prefix}.member.{i}"])
        i += 1
    return out


def tags(params: dict[str, str]) -> dict[str, str]:
    out, i = {}, 1
    while f"Tags.member.{i}.Key" in params:
        key = params[f"Tags.member.{i}.Key"]
        if not 1 <= len(key) <= 128:
            raise validation("tags.member.key", "Member must have length between 1 and 128", key)
        out[key] = params.get(f"Tags.member.{i}.Value", "")
        i += 1
    if len(out) > 50:
        raise QueryError("LimitExceeded", "Cannot exceed quota for TagsPerUser: 50", 409)
    return out


def path(params: dict[str, str], param: str = "Path") -> None:
    """Every entity lives at path ``/``: another path is refused, not dropped."""
    value = params.get(param)
    if value not in (None, "", "/"):
        raise QueryError("ValidationError", f"{param} {value!r} is not supported: Vallum "
                         "keeps every IAM entity at path /")


def iso(t: float | None) -> str:
    return datetime.fromtimestamp(t or 0, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def document(doc: str) -> str:
    """A policy document as AWS sends it: URL-encoded (boto3 and awscli decode it)."""
    return escape(quote(doc, safe=""))


def el(tag: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def member_list(tag: str, items: Sequence[str]) -> str:
    return f"<{tag}>" + "".join(f"<member>{i}</member>" for i in items) + f"</{tag}>"


def _max_items(params: dict[str, str]) -> int:
    raw = params.get("MaxItems")
    if raw in (None, ""):
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise validation("maxItems", "Member must have value between 1 and 1000", raw)
    return int(raw)


def _marker(params: dict[str, str]) -> str | None:
    raw = params.get("Marker")
    if raw in (None, ""):
        return None
    try:
        padded = raw.translate(str.maketrans("-_", "+/")) + "=" * (-len(raw) % 4)
        return base64.b64decode(padded.encode("ascii"), validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise QueryError("InvalidInput", "Invalid Marker.") from None


def page(items: Sequence[T], key: Callable[[T], str], params: dict[str, str]) -> tuple[list[T], str]:
    """One page of ``items`` by MaxItems/Marker, and the trailer AWS ends it with
    (IsTruncated, and Marker when truncated). The marker is the last key returned,
    so a page boundary survives entities created or deleted between calls."""
    limit, after = _max_items(params), _marker(params)
    ordered = sorted(items, key=key)
    if after is not None:
        ordered = [i for i in ordered if key(i) > after]
    out = ordered[:limit]
    if len(ordered) > limit:
        token = base64.urlsafe_b64encode(key(out[-1]).encode()).decode().rstrip("=")
        return out, f"<IsTruncated>true</IsTruncated><Marker>{token}</Marker>"
    return out, "<IsTruncated>false</IsTruncated>"
