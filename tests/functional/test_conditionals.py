"""Conditional reads (RFC 7232 as S3 applies it) and conditional writes on PutObject.

Dates: "far past" is always older than the object; the object's own
Last-Modified is used where "not modified since" must hold exactly, so no
test needs to sleep.
"""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

PAST = dt.datetime(1999, 1, 1, tzinfo=dt.timezone.utc)
OTHER_ETAG = '"00000000000000000000000000000000"'


@pytest.fixture
def obj(s3, bucket):
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional body")
    head = s3.head_object(Bucket=bucket, Key="c")
    return {"Bucket": bucket, "Key": "c", "etag": head["ETag"], "mtime": head["LastModified"]}


def _params(obj):
    return {"Bucket": obj["Bucket"], "Key": obj["Key"]}


def _get_ok(s3, obj, **cond):
    resp = s3.get_object(**_params(obj), **cond)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Body"].read() == b"conditional body"
    head = s3.head_object(**_params(obj), **cond)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200


def _get_fails(s3, obj, status, **cond):
    """GET and HEAD both fail with `status`; GET 412 carries the PreconditionFailed code."""
    with pytest.raises(ClientError) as e:
        s3.get_object(**_params(obj), **cond)
    r = e.value.response
    assert r["ResponseMetadata"]["HTTPStatusCode"] == status
    if status == 412:
        assert r["Error"]["Code"] == "PreconditionFailed"
    if status == 304:
        # A 304 still names the representation it refers to (RFC 7232 4.1).
        assert r["ResponseMetadata"]["HTTPHeaders"]["etag"] == obj["etag"]
    with pytest.raises(ClientError) as e:
        s3.head_object(**_params(obj), **cond)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


# ---------------------------------------------------------------- single conditions

def test_if_match_true(s3, obj):
    _get_ok(s3, obj, IfMatch=obj["etag"])


def test_if_match_star(s3, obj):
    """RFC 7232: '*' matches any current representation."""
    _get_ok(s3, obj, IfMatch="*")


def test_if_match_false(s3, obj):
    _get_fails(s3, obj, 412, IfMatch=OTHER_ETAG)


def test_if_none_match_matching_etag_is_304(s3, obj):
    _get_fails(s3, obj, 304, IfNoneMatch=obj["etag"])


def test_if_none_match_star_on_existing_is_304(s3, obj):
    _get_fails(s3, obj, 304, IfNoneMatch="*")


def test_if_none_match_other_etag(s3, obj):
    _get_ok(s3, obj, IfNoneMatch=OTHER_ETAG)


def test_if_modified_since_past(s3, obj):
    _get_ok(s3, obj, IfModifiedSince=PAST)


def test_if_modified_since_last_modified_is_304(s3, obj):
    _get_fails(s3, obj, 304, IfModifiedSince=obj["mtime"])


def test_if_modified_since_after_last_modified_is_304(s3, obj):
    _get_fails(s3, obj, 304, IfModifiedSince=obj["mtime"] + dt.timedelta(seconds=1))


def test_if_unmodified_since_past_is_412(s3, obj):
    _get_fails(s3, obj, 412, IfUnmodifiedSince=PAST)


def test_if_unmodified_since_last_modified(s3, obj):
    _get_ok(s3, obj, IfUnmodifiedSince=obj["mtime"])


def test_conditions_on_missing_key_are_404(s3, bucket):
    for cond in ({"IfMatch": OTHER_ETAG}, {"IfNoneMatch": "*"}, {"IfModifiedSince": PAST}):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="missing", **cond)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert e.value.response["Error"]["Code"] == "NoSuchKey"


# ---------------------------------------------------------------- precedence (AWS GetObject docs)

def test_if_match_true_beats_if_unmodified_since_false(s3, obj):
    _get_ok(s3, obj, IfMatch=obj["etag"], IfUnmodifiedSince=PAST)


def test_if_none_match_false_with_if_modified_since_true_is_304(s3, obj):
    _get_fails(s3, obj, 304, IfNoneMatch=obj["etag"], IfModifiedSince=PAST)


def test_if_match_false_wins_over_if_none_match(s3, obj):
    _get_fails(s3, obj, 412, IfMatch=OTHER_ETAG, IfNoneMatch=obj["etag"])


def test_if_unmodified_since_false_wins_over_if_modified_since(s3, obj):
    _get_fails(s3, obj, 412, IfUnmodifiedSince=PAST, IfModifiedSince=PAST)


def test_ranged_get_honours_conditions(s3, obj):
    resp = s3.get_object(**_params(obj), IfMatch=obj["etag"], Range="bytes=0-3")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert resp["Body"].read() == b"cond"
    with pytest.raises(ClientError) as e:
        s3.get_object(**_params(obj), IfMatch=OTHER_ETAG, Range="bytes=0-3")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


# ---------------------------------------------------------------- conditional writes

def test_put_if_none_match_star_creates_when_absent(s3, bucket):
    resp = s3.put_object(Bucket=bucket, Key="new", Body=b"v1", IfNoneMatch="*")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == b"v1"


def test_put_if_none_match_star_refuses_overwrite(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"clobber", IfNoneMatch="*")
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"


def test_put_if_match_current_etag_updates(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    new = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)
    assert new["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    # The old ETag no longer matches: a second writer holding it loses.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=etag)
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"


def test_put_if_match_wrong_etag_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1", Metadata={"gen": "1"})
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=OTHER_ETAG,
                      Metadata={"gen": "2"})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"v1"
    assert got["Metadata"] == {"gen": "1"}


def test_put_if_match_on_missing_key_is_no_such_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"v", IfMatch=OTHER_ETAG)
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_put_if_none_match_etag_refuses_only_the_same_content(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v1 again", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfNoneMatch=OTHER_ETAG)
    s3.put_object(Bucket=bucket, Key="new", Body=b"n", IfNoneMatch=etag)    # absent: written
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"


@pytest.mark.parametrize("cond", ["if-none-match", "if-match"])
def test_a_write_that_loses_a_race_during_its_upload_is_409(server, s3, bucket, cond):
    """The condition held when the request arrived and not when it committed: AWS's
    409 ConditionalRequestConflict (retry), not a 412."""
    from tests.support import signed
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"] if cond == "if-match" else None
    body = b"slow body " * 1000
    conn = signed.open_request(server, "PUT", f"/{bucket}/k", "", {
        cond: etag or "*", "content-length": str(len(body)), "expect": "100-continue"})
    try:
        # 100 Continue: the server checked the condition on arrival and wants the body.
        assert signed.await_continue(conn).startswith(b"HTTP/1.1 100")
        s3.put_object(Bucket=bucket, Key="k", Body=b"the other writer")
        conn.send(body)
        status, _, answer = signed.finish(conn)
    finally:
        conn.close()
    assert status == 409 and b"<Code>ConditionalRequestConflict</Code>" in answer, answer
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"the other writer"
