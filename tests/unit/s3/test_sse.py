"""Parsing of SSE-C and SSE-S3 request headers (s3/sse.py), including a hypothesis fuzz:
arbitrary header values only ever give a valid key or an S3 error."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vallum.s3 import errors, sse

KEY = bytes(range(32))
B64 = base64.b64encode(KEY).decode()
MD5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()


def headers(prefix: str = sse.PREFIX, **values: str) -> dict[str, str]:
    """Lower-case header names, as the gateway hands them to handlers."""
    names = {"algorithm": "algorithm", "key": "key", "md5": "key-md5"}
    return {prefix + names[k]: v for k, v in values.items()}


def fails(exc_type, message, h, *, secure=True, copy_source=False):
    with pytest.raises(exc_type) as e:
        sse.customer_key(h, secure=secure, copy_source=copy_source)
    assert e.value.message == message
    return e.value


def test_valid_key():
    ck = sse.customer_key(headers(algorithm="AES256", key=B64, md5=MD5), secure=True)
    assert ck is not None and ck.key == KEY and ck.key_md5 == MD5
    assert ck.response_headers() == {sse.PREFIX + "algorithm": "AES256", sse.PREFIX + "key-MD5": MD5}
    assert B64 not in repr(ck) and str(list(KEY)) not in repr(ck)


def test_no_headers_is_none():
    assert sse.customer_key({}, secure=False) is None
    assert sse.customer_key({"x-amz-server-side-encryption": "AES256"}, secure=False) is None


def test_copy_source_headers_are_separate():
    h = headers(sse.COPY_PREFIX, algorithm="AES256", key=B64, md5=MD5)
    assert sse.customer_key(h, secure=True) is None
    assert sse.customer_key(h, secure=True, copy_source=True).key == KEY
    err = fails(errors.InvalidArgument, sse.MISSING_KEY, headers(sse.COPY_PREFIX, algorithm="AES256"),
                copy_source=True)
    assert err.fields["ArgumentName"] == sse.COPY_PREFIX + "key"


def test_plain_http_refused_before_anything_else():
    err = fails(errors.InvalidRequest, sse.INSECURE, headers(md5="garbage"), secure=False)
    assert err.status == 400


@pytest.mark.parametrize("algorithm", [None, "", "AES128", "aes256", "aws:kms"])
def test_bad_algorithm(algorithm):
    h = headers(key=B64, md5=MD5)
    if algorithm is not None:
        h[sse.PREFIX + "algorithm"] = algorithm
    err = fails(errors.InvalidArgument, sse.BAD_ALGORITHM, h)
    assert err.fields["ArgumentName"] == sse.PREFIX + "algorithm"


def test_missing_key():
    fails(errors.InvalidArgument, sse.MISSING_KEY, headers(algorithm="AES256", md5=MD5))
    fails(errors.InvalidArgument, sse.MISSING_KEY, headers(algorithm="AES256", key="", md5=MD5))


@pytest.mark.parametrize("key", [base64.b64encode(bytes(16)).decode(), base64.b64encode(bytes(33)).decode(),
                                 "not base64!", B64[:-2]], ids=["16-bytes", "33-bytes", "not-b64", "cut"])
def test_invalid_key(key):
    err = fails(errors.InvalidArgument, sse.BAD_KEY, headers(algorithm="AES256", key=key, md5=MD5))
    assert "ArgumentValue" not in err.fields          # the key is never echoed


def test_missing_md5():
    fails(errors.InvalidArgument, sse.MISSING_MD5, headers(algorithm="AES256", key=B64))


@pytest.mark.parametrize("md5", [base64.b64encode(hashlib.md5(b"other").digest()).decode(), "!!", MD5[:-4],
                                 base64.b64encode(hashlib.md5(KEY).digest() + b"x").decode()])
def test_md5_mismatch(md5):
    fails(errors.InvalidArgument, sse.MD5_MISMATCH, headers(algorithm="AES256", key=B64, md5=md5))


def test_managed_header():
    assert sse.managed({}) is None
    assert sse.managed({"x-amz-server-side-encryption": "AES256"}) == "AES256"
    with pytest.raises(errors.InvalidArgument) as e:
        sse.managed({"x-amz-server-side-encryption": "AES-256"})
    assert e.value.message == sse.UNSUPPORTED_METHOD
    assert e.value.fields == {"ArgumentName": "x-amz-server-side-encryption", "ArgumentValue": "AES-256"}
    for kms in ("aws:kms", "aws:kms:dsse"):
        with pytest.raises(errors.NotImplemented_):
            sse.managed({"x-amz-server-side-encryption": kms})
    with pytest.raises(errors.InvalidArgument) as e:
        sse.managed({"x-amz-server-side-encryption-aws-kms-key-id": "k"})
    assert e.value.message == sse.KMS_WITHOUT_KMS


def test_write_encryption_refuses_both_kinds():
    h = headers(algorithm="AES256", key=B64, md5=MD5)
    assert sse.write_encryption(h, secure=True).customer.key == KEY
    assert sse.write_encryption({"x-amz-server-side-encryption": "AES256"}, secure=False).sse == "AES256"
    with pytest.raises(errors.InvalidArgument) as e:
        sse.write_encryption({**h, "x-amz-server-side-encryption": "AES256"}, secure=True)
    assert e.value.message == sse.INCOMPATIBLE


def test_refuse_on_read():
    sse.refuse_on_read({})
    with pytest.raises(errors.InvalidArgument):
        sse.refuse_on_read({"x-amz-server-side-encryption": "AES256"})


# --- fuzz ----------------------------------------------------------------------------------
_value = st.one_of(st.none(), st.text(max_size=80), st.sampled_from(["AES256", B64, MD5, "", "=", "A" * 44]),
                   st.binary(min_size=0, max_size=40).map(lambda b: base64.b64encode(b).decode()))


_MESSAGES = {sse.INSECURE, sse.BAD_ALGORITHM, sse.MISSING_KEY, sse.BAD_KEY, sse.MISSING_MD5, sse.MD5_MISMATCH}


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(algorithm=_value, key=_value, md5=_value, secure=st.booleans(), copy_source=st.booleans(),
       managed=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["AES256", "aws:kms"])))
def test_fuzz_header_parser(algorithm, key, md5, secure, copy_source, managed):
    prefix = sse.COPY_PREFIX if copy_source else sse.PREFIX
    h = {}
    for name, value in (("algorithm", algorithm), ("key", key), ("key-md5", md5)):
        if value is not None:
            h[prefix + name] = value
    if managed is not None:
        h[sse.SSE_HEADER] = managed
    try:
        ck = sse.customer_key(h, secure=secure, copy_source=copy_source)
    except errors.S3Error as exc:
        assert exc.status == 400 and exc.code in ("InvalidArgument", "InvalidRequest")
        assert exc.message in _MESSAGES
        # Only the algorithm is ever echoed: never the key or its MD5.
        assert set(exc.fields) <= {"ArgumentName", "ArgumentValue"}
        if "ArgumentValue" in exc.fields:
            assert exc.fields["ArgumentName"].endswith("algorithm") and algorithm.startswith(exc.fields["ArgumentValue"])
    else:
        if ck is None:
            assert algorithm is None and key is None and md5 is None
        else:   # only a fully consistent triple over TLS is accepted
            assert secure and algorithm == "AES256" and len(ck.key) == 32
            assert hashlib.md5(ck.key).digest() == base64.b64decode(md5)
    try:
        enc = sse.write_encryption(h, secure=secure)
    except errors.S3Error as exc:
        assert exc.status in (400, 501)
    else:
        assert enc.sse in (None, "AES256")
        assert not (enc.sse and enc.customer)
