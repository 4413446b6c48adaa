"""The x-amz-copy-source header, parsed once for authorization and the handler alike.

Why one parser: the gate once decoded the value before splitting off ``?versionId=``
while the handler split first, so a key starting with ``%3F`` named no object to the
gate (which then let the request through) and another tenant's object to the handler.
Whatever this module cannot parse is refused with InvalidArgument, never passed on.

Form (as AWS documents it): ``[/]bucket/key[?versionId=id]``, the path URL-encoded;
the only query parameter is ``versionId``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from vallum.s3 import errors
from vallum.s3.names import check_version_id

HEADER = "x-amz-copy-source"


@dataclass(frozen=True)
class CopySourceRef:
    """The object a copy reads: bucket, key and (optionally) version, all decoded."""

    bucket: str
    key: str
    version_id: str | None

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.key}"


def _invalid(message: str, raw: str) -> errors.S3Error:
    return errors.InvalidArgument(message, ArgumentName=HEADER, ArgumentValue=raw[:1024])


def _decode(text: str, raw: str) -> str:
    """Percent-decode to UTF-8, strictly (headers arrive as latin-1 views of the bytes)."""
    try:
        return unquote_to_bytes(text.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise _invalid("Copy Source is not valid UTF-8 after URL decoding", raw) from None


def parse_copy_source(raw: str) -> CopySourceRef:
    """The object ``raw`` names; InvalidArgument for anything else."""
    path, _, query = raw.partition("?")
    bucket, _, key = _decode(path, raw).lstrip("/").partition("/")
    if not bucket or not key:
        raise _invalid("Copy Source must mention the source bucket and key: "
                       "sourcebucket/sourcekey", raw)
    version_id = None
    if query:
        name, _, value = query.partition("=")
        if name != "versionId" or not value:
            raise _invalid("Invalid version id specified", raw)
        version_id = _decode(value, raw)
        try:
            check_version_id(version_id, HEADER)
        except errors.InvalidArgument:
            raise _invalid("Invalid version id specified", raw) from None
    return CopySourceRef(bucket, key, version_id)
