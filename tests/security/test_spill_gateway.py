"""Spill prevention at the gateway, through boto3 against the real server: markings in
key names, metadata and tags; a banner or a compressed stream split across multipart
parts; refusals audited with the spill rule; ordinary files accepted (issue 13, High 3)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import code, start_server, stop_server
from vallum.cli.admin import AdminClient

PART = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("spill") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def s3(srv):
    client = srv.client()
    client.create_bucket(Bucket="spill")
    return client


def refused(call) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call()
    assert code(exc) == "SpillDetected"
    return exc.value


def missing(s3, key: str) -> bool:
    try:
        s3.head_object(Bucket="spill", Key=key)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("404", "NoSuchKey")
    return False


def test_ordinary_files_are_accepted(s3):
    for key, body in [("notice.txt", b"Copyright (C) 2024 Example Corp\nAll rights reserved.\n"),
                      ("labs.txt", b"SECRET LABS AB AND THE AUTHOR DISCLAIMS ALL WARRANTIES\n"),
                      ("it.txt", "La casa in cui vivo è vecchia.\n".encode()),
                      ("cat.csv", b"id,category\n1,CUI\n2,CUI\n")]:
        s3.put_object(Bucket="spill", Key=key, Body=body)


def test_compressed_and_encoded_bodies_are_refused(s3):
    memo = b"TOP SECRET//SI//NOFORN\nThe plan.\nTOP SECRET//SI//NOFORN\n"
    for key, body in [("memo.gz", gzip.compress(memo)), ("memo.u16", memo.decode().encode("utf-16")),
                      ("memo.nul", b"\x00" + memo)]:
        refused(lambda: s3.put_object(Bucket="spill", Key=key, Body=body))
        assert missing(s3, key)


@pytest.mark.parametrize("where", ["key", "metadata", "metadata-name", "tagging"])
def test_markings_around_the_body_are_refused(s3, where):
    kwargs = {"Bucket": "spill", "Key": "plain.txt", "Body": b"nothing to see\n"}
    if where == "key":
        kwargs["Key"] = "reports/SECRET//NOFORN/plan.txt"
    elif where == "metadata":
        kwargs["Metadata"] = {"banner": "TOP SECRET//SI"}
    elif where == "metadata-name":
        kwargs["Metadata"] = {"x": "(S//NF) source list"}
    else:
        kwargs["Tagging"] = "class=SECRET%2F%2FNOFORN"
    refused(lambda: s3.put_object(**kwargs))
    refused(lambda: s3.create_multipart_upload(**{k: v for k, v in kwargs.items() if k != "Body"}))


@pytest.mark.parametrize("header, value", [
    ("ContentDisposition", 'attachment; filename="TOP SECRET"'), ("CacheControl", "max-age=60, SECRET//NOFORN"),
    ("ContentType", 'text/plain; x-note="TS//NF"'), ("ContentLanguage", "TOP SECRET"),
    ("ContentEncoding", "TS//SI//NF")])
def test_markings_in_standard_headers_are_refused(s3, header, value):
    """Standard headers are stored and returned like user metadata: scanned like it."""
    key = f"headers-{header}.txt"
    kwargs = {"Bucket": "spill", "Key": key, header: value}
    refused(lambda: s3.put_object(Body=b"nothing to see\n", **kwargs))
    refused(lambda: s3.create_multipart_upload(**kwargs))
    s3.put_object(Bucket="spill", Key="hsrc.txt", Body=b"plain\n")
    refused(lambda: s3.copy_object(CopySource={"Bucket": "spill", "Key": "hsrc.txt"}, MetadataDirective="REPLACE",
                                   **kwargs))
    assert missing(s3, key)
    s3.put_object(Bucket="spill", Key=key, Body=b"plain\n", ContentDisposition='attachment; filename="a.pdf"',
                  CacheControl="max-age=60, no-transform", ContentType="text/plain; charset=utf-8",
                  ContentLanguage="en-GB", Expires="Wed, 21 Oct 2037 07:28:00 GMT")


def test_marked_tags_on_an_existing_object_are_refused(s3):
    s3.put_object(Bucket="spill", Key="tagged.txt", Body=b"plain\n")
    refused(lambda: s3.put_object_tagging(Bucket="spill", Key="tagged.txt", Tagging={
        "TagSet": [{"Key": "c", "Value": "SECRET//NOFORN"}]}))
    assert s3.get_object_tagging(Bucket="spill", Key="tagged.txt")["TagSet"] == []


def test_copy_with_marked_name_metadata_or_tags_is_refused(s3):
    s3.put_object(Bucket="spill", Key="src.txt", Body=b"plain\n")
    src = {"Bucket": "spill", "Key": "src.txt"}
    refused(lambda: s3.copy_object(Bucket="spill", Key="CUI/copy.txt", CopySource=src))
    refused(lambda: s3.copy_object(Bucket="spill", Key="copy.txt", CopySource=src, MetadataDirective="REPLACE",
                                   Metadata={"banner": "SECRET//NOFORN"}))
    refused(lambda: s3.copy_object(Bucket="spill", Key="copy.txt", CopySource=src, TaggingDirective="REPLACE",
                                   Tagging="c=TOP%20SECRET%2F%2FSI"))
    assert missing(s3, "copy.txt") and missing(s3, "CUI/copy.txt")


def _multipart(s3, key: str, parts: list[bytes]):
    up = s3.create_multipart_upload(Bucket="spill", Key=key)["UploadId"]
    done = []
    for n, body in enumerate(parts, 1):          # each part alone carries no marking
        etag = s3.upload_part(Bucket="spill", Key=key, UploadId=up, PartNumber=n, Body=body)["ETag"]
        done.append({"PartNumber": n, "ETag": etag})
    return lambda: s3.complete_multipart_upload(Bucket="spill", Key=key, UploadId=up,
                                                MultipartUpload={"Parts": done})


def test_banner_split_across_parts_is_refused_at_complete(s3):
    filler = (b"ordinary words on an ordinary line\n" * (PART // 35 + 2))[:PART - 8]
    complete = _multipart(s3, "split.txt", [filler + b"\nTOP SEC", b"RET//SI//NOFORN\nThe plan.\n"])
    refused(complete)
    assert missing(s3, "split.txt")


def test_compressed_stream_across_parts_is_refused_at_complete(s3):
    words = b"Plain words of the report. " * 200       # compressible: the marking is Huffman-coded
    body = gzip.compress(os.urandom(PART + 4096) + words + b"\nSECRET//NOFORN\n" + words, 1)
    assert b"SECRET" not in body
    complete = _multipart(s3, "split.gz", [body[:PART], body[PART:]])
    refused(complete)
    assert missing(s3, "split.gz")


def test_base64_run_across_parts_is_read_whole_at_complete(s3):
    """Why Complete re-reads the whole object rather than a window around each boundary:
    a base64 run that spans parts is read aligned only from its start, so part 2 alone
    decodes to noise, and the marking lies 100 KB past the boundary, outside any window."""
    words = b"ordinary words on an ordinary line\n"
    at = (PART + 100_000 - 6) * 3 // 4
    text = (words * (at // len(words) + 1))[:at] + b"\nTOP SECRET//NOFORN\n" + words * 9000
    body = b'{"d":"' + base64.b64encode(text) + b'"}'
    assert (PART - 6) % 4                       # part 2 starts inside a base64 quantum
    complete = _multipart(s3, "split.json", [body[:PART], body[PART:]])
    refused(complete)
    assert missing(s3, "split.json")


def test_ordinary_multipart_completes(s3):
    filler = (b"ordinary words on an ordinary line\n" * (PART // 35 + 2))[:PART]
    _multipart(s3, "ok.txt", [filler, b"Copyright (C) 2024 Example Corp\n"])()
    assert s3.head_object(Bucket="spill", Key="ok.txt")["ContentLength"] == PART + 32


def test_refusal_is_audited_as_deny_with_the_spill_rule(srv, s3):
    err = refused(lambda: s3.put_object(Bucket="spill", Key="audited.txt", Body=b"SECRET//NOFORN\nx\n"))
    rid = err.response["ResponseMetadata"]["RequestId"]
    out = subprocess.run([sys.executable, "-m", "vallum", "audit", "export", "--data-dir", str(srv.data_dir),
                          "--bucket", "spill"], capture_output=True, text=True, check=True)
    rec = next(json.loads(x) for x in out.stdout.splitlines() if json.loads(x).get("request_id") == rid)
    assert rec["decision"] == "deny"
    assert rec["rule"].startswith("spill: content marked SECRET//NOFORN")


# --- a bucket's spill mode: refuse (default), quarantine, audit-only --------------------
def _bucket_with_mode(s3, name: str, mode: str) -> None:
    """Create ``name`` with spill mode ``mode`` once (tests of a mode may run in any order)."""
    if any(b["Name"] == name for b in s3.list_buckets()["Buckets"]):
        return

    def add(params, **_):
        params["headers"]["x-vallum-spill-mode"] = mode

    s3.meta.events.register_first("before-call.s3.CreateBucket", add)
    try:
        s3.create_bucket(Bucket=name)
    finally:
        s3.meta.events.unregister("before-call.s3.CreateBucket", add)


def _label(s3, bucket: str, key: str) -> str:
    return s3.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"]["x-vallum-classification"]


def _audit(srv, bucket: str, rid: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "vallum", "audit", "export", "--data-dir", str(srv.data_dir),
                          "--bucket", bucket], capture_output=True, text=True, check=True)
    return next(json.loads(x) for x in out.stdout.splitlines() if json.loads(x).get("request_id") == rid)


def test_quarantine_stores_the_spill_at_the_marked_level(srv, s3):
    _bucket_with_mode(s3, "quarantine", "quarantine")
    put = s3.put_object(Bucket="quarantine", Key="memo.gz", Body=gzip.compress(b"SECRET//NOFORN\nThe plan.\n"))
    assert _label(s3, "quarantine", "memo.gz") == "SECRET//NOFORN"       # only SECRET//NOFORN readers
    rec = _audit(srv, "quarantine", put["ResponseMetadata"]["RequestId"])
    assert rec["rule"].startswith("spill: quarantined at SECRET//NOFORN") and rec["label"] == "SECRET//NOFORN"
    s3.put_object(Bucket="quarantine", Key="plain.txt", Body=b"Copyright (C) 2024 Example Corp\n")
    assert _label(s3, "quarantine", "plain.txt") == "UNCLASSIFIED"
    s3.put_object(Bucket="quarantine", Key="meta.txt", Body=b"x", Metadata={"c": "TOP SECRET//SI"})
    assert _label(s3, "quarantine", "meta.txt") == "TOP SECRET//SI"


def test_quarantine_labels_a_multipart_spill_at_complete(s3):
    _bucket_with_mode(s3, "quarantine", "quarantine")
    filler = (b"ordinary words on an ordinary line\n" * (PART // 35 + 2))[:PART - 8]
    up = s3.create_multipart_upload(Bucket="quarantine", Key="split.txt")["UploadId"]
    parts = []
    for n, body in enumerate([filler + b"\nTOP SEC", b"RET//SI//NOFORN\nThe plan.\n"], 1):
        etag = s3.upload_part(Bucket="quarantine", Key="split.txt", UploadId=up, PartNumber=n, Body=body)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    s3.complete_multipart_upload(Bucket="quarantine", Key="split.txt", UploadId=up,
                                 MultipartUpload={"Parts": parts})
    assert _label(s3, "quarantine", "split.txt") == "TOP SECRET//SI//NOFORN"


def test_audit_only_stores_as_labelled_and_audits_the_spill(srv, s3):
    _bucket_with_mode(s3, "audit-only", "audit")                # the platform root may
    put = s3.put_object(Bucket="audit-only", Key="memo.txt", Body=b"SECRET//NOFORN\nThe plan.\n")
    assert _label(s3, "audit-only", "memo.txt") == "UNCLASSIFIED"
    rec = _audit(srv, "audit-only", put["ResponseMetadata"]["RequestId"])
    assert rec["rule"].startswith("spill: audit-only: content marked SECRET//NOFORN")


def test_unknown_spill_mode_is_invalid(s3):
    with pytest.raises(ClientError) as exc:
        _bucket_with_mode(s3, "bad-mode", "ignore")
    assert code(exc) == "InvalidArgument"


def test_only_the_platform_root_creates_audit_only_buckets(srv):
    root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
    key = root.call("CreateAccount", name="spill-admin")["admin_key"]
    admin = boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id=key["access_key_id"],
                         aws_secret_access_key=key["secret_access_key"], region_name=srv.region,
                         config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as exc:          # a tenant cannot declassify its spills
        _bucket_with_mode(admin, "tenant-audit-only", "audit")
    assert code(exc) == "AccessDenied"
    _bucket_with_mode(admin, "tenant-quarantine", "quarantine")
