"""Conditional headers: each branch of the RFC 9110 / S3 precedence rules."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vallum.s3 import errors
from vallum.s3.conditions import (
    check_copy_source_conditions,
    check_delete_conditions,
    check_read_conditions,
    check_write_conditions,
    delete_conditions,
    http_date,
    iso8601,
    parse_http_date,
)

ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
OTHER = '"0cc175b9c0f1b6a831c399e269772661"'
T = 1_255_369_830.25           # 2009-10-12T17:50:30.250Z
AT = http_date(T)              # "Mon, 12 Oct 2009 17:50:30 GMT": same second as T
BEFORE = http_date(T - 60)
AFTER = http_date(T + 60)


def read(**headers):
    return check_read_conditions({k.replace("_", "-"): v for k, v in headers.items()}, ETAG, T)


def raises_412(fn, *args, condition=None, **kw):
    with pytest.raises(errors.PreconditionFailed) as info:
        fn(*args, **kw)
    assert info.value.status == 412
    if condition:
        assert info.value.fields["Condition"] == condition


def raises_304(fn, *args, **kw):
    with pytest.raises(errors.NotModified) as info:
        fn(*args, **kw)
    assert info.value.status == 304
    assert info.value.headers == {"ETag": ETAG, "Last-Modified": AT}


# ---------------------------------------------------------------- reads

def test_no_conditions():
    read()


@pytest.mark.parametrize("value", [
    ETAG, ETAG.strip('"'), "*", f"{OTHER}, {ETAG}", f'{OTHER},{ETAG.strip(chr(34))}', f"  {ETAG}  ",
])
def test_if_match_true(value):
    read(If_Match=value)


@pytest.mark.parametrize("value", [OTHER, f"{OTHER}, \"x\"", f"W/{ETAG}", '""'])
def test_if_match_false(value):
    # W/ never matches: If-Match uses the strong comparison.
    raises_412(read, If_Match=value, condition="If-Match")


def test_if_unmodified_since():
    read(If_Unmodified_Since=AFTER)
    read(If_Unmodified_Since=AT)  # same second: not modified since (one-second precision)
    raises_412(read, If_Unmodified_Since=BEFORE, condition="If-Unmodified-Since")


def test_if_match_true_overrides_if_unmodified_since_false():
    read(If_Match=ETAG, If_Unmodified_Since=BEFORE)


def test_if_match_false_with_if_unmodified_since_true():
    raises_412(read, If_Match=OTHER, If_Unmodified_Since=AFTER, condition="If-Match")


@pytest.mark.parametrize("value", [ETAG, ETAG.strip('"'), f"W/{ETAG}", "*", f"{OTHER}, {ETAG}"])
def test_if_none_match_false_is_304(value):
    raises_304(read, If_None_Match=value)  # weak comparison: W/ matches


def test_if_none_match_true():
    read(If_None_Match=OTHER)
    read(If_None_Match=f"{OTHER}, W/\"abc\"")


def test_if_modified_since():
    read(If_Modified_Since=BEFORE)
    raises_304(read, If_Modified_Since=AT)
    raises_304(read, If_Modified_Since=AFTER)


def test_if_none_match_true_ignores_if_modified_since_false():
    read(If_None_Match=OTHER, If_Modified_Since=AFTER)  # 200, per the S3 docs


def test_if_none_match_false_and_if_modified_since_true_is_304():
    raises_304(read, If_None_Match=ETAG, If_Modified_Since=BEFORE)


def test_412_takes_precedence_over_304():
    raises_412(read, If_Match=OTHER, If_None_Match=ETAG, condition="If-Match")
    raises_412(read, If_Unmodified_Since=BEFORE, If_Modified_Since=AFTER,
               condition="If-Unmodified-Since")
    raises_412(read, If_Unmodified_Since=BEFORE, If_None_Match=ETAG)


@pytest.mark.parametrize("bad", ["yesterday", "2009-10-12T17:50:30Z", "Mon, 32 Oct 2009 17:50:30 GMT",
                                 "Mon, 12 Foo 2009 17:50:30 GMT", "Mon, 12 Oct 2009 25:50:30 GMT"])
def test_invalid_dates_are_ignored(bad):
    read(If_Unmodified_Since=bad)
    read(If_Modified_Since=bad)


def test_header_names_are_case_insensitive_and_blank_is_absent():
    raises_412(check_read_conditions, {"IF-MATCH": OTHER}, ETAG, T)
    raises_304(check_read_conditions, {"if-none-match": ETAG}, ETAG, T)
    check_read_conditions({"If-Match": "  ", "If-None-Match": ""}, ETAG, T)


def test_unquoted_stored_etag():
    check_read_conditions({"If-Match": ETAG}, ETAG.strip('"'), T)
    with pytest.raises(errors.NotModified) as info:
        check_read_conditions({"If-None-Match": ETAG}, ETAG.strip('"'), T)
    assert info.value.headers["ETag"] == ETAG


def test_multipart_etag():
    etag = '"3858f62230ac3c915f300c664312c11f-9"'
    check_read_conditions({"If-Match": etag}, etag, T)
    raises_412(check_read_conditions, {"If-Match": etag.replace("-9", "-8")}, etag, T)


# ---------------------------------------------------------------- copies

def copy(**headers):
    hs = {"x-amz-copy-source-" + k.replace("_", "-"): v for k, v in headers.items()}
    return check_copy_source_conditions(hs, ETAG, T)


def test_copy_source_conditions_hold():
    copy()
    copy(if_match=ETAG)
    copy(if_none_match=OTHER)
    copy(if_modified_since=BEFORE)
    copy(if_unmodified_since=AFTER)


@pytest.mark.parametrize(("header", "value"), [
    ("if_match", OTHER), ("if_none_match", ETAG), ("if_modified_since", AFTER),
    ("if_unmodified_since", BEFORE),
])
def test_copy_source_failures_are_412_never_304(header, value):
    raises_412(copy, **{header: value}, condition="x-amz-copy-source-" + header.replace("_", "-"))


def test_copy_source_precedence_from_the_s3_docs():
    copy(if_match=ETAG, if_unmodified_since=BEFORE)              # copies
    raises_412(copy, if_none_match=ETAG, if_modified_since=BEFORE)  # 412


def test_copy_ignores_plain_conditional_headers():
    check_copy_source_conditions({"If-Match": OTHER, "If-None-Match": ETAG}, ETAG, T)


# ---------------------------------------------------------------- writes

def test_write_without_conditions():
    check_write_conditions({}, None)
    check_write_conditions({}, ETAG)


def test_if_none_match_star():
    check_write_conditions({"If-None-Match": "*"}, None)
    raises_412(check_write_conditions, {"If-None-Match": "*"}, ETAG, condition="If-None-Match")


def test_if_none_match_with_etags_refuses_only_a_matching_object():
    check_write_conditions({"If-None-Match": ETAG}, None)
    check_write_conditions({"If-None-Match": ETAG}, OTHER)
    raises_412(check_write_conditions, {"If-None-Match": ETAG}, ETAG, condition="If-None-Match")
    raises_412(check_write_conditions, {"If-None-Match": f"{OTHER}, W/{ETAG}"}, ETAG,
               condition="If-None-Match")


def test_if_match_on_write():
    check_write_conditions({"If-Match": ETAG}, ETAG)
    check_write_conditions({"If-Match": ETAG.strip('"')}, ETAG)
    check_write_conditions({"If-Match": "*"}, ETAG)
    raises_412(check_write_conditions, {"If-Match": OTHER}, ETAG, condition="If-Match")


@pytest.mark.parametrize("value", [ETAG, "*"])
def test_if_match_on_missing_key_is_no_such_key(value):
    with pytest.raises(errors.NoSuchKey) as info:
        check_write_conditions({"If-Match": value}, None)
    assert info.value.status == 404


# ---------------------------------------------------------------- dates

def test_http_date():
    assert http_date(1_255_369_830) == "Mon, 12 Oct 2009 17:50:30 GMT"
    assert http_date(1_255_369_830.999) == "Mon, 12 Oct 2009 17:50:30 GMT"
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


@pytest.mark.parametrize(("ts", "text"), [
    (1_255_369_830, "2009-10-12T17:50:30.000Z"),
    (1_255_369_830.5, "2009-10-12T17:50:30.500Z"),
    (1.001, "1970-01-01T00:00:01.001Z"),
    (1.9999, "1970-01-01T00:00:01.999Z"),   # truncated, never rounded into the next second
    (0, "1970-01-01T00:00:00.000Z"),
])
def test_iso8601(ts, text):
    assert iso8601(ts) == text


@pytest.mark.parametrize("text", [
    "Sun, 06 Nov 1994 08:49:37 GMT",   # RFC 1123
    "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
    "Sun Nov  6 08:49:37 1994",        # asctime
    "sun, 06 nov 1994 08:49:37 gmt",
])
def test_parse_http_date_formats(text):
    assert parse_http_date(text) == 784_111_777


def test_rfc850_two_digit_year_is_not_far_future():
    """RFC 9110: a two-digit year more than 50 years ahead means the previous century."""
    year = time.gmtime().tm_year

    def parsed_year(yy: int) -> int:
        ts = parse_http_date(f"Monday, 01-Jan-{yy % 100:02d} 00:00:00 GMT")
        return time.gmtime(ts).tm_year

    assert parsed_year(year) == year
    assert parsed_year(year + 10) == year + 10
    assert parsed_year(year + 60) == year - 40


@given(st.floats(min_value=0, max_value=253_402_300_799, allow_nan=False))
def test_http_date_round_trips_to_the_second(ts):
    assert parse_http_date(http_date(ts)) == math.floor(ts)


# ---------------------------------------------------------------- conditional deletes

def test_delete_conditions_parse_and_check():
    assert delete_conditions(None, " ", "") is None
    cond = delete_conditions(ETAG, AT, "5")
    assert cond is not None and cond.last_modified == math.floor(T) and cond.size == 5
    check_delete_conditions(cond, (ETAG, T, 5), "k")
    for current in ((OTHER, T, 5), (ETAG, T + 1, 5), (ETAG, T, 6)):
        raises_412(check_delete_conditions, cond, current, "k")
    with pytest.raises(errors.NoSuchKey):
        check_delete_conditions(cond, None, "k")
    check_delete_conditions(delete_conditions(None, AT, "5"), None, "k")   # no If-Match: passes
    iso = delete_conditions(None, "2009-10-12T17:50:30.250Z", None, in_xml=True)
    assert iso is not None and iso.last_modified == math.floor(T)


@pytest.mark.parametrize("when,size", [("yesterday", None), (None, "-1"), (None, "1e3"),
                                       ("2009-13-12T17:50:30Z", None)],
                         ids=["word-date", "negative", "exponent", "month-13"])
def test_malformed_delete_conditions_are_invalid_argument(when, size):
    with pytest.raises(errors.InvalidArgument):
        delete_conditions(None, when, size)
