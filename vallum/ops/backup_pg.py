"""The PostgreSQL part of a backup, for a site whose metadata is there (``--meta``).

Consistency: one REPEATABLE READ transaction exports its snapshot; the blob ids the metadata
references are read in it, and ``pg_dump --snapshot`` dumps exactly that state (the schema of
the URL's search path, custom format, no owners or privileges). So the dump, the list of
blobs copied and the key table copied after it agree the same way the SQLite copies do.

Restore loads the dump with ``pg_restore`` into the schema the target URL names, which must
be absent or empty: the dump recreates its own schema, renamed to the target's if they
differ. The connection reaches pg_dump / pg_restore through libpq's environment variables,
never argv (a password in a URL would show in the process list).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vallum.meta import codec
from vallum.ops.backup_keys import BackupError

DUMP = "postgres.dump"
# conninfo keys -> the libpq environment variables pg_dump and pg_restore read
_ENV = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE",
        "user": "PGUSER", "password": "PGPASSWORD", "passfile": "PGPASSFILE",
        "options": "PGOPTIONS", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
        "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL",
        "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
        "target_session_attrs": "PGTARGETSESSIONATTRS"}


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise BackupError(f"PostgreSQL metadata needs the postgres extra ({exc})") from None
    return psycopg


def _libpq_env(url: str) -> dict[str, str]:
    psycopg = _psycopg()
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise BackupError(f"bad PostgreSQL URL: {exc}") from None
    unknown = sorted(set(info) - set(_ENV))
    if unknown:
        raise BackupError(f"PostgreSQL URL: parameters pg_dump cannot be given: {', '.join(unknown)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({_ENV[k]: str(v) for k, v in info.items()})
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install PostgreSQL's client programs")
    return found


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip()[-1500:]}")


def _schema(conn: Any) -> str:
    name = conn.execute("SELECT current_schema()").fetchone()[0]
    if name is None:
        raise BackupError("the PostgreSQL URL's search_path names no existing schema")
    return str(name)


@contextmanager
def snapshot(url: str) -> Iterator[tuple[set[str], Any]]:
    """(blob ids the metadata references, dump(dest)) inside one exported snapshot."""
    psycopg = _psycopg()
    try:
        conn = psycopg.connect(url, autocommit=False)
    except psycopg.Error as exc:
        raise BackupError(f"PostgreSQL: {exc}") from None
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snap = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        schema = _schema(conn)
        refs: set[str] = set()
        for blob_id, manifest in conn.execute(
                "SELECT blob_id, parts FROM versions WHERE blob_id IS NOT NULL OR parts IS NOT NULL"):
            if blob_id:
                refs.add(blob_id)
            refs.update(codec.manifest_blob_ids(manifest))
        refs.update(r[0] for r in conn.execute("SELECT blob_id FROM parts"))

        def dump(dest: Path) -> None:
            _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                  f"--snapshot={snap}", f"--schema={schema}", f"--file={dest}"],
                 _libpq_env(url), "pg_dump")
        yield refs, dump
    finally:
        conn.rollback()
        conn.close()


def restore(dump: Path, url: str) -> str:
    """Load ``dump`` into the schema ``url`` names (absent or empty); returns its name."""
    psycopg = _psycopg()
    env = _libpq_env(url)
    listing = subprocess.run([_tool("pg_restore"), "--list", str(dump)], env=env,
                             capture_output=True, text=True, timeout=600)
    dumped = next((line.split()[-2] for line in listing.stdout.splitlines()
                   if " SCHEMA - " in line and not line.startswith(";")), None)
    if listing.returncode != 0 or dumped is None:
        raise BackupError(f"the snapshot's PostgreSQL dump is unreadable: {listing.stderr.strip()[-500:]}")
    with psycopg.connect(url, autocommit=True) as conn:
        path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
        target = path.split(",")[0].strip().strip('"')
        if target == "$user":
            target = conn.execute("SELECT current_user").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (target,)).fetchone()[0]
        if tables:
            raise BackupError(f"schema {target!r} of the target database holds {tables} table(s): "
                              "restore into an empty schema")
        if dumped != target and conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (dumped,)).fetchone():
            raise BackupError(f"schema {dumped!r} (the dumped one) already exists in the target database")
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(target)))
        dbname = env.get("PGDATABASE") or env.get("PGUSER") or "postgres"   # a name, never a URL
        _run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
              "--single-transaction", f"--dbname={dbname}", str(dump)], env, "pg_restore")
        if dumped != target:
            conn.execute(psycopg.sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                psycopg.sql.Identifier(dumped), psycopg.sql.Identifier(target)))
    return target
