"""Request condition keys of admin (IAM) API calls: ``iam:PermissionsBoundary``.

Why: AWS lets an administrator delegate user and role management only under a given
permissions boundary (Allow iam:CreateUser ... with StringEquals iam:PermissionsBoundary
= the boundary's ARN). AWS puts the key in the request context of
- the calls that set a boundary (CreateUser / CreateRole with one, Put{User,Role}
  PermissionsBoundary): the ARN of the boundary being set;
- the calls on a user or role that change what it may do (attach, detach, put and
  delete its policies, delete its boundary): the ARN of the boundary it has now.
A call without a boundary carries no key, so a StringEquals on it does not match and
the delegated admin cannot create or edit an unbounded entity.
"""

from __future__ import annotations

from typing import Any

from vallum.iam.directory import Directory, IAMError, policy_arn

KEY = "iam:permissionsboundary"

# admin action -> (entity kind, argument naming the boundary being set)
_SETS = {"CreateUser": ("user", "boundary"), "CreateRole": ("role", "boundary"),
         "PutUserPermissionsBoundary": ("user", "policy"),
         "PutRolePermissionsBoundary": ("role", "policy")}
# admin action -> the entity kind it acts on (None: the request's ``kind`` argument)
_ON_ENTITY = {"DeleteUserPermissionsBoundary": "user", "DeleteRolePermissionsBoundary": "role",
              "AttachPolicy": None, "DetachPolicy": None, "PutInlinePolicy": None,
              "DeleteInlinePolicy": None}


def boundary_keys(directory: Directory, action: str, account: str,
                  args: dict[str, Any]) -> dict[str, str]:
    """``{"iam:permissionsboundary": ARN}`` for ``action`` (an admin API action name)
    with body ``args`` in ``account``; empty when the call sets or meets no boundary."""
    if action in _SETS:
        ref = args.get(_SETS[action][1])
        if ref in (None, ""):
            return {}
        if not isinstance(ref, str):
            raise IAMError("a permissions boundary is a policy name or ARN")
        return {KEY: policy_arn(account, ref)}
    if action not in _ON_ENTITY:
        return {}
    kind = _ON_ENTITY[action] or args.get("kind")
    name = args.get(kind) if isinstance(kind, str) and _ON_ENTITY[action] else args.get("target")
    if kind not in ("user", "role") or not isinstance(name, str) or not name:
        return {}
    try:
        row = directory.user(account, name) if kind == "user" else directory.role(account, name)
    except IAMError:       # no such entity: the handler answers that once authorized
        return {}
    boundary = row.get("boundary")
    return {KEY: policy_arn(account, boundary)} if boundary else {}
