"""GetAccountAuthorizationDetails: every user, group, role and managed policy of the
caller's account with their policies, in one paginated answer (what auditing tools read).

Authorized on ``arn:aws:iam::ACCOUNT:*``: it reveals the whole account, so a policy
scoped to some users does not grant it.
"""

from __future__ import annotations

from typing import Any

from vallum.s3.xml import escape
from vallum.server.iam_query import shapes, wire
from vallum.server.iam_query.call import Call
from vallum.server.iam_query.wire import el

_FILTERS = ("User", "Group", "Role", "LocalManagedPolicy", "AWSManagedPolicy")
_ORDER = {"User": "1", "Group": "2", "Role": "3", "LocalManagedPolicy": "4"}


def _inline(call: Call, kind: str, name: str, tag: str) -> str:
    rows = call.directory.inline_policies(call.account, kind, name)
    return (f"<{tag}>" + "".join(f"<member>{el('PolicyName', r['name'])}<PolicyDocument>"
                                 f"{wire.document(r['document'])}</PolicyDocument></member>"
                                 for r in rows) + f"</{tag}>")


def _attached(call: Call, kind: str, name: str) -> str:
    names = call.directory.attached(call.account, kind, name)
    return f"<AttachedManagedPolicies>{shapes.attached(call.account, names)}</AttachedManagedPolicies>"


def _user(call: Call, row: dict[str, Any]) -> str:
    groups = call.directory.groups_of(call.account, row["name"])
    full = shapes.user(call.account, row, "member")
    extra = (_inline(call, "user", row["name"], "UserPolicyList")
             + wire.member_list("GroupList", [escape(g) for g in groups])
             + _attached(call, "user", row["name"]))
    return full[:-len("</member>")] + extra + "</member>"


def _group(call: Call, row: dict[str, Any]) -> str:
    return (f"<member>{shapes.group_fields(call.account, row)}"
            f"{_inline(call, 'group', row['name'], 'GroupPolicyList')}"
            f"{_attached(call, 'group', row['name'])}</member>")


def _role(call: Call, row: dict[str, Any]) -> str:
    full = shapes.role(call.account, row, "member")
    extra = ("<InstanceProfileList></InstanceProfileList>"
             + _inline(call, "role", row["name"], "RolePolicyList")
             + _attached(call, "role", row["name"]))
    return full[:-len("</member>")] + extra + "</member>"


def _policy(call: Call, row: dict[str, Any]) -> str:
    return (f"<member>{shapes.policy_fields(call.directory, call.account, row)}"
            f"<PolicyVersionList>{shapes.version(row, 'member')}</PolicyVersionList></member>")


def get_account_authorization_details(call: Call) -> str:
    wanted = wire.members(call.params, "Filter") or list(_FILTERS)
    for f in wanted:
        if f not in _FILTERS:
            raise wire.validation("filter.member", "Member must satisfy enum value set: "
                                  f"[{', '.join(_FILTERS)}]", f)
    call.need("GetAccountAuthorizationDetails", f"arn:aws:iam::{call.account}:*")
    d, account = call.directory, call.account
    listing = {"User": d.list_users, "Group": d.list_groups, "Role": d.list_roles,
               "LocalManagedPolicy": d.list_policies}       # no AWS-managed policies here
    items = [(kind, row) for kind, scan in listing.items() if kind in wanted
             for row in scan(account)]
    out, trailer = wire.page(items, lambda i: f"{_ORDER[i[0]]}/{i[1]['name']}", call.params)
    render = {"User": _user, "Group": _group, "Role": _role, "LocalManagedPolicy": _policy}
    lists = {"User": "UserDetailList", "Group": "GroupDetailList", "Role": "RoleDetailList",
             "LocalManagedPolicy": "Policies"}
    body = ""
    for kind, tag in lists.items():
        body += f"<{tag}>" + "".join(render[k](call, row) for k, row in out if k == kind) + f"</{tag}>"
    return body + trailer
