"""Who a request is from, after authentication: what authz.decide() needs to know."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from vallum.iam.evaluate import ANONYMOUS_CALLER, Caller
from vallum.iam.policy import Policy

PLATFORM_ARN = "arn:aws:iam::000000000000:root"


@dataclass(frozen=True)
class Principal:
    access_key: str | None       # None: anonymous
    account: str                 # account id (bucket owner id); the root's canonical id
    is_root: bool = False        # the platform root: allowed everything
    user: str | None = None      # IAM user name (also for GetSessionToken sessions)
    groups: tuple[str, ...] = ()
    role: str | None = None      # role name, for AssumeRole sessions
    session_name: str | None = None
    arn: str = "*"
    policies: tuple[tuple[str, Policy], ...] = ()          # identity policies, labelled
    session_policies: tuple[tuple[str, Policy], ...] = ()  # AssumeRole Policy parameter
    boundary: tuple[tuple[str, Policy], ...] = ()          # permissions boundary (user's or role's)
    tags: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    is_admin: bool = False       # the account's admin user (admin API within its account)
    certificate: str | None = None   # SHA-256 of the client certificate a session is bound to
    token_issued: float | None = None
    user_id: str = ""
    clearance: str | None = None     # banner text (MAC, security/mac/rules.py); None: the lowest level
    session_level: str | None = None  # a role's default session level (banner), if set
    level_fixed: bool = False        # session_level is fixed (scoped sessions): no header changes it
    source_identity: str | None = None   # a federated session's external identity (audited)

    @property
    def anonymous(self) -> bool:
        return self.access_key is None

    def caller(self) -> Caller:
        return self._caller

    def context_keys(self) -> dict[str, Any]:
        """The aws:* condition keys that describe the principal (shared: do not mutate)."""
        return self._context_keys

    # Computed once per principal object: the identity cache hands the same object to
    # every request of a key, so a request no longer rebuilds them (dataclasses.replace
    # makes a new object, with its own cache).
    @cached_property
    def _caller(self) -> Caller:
        if self.anonymous:
            return ANONYMOUS_CALLER
        role_arn = f"arn:aws:iam::{self.account}:role/{self.role}" if self.role else ""
        return Caller(self.arn, self.account, role_arn, False)

    @cached_property
    def _context_keys(self) -> dict[str, Any]:
        if self.anonymous:
            return {}
        keys: dict[str, Any] = {"aws:principalaccount": self.account, "aws:principalarn": self.arn,
                                "aws:userid": self.user_id or self.arn}
        if self.user:
            keys["aws:username"] = self.user
        keys["aws:principaltype"] = ("Account" if self.is_root else "AssumedRole" if self.role
                                     else "User")
        for k, v in self.tags.items():
            keys["aws:principaltag/" + k.lower()] = v
        if self.token_issued is not None:
            keys["aws:tokenissuetime"] = str(self.token_issued)
        return keys


ANONYMOUS = Principal(None, "", False)
