"""Sans-IO decoder for ``Content-Encoding: aws-chunked`` request bodies.

Framing (``hex-size[;chunk-signature=SIG]\\r\\n<data>\\r\\n`` ... a final 0-size chunk,
then optional trailing headers) is parsed as bytes arrive, split anywhere. Payload bytes
are handed back immediately; a chunk's signature is checked when its last byte has been
seen (the server verifies everything before committing, so early release is safe). Only
one header line (bounded) is ever buffered, so memory stays constant whatever the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from vallum.s3 import errors
from vallum.s3.sigv4 import EMPTY_SHA256, AuthResult, sign_string

MAX_LINE = 4096          # longest chunk-header or trailer line accepted
MAX_TRAILERS = 16        # trailing headers accepted after the final chunk
MIN_CHUNK_SIZE = 8192    # every signed chunk but the last data chunk must be this big
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_HEX_SIZE = re.compile(r"[0-9a-fA-F]{1,16}")
_SIG_PREFIX = "chunk-signature="

# Parser states.
_HEADER, _DATA, _CRLF, _TRAILER, _DONE = range(5)


class AwsChunkedDecoder:
    """Decode (and, when signed, verify) one aws-chunked body fed in arbitrary pieces."""

    def __init__(self, auth: AuthResult | None, *, signed: bool, trailer: bool) -> None:
        if signed and auth is None:
            raise ValueError("signed aws-chunked bodies need the request's AuthResult")
        self._auth = auth
        self._signed = signed
        self._trailer = trailer
        self._prev_signature = auth.signature if auth else ""
        self._state = _HEADER
        self._line = bytearray()
        self._remaining = 0                  # payload bytes left in the current chunk
        self._hash: hashlib._Hash | None = None
        self._chunk_signature = ""
        self._crlf_seen = 0
        self._after_crlf = _HEADER
        self._chunk_index = 0
        self._last_size: int | None = None   # size of the previous data chunk
        self._trailers: list[tuple[str, str]] = []
        self._blank_before_trailers = False
        self._trailer_signature_seen = False
        self._decoded = 0
        self._failed: errors.S3Error | None = None

    @property
    def decoded_length(self) -> int:
        """Payload bytes decoded so far (compare with x-amz-decoded-content-length)."""
        return self._decoded

    # ------------------------------------------------------------------------ public API

    def feed(self, data: bytes) -> bytes:
        """Consume raw body bytes; return decoded payload bytes available so far (may be b'')."""
        if self._failed is not None:
            raise self._failed
        try:
            return self._feed(bytes(data))
        except errors.S3Error as exc:
            self._failed = exc
            raise

    def finish(self) -> dict[str, str]:
        """End of body: check it was complete; return the trailing headers (lower-case names)."""
        if self._failed is not None:
            raise self._failed
        try:
            return self._finish()
        except errors.S3Error as exc:
            self._failed = exc
            raise

    # ------------------------------------------------------------------------ parsing

    def _feed(self, data: bytes) -> bytes:
        view = memoryview(data)
        out: list[memoryview] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                piece = view[pos:pos + take]
                if self._hash is not None:
                    self._hash.update(piece)
                out.append(piece)
                pos += take
                self._remaining -= take
                self._decoded += take
                if self._remaining == 0:
                    self._end_of_chunk_data()
            elif state == _CRLF:
                if data[pos] != b"\r\n"[self._crlf_seen]:
                    raise errors.InvalidRequest("aws-chunked: chunk data must be followed by CRLF")
                pos += 1
                self._crlf_seen += 1
                if self._crlf_seen == 2:
                    self._crlf_seen = 0
                    self._state = self._after_crlf
            elif state == _DONE:
                raise errors.InvalidRequest("aws-chunked: unexpected data after the final chunk")
            else:
                line, pos = self._take_line(data, pos)
                if line is None:
                    break
                if state == _HEADER:
                    self._on_chunk_header(line)
                else:
                    self._on_trailer_line(line)
        if len(out) == 1:
            return bytes(out[0])
        return b"".join(out)

    def _take_line(self, data: bytes, pos: int) -> tuple[str | None, int]:
        """Return the next complete CRLF-terminated line (without CRLF), or buffer a part."""
        newline = data.find(b"\n", pos, pos + MAX_LINE + 1 - len(self._line))
        if newline < 0:
            self._line += data[pos:pos + MAX_LINE + 1]
            if len(self._line) > MAX_LINE:
                raise errors.InvalidRequest(f"aws-chunked: header line longer than {MAX_LINE} bytes")
            return None, len(data)
        self._line += data[pos:newline + 1]
        raw = bytes(self._line)
        self._line.clear()
        if not raw.endswith(b"\r\n"):
            raise errors.InvalidRequest("aws-chunked: header lines must end with CRLF")
        return self._decode_line(raw[:-2]), newline + 1

    @staticmethod
    def _decode_line(raw: bytes) -> str:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise errors.InvalidRequest("aws-chunked: non-ASCII byte in a header line") from None

    def _on_chunk_header(self, line: str) -> None:
        size_text, _, extension = line.partition(";")
        if not _HEX_SIZE.fullmatch(size_text):
            raise errors.InvalidRequest(f"aws-chunked: invalid chunk size {size_text[:32]!r}")
        size = int(size_text, 16)
        if self._signed:
            if not extension.startswith(_SIG_PREFIX):
                raise errors.InvalidRequest("aws-chunked: chunk-signature missing from chunk header")
            self._chunk_signature = extension[len(_SIG_PREFIX):]
            if size and self._last_size is not None and self._last_size < MIN_CHUNK_SIZE:
                raise errors.InvalidChunkSizeError(Chunk=str(self._chunk_index),
                                                   BadChunkSize=str(self._last_size))
        self._chunk_index += 1
        if size == 0:
            if self._signed:
                self._check_chunk_signature(EMPTY_SHA256)
            if self._trailer:
                self._state = _TRAILER
            else:
                self._state, self._after_crlf = _CRLF, _DONE
            return
        self._last_size = size
        self._remaining = size
        self._hash = hashlib.sha256() if self._signed else None
        self._state = _DATA

    def _end_of_chunk_data(self) -> None:
        if self._hash is not None:
            self._check_chunk_signature(self._hash.hexdigest())
            self._hash = None
        self._state, self._after_crlf = _CRLF, _HEADER

    def _check_chunk_signature(self, data_sha256: str) -> None:
        auth = self._auth
        assert auth is not None
        sts = (f"AWS4-HMAC-SHA256-PAYLOAD\n{auth.amz_date}\n{auth.scope}\n"
               f"{self._prev_signature}\n{EMPTY_SHA256}\n{data_sha256}")
        expected = sign_string(auth.signing_key, sts)
        provided = self._chunk_signature.encode("ascii", "replace")
        if not hmac.compare_digest(expected.encode(), provided):
            raise errors.SignatureDoesNotMatch(
                f"The chunk signature of chunk {self._chunk_index} does not match.",
                StringToSign=sts, SignatureProvided=self._chunk_signature)
        self._prev_signature = expected

    # ------------------------------------------------------------------------ trailers

    def _on_trailer_line(self, line: str) -> None:
        if line == "":
            # A blank line before any trailer is the final chunk's own CRLF (some SDKs
            # send it); a blank line after trailers ends the body.
            if self._trailers or self._trailer_signature_seen or self._blank_before_trailers:
                self._state = _DONE
            else:
                self._blank_before_trailers = True
            return
        if self._trailer_signature_seen:
            raise errors.InvalidRequest(f"aws-chunked: trailer after {TRAILER_SIGNATURE}")
        name, sep, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not sep or not name:
            raise errors.InvalidRequest(f"aws-chunked: malformed trailer line {line[:64]!r}")
        if name == TRAILER_SIGNATURE:
            self._trailer_signature_seen = True
            if self._signed:
                self._check_trailer_signature(value)
            return
        if any(name == seen for seen, _ in self._trailers):
            raise errors.InvalidRequest(f"aws-chunked: duplicate trailer {name}")
        if len(self._trailers) >= MAX_TRAILERS:
            raise errors.InvalidRequest("aws-chunked: too many trailing headers")
        self._trailers.append((name, value))

    def _check_trailer_signature(self, provided: str) -> None:
        auth = self._auth
        assert auth is not None
        forms = {"".join(f"{n}:{v}\n" for n, v in order)
                 for order in (sorted(self._trailers), self._trailers)}
        matched = False
        for canonical in sorted(forms):
            digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()
            sts = (f"AWS4-HMAC-SHA256-TRAILER\n{auth.amz_date}\n{auth.scope}\n"
                   f"{self._prev_signature}\n{digest}")
            matched |= hmac.compare_digest(sign_string(auth.signing_key, sts).encode(),
                                           provided.encode("ascii", "replace"))
        if not matched:
            raise errors.SignatureDoesNotMatch(
                "The trailer signature does not match.", SignatureProvided=provided)

    def _finish(self) -> dict[str, str]:
        if self._state == _TRAILER and self._line:
            # A last trailer line whose CRLF never came: accepted only when the trailer
            # signature will vouch for it.
            raw = bytes(self._line).removesuffix(b"\r")
            self._line.clear()
            if raw and not self._signed:
                raise errors.IncompleteBody("The aws-chunked body ended inside a trailing header.")
            self._on_trailer_line(self._decode_line(raw))
        final_crlf_only = self._state == _CRLF and self._after_crlf == _DONE
        if final_crlf_only and self._crlf_seen == 0:
            self._state = _DONE   # "0;chunk-signature=...\r\n" without the last CRLF
        if self._state not in (_DONE, _TRAILER):
            raise errors.IncompleteBody("The aws-chunked body ended before its final chunk.")
        if self._trailer and self._signed and not self._trailer_signature_seen:
            raise errors.IncompleteBody(f"The aws-chunked body has no {TRAILER_SIGNATURE}.")
        self._state = _DONE
        return dict(self._trailers)
