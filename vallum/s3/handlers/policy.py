"""Bucket policy and PublicAccessBlock: Put/Get/Delete of each.

A bucket policy is validated when written (MalformedPolicy with the position of the
problem); with BlockPublicPolicy set, a policy granting access to everyone is refused.
Both documents are stored as sent in the bucket's ``config`` and read by the gateway's
authorization step on every request to the bucket.
"""

from __future__ import annotations

from vallum import authz
from vallum.http import Request, Response, xml_response
from vallum.iam.policy import MalformedPolicy, parse
from vallum.s3 import errors, xml
from vallum.s3.handlers.common import get_bucket

_PAB_FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


class NoSuchPublicAccessBlockConfiguration(errors.S3Error):
    status = 404
    message = "The public access block configuration was not found"


async def put_bucket_policy(request: Request) -> Response:
    bucket = await get_bucket(request)
    text = (await request.body.read(20 * 1024 + 1)).decode("utf-8", "replace")
    try:
        policy = parse(text, kind="resource", bucket=bucket.name)
    except MalformedPolicy as exc:
        raise errors.MalformedPolicy(str(exc)) from None
    if pab_flag(bucket.config.get("publicAccessBlock", ""), "BlockPublicPolicy") \
            and authz.is_public(policy):
        raise errors.AccessDenied("Access denied: this bucket's PublicAccessBlock blocks public "
                                  "bucket policies (BlockPublicPolicy).")
    bucket.config["policy"] = text
    await request.services.meta.update_bucket(bucket)
    return Response(204)


async def get_bucket_policy(request: Request) -> Response:
    bucket = await get_bucket(request)
    text = bucket.config.get("policy")
    if not text:
        raise errors.NoSuchBucketPolicy(BucketName=bucket.name)
    return Response(200, {"content-type": "application/json"}, text.encode("utf-8"))


async def delete_bucket_policy(request: Request) -> Response:
    bucket = await get_bucket(request)
    if bucket.config.pop("policy", None) is not None:
        await request.services.meta.update_bucket(bucket)
    return Response(204)


def pab_flag(document: str, name: str) -> bool:
    if not document:
        return False
    doc = xml.parse(document.encode(), "PublicAccessBlockConfiguration")
    return (xml.text(doc, name) or "").strip().lower() == "true"


async def put_public_access_block(request: Request) -> Response:
    bucket = await get_bucket(request)
    data = await request.body.read(64 * 1024)
    doc = xml.parse(data, "PublicAccessBlockConfiguration")
    xml.only_known(doc, set(_PAB_FIELDS))
    flags = {}
    for name in _PAB_FIELDS:
        value = (xml.text(doc, name) or "false").strip().lower()
        if value not in ("true", "false"):
            raise errors.MalformedXML()
        flags[name] = value
    body = "".join(f"<{k}>{v}</{k}>" for k, v in flags.items())
    bucket.config["publicAccessBlock"] = (f'<PublicAccessBlockConfiguration xmlns="{xml.S3_NS}">'
                                          f"{body}</PublicAccessBlockConfiguration>")
    await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_public_access_block(request: Request) -> Response:
    bucket = await get_bucket(request)
    text = bucket.config.get("publicAccessBlock")
    if not text:
        raise NoSuchPublicAccessBlockConfiguration(BucketName=bucket.name)
    return xml_response(('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode())


async def delete_public_access_block(request: Request) -> Response:
    bucket = await get_bucket(request)
    if bucket.config.pop("publicAccessBlock", None) is not None:
        await request.services.meta.update_bucket(bucket)
    return Response(204)
