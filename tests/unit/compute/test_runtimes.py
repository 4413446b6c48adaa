"""The runtime registry and the checks a tree passes before sandboxes may bind it."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from vallum.compute import runtimes
from vallum.compute.functions import parse_function
from vallum.compute.spec import Quota, SpecError, parse_job


@pytest.fixture
def public():
    """A world-traversable directory (pytest's tmp_path is 0700: no sandbox user gets in)."""
    d = Path(tempfile.mkdtemp(prefix="vallum-rt-unit-"))
    os.chmod(d, 0o755)  # noqa: S103 - what a runtime's parent must be
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fake_venv(where: Path) -> Path:
    (where / "bin").mkdir(parents=True)
    (where / "pyvenv.cfg").write_text("home = /usr/bin\n")
    os.symlink("/usr/bin/python3", where / "bin" / "python")
    (where / "lib").mkdir()
    (where / "lib" / "mod.py").write_text("X = 1\n")
    for p in (where, where / "bin", where / "lib"):
        os.chmod(p, 0o755)  # noqa: S103
    os.chmod(where / "pyvenv.cfg", 0o644)
    os.chmod(where / "lib" / "mod.py", 0o644)
    return where


def test_registry_round_trip_is_private_and_resolves_symlinks(public, tmp_path):
    venv = fake_venv(public / "v")
    os.symlink(venv, public / "link")
    reg = runtimes.Registry(tmp_path / "data")
    assert reg.add("py-data.1", public / "link") == venv.resolve()
    assert reg.resolve("py-data.1") == venv.resolve()
    assert stat.S_IMODE(os.stat(reg.path).st_mode) == 0o600
    assert runtimes.Registry(tmp_path / "data").names() == ["py-data.1"]   # another process
    assert reg.remove("py-data.1") == str(venv.resolve())
    with pytest.raises(SpecError) as unknown:
        reg.resolve("py-data.1")
    assert (unknown.value.code, unknown.value.status) == ("UnknownRuntime", 400)
    with pytest.raises(runtimes.RuntimeRefused):
        reg.remove("py-data.1")


@pytest.mark.parametrize("name", ["", "A", "-x", ".x", "a/b", "../a", "a" * 65, "a b"])
def test_names_are_refused_everywhere(name, tmp_path, public):
    with pytest.raises(runtimes.RuntimeRefused):
        runtimes.Registry(tmp_path).add(name, fake_venv(public / "v"))
    with pytest.raises(SpecError) as bad:
        parse_job({"runtime": "python", "code": "1", "output": "s3://b/o/", "venv": name},
                  Quota())
    assert bad.value.code == "UnknownRuntime"
    with pytest.raises(SpecError):
        parse_function({"handler": "main.h", "code": "", "venv": name}, Quota())


def test_a_function_job_cannot_name_a_runtime():
    spec = parse_job({"runtime": "command", "command": ["true"], "output": "s3://b/o/",
                      "venv": "data"}, Quota())
    assert spec.venv == "data"
    with pytest.raises(SpecError):
        parse_job({"runtime": "function", "function": "f", "venv": "data"}, Quota(),
                  allow_function=True)


def _refusal(path: Path, data_dir: Path) -> str:
    with pytest.raises(runtimes.RuntimeRefused) as refused:
        runtimes.check_tree(path, data_dir)
    return str(refused.value)


def test_check_tree_refuses_what_may_not_be_bound(public, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    venv = fake_venv(public / "v")
    assert runtimes.check_tree(venv, data) == venv
    assert "absolute" in _refusal(Path("v"), data)
    assert "No such file" in _refusal(public / "missing", data)
    assert "not a virtual environment" in _refusal(public, data)
    assert "data directory" in _refusal(venv, venv / "lib")            # holds the data dir
    os.chmod(venv / "lib" / "mod.py", 0o664)
    assert "mod.py: writable by group or others" in _refusal(venv, data)
    os.chmod(venv / "lib" / "mod.py", 0o600)
    assert "mod.py: not readable by the sandbox users" in _refusal(venv, data)
    os.chmod(venv / "lib" / "mod.py", 0o644)
    os.chmod(public, 0o777)
    assert "writable by group or others" in _refusal(venv, data)       # a parent others change
    os.chmod(public, 0o700)
    assert "not traversable" in _refusal(venv, data)
    os.chmod(public, 0o755)  # noqa: S103
    inside = fake_venv(tmp_path / "data" / "v")
    assert "data directory" in _refusal(inside, data)


def test_built_scripts_name_the_mounted_interpreter(public):
    venv = fake_venv(public / "v")
    (venv / "bin" / "tool").write_text(f"#!{venv}/bin/python\nimport sys\n")
    (venv / "bin" / "other").write_text("#!/bin/sh\necho hi\n")
    runtimes._relocate_scripts(venv)
    assert (venv / "bin" / "tool").read_text().startswith("#!/opt/vallum/runtime/bin/python\n")
    assert (venv / "bin" / "other").read_text() == "#!/bin/sh\necho hi\n"


def test_a_failed_build_names_the_missing_wheel_and_leaves_nothing(public, tmp_path):
    (public / "wheels").mkdir()
    (public / "req.txt").write_text("vallum-no-such-package\n")
    reg = runtimes.Registry(tmp_path / "data")
    with pytest.raises(runtimes.BuildFailed) as failed:
        runtimes.build("x", public / "wheels", public / "req.txt", public / "rt", reg)
    assert "vallum-no-such-package" in str(failed.value) and "\n" not in str(failed.value)
    assert not (public / "rt" / "x").exists() and reg.names() == []
    with pytest.raises(runtimes.RuntimeRefused):
        runtimes.build("x", public / "missing", public / "req.txt", public / "rt", reg)
