"""Named runtimes against hostile callers: a spec names a runtime and never a path, an
unknown one is refused before anything is queued, a task cannot change its runtime, and
no tenant (no API at all) can register one."""

from __future__ import annotations

import json
import os

import pytest

from tests.support import fixtures as functional
from tests.support.compute import client_of
from tests.support.runtimes import built_runtime, vallum
from vallum.client import Client, VallumError
from vallum.compute import runtimes, sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")

server, s3, bucket, root, tenant = (functional.server, functional.s3, functional.bucket,
                                    functional.root, functional.tenant)


@pytest.fixture(scope="module")
def runtime(server):
    with built_runtime(server.data_dir, "sec", "vallum_sec_lib", "MAGIC = 7\n") as path:
        yield path


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def _refused(call) -> VallumError:
    with pytest.raises(VallumError) as refused:
        call()
    return refused.value


def test_an_unknown_runtime_is_refused_at_submit_and_nothing_is_queued(api, bucket, runtime):
    before = len(api.jobs(limit=1000))
    err = _refused(lambda: api.submit({"runtime": "python", "venv": "nosuch", "code": "1",
                                       "output": f"s3://{bucket}/o/"}))
    assert (err.status, err.code) == (400, "UnknownRuntime")
    assert "'nosuch'" in err.message and "sec" in err.message     # names what exists
    assert len(api.jobs(limit=1000)) == before
    err = _refused(lambda: api.create_function("f-nosuch", {"handler": "main.h", "code": "",
                                                            "venv": "nosuch"}))
    assert (err.status, err.code) == (400, "UnknownRuntime")
    assert _refused(lambda: api.function("f-nosuch")).status == 404


HOSTILE = {"parent": "../sec", "absolute": "/opt/vallum-runtimes/sec", "dotdot": "sec/../..",
           "upper": "SEC", "empty": "", "long": "a" * 65, "nul": "sec\x00", "number": 5,
           "list": ["sec"], "data-dir": "runtimes.json"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_runtime_name_never_becomes_a_path(api, bucket, runtime, name):
    venv = HOSTILE[name]
    err = _refused(lambda: api.submit({"runtime": "python", "venv": venv, "code": "1",
                                       "output": f"s3://{bucket}/o/"}))
    assert (err.status, err.code) == (400, "UnknownRuntime")
    err = _refused(lambda: api.create_function("f-hostile", {"handler": "main.h", "code": "",
                                                             "venv": venv}))
    assert (err.status, err.code) == (400, "UnknownRuntime")


WRITE = """
import os, pathlib
import vallum_sec_lib
lib = pathlib.Path(vallum_sec_lib.__file__)
tries = {
    "append": lambda: open(lib, "a").write("MAGIC = 666\\n"),
    "create": lambda: open("/opt/vallum/runtime/planted.py", "w").write("x"),
    "site": lambda: open(lib.parent.parent / "evil.pth", "w").write("import os"),
    "chmod": lambda: os.chmod(lib, 0o777),
    "rename": lambda: os.rename(lib, str(lib) + ".bak"),
    "unlink": lambda: os.unlink("/opt/vallum/runtime/bin/python"),
}
for what, attempt in tries.items():
    try:
        attempt()
        print(what, "WROTE")
    except OSError as exc:
        print(what, "refused", exc.errno)
"""


def test_a_task_cannot_write_into_its_runtime(api, bucket, runtime):
    lib = next(runtime.glob("lib/python*/site-packages/vallum_sec_lib/__init__.py"))
    before = lib.read_bytes(), sorted(os.listdir(runtime)), os.stat(lib).st_mode
    job = api.submit({"runtime": "python", "venv": "sec", "code": WRITE,
                      "output": f"s3://{bucket}/o/"})
    done = api.wait(job["id"], timeout=60)
    log = api.logs(job["id"])["data"]
    assert done["state"] == "SUCCEEDED", log
    lines = dict(line.split(" ", 1) for line in log.strip().splitlines())
    assert set(lines) == {"append", "create", "site", "chmod", "rename", "unlink"}, log
    assert all(v.startswith("refused") for v in lines.values()), log
    assert (lib.read_bytes(), sorted(os.listdir(runtime)), os.stat(lib).st_mode) == before


@pytest.mark.parametrize("method,path", [("POST", "/-/jobs/v1/runtimes"),
                                         ("PUT", "/-/jobs/v1/runtimes/evil"),
                                         ("PUT", "/-/functions/v1/runtimes/evil")])
def test_no_caller_can_register_a_runtime_over_the_network(server, tenant, runtime, method,
                                                           path):
    registry = runtimes.Registry(server.data_dir)
    before = registry.load()
    evil = {"name": "evil", "path": str(server.data_dir)}
    for who in (Client(server.endpoint, *tenant.admin_key, region=server.region),
                client_of(server)):          # a tenant's admin, and even the platform root
        err = _refused(lambda who=who: who.call(method, path, evil))
        assert 400 <= err.status < 500
    assert registry.load() == before and "evil" not in registry.load()


def test_callers_see_runtime_names_never_their_paths(server, tenant, runtime):
    listing = Client(server.endpoint, *tenant.admin_key, region=server.region).call(
        "GET", "/-/jobs/v1/runtimes")
    assert listing == {"runtimes": runtimes.Registry(server.data_dir).names()}
    assert "sec" in listing["runtimes"] and str(runtime) not in str(listing)


def test_the_registry_is_private_to_the_data_directory_owner(server, runtime):
    path = server.data_dir / runtimes.FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["runtimes"]["sec"] == str(runtime)


def test_the_operator_cannot_bind_the_data_directory_or_a_tree_others_can_change(server,
                                                                                 runtime):
    refused = vallum("runtime", "add", "keys", server.data_dir, "--data-dir", server.data_dir)
    assert refused.returncode == 2 and "not a virtual environment" in refused.stderr
    (server.data_dir / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (server.data_dir / "bin").mkdir(exist_ok=True)
    os.symlink("/usr/bin/python3", server.data_dir / "bin" / "python")
    try:
        refused = vallum("runtime", "add", "keys", server.data_dir, "--data-dir", server.data_dir)
        assert refused.returncode == 2 and "data directory" in refused.stderr, refused.stderr
    finally:
        (server.data_dir / "bin" / "python").unlink()
        (server.data_dir / "bin").rmdir()
        (server.data_dir / "pyvenv.cfg").unlink()
    planted = next(runtime.glob("lib/python*/site-packages/vallum_sec_lib/__init__.py"))
    os.chmod(planted, 0o666)
    try:
        refused = vallum("runtime", "add", "sec2", runtime, "--data-dir", server.data_dir)
        assert refused.returncode == 2 and "writable by group or others" in refused.stderr
    finally:
        os.chmod(planted, 0o644)
    assert "keys" not in runtimes.Registry(server.data_dir).load()
