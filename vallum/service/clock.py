"""The time retention and lifecycle decisions use: wall time, plus a test offset.

Functional tests must show a 30-day lifecycle rule or a retain-until date taking
effect in seconds, without patching the server. ``vallum serve --test-clock``
(and nothing else) exports VALLUM_TEST_CLOCK_FILE naming a file in the data
directory; when set, the number of seconds written in that file is added to the
wall clock. Only someone who can start the server and write its data directory
can move time, and a production server (no flag) ignores the file entirely.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

TEST_CLOCK_ENV = "VALLUM_TEST_CLOCK_FILE"
TEST_CLOCK_NAME = "test-clock-offset"

log = logging.getLogger("vallum.clock")


class Clock:
    """``now()`` = wall time + the offset in ``offset_file`` (re-read when it changes)."""

    def __init__(self, offset_file: Path | None = None) -> None:
        self.offset_file = offset_file
        self._stamp: int | None = None
        self._offset = 0.0

    @property
    def is_test(self) -> bool:
        return self.offset_file is not None

    def offset(self) -> float:
        if self.offset_file is None:
            return 0.0
        try:
            stamp = self.offset_file.stat().st_mtime_ns
        except OSError:
            self._stamp, self._offset = None, 0.0
            return 0.0
        if stamp != self._stamp:
            try:
                self._offset = float(self.offset_file.read_text().strip() or 0)
            except (OSError, ValueError):
                log.warning("ignoring unreadable test clock file %s", self.offset_file)
                self._offset = 0.0
            self._stamp = stamp
        return self._offset

    def now(self) -> float:
        return time.time() + self.offset()


_clock: Clock | None = None


def clock() -> Clock:
    """This process's clock (a test clock only under ``vallum serve --test-clock``)."""
    global _clock
    if _clock is None:
        path = os.environ.get(TEST_CLOCK_ENV)
        _clock = Clock(Path(path) if path else None)
        if path:
            log.warning("TEST CLOCK ENABLED: time is shifted by the seconds in %s", path)
    return _clock
