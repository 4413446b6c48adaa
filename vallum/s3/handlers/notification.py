"""PutBucketNotificationConfiguration / GetBucketNotificationConfiguration.

Vallum delivers bucket notifications to Vallum functions: a
LambdaFunctionConfiguration (or legacy CloudFunctionConfiguration) whose target is
``arn:aws:lambda:<region>:<account>:function:<name>``, ``arn:vallum:function:<name>``
or a bare function name becomes an object trigger (see vallum.compute.triggers).
A QueueConfiguration whose QueueArn names an event target of the bucket owner's account
(``arn:vallum:sqs:REGION:ACCOUNT:NAME``, registered by an account admin: docs/events.md)
routes events to that webhook or NATS subject. SNS and EventBridge destinations, and
queue ARNs that are not such a target, cannot be delivered here, so, as AWS does for
destinations it cannot validate, they are refused with InvalidArgument.
"""

from __future__ import annotations

from vallum.compute.spec import SpecError
from vallum.http import Request, Response, xml_response
from vallum.iam import gate
from vallum.s3 import errors, xml
from vallum.s3.handlers.common import get_bucket

CONFIG_KEY = "notification"
_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_FUNCTION_TAGS = {"LambdaFunctionConfiguration": "LambdaFunctionArn",
                  "CloudFunctionConfiguration": "CloudFunction"}
_REFUSED = ("TopicConfiguration", "EventBridgeConfiguration")


def function_name(target: str) -> str:
    if target.startswith("arn:"):
        parts = target.split(":")
        if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
            return parts[6]
        if len(parts) == 4 and parts[1] == "vallum" and parts[2] == "function":
            return parts[3]
        raise errors.InvalidArgument("Unable to validate the following destination "
                                     f"configurations: {target} is not a function ARN",
                                     ArgumentName=target, ArgumentValue="Not a function")
    return target


def parse(data: bytes) -> tuple[list[dict], list[dict]]:
    """(object triggers, queue routes) a NotificationConfiguration document asks for."""
    root = xml.parse(data, "NotificationConfiguration")
    out, queues = [], []
    for elem in root:
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag in _REFUSED:
            raise errors.InvalidArgument(
                "Unable to validate the following destination configurations: Vallum delivers "
                f"notifications to Vallum functions and event targets only ({tag} is not "
                "supported)", ArgumentName=tag, ArgumentValue="Not supported")
        if tag == "QueueConfiguration":
            queues.append(_entry(elem, "target", _queue_arn(xml.text(elem, "Queue"))))
            continue
        if tag not in _FUNCTION_TAGS:
            raise errors.MalformedXML()
        target = xml.text(elem, _FUNCTION_TAGS[tag]) or xml.text(elem, "CloudFunction")
        out.append(_entry(elem, "function", function_name(target) if target else ""))
    return out, queues


def _queue_arn(arn: str | None) -> str:
    if not arn:
        raise errors.MalformedXML()
    if not arn.startswith("arn:vallum:sqs:"):
        raise errors.InvalidArgument("Unable to validate the following destination "
                                     f"configurations: {arn} is not a Vallum event target",
                                     ArgumentName=arn, ArgumentValue="Not an event target")
    return arn


def _entry(elem, what: str, target: str) -> dict:
    """One configuration's target, events and key filter."""
    events = [e.text or "" for e in xml.children(elem, "Event")]
    if not target or not events:
        raise errors.MalformedXML()
    prefix = suffix = ""
    flt = xml.child(elem, "Filter")
    key = xml.child(flt, "S3Key") if flt is not None else None
    for rule in xml.children(key, "FilterRule") if key is not None else []:
        name, value = (xml.text(rule, "Name") or "").lower(), xml.text(rule, "Value") or ""
        if name == "prefix":
            prefix = value
        elif name == "suffix":
            suffix = value
        else:
            raise errors.InvalidArgument("FilterRule name must be either prefix or suffix",
                                         ArgumentName="FilterRule", ArgumentValue=name)
    return {"id": xml.text(elem, "Id"), what: target, "events": events, "prefix": prefix,
            "suffix": suffix}


async def put_bucket_notification(request: Request) -> Response:
    bucket = await get_bucket(request)
    data = await request.body.read(xml.MAX_XML_BODY)
    wanted, queues = parse(data)
    compute = getattr(request.services, "compute", None)
    if compute is None and (wanted or queues):
        raise errors.InvalidArgument("Unable to validate the following destination "
                                     "configurations: compute is not running on this gateway")
    if compute is not None:
        try:
            # Queue routes are checked first: a refused document changes nothing.
            routes = compute.event_targets.check_routes(bucket.name, bucket.owner, queues)
            await compute.set_notifications(gate.principal_of(request), bucket.name, wanted)
            await compute.event_targets.set_routes(bucket.name, routes)
        except SpecError as exc:
            raise errors.InvalidArgument("Unable to validate the following destination "
                                         f"configurations: {exc.message}") from None
        compute.triggers.reload()
    if wanted or queues:
        bucket.config[CONFIG_KEY] = data.decode("utf-8")
    else:
        bucket.config.pop(CONFIG_KEY, None)
    await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_bucket_notification(request: Request) -> Response:
    bucket = await get_bucket(request)
    text = bucket.config.get(CONFIG_KEY)
    if text:
        return xml_response(text.encode())
    return xml_response(f'<?xml version="1.0" encoding="UTF-8"?>\n'
                        f'<NotificationConfiguration xmlns="{_NS}"/>'.encode())
