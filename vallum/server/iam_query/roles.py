"""Roles, their trust policies, and permissions boundaries of users and roles."""

from __future__ import annotations

from collections.abc import Callable

from vallum.iam.admin_keys import KEY as BOUNDARY_KEY
from vallum.iam.directory import DeleteConflict
from vallum.server.iam_query import quotas, shapes, wire
from vallum.server.iam_query.call import Call
from vallum.server.iam_query.users import listed


def create_role(call: Call) -> str:
    p = call.params
    name = wire.name(p, "RoleName")
    wire.path(p)
    if wire.tags(p):
        raise wire.QueryError("ValidationError", "Tags on roles are not supported by Vallum "
                              "(a role session carries no principal tags)")
    trust = wire.text(p, "AssumeRolePolicyDocument")
    description = wire.text(p, "Description", required=False, max_len=1000)
    raw = p.get("MaxSessionDuration") or "3600"
    if not raw.isdigit() or not 3600 <= int(raw) <= 43200:
        raise wire.validation("maxSessionDuration",
                              "Member must have value between 3600 and 43200", raw)
    keys, ref, boundary = {}, "", None
    if p.get("PermissionsBoundary"):
        ref, boundary = call.policy_ref("CreateRole", "PermissionsBoundary")
        keys[BOUNDARY_KEY] = ref
    call.need("CreateRole", call.arn("role", name), keys)
    quotas.trust(trust)
    if boundary:
        call.managed(ref, boundary)
    row = call.directory.create_role(call.account, name, trust, max_session=int(raw),
                                     boundary=boundary, description=description or None)
    return shapes.role(call.account, row)


def get_role(call: Call) -> str:
    name = wire.name(call.params, "RoleName")
    call.need("GetRole", call.arn("role", name))
    return shapes.role(call.account, call.directory.role(call.account, name))


def list_roles(call: Call) -> str:
    call.need("ListRoles", call.arn("role", "*"))
    rows = call.directory.list_roles(call.account) if listed(call.params) else []
    out, trailer = wire.page(rows, lambda r: r["name"], call.params)
    return ("<Roles>" + "".join(shapes.role(call.account, r, "member") for r in out)
            + "</Roles>" + trailer)


def delete_role(call: Call) -> None:
    d, account = call.directory, call.account
    name = wire.name(call.params, "RoleName")
    call.need("DeleteRole", call.arn("role", name))
    d.role(account, name)
    if d.inline_policies(account, "role", name) or d.attached(account, "role", name):
        raise DeleteConflict("Cannot delete entity, must delete policies first.")
    d.delete_role(account, name)


def update_assume_role_policy(call: Call) -> None:
    name = wire.name(call.params, "RoleName")
    trust = wire.text(call.params, "PolicyDocument")
    call.need("UpdateAssumeRolePolicy", call.arn("role", name))
    call.directory.role(call.account, name)
    quotas.trust(trust)
    call.directory.set_trust_policy(call.account, name, trust)


def put_boundary(kind: str) -> Callable[[Call], None]:
    action = f"Put{kind.title()}PermissionsBoundary"

    def run(call: Call) -> None:
        name = wire.name(call.params, f"{kind.title()}Name")
        ref, policy = call.policy_ref(action, "PermissionsBoundary")
        call.need(action, call.arn(kind, name), {BOUNDARY_KEY: ref})
        (call.directory.user if kind == "user" else call.directory.role)(call.account, name)
        call.managed(ref, policy)
        call.directory.put_boundary(call.account, kind, name, policy)
    return run


def delete_boundary(kind: str) -> Callable[[Call], None]:
    action = f"Delete{kind.title()}PermissionsBoundary"

    def run(call: Call) -> None:
        name = wire.name(call.params, f"{kind.title()}Name")
        call.need(action, call.arn(kind, name), call.boundary_now(kind, name))
        call.directory.delete_boundary(call.account, kind, name)
    return run


def list_instance_profiles_for_role(call: Call) -> str:
    """Roles have no instance profiles here (none can be created): an empty list, which is
    what clients such as Terraform read before deleting a role."""
    name = wire.name(call.params, "RoleName")
    call.need("ListInstanceProfilesForRole", call.arn("role", name))
    call.directory.role(call.account, name)
    wire.page([], str, call.params)
    return "<InstanceProfiles></InstanceProfiles><IsTruncated>false</IsTruncated>"


def list_tags(kind: str) -> Callable[[Call], str]:
    """List{User,Role,Policy}Tags: a user's tags; roles and policies take none here."""
    action = f"List{kind.title()}Tags"

    def run(call: Call) -> str:
        if kind == "policy":
            ref, policy = call.policy_ref(action)
            call.need(action, ref)
            call.managed(ref, policy)
            tags: dict[str, str] = {}
        else:
            name = wire.name(call.params, f"{kind.title()}Name")
            call.need(action, call.arn(kind, name))
            row = (call.directory.user if kind == "user" else call.directory.role)(call.account,
                                                                                  name)
            tags = dict(row.get("tags") or {})
        out, trailer = wire.page(sorted(tags.items()), lambda kv: kv[0], call.params)
        return ("<Tags>" + "".join(f"<member>{wire.el('Key', k)}{wire.el('Value', v)}</member>"
                                   for k, v in out) + "</Tags>" + trailer)
    return run
