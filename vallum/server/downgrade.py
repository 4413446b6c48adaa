"""Label downgrade: the one way an object's label goes down, separate and audited.

Admin API ``POST /-/admin/v1/DowngradeLabel`` with ``{"bucket", "key", "label",
"version_id"?}``. Needs the dedicated IAM action ``vallum:DowngradeLabel`` on the
object's ARN (``s3:*`` does not grant it), decided before the object is looked up (so a
caller without it learns nothing of what exists), a clearance that dominates the current
label (else the object is answered as missing, as everywhere), a new label dominated by
the current one and inside the bucket's range. Every attempt, allowed or refused, appends a
``security`` record (event ``label-downgrade``, old and new label, deciding rule) to the
audit log before the answer; the change commits only if that record is durable.
"""

from __future__ import annotations

import time
from typing import Any

from vallum import authz
from vallum.iam.principal import Principal
from vallum.s3 import errors
from vallum.s3.handlers import labels
from vallum.security.mac.labels import LabelError

ACTION = "vallum:DowngradeLabel"


def subject_of(principal: Principal, session_level: str | None = None) -> Any:
    try:
        return labels.cached_subject(principal.clearance, session_level or principal.session_level,
                               principal.is_root)
    except LabelError as exc:
        raise errors.InvalidArgument(f"Invalid session level: {exc}") from None
    except PermissionError:
        raise errors.AccessDenied("session level above the clearance") from None


async def _audit(services: Any, principal: Principal, source_ip: str, doc: dict[str, Any],
                 allowed: bool, rule: str) -> None:
    if services.audit is None:
        return
    await services.audit.append({
        "type": "security", "event": "label-downgrade", "operation": "DowngradeLabel",
        "principal": principal.access_key, "arn": principal.arn, "account": principal.account,
        "source_ip": source_ip, "decision": "allow" if allowed else "deny", "rule": rule, **doc})


async def downgrade(services: Any, principal: Principal, args: dict[str, Any],
                    source_ip: str = "", secure: bool = False) -> dict[str, Any]:
    bucket_name, key, new_text = (args.get(n) for n in ("bucket", "key", "label"))
    if not bucket_name or not key or not new_text:
        raise errors.InvalidArgument("bucket, key and label are required")
    version_id = args.get("version_id") or None
    try:
        new = labels.label_of(new_text)
    except LabelError as exc:
        raise errors.InvalidArgument(f"Invalid label: {exc}") from None
    bucket = await services.meta.get_bucket(bucket_name)
    if bucket is None:
        raise errors.NoSuchBucket(BucketName=bucket_name)
    subject = subject_of(principal, args.get("session_level"))
    # The permission is decided on the object's ARN before the object is looked up, so
    # a caller without it gets the same answer whether the object exists or not.
    ctx = authz.context_for(authz.global_keys(source_ip, secure, time.time()), bucket)
    doc = {"bucket": bucket_name, "key": key, "version": version_id, "label": new.banner()}
    decision = authz.decide(principal, ACTION, f"arn:aws:s3:::{bucket_name}/{key}", ctx)
    if not decision.allowed:
        await _audit(services, principal, source_ip, doc, False, decision.reason)
        raise errors.AccessDenied(f"not authorized to perform {ACTION}")
    record = await services.meta.get_object(bucket_name, key, version_id)
    missing = labels.missing_error(key, version_id)
    if record is None or record.delete_marker:
        await _audit(services, principal, source_ip, doc, False, "no such object")
        raise missing
    old = labels.record_label(record.extra)
    doc.update(version=record.version_id, from_label=old.banner())
    mac = authz.decide_labels(authz.LabelCheck(subject, read=old))
    rng = labels.bucket_range(bucket)
    refusal: errors.S3Error | None = None
    rule = decision.reason
    if not mac.allowed:                  # above the caller: answered as missing, as everywhere
        rule, refusal = mac.reason, missing
    elif not old.dominates(new):
        rule = f"mac: {new} is not below the current label {old}: not a downgrade"
        refusal = errors.InvalidArgument(rule)
    elif rng is not None and not rng.contains(new):
        rule = f"mac: label {new} outside bucket range [{rng.floor}, {rng.ceiling}]"
        refusal = errors.AccessDenied(rule)
    await _audit(services, principal, source_ip, doc, refusal is None, rule)
    if refusal is not None:
        raise refusal

    def change(rec: Any) -> None:
        if labels.record_label(rec.extra) != old:
            raise errors.ConditionalRequestConflict("the label changed concurrently; retry")
        rec.extra["label"] = new.banner()

    updated = await services.meta.modify_object(bucket_name, key, record.version_id, change)
    if updated is None:
        raise missing
    return {"bucket": bucket_name, "key": key, "version_id": record.version_id,
            "label": new.banner(), "previous_label": old.banner()}
