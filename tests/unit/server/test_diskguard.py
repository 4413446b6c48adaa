"""Which requests the disk reserve stops (server/diskguard.py), and JSON log lines."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from vallum.server.diskguard import is_write
from vallum.server.logs import JsonFormatter

ROUTER = Path(__file__).resolve().parents[3] / "vallum" / "s3" / "router.py"
OPERATIONS = sorted(set(re.findall(r'"([A-Z][A-Za-z]+)"', ROUTER.read_text()))
                    - {"GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS"})

FREES_OR_READS = {"DeleteObject", "DeleteObjects", "DeleteBucket", "AbortMultipartUpload",
                  "GetObject", "HeadObject", "ListObjectVersions", "SelectObjectContent",
                  "OptionsObject"}
ADDS = {"PutObject", "UploadPart", "UploadPartCopy", "CopyObject", "CompleteMultipartUpload",
        "CreateMultipartUpload", "CreateBucket", "PostObject", "PutObjectTagging",
        "PutBucketPolicy", "RestoreObject", "RenameObject", "WriteGetObjectResponse"}


def test_the_router_has_the_operations_this_test_names():
    assert FREES_OR_READS | ADDS <= set(OPERATIONS)


@pytest.mark.parametrize("name", sorted(FREES_OR_READS))
def test_reads_and_deletes_go_on_inside_the_reserve(name):
    assert not is_write(name)


@pytest.mark.parametrize("name", sorted(ADDS))
def test_anything_that_adds_is_a_write(name):
    assert is_write(name)


def test_every_operation_is_a_read_a_delete_or_a_write():
    """By name: Get/Head/List/Delete and a short list pass; everything else, including
    operations added later, is refused inside the reserve (fail closed)."""
    passing = [n for n in OPERATIONS if not is_write(n)]
    assert all(n.startswith(("Get", "Head", "List", "Delete")) or n in FREES_OR_READS | {"CreateSession"}
               for n in passing)
    assert is_write("SomeFutureOperation")


def test_json_log_line_has_the_fields_and_extras():
    record = logging.LogRecord("vallum.disk", logging.WARNING, __file__, 1, "refused %s", ("PutObject",), None)
    record.request_id = "ABC"
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "warning" and doc["logger"] == "vallum.disk"
    assert doc["message"] == "refused PutObject" and doc["request_id"] == "ABC"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"])


def test_json_log_line_carries_the_exception_on_one_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys
        record = logging.LogRecord("vallum", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "boom" in json.loads(line)["exception"]
