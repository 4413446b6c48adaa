"""The compute tables (SQLAlchemy Core), kept in the metadata database file.

Why the metadata database: queue and state must survive ``kill -9`` with the
same durability as object metadata (WAL, synchronous=FULL), and one backup of
the data directory carries everything.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Schema version of the compute tables (vallum/ops/schema_versions.py records it in the
# database and refuses to start on a newer one). MIGRATIONS[n]: the SQL statements that take
# a version n-1 database to version n, run in one transaction by `vallum upgrade`. Version 1
# is the first versioned schema: databases of earlier releases hold the same tables, so
# adopting them needs no statement.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, tuple[str, ...]] = {1: ()}

jobs = sa.Table(
    "compute_jobs", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("account", sa.Text, nullable=False),       # owning account (tenant)
    sa.Column("owner", sa.Text, nullable=False),         # principal ARN that submitted
    sa.Column("principal", sa.Text, nullable=False),     # JSON: who, to mint task credentials
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),          # job | array | function
    sa.Column("spec", sa.Text, nullable=False),          # JSON, validated
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("idem_key", sa.Text),
    sa.Column("blocked", sa.Integer, nullable=False),    # dependencies still pending
    sa.Column("parallelism", sa.Integer, nullable=False),
    sa.Column("tasks_total", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("started", sa.Float),
    sa.Column("finished", sa.Float),
    sa.Column("exit_code", sa.Integer),
    sa.Column("reason", sa.Text),
    sa.Column("result", sa.Text),                        # function invocations: JSON result
)
sa.Index("ux_compute_jobs_idem", jobs.c.account, jobs.c.idem_key, unique=True)
sa.Index("ix_compute_jobs_state", jobs.c.state, jobs.c.seq)
sa.Index("ix_compute_jobs_account", jobs.c.account, jobs.c.seq)

deps = sa.Table(
    "compute_deps", metadata,
    sa.Column("job_id", sa.Text, nullable=False),
    sa.Column("dep_id", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("job_id", "dep_id"),
)
sa.Index("ix_compute_deps_dep", deps.c.dep_id)

tasks = sa.Table(
    "compute_tasks", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Text, nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),          # output sub-prefix / log name
    sa.Column("input", sa.Text),                         # array tasks: the object key
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("not_before", sa.Float, nullable=False),
    sa.Column("lease", sa.Text),                         # instance running it
    sa.Column("heartbeat", sa.Float),
    sa.Column("started", sa.Float),
    sa.Column("finished", sa.Float),
    sa.Column("exit_code", sa.Integer),
    sa.Column("reason", sa.Text),
    sa.UniqueConstraint("job_id", "idx"),
)
sa.Index("ix_compute_tasks_runnable", tasks.c.state, tasks.c.not_before)

functions = sa.Table(
    "compute_functions", metadata,
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("principal", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("account", "name"),
)

triggers = sa.Table(
    "compute_triggers", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("principal", sa.Text, nullable=False),     # JSON: who invocations run as
    sa.Column("kind", sa.Text, nullable=False),          # object | cron
    sa.Column("source", sa.Text, nullable=False),        # api | notification
    sa.Column("bucket", sa.Text),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("suffix", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),        # JSON list of s3:Object* patterns
    sa.Column("function", sa.Text),
    sa.Column("cron", sa.Text),
    sa.Column("job", sa.Text),                           # cron: the job spec to submit (JSON)
    sa.Column("next_run", sa.Float),
    sa.Column("created", sa.Float, nullable=False),
)
sa.Index("ix_compute_triggers_bucket", triggers.c.bucket)

# Object events written before the write is acknowledged; the dispatcher turns
# each into function invocations (idempotency keys make redelivery harmless).
outbox = sa.Table(
    "compute_outbox", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bucket", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),         # one AWS S3 event record (JSON)
    sa.Column("label", sa.Text),                         # the object's label (MAC); NULL: never delivered
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("done", sa.Integer, nullable=False),
)
sa.Index("ix_compute_outbox_pending", outbox.c.done, outbox.c.seq)

# Task credentials that ended before they expire: refused on every request (gate.py asks
# ComputeService.revoked); a row goes once the credentials would have expired anyway.
revoked = sa.Table(
    "compute_revoked", metadata,
    sa.Column("akid", sa.Text, primary_key=True),
    sa.Column("until", sa.Float, nullable=False),        # the credentials' own expiry
)

# Account quotas set by the platform root: each knob lowers the platform limit
# (spec.LIMITS) for that account's jobs and functions.
quotas = sa.Table(
    "compute_quotas", metadata,
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("limits", sa.Text, nullable=False),        # JSON {knob: value}
    sa.Column("updated", sa.Float, nullable=False),
)

# One log per job, task and attempt (tasklog.py), kept by the gateway, outside any bucket.
logs = sa.Table(
    "compute_logs", metadata,
    sa.Column("job_id", sa.Text, nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("job_id", "idx", "attempt"),
)
sa.Index("ix_compute_logs_created", logs.c.created)

# Columns added after a table first shipped: (table, column, SQL type). db.open adds the
# missing ones to an existing database (CREATE TABLE IF NOT EXISTS leaves old tables as
# they were).
ADDED_COLUMNS = (("compute_outbox", "label", "TEXT"),)

# Event targets (compute/event_targets.py): external receivers of bucket notifications,
# registered by an account admin; secrets are sealed under the object keyring.
event_targets = sa.Table(
    "event_targets", metadata,
    sa.Column("arn", sa.Text, primary_key=True),         # arn:vallum:sqs:REGION:ACCOUNT:NAME
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),          # webhook | nats
    sa.Column("config", sa.Text, nullable=False),        # JSON: endpoint, subject, retry knobs
    sa.Column("secret", sa.LargeBinary),                 # sealed HMAC secret or NATS token
    sa.Column("ceiling", sa.Text, nullable=False),       # highest label it may hear of
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("withheld", sa.Integer, nullable=False),   # events withheld by MAC (count only)
    sa.Column("failed", sa.Integer, nullable=False),     # delivery attempts that failed
    sa.Column("created", sa.Float, nullable=False),
)

# QueueConfigurations of buckets: which events of a bucket go to which target.
event_routes = sa.Table(
    "event_routes", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("bucket", sa.Text, nullable=False),
    sa.Column("account", sa.Text, nullable=False),       # the target's (= the bucket owner's)
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("config_id", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("suffix", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),        # JSON list of s3:* patterns
)
sa.Index("ix_event_routes_bucket", event_routes.c.bucket)

# One row per (event, target) still to send: written in the transaction that settles the
# outbox event, deleted once the target acknowledged it (at least once).
event_deliveries = sa.Table(
    "event_deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("bucket", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),          # the JSON document sent
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_try", sa.Float, nullable=False),     # also the lease of a sender
    sa.Column("created", sa.Float, nullable=False),
    # Ids are never reused: the receiver's deduplication key (X-Vallum-Delivery, Nats-Msg-Id).
    sqlite_autoincrement=True,
)
sa.Index("ix_event_deliveries_due", event_deliveries.c.next_try)
sa.Index("ix_event_deliveries_key", event_deliveries.c.target, event_deliveries.c.bucket,
         event_deliveries.c.key, event_deliveries.c.id)

# Deliveries given up after the target's max_attempts (queryable by the account's admins).
event_dead_letters = sa.Table(
    "event_dead_letters", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("bucket", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)
sa.Index("ix_event_dead_letters_account", event_dead_letters.c.account, event_dead_letters.c.id)
