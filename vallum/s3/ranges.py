"""The ``Range`` request header of GetObject/HeadObject (RFC 9110 section 14).

S3 serves a single byte range. Like AWS, a header it cannot use (bad syntax,
another unit, several ranges) is ignored and the whole object is served; only
a well-formed range that selects no byte is answered with 416 InvalidRange.
"""

from __future__ import annotations

import re

from vallum.s3.errors import InvalidRange, S3Error

_SPEC = re.compile(r"(?:([0-9]+)-([0-9]*)|-([0-9]+))")  # ASCII digits only
_PAST_ANY_SIZE = 10 ** 20   # bigger than any object; stands in for longer numbers


def _position(digits: str) -> int:
    """A byte position; numbers of more than 20 digits (int() refuses past 4300) are capped."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 20 else _PAST_ANY_SIZE


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte positions, inclusive, or None to serve the whole object.

    Raises InvalidRange when the range is well-formed but unsatisfiable for an
    object of ``size`` bytes (first byte at or past the end, ``-0``, or any
    range on an empty object).
    """
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spec = spec.strip()
    if "," in spec:  # multiple ranges: AWS does not support them, serves the whole object
        return None
    m = _SPEC.fullmatch(spec)
    if m is None:
        return None
    first_s, last_s, suffix_s = m.groups()
    if suffix_s is not None:
        suffix = _position(suffix_s)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - suffix), size - 1
    first = _position(first_s)
    if last_s:
        last = _position(last_s)
        if last < first:  # syntactically invalid per RFC 9110: ignore the header
            return None
    else:
        last = size - 1
    if first >= size:
        raise _unsatisfiable(header, size)
    return first, min(last, size - 1)


def content_range(start: int, end: int, size: int) -> str:
    """The Content-Range value of a 206 answer for bytes start..end inclusive."""
    return f"bytes {start}-{end}/{size}"


def _unsatisfiable(header: str, size: int) -> S3Error:
    # AWS adds RangeRequested and ActualObjectSize to the error document, and
    # RFC 9110 asks for "Content-Range: bytes */size" on a 416.
    return InvalidRange(headers={"Content-Range": f"bytes */{size}"},
                        RangeRequested=header, ActualObjectSize=str(size))
