"""Lifecycle test helpers: move a `--test-clock` server's clock and wait for a sweep."""

from __future__ import annotations

import time

DAY = 86400


def sweep_at(server, offset: float, timeout: float = 20.0) -> None:
    """Move the server clock to now + offset and wait until a whole sweep ran with it."""
    clock = server.data_dir / "test-clock-offset"
    done = server.data_dir / "test-clock-offset.swept"
    clock.write_text(repr(float(offset)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists() and done.read_text().strip() == repr(float(offset)):
            return
        time.sleep(0.05)
    raise AssertionError("no lifecycle sweep ran with the new clock")
