"""The JSON admin API under /-/admin/ and the STS endpoint hook (POST / with Action=...).

Admin calls are ``POST /-/admin/v1/<Action>`` with a JSON object body, SigV4-signed
(service ``s3``, signed payload). The platform root may do everything; any other
caller acts only inside its own account and needs ``iam:<Action>`` from its identity
policies (an account's admin user has it). Account management is root-only.
Answers are JSON; errors are ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

from vallum import authz
from vallum.iam import clearance, gate, sts_api
from vallum.iam.admin_keys import boundary_keys
from vallum.iam.directory import IAMError
from vallum.iam.identity import parsed
from vallum.iam.policy import MalformedPolicy
from vallum.iam.principal import Principal
from vallum.s3 import errors
from vallum.security.labels import LabelError
from vallum.security.labels import parse as parse_label
from vallum.server import downgrade
from vallum.server.http import Response

log = logging.getLogger("vallum.admin")
MAX_BODY = 1024 * 1024


async def read_body(receive, limit: int = MAX_BODY) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.MaxMessageLengthExceeded()
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _headers(scope: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]


async def _authenticated(services, scope, body: bytes, path: str, service: str
                         ) -> tuple[Principal, list[tuple[str, str]]]:
    headers = _headers(scope)
    digest = hashlib.sha256(body).hexdigest()
    sent = [v for k, v in headers if k == "x-amz-content-sha256"]
    if not sent:       # query-protocol signers (STS) hash the body without sending this header
        headers.append(("x-amz-content-sha256", digest))
    elif sent[0] != digest:
        raise errors.XAmzContentSHA256Mismatch()
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client") or ("", 0)
    auth, principal = await gate.authenticate(services, scope["method"], path, query, headers,
                                              client[0], service=service)
    if auth is None:
        raise errors.AccessDenied("This endpoint requires a signed request.")
    return principal, headers


# ---------------------------------------------------------------- STS

def is_sts(scope: dict[str, Any], path: str) -> bool:
    if scope["method"] != "POST" or path != "/":
        return False
    # Only requests signed for STS: anything else at POST / stays an S3 (error) answer.
    return any(k.lower() == b"authorization" and b"/sts/aws4_request" in v
               for k, v in scope["headers"])


async def handle_sts(services, scope, receive, request_id: str) -> Response:
    headers = {"content-type": "text/xml"}
    try:
        body = await read_body(receive, 64 * 1024)
        principal, _ = await _authenticated(services, scope, body, "/", "sts")
        if principal.anonymous:
            raise sts_api.STSError("MissingAuthenticationToken",
                                   "Request is missing Authentication Token", 403)
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        iam = services.iam
        if action == "GetCallerIdentity":
            out = sts_api.get_caller_identity(iam, principal, params, request_id)
        elif action == "GetSessionToken":
            out = sts_api.get_session_token(iam, principal, params, request_id)
        elif action == "AssumeRole":
            client = scope.get("client") or ("", 0)
            keys = {"aws:sourceip": client[0],
                    "aws:securetransport": "true" if scope.get("scheme") == "https" else "false"}
            out = sts_api.assume_role(iam, principal, params, request_id, keys)
        else:
            raise sts_api.STSError("InvalidAction", f"Could not find operation {action}")
        return Response(200, headers, out)
    except sts_api.STSError as exc:
        return Response(exc.status, headers, exc.xml(request_id))
    except errors.S3Error as exc:
        return Response(exc.status, headers, sts_api.STSError(exc.code, exc.message,
                                                              exc.status).xml(request_id))


# ---------------------------------------------------------------- admin API

def _json(status: int, doc: Any) -> Response:
    return Response(status, {"content-type": "application/json"},
                    json.dumps(doc, default=str, sort_keys=True).encode())


def _need(args: dict[str, Any], *names: str) -> list[Any]:
    missing = [n for n in names if args.get(n) in (None, "")]
    if missing:
        raise IAMError(f"missing required field(s): {', '.join(missing)}")
    return [args[n] for n in names]


def _doc(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def _simulate(services, d, account: str, args: dict[str, Any]) -> dict[str, Any]:
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
    ctx = authz.Context(keys={k.lower(): v for k, v in (args.get("context") or {}).items()})
    if resource.startswith("arn:aws:s3:::"):
        bucket = await services.meta.get_bucket(resource[13:].split("/", 1)[0])
        if bucket is not None:
            ctx.resource_owner = bucket.owner
            if bucket.config.get("policy"):
                ctx.bucket_policy = parsed(bucket.config["policy"], "resource")
    decision = authz.decide(who, action, resource, ctx)
    return {"decision": "allow" if decision.allowed else "deny", "reason": decision.reason,
            "policy": decision.policy, "statement": decision.statement}


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


# action -> (iam action checked for account callers, or None for root-only; handler)
def _actions():
    return {
        "CreateAccount": (None, lambda d, a, x, w: (lambda acc, key: {"account": acc, "admin_key": asdict(key)})(*d.create_account(*_need(x, "name")))),
        "ListAccounts": (None, lambda d, a, x, w: {"accounts": d.list_accounts()}),
        "GetAccount": (None, lambda d, a, x, w: d.account(*_need(x, "account"))),
        "DeleteAccount": (None, lambda d, a, x, w: d.delete_account(d.account(*_need(x, "account"))["id"])),
        "CreateUser": ("CreateUser", lambda d, a, x, w: d.create_user(a, *_need(x, "user"), admin=bool(x.get("admin")), tags=x.get("tags"), boundary=x.get("boundary"))),
        "GetUser": ("GetUser", lambda d, a, x, w: {**d.user(a, *_need(x, "user")), "groups": d.groups_of(a, x["user"]), "keys": d.list_keys(a, x["user"]), "policies": [lbl for lbl, _ in d.policies_of(a, "user", x["user"])]}),
        "ListUsers": ("ListUsers", lambda d, a, x, w: {"users": d.list_users(a)}),
        "DeleteUser": ("DeleteUser", lambda d, a, x, w: d.delete_user(a, *_need(x, "user"))),
        "CreateGroup": ("CreateGroup", lambda d, a, x, w: d.create_group(a, *_need(x, "group"))),
        "GetGroup": ("ListGroups", lambda d, a, x, w: d.group(a, *_need(x, "group"))),
        "ListGroups": ("ListGroups", lambda d, a, x, w: {"groups": d.list_groups(a)}),
        "DeleteGroup": ("DeleteGroup", lambda d, a, x, w: d.delete_group(a, *_need(x, "group"))),
        "AddUserToGroup": ("AddUserToGroup", lambda d, a, x, w: d.add_to_group(a, *_need(x, "group", "user"))),
        "RemoveUserFromGroup": ("RemoveUserFromGroup", lambda d, a, x, w: d.remove_from_group(a, *_need(x, "group", "user"))),
        "CreateAccessKey": ("CreateAccessKey", lambda d, a, x, w: _key_out(d.create_key(a, *_need(x, "user"), ceiling=clearance.ceiling_of(w)))),
        "ListAccessKeys": ("ListAccessKeys", lambda d, a, x, w: {"keys": d.list_keys(a, x.get("user"))}),
        "UpdateAccessKey": ("UpdateAccessKey", lambda d, a, x, w: d.set_key_status(*_need(x, "access_key_id", "status"), account=a)),
        "RotateAccessKey": ("CreateAccessKey", lambda d, a, x, w: _key_out(d.rotate_key(*_need(x, "access_key_id"), account=a, ceiling=clearance.ceiling_of(w)))),
        "DeleteAccessKey": ("DeleteAccessKey", lambda d, a, x, w: d.delete_key(*_need(x, "access_key_id"), account=a)),
        "CreatePolicy": ("CreatePolicy", lambda d, a, x, w: d.put_policy(a, x.get("policy") or "", _doc(x.get("document") or ""))),
        "GetPolicy": ("GetPolicy", lambda d, a, x, w: d.policy(a, *_need(x, "policy"))),
        "ListPolicies": ("ListPolicies", lambda d, a, x, w: {"policies": d.list_policies(a)}),
        "DeletePolicy": ("DeletePolicy", lambda d, a, x, w: d.delete_policy(a, *_need(x, "policy"))),
        "AttachPolicy": ("AttachUserPolicy", lambda d, a, x, w: d.attach(a, *_need(x, "kind", "target", "policy"))),
        "DetachPolicy": ("DetachUserPolicy", lambda d, a, x, w: d.detach(a, *_need(x, "kind", "target", "policy"))),
        "PutInlinePolicy": ("PutUserPolicy", lambda d, a, x, w: d.put_inline(a, *_need(x, "kind", "target", "name"), _doc(x.get("document") or ""))),
        "DeleteInlinePolicy": ("DeleteUserPolicy", lambda d, a, x, w: d.delete_inline(a, *_need(x, "kind", "target", "name"))),
        "CreateRole": ("CreateRole", lambda d, a, x, w: d.create_role(a, *_need(x, "role"), _doc(x.get("trust_policy") or ""), max_session=int(x.get("max_session", 3600)), boundary=x.get("boundary"))),
        "GetRole": ("GetRole", lambda d, a, x, w: {**d.role(a, *_need(x, "role")), "policies": [lbl for lbl, _ in d.policies_of(a, "role", x["role"])]}),
        "ListRoles": ("ListRoles", lambda d, a, x, w: {"roles": d.list_roles(a)}),
        "DeleteRole": ("DeleteRole", lambda d, a, x, w: d.delete_role(a, *_need(x, "role"))),
        "PutUserPermissionsBoundary": ("PutUserPermissionsBoundary", lambda d, a, x, w: d.put_boundary(a, "user", *_need(x, "user", "policy"))),
        "DeleteUserPermissionsBoundary": ("DeleteUserPermissionsBoundary", lambda d, a, x, w: d.delete_boundary(a, "user", *_need(x, "user"))),
        "PutRolePermissionsBoundary": ("PutRolePermissionsBoundary", lambda d, a, x, w: d.put_boundary(a, "role", *_need(x, "role", "policy"))),
        "DeleteRolePermissionsBoundary": ("DeleteRolePermissionsBoundary", lambda d, a, x, w: d.delete_boundary(a, "role", *_need(x, "role"))),
        "SetClearance": (None, _set_clearance),
    }


ACTIONS = _actions()


async def handle(services, scope, receive, path: str) -> Response:
    try:
        if scope["method"] != "POST" or not path.startswith("/-/admin/v1/"):
            return _json(404, {"error": {"code": "NotFound", "message": "use POST /-/admin/v1/<Action>"}})
        name = path.split("?", 1)[0][len("/-/admin/v1/"):]
        body = await read_body(receive)
        principal, _ = await _authenticated(services, scope, body, path.split("?", 1)[0], "s3")
        if principal.anonymous:
            raise errors.AccessDenied()
        args = json.loads(body or b"{}")
        if not isinstance(args, dict):
            raise IAMError("the body must be a JSON object")
        if name == "DowngradeLabel":     # an S3 object operation: its own permission and audit
            client = scope.get("client") or ("", 0)
            return _json(200, await downgrade.downgrade(services, principal, args, client[0]))
        d = services.iam.directory
        if principal.is_root:
            account = args.get("account")
            if account:
                account = d.account(account)["id"]
        else:
            account = principal.account
            if args.get("account") not in (None, "", account):
                raise errors.AccessDenied("An account admin acts only inside its own account.")
        if name == "Simulate":
            iam_action = "SimulatePrincipalPolicy"
        elif name == "OperatorAlerts":      # the root sees every account; an account admin its own
            iam_action = None if principal.is_root else "GetOperatorAlerts"
        elif name in ACTIONS:
            iam_action = ACTIONS[name][0]
        else:
            return _json(404, {"error": {"code": "InvalidAction", "message": f"unknown action {name}"}})
        if not principal.is_root:
            if iam_action is None:
                raise errors.AccessDenied("Only the platform root manages accounts.")
            needed = [iam_action]
            if name == "CreateUser" and args.get("admin"):
                needed.append("PutUserPolicy")      # --admin gives the user a full-access policy
            # The request's global keys (an admin may be limited to an address or to TLS),
            # plus iam:PermissionsBoundary: the boundary set, or the target's current one.
            client = scope.get("client") or ("", 0)
            ctx = authz.Context(keys={
                **gate.global_keys(client[0], scope.get("scheme") == "https", time.time()),
                **boundary_keys(d, name, account, args)})
            for one in needed:
                decision = authz.decide(principal, "iam:" + one, f"arn:aws:iam::{account}:*", ctx)
                if not decision.allowed:
                    raise errors.AccessDenied(f"not authorized to perform iam:{one}")
        if iam_action is not None and not account:
            raise IAMError("missing required field: account")
        if name == "Simulate":
            result = await _simulate(services, d, account, args)
        elif name == "OperatorAlerts":
            from vallum.operator.journal import alerts_for
            result = await asyncio.to_thread(alerts_for, services.config.data_dir, account or None, args)
        else:
            # Writes commit with an fsync: keep them off the event loop.
            _guard_clearance(d, principal, name, account, args)
            result = await asyncio.to_thread(ACTIONS[name][1], d, account, args, principal)
        log.info("admin %s by %s", name, principal.arn)
        return _json(200, result if result is not None else {})
    except MalformedPolicy as exc:
        return _json(400, {"error": {"code": "MalformedPolicy", "message": str(exc),
                                     "position": exc.position}})
    except IAMError as exc:
        return _json(exc.status, {"error": {"code": exc.code, "message": exc.message}})
    except errors.S3Error as exc:
        return _json(exc.status, {"error": {"code": exc.code, "message": exc.message}})
    except (ValueError, TypeError) as exc:
        return _json(400, {"error": {"code": "ValidationError", "message": str(exc)}})
