"""One IAM query call: its caller's account, its parameters, and its authorization.

Why authorization lives on the call: every action asks ``need(iam action, resource ARN)``
before it reads or writes anything, on the ARN AWS IAM uses, in the caller's own
account (the only account a call can name: another account's ARN is refused before any
lookup, so its answer says nothing of what exists there). The dispatcher refuses an
answer from an action that asked for nothing (fail closed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from vallum import authz
from vallum.iam.admin_keys import KEY as BOUNDARY_KEY
from vallum.iam.directory import Directory, IAMError, NoSuchEntity, policy_arn
from vallum.iam.principal import Principal
from vallum.server.iam_query import wire
from vallum.server.iam_query.wire import QueryError

_POLICY_ARN = re.compile(r"arn:aws:iam::([0-9]{12}|aws):policy/([A-Za-z0-9+=,.@_\-]{1,128})")


@dataclass
class Call:
    directory: Directory
    account: str
    caller: Principal
    params: dict[str, str]
    keys: dict[str, Any]                  # the request's global condition keys
    audit: dict[str, Any]
    asked: list[str] = field(default_factory=list)

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:iam::{self.account}:{kind}/{name}"

    def need(self, action: str, resource: str, keys: dict[str, Any] | None = None) -> None:
        """AccessDenied unless the caller's policies allow ``iam:action`` on ``resource``."""
        self.asked.append(action)
        if len(self.asked) == 1:
            self.audit.update(action=f"iam:{action}", target=resource)
        decision = authz.decide(self.caller, f"iam:{action}", resource,
                                authz.context_for({**self.keys, **(keys or {})}))
        self.audit.update(rule=decision.reason, decision="allow" if decision.allowed else "deny")
        if not decision.allowed:
            self.audit.update(action=f"iam:{action}", target=resource)
            raise denied(self.caller, action, resource, decision.reason)

    # -- parameters naming entities -----------------------------------------------
    def user_or_self(self) -> str:
        """UserName, or the calling user when it is omitted (AWS's implicit user)."""
        user = wire.name(self.params, "UserName", required=False)
        if user:
            return user
        if self.caller.user and not self.caller.role:
            return self.caller.user
        raise QueryError("ValidationError",
                         "Must specify userName when calling with non-User credentials")

    def policy_ref(self, action: str, param: str = "PolicyArn") -> tuple[str, str]:
        """(ARN, name) of a managed policy named by ARN. Another account's ARN is refused
        here, before any lookup; an AWS-managed one is NoSuchEntity once authorized."""
        ref = wire.text(self.params, param)
        m = _POLICY_ARN.fullmatch(ref)
        if not m:
            raise QueryError("InvalidInput", f"ARN {ref[:2048]} is not valid.")
        owner, name = m.groups()
        if owner not in (self.account, "aws"):
            self.audit.update(action=f"iam:{action}", target=ref, rule="another account's policy")
            raise denied(self.caller, action, ref, "another account's policy")
        return ref, name

    def managed(self, ref: str, name: str) -> dict[str, Any]:
        """The managed policy an authorized ARN names (AWS-managed ones do not exist here)."""
        if ref.startswith("arn:aws:iam::aws:"):
            raise NoSuchEntity(f"Policy {ref} does not exist or is not attachable.")
        try:
            return self.directory.policy(self.account, name)
        except NoSuchEntity:
            raise NoSuchEntity(f"Policy {ref} does not exist or is not attachable.") from None

    def boundary_now(self, kind: str, name: str) -> dict[str, str]:
        """iam:PermissionsBoundary of a call that changes what a user or role may do: the
        ARN of its current boundary (none, or no such entity: no key)."""
        if kind not in ("user", "role"):
            return {}
        try:
            row = (self.directory.user if kind == "user" else self.directory.role)(self.account,
                                                                                  name)
        except IAMError:
            return {}
        boundary = row.get("boundary")
        return {BOUNDARY_KEY: policy_arn(self.account, boundary)} if boundary else {}


def denied(caller: Principal, action: str, resource: str, rule: str) -> QueryError:
    return QueryError("AccessDenied", f"User: {caller.arn} is not authorized to perform: "
                      f"iam:{action} on resource: {resource}", 403, rule)
