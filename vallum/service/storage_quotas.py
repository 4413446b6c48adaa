"""Storage quotas at the S3 boundary.

The metadata store judges every write against the quotas inside its own transaction
(meta/usage_sql.py), so nothing can slip past them. This module adds the early answer: an
upload whose declared length alone would pass a quota is refused before its body is read
and stored. Small bodies skip the early look (two reads per request would cost more than
storing and dropping a few KiB); the commit still refuses them.
"""

from __future__ import annotations

from vallum.meta.base import MetaStore, QuotaExceeded
from vallum.meta.records import BucketRecord, Quota, Usage
from vallum.s3 import errors

EARLY_CHECK_BYTES = 1024 * 1024


def scopes(bucket: BucketRecord) -> list[str]:
    return [f"bucket:{bucket.name}", f"account:{bucket.owner}"]


async def precheck(meta: MetaStore, bucket: BucketRecord, incoming: int | None) -> None:
    """Refuse, before reading the body, an upload that would take a scope past its quota."""
    if incoming is None or incoming < EARLY_CHECK_BYTES:
        return
    for scope in scopes(bucket):
        quota = await meta.get_quota(scope)
        if quota is None or quota.max_bytes is None:
            continue
        used = await scope_usage(meta, bucket, scope)
        if used.bytes + used.pending + incoming > quota.max_bytes:
            raise refused(QuotaExceeded(scope, "storage"))


async def scope_usage(meta: MetaStore, bucket: BucketRecord, scope: str) -> Usage:
    if scope.startswith("bucket:"):
        return await meta.bucket_usage(bucket.name)
    total = Usage()
    for usage in (await meta.account_usage(bucket.owner)).values():
        total.add(usage)
    return total


def refused(exc: QuotaExceeded) -> errors.S3Error:
    """The S3 answer (Ceph RGW's code and status): names the scope's kind, not its usage."""
    kind = "bucket" if exc.scope.startswith("bucket:") else "account"
    return errors.QuotaExceeded(f"The {kind}'s {exc.what} quota is exceeded.")


def parse_quota(doc: dict) -> Quota:
    """A quota from the admin API's JSON: non-negative integers or null."""
    out = Quota()
    for name in ("max_bytes", "max_objects"):
        value = doc.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer or null")
        setattr(out, name, value)
    return out
