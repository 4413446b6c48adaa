"""No silent downgrade: without bubblewrap the gateway refuses tenant code.

A real server started with no bubblewrap on its PATH must fail every job with a
reason that says how to install bubblewrap, and the job's code must not run; only
the explicit single-tenant override (VALLUM_SANDBOX=unsafe-single-tenant) runs it.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.compute import client_of
from tests.support.server import start_server, stop_server
from vallum.client import VallumError

CODE = "import os\nopen(os.environ['VALLUM_OUTPUT'] + '/ran', 'w').write('tenant code ran')\n"


def _run_job(tmp_path, env):
    """A job's end, the keys in its bucket, the server, and a function invocation's error
    (None when it ran)."""
    srv = start_server(tmp_path / "data", env={"PATH": str(tmp_path / "empty-bin"), **env})
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


def test_without_bubblewrap_tenant_code_is_refused(no_bwrap):
    done, keys, srv, error = _run_job(no_bwrap, {"VALLUM_SANDBOX": ""})
    assert done["state"] == "FAILED", done
    assert error is not None and "bubblewrap" in error, error     # functions do not start
    reason = done["reason"] or ""
    assert "bubblewrap" in reason and "VALLUM_SANDBOX=unsafe-single-tenant" in reason, reason
    assert str(srv.data_dir) not in reason
    assert "o/ran" not in keys                       # the tenant's code never ran


def test_the_old_degraded_mode_name_does_not_downgrade(no_bwrap):
    done, keys, _, error = _run_job(no_bwrap, {"VALLUM_SANDBOX": "rlimits"})
    assert done["state"] == "FAILED" and "o/ran" not in keys, done
    assert error is not None, "a function ran unsandboxed"


def test_the_explicit_single_tenant_override_runs_tasks(no_bwrap):
    done, keys, _, error = _run_job(no_bwrap, {"VALLUM_SANDBOX": "unsafe-single-tenant"})
    assert done["state"] == "SUCCEEDED" and "o/ran" in keys, done
    assert error is None, error
