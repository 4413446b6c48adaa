"""AWS Signature Version 4 verification for the S3 gateway (pure protocol code, no I/O).

``authenticate`` checks the ``Authorization: AWS4-HMAC-SHA256 ...`` header form and the
presigned-URL (``X-Amz-Signature`` query) form and returns who signed and how the body
must be checked afterwards (see ``AuthResult.payload``). Everything that fails raises the
S3 error AWS would answer, with a message precise enough to debug a client.

Canonicalisation follows the S3 flavour of SigV4: the path is not normalised and is
encoded once; because clients disagree on how they percent-encode what they send, a few
canonical forms of the *same* bytes are tried (AWS's re-encoding and the form as sent).
Each candidate is an exact function of the request as received, so the choice never
changes what the signature covers.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from vallum.s3 import errors

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_EXPIRES = 604800
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

PAYLOAD_MODES = {
    "UNSIGNED-PAYLOAD": "unsigned",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD": "streaming-signed",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": "streaming-signed-trailer",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER": "streaming-unsigned-trailer",
}
_BAD_PAYLOAD_MESSAGE = (
    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER "
    "or a valid sha256 value."
)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_DATE8 = re.compile(r"[0-9]{8}")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_HEADER_PREFIX = "The authorization header is malformed; "
_QUERY_PREFIX = "Error parsing the X-Amz-Credential parameter; "
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                   "X-Amz-SignedHeaders", "X-Amz-Expires")
# Headers a client never signs (hop-by-hop or rewritten by proxies); botocore's list.
_NEVER_SIGNED = frozenset({
    "authorization", "baggage", "connection", "expect", "keep-alive", "proxy-authenticate",
    "proxy-authorization", "te", "traceparent", "tracestate", "trailer", "transfer-encoding",
    "upgrade", "user-agent", "x-amzn-trace-id",
})
# Headers that must be signed when present: AWS's x-amz-*, and Vallum's x-vallum-* (labels,
# session levels: a proxy or a replayed presigned URL must not be able to add or change them).
MUST_SIGN_PREFIXES = ("x-amz-", "x-vallum-")
# x-amz-* headers that may travel unsigned: this one is covered by the payload line.
_UNSIGNED_AMZ_OK = frozenset({"x-amz-content-sha256"})


@dataclass(frozen=True)
class AuthResult:
    """Who signed a request and what the body must still prove."""

    access_key: str
    mode: str              # "header" | "presigned"
    payload: str           # "signed" | "unsigned" | "streaming-signed" | ...
    content_sha256: str | None   # lower-hex digest the body must hash to when payload == "signed"
    region: str
    amz_date: str          # e.g. 20130524T000000Z
    scope: str             # e.g. 20130524/us-east-1/s3/aws4_request
    signing_key: bytes     # derived key, needed to check chunk signatures
    signature: str         # the request (seed) signature
    session_token: str | None


# ---------------------------------------------------------------------------- primitives

def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=4096)
def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC chain over date, region, service and 'aws4_request'.
    Cached: a key signs every request of a day with the same derived key."""
    k_date = _hmac(("AWS4" + secret).encode("utf-8"), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def sign_string(signing_key: bytes, string_to_sign: str) -> str:
    """Lower-hex HMAC-SHA256 of a string to sign (also used for chunk signatures)."""
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _to_bytes(text: str) -> bytes:
    # ASGI hands raw bytes; a str made from them with latin-1 round-trips exactly.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def uri_encode(data: bytes, *, keep_slash: bool) -> str:
    """AWS UriEncode: keep A-Za-z0-9-_.~ (and '/' in paths), %XX upper-case the rest."""
    return quote(data, safe="/" if keep_slash else "")


def canonical_uri(raw_path: str) -> str:
    """S3 canonical URI: decode the path once, re-encode every byte; no normalisation."""
    return uri_encode(unquote_to_bytes(_to_bytes(raw_path or "/")), keep_slash=True) or "/"


def _split_query(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def _decode(component: str, plus_is_space: bool = False) -> bytes:
    raw = _to_bytes(component)
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    return unquote_to_bytes(raw)


def canonical_query(raw_query: str, *, drop: Iterable[str] = (), plus_is_space: bool = False) -> str:
    """Decode each name and value, re-encode them the AWS way, sort by name then value."""
    dropped = {name.encode() for name in drop}
    pairs = []
    for name, value in _split_query(raw_query):
        name_b = _decode(name, plus_is_space)
        if name_b in dropped:
            continue
        pairs.append((uri_encode(name_b, keep_slash=False),
                      uri_encode(_decode(value, plus_is_space), keep_slash=False)))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _raw_query(raw_query: str, drop: Iterable[str]) -> str:
    """The query as sent, only sorted: what signers that skip re-encoding hash."""
    dropped = set(drop)
    pairs = [(n, v) for n, v in _split_query(raw_query) if n not in dropped]
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


_SPACE_RUNS = re.compile(" +")


def trim_header_value(value: str) -> str:
    """Trimall: strip both ends, collapse inner whitespace runs to one space (botocore)."""
    return " ".join(value.split())


def _trim_spaces_only(value: str) -> str:
    # The other reading of Trimall (Go SDK v1, minio): only runs of ' ' collapse.
    return _SPACE_RUNS.sub(" ", value).strip()


def _canonical_request(method: str, uri: str, query: str, headers: Mapping[str, list[str]],
                       signed_names: list[str], signed_headers: str, payload: str,
                       trim: Callable[[str], str] = trim_header_value) -> str:
    lines = "".join(
        f"{name}:{','.join(trim(v) for v in headers[name])}\n" for name in signed_names
    )
    return f"{method}\n{uri}\n{query}\n{lines}\n{signed_headers}\n{payload}"


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@functools.lru_cache(maxsize=256)     # every request of the same second carries the same string
def _amz_to_epoch(amz_date: str) -> int | None:
    if not _AMZ_DATE.fullmatch(amz_date):
        return None
    try:  # YYYYMMDDTHHMMSSZ, validated by datetime (strptime is slow on the hot path)
        moment = datetime.datetime(int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]),
                                   int(amz_date[9:11]), int(amz_date[11:13]), int(amz_date[13:15]))
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple())


def _epoch_to_amz(epoch: float) -> str:
    return time.strftime(AMZ_DATE_FORMAT, time.gmtime(epoch))


# ---------------------------------------------------------------------------- parsing

@dataclass
class _Request:
    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, list[str]]


@dataclass
class _Claim:
    """What the client asserts: credential, signed headers, signature, time."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: str
    signature: str
    amz_date: str
    payload_hash: str


def _header_map(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name.lower(), []).append(value)
    return out


def _single(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise errors.InvalidArgument(f"Multiple {name} headers are not allowed.",
                                     ArgumentName=name)
    return values[0]


def _query_params(raw_query: str) -> dict[str, list[str]]:
    """Decoded query parameters (only used to find and read the X-Amz-* ones)."""
    out: dict[str, list[str]] = {}
    for name, value in _split_query(raw_query):
        out.setdefault(_decode(name).decode("utf-8", "replace"), []).append(
            _decode(value).decode("utf-8", "replace"))
    return out


def _parse_credential(credential: str, *, region: str, service: str, amz_date: str,
                      error: type[errors.S3Error], prefix: str) -> tuple[str, str]:
    """Split and check AKID/YYYYMMDD/REGION/SERVICE/aws4_request; return (akid, date)."""
    parts = credential.split("/")
    if len(parts) != 5 or not parts[0]:
        raise error(prefix + "the Credential is mal-formed; expecting "
                    "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    access_key, date, cred_region, cred_service, terminal = parts
    if not _DATE8.fullmatch(date) or date != amz_date[:8]:
        raise error(prefix + f"Invalid credential date \"{date}\". This date is not the same "
                    f"as X-Amz-Date: \"{amz_date[:8]}\".")
    if cred_region != region:
        raise error(prefix + f"the region '{cred_region}' is wrong; expecting '{region}'",
                    Region=region)
    if cred_service != service:
        raise error(prefix + f"incorrect service \"{cred_service}\". This endpoint belongs to "
                    f"\"{service}\".")
    if terminal != "aws4_request":
        raise error(prefix + f"incorrect terminal \"{terminal}\". This endpoint uses "
                    "\"aws4_request\".")
    return access_key, date


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise errors.InvalidArgument("Unsupported Authorization Type",
                                     ArgumentName="Authorization", ArgumentValue=value[:64])
    parts: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or key not in ("Credential", "SignedHeaders", "Signature") or key in parts:
            raise errors.AuthorizationHeaderMalformed(
                _HEADER_PREFIX + f"the authorization component \"{item[:64]}\" is malformed.")
        parts[key] = val.strip()
    if len(parts) != 3:
        raise errors.AuthorizationHeaderMalformed(
            _HEADER_PREFIX + "the authorization header requires three components: "
            "Credential, SignedHeaders, and Signature.")
    return parts


def _header_time(headers: dict[str, list[str]]) -> str:
    """The request time in ISO 8601 basic form, from x-amz-date or else Date."""
    amz = _single(headers, "x-amz-date")
    if amz is not None:
        if _amz_to_epoch(amz.strip()) is None:
            raise errors.AccessDenied("AWS authentication requires a valid Date or "
                                      "x-amz-date header")
        return amz.strip()
    date = _single(headers, "date")
    if date is not None:
        try:
            parsed = parsedate_to_datetime(date)
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(timezone.utc)
            return parsed.strftime(AMZ_DATE_FORMAT)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    raise errors.AccessDenied("AWS authentication requires a valid Date or x-amz-date header")


def _payload_mode(value: str) -> tuple[str, str | None]:
    if value in PAYLOAD_MODES:
        return PAYLOAD_MODES[value], None
    if _HEX64.fullmatch(value):
        return "signed", value.lower()
    raise errors.InvalidArgument(_BAD_PAYLOAD_MESSAGE, ArgumentName="x-amz-content-sha256",
                                 ArgumentValue=value[:64])


def _check_signed_headers(signed_headers: str, headers: dict[str, list[str]],
                          error: type[errors.S3Error], prefix: str) -> list[str]:
    names = signed_headers.split(";")
    if not signed_headers or any(not n or n != n.strip() for n in names):
        raise error(prefix + f"the SignedHeaders \"{signed_headers[:128]}\" are malformed.")
    names = [n.lower() for n in names]
    wanted = {n for n in headers if n.startswith(MUST_SIGN_PREFIXES) and n not in _UNSIGNED_AMZ_OK}
    unsigned = sorted(({"host"} | wanted) - set(names))
    if unsigned:
        raise errors.AccessDenied("There were headers present in the request which were not "
                                  "signed", HeadersNotSigned=", ".join(unsigned))
    missing = [n for n in names if n not in headers]
    if missing:
        raise errors.AccessDenied(f"Signed header(s) missing from the request: {', '.join(missing)}")
    return names


def _check_skew(amz_date: str, now: float) -> int:
    epoch = _amz_to_epoch(amz_date)
    assert epoch is not None
    if abs(epoch - now) > MAX_SKEW_SECONDS:
        raise errors.RequestTimeTooSkewed(
            RequestTime=amz_date, ServerTime=_epoch_to_amz(now),
            MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000))
    return epoch


# ---------------------------------------------------------------------------- verification

def _candidates(req: _Request, drop: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (uri, query) canonical forms a well-behaved client may have signed."""
    uris = [canonical_uri(req.raw_path), req.raw_path or "/"]
    queries = [canonical_query(req.raw_query, drop=drop), _raw_query(req.raw_query, drop)]
    if "+" in req.raw_query:
        queries.append(canonical_query(req.raw_query, drop=drop, plus_is_space=True))
    seen: list[tuple[str, str]] = []
    for uri in uris:
        for query in queries:
            if (uri, query) not in seen:
                seen.append((uri, query))
    return seen


def _verify(req: _Request, claim: _Claim, names: list[str], drop: tuple[str, ...],
            secret: str) -> bytes:
    if not _SIGNATURE.fullmatch(claim.signature):
        raise errors.IncompleteSignature(
            f"The request signature does not conform to AWS standards: expected 64 lower-case "
            f"hex characters, got {claim.signature[:80]!r}.")
    key = derive_signing_key(secret, claim.date, claim.region, claim.service)
    scope = f"{claim.date}/{claim.region}/{claim.service}/aws4_request"
    provided = claim.signature.encode("ascii", "replace")
    matched = False
    first: tuple[str, str] | None = None
    trims: list[Callable[[str], str]] = [trim_header_value]
    if any(trim_header_value(v) != _trim_spaces_only(v) for n in names for v in req.headers[n]):
        trims.append(_trim_spaces_only)
    for uri, query in _candidates(req, drop):
        for trim in trims:
            creq = _canonical_request(req.method, uri, query, req.headers, names,
                                      claim.signed_headers, claim.payload_hash, trim)
            sts = string_to_sign(claim.amz_date, scope, creq)
            # Evaluate every candidate: the time taken does not depend on which one matched.
            matched |= hmac.compare_digest(sign_string(key, sts).encode(), provided)
            first = first or (creq, sts)
    if not matched:
        assert first is not None
        raise errors.SignatureDoesNotMatch(
            AWSAccessKeyId=claim.access_key, SignatureProvided=claim.signature,
            StringToSign=first[1], CanonicalRequest=first[0])
    return key


def _lookup(lookup_secret: Callable[[str], str | None], access_key: str) -> str:
    secret = lookup_secret(access_key)
    if secret is None:
        raise errors.InvalidAccessKeyId(AWSAccessKeyId=access_key)
    return secret


def _authenticate_header(req: _Request, authorization: str, *, lookup_secret, region: str,
                         now: float, service: str) -> AuthResult:
    parts = _parse_authorization(authorization)
    amz_date = _header_time(req.headers)
    access_key, date = _parse_credential(parts["Credential"], region=region, service=service,
                                         amz_date=amz_date,
                                         error=errors.AuthorizationHeaderMalformed,
                                         prefix=_HEADER_PREFIX)
    payload_hash = _single(req.headers, "x-amz-content-sha256")
    if payload_hash is None:
        raise errors.InvalidRequest("Missing required header for this request: "
                                    "x-amz-content-sha256")
    payload, content_sha = _payload_mode(payload_hash)
    names = _check_signed_headers(parts["SignedHeaders"], req.headers,
                                  errors.AuthorizationHeaderMalformed, _HEADER_PREFIX)
    _check_skew(amz_date, now)
    secret = _lookup(lookup_secret, access_key)
    claim = _Claim(access_key, date, region, service, parts["SignedHeaders"],
                   parts["Signature"], amz_date, payload_hash)
    key = _verify(req, claim, names, (), secret)
    return AuthResult(access_key=access_key, mode="header", payload=payload,
                      content_sha256=content_sha, region=region, amz_date=amz_date,
                      scope=f"{date}/{region}/{service}/aws4_request", signing_key=key,
                      signature=parts["Signature"],
                      session_token=_single(req.headers, "x-amz-security-token"))


def _presign_param(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name)
    if not values:
        raise errors.AuthorizationQueryParametersError(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
            "and X-Amz-Expires parameters.")
    if len(values) > 1:
        raise errors.AuthorizationQueryParametersError(f"Only one {name} parameter is allowed.")
    return values[0]


def _authenticate_presigned(req: _Request, params: dict[str, list[str]], *, lookup_secret,
                            region: str, now: float, service: str) -> AuthResult:
    p = {name: _presign_param(params, name) for name in _PRESIGN_PARAMS}
    if p["X-Amz-Algorithm"] != ALGORITHM:
        raise errors.AuthorizationQueryParametersError(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
    amz_date = p["X-Amz-Date"]
    epoch = _amz_to_epoch(amz_date)
    if epoch is None:
        raise errors.AuthorizationQueryParametersError(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if not _EXPIRES.fullmatch(p["X-Amz-Expires"]):
        raise errors.AuthorizationQueryParametersError(
            "X-Amz-Expires should be a number" if not p["X-Amz-Expires"].startswith("-")
            else "X-Amz-Expires must be non-negative")
    expires = int(p["X-Amz-Expires"])
    if expires > MAX_PRESIGN_EXPIRES:
        raise errors.AuthorizationQueryParametersError(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    access_key, date = _parse_credential(p["X-Amz-Credential"], region=region, service=service,
                                         amz_date=amz_date,
                                         error=errors.AuthorizationQueryParametersError,
                                         prefix=_QUERY_PREFIX)
    names = _check_signed_headers(p["X-Amz-SignedHeaders"], req.headers,
                                  errors.AuthorizationQueryParametersError,
                                  "X-Amz-SignedHeaders: ")
    if now > epoch + expires:
        fields: dict[str, Any] = {
            "X-Amz-Expires": str(expires), "Expires": _epoch_to_amz(epoch + expires),
            "ServerTime": _epoch_to_amz(now)}
        raise errors.AccessDenied("Request has expired", **fields)
    if epoch - now > MAX_SKEW_SECONDS:
        raise errors.AccessDenied("Request is not valid yet", RequestTime=amz_date,
                                  ServerTime=_epoch_to_amz(now))
    payload_hash = params.get("X-Amz-Content-Sha256", ["UNSIGNED-PAYLOAD"])[0]
    payload, content_sha = _payload_mode(payload_hash)
    if payload not in ("signed", "unsigned"):
        raise errors.AuthorizationQueryParametersError(
            "X-Amz-Content-Sha256 must be UNSIGNED-PAYLOAD or a sha256 value for presigned "
            "requests.")
    secret = _lookup(lookup_secret, access_key)
    claim = _Claim(access_key, date, region, service, p["X-Amz-SignedHeaders"],
                   p["X-Amz-Signature"], amz_date, payload_hash)
    key = _verify(req, claim, names, ("X-Amz-Signature",), secret)
    token = params.get("X-Amz-Security-Token")
    return AuthResult(access_key=access_key, mode="presigned", payload=payload,
                      content_sha256=content_sha, region=region, amz_date=amz_date,
                      scope=f"{date}/{region}/{service}/aws4_request", signing_key=key,
                      signature=p["X-Amz-Signature"], session_token=token[0] if token else None)


def authenticate(method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]], *,
                 lookup_secret: Callable[[str], str | None], region: str, now: float,
                 service: str = "s3", bucket_for_vhost: str | None = None) -> AuthResult | None:
    """Verify a SigV4 (or SigV2) request; None when it carries no credentials (anonymous).

    headers: (lower-case name, value) pairs as received (repeated names possible).
    raw_path: the path exactly as sent, still percent-encoded (ASGI raw_path decoded with
    latin-1), no query. raw_query: the query string as sent (no leading '?').
    bucket_for_vhost: the bucket named by the Host header of a virtual-host request (SigV2
    signs it as a path prefix; SigV4 signs the Host header instead).
    """
    req = _Request(method, raw_path, raw_query, _header_map(headers))
    authorization = _single(req.headers, "authorization")
    params = _query_params(raw_query)
    presigned = any(name in params for name in ("X-Amz-Algorithm", "X-Amz-Signature",
                                                  "X-Amz-Credential"))
    presigned_v2 = "AWSAccessKeyId" in params or "Signature" in params
    if (authorization is not None) + presigned + presigned_v2 > 1:
        raise errors.InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            ArgumentName="Authorization")
    if presigned_v2 or (authorization is not None and authorization.startswith("AWS ")):
        from vallum.s3.sigv2 import authenticate_v2  # sigv2 imports AuthResult from here
        return authenticate_v2(method, raw_path, raw_query, headers, lookup_secret=lookup_secret,
                               region=region, now=now, bucket_for_vhost=bucket_for_vhost)
    if authorization is not None:
        return _authenticate_header(req, authorization, lookup_secret=lookup_secret,
                                    region=region, now=now, service=service)
    if presigned:
        return _authenticate_presigned(req, params, lookup_secret=lookup_secret,
                                       region=region, now=now, service=service)
    return None


# ---------------------------------------------------------------------------- client side

def _host_from_url(scheme: str, netloc: str) -> str:
    host = netloc.rpartition("@")[2].lower()
    default = {"http": ":80", "https": ":443"}.get(scheme.lower())
    if default and host.endswith(default):
        host = host[: -len(default)]
    return host


def sign_headers(method: str, url: str, headers: dict[str, str], body_sha256: str,
                 access_key: str, secret_key: str, region: str, now: float,
                 service: str = "s3") -> dict[str, str]:
    """Sign a request the way ``authenticate`` verifies it (for Vallum's own CLI).

    Returns a copy of ``headers`` plus x-amz-date, x-amz-content-sha256 and Authorization.
    Host is signed as the HTTP client will send it (from the URL, default port dropped)
    but is not added to the returned headers, so clients that set it themselves don't
    send it twice. Every header passed in (except hop-by-hop ones) is signed.
    """
    parts = urlsplit(url)
    amz_date = _epoch_to_amz(now)
    date = amz_date[:8]
    replaced = {"authorization", "x-amz-date", "x-amz-content-sha256"}
    out = {k: v for k, v in headers.items() if k.lower() not in replaced}
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = body_sha256
    to_sign = {k.lower(): [v] for k, v in out.items() if k.lower() not in _NEVER_SIGNED}
    to_sign.setdefault("host", [_host_from_url(parts.scheme, parts.netloc)])
    names = sorted(to_sign)
    signed_headers = ";".join(names)
    creq = _canonical_request(method.upper(), canonical_uri(parts.path), canonical_query(parts.query),
                              to_sign, names, signed_headers, body_sha256)
    scope = f"{date}/{region}/{service}/aws4_request"
    key = derive_signing_key(secret_key, date, region, service)
    signature = sign_string(key, string_to_sign(amz_date, scope, creq))
    out["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    return out
