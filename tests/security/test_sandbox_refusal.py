"""No silent downgrade: without bubblewrap, or as root, the gateway refuses tenant code.

A real server started with no bubblewrap on its PATH must fail every job with a
reason that says how to install bubblewrap, and the job's code must not run; only
the explicit single-tenant override (VALLUM_SANDBOX=unsafe-single-tenant) runs it.
A gateway running as root refuses tenant code unless started with
--allow-root-compute (VALLUM_ALLOW_ROOT_COMPUTE=1), saying how to run it as a service
user; run as an unprivileged user, it runs tasks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.compute import client_of
from tests.support.server import server_log, start_server, stop_server
from vallum.client import VallumError
from vallum.compute import sandbox

CODE = ("import os, subprocess\nsubprocess.run([\"sh\", \"-c\", \"echo a | cat\"], check=True)\n"
        "open(os.environ['VALLUM_OUTPUT'] + '/ran', 'w').write('tenant code ran')\n")


def _run_job(tmp_path, env, *extra, launcher=None, data=None):
    """A job's end, the keys in its bucket, the server, and a function invocation's error
    (None when it ran)."""
    srv = start_server(data or tmp_path / "data", *extra, env=env, launcher=launcher)
    try:
        s3, api = srv.client(), client_of(srv)
        name = "refuse-" + uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=name)
        job = api.submit({"runtime": "python", "code": CODE, "output": f"s3://{name}/o/"})
        done = api.wait(job["id"], timeout=60)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]
        api.create_function("probe", {"handler": "main.h", "code": "def h(e, c):\n    return 1\n"})
        try:
            api.invoke("probe", {})
            error = None
        except VallumError as exc:
            error = str(exc)
        return done, keys, srv, error
    finally:
        stop_server(srv)


@pytest.fixture
def no_bwrap(tmp_path):
    (tmp_path / "empty-bin").mkdir()
    return tmp_path


def _without_bwrap(tmp_path, env):
    return _run_job(tmp_path, {"PATH": str(tmp_path / "empty-bin"), **env})


def test_without_bubblewrap_tenant_code_is_refused(no_bwrap):
    done, keys, srv, error = _without_bwrap(no_bwrap, {"VALLUM_SANDBOX": ""})
    assert done["state"] == "FAILED", done
    assert error is not None and "bubblewrap" in error, error     # functions do not start
    reason = done["reason"] or ""
    assert "bubblewrap" in reason and "VALLUM_SANDBOX=unsafe-single-tenant" in reason, reason
    assert str(srv.data_dir) not in reason
    assert "o/ran" not in keys                       # the tenant's code never ran


def test_the_old_degraded_mode_name_does_not_downgrade(no_bwrap):
    done, keys, _, error = _without_bwrap(no_bwrap, {"VALLUM_SANDBOX": "rlimits"})
    assert done["state"] == "FAILED" and "o/ran" not in keys, done
    assert error is not None, "a function ran unsandboxed"


def test_the_explicit_single_tenant_override_runs_tasks(no_bwrap):
    done, keys, _, error = _without_bwrap(no_bwrap, {"VALLUM_SANDBOX": "unsafe-single-tenant"})
    assert done["state"] == "SUCCEEDED" and "o/ran" in keys, done
    assert error is None, error


as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the gateway runs as root only in CI")
NOT_ALLOWED = {sandbox.ALLOW_ROOT_ENV: ""}


@as_root
def test_as_root_tenant_code_is_refused_unless_allowed(tmp_path):
    done, keys, srv, error = _run_job(tmp_path, NOT_ALLOWED)
    assert done["state"] == "FAILED" and "o/ran" not in keys, done
    assert done["reason"] == sandbox.ROOT_REFUSAL
    for words in ("service user", "--allow-root-compute", "VALLUM_ALLOW_ROOT_COMPUTE=1",
                  "docs/sandbox.md"):
        assert words in done["reason"]
    assert error is not None and "service user" in error, error       # nor a function
    assert f"Compute:            REFUSED. {sandbox.ROOT_REFUSAL}" in \
        server_log(srv.data_dir).read_text()                         # what `make run` shows


@as_root
@pytest.mark.parametrize("how", ["flag", "env"])
def test_as_root_the_explicit_override_runs_tenant_code(tmp_path, how):
    extra = ("--allow-root-compute",) if how == "flag" else ()
    env = NOT_ALLOWED if how == "flag" else {sandbox.ALLOW_ROOT_ENV: "1"}
    done, keys, srv, error = _run_job(tmp_path, env, *extra)
    assert done["state"] == "SUCCEEDED" and "o/ran" in keys, done
    assert error is None, error
    assert "running as root by request" in server_log(srv.data_dir).read_text()


SERVICE_UID = 64_123


@contextlib.contextmanager
def _traversable(*paths: str) -> Iterator[None]:
    """Let the service user reach the code and packages for the test's length: a clone or a
    virtual environment often sits under a private (0700) directory, as under `mktemp -d`.
    Adds search permission (o+x) to the ancestors that lack it, and read (o+r, Python lists
    an import path's directory) to the paths themselves; restores every mode after."""
    changed: dict[Path, int] = {}
    try:
        for path in paths:
            for parent in [Path(path), *Path(path).parents]:
                need = stat.S_IXOTH | (stat.S_IROTH if parent == Path(path) else 0)
                mode = parent.stat().st_mode
                if mode & need != need:
                    changed.setdefault(parent, mode)
                    os.chmod(parent, stat.S_IMODE(mode) | need)
        yield
    finally:
        for parent, mode in reversed(changed.items()):
            os.chmod(parent, stat.S_IMODE(mode))


@as_root
def test_as_an_unprivileged_service_user_tenant_code_runs(tmp_path):
    """The gateway run with setpriv as a uid of its own (its data directory owned by it):
    bubblewrap makes its sandboxes with unprivileged user namespaces. The interpreter is
    the system's python3 with this environment's packages: the test's own may sit under
    a home the service user cannot enter."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python, "a system python3 is needed to run the gateway as another user"
    home = Path(tempfile.mkdtemp(prefix="vallum-svc-"))
    try:
        os.chown(home, SERVICE_UID, SERVICE_UID)
        packages = sysconfig.get_paths()["purelib"]
        root = str(Path(sandbox.__file__).parents[2])
        env = {**NOT_ALLOWED, "PYTHONPATH": os.pathsep.join([root, packages]),
               "HOME": str(home), "TMPDIR": str(home)}
        launcher = ["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}",
                    "--clear-groups", "--inh-caps=-all", "--", python]
        with _traversable(root, packages):
            done, keys, srv, error = _run_job(tmp_path, env, launcher=launcher, data=home / "data")
        assert done["state"] == "SUCCEEDED" and "o/ran" in keys, \
            (done, server_log(home / "data").read_text()[-2000:])
        assert error is None, error
        assert os.stat(home / "data").st_uid == SERVICE_UID
        assert "Compute:" not in server_log(home / "data").read_text()   # no refusal to tell
    finally:
        shutil.rmtree(home, ignore_errors=True)
