"""Users, their access keys and groups: IAM query actions on the directory.

Each action authorizes first (``call.need``, on the entity's ARN), then reads or writes.
Keys are minted under the clearance rules every credential path follows
(iam/clearance.py): the caller's clearance must dominate the user's, and the key records
the caller's as its ceiling.
"""

from __future__ import annotations

from vallum.iam import clearance
from vallum.iam.admin_keys import KEY as BOUNDARY_KEY
from vallum.iam.directory import DeleteConflict, LimitExceeded, NoSuchEntity
from vallum.server.iam_query import shapes, wire
from vallum.server.iam_query.call import Call
from vallum.server.iam_query.wire import el, iso

MAX_GROUPS_PER_USER = 10


def listed(params: dict[str, str]) -> bool:
    """Whether a PathPrefix selects anything: every entity is at path ``/``."""
    return params.get("PathPrefix") in (None, "", "/")


def create_user(call: Call) -> str:
    d, p = call.directory, call.params
    name = wire.name(p, "UserName")
    wire.path(p)
    tags = wire.tags(p)
    keys, ref, boundary = {}, "", None
    if p.get("PermissionsBoundary"):
        ref, boundary = call.policy_ref("CreateUser", "PermissionsBoundary")
        keys[BOUNDARY_KEY] = ref
    call.need("CreateUser", call.arn("user", name), keys)
    if tags:
        call.need("TagUser", call.arn("user", name))
    if boundary:
        call.managed(ref, boundary)
    row = d.create_user(call.account, name, tags=tags, boundary=boundary)
    return shapes.user(call.account, row)


def get_user(call: Call) -> str:
    name = call.user_or_self()
    call.need("GetUser", call.arn("user", name))
    return shapes.user(call.account, call.directory.user(call.account, name))


def list_users(call: Call) -> str:
    call.need("ListUsers", call.arn("user", "*"))
    rows = call.directory.list_users(call.account) if listed(call.params) else []
    out, trailer = wire.page(rows, lambda r: r["name"], call.params)
    return ("<Users>" + "".join(shapes.user(call.account, r, "member") for r in out)
            + "</Users>" + trailer)


def delete_user(call: Call) -> None:
    d, account = call.directory, call.account
    name = wire.name(call.params, "UserName")
    call.need("DeleteUser", call.arn("user", name))
    d.user(account, name)
    if d.list_keys(account, name):
        raise DeleteConflict("Cannot delete entity, must delete access keys first.")
    if d.inline_policies(account, "user", name):
        raise DeleteConflict("Cannot delete entity, must delete policies first.")
    if d.attached(account, "user", name):
        raise DeleteConflict("Cannot delete entity, must detach all policies first.")
    if d.groups_of(account, name):
        raise DeleteConflict("Cannot delete entity, must remove users from group first.")
    d.delete_user(account, name)


# -- access keys -----------------------------------------------------------------

def create_access_key(call: Call) -> str:
    d, account = call.directory, call.account
    user = call.user_or_self()
    call.need("CreateAccessKey", call.arn("user", user))
    clearance.require(call.caller, d.user(account, user).get("clearance"), "iam:CreateAccessKey")
    key = d.create_key(account, user, ceiling=clearance.ceiling_of(call.caller))
    created = d.key(key.access_key_id, account).created
    return (f"<AccessKey>{el('UserName', user)}{el('AccessKeyId', key.access_key_id)}"
            f"<Status>Active</Status>{el('SecretAccessKey', key.secret_access_key)}"
            f"{el('CreateDate', iso(created))}</AccessKey>")


def list_access_keys(call: Call) -> str:
    user = call.user_or_self()
    call.need("ListAccessKeys", call.arn("user", user))
    call.directory.user(call.account, user)
    out, trailer = wire.page(call.directory.list_keys(call.account, user),
                             lambda k: k["access_key_id"], call.params)
    return ("<AccessKeyMetadata>" + "".join(shapes.key_metadata(k) for k in out)
            + "</AccessKeyMetadata>" + trailer)


def _own_key(call: Call, action: str) -> tuple[str, str]:
    """(user, key id) of a key-id action, authorized on the user; a key of another user
    or account is NoSuchEntity, as one that does not exist."""
    user = call.user_or_self()
    key_id = wire.text(call.params, "AccessKeyId", max_len=128)
    call.need(action, call.arn("user", user))
    call.directory.user(call.account, user)
    key = call.directory.store.get_key(key_id)
    if key is None or key.account != call.account or key.user_name != user:
        raise NoSuchEntity(f"The Access Key with id {key_id} cannot be found.")
    return user, key_id


def update_access_key(call: Call) -> None:
    status = wire.text(call.params, "Status")
    if status not in ("Active", "Inactive"):
        raise wire.validation("status", "Member must satisfy enum value set: [Active, Inactive]",
                              status)
    user, key_id = _own_key(call, "UpdateAccessKey")
    if status == "Active":     # an inactive key may be one the caller kept: re-check
        clearance.require(call.caller, call.directory.user(call.account, user).get("clearance"),
                          "iam:UpdateAccessKey")
    call.directory.set_key_status(key_id, status, call.account)


def delete_access_key(call: Call) -> None:
    _, key_id = _own_key(call, "DeleteAccessKey")
    call.directory.delete_key(key_id, call.account)


# -- groups ----------------------------------------------------------------------

def create_group(call: Call) -> str:
    name = wire.name(call.params, "GroupName")
    wire.path(call.params)
    call.need("CreateGroup", call.arn("group", name))
    return shapes.group(call.account, call.directory.create_group(call.account, name))


def get_group(call: Call) -> str:
    d, account = call.directory, call.account
    name = wire.name(call.params, "GroupName")
    call.need("GetGroup", call.arn("group", name))
    row = d.group(account, name)
    users = [u for u in (d.store.get("user", account=account, name=n) for n in row["users"]) if u]
    out, trailer = wire.page(users, lambda r: r["name"], call.params)
    return (shapes.group(account, row) + "<Users>"
            + "".join(shapes.user(account, u, "member") for u in out) + "</Users>" + trailer)


def list_groups(call: Call) -> str:
    call.need("ListGroups", call.arn("group", "*"))
    rows = call.directory.list_groups(call.account) if listed(call.params) else []
    out, trailer = wire.page(rows, lambda r: r["name"], call.params)
    return ("<Groups>" + "".join(shapes.group(call.account, r, "member") for r in out)
            + "</Groups>" + trailer)


def delete_group(call: Call) -> None:
    d, account = call.directory, call.account
    name = wire.name(call.params, "GroupName")
    call.need("DeleteGroup", call.arn("group", name))
    if d.group(account, name)["users"]:
        raise DeleteConflict("Cannot delete entity, must remove users from group first.")
    if d.inline_policies(account, "group", name) or d.attached(account, "group", name):
        raise DeleteConflict("Cannot delete entity, must delete policies first.")
    d.delete_group(account, name)


def add_user_to_group(call: Call) -> None:
    d, account = call.directory, call.account
    group, user = wire.name(call.params, "GroupName"), wire.name(call.params, "UserName")
    call.need("AddUserToGroup", call.arn("group", group))
    d.group(account, group)
    d.user(account, user)
    groups = d.groups_of(account, user)
    if group not in groups and len(groups) >= MAX_GROUPS_PER_USER:
        raise LimitExceeded(f"Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}")
    d.add_to_group(account, group, user)


def remove_user_from_group(call: Call) -> None:
    d, account = call.directory, call.account
    group, user = wire.name(call.params, "GroupName"), wire.name(call.params, "UserName")
    call.need("RemoveUserFromGroup", call.arn("group", group))
    d.group(account, group)
    d.user(account, user)
    if group not in d.groups_of(account, user):
        raise NoSuchEntity(f"The user with name {user} cannot be found in group {group}.")
    d.remove_from_group(account, group, user)


def list_groups_for_user(call: Call) -> str:
    d, account = call.directory, call.account
    user = wire.name(call.params, "UserName")
    call.need("ListGroupsForUser", call.arn("user", user))
    d.user(account, user)
    rows = [g for g in (d.store.get("group", account=account, name=n)
                        for n in d.groups_of(account, user)) if g]
    out, trailer = wire.page(rows, lambda r: r["name"], call.params)
    return ("<Groups>" + "".join(shapes.group(account, r, "member") for r in out)
            + "</Groups>" + trailer)


def check_exists(kind: str, call: Call, name: str) -> None:
    """NoSuchEntity unless the user, group or role exists (after authorization)."""
    getter = {"user": call.directory.user, "group": call.directory.group,
              "role": call.directory.role}[kind]
    getter(call.account, name)

