"""Classification labels on objects and spill prevention, through boto3."""

from __future__ import annotations

import io
import zipfile

import pytest
from botocore.exceptions import ClientError

HEADER = "x-vallum-classification"


def put_with_label(s3, bucket, key, body, label=None):
    def add(params, **_):
        if label is not None:
            params["headers"][HEADER] = label

    s3.meta.events.register_first("before-call.s3.PutObject", add)
    try:
        return s3.put_object(Bucket=bucket, Key=key, Body=body)
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", add)


def code_of(exc) -> str:
    return exc.value.response["Error"]["Code"]


def test_label_round_trip_canonical(s3, bucket):
    put_with_label(s3, bucket, "a", b"hello", "secret//tk/si//rel to usa,gbr")
    head = s3.head_object(Bucket=bucket, Key="a")
    assert head["ResponseMetadata"]["HTTPHeaders"][HEADER] == "SECRET//SI/TK//REL TO USA, GBR"
    get = s3.get_object(Bucket=bucket, Key="a")
    assert get["ResponseMetadata"]["HTTPHeaders"][HEADER] == "SECRET//SI/TK//REL TO USA, GBR"
    assert get["Body"].read() == b"hello"


def test_default_label_is_lowest(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="plain")["ResponseMetadata"]["HTTPHeaders"][HEADER] == "UNCLASSIFIED"


@pytest.mark.parametrize("bad", ["SEKRET", "SECRET//REL TO GBR", "SECRET//", "SECRET//SI/NF"])
def test_malformed_label_is_invalid_argument(s3, bucket, bad):
    with pytest.raises(ClientError) as exc:
        put_with_label(s3, bucket, "bad", b"x", bad)
    assert code_of(exc) == "InvalidArgument"
    assert "label" in exc.value.response["Error"]["Message"].lower()


@pytest.mark.parametrize("body", [
    b"TOP SECRET//SI//NOFORN\nThe plan.\n",
    b"(U) Intro\n(TS//SI) hidden paragraph\n",
    b"x" * 70_000 + b"\nSECRET//NOFORN\n" + b"y" * 200_000,        # large: streamed to a blob
])
def test_spill_is_refused(s3, bucket, body):
    with pytest.raises(ClientError) as exc:
        put_with_label(s3, bucket, "spill", body, "CONFIDENTIAL")
    assert code_of(exc) == "SpillDetected"
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="spill")
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_marked_content_within_label_is_accepted(s3, bucket):
    put_with_label(s3, bucket, "ok", b"SECRET//NOFORN\n(S//NF) text\n", "SECRET//NOFORN")
    assert s3.get_object(Bucket=bucket, Key="ok")["Body"].read().startswith(b"SECRET")


def test_spill_in_office_document(s3, bucket):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"<w:p><w:t>SECRET//NOFORN</w:t></w:p>")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="doc.docx", Body=buf.getvalue())
    assert code_of(exc) == "SpillDetected"
