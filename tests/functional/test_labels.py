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


def test_spill_scan_switch_for_benchmarks_turns_the_scan_off(tmp_path):
    """`make bench` prices the scan as a server with VALLUM_SPILL_SCAN=off against one with
    it on: the switch must really switch it off (and labels and MAC stay on)."""
    from tests.support.server import start_server, stop_server
    srv = start_server(tmp_path / "data", env={"VALLUM_SPILL_SCAN": "off"})
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="noscan")
        put_with_label(s3, "noscan", "marked", b"TOP SECRET//SI//NOFORN\nThe plan.\n", "CONFIDENTIAL")
        head = s3.head_object(Bucket="noscan", Key="marked")
        assert head["ResponseMetadata"]["HTTPHeaders"][HEADER] == "CONFIDENTIAL"
        with pytest.raises(ClientError) as exc:     # MAC still applies: no such level
            put_with_label(s3, "noscan", "bad", b"x", "SEKRET")
        assert code_of(exc) == "InvalidArgument"
    finally:
        stop_server(srv)
