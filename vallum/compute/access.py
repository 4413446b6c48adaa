"""Submit-time checks that the caller may read a job's inputs and write its output.

Refusing here (with the object or prefix named) beats a task failing later; the
task's scoped credentials enforce the same again at run time.
"""

from __future__ import annotations

from typing import Any

from vallum import authz
from vallum.compute import levels
from vallum.compute.spec import Hidden, SpecError, parse_uri


async def _context(meta: Any, bucket_name: str, what: str,
                   keys: dict[str, Any] | None = None) -> tuple[authz.Context, Any]:
    """The bucket's context as the gateway builds it (owner, policy, PublicAccessBlock)."""
    bucket = await meta.get_bucket(bucket_name)
    if bucket is None:
        raise SpecError(f"{what}: no such bucket {bucket_name!r}", "NoSuchBucket", 404)
    return authz.context_for(keys or {}, bucket), bucket


async def check_read(meta: Any, principal: Any, uri_text: str, what: str,
                     level: str | None = None) -> None:
    """May ``principal`` read this object (or list and read this prefix) at ``level``?
    An object above the level answers as a missing one would (no read up)."""
    uri = parse_uri(uri_text, what)
    ctx, bucket = await _context(meta, uri.bucket, what)
    if uri.is_prefix:
        listing = authz.context_for({"s3:prefix": uri.key}, bucket)
        if not authz.decide(principal, "s3:ListBucket", f"arn:aws:s3:::{uri.bucket}",
                            listing).allowed:
            raise SpecError(f"{what}: you may not list {uri}", "AccessDenied", 403)
        arn = f"arn:aws:s3:::{uri.bucket}/{uri.key}*"
    else:
        rec = await meta.get_object(uri.bucket, uri.key)
        if rec is None or rec.delete_marker:
            raise SpecError(f"{what}: no such object {uri}", "NoSuchKey", 404)
        if level is not None and not levels.label(level).dominates(levels.object_label(rec)):
            raise Hidden(f"{what}: no such object {uri}", "NoSuchKey")
        arn = f"arn:aws:s3:::{uri.bucket}/{uri.key}"
    if not authz.decide(principal, "s3:GetObject", arn, ctx).allowed:
        raise SpecError(f"{what}: you may not read {uri}", "AccessDenied", 403)


async def check_write(meta: Any, principal: Any, uri_text: str, what: str,
                      level: str | None = None) -> str | None:
    """May ``principal`` write under this prefix? Returns the label outputs written at
    ``level`` get there (None without a level)."""
    uri = parse_uri(uri_text, what)
    ctx, bucket = await _context(meta, uri.bucket, what)
    if not authz.decide(principal, "s3:PutObject", f"arn:aws:s3:::{uri.bucket}/{uri.key}*",
                        ctx).allowed:
        raise SpecError(f"{what}: you may not write under {uri}", "AccessDenied", 403)
    return levels.output_label(level, bucket, what) if level is not None else None


async def list_prefix(meta: Any, uri_text: str, limit: int, level: str | None,
                      principal: Any) -> list[str]:
    """Keys under an array prefix (latest versions) that ``principal`` may read at ``level``,
    refusing more than ``limit``. Objects above the level, or that IAM (bucket policy
    included) refuses it, are absent, as in the task's own listing: their names never
    become task names."""
    uri = parse_uri(uri_text, "array")
    lvl = levels.label(level)
    ctx, _ = await _context(meta, uri.bucket, "array")
    keys: list[str] = []
    start = ""
    while True:
        page = await meta.list_objects(uri.bucket, prefix=uri.key, start_after=start,
                                       max_keys=1000)
        keys += [e.key for e in page.entries
                 if lvl.dominates(levels.object_label(e)) and authz.decide(
                     principal, "s3:GetObject", f"arn:aws:s3:::{uri.bucket}/{e.key}",
                     ctx).allowed]
        if len(keys) > limit:
            raise SpecError(f"array: {uri} holds more than your quota of {limit} tasks",
                            "QuotaExceeded", 403)
        if not page.is_truncated or not page.entries:
            return keys
        start = page.next_marker or page.entries[-1].key
