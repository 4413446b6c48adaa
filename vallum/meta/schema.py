"""The metadata tables, as SQLAlchemy Core: shared by the SQLite and PostgreSQL backends.

Keys must compare in UTF-8 byte order (S3 listing order). SQLite's default
BINARY collation on TEXT already does that; PostgreSQL needs ``COLLATE "C"``,
which the ``KeyText`` variant adds there only. PostgreSQL TEXT cannot hold NUL
characters, so a key containing ``\\x00`` only round-trips on SQLite (the PostgreSQL store
refuses it: ``postgres.UnstorableText``).

Version order is the ``seq`` column (monotonic, never reused), not the
timestamp: two PUTs in the same clock tick must still order.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

# Schema version of the meta tables (vallum/ops/schema_versions.py records it in the
# database and refuses to start on a newer one). MIGRATIONS[n]: the SQL statements that take
# a version n-1 database to version n, run in one transaction by `vallum upgrade`. Version 1
# is the first versioned schema: databases of earlier releases hold the same tables, so
# adopting them needs no statement.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, tuple[str, ...]] = {1: ()}

# TEXT compared byte by byte on every backend.
KeyText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
# INTEGER PRIMARY KEY on SQLite (the rowid alias), BIGINT elsewhere.
SeqInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

buckets = sa.Table(
    "buckets", metadata,
    sa.Column("name", KeyText, primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("region", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("versioning", sa.Text, nullable=False),
    sa.Column("object_lock", sa.Integer, nullable=False),
    sa.Column("config", sa.Text, nullable=False),          # JSON object
)
sa.Index("ix_buckets_owner", buckets.c.owner, buckets.c.name)

versions = sa.Table(
    "versions", metadata,
    sa.Column("seq", SeqInt, primary_key=True, autoincrement=True),
    sa.Column("bucket", KeyText, nullable=False),
    sa.Column("key", KeyText, nullable=False),
    sa.Column("version_id", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("etag", sa.Text, nullable=False),
    sa.Column("last_modified", sa.Float, nullable=False),
    sa.Column("system_meta", sa.Text, nullable=False),     # JSON object
    sa.Column("user_meta", sa.Text, nullable=False),       # JSON object
    sa.Column("checksums", sa.Text, nullable=False),       # JSON object
    sa.Column("blob_id", sa.Text),
    sa.Column("inline", sa.LargeBinary),
    sa.Column("parts", sa.Text),                           # JSON list of parts
    sa.Column("delete_marker", sa.Integer, nullable=False),
    sa.Column("is_latest", sa.Integer, nullable=False),
    sa.Column("storage_class", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("extra", sa.Text, nullable=False),           # JSON object
    sqlite_autoincrement=True,
)
sa.Index("ux_versions_id", versions.c.bucket, versions.c.key, versions.c.version_id, unique=True)
# Version listing order (key ascending, newest first) and "latest = max seq".
sa.Index("ix_versions_order", versions.c.bucket, versions.c.key, versions.c.seq.desc())
# Object listing reads only the visible rows; the query must repeat this WHERE.
_VISIBLE = sa.and_(versions.c.is_latest == 1, versions.c.delete_marker == 0)
sa.Index("ix_versions_visible", versions.c.bucket, versions.c.key,
         sqlite_where=_VISIBLE, postgresql_where=_VISIBLE)

uploads = sa.Table(
    "uploads", metadata,
    sa.Column("seq", SeqInt, primary_key=True, autoincrement=True),
    sa.Column("upload_id", sa.Text, nullable=False, unique=True),
    sa.Column("bucket", KeyText, nullable=False),
    sa.Column("key", KeyText, nullable=False),
    sa.Column("initiated", sa.Float, nullable=False),
    sa.Column("system_meta", sa.Text, nullable=False),
    sa.Column("user_meta", sa.Text, nullable=False),
    sa.Column("checksum_algorithm", sa.Text),
    sa.Column("checksum_type", sa.Text),
    sa.Column("storage_class", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("extra", sa.Text, nullable=False),
    sqlite_autoincrement=True,
)
sa.Index("ix_uploads_order", uploads.c.bucket, uploads.c.key, uploads.c.seq)

parts = sa.Table(
    "parts", metadata,
    sa.Column("upload_id", sa.Text, primary_key=True),
    sa.Column("part_number", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("etag", sa.Text, nullable=False),
    sa.Column("blob_id", sa.Text, nullable=False),
    sa.Column("last_modified", sa.Float, nullable=False),
    sa.Column("checksums", sa.Text, nullable=False),
)

# Bytes and objects stored per bucket and label (banner, "" for none), plus the bytes of
# multipart parts not yet completed. Kept by triggers on ``versions`` and ``parts``
# (meta/usage_sql.py) so that no write path can skip it; quotas read it in the same
# transaction as the write they judge.
usage = sa.Table(
    "usage", metadata,
    sa.Column("bucket", KeyText, primary_key=True),
    sa.Column("label", sa.Text, primary_key=True),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("objects", sa.BigInteger, nullable=False),
    sa.Column("pending", sa.BigInteger, nullable=False),
)

# Requests, transfer and compute CPU time per UTC day, caller's account and bucket ("" for
# calls that name none): each gateway process adds what it counted since its last flush
# (service/usage.py),
# so a day's row is that day's delta and the sum of the rows is the total.
request_usage = sa.Table(
    "request_usage", metadata,
    sa.Column("day", sa.Text, primary_key=True),           # YYYY-MM-DD (UTC)
    sa.Column("account", sa.Text, primary_key=True),       # "" for anonymous callers
    sa.Column("bucket", KeyText, primary_key=True),
    sa.Column("reads", sa.BigInteger, nullable=False),
    sa.Column("writes", sa.BigInteger, nullable=False),
    sa.Column("lists", sa.BigInteger, nullable=False),
    sa.Column("others", sa.BigInteger, nullable=False),
    sa.Column("bytes_in", sa.BigInteger, nullable=False),
    sa.Column("bytes_out", sa.BigInteger, nullable=False),
    sa.Column("cpu_ms", sa.BigInteger, nullable=False),        # compute tasks' CPU time
)

# Storage quotas: scope "bucket:<name>" or "account:<id>"; NULL means no limit.
quotas = sa.Table(
    "quotas", metadata,
    sa.Column("scope", KeyText, primary_key=True),
    sa.Column("max_bytes", sa.BigInteger),
    sa.Column("max_objects", sa.BigInteger),
)
