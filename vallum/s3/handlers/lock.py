"""Object lock: bucket configuration, per-version retention and legal hold, and the
guard every permanent delete goes through.

The decision itself is vallum.storage.retention's; this module supplies it with
the request's facts: the lock state, the (possibly test-shifted) clock, whether
``x-amz-bypass-governance-retention`` was sent, and whether the caller holds
s3:BypassGovernanceRetention (asked of vallum.authz, where IAM policies plug in).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from vallum.http import Request, Response, xml_response
from vallum.iam import gate
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.s3 import errors, xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers import labels, visibility
from vallum.s3.handlers.common import (
    MD5_REQUIRED,
    check_body_digests,
    check_version_id,
    get_bucket,
    modify_version,
)
from vallum.service.clock import clock
from vallum.storage import retention
from vallum.storage.retention import LEGAL_HOLD_KEY, MODES, lock_of, store_retention

CONFIG_KEY = "object-lock"
DAY = 86400
LOCKED = "Access Denied because object protected by object lock."
NO_LOCK_CONFIG = "Bucket is missing Object Lock Configuration"
DIGEST_REQUIRED = ("Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests "
                   "with Object Lock parameters")


# -- who may bypass GOVERNANCE ---------------------------------------------
def bypass_requested(request: Request) -> bool:
    return request.headers.get("x-amz-bypass-governance-retention", "").strip().lower() == "true"


async def may_bypass(request: Request, key: str | None = None,
                     version_id: str | None = None) -> bool:
    """Whether the caller holds s3:BypassGovernanceRetention on the object version (the IAM
    gate decides: root always; other principals per their policies and the bucket policy)."""
    if key is None:
        key, version_id = request.key, request.query.get("versionId")
    try:
        await gate.authorize_object(request, "s3:BypassGovernanceRetention", key, version_id)
    except errors.AccessDenied:
        return False
    return True


class HiddenVersion(Exception):
    """The version a delete names is above the caller's level (MAC): nothing was done."""


async def guarded_delete_version(request: Request, bucket: BucketRecord, key: str,
                                 version_id: str, *, hidden_as_missing: bool = True,
                                 named: bool = True, condition: Any = None,
                                 ) -> tuple[ObjectRecord | None, list[str]]:
    """Permanently delete one version unless object lock protects it (AccessDenied then).

    The check runs inside the delete's transaction on the version being removed,
    so a retention set concurrently either lands first (and refuses) or not at all.
    The bypass permission is decided before, since authz may do I/O.
    A version (or delete marker) above the caller's level is left alone and answered
    as a missing one, ``(None, [])``; or HiddenVersion when ``hidden_as_missing`` is False.
    ``named``: the request named ``version_id`` (else it is the implied null version).
    ``condition``: the request's If-Match checks, run first on the same version.
    """
    now = clock().now()
    allowed_bypass = bypass_requested(request) and await may_bypass(
        request, key, version_id if named else None)
    who = labels.subject(request)

    def precondition(target: ObjectRecord | None) -> None:
        if condition is not None:
            condition(target)
        if target is not None and not labels.readable(who, target):
            raise HiddenVersion()       # checked first: a lock must not reveal it either
        if target is None or target.delete_marker:
            return
        if retention.why_not_remove(lock_of(target.extra), now, bypass_requested=bypass_requested(request),
                                    may_bypass=allowed_bypass):
            raise errors.AccessDenied(LOCKED)

    try:
        return await request.services.meta.delete_version(bucket.name, key, version_id,
                                                          precondition=precondition)
    except HiddenVersion:
        labels.refused(request, "mac: no read up: delete of a version above the session level, "
                                "answered as a missing one")
        if hidden_as_missing:
            return None, []
        raise


# -- retention requested on writes -----------------------------------------
def parse_date(value: str, what: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise errors.InvalidArgument(f"The {what} is not a valid ISO 8601 date", ArgumentName=what,
                                     ArgumentValue=value[:64]) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def default_retention(bucket: BucketRecord) -> tuple[str, int] | None:
    """(mode, seconds) of the bucket's default retention rule, if any."""
    text = bucket.config.get(CONFIG_KEY)
    if not text:
        return None
    return parse_lock_configuration(text.encode())


def lock_extra(request: Request, bucket: BucketRecord, *, has_digest: bool | None) -> dict[str, Any]:
    """The lock state a new version gets from x-amz-object-lock-* headers or the bucket default.

    ``has_digest``: whether the body carries an integrity header (None: a request
    without a body, e.g. Copy or CreateMultipartUpload, where S3 does not ask for one).
    """
    h = request.headers
    mode = h.get("x-amz-object-lock-mode")
    date = h.get("x-amz-object-lock-retain-until-date")
    hold = h.get("x-amz-object-lock-legal-hold")
    explicit = mode is not None or date is not None or hold is not None
    extra: dict[str, Any] = {}
    if explicit and not bucket.object_lock:
        raise errors.InvalidRequest(NO_LOCK_CONFIG)
    if explicit and has_digest is False:
        raise errors.InvalidRequest(DIGEST_REQUIRED)
    if (mode is None) != (date is None):
        raise errors.InvalidArgument("x-amz-object-lock-retain-until-date and x-amz-object-lock-mode "
                                     "must both be supplied",
                                     ArgumentName="x-amz-object-lock-mode" if mode is None
                                     else "x-amz-object-lock-retain-until-date")
    now = clock().now()
    if mode is not None and date is not None:
        if mode not in MODES:
            raise errors.InvalidArgument("Unknown wormMode directive.", ArgumentName="x-amz-object-lock-mode",
                                         ArgumentValue=mode[:32])
        until = parse_date(date, "x-amz-object-lock-retain-until-date")
        if until <= now:
            raise errors.InvalidArgument("The retain until date must be in the future!",
                                         ArgumentName="x-amz-object-lock-retain-until-date", ArgumentValue=date)
        store_retention(extra, mode, until)
    if hold is not None:
        if hold not in ("ON", "OFF"):
            raise errors.InvalidArgument("Legal Hold must be either of 'ON' or 'OFF'",
                                         ArgumentName="x-amz-object-lock-legal-hold", ArgumentValue=hold[:16])
        extra[LEGAL_HOLD_KEY] = hold == "ON"
    return extra


def apply_default(extra: dict[str, Any], bucket: BucketRecord) -> dict[str, Any]:
    """Give a new version the bucket's default retention unless it brought its own."""
    if bucket.object_lock and retention.RETENTION_KEY not in extra:
        rule = default_retention(bucket)
        if rule is not None:
            store_retention(extra, rule[0], clock().now() + rule[1])
    return extra


# -- PutObjectLockConfiguration / GetObjectLockConfiguration ---------------
def parse_lock_configuration(data: bytes) -> tuple[str, int] | None:
    """Validate an ObjectLockConfiguration; returns the default rule as (mode, seconds)."""
    doc = xml.parse(data, "ObjectLockConfiguration")
    xml.only_known(doc, {"ObjectLockEnabled", "Rule"})
    if xml.text(doc, "ObjectLockEnabled") != "Enabled":
        raise errors.MalformedXML()
    rule = xml.child(doc, "Rule")
    if rule is None:
        return None
    xml.only_known(rule, {"DefaultRetention"})
    default = xml.child(rule, "DefaultRetention")
    if default is None:
        raise errors.MalformedXML()
    xml.only_known(default, {"Mode", "Days", "Years"})
    mode, days, years = xml.text(default, "Mode"), xml.text(default, "Days"), xml.text(default, "Years")
    if mode not in MODES or (days is None) == (years is None):
        raise errors.MalformedXML()
    try:
        count = int(days if days is not None else years)  # type: ignore[arg-type]
    except ValueError:
        raise errors.MalformedXML() from None
    if count <= 0:
        raise errors.InvalidArgument("Default retention period must be a positive integer value.",
                                     ArgumentName="Days" if days is not None else "Years",
                                     ArgumentValue=str(count))
    if count > 36500 if days is not None else count > 100:
        raise errors.InvalidArgument("Default retention period is too large.",
                                     ArgumentName="Days" if days is not None else "Years",
                                     ArgumentValue=str(count))
    return mode, count * DAY if days is not None else count * 365 * DAY


async def put_object_lock_configuration(request: Request) -> Response:
    bucket = await get_bucket(request)
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=MD5_REQUIRED)
    parse_lock_configuration(data)
    if not bucket.object_lock:
        if bucket.versioning != "Enabled":
            raise errors.InvalidBucketState("Versioning must be 'Enabled' on the bucket to apply a "
                                            "Object Lock configuration")
        bucket.object_lock = True
    bucket.config[CONFIG_KEY] = data.decode("utf-8")
    await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_object_lock_configuration(request: Request) -> Response:
    bucket = await get_bucket(request)
    if not bucket.object_lock:
        raise errors.ObjectLockConfigurationNotFoundError(BucketName=bucket.name)
    body: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
    rule = default_retention(bucket)
    if rule is not None:
        mode, seconds = rule
        text = bucket.config[CONFIG_KEY]
        unit = "Years" if "<Years>" in text or ":Years>" in text else "Days"
        count = seconds // (365 * DAY) if unit == "Years" else seconds // DAY
        body["Rule"] = {"DefaultRetention": {"Mode": mode, unit: count}}
    return xml_response(xml.render("ObjectLockConfiguration", body))


# -- per-version retention and legal hold ------------------------------------
async def _target(request: Request) -> tuple[BucketRecord, ObjectRecord]:
    bucket = await get_bucket(request)
    version_id = check_version_id(request.query.get("versionId"))
    if not bucket.object_lock:
        raise errors.InvalidRequest(NO_LOCK_CONFIG)
    record = await (visibility.latest_version(request, bucket.name, request.key) if version_id is None
                    else request.services.meta.get_object(bucket.name, request.key, version_id))
    if record is None:
        if version_id is not None:
            raise errors.NoSuchVersion(Key=request.key, VersionId=version_id)
        raise errors.NoSuchKey(Key=request.key)
    labels.hide_marker(request, record, labels.missing_error(request.key, version_id))
    if record.delete_marker:
        raise errors.MethodNotAllowed(headers={"x-amz-delete-marker": "true",
                                               "x-amz-version-id": record.version_id},
                                      Method=request.method, ResourceType="DeleteMarker")
    # No read up: an object above the caller's level is answered as missing.
    labels.require_read(request, record, labels.missing_error(request.key, version_id))
    return bucket, record


def _version_header(record: ObjectRecord) -> dict[str, str]:
    return {"x-amz-version-id": record.version_id}


async def put_object_retention(request: Request) -> Response:
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=DIGEST_REQUIRED)
    doc = xml.parse(data, "Retention")
    xml.only_known(doc, {"Mode", "RetainUntilDate"})
    mode, date = xml.text(doc, "Mode"), xml.text(doc, "RetainUntilDate")
    if (mode is None) != (date is None) or (mode is not None and mode not in MODES):
        raise errors.MalformedXML()
    now = clock().now()
    until = parse_date(date, "RetainUntilDate") if date is not None else None
    if until is not None and until <= now:
        raise errors.InvalidArgument("The retain until date must be in the future!",
                                     ArgumentName="RetainUntilDate", ArgumentValue=date or "")
    _, record = await _target(request)
    asked = bypass_requested(request)
    allowed = asked and await may_bypass(request)

    def change(current: ObjectRecord) -> None:
        # Decided inside the write transaction: two racing requests cannot shorten a lock.
        refusal = retention.why_not_change(lock_of(current.extra), mode, until, now,
                                           bypass_requested=asked, may_bypass=allowed)
        if refusal:
            raise errors.AccessDenied(LOCKED)
        store_retention(current.extra, mode, until)

    await modify_version(request, record, change)
    return Response(200, _version_header(record))


async def get_object_retention(request: Request) -> Response:
    _, record = await _target(request)
    lock = lock_of(record.extra)
    if lock.mode is None or lock.until is None:
        raise errors.NoSuchObjectLockConfiguration()
    body = {"Mode": lock.mode, "RetainUntilDate": iso8601(lock.until)}
    return xml_response(xml.render("Retention", body), headers=_version_header(record))


async def put_object_legal_hold(request: Request) -> Response:
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=DIGEST_REQUIRED)
    doc = xml.parse(data, "LegalHold")
    xml.only_known(doc, {"Status"})
    status = xml.text(doc, "Status")
    if status not in ("ON", "OFF"):
        raise errors.MalformedXML()
    _, record = await _target(request)

    def change(current: ObjectRecord) -> None:
        current.extra[LEGAL_HOLD_KEY] = status == "ON"

    await modify_version(request, record, change)
    return Response(200, _version_header(record))


async def get_object_legal_hold(request: Request) -> Response:
    _, record = await _target(request)
    if LEGAL_HOLD_KEY not in record.extra:
        raise errors.NoSuchObjectLockConfiguration()
    body = {"Status": "ON" if record.extra[LEGAL_HOLD_KEY] else "OFF"}
    return xml_response(xml.render("LegalHold", body), headers=_version_header(record))
