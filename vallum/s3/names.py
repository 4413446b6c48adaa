"""Bucket-name and object-key validation (AWS general purpose bucket rules).

Kept apart from the router so that only CreateBucket rejects a malformed name
with InvalidBucketName; every other operation on such a name is just a
NoSuchBucket, as on AWS.
"""

from __future__ import annotations

import re

from vallum.s3.errors import InvalidArgument, InvalidBucketName, KeyTooLongError

NULL_VERSION = "null"     # the version id S3 gives objects written while versioning was off

MAX_KEY_BYTES = 1024

_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")
# Prefixes and suffixes AWS reserves for access points, S3 Express, S3 Tables, docs.
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid bucket name, or None when it is."""
    if not 3 <= len(name) <= 63:
        return "Bucket name must be between 3 and 63 characters long"
    if not _BUCKET_CHARS.fullmatch(name):
        return ("Bucket name can consist only of lowercase letters, numbers, dots and "
                "hyphens, and must begin and end with a letter or number")
    if ".." in name:
        return "Bucket name must not contain two adjacent periods"
    if _IP_LIKE.fullmatch(name):
        return "Bucket name must not be formatted as an IP address"
    if name.startswith(_RESERVED_PREFIXES):
        return "Bucket name must not start with a reserved prefix"
    if name.endswith(_RESERVED_SUFFIXES):
        return "Bucket name must not end with a reserved suffix"
    return None


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName unless ``name`` follows the AWS naming rules."""
    problem = bucket_name_problem(name)
    if problem is not None:
        raise InvalidBucketName(f"The specified bucket is not valid. {problem}.",
                                BucketName=name)


def validate_key(key: str) -> None:
    """Raise unless ``key`` is a usable object key (1..1024 UTF-8 bytes).

    An empty key cannot come from a request path (that addresses the bucket),
    only from bodies and headers (DeleteObjects, copy sources, POST forms).
    """
    if key == "":
        raise InvalidArgument("Object key must not be empty", ArgumentName="key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates cannot be stored or listed
        raise InvalidArgument("Object key is not valid UTF-8", ArgumentName="key") from exc
    if size > MAX_KEY_BYTES:
        raise KeyTooLongError(Size=str(size), MaxSizeAllowed=str(MAX_KEY_BYTES))


_VERSION_ID = re.compile(r"[A-Za-z0-9_\-]{32}")


def check_version_id(version_id: str | None, argument: str = "versionId") -> str | None:
    """A version id as sent: None, "null", or one of ours (else InvalidArgument, as S3)."""
    if version_id is None or version_id == NULL_VERSION or _VERSION_ID.fullmatch(version_id):
        return version_id
    raise InvalidArgument("Invalid version id specified", ArgumentName=argument,
                          ArgumentValue=version_id[:128])
