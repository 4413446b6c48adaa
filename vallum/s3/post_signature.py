"""Who signed a browser form's POST policy (PostObject): the claim, and the signature check.

SigV4: ``x-amz-algorithm`` AWS4-HMAC-SHA256, ``x-amz-credential``
(``AKID/yyyymmdd/region/s3/aws4_request``), ``x-amz-date``, and ``x-amz-signature``: the hex
HMAC-SHA256 of the base64 policy under the date/region/service signing key. SigV2:
``AWSAccessKeyId`` and ``signature``: the base64 HMAC-SHA1 of the base64 policy. The
request's own headers sign nothing: the policy says what the form may do. Pure: no I/O.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from vallum.s3 import errors, sigv2, sigv4

_DATE = re.compile(r"\d{8}T\d{6}Z")
_V4_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")


@dataclass(frozen=True)
class PostClaim:
    """The credential a form claims, not yet verified."""

    version: str                 # "v4" or "v2"
    access_key: str
    signature: str
    token: str | None = None     # x-amz-security-token (temporary credentials)
    date: str = ""               # v4: yyyymmdd of the credential scope
    region: str = ""


def missing(name: str) -> errors.S3Error:
    """S3's answer for a form without a field it needs (fields after the file are unread)."""
    return errors.InvalidArgument(f"Bucket POST must contain a field named '{name}'.  If it is "
                                  "specified, please check the order of the fields.",
                                  ArgumentName=name, ArgumentValue="")


def claim(form: dict[str, str], region: str) -> PostClaim | None:
    """The form's claimed signer, or None for an unsigned form (anonymous).

    ``form``: fields by lower-case name. Raises InvalidArgument for a signature without
    its companions (or a policy without a signature), or a credential for another region."""
    token = form.get("x-amz-security-token")
    if any(name in form for name in _V4_FIELDS):
        for name in (*_V4_FIELDS, "policy"):
            if not form.get(name):
                raise missing(name)
        if form["x-amz-algorithm"] != sigv4.ALGORITHM:
            raise errors.InvalidArgument(f"Only {sigv4.ALGORITHM} is supported for POST policies",
                                         ArgumentName="x-amz-algorithm",
                                         ArgumentValue=form["x-amz-algorithm"][:64])
        parts = form["x-amz-credential"].split("/")
        if len(parts) != 5 or not parts[0] or parts[3] != "s3" or parts[4] != "aws4_request":
            raise errors.InvalidArgument("Invalid x-amz-credential: expected "
                                         "<key>/<date>/<region>/s3/aws4_request",
                                         ArgumentName="x-amz-credential",
                                         ArgumentValue=form["x-amz-credential"][:128])
        akid, date, cred_region = parts[0], parts[1], parts[2]
        if not _DATE.fullmatch(form["x-amz-date"]) or form["x-amz-date"][:8] != date:
            raise errors.InvalidArgument("x-amz-date must be yyyymmddThhmmssZ on the "
                                         "credential's date", ArgumentName="x-amz-date",
                                         ArgumentValue=form["x-amz-date"][:32])
        if cred_region != region:
            raise errors.InvalidArgument(f"the region '{cred_region[:32]}' is wrong; expecting "
                                         f"'{region}'", ArgumentName="x-amz-credential",
                                         ArgumentValue=form["x-amz-credential"][:128])
        return PostClaim("v4", akid, form["x-amz-signature"], token, date, cred_region)
    if "signature" in form or "awsaccesskeyid" in form:
        for name in ("awsaccesskeyid", "signature", "policy"):
            if not form.get(name):
                raise missing("AWSAccessKeyId" if name == "awsaccesskeyid" else name)
        return PostClaim("v2", form["awsaccesskeyid"], form["signature"], token)
    if "policy" in form:
        raise missing("x-amz-signature")
    return None


def verify(c: PostClaim, secret: str, policy: str) -> None:
    """SignatureDoesNotMatch unless ``c.signature`` signs ``policy`` (the field as sent)
    under ``secret``; compared in constant time."""
    if c.version == "v4":
        key = sigv4.derive_signing_key(secret, c.date, c.region, "s3")
        expected = sigv4.sign_string(key, policy)
    else:
        expected = sigv2.sign(secret, policy)
    if not hmac.compare_digest(expected.encode(), c.signature.encode("utf-8", "replace")):
        raise errors.SignatureDoesNotMatch()
