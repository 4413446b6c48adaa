"""Session-wide test settings.

- The test process's own sandbox checks (sandbox.detect_mode in skip conditions and the
  in-process harness) see the same explicit root override the test servers get: CI runs
  as root, and without it every sandbox test would be refused, not tested.
- No test may leave a process behind: at the end of the session, a process still running
  with the session's temp dir in its command line (a server), or a sandbox of a server
  the session started, fails the run.
"""

import os

import pytest

from tests.support import procs
from tests.support.server import STARTED

if os.geteuid() == 0:
    os.environ.setdefault("VALLUM_ALLOW_ROOT_COMPUTE", "1")


_FROM_WORKERS: dict[int, str] = {}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist: what a worker found left behind of its own servers."""
    _FROM_WORKERS.update(getattr(node, "workeroutput", {}).get("left_behind", {}))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    patterns = procs.sandbox_patterns(STARTED)        # every process checks its own servers'
    worker = hasattr(session.config, "workerinput")
    factory = getattr(session.config, "_tmp_path_factory", None)
    if not worker and factory is not None and factory._basetemp is not None:
        patterns.append((str(factory.getbasetemp()),))   # the controller: the whole dir
    left = procs.left_behind(patterns) if patterns else {}
    if worker:
        session.config.workeroutput["left_behind"] = left
        return
    left.update(_FROM_WORKERS)
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nprocesses left behind by the tests:\n" +
              "\n".join(f"  {pid} {cmd[:200]}" for pid, cmd in sorted(left.items())))
