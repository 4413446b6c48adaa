"""The front door's authentication step (every API) and the S3 authorization step.

authenticate(): pull the access key id (and session token) out of the request
cheaply, refuse locked-out keys/addresses, resolve the key to its secret and
principal (IAM store, generation-checked), then verify SigV4 with a lookup closure.
authorize(): the request's condition keys and its bucket's context (authz.context_for:
owner, policy, PublicAccessBlock, object tags), then authz.decide(); AccessDenied unless
allowed.
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import parse_qsl

from vallum import authz
from vallum.iam import certauth, sts
from vallum.iam.principal import ANONYMOUS, Principal
from vallum.s3 import errors, router, sigv2, sigv4
from vallum.s3.copy_source import HEADER, parse_copy_source
from vallum.s3.handlers import labels, visibility
from vallum.s3.tags import tags_from_header
from vallum.security.crypto import fips

# Operations whose action names the version when ?versionId= is present.
VERSIONED_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion", "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl", "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAttributes": "s3:GetObjectVersionAttributes",
}
_HEADER_KEYS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
                "x-amz-acl", "x-amz-copy-source", "x-amz-metadata-directive",
                "x-amz-storage-class", "x-amz-content-sha256", "x-amz-grant-read",
                "x-amz-grant-write", "x-amz-grant-read-acp", "x-amz-grant-write-acp",
                "x-amz-grant-full-control")
# Object-lock headers surface under AWS's condition-key names (no "x-amz-" in the key).
_LOCK_KEYS = (("x-amz-object-lock-mode", "s3:object-lock-mode"),
              ("x-amz-object-lock-retain-until-date", "s3:object-lock-retain-until-date"),
              ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"))

# request header -> condition key, for condition_keys' single pass over the headers.
_HEADER_TO_KEY = {"user-agent": "aws:useragent", "referer": "aws:referer",
                  **{name: "s3:" + name for name in _HEADER_KEYS}, **dict(_LOCK_KEYS)}


def credential_of(headers: list[tuple[str, str]], raw_query: str) -> tuple[str | None, str | None]:
    """(access key id, session token) as the request claims them, without verifying."""
    akid = token = None
    for name, value in headers:
        if name == "authorization":
            i = value.find("Credential=")
            if i >= 0:
                akid = value[i + 11:].split("/", 1)[0].strip()
            elif value.startswith("AWS "):                     # SigV2: "AWS AKID:signature"
                akid = value[4:].rpartition(":")[0].strip()
        elif name == "x-amz-security-token":
            token = value
    if akid is None and ("X-Amz-Credential" in raw_query or "AWSAccessKeyId" in raw_query):
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            if name == "X-Amz-Credential":
                akid = value.split("/", 1)[0]
            elif name == "AWSAccessKeyId":
                akid = value
            elif name in ("X-Amz-Security-Token", "x-amz-security-token"):
                token = value
    if akid is None:
        v2_akid, v2_token = sigv2.claimed_credential(headers, raw_query)
        akid, token = v2_akid, token or v2_token
    return akid, token


def vhost_bucket(services: Any, raw_path: str, headers: list[tuple[str, str]]) -> str | None:
    """The bucket a virtual-host request names in its Host header (with ``--domain``):
    SigV2 signs it as the head of the resource, so a signature made for one bucket does
    not verify on another. None for path-style requests and the reserved ``/-/`` APIs."""
    domain = getattr(services.config, "domain", None)
    if not domain or raw_path.startswith("/-/"):
        return None
    host = next((value for name, value in headers if name == "host"), "")
    return router.virtual_bucket(host, domain)


async def authenticate(services: Any, method: str, raw_path: str, raw_query: str,
                       headers: list[tuple[str, str]], source_ip: str, *,
                       service: str = "s3", now: float | None = None,
                       client_cert: str | None = None
                       ) -> tuple[sigv4.AuthResult | None, Principal]:
    """Who sent the request (ANONYMOUS when unsigned); raises the S3 error otherwise.

    Failed-authentication limits (iam/auth_failures.py) are consulted only once a request has
    failed: a valid signature is never refused because of anyone's failures; over the
    limit, failures are answered SlowDown and no longer counted.
    The IAM lookup reads the store inline: one indexed read, cheaper than a thread hop.
    """
    now = time.time() if now is None else now
    if getattr(services.config, "fips", False) and fips.is_sigv2(headers, raw_query):
        raise errors.InvalidRequest(fips.SIGV2_REFUSED)      # no HMAC-SHA1 under --fips
    iam = services.iam
    akid, token = credential_of(headers, raw_query)
    resolved = None
    try:
        if akid is not None:
            try:
                resolved = iam.identities.resolve(akid, token, now)
            except sts.TokenExpired:
                raise errors.ExpiredToken() from None
            except sts.TokenError as exc:
                raise errors.InvalidToken("The provided token is malformed or otherwise "
                                          f"invalid: {exc}") from None
        secret = resolved[0] if resolved else None
        auth = sigv4.authenticate(method, raw_path, raw_query, headers,
                                  lookup_secret=lambda k: secret if k == akid else None,
                                  region=services.config.region, now=now, service=service,
                                  bucket_for_vhost=vhost_bucket(services, raw_path, headers))
    except (errors.InvalidAccessKeyId, errors.SignatureDoesNotMatch, errors.InvalidToken):
        if iam.limiter.blocked(akid, source_ip):
            raise errors.SlowDown("Too many failed authentication attempts; retry later.") from None
        iam.limiter.failed(akid, source_ip)
        raise
    if resolved and getattr(services, "compute", None) and services.compute.revoked(akid):
        raise errors.ExpiredToken()          # a compute task's key: its task has ended
    if resolved and resolved[1].certificate and not hmac.compare_digest(
            resolved[1].certificate, client_cert or ""):
        # A key minted from a client certificate (iam/sts_cert.py) is no use without it.
        raise errors.AccessDenied("These credentials are bound to a client certificate: send "
                                  "the request over a TLS connection presenting it.")
    if auth is not None and getattr(services.config, "require_signed_payload", False):
        refusal = strict_refusal(auth, method, headers)
        if refusal is not None:
            raise errors.AccessDenied(refusal)
    if auth is None or resolved is None:
        return auth, ANONYMOUS
    return auth, resolved[1]


_UNSIGNED_PAYLOADS = frozenset({"unsigned", "streaming-unsigned-trailer"})


def strict_refusal(auth: sigv4.AuthResult, method: str,
                   headers: list[tuple[str, str]]) -> str | None:
    """Why ``--require-signed-payload`` refuses a correctly signed request, or None.

    SigV2 (HMAC-SHA1, no payload hash, few headers signed) always; SigV4 with an unsigned
    payload unless it is a presigned GET/HEAD without a body (AWS's presigned URLs always
    say UNSIGNED-PAYLOAD; a download has no payload to sign)."""
    if auth.mode.endswith("-v2"):
        return ("This server requires AWS4-HMAC-SHA256 signatures with a signed payload; "
                "Signature Version 2 is refused.")
    if auth.payload not in _UNSIGNED_PAYLOADS:
        return None
    bodiless = not any(name == "transfer-encoding" or (name == "content-length"
                                                       and value.strip() not in ("", "0"))
                       for name, value in headers)
    if auth.mode == "presigned" and method in ("GET", "HEAD") and bodiless:
        return None
    return ("This server requires a signed payload (x-amz-content-sha256 set to the body's "
            "SHA-256 or STREAMING-AWS4-HMAC-SHA256-PAYLOAD); UNSIGNED-PAYLOAD is refused.")


# ---------------------------------------------------------------- authorization

def condition_keys(request: Any, now: float) -> dict[str, Any]:
    """The request-describing condition keys (aws:* globals and s3:* keys)."""
    h = request.headers
    keys = authz.global_keys(request.source_ip, request.secure, now)
    keys["aws:requestedregion"] = request.services.config.region
    certificate = getattr(request, "client_certificate", None)
    if isinstance(certificate, certauth.ClientCertificate):
        keys.update(certificate.condition_keys())
    for name, value in h.items():          # one pass over the few headers sent
        key = _HEADER_TO_KEY.get(name)
        if key is not None:
            keys[key] = value
    q = request.query
    for name in ("prefix", "delimiter", "max-keys"):
        if name in q:
            keys["s3:" + name] = q[name]
    if "versionId" in q:
        keys["s3:versionid"] = q["versionId"]
    auth = request.auth
    if auth is not None:
        keys["s3:signatureversion"] = "AWS" if auth.mode.endswith("-v2") else "AWS4-HMAC-SHA256"
        keys["s3:authtype"] = ("REST-QUERY-STRING" if auth.mode.startswith("presigned")
                               else "REST-HEADER")
    # The handler's own parser: tags it would refuse are refused here, before any policy.
    tags = tags_from_header(h.get("x-amz-tagging"))
    if tags:
        for k, v in tags.items():
            keys["s3:requestobjecttag/" + k.lower()] = v
        keys["s3:requestobjecttagkeys"] = list(tags)
    return keys


def principal_of(request: Any) -> Principal:
    caller = getattr(request.services, "caller", None)
    if caller is not None:
        return caller
    if request.principal is None:
        return ANONYMOUS
    iam = request.services.iam
    return iam.identities.root_principal() if request.principal == iam.identities.root.access_key \
        else ANONYMOUS


# id(policies tuple or Policy) -> (that object, answer): the strong reference pins the id.
_TAG_NEEDS: dict[int, tuple[Any, bool]] = {}


def _uses_object_tags(obj: Any, policies: Any) -> bool:
    hit = _TAG_NEEDS.get(id(obj))
    if hit is None or hit[0] is not obj:
        if len(_TAG_NEEDS) >= 4096:
            _TAG_NEEDS.clear()
        hit = _TAG_NEEDS[id(obj)] = (obj, any(c.key.startswith("s3:existingobjecttag/")
                                              for p in policies for st in p.statements
                                              for c in st.conditions))
    return hit[1]


def _needs_object_tags(principal: Principal, bucket_policy: Any) -> bool:
    """Does any policy in play test s3:ExistingObjectTag (costing an object read)?"""
    for mine in (principal.policies, principal.session_policies, principal.boundary):
        if mine and _uses_object_tags(mine, [p for _, p in mine]):
            return True
    return bucket_policy is not None and _uses_object_tags(bucket_policy, [bucket_policy])


async def _context(request: Any, principal: Principal, bucket_name: str | None, key: str | None,
                   version_id: str | None, keys: dict[str, Any]) -> authz.Context:
    """The context of a request naming this bucket/key/version (``authz.context_for``),
    reading the object's tags only when a policy in play tests them."""
    if bucket_name is None:
        return authz.context_for(keys)
    bucket = await request.services.meta.get_bucket(bucket_name)
    if bucket is None:
        return authz.context_for(keys)     # the handler answers NoSuchBucket
    ctx = authz.context_for(keys, bucket)
    if key is not None and _needs_object_tags(principal, ctx.bucket_policy):
        record = await _tagged_version(request, bucket_name, key, version_id)
        # MAC first: a version the caller may not read has no tags for it (as if missing),
        # so no allow or deny can reveal that it exists or what it is tagged with.
        if record is not None and not record.delete_marker \
                and labels.readable(labels.subject(request), record):
            ctx = authz.context_for(keys, bucket, object_tags=record.extra.get("tags"))
    return ctx


async def _tagged_version(request: Any, bucket: str, key: str,
                          version_id: str | None) -> Any:
    """The version whose tags ``s3:ExistingObjectTag`` tests: the one named, else the one
    the handler will serve this caller, i.e. its newest readable version (a hidden newer
    version must neither hide the tags of the visible one nor lend it its own)."""
    meta = request.services.meta
    record = await meta.get_object(bucket, key, version_id)
    if version_id is not None or record is None:
        return record
    who = visibility.restricted(request)
    if who is None or labels.readable(who, record):
        return record
    found = await visibility.newest_readable(request, who, bucket, key, stop_at=None)
    return None if found is None else await meta.get_object(bucket, key, found.version_id)


async def _decide(request: Any, principal: Principal, action: str, resource: str,
                  bucket: str | None, key: str | None, version_id: str | None) -> authz.Decision:
    """authz.decide with the condition keys of a request naming this bucket/key/version."""
    keys = condition_keys(request, time.time())
    keys.pop("s3:versionid", None)
    if version_id is not None:
        keys["s3:versionid"] = version_id
    ctx = await _context(request, principal, bucket, key, version_id, keys)
    return authz.decide(principal, action, resource, ctx)


# Writes whose headers also do what another action does (AWS asks for that action too):
# a caller denied s3:PutObjectRetention must not lock an object through PutObject.
IMPLIED_BY_HEADERS = frozenset({"PutObject", "PostObject", "CopyObject", "CreateMultipartUpload"})
_ACL_HEADERS = ("x-amz-acl", "x-amz-grant-read", "x-amz-grant-read-acp", "x-amz-grant-write-acp",
                "x-amz-grant-full-control")


def implied_actions(headers: Any) -> list[str]:
    """The extra actions a new object's headers perform: tags, retention, legal hold, ACL."""
    out = []
    if "x-amz-tagging" in headers:
        out.append("s3:PutObjectTagging")
    if "x-amz-object-lock-mode" in headers or "x-amz-object-lock-retain-until-date" in headers:
        out.append("s3:PutObjectRetention")
    if "x-amz-object-lock-legal-hold" in headers:
        out.append("s3:PutObjectLegalHold")
    if any(name in headers for name in _ACL_HEADERS):
        out.append("s3:PutObjectAcl")
    return out


# Operations whose request-level check is replaced by one check per object they name
# (multidelete.py calls authorize_object for every key, as AWS evaluates DeleteObjects).
PER_OBJECT = frozenset({"DeleteObjects"})


async def check_expected_owner(request: Any, header: str, bucket_name: str | None) -> None:
    """x-amz-expected-bucket-owner (or x-amz-source-expected-bucket-owner): AccessDenied
    when the bucket's owner account differs, for every operation and every caller. The
    bucket is looked up in the caller's own view: one it cannot see is missing, and the
    handler answers for it exactly as without the header."""
    expected = request.headers.get(header)
    if expected is None or bucket_name is None:
        return
    bucket = await request.services.meta.get_bucket(bucket_name)
    if bucket is not None and not hmac.compare_digest(bucket.owner.encode(),
                                                      expected.strip().encode()):
        request.decision, request.decision_reason = "deny", f"{header} does not name the owner"
        raise errors.AccessDenied()


async def authorize(request: Any, action: str, resource: str) -> authz.Decision:
    """Raise AccessDenied unless the caller may do ``action`` on ``resource``."""
    endpoint = request.endpoint
    if endpoint.name not in ("CreateBucket", "ListBuckets"):
        await check_expected_owner(request, "x-amz-expected-bucket-owner", endpoint.bucket)
    if endpoint.name in ("CopyObject", "UploadPartCopy") \
            and "x-amz-source-expected-bucket-owner" in request.headers:
        ref = parse_copy_source(request.headers.get(HEADER, ""))
        await check_expected_owner(request, "x-amz-source-expected-bucket-owner", ref.bucket)
    principal = principal_of(request)
    if principal.is_root:
        request.decision_reason = "platform root"
        return authz.Decision(True, "platform root")
    if endpoint.name in PER_OBJECT:
        request.decision_reason = f"{endpoint.name}: each object is authorized on its own"
        return authz.Decision(True, request.decision_reason)
    version_id = request.query.get("versionId")
    if version_id is not None:
        action = VERSIONED_ACTIONS.get(action, action)
    bucket = endpoint.bucket if endpoint.name not in ("CreateBucket", "ListBuckets") else None
    decision = await _decide(request, principal, action, resource, bucket, endpoint.key, version_id)
    if decision.allowed and endpoint.name in ("CopyObject", "UploadPartCopy"):
        decision = await _authorize_copy_source(request, principal)
    if decision.allowed and endpoint.name in IMPLIED_BY_HEADERS:
        for implied in implied_actions(request.headers):
            decision = await _decide(request, principal, implied, resource, bucket,
                                     endpoint.key, None)
            if not decision.allowed:
                break
    request.decision_reason = decision.reason      # audited as the deciding rule
    if not decision.allowed:
        request.decision = "deny"
        raise errors.AccessDenied()
    return decision


async def authorize_object(request: Any, action: str, key: str,
                           version_id: str | None = None) -> authz.Decision:
    """``action`` on one object of the request's bucket, decided exactly as a request
    naming that key (and version: s3:DeleteObject becomes s3:DeleteObjectVersion) alone
    would be. For batches (DeleteObjects) and permissions asked mid-request
    (s3:BypassGovernanceRetention). Raises AccessDenied; leaves the request's audited
    rule to the caller."""
    principal = principal_of(request)
    if principal.is_root:
        return authz.Decision(True, "platform root")
    if version_id is not None:
        action = VERSIONED_ACTIONS.get(action, action)
    bucket = request.endpoint.bucket
    decision = await _decide(request, principal, action, f"arn:aws:s3:::{bucket}/{key}",
                             bucket, key, version_id)
    if not decision.allowed:
        raise errors.AccessDenied()
    return decision


async def _authorize_copy_source(request: Any, principal: Principal) -> authz.Decision:
    """s3:GetObject(Version) on the source, named by the parser the handler uses too:
    a value it cannot parse is refused here (InvalidArgument), never waved through. The
    source's own tags are its s3:ExistingObjectTag keys (a copy is a read of it)."""
    ref = parse_copy_source(request.headers.get(HEADER, ""))
    action = "s3:GetObjectVersion" if ref.version_id is not None else "s3:GetObject"
    return await _decide(request, principal, action, ref.arn, ref.bucket, ref.key, ref.version_id)
