"""FIPS/strict mode (``vallum serve --fips``): approved algorithms only for security functions.

What changes under it: Signature Version 2 (HMAC-SHA1 over a string that includes
Content-MD5) is refused before any of its arithmetic runs, header and presigned alike,
with AWS's answer for a region that takes SigV4 only (``400 InvalidRequest``); the TLS
1.2 ciphers offered are ECDHE with AES-GCM. Everything else Vallum does for security
already uses approved algorithms: SigV4 and STS (HMAC-SHA-256), objects at rest
(AES-256-GCM), audit signatures (Ed25519, FIPS 186-5), randomness from the OS. MD5
and SHA-1 remain only where AWS keeps them on its FIPS endpoints: ETags, Content-MD5,
the SSE-C key digest and the x-amz-checksum-sha1 integrity checksum.

Which crypto module is in use is reported at start (``report``): Python's hashlib
(SigV4's HMAC and hashes) runs on the system OpenSSL and follows its FIPS setting;
``cryptography`` (AES-GCM, Ed25519) on the OpenSSL it was built with. Vallum turns no
provider on itself: the OpenSSL FIPS provider is used when the system configures it.
"""

from __future__ import annotations

import ssl
from urllib.parse import parse_qsl

SIGV2_REFUSED = ("The authorization mechanism you have provided is not supported. "
                 "Please use AWS4-HMAC-SHA256.")
TLS12_CIPHERS = "ECDHE+AESGCM:!aNULL:!eNULL"


def is_sigv2(headers: list[tuple[str, str]], raw_query: str) -> bool:
    """A request signed (or presigned) with Signature Version 2."""
    for name, value in headers:
        if name == "authorization" and value.startswith("AWS "):
            return True
    if "AWSAccessKeyId" not in raw_query and "Signature" not in raw_query:
        return False
    names = {k for k, _ in parse_qsl(raw_query, keep_blank_values=True)}
    return "AWSAccessKeyId" in names or "Signature" in names


def _hashlib_fips() -> bool:
    try:
        import _hashlib  # CPython's OpenSSL binding
        return bool(_hashlib.get_fips_mode())
    except (ImportError, AttributeError, ValueError):
        return False


def _cryptography_module() -> tuple[str, bool]:
    try:
        import cryptography
        from cryptography.hazmat.backends.openssl.backend import backend
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl
        return (f"{backend.openssl_version_text()} (cryptography {cryptography.__version__})",
                bool(rust_openssl.is_fips_enabled()))
    except (ImportError, AttributeError):
        return "unknown", False


def report() -> list[str]:
    """One line per crypto module: which OpenSSL, and whether its FIPS provider is on."""
    crypto_version, crypto_fips = _cryptography_module()
    state = {True: "FIPS provider in use", False: "FIPS provider not in use"}
    return [f"hashlib (SigV4, HMAC): {ssl.OPENSSL_VERSION}, {state[_hashlib_fips()]}",
            f"AES-GCM, Ed25519:      {crypto_version}, {state[crypto_fips]}"]


def validated() -> bool:
    """Both modules run with an OpenSSL FIPS provider."""
    return _hashlib_fips() and _cryptography_module()[1]
