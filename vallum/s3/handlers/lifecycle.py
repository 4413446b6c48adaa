"""Put/Get/DeleteBucketLifecycleConfiguration (the worker that applies the rules is
vallum.service.lifecycle)."""

from __future__ import annotations

from vallum.s3 import errors, xml
from vallum.s3.handlers.common import MD5_REQUIRED, check_body_digests, get_bucket
from vallum.server.http import Request, Response, xml_response
from vallum.service.lifecycle import CONFIG_KEY
from vallum.service.lifecycle_rules import parse_lifecycle


async def put_bucket_lifecycle(request: Request) -> Response:
    bucket = await get_bucket(request)
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=MD5_REQUIRED)
    parse_lifecycle(data)
    bucket.config[CONFIG_KEY] = data.decode("utf-8")
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
        await request.services.meta.update_bucket(bucket)
    return Response(204)
