"""SigV2 verification against AWS's published examples and botocore's own V2 signers.

Requests are signed by botocore's ``HmacV1Auth`` (header) and ``HmacV1QueryAuth``
(presigned URL), the signers boto3 uses for ``signature_version='s3'`` and for
``generate_presigned_url``, then checked through ``sigv4.authenticate`` (the gateway's
entry point); single-character mutations of what the signature covers must be refused.
"""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vallum.s3 import errors
from vallum.s3.sigv2 import (
    SIGNED_SUBRESOURCES,
    UNSIGNABLE_SUBRESOURCES,
    authenticate_v2,
    canonical_resource,
    claimed_credential,
    sign,
)
from vallum.s3.sigv4 import AuthResult, authenticate

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
NETLOC = "127.0.0.1:9000"
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def lookup(access_key: str) -> str | None:
    return {AK: SK, "OTHERKEY": "other-secret"}.get(access_key)


def auth(method, path, query, headers, now, vhost=None) -> AuthResult | None:
    return authenticate(method, path, query, headers, lookup_secret=lookup, region=REGION,
                        now=now, bucket_for_vhost=vhost)


def botocore_signed(method: str, url: str, headers: dict[str, str] | None = None, *,
                    presign: int | None = None, auth_path: str | None = None,
                    secret: str = SK, token: str | None = None):
    """(path, query, headers) as the server receives a request botocore signed with V2."""
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    req.auth_path = auth_path
    creds = Credentials(AK, secret, token)
    if presign is None:
        HmacV1Auth(creds).add_auth(req)
        sent = [(k.lower(), v) for k, v in req.headers.items()]
    else:
        HmacV1QueryAuth(creds, expires=presign).add_auth(req)
        # The URL carries everything; a browser or urllib sends only Host (and the body's
        # Content-Type when the signer required one).
        sent = [(k.lower(), v) for k, v in (headers or {}).items() if k.lower() == "content-type"]
    parts = urlsplit(req.url)
    return parts.path, parts.query, [("host", parts.netloc), *sent]


# ---------------------------------------------------------------- AWS documentation examples

DOC_HOST = [("host", "johnsmith.s3.amazonaws.com")]


def epoch(http_date: str) -> float:
    return parsedate_to_datetime(http_date).timestamp()


@pytest.mark.parametrize("method, path, query, headers, signature", [
    ("GET", "/photos/puppy.jpg", "", [("date", "Tue, 27 Mar 2007 19:36:42 +0000")],
     "bWq2s1WEIj+Ydj0vQ697zp+IXMU="),
    ("PUT", "/photos/puppy.jpg", "", [("content-type", "image/jpeg"), ("content-length", "94328"),
                                      ("date", "Tue, 27 Mar 2007 21:15:45 +0000")],
     "MyyxeRY7whkBe+bq8fHCL/2kKUg="),
    ("GET", "/", "prefix=photos&max-keys=50&marker=puppy",
     [("user-agent", "Mozilla/5.0"), ("date", "Tue, 27 Mar 2007 19:42:41 +0000")],
     "htDYFYduRNen8P9ZfE/s9SuKy0U="),
    ("GET", "/", "acl", [("date", "Tue, 27 Mar 2007 19:44:46 +0000")],
     "c2WLPFtWHVgbEmeEG93a4cG37dM="),
])
def test_aws_documentation_examples_virtual_host(method, path, query, headers, signature):
    now = epoch(dict(headers)["date"]) + 30
    hdrs = [*DOC_HOST, *headers, ("authorization", f"AWS {AK}:{signature}")]
    result = auth(method, path, query, hdrs, now, vhost="johnsmith")
    assert result is not None and result.mode == "header-v2" and result.access_key == AK
    assert result.signature == signature and result.payload == "unsigned"
    assert result.content_sha256 is None and result.signing_key == b"" and result.scope == ""
    assert result.region == REGION
    # Same bytes without the virtual-host bucket sign a different resource.
    with pytest.raises(errors.SignatureDoesNotMatch):
        auth(method, path, query, hdrs, now)


def test_aws_documentation_delete_with_x_amz_date_path_style():
    # AWS's example signs x-amz-date's value in the Date line.
    headers = [("host", "s3.amazonaws.com"), ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
               ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
               ("authorization", f"AWS {AK}:lx3byBScXR6KzyMaifNkardMwNk=")]
    result = auth("DELETE", "/johnsmith/photos/puppy.jpg", "", headers,
                  epoch("Tue, 27 Mar 2007 21:20:26 +0000"))
    assert result is not None and result.amz_date == "20070327T212026Z"


def test_x_amz_date_with_empty_date_line():
    # The spec's own reading: empty Date line, x-amz-date among the x-amz-* headers.
    sts = ("DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n"
           "/johnsmith/photos/puppy.jpg")
    headers = [("host", "s3.amazonaws.com"), ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
               ("authorization", f"AWS {AK}:{sign(SK, sts)}")]
    now = epoch("Tue, 27 Mar 2007 21:20:26 +0000")
    assert auth("DELETE", "/johnsmith/photos/puppy.jpg", "", headers, now) is not None


def test_aws_documentation_query_string_example():
    query = (f"AWSAccessKeyId={AK}&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D"
             "&Expires=1175139620")
    result = auth("GET", "/photos/puppy.jpg", query, DOC_HOST, 1175139000, vhost="johnsmith")
    assert result is not None and result.mode == "presigned-v2"
    assert result.signature == "NpgCjnDzrM+WFzoENXmpNDUsSn8="
    with pytest.raises(errors.AccessDenied, match="Request has expired") as exc:
        auth("GET", "/photos/puppy.jpg", query, DOC_HOST, 1175139621, vhost="johnsmith")
    assert exc.value.fields["Expires"] == "20070329T034020Z"


def test_canonical_resource_sorts_and_decodes_subresources():
    assert canonical_resource("/b/k", "versionId=v%2F1&acl&prefix=x") == "/b/k?acl&versionId=v/1"
    assert canonical_resource("/", "acl", "bkt") == "/bkt/?acl"
    assert canonical_resource("/b", "uploads=&prefix=p", keep_empty_equals=False) == "/b?uploads"
    assert canonical_resource("/b/k", "response-content-type=a+b",
                              plus_is_space=True) == "/b/k?response-content-type=a b"


# ---------------------------------------------------------------- botocore, header form

_KEYS = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
_FLAGS = sorted(n for n in SIGNED_SUBRESOURCES & set(HmacV1Auth.QSAOfInterest)
                if n not in {"versionId", "uploadId", "partNumber"}
                and not n.startswith("response-"))
_VALUED = ["versionId", "uploadId", "partNumber", "response-content-type",
           "response-content-disposition", "response-cache-control", "response-expires"]
_VALUES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
_HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=24)
_META_NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@st.composite
def requests(draw):
    key = draw(_KEYS)
    path = "/bkt/" + quote(key.encode("utf-8"), safe="/~")
    query = []
    flag = draw(st.none() | st.sampled_from(_FLAGS))
    if flag:
        query.append(flag)
    for name in draw(st.lists(st.sampled_from(_VALUED), unique=True, max_size=3)):
        query.append(f"{name}={quote(draw(_VALUES), safe='')}")
    for name in draw(st.lists(st.sampled_from(["prefix", "max-keys", "marker"]), unique=True,
                              max_size=2)):
        query.append(f"{name}={quote(draw(_VALUES), safe='')}")
    query = draw(st.permutations(query))
    headers = {f"x-amz-meta-{n}": v for n, v in
               draw(st.dictionaries(_META_NAMES, _HEADER_VALUES, max_size=4)).items()}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["text/plain", " application/json "]))
    if draw(st.booleans()):
        headers["Content-MD5"] = "1B2M2Y8AsgTpgAmY7PhCfg=="
    if draw(st.booleans()):
        headers["x-amz-acl"] = "private"
    method = draw(st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]))
    url = f"http://{NETLOC}{path}" + ("?" + "&".join(query) if query else "")
    return method, url, headers


@SETTINGS
@given(requests())
def test_botocore_header_signatures_verify(request_):
    method, url, headers = request_
    now = time.time()
    path, query, sent = botocore_signed(method, url, headers)
    result = auth(method, path, query, sent, now)
    assert result is not None and result.mode == "header-v2" and result.access_key == AK


@SETTINGS
@given(requests())
def test_botocore_presigned_urls_verify(request_):
    method, url, headers = request_
    now = time.time()
    path, query, sent = botocore_signed(method, url, headers, presign=300)
    result = auth(method, path, query, sent, now)
    assert result is not None and result.mode == "presigned-v2" and result.access_key == AK


@SETTINGS
@given(requests(), st.data())
def test_botocore_virtual_host_signatures_verify(request_, data):
    method, url, headers = request_
    parts = urlsplit(url)
    vhost_url = f"http://bkt.s3.example:9000{parts.path[len('/bkt'):]}" + (
        "?" + parts.query if parts.query else "")
    presign = data.draw(st.sampled_from([None, 300]))
    path, query, sent = botocore_signed(method, vhost_url, headers, presign=presign,
                                        auth_path=parts.path)
    assert auth(method, path, query, sent, time.time(), vhost="bkt") is not None
    with pytest.raises(errors.SignatureDoesNotMatch):
        auth(method, path, query, sent, time.time(), vhost="other")


def _mutate(text: str, index: int) -> str:
    i = index % len(text)
    flipped = chr(ord(text[i]) ^ 1)
    return text[:i] + flipped + text[i + 1:]


@SETTINGS
@given(requests(), st.integers(min_value=0), st.data())
def test_any_mutation_of_a_signed_part_is_refused(request_, index, data):
    method, url, headers = request_
    now = time.time()
    presign = data.draw(st.sampled_from([None, 300]))
    path, query, sent = botocore_signed(method, url, headers, presign=presign)
    targets = ["method", "path", "signature"]
    signed_headers = [i for i, (n, _) in enumerate(sent)
                      if (n.startswith("x-amz-") or n in ("content-type", "content-md5", "date"))
                      and sent[i][1].strip()]
    if signed_headers:
        targets.append("header")
    signed_query = [i for i, p in enumerate(query.split("&"))
                    if p.split("=")[0] in SIGNED_SUBRESOURCES and "=" in p and p.split("=")[1]]
    if signed_query:
        targets.append("subresource")
    target = data.draw(st.sampled_from(targets))
    if target == "method":
        method = {"GET": "PUT", "PUT": "GET", "POST": "PUT", "DELETE": "GET", "HEAD": "GET"}[method]
    elif target == "path":
        path = _mutate(path, index)
    elif target == "header":
        i = data.draw(st.sampled_from(signed_headers))
        name, value = sent[i]
        if name == "date":
            value = formatdate(time.time() - 60, usegmt=True)
        else:
            value = _mutate(value.strip(), index)
        sent = [*sent[:i], (name, value), *sent[i + 1:]]
    elif target == "subresource":
        parts = query.split("&")
        i = data.draw(st.sampled_from(signed_query))
        name, value = parts[i].split("=", 1)
        parts[i] = f"{name}={value}X"
        query = "&".join(parts)
    else:
        if presign is None:
            sent = [(n, _flip_sig(v) if n == "authorization" else v) for n, v in sent]
        else:
            query = "&".join(f"Signature={_flip_sig_q(p[10:])}" if p.startswith("Signature=")
                             else p for p in query.split("&"))
    with pytest.raises((errors.SignatureDoesNotMatch, errors.AccessDenied)):
        auth(method, path, query, sent, now)


def _flip_sig(authorization: str) -> str:
    head, sig = authorization.rsplit(":", 1)
    return f"{head}:{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"


def _flip_sig_q(sig: str) -> str:
    return ("B" if sig[0] == "A" else "A") + sig[1:]


# ---------------------------------------------------------------- specific refusals

def _get(now: float, **kw):
    return botocore_signed("GET", f"http://{NETLOC}/bkt/key", **kw)


def test_unknown_access_key():
    path, query, sent = _get(time.time())
    sent = [(n, v.replace(AK, "NOSUCHKEY") if n == "authorization" else v) for n, v in sent]
    with pytest.raises(errors.InvalidAccessKeyId) as exc:
        auth("GET", path, query, sent, time.time())
    assert exc.value.fields["AWSAccessKeyId"] == "NOSUCHKEY"


def test_wrong_secret_reports_string_to_sign():
    path, query, sent = _get(time.time(), secret="not-the-secret")
    with pytest.raises(errors.SignatureDoesNotMatch) as exc:
        auth("GET", path, query, sent, time.time())
    date = dict(sent)["date"]
    assert exc.value.fields["StringToSign"] == f"GET\n\n\n{date}\n/bkt/key"
    assert exc.value.fields["AWSAccessKeyId"] == AK
    assert "not-the-secret" not in str(exc.value.fields) and SK not in str(exc.value.fields)


@pytest.mark.parametrize("skew", [-16 * 60, 16 * 60])
def test_clock_skew_refused(skew):
    path, query, sent = _get(time.time())
    with pytest.raises(errors.RequestTimeTooSkewed) as exc:
        auth("GET", path, query, sent, time.time() + skew)
    assert exc.value.fields["MaxAllowedSkewMilliseconds"] == "900000"


def test_small_skew_accepted():
    path, query, sent = _get(time.time())
    assert auth("GET", path, query, sent, time.time() + 14 * 60) is not None


def test_missing_date_refused():
    path, query, sent = _get(time.time())
    sent = [(n, v) for n, v in sent if n != "date"]
    with pytest.raises(errors.AccessDenied, match="valid Date or x-amz-date"):
        auth("GET", path, query, sent, time.time())


def test_expired_presigned_url_refused():
    now = time.time()
    path, query, sent = _get(now, presign=60)
    assert auth("GET", path, query, sent, now + 59) is not None
    with pytest.raises(errors.AccessDenied, match="Request has expired"):
        auth("GET", path, query, sent, now + 120)


def test_presigned_expires_is_signed():
    now = time.time()
    path, query, sent = _get(now, presign=60)
    later = "&".join(f"Expires={int(p[8:]) + 3600}" if p.startswith("Expires=") else p
                     for p in query.split("&"))
    with pytest.raises(errors.SignatureDoesNotMatch):
        auth("GET", path, later, sent, now)


@pytest.mark.parametrize("query", [
    "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=9999999999",
    "Signature=abc&Expires=9999999999",
    "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=abc",
    "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=abc&Expires=soon",
])
def test_incomplete_presigned_query_refused(query):
    with pytest.raises(errors.AccessDenied):
        auth("GET", "/bkt/key", query, [("host", NETLOC)], time.time())


def test_malformed_header_refused():
    headers = [("host", NETLOC), ("date", formatdate(usegmt=True)), ("authorization", "AWS AKIDONLY")]
    with pytest.raises(errors.InvalidArgument, match="AwsAccessKeyId:signature"):
        auth("GET", "/bkt/key", "", headers, time.time())


def test_unsigned_x_amz_header_added_is_refused():
    path, query, sent = _get(time.time())
    with pytest.raises(errors.SignatureDoesNotMatch):
        auth("GET", path, query, [*sent, ("x-amz-acl", "public-read")], time.time())


def test_appended_subresource_is_refused():
    now = time.time()
    path, query, sent = _get(now, presign=60)
    for extra in ("acl", "retention", "legal-hold", "tagging", "ac%6C"):
        with pytest.raises(errors.SignatureDoesNotMatch):
            auth("PUT", path, f"{query}&{extra}", sent, now)


@pytest.mark.parametrize("sub", sorted(UNSIGNABLE_SUBRESOURCES))
def test_subresources_v2_cannot_sign_are_refused(sub):
    # botocore does not sign these either: V2 must not let them ride along unsigned.
    path, query, sent = botocore_signed("GET", f"http://{NETLOC}/bkt?{sub}")
    with pytest.raises(errors.AccessDenied, match="AWS4-HMAC-SHA256"):
        auth("GET", path, query, sent, time.time())


def test_session_token_from_header_and_presigned_query():
    now = time.time()
    path, query, sent = _get(now, headers={"x-amz-security-token": "TOKEN"}, token="TOKEN")
    assert auth("GET", path, query, sent, now).session_token == "TOKEN"
    path, query, sent = _get(now, headers={"x-amz-security-token": "TOKEN"}, token="TOKEN",
                             presign=60)
    assert "x-amz-security-token=TOKEN" in query
    assert auth("GET", path, query, sent, now).session_token == "TOKEN"
    # The token is signed: another one fails.
    with pytest.raises(errors.SignatureDoesNotMatch):
        auth("GET", path, query.replace("TOKEN", "TOKEM"), sent, now)


def test_presigned_content_type_from_query_or_header():
    now = time.time()
    path, query, sent = botocore_signed("PUT", f"http://{NETLOC}/bkt/key",
                                        {"Content-Type": "text/plain"}, presign=60)
    assert auth("PUT", path, query, sent, now) is not None
    without = [(n, v) for n, v in sent if n != "content-type"]
    assert auth("PUT", path, query, without, now) is not None
    with pytest.raises(errors.SignatureDoesNotMatch):
        auth("PUT", path, query, [*without, ("content-type", "text/html")], now)


def test_plus_in_subresource_value_either_reading():
    now = time.time()
    date = formatdate(now, usegmt=True)
    for signed_value in ("a+b", "a b"):
        sts = f"GET\n\n\n{date}\n/bkt/key?response-content-type={signed_value}"
        headers = [("host", NETLOC), ("date", date),
                   ("authorization", f"AWS {AK}:{sign(SK, sts)}")]
        assert auth("GET", "/bkt/key", "response-content-type=a+b", headers, now) is not None


def test_authenticate_v2_reports_the_configured_region():
    now = time.time()
    path, query, sent = _get(now)
    direct = authenticate_v2("GET", path, query, sent, lookup_secret=lookup, region="eu-west-1",
                             now=now)
    assert direct.region == "eu-west-1" and direct.mode == "header-v2"
    assert direct.signature == dict(sent)["authorization"].rsplit(":", 1)[1]


def test_anonymous_and_sigv4_unaffected():
    assert auth("GET", "/bkt/key", "prefix=a", [("host", NETLOC)], time.time()) is None


def test_claimed_credential_for_key_lookup():
    now = time.time()
    path, query, sent = _get(now, headers={"x-amz-security-token": "TOK"}, token="TOK")
    assert claimed_credential(sent, query) == (AK, "TOK")
    path, query, sent = _get(now, headers={"x-amz-security-token": "TOK"}, token="TOK",
                             presign=60)
    assert claimed_credential(sent, query) == (AK, "TOK")
    path, query, sent = _get(now, presign=60)
    assert claimed_credential(sent, query) == (AK, None)
    assert claimed_credential([("host", NETLOC)], "prefix=a") == (None, None)
    v4 = [("authorization", "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request")]
    assert claimed_credential(v4, "") == (None, None)


@pytest.mark.parametrize("sent_path, signed_path", [("/bkt", "/bkt/"), ("/bkt/", "/bkt")])
def test_bucket_level_path_with_or_without_slash(sent_path, signed_path):
    # botocore signs bucket-level path-style requests as /bucket/ but sends /bucket.
    path, query, sent = botocore_signed("PUT", f"http://{NETLOC}{sent_path}?acl",
                                        auth_path=signed_path)
    assert path == sent_path
    assert auth("PUT", path, query, sent, time.time()) is not None


def test_object_path_trailing_slash_is_signed():
    path, query, sent = botocore_signed("GET", f"http://{NETLOC}/bkt/key",
                                        auth_path="/bkt/key/")
    with pytest.raises(errors.SignatureDoesNotMatch):
        auth("GET", path, query, sent, time.time())
