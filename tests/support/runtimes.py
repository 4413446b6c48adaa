"""A named runtime built for a test with `vallum runtime build`, from a wheel made here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.wheels import make_wheel


def vallum(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vallum", *map(str, args)],
                          capture_output=True, text=True, timeout=180, check=False)


@contextmanager
def built_runtime(data_dir: Path, name: str, package: str, source: str) -> Iterator[Path]:
    """Build runtime ``name`` holding ``package`` (its __init__ is ``source``) and register
    it with ``data_dir``; removed afterwards. Not under pytest's tmp_path: that is 0700 to
    root, and the sandbox users must reach a runtime."""
    work = Path(tempfile.mkdtemp(prefix="vallum-runtime-test-"))
    os.chmod(work, 0o755)  # noqa: S103 - the sandbox users read the runtime beneath it
    try:
        make_wheel(work / "wheelhouse", package, source)
        (work / "requirements.txt").write_text(f"{package}\n")
        done = vallum("runtime", "build", name, "--wheelhouse", work / "wheelhouse",
                      "--requirements", work / "requirements.txt", "--into", work / "runtimes",
                      "--data-dir", data_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        yield work / "runtimes" / name
    finally:
        vallum("runtime", "remove", name, "--data-dir", data_dir)
        shutil.rmtree(work, ignore_errors=True)
