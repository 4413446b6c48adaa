"""aws-chunked decoding: AWS's published chunk signatures, botocore's framing, any split.

The safety property checked throughout: a body is either refused, or decoded to exactly
the payload (and trailers) the client signed; never a truncated or altered payload.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import io
import random
import zlib

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vallum.s3 import errors
from vallum.s3.chunked import MAX_LINE, AwsChunkedDecoder
from vallum.s3.sigv4 import AuthResult, authenticate, derive_signing_key

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMPTY = hashlib.sha256(b"").hexdigest()
T2013 = calendar.timegm((2013, 5, 24, 0, 0, 0))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def example_auth(trailer: bool) -> AuthResult:
    """The AuthResult of AWS's chunked-upload example requests, as authenticate() returns it."""
    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    headers = [("host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
               ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("content-encoding", "aws-chunked"),
               ("x-amz-decoded-content-length", "66560"), ("x-amz-content-sha256", payload)]
    if trailer:
        signed = ("content-encoding;host;x-amz-content-sha256;x-amz-date;"
                  "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer")
        seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        headers.append(("x-amz-trailer", "x-amz-checksum-crc32c"))
    else:
        signed = ("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                  "x-amz-decoded-content-length;x-amz-storage-class")
        seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        headers.append(("content-length", "66824"))
    headers.append(("authorization", f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/"
                    f"us-east-1/s3/aws4_request,SignedHeaders={signed},Signature={seed}"))
    result = authenticate("PUT", "/examplebucket/chunkObject.txt", "", headers,
                          lookup_secret={ACCESS_KEY: SECRET}.get, region="us-east-1", now=T2013)
    assert result is not None and result.signature == seed
    return result


AWS_CHUNKED_EXAMPLE = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536 + b"\r\n"
    + b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024 + b"\r\n"
    + b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n")
AWS_TRAILER_EXAMPLE = (
    b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    + b"a" * 65536 + b"\r\n"
    + b"400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
    + b"a" * 1024 + b"\r\n"
    + b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
    + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    + b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    + b"\r\n\r\n")


def decode(body: bytes, decoder: AwsChunkedDecoder, cuts=()) -> tuple[bytes, dict[str, str]]:
    out, start = [], 0
    for cut in sorted(set(cuts)) + [len(body)]:
        out.append(decoder.feed(body[start:cut]))
        start = cut
    return b"".join(out), decoder.finish()


# ------------------------------------------------------------------ AWS documentation examples

def test_aws_chunked_example_whole_and_byte_by_byte():
    assert len(AWS_CHUNKED_EXAMPLE) == 66824   # the example's Content-Length
    payload, trailers = decode(AWS_CHUNKED_EXAMPLE, AwsChunkedDecoder(
        example_auth(False), signed=True, trailer=False))
    assert payload == b"a" * 66560 and trailers == {}
    decoder = AwsChunkedDecoder(example_auth(False), signed=True, trailer=False)
    pieces = [decoder.feed(AWS_CHUNKED_EXAMPLE[i:i + 1]) for i in range(len(AWS_CHUNKED_EXAMPLE))]
    assert b"".join(pieces) == b"a" * 66560 and decoder.finish() == {}
    assert decoder.decoded_length == 66560


def test_aws_trailer_example():
    decoder = AwsChunkedDecoder(example_auth(True), signed=True, trailer=True)
    payload, trailers = decode(AWS_TRAILER_EXAMPLE, decoder, cuts=range(0, 70000, 997))
    assert payload == b"a" * 66560
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


def test_chunk_signatures_are_chained_to_the_seed():
    wrong_seed = AuthResult(**{**example_auth(False).__dict__, "signature": "0" * 64})
    with pytest.raises(errors.SignatureDoesNotMatch):
        AwsChunkedDecoder(wrong_seed, signed=True, trailer=False).feed(AWS_CHUNKED_EXAMPLE)
    # The trailer example's chunks do not verify under the non-trailer seed.
    with pytest.raises(errors.SignatureDoesNotMatch):
        AwsChunkedDecoder(example_auth(False), signed=True, trailer=True).feed(AWS_TRAILER_EXAMPLE)


def test_payload_is_released_before_the_chunk_ends():
    decoder = AwsChunkedDecoder(example_auth(False), signed=True, trailer=False)
    header_end = AWS_CHUNKED_EXAMPLE.index(b"\r\n") + 2
    assert decoder.feed(AWS_CHUNKED_EXAMPLE[:header_end + 1000]) == b"a" * 1000


# ------------------------------------------------------------------ an independent encoder

def make_auth(seed: str = "1" * 64) -> AuthResult:
    return AuthResult(access_key="AK", mode="header", payload="streaming-signed",
                      content_sha256=None, region="us-east-1", amz_date="20240101T000000Z",
                      scope="20240101/us-east-1/s3/aws4_request",
                      signing_key=derive_signing_key(SECRET, "20240101", "us-east-1", "s3"),
                      signature=seed, session_token=None)


def _sig(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def encode(payload: bytes, sizes: list[int], auth_: AuthResult | None,
           trailers: list[tuple[str, str]] | None = None, blank_before_trailers=False) -> bytes:
    """aws-chunked framing as the AWS docs describe it (signed when auth_ is given)."""
    out, prev, pos = [], auth_.signature if auth_ else "", 0
    for size in sizes + [0]:
        data = payload[pos:pos + size]
        pos += size
        ext = b""
        if auth_:
            prev = _sig(auth_.signing_key, "\n".join([
                "AWS4-HMAC-SHA256-PAYLOAD", auth_.amz_date, auth_.scope, prev, EMPTY,
                hashlib.sha256(data).hexdigest()]))
            ext = b";chunk-signature=" + prev.encode()
        out.append(b"%x%s\r\n" % (size, ext))
        if size:
            out.append(data + b"\r\n")
    assert pos == len(payload)
    if trailers is None:
        return b"".join(out) + b"\r\n"
    if blank_before_trailers:
        out.append(b"\r\n")
    canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailers))
    out += [f"{n}:{v}\r\n".encode() for n, v in trailers]
    if auth_:
        signature = _sig(auth_.signing_key, "\n".join([
            "AWS4-HMAC-SHA256-TRAILER", auth_.amz_date, auth_.scope, prev,
            hashlib.sha256(canonical.encode()).hexdigest()]))
        out.append(f"x-amz-trailer-signature:{signature}\r\n".encode())
    return b"".join(out) + b"\r\n"


def chunk_sizes(draw, total_chunks: int, signed: bool) -> list[int]:
    low = 8192 if signed else 1
    sizes = [draw(st.integers(low, low + 600)) for _ in range(total_chunks - 1)]
    return sizes + ([draw(st.integers(1, 9000))] if total_chunks else [])


@st.composite
def bodies(draw):
    mode = draw(st.sampled_from(["signed", "signed-trailer", "unsigned", "unsigned-trailer"]))
    signed = mode.startswith("signed")
    sizes = chunk_sizes(draw, draw(st.integers(0, 3)), signed)
    payload = random.Random(draw(st.integers())).randbytes(sum(sizes))
    trailers = None
    if mode.endswith("trailer"):
        trailers = draw(st.lists(st.tuples(
            st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-meta-a"]),
            st.text("ABCxyz019+/=", min_size=1, max_size=12)), max_size=3, unique_by=lambda t: t[0]))
    auth_ = make_auth(draw(st.sampled_from(["1" * 64, "ab" * 32]))) if signed else None
    body = encode(payload, sizes, auth_, trailers, draw(st.booleans()) if trailers else False)
    cuts = draw(st.lists(st.integers(0, len(body)), max_size=12))
    return mode, auth_, payload, dict(trailers or []), body, cuts


@SETTINGS
@given(bodies())
def test_any_split_decodes_to_the_payload(case):
    mode, auth_, payload, trailers, body, cuts = case
    decoder = AwsChunkedDecoder(auth_, signed=auth_ is not None, trailer=mode.endswith("trailer"))
    assert decode(body, decoder, cuts) == (payload, trailers)


@SETTINGS
@given(bodies(), st.integers(0, 10**9), st.integers(0, 7))
def test_any_bit_flip_is_refused_or_harmless(case, where, bit):
    """A signed body with any bit flipped is refused or decodes to exactly the original;
    unsigned framing may decode to something else but only ever fails with an S3 error."""
    mode, auth_, payload, trailers, body, cuts = case
    index = where % len(body)
    mutated = body[:index] + bytes([body[index] ^ (1 << bit)]) + body[index + 1:]
    decoder = AwsChunkedDecoder(auth_, signed=auth_ is not None, trailer=mode.endswith("trailer"))
    try:
        result = decode(mutated, decoder, cuts)
    except errors.S3Error:
        return
    if auth_ is not None:   # e.g. 'a' -> 'A' in a hex size: same meaning, same result
        assert result == (payload, trailers), "a signed body was altered and still accepted"


@SETTINGS
@given(bodies())
def test_truncation_is_never_accepted_as_a_shorter_payload(case):
    mode, auth_, payload, trailers, body, _cuts = case
    for cut in range(max(0, len(body) - 300), len(body)):
        decoder = AwsChunkedDecoder(auth_, signed=auth_ is not None,
                                    trailer=mode.endswith("trailer"))
        try:
            decoded, got = decode(body[:cut], decoder)
        except errors.S3Error:
            continue
        assert decoded == payload, cut
        if auth_ is not None:
            assert got == trailers
        else:   # unsigned trailers may stop early; the server checks x-amz-trailer's names
            assert got.items() <= trailers.items()


def test_every_truncation_of_a_small_signed_body():
    auth_ = make_auth()
    payload = b"hello world" * 10
    body = encode(payload, [len(payload)], auth_, [("x-amz-checksum-crc32", "AAAAAA==")])
    accepted = []
    for cut in range(len(body) + 1):
        decoder = AwsChunkedDecoder(auth_, signed=True, trailer=True)
        try:
            result = decode(body[:cut], decoder)
        except (errors.IncompleteBody, errors.SignatureDoesNotMatch, errors.InvalidRequest):
            continue
        assert result == (payload, {"x-amz-checksum-crc32": "AAAAAA=="})
        accepted.append(cut)
    # Only the CRLFs after the (verified) trailer signature may be missing.
    assert accepted == list(range(len(body) - 4, len(body) + 1))


# ------------------------------------------------------------------ botocore's own framing

@SETTINGS
@given(st.binary(max_size=3000), st.integers(1, 1024), st.booleans(),
       st.lists(st.integers(0, 5000), max_size=8))
def test_botocore_unsigned_trailer_bodies(payload, chunk_size, checksum, cuts):
    wrapper = AwsChunkedWrapper(io.BytesIO(payload), checksum_cls=Crc32Checksum if checksum else None,
                                checksum_name="x-amz-checksum-crc32", chunk_size=chunk_size)
    body = wrapper.read()
    decoder = AwsChunkedDecoder(None, signed=False, trailer=True)
    decoded, trailers = decode(body, decoder, [c for c in cuts if c <= len(body)])
    assert decoded == payload
    if checksum:
        expected = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
        assert trailers == {"x-amz-checksum-crc32": expected}
    else:
        assert trailers == {}


# ------------------------------------------------------------------ framing errors

def test_small_non_final_signed_chunk_refused():
    auth_ = make_auth()
    body = encode(b"x" * 9000, [100, 8900], auth_)
    with pytest.raises(errors.InvalidChunkSizeError) as exc:
        AwsChunkedDecoder(auth_, signed=True, trailer=False).feed(body)
    assert exc.value.fields == {"Chunk": "1", "BadChunkSize": "100"}
    # Unsigned framing has no minimum.
    assert decode(encode(b"x" * 9000, [100, 8900], None), AwsChunkedDecoder(
        None, signed=False, trailer=False)) == (b"x" * 9000, {})


@pytest.mark.parametrize("size", [b"zz", b"+1", b" 1", b"0x1", b"", b"1_0", b"1" * 17])
def test_invalid_chunk_size(size):
    with pytest.raises(errors.InvalidRequest):
        AwsChunkedDecoder(None, signed=False, trailer=False).feed(size + b"\r\nabc\r\n")


@pytest.mark.parametrize("body", [
    b"3\r\nabcX\r\n0\r\n\r\n",      # no CRLF after the data
    b"3\nabc\r\n0\r\n\r\n",         # bare LF
    b"3\r\nabc\r\n0\r\n\r\nmore",   # data after the end
])
def test_malformed_framing(body):
    decoder = AwsChunkedDecoder(None, signed=False, trailer=False)
    with pytest.raises(errors.InvalidRequest):
        decode(body, decoder)


def test_missing_chunk_signature_in_signed_mode():
    with pytest.raises(errors.InvalidRequest, match="chunk-signature"):
        AwsChunkedDecoder(make_auth(), signed=True, trailer=False).feed(b"3\r\nabc\r\n")
    with pytest.raises(ValueError):
        AwsChunkedDecoder(None, signed=True, trailer=False)


def test_header_line_is_bounded():
    decoder = AwsChunkedDecoder(None, signed=False, trailer=False)
    with pytest.raises(errors.InvalidRequest, match="longer than"):
        for _ in range(MAX_LINE + 1):
            decoder.feed(b"1")
    with pytest.raises(errors.InvalidRequest, match="longer than"):
        AwsChunkedDecoder(None, signed=False, trailer=False).feed(b"1;" + b"x" * 10_000_000)
    trailer_flood = b"0\r\n" + b"x-amz-meta-a:" + b"b" * MAX_LINE + b"\r\n"
    with pytest.raises(errors.InvalidRequest, match="longer than"):
        AwsChunkedDecoder(None, signed=False, trailer=True).feed(trailer_flood)


def test_errors_are_sticky():
    decoder = AwsChunkedDecoder(None, signed=False, trailer=False)
    with pytest.raises(errors.InvalidRequest) as first:
        decoder.feed(b"zz\r\n")
    with pytest.raises(errors.InvalidRequest) as again:
        decoder.feed(b"0\r\n\r\n")
    assert again.value is first.value
    with pytest.raises(errors.InvalidRequest):
        decoder.finish()


def test_truncated_bodies_raise_incomplete_body():
    for body in [b"", b"5\r\nhel", b"5\r\nhello\r\n", b"5\r\nhello\r\n0", b"5\r\nhello\r\n0\r\n\r"]:
        decoder = AwsChunkedDecoder(None, signed=False, trailer=False)
        decoder.feed(body)
        with pytest.raises(errors.IncompleteBody):
            decoder.finish()


def test_trailer_signature_errors():
    auth_ = make_auth()
    body = encode(b"data", [4], auth_, [("x-amz-checksum-crc32", "AAAAAA==")])
    tampered = body.replace(b"AAAAAA==", b"AAAAAB==")
    with pytest.raises(errors.SignatureDoesNotMatch, match="trailer"):
        decode(tampered, AwsChunkedDecoder(auth_, signed=True, trailer=True))
    unsigned_trailer = body[:body.index(b"x-amz-trailer-signature")] + b"\r\n"
    with pytest.raises(errors.IncompleteBody, match="x-amz-trailer-signature"):
        decode(unsigned_trailer, AwsChunkedDecoder(auth_, signed=True, trailer=True))
    after = body[:-2] + b"x-amz-meta-late:1\r\n\r\n"
    with pytest.raises(errors.InvalidRequest, match="after"):
        decode(after, AwsChunkedDecoder(auth_, signed=True, trailer=True))


def test_trailer_in_received_order_also_verifies():
    """Some SDKs hash the trailers in the order sent rather than sorted."""
    auth_ = make_auth()
    trailers = [("x-amz-meta-z", "1"), ("x-amz-checksum-crc32", "AAAAAA==")]
    body = encode(b"data", [4], auth_, trailers)
    head, _, _ = body.rpartition(b"x-amz-trailer-signature:")
    prev = _final_signature(auth_, [b"data"])
    canonical = "".join(f"{n}:{v}\n" for n, v in trailers)
    sig = _sig(auth_.signing_key, "\n".join([
        "AWS4-HMAC-SHA256-TRAILER", auth_.amz_date, auth_.scope, prev,
        hashlib.sha256(canonical.encode()).hexdigest()]))
    in_order = head + f"x-amz-trailer-signature:{sig}\r\n\r\n".encode()
    assert decode(in_order, AwsChunkedDecoder(auth_, signed=True, trailer=True))[1] == dict(trailers)


def _final_signature(auth_: AuthResult, chunks: list[bytes]) -> str:
    prev = auth_.signature
    for data in chunks + [b""]:
        prev = _sig(auth_.signing_key, "\n".join([
            "AWS4-HMAC-SHA256-PAYLOAD", auth_.amz_date, auth_.scope, prev, EMPTY,
            hashlib.sha256(data).hexdigest()]))
    return prev


def test_duplicate_and_malformed_trailers():
    for extra in [b"x-amz-a:1\r\nx-amz-a:2\r\n", b"no-colon-here\r\n", b":value\r\n"]:
        with pytest.raises(errors.InvalidRequest):
            decode(b"0\r\n" + extra + b"\r\n", AwsChunkedDecoder(None, signed=False, trailer=True))
