"""PostObject: a browser form upload (``POST /bucket``, multipart/form-data).

The form carries its own credentials: the fields before the file name the key, the
metadata and a base64 POST policy signed by an access key (s3/post_signature.py); the
policy's conditions bound what the form may set (s3/post_policy.py). Once the signature
and the policy hold, the request becomes the signer's PutObject of the file: the signer
is authorized for s3:PutObject on the key (and the actions its fields imply) exactly as a
PutObject of the same key and headers, then objects.write_object applies MAC (labels from
the form, the signer's clearance), spill scanning, quotas, object lock and events. The
body is never held whole: fields are read up to MAX_FIELDS, the file streams through
formdata.FormReader with the policy's content-length-range enforced as it arrives.
"""

from __future__ import annotations

import time
from typing import Any, cast
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from vallum.compute import object_events as events
from vallum.http import Headers, Request, Response
from vallum.iam import gate, sts
from vallum.iam.principal import Principal
from vallum.operator import gateway as operator_hook
from vallum.s3 import errors, formdata, post_policy, post_signature, xml
from vallum.s3.body import Body
from vallum.s3.formdata import FormError, FormReader, FormTooLarge
from vallum.s3.handlers import objects, tagging
from vallum.s3.router import Endpoint
from vallum.s3.tags import OBJECT_TAG_LIMIT
from vallum.security.crypto import fips

MAX_FIELDS = 20 * 1024          # S3's limit on the fields before the file
TRAILING_LIMIT = 64 * 1024      # fields after the file are read (and ignored) up to this
NOT_MULTIPART = "Bucket POST must be of the enclosure-type multipart/form-data"
STRICT_REFUSAL = ("This server requires a signed payload; a browser form upload (PostObject) "
                  "signs only its policy and is refused.")
# Form fields that are not object headers (the rest map to the PutObject header they name).
_FORM_ONLY = frozenset({"key", "policy", "bucket", "file", "acl", "tagging",
                        "success_action_status", "success_action_redirect", "redirect",
                        "awsaccesskeyid", "signature", "x-amz-signature", "x-amz-credential",
                        "x-amz-algorithm", "x-amz-date", "x-amz-security-token"})
_OBJECT_HEADERS = frozenset({"cache-control", "content-type", "content-disposition",
                             "content-encoding", "content-language", "expires"})
_KEPT_HEADERS = ("host", "origin", "user-agent", "referer")   # the request's own, kept


async def post_object(request: Request) -> Response:
    boundary = formdata.boundary_of(request.headers.get("content-type"))
    if boundary is None:
        raise errors.PreconditionFailed(Condition=NOT_MULTIPART)
    reader = FormReader(request.body.chunks(), boundary, field_limit=MAX_FIELDS)
    try:
        sent, part = await reader.fields()
    except FormTooLarge:
        raise errors.MaxPostPreDataLengthExceededError() from None
    except FormError:
        raise errors.MalformedPOSTRequest() from None
    form = _by_name(sent)
    if part is None:
        raise errors.InvalidArgument("POST requires exactly one file upload per request.",
                                     ArgumentName="file", ArgumentValue="0")
    if "key" not in form:
        raise post_signature.missing("key")
    form["key"] = form["key"].replace("${filename}", part.filename or "")
    if not form["key"]:
        raise errors.InvalidArgument("User key must have a length greater than 0.",
                                     ArgumentName="key", ArgumentValue="")
    bucket, key = request.bucket, form["key"]
    signed = post_signature.claim(form, request.services.config.region)
    size_range = None
    if signed is not None:
        if request.caller is not None and not request.caller.anonymous:
            raise errors.InvalidArgument("Only one auth mechanism allowed; a signed POST form "
                                         "carries no Authorization header",
                                         ArgumentName="Authorization")
        request.audit["principal"] = signed.access_key        # attributed even if refused
        signer = await _signer(request, signed, form["policy"])
        policy = post_policy.parse(form["policy"])
        post_policy.check(policy, form, bucket, time.time())
        size_range = policy.length_range
        _become(request, signer)
    request.endpoint = Endpoint("PostObject", bucket, key, {}, True)
    request.headers = _headers(request.headers, form, part)
    request.__dict__.pop("_mac_subject", None)       # MAC sees the signer and the form
    if signed is not None:
        operator_hook.admit(request.services, request)     # the signer may be contained
    await gate.authorize(request, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}")
    outer = request.body
    # The file as the body write_object reads (the part of Body's interface it uses).
    request.body = cast(Body, FileBody(reader, outer, size_range))
    stored = await objects.write_object(request, events.CREATED_POST, sized=False)
    return _answer(request, form, stored)


def _by_name(sent: list[tuple[str, str]]) -> dict[str, str]:
    """Fields by lower-case name (S3's names are case-insensitive); a repeated field is
    refused: which of the two would the policy have been checked against?"""
    form: dict[str, str] = {}
    for name, value in sent:
        low = name.lower()
        if low in form:
            raise errors.InvalidArgument(f"The form field {name[:64]} is repeated",
                                         ArgumentName=name[:64])
        form[low] = value
    return form


async def _signer(request: Request, signed: post_signature.PostClaim, policy: str) -> Principal:
    """The principal whose key signed the policy; the S3 error otherwise. Failed attempts
    count toward the key's and address's lockout as any failed signature does."""
    services = request.services
    config = services.config
    if signed.version == "v2" and getattr(config, "fips", False):
        raise errors.InvalidRequest(fips.SIGV2_REFUSED)
    if getattr(config, "require_signed_payload", False):
        raise errors.AccessDenied(STRICT_REFUSAL)
    iam = services.iam
    try:
        try:
            resolved = iam.identities.resolve(signed.access_key, signed.token, time.time())
        except sts.TokenExpired:
            raise errors.ExpiredToken() from None
        except sts.TokenError as exc:
            raise errors.InvalidToken("The provided token is malformed or otherwise "
                                      f"invalid: {exc}") from None
        if resolved is None:
            raise errors.InvalidAccessKeyId(AWSAccessKeyId=signed.access_key[:128])
        post_signature.verify(signed, resolved[0], policy)
    except (errors.InvalidAccessKeyId, errors.SignatureDoesNotMatch, errors.InvalidToken):
        if iam.limiter.blocked(signed.access_key, request.source_ip):
            raise errors.SlowDown("Too many failed authentication attempts; retry later.") from None
        iam.limiter.failed(signed.access_key, request.source_ip)
        raise
    if getattr(services, "compute", None) and services.compute.revoked(signed.access_key):
        raise errors.ExpiredToken()          # a compute task's key: its task has ended
    return resolved[1]


def _become(request: Request, signer: Principal) -> None:
    """The request is the signer's from here on: its account view, its audit attribution."""
    request.caller = signer
    request.principal = signer.access_key
    request.services = request.services.for_caller(signer)


def _wire(value: str, name: str) -> str:
    """A field as a header value: the UTF-8 bytes one per character (as headers arrive);
    control characters are refused (they would end a response header line)."""
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
        raise errors.InvalidArgument(f"The form field {name[:64]} holds a control character",
                                     ArgumentName=name[:64])
    return value.encode("utf-8").decode("latin-1")


def _headers(request_headers: Headers, form: dict[str, str], part: formdata.Part) -> Headers:
    """The PutObject headers the form stands for: object headers, x-amz-* and x-vallum-*
    fields (metadata, label, storage class, lock...), ``acl`` and ``tagging``; the content
    type from the field, else from the file part."""
    raw = [(n, v) for n, v in request_headers.raw if n in _KEPT_HEADERS]
    for name, value in form.items():
        if name in _FORM_ONLY:
            continue
        if name in _OBJECT_HEADERS or name.startswith(("x-amz-", "x-vallum-")):
            raw.append((name, _wire(value, name)))
    if "acl" in form:
        raw.append(("x-amz-acl", _wire(form["acl"], "acl")))
    if "tagging" in form:
        tags = tagging.parse_tagging(xml.parse(form["tagging"].encode(), "Tagging"), OBJECT_TAG_LIMIT)
        raw.append(("x-amz-tagging", urlencode(list(tags.items()))))
    if "content-type" not in form and part.content_type:
        raw.append(("content-type", _wire(part.content_type, "content-type")))
    return Headers(raw)


class FileBody:
    """The file part as the request body write_object reads: its bytes as they arrive,
    held to the policy's content-length-range (EntityTooLarge the moment it is passed)."""

    streaming = False

    def __init__(self, reader: FormReader, outer: Any, size_range: tuple[int, int] | None) -> None:
        self._reader, self._outer, self._range = reader, outer, size_range
        self.length: int | None = None
        self.trailers: dict[str, str] = {}
        self.head = b""

    @property
    def has_body(self) -> bool:
        return bool(self._outer.has_body)

    @property
    def done(self) -> bool:
        return bool(self._outer.done)

    async def chunks(self):
        low, high = self._range if self._range is not None else (0, None)
        count = 0
        try:
            async for data in self._reader.file():
                count += len(data)
                if high is not None and count > high:
                    raise errors.EntityTooLarge(MaxSizeAllowed=str(high))
                if len(self.head) < 4096:
                    self.head += data[:4096 - len(self.head)]
                yield data
            # Read to the end before the file is committed, so the whole body is checked
            # (its declared length, a header signature's payload hash) before it is stored.
            if not await self._reader.rest(TRAILING_LIMIT):
                raise errors.MaxMessageLengthExceeded(
                    "The form fields after the file are too large.")
        except FormError:
            raise errors.MalformedPOSTRequest() from None
        if count < low:
            raise errors.EntityTooSmall(MinSizeAllowed=str(low), ProposedSize=str(count))
        self.length = count


def _redirect(url: str | None, bucket: str, key: str, etag: str) -> str | None:
    """success_action_redirect with S3's bucket/key/etag query added; None when S3 would
    not take it as a URL (printable ASCII only, http or https, a host): the field is then
    ignored, as S3 does, and no byte of it reaches a header."""
    if not url or any(not 0x21 <= ord(c) <= 0x7E for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    query = urlencode({"bucket": bucket, "key": key, "etag": etag})
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


def _answer(request: Request, form: dict[str, str], stored: Response) -> Response:
    """S3's answer: 303 to the redirect, else success_action_status 200 or 201 (with a
    PostResponse document), else 204; ETag and Location (the object's URL) always."""
    bucket, key = request.bucket, request.key
    etag = stored.headers["etag"]
    scheme = "https" if request.secure else "http"
    location = f"{scheme}://{request.headers.get('host', '')}/{bucket}/{quote(key, safe='/')}"
    headers = dict(stored.headers, location=location)
    target = _redirect(form.get("success_action_redirect") or form.get("redirect"), bucket, key, etag)
    if target is not None:
        return Response(303, dict(headers, location=target))
    status = form.get("success_action_status")
    if status == "200":
        return Response(200, headers)
    if status == "201":
        body = xml.render("PostResponse", [("Location", location), ("Bucket", bucket),
                                           ("Key", key), ("ETag", etag)])
        return Response(201, dict(headers, **{"content-type": "application/xml"}), body)
    return Response(204, headers)
