"""AWS Signature Version 2 verification for S3 (pure protocol code, no I/O).

boto3's ``generate_presigned_url`` still signs S3 URLs with V2 by default and older tools
sign every request that way, so the gateway accepts both V2 forms: the
``Authorization: AWS AKID:signature`` header and the ``AWSAccessKeyId``/``Signature``/
``Expires`` query. The string to sign is::

    METHOD \n Content-MD5 \n Content-Type \n Date-or-Expires \n x-amz-* headers \n resource

signed with HMAC-SHA1 and base64-encoded. V2 signs only the query parameters that select
a sub-resource, so a parameter that selects an operation but is *not* in the signed list
is refused (otherwise anyone holding a presigned URL could append, say,
``?publicAccessBlock`` and turn it into another operation).

Clients disagree on a few details (empty Date line when x-amz-date is present, ``acl=``
versus ``acl``, '+' in a sub-resource value). As in sigv4, a handful of canonical forms of
the same request are tried; each is an exact function of the bytes received and covers
the same parts of the request, so the choice never widens what the signature protects.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from datetime import timezone
from email.utils import parsedate_to_datetime
from itertools import product
from typing import Any
from urllib.parse import unquote_to_bytes

from vallum.s3 import errors
from vallum.s3.router import SUBRESOURCES as ROUTED_SUBRESOURCES
from vallum.s3.sigv4 import AuthResult

MAX_SKEW_SECONDS = 15 * 60
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

RESPONSE_OVERRIDES = frozenset({
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires",
})
# The sub-resources the canonical resource includes: AWS's documented list, the later
# additions clients sign (botocore's HmacV1Auth, minio-go's resourceList) and the object
# lock ones. botocore does not sign retention/legal-hold; MinIO requires them too.
SIGNED_SUBRESOURCES = frozenset({
    "acl", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions",
    "website", "delete", "cors", "tagging", "restore", "retention", "legal-hold", "object-lock",
    # botocore / minio-go / aws-sdk-java v1 extras
    "accelerate", "analytics", "defaultObjectAcl", "encryption", "inventory", "metrics",
    "replication", "select", "select-type", "storageClass",
}) | RESPONSE_OVERRIDES
# Operation-selecting parameters no V2 signer covers: refused rather than left unsigned.
UNSIGNABLE_SUBRESOURCES = frozenset(ROUTED_SUBRESOURCES) - SIGNED_SUBRESOURCES

_PRESIGN_MESSAGE = ("Query-string authentication requires the Signature, Expires and "
                    "AWSAccessKeyId parameters")
_DATE_MESSAGE = "AWS authentication requires a valid Date or x-amz-date header"


# ---------------------------------------------------------------------------- primitives

def sign(secret: str, string_to_sign: str) -> str:
    """Base64 HMAC-SHA1 of the string to sign (the V2 signature)."""
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def _split_query(raw_query: str) -> list[tuple[str, str | None]]:
    """(name, value) as sent; value None when the parameter has no '=' (``?acl``)."""
    pairs: list[tuple[str, str | None]] = []
    for part in raw_query.split("&"):
        if part:
            name, sep, value = part.partition("=")
            pairs.append((name, value if sep else None))
    return pairs


def _decode(text: str, plus_is_space: bool = False) -> str:
    # ASGI strings are latin-1 views of the raw bytes; the decoded bytes are UTF-8 text.
    raw = text.encode("latin-1", "replace")
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    return unquote_to_bytes(raw).decode("utf-8", "replace")


def _header_map(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name.lower(), []).append(value)
    return out


def _single(values: list[str] | None, name: str) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise errors.InvalidArgument(f"Multiple {name} headers are not allowed.",
                                     ArgumentName=name)
    return values[0]


def _epoch_to_amz(epoch: float) -> str:
    return time.strftime(_AMZ_DATE_FORMAT, time.gmtime(epoch))


def _parse_time(value: str) -> float | None:
    """Epoch seconds of an RFC 1123 date (what V2 clients send) or ISO 8601 basic form."""
    value = value.strip()
    try:
        return float(calendar.timegm(time.strptime(value, _AMZ_DATE_FORMAT)))
    except ValueError:
        pass
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


# ---------------------------------------------------------------------------- canonical form

def canonical_amz_headers(amz: dict[str, list[str]]) -> str:
    """``name:v1,v2`` lines for every x-amz-* header, names lower-case and sorted."""
    return "".join(f"{name}:{','.join(v.strip() for v in amz[name])}\n" for name in sorted(amz))


def canonical_resource(raw_path: str, raw_query: str, bucket_for_vhost: str | None = None, *,
                       plus_is_space: bool = False, keep_empty_equals: bool = True) -> str:
    """Path as sent (prefixed by /bucket for a virtual host) plus the signed sub-resources.

    Sub-resources are sorted by name (stable, as botocore does), values decoded.
    ``keep_empty_equals`` writes ``acl=`` when the client sent it (botocore); otherwise an
    empty value is written as the bare name (minio-go). '+' in a value is a literal '+'
    for botocore and a space for Go clients (``plus_is_space``).
    """
    path = raw_path or "/"
    if bucket_for_vhost is not None:
        path = "/" + bucket_for_vhost + path
    subs: list[tuple[str, str | None]] = []
    for name, value in _split_query(raw_query):
        decoded_name = _decode(name)
        if decoded_name not in SIGNED_SUBRESOURCES:
            continue
        text = None if value is None else _decode(value, plus_is_space)
        if text == "" and not keep_empty_equals:
            text = None
        subs.append((decoded_name, text))
    subs.sort(key=lambda item: item[0])
    if not subs:
        return path
    return path + "?" + "&".join(n if v is None else f"{n}={v}" for n, v in subs)


def string_to_sign(method: str, content_md5: str, content_type: str, date: str,
                   amz_headers: dict[str, list[str]], resource: str) -> str:
    return (f"{method}\n{content_md5.strip()}\n{content_type.strip()}\n{date}\n"
            f"{canonical_amz_headers(amz_headers)}{resource}")


def _bucket_level_twin(path: str) -> str | None:
    """``/bucket`` <-> ``/bucket/``: one resource, and clients sign either (botocore adds '/')."""
    body = path[1:]
    if body and "/" not in body:
        return path + "/"
    if body.endswith("/") and "/" not in body[:-1] and len(body) > 1:
        return path[:-1]
    return None


def _resource_candidates(raw_path: str, raw_query: str, bucket: str | None) -> list[str]:
    signed = [(n, v) for n, v in _split_query(raw_query) if _decode(n) in SIGNED_SUBRESOURCES]
    pluses = [False, True] if any(v and "+" in v for _, v in signed) else [False]
    empties = [True, False] if any(v == "" for _, v in signed) else [True]
    full = "/" + bucket + (raw_path or "/") if bucket is not None else raw_path or "/"
    twin = _bucket_level_twin(full)
    out: list[str] = []
    for path, plus, keep in product([full] + ([twin] if twin else []), pluses, empties):
        res = canonical_resource(path, raw_query, None, plus_is_space=plus,
                                 keep_empty_equals=keep)
        if res not in out:
            out.append(res)
    return out


# ---------------------------------------------------------------------------- verification

def _check_subresources(raw_query: str) -> None:
    for name, _ in _split_query(raw_query):
        decoded = _decode(name)
        if decoded in UNSIGNABLE_SUBRESOURCES:
            raise errors.AccessDenied(
                f"Signature Version 2 does not sign the ?{decoded} sub-resource; sign this "
                "request with AWS4-HMAC-SHA256.")


def _check_vallum_headers(headers: dict[str, list[str]]) -> None:
    """V2 signs only x-amz-* headers: an x-vallum-* header (label, session level) would
    travel unsigned, so a request carrying one is refused rather than trusted."""
    unsigned = sorted(n for n in headers if n.startswith("x-vallum-"))
    if unsigned:
        raise errors.AccessDenied(
            "Signature Version 2 does not sign x-vallum-* headers; sign this request with "
            "AWS4-HMAC-SHA256.", HeadersNotSigned=", ".join(unsigned))


def _lookup(lookup_secret: Callable[[str], str | None], access_key: str) -> str:
    secret = lookup_secret(access_key)
    if secret is None:
        raise errors.InvalidAccessKeyId(AWSAccessKeyId=access_key)
    return secret


def _verify(secret: str, access_key: str, provided: str, method: str, md5: str, ctype: str,
            dated: list[tuple[str, dict[str, list[str]]]], resources: list[str]) -> None:
    """Match any (Date line, x-amz-* headers) x resource form; raise SignatureDoesNotMatch."""
    matched = False
    first: str | None = None
    wanted = provided.encode("ascii", "replace")
    for (date, amz), resource in product(dated, resources):
        sts = string_to_sign(method, md5, ctype, date, amz, resource)
        # Evaluate every candidate: the time taken does not depend on which one matched.
        matched |= hmac.compare_digest(sign(secret, sts).encode("ascii"), wanted)
        first = first or sts
    if not matched:
        assert first is not None
        raise errors.SignatureDoesNotMatch(
            AWSAccessKeyId=access_key, SignatureProvided=provided, StringToSign=first,
            StringToSignBytes=" ".join(f"{b:02x}" for b in first.encode("utf-8")))


def _amz_headers(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    return {n: v for n, v in headers.items() if n.startswith("x-amz-")}


def _authenticate_header(method: str, raw_path: str, raw_query: str,
                         headers: dict[str, list[str]], authorization: str, *,
                         lookup_secret: Callable[[str], str | None], region: str, now: float,
                         bucket_for_vhost: str | None) -> AuthResult:
    access_key, sep, signature = authorization[len("AWS "):].strip().partition(":")
    if not sep or not access_key or not signature:
        raise errors.InvalidArgument(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            ArgumentName="Authorization", ArgumentValue=authorization[:64])
    amz_date = _single(headers.get("x-amz-date"), "x-amz-date")
    date = _single(headers.get("date"), "date")
    effective = amz_date if amz_date is not None else date
    epoch = _parse_time(effective) if effective is not None else None
    if epoch is None or effective is None:
        raise errors.AccessDenied(_DATE_MESSAGE)
    if abs(epoch - now) > MAX_SKEW_SECONDS:
        raise errors.RequestTimeTooSkewed(
            RequestTime=effective.strip(), ServerTime=_epoch_to_amz(now),
            MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000))
    amz = _amz_headers(headers)
    if amz_date is None:
        dated = [(effective.strip(), amz)]
    else:
        # With x-amz-date the spec leaves the Date line empty; botocore still writes Date
        # there, and AWS's own DELETE example moves x-amz-date into the Date line.
        dated = [("", amz), (amz_date.strip(),
                             {n: v for n, v in amz.items() if n != "x-amz-date"})]
        if date is not None:
            dated.append((date.strip(), amz))
    _check_subresources(raw_query)
    _check_vallum_headers(headers)
    secret = _lookup(lookup_secret, access_key)
    _verify(secret, access_key, signature, method,
            _single(headers.get("content-md5"), "content-md5") or "",
            _single(headers.get("content-type"), "content-type") or "",
            dated, _resource_candidates(raw_path, raw_query, bucket_for_vhost))
    token = _single(headers.get("x-amz-security-token"), "x-amz-security-token")
    return AuthResult(access_key=access_key, mode="header-v2", payload="unsigned",
                      content_sha256=None, region=region, amz_date=_epoch_to_amz(epoch),
                      scope="", signing_key=b"", signature=signature, session_token=token)


def _query_params(raw_query: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in _split_query(raw_query):
        out.setdefault(_decode(name), []).append(_decode(value or ""))
    return out


def _presign_param(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name)
    if not values or not values[0]:
        raise errors.AccessDenied(_PRESIGN_MESSAGE)
    if len(values) > 1:
        raise errors.AccessDenied(f"Only one {name} parameter is allowed.")
    return values[0]


def _authenticate_presigned(method: str, raw_path: str, raw_query: str,
                            headers: dict[str, list[str]], *,
                            lookup_secret: Callable[[str], str | None], region: str,
                            now: float, bucket_for_vhost: str | None) -> AuthResult:
    params = _query_params(raw_query)
    access_key = _presign_param(params, "AWSAccessKeyId")
    # A '+' of the base64 signature sent unencoded may have been read as a space.
    signature = _presign_param(params, "Signature").replace(" ", "+")
    expires_text = _presign_param(params, "Expires")
    if not expires_text.isdigit() or len(expires_text) > 12:
        raise errors.AccessDenied("Invalid date (should be seconds since epoch): "
                                  + expires_text[:32])
    expires = int(expires_text)
    if now > expires:
        raise errors.AccessDenied("Request has expired", Expires=_epoch_to_amz(expires),
                                  ServerTime=_epoch_to_amz(now))
    _check_subresources(raw_query)
    _check_vallum_headers(headers)
    secret = _lookup(lookup_secret, access_key)
    # Signers put the x-amz-* (and content-*) "headers" they signed into the query.
    amz = _amz_headers(headers)
    for name, values in params.items():
        if name.lower().startswith("x-amz-") and name.lower() not in amz:
            amz[name.lower()] = values
    md5 = _single(headers.get("content-md5"), "content-md5")
    ctype = _single(headers.get("content-type"), "content-type")
    _verify(secret, access_key, signature, method,
            md5 if md5 is not None else (params.get("content-md5") or [""])[0],
            ctype if ctype is not None else (params.get("content-type") or [""])[0],
            [(expires_text, amz)], _resource_candidates(raw_path, raw_query, bucket_for_vhost))
    token = amz.get("x-amz-security-token")
    return AuthResult(access_key=access_key, mode="presigned-v2", payload="unsigned",
                      content_sha256=None, region=region, amz_date=_epoch_to_amz(now),
                      scope="", signing_key=b"", signature=signature,
                      session_token=token[0] if token else None)


def claimed_credential(headers: list[tuple[str, str]],
                       raw_query: str) -> tuple[str | None, str | None]:
    """(access key id, session token) a SigV2 request claims, unverified: for key lookup.

    (None, None) when the request is not SigV2-signed.
    """
    akid = token = None
    for name, value in headers:
        lname = name.lower()
        if lname == "authorization" and value.startswith("AWS "):
            akid = value[4:].strip().partition(":")[0] or None
        elif lname == "x-amz-security-token":
            token = value
    if akid is None and "AWSAccessKeyId" in raw_query:
        params = _query_params(raw_query)
        akid = (params.get("AWSAccessKeyId") or [""])[0] or None
        if akid is not None and token is None:
            tokens = params.get("x-amz-security-token")
            token = tokens[0] if tokens else None
    return (akid, token) if akid is not None else (None, None)


def authenticate_v2(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]],
                    *, lookup_secret: Callable[[str], str | None], region: str, now: float,
                    bucket_for_vhost: str | None = None) -> AuthResult:
    """Verify a SigV2 request: header form when Authorization is ``AWS ...``, else presigned.

    Arguments are those of ``sigv4.authenticate`` (raw path and query as sent, headers as
    received). ``bucket_for_vhost`` names the bucket a virtual-host request addressed
    through its Host header: the canonical resource then starts with ``/bucket``.
    """
    hmap = _header_map(headers)
    authorization = _single(hmap.get("authorization"), "authorization")
    common: dict[str, Any] = dict(lookup_secret=lookup_secret, region=region, now=now,
                  bucket_for_vhost=bucket_for_vhost)
    if authorization is not None:
        return _authenticate_header(method, raw_path, raw_query, hmap, authorization, **common)
    return _authenticate_presigned(method, raw_path, raw_query, hmap, **common)
