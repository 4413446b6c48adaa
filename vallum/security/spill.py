"""Spill guard: the marking scanner fed by the ingest loop, checked before the blob commits.

Benchmark-only switch (never in production, like those in ``security/setup.py``):
``VALLUM_SPILL_SCAN=off`` turns the scan off, so ``make bench`` can measure what it costs.
"""

from __future__ import annotations

import logging
import os

from vallum.security.labels import Label
from vallum.security.mac import LabelRange, check_spill
from vallum.security.markings import MarkingScanner

alert_log = logging.getLogger("vallum.security.alert")
SCANNING = os.environ.get("VALLUM_SPILL_SCAN", "on").lower() not in ("off", "0", "false", "no")


class SpillDetected(Exception):
    """An upload's content is marked above its label or the bucket ceiling (mapped to the
    S3 error SpillDetected by the handler)."""


class SpillGuard:
    def __init__(self, label: Label, bucket_range: LabelRange | None, context: str = "") -> None:
        self.label = label
        self.bucket_range = bucket_range
        self.context = context
        self.scanner = MarkingScanner(label.scheme) if SCANNING else None

    def feed(self, data: bytes) -> None:
        if self.scanner is not None:
            self.scanner.feed(data)

    def check(self) -> None:
        """Raise SpillDetected (and raise an alert) if the content is marked too high."""
        if self.scanner is None:
            return
        found = self.scanner.finish()
        decision = check_spill(found, self.label, self.bucket_range)
        if not decision.allowed:
            alert_log.warning("SPILL refused %s: %s (markings: %s)", self.context, decision.reason,
                              ", ".join(self.scanner.found))
            raise SpillDetected(decision.reason)
