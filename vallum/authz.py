"""The one place every access decision is made.

Today the platform has one principal, root; identity policies, bucket policies
and labels (MAC) slot in here, in that order of evaluation, without the
callers changing. Anything not explicitly allowed is denied.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    access_key: str | None       # None: anonymous
    account: str
    is_root: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


ANONYMOUS = Principal(None, "", False)


def decide(principal: Principal, action: str, resource: str) -> Decision:
    """Allow or deny ``action`` (e.g. "s3:GetObject") on ``resource`` (an ARN)."""
    if principal.is_root:
        return Decision(True, "platform root")
    if principal.access_key is None:
        return Decision(False, "anonymous access is not granted by any policy")
    return Decision(False, "no policy allows this request (default deny)")
