"""Tag sets as S3 sends them: the x-amz-tagging header and S3's limits on keys and values.

Pure parsing, shared by the authorization step (s3:RequestObjectTag keys) and the tagging
handlers, so both read one header the same way.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from vallum.s3 import errors

OBJECT_TAG_LIMIT = 10
BUCKET_TAG_LIMIT = 50
KEY_MAX, VALUE_MAX = 128, 256
# Letters, digits, white space and + - = . _ : / @ (any script), as AWS documents.
_ALLOWED = re.compile(r"[\w\s+\-=._:/@]*")


def validate_tags(pairs: list[tuple[str, str]], limit: int) -> dict[str, str]:
    """Check a tag set against S3's limits; returns it as an ordered dict."""
    if len(pairs) > limit:
        if limit == OBJECT_TAG_LIMIT:
            raise errors.BadRequest(f"Object tags cannot be greater than {limit}")
        raise errors.InvalidTag(f"Bucket tag count cannot be greater than {limit}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise errors.InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key[:KEY_MAX])
        if not key or len(key) > KEY_MAX:
            raise errors.InvalidTag(f"The TagKey you have provided is {'too long' if key else 'empty'}, max {KEY_MAX}",
                                    TagKey=key[:KEY_MAX])
        if len(value) > VALUE_MAX:
            raise errors.InvalidTag(f"The TagValue you have provided is too long, max {VALUE_MAX}",
                                    TagKey=key, TagValue=value[:VALUE_MAX])
        if key.lower().startswith("aws:"):
            raise errors.InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
        if not _ALLOWED.fullmatch(key):
            raise errors.InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if not _ALLOWED.fullmatch(value):
            raise errors.InvalidTag("The TagValue you have provided is invalid", TagKey=key, TagValue=value)
        tags[key] = value
    return tags


def tags_from_header(value: str | None) -> dict[str, str] | None:
    """The x-amz-tagging header ('k1=v1&k2=v2', URL-encoded), validated; None if absent."""
    if value is None:
        return None
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value))
    except ValueError:
        raise errors.InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded "
                                     "URL query parameters without tag name duplicates.",
                                     ArgumentName="x-amz-tagging", ArgumentValue=value[:256]) from None
    return validate_tags(pairs, OBJECT_TAG_LIMIT)
