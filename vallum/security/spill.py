"""Spill guard: the marking scanner fed by the ingest loop, checked before the blob commits."""

from __future__ import annotations

import logging

from vallum.security.labels import Label
from vallum.security.mac import LabelRange, check_spill
from vallum.security.markings import MarkingScanner

alert_log = logging.getLogger("vallum.security.alert")


class SpillDetected(Exception):
    """An upload's content is marked above its label or the bucket ceiling (mapped to the
    S3 error SpillDetected by the handler)."""


class SpillGuard:
    def __init__(self, label: Label, bucket_range: LabelRange | None, context: str = "") -> None:
        self.label = label
        self.bucket_range = bucket_range
        self.context = context
        self.scanner = MarkingScanner(label.scheme)

    def feed(self, data: bytes) -> None:
        self.scanner.feed(data)

    def check(self) -> None:
        """Raise SpillDetected (and raise an alert) if the content is marked too high."""
        found = self.scanner.finish()
        decision = check_spill(found, self.label, self.bucket_range)
        if not decision.allowed:
            alert_log.warning("SPILL refused %s: %s (markings: %s)", self.context, decision.reason,
                              ", ".join(self.scanner.found))
            raise SpillDetected(decision.reason)
