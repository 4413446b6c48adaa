"""OIDC identity providers and web identity tokens (STS AssumeRoleWithWebIdentity).

Why pinned keys: sites are often air-gapped, so a provider is registered with its JWKS
(inline JSON, or a file the platform root names, re-read when it changes) instead of
being fetched. A token is accepted only when every check passes: its ``iss`` names a
provider registered in the role's account (another account's provider does not count),
it is at most ``MAX_TOKEN`` characters, signed RS256 or ES256 (``none`` and HMAC are
refused before any key is touched: no algorithm confusion) by the key its ``kid`` names,
``iss`` equals the provider URL, ``aud`` is one of its client ids, and ``exp``/``nbf``/
``iat`` hold within ``LEEWAY`` seconds. PyJWT does the signature and claim checks.

A provider may map a token claim to a MAC clearance, capped by a maximum only the
platform root sets; the session's clearance never exceeds the role's nor that cap.
Errors are data: ``WebIdentityError`` carries the STS error code AWS gives.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jwt

from vallum.iam import clearance
from vallum.iam.directory import Directory, EntityAlreadyExists, IAMError, NoSuchEntity
from vallum.iam.evaluate import Caller
from vallum.iam.principal import Principal
from vallum.iam.store import Op
from vallum.security.mac.labels import LabelError
from vallum.security.mac.labels import parse as parse_label

ALGORITHMS = ("RS256", "ES256")        # the allowlist; the key type must match too
_KEY_TYPE = {"RS256": "RSA", "ES256": "EC"}
MAX_TOKEN = 20000                      # AWS's WebIdentityToken length limit
LEEWAY = 60                            # seconds of clock skew tolerated on exp/nbf/iat
MAX_CLIENT_IDS = 100
_URL = re.compile(r"https://([A-Za-z0-9.\-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~\-/]*)?)")
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,255}")
KIND = "oidc_provider"


class WebIdentityError(Exception):
    """A refused token; ``code``/``status`` are the STS error AWS answers with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def invalid(message: str) -> WebIdentityError:
    return WebIdentityError("InvalidIdentityToken", message)


# ---------------------------------------------------------------- providers

def provider_name(url: str) -> str:
    """``host/path`` of an issuer URL: the provider ARN's tail and its condition-key prefix."""
    return url.removeprefix("https://").rstrip("/")


def provider_arn(account: str, url: str) -> str:
    return f"arn:aws:iam::{account}:oidc-provider/{provider_name(url)}"


def _name_of(args: dict[str, Any]) -> str:
    """The provider a Get/Delete names: by ``arn`` or by ``url``."""
    ref = args.get("arn") or args.get("url")
    if not isinstance(ref, str) or not ref:
        raise IAMError("missing required field(s): arn or url")
    if ref.startswith("arn:"):
        return ref.partition(":oidc-provider/")[2]
    return provider_name(ref)


def _jwks(value: Any) -> dict[str, Any]:
    """A JWKS document checked to hold at least one usable key (RS256/ES256)."""
    doc = json.loads(value) if isinstance(value, str) else value
    if not isinstance(doc, dict):
        raise IAMError("jwks must be a JSON Web Key Set object")
    try:
        keys = jwt.PyJWKSet.from_dict(doc).keys
    except (jwt.PyJWKSetError, jwt.PyJWKError, ValueError, TypeError) as exc:
        raise IAMError(f"invalid jwks: {exc}") from None
    if not any(k.key_type in ("RSA", "EC") for k in keys):
        raise IAMError("jwks holds no RSA or EC key")
    return doc


def create_provider(d: Directory, account: str, args: dict[str, Any],
                    who: Principal) -> dict[str, Any]:
    """Register a provider. A JWKS file and the clearance mapping are the root's to set:
    a file path reads the gateway's disk, and clearances are set by the root only."""
    url = args.get("url")
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise IAMError("url must be an https:// issuer URL (host and optional path)")
    url = url.rstrip("/")
    ids = args.get("client_ids")
    if (not isinstance(ids, list) or not ids or len(ids) > MAX_CLIENT_IDS
            or not all(isinstance(i, str) and _CLIENT_ID.fullmatch(i) for i in ids)):
        raise IAMError(f"client_ids must be a list of 1-{MAX_CLIENT_IDS} client ids")
    jwks, jwks_file = args.get("jwks"), args.get("jwks_file")
    if (jwks is None) == (jwks_file is None):
        raise IAMError("give exactly one of jwks (pinned JSON) or jwks_file")
    claim, cap = args.get("clearance_claim"), args.get("max_clearance")
    if not who.is_root and (jwks_file is not None or claim is not None or cap is not None):
        raise clearance.ClearanceDenied("only the platform root sets jwks_file, "
                                        "clearance_claim and max_clearance")
    row: dict[str, Any] = {"account": account, "name": provider_name(url), "url": url,
                           "client_ids": sorted(set(ids)), "created": time.time()}
    if jwks is not None:
        row["jwks"] = _jwks(jwks)
    else:
        if not isinstance(jwks_file, str) or not os.path.isabs(jwks_file):
            raise IAMError("jwks_file must be an absolute path")
        row["jwks_file"] = jwks_file
        _jwks(_read_file(jwks_file))
    if (claim is None) != (cap is None):
        raise IAMError("clearance_claim and max_clearance go together")
    if claim is not None:
        if not isinstance(claim, str) or not claim or not isinstance(cap, str):
            raise IAMError("clearance_claim must be a claim name, max_clearance a label")
        try:
            row["max_clearance"] = parse_label(cap).banner()
        except LabelError as exc:
            raise IAMError(f"invalid max_clearance: {exc}") from None
        row["clearance_claim"] = claim
    if d.store.get(KIND, account=account, name=row["name"]) is not None:
        raise EntityAlreadyExists(f"provider {url} already exists")
    d.store.apply([Op("put", KIND, row)])
    return describe(row)


def describe(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: row[k] for k in ("url", "client_ids", "created", "jwks_file", "clearance_claim",
                               "max_clearance") if k in row}
    out["arn"] = provider_arn(row["account"], row["url"])
    return out


def get_provider(d: Directory, account: str, args: dict[str, Any]) -> dict[str, Any]:
    row = d.store.get(KIND, account=account, name=_name_of(args))
    if row is None:
        raise NoSuchEntity("no such OpenID Connect provider")
    return describe(row)


def list_providers(d: Directory, account: str) -> dict[str, Any]:
    return {"providers": [describe(r) for r in d.store.scan(KIND, account=account)]}


def delete_provider(d: Directory, account: str, args: dict[str, Any]) -> dict[str, Any]:
    name = _name_of(args)
    if d.store.get(KIND, account=account, name=name) is None:
        raise NoSuchEntity("no such OpenID Connect provider")
    d.store.apply([Op("delete", KIND, {"account": account, "name": name})])
    return {}


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise IAMError(f"cannot read jwks_file: {exc.strerror}") from None


_FILE_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}


def _keys_of(row: dict[str, Any]) -> dict[str, Any]:
    """The provider's JWKS: pinned, or its file (re-read when its mtime changes)."""
    if "jwks" in row:
        return row["jwks"]
    path = row["jwks_file"]
    try:
        mtime = os.stat(path).st_mtime
        hit = _FILE_CACHE.get(path)
        if hit is None or hit[0] != mtime:
            hit = _FILE_CACHE[path] = (mtime, json.loads(Path(path).read_text()))
        return hit[1]
    except (OSError, ValueError):
        raise WebIdentityError("IDPCommunicationError",
                               "the identity provider's keys cannot be read", 400) from None


# ---------------------------------------------------------------- tokens

@dataclass(frozen=True)
class Verified:
    """A token that passed every check, and the provider that vouched for it."""

    provider: dict[str, Any]
    claims: dict[str, Any]

    @property
    def name(self) -> str:
        return self.provider["name"]

    @property
    def subject(self) -> str:
        return str(self.claims.get("sub", ""))

    @property
    def audience(self) -> str:
        aud = self.claims.get("aud")
        ids = self.provider["client_ids"]
        if isinstance(aud, list):
            return next((a for a in aud if a in ids), "")
        return str(aud)

    @property
    def arn(self) -> str:
        return provider_arn(self.provider["account"], self.provider["url"])

    def condition_keys(self) -> dict[str, Any]:
        """The claims as trust-policy condition keys, keyed as AWS does: ``host/path:claim``
        (lower-case). Only strings, numbers, booleans and lists of them; ``:aud`` is the
        client id the token was accepted for."""
        out: dict[str, Any] = {}
        for claim, value in self.claims.items():
            if isinstance(value, (str, int, float, bool)):
                out[f"{self.name}:{claim}".lower()] = str(value).lower() \
                    if isinstance(value, bool) else str(value)
            elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
                out[f"{self.name}:{claim}".lower()] = [str(v) for v in value]
        out[f"{self.name}:aud".lower()] = self.audience
        return out


def verify(d: Directory, account: str, token: str, now: float | None = None) -> Verified:
    """The verified claims of ``token`` for a role of ``account``; WebIdentityError if not."""
    if not isinstance(token, str) or not 4 <= len(token) <= MAX_TOKEN:
        raise WebIdentityError("ValidationError", "1 validation error detected: Value at "
                               "'webIdentityToken' failed to satisfy constraint: Member must "
                               f"have length between 4 and {MAX_TOKEN}")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise invalid("The web identity token is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise invalid(f"The token's signing algorithm is not allowed (only {', '.join(ALGORITHMS)})")
    iss = unverified.get("iss")
    row = d.store.get(KIND, account=account, name=provider_name(iss)) \
        if isinstance(iss, str) and iss.startswith("https://") else None
    if row is None:
        raise invalid("No OpenIDConnect provider found in your account for the token's issuer")
    key = _signing_key(_keys_of(row), header.get("kid"), alg)
    try:
        claims = jwt.decode(token, key=key, algorithms=[alg], audience=row["client_ids"],
                            issuer=row["url"], leeway=LEEWAY,
                            options={"require": ["exp", "iat", "iss", "sub", "aud"]})
    except jwt.ExpiredSignatureError:
        raise WebIdentityError("ExpiredTokenException", "Token expired") from None
    except jwt.InvalidAudienceError:
        raise invalid("Incorrect token audience") from None
    except jwt.InvalidIssuerError:
        raise invalid("Incorrect token issuer") from None
    except jwt.ImmatureSignatureError:
        raise invalid("The token is not yet valid (nbf or iat in the future)") from None
    except jwt.PyJWTError:
        raise invalid("The web identity token could not be validated") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise invalid("The token has no subject")
    return Verified(row, claims)


def _signing_key(jwks: dict[str, Any], kid: Any, alg: str) -> Any:
    """The public key ``kid`` names, of the type ``alg`` needs (a key without ``kid`` only
    when the set holds exactly one usable key)."""
    try:
        keys = [k for k in jwt.PyJWKSet.from_dict(jwks).keys
                if k.key_type == _KEY_TYPE[alg] and k.public_key_use in (None, "sig")]
    except (jwt.PyJWKSetError, jwt.PyJWKError, ValueError, TypeError):
        raise WebIdentityError("IDPCommunicationError",
                               "the identity provider's keys cannot be read") from None
    if kid is None:
        if len(keys) == 1:
            return keys[0].key
        raise invalid("The token names no key (kid) and the provider has several")
    for k in keys:
        if k.key_id == kid:
            return k.key
    raise invalid("The token's key (kid) is not one of the provider's keys")


def ceiling(v: Verified) -> str:
    """The clearance ceiling of the session: the mapped claim, within the root's cap; the
    lowest level when the provider maps none or the token carries none."""
    row = v.provider
    claim = row.get("clearance_claim")
    raw = v.claims.get(claim) if claim else None
    if raw is None:
        return clearance.LOWEST.banner()
    try:
        level = parse_label(str(raw))
    except LabelError:
        raise WebIdentityError("IDPRejectedClaim", f"The {claim} claim is not a clearance",
                               403) from None
    if not clearance.label(row.get("max_clearance")).dominates(level):
        raise WebIdentityError("IDPRejectedClaim", f"The {claim} claim is above the clearance "
                               "this provider may grant", 403)
    return level.banner()


@dataclass(frozen=True)
class WebIdentity(Principal):
    """The caller of AssumeRoleWithWebIdentity as a trust policy sees it: its ARN is the
    provider's, matched only by ``Principal: {"Federated": ...}``."""

    @cached_property
    def _caller(self) -> Caller:
        return Caller(self.arn, self.account, "", False, federated=True)

    @cached_property
    def _context_keys(self) -> dict[str, Any]:
        return {"aws:principaltype": "WebIdentity"}


def caller_of(v: Verified) -> WebIdentity:
    return WebIdentity("", v.provider["account"], False, arn=v.arn, user_id=v.subject)
