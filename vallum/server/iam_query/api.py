"""The AWS IAM query API on the gateway: ``POST /`` with ``Action=...&Version=2010-05-08``,
SigV4-signed for service ``iam`` (what ``aws iam --endpoint-url``, boto3's IAM client and
Terraform's AWS provider send).

Why it is told from STS by the signature's credential scope: both are form POSTs to
``/``; a request signed for ``iam`` is this API's, one signed for ``sts`` (or unsigned)
stays STS's. Every call acts in the caller's own account (the platform root belongs to
none: it manages accounts with ``vallum admin``) and is authorized per resource ARN by
the caller's policies (call.py); the front door authenticates, admits and audits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from vallum import authz
from vallum.http import Headers, Request, Response
from vallum.iam.directory import IAMError
from vallum.iam.policy import MalformedPolicy
from vallum.s3 import errors
from vallum.s3.router import Endpoint
from vallum.server.iam_query import details, policies, roles, users, wire
from vallum.server.iam_query.call import Call
from vallum.server.iam_query.wire import QueryError

log = logging.getLogger("vallum.iam_query")
MAX_BODY = 256 * 1024        # the largest role policy (10 KiB) URL-encoded, with room
_HEADERS = {"content-type": "text/xml"}

Action = Callable[[Call], "str | None"]
ACTIONS: dict[str, Action] = {
    "CreateUser": users.create_user, "GetUser": users.get_user, "ListUsers": users.list_users,
    "DeleteUser": users.delete_user,
    "CreateAccessKey": users.create_access_key, "ListAccessKeys": users.list_access_keys,
    "UpdateAccessKey": users.update_access_key, "DeleteAccessKey": users.delete_access_key,
    "CreateGroup": users.create_group, "GetGroup": users.get_group,
    "ListGroups": users.list_groups, "DeleteGroup": users.delete_group,
    "AddUserToGroup": users.add_user_to_group,
    "RemoveUserFromGroup": users.remove_user_from_group,
    "ListGroupsForUser": users.list_groups_for_user,
    "CreateRole": roles.create_role, "GetRole": roles.get_role, "ListRoles": roles.list_roles,
    "DeleteRole": roles.delete_role, "UpdateAssumeRolePolicy": roles.update_assume_role_policy,
    "PutUserPermissionsBoundary": roles.put_boundary("user"),
    "DeleteUserPermissionsBoundary": roles.delete_boundary("user"),
    "PutRolePermissionsBoundary": roles.put_boundary("role"),
    "DeleteRolePermissionsBoundary": roles.delete_boundary("role"),
    "CreatePolicy": policies.create_policy, "GetPolicy": policies.get_policy,
    "GetPolicyVersion": policies.get_policy_version,
    "ListPolicyVersions": policies.list_policy_versions,
    "ListPolicies": policies.list_policies, "DeletePolicy": policies.delete_policy,
    "ListEntitiesForPolicy": policies.list_entities_for_policy,
    "ListInstanceProfilesForRole": roles.list_instance_profiles_for_role,
    "ListUserTags": roles.list_tags("user"), "ListRoleTags": roles.list_tags("role"),
    "ListPolicyTags": roles.list_tags("policy"),
    **policies.per_kind(),
    "GetAccountAuthorizationDetails": details.get_account_authorization_details,
}


class IamQueryApi:
    """IAM's query protocol, answered in AWS's XML."""

    name = "iam"
    body_limit: int | None = MAX_BODY
    service = "iam"
    signed_only = True
    tenant_view = False

    def match(self, method: str, path: str, headers: Headers) -> bool:
        return (method == "POST" and path == "/"
                and "/iam/aws4_request" in (headers.get("authorization") or ""))

    def public(self, method: str, path: str) -> bool:
        return False

    def endpoint(self, services: Any, method: str, path: str, query: str,
                 headers: Headers) -> Endpoint:
        return Endpoint(self.name, None, None)

    def attribution(self, method: str, path: str, query: str) -> dict[str, Any]:
        return {"action": "iam:unknown", "decision": "deny"}

    async def handle(self, request: Request) -> Response:
        return await handle(request)

    def render_error(self, err: errors.S3Error, request_id: str, path: str) -> Response:
        return Response(err.status, dict(_HEADERS),
                        wire.error_xml(err.code, err.message, err.status, request_id))


def _params(payload: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(payload.decode("utf-8"), keep_blank_values=True,
                              strict_parsing=bool(payload), max_num_fields=2000))
    except (UnicodeError, ValueError):
        raise QueryError("InvalidInput", "The request body is not a valid form.") from None


def _run(action: Action, call: Call) -> str | None:
    out = action(call)
    if not call.asked:       # an action must authorize something: never answer unchecked
        raise QueryError("AccessDenied", "Not authorized.", 403, "no permission was checked")
    return out


async def handle(request: Request) -> Response:
    """One IAM call; ``request.audit`` says who asked for what on which resource and what
    decided, refusals included."""
    audit = request.audit
    audit.update(action="iam:unknown", decision="deny")
    caller = request.caller
    assert caller is not None and not caller.anonymous      # signed_only
    rid = request.request_id
    try:
        params = _params(request.payload)
        name = params.get("Action", "")
        audit["action"] = f"iam:{name}" if name.isalnum() else "iam:unknown"
        if params.get("Version") not in (None, wire.VERSION):
            raise QueryError("InvalidInput", f"Version {params['Version'][:32]!r} is not "
                             f"supported; use {wire.VERSION}.")
        action = ACTIONS.get(name)
        if action is None:
            raise QueryError("InvalidAction", f"Could not find operation {name[:64]} for "
                             f"version {wire.VERSION}")
        if caller.is_root:
            raise QueryError("AccessDenied", "The platform root belongs to no account: call "
                             "the IAM API with an account's credentials (accounts are managed "
                             "with `vallum admin`).", 403, "platform root: no account")
        keys = authz.global_keys(request.source_ip, request.secure, time.time())
        call = Call(request.services.iam.directory, caller.account, caller, params, keys, audit)
        result = await asyncio.to_thread(_run, action, call)     # writes commit with an fsync
        audit["decision"] = "allow"
        log.info("iam %s by %s", name, caller.arn)
        return Response(200, dict(_HEADERS), wire.response_xml(name, result, rid))
    except QueryError as exc:
        return _refused(audit, exc.code, exc.message, exc.status, rid, exc.rule)
    except MalformedPolicy as exc:
        where = f" at {exc.position}" if exc.position else ""
        return _refused(audit, "MalformedPolicyDocument", f"{exc}{where}", 400, rid)
    except IAMError as exc:       # the directory's refusals, and clearance (AccessDenied)
        return _refused(audit, exc.code, exc.message, exc.status, rid, f"clearance: {exc.message}")


def _refused(audit: dict[str, Any], code: str, message: str, status: int, rid: str,
             rule: str | None = None) -> Response:
    """The error answer; the audit keeps the allowing rule of a call authorized and then
    refused by the directory (NoSuchEntity, ...), and names what denied one refused."""
    if code == "AccessDenied":
        audit.update(decision="deny", rule=rule or "denied")
    elif audit.get("decision") != "allow":
        audit["rule"] = f"invalid: {code}"
    return _error(code, message, status, rid)


def _error(code: str, message: str, status: int, rid: str) -> Response:
    return Response(status, dict(_HEADERS), wire.error_xml(code, message, status, rid))


API = IamQueryApi()
