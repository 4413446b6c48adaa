"""ListObjects (v1) and ListObjectsV2: prefixes, delimiters, paging, encoding, order.

boto3 silently adds ``encoding-type=url`` to every listing and decodes the keys
(only when it added the parameter itself), so the raw XML is also checked with
hand-signed requests.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, unquote_plus, urlencode

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.httpsession import URLLib3Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def raw(server, method: str, path: str, *, query: str = "", headers=None, body: bytes = b""):
    """Send one SigV4-signed request built by hand; returns botocore's AWSResponse."""
    url = server.endpoint + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    return URLLib3Session(timeout=10).send(req.prepare())


def raw_list(server, bucket: str, **params: str) -> ET.Element:
    query = urlencode(sorted(params.items()), quote_via=quote, safe="")
    resp = raw(server, "GET", f"/{bucket}", query=query)
    assert resp.status_code == 200, resp.content
    return ET.fromstring(resp.content)


def texts(root: ET.Element, path: str) -> list[str]:
    return [el.text or "" for el in root.iterfind(_ns(path))]


def _ns(path: str) -> str:
    return "/".join(NS + part for part in path.split("/"))


def put_keys(s3, bucket: str, keys) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()[:8]), keys))


def utf8_sorted(keys) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def keys_of(resp) -> list[str]:
    return [o["Key"] for o in resp.get("Contents", [])]


def prefixes_of(resp) -> list[str]:
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


TREE = ["a/1", "a/2", "a/b/3", "b/1", "c", "d/e/f", "d/e/g", "d/h", "e"]


@pytest.fixture
def tree(s3, bucket):
    put_keys(s3, bucket, TREE)
    return bucket


# ---------------------------------------------------------------- basics

def test_v2_lists_everything_with_object_fields(s3, tree):
    resp = s3.list_objects_v2(Bucket=tree)
    assert keys_of(resp) == TREE
    assert resp["KeyCount"] == len(TREE)
    assert resp["IsTruncated"] is False
    assert resp["Name"] == tree
    assert resp["MaxKeys"] == 1000
    for o in resp["Contents"]:
        assert o["Size"] == len(o["Key"].encode()[:8])
        assert o["ETag"].startswith('"') and len(o["ETag"]) == 34
        assert o["LastModified"] is not None
        assert o["StorageClass"] == "STANDARD"


def test_v1_lists_everything(s3, tree):
    resp = s3.list_objects(Bucket=tree)
    assert keys_of(resp) == TREE
    assert resp["IsTruncated"] is False
    assert resp["Name"] == tree
    assert "NextMarker" not in resp


def test_empty_bucket(s3, bucket):
    v2 = s3.list_objects_v2(Bucket=bucket)
    assert v2["KeyCount"] == 0 and "Contents" not in v2 and v2["IsTruncated"] is False
    v1 = s3.list_objects(Bucket=bucket)
    assert "Contents" not in v1 and v1["IsTruncated"] is False


def test_list_missing_bucket(s3):
    for call in (s3.list_objects, s3.list_objects_v2):
        with pytest.raises(ClientError) as e:
            call(Bucket="t-no-such-bucket-listing-0")
        assert e.value.response["Error"]["Code"] == "NoSuchBucket"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_prefix(s3, tree, api):
    call = s3.list_objects if api == "v1" else s3.list_objects_v2
    assert keys_of(call(Bucket=tree, Prefix="a/")) == ["a/1", "a/2", "a/b/3"]
    assert keys_of(call(Bucket=tree, Prefix="d/e")) == ["d/e/f", "d/e/g"]
    assert keys_of(call(Bucket=tree, Prefix="zzz")) == []
    assert call(Bucket=tree, Prefix="a/")["Prefix"] == "a/"


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_delimiter_and_common_prefixes(s3, tree, api):
    call = s3.list_objects if api == "v1" else s3.list_objects_v2
    resp = call(Bucket=tree, Delimiter="/")
    assert keys_of(resp) == ["c", "e"]
    assert prefixes_of(resp) == ["a/", "b/", "d/"]
    assert resp["Delimiter"] == "/"
    resp = call(Bucket=tree, Delimiter="/", Prefix="d/")
    assert keys_of(resp) == ["d/h"]
    assert prefixes_of(resp) == ["d/e/"]
    resp = call(Bucket=tree, Delimiter="/", Prefix="a/b/")
    assert keys_of(resp) == ["a/b/3"] and prefixes_of(resp) == []


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_multi_character_and_non_slash_delimiter(s3, bucket, api):
    put_keys(s3, bucket, ["x--1", "x--2", "y--z--3", "plain", "x-1"])
    call = s3.list_objects if api == "v1" else s3.list_objects_v2
    resp = call(Bucket=bucket, Delimiter="--")
    assert keys_of(resp) == ["plain", "x-1"]
    assert prefixes_of(resp) == ["x--", "y--"]
    resp = call(Bucket=bucket, Delimiter="1")
    assert prefixes_of(resp) == ["x--1", "x-1"]
    assert keys_of(resp) == ["plain", "x--2", "y--z--3"]


def test_v2_key_count_includes_common_prefixes(s3, tree):
    resp = s3.list_objects_v2(Bucket=tree, Delimiter="/")
    assert resp["KeyCount"] == 2 + 3


# ---------------------------------------------------------------- paging, exact boundaries

SIX = [f"k{i}" for i in range(6)]


@pytest.fixture
def six(s3, bucket):
    put_keys(s3, bucket, SIX)
    return bucket


def test_v2_truncation_exact_at_page_boundary(s3, six):
    p1 = s3.list_objects_v2(Bucket=six, MaxKeys=3)
    assert keys_of(p1) == SIX[:3] and p1["IsTruncated"] is True and p1["KeyCount"] == 3
    assert p1["MaxKeys"] == 3
    token = p1["NextContinuationToken"]
    p2 = s3.list_objects_v2(Bucket=six, MaxKeys=3, ContinuationToken=token)
    assert keys_of(p2) == SIX[3:]
    assert p2["IsTruncated"] is False
    assert "NextContinuationToken" not in p2
    assert p2["ContinuationToken"] == token
    whole = s3.list_objects_v2(Bucket=six, MaxKeys=6)
    assert keys_of(whole) == SIX and whole["IsTruncated"] is False
    assert "NextContinuationToken" not in whole


def test_v1_truncation_exact_at_page_boundary(s3, six):
    p1 = s3.list_objects(Bucket=six, MaxKeys=3)
    assert keys_of(p1) == SIX[:3] and p1["IsTruncated"] is True
    assert "NextMarker" not in p1, "v1 returns NextMarker only when a delimiter is given"
    p2 = s3.list_objects(Bucket=six, MaxKeys=3, Marker=keys_of(p1)[-1])
    assert keys_of(p2) == SIX[3:] and p2["IsTruncated"] is False
    assert p2["Marker"] == "k2"
    whole = s3.list_objects(Bucket=six, MaxKeys=6)
    assert keys_of(whole) == SIX and whole["IsTruncated"] is False


def test_v1_next_marker_with_delimiter(s3, tree):
    # Entries in order: a/ (prefix), b/ (prefix), c, d/ (prefix), e
    p1 = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2)
    assert prefixes_of(p1) == ["a/", "b/"] and keys_of(p1) == []
    assert p1["IsTruncated"] is True
    assert p1["NextMarker"] == "b/"
    p2 = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2, Marker=p1["NextMarker"])
    assert keys_of(p2) == ["c"] and prefixes_of(p2) == ["d/"]
    assert p2["IsTruncated"] is True
    assert p2["NextMarker"] == "d/"
    p3 = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2, Marker=p2["NextMarker"])
    assert keys_of(p3) == ["e"] and prefixes_of(p3) == []
    assert p3["IsTruncated"] is False
    assert "NextMarker" not in p3


def test_v2_common_prefixes_count_toward_max_keys(s3, tree):
    p1 = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=3)
    assert prefixes_of(p1) == ["a/", "b/"] and keys_of(p1) == ["c"]
    assert p1["KeyCount"] == 3 and p1["IsTruncated"] is True
    p2 = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=3,
                            ContinuationToken=p1["NextContinuationToken"])
    assert prefixes_of(p2) == ["d/"] and keys_of(p2) == ["e"]
    assert p2["IsTruncated"] is False


def test_v1_marker_skips_keys_at_or_before_it(s3, tree):
    assert keys_of(s3.list_objects(Bucket=tree, Marker="b/1")) == ["c", "d/e/f", "d/e/g", "d/h", "e"]
    assert keys_of(s3.list_objects(Bucket=tree, Marker="b")) == ["b/1", "c", "d/e/f", "d/e/g", "d/h", "e"]
    assert keys_of(s3.list_objects(Bucket=tree, Marker="zzz")) == []


def test_v2_start_after(s3, tree):
    resp = s3.list_objects_v2(Bucket=tree, StartAfter="c")
    assert keys_of(resp) == ["d/e/f", "d/e/g", "d/h", "e"]
    assert resp["StartAfter"] == "c"
    resp = s3.list_objects_v2(Bucket=tree, StartAfter="a/2", Delimiter="/", Prefix="a/")
    assert keys_of(resp) == [] and prefixes_of(resp) == ["a/b/"]


def test_v2_start_after_then_continuation(s3, six):
    p1 = s3.list_objects_v2(Bucket=six, StartAfter="k1", MaxKeys=2)
    assert keys_of(p1) == ["k2", "k3"] and p1["IsTruncated"] is True
    p2 = s3.list_objects_v2(Bucket=six, StartAfter="k1", MaxKeys=2,
                            ContinuationToken=p1["NextContinuationToken"])
    assert keys_of(p2) == ["k4", "k5"] and p2["IsTruncated"] is False


def test_v2_invalid_continuation_token(s3, six):
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=six, ContinuationToken="definitely-not-a-token")
    assert e.value.response["Error"]["Code"] == "InvalidArgument"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("max_keys", ["-1", "abc"])
def test_invalid_max_keys(server, six, max_keys):
    resp = raw(server, "GET", f"/{six}", query=f"list-type=2&max-keys={max_keys}")
    assert resp.status_code == 400
    assert ET.fromstring(resp.content).findtext("Code") == "InvalidArgument"


def test_paginators_v1_and_v2(s3, bucket):
    keys = [f"p/{i:02d}" for i in range(11)] + ["q/x", "r"]
    put_keys(s3, bucket, keys)
    v2 = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                      PaginationConfig={"PageSize": 2})
    pages = list(v2)
    assert [k for p in pages for k in keys_of(p)] == utf8_sorted(keys)
    assert len(pages) == 7
    v1 = s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
    assert [k for p in v1 for k in keys_of(p)] == utf8_sorted(keys)
    v1d = s3.get_paginator("list_objects").paginate(Bucket=bucket, Delimiter="/",
                                                    PaginationConfig={"PageSize": 1})
    seen_p, seen_k = [], []
    for p in v1d:
        seen_p += prefixes_of(p)
        seen_k += keys_of(p)
    assert seen_p == ["p/", "q/"] and seen_k == ["r"]


# ---------------------------------------------------------------- owner

def test_fetch_owner(s3, six):
    plain = s3.list_objects_v2(Bucket=six)
    assert all("Owner" not in o for o in plain["Contents"])
    owned = s3.list_objects_v2(Bucket=six, FetchOwner=True)
    assert all(o["Owner"]["ID"] for o in owned["Contents"])
    v1 = s3.list_objects(Bucket=six)
    assert all(o["Owner"]["ID"] for o in v1["Contents"]), "v1 always includes Owner"


# ---------------------------------------------------------------- order and encoding

UNICODE_KEYS = [
    "Z", "a", "aa", "a\u00e9", "\u00e9", "\u00ff", "\u0100", "\u4e2d\u6587",
    "\uff21-fullwidth", "\U0001F600-emoji", "\U00010000-linear-b", "~tilde", "a b", "a+b", "a%b",
]


def test_utf8_binary_order(s3, bucket):
    put_keys(s3, bucket, UNICODE_KEYS)
    expected = utf8_sorted(UNICODE_KEYS)
    # UTF-8 order differs from UTF-16 order for U+FF21 vs U+1F600: the test discriminates.
    assert expected.index("\uff21-fullwidth") < expected.index("\U0001F600-emoji")
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == expected
    assert keys_of(s3.list_objects(Bucket=bucket)) == expected
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                         PaginationConfig={"PageSize": 4})
    assert [k for p in pages for k in keys_of(p)] == expected


ENC_KEYS = ["dir one/ü file+1%.txt", "dir one/plain", "ctl\x01char", "tab\tkey", "日本/語"]


def test_boto3_decodes_auto_url_encoding(s3, bucket):
    put_keys(s3, bucket, ENC_KEYS)
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == utf8_sorted(ENC_KEYS)
    assert keys_of(s3.list_objects(Bucket=bucket)) == utf8_sorted(ENC_KEYS)
    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert prefixes_of(resp) == ["dir one/", "日本/"]


def test_explicit_encoding_type_url_returns_encoded_keys(s3, bucket):
    put_keys(s3, bucket, ENC_KEYS)
    resp = s3.list_objects_v2(Bucket=bucket, EncodingType="url")
    assert resp["EncodingType"] == "url"
    listed = keys_of(resp)
    assert [unquote_plus(k) for k in listed] == utf8_sorted(ENC_KEYS)
    assert all(k.isascii() and " " not in k and "\x01" not in k for k in listed)


def test_raw_xml_encoding_type_url_v2(server, s3, bucket):
    put_keys(s3, bucket, ENC_KEYS)
    root = raw_list(server, bucket, **{"list-type": "2", "encoding-type": "url",
                                       "prefix": "dir one/", "delimiter": "/",
                                       "start-after": "dir one/a b"})
    assert root.tag == NS + "ListBucketResult"
    assert root.findtext(NS + "EncodingType") == "url"
    raw_keys = texts(root, "Contents/Key")
    assert [unquote_plus(k) for k in raw_keys] == ["dir one/plain", "dir one/ü file+1%.txt"]
    for k in raw_keys + [root.findtext(NS + "Prefix"), root.findtext(NS + "StartAfter")]:
        assert k.isascii() and " " not in k, k
    assert unquote_plus(root.findtext(NS + "Prefix")) == "dir one/"
    assert unquote_plus(root.findtext(NS + "StartAfter")) == "dir one/a b"
    assert "+1%" not in raw_keys[1], "'+' and '%' in keys are escaped"

    root = raw_list(server, bucket, **{"list-type": "2", "encoding-type": "url", "delimiter": "/"})
    cps = texts(root, "CommonPrefixes/Prefix")
    assert [unquote_plus(p) for p in cps] == ["dir one/", "日本/"]
    assert all(p.isascii() and " " not in p for p in cps)


def test_raw_xml_encoding_type_url_v1_next_marker(server, s3, bucket):
    put_keys(s3, bucket, ENC_KEYS)
    root = raw_list(server, bucket, **{"encoding-type": "url", "delimiter": "/", "max-keys": "1"})
    assert root.findtext(NS + "IsTruncated") == "true"
    nm = root.findtext(NS + "NextMarker")
    assert nm is not None and nm.isascii()
    first = utf8_sorted(ENC_KEYS)[0]
    assert unquote_plus(nm) == first


def test_raw_xml_without_encoding_has_literal_unicode(server, s3, bucket):
    keys = ["dir one/ü file+1%.txt", "日本/語"]
    put_keys(s3, bucket, keys)
    root = raw_list(server, bucket, **{"list-type": "2"})
    assert texts(root, "Contents/Key") == utf8_sorted(keys)
    assert root.find(NS + "EncodingType") is None


def test_invalid_encoding_type(server, bucket):
    resp = raw(server, "GET", f"/{bucket}", query="list-type=2&encoding-type=base64")
    assert resp.status_code == 400
    assert ET.fromstring(resp.content).findtext("Code") == "InvalidArgument"


# ---------------------------------------------------------------- model-based paging

def _model(keys, prefix, delimiter, start_after):
    """Expected listing entries in order: ('K', key) or ('P', common prefix)."""
    out, seen = [], set()
    for k in utf8_sorted(keys):
        if not k.startswith(prefix):
            continue
        if start_after is not None and k.encode() <= start_after.encode():
            continue
        if delimiter:
            i = k.find(delimiter, len(prefix))
            if i >= 0:
                cp = k[:i + len(delimiter)]
                if cp not in seen:
                    seen.add(cp)
                    out.append(("P", cp))
                continue
        out.append(("K", k))
    return out


def _page_entries(resp):
    entries = [("K", k) for k in keys_of(resp)] + [("P", p) for p in prefixes_of(resp)]
    return sorted(entries, key=lambda e: e[1].encode())


def _model_keys(n: int = 60) -> list[str]:
    rng = random.Random(20240601)
    alphabet = ["a", "b", "/", "-", "\u00e9", "\u65e5", "\U0001F600", "z"]
    return sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
                   for _ in range(n)})


MODEL_KEYS = _model_keys()


@pytest.fixture
def model_bucket(s3, bucket):
    put_keys(s3, bucket, MODEL_KEYS)
    return bucket


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    api=st.sampled_from(["v1", "v2"]),
    prefix=st.sampled_from(["", "a", "a/", "b", "/", "\u00e9", "\U0001F600", "zz"]),
    delimiter=st.sampled_from([None, "/", "-", "\u65e5"]),
    page=st.integers(min_value=1, max_value=9),
    start_after=st.sampled_from([None, "a", "b/", "\u00e9"]),
)
def test_paginated_listing_matches_model(s3, model_bucket, api, prefix, delimiter, page,
                                         start_after):
    if delimiter is not None:
        start_after = None  # a start point inside a common prefix is checked by the paging itself
    expected = _model(MODEL_KEYS, prefix, delimiter, start_after)
    got, kwargs = [], {"Bucket": model_bucket, "Prefix": prefix, "MaxKeys": page}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    if start_after is not None:
        kwargs["StartAfter" if api == "v2" else "Marker"] = start_after
    for _ in range(len(MODEL_KEYS) + 2):
        resp = (s3.list_objects_v2 if api == "v2" else s3.list_objects)(**kwargs)
        entries = _page_entries(resp)
        assert len(entries) <= page
        got += entries
        if not resp["IsTruncated"]:
            break
        assert entries, "a truncated page is never empty"
        if api == "v2":
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]
        else:
            kwargs["Marker"] = resp["NextMarker"] if delimiter else keys_of(resp)[-1]
            if delimiter:
                assert resp["NextMarker"] == entries[-1][1]
    else:
        pytest.fail("listing never stopped")
    assert got == expected
