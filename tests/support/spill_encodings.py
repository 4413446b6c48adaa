"""Encodings a marked body or field can hide in, for the spill tests and corpus: each
one was an evasion of the scanner found by a red-team pass. Deterministic (no clock, no
randomness), so pytest-xdist workers collect the same bodies."""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import lzma
import unicodedata
import zipfile
import zlib


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()

_CONFUSABLE = str.maketrans({"T": "\u0422", "O": "\u041e", "P": "\u0420", "E": "\u0415", "C": "\u0421",
                             "A": "\u0391", "N": "\u039d", "I": "\u0399", "S": "\u0405"})


def zip_bzip2(data: bytes) -> bytes:
    return zip_of({"memo.txt": data}, zipfile.ZIP_BZIP2)


def zip_lzma(data: bytes) -> bytes:
    return zip_of({"memo.txt": data}, zipfile.ZIP_LZMA)


def self_extracting(data: bytes) -> bytes:
    """A zip after an executable stub (offsets left as they are: readers cope)."""
    return b"MZ\x90\x00" + bytes(range(256)) * 8 + zip_of({"memo.txt": data})


def raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(data) + z.flush()


def zlib_stream(data: bytes) -> bytes:
    return zlib.compress(data)


def lzma_alone(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


def b64_of_b64(data: bytes) -> bytes:
    return base64.b64encode(base64.b64encode(data))


def base32(data: bytes) -> bytes:
    return base64.b32encode(data)


def base85(data: bytes) -> bytes:
    return base64.b85encode(data)


def ascii85(data: bytes) -> bytes:
    return base64.a85encode(data, wrapcol=76, adobe=True)


def hex_text(data: bytes) -> bytes:
    return binascii.hexlify(data)


def hex_spaced(data: bytes) -> bytes:
    return data.hex(" ").encode()


def uuencoded(data: bytes) -> bytes:
    out = io.BytesIO()
    out.write(b"begin 644 memo.txt\n")
    for i in range(0, len(data), 45):
        out.write(binascii.b2a_uu(data[i:i + 45]))
    out.write(b"`\nend\n")
    return out.getvalue()


def utf7(data: bytes) -> bytes:
    return data.decode().encode("utf-7")


def utf7_forced(data: bytes) -> bytes:
    """Every letter as a UTF-7 shifted run (an encoder may encode any character)."""
    return b"".join(b"+" + base64.b64encode(c.encode("utf-16-be")).rstrip(b"=") + b"-" if c.isalpha()
                    else c.encode() for c in data.decode())


def rot13(data: bytes) -> bytes:
    return codecs.encode(data.decode(), "rot13").encode()


def lookalikes(data: bytes) -> bytes:
    return data.decode().translate(_CONFUSABLE).encode()


def combining(data: bytes) -> bytes:
    return "".join(c + "\u0301" if c.isupper() else c for c in data.decode()).encode()


def fullwidth(data: bytes) -> bytes:
    return "".join(chr(ord(c) + 0xFEE0) if "A" <= c <= "Z" else c for c in data.decode()).encode()


def letter_spaced(data: bytes) -> bytes:
    return b"\n".join(b" ".join(bytes([c]) for c in line) if line.isupper() else line
                      for line in data.split(b"\n"))


def nfd(data: bytes) -> bytes:
    return unicodedata.normalize("NFD", data.decode()).encode()


def rtf(data: bytes) -> bytes:
    paragraphs = data.decode().replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}").split("\n")
    return ("{\\rtf1\\ansi{\\fonttbl\\f0\\fswiss Arial;}\\f0\\fs22 " + "".join(
        f"\\pard\\b {p}\\b0\\par\n" for p in paragraphs) + "}").encode()


# What the red-team pass hid a banner in: name -> encoder (every form refused now).
RED_TEAM = {
    "zip-bzip2.zip": zip_bzip2, "zip-lzma.zip": zip_lzma, "sfx.exe": self_extracting, "raw.deflate": raw_deflate,
    "zlib": zlib_stream, "lzma": lzma_alone, "b64-of-b64": b64_of_b64, "b32": base32, "b85": base85,
    "a85": ascii85, "hex": hex_text, "hex-bytes": hex_spaced, "uu": uuencoded, "utf-7": utf7_forced,
    "rot13": rot13, "lookalike.txt": lookalikes, "combining.txt": combining, "fullwidth.txt": fullwidth,
    "letter-spaced.txt": letter_spaced, "rtf": rtf,
}
