"""Object events: the AWS S3 event JSON, trigger matching, and the hook the S3 handlers call.

Delivery contract: a handler calls ``object_event`` after its metadata commit and
before it answers; the event is then durable in the outbox (fsynced) before the
client sees success, so every acknowledged write is delivered at least once,
across restarts. A write that failed, or never committed, calls nothing and
produces no event. Buckets without triggers cost one set lookup.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import time
import uuid
from typing import Any
from urllib.parse import quote_plus

from vallum.compute import levels

CREATED_PUT = "ObjectCreated:Put"
CREATED_POST = "ObjectCreated:Post"
CREATED_COPY = "ObjectCreated:Copy"
CREATED_MULTIPART = "ObjectCreated:CompleteMultipartUpload"
REMOVED_DELETE = "ObjectRemoved:Delete"
REMOVED_MARKER = "ObjectRemoved:DeleteMarkerCreated"
# What S3 Lifecycle removes is announced under its own names, never as ObjectRemoved (AWS:
# "Configuring S3 Lifecycle event notifications"): Delete when a current object of an
# unversioned bucket or any version (or delete marker) is permanently removed,
# DeleteMarkerCreated when expiring a current version adds a delete marker.
LIFECYCLE_DELETE = "LifecycleExpiration:Delete"
LIFECYCLE_MARKER = "LifecycleExpiration:DeleteMarkerCreated"
LIFECYCLE_PRINCIPAL = "s3.amazonaws.com"     # what AWS puts in userIdentity and sourceIPAddress
KNOWN_PATTERNS = ("s3:ObjectCreated:*", "s3:ObjectCreated:Put", "s3:ObjectCreated:Post",
                  "s3:ObjectCreated:Copy", "s3:ObjectCreated:CompleteMultipartUpload",
                  "s3:ObjectRemoved:*", "s3:ObjectRemoved:Delete",
                  "s3:ObjectRemoved:DeleteMarkerCreated", "s3:LifecycleExpiration:*",
                  "s3:LifecycleExpiration:Delete", "s3:LifecycleExpiration:DeleteMarkerCreated")


def s3_record(event_name: str, *, bucket: str, key: str, size: int | None, etag: str | None,
              version_id: str | None, principal_id: str, source_ip: str, request_id: str,
              region: str, bucket_owner: str, when: float | None = None,
              event_version: str = "2.1") -> dict[str, Any]:
    """One entry of "Records", shaped as AWS sends it (event version 2.1; AWS's lifecycle
    events say 2.3)."""
    when = time.time() if when is None else when
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": f"{time.time_ns():016X}"}
    if size is not None:
        obj["size"] = size
    if etag:
        obj["eTag"] = etag
    if version_id and version_id != "null":
        obj["versionId"] = version_id
    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    return {
        "eventVersion": event_version, "eventSource": "aws:s3", "awsRegion": region,
        "eventTime": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
        "eventName": event_name,
        "userIdentity": {"principalId": principal_id},
        "requestParameters": {"sourceIPAddress": source_ip},
        "responseElements": {"x-amz-request-id": request_id, "x-amz-id-2": request_id},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": bucket_owner},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj},
    }


def event_matches(patterns: list[str], event_name: str) -> bool:
    full = "s3:" + event_name
    return any(fnmatch.fnmatchcase(full, p) for p in patterns)


def trigger_matches(trigger: dict[str, Any], bucket: str, key: str, event_name: str) -> bool:
    return (trigger["bucket"] == bucket and key.startswith(trigger["prefix"])
            and key.endswith(trigger["suffix"]) and event_matches(trigger["events"], event_name))


async def lifecycle_event(services: Any, event_name: str, *, bucket: str, key: str,
                          version_id: str | None, when: float, label: str | None) -> None:
    """The hook the lifecycle worker calls after each committed expiration (``label``: the
    expired version's, None for unlabelled data, so only triggers that may read it hear of it).

    Unlike a request's event, nobody waits for an answer here; the event is made durable
    right after the change commits, so a crash in between loses that one event (a
    lifecycle change is never announced before it happened)."""
    compute = getattr(services, "compute", None)
    if compute is None or not compute.has_triggers(bucket):
        return
    meta_bucket = await services.meta.get_bucket(bucket)
    rec = s3_record(event_name, bucket=bucket, key=key, size=None, etag=None,
                    version_id=version_id, principal_id=LIFECYCLE_PRINCIPAL,
                    source_ip=LIFECYCLE_PRINCIPAL, request_id=uuid.uuid4().hex[:16].upper(),
                    region=services.config.region,
                    bucket_owner=meta_bucket.owner if meta_bucket else "", when=when,
                    event_version="2.3")
    await compute.enqueue_event(bucket, rec, levels.label(label).banner())


async def object_event(request: Any, event_name: str, record: Any) -> None:
    """The hook S3 handlers call after a committed write, before answering."""
    services = request.services
    compute = getattr(services, "compute", None)
    if compute is None or not compute.has_triggers(record.bucket):
        return
    bucket = await services.meta.get_bucket(record.bucket)
    removed = event_name.startswith("ObjectRemoved")
    rec = s3_record(
        event_name, bucket=record.bucket, key=record.key,
        size=None if removed else record.size, etag=None if removed else record.etag,
        version_id=record.version_id, principal_id=request.principal or "anonymous",
        source_ip=request.source_ip, request_id=request.request_id,
        region=services.config.region, bucket_owner=bucket.owner if bucket else "")
    # The version's (or delete marker's) label: only triggers that may read it hear of it.
    await compute.enqueue_event(record.bucket, rec, levels.object_label(record).banner())
