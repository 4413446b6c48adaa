"""Admin API calls for storage quotas and usage (``POST /-/admin/v1/<Action>``).

- ``SetAccountQuota {account, max_bytes, max_objects}``: the platform root only.
- ``SetBucketQuota {bucket, max_bytes, max_objects}``: the root, or a caller of the bucket
  owner's account allowed ``vallum:PutBucketQuota`` on the bucket. A null limit removes it.
- ``SetAccountRateLimit {account, rps, burst}``: the platform root only; ``rps`` null
  removes the limit (server/rate_limits.py).
- ``GetUsage {account?, day?}``: bytes, objects and in-flight part bytes per bucket and in
  all, with the quotas and the rate limit, and the requests by class and the bytes in and out
  (service/usage.py): in all, or of one UTC ``day`` (YYYY-MM-DD). The root sees any account
  (every account without ``account``), others their own with ``vallum:GetUsage`` on
  ``arn:aws:iam::ACCOUNT:root``.
- ``GetUsageMetrics {account?}``: the same totals per account in Prometheus' text format
  (signed like every admin call: account usage and bucket names are not for /-/metrics).

Usage by label lists only the labels the caller may read, and the totals it reports are
the sums of those (a hidden level must not change what a lower-cleared admin sees); the
requests into a bucket whose lowest label the caller may not read are left out the same
way. The quota itself counts every level: docs/quotas.md names that residual channel.
"""

from __future__ import annotations

from typing import Any

from vallum import authz
from vallum.http import Response
from vallum.iam.directory import IAMError
from vallum.iam.principal import Principal
from vallum.meta.records import Quota, Usage
from vallum.s3 import errors
from vallum.s3.handlers import labels
from vallum.security.mac.labels import LabelError
from vallum.security.mac.rules import Subject
from vallum.server import rate_limits, usage_report
from vallum.service import storage_quotas as quotas
from vallum.service.usage import METER

ACTIONS = frozenset({"SetAccountQuota", "SetBucketQuota", "SetAccountRateLimit", "GetUsage",
                     "GetUsageMetrics"})


async def handle(services, principal: Principal, name: str, args: dict[str, Any],
                 audit: dict[str, Any]) -> dict[str, Any] | Response:
    if name == "SetAccountQuota":
        return await _set_account(services, principal, args, audit)
    if name == "SetBucketQuota":
        return await _set_bucket(services, principal, args, audit)
    if name == "SetAccountRateLimit":
        return _set_rate(services, principal, args, audit)
    out = await _usage(services, principal, args, audit)
    if name == "GetUsageMetrics":
        return Response(200, {"content-type": usage_report.PROMETHEUS_TYPE},
                        usage_report.prometheus(out["accounts"]).encode())
    return out


def _allow(principal: Principal, action: str, resource: str, audit: dict[str, Any]) -> None:
    audit.update(action=action, target=resource)
    decision = authz.decide(principal, action, resource)
    audit["rule"] = decision.reason
    if not decision.allowed:
        raise errors.AccessDenied(f"not authorized to perform {action} on {resource}")


def _quota(args: dict[str, Any]) -> Quota | None:
    quota = quotas.parse_quota(args)
    return None if quota.max_bytes is None and quota.max_objects is None else quota


async def _set_account(services, principal: Principal, args: dict[str, Any],
                       audit: dict[str, Any]) -> dict[str, Any]:
    audit["action"] = "vallum:SetAccountQuota"
    if not principal.is_root:
        audit["rule"] = "root only"
        raise errors.AccessDenied("Only the platform root sets account quotas.")
    account = services.iam.directory.account(_field(args, "account"))["id"]
    audit.update(target=f"arn:aws:iam::{account}:root", rule="platform root")
    quota = _quota(args)
    await services.meta.set_quota(f"account:{account}", quota)
    return {"account": account, "quota": _quota_out(quota)}


def _set_rate(services, principal: Principal, args: dict[str, Any],
              audit: dict[str, Any]) -> dict[str, Any]:
    audit["action"] = "vallum:SetAccountRateLimit"
    if not principal.is_root:
        audit["rule"] = "root only"
        raise errors.AccessDenied("Only the platform root sets account rate limits.")
    account = services.iam.directory.account(_field(args, "account"))["id"]
    audit.update(target=f"arn:aws:iam::{account}:root", rule="platform root")
    limit = rate_limits.parse_limit(args)
    rate_limits.current(services).set(account, limit)
    return {"account": account, "rate_limit": _rate_out(limit)}


def _rate_out(limit: tuple[float, float] | None) -> dict[str, float] | None:
    return None if limit is None else {"rps": limit[0], "burst": limit[1]}


async def _set_bucket(services, principal: Principal, args: dict[str, Any],
                      audit: dict[str, Any]) -> dict[str, Any]:
    name = _field(args, "bucket")
    resource = f"arn:aws:s3:::{name}"
    bucket = await services.meta.get_bucket(name)
    # Another account's bucket answers as a missing one: its existence is not the caller's.
    if bucket is None or (not principal.is_root and bucket.owner != principal.account):
        audit.update(action="vallum:PutBucketQuota", target=resource, rule="no such bucket")
        raise errors.NoSuchBucket(BucketName=name)
    _allow(principal, "vallum:PutBucketQuota", resource, audit)
    quota = _quota(args)
    await services.meta.set_quota(f"bucket:{name}", quota)
    return {"bucket": name, "quota": _quota_out(quota)}


async def _usage(services, principal: Principal, args: dict[str, Any],
                 audit: dict[str, Any]) -> dict[str, Any]:
    d = services.iam.directory
    if principal.is_root:
        ref = args.get("account")
        accounts = [d.account(ref)["id"]] if ref else [a["id"] for a in d.list_accounts()]
        if not ref:
            accounts += [principal.account, ""]         # the root's own buckets; anonymous callers
        audit.update(action="vallum:GetUsage", rule="platform root")
    else:
        if args.get("account") not in (None, "", principal.account):
            raise errors.AccessDenied("An account admin sees only its own account's usage.")
        accounts = [principal.account]
        _allow(principal, "vallum:GetUsage", f"arn:aws:iam::{principal.account}:root", audit)
    day = usage_report.parse_day(args.get("day"))
    try:
        who = labels.cached_subject(principal.clearance, principal.session_level, principal.is_root)
    except (LabelError, PermissionError):
        raise errors.AccessDenied() from None
    await METER.flush(services.meta)        # this process's counts so far
    accounts = list(dict.fromkeys(accounts))
    rows = await services.meta.request_usage(accounts, day)
    out = {}
    for account in accounts:
        out[account] = await _account_usage(services, account, who, principal.is_root,
                                             [r for r in rows if r[1] == account])
        out[account]["rate_limit"] = _rate_out(rate_limits.current(services).get(account))
    return {"accounts": out, **({"day": day} if day else {})}


async def _account_usage(services, account: str, who: Subject, is_root: bool,
                         rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    buckets: dict[str, dict[str, Any]] = {}
    total = Usage()
    for name, usage in (await services.meta.account_usage(account)).items():
        shown = _visible(usage, who)
        total.add(shown)
        buckets[name] = {**_usage_out(shown),
                         "quota": _quota_out(await services.meta.get_quota(f"bucket:{name}"))}
    requests = usage_report.zero()
    for _, _, name, *counts in rows:
        if name and not await _bucket_visible(services, name, who, is_root):
            continue            # a bucket above the caller, or gone (the root only sees those)
        usage_report.add(requests, counts)
        if name:
            usage_report.add(buckets.setdefault(name, {}).setdefault("requests", usage_report.zero()),
                             counts)
    for entry in buckets.values():
        entry.setdefault("requests", usage_report.zero())
    return {**_usage_out(total), "quota": _quota_out(await services.meta.get_quota(f"account:{account}")),
            "requests": requests, "buckets": buckets}


async def _bucket_visible(services, name: str, who: Subject, is_root: bool) -> bool:
    """The caller may see a bucket's request counts: it may read the bucket's lowest label.
    A bucket no longer there has no label to judge by: only the platform root sees it."""
    bucket = await services.meta.get_bucket(name)
    if bucket is None:
        return is_root
    rng = labels.bucket_range(bucket)
    return rng is None or who.can_read(rng.floor)


def _visible(usage: Usage, who: Subject) -> Usage:
    """The part of ``usage`` at labels ``who`` may read."""
    shown = Usage()
    for text, (size, objects, pending) in usage.by_label.items():
        if not text or who.can_read(labels.label_of(text)):
            shown.count(text, size, objects, pending)
    return shown


def _usage_out(u: Usage) -> dict[str, Any]:
    return {"bytes": u.bytes, "objects": u.objects, "pending_bytes": u.pending,
            "by_label": {k or "(none)": {"bytes": b, "objects": o, "pending_bytes": p}
                         for k, (b, o, p) in sorted(u.by_label.items())}}


def _quota_out(q: Quota | None) -> dict[str, Any] | None:
    return None if q is None else {"max_bytes": q.max_bytes, "max_objects": q.max_objects}


def _field(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise IAMError(f"missing required field: {name}")
    return value
