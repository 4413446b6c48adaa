"""Server-side encryption request headers, parsed and checked as AWS S3 does (no disk).

SSE-C: ``x-amz-server-side-encryption-customer-{algorithm,key,key-MD5}`` (the object's own
key) and ``x-amz-copy-source-server-side-encryption-customer-*`` (a copy source's key).
SSE-S3: ``x-amz-server-side-encryption: AES256`` on writes. Vallum encrypts every body at
rest anyway, so the header is accepted and echoed; SSE-KMS is not offered (NotImplemented,
docs/security.md). Messages are AWS's wording, so clients and tests that match them work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Protocol

from vallum.s3 import errors

ALGORITHM = "AES256"
PREFIX = "x-amz-server-side-encryption-customer-"
COPY_PREFIX = "x-amz-copy-source-server-side-encryption-customer-"
SSE_HEADER = "x-amz-server-side-encryption"
KMS_HEADERS = ("x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-context")


class HeaderLookup(Protocol):
    """The headers these checks read: a dict, or the server's case-insensitive Headers."""

    def get(self, name: str, /) -> str | None: ...

    def __contains__(self, name: str, /) -> bool: ...


INSECURE = ("Requests specifying Server Side Encryption with Customer provided keys must be made "
            "over a secure connection.")
BAD_ALGORITHM = ("Requests specifying Server Side Encryption with Customer provided keys must provide "
                 "a valid encryption algorithm.")
MISSING_KEY = ("Requests specifying Server Side Encryption with Customer provided keys must provide "
               "an appropriate secret key.")
BAD_KEY = "The secret key was invalid for the specified algorithm."
MISSING_MD5 = ("Requests specifying Server Side Encryption with Customer provided keys must provide "
               "the client calculated MD5 of the secret key.")
MD5_MISMATCH = "The calculated MD5 hash of the key did not match the hash that was provided."
KEY_REQUIRED = ("The object was stored using a form of Server Side Encryption. The correct parameters "
                "must be provided to retrieve the object.")
NOT_APPLICABLE = "The encryption parameters are not applicable to this object."
PART_KEY_REQUIRED = ("The multipart upload initiate requested encryption. Subsequent part requests "
                     "must include the appropriate encryption parameters.")
PART_KEY_MISMATCH = "The provided encryption parameters did not match the ones used originally."
UNSUPPORTED_METHOD = "The encryption method specified is not supported"
INCOMPATIBLE = ("Server Side Encryption with Customer provided key is incompatible with the encryption "
                "method specified")
KMS_NOT_IMPLEMENTED = ("Server-side encryption with AWS KMS keys (aws:kms, aws:kms:dsse) is not "
                       "implemented by Vallum: use AES256 (every object is encrypted at rest) or "
                       "customer-provided keys (SSE-C).")
KMS_WITHOUT_KMS = ("Server Side Encryption with AWS KMS managed key requires HTTP header "
                   "x-amz-server-side-encryption : aws:kms")
NOT_ON_READ = "x-amz-server-side-encryption header is not supported for this operation."


@dataclass(frozen=True, repr=False)
class CustomerKey:
    """A validated customer key from one request. Lives only as long as the request."""

    key: bytes              # 32 bytes
    key_md5: str            # base64 MD5 of the key, as the client sent it (echoed back)
    algorithm: str = ALGORITHM

    def __repr__(self) -> str:      # never print the key itself
        return f"CustomerKey(algorithm={self.algorithm}, key_md5={self.key_md5})"

    def response_headers(self) -> dict[str, str]:
        return {PREFIX + "algorithm": self.algorithm, PREFIX + "key-MD5": self.key_md5}


@dataclass(frozen=True)
class WriteEncryption:
    """What a write (PUT, Copy destination, CreateMultipartUpload) asked for."""

    customer: CustomerKey | None = None
    sse: str | None = None          # "AES256" when x-amz-server-side-encryption was sent


def _invalid(message: str, name: str, value: str | None = None) -> errors.S3Error:
    fields: dict[str, Any] = {"ArgumentName": name}
    if value is not None:
        fields["ArgumentValue"] = value
    return errors.InvalidArgument(message, **fields)


def _b64(text: str) -> bytes:
    """Strict base64 (b"" when malformed: the length or digest check then refuses it)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def customer_key(headers: HeaderLookup, *, secure: bool, copy_source: bool = False) -> CustomerKey | None:
    """The SSE-C key a request carries (or, with ``copy_source``, its copy source's key).

    None when no such header is present; S3 errors for anything incomplete or inconsistent,
    and for any SSE-C header over plain HTTP (the key would have crossed the wire in clear).
    """
    prefix = COPY_PREFIX if copy_source else PREFIX
    algorithm = headers.get(prefix + "algorithm")
    key_b64 = headers.get(prefix + "key")
    md5_b64 = headers.get(prefix + "key-md5")
    if algorithm is None and key_b64 is None and md5_b64 is None:
        return None
    if not secure:
        raise errors.InvalidRequest(INSECURE)
    if algorithm != ALGORITHM:
        raise _invalid(BAD_ALGORITHM, prefix + "algorithm", algorithm[:64] if algorithm else None)
    if not key_b64:
        raise _invalid(MISSING_KEY, prefix + "key")
    key = _b64(key_b64)
    if len(key) != 32:
        raise _invalid(BAD_KEY, prefix + "key")
    if not md5_b64:
        raise _invalid(MISSING_MD5, prefix + "key-MD5")
    declared = _b64(md5_b64)
    actual = hashlib.md5(key, usedforsecurity=False).digest()
    if not hmac.compare_digest(declared, actual):
        raise _invalid(MD5_MISMATCH, prefix + "key-MD5")
    return CustomerKey(key, md5_b64)


def managed(headers: HeaderLookup) -> str | None:
    """``x-amz-server-side-encryption`` of a write: "AES256", None, or the S3 error."""
    value = headers.get(SSE_HEADER)
    if value is None:
        for name in KMS_HEADERS:
            if name in headers:
                raise _invalid(KMS_WITHOUT_KMS, name)
        return None
    if value == ALGORITHM:
        for name in KMS_HEADERS:
            if name in headers:
                raise _invalid(KMS_WITHOUT_KMS, name)
        return value
    if value in ("aws:kms", "aws:kms:dsse"):
        raise errors.NotImplemented_(KMS_NOT_IMPLEMENTED)
    raise _invalid(UNSUPPORTED_METHOD, SSE_HEADER, value[:64])


def write_encryption(headers: HeaderLookup, *, secure: bool) -> WriteEncryption:
    """Both kinds of server-side encryption a write may request; not both at once."""
    customer = customer_key(headers, secure=secure)
    sse = managed(headers)
    if customer is not None and sse is not None:
        raise _invalid(INCOMPATIBLE, SSE_HEADER, sse)
    return WriteEncryption(customer, sse)


def refuse_on_read(headers: HeaderLookup) -> None:
    """GET/HEAD may not carry x-amz-server-side-encryption (AWS answers InvalidArgument)."""
    value = headers.get(SSE_HEADER)
    if value is not None:
        raise _invalid(NOT_ON_READ, SSE_HEADER, value[:64])
