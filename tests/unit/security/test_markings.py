"""Marking scanner: text, PDF, Office XML; markings split across any chunk boundary."""

from __future__ import annotations

import io
import os
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vallum.security.mac.labels import parse
from vallum.security.spill.markings import MarkingScanner, scan_bytes


def chunked_scan(data: bytes, cuts: list[int]) -> object:
    s = MarkingScanner()
    prev = 0
    for c in sorted(set(cuts)):
        s.feed(data[prev:c])
        prev = c
    s.feed(data[prev:])
    return s.finish()


@pytest.mark.parametrize("text, expected", [
    (b"Just an ordinary memo about lunch.", None),
    (b"UNCLASSIFIED\nnothing here\nUNCLASSIFIED", "UNCLASSIFIED"),
    (b"SECRET//NOFORN\n\nThe plan.\n\nSECRET//NOFORN", "SECRET//NOFORN"),
    (b"TOP SECRET//SI/TK//NOFORN\nbody", "TOP SECRET//SI/TK//NOFORN"),
    (b"header\nTOP SECRET//SI//REL TO USA, GBR\n", "TOP SECRET//SI//REL TO USA, GBR"),
    (b"CUI\nControlled but unclassified.", "CUI"),
    (b"(U) Intro.\n(S//NF) The secret part.\n(C) More.", "SECRET//NOFORN"),
    (b"(TS//SI) x", "TOP SECRET//SI"),
    (b"para one\n (C) confidential bit", "CONFIDENTIAL"),
    (b"SECRET//NOFORN THE END", "SECRET//NOFORN"),
    (b"(S//NF) a\n(C//REL TO USA, GBR) b", "SECRET//NOFORN"),
    (b"TOP SECRET//SI\nand SECRET//TK\n", "TOP SECRET//SI/TK"),
])
def test_plain_text(text, expected):
    found = scan_bytes(text)
    assert (found.banner() if found else None) == expected


@pytest.mark.parametrize("text", [
    b"the secret of a good secretary is confidentiality",   # lower case prose
    b"SECRETARY of STATE", b"FILE(S) attached", b"TOPSECRETS", b"CUISINE", b"(SI)", b"XSECRET",
    b"lists(C)", b"MY_SECRET_KEY",
])
def test_not_markings(text):
    assert scan_bytes(text) is None


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_chunk_boundaries_do_not_matter(data):
    filler = data.draw(st.text(alphabet="abcdefxyz0189 .,;:/\n-)\t\u00e9", max_size=600)).encode()
    body = (b"intro " + filler + b"\nTOP SECRET//SI//REL TO USA, GBR\n" + filler
            + b"\n(S//NF) portion\n" + filler + b" CUI\n")
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    assert chunked_scan(body, cuts) == parse("TOP SECRET//SI//REL TO USA, GBR").join(parse("S//NF"))


def test_every_single_split_point():
    body = b"xx SECRET//SI/TK//NOFORN yy"
    for i in range(len(body) + 1):
        assert chunked_scan(body, [i]) == parse("SECRET//SI/TK//NOFORN"), i
    assert chunked_scan(body, list(range(len(body)))) == parse("SECRET//SI/TK//NOFORN")


def test_large_body_keeps_memory_constant():
    s = MarkingScanner()
    block = (b"plain words of text, line after line (see below) " * 30000)[:1024 * 1024]
    for _ in range(8):
        s.feed(block)
        assert len(s.text._buf) < 1024
    s.feed(b"\nCONFIDENTIAL\n")
    assert s.finish() == parse("CONFIDENTIAL")


# --- PDF ---------------------------------------------------------------------------
def make_pdf(content: bytes, *, flate: bool) -> bytes:
    stream = zlib.compress(content) if flate else content
    filt = b"/Filter /FlateDecode " if flate else b""
    return (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"4 0 obj\n<< " + filt + b"/Length " + str(len(stream)).encode() + b" >>\nstream\n"
            + stream + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")


PAGE = (b"BT /F1 12 Tf 72 720 Td (SECRET//NOFORN) Tj ET\n"
        b"BT 72 700 Td (\\(TS//SI\\) Portion text) Tj ET\n")


@pytest.mark.parametrize("flate", [False, True])
def test_pdf_text(flate):
    pdf = make_pdf(PAGE, flate=flate)
    if flate:
        assert b"SECRET" not in pdf
    expected = parse("TOP SECRET//SI//NOFORN")
    assert scan_bytes(pdf) == expected
    for cut in range(0, len(pdf), 7):
        assert chunked_scan(pdf, [cut, cut + 3]) == expected


def test_pdf_compressed_noise_is_not_scanned_as_text():
    pdf = make_pdf(b"BT (nothing to see) Tj ET\n" * 50, flate=True)
    assert scan_bytes(pdf) is None


def test_pdf_inflation_budget():
    pdf = make_pdf(b"A" * 5_000_000 + b" SECRET ", flate=True)
    s = MarkingScanner(max_inflated=1_000_000)
    s.feed(pdf)
    s.finish()
    assert s.incomplete


# --- Office XML (zip) --------------------------------------------------------------
DOCX_XML = (b'<?xml version="1.0"?><w:document><w:body>'
            b'<w:p><w:r><w:t>TOP </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>SECRET//SI</w:t></w:r></w:p>'
            b'<w:p><w:r><w:t>(S//NF) Para.</w:t></w:r></w:p>'
            b'<w:p><w:r><w:t>SECRET</w:t></w:r></w:p><w:p><w:r><w:t>ARY</w:t></w:r></w:p>'
            b"</w:body></w:document>")


class Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then uses data descriptors (sizes after the data)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)


def make_docx(*, streaming: bool, method=zipfile.ZIP_DEFLATED) -> bytes:
    target = Unseekable() if streaming else io.BytesIO()
    with zipfile.ZipFile(target, "w", compression=method) as z:
        z.writestr("[Content_Types].xml", b"<Types/>")
        z.writestr("word/media/image1.png", os.urandom(20000))
        z.writestr("word/document.xml", DOCX_XML)
        z.writestr("word/footer1.xml", b"<w:ftr><w:p><w:t>CUI</w:t></w:p></w:ftr>")
    return bytes(target.buf) if streaming else target.getvalue()


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_office_xml(streaming, method):
    if streaming and method == zipfile.ZIP_STORED:
        pytest.skip("zipfile cannot stream stored members")
    doc = make_docx(streaming=streaming, method=method)
    expected = parse("TOP SECRET//SI//NOFORN")
    s = MarkingScanner()
    for i in range(0, len(doc), 1000):
        s.feed(doc[i:i + 1000])
    assert s.finish() == expected
    assert s.kind == "zip"
    assert chunked_scan(doc, list(range(0, len(doc), 37))) == expected


def test_office_xml_without_markings():
    target = io.BytesIO()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"<w:p><w:t>Secretary notes (c) 2024</w:t></w:p>")
    assert scan_bytes(target.getvalue()) is None


def test_random_binary_is_scanned_but_not_refused():
    """Random bytes spell CUI every few MiB; the grammar (banner lines, // markings, portion
    marks opening a line) does not fire on them, so binary bodies are scanned too."""
    s = MarkingScanner()
    for _ in range(16):
        s.feed(os.urandom(1024 * 1024))
    assert s.finish() is None and not s.incomplete


def test_pdf_image_streams_are_skipped():
    image = os.urandom(50_000).replace(b"endstream", b"xxxxxxxxx") + b" CUI "
    pdf = (b"%PDF-1.4\n5 0 obj\n<< /Filter /DCTDecode /Length 50005 >>\nstream\n" + image
           + b"\nendstream\nendobj\n6 0 obj\n<< /Length 30 >>\nstream\nBT (SECRET) Tj ET\nendstream\n")
    assert scan_bytes(pdf) == parse("SECRET")


# --- the grammar and the views (issue 13) -----------------------------------------
@pytest.mark.parametrize("text, expected", [
    (b"CONTROLLED UNCLASSIFIED INFORMATION\nbody\n", "CUI"),
    (b"body\nCUI//SP-PRVCY\n", "CUI//SP-PRVCY"),
    (b"*** TOP SECRET ***\nbody\n", "TOP SECRET"),
    (b"Classification: SECRET\nbody\n", "SECRET"),
    (b"<p>SECRET</p>\n", "SECRET"),
    (b"  - (S//NF) a bullet portion\n", "SECRET//NOFORN"),
    (b"TOP\n  SECRET\nbody", "TOP SECRET"),
    (b"1,CUI,x\n", None),
    (b"the word SECRET in a sentence\n", None),
    (b"(C) 2024 Example\n", None),
    (b"Copyright notice\n(C) Example Corp\n", None),
    (b"(A) first\n(B) second\n(C) third\n", None),
    (b"(C) The supplier pricing.\n", "CONFIDENTIAL"),
])
def test_grammar(text, expected):
    found = scan_bytes(text)
    assert (found.banner() if found else None) == expected


@pytest.mark.parametrize("body", [
    b"<html><body><div>TOP&nbsp;SECRET</div><p>plan</p></body></html>",
    b"<html><body><div>TOP&#32;SECRET</div></body></html>",
    b'<?xml version="1.0"?><worksheet><headerFooter><oddHeader>&amp;CTOP SECRET</oddHeader>'
    b"</headerFooter></worksheet>",
])
def test_markup(body):
    assert scan_bytes(body) == parse("TOP SECRET")


def test_pdf_kerned_array_and_utf16_string():
    pdf = make_pdf(b"BT [(TOP) -300 (SECRET)] TJ ET\nBT <FEFF0053004500430052004500540020> Tj ET\n", flate=True)
    assert scan_bytes(pdf) == parse("TOP SECRET")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_encoded_bodies_at_any_chunk_boundaries(data):
    import base64
    import gzip
    plain = b"intro\n" * 50 + b"SECRET//NOFORN\n" + b"outro\n" * 50
    body = data.draw(st.sampled_from([gzip.compress(plain), base64.encodebytes(plain),
                                      plain.decode().encode("utf-16"), b"\x00".join(plain[i:i + 1]
                                                                                  for i in range(len(plain)))]))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    assert chunked_scan(body, cuts) == parse("SECRET//NOFORN")


def test_invisible_characters_are_dropped_in_text_cut_inside_a_character():
    body = ("é" * 400 + "\nTOP SE\u200bCRET//NO\u00adFORN\n").encode()
    for cut in range(790, 812):                       # inside and around the two-byte "é"s
        assert chunked_scan(body, [cut]) == parse("TOP SECRET//NOFORN"), cut


@pytest.mark.parametrize("text", [b"credential=l=", b"x edential=l= y " * 50, b"abcdefgh=\n=ijklmnop=" * 20])
def test_short_padded_runs_end(text):
    """A padded run followed by another padded fragment looped forever (systemd's NEWS)."""
    import signal

    def stuck(*_):
        raise TimeoutError("the base64 view does not advance")
    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(5)
    try:
        s = MarkingScanner()
        s.feed(text)
        assert s.finish() is None and not s.incomplete     # a fault (the timeout) refuses
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
