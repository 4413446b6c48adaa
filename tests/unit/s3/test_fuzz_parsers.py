"""Fuzzing every request parser: bad input may only ever raise an S3Error.

The gateway renders an S3Error as the precise S3 answer; any other exception
(KeyError, ValueError, UnicodeDecodeError, RecursionError, ...) becomes a 500
InternalError, which for *bad input* is always a bug. Each property feeds a pure
parser arbitrary bytes, or documents that are well-formed XML but wrong in
structure and values, and allows only S3Error (plus MalformedPolicy for the IAM
policy parser, which the handler maps to the S3 code of the same name).
"""

from __future__ import annotations

import calendar
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vallum.http import Headers
from vallum.iam.policy import MalformedPolicy
from vallum.iam.policy import parse as parse_policy
from vallum.s3 import errors, xml
from vallum.s3.chunked import AwsChunkedDecoder
from vallum.s3.conditions import (
    check_copy_source_conditions,
    check_read_conditions,
    check_write_conditions,
    parse_http_date,
)
from vallum.s3.handlers.bucket_settings import _parse_encryption
from vallum.s3.handlers.buckets import _location_constraint
from vallum.s3.handlers.common import check_version_id, expectations_from
from vallum.s3.handlers.cors import parse_cors
from vallum.s3.handlers.listing import decode_token
from vallum.s3.handlers.lock import parse_date, parse_lock_configuration
from vallum.s3.handlers.multidelete import parse_delete
from vallum.s3.handlers.multipart import parse_complete, parse_copy_range
from vallum.s3.handlers.policy import pab_flag
from vallum.s3.handlers.tagging import parse_tagging
from vallum.s3.names import validate_bucket_name, validate_key
from vallum.s3.ranges import parse_range
from vallum.s3.router import parse_query, route
from vallum.s3.sigv2 import authenticate_v2
from vallum.s3.sigv4 import AuthResult, authenticate, derive_signing_key
from vallum.s3.tags import tags_from_header
from vallum.service.lifecycle_rules import parse_lifecycle

# VALLUM_FUZZ_SCALE multiplies every budget for a longer bug hunt (CI keeps 1).
_SCALE = float(os.environ.get("VALLUM_FUZZ_SCALE", "1"))


def _budget(n: int) -> settings:
    return settings(max_examples=int(n * _SCALE), deadline=None, suppress_health_check=list(HealthCheck))


FUZZ, LIGHT, XMLS = _budget(300), _budget(150), _budget(120)

AK, SK, REGION = "AKIDFUZZ", "fuzz-secret", "us-east-1"
NOW = calendar.timegm((2024, 5, 1, 12, 0, 0))


@contextmanager
def only_s3_errors(*also: type[BaseException]):
    """Bad input may raise an S3Error (or the named parser error), nothing else."""
    try:
        yield
    except errors.S3Error as err:
        assert 300 <= err.status < 600 and err.status != 500, (err.code, err.status)
        assert err.message
    except also:
        pass


# ------------------------------------------------------------------ strategies

# Text that stays close to what parsers look for, so fuzzing reaches deep branches.
_ALPHABET = st.sampled_from(list("0123456789abcdefABCDEF-=;,:/*\"' \t\r\nW.+%&?xX_<>Z")
                            + ["\x00", "\x7f", "é", "\u2028", "\udcff", "٣", "²", "１"])
near = st.text(_ALPHABET, max_size=40)
any_text = st.one_of(st.text(max_size=60), near)
latin1 = st.text(st.characters(max_codepoint=255), max_size=80)   # what ASGI headers decode to
big_int = st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(str)
huge_digits = st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n)
number_ish = st.one_of(big_int, near, huge_digits, st.sampled_from(["", " 1", "0x10", "1e3", "1_0", "-0",
                                                                       "NaN", "∞", "٣", "²"]))


def _leaf_text() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), number_ish, any_text,
                     st.sampled_from(["Enabled", "Disabled", "Suspended", "true", "false", "ON", "OFF",
                                      "GOVERNANCE", "COMPLIANCE", "GET", "PUT", "*", "a*b*c",
                                      "2030-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
                                      "9999-12-31T23:59:59-14:00", "2030-13-45", "AES256", "aws:kms"]))


def element_tree(tags: list[str], depth: int = 3) -> st.SearchStrategy[ET.Element]:
    """Random trees of the schema's own element names (right names, wrong shapes)."""
    tag = st.sampled_from(tags + ["Bogus", "{urn:x}Part"])

    def build(children: st.SearchStrategy) -> st.SearchStrategy:
        return st.builds(_element, tag, _leaf_text(), st.lists(children, max_size=4))

    leaf = st.builds(_element, tag, _leaf_text(), st.just([]))
    return st.recursive(leaf, build, max_leaves=8)


def _element(tag: str, text: str | None, kids: list[ET.Element]) -> ET.Element:
    elem = ET.Element(tag)
    if text is not None:
        elem.text = "".join(c for c in text if _xml_char(c))
    elem.extend(kids)
    return elem


def _xml_char(c: str) -> bool:
    o = ord(c)
    return o in (9, 10, 13) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000


def documents(root: str, tags: list[str]) -> st.SearchStrategy[bytes]:
    """Well-formed XML whose root is ``root`` (sometimes namespaced) and whose content is fuzz."""
    def doc(kids: list[ET.Element], ns: bool) -> bytes:
        elem = ET.Element(f"{{{xml.S3_NS}}}{root}" if ns else root)
        elem.extend(kids)
        return ET.tostring(elem)
    return st.builds(doc, st.lists(element_tree(tags), max_size=5), st.booleans())


def xml_inputs(root: str, tags: list[str]) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, structured-but-wrong documents, and the classic hostile ones."""
    hostile = st.sampled_from([
        b"", b"   ", b"<", f"<{root}>".encode(), f"<{root}/>".encode(), f"<{root}></x>".encode(),
        f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY a "aaaa">]><{root}>&a;</{root}>'.encode(),
        f'<!DOCTYPE {root} SYSTEM "file:///etc/passwd"><{root}/>'.encode(),
        f'<?xml version="1.0" encoding="ISO-8859-1"?><{root}>\xe9</{root}>'.encode("latin-1"),
        f'<?xml version="1.0" encoding="UTF-16"?><{root}/>'.encode("utf-16"),
        ("<" + root + ">" + "<a>" * 3000 + "</a>" * 3000 + "</" + root + ">").encode(),
        b"\xff\xfe\x00<",
    ])
    return st.one_of(st.binary(max_size=200), hostile, documents(root, tags))


def check_parser(parse: Callable[[bytes], object], data: bytes) -> None:
    with only_s3_errors():
        parse(data)


# ------------------------------------------------------------------ router

methods = st.one_of(st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "get"]),
                    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=10))
paths = st.one_of(st.builds(lambda s: "/" + s, latin1), latin1,
                  st.sampled_from(["/", "/b", "/b/", "/b/k", "//", "/b//k", "/%", "/b/%zz", "/b/%ff",
                                   "/b/%C3%28", "/WriteGetObjectResponse", "/b/" + "k" * 1100]))
queries = st.one_of(latin1, st.lists(st.sampled_from(
    ["uploads", "uploadId=1", "partNumber=1", "acl", "tagging", "versionId=x", "list-type=1",
     "list-type=2", "delete", "cors", "select", "select-type=3", "%", "%zz", "%ff", "+", "a=%C3%28",
     "versions", "id", "analytics", "x-id=PutObject"]), max_size=4).map("&".join))


@FUZZ
@given(method=methods, host=latin1, path=paths, query=queries, domain=st.sampled_from([None, "s3.local"]),
       copy=st.booleans())
@example(method="PUT", host="", path="/b/k", query="partNumber=1", domain=None, copy=False)
@example(method="GET", host="b.s3.local", path="/%ff", query="", domain="s3.local", copy=False)
def test_route_raises_only_s3_errors(method, host, path, query, domain, copy):
    with only_s3_errors():
        endpoint = route(method, host, path, query, domain=domain, copy_source=copy)
        assert endpoint.name


@FUZZ
@given(raw=st.one_of(latin1, st.binary(max_size=80)))
def test_parse_query_raises_only_s3_errors(raw):
    with only_s3_errors():
        parse_query(raw)


@LIGHT
@given(name=any_text, key=st.text(max_size=300))
def test_name_validation_raises_only_s3_errors(name, key):
    with only_s3_errors():
        validate_bucket_name(name)
    with only_s3_errors():
        validate_key(key)


# ------------------------------------------------------------------ XML bodies

@XMLS
@given(data=xml_inputs("Anything", ["Anything", "Child"]), root=st.sampled_from(["Anything", "Other"]))
def test_xml_parse_raises_only_s3_errors(data, root):
    with only_s3_errors():
        doc = xml.parse(data, root)
        xml.only_known(doc, {"Child"})
        xml.text(doc, "Child")


@FUZZ
@given(text=st.text(max_size=80), code=st.sampled_from(errors.all_codes()), rid=st.text(max_size=20))
@example(text="\x01\x00\ud800\ufffe", code="InvalidArgument", rid="\x0b")
def test_rendered_error_is_well_formed_xml(text, code, rid):
    """Error documents echo client input (ArgumentValue, Key...): they must still parse."""
    err = errors.by_code(code)(text or None, resource=text, ArgumentValue=text)
    root = ET.fromstring(xml.render_error(err, rid))
    assert root.find("Code").text == code


@XMLS
@given(data=xml_inputs("CompleteMultipartUpload",
                       ["Part", "PartNumber", "ETag", "ChecksumCRC32", "ChecksumSHA256"]))
@example(data=b"<CompleteMultipartUpload><Part><PartNumber>" + b"9" * 5000
         + b"</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>")
def test_complete_multipart_body(data):
    check_parser(parse_complete, data)


@XMLS
@given(data=xml_inputs("Delete", ["Object", "Key", "VersionId", "Quiet"]))
def test_delete_objects_body(data):
    check_parser(parse_delete, data)


@XMLS
@given(data=xml_inputs("CreateBucketConfiguration", ["LocationConstraint", "Location", "Bucket", "Tags"]))
def test_create_bucket_body(data):
    check_parser(_location_constraint, data)


@XMLS
@given(data=xml_inputs("Tagging", ["TagSet", "Tag", "Key", "Value"]), limit=st.sampled_from([10, 50]))
def test_tagging_body(data, limit):
    check_parser(lambda d: parse_tagging(xml.parse(d, "Tagging"), limit), data)


@FUZZ
@given(value=st.one_of(latin1, near, st.text(max_size=60)))
@example(value="a=1&a=2")
@example(value="%ff=%fe")
@example(value="&&&")
def test_tagging_header(value):
    with only_s3_errors():
        tags_from_header(value)


@XMLS
@given(data=xml_inputs("VersioningConfiguration", ["Status", "MfaDelete"]))
def test_versioning_body(data):
    def parse(d: bytes) -> None:    # what put_bucket_versioning checks before any change
        doc = xml.parse(d, "VersioningConfiguration")
        xml.only_known(doc, {"Status", "MfaDelete"})
    check_parser(parse, data)


LIFECYCLE_TAGS = ["Rule", "ID", "Status", "Filter", "Prefix", "Tag", "Key", "Value", "And",
                  "ObjectSizeGreaterThan", "ObjectSizeLessThan", "Expiration", "Days", "Date",
                  "ExpiredObjectDeleteMarker", "NoncurrentVersionExpiration", "NoncurrentDays",
                  "NewerNoncurrentVersions", "AbortIncompleteMultipartUpload", "DaysAfterInitiation",
                  "Transition"]


def _rule(inner: str) -> bytes:
    return (f"<LifecycleConfiguration><Rule><Status>Enabled</Status><Filter/>{inner}</Rule>"
            "</LifecycleConfiguration>").encode()


@XMLS
@given(data=xml_inputs("LifecycleConfiguration", LIFECYCLE_TAGS))
@example(data=_rule("<Expiration><Date>0001-01-01T00:00:00+14:00</Date></Expiration>"))
@example(data=_rule("<Expiration><Date>9999-12-31T23:59:59-14:00</Date></Expiration>"))
@example(data=_rule("<Expiration><Days>" + "9" * 5000 + "</Days></Expiration>"))
@example(data=b'<?xml version="1.0" encoding="ISO-8859-1"?><LifecycleConfiguration><Rule><ID>\xe9</ID>'
         b"<Status>Enabled</Status><Filter/><Expiration><Days>1</Days></Expiration></Rule>"
         b"</LifecycleConfiguration>")
def test_lifecycle_body(data):
    check_parser(parse_lifecycle, data)


@XMLS
@given(data=xml_inputs("CORSConfiguration", ["CORSRule", "ID", "AllowedHeader", "AllowedMethod",
                                             "AllowedOrigin", "ExposeHeader", "MaxAgeSeconds"]))
def test_cors_body(data):
    check_parser(parse_cors, data)


@XMLS
@given(data=xml_inputs("ObjectLockConfiguration", ["ObjectLockEnabled", "Rule", "DefaultRetention",
                                                   "Mode", "Days", "Years"]))
@example(data=b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule>"
         b"<DefaultRetention><Mode>GOVERNANCE</Mode><Days>" + b"9" * 5000 + b"</Days></DefaultRetention>"
         b"</Rule></ObjectLockConfiguration>")
def test_object_lock_configuration_body(data):
    check_parser(parse_lock_configuration, data)


@XMLS
@given(data=xml_inputs("Retention", ["Mode", "RetainUntilDate"]))
def test_retention_body(data):
    def parse(d: bytes) -> None:    # what put_object_retention checks before any change
        doc = xml.parse(d, "Retention")
        xml.only_known(doc, {"Mode", "RetainUntilDate"})
        date = xml.text(doc, "RetainUntilDate")
        if date is not None:
            parse_date(date, "RetainUntilDate")
    check_parser(parse, data)


@FUZZ
@given(value=st.one_of(_leaf_text().filter(lambda v: v is not None), latin1))
@example(value="0001-01-01T00:00:00+14:00")
@example(value="9999-12-31T23:59:59-14:00")
@example(value="0001-01-01")
def test_lock_dates(value):
    with only_s3_errors():
        parse_date(value, "x-amz-object-lock-retain-until-date")


@XMLS
@given(data=xml_inputs("LegalHold", ["Status"]))
def test_legal_hold_body(data):
    def parse(d: bytes) -> None:
        xml.only_known(xml.parse(d, "LegalHold"), {"Status"})
    check_parser(parse, data)


@XMLS
@given(data=xml_inputs("ServerSideEncryptionConfiguration",
                       ["Rule", "ApplyServerSideEncryptionByDefault", "SSEAlgorithm", "KMSMasterKeyID",
                        "BucketKeyEnabled"]))
def test_encryption_body(data):
    check_parser(_parse_encryption, data)


@XMLS
@given(data=xml_inputs("PublicAccessBlockConfiguration",
                       ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]))
def test_public_access_block_body(data):
    check_parser(lambda d: xml.only_known(xml.parse(d, "PublicAccessBlockConfiguration"),
                                          {"BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                           "RestrictPublicBuckets"}), data)


@LIGHT
@given(doc=st.text(max_size=200))
def test_pab_flag_on_stored_text(doc):
    with only_s3_errors():
        pab_flag(doc, "BlockPublicPolicy")


# ------------------------------------------------------------------ bucket policy JSON

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), any_text,
                      st.sampled_from(["*", "s3:GetObject", "s3:*", "arn:aws:s3:::b/*", "Allow", "Deny",
                                       "2012-10-17", "StringLike", "aws:SourceIp", "IpAddress",
                                       "ForAnyValue:StringLike", "DateGreaterThan", "BinaryEquals",
                                       "NumericLessThan", "1.2.3.4/99", "::/200", "Bool"]))
json_values = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4),
    st.dictionaries(st.sampled_from(["Version", "Statement", "Sid", "Effect", "Principal", "NotPrincipal",
                                     "Action", "NotAction", "Resource", "NotResource", "Condition", "AWS",
                                     "StringLike", "IpAddress", "aws:SourceIp", "s3:prefix", "Id", "x"]),
                    kids, max_size=5)), max_leaves=20)


@FUZZ
@given(doc=st.one_of(json_values, st.text(max_size=100), st.binary(max_size=100)))
@example(doc="[" * 100000)
@example(doc="[" * 20000)
@example(doc=b"\x80")
@example(doc='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*",'
         '"Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"1.2.3.4/99"}}}]}')
def test_bucket_policy_json(doc):
    import json
    text = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    with only_s3_errors(MalformedPolicy):
        parse_policy(text, kind="resource", bucket="b")


# ------------------------------------------------------------------ ranges and conditions

range_headers = st.one_of(
    latin1, near,
    st.builds(lambda u, a, b: f"{u}={a}-{b}", st.sampled_from(["bytes", "BYTES", "items", " bytes "]),
              st.one_of(big_int, st.just(""), huge_digits), st.one_of(big_int, st.just(""), huge_digits)))


@FUZZ
@given(header=range_headers, size=st.integers(min_value=0, max_value=10 ** 12))
@example(header="bytes=" + "9" * 5000 + "-", size=10)
@example(header="bytes=-" + "9" * 5000, size=10)
@example(header="bytes=0-" + "9" * 5000, size=10)
@example(header="bytes=" + "0" * 30 + "1-", size=10)
def test_range_header(header, size):
    with only_s3_errors():
        parsed = parse_range(header, size)
        if parsed is not None:
            first, last = parsed
            assert 0 <= first <= last < size


@FUZZ
@given(header=range_headers, size=st.integers(min_value=0, max_value=10 ** 12))
@example(header="bytes=0-" + "9" * 5000, size=10)
def test_copy_source_range_header(header, size):
    with only_s3_errors():
        first, last = parse_copy_range(header, size)
        assert 0 <= first <= last < size


cond_values = st.one_of(latin1, near, st.sampled_from(
    ["*", '"abc"', 'W/"abc"', '"abc", W/"x"', ",,,", "W/", '"', "Sun, 06 Nov 1994 08:49:37 GMT",
     "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Mon, 31 Feb 0000 99:99:99 GMT",
     "Mon, 29 Feb 9999 23:59:60 GMT", "Sun, 00 Nov 1994 08:49:37 GMT"]))
cond_names = st.sampled_from(["If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
                              "x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match",
                              "x-amz-copy-source-if-modified-since",
                              "x-amz-copy-source-if-unmodified-since"])


@FUZZ
@given(headers=st.dictionaries(cond_names, cond_values, max_size=4), etag=near,
       modified=st.floats(min_value=0, max_value=4e9), existing=st.one_of(st.none(), near))
@example(headers={"If-Modified-Since": "Mon, 29 Feb 0000 00:00:00 GMT"}, etag="x", modified=0.0, existing=None)
def test_conditional_headers(headers, etag, modified, existing):
    for check in (lambda: check_read_conditions(headers, etag, modified),
                  lambda: check_copy_source_conditions(headers, etag, modified),
                  lambda: check_write_conditions(headers, existing)):
        with only_s3_errors():
            check()
    for value in headers.values():
        parse_http_date(value)   # returns None for anything it cannot read; never raises


# ------------------------------------------------------------------ other header parsers

digest_headers = st.dictionaries(
    st.sampled_from(["content-md5", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha1",
                     "x-amz-checksum-sha256", "x-amz-checksum-crc64nvme", "x-amz-trailer",
                     "x-amz-sdk-checksum-algorithm"]),
    st.one_of(latin1, st.sampled_from(["", "AAAAAA==", "1B2M2Y8AsgTpgAmY7PhCfg==", "=", "====", "x-amz-checksum-crc32",
                                      "x-amz-checksum-", ",", "CRC32", "crc32", "md5"])),
    max_size=4)


@FUZZ
@given(headers=digest_headers, default=st.sampled_from([None, "CRC32", "SHA256"]))
def test_digest_headers(headers, default):
    with only_s3_errors():
        expectations_from(Headers(list(headers.items())), default_algorithm=default)


@LIGHT
@given(value=st.one_of(st.none(), latin1, st.text(max_size=40)))
def test_version_ids_and_tokens(value):
    with only_s3_errors():
        check_version_id(value)
    if value is not None:
        with only_s3_errors():
            decode_token(value)


# ------------------------------------------------------------------ aws-chunked

def _fake_auth() -> AuthResult:
    key = derive_signing_key(SK, "20240501", REGION, "s3")
    return AuthResult(access_key=AK, mode="header", payload="streaming-signed", content_sha256=None,
                      region=REGION, amz_date="20240501T120000Z", scope=f"20240501/{REGION}/s3/aws4_request",
                      signing_key=key, signature="0" * 64, session_token=None)


chunk_pieces = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"0\r\n", b"0\r\n\r\n", b"5\r\nhello\r\n", b"\r\n", b"\n", b"fffffffffffffffff\r\n",
                     b"5;chunk-signature=" + b"0" * 64 + b"\r\nhello\r\n", b"x-amz-checksum-crc32:AAAAAA==\r\n",
                     b"x-amz-trailer-signature:" + b"0" * 64 + b"\r\n", b":\r\n", b"\xff\r\n",
                     b"1" * 5000])), max_size=8)


@FUZZ
@given(pieces=chunk_pieces, signed=st.booleans(), trailer=st.booleans())
def test_chunked_decoder(pieces, signed, trailer):
    decoder = AwsChunkedDecoder(_fake_auth() if signed else None, signed=signed, trailer=trailer)
    with only_s3_errors():
        total = 0
        for piece in pieces:
            total += len(decoder.feed(piece))
        decoder.finish()
        assert total == decoder.decoded_length


# ------------------------------------------------------------------ SigV4 / SigV2

auth_values = st.one_of(latin1, st.sampled_from([
    "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256 Credential=",
    f"AWS4-HMAC-SHA256 Credential={AK}/20240501/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=00",
    f"AWS4-HMAC-SHA256 Credential={AK}/20240501/{REGION}/s3/aws4_request,SignedHeaders=host;;x,Signature="
    + "0" * 64,
    f"AWS4-HMAC-SHA256 Credential={AK}/2024/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=x",
    "AWS4-HMAC-SHA256 Credential=a,Credential=b", "AWS ", "AWS :", f"AWS {AK}:", f"AWS {AK}:%%%",
    f"AWS {AK}:" + "A" * 28, "Bearer x", "AWS4-HMAC-SHA512 x"]))
sig_headers = st.dictionaries(
    st.sampled_from(["authorization", "x-amz-date", "date", "host", "x-amz-content-sha256",
                     "x-amz-security-token", "content-md5", "content-type", "x-amz-meta-a",
                     "x-amz-decoded-content-length", "expect"]),
    st.one_of(auth_values, st.sampled_from(["20240501T120000Z", "20241301T250000Z", "Wed, 01 May 2024 12:00:00 GMT",
                                            "Wed, 01 May 99999 12:00:00 GMT", "Mon, 32 Foo 2024 99:00:00 +9999",
                                            "UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])),
    max_size=6)
sig_queries = st.one_of(latin1, st.lists(st.sampled_from([
    "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=x", f"X-Amz-Credential={AK}%2F20240501%2F{REGION}%2Fs3%2Faws4_request",
    "X-Amz-Credential=%ff", "X-Amz-Date=20240501T120000Z", "X-Amz-Date=2024", "X-Amz-Expires=3600",
    "X-Amz-Expires=99999999999999", "X-Amz-Expires=-1", "X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=",
    "X-Amz-Signature=" + "0" * 64, "X-Amz-Signature=zz", f"AWSAccessKeyId={AK}", "AWSAccessKeyId=",
    "Expires=1714564800", "Expires=abc", "Expires=" + "9" * 5000, "Signature=%%%", "Signature=AAAA",
    "uploads", "acl", "X-Amz-Security-Token=t", "%", "=", "&"]), max_size=7).map("&".join))


def _lookup(access_key: str) -> str | None:
    return SK if access_key == AK else None


@FUZZ
@given(method=st.sampled_from(["GET", "PUT", "POST"]), path=paths, query=sig_queries, headers=sig_headers)
@example(method="GET", path="/b", query="AWSAccessKeyId=AKIDFUZZ&Expires=" + "9" * 5000 + "&Signature=AAAA",
         headers={})
def test_sigv4_and_sigv2_authenticate(method, path, query, headers):
    pairs = list(headers.items())
    with only_s3_errors():
        authenticate(method, path, query, pairs, lookup_secret=_lookup, region=REGION, now=NOW)
    with only_s3_errors():
        authenticate_v2(method, path, query, pairs, lookup_secret=_lookup, region=REGION, now=NOW)


# ------------------------------------------------------------------ regressions (bugs fuzzing found)

def test_range_numbers_past_the_int_digit_limit_keep_their_meaning():
    """A 5000-digit position used to raise ValueError (int()'s 4300-digit limit): a 500."""
    assert parse_range("bytes=0-" + "9" * 5000, 10) == (0, 9)          # clamped, as a short huge last
    assert parse_range("bytes=-" + "9" * 5000, 10) == (0, 9)           # suffix longer than the object
    assert parse_range("bytes=" + "0" * 30 + "3-4", 10) == (3, 4)      # leading zeros are not size
    with pytest.raises(errors.InvalidRange):
        parse_range("bytes=" + "9" * 5000 + "-", 10)


def test_copy_source_range_with_huge_numbers_is_invalid_argument():
    with pytest.raises(errors.InvalidArgument):
        parse_copy_range("bytes=0-" + "9" * 5000, 10)


def test_http_date_in_year_zero_is_ignored():
    """'Mon, 29 Feb 0000 ...' used to raise ValueError from calendar.timegm: a 500 on GET."""
    assert parse_http_date("Mon, 29 Feb 0000 00:00:00 GMT") is None
    check_read_conditions({"If-Modified-Since": "Sat, 01 Jan 0000 00:00:00 GMT"}, "e", 0.0)


def test_deeply_nested_or_undecodable_policy_is_malformed():
    """'[' * 20000 fits in 20 KiB and raised RecursionError; non-UTF-8 bytes UnicodeDecodeError."""
    for doc in ("[" * 20000, b"\x80{}"):
        with pytest.raises(MalformedPolicy):
            parse_policy(doc, kind="resource", bucket="b")


@pytest.mark.parametrize("root", ["LifecycleConfiguration", "CORSConfiguration", "Tagging"])
def test_xml_body_that_is_not_utf8_is_malformed(root):
    """Handlers store accepted bodies as UTF-8 text: an ISO-8859-1 document parsed, then 500ed."""
    data = f'<?xml version="1.0" encoding="ISO-8859-1"?><{root}>\xe9</{root}>'.encode("latin-1")
    with pytest.raises(errors.MalformedXML):
        xml.parse(data, root)


def test_error_document_with_control_characters_in_echoed_input_parses():
    """GET /b?versionId=%01 echoed \\x01 into ArgumentValue: the error XML did not parse."""
    err = errors.InvalidArgument("Invalid version id specified", ArgumentValue="a\x01b\x00")
    root = ET.fromstring(xml.render_error(err, "RID"))
    assert root.find("ArgumentValue").text == "a\ufffdb\ufffd"
    assert root.find("RequestId").text == "RID"
