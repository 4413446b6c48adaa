"""LDAP / Active Directory directories the platform root registers (STS
AssumeRoleWithLDAPIdentity; the login itself is iam/ldap.py).

Why root-only: a directory says whose password opens which role in which account, and
the clearance its users may carry, so it is platform configuration, like clearances. A
directory is checked whole when written (never at login): the server URL, TLS (``ldaps://``
or StartTLS is required, with a CA file: a password never crosses the wire in clear text),
how a username becomes a DN (a DN template, or a search as a lookup account whose password
is read from a 0600 file, never stored), where groups are searched, the group DN -> role
ARN mapping, the clearance attribute with its cap, and the longest session.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from vallum.iam.directory import Directory, IAMError, NoSuchEntity
from vallum.iam.store import Op
from vallum.security.mac.labels import LabelError
from vallum.security.mac.labels import parse as parse_label

KIND = "ldap_directory"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_URL = re.compile(r"(ldaps?)://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\])(?::([0-9]{1,5}))?/?")
_ROLE_ARN = re.compile(r"arn:aws:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_\-/]{1,64}")
_ATTR = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")
_SEARCH_FIELDS = ("user_filter", "lookup_dn", "lookup_password_file")
MAX_MAPPINGS = 1000
MAX_NESTING = 16
MIN_SESSION, MAX_SESSION = 900, 43200
FIELDS = ("name", "url", "start_tls", "ca_file", "user_dn_template", "user_search_base",
          "user_filter", "lookup_dn", "lookup_password_file", "group_search_base",
          "group_filter", "member_attribute", "nesting", "roles", "clearance_attribute",
          "max_clearance", "max_session", "timeout")


def normal_dn(dn: str) -> str:
    """A DN as mappings compare it: no spaces around separators, lower case (the attributes
    of the names used here, cn/ou/dc/uid, match case-insensitively)."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except (LDAPInvalidDnError, TypeError, ValueError):
        parts = []
    if not parts or not all(attr and value for attr, value, _ in parts):
        raise IAMError(f"not a distinguished name: {dn!r}")
    return "".join(f"{attr}={value}{sep}" for attr, value, sep in parts).lower()


def directory_arn(account: str, name: str) -> str:
    """How a role's trust policy names the directory (``Principal: {"Federated": ...}``)."""
    return f"arn:aws:iam::{account}:ldap-provider/{name}"


def _text(args: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        if required:
            raise IAMError(f"missing required field(s): {key}")
        return None
    if not isinstance(value, str) or len(value) > 1024 or "\x00" in value:
        raise IAMError(f"{key} must be a string of at most 1024 characters")
    return value


def _filter(value: str | None, key: str, placeholder: bool) -> str | None:
    """A search filter: parenthesised, balanced, with ``{username}`` (once or more) exactly
    when asked."""
    if value is None:
        return None
    depth = 0
    for ch in value:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth != 0 or not (value.startswith("(") and value.endswith(")")):
        raise IAMError(f"{key} must be one parenthesised LDAP filter")
    uses = value.count("{username}")
    if (uses > 0) != placeholder or value.count("{") != uses or value.count("}") != uses:
        raise IAMError(f"{key} must hold {'the' if placeholder else 'no'} {{username}} "
                       "placeholder and no other braces")
    return value


def _abs_file(value: str | None, key: str) -> str | None:
    if value is not None and not os.path.isabs(value):
        raise IAMError(f"{key} must be an absolute path")
    return value


def lookup_password(row: dict[str, Any]) -> str:
    """The lookup account's password, read from its file at each use (so rotating it is a
    file write) and refused unless only its owner may read it (0600 or stricter)."""
    path = Path(row["lookup_password_file"])
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise PermissionError(f"{path} is readable by others (chmod 600)")
    return path.read_text().rstrip("\n")


def _identify(args: dict[str, Any], row: dict[str, Any]) -> None:
    """How a username becomes a DN: a template, or a search as the lookup account."""
    template = _text(args, "user_dn_template", False)
    base = _text(args, "user_search_base", False)
    if (template is None) == (base is None):
        raise IAMError("give exactly one of user_dn_template or user_search_base")
    if template is not None:
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9-]{0,63})=\{username\},([^{}]+)", template)
        if m is None:
            raise IAMError("user_dn_template must be ATTRIBUTE={username},BASE, e.g. "
                           "uid={username},ou=people,dc=example,dc=org")
        normal_dn(template.replace("{username}", "x"))
        extra = [k for k in _SEARCH_FIELDS if args.get(k) not in (None, "")]
        if extra:
            raise IAMError(f"{', '.join(extra)}: for user_search_base, not a DN template")
        row["user_dn_template"] = template
        return
    row["user_search_base"] = normal_dn(base or "")
    row["user_filter"] = _filter(_text(args, "user_filter"), "user_filter", True)
    row["lookup_dn"] = normal_dn(_text(args, "lookup_dn") or "")
    row["lookup_password_file"] = _abs_file(_text(args, "lookup_password_file"),
                                            "lookup_password_file")
    try:
        lookup_password(row)
    except OSError as exc:
        raise IAMError(f"cannot use lookup_password_file: {exc}") from None


def _roles(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value or len(value) > MAX_MAPPINGS:
        raise IAMError(f"roles must map 1-{MAX_MAPPINGS} group DNs to role ARNs")
    out: dict[str, str] = {}
    for group, role in value.items():
        if not isinstance(role, str) or not _ROLE_ARN.fullmatch(role):
            raise IAMError(f"roles[{group!r}] must be a role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        out[normal_dn(group)] = role
    return out


def put_directory(d: Directory, args: dict[str, Any]) -> dict[str, Any]:
    """Create or replace a directory (root only: server/admin.py lists it in ROOT_ONLY)."""
    unknown = sorted(set(args) - set(FIELDS) - {"account"})
    if unknown:
        raise IAMError(f"unknown field(s): {', '.join(unknown)}")
    name = _text(args, "name") or ""
    if not _NAME.fullmatch(name):
        raise IAMError("name must be 1-64 of [A-Za-z0-9_-]")
    url = _text(args, "url") or ""
    m = _URL.fullmatch(url)
    if not m:
        raise IAMError("url must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    start_tls = args.get("start_tls", m.group(1) == "ldap")
    if not isinstance(start_tls, bool):
        raise IAMError("start_tls must be true or false")
    if m.group(1) == "ldap" and not start_tls:
        raise IAMError("a password is never sent in clear text: use ldaps:// or start_tls")
    if m.group(1) == "ldaps" and start_tls:
        raise IAMError("start_tls is for ldap:// URLs (ldaps:// is TLS from the start)")
    row: dict[str, Any] = {"name": name, "url": url.rstrip("/"), "start_tls": start_tls,
                           "ca_file": _abs_file(_text(args, "ca_file"), "ca_file"),
                           "created": time.time()}
    if not os.path.isfile(row["ca_file"]):
        raise IAMError("ca_file must name a readable PEM file on the gateway")
    _identify(args, row)
    row["group_search_base"] = normal_dn(_text(args, "group_search_base") or "")
    row["group_filter"] = _filter(_text(args, "group_filter", False) or "(objectClass=groupOfNames)",
                                  "group_filter", False)
    member = _text(args, "member_attribute", False) or "member"
    if not _ATTR.fullmatch(member):
        raise IAMError("member_attribute must be an attribute name")
    row["member_attribute"] = member
    nesting = args.get("nesting", 8)
    if not isinstance(nesting, int) or isinstance(nesting, bool) or not 1 <= nesting <= MAX_NESTING:
        raise IAMError(f"nesting must be 1-{MAX_NESTING} (levels of groups in groups)")
    row["nesting"] = nesting
    row["roles"] = _roles(args.get("roles"))
    attr, cap = _text(args, "clearance_attribute", False), _text(args, "max_clearance", False)
    if (attr is None) != (cap is None):
        raise IAMError("clearance_attribute and max_clearance go together")
    if attr is not None:
        if not _ATTR.fullmatch(attr):
            raise IAMError("clearance_attribute must be an attribute name")
        try:
            row["max_clearance"] = parse_label(cap or "").banner()
        except LabelError as exc:
            raise IAMError(f"invalid max_clearance: {exc}") from None
        row["clearance_attribute"] = attr
    for key, lo, hi, default in (("max_session", MIN_SESSION, MAX_SESSION, 3600),
                                 ("timeout", 1, 60, 10)):
        value = args.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise IAMError(f"{key} must be {lo}-{hi} seconds")
        row[key] = value
    d.store.apply([Op("put", KIND, row)])
    return describe(row)


def describe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in (*FIELDS, "created") if k in row}


def get_directory(d: Directory, args: dict[str, Any]) -> dict[str, Any]:
    row = d.store.get(KIND, name=_text(args, "name") or "")
    if row is None:
        raise NoSuchEntity("no such LDAP directory")
    return describe(row)


def list_directories(d: Directory) -> dict[str, Any]:
    return {"directories": [describe(r) for r in d.store.scan(KIND)]}


def delete_directory(d: Directory, args: dict[str, Any]) -> dict[str, Any]:
    name = _text(args, "name") or ""
    if d.store.get(KIND, name=name) is None:
        raise NoSuchEntity("no such LDAP directory")
    d.store.apply([Op("delete", KIND, {"name": name})])
    return {}


def chosen(d: Directory, name: str | None) -> dict[str, Any] | None:
    """The directory a login names (``LDAPDirectory``), else the only one registered."""
    if name:
        return d.store.get(KIND, name=name)
    rows = d.store.scan(KIND)
    return rows[0] if len(rows) == 1 else None
