"""The test process's own sandbox checks (sandbox.detect_mode in skip conditions and the
in-process harness) see the same explicit root override the test servers get: CI runs
as root, and without it every sandbox test would be refused, not tested."""

import os

if os.geteuid() == 0:
    os.environ.setdefault("VALLUM_ALLOW_ROOT_COMPUTE", "1")
