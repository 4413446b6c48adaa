"""Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging,
and the x-amz-tagging header on writes.

Object tags live in ``ObjectRecord.extra["tags"]`` (per version), bucket tags in
``BucketRecord.config["tagging"]`` (as JSON of the validated set).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from vallum.meta.records import ObjectRecord
from vallum.s3 import errors, xml
from vallum.s3.handlers import labels
from vallum.s3.handlers.common import (
    MD5_REQUIRED,
    find_version,
    get_bucket,
    modify_version,
    read_xml,
)
from vallum.security import spill
from vallum.security.spill import SpillDetected, SpillGuard
from vallum.server.http import Request, Response, xml_response

OBJECT_TAG_LIMIT = 10
BUCKET_TAG_LIMIT = 50
KEY_MAX, VALUE_MAX = 128, 256
TAGS_KEY = "tags"
BUCKET_CONFIG_KEY = "tagging"
# Letters, digits, white space and + - = . _ : / @ (any script), as AWS documents.
_ALLOWED = re.compile(r"[\w\s+\-=._:/@]*")


def validate_tags(pairs: list[tuple[str, str]], limit: int) -> dict[str, str]:
    """Check a tag set against S3's limits; returns it as an ordered dict."""
    if len(pairs) > limit:
        if limit == OBJECT_TAG_LIMIT:
            raise errors.BadRequest(f"Object tags cannot be greater than {limit}")
        raise errors.InvalidTag(f"Bucket tag count cannot be greater than {limit}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise errors.InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key[:KEY_MAX])
        if not key or len(key) > KEY_MAX:
            raise errors.InvalidTag(f"The TagKey you have provided is {'too long' if key else 'empty'}, max {KEY_MAX}",
                                    TagKey=key[:KEY_MAX])
        if len(value) > VALUE_MAX:
            raise errors.InvalidTag(f"The TagValue you have provided is too long, max {VALUE_MAX}",
                                    TagKey=key, TagValue=value[:VALUE_MAX])
        if key.lower().startswith("aws:"):
            raise errors.InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
        if not _ALLOWED.fullmatch(key):
            raise errors.InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if not _ALLOWED.fullmatch(value):
            raise errors.InvalidTag("The TagValue you have provided is invalid", TagKey=key, TagValue=value)
        tags[key] = value
    return tags


def tags_from_header(value: str | None) -> dict[str, str] | None:
    """The x-amz-tagging header ('k1=v1&k2=v2', URL-encoded), validated; None if absent."""
    if value is None:
        return None
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value))
    except ValueError:
        raise errors.InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded "
                                     "URL query parameters without tag name duplicates.",
                                     ArgumentName="x-amz-tagging", ArgumentValue=value[:256]) from None
    return validate_tags(pairs, OBJECT_TAG_LIMIT)


def tags_extra(request: Request) -> dict[str, dict[str, str]]:
    """The ``extra`` entry of a new version written with x-amz-tagging (PUT, multipart)."""
    tags = tags_from_header(request.headers.get("x-amz-tagging"))
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
async def _version(request: Request) -> ObjectRecord:
    return await find_version(request, await get_bucket(request))


async def put_object_tagging(request: Request) -> Response:
    tags = parse_tagging(await read_xml(request, "Tagging", digest_required=MD5_REQUIRED), OBJECT_TAG_LIMIT)
    record = await _version(request)
    await refuse_marked_tags(request, record, tags)

    def change(current: ObjectRecord) -> None:
        if tags:
            current.extra[TAGS_KEY] = tags
        else:
            current.extra.pop(TAGS_KEY, None)

    await modify_version(request, record, change)
    return Response(200, {"x-amz-version-id": record.version_id})


async def refuse_marked_tags(request: Request, record: ObjectRecord, tags: dict[str, str]) -> None:
    """Tags are readable beside the object: markings in them above its label are a spill."""
    bucket = await get_bucket(request)
    mode = "audit" if spill.mode_of(bucket.config) == "audit" else "refuse"   # tags cannot relabel
    guard = SpillGuard(labels.record_label(record.extra), labels.bucket_range(bucket),
                       f"{request.request_id} {record.bucket}/{record.key} tagging", mode)
    try:
        guard.check_fields(spill.fields(tags=tags))
    except SpillDetected as exc:
        request.decision, request.decision_reason = "deny", str(exc)
        raise errors.SpillDetected(str(exc)) from None
    if guard.outcome is not None:
        request.decision_reason = guard.outcome


async def get_object_tagging(request: Request) -> Response:
    record = await _version(request)
    return xml_response(render_tagging(record.extra.get(TAGS_KEY) or {}),
                        headers={"x-amz-version-id": record.version_id})


async def delete_object_tagging(request: Request) -> Response:
    record = await _version(request)
    await modify_version(request, record, lambda current: current.extra.pop(TAGS_KEY, None))
    return Response(204, {"x-amz-version-id": record.version_id})


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
