"""An LDAP login (STS AssumeRoleWithLDAPIdentity): bind as the user over TLS, read the
user's clearance attribute, walk the user's groups, pick the mapped role.

Why each rule:
- An empty password is refused before any network traffic: in LDAP a simple bind with a
  DN and no password is an *unauthenticated* bind, which many servers accept as success.
- The password goes only to a server whose certificate chains to the directory's CA file
  (ldaps:// or StartTLS; a StartTLS that fails ends the login before the bind).
- A username is 2-64 of ``[A-Za-z0-9_+=,.@-]`` (it becomes the role session name, so two
  people can never share one session ARN) and is still escaped wherever it is used: RFC
  4514 in a DN template, RFC 4515 in a search filter. Group DNs put in filters are
  escaped too (a DN may hold ``*``, ``(`` or ``\\``).
- Groups come only from the configured search base and filter, found by the directory's
  own ``member`` values (never from attributes a user can write), and map to roles by
  their full DN: a same-named group elsewhere maps to nothing. Nesting is walked level by
  level to the configured depth (a cycle ends the walk).
- The clearance attribute is the session's ceiling, refused above the directory's cap.
Errors are data: ``LDAPLoginError`` carries the STS error MinIO/AWS give.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from vallum.iam import clearance
from vallum.iam.evaluate import Caller
from vallum.iam.ldap_directories import directory_arn, lookup_password, normal_dn
from vallum.iam.principal import Principal
from vallum.security.mac.labels import LabelError
from vallum.security.mac.labels import parse as parse_label

USERNAME = re.compile(r"[A-Za-z0-9_+=,.@\-]{2,64}", re.ASCII)
MAX_PASSWORD = 1024
MAX_GROUPS = 500
FAILED = "LDAP authentication failed"      # one answer: no user, wrong password, locked


class LDAPLoginError(Exception):
    """A refused login; ``code``/``status`` are the STS error, ``rule`` the audit's why."""

    def __init__(self, code: str, message: str, status: int = 400, rule: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.rule = rule or message


def refused(rule: str) -> LDAPLoginError:
    return LDAPLoginError("InvalidParameterValue", FAILED, 400, rule)


def unreachable(rule: str) -> LDAPLoginError:
    return LDAPLoginError("IDPCommunicationError", "The LDAP directory could not be reached "
                          "securely", 400, rule)


@dataclass(frozen=True)
class Identity:
    """A user the directory vouched for: its DN, its groups (normalised DNs, nesting
    included) and the raw clearance attribute values."""

    directory: dict[str, Any]
    username: str
    dn: str
    groups: frozenset[str]
    clearance_values: tuple[str, ...] = ()


def check_credentials(username: str, password: str) -> None:
    """Refuse before any bind: missing values (MinIO's MissingParameter), a username that
    could not be a session name, an oversized password."""
    if not username or not password:
        raise LDAPLoginError("MissingParameter", "LDAPUsername and LDAPPassword are required "
                             "(an empty password is an unauthenticated bind)", 400,
                             "ldap: empty username or password")
    if not USERNAME.fullmatch(username):
        raise LDAPLoginError("InvalidParameterValue", "LDAPUsername must be 2-64 of "
                             "[A-Za-z0-9_+=,.@-]", 400, "ldap: malformed username")
    if len(password) > MAX_PASSWORD or "\x00" in password:
        raise refused("ldap: malformed password")


def _server(row: dict[str, Any]) -> ldap3.Server:
    url = urlsplit(row["url"])
    # version None: ldap3 starts from ssl.create_default_context (TLS 1.2 or later), and
    # checks the certificate's names against the host after the handshake.
    tls = ldap3.Tls(ca_certs_file=row["ca_file"], validate=ssl.CERT_REQUIRED)
    return ldap3.Server(url.hostname or "", port=url.port, use_ssl=url.scheme == "ldaps",
                        tls=tls, get_info=ldap3.NONE, connect_timeout=row["timeout"])


def _close(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except (LDAPException, OSError):
        pass                   # a connection that broke (e.g. a refused certificate)


def _connect(row: dict[str, Any], dn: str, password: str) -> ldap3.Connection:
    """A connection bound as ``dn``, TLS first; LDAPLoginError when the bind fails."""
    conn = ldap3.Connection(_server(row), user=dn, password=password,
                            authentication=ldap3.SIMPLE, receive_timeout=row["timeout"],
                            read_only=True, auto_referrals=False, raise_exceptions=False)
    try:
        conn.open()
        if row["start_tls"] and not conn.start_tls():
            raise unreachable("ldap: StartTLS failed")
        ok = conn.bind()
    except (LDAPException, OSError, ValueError) as exc:
        _close(conn)
        raise unreachable(f"ldap: {type(exc).__name__}") from None
    except LDAPLoginError:
        _close(conn)
        raise
    if not ok:
        why = conn.result.get("description", "bind failed") if conn.result else "bind failed"
        _close(conn)
        raise refused(f"ldap: bind refused ({why})")
    return conn


def _user_dn(row: dict[str, Any], username: str) -> str:
    """The DN to bind as: the template with the escaped username, or the one entry the
    lookup account finds (none, or several, is a failed login)."""
    if "user_dn_template" in row:
        return row["user_dn_template"].replace("{username}", escape_rdn(username))
    try:
        secret = lookup_password(row)
    except OSError as exc:
        raise unreachable(f"ldap: lookup password file: {exc}") from None
    conn = _connect(row, row["lookup_dn"], secret)
    try:
        filt = row["user_filter"].replace("{username}", escape_filter_chars(username))
        conn.search(row["user_search_base"], filt, ldap3.SUBTREE, attributes=[], size_limit=2)
        found = [e["dn"] for e in conn.response or () if e.get("type") == "searchResEntry"]
    except LDAPException as exc:
        raise unreachable(f"ldap: user search: {type(exc).__name__}") from None
    finally:
        _close(conn)
    if len(found) != 1:
        raise refused(f"ldap: the user search found {len(found)} entries")
    return found[0]


def _groups(conn: ldap3.Connection, row: dict[str, Any], dn: str) -> frozenset[str]:
    """Every group of ``dn`` under the group base, nesting walked level by level."""
    seen: set[str] = set()
    frontier = [dn]
    member = row["member_attribute"]
    for _ in range(row["nesting"]):
        if not frontier:
            break
        anyof = "".join(f"({member}={escape_filter_chars(x)})" for x in frontier)
        filt = f"(&{row['group_filter']}(|{anyof}))"
        try:
            conn.search(row["group_search_base"], filt, ldap3.SUBTREE, attributes=[],
                        size_limit=MAX_GROUPS)
        except LDAPException as exc:
            raise unreachable(f"ldap: group search: {type(exc).__name__}") from None
        if conn.result and conn.result.get("description") not in ("success",):
            raise unreachable(f"ldap: group search: {conn.result.get('description')}")
        frontier = []
        for entry in conn.response or ():
            if entry.get("type") != "searchResEntry":
                continue
            key = normal_dn(entry["dn"])
            if key not in seen:
                seen.add(key)
                frontier.append(entry["dn"])
        if len(seen) > MAX_GROUPS:
            raise unreachable("ldap: too many groups")
    return frozenset(seen)


def login(row: dict[str, Any], username: str, password: str) -> Identity:
    """Bind as the user and read what the directory says about it; LDAPLoginError if not."""
    check_credentials(username, password)
    dn = _user_dn(row, username)
    conn = _connect(row, dn, password)
    try:
        values: tuple[str, ...] = ()
        attr = row.get("clearance_attribute")
        if attr:
            try:
                conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attr])
            except LDAPException as exc:
                raise unreachable(f"ldap: reading the user: {type(exc).__name__}") from None
            for entry in conn.response or ():
                if entry.get("type") == "searchResEntry":
                    raw = entry.get("attributes", {}).get(attr, [])
                    values = tuple(str(v) for v in (raw if isinstance(raw, list) else [raw]))
        groups = _groups(conn, row, dn)
    finally:
        _close(conn)
    return Identity(row, username, dn, groups, values)


def ceiling(ident: Identity) -> str:
    """The session's clearance ceiling: the clearance attribute, within the directory's
    cap; the lowest level when the directory maps none or the user has none."""
    row = ident.directory
    attr = row.get("clearance_attribute")
    if not attr or not ident.clearance_values:
        return clearance.LOWEST.banner()
    if len(ident.clearance_values) != 1:
        raise LDAPLoginError("IDPRejectedClaim", f"The {attr} attribute has several values",
                             403, f"ldap: several {attr} values")
    try:
        level = parse_label(ident.clearance_values[0])
    except LabelError:
        raise LDAPLoginError("IDPRejectedClaim", f"The {attr} attribute is not a clearance",
                             403, f"ldap: {attr} is not a clearance") from None
    if not clearance.label(row.get("max_clearance")).dominates(level):
        raise LDAPLoginError("IDPRejectedClaim", f"The {attr} attribute is above the "
                             "clearance this directory may grant", 403,
                             f"ldap: {attr} {level.banner()} above the cap")
    return level.banner()


def role_for(ident: Identity, requested: str | None) -> str:
    """The role ARN the user's groups map to: ``requested`` if one of them, else the only
    one. No mapped group is MinIO's "expecting a policy" refusal."""
    mapped = {role for group, role in ident.directory["roles"].items() if group in ident.groups}
    if requested:
        if requested not in mapped:
            raise LDAPLoginError("AccessDenied", "Not authorized to perform "
                                 "sts:AssumeRoleWithLDAPIdentity", 403,
                                 "ldap: the role is not mapped to the user's groups")
        return requested
    if not mapped:
        raise LDAPLoginError("InvalidParameterValue", "expecting a role to be mapped to one "
                             "of the user's groups - rejecting this request", 400,
                             "ldap: no group of the user maps to a role")
    if len(mapped) > 1:
        raise LDAPLoginError("InvalidParameterValue", "the user's groups map to several "
                             "roles: name one with RoleArn", 400, "ldap: several roles")
    return next(iter(mapped))


@dataclass(frozen=True)
class LDAPIdentity(Principal):
    """The caller as a trust policy sees it: the directory's ARN in the role's account,
    matched only by ``Principal: {"Federated": ...}``."""

    def caller(self) -> Caller:
        return Caller(self.arn, self.account, "", False, federated=True)

    def context_keys(self) -> dict[str, Any]:
        return {"aws:principaltype": "LDAPIdentity"}


def caller_of(ident: Identity, account: str) -> LDAPIdentity:
    return LDAPIdentity("", account, False, arn=directory_arn(account, ident.directory["name"]),
                        user_id=ident.dn)
