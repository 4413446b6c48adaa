"""IAM tables (SQLAlchemy Core), kept in the same database file as the object metadata.

Every entity is one row: its natural key columns plus a JSON ``doc`` holding the rest,
so that adding a field never needs a migration. ``iam_keys`` has real columns for what
the request path reads (status, wrapped secret) and what it writes (last_used, updated
without bumping the generation). ``iam_generation`` holds one counter bumped by every
IAM write, in the same transaction: gateways re-read it per request to drop caches.
Key columns are ``KeyText``: plain TEXT on SQLite, ``COLLATE "C"`` on PostgreSQL (iam/pgstore.py),
so scans come back in the same byte order on both.
"""

from __future__ import annotations

import sqlalchemy as sa

from vallum.meta.schema import KeyText

metadata = sa.MetaData()

# Schema version of the iam tables (vallum/ops/schema_versions.py records it in the
# database and refuses to start on a newer one). MIGRATIONS[n]: the SQL statements that take
# a version n-1 database to version n, run in one transaction by `vallum upgrade`. Version 1
# is the first versioned schema: databases of earlier releases hold the same tables, so
# adopting them needs no statement.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, tuple[str, ...]] = {1: ()}


def _entity(name: str, *keys: str) -> sa.Table:
    return sa.Table(name, metadata, *(sa.Column(k, KeyText, primary_key=True) for k in keys),
                    sa.Column("doc", sa.Text, nullable=False))


accounts = _entity("iam_accounts", "id")
users = _entity("iam_users", "account", "name")
groups = _entity("iam_groups", "account", "name")
members = _entity("iam_group_members", "account", "group_name", "user_name")
roles = _entity("iam_roles", "account", "name")
policies = _entity("iam_policies", "account", "name")            # managed policies
attachments = _entity("iam_attachments", "account", "kind", "target", "policy")
inline = _entity("iam_inline_policies", "account", "kind", "target", "name")
# Who minted an access key: its clearance ceiling (iam/clearance.py). A table of its own
# so that databases created before it need no migration (no row: no ceiling).
key_origins = _entity("iam_key_origins", "access_key_id")
oidc_providers = _entity("iam_oidc_providers", "account", "name")     # iam/oidc.py
ldap_directories = _entity("iam_ldap_directories", "name")    # iam/ldap_directories.py

keys = sa.Table(
    "iam_access_keys", metadata,
    sa.Column("access_key_id", KeyText, primary_key=True),
    sa.Column("account", KeyText, nullable=False),
    sa.Column("user_name", KeyText, nullable=False),
    sa.Column("status", sa.Text, nullable=False),                 # Active | Inactive
    sa.Column("secret", sa.LargeBinary, nullable=False),          # crypto.wrap(master, secret)
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_used", sa.Float),
)
sa.Index("ix_iam_keys_user", keys.c.account, keys.c.user_name)

generation = sa.Table(
    "iam_generation", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("gen", sa.Integer, nullable=False),
)

# Failed-authentication rate limits shared by every gateway process (iam/lockouts.py):
# one row per failure (who is "k:<key id>" or "a:<address>"), pruned past the window,
# and one row per active lockout. Written only when authentication fails.
auth_failures = sa.Table(
    "iam_auth_failures", metadata,
    sa.Column("who", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),                    # wall-clock seconds
)
sa.Index("ix_iam_auth_failures_who", auth_failures.c.who, auth_failures.c.at)
auth_lockouts = sa.Table(
    "iam_auth_lockouts", metadata,
    sa.Column("who", sa.Text, primary_key=True),
    sa.Column("until", sa.Float, nullable=False),
)

# kind name -> (table, key columns); the store's generic operations use this.
ENTITIES: dict[str, tuple[sa.Table, tuple[str, ...]]] = {
    "account": (accounts, ("id",)),
    "user": (users, ("account", "name")),
    "group": (groups, ("account", "name")),
    "member": (members, ("account", "group_name", "user_name")),
    "role": (roles, ("account", "name")),
    "policy": (policies, ("account", "name")),
    "attachment": (attachments, ("account", "kind", "target", "policy")),
    "inline": (inline, ("account", "kind", "target", "name")),
    "key_origin": (key_origins, ("access_key_id",)),
    "oidc_provider": (oidc_providers, ("account", "name")),
    "ldap_directory": (ldap_directories, ("name",)),
}
