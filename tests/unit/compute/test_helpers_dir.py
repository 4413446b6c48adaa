"""The sandbox's helper scripts stay reachable when the package is not (checkout under 0700)."""

import os

import pytest

from vallum.compute import sandbox


@pytest.fixture
def unreachable_package(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "drop_privileges", lambda: True)
    monkeypatch.setattr(sandbox, "_open_to_others", lambda path: False)
    monkeypatch.setattr(sandbox.tempfile, "gettempdir", lambda: str(tmp_path))
    sandbox.helpers_dir.cache_clear()
    yield tmp_path
    sandbox.helpers_dir.cache_clear()


def test_copy_is_world_readable_shared_and_equal(unreachable_package):
    first = sandbox.helpers_dir()
    assert first.parent == unreachable_package
    assert os.stat(first).st_mode & 0o777 == 0o755
    for name in ("relay.py", "fnworker.py", "taskworker.py"):
        assert (first / name).read_bytes() == (sandbox.HELPERS / name).read_bytes()
        assert os.stat(first / name).st_mode & 0o777 == 0o644
    sandbox.helpers_dir.cache_clear()
    assert sandbox.helpers_dir() == first                   # reused, not copied again
    assert len(list(unreachable_package.iterdir())) == 1


def test_tampered_copy_is_refused(unreachable_package):
    copy = sandbox.helpers_dir()
    os.chmod(copy / "relay.py", 0o644)
    (copy / "relay.py").write_bytes(b"import os; os.system('evil')\n")
    sandbox.helpers_dir.cache_clear()
    with pytest.raises(RuntimeError, match="not a trusted copy"):
        sandbox.helpers_dir()


def test_group_writable_copy_is_refused(unreachable_package):
    copy = sandbox.helpers_dir()
    os.chmod(copy, 0o775)
    sandbox.helpers_dir.cache_clear()
    with pytest.raises(RuntimeError):
        sandbox.helpers_dir()
