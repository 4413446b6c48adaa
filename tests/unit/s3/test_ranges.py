"""Range header parsing, checked by example and against a byte-set model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vallum.s3 import errors
from vallum.s3.ranges import content_range, parse_range


@pytest.mark.parametrize(("header", "size", "expected"), [
    ("bytes=0-499", 2000, (0, 499)),
    ("bytes=500-", 2000, (500, 1999)),
    ("bytes=-500", 2000, (1500, 1999)),
    ("bytes=0-", 2000, (0, 1999)),
    ("bytes=0-0", 1, (0, 0)),
    ("bytes=1990-3000", 2000, (1990, 1999)),  # end clamped to the last byte
    ("bytes=-5000", 2000, (0, 1999)),          # suffix longer than the object
    ("bytes=1999-1999", 2000, (1999, 1999)),
    ("Bytes=1-2", 10, (1, 2)),                 # the unit is case-insensitive
    (" bytes = 1-2 ", 10, (1, 2)),
])
def test_satisfiable(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", [
    "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-a", "bytes=--1", "bytes=1--2",
    "bytes=5-2",                 # last < first: syntactically invalid, ignored
    "bytes=0-1,5-6",             # multiple ranges: not supported by S3, whole object
    "bytes=0-1, 3-",
    "items=0-1", "0-1", "bytes=+1-2", "bytes=1-+2", "bytes=0x1-2", "bytes=1.5-2",
    "bytes=١-٢",                 # non-ASCII digits
])
def test_ignored(header):
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(("header", "size"), [
    ("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=500-", 10),
    ("bytes=-0", 100),           # empty suffix
    ("bytes=0-", 0), ("bytes=0-0", 0), ("bytes=-1", 0),  # any range of an empty object
])
def test_unsatisfiable(header, size):
    with pytest.raises(errors.InvalidRange) as info:
        parse_range(header, size)
    err = info.value
    assert err.status == 416
    assert err.headers["Content-Range"] == f"bytes */{size}"
    assert err.fields == {"RangeRequested": header, "ActualObjectSize": str(size)}


def test_content_range():
    assert content_range(0, 499, 2000) == "bytes 0-499/2000"
    assert content_range(1999, 1999, 2000) == "bytes 1999-1999/2000"


# ---------------------------------------------------------------- model

def model(kind: str, a: int, b: int, size: int):
    """The bytes a range selects, as a set; 'ignore' or 'unsatisfiable' otherwise."""
    if kind == "first-last":
        if b < a:
            return "ignore"
        chosen = {i for i in range(size) if a <= i <= b}
    elif kind == "first-":
        chosen = {i for i in range(size) if i >= a}
    else:  # suffix: the last a bytes
        chosen = set(range(size)[-a:]) if a else set()
    return chosen or "unsatisfiable"


specs = st.tuples(st.sampled_from(["first-last", "first-", "suffix"]),
                  st.integers(0, 300), st.integers(0, 300))


def render(kind: str, a: int, b: int) -> str:
    return {"first-last": f"bytes={a}-{b}", "first-": f"bytes={a}-", "suffix": f"bytes=-{a}"}[kind]


@given(specs, st.integers(0, 200))
def test_matches_model(spec, size):
    kind, a, b = spec
    expected = model(kind, a, b, size)
    header = render(kind, a, b)
    if expected == "unsatisfiable":
        with pytest.raises(errors.InvalidRange):
            parse_range(header, size)
        return
    got = parse_range(header, size)
    if expected == "ignore":
        assert got is None
        return
    assert got is not None
    start, end = got
    assert set(range(start, end + 1)) == expected
    assert content_range(start, end, size) == f"bytes {min(expected)}-{max(expected)}/{size}"


@given(st.text(max_size=30), st.integers(0, 1000))
def test_arbitrary_headers_never_crash(header, size):
    try:
        got = parse_range(header, size)
    except errors.InvalidRange:
        return
    if got is not None:
        start, end = got
        assert 0 <= start <= end < size


@given(st.lists(specs, min_size=2, max_size=4), st.integers(0, 200))
def test_multiple_ranges_are_ignored(parts, size):
    header = "bytes=" + ",".join(render(*p).removeprefix("bytes=") for p in parts)
    assert parse_range(header, size) is None
