"""The spill scan's fast paths lose nothing (issue: spill scan throughput).

Each fast path skips work only where it proves nothing can be found; each test here is
a body that a too-eager version of the fast path would have let through.
"""

from __future__ import annotations

import base64
import codecs
import gzip
import lzma

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vallum.security.mac.labels import parse
from vallum.security.spill.decode import _CLASS, _INERT, _kinds
from vallum.security.spill.grammar import ROT13, grammar
from vallum.security.spill.markings import MarkingScanner

U, S, TS = parse("UNCLASSIFIED"), parse("SECRET"), parse("TOP SECRET")


def scan(body: bytes, chunk: int = 1 << 16):
    s = MarkingScanner()
    for i in range(0, len(body), chunk):
        s.feed(body[i:i + chunk])
    found = s.finish()
    assert not s.incomplete
    return found


def _wrapped_urlsafe() -> bytes:
    """Text whose url-safe base64, wrapped at 64, has a "_" late in its first line (so the
    base64 view cannot read that line aligned) and a second line of plain base64 letters,
    with the marking split across the two lines."""
    lead = b"And so, where is the plan ?"        # "?" at 2 mod 3: "_" in url-safe base64
    decoded = lead + b" " * (48 - len(lead) - 7) + b"\nTOP SE" + b"CRET//NOFORN\nThe plan follows" \
        + b" in the next memo, as agreed.\n" * 4
    assert decoded.index(b"?") % 3 == 2 and decoded.index(b"TOP SE") < 48 <= decoded.index(b"CRET")
    enc = base64.urlsafe_b64encode(decoded)
    lines = [enc[i:i + 64] for i in range(0, len(enc), 64)]
    assert b"_" in lines[0][25:] and not lines[1].translate(None, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
                                                                b"ghijklmnopqrstuvwxyz0123456789+/")
    return b"Attachment:\n" + b"\n".join(lines) + b"\n"


def test_a_run_open_across_a_plain_base64_line_is_read_whole():
    """A long plain-base64 line is skipped only while no other run is open: here it
    continues a url-safe run, and the marking is split across the two lines."""
    assert scan(_wrapped_urlsafe()) == parse("TOP SECRET//NOFORN")


@pytest.mark.parametrize("chunk", [7, 64, 1000], ids=["chunk7", "chunk64", "chunk1000"])
def test_the_run_is_read_whatever_the_chunking(chunk):
    assert scan(_wrapped_urlsafe(), chunk) == parse("TOP SECRET//NOFORN")


@pytest.mark.parametrize("name, encode", [
    ("base32", base64.b32encode),
    ("hex", lambda b: b.hex().encode()),
    ("hex upper", lambda b: b.hex().upper().encode()),
    ("base85", base64.b85encode),
    ("url-safe", lambda b: base64.urlsafe_b64encode(b"\xfb\xff" + b)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_long_runs_of_other_alphabets_after_base64_lines_are_read(name, encode):
    """Long tokens the base64 skip must not take: base32 and hex (no "g"-"z", "+", "/"),
    base85 and url-safe (characters outside base64), right after skipped base64 lines."""
    noise = base64.encodebytes(bytes(range(256)) * 8)
    body = noise + encode(b"TOP SECRET\n\nThe plan.\n\nTOP SECRET\n" * 3) + b"\n" + noise
    assert scan(body) == TS, name


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.:~",
               min_size=16, max_size=90))
def test_a_skipped_token_is_one_the_decoders_give_nothing(token):
    """Exactness of the skip: a token _INERT passes over gets no decoder from _kinds."""
    raw = token.encode()
    if _INERT.match((raw + b" ").translate(_CLASS)) is not None:
        assert _kinds(raw, True) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet="ABCFGNOPSTVUI()/ abcgnfs\n").map(str.encode))
def test_the_rot13_prefilter_is_the_prefilter_of_the_rotated_text(data):
    g = grammar(U.scheme)
    assert g.maybe(data, rot13=True) == g.maybe(data.translate(ROT13))


@pytest.mark.parametrize("banner, label", [
    (b"TOP SECRET//NOFORN", "TOP SECRET//NOFORN"),
    (b"TS//SI//NOFORN", "TOP SECRET//SI//NOFORN"),      # no level word: found by "TS//" only
    (b"(S//NF) The plan.", "SECRET//NOFORN"),
], ids=["banner", "abbreviated", "portion"])
def test_rot13_markings_in_a_long_text_are_found(banner, label):
    prose = b"The committee reviewed the budget of the program and the annex.\n" * 4000
    body = prose + codecs.encode(banner.decode() + "\nThe collection plan.\n", "rot13").encode() + prose
    assert scan(body) == parse(label)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="ABCEFIJNORSTU()/ 1\n", max_size=300).map(str.encode))
def test_every_word_in_the_text_is_a_candidate(data):
    """The grammar looks only for the words its residue holds: never one that is there."""
    g = grammar(U.scheme)
    words, portions, abbrevs = g.candidates(data)
    assert {w for w in g.words if w in data} <= set(words)
    assert {a for a in g.abbrev_slashes if a in data} <= set(abbrevs)
    assert portions or g.portion_start.search(data) is None


def test_markings_split_by_the_residue_are_found_in_binary():
    """In binary, uppercase letters far apart join in the residue; the words that do occur
    whole are still found, in every chunking (a marking near a chunk's end included)."""
    noise = bytes((i * 7919 + 13) % 256 for i in range(1 << 17))
    body = noise + b"\nTOP SECRET//NOFORN\n" + noise + b"\n(TS//SI) The plan.\n" + noise[:4000]
    for chunk in (4096, 65536, len(body)):
        assert scan(body, chunk) == parse("TOP SECRET//SI//NOFORN")


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 5], ids=lambda c: f"cut{c}")
def test_a_gzip_after_ascii_text_is_opened_whatever_the_chunk_boundary(cut):
    """ASCII chunks are not searched for the magics with non-ASCII bytes (gzip, xz): a
    magic split by the chunk boundary still meets its first bytes in the carry."""
    text = b"Release notes, nothing to see here.\n" * 3000
    for blob in (gzip.compress(b"TOP SECRET\n\nThe plan.\n\nTOP SECRET\n", mtime=0),
                 lzma.compress(b"TOP SECRET\n\nThe plan.\n\nTOP SECRET\n")):
        body = text + blob + text
        s = MarkingScanner()
        for piece in (body[:len(text) + cut], body[len(text) + cut:]):
            s.feed(piece)
        assert s.finish() == TS and not s.incomplete
