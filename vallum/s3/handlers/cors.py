"""CORS: Put/Get/DeleteBucketCors, the OPTIONS preflight, and Access-Control-* headers
on actual responses, so a browser page can talk to a bucket directly.

A preflight is answered without authentication (browsers send none); it only
reveals whether the bucket's rules allow the described request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vallum.http import Request, Response, xml_response
from vallum.s3 import errors, xml
from vallum.s3.handlers.common import MD5_REQUIRED, check_body_digests, get_bucket

log = logging.getLogger("vallum.cors")

CONFIG_KEY = "cors"
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100


@dataclass(frozen=True)
class CorsRule:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age: int | None = None
    id: str | None = None


def _wildcard_match(pattern: str, value: str) -> bool:
    """At most one '*' matching any run of characters."""
    if "*" not in pattern:
        return pattern == value
    head, _, tail = pattern.partition("*")
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def parse_cors(data: bytes) -> list[CorsRule]:
    doc = xml.parse(data, "CORSConfiguration")
    xml.only_known(doc, {"CORSRule"})
    rules = []
    for elem in xml.children(doc, "CORSRule"):
        xml.only_known(elem, {"ID", "AllowedHeader", "AllowedMethod", "AllowedOrigin", "ExposeHeader",
                              "MaxAgeSeconds"})
        methods = tuple((e.text or "").strip() for e in xml.children(elem, "AllowedMethod"))
        origins = tuple((e.text or "").strip() for e in xml.children(elem, "AllowedOrigin"))
        headers = tuple((e.text or "").strip() for e in xml.children(elem, "AllowedHeader"))
        if not methods or not origins:
            raise errors.MalformedXML()
        for m in methods:
            if m not in METHODS:
                raise errors.InvalidRequest(f"Found unsupported HTTP method in CORS config. Unsupported method is {m}")
        for o in origins:
            if o.count("*") > 1:
                raise errors.InvalidRequest(f'AllowedOrigin "{o}" can not have more than one wildcard.')
        for h in headers:
            if h.count("*") > 1:
                raise errors.InvalidRequest(f'AllowedHeader "{h}" can not have more than one wildcard.')
        max_age = xml.text(elem, "MaxAgeSeconds")
        try:
            age = int(max_age) if max_age is not None else None
        except ValueError:
            raise errors.MalformedXML() from None
        rules.append(CorsRule(origins, methods, headers,
                              tuple((e.text or "").strip() for e in xml.children(elem, "ExposeHeader")),
                              age, xml.text(elem, "ID")))
    if not rules or len(rules) > MAX_RULES:
        raise errors.MalformedXML()
    return rules


def match(rules: list[CorsRule], origin: str, method: str,
          request_headers: list[str] | None = None) -> tuple[CorsRule, str] | None:
    """The first rule allowing (origin, method, headers), with the origin pattern that matched."""
    for rule in rules:
        if method not in rule.methods:
            continue
        pattern = next((o for o in rule.origins if _wildcard_match(o, origin)), None)
        if pattern is None:
            continue
        allowed = [h.lower() for h in rule.headers]
        if request_headers and not all(any(_wildcard_match(a, h) for a in allowed) for h in request_headers):
            continue
        return rule, pattern
    return None


def cors_headers(rule: CorsRule, pattern: str, origin: str) -> dict[str, str]:
    h = {"access-control-allow-origin": "*" if pattern == "*" else origin,
         "access-control-allow-methods": ", ".join(rule.methods),
         "vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"}
    if pattern != "*":
        h["access-control-allow-credentials"] = "true"
    if rule.expose:
        h["access-control-expose-headers"] = ", ".join(rule.expose)
    if rule.max_age is not None:
        h["access-control-max-age"] = str(rule.max_age)
    return h


def _rules_of(bucket) -> list[CorsRule] | None:
    text = bucket.config.get(CONFIG_KEY)
    return parse_cors(text.encode()) if text else None


async def preflight(request: Request) -> Response:
    """OPTIONS on a bucket or object: answer per the first matching rule, else 403."""
    origin = request.headers.get("origin")
    if not origin:
        raise errors.BadRequest("Insufficient information. Origin request header needed.")
    method = request.headers.get("access-control-request-method")
    if method not in METHODS:
        raise errors.BadRequest(f"Invalid Access-Control-Request-Method: {method if method else 'null'}")
    bucket = await get_bucket(request)
    rules = _rules_of(bucket)
    if not rules:
        raise errors.CORSResponse()
    wanted = [h.strip().lower() for h in request.headers.get("access-control-request-headers", "").split(",")
              if h.strip()]
    found = match(rules, origin, method, wanted)
    if found is None:
        raise errors.AccessForbidden()
    headers = cors_headers(*found, origin)
    if wanted:
        headers["access-control-allow-headers"] = ", ".join(wanted)
    return Response(200, headers)


async def decorate(request: Request, response: Response) -> None:
    """Add Access-Control-* headers to an actual response whose Origin a rule allows."""
    origin = request.headers.get("origin")
    if not origin or request.endpoint.bucket is None:
        return
    try:
        bucket = await request.services.meta.get_bucket(request.endpoint.bucket)
        rules = _rules_of(bucket) if bucket is not None else None
    except Exception:  # noqa: BLE001 - CORS headers are best effort; the answer itself stands
        log.exception("could not evaluate CORS rules")
        return
    if not rules:
        return
    found = match(rules, origin, request.method)
    if found is not None:
        response.headers.update(cors_headers(*found, origin))


# -- configuration ---------------------------------------------------------------
async def put_bucket_cors(request: Request) -> Response:
    bucket = await get_bucket(request)
    data = await request.body.read(xml.MAX_XML_BODY)
    check_body_digests(request, data, required=MD5_REQUIRED)
    parse_cors(data)
    bucket.config[CONFIG_KEY] = data.decode("utf-8")
    await request.services.meta.update_bucket(bucket)
    return Response(200)


async def get_bucket_cors(request: Request) -> Response:
    bucket = await get_bucket(request)
    rules = _rules_of(bucket)
    if not rules:
        raise errors.NoSuchCORSConfiguration(BucketName=bucket.name)
    out = []
    for r in rules:
        item: list[tuple[str, object]] = [("ID", r.id)]
        item += [("AllowedHeader", h) for h in r.headers]
        item += [("AllowedMethod", m) for m in r.methods]
        item += [("AllowedOrigin", o) for o in r.origins]
        item += [("ExposeHeader", e) for e in r.expose]
        item.append(("MaxAgeSeconds", r.max_age))
        out.append(("CORSRule", tuple(item)))
    return xml_response(xml.render("CORSConfiguration", out))


async def delete_bucket_cors(request: Request) -> Response:
    bucket = await get_bucket(request)
    if bucket.config.pop(CONFIG_KEY, None) is not None:
        await request.services.meta.update_bucket(bucket)
    return Response(204)
