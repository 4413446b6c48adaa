"""Request -> S3 operation: one exhaustive table, pure parsing, no I/O.

Every operation of the AWS S3 API reference is named here, supported or not,
so that an unsupported call is answered NotImplemented by name rather than
mistaken for a neighbour (e.g. ``PUT /b?cors`` must never become CreateBucket).
The table is also the source of ``docs/s3-compatibility.md``
(``python -m vallum.s3.router > docs/s3-compatibility.md``).

An operation is chosen by (method, level, sub-resource), where the level is
service (``/``), bucket or object, and the sub-resource is the one flag query
parameter such as ``?acl``; ties are broken by the presence of ordinary query
parameters (``uploadId``, ``id``, ``list-type``) and of the x-amz-copy-source
header, in table order.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from dataclasses import dataclass, field

from vallum.s3.errors import InvalidArgument, InvalidBucketName, InvalidURI, MethodNotAllowed
from vallum.s3.errors import NotImplemented_ as NotImplementedError_
from vallum.s3.names import validate_key

SERVICE, BUCKET, OBJECT, LAMBDA = "service", "bucket", "object", "object-lambda"
_PATHS = {SERVICE: "/", BUCKET: "/{Bucket}", OBJECT: "/{Bucket}/{Key+}",
          LAMBDA: "/WriteGetObjectResponse"}
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Route:
    """One row of the table: how a request names ``name``."""

    name: str
    method: str
    level: str
    subresource: str | None = None           # flag query parameter, e.g. "acl"
    when: tuple[str, ...] = ()               # query parameters that must all be present
    copy_source: bool = False                # requires the x-amz-copy-source header
    equals: tuple[tuple[str, str], ...] = ()  # required values, else InvalidArgument

    @property
    def selector(self) -> str:
        """How the row reads in the docs: '?analytics&id', '?list-type=2', ..."""
        values = dict(self.equals)
        parts = [self.subresource] if self.subresource else []
        parts += [f"{p}={values[p]}" if p in values else p for p in self.when]
        text = "?" + "&".join(parts) if parts else ""
        if self.copy_source:
            text = f"{text} + header x-amz-copy-source".strip(" +")
        return text


def _r(name: str, method: str, level: str, sub: str | None = None, *when: str,
       copy: bool = False, **equals: str) -> Route:
    return Route(name, method, level, sub, tuple(when), copy,
                 tuple((k.replace("_", "-"), v) for k, v in equals.items()))


# Order matters inside one (method, level, sub-resource) group: specific rows first.
ROUTES: tuple[Route, ...] = (
    # -- service
    _r("ListDirectoryBuckets", "GET", SERVICE, None, "max-directory-buckets"),
    _r("ListenNotification", "GET", SERVICE, None, "events"),     # MinIO's event stream
    _r("ListBuckets", "GET", SERVICE),
    _r("WriteGetObjectResponse", "POST", LAMBDA),
    # -- bucket, no sub-resource
    # MinIO's ListenBucketNotification (?events=...&ping=N): a long-lived event stream,
    # not a listing; answered as such, its SDK would poll in a tight loop.
    _r("ListenBucketNotification", "GET", BUCKET, None, "events"),
    _r("ListenBucketNotification", "GET", BUCKET, None, "ping"),
    _r("ListObjectsV2", "GET", BUCKET, None, "list-type", list_type="2"),
    _r("ListObjects", "GET", BUCKET),
    _r("HeadBucket", "HEAD", BUCKET),
    _r("CreateBucket", "PUT", BUCKET),
    _r("PostObject", "POST", BUCKET),
    _r("DeleteBucket", "DELETE", BUCKET),
    _r("OptionsObject", "OPTIONS", BUCKET),
    # -- bucket sub-resources
    _r("GetBucketAbac", "GET", BUCKET, "abac"),
    _r("PutBucketAbac", "PUT", BUCKET, "abac"),
    _r("GetBucketAccelerateConfiguration", "GET", BUCKET, "accelerate"),
    _r("PutBucketAccelerateConfiguration", "PUT", BUCKET, "accelerate"),
    _r("GetBucketAcl", "GET", BUCKET, "acl"),
    _r("PutBucketAcl", "PUT", BUCKET, "acl"),
    _r("GetBucketAnalyticsConfiguration", "GET", BUCKET, "analytics", "id"),
    _r("ListBucketAnalyticsConfigurations", "GET", BUCKET, "analytics"),
    _r("PutBucketAnalyticsConfiguration", "PUT", BUCKET, "analytics"),
    _r("DeleteBucketAnalyticsConfiguration", "DELETE", BUCKET, "analytics"),
    _r("GetBucketCors", "GET", BUCKET, "cors"),
    _r("PutBucketCors", "PUT", BUCKET, "cors"),
    _r("DeleteBucketCors", "DELETE", BUCKET, "cors"),
    _r("DeleteObjects", "POST", BUCKET, "delete"),
    _r("GetBucketEncryption", "GET", BUCKET, "encryption"),
    _r("PutBucketEncryption", "PUT", BUCKET, "encryption"),
    _r("DeleteBucketEncryption", "DELETE", BUCKET, "encryption"),
    _r("GetBucketIntelligentTieringConfiguration", "GET", BUCKET, "intelligent-tiering", "id"),
    _r("ListBucketIntelligentTieringConfigurations", "GET", BUCKET, "intelligent-tiering"),
    _r("PutBucketIntelligentTieringConfiguration", "PUT", BUCKET, "intelligent-tiering"),
    _r("DeleteBucketIntelligentTieringConfiguration", "DELETE", BUCKET, "intelligent-tiering"),
    _r("GetBucketInventoryConfiguration", "GET", BUCKET, "inventory", "id"),
    _r("ListBucketInventoryConfigurations", "GET", BUCKET, "inventory"),
    _r("PutBucketInventoryConfiguration", "PUT", BUCKET, "inventory"),
    _r("DeleteBucketInventoryConfiguration", "DELETE", BUCKET, "inventory"),
    _r("GetBucketLifecycleConfiguration", "GET", BUCKET, "lifecycle"),
    _r("PutBucketLifecycleConfiguration", "PUT", BUCKET, "lifecycle"),
    _r("DeleteBucketLifecycle", "DELETE", BUCKET, "lifecycle"),
    _r("GetBucketLocation", "GET", BUCKET, "location"),
    _r("GetBucketLogging", "GET", BUCKET, "logging"),
    _r("PutBucketLogging", "PUT", BUCKET, "logging"),
    _r("GetBucketMetadataConfiguration", "GET", BUCKET, "metadataConfiguration"),
    _r("CreateBucketMetadataConfiguration", "POST", BUCKET, "metadataConfiguration"),
    _r("DeleteBucketMetadataConfiguration", "DELETE", BUCKET, "metadataConfiguration"),
    _r("GetBucketMetadataTableConfiguration", "GET", BUCKET, "metadataTable"),
    _r("CreateBucketMetadataTableConfiguration", "POST", BUCKET, "metadataTable"),
    _r("DeleteBucketMetadataTableConfiguration", "DELETE", BUCKET, "metadataTable"),
    _r("UpdateBucketMetadataAnnotationTableConfiguration", "PUT", BUCKET,
       "metadataAnnotationTable"),
    _r("UpdateBucketMetadataInventoryTableConfiguration", "PUT", BUCKET,
       "metadataInventoryTable"),
    _r("UpdateBucketMetadataJournalTableConfiguration", "PUT", BUCKET, "metadataJournalTable"),
    _r("GetBucketMetricsConfiguration", "GET", BUCKET, "metrics", "id"),
    _r("ListBucketMetricsConfigurations", "GET", BUCKET, "metrics"),
    _r("PutBucketMetricsConfiguration", "PUT", BUCKET, "metrics"),
    _r("DeleteBucketMetricsConfiguration", "DELETE", BUCKET, "metrics"),
    _r("GetBucketNotificationConfiguration", "GET", BUCKET, "notification"),
    _r("PutBucketNotificationConfiguration", "PUT", BUCKET, "notification"),
    _r("GetObjectLockConfiguration", "GET", BUCKET, "object-lock"),
    _r("PutObjectLockConfiguration", "PUT", BUCKET, "object-lock"),
    _r("GetBucketOwnershipControls", "GET", BUCKET, "ownershipControls"),
    _r("PutBucketOwnershipControls", "PUT", BUCKET, "ownershipControls"),
    _r("DeleteBucketOwnershipControls", "DELETE", BUCKET, "ownershipControls"),
    _r("GetBucketPolicy", "GET", BUCKET, "policy"),
    _r("PutBucketPolicy", "PUT", BUCKET, "policy"),
    _r("DeleteBucketPolicy", "DELETE", BUCKET, "policy"),
    _r("GetBucketPolicyStatus", "GET", BUCKET, "policyStatus"),
    _r("GetPublicAccessBlock", "GET", BUCKET, "publicAccessBlock"),
    _r("PutPublicAccessBlock", "PUT", BUCKET, "publicAccessBlock"),
    _r("DeletePublicAccessBlock", "DELETE", BUCKET, "publicAccessBlock"),
    _r("GetBucketReplication", "GET", BUCKET, "replication"),
    _r("PutBucketReplication", "PUT", BUCKET, "replication"),
    _r("DeleteBucketReplication", "DELETE", BUCKET, "replication"),
    _r("GetBucketRequestPayment", "GET", BUCKET, "requestPayment"),
    _r("PutBucketRequestPayment", "PUT", BUCKET, "requestPayment"),
    _r("CreateSession", "GET", BUCKET, "session"),
    _r("GetBucketTagging", "GET", BUCKET, "tagging"),
    _r("PutBucketTagging", "PUT", BUCKET, "tagging"),
    _r("DeleteBucketTagging", "DELETE", BUCKET, "tagging"),
    _r("ListMultipartUploads", "GET", BUCKET, "uploads"),
    _r("GetBucketVersioning", "GET", BUCKET, "versioning"),
    _r("PutBucketVersioning", "PUT", BUCKET, "versioning"),
    _r("ListObjectVersions", "GET", BUCKET, "versions"),
    _r("GetBucketWebsite", "GET", BUCKET, "website"),
    _r("PutBucketWebsite", "PUT", BUCKET, "website"),
    _r("DeleteBucketWebsite", "DELETE", BUCKET, "website"),
    # -- object, no sub-resource
    _r("ListParts", "GET", OBJECT, None, "uploadId"),
    _r("GetObject", "GET", OBJECT),
    _r("HeadObject", "HEAD", OBJECT),
    _r("UploadPartCopy", "PUT", OBJECT, None, "partNumber", "uploadId", copy=True),
    _r("UploadPart", "PUT", OBJECT, None, "partNumber", "uploadId"),
    _r("CopyObject", "PUT", OBJECT, None, copy=True),
    _r("PutObject", "PUT", OBJECT),
    _r("CompleteMultipartUpload", "POST", OBJECT, None, "uploadId"),
    _r("PostObject", "POST", OBJECT),
    _r("AbortMultipartUpload", "DELETE", OBJECT, None, "uploadId"),
    _r("DeleteObject", "DELETE", OBJECT),
    _r("OptionsObject", "OPTIONS", OBJECT),
    # -- object sub-resources
    _r("GetObjectAcl", "GET", OBJECT, "acl"),
    _r("PutObjectAcl", "PUT", OBJECT, "acl"),
    _r("GetObjectAnnotation", "GET", OBJECT, "annotation", "annotationName"),
    _r("ListObjectAnnotations", "GET", OBJECT, "annotation"),
    _r("PutObjectAnnotation", "PUT", OBJECT, "annotation"),
    _r("DeleteObjectAnnotation", "DELETE", OBJECT, "annotation"),
    _r("GetObjectAttributes", "GET", OBJECT, "attributes"),
    _r("UpdateObjectEncryption", "PUT", OBJECT, "encryption"),
    _r("GetObjectLegalHold", "GET", OBJECT, "legal-hold"),
    _r("PutObjectLegalHold", "PUT", OBJECT, "legal-hold"),
    _r("RenameObject", "PUT", OBJECT, "renameObject"),
    _r("RestoreObject", "POST", OBJECT, "restore"),
    _r("GetObjectRetention", "GET", OBJECT, "retention"),
    _r("PutObjectRetention", "PUT", OBJECT, "retention"),
    _r("SelectObjectContent", "POST", OBJECT, "select", "select-type", select_type="2"),
    _r("GetObjectTagging", "GET", OBJECT, "tagging"),
    _r("PutObjectTagging", "PUT", OBJECT, "tagging"),
    _r("DeleteObjectTagging", "DELETE", OBJECT, "tagging"),
    _r("GetObjectTorrent", "GET", OBJECT, "torrent"),
    _r("CreateMultipartUpload", "POST", OBJECT, "uploads"),
)

# Deprecated operations that share a request line with their successor; AWS
# serves both at one address, so Vallum routes them to the successor's name.
DEPRECATED_ALIASES: dict[str, str] = {
    "GetBucketLifecycle": "GetBucketLifecycleConfiguration",
    "PutBucketLifecycle": "PutBucketLifecycleConfiguration",
    "GetBucketNotification": "GetBucketNotificationConfiguration",
    "PutBucketNotification": "PutBucketNotificationConfiguration",
}

SUPPORTED: frozenset[str] = frozenset({
    "ListBuckets", "CreateBucket", "HeadBucket", "DeleteBucket", "GetBucketLocation",
    "PutObject", "GetObject", "HeadObject", "DeleteObject", "DeleteObjects", "CopyObject",
    "PostObject", "GetObjectAttributes",
    "ListObjects", "ListObjectsV2", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
    "CompleteMultipartUpload", "AbortMultipartUpload", "ListParts", "ListMultipartUploads",
    "PutBucketPolicy", "GetBucketPolicy", "DeleteBucketPolicy",
    "PutPublicAccessBlock", "GetPublicAccessBlock", "DeletePublicAccessBlock",
    # data protection
    "PutBucketVersioning", "GetBucketVersioning", "ListObjectVersions",
    "PutObjectLockConfiguration", "GetObjectLockConfiguration", "PutObjectRetention",
    "GetObjectRetention", "PutObjectLegalHold", "GetObjectLegalHold",
    "PutObjectTagging", "GetObjectTagging", "DeleteObjectTagging",
    "PutBucketTagging", "GetBucketTagging", "DeleteBucketTagging",
    "PutBucketLifecycleConfiguration", "GetBucketLifecycleConfiguration", "DeleteBucketLifecycle",
    "PutBucketCors", "GetBucketCors", "DeleteBucketCors", "OptionsObject",
    # bucket settings
    "GetBucketAcl", "PutBucketAcl", "GetObjectAcl", "PutObjectAcl",
    "PutBucketEncryption", "GetBucketEncryption", "DeleteBucketEncryption",
    "PutBucketOwnershipControls", "GetBucketOwnershipControls", "DeleteBucketOwnershipControls",
    # compute: notifications to Vallum functions
    "PutBucketNotificationConfiguration", "GetBucketNotificationConfiguration",
})

ALL_OPERATIONS: list[str] = sorted({r.name for r in ROUTES} | set(DEPRECATED_ALIASES))

SUBRESOURCES: frozenset[str] = frozenset(r.subresource for r in ROUTES if r.subresource)

_BY_KEY: dict[tuple[str, str, str | None], list[Route]] = {}
for _route in ROUTES:
    _BY_KEY.setdefault((_route.level, _route.method, _route.subresource), []).append(_route)
_LEVEL_SUBS: dict[str, set[str | None]] = {}
for _route in ROUTES:
    _LEVEL_SUBS.setdefault(_route.level, set()).add(_route.subresource)


@dataclass(frozen=True)
class Endpoint:
    """The operation a request names, with its decoded bucket, key and query."""

    name: str
    bucket: str | None
    key: str | None
    query: dict[str, str] = field(default_factory=dict)
    supported: bool = False


def route(method: str, host: str, raw_path: str | bytes, raw_query: str | bytes, *,
          domain: str | None = None, copy_source: bool = False) -> Endpoint:
    """Name the S3 operation of a request.

    ``raw_path`` and ``raw_query`` are the request target as received, still
    percent-encoded: bytes as ASGI gives them, or str holding those bytes
    decoded as latin-1 (the WSGI/ASGI convention). ``domain`` enables
    virtual-host addressing: ``<bucket>.<domain>`` puts the bucket in the Host
    header and the whole path in the key. ``copy_source`` tells whether the
    x-amz-copy-source header is present (CopyObject / UploadPartCopy).

    Raises InvalidURI (bad percent-encoding or UTF-8), KeyTooLongError,
    InvalidArgument (repeated or conflicting query parameters), MethodNotAllowed
    and NotImplemented (unknown method or sub-resource for this resource).
    """
    path = _wire(raw_path)
    if not path.startswith(b"/"):
        raise InvalidURI(resource=_text(path))
    query = parse_query(raw_query)
    bucket, key = _split(path, virtual_bucket(host, domain))

    if bucket is None:
        level = SERVICE
    elif key is None:
        level = BUCKET
    else:
        level = OBJECT
        validate_key(key)
    if method == "POST" and path == b"/WriteGetObjectResponse":
        # S3 Object Lambda's callback (any Host: its prefix is a request route,
        # not a bucket). Upper case, so never a bucket name in path style.
        level, bucket, key = LAMBDA, None, None
    if method not in _METHODS:
        raise MethodNotAllowed(resource=_text(path), Method=method[:16],
                               ResourceType=level.upper())

    subs = [name for name in query if name in SUBRESOURCES]
    if len(subs) > 1:
        raise InvalidArgument(f"Conflicting sub-resources in the query: {', '.join(subs)}",
                              ArgumentName=subs[1])
    sub = subs[0] if subs else None
    if method == "OPTIONS":
        sub = None  # a CORS preflight names the request to come, e.g. POST ?uploads
    chosen = _choose(level, method, sub, query, copy_source)
    return Endpoint(chosen.name, bucket, key, query, chosen.name in SUPPORTED)


def _choose(level: str, method: str, sub: str | None, query: dict[str, str],
            copy_source: bool) -> Route:
    """The first row of the (level, method, sub-resource) group the request satisfies."""
    rows = _BY_KEY.get((level, method, sub))
    if not rows:
        if sub in _LEVEL_SUBS.get(level, set()):
            raise MethodNotAllowed(Method=method, ResourceType=level.upper())
        raise NotImplementedError_(
            f"The sub-resource ?{sub} is not implemented for this resource" if sub else None)
    if level == OBJECT and method == "PUT" and sub is None \
            and ("partNumber" in query) != ("uploadId" in query):
        raise InvalidArgument("partNumber and uploadId must be given together",
                              ArgumentName="uploadId" if "partNumber" in query else "partNumber")
    for row in rows:
        if all(p in query for p in row.when) and (copy_source or not row.copy_source):
            for param, value in row.equals:
                if query[param] != value:
                    raise InvalidArgument(f"Invalid value for {param}: must be {value}",
                                          ArgumentName=param, ArgumentValue=query[param][:64])
            return row
    missing = rows[-1].when[0] if rows[-1].when else "?"
    raise InvalidArgument(f"Missing required parameter {missing}", ArgumentName=missing)


# ---------------------------------------------------------------- URL parsing

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _wire(raw: str | bytes) -> bytes:
    """The bytes of a request-target part; a str carries them one per character (latin-1)."""
    if isinstance(raw, bytes):
        return raw
    try:
        return raw.encode("latin-1")
    except UnicodeEncodeError as exc:  # not wire bytes: a caller decoded it differently
        raise InvalidURI() from exc


def _unquote(raw: bytes, *, plus: bool) -> str:
    """Strict percent-decoding to UTF-8; '+' means space only in queries."""
    if _BAD_PERCENT.search(raw):
        raise InvalidURI()
    if plus:
        raw = raw.replace(b"+", b" ")
    try:
        return urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidURI() from exc


def parse_query(raw_query: str | bytes) -> dict[str, str]:
    """Decoded query parameters; a flag such as ``?uploads`` maps to ''.

    A repeated parameter is ambiguous (which one did the client sign?), so it
    is rejected with InvalidArgument rather than silently picking one.
    """
    raw = _wire(raw_query)
    params: dict[str, str] = {}
    for part in raw.split(b"&"):
        if not part:
            continue
        name_b, _, value_b = part.partition(b"=")
        name = _unquote(name_b, plus=True)
        if name in params:
            raise InvalidArgument(f"The query parameter {name[:64]} is repeated",
                                  ArgumentName=name[:64])
        params[name] = _unquote(value_b, plus=True)
    return params


def virtual_bucket(host: str, domain: str | None) -> str | None:
    """The bucket named by ``<bucket>.<domain>`` in the Host header, if any."""
    if not domain or not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal: never a virtual host
        return None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        host = name
    host = host.rstrip(".")
    suffix = "." + domain.strip().lower().rstrip(".")
    if host.endswith(suffix) and len(host) > len(suffix):
        return host[: -len(suffix)]
    return None


def _split(path: bytes, vhost_bucket: str | None) -> tuple[str | None, str | None]:
    """(bucket, key) from the raw path; an empty key is None (bucket-level request)."""
    if vhost_bucket is not None:
        rest = path[1:]
        return vhost_bucket, (_unquote(rest, plus=False) or None)
    if path == b"/":
        return None, None
    bucket_b, _, rest = path[1:].partition(b"/")
    bucket = _unquote(bucket_b, plus=False)
    if not bucket:
        raise InvalidBucketName(BucketName="")
    return bucket, (_unquote(rest, plus=False) or None)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")[:256]


# ---------------------------------------------------------------- documentation

def compatibility_markdown() -> str:
    """The operation table as Markdown (the committed docs/s3-compatibility.md)."""
    by_name: dict[str, Route] = {}
    rows: list[tuple[str, Route, str]] = [(r.name, r, "") for r in ROUTES]
    for r in ROUTES:
        by_name.setdefault(r.name, r)
    for old, new in DEPRECATED_ALIASES.items():
        rows.append((old, by_name[new], f"deprecated; routed as {new}"))
    rows.sort(key=lambda t: (t[0], t[1].level, t[1].selector))
    supported = sorted(SUPPORTED)
    lines = [
        "# S3 API compatibility",
        "",
        "<!-- Generated by `python -m vallum.s3.router > docs/s3-compatibility.md`;"
        " do not edit by hand. -->",
        "",
        f"The router names {len(ALL_OPERATIONS)} operations: every action of the Amazon S3"
        " API reference, plus PostObject (browser form upload), OptionsObject (CORS"
        " preflight) and MinIO's ListenNotification / ListenBucketNotification event"
        f" streams. {len(supported)} are implemented; the others answer"
        " `501 NotImplemented`.",
        "Requests may use path-style (`/{Bucket}/{Key+}`) or virtual-host-style"
        " (`{Bucket}.<domain>/{Key+}`) addressing.",
        "",
        "| Operation | Method | Path | Selector | Supported | Notes |",
        "|---|---|---|---|---|---|",
    ]
    for name, r, note in rows:
        served = DEPRECATED_ALIASES.get(name, name)
        selector = f"`{r.selector}`" if r.selector else ""
        lines.append(f"| {name} | {r.method} | `{_PATHS[r.level]}` | {selector} |"
                     f" {'yes' if served in SUPPORTED else 'no'} | {note} |")
    lines += ["", "## Semantics", ""] + [f"- {note}" for note in SEMANTICS]
    return "\n".join(lines) + "\n"


# How supported operations behave where clients depend on details (kept with the table so
# the generated page says it; each line is covered by tests/functional).
SEMANTICS: tuple[str, ...] = (
    "Conditional writes (PutObject, CopyObject, CompleteMultipartUpload): `If-Match` (412;"
    " 404 NoSuchKey when there is no object) and `If-None-Match` with `*` or ETags (412 when"
    " the current object matches; ETags are an extension, AWS answers 501). Checked when the"
    " request arrives and again at commit; a change in between is 409"
    " ConditionalRequestConflict.",
    "Conditional deletes (DeleteObject): `If-Match` (412; 404 NoSuchKey on a missing key or"
    " a delete marker), `x-amz-if-match-size`, `x-amz-if-match-last-modified-time` (412);"
    " DeleteObjects: per-object `ETag`, `Size`, `LastModifiedTime`, failing as a per-key"
    " error entry. Tested against the current version, or the named one with `versionId`.",
    "`x-amz-expected-bucket-owner` on every bucket and object operation and"
    " `x-amz-source-expected-bucket-owner` on copies: 403 AccessDenied when the bucket's"
    " owner account (ListBuckets' Owner ID) differs.",
    "CompleteMultipartUpload retried with the same part list within 15 minutes of its"
    " success answers 200 with the same ETag and version id.",
    "CreateBucket accepts a LocationConstraint naming the server's own region, us-east-1"
    " included.",
    "GetObject/HeadObject with `partNumber`: 206 with Content-Range and"
    " `x-amz-mp-parts-count` (multipart objects); part 1 of a plain object is all of it.",
    "PostObject (browser form, multipart/form-data, streamed): the fields before the file"
    " (20 KiB at most, else MaxPostPreDataLengthExceededError) name the key (`${filename}`"
    " substituted) and a base64 policy signed with SigV4 (`x-amz-algorithm`, `-credential`,"
    " `-date`, `-signature`) or SigV2 (`AWSAccessKeyId`, `signature`; refused under"
    " `--fips`); fields after the file are ignored. The policy's expiration and every"
    " condition (`eq`, `starts-with`, `content-length-range`, `bucket`) must hold and every"
    " field but `policy`, `file`, the signature fields and `x-ignore-*` must be named by one"
    " (AccessDenied with S3's message otherwise; a bad document is InvalidPolicyDocument; a"
    " file outside the range is EntityTooLarge / EntityTooSmall). The signer then needs"
    " s3:PutObject on the key as for a PutObject with the same headers; a form without a"
    " policy is anonymous. Answers: 204, or `success_action_status` 200 / 201 (PostResponse),"
    " or 303 to `success_action_redirect` with bucket, key and etag added (ignored unless an"
    " http(s) URL of printable ASCII). A repeated field is InvalidArgument; with"
    " `--require-signed-payload` forms are refused; on `/{Bucket}/{Key+}` the key is the"
    " form's.",
    "GetObjectAttributes needs s3:GetObjectAttributes and s3:GetObject (their *Version*"
    " actions with `versionId`); ObjectParts only for multipart objects, paged by"
    " `x-amz-max-parts` and `x-amz-part-number-marker`.",
    "A bucket that never had versioning sends no `x-amz-version-id` and no"
    " `x-amz-delete-marker` (object, tagging, copy, multipart and delete answers);"
    " `encoding-type=url` encodes every key, prefix, marker and delimiter of ListObjects,"
    " ListObjectsV2, ListObjectVersions and ListMultipartUploads; an empty `delimiter` is no"
    " delimiter; an empty `continuation-token` is InvalidArgument.",
)


if __name__ == "__main__":
    sys.stdout.write(compatibility_markdown())
