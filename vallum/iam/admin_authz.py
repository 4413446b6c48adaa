"""What each admin API call needs: the IAM actions, each on the resource ARN AWS IAM uses.

Why: checking every call against ``arn:aws:iam::ACCOUNT:*`` made resource-scoped
policies (``Resource: arn:aws:iam::ACCOUNT:user/${aws:username}``) grant nothing, so
admins had to be given ``*``. Here a call on a user is authorized on that user's ARN,
on a group on the group's, and so on; an access key's actions on its user's ARN; list
calls on ``KIND/*``. Attach and detach carry ``iam:PolicyARN`` as AWS does.
"""

from __future__ import annotations

from typing import Any

from vallum.iam.directory import KINDS, Directory, IAMError, policy_arn
from vallum.iam.oidc import provider_arn

Need = tuple[str, str, dict[str, Any]]      # (iam action, resource ARN, extra condition keys)

_KIND_NAME = {"user": "User", "group": "Group", "role": "Role"}

# admin action -> (iam action, kind of the entity, argument naming it); "*": a list call
_ON_ENTITY: dict[str, tuple[str, str, str]] = {
    "CreateUser": ("CreateUser", "user", "user"), "GetUser": ("GetUser", "user", "user"),
    "DeleteUser": ("DeleteUser", "user", "user"), "ListUsers": ("ListUsers", "user", "*"),
    "CreateGroup": ("CreateGroup", "group", "group"), "GetGroup": ("GetGroup", "group", "group"),
    "DeleteGroup": ("DeleteGroup", "group", "group"), "ListGroups": ("ListGroups", "group", "*"),
    "AddUserToGroup": ("AddUserToGroup", "group", "group"),
    "RemoveUserFromGroup": ("RemoveUserFromGroup", "group", "group"),
    "CreateAccessKey": ("CreateAccessKey", "user", "user"),
    "CreatePolicy": ("CreatePolicy", "policy", "policy"),
    "GetPolicy": ("GetPolicy", "policy", "policy"),
    "DeletePolicy": ("DeletePolicy", "policy", "policy"),
    "ListPolicies": ("ListPolicies", "policy", "*"),
    "CreateRole": ("CreateRole", "role", "role"), "GetRole": ("GetRole", "role", "role"),
    "DeleteRole": ("DeleteRole", "role", "role"), "ListRoles": ("ListRoles", "role", "*"),
    "PutUserPermissionsBoundary": ("PutUserPermissionsBoundary", "user", "user"),
    "DeleteUserPermissionsBoundary": ("DeleteUserPermissionsBoundary", "user", "user"),
    "PutRolePermissionsBoundary": ("PutRolePermissionsBoundary", "role", "role"),
    "DeleteRolePermissionsBoundary": ("DeleteRolePermissionsBoundary", "role", "role"),
}
# admin action on a policy of an entity of args["kind"] -> IAM action template
_ON_POLICY_OF = {"AttachPolicy": "Attach{}Policy", "DetachPolicy": "Detach{}Policy",
                 "PutInlinePolicy": "Put{}Policy", "DeleteInlinePolicy": "Delete{}Policy"}
# admin action on an access key named by id -> IAM actions (on the key's user)
_ON_PROVIDER = ("CreateOpenIDConnectProvider", "GetOpenIDConnectProvider",
                "ListOpenIDConnectProviders", "DeleteOpenIDConnectProvider")
_ON_KEY = {"UpdateAccessKey": ("UpdateAccessKey",), "DeleteAccessKey": ("DeleteAccessKey",),
           "RotateAccessKey": ("CreateAccessKey", "UpdateAccessKey")}


def arn(account: str, kind: str, name: str) -> str:
    return f"arn:aws:iam::{account}:{kind}/{name}"


def _name(args: dict[str, Any], field: str) -> str:
    value = args.get(field)
    if not isinstance(value, str) or not value:
        raise IAMError(f"missing required field(s): {field}")
    return value


def needs(directory: Directory, action: str, account: str, args: dict[str, Any]) -> list[Need]:
    """The permissions ``action`` (an admin API action) with body ``args`` needs; empty
    for an action this module does not know (the caller refuses those)."""
    if action in _ON_ENTITY:
        iam_action, kind, field = _ON_ENTITY[action]
        resource = arn(account, kind, "*" if field == "*" else _name(args, field))
        out: list[Need] = [(iam_action, resource, {})]
        if action == "CreateUser" and args.get("admin"):
            out.append(("PutUserPolicy", resource, {}))   # --admin gives a full-access policy
        return out
    if action in _ON_POLICY_OF:
        kind = args.get("kind", "")         # "" (missing) is not in KINDS either
        if kind not in KINDS:
            raise IAMError(f"kind must be one of {', '.join(KINDS)}")
        resource = arn(account, kind, _name(args, "target"))
        keys = {}
        if action in ("AttachPolicy", "DetachPolicy"):
            keys["iam:policyarn"] = policy_arn(account, _name(args, "policy"))
        return [(_ON_POLICY_OF[action].format(_KIND_NAME[kind]), resource, keys)]
    if action in _ON_KEY:
        resource = _key_user(directory, account, _name(args, "access_key_id"))
        return [(one, resource, {}) for one in _ON_KEY[action]]
    if action == "ListAccessKeys":
        user = args.get("user")
        return [("ListAccessKeys", arn(account, "user", _name(args, "user") if user else "*"), {})]
    if action == "Simulate":
        kind = "role" if args.get("role") else "user"
        return [("SimulatePrincipalPolicy", arn(account, kind, _name(args, kind)), {})]
    if action in _ON_PROVIDER:
        if action == "ListOpenIDConnectProviders":
            return [(action, arn(account, "oidc-provider", "*"), {})]
        ref = args.get("arn") or args.get("url")
        if not isinstance(ref, str) or not ref:
            raise IAMError("missing required field(s): url")
        return [(action, provider_arn(account, ref.partition(":oidc-provider/")[2]
                                      if ref.startswith("arn:") else ref), {})]
    if action == "OperatorAlerts":
        return [("GetOperatorAlerts", f"arn:aws:iam::{account}:*", {})]
    return []


def _key_user(directory: Directory, account: str, key_id: str) -> str:
    """The ARN of the key's user; an unknown key (or another account's) is ``user/*``, so
    only a caller allowed on every user learns that it does not exist."""
    key = directory.store.get_key(key_id)
    if key is None or key.account != account:
        return arn(account, "user", "*")
    return arn(account, "user", key.user_name)
