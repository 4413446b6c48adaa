"""Create, list, inspect, attach, rotate and delete IAM entities (what the admin API calls).

Every check of a change happens here, before the store sees it: names, existence,
policy documents (parsed: a malformed one raises MalformedPolicy with its position).
Secrets are generated here, wrapped under the master key, and returned exactly once.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from vallum.iam import policy as policy_lang
from vallum.iam.store import IAMStore, KeyRow, Op
from vallum.security.crypto import primitives as crypto

_ALPHABET = string.ascii_uppercase + string.digits
_NAME = re.compile(r"[A-Za-z0-9+=,.@_\-]{1,64}")
KINDS = ("user", "group", "role")
ADMIN_USER = "admin"
ADMIN_POLICY = '{"Version":"2012-10-17","Statement":[{"Sid":"AccountAdmin","Effect":"Allow","Action":"*","Resource":"*"}]}'
MAX_KEYS_PER_USER = 2 * 5
# Stands in for a boundary whose policy is gone (fail closed).
MISSING_BOUNDARY = ('{"Version":"2012-10-17","Statement":[{"Sid":"BoundaryPolicyMissing",'
                    '"Effect":"Deny","Action":"*","Resource":"*"}]}')


class IAMError(Exception):
    """A refused admin request; ``code`` is the IAM error code."""

    code = "ValidationError"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoSuchEntity(IAMError):
    code, status = "NoSuchEntity", 404


class EntityAlreadyExists(IAMError):
    code, status = "EntityAlreadyExists", 409


class DeleteConflict(IAMError):
    code, status = "DeleteConflict", 409


class LimitExceeded(IAMError):
    code, status = "LimitExceeded", 409


@dataclass(frozen=True)
class NewKey:
    access_key_id: str
    secret_access_key: str     # shown once
    account: str
    user: str
    session_level: str | None = None   # the level every request signed with it runs at


def _new_id(prefix: str) -> str:
    """A unique id in AWS's shape (AIDA... users, AROA... roles, AGPA... groups, ANPA...
    policies)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(17))


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise IAMError(f"invalid {what} name {name!r}: 1-64 of A-Z a-z 0-9 +=,.@_-")
    return name


def key_aad(access_key_id: str) -> bytes:
    return b"vallum-iam-key:" + access_key_id.encode()


def policy_arn(account: str, ref: str) -> str:
    """The ARN of a managed policy of ``account`` named by name (or already by ARN)."""
    return ref if ref.startswith("arn:") else f"arn:aws:iam::{account}:policy/{ref}"


class Directory:
    def __init__(self, store: IAMStore, master_key: bytes) -> None:
        self.store = store
        self.master_key = master_key

    # -- accounts ------------------------------------------------------------
    def create_account(self, name: str) -> tuple[dict[str, Any], NewKey]:
        """A new account with its admin user (full rights inside the account) and its key."""
        _check_name(name, "account")
        if self.store.scan("account") and any(a["name"] == name for a in self.store.scan("account")):
            raise EntityAlreadyExists(f"account {name} already exists")
        while True:
            account_id = "".join(secrets.choice(string.digits) for _ in range(12))
            if account_id[0] != "0" and self.store.get("account", id=account_id) is None:
                break
        now = time.time()
        account = {"id": account_id, "name": name, "created": now}
        key, secret = self._new_key(account_id, ADMIN_USER, now)
        self.store.apply([
            Op("put", "account", account),
            Op("put", "user", self._user_row(account_id, ADMIN_USER, True, {}, now)),
            Op("put", "inline", {"account": account_id, "kind": "user", "target": ADMIN_USER,
                                 "name": "AccountAdmin", "document": ADMIN_POLICY}),
            Op("put_key", value=key),
        ])
        return account, NewKey(key.access_key_id, secret, account_id, ADMIN_USER)

    def account(self, account_ref: str) -> dict[str, Any]:
        """By id or by name."""
        found = self.store.get("account", id=account_ref)
        if found is None:
            found = next((a for a in self.store.scan("account") if a["name"] == account_ref), None)
        if found is None:
            raise NoSuchEntity(f"no account {account_ref}")
        return found

    def list_accounts(self) -> list[dict[str, Any]]:
        return self.store.scan("account")

    def delete_account(self, account_id: str) -> None:
        self.account(account_id)
        ops = [Op("delete", "account", {"id": account_id})]
        for kind in ("user", "group", "member", "role", "policy", "attachment", "inline",
                     "oidc_provider"):
            ops += [Op("delete", kind, row) for row in self.store.scan(kind, account=account_id)]
        ops += self._delete_keys(self.store.keys_of(account_id))
        self.store.apply(ops)

    # -- users -----------------------------------------------------------------
    @staticmethod
    def _user_row(account: str, name: str, admin: bool, tags: dict[str, str], now: float) -> dict:
        return {"account": account, "name": name, "admin": admin, "tags": tags, "created": now,
                "id": "AIDA" + "".join(secrets.choice(_ALPHABET) for _ in range(17))}

    def create_user(self, account: str, name: str, *, admin: bool = False,
                    tags: dict[str, str] | None = None,
                    boundary: str | None = None) -> dict[str, Any]:
        """``boundary`` (policy name or ARN) is set in the same write as the user, so a
        user created under a boundary is never visible without it."""
        self.account(account)
        _check_name(name, "user")
        if self.store.get("user", account=account, name=name):
            raise EntityAlreadyExists(f"user {name} already exists")
        row = self._user_row(account, name, admin, dict(tags or {}), time.time())
        if boundary:
            row["boundary"] = self._boundary_policy(account, boundary)
        ops = [Op("put", "user", row)]
        if admin:
            # What "admin" means is what it grants: the same inline AccountAdmin policy as
            # the account's own admin user (full rights inside the account, none outside).
            ops.append(Op("put", "inline", {"account": account, "kind": "user", "target": name,
                                            "name": "AccountAdmin", "document": ADMIN_POLICY}))
        self.store.apply(ops)
        return row

    def user(self, account: str, name: str) -> dict[str, Any]:
        row = self.store.get("user", account=account, name=name)
        if row is None:
            raise NoSuchEntity(f"no user {name} in account {account}")
        return row

    def list_users(self, account: str) -> list[dict[str, Any]]:
        return self.store.scan("user", account=account)

    def delete_user(self, account: str, name: str) -> None:
        self.user(account, name)
        ops = [Op("delete", "user", {"account": account, "name": name})]
        ops += [Op("delete", "member", m) for m in self.store.scan("member", account=account,
                                                                     user_name=name)]
        ops += self._detach_all(account, "user", name)
        ops += self._delete_keys(self.store.keys_of(account, name))
        self.store.apply(ops)

    def _detach_all(self, account: str, kind: str, target: str) -> list[Op]:
        return ([Op("delete", "attachment", a) for a in
                 self.store.scan("attachment", account=account, kind=kind, target=target)]
                + [Op("delete", "inline", p) for p in
                   self.store.scan("inline", account=account, kind=kind, target=target)])

    def set_clearance(self, account: str, kind: str, name: str, clearance: str | None,
                      session_level: str | None = None) -> dict[str, Any]:
        """Store a user's or role's clearance (and a role's default session level) as
        canonical banner text; the caller validated them (security/mac/labels.py). None clears."""
        if kind not in ("user", "role"):
            raise IAMError("kind must be user or role")
        row = self.user(account, name) if kind == "user" else self.role(account, name)
        for field_name, value in (("clearance", clearance), ("session_level", session_level)):
            if value:
                row[field_name] = value
            else:
                row.pop(field_name, None)
        self.store.apply([Op("put", kind, row)])
        return row

    # -- groups ----------------------------------------------------------------
    def create_group(self, account: str, name: str) -> dict[str, Any]:
        self.account(account)
        _check_name(name, "group")
        if self.store.get("group", account=account, name=name):
            raise EntityAlreadyExists(f"group {name} already exists")
        row = {"account": account, "name": name, "created": time.time(), "id": _new_id("AGPA")}
        self.store.apply([Op("put", "group", row)])
        return row

    def group(self, account: str, name: str) -> dict[str, Any]:
        row = self.store.get("group", account=account, name=name)
        if row is None:
            raise NoSuchEntity(f"no group {name} in account {account}")
        row["users"] = [m["user_name"] for m in self.store.scan("member", account=account,
                                                                group_name=name)]
        return row

    def list_groups(self, account: str) -> list[dict[str, Any]]:
        return self.store.scan("group", account=account)

    def delete_group(self, account: str, name: str) -> None:
        self.group(account, name)
        ops = [Op("delete", "group", {"account": account, "name": name})]
        ops += [Op("delete", "member", m) for m in self.store.scan("member", account=account,
                                                                     group_name=name)]
        self.store.apply(ops + self._detach_all(account, "group", name))

    def add_to_group(self, account: str, group: str, user: str) -> None:
        self.group(account, group)
        self.user(account, user)
        self.store.apply([Op("put", "member", {"account": account, "group_name": group,
                                               "user_name": user})])

    def remove_from_group(self, account: str, group: str, user: str) -> None:
        self.store.apply([Op("delete", "member", {"account": account, "group_name": group,
                                                  "user_name": user})])

    def groups_of(self, account: str, user: str) -> list[str]:
        return [m["group_name"] for m in self.store.scan("member", account=account, user_name=user)]

    # -- roles -------------------------------------------------------------------
    def create_role(self, account: str, name: str, trust_policy: str, *,
                    max_session: int = 3600, boundary: str | None = None,
                    description: str | None = None) -> dict[str, Any]:
        self.account(account)
        _check_name(name, "role")
        policy_lang.parse(trust_policy, kind="trust")
        if self.store.get("role", account=account, name=name):
            raise EntityAlreadyExists(f"role {name} already exists")
        if not 3600 <= int(max_session) <= 43200:
            raise IAMError("max session duration must be between 3600 and 43200 seconds")
        row = {"account": account, "name": name, "trust_policy": trust_policy,
               "max_session": int(max_session), "created": time.time(),
               "id": "AROA" + "".join(secrets.choice(_ALPHABET) for _ in range(17))}
        if boundary:
            row["boundary"] = self._boundary_policy(account, boundary)
        if description:
            row["description"] = description
        self.store.apply([Op("put", "role", row)])
        return row

    def set_trust_policy(self, account: str, name: str, trust_policy: str) -> dict[str, Any]:
        """Replace a role's trust policy (validated first)."""
        row = self.role(account, name)
        policy_lang.parse(trust_policy, kind="trust")
        row["trust_policy"] = trust_policy
        self.store.apply([Op("put", "role", row)])
        return row

    def role(self, account: str, name: str) -> dict[str, Any]:
        row = self.store.get("role", account=account, name=name)
        if row is None:
            raise NoSuchEntity(f"no role {name} in account {account}")
        return row

    def list_roles(self, account: str) -> list[dict[str, Any]]:
        return self.store.scan("role", account=account)

    def delete_role(self, account: str, name: str) -> None:
        self.role(account, name)
        self.store.apply([Op("delete", "role", {"account": account, "name": name}),
                          *self._detach_all(account, "role", name)])

    # -- policies ----------------------------------------------------------------
    def put_policy(self, account: str, name: str, document: str) -> dict[str, Any]:
        """Create or replace a managed policy (the document is validated first)."""
        self.account(account)
        _check_name(name, "policy")
        policy_lang.parse(document, kind="identity")
        old = self.store.get("policy", account=account, name=name) or {}
        now = time.time()
        row = {"account": account, "name": name, "document": document, "updated": now,
               "arn": policy_arn(account, name), "id": old.get("id") or _new_id("ANPA"),
               "created": old.get("created", now)}
        if old.get("description"):
            row["description"] = old["description"]
        self.store.apply([Op("put", "policy", row)])
        return row

    def create_policy(self, account: str, name: str, document: str,
                      description: str | None = None) -> dict[str, Any]:
        """A new managed policy; EntityAlreadyExists if the name is taken (the IAM API's
        CreatePolicy never replaces one, unlike put_policy)."""
        self.account(account)
        _check_name(name, "policy")
        policy_lang.parse(document, kind="identity")
        if self.store.get("policy", account=account, name=name):
            raise EntityAlreadyExists(f"A policy called {name} already exists.")
        now = time.time()
        row = {"account": account, "name": name, "document": document, "updated": now,
               "created": now, "arn": policy_arn(account, name), "id": _new_id("ANPA")}
        if description:
            row["description"] = description
        self.store.apply([Op("put", "policy", row)])
        return row

    def attached_to(self, account: str, policy_name: str) -> list[dict[str, Any]]:
        """The attachment rows of one managed policy (kind, target)."""
        return [a for a in self.store.scan("attachment", account=account)
                if a["policy"] == policy_name]

    def policy(self, account: str, name: str) -> dict[str, Any]:
        row = self.store.get("policy", account=account, name=name)
        if row is None:
            raise NoSuchEntity(f"no policy {name} in account {account}")
        return row

    def list_policies(self, account: str) -> list[dict[str, Any]]:
        return self.store.scan("policy", account=account)

    def delete_policy(self, account: str, name: str) -> None:
        self.policy(account, name)
        used = [a for a in self.store.scan("attachment", account=account) if a["policy"] == name]
        if used:
            raise DeleteConflict(f"policy {name} is attached to {len(used)} entities; detach first")
        bounded = [f"{kind}/{row['name']}" for kind in ("user", "role")
                   for row in self.store.scan(kind, account=account) if row.get("boundary") == name]
        if bounded:
            raise DeleteConflict(f"policy {name} is the permissions boundary of "
                                 f"{', '.join(bounded)}; delete those boundaries first")
        self.store.apply([Op("delete", "policy", {"account": account, "name": name})])

    # -- permissions boundaries ----------------------------------------------------
    def _bounded_entity(self, account: str, kind: str, name: str) -> dict[str, Any]:
        if kind not in ("user", "role"):
            raise IAMError("a permissions boundary is set on a user or a role")
        return self.user(account, name) if kind == "user" else self.role(account, name)

    def put_boundary(self, account: str, kind: str, name: str, policy_ref: str) -> dict[str, Any]:
        """Set a user's or role's permissions boundary to a managed policy of its account,
        named by name or ARN (``arn:aws:iam::ACCOUNT:policy/NAME``)."""
        row = self._bounded_entity(account, kind, name)
        policy_name = self._boundary_policy(account, policy_ref)
        row["boundary"] = policy_name
        self.store.apply([Op("put", kind, row)])
        return {kind: name, "boundary": policy_name,
                "boundary_arn": policy_arn(account, policy_name)}

    def _boundary_policy(self, account: str, policy_ref: str) -> str:
        """The name of the existing managed policy of ``account`` that ``policy_ref`` (a
        name or ``arn:aws:iam::ACCOUNT:policy/NAME``) names as a boundary."""
        if not isinstance(policy_ref, str):
            raise IAMError("a permissions boundary is a policy name or ARN")
        policy_name = policy_ref
        if policy_ref.startswith("arn:"):
            prefix = policy_arn(account, "")
            if not policy_ref.startswith(prefix):
                raise IAMError(f"the boundary must be a managed policy of account {account}")
            policy_name = policy_ref[len(prefix):]
        self.policy(account, policy_name)
        return policy_name

    def delete_boundary(self, account: str, kind: str, name: str) -> None:
        row = self._bounded_entity(account, kind, name)
        if row.pop("boundary", None) is not None:
            self.store.apply([Op("put", kind, row)])

    def boundary_of(self, account: str, row: dict[str, Any]) -> tuple[str, str] | None:
        """(label, document) of the boundary named in a user or role row, if it has one.
        A boundary naming a policy that no longer exists denies everything (fail closed)."""
        name = row.get("boundary")
        if not name:
            return None
        p = self.store.get("policy", account=account, name=name)
        return (f"boundary/{name}", p["document"] if p is not None else MISSING_BOUNDARY)

    def _target(self, account: str, kind: str, target: str) -> None:
        if kind not in KINDS:
            raise IAMError(f"kind must be one of {', '.join(KINDS)}")
        {"user": self.user, "group": self.group, "role": self.role}[kind](account, target)

    def attach(self, account: str, kind: str, target: str, policy_name: str) -> None:
        self._target(account, kind, target)
        self.policy(account, policy_name)
        self.store.apply([Op("put", "attachment", {"account": account, "kind": kind,
                                                   "target": target, "policy": policy_name})])

    def detach(self, account: str, kind: str, target: str, policy_name: str) -> None:
        self.store.apply([Op("delete", "attachment", {"account": account, "kind": kind,
                                                      "target": target, "policy": policy_name})])

    def put_inline(self, account: str, kind: str, target: str, name: str, document: str) -> None:
        self._target(account, kind, target)
        _check_name(name, "policy")
        policy_lang.parse(document, kind="identity")
        self.store.apply([Op("put", "inline", {"account": account, "kind": kind, "target": target,
                                               "name": name, "document": document})])

    def inline_policy(self, account: str, kind: str, target: str, name: str) -> dict[str, Any]:
        row = self.store.get("inline", account=account, kind=kind, target=target, name=name)
        if row is None:
            raise NoSuchEntity(f"The {kind} policy with name {name} cannot be found.")
        return row

    def inline_policies(self, account: str, kind: str, target: str) -> list[dict[str, Any]]:
        """The inline policy rows of one user, group or role, sorted by name."""
        return self.store.scan("inline", account=account, kind=kind, target=target)

    def attached(self, account: str, kind: str, target: str) -> list[str]:
        """Names of the managed policies attached to one user, group or role, sorted."""
        return [a["policy"] for a in self.store.scan("attachment", account=account, kind=kind,
                                                     target=target)]

    def delete_inline(self, account: str, kind: str, target: str, name: str) -> None:
        self.store.apply([Op("delete", "inline", {"account": account, "kind": kind,
                                                  "target": target, "name": name})])

    def policies_of(self, account: str, kind: str, target: str) -> list[tuple[str, str]]:
        """(label, document) of every policy attached to or inline in one entity."""
        out = []
        for a in self.store.scan("attachment", account=account, kind=kind, target=target):
            p = self.store.get("policy", account=account, name=a["policy"])
            if p is not None:
                out.append((f"policy/{a['policy']}", p["document"]))
        for p in self.store.scan("inline", account=account, kind=kind, target=target):
            out.append((f"{kind}/{target}/inline/{p['name']}", p["document"]))
        return out

    # -- access keys -------------------------------------------------------------
    def _new_key(self, account: str, user: str, now: float) -> tuple[KeyRow, str]:
        akid = "AKIA" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        wrapped = crypto.wrap(self.master_key, secret.encode(), key_aad(akid))
        return KeyRow(akid, account, user, "Active", wrapped, now), secret

    @staticmethod
    def _origin(key: KeyRow, ceiling: str | None, session_level: str | None = None) -> list[Op]:
        """The key's minting ceiling and bound session level (iam/clearance.py); neither
        (minted by the platform root, unbound): no row."""
        if ceiling is None and session_level is None:
            return []
        return [Op("put", "key_origin", {"access_key_id": key.access_key_id, "ceiling": ceiling,
                                         "session_level": session_level})]

    @staticmethod
    def _delete_keys(keys: list[KeyRow]) -> list[Op]:
        return [op for k in keys for op in (
            Op("delete_key", value=k.access_key_id),
            Op("delete", "key_origin", {"access_key_id": k.access_key_id}))]

    def key_bounds(self, access_key_id: str) -> tuple[str | None, str | None]:
        """(minting ceiling, bound session level) of a key (iam/clearance.Bounds)."""
        row = self.store.get("key_origin", access_key_id=access_key_id) or {}
        return row.get("ceiling"), row.get("session_level")

    def create_key(self, account: str, user: str, *, ceiling: str | None = None,
                   session_level: str | None = None) -> NewKey:
        """A new key of ``user``; ``ceiling`` is the minter's clearance (None: the root)."""
        self.user(account, user)
        if len(self.store.keys_of(account, user)) >= MAX_KEYS_PER_USER:
            raise LimitExceeded(f"user {user} already has {MAX_KEYS_PER_USER} access keys")
        key, secret = self._new_key(account, user, time.time())
        self.store.apply([Op("put_key", value=key), *self._origin(key, ceiling, session_level)])
        return NewKey(key.access_key_id, secret, account, user, session_level)

    def list_keys(self, account: str, user: str | None = None) -> list[dict[str, Any]]:
        return [{"access_key_id": k.access_key_id, "user": k.user_name, "status": k.status,
                 "created": k.created, "last_used": k.last_used,
                 "session_level": self.key_bounds(k.access_key_id)[1]}
                for k in self.store.keys_of(account, user)]

    def key(self, access_key_id: str, account: str | None = None) -> KeyRow:
        key = self.store.get_key(access_key_id)
        if key is None or (account is not None and key.account != account):
            raise NoSuchEntity(f"no access key {access_key_id}")
        return key

    def set_key_status(self, access_key_id: str, status: str, account: str | None = None) -> None:
        if status not in ("Active", "Inactive"):
            raise IAMError("status must be Active or Inactive")
        self.key(access_key_id, account)
        self.store.apply([Op("key_status", value=(access_key_id, status))])

    def delete_key(self, access_key_id: str, account: str | None = None) -> None:
        self.store.apply(self._delete_keys([self.key(access_key_id, account)]))

    def rotate_key(self, access_key_id: str, account: str | None = None, *,
                   ceiling: str | None = None) -> NewKey:
        """A new key for the same user; the old one is made Inactive in the same commit.
        ``ceiling`` is the minter's clearance (None: the root); the new key keeps the old
        one's bound session level."""
        old = self.key(access_key_id, account)
        key, secret = self._new_key(old.account, old.user_name, time.time())
        level = self.key_bounds(access_key_id)[1]
        self.store.apply([Op("put_key", value=key), *self._origin(key, ceiling, level),
                          Op("key_status", value=(access_key_id, "Inactive"))])
        return NewKey(key.access_key_id, secret, old.account, old.user_name, level)

    def secret_of(self, key: KeyRow) -> str:
        return crypto.unwrap(self.master_key, key.secret, key_aad(key.access_key_id)).decode()
