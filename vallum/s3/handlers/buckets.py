"""ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""

from __future__ import annotations

import base64
import binascii
import json
import time

from vallum.http import Request, Response, xml_response
from vallum.meta.base import BucketExists, BucketMissing, BucketNotEmptyError
from vallum.meta.records import BucketRecord
from vallum.s3 import errors, xml
from vallum.s3.conditions import iso8601
from vallum.s3.handlers.common import get_bucket, int_param
from vallum.s3.names import validate_bucket_name
from vallum.security.mac import object_labels
from vallum.security.mac.labels import LabelError
from vallum.security.spill import guard as spill

# AWS's region names: a constraint naming one of these, but not ours, is "illegal for this
# endpoint"; any other name is simply invalid.
KNOWN_REGIONS = frozenset("""
us-east-1 us-east-2 us-west-1 us-west-2 af-south-1 ap-east-1 ap-east-2 ap-south-1 ap-south-2
ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 ap-southeast-7
ap-northeast-1 ap-northeast-2 ap-northeast-3 ca-central-1 ca-west-1 eu-central-1 eu-central-2
eu-west-1 eu-west-2 eu-west-3 eu-south-1 eu-south-2 eu-north-1 il-central-1 me-south-1
me-central-1 mx-central-1 sa-east-1 us-gov-east-1 us-gov-west-1 cn-north-1 cn-northwest-1 EU
""".split())


def owner_element(request: Request) -> dict[str, str]:
    """The Owner of listings and ACLs: the canonical ID only. AWS stopped returning
    Owner.DisplayName in every response on 2025-11-21."""
    return {"ID": request.services.owner_id}


async def list_buckets(request: Request) -> Response:
    services = request.services
    max_buckets = int_param(request, "max-buckets", 10000, lo=1, hi=10000)
    prefix = request.query.get("prefix", "")
    token = request.query.get("continuation-token")
    after = ""
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise errors.InvalidArgument("The continuation token provided is incorrect",
                                         ArgumentName="continuation-token") from None
    region_filter = request.query.get("bucket-region")
    found = [b for b in await services.meta.list_buckets()
             if b.name.startswith(prefix) and b.name > after
             and (region_filter is None or b.region == region_filter)]
    page, more = found[:max_buckets], len(found) > max_buckets
    body = {
        "Buckets": {"Bucket": [{"Name": b.name, "CreationDate": iso8601(b.created), "BucketRegion": b.region}
                               for b in page]},
        "Owner": owner_element(request),
        "ContinuationToken": base64.urlsafe_b64encode(page[-1].name.encode()).decode() if more else None,
        "Prefix": prefix if "prefix" in request.query else None,
    }
    return xml_response(xml.render("ListAllMyBucketsResult", body))


def _location_constraint(data: bytes) -> str | None:
    if not data.strip():
        return None
    doc = xml.parse(data, "CreateBucketConfiguration")
    xml.only_known(doc, {"LocationConstraint", "Location", "Bucket", "Tags"})
    return xml.text(doc, "LocationConstraint")


async def create_bucket(request: Request) -> Response:
    services = request.services
    name = request.bucket
    validate_bucket_name(name)
    region = services.config.region
    constraint = _location_constraint(await request.body.read(64 * 1024))
    # A constraint naming this endpoint's own region is accepted, us-east-1 included
    # (AWS refuses that one; s3fs, MinIO, Ceph and SeaweedFS send or accept it).
    if constraint is not None:
        if constraint == "" and region != "us-east-1":
            raise errors.IllegalLocationConstraintException(
                "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.")
        if constraint not in ("", region) and constraint not in KNOWN_REGIONS:
            raise errors.InvalidLocationConstraint(LocationConstraint=constraint)
        if constraint not in ("", region):
            raise errors.IllegalLocationConstraintException(
                f"The {constraint} location constraint is incompatible for the region specific endpoint this request was sent to.")
    ownership = _object_ownership(request)
    lock = request.headers.get("x-amz-bucket-object-lock-enabled", "").lower() == "true"
    record = BucketRecord(name=name, created=time.time(), region=region, owner=services.owner_id,
                          versioning="Enabled" if lock else "", object_lock=lock)
    label_range = _label_range(request)
    if label_range is not None:
        record.config["label-range"] = label_range
    if ownership is not None:
        record.config["ownership"] = ownership      # bucket_settings.OWNERSHIP_KEY
    spill_mode = _spill_mode(request)
    if spill_mode is not None:
        record.config[spill.MODE_KEY] = spill_mode
    try:
        await services.meta.create_bucket(record)
    except BucketExists as exc:
        if exc.owner == services.owner_id:
            raise errors.BucketAlreadyOwnedByYou(BucketName=name) from None
        raise errors.BucketAlreadyExists(BucketName=name) from None
    return Response(200, {"location": "/" + name})


def _object_ownership(request: Request) -> str | None:
    """x-amz-object-ownership (checked), with any x-amz-acl / grant headers checked against it
    (bucket_settings.check_canned_acl; absent: BucketOwnerEnforced, AWS's default)."""
    from vallum.s3.handlers import bucket_settings  # it imports this module

    value = request.headers.get("x-amz-object-ownership")
    if value is not None and value not in bucket_settings.OWNERSHIPS:
        raise errors.InvalidArgument("Invalid x-amz-object-ownership header", ArgumentName="x-amz-object-ownership",
                                     ArgumentValue=value[:64])
    bucket_settings.check_canned_acl(request, for_object=False, creating=value or "BucketOwnerEnforced")
    return value


FLOOR_HEADER = "x-vallum-label-floor"
CEILING_HEADER = "x-vallum-label-ceiling"


def _label_range(request: Request) -> str | None:
    """config["label-range"] from x-vallum-label-floor / -ceiling (both or neither)."""
    floor, ceiling = request.headers.get(FLOOR_HEADER), request.headers.get(CEILING_HEADER)
    if floor is None and ceiling is None:
        return None
    if not floor or not ceiling:
        raise errors.InvalidArgument(f"{FLOOR_HEADER} and {CEILING_HEADER} go together",
                                     ArgumentName=FLOOR_HEADER if not floor else CEILING_HEADER)
    try:
        return object_labels.range_config(floor, ceiling)
    except LabelError as exc:
        raise errors.InvalidArgument(f"Invalid label range: {exc}", ArgumentName=FLOOR_HEADER) from None
    except ValueError as exc:     # the ceiling does not dominate the floor
        raise errors.InvalidArgument(f"Invalid label range: {exc}", ArgumentName=CEILING_HEADER) from None


def _spill_mode(request: Request) -> str | None:
    """config["spill-mode"] from x-vallum-spill-mode (security/spill/guard.py). Audit-only stores
    spills as labelled, a declassification: only the platform root creates such a bucket."""
    mode = request.headers.get(spill.MODE_HEADER)
    if mode is None:
        return None
    mode = mode.strip().lower()
    if mode not in spill.MODES:
        raise errors.InvalidArgument(f"{spill.MODE_HEADER} is one of: {', '.join(spill.MODES)}",
                                     ArgumentName=spill.MODE_HEADER, ArgumentValue=mode[:32])
    services = request.services
    caller = services.caller
    is_root = caller.is_root if caller is not None else request.principal == services.root.access_key
    if mode == "audit" and not is_root:
        request.decision_reason = "spill: only the platform root creates audit-only buckets"
        raise errors.AccessDenied()
    return mode


async def head_bucket(request: Request) -> Response:
    bucket = await get_bucket(request)
    headers = {"x-amz-bucket-region": bucket.region, "x-amz-access-point-alias": "false"}
    raw = bucket.config.get("label-range")
    if raw:
        doc = json.loads(raw)
        headers[FLOOR_HEADER], headers[CEILING_HEADER] = doc["floor"], doc["ceiling"]
    return Response(200, headers)


async def delete_bucket(request: Request) -> Response:
    services = request.services
    try:
        obsolete = await services.meta.delete_bucket(request.bucket)
    except BucketMissing:
        raise errors.NoSuchBucket(BucketName=request.bucket) from None
    except BucketNotEmptyError:
        raise errors.BucketNotEmpty(BucketName=request.bucket) from None
    await services.discard_blobs(obsolete)
    return Response(204)


async def get_bucket_location(request: Request) -> Response:
    bucket = await get_bucket(request)
    region = "" if bucket.region == "us-east-1" else bucket.region
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{xml.S3_NS}">'
            f"{xml.escape(region)}</LocationConstraint>").encode()
    return xml_response(body)
