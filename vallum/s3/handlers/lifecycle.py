"""Put/Get/DeleteBucketLifecycleConfiguration (the worker that applies the rules is
vallum.service.lifecycle). The setter's read level is kept with the rules: the worker
expires only what that setter could read (security/object_labels.lifecycle_may_touch)."""

from __future__ import annotations

from vallum.http import Request, Response, xml_response
from vallum.s3 import errors, xml
from vallum.s3.handlers import labels
from vallum.s3.handlers.common import MD5_REQUIRED, check_body_digests, get_bucket
from vallum.security.mac.object_labels import LIFECYCLE_LEVEL, lifecycle_level
from vallum.service.lifecycle import CONFIG_KEY
from vallum.service.lifecycle_rules import parse_lifecycle


async def put_bucket_lifecycle(request: Request) -> Response:
    bucket = await get_bucket(request)
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=MD5_REQUIRED)
    parse_lifecycle(data)
    bucket.config[CONFIG_KEY] = data.decode("utf-8")
    bucket.config[LIFECYCLE_LEVEL] = lifecycle_level(labels.subject(request).read)
    await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_bucket_lifecycle(request: Request) -> Response:
    bucket = await get_bucket(request)
    text = bucket.config.get(CONFIG_KEY)
    if not text:
        raise errors.NoSuchLifecycleConfiguration(BucketName=bucket.name)
    return xml_response(text.encode("utf-8"))


async def delete_bucket_lifecycle(request: Request) -> Response:
    bucket = await get_bucket(request)
    if bucket.config.pop(CONFIG_KEY, None) is not None:
        bucket.config.pop(LIFECYCLE_LEVEL, None)
        await request.services.meta.update_bucket(bucket)
    return Response(204)
