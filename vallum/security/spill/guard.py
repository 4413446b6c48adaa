"""Spill guard: the marking scanner fed by the ingest loop, checked before the blob commits.

What an upload carries is checked against its label and the bucket's ceiling: the body
(``feed``/``check``) and the names and values around it (``check_fields``: the key, user
metadata names and values, tags), which are as readable as the body. A body that could
not be scanned whole (inflation budget, nesting depth) is refused: fail closed.

A bucket chooses what a spill does (``config["spill-mode"]``, set at CreateBucket with the
``x-vallum-spill-mode`` header): ``refuse`` (the default), ``quarantine`` (stored, but at
the marked level: the guard's ``label`` rises to the join of the label and the markings,
so only readers cleared for the marking see it; alerted) or ``audit`` (stored as labelled,
alerted and audited). Either way ``outcome`` says what happened, for the audit rule.

Benchmark-only switch (never in production, like those in ``security/setup.py``):
``VALLUM_SPILL_SCAN=off`` turns the scan off, so ``make bench`` can measure what it costs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import NoReturn

from vallum.security.mac.labels import Label
from vallum.security.mac.rules import LabelRange, check_spill
from vallum.security.spill.markings import MarkingScanner, scan_text

alert_log = logging.getLogger("vallum.security.alert")
SCANNING = os.environ.get("VALLUM_SPILL_SCAN", "on").lower() not in ("off", "0", "false", "no")
MODES = ("refuse", "quarantine", "audit")
MODE_KEY = "spill-mode"
MODE_HEADER = "x-vallum-spill-mode"


def mode_of(bucket_config: Mapping[str, object]) -> str:
    """The bucket's spill mode; anything unknown is "refuse" (fail closed)."""
    mode = bucket_config.get(MODE_KEY)
    return mode if mode in MODES else "refuse"


class SpillDetected(Exception):
    """An upload's content is marked above its label or the bucket ceiling (mapped to the
    S3 error SpillDetected by the handler). The message names the spill rule (audited)."""


def fields(key: str | None = None, user_meta: Mapping[str, str] | None = None,
           tags: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The named strings of a write that are scanned like its body: where -> value.
    ``headers`` are the standard headers stored and returned with the object
    (Content-Disposition, Cache-Control, Content-Type and its parameters, ...)."""
    out: dict[str, str] = {}
    if key is not None:
        out["key name"] = key
    for name, value in (headers or {}).items():
        out[f"header {name}"] = value
    for name, value in (user_meta or {}).items():
        out[f"metadata name {name!r}"] = name
        out[f"metadata {name!r}"] = value
    for name, value in (tags or {}).items():
        out[f"tag name {name!r}"] = name
        out[f"tag {name!r}"] = value
    return out


class SpillGuard:
    def __init__(self, label: Label, bucket_range: LabelRange | None, context: str = "",
                 mode: str = "refuse") -> None:
        self.label = label
        self.bucket_range = bucket_range
        self.context = context
        self.mode = mode if mode in MODES else "refuse"
        self.outcome: str | None = None     # "spill: quarantined ..." / "spill: audit-only ..." when stored
        self.scanner = MarkingScanner(label.scheme) if SCANNING else None

    def feed(self, data: bytes) -> None:
        if self.scanner is not None:
            self.scanner.feed(data)

    def check(self) -> None:
        """Raise SpillDetected (and raise an alert) if the body is marked too high."""
        if self.scanner is None:
            return
        found = self.scanner.finish()
        if self.scanner.incomplete:
            self._refuse(f"content could not be scanned whole: {self.scanner.budget.reason}",
                         self.scanner.found)
        self._judge("content", found, self.scanner.found)

    def check_fields(self, named: Mapping[str, str]) -> None:
        """Raise SpillDetected if a key name, metadata or tag (``fields()``) is marked too high."""
        if not SCANNING:
            return
        for where, value in named.items():
            found, incomplete = scan_text(value, self.label.scheme)
            if incomplete:
                self._refuse(f"the {where} could not be scanned whole", [])
            self._judge(f"the {where}", found, [found.banner()] if found else [])

    def _judge(self, what: str, found: Label | None, markings: list[str]) -> None:
        decision = check_spill(found, self.label, self.bucket_range)
        if decision.allowed:
            return
        reason = decision.reason if what == "content" else decision.reason.replace("content", what, 1)
        if self.mode == "refuse" or found is None:
            self._refuse(reason, markings)
        if self.mode == "quarantine":
            self.label = self.label.join(found)
            self.outcome = f"spill: quarantined at {self.label}: {reason}"
        else:
            self.outcome = f"spill: audit-only: {reason}"
        alert_log.warning("SPILL %s %s (markings: %s)", self.outcome, self.context, ", ".join(markings))

    def _refuse(self, reason: str, markings: list[str]) -> NoReturn:
        alert_log.warning("SPILL refused %s: %s (markings: %s)", self.context, reason, ", ".join(markings))
        raise SpillDetected(f"spill: {reason}")
