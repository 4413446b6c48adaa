"""Conditional request headers (RFC 9110 section 13 / RFC 7232) as S3 applies them.

Reads (GetObject, HeadObject) follow the RFC evaluation order, which is what
the S3 docs describe: a true If-Match makes If-Unmodified-Since irrelevant,
and a present If-None-Match makes If-Modified-Since irrelevant. Copies use the
x-amz-copy-source-if-* twins, where every failure is a 412. Writes (PutObject,
CompleteMultipartUpload) accept If-None-Match (* or ETags) and If-Match.

Also the two timestamp formats S3 puts on the wire. Pure functions: callers
pass the object's current ETag and modification time.
"""

from __future__ import annotations

import calendar
import email.utils
import functools
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from vallum.s3.errors import (
    InvalidArgument,
    NoSuchKey,
    NotModified,
    PreconditionFailed,
)

# ---------------------------------------------------------------- timestamps

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_MON = r"([a-z]{3})"
# Sun, 06 Nov 1994 08:49:37 GMT  (RFC 1123, the preferred IMF-fixdate)
_RFC1123 = re.compile(rf"[a-z]{{3}}, ([0-9]{{1,2}}) {_MON} ([0-9]{{4}}) {_TIME} (?:gmt|utc)", re.I)
# Sunday, 06-Nov-94 08:49:37 GMT  (obsolete RFC 850)
_RFC850 = re.compile(rf"[a-z]{{6,9}}, ([0-9]{{2}})-{_MON}-([0-9]{{2}}) {_TIME} gmt", re.I)
# Sun Nov  6 08:49:37 1994  (ANSI C asctime)
_ASCTIME = re.compile(rf"[a-z]{{3}} {_MON} +([0-9]{{1,2}}) {_TIME} ([0-9]{{4}})", re.I)


def http_date(ts: float) -> str:
    """RFC 1123 date in GMT (Last-Modified, Date), truncated to the second."""
    return _http_date_of_second(math.floor(ts))


@functools.lru_cache(maxsize=4096)   # objects written in the same second share it
def _http_date_of_second(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def iso8601(ts: float) -> str:
    """'2009-10-12T17:50:30.000Z', the form S3 uses in XML bodies (millisecond precision)."""
    millis = math.floor(round(ts * 1000, 3))  # round first so 1.001 does not become 1.000
    secs, ms = divmod(millis, 1000)
    return f"{_iso_second(secs)}.{ms:03d}Z"


@functools.lru_cache(maxsize=4096)   # a listing page's objects share few distinct seconds
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch for an HTTP date in any of the three RFC forms, else None."""
    value = value.strip()
    if m := _RFC1123.fullmatch(value):
        day, mon, year, hh, mm, ss = m.groups()
    elif m := _ASCTIME.fullmatch(value):
        mon, day, hh, mm, ss, year = m.groups()
    elif m := _RFC850.fullmatch(value):
        day, mon, yy, hh, mm, ss = m.groups()
        # RFC 9110: a two-digit year more than 50 years ahead is in the past century.
        this_year = time.gmtime().tm_year
        year_n = this_year - this_year % 100 + int(yy)
        if year_n > this_year + 50:
            year_n -= 100
        year = str(year_n)
    else:
        return None
    month = _MONTHS.get(mon.lower())
    if month is None:
        return None
    fields = (int(year), month, int(day), int(hh), int(mm), int(ss))
    if not (fields[0] >= 1 and 1 <= fields[2] <= calendar.monthrange(fields[0], month)[1]
            and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
        return None
    return calendar.timegm((*fields, 0, 0, 0))


# ---------------------------------------------------------------- entity tags

def _opaque(etag: str) -> str:
    """The ETag without W/ and quotes, so '"abc"', 'abc' and 'W/"abc"' compare equal."""
    etag = etag.strip()
    if etag[:2] in ("W/", "w/"):
        etag = etag[2:]
    if len(etag) >= 2 and etag[0] == etag[-1] == '"':
        etag = etag[1:-1]
    return etag


def _tags(value: str) -> list[tuple[bool, str]] | None:
    """Parse '"a", W/"b", c' into [(weak, opaque), ...]; None means '*'."""
    if value.strip() == "*":
        return None
    tags: list[tuple[bool, str]] = []
    for m in re.finditer(r'\s*(W/)?("[^"]*"|[^,]*)\s*(?:,|$)', value, re.I):
        if m.group(0).strip(", \t") == "":
            continue
        tags.append((m.group(1) is not None, _opaque(m.group(2))))
    return tags


def _matches(value: str, etag: str, *, weak: bool) -> bool:
    """Does the header list match ``etag``? Strong comparison unless ``weak``."""
    tags = _tags(value)
    if tags is None:
        return True  # '*' matches any current representation
    current = _opaque(etag)
    return any(opaque == current and (weak or not is_weak) for is_weak, opaque in tags)


# ---------------------------------------------------------------- evaluation

def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names case-folded; blank values count as absent."""
    return {k.lower(): v for k, v in headers.items() if v is not None and v.strip()}


def _failed(h: dict[str, str], prefix: str, etag: str, last_modified: float) -> tuple[str, str] | None:
    """Which precondition fails first, as ('412'|'304', header name), or None.

    RFC 9110 section 13.2.2 order: If-Match, else If-Unmodified-Since; then
    If-None-Match, else If-Modified-Since. Dates compare at one-second
    precision because HTTP dates carry no fractions; invalid dates are ignored.
    """
    modified = math.floor(last_modified)
    if (v := h.get(prefix + "if-match")) is not None:
        if not _matches(v, etag, weak=False):
            return "412", prefix + "if-match"
    elif (v := h.get(prefix + "if-unmodified-since")) is not None:
        since = parse_http_date(v)
        if since is not None and modified > since:
            return "412", prefix + "if-unmodified-since"
    if (v := h.get(prefix + "if-none-match")) is not None:
        if _matches(v, etag, weak=True):
            return "304", prefix + "if-none-match"
    elif (v := h.get(prefix + "if-modified-since")) is not None:
        since = parse_http_date(v)
        if since is not None and modified <= since:
            return "304", prefix + "if-modified-since"
    return None


def check_read_conditions(headers: Mapping[str, str], etag: str, last_modified: float) -> None:
    """Raise PreconditionFailed (412) or NotModified (304) for a GET/HEAD of an object."""
    failure = _failed(_lower(headers), "", etag, last_modified)
    if failure is None:
        return
    status, header = failure
    if status == "412":
        raise PreconditionFailed(Condition=_title(header))
    raise NotModified(headers={"ETag": f'"{_opaque(etag)}"',
                               "Last-Modified": http_date(last_modified)})


def check_copy_source_conditions(headers: Mapping[str, str], etag: str,
                                 last_modified: float) -> None:
    """Raise PreconditionFailed when an x-amz-copy-source-if-* header does not hold.

    CopyObject and UploadPartCopy never answer 304: a copy whose source was not
    modified is still a failed precondition.
    """
    failure = _failed(_lower(headers), "x-amz-copy-source-", etag, last_modified)
    if failure is not None:
        raise PreconditionFailed(Condition=failure[1])


def check_write_conditions(headers: Mapping[str, str], existing_etag: str | None) -> None:
    """Conditional writes on PutObject / CompleteMultipartUpload (and copies' destination).

    ``existing_etag`` is the current version's ETag, or None when the key has
    no current object (absent, or a delete marker).
    - If-Match: 412 when the ETag differs; 404 NoSuchKey when there is no object.
    - If-None-Match: '*': 412 when an object exists; an ETag list (an extension, as
      Ceph's; AWS answers 501): 412 when the current object has one of them, so
      "replace unless it is already this content" is one request.
    """
    h = _lower(headers)
    if (v := h.get("if-match")) is not None:
        if existing_etag is None:
            raise NoSuchKey()
        if not _matches(v, existing_etag, weak=False):
            raise PreconditionFailed(Condition="If-Match")
    if (v := h.get("if-none-match")) is not None and existing_etag is not None \
            and _matches(v, existing_etag, weak=True):
        raise PreconditionFailed(Condition="If-None-Match")


def _title(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-"))


# ---------------------------------------------------------------- conditional deletes

@dataclass(frozen=True)
class DeleteConditions:
    """If-Match, x-amz-if-match-last-modified-time and x-amz-if-match-size of a
    DeleteObject (or ETag, LastModifiedTime and Size of one DeleteObjects entry)."""

    etag: str | None = None
    last_modified: int | None = None      # seconds since the epoch
    size: int | None = None


def delete_conditions(etag: str | None, last_modified: str | None, size: str | None, *,
                      in_xml: bool = False) -> DeleteConditions | None:
    """Parse the conditions of a delete; None when none is given. A malformed date or
    size is an InvalidArgument (never ignored: the caller relies on the condition).
    Dates may be HTTP dates or ISO 8601. ``in_xml``: name the DeleteObjects elements in errors."""
    etag = etag.strip() if etag is not None and etag.strip() else None
    when = last_modified.strip() if last_modified is not None and last_modified.strip() else None
    count = size.strip() if size is not None and size.strip() else None
    if etag is None and when is None and count is None:
        return None
    seconds = None
    if when is not None:
        seconds = parse_http_date(when)       # what the SDKs send, in headers and XML
        if seconds is None:
            seconds = parse_iso8601(when)
        if seconds is None:
            raise InvalidArgument("Invalid last modified time", ArgumentName="LastModifiedTime"
                                  if in_xml else "x-amz-if-match-last-modified-time",
                                  ArgumentValue=when[:64])
    number = None
    if count is not None:
        if not count.isdigit() or len(count) > 20:
            raise InvalidArgument("Invalid size", ArgumentName="Size" if in_xml
                                  else "x-amz-if-match-size", ArgumentValue=count[:32])
        number = int(count)
    return DeleteConditions(etag, seconds, number)


def check_delete_conditions(cond: DeleteConditions, current: tuple[str, float, int] | None,
                            key: str) -> None:
    """Raise unless the delete may go ahead on ``current`` = (etag, last modified, size)
    of the object's current version as the caller sees it (None: absent, a delete
    marker, or above the caller's level). AWS: an If-Match on an absent object is
    404 NoSuchKey; a mismatch is 412; the date and size alone pass on an absent one."""
    if current is None:
        if cond.etag is not None:
            raise NoSuchKey(Key=key)
        return
    etag, modified, size = current
    if cond.etag is not None and not _matches(cond.etag, etag, weak=False):
        raise PreconditionFailed(Condition="If-Match")
    if cond.last_modified is not None and math.floor(modified) != cond.last_modified:
        raise PreconditionFailed(Condition="x-amz-if-match-last-modified-time")
    if cond.size is not None and size != cond.size:
        raise PreconditionFailed(Condition="x-amz-if-match-size")


_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                  r"(?:\.[0-9]+)?(Z|[+-][0-9]{2}:?[0-9]{2})", re.I)


def parse_iso8601(value: str) -> int | None:
    """Seconds since the epoch (fractions dropped) for an ISO 8601 timestamp, else None."""
    m = _ISO.fullmatch(value.strip())
    if m is None:
        return None
    year, month, day, hh, mm, ss = (int(g) for g in m.groups()[:6])
    zone = m.group(7).upper()
    offset = 0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (
        int(zone[1:3]) * 3600 + int(zone[-2:]) * 60)
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
            and hh < 24 and mm < 60 and ss < 61):
        return None
    return calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0)) - offset
