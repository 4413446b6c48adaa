"""Temporary credentials: self-contained session tokens, and the STS query API.

A session token is the session itself, encrypted under the master key
(AES-GCM, bound to "vallum-sts-v1"): every gateway sharing the data directory can
check it without a database write per session, and no client can forge or alter
it. It carries the temporary access key id and secret, who the session is
(role + session name, or the user of GetSessionToken), the session policy, and the
expiry. A request signed with the temporary key must send the token in
``x-amz-security-token``; a token past its expiry answers ExpiredToken.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from dataclasses import asdict, dataclass, field

from vallum.security.crypto import primitives as crypto

_AAD = b"vallum-sts-v1"
TEMP_PREFIX = "ASIA"
CERT_SOURCE = "x509:"     # source_key of a user session minted from a client certificate
_ALPHABET = string.ascii_uppercase + string.digits
MIN_DURATION, MAX_DURATION = 900, 43200
DEFAULT_ROLE_DURATION, DEFAULT_TOKEN_DURATION = 3600, 43200


class TokenError(Exception):
    """The token is malformed, forged, or does not belong to the access key."""


class TokenExpired(Exception):
    pass


@dataclass(frozen=True)
class Session:
    access_key_id: str
    secret: str
    account: str
    expires: float
    issued: float
    user: str | None = None            # GetSessionToken: the IAM user
    source_key: str | None = None      # ... and the long-term key it came from
    # AssumeRoleWithCertificate: the SHA-256 of the client certificate the key is bound to
    # (keyword-only: the positional fields keep their order)
    certificate: str | None = field(default=None, kw_only=True)
    role: str | None = None            # AssumeRole: the role name ...
    session_name: str | None = None    # ... and the session name
    policy: str | None = None          # session policy text
    session_level: str | None = None   # fixed MAC session level (banner), e.g. a compute task's
    role_id: str | None = None         # AssumeRole: the role's unique id (AROA...), so a
    #                                    re-created role of the same name does not revive it
    ceiling: str | None = None         # clearance of who minted it (iam/clearance.py); None: root
    source_identity: str | None = None  # federated logins: the external identity (ldap:DN,
    #                                     oidc:ISSUER#SUB), in every request's audit record


SESSION_LEVEL_TAG = "vallum:session-level"    # AssumeRole session tag binding a level


def requested_level(params: dict[str, str]) -> str | None:
    """The session level an AssumeRole asks for: the session tag ``vallum:session-level``
    (``Tags.member.N.Key`` / ``.Value``, which any STS client can send). None: none."""
    for name, value in params.items():
        if name.startswith("Tags.member.") and name.endswith(".Key") and value == SESSION_LEVEL_TAG:
            return params.get(name[:-len("Key")] + "Value", "")
    return None


def new_session(*, account: str, duration: int, user: str | None = None,
                source_key: str | None = None, role: str | None = None,
                session_name: str | None = None, policy: str | None = None,
                now: float | None = None, session_level: str | None = None,
                role_id: str | None = None, ceiling: str | None = None,
                source_identity: str | None = None) -> Session:
    now = time.time() if now is None else now
    akid = TEMP_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return Session(akid, secrets.token_urlsafe(30)[:40], account, now + duration, now, user,
                   source_key, role, session_name, policy, session_level, role_id, ceiling,
                   source_identity)


def encode(master_key: bytes, session: Session) -> str:
    raw = json.dumps(asdict(session), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(crypto.wrap(master_key, raw, _AAD)).decode().rstrip("=")


def decode(master_key: bytes, token: str, access_key_id: str, now: float) -> Session:
    """The session a token carries; TokenError / TokenExpired when it cannot be used."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        session = Session(**json.loads(crypto.unwrap(master_key, blob, _AAD)))
    except (ValueError, TypeError, crypto.CryptoError):
        raise TokenError("the security token is invalid") from None
    if session.access_key_id != access_key_id:
        raise TokenError("the security token does not belong to this access key")
    if now >= session.expires:
        raise TokenExpired()
    return session
