"""The JSON admin API under /-/admin/ and STS (POST / with Action=...): two front-door
APIs (``ADMIN``, ``STS``; server/app.py reads, authenticates, admits and audits for them).

Admin calls are ``POST /-/admin/v1/<Action>`` with a JSON object body, SigV4-signed
(service ``s3``, signed payload). The platform root may do everything; any other
caller acts only inside its own account and needs ``iam:<Action>`` from its identity
policies (an account's admin user has it). Account management is root-only.
Answers are JSON; errors are ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, cast
from urllib.parse import parse_qsl

from vallum import authz
from vallum.http import Headers, Request, Response
from vallum.iam import admin_authz, clearance, ldap_directories, oidc, sts_api
from vallum.iam.admin_keys import boundary_keys
from vallum.iam.directory import IAMError
from vallum.iam.policy import MalformedPolicy
from vallum.iam.principal import Principal
from vallum.iam.sts_cert import ACTION as CERTIFICATE_ACTION
from vallum.iam.sts_cert import assume_role_with_certificate
from vallum.s3 import errors
from vallum.s3.handlers import labels
from vallum.s3.router import Endpoint
from vallum.security.mac.labels import LabelError
from vallum.security.mac.labels import parse as parse_label
from vallum.server import downgrade, event_targets_admin, quotas_admin

log = logging.getLogger("vallum.admin")
MAX_BODY = 1024 * 1024
STS_MAX_BODY = 64 * 1024


def _json(status: int, doc: Any) -> Response:
    return Response(status, {"content-type": "application/json"},
                    json.dumps(doc, default=str, sort_keys=True).encode())


def _json_error(err: errors.S3Error, request_id: str, path: str) -> Response:
    response = _json(err.status, {"error": {"code": err.code, "message": err.message}})
    response.headers.update(err.headers)        # e.g. SlowDown's Retry-After
    return response


# ---------------------------------------------------------------- STS

_STS_TARGETS = {"AssumeRole": lambda who, params: params.get("RoleArn") or None,
                "AssumeRoleWithWebIdentity": lambda who, params: params.get("RoleArn") or None,
                "AssumeRoleWithLDAPIdentity": lambda who, params: params.get("RoleArn") or None}
_STS_HEADERS = {"content-type": "text/xml"}


class StsApi:
    """STS (POST / with Action=...), answered in the STS query protocol's XML."""

    name = "sts"
    body_limit: int | None = STS_MAX_BODY
    service = "sts"
    signed_only = False       # AssumeRoleWith{WebIdentity,LDAPIdentity}: the token or the
    #                           password is the credential;
    #                           handle_sts refuses every other unsigned action
    tenant_view = False

    def match(self, method: str, path: str, headers: Headers) -> bool:
        # Requests signed for STS, and unsigned query-protocol forms (no S3 operation is an
        # unsigned form POST to /): anything else at POST / stays an S3 (error) answer.
        if method != "POST" or path != "/":
            return False
        auth = headers.get("authorization")
        if auth is None:
            kind = headers.get("content-type", "")
            if kind.startswith("application/x-www-form-urlencoded"):
                return True
            # MinIO's AssumeRoleWithCertificate form: the parameters in the query, no body.
            return not kind and headers.get("content-length", "0").strip() == "0" \
                and "transfer-encoding" not in headers
        return "/sts/aws4_request" in auth

    def public(self, method: str, path: str) -> bool:
        return False

    def endpoint(self, services: Any, method: str, path: str, query: str,
                 headers: Headers) -> Endpoint:
        return Endpoint(self.name, None, None, dict(parse_qsl(query, keep_blank_values=True)))

    def attribution(self, method: str, path: str, query: str) -> dict[str, Any]:
        return {"action": "sts:unknown", "decision": "deny"}

    async def handle(self, request: Request) -> Response:
        return await handle_sts(request)

    def render_error(self, err: errors.S3Error, request_id: str, path: str) -> Response:
        return Response(err.status, dict(_STS_HEADERS),
                        sts_api.STSError(err.code, err.message, err.status).xml(request_id))


async def handle_sts(request: Request) -> Response:
    """An STS call; ``request.audit`` says who asked for what and what decided,
    refusals included."""
    audit = request.audit
    audit.update(action="sts:unknown", decision="deny")
    principal = request.caller
    assert principal is not None          # anonymous, when unsigned
    request_id = request.request_id
    try:
        params = {**request.query, **dict(parse_qsl(request.payload.decode("utf-8", "replace"),
                                                    keep_blank_values=True))}
        action = params.get("Action", "")
        audit.update(action=f"sts:{action}" if action.isalnum() else "sts:unknown",
                     target=_STS_TARGETS.get(action, lambda who, p: who.arn)(principal, params))
        iam = request.services.iam
        if action == CERTIFICATE_ACTION:               # the client certificate decides
            now = time.time()
            out = await asyncio.to_thread(
                assume_role_with_certificate, iam, request.services.config,
                request.client_certificate, params, request_id,
                authz.global_keys(request.source_ip, request.secure, now), audit, now)
            audit["decision"] = "allow"
            return Response(200, dict(_STS_HEADERS), out)
        if action == "AssumeRoleWithWebIdentity":      # signed or not: the token decides
            keys = authz.global_keys(request.source_ip, request.secure, time.time())
            out = await asyncio.to_thread(sts_api.assume_role_with_web_identity, iam, params,
                                          request_id, keys, audit)
            audit["decision"] = "allow"
            return Response(200, dict(_STS_HEADERS), out)
        if action == "AssumeRoleWithLDAPIdentity":     # signed or not: the password decides
            keys = authz.global_keys(request.source_ip, request.secure, time.time())
            out = await _ldap_login(sts_api.assume_role_with_ldap_identity, iam, params,
                                    request_id, keys, audit, request.source_ip)
            audit["decision"] = "allow"
            return Response(200, dict(_STS_HEADERS), out)
        if principal.anonymous:
            raise sts_api.STSError("MissingAuthenticationToken",
                                   "Request is missing Authentication Token", 403)
        if action == "GetCallerIdentity":
            out = sts_api.get_caller_identity(iam, principal, params, request_id)
        elif action == "GetSessionToken":
            out = sts_api.get_session_token(iam, principal, params, request_id)
        elif action == "AssumeRole":
            keys = authz.global_keys(request.source_ip, request.secure, time.time())
            out = sts_api.assume_role(iam, principal, params, request_id, keys)
        else:
            raise sts_api.STSError("InvalidAction", f"Could not find operation {action}")
        audit.update(decision="allow", rule="platform root" if principal.is_root else "sts: allowed")
        return Response(200, dict(_STS_HEADERS), out)
    except sts_api.STSError as exc:
        audit["rule"] = exc.rule
        return Response(exc.status, dict(_STS_HEADERS), exc.xml(request_id))


STS = StsApi()

# LDAP logins wait on a remote directory: they get threads of their own, so a slow or
# silent directory (or a flood of logins to one) cannot take the default executor's
# threads, which serve object reads and writes. Past LDAP_QUEUE logins in flight in this
# process, more are answered Throttling at once.
LDAP_THREADS, LDAP_QUEUE = 8, 32
_ldap_pool = ThreadPoolExecutor(LDAP_THREADS, thread_name_prefix="vallum-ldap")
_ldap_in_flight = 0


async def _ldap_login(fn: Any, *args: Any) -> bytes:
    global _ldap_in_flight
    if _ldap_in_flight >= LDAP_QUEUE:
        raise sts_api.STSError("Throttling", "Too many LDAP logins in progress; retry later",
                               400, "ldap: too many logins in flight")
    _ldap_in_flight += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_ldap_pool, fn, *args)
    finally:
        _ldap_in_flight -= 1


# ---------------------------------------------------------------- admin API

def _need(args: dict[str, Any], *names: str) -> list[Any]:
    missing = [n for n in names if args.get(n) in (None, "")]
    if missing:
        raise IAMError(f"missing required field(s): {', '.join(missing)}")
    return [args[n] for n in names]


def _doc(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def _simulate(services, d, account: str, args: dict[str, Any],
                    caller: Principal) -> dict[str, Any]:
    action, resource = _need(args, "action", "resource")
    ids = services.iam.identities
    ids.refresh()
    if args.get("role"):
        who = ids.role_principal(account, args["role"])
    else:
        (user,) = _need(args, "user")
        d.user(account, user)
        who = ids.user_principal("simulated", account, user)
    if who is None:
        raise IAMError("no such principal")
    ctx = await _simulated_context(services, who, action, resource, args, caller)
    decision = authz.decide(who, action, resource, ctx)
    if decision.policy == "bucket-policy" and ctx.resource_owner not in (None, account):
        # Another account's bucket policy decided: say so, not what its statements are.
        return {"decision": "allow" if decision.allowed else "deny", "policy": "bucket-policy",
                "reason": "decided by the bucket's policy (another account's)", "statement": ""}
    return {"decision": "allow" if decision.allowed else "deny", "reason": decision.reason,
            "policy": decision.policy, "statement": decision.statement}


async def _simulated_context(services, who: Principal, action: str, resource: str,
                             args: dict[str, Any], caller: Principal) -> authz.Context:
    """The context a real request would be decided in, from ``authz.context_for`` as the
    gateway builds it: global keys (overridable by the call's ``context``), the bucket's
    owner, policy and PublicAccessBlock, the object's tags, and MAC: an object's label for
    reads, the session level and the bucket's range for PutObject. Objects of another
    account's bucket are not read (that would tell the caller they exist), nor are objects
    above the CALLER's own level: the simulated principal may be cleared higher than
    whoever asks, and the answer must not tell the caller such an object exists, its label
    or its tags."""
    given = {k.lower(): v for k, v in (args.get("context") or {}).items()}
    keys = {**authz.global_keys(str(given.get("aws:sourceip", "")),
                                given.get("aws:securetransport") == "true", time.time()), **given}
    if not resource.startswith("arn:aws:s3:::"):
        return authz.context_for(keys)
    bucket_name, _, key = resource[13:].partition("/")
    bucket = await services.meta.get_bucket(bucket_name)
    if bucket is None or bucket.owner != who.account:
        # Another account's objects (their existence, tags, labels) are not the
        # simulating account's to probe: the simulation stops at the bucket.
        return authz.context_for(keys, bucket)
    subject = downgrade.subject_of(who, args.get("session_level"))
    if action == "s3:PutObject":
        rng = labels.bucket_range(bucket)
        return authz.context_for(keys, bucket, labels=authz.LabelCheck(
            subject, write=labels.default_label(subject, rng, args.get("label")), bucket_range=rng))
    if key and (action.startswith("s3:GetObject") or action == downgrade.ACTION):
        record = await services.meta.get_object(bucket_name, key, args.get("version_id") or None)
        if record is not None and not labels.readable(downgrade.subject_of(caller), record):
            record = None                       # above the caller: as if it did not exist
        if record is not None and not record.delete_marker:
            return authz.context_for(keys, bucket, object_tags=record.extra.get("tags"),
                                     labels=authz.LabelCheck(
                                         subject, read=labels.record_label(record.extra)))
    return authz.context_for(keys, bucket)


def _key_out(k) -> dict[str, Any]:
    return asdict(k)


def _set_clearance(d, account: str, args: dict[str, Any], who: Principal) -> dict[str, Any]:
    """A user's or role's clearance (and a role's default session level), validated and
    stored canonical. Root-only: an account admin must not clear itself."""
    kind = "role" if args.get("role") else "user"
    (name,) = _need(args, kind)
    try:
        clearance = parse_label(args["clearance"]) if args.get("clearance") else None
        session = parse_label(args["session_level"]) if args.get("session_level") else None
    except LabelError as exc:
        raise IAMError(f"invalid label: {exc}") from None
    if session is not None and clearance is not None and not clearance.dominates(session):
        raise IAMError(f"session level {session} is above the clearance {clearance}")
    if session is not None and kind == "user":
        raise IAMError("a default session level is a role setting; users pass x-vallum-session-level")
    row = d.set_clearance(account, kind, name, clearance.banner() if clearance else None,
                          session.banner() if session else None)
    return {kind: name, "clearance": row.get("clearance"), "session_level": row.get("session_level")}


def _guard_clearance(d, who: Principal, name: str, account: str, args: dict[str, Any]) -> None:
    """Refuse a credential the caller's clearance does not dominate (iam/clearance.py):
    a new or rotated key of a cleared user, or re-enabling one (an inactive key may be one
    the caller kept). Raised before the change, re-checked by the ceiling the key records."""
    if who.is_root:
        return
    if name == "CreateAccessKey":
        owner = args.get("user")
    elif name == "RotateAccessKey" or (name == "UpdateAccessKey" and args.get("status") == "Active"):
        key_id = args.get("access_key_id")
        owner = d.key(key_id, account).user_name if isinstance(key_id, str) and key_id else None
    else:
        return
    if isinstance(owner, str) and owner:
        clearance.require(who, d.user(account, owner).get("clearance"), f"iam:{name}")


# Actions only the platform root may call (accounts; clearances: iam/clearance.py).
ROOT_ONLY = frozenset({"CreateAccount", "ListAccounts", "GetAccount", "DeleteAccount",
                       "SetClearance", "PutLDAPDirectory", "GetLDAPDirectory",
                       "ListLDAPDirectories", "DeleteLDAPDirectory"})


# action -> handler(directory, account, args, caller); the permissions each needs are in
# iam/admin_authz.py
def _actions():
    return {
        "CreateAccount": lambda d, a, x, w: (lambda acc, key: {"account": acc, "admin_key": asdict(key)})(*d.create_account(*_need(x, "name"))),
        "ListAccounts": lambda d, a, x, w: {"accounts": d.list_accounts()},
        "GetAccount": lambda d, a, x, w: d.account(*_need(x, "account")),
        "DeleteAccount": lambda d, a, x, w: d.delete_account(d.account(*_need(x, "account"))["id"]),
        "CreateUser": lambda d, a, x, w: d.create_user(a, *_need(x, "user"), admin=bool(x.get("admin")), tags=x.get("tags"), boundary=x.get("boundary")),
        "GetUser": lambda d, a, x, w: {**d.user(a, *_need(x, "user")), "groups": d.groups_of(a, x["user"]), "keys": d.list_keys(a, x["user"]), "policies": [lbl for lbl, _ in d.policies_of(a, "user", x["user"])]},
        "ListUsers": lambda d, a, x, w: {"users": d.list_users(a)},
        "DeleteUser": lambda d, a, x, w: d.delete_user(a, *_need(x, "user")),
        "CreateGroup": lambda d, a, x, w: d.create_group(a, *_need(x, "group")),
        "GetGroup": lambda d, a, x, w: d.group(a, *_need(x, "group")),
        "ListGroups": lambda d, a, x, w: {"groups": d.list_groups(a)},
        "DeleteGroup": lambda d, a, x, w: d.delete_group(a, *_need(x, "group")),
        "AddUserToGroup": lambda d, a, x, w: d.add_to_group(a, *_need(x, "group", "user")),
        "RemoveUserFromGroup": lambda d, a, x, w: d.remove_from_group(a, *_need(x, "group", "user")),
        "CreateAccessKey": lambda d, a, x, w: _key_out(d.create_key(a, *_need(x, "user"), ceiling=clearance.ceiling_of(w), session_level=clearance.issued_level(w, d.user(a, x["user"]).get("clearance"), x.get("session_level")))),
        "ListAccessKeys": lambda d, a, x, w: {"keys": d.list_keys(a, x.get("user"))},
        "UpdateAccessKey": lambda d, a, x, w: d.set_key_status(*_need(x, "access_key_id", "status"), account=a),
        "RotateAccessKey": lambda d, a, x, w: _key_out(d.rotate_key(*_need(x, "access_key_id"), account=a, ceiling=clearance.ceiling_of(w))),
        "DeleteAccessKey": lambda d, a, x, w: d.delete_key(*_need(x, "access_key_id"), account=a),
        "CreatePolicy": lambda d, a, x, w: d.put_policy(a, x.get("policy") or "", _doc(x.get("document") or "")),
        "GetPolicy": lambda d, a, x, w: d.policy(a, *_need(x, "policy")),
        "ListPolicies": lambda d, a, x, w: {"policies": d.list_policies(a)},
        "DeletePolicy": lambda d, a, x, w: d.delete_policy(a, *_need(x, "policy")),
        "AttachPolicy": lambda d, a, x, w: d.attach(a, *_need(x, "kind", "target", "policy")),
        "DetachPolicy": lambda d, a, x, w: d.detach(a, *_need(x, "kind", "target", "policy")),
        "PutInlinePolicy": lambda d, a, x, w: d.put_inline(a, *_need(x, "kind", "target", "name"), _doc(x.get("document") or "")),
        "DeleteInlinePolicy": lambda d, a, x, w: d.delete_inline(a, *_need(x, "kind", "target", "name")),
        "CreateRole": lambda d, a, x, w: d.create_role(a, *_need(x, "role"), _doc(x.get("trust_policy") or ""), max_session=int(x.get("max_session", 3600)), boundary=x.get("boundary")),
        "GetRole": lambda d, a, x, w: {**d.role(a, *_need(x, "role")), "policies": [lbl for lbl, _ in d.policies_of(a, "role", x["role"])]},
        "ListRoles": lambda d, a, x, w: {"roles": d.list_roles(a)},
        "DeleteRole": lambda d, a, x, w: d.delete_role(a, *_need(x, "role")),
        "PutUserPermissionsBoundary": lambda d, a, x, w: d.put_boundary(a, "user", *_need(x, "user", "policy")),
        "DeleteUserPermissionsBoundary": lambda d, a, x, w: d.delete_boundary(a, "user", *_need(x, "user")),
        "PutRolePermissionsBoundary": lambda d, a, x, w: d.put_boundary(a, "role", *_need(x, "role", "policy")),
        "DeleteRolePermissionsBoundary": lambda d, a, x, w: d.delete_boundary(a, "role", *_need(x, "role")),
        "SetClearance": _set_clearance,
        "CreateOpenIDConnectProvider": lambda d, a, x, w: oidc.create_provider(d, a, x, w),
        "GetOpenIDConnectProvider": lambda d, a, x, w: oidc.get_provider(d, a, x),
        "ListOpenIDConnectProviders": lambda d, a, x, w: oidc.list_providers(d, a),
        "DeleteOpenIDConnectProvider": lambda d, a, x, w: oidc.delete_provider(d, a, x),
        "PutLDAPDirectory": lambda d, a, x, w: ldap_directories.put_directory(d, x),
        "GetLDAPDirectory": lambda d, a, x, w: ldap_directories.get_directory(d, x),
        "ListLDAPDirectories": lambda d, a, x, w: ldap_directories.list_directories(d),
        "DeleteLDAPDirectory": lambda d, a, x, w: ldap_directories.delete_directory(d, x),
    }


ACTIONS = _actions()


def _account_of(d, principal: Principal, args: dict[str, Any]) -> str | None:
    """The account a call acts in: any (by id or name) for the root, else the caller's."""
    if principal.is_root:
        account = args.get("account")
        return d.account(account)["id"] if account else None
    if args.get("account") not in (None, "", principal.account):
        raise errors.AccessDenied("An account admin acts only inside its own account.")
    return principal.account


def _authorize(request: Request, d, principal: Principal, name: str, account: str,
               args: dict[str, Any], audit: dict[str, Any]) -> None:
    """Every permission the call needs, each on its resource ARN (iam/admin_authz.py),
    with the request's global keys (an admin may be limited to an address or to TLS) and
    iam:PermissionsBoundary (the boundary set, or the target's current one)."""
    needs = admin_authz.needs(d, name, account, args)
    if needs:
        audit.update(action="iam:" + needs[0][0], target=needs[0][1])
    if principal.is_root:
        audit["rule"] = "platform root"
        return
    if not needs:
        audit["rule"] = "root only"
        raise errors.AccessDenied("Only the platform root manages accounts and clearances.")
    base = {**authz.global_keys(request.source_ip, request.secure, time.time()),
            **boundary_keys(d, name, account, args)}
    for iam_action, resource, keys in needs:
        decision = authz.decide(principal, "iam:" + iam_action, resource,
                                authz.context_for({**base, **keys}))
        audit["rule"] = decision.reason
        if not decision.allowed:
            audit.update(action="iam:" + iam_action, target=resource)
            raise errors.AccessDenied(f"not authorized to perform iam:{iam_action} on {resource}")


class AdminApi:
    """The JSON admin API: ``POST /-/admin/v1/<Action>``."""

    name = "admin"
    body_limit: int | None = MAX_BODY
    service = "s3"
    signed_only = True
    tenant_view = False

    def match(self, method: str, path: str, headers: Headers) -> bool:
        return path.startswith("/-/admin/")

    def public(self, method: str, path: str) -> bool:
        return False

    def endpoint(self, services: Any, method: str, path: str, query: str,
                 headers: Headers) -> Endpoint:
        return Endpoint(self.name, None, None)

    def attribution(self, method: str, path: str, query: str) -> dict[str, Any]:
        return {"action": _action_name(path)}

    async def handle(self, request: Request) -> Response:
        return await handle(request)

    def render_error(self, err: errors.S3Error, request_id: str, path: str) -> Response:
        return _json_error(err, request_id, path)


def _action_name(path: str) -> str:
    name = path.split("?", 1)[0].removeprefix("/-/admin/v1/")
    return f"vallum:{name}" if name.isalnum() else "vallum:unknown"


async def handle(request: Request) -> Response:
    """One admin call; ``request.audit`` says who asked for what on which resource and
    what decided, refusals included."""
    audit = request.audit
    audit["decision"] = "deny"
    services, path = request.services, request.path
    principal = request.caller
    assert principal is not None          # the front door refused unsigned callers
    try:
        if request.method != "POST" or not path.startswith("/-/admin/v1/"):
            return _json(404, {"error": {"code": "NotFound", "message": "use POST /-/admin/v1/<Action>"}})
        name = path[len("/-/admin/v1/"):]
        audit["action"] = _action_name(path)
        args = json.loads(request.payload or b"{}")
        if not isinstance(args, dict):
            raise IAMError("the body must be a JSON object")
        if name in event_targets_admin.ACTIONS:   # event targets: their own authorization
            result = await event_targets_admin.handle(services, principal, name, args, audit)
            audit["decision"] = "allow"
            return _json(200, result)
        if name == "DowngradeLabel":     # an S3 object operation: its own permission and audit
            audit.update(action=downgrade.ACTION,
                         target=f"arn:aws:s3:::{args.get('bucket')}/{args.get('key')}")
            result = await downgrade.downgrade(services, principal, args, request.source_ip,
                                               request.secure)
            audit.update(decision="allow", rule="downgrade: allowed")
            return _json(200, result)
        if name in quotas_admin.ACTIONS:   # storage quotas and usage: their own authorization
            answer = await quotas_admin.handle(services, principal, name, args, audit)
            audit["decision"] = "allow"
            return answer if isinstance(answer, Response) else _json(200, answer)
        if name not in ACTIONS and name not in ("Simulate", "OperatorAlerts"):
            return _json(404, {"error": {"code": "InvalidAction", "message": f"unknown action {name}"}})
        d = services.iam.directory
        account = _account_of(d, principal, args)
        if account:
            audit["target"] = f"arn:aws:iam::{account}:root"
        if name in ROOT_ONLY:
            _authorize(request, d, principal, name, account or "", {}, audit)
        elif account:
            _authorize(request, d, principal, name, account, args, audit)
        elif not (name == "OperatorAlerts" and principal.is_root):   # the root sees every account
            raise IAMError("missing required field: account")
        if not principal.is_root:      # cast: _account_of gives a non-root caller its own account
            _guard_clearance(d, principal, name, cast(str, account), args)
        audit["decision"] = "allow"
        if name == "Simulate":
            # cast: Simulate is not root-only, so a call without an account was refused above
            result = await _simulate(services, d, cast(str, account), args, principal)
        elif name == "OperatorAlerts":
            from vallum.operator.journal import alerts_for
            result = await asyncio.to_thread(alerts_for, services.config.data_dir, account or None, args)
        else:
            # Writes commit with an fsync: keep them off the event loop.
            result = await asyncio.to_thread(ACTIONS[name], d, account, args, principal)
        log.info("admin %s by %s", name, principal.arn)
        return _json(200, result if result is not None else {})
    except MalformedPolicy as exc:
        return _json(400, {"error": {"code": "MalformedPolicy", "message": str(exc),
                                     "position": exc.position}})
    except IAMError as exc:
        if audit["decision"] == "deny":
            audit["rule"] = f"clearance: {exc.message}" if exc.code == "AccessDenied" \
                else f"invalid: {exc.code}"
        return _json(exc.status, {"error": {"code": exc.code, "message": exc.message}})
    except errors.S3Error as exc:
        audit.setdefault("rule", f"refused: {exc.code}")
        return _json(exc.status, {"error": {"code": exc.code, "message": exc.message}})
    except (ValueError, TypeError) as exc:
        return _json(400, {"error": {"code": "ValidationError", "message": str(exc)}})


ADMIN = AdminApi()
