"""The one x-amz-copy-source parser the gate and the copy handlers share."""

from __future__ import annotations

import pytest

from vallum.s3 import errors
from vallum.s3.copy_source import CopySourceRef, parse_copy_source

V = "a" * 32


@pytest.mark.parametrize("raw, want", [
    ("b/k", CopySourceRef("b", "k", None)),
    ("/b/k", CopySourceRef("b", "k", None)),
    ("b/%3Fk", CopySourceRef("b", "?k", None)),           # decoded after the query split
    ("b/a%2Fb%20c", CopySourceRef("b", "a/b c", None)),
    ("b/k?versionId=null", CopySourceRef("b", "k", "null")),
    (f"b/%3Fk?versionId={V}", CopySourceRef("b", "?k", V)),
    ("b/caf%C3%A9", CopySourceRef("b", "café", None)),
    ("b/caf\xc3\xa9", CopySourceRef("b", "café", None)),  # raw UTF-8 bytes (latin-1 view)
])
def test_parses(raw, want):
    assert parse_copy_source(raw) == want
    assert want.arn == f"arn:aws:s3:::{want.bucket}/{want.key}"


@pytest.mark.parametrize("raw", ["", "/", "b", "b/", "/b/", "?versionId=null", "b?x=/k",
                                 "b/k?versionId=", "b/k?versionid=null", "b/k?partNumber=1",
                                 "b/k?versionId=../x", "b/%ff", "b/k\u0100"])
def test_refuses_what_it_cannot_parse(raw):
    with pytest.raises(errors.InvalidArgument) as exc:
        parse_copy_source(raw)
    assert exc.value.code == "InvalidArgument"
