"""The one place every access decision is made.

Order: the platform root is allowed everything; otherwise the IAM evaluator
(vallum.iam.evaluate) decides from the caller's identity policies (and session
policy), the bucket policy, and the bucket's PublicAccessBlock: explicit deny,
then allow, then default deny; a bucket of another account needs both sides.
Labels (MAC) will slot in before IAM here without the callers changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vallum.iam.evaluate import Request as EvalRequest
from vallum.iam.evaluate import evaluate
from vallum.iam.policy import Policy
from vallum.iam.principal import ANONYMOUS, Principal

__all__ = ["ANONYMOUS", "Context", "Decision", "Principal", "decide", "is_public"]

# Condition keys that tie a public-looking statement to known callers (AWS's list, abridged).
_RESTRICTING_KEYS = {"aws:sourceip", "aws:principalaccount", "aws:sourceaccount",
                     "aws:principalarn", "aws:sourcevpc", "aws:sourcevpce", "aws:principalorgid",
                     "aws:userid", "aws:sourcearn"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    policy: str = ""
    statement: str = ""


@dataclass
class Context:
    """What the request adds to the decision beyond who and what."""

    keys: dict[str, Any] = field(default_factory=dict)     # condition keys, lower-case names
    resource_owner: str | None = None      # account owning the bucket; None: the caller's own
    bucket_policy: Policy | None = None
    restrict_public: bool = False          # PublicAccessBlock RestrictPublicBuckets


def is_public(policy: Policy) -> bool:
    """Does the policy grant anything to everyone (no restricting condition)?"""
    for st in policy.statements:
        if st.effect != "Allow" or st.principal is None:
            continue
        everyone = st.principal.anyone if not st.not_principal else True
        if everyone and not any(c.key in _RESTRICTING_KEYS for c in st.conditions):
            return True
    return False


def decide(principal: Principal, action: str, resource: str,
           context: Context | None = None) -> Decision:
    """Allow or deny ``action`` (e.g. "s3:GetObject") on ``resource`` (an ARN)."""
    if principal.is_root:
        return Decision(True, "platform root")
    ctx = context or Context()
    resource_policies: list[tuple[str, Policy]] = []
    if ctx.bucket_policy is not None:
        cross = principal.anonymous or (ctx.resource_owner is not None
                                        and ctx.resource_owner != principal.account)
        if not (ctx.restrict_public and cross and is_public(ctx.bucket_policy)):
            resource_policies.append(("bucket-policy", ctx.bucket_policy))
    keys = {**ctx.keys, **principal.context_keys()}
    verdict = evaluate(EvalRequest(action, resource, keys, principal.caller()),
                       identity=principal.policies, session=principal.session_policies,
                       resource=resource_policies, resource_account=ctx.resource_owner)
    return Decision(verdict.allowed, verdict.reason, verdict.policy, verdict.statement)
