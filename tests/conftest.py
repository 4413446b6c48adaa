"""Session-wide test settings.

- The test process's own sandbox checks (sandbox.detect_mode in skip conditions and the
  in-process harness) see the same explicit root override the test servers get: CI runs
  as root, and without it every sandbox test would be refused, not tested.
- No test may leave a process behind: at the end of the session, a process still running
  with the session's temp dir in its command line (a server, a task) fails the run.
"""

import os

import pytest

from tests.support import procs

if os.geteuid() == 0:
    os.environ.setdefault("VALLUM_ALLOW_ROOT_COMPUTE", "1")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):        # an xdist worker: the controller checks
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or factory._basetemp is None:  # no test made a temp dir
        return
    left = procs.left_behind(str(factory.getbasetemp()))
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nprocesses left behind by the tests:\n" +
              "\n".join(f"  {pid} {cmd[:200]}" for pid, cmd in sorted(left.items())))
