"""Routing against the AWS documentation's request lines and botocore's own requests."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import botocore.session
import pytest
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st

from vallum.s3 import errors
from vallum.s3.router import (
    ALL_OPERATIONS,
    DEPRECATED_ALIASES,
    ROUTES,
    SUPPORTED,
    Endpoint,
    compatibility_markdown,
    parse_query,
    route,
)

DOMAIN = "s3.vallum.test"
ROOT = Path(__file__).resolve().parents[3]


def _split(uri: str) -> tuple[str, str]:
    path, _, query = uri.partition("?")
    return path, query


def path_style(method: str, uri: str, **kw) -> Endpoint:
    path, query = _split(uri)
    return route(method, "127.0.0.1:9000", path, query, domain=DOMAIN, **kw)


# Request lines from the "Request Syntax" and "Examples" sections of the AWS S3
# API reference (relative to the bucket), as collected in garage's router tests.
AWS_EXAMPLES = [
    ("DELETE", "/example-object?uploadId=VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZ", "AbortMultipartUpload"),
    ("DELETE", "/Key+?uploadId=UploadId", "AbortMultipartUpload"),
    ("POST", "/example-object?uploadId=AAAsb2FkIElEIGZvciBlbHZpbmcncyWeeS1tb3ZpZS5tMnRzIRRwbG9hZA", "CompleteMultipartUpload"),
    ("POST", "/Key+?uploadId=UploadId", "CompleteMultipartUpload"),
    ("PUT", "/", "CreateBucket"),
    ("POST", "/example-object?uploads", "CreateMultipartUpload"),
    ("POST", "/{Key+}?uploads", "CreateMultipartUpload"),
    ("DELETE", "/", "DeleteBucket"),
    ("DELETE", "/?analytics&id=list1", "DeleteBucketAnalyticsConfiguration"),
    ("DELETE", "/?cors", "DeleteBucketCors"),
    ("DELETE", "/?encryption", "DeleteBucketEncryption"),
    ("DELETE", "/?intelligent-tiering&id=Id", "DeleteBucketIntelligentTieringConfiguration"),
    ("DELETE", "/?inventory&id=list1", "DeleteBucketInventoryConfiguration"),
    ("DELETE", "/?lifecycle", "DeleteBucketLifecycle"),
    ("DELETE", "/?metadataTable", "DeleteBucketMetadataTableConfiguration"),
    ("DELETE", "/?metadataConfiguration", "DeleteBucketMetadataConfiguration"),
    ("DELETE", "/?metrics&id=ExampleMetrics", "DeleteBucketMetricsConfiguration"),
    ("DELETE", "/?ownershipControls", "DeleteBucketOwnershipControls"),
    ("DELETE", "/?policy", "DeleteBucketPolicy"),
    ("DELETE", "/?replication", "DeleteBucketReplication"),
    ("DELETE", "/?tagging", "DeleteBucketTagging"),
    ("DELETE", "/?website", "DeleteBucketWebsite"),
    ("DELETE", "/my-second-image.jpg", "DeleteObject"),
    ("DELETE", "/my-third-image.jpg?versionId=UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ", "DeleteObject"),
    ("POST", "/?delete", "DeleteObjects"),
    ("DELETE", "/exampleobject?tagging", "DeleteObjectTagging"),
    ("DELETE", "/{Key+}?tagging&versionId=VersionId", "DeleteObjectTagging"),
    ("DELETE", "/?publicAccessBlock", "DeletePublicAccessBlock"),
    ("GET", "/?accelerate", "GetBucketAccelerateConfiguration"),
    ("GET", "/?acl", "GetBucketAcl"),
    ("GET", "/?analytics&id=Id", "GetBucketAnalyticsConfiguration"),
    ("GET", "/?cors", "GetBucketCors"),
    ("GET", "/?encryption", "GetBucketEncryption"),
    ("GET", "/?intelligent-tiering&id=Id", "GetBucketIntelligentTieringConfiguration"),
    ("GET", "/?inventory&id=list1", "GetBucketInventoryConfiguration"),
    ("GET", "/?lifecycle", "GetBucketLifecycleConfiguration"),
    ("GET", "/?location", "GetBucketLocation"),
    ("GET", "/?logging", "GetBucketLogging"),
    ("GET", "/?metrics&id=Documents", "GetBucketMetricsConfiguration"),
    ("GET", "/?notification", "GetBucketNotificationConfiguration"),
    ("GET", "/?ownershipControls", "GetBucketOwnershipControls"),
    ("GET", "/?policy", "GetBucketPolicy"),
    ("GET", "/?policyStatus", "GetBucketPolicyStatus"),
    ("GET", "/?replication", "GetBucketReplication"),
    ("GET", "/?requestPayment", "GetBucketRequestPayment"),
    ("GET", "/?tagging", "GetBucketTagging"),
    ("GET", "/?versioning", "GetBucketVersioning"),
    ("GET", "/?website", "GetBucketWebsite"),
    ("GET", "/my-image.jpg", "GetObject"),
    ("GET", "/myObject?versionId=3/L4kqtJlcpXroDTDmpUMLUo", "GetObject"),
    ("GET", "/Junk3.txt?response-cache-control=No-cache&response-content-disposition=attachment%3B%20filename%3Dtesting.txt&response-content-encoding=x-gzip&response-content-language=mi%2C%20en&response-expires=Thu%2C%2001%20Dec%201994%2016:00:00%20GMT", "GetObject"),
    ("GET", "/Key+?partNumber=1&response-cache-control=ResponseCacheControl&response-content-type=ResponseContentType&versionId=VersionId", "GetObject"),
    ("GET", "/my-image.jpg?acl", "GetObjectAcl"),
    ("GET", "/my-image.jpg?versionId=3/L4kqtJlcpXroDVBH40Nr8X8gdRQBpUMLUo&acl", "GetObjectAcl"),
    ("GET", "/{Key+}?attributes&versionId=VersionId", "GetObjectAttributes"),
    ("GET", "/{Key+}?legal-hold&versionId=VersionId", "GetObjectLegalHold"),
    ("GET", "/?object-lock", "GetObjectLockConfiguration"),
    ("GET", "/{Key+}?retention&versionId=VersionId", "GetObjectRetention"),
    ("GET", "/example-object?tagging", "GetObjectTagging"),
    ("GET", "/quotes/Nelson?torrent", "GetObjectTorrent"),
    ("GET", "/?publicAccessBlock", "GetPublicAccessBlock"),
    ("GET", "/?session", "CreateSession"),
    ("HEAD", "/", "HeadBucket"),
    ("HEAD", "/my-image.jpg", "HeadObject"),
    ("HEAD", "/Key+?partNumber=3&versionId=VersionId", "HeadObject"),
    ("GET", "/?analytics", "ListBucketAnalyticsConfigurations"),
    ("GET", "/?analytics&continuation-token=ContinuationToken", "ListBucketAnalyticsConfigurations"),
    ("GET", "/?intelligent-tiering", "ListBucketIntelligentTieringConfigurations"),
    ("GET", "/?inventory&continuation-token=ContinuationToken", "ListBucketInventoryConfigurations"),
    ("GET", "/?metrics", "ListBucketMetricsConfigurations"),
    ("GET", "/?uploads&max-uploads=3", "ListMultipartUploads"),
    ("GET", "/?uploads&delimiter=/&prefix=photos/2006/", "ListMultipartUploads"),
    ("GET", "/?uploads&delimiter=D&encoding-type=EncodingType&key-marker=KeyMarker&max-uploads=1&prefix=Prefix&upload-id-marker=UploadIdMarker", "ListMultipartUploads"),
    ("GET", "/", "ListObjects"),
    ("GET", "/?prefix=N&marker=Ned&max-keys=40", "ListObjects"),
    ("GET", "/?prefix=photos/2006/&delimiter=/", "ListObjects"),
    ("GET", "/?list-type=2", "ListObjectsV2"),
    ("GET", "/?list-type=2&max-keys=3&prefix=E&start-after=ExampleGuide.pdf", "ListObjectsV2"),
    ("GET", "/?list-type=2&continuation-token=1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", "ListObjectsV2"),
    ("GET", "/?list-type=2&continuation-token=ContinuationToken&delimiter=D&encoding-type=EncodingType&fetch-owner=true&max-keys=1&prefix=Prefix&start-after=StartAfter", "ListObjectsV2"),
    ("GET", "/?versions", "ListObjectVersions"),
    ("GET", "/?versions&key-marker=key3&version-id-marker=t46Z0menlYTZBnj&max-keys=3", "ListObjectVersions"),
    ("GET", "/example-object?uploadId=XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA&max-parts=2&part-number-marker=1", "ListParts"),
    ("GET", "/Key+?max-parts=2&part-number-marker=2&uploadId=UploadId", "ListParts"),
    ("PUT", "/?accelerate", "PutBucketAccelerateConfiguration"),
    ("PUT", "/?acl", "PutBucketAcl"),
    ("PUT", "/?analytics&id=report1", "PutBucketAnalyticsConfiguration"),
    ("PUT", "/?cors", "PutBucketCors"),
    ("PUT", "/?encryption", "PutBucketEncryption"),
    ("PUT", "/?intelligent-tiering&id=Id", "PutBucketIntelligentTieringConfiguration"),
    ("PUT", "/?inventory&id=report1", "PutBucketInventoryConfiguration"),
    ("PUT", "/?lifecycle", "PutBucketLifecycleConfiguration"),
    ("PUT", "/?logging", "PutBucketLogging"),
    ("PUT", "/?metrics&id=EntireBucket", "PutBucketMetricsConfiguration"),
    ("PUT", "/?notification", "PutBucketNotificationConfiguration"),
    ("PUT", "/?ownershipControls", "PutBucketOwnershipControls"),
    ("PUT", "/?policy", "PutBucketPolicy"),
    ("PUT", "/?replication", "PutBucketReplication"),
    ("PUT", "/?requestPayment", "PutBucketRequestPayment"),
    ("PUT", "/?tagging", "PutBucketTagging"),
    ("PUT", "/?versioning", "PutBucketVersioning"),
    ("PUT", "/?website", "PutBucketWebsite"),
    ("PUT", "/my-image.jpg", "PutObject"),
    ("PUT", "/Key+", "PutObject"),
    ("PUT", "/my-image.jpg?acl", "PutObjectAcl"),
    ("PUT", "/my-image.jpg?acl&versionId=3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nrjfkd", "PutObjectAcl"),
    ("PUT", "/{Key+}?legal-hold&versionId=VersionId", "PutObjectLegalHold"),
    ("PUT", "/?object-lock", "PutObjectLockConfiguration"),
    ("PUT", "/{Key+}?retention&versionId=VersionId", "PutObjectRetention"),
    ("PUT", "/object-key?tagging", "PutObjectTagging"),
    ("PUT", "/?publicAccessBlock", "PutPublicAccessBlock"),
    ("POST", "/object-one.csv?restore", "RestoreObject"),
    ("POST", "/{Key+}?restore&versionId=VersionId", "RestoreObject"),
    ("POST", "/{Key+}?select&select-type=2", "SelectObjectContent"),
    ("PUT", "/my-movie.m2ts?partNumber=1&uploadId=VCVsb2FkIElEIGZvciBlbZZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZR", "UploadPart"),
    ("PUT", "/Key+?partNumber=2&uploadId=UploadId", "UploadPart"),
    ("POST", "/", "PostObject"),
    ("OPTIONS", "/exampleobject", "OptionsObject"),
]


@pytest.mark.parametrize(("method", "uri", "name"), AWS_EXAMPLES)
def test_aws_doc_examples_path_style(method, uri, name):
    ep = path_style(method, "/example-bucket" + uri)
    assert ep.name == name
    assert ep.bucket == "example-bucket"
    assert ep.supported == (name in SUPPORTED)


@pytest.mark.parametrize(("method", "uri", "name"), AWS_EXAMPLES)
def test_aws_doc_examples_virtual_host(method, uri, name):
    path, query = _split(uri)
    ep = route(method, f"example-bucket.{DOMAIN}", path, query, domain=DOMAIN)
    assert ep.name == name
    assert ep.bucket == "example-bucket"
    assert ep == path_style(method, "/example-bucket" + uri)


def test_list_buckets_and_service_level():
    assert path_style("GET", "/") == Endpoint("ListBuckets", None, None, {}, True)
    assert path_style("GET", "/?max-buckets=10&prefix=a").name == "ListBuckets"
    assert path_style("GET", "/?max-directory-buckets=10").name == "ListDirectoryBuckets"
    assert route("GET", DOMAIN, "/", "", domain=DOMAIN).name == "ListBuckets"
    assert path_style("POST", "/WriteGetObjectResponse").name == "WriteGetObjectResponse"
    for method in ("PUT", "DELETE", "HEAD", "POST"):
        with pytest.raises(errors.MethodNotAllowed):
            path_style(method, "/")


def test_copy_source_header_selects_copies():
    assert path_style("PUT", "/b/k", copy_source=True).name == "CopyObject"
    ep = path_style("PUT", "/b/k?partNumber=2&uploadId=U", copy_source=True)
    assert ep.name == "UploadPartCopy" and ep.query == {"partNumber": "2", "uploadId": "U"}
    assert path_style("PUT", "/b/k?partNumber=2&uploadId=U").name == "UploadPart"
    assert path_style("PUT", "/b/k").name == "PutObject"
    # The header only matters where a copy exists: a bucket PUT stays CreateBucket.
    assert path_style("PUT", "/b", copy_source=True).name == "CreateBucket"


def test_object_level_alternatives():
    assert path_style("GET", "/b/k?annotation&annotationName=n").name == "GetObjectAnnotation"
    assert path_style("GET", "/b/k?annotation").name == "ListObjectAnnotations"
    assert path_style("PUT", "/b/k?encryption").name == "UpdateObjectEncryption"
    assert path_style("PUT", "/b/k?renameObject").name == "RenameObject"
    assert path_style("POST", "/b/k").name == "PostObject"
    # A CORS preflight names the request to come; its query does not select a route.
    assert path_style("OPTIONS", "/b/k?uploads").name == "OptionsObject"
    assert path_style("OPTIONS", "/b").name == "OptionsObject"


def test_key_decoding():
    assert path_style("GET", "/b/%26%2B%3F%25%C3%A9/something").key == "&+?%é/something"
    assert path_style("GET", "/b/a+b").key == "a+b"  # '+' is not a space in a path
    assert path_style("GET", "/b/a%20b").key == "a b"
    assert path_style("GET", "/b//leading").key == "/leading"
    assert path_style("GET", "/b/dir/").key == "dir/"
    # Unencoded UTF-8 on the wire is accepted: as bytes, or as a latin-1 str (ASGI style).
    assert route("GET", "h", b"/b/\xc3\xa9", b"").key == "é"
    assert route("GET", "h", "/b/\xc3\xa9", "").key == "é"
    assert route("GET", "h", b"/b/k", "prefix=\xc3\xa9").query == {"prefix": "é"}
    with pytest.raises(errors.InvalidURI):
        route("GET", "h", "/b/\u20ac", "")  # not representable as wire bytes
    with pytest.raises(errors.InvalidURI):
        route("GET", "h", b"/b/\xe9", b"")  # latin-1 byte: not UTF-8
    ep = path_style("GET", "/b/")
    assert (ep.name, ep.bucket, ep.key) == ("ListObjects", "b", None)
    assert route("GET", f"b.{DOMAIN}", "//x", "", domain=DOMAIN).key == "/x"


keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


@given(keys, st.booleans())
def test_any_encoded_key_round_trips(key, encode_slash):
    path = "/" + quote(key, safe="" if encode_slash else "/")
    if len(key.encode("utf-8")) > 1024:
        with pytest.raises(errors.KeyTooLongError):
            route("GET", "h", "/b" + path, "")
        return
    ep = route("GET", "h", "/b" + path, "")
    assert (ep.name, ep.bucket, ep.key) == ("GetObject", "b", key)
    assert route("GET", f"b.{DOMAIN}", path, "", domain=DOMAIN) == ep


@pytest.mark.parametrize("path", ["/b/%zz", "/b/%4", "/b/%", "/b/%C3", "/b/%FF%FE", "/b%C3/k"])
def test_bad_encoding_is_invalid_uri(path):
    with pytest.raises(errors.InvalidURI):
        path_style("GET", path)


def test_path_must_be_absolute():
    with pytest.raises(errors.InvalidURI):
        route("GET", "h", "http://h/b/k", "")


def test_key_length_limit():
    assert path_style("PUT", "/b/" + "k" * 1024).key == "k" * 1024
    assert path_style("PUT", "/b/" + "%C3%A9" * 512).key == "é" * 512  # 1024 bytes
    with pytest.raises(errors.KeyTooLongError):
        path_style("PUT", "/b/" + "k" * 1025)
    with pytest.raises(errors.KeyTooLongError):
        path_style("PUT", "/b/" + "%C3%A9" * 512 + "k")


def test_query_decoding():
    assert parse_query("uploads") == {"uploads": ""}
    assert parse_query("uploads=&prefix=a+b%2Bc") == {"uploads": "", "prefix": "a b+c"}
    assert parse_query(b"a=1&&b=%C3%A9&") == {"a": "1", "b": "é"}
    assert parse_query(b"b=\xc3\xa9") == {"b": "é"}
    assert parse_query("") == {}
    assert path_style("GET", "/b?prefix=x%2Fy&delimiter=%2F").query == {
        "prefix": "x/y", "delimiter": "/"}
    with pytest.raises(errors.InvalidArgument):
        parse_query("prefix=a&prefix=b")
    with pytest.raises(errors.InvalidArgument):
        parse_query("uploads&uploads")
    with pytest.raises(errors.InvalidURI):
        parse_query("prefix=%zz")
    with pytest.raises(errors.InvalidURI):
        parse_query("prefix=%FF")


def test_virtual_host_parsing():
    ep = route("GET", f"my.dotted.bucket.{DOMAIN}:9000", "/a/b", "", domain=DOMAIN)
    assert (ep.bucket, ep.key) == ("my.dotted.bucket", "a/b")
    ep = route("GET", "Bucket.S3.Vallum.Test.", "/k", "", domain=DOMAIN)
    assert (ep.bucket, ep.key) == ("bucket", "k")
    # Not a subdomain of the configured domain: path style.
    for host in (DOMAIN, f"{DOMAIN}:9000", "127.0.0.1:9000", "[::1]:9000", "evil-s3.vallum.test",
                 "b.other.test"):
        ep = route("GET", host, "/bkt/k", "", domain=DOMAIN)
        assert (ep.bucket, ep.key) == ("bkt", "k"), host
    # Without a domain, the Host header is never consulted.
    ep = route("GET", f"b.{DOMAIN}", "/bkt/k", "")
    assert (ep.bucket, ep.key) == ("bkt", "k")


def test_empty_bucket_segment():
    with pytest.raises(errors.InvalidBucketName):
        path_style("GET", "//key")


@pytest.mark.parametrize(("method", "uri", "error"), [
    ("PATCH", "/b/k", errors.MethodNotAllowed),
    ("get", "/b/k", errors.MethodNotAllowed),
    ("POST", "/b?acl", errors.MethodNotAllowed),
    ("HEAD", "/b?policy", errors.MethodNotAllowed),
    ("GET", "/b?delete", errors.MethodNotAllowed),
    ("DELETE", "/b?location", errors.MethodNotAllowed),
    ("GET", "/b/k?uploads", errors.MethodNotAllowed),
    ("POST", "/b/k?tagging", errors.MethodNotAllowed),
    ("GET", "/b/k?website", errors.NotImplemented_),
    ("PUT", "/b?retention", errors.NotImplemented_),
    ("GET", "/?acl", errors.NotImplemented_),
    ("GET", "/b?list-type=1", errors.InvalidArgument),
    ("POST", "/b/k?select&select-type=1", errors.InvalidArgument),
    ("POST", "/b/k?select", errors.InvalidArgument),
    ("PUT", "/b/k?partNumber=1", errors.InvalidArgument),
    ("PUT", "/b/k?uploadId=U", errors.InvalidArgument),
    ("GET", "/b?acl&tagging", errors.InvalidArgument),
])
def test_rejections(method, uri, error):
    with pytest.raises(error):
        path_style(method, uri)


def test_error_codes_are_the_s3_ones():
    with pytest.raises(errors.S3Error) as info:
        path_style("GET", "/b/k?website")
    assert (info.value.code, info.value.status) == ("NotImplemented", 501)
    with pytest.raises(errors.S3Error) as info:
        path_style("POST", "/b?acl")
    assert (info.value.code, info.value.status) == ("MethodNotAllowed", 405)


# ---------------------------------------------------------------- botocore's own requests

class _Captured(Exception):
    """Raised from botocore's before-send hook: the request never leaves the process."""


_BOTO_PARAMS = dict(Bucket="my-bucket", Key="dir/a key+é", UploadId="u1", PartNumber=1,
                    CopySource="src/k", Id="id1", AnnotationName="n1", MaxDirectoryBuckets=1,
                    RequestRoute="route", RequestToken="t", RenameSource="a/b")
_MODEL = botocore.session.get_session().get_service_model("s3")


@functools.cache
def _client(addressing: str):
    """One botocore client per addressing style (creating one costs ~0.2 s)."""
    client = botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=f"http://{DOMAIN}",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG",
        config=Config(s3={"addressing_style": addressing}, parameter_validation=False,
                      retries={"max_attempts": 0}))

    def capture(request, **_):
        raise _Captured(request)

    client.meta.events.register("before-send", capture)
    return client


def _botocore_request(operation: str, addressing: str):
    client = _client(addressing)
    shape = _MODEL.operation_model(operation).input_shape
    members = shape.members if shape else {}
    params = {k: v for k, v in _BOTO_PARAMS.items() if k in members}
    with pytest.raises(_Captured) as info:
        getattr(client, botocore.xform_name(operation))(**params)
    return info.value.args[0]


@pytest.mark.parametrize("addressing", ["path", "virtual"])
@pytest.mark.parametrize("operation", _MODEL.operation_names)
def test_every_botocore_operation_routes_to_its_name(operation, addressing):
    request = _botocore_request(operation, addressing)
    url = urlsplit(request.url)
    ep = route(request.method, url.netloc, url.path, url.query, domain=DOMAIN,
               copy_source="x-amz-copy-source" in request.headers)
    assert ep.name == DEPRECATED_ALIASES.get(operation, operation)
    members = _MODEL.operation_model(operation).input_shape.members
    if "Bucket" in members and operation != "WriteGetObjectResponse":
        assert ep.bucket == "my-bucket"
    if "Key" in members:
        assert ep.key == "dir/a key+é"


def test_all_operations_cover_the_api_reference():
    assert set(_MODEL.operation_names) <= set(ALL_OPERATIONS)
    assert SUPPORTED <= set(ALL_OPERATIONS)
    assert len(ALL_OPERATIONS) == len(set(ALL_OPERATIONS))
    assert {"PostObject", "OptionsObject"} <= set(ALL_OPERATIONS)
    routed = {r.name for r in ROUTES}
    assert set(ALL_OPERATIONS) == routed | set(DEPRECATED_ALIASES)
    assert set(DEPRECATED_ALIASES.values()) <= routed


def test_table_rows_are_unambiguous():
    """No two rows can match the same request (earlier rows must be more specific)."""
    seen: dict[tuple, str] = {}
    for r in ROUTES:
        signature = (r.level, r.method, r.subresource, r.when, r.copy_source)
        assert signature not in seen, (r.name, seen.get(signature))
        seen[signature] = r.name


# ---------------------------------------------------------------- generated documentation

def test_committed_compatibility_doc_is_current():
    committed = (ROOT / "docs" / "s3-compatibility.md").read_text(encoding="utf-8")
    assert committed == compatibility_markdown(), (
        "regenerate with: python -m vallum.s3.router > docs/s3-compatibility.md")


def test_module_main_prints_the_doc():
    out = subprocess.run([sys.executable, "-m", "vallum.s3.router"], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    assert out == compatibility_markdown()


def test_doc_lists_every_operation_and_support():
    doc = compatibility_markdown()
    for name in ALL_OPERATIONS:
        assert f"| {name} |" in doc
    assert "| PutObject | PUT | `/{Bucket}/{Key+}` |  | yes |" in doc
    assert "| PutBucketAccelerateConfiguration | PUT | `/{Bucket}` | `?accelerate` | no |" in doc
    assert "| UploadPartCopy | PUT | `/{Bucket}/{Key+}` |" \
           " `?partNumber&uploadId + header x-amz-copy-source` | yes |" in doc
