"""Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging,
and the x-amz-tagging header on writes.

Object tags live in ``ObjectRecord.extra["tags"]`` (per version), bucket tags in
``BucketRecord.config["tagging"]`` (as JSON of the validated set).
"""

from __future__ import annotations

import json

from vallum.http import Request, Response, xml_response
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.s3 import errors, xml
from vallum.s3.handlers import labels
from vallum.s3.handlers.common import (
    MD5_REQUIRED,
    find_version,
    get_bucket,
    modify_version,
    read_xml,
)
from vallum.s3.tags import (  # noqa: F401 - handlers and tests import them from here
    BUCKET_TAG_LIMIT,
    OBJECT_TAG_LIMIT,
    tags_from_header,
    validate_tags,
)
from vallum.security.spill import guard as spill
from vallum.security.spill.guard import SpillDetected, SpillGuard

TAGS_KEY = "tags"
BUCKET_CONFIG_KEY = "tagging"


def tags_extra(request: Request) -> dict[str, dict[str, str]]:
    """The ``extra`` entry of a new version written with x-amz-tagging (PUT, multipart)."""
    tags = tags_from_header(request.headers.get("x-amz-tagging"))
    tags = labels.without_label_tag(tags)     # vallum:label is the label (labels.requested)
    return {TAGS_KEY: tags} if tags else {}


def copy_tags(request: Request, source: ObjectRecord) -> dict[str, dict[str, str]]:
    """Tags of a copy: the source's (directive COPY, the default) or x-amz-tagging (REPLACE)."""
    directive = request.headers.get("x-amz-tagging-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise errors.InvalidArgument("Unknown tagging directive.", ArgumentName="x-amz-tagging-directive",
                                     ArgumentValue=directive[:32])
    if directive == "REPLACE":
        return tags_extra(request)
    tags = source.extra.get(TAGS_KEY)
    return {TAGS_KEY: dict(tags)} if tags else {}


def parse_tagging(doc, limit: int) -> dict[str, str]:
    xml.only_known(doc, {"TagSet"})
    tag_set = xml.child(doc, "TagSet")
    if tag_set is None:
        raise errors.MalformedXML()
    xml.only_known(tag_set, {"Tag"})
    pairs = []
    for tag in xml.children(tag_set, "Tag"):
        xml.only_known(tag, {"Key", "Value"})
        key, value = xml.text(tag, "Key"), xml.text(tag, "Value")
        if key is None or value is None:
            raise errors.MalformedXML()
        pairs.append((key, value))
    return validate_tags(pairs, limit)


def render_tagging(tags: dict[str, str]) -> bytes:
    return xml.render("Tagging", {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in tags.items()]}})


# -- object tagging ------------------------------------------------------------
async def _version(request: Request) -> tuple[BucketRecord, ObjectRecord]:
    bucket = await get_bucket(request)
    return bucket, await find_version(request, bucket)


def _version_header(bucket: BucketRecord, record: ObjectRecord) -> dict[str, str]:
    """x-amz-version-id, as AWS sends it: only from a bucket that has had versioning."""
    return {"x-amz-version-id": record.version_id} if bucket.versioning else {}


async def put_object_tagging(request: Request) -> Response:
    # The reserved vallum:label (the label, labels.relabel) does not count as a tag.
    tags = parse_tagging(await read_xml(request, "Tagging", digest_required=MD5_REQUIRED), OBJECT_TAG_LIMIT + 1)
    if len(labels.without_label_tag(tags) or {}) > OBJECT_TAG_LIMIT:
        raise errors.BadRequest(f"Object tags cannot be greater than {OBJECT_TAG_LIMIT}")
    bucket, record = await _version(request)
    new_label = labels.relabel(request, bucket, record, tags.get(labels.TAG_KEY))
    tags = labels.without_label_tag(tags) or {}
    label_before = record.extra.get("label")
    await refuse_marked_tags(request, record, tags, new_label)
    if new_label is not None:
        await labels.audit_relabel(request, record, new_label)

    def change(current: ObjectRecord) -> None:
        if new_label is not None:
            if current.extra.get("label") != label_before:    # relabelled meanwhile
                raise errors.ConditionalRequestConflict()
            current.extra["label"] = new_label.banner()
        if tags:
            current.extra[TAGS_KEY] = tags
        else:
            current.extra.pop(TAGS_KEY, None)

    await modify_version(request, record, change)
    return Response(200, _version_header(bucket, record))


async def refuse_marked_tags(request: Request, record: ObjectRecord, tags: dict[str, str],
                             label=None) -> None:
    """Tags are readable beside the object: markings in them above its label (``label``
    when the request relabels it) are a spill."""
    bucket = await get_bucket(request)
    mode = "audit" if spill.mode_of(bucket.config) == "audit" else "refuse"   # tags cannot relabel
    guard = SpillGuard(label or labels.record_label(record.extra), labels.bucket_range(bucket),
                       f"{request.request_id} {record.bucket}/{record.key} tagging", mode)
    try:
        guard.check_fields(spill.fields(tags=tags))
    except SpillDetected as exc:
        request.decision, request.decision_reason = "deny", str(exc)
        raise errors.SpillDetected(str(exc)) from None
    if guard.outcome is not None:
        request.decision_reason = guard.outcome


async def get_object_tagging(request: Request) -> Response:
    bucket, record = await _version(request)
    return xml_response(render_tagging(labels.tags_with_label(record.extra)),
                        headers=_version_header(bucket, record))


async def delete_object_tagging(request: Request) -> Response:
    bucket, record = await _version(request)
    await modify_version(request, record, lambda current: current.extra.pop(TAGS_KEY, None))
    return Response(204, _version_header(bucket, record))


# -- bucket tagging ------------------------------------------------------------
async def put_bucket_tagging(request: Request) -> Response:
    bucket = await get_bucket(request)
    tags = parse_tagging(await read_xml(request, "Tagging", digest_required=MD5_REQUIRED), BUCKET_TAG_LIMIT)
    if tags:
        bucket.config[BUCKET_CONFIG_KEY] = json.dumps(tags)
    else:
        bucket.config.pop(BUCKET_CONFIG_KEY, None)
    await request.services.meta.update_bucket(bucket)
    return Response(204)


async def get_bucket_tagging(request: Request) -> Response:
    bucket = await get_bucket(request)
    text = bucket.config.get(BUCKET_CONFIG_KEY)
    if not text:
        raise errors.NoSuchTagSet(BucketName=bucket.name)
    return xml_response(render_tagging(json.loads(text)))


async def delete_bucket_tagging(request: Request) -> Response:
    bucket = await get_bucket(request)
    if bucket.config.pop(BUCKET_CONFIG_KEY, None) is not None:
        await request.services.meta.update_bucket(bucket)
    return Response(204)
