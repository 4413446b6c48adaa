"""The one place every access decision is made.

Order: the platform root is allowed everything; otherwise the IAM evaluator
(vallum.iam.evaluate) decides from the caller's identity policies (capped by its session
policy and permissions boundary), the bucket policy, and the bucket's
PublicAccessBlock: explicit deny, then allow, then default deny; a bucket of another
account needs both sides.
Labels (MAC) come first and no policy, root included, overrides them:
``decide_labels`` (no read up, no write down, bucket label range) runs before any
policy when the context carries ``labels``; handlers call it directly once they know
the object's label (security/mac/rules.py holds the pure rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from vallum.iam.evaluate import Request as EvalRequest
from vallum.iam.evaluate import evaluate
from vallum.iam.identity import parsed
from vallum.iam.policy import Policy
from vallum.iam.principal import ANONYMOUS, Principal
from vallum.security.mac.labels import Label
from vallum.security.mac.rules import LabelRange, Subject

__all__ = ["ANONYMOUS", "Context", "Decision", "Principal", "context_for", "decide",
           "global_keys", "is_public"]

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
    labels: LabelCheck | None = None       # MAC inputs, decided before any policy
    trust_policy: Policy | None = None     # sts:AssumeRole: the role's trust policy, which
    #                                        must allow even inside the role's account


@dataclass(frozen=True)
class LabelCheck:
    """What MAC needs: who (Subject) and the label read and/or written."""

    subject: Subject
    read: Label | None = None              # the label of the object read
    write: Label | None = None             # the label a write gives
    bucket_range: LabelRange | None = None


def decide_labels(check: LabelCheck) -> Decision:
    """Mandatory access control alone: O(1) comparisons of precomputed labels."""
    subject = check.subject
    if check.read is not None and not subject.can_read(check.read):
        return Decision(False, f"mac: no read up: label {check.read} above session level "
                               f"{subject.describe()}", "mac", "no-read-up")
    if check.write is not None:
        label = check.write
        if not label.dominates(subject.write):
            return Decision(False, f"mac: no write down: label {label} below session level "
                                   f"{subject.write}", "mac", "no-write-down")
        rng = check.bucket_range
        if rng is not None and not rng.contains(label):
            return Decision(False, f"mac: label {label} outside bucket range "
                                   f"[{rng.floor}, {rng.ceiling}]", "mac", "bucket-range")
    return Decision(True, "mac: allowed", "mac", "")


# ---------------------------------------------------------------- the context

_ISO_LAST: tuple[int, str] = (-1, "")


def _iso(now: float) -> str:
    """aws:currenttime; formatted once per second, not once per request."""
    global _ISO_LAST
    second = int(now)
    last = _ISO_LAST
    if last[0] != second:
        last = _ISO_LAST = (second, datetime.fromtimestamp(second, timezone.utc)
                            .strftime("%Y-%m-%dT%H:%M:%SZ"))
    return last[1]


def global_keys(source_ip: str, secure: bool, now: float) -> dict[str, Any]:
    """The aws:* keys every request carries, whatever its API: where from, over TLS, when."""
    return {"aws:sourceip": source_ip, "aws:securetransport": "true" if secure else "false",
            "aws:currenttime": _iso(now), "aws:epochtime": str(int(now))}


@lru_cache(maxsize=1024)
def _restrict_public(pab_xml: str) -> bool:
    return "<RestrictPublicBuckets>true</RestrictPublicBuckets>" in pab_xml.replace(" ", "").replace("\n", "")


def context_for(keys: dict[str, Any], bucket: Any = None, *,
                object_tags: dict[str, str] | None = None,
                labels: LabelCheck | None = None) -> Context:
    """The one authorization-context builder (S3 requests, admin and compute calls, label
    downgrade and the policy simulator all use it, so none decides on less than another):
    the request's condition keys, and for a bucket (a meta ``BucketRecord``, or None) its
    owner, policy and PublicAccessBlock; the object's tags (``s3:ExistingObjectTag``) and
    MAC inputs when the caller has them."""
    ctx = Context(keys=dict(keys), labels=labels)
    if bucket is None:
        return ctx
    ctx.resource_owner = bucket.owner
    ctx.keys["aws:resourceaccount"] = ctx.keys["s3:resourceaccount"] = bucket.owner
    text = bucket.config.get("policy")
    if text:
        ctx.bucket_policy = parsed(text, "resource")
    pab = bucket.config.get("publicAccessBlock")
    ctx.restrict_public = bool(pab) and _restrict_public(pab)
    for k, v in (object_tags or {}).items():
        ctx.keys["s3:existingobjecttag/" + k.lower()] = v
    return ctx


# ---------------------------------------------------------------- the decision

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
    if context is not None and context.labels is not None:
        mac = decide_labels(context.labels)
        if not mac.allowed:
            return mac
    if principal.is_root:
        return Decision(True, "platform root")
    ctx = context or Context()
    resource_policies: tuple[tuple[str, Policy], ...] = ()
    blocked = False               # PublicAccessBlock set the bucket's public policy aside
    if ctx.trust_policy is not None:
        resource_policies = _labelled(ctx.trust_policy, "trust-policy")
    elif ctx.bucket_policy is not None:
        cross = principal.anonymous or (ctx.resource_owner is not None
                                        and ctx.resource_owner != principal.account)
        blocked = ctx.restrict_public and cross and is_public(ctx.bucket_policy)
        if not blocked:
            resource_policies = _labelled(ctx.bucket_policy)
    keys = {**ctx.keys, **principal.context_keys()}
    verdict = evaluate(EvalRequest(action, resource, keys, principal.caller()),
                       identity=narrowed(principal.policies, action, resource),
                       session=narrowed(principal.session_policies, action, resource),
                       boundary=narrowed(principal.boundary, action, resource),
                       resource=narrowed(resource_policies, action, resource),
                       resource_account=ctx.resource_owner,
                       require_resource=ctx.trust_policy is not None)
    if blocked and not verdict.allowed and not verdict.policy:
        # No explicit deny decided: the public policy set aside by the block did.
        return Decision(False, "public-access-block: RestrictPublicBuckets: the bucket's "
                        "public policy does not apply to this caller", "public-access-block",
                        "RestrictPublicBuckets")
    return Decision(verdict.allowed, verdict.reason, verdict.policy, verdict.statement)


# ---------------------------------------------------------------- statement index
# Why: a user with 50 statements paid for 50 action regexes, resource regexes and
# condition checks on every request, although only the statements naming this action
# and a resource that can lie in this bucket can ever apply. ``narrowed`` drops the
# others, once per (policies, action, bucket) and then from a cache. Dropping is an
# over-approximation in the safe direction only (a kept statement is still fully
# evaluated; a dropped one provably cannot apply) and keeps statement order and
# labels, so the verdict, its reason and the deciding statement are unchanged.

_NARROWED: dict[int, tuple[Any, dict[tuple[str, str], Any]]] = {}
_LABELLED: dict[int, tuple[Policy, tuple[tuple[str, Policy], ...]]] = {}


def _labelled(policy: Policy, label: str = "bucket-policy") -> tuple[tuple[str, Policy], ...]:
    """The same ``((label, policy),)`` tuple for the same parsed policy, so that
    ``narrowed`` (keyed by the tuple's identity) finds its views instead of starting over
    on every request to a bucket with a policy (or every AssumeRole of a role)."""
    hit = _LABELLED.get(id(policy))
    # The strong reference pins the id; a parsed policy is a bucket's or a role's trust
    # policy, never both, so its label is fixed.
    if hit is None or hit[0] is not policy or hit[1][0][0] != label:
        if len(_LABELLED) >= _MAX_SETS:
            _LABELLED.clear()
        hit = _LABELLED[id(policy)] = (policy, ((label, policy),))
    return hit[1]
_MAX_SETS = 4096          # distinct policy tuples remembered (then start over)
_MAX_VIEWS = 256          # (action, bucket) views per policy tuple


def _literal_head(pattern: str) -> str:
    """The part of a resource pattern before its first wildcard or ${variable}."""
    for i, c in enumerate(pattern):
        if c in "*?$":
            return pattern[:i]
    return pattern


def may_apply(st: Any, action: str, prefix: str) -> bool:
    """Can ``st`` apply to ``action`` on some resource starting with ``prefix``?"""
    if (st.action_re.fullmatch(action) is not None) == st.not_action:
        return False
    if st.resources is None or st.not_resource:
        return True
    for pattern in st.resources:
        head = _literal_head(pattern)
        n = min(len(head), len(prefix))
        if head[:n] == prefix[:n]:      # resource patterns match case-sensitively
            return True
    return False


def narrowed(policies: tuple[tuple[str, Policy], ...], action: str,
             resource: str) -> tuple[tuple[str, Policy], ...]:
    """``policies`` with only the statements that may apply to ``action`` on ``resource``."""
    if not policies:
        return policies
    slash = resource.find("/")
    prefix = resource if slash < 0 else resource[:slash + 1]   # the bucket, for S3 objects
    entry = _NARROWED.get(id(policies))
    if entry is None or entry[0] is not policies:   # the strong reference pins the id
        if len(_NARROWED) >= _MAX_SETS:
            _NARROWED.clear()
        entry = _NARROWED[id(policies)] = (policies, {})
    views = entry[1]
    view = views.get((action, prefix))
    if view is None:
        out = []
        for label, policy in policies:
            kept = tuple(st for st in policy.statements if may_apply(st, action, prefix))
            # A policy left empty stays in the list: a session policy that allows
            # nothing here must still cap what the identity policies grant.
            out.append((label, policy if len(kept) == len(policy.statements)
                        else replace(policy, statements=kept)))
        view = tuple(out)
        if len(views) >= _MAX_VIEWS:
            views.clear()
        views[(action, prefix)] = view
    return view
