"""The streaming multipart/form-data parser (s3/formdata.py): any split of a body gives the
same parts, bodies built by a real encoder parse back to what was encoded, content is never
held beyond a delimiter's length, and garbage only ever raises FormError."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3 import encode_multipart_formdata

from vallum.s3.formdata import END, FormError, FormReader, FormTooLarge, Parser, Part, boundary_of

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOUNDARY = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"


def encode(parts: list[tuple[str, bytes]], boundary: bytes = BOUNDARY) -> bytes:
    out = b""
    for name, value in parts:
        out += (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name.encode()
                + b"\"\r\n\r\n" + value + b"\r\n")
    return out + b"--" + boundary + b"--\r\n"


def parse(body: bytes, cuts: list[int], boundary: bytes = BOUNDARY) -> list[tuple[str, bytes]]:
    """Feed ``body`` cut at ``cuts``; the parts as (name, content)."""
    parser = Parser(boundary)
    events: list[object] = []
    last = 0
    for cut in sorted(set(cuts)) + [len(body)]:
        events += parser.feed(body[last:cut])
        last = cut
    parser.close()
    out: list[tuple[str, bytes]] = []
    for event in events:
        if isinstance(event, Part):
            out.append((event.name, b""))
        elif isinstance(event, bytes):
            out[-1] = (out[-1][0], out[-1][1] + event)
    assert events[-1] == END
    return out


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=12)
contents = st.binary(max_size=300) | st.sampled_from([
    b"\r\n--" + BOUNDARY[:-1], b"--" + BOUNDARY, b"\r\n-" + BOUNDARY, b"\r\r\n--", b"\r\n"])


@SETTINGS
@given(st.lists(st.tuples(names, contents), min_size=1, max_size=6),
       st.lists(st.integers(min_value=0, max_value=4000), max_size=20))
def test_any_split_parses_to_what_was_encoded(parts, cuts):
    parts = [(n, v) for n, v in parts if b"\r\n--" + BOUNDARY not in v + b"\r\n"]
    if not parts:
        return
    body = encode(parts)
    assert parse(body, cuts) == parts
    assert parse(body, list(range(len(body)))) == parts       # one byte at a time


@SETTINGS
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_garbage_only_raises_form_error(data, cuts):
    try:
        parse(data, cuts)
    except FormError:
        pass


@SETTINGS
@given(st.lists(st.tuples(names, st.binary(max_size=200)), min_size=1, max_size=4),
       st.integers(min_value=0, max_value=10_000), st.binary(min_size=1, max_size=3))
def test_corrupting_one_byte_never_escapes_form_error(parts, at, replacement):
    body = bytearray(encode(parts))
    at %= len(body)
    body[at:at + len(replacement)] = replacement
    try:
        parse(bytes(body), [at])
    except FormError:
        pass


@SETTINGS
@given(st.lists(st.tuples(names, st.text(max_size=50)), max_size=5), st.binary(max_size=500),
       st.text(alphabet="abcdefghij.-", min_size=1, max_size=10))
def test_a_form_encoded_by_urllib3_parses(fields, file, filename):
    """Bodies from urllib3's encoder (the one requests uses), fields then a file."""
    body, content_type = encode_multipart_formdata(
        [*fields, ("file", (filename, file, "application/octet-stream"))])
    boundary = boundary_of(content_type)
    assert boundary is not None
    parsed = parse(body, [len(body) // 3], boundary)
    assert parsed == [(n, v.encode()) for n, v in fields] + [("file", file)]


def test_file_part_headers():
    body = (b"--XX\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nhello\r\n--XX--")
    events = Parser(b"XX").feed(body)
    part = events[0]
    assert isinstance(part, Part)
    assert (part.name, part.filename, part.content_type) == ("file", 'a "b".txt', "text/plain")


@pytest.mark.parametrize("value,expected", [
    ("multipart/form-data; boundary=abc", b"abc"),
    ('Multipart/Form-Data; boundary="a b:c"', b"a b:c"),
    ("multipart/form-data", None),
    ("application/x-www-form-urlencoded", None),
    ("multipart/form-data; boundary=" + "x" * 71, None),
    ("multipart/form-data; boundary=a\x00b", None),
    (None, None),
])
def test_boundary_of(value, expected):
    assert boundary_of(value) == expected


async def _stream(body: bytes, size: int):
    for i in range(0, len(body), size):
        yield body[i:i + size]


def test_reader_streams_the_file_without_holding_it():
    """Fields first, then the file in pieces no larger than what arrived: 8 MiB of file in
    64 KiB messages never yields a piece over 64 KiB."""
    file = bytes(range(256)) * (32 * 1024)
    body = encode([("key", b"k"), ("file", file), ("after", b"ignored")])

    async def run():
        reader = FormReader(_stream(body, 65536), BOUNDARY, field_limit=1024)
        fields, part = await reader.fields()
        assert fields == [("key", "k")] and part is not None and part.name == "file"
        sizes, got = [], []
        async for piece in reader.file():
            sizes.append(len(piece))
            got.append(piece)
        assert b"".join(got) == file and max(sizes) <= 65536
        assert await reader.rest(1024)
    asyncio.run(run())


def test_reader_limits_the_fields_before_the_file():
    body = encode([("a", b"x" * 600), ("b", b"y" * 600), ("file", b"f")])

    async def run():
        await FormReader(_stream(body, 100), BOUNDARY, field_limit=1000).fields()
    with pytest.raises(FormTooLarge):
        asyncio.run(run())


def test_reader_refuses_a_truncated_body():
    body = encode([("key", b"k"), ("file", b"abc" * 100)])[:-40]

    async def run():
        reader = FormReader(_stream(body, 7), BOUNDARY, field_limit=1000)
        await reader.fields()
        async for _ in reader.file():
            pass
    with pytest.raises(FormError):
        asyncio.run(run())


def test_reader_counts_part_headers_toward_the_limit():
    """A flood of empty fields is bounded too (each part's headers count)."""
    body = encode([("f", b"")] * 1000 + [("file", b"f")])

    async def run():
        await FormReader(_stream(body, 4096), BOUNDARY, field_limit=20 * 1024).fields()
    with pytest.raises(FormTooLarge):
        asyncio.run(run())


def test_a_delimiter_inside_the_preamble_needs_its_crlf():
    """Only the body's very start may omit the CRLF before the first delimiter: elsewhere
    in the preamble a "--boundary" is preamble (here the part is, up to the closing one)."""
    body = b"x" * 40 + b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XX--"
    assert parse(body, list(range(len(body))), b"XX") == []
    assert parse(b"\r\n" + body[40:], [3], b"XX") == [("a", b"1")]
