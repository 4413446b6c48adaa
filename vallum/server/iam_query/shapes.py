"""The entity shapes AWS IAM answers with (User, Group, Role, Policy, keys), from directory rows."""

from __future__ import annotations

import hashlib
from typing import Any

from vallum.iam.directory import Directory, policy_arn
from vallum.server.iam_query.wire import document, el, iso

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _id(prefix: str, row: dict[str, Any], account: str) -> str:
    """The row's id; rows written before ids were recorded get one derived from their
    name and creation time (stable across calls)."""
    if row.get("id"):
        return str(row["id"])
    digest = hashlib.sha256(f"{account}/{row['name']}/{row.get('created', 0)}".encode()).digest()
    return prefix + "".join(_B32[b % 32] for b in digest[:17])


def _boundary(account: str, row: dict[str, Any]) -> str:
    if not row.get("boundary"):
        return ""
    return ("<PermissionsBoundary><PermissionsBoundaryType>PermissionsBoundaryPolicy"
            f"</PermissionsBoundaryType>{el('PermissionsBoundaryArn', policy_arn(account, row['boundary']))}"
            "</PermissionsBoundary>")


def _tags(tags: dict[str, str] | None) -> str:
    if not tags:
        return ""
    return "<Tags>" + "".join(f"<member>{el('Key', k)}{el('Value', v)}</member>"
                              for k, v in sorted(tags.items())) + "</Tags>"


def user_fields(account: str, row: dict[str, Any]) -> str:
    return (f"<Path>/</Path>{el('UserName', row['name'])}{el('UserId', _id('AIDA', row, account))}"
            f"{el('Arn', f'arn:aws:iam::{account}:user/' + row['name'])}"
            f"{el('CreateDate', iso(row.get('created')))}")


def user(account: str, row: dict[str, Any], tag: str = "User") -> str:
    return f"<{tag}>{user_fields(account, row)}{_boundary(account, row)}{_tags(row.get('tags'))}</{tag}>"


def group_fields(account: str, row: dict[str, Any]) -> str:
    return (f"<Path>/</Path>{el('GroupName', row['name'])}{el('GroupId', _id('AGPA', row, account))}"
            f"{el('Arn', f'arn:aws:iam::{account}:group/' + row['name'])}"
            f"{el('CreateDate', iso(row.get('created')))}")


def group(account: str, row: dict[str, Any], tag: str = "Group") -> str:
    return f"<{tag}>{group_fields(account, row)}</{tag}>"


def role_fields(account: str, row: dict[str, Any]) -> str:
    return (f"<Path>/</Path>{el('RoleName', row['name'])}{el('RoleId', _id('AROA', row, account))}"
            f"{el('Arn', f'arn:aws:iam::{account}:role/' + row['name'])}"
            f"{el('CreateDate', iso(row.get('created')))}"
            f"<AssumeRolePolicyDocument>{document(row['trust_policy'])}</AssumeRolePolicyDocument>")


def role(account: str, row: dict[str, Any], tag: str = "Role") -> str:
    description = el("Description", row["description"]) if row.get("description") else ""
    return (f"<{tag}>{role_fields(account, row)}{description}"
            f"{el('MaxSessionDuration', int(row.get('max_session', 3600)))}"
            f"{_boundary(account, row)}</{tag}>")


def policy_fields(d: Directory, account: str, row: dict[str, Any]) -> str:
    attachments = len(d.attached_to(account, row["name"]))
    bounded = sum(1 for kind in ("user", "role") for r in d.store.scan(kind, account=account)
                  if r.get("boundary") == row["name"])
    description = el("Description", row["description"]) if row.get("description") else ""
    return (f"{el('PolicyName', row['name'])}{el('PolicyId', _id('ANPA', row, account))}"
            f"{el('Arn', policy_arn(account, row['name']))}<Path>/</Path>"
            f"<DefaultVersionId>v1</DefaultVersionId>{el('AttachmentCount', attachments)}"
            f"{el('PermissionsBoundaryUsageCount', bounded)}<IsAttachable>true</IsAttachable>"
            f"{description}{el('CreateDate', iso(row.get('created', row.get('updated'))))}"
            f"{el('UpdateDate', iso(row.get('updated')))}")


def policy(d: Directory, account: str, row: dict[str, Any], tag: str = "Policy") -> str:
    return f"<{tag}>{policy_fields(d, account, row)}</{tag}>"


def version(row: dict[str, Any], tag: str = "PolicyVersion") -> str:
    """The one version a policy has here (v1: the directory keeps one document)."""
    return (f"<{tag}><Document>{document(row['document'])}</Document><VersionId>v1</VersionId>"
            f"<IsDefaultVersion>true</IsDefaultVersion>"
            f"{el('CreateDate', iso(row.get('updated')))}</{tag}>")


def key_metadata(k: dict[str, Any]) -> str:
    return (f"<member>{el('UserName', k['user'])}{el('AccessKeyId', k['access_key_id'])}"
            f"{el('Status', k['status'])}{el('CreateDate', iso(k.get('created')))}</member>")


def attached(account: str, names: list[str]) -> str:
    return "".join(f"<member>{el('PolicyName', n)}{el('PolicyArn', policy_arn(account, n))}</member>"
                   for n in names)
