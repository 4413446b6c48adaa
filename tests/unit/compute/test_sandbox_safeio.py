"""safeio: no symlink is followed in any component, and only regular files are read."""

from __future__ import annotations

import os

import pytest

from vallum.compute import safeio


@pytest.fixture
def tree(tmp_path):
    root = tmp_path.resolve()
    (root / "out" / "d").mkdir(parents=True)
    (root / "out" / "d" / "f").write_text("mine")
    (root / "host").mkdir()
    (root / "host" / "secret").write_text("host")
    os.symlink(root / "host", root / "out" / "link-dir")
    os.symlink(root / "host" / "secret", root / "out" / "link-file")
    os.mkfifo(root / "out" / "fifo")
    return root


def test_walk_files_yields_only_regular_files_never_through_links(tree):
    fd = safeio.open_dir(tree / "out")
    try:
        found = {}
        for rel, f in safeio.walk_files(fd):
            with os.fdopen(f, "rb") as fh:
                found[rel] = fh.read()
    finally:
        os.close(fd)
    assert found == {"d/f": b"mine"}


def test_a_link_in_any_component_is_refused(tree):
    with pytest.raises(OSError):
        safeio.open_dir(tree / "out" / "link-dir")
    with pytest.raises(OSError):
        safeio.read_file(tree / "out" / "link-dir" / "secret")
    with pytest.raises(OSError):
        safeio.read_file(tree / "out" / "link-file")
    assert safeio.read_file(tree / "out" / "d" / "f", 1, 2) == b"in"


def test_write_at_never_writes_through_a_linked_parent(tree):
    fd = safeio.open_dir(tree / "out")
    try:
        with pytest.raises(OSError):
            safeio.write_at(fd, "link-dir/new", 0o644)
        os.close(safeio.write_at(fd, "made/deep/new", 0o640))
    finally:
        os.close(fd)
    assert sorted(os.listdir(tree / "host")) == ["secret"]
    assert (tree / "out" / "made" / "deep" / "new").stat().st_mode & 0o777 == 0o640


def test_relative_and_dotted_paths_are_rejected(tree):
    with pytest.raises(ValueError):
        safeio.open_dir("relative/path")
    with pytest.raises(ValueError):
        safeio.open_dir(tree / "out" / ".." / "host")
