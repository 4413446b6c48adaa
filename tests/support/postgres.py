"""A real PostgreSQL server for the tests: Debian's binaries, ``initdb`` into a temp directory,
listening on 127.0.0.1 (a free port) and a unix socket in that directory.

One server per test process (pytest-xdist worker), started on first use and stopped at the
session's end (the ``postgres`` fixture) or, for a stateful test that asked for it without the
fixture, when the process exits. PostgreSQL refuses to run as root: as root the server runs as
the ``postgres`` user the Debian package creates. Each store under test gets a schema of its
own (``fresh_url``), which is much cheaper than a database each.

``make test`` installs the package when the binaries are missing (scripts/install-postgres.sh).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port

USER = "vallum"
PASSWORD = "vallum-test-only-password"      # scram over TCP; the socket trusts its owner
RUN_AS = "postgres"


def bindir() -> Path:
    """Where initdb and pg_ctl are (Debian keeps them out of PATH, per major version)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise RuntimeError("PostgreSQL binaries not found: run scripts/install-postgres.sh "
                           "(make test does) or apt-get install postgresql")
    return Path(versions[-1]).parent


@dataclass
class PostgresServer:
    root: Path
    port: int
    proc_user: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, schema: str | None = None) -> str:
        base = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{USER}"
        return base + (f"?options=-csearch_path%3D{schema}" if schema else "")

    def psql(self, sql: str, database: str = USER) -> str:
        """Run ``sql`` as the superuser over the unix socket (test set-up only)."""
        out = subprocess.run([str(bindir() / "psql"), "-h", str(self.root), "-p", str(self.port),
                              "-U", USER, "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                             capture_output=True, text=True, timeout=60, **_as_user(self.proc_user))
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout


_counter = itertools.count()
_lock = threading.Lock()
_shared: PostgresServer | None = None


def _as_user(name: str | None) -> dict:
    return {} if name is None else {"user": name, "group": pwd.getpwnam(name).pw_gid}


def _pg_ctl(server: PostgresServer, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bindir() / "pg_ctl"), "-D", str(server.data), *args],
                          capture_output=True, text=True, timeout=120,
                          **_as_user(server.proc_user))


def start() -> PostgresServer:
    """initdb and start a server; the caller stops it with ``stop``."""
    proc_user = RUN_AS if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="vallum-pg-"))
    if proc_user is not None:
        entry = pwd.getpwnam(proc_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if proc_user is not None:
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pwfile.chmod(0o600)
    made = subprocess.run([str(bindir() / "initdb"), "-D", str(root / "data"), "-U", USER,
                           "--pwfile", str(pwfile), "--auth-local=trust",
                           "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                           "--no-sync"],
                          capture_output=True, text=True, timeout=120, **_as_user(proc_user))
    pwfile.unlink()
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {made.stderr}")
    for _ in range(5):
        server = PostgresServer(root, free_port(), proc_user)
        run = _launch(server)
        if run.returncode == 0:
            server.psql(f"CREATE DATABASE {USER}", database="postgres")
            return server
        if "could not bind" not in (root / "server.log").read_text(errors="replace"):
            break
    log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"pg_ctl start failed: {run.stderr}\n{log}")


def _launch(server: PostgresServer) -> subprocess.CompletedProcess:
    # Durability settings off: the tests check the store's semantics, not PostgreSQL's fsync.
    options = (f"-c listen_addresses=127.0.0.1 -c port={server.port} "
               f"-c unix_socket_directories={server.root} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=200")
    return _pg_ctl(server, "-w", "-t", "60", "-l", str(server.root / "server.log"), "-o", options,
                   "start")


def halt(server: PostgresServer) -> None:
    """Stop the server but keep its data (``resume`` starts it again on the same port)."""
    _pg_ctl(server, "-w", "-t", "60", "-m", "fast", "stop")


def resume(server: PostgresServer) -> None:
    run = _launch(server)
    if run.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {run.stderr}")


def stop(server: PostgresServer) -> None:
    """Stop the server (no process left behind) and remove its directory."""
    if (server.data / "postmaster.pid").exists():
        # "fast": the postmaster exits only after every child has (with "immediate" a child
        # could still write into the directory being removed).
        _pg_ctl(server, "-w", "-t", "60", "-m", "fast", "stop")
    if server.root.exists():
        shutil.rmtree(server.root)


def shared() -> PostgresServer:
    """This process's server, started on first use."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = start()
            atexit.register(stop_shared)
        return _shared


def stop_shared() -> None:
    global _shared
    with _lock:
        server, _shared = _shared, None
    if server is not None:
        stop(server)


def fresh_url() -> str:
    """A URL whose search_path is a new, empty schema: a store of its own."""
    import psycopg

    server = shared()
    name = f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return server.url(name)


def fresh_database_url(schema: str) -> str:
    """A URL on a new, empty database of the same server whose search_path is ``schema``
    (not created): where a site's metadata is restored, as on a new database server."""
    import psycopg

    server = shared()
    name = f"d{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.url(schema).replace(f"/{USER}?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def postgres():
    """The session's server; stopped when the session ends."""
    yield shared()
    stop_shared()
