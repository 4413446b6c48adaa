"""Certificate mapping rules: which role of which account a verified client certificate
may take on, and the highest clearance it may bring.

The rules are a TOML file the platform root names (``vallum serve --tls-client-map``),
re-read when it changes; an unreadable or invalid file maps nothing (fail closed). Each
``[[rule]]`` has one or more selectors, all of which must match (shell-style globs,
case-sensitive): ``subject`` (the RFC 4514 subject DN), ``cn``, ``email`` (an rfc822Name
SAN), ``upn`` (a Microsoft UPN SAN, e.g. ``[0-9]*@mil`` for a numeric identifier),
``issuer``; then ``account`` and ``role`` or ``user`` (the target), ``max_clearance`` (the cap: the
lowest level when absent), optional ``clearance_attribute`` (a subject attribute whose
value is the certificate's clearance, e.g. ``OU``) and ``bind`` (default true: a key
minted from the certificate works only over a connection presenting it). First match wins.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vallum.iam import clearance
from vallum.iam.certauth import ClientCertificate, attribute
from vallum.security.mac.labels import LabelError
from vallum.security.mac.labels import parse as parse_label

log = logging.getLogger("vallum.certmap")
SELECTORS = ("subject", "cn", "email", "upn", "issuer")
_FIELDS = set(SELECTORS) | {"account", "role", "user", "max_clearance", "clearance_attribute",
                            "bind"}
_ACCOUNT = re.compile(r"[0-9]{12}")
_ROLE = re.compile(r"[A-Za-z0-9+=,.@_\-]{1,64}")
_ATTRS = ("CN", "OU", "O", "TITLE", "SERIALNUMBER", "UID")


@dataclass(frozen=True)
class Rule:
    selectors: tuple[tuple[str, str], ...]
    account: str
    role: str | None           # exactly one of role and user
    user: str | None
    max_clearance: str | None
    clearance_attribute: str | None
    bind: bool
    index: int

    def matches(self, c: ClientCertificate) -> bool:
        values = {"subject": [c.subject], "cn": [c.common_name], "email": c.emails(),
                  "upn": c.upns(), "issuer": [c.issuer]}
        return all(any(fnmatch.fnmatchcase(v, pattern) for v in values[kind])
                   for kind, pattern in self.selectors)


def parse(doc: dict[str, Any], where: str) -> list[Rule]:
    """The rules of a TOML document; ValueError naming the rule and field at fault."""
    extra = set(doc) - {"rule"}
    if extra:
        raise ValueError(f"{where}: unknown key(s) {sorted(extra)}; rules are [[rule]] tables")
    rows = doc.get("rule", [])
    if not isinstance(rows, list):
        raise ValueError(f"{where}: rule must be an array of tables ([[rule]])")
    rules = []
    for i, row in enumerate(rows, 1):
        at = f"{where}: rule {i}"
        if not isinstance(row, dict):
            raise ValueError(f"{at} is not a table")
        unknown = set(row) - _FIELDS
        if unknown:
            raise ValueError(f"{at}: unknown field(s) {sorted(unknown)}")
        selectors = tuple((k, row[k]) for k in SELECTORS if k in row)
        if not selectors or not all(isinstance(v, str) and v for _, v in selectors):
            raise ValueError(f"{at}: give at least one of {', '.join(SELECTORS)} (non-empty strings)")
        account, role, user = row.get("account"), row.get("role"), row.get("user")
        if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
            raise ValueError(f"{at}: account must be a 12-digit account id")
        if (role is None) == (user is None):
            raise ValueError(f"{at}: give exactly one of role and user")
        target = role if role is not None else user
        if not isinstance(target, str) or not _ROLE.fullmatch(target):
            raise ValueError(f"{at}: {'role' if role is not None else 'user'} must be a name")
        cap = row.get("max_clearance")
        if cap is not None:
            try:
                cap = parse_label(cap).banner() if isinstance(cap, str) else None
            except LabelError as exc:
                raise ValueError(f"{at}: invalid max_clearance: {exc}") from None
            if cap is None:
                raise ValueError(f"{at}: max_clearance must be a label")
        attr = row.get("clearance_attribute")
        if attr is not None and (not isinstance(attr, str) or attr.upper() not in _ATTRS):
            raise ValueError(f"{at}: clearance_attribute must be one of {', '.join(_ATTRS)}")
        bind = row.get("bind", True)
        if not isinstance(bind, bool):
            raise ValueError(f"{at}: bind must be true or false")
        rules.append(Rule(selectors, account, role, user, cap, attr, bind, i))
    return rules


def load(path: Path) -> list[Rule]:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    return parse(doc, str(path))


class Rules:
    """A rules file, re-read when its mtime or size changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._rules: list[Rule] = []

    def current(self) -> list[Rule]:
        if self.path is None:
            return []
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._rules, self._stamp = load(self.path), stamp
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            log.warning("certificate mapping rules %s refused: %s (mapping nothing)", self.path, exc)
            self._rules, self._stamp = [], None
        return self._rules

    def match(self, c: ClientCertificate) -> Rule | None:
        return next((r for r in self.current() if r.matches(c)), None)


def clearance_of(rule: Rule, c: ClientCertificate) -> str:
    """The clearance the certificate claims under ``rule`` (a banner: the lowest level
    when the rule maps none or the certificate carries none, never None, which a session
    ceiling reads as the root's); LabelError when it is not a label, ValueError when it is
    above the rule's cap."""
    lowest = clearance.LOWEST.banner()
    if rule.clearance_attribute is None:
        return lowest
    raw = attribute(c.cert, rule.clearance_attribute)
    if raw is None:
        return lowest
    level = parse_label(raw)
    if not clearance.label(rule.max_clearance).dominates(level):
        raise ValueError(f"the certificate's {rule.clearance_attribute} ({level.banner()}) is "
                         f"above the clearance rule {rule.index} may grant")
    return level.banner()


_rules: dict[str, Rules] = {}


def rules(path: Path | None) -> Rules:
    """This process's rules for ``path`` (one reader per path, re-read on change)."""
    key = str(path)
    if key not in _rules:
        _rules[key] = Rules(path)
    return _rules[key]
