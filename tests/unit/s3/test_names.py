"""Bucket naming rules (AWS general purpose buckets) and object key limits."""

from __future__ import annotations

import pytest

from vallum.s3 import errors
from vallum.s3.names import bucket_name_problem, validate_bucket_name, validate_key

VALID = [
    "abc", "a" * 63, "my-bucket", "my.bucket.name", "0bucket9", "123", "a-b.c-d",
    "docexamplebucket1", "log-delivery-march-2020", "my-hosted-content",
    "xn-single-dash", "s3alias-prefix", "bucket-s3alias-not-at-end", "1.2.3",
    "1.2.3.4.5", "sthree", "amzn-s3-demo", "x--s3-middle",
]
INVALID = [
    "", "ab", "a" * 64,                          # length
    "MyBucket", "my_bucket", "my bucket", "bücket", "my/bucket",  # characters
    "-bucket", "bucket-", ".bucket", "bucket.",  # first / last character
    "my..bucket",                                # adjacent periods
    "192.168.5.4", "10.0.0.1", "999.999.999.999",  # IP-address shaped
    "xn--bucket", "sthree-bucket", "sthree-configurator", "amzn-s3-demo-bucket",
    "bucket-s3alias", "bucket--ol-s3", "bucket.mrap", "bucket--x-s3", "bucket--table-s3",
    "doc_example_bucket", "DocExampleBucket", "doc-example-bucket-",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_bucket_names(name):
    assert bucket_name_problem(name) is None
    validate_bucket_name(name)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_bucket_names(name):
    assert bucket_name_problem(name)
    with pytest.raises(errors.InvalidBucketName) as info:
        validate_bucket_name(name)
    assert info.value.status == 400
    assert info.value.fields["BucketName"] == name


def test_reserved_gateway_prefix_is_never_a_bucket():
    # The gateway owns "/-/..." paths; no bucket may start with '-'.
    assert bucket_name_problem("-") and bucket_name_problem("--x")


def test_key_limits():
    validate_key("k")
    validate_key("a/b/c.txt")
    validate_key("k" * 1024)
    validate_key("é" * 512)            # 1024 UTF-8 bytes
    validate_key("\U0001f600" * 256)   # 4-byte characters, 1024 bytes
    with pytest.raises(errors.KeyTooLongError) as info:
        validate_key("k" * 1025)
    assert info.value.status == 400
    with pytest.raises(errors.KeyTooLongError):
        validate_key("é" * 512 + "k")
    with pytest.raises(errors.InvalidArgument):
        validate_key("")
    with pytest.raises(errors.InvalidArgument):
        validate_key("bad\udc80surrogate")
