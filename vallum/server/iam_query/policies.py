"""Managed policies, and the inline and attached policies of users, groups and roles.

The directory keeps one document per managed policy: it is version ``v1``, the default
(CreatePolicyVersion is not offered rather than pretending to keep history).
Attach, detach and every change to a user's or role's policies carry the condition keys
AWS sets: ``iam:PolicyARN`` and ``iam:PermissionsBoundary`` (the entity's boundary now).
"""

from __future__ import annotations

from collections.abc import Callable

from vallum.iam.directory import LimitExceeded, NoSuchEntity
from vallum.s3.xml import escape
from vallum.server.iam_query import quotas, shapes, wire
from vallum.server.iam_query.call import Call
from vallum.server.iam_query.users import check_exists, listed
from vallum.server.iam_query.wire import el

MAX_ATTACHED = 10
KINDS = ("user", "group", "role")


# -- managed policies --------------------------------------------------------------

def create_policy(call: Call) -> str:
    p = call.params
    name = wire.name(p, "PolicyName")
    wire.path(p)
    document = wire.text(p, "PolicyDocument")
    description = wire.text(p, "Description", required=False, max_len=1000)
    if wire.tags(p):
        raise wire.QueryError("ValidationError", "Tags on managed policies are not supported "
                              "by Vallum")
    call.need("CreatePolicy", call.arn("policy", name))
    quotas.managed(document)
    row = call.directory.create_policy(call.account, name, document, description or None)
    return shapes.policy(call.directory, call.account, row)


def get_policy(call: Call) -> str:
    ref, name = call.policy_ref("GetPolicy")
    call.need("GetPolicy", ref)
    return shapes.policy(call.directory, call.account, call.managed(ref, name))


def get_policy_version(call: Call) -> str:
    ref, name = call.policy_ref("GetPolicyVersion")
    version = wire.text(call.params, "VersionId", max_len=32)
    call.need("GetPolicyVersion", ref)
    row = call.managed(ref, name)
    if version != "v1":
        raise NoSuchEntity(f"Policy {ref} version {version} does not exist or is not attachable.")
    return shapes.version(row)


def list_policy_versions(call: Call) -> str:
    ref, name = call.policy_ref("ListPolicyVersions")
    call.need("ListPolicyVersions", ref)
    row = call.managed(ref, name)
    return f"<Versions>{shapes.version(row, 'member')}</Versions><IsTruncated>false</IsTruncated>"


def list_policies(call: Call) -> str:
    p = call.params
    if p.get("PolicyUsageFilter"):
        raise wire.QueryError("ValidationError", "PolicyUsageFilter is not supported by Vallum: "
                              "list every policy and read its AttachmentCount and "
                              "PermissionsBoundaryUsageCount")
    scope = p.get("Scope") or "All"
    if scope not in ("All", "AWS", "Local"):
        raise wire.validation("scope", "Member must satisfy enum value set: [All, AWS, Local]",
                              scope)
    call.need("ListPolicies", call.arn("policy", "*"))
    d, account = call.directory, call.account
    rows = d.list_policies(account) if scope != "AWS" and listed(p) else []   # no AWS-managed ones
    if p.get("OnlyAttached") == "true":
        rows = [r for r in rows if d.attached_to(account, r["name"])]
    out, trailer = wire.page(rows, lambda r: r["name"], p)
    return ("<Policies>" + "".join(shapes.policy(d, account, r, "member") for r in out)
            + "</Policies>" + trailer)


def delete_policy(call: Call) -> None:
    ref, name = call.policy_ref("DeletePolicy")
    call.need("DeletePolicy", ref)
    call.managed(ref, name)
    call.directory.delete_policy(call.account, name)


def list_entities_for_policy(call: Call) -> str:
    """The users, groups and roles a managed policy is attached to (EntityFilter:
    User, Group, Role; boundaries are not attachments, as on AWS)."""
    ref, name = call.policy_ref("ListEntitiesForPolicy")
    wanted = call.params.get("EntityFilter") or ""
    if wanted not in ("", "User", "Group", "Role"):
        raise wire.validation("entityFilter", "Member must satisfy enum value set: "
                              "[User, Group, Role]", wanted)
    call.need("ListEntitiesForPolicy", ref)
    call.managed(ref, name)
    rows = [a for a in call.directory.attached_to(call.account, name)
            if wanted in ("", a["kind"].title())]
    out, trailer = wire.page(rows, lambda a: f"{a['kind']}/{a['target']}", call.params)
    body = ""
    for kind in KINDS:
        title = kind.title()
        body += f"<Policy{title}s>" + "".join(
            f"<member>{el(f'{title}Name', a['target'])}</member>"
            for a in out if a["kind"] == kind) + f"</Policy{title}s>"
    return body + trailer


# -- policies of a user, group or role ---------------------------------------------

def _entity(call: Call, kind: str) -> str:
    return wire.name(call.params, f"{kind.title()}Name")


def put_inline(kind: str) -> Callable[[Call], None]:
    action = f"Put{kind.title()}Policy"

    def run(call: Call) -> None:
        target = _entity(call, kind)
        name = wire.name(call.params, "PolicyName")
        document = wire.text(call.params, "PolicyDocument")
        call.need(action, call.arn(kind, target), call.boundary_now(kind, target))
        check_exists(kind, call, target)
        others = [r["document"] for r in call.directory.inline_policies(call.account, kind, target)
                  if r["name"] != name]
        quotas.inline(kind, target, document, others)
        call.directory.put_inline(call.account, kind, target, name, document)
    return run


def get_inline(kind: str) -> Callable[[Call], str]:
    action = f"Get{kind.title()}Policy"

    def run(call: Call) -> str:
        target = _entity(call, kind)
        name = wire.name(call.params, "PolicyName")
        call.need(action, call.arn(kind, target))
        check_exists(kind, call, target)
        row = call.directory.inline_policy(call.account, kind, target, name)
        return (el(f"{kind.title()}Name", target) + el("PolicyName", name)
                + f"<PolicyDocument>{wire.document(row['document'])}</PolicyDocument>")
    return run


def list_inline(kind: str) -> Callable[[Call], str]:
    action = f"List{kind.title()}Policies"

    def run(call: Call) -> str:
        target = _entity(call, kind)
        call.need(action, call.arn(kind, target))
        check_exists(kind, call, target)
        names = [r["name"] for r in call.directory.inline_policies(call.account, kind, target)]
        out, trailer = wire.page(names, lambda n: n, call.params)
        return wire.member_list("PolicyNames", [escape(n) for n in out]) + trailer
    return run


def delete_inline(kind: str) -> Callable[[Call], None]:
    action = f"Delete{kind.title()}Policy"

    def run(call: Call) -> None:
        target = _entity(call, kind)
        name = wire.name(call.params, "PolicyName")
        call.need(action, call.arn(kind, target), call.boundary_now(kind, target))
        check_exists(kind, call, target)
        call.directory.inline_policy(call.account, kind, target, name)
        call.directory.delete_inline(call.account, kind, target, name)
    return run


def attach(kind: str) -> Callable[[Call], None]:
    action = f"Attach{kind.title()}Policy"

    def run(call: Call) -> None:
        target = _entity(call, kind)
        ref, name = call.policy_ref(action)
        call.need(action, call.arn(kind, target),
                  {"iam:policyarn": ref, **call.boundary_now(kind, target)})
        check_exists(kind, call, target)
        call.managed(ref, name)
        names = call.directory.attached(call.account, kind, target)
        if name not in names and len(names) >= MAX_ATTACHED:
            raise LimitExceeded(f"Cannot exceed quota for PoliciesPer{kind.title()}: "
                                f"{MAX_ATTACHED}")
        call.directory.attach(call.account, kind, target, name)
    return run


def detach(kind: str) -> Callable[[Call], None]:
    action = f"Detach{kind.title()}Policy"

    def run(call: Call) -> None:
        target = _entity(call, kind)
        ref, name = call.policy_ref(action)
        call.need(action, call.arn(kind, target),
                  {"iam:policyarn": ref, **call.boundary_now(kind, target)})
        check_exists(kind, call, target)
        if name not in call.directory.attached(call.account, kind, target):
            raise NoSuchEntity(f"Policy {ref} was not found.")
        call.directory.detach(call.account, kind, target, name)
    return run


def list_attached(kind: str) -> Callable[[Call], str]:
    action = f"ListAttached{kind.title()}Policies"

    def run(call: Call) -> str:
        target = _entity(call, kind)
        call.need(action, call.arn(kind, target))
        check_exists(kind, call, target)
        names = call.directory.attached(call.account, kind, target) if listed(call.params) else []
        out, trailer = wire.page(names, lambda n: n, call.params)
        return f"<AttachedPolicies>{shapes.attached(call.account, out)}</AttachedPolicies>{trailer}"
    return run


def per_kind() -> dict[str, Callable[[Call], str | None]]:
    """The 21 per-entity policy actions (Put/Get/List/DeleteUserPolicy, AttachUserPolicy, ...)."""
    out: dict[str, Callable[[Call], str | None]] = {}
    for kind in KINDS:
        k = kind.title()
        out.update({f"Put{k}Policy": put_inline(kind), f"Get{k}Policy": get_inline(kind),
                    f"List{k}Policies": list_inline(kind), f"Delete{k}Policy": delete_inline(kind),
                    f"Attach{k}Policy": attach(kind), f"Detach{k}Policy": detach(kind),
                    f"ListAttached{k}Policies": list_attached(kind)})
    return out
