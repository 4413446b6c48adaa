"""Mandatory access control decisions (pure): no read up, no write down, bucket ranges.

Called by ``authz.decide`` before any IAM policy is looked at, and by listings to
hide what the caller may not read; no policy (and no root) overrides a denial here.
"""

from __future__ import annotations

from dataclasses import dataclass

from vallum.security.mac.labels import Label


@dataclass(frozen=True)
class LabelRange:
    """A bucket's range: every object label must dominate the floor and be dominated by the ceiling."""

    floor: Label
    ceiling: Label

    def __post_init__(self) -> None:
        if not self.ceiling.dominates(self.floor):
            raise ValueError(f"label range ceiling {self.ceiling} does not dominate floor {self.floor}")

    def contains(self, label: Label) -> bool:
        return label.dominates(self.floor) and self.ceiling.dominates(label)


@dataclass(frozen=True)
class MacDecision:
    allowed: bool
    reason: str


def session_level(clearance: Label, requested: Label | None) -> Label:
    """The level a request runs at: the requested one if the clearance dominates it."""
    if requested is None:
        return clearance
    if not clearance.dominates(requested):
        raise PermissionError(f"session level {requested} exceeds the clearance")
    return requested


def check_read(clearance: Label, label: Label) -> MacDecision:
    """No read up. A denied read must be answered as if the object did not exist."""
    if clearance.dominates(label):
        return MacDecision(True, "clearance dominates the object label")
    return MacDecision(False, f"object label {label} is not dominated by the clearance")


def check_write(session: Label, label: Label, bucket_range: LabelRange | None) -> MacDecision:
    """No write down: the new label dominates the session level and lies in the bucket range."""
    if not label.dominates(session):
        return MacDecision(False, f"write down: label {label} does not dominate session level {session}")
    if bucket_range is not None and not bucket_range.contains(label):
        return MacDecision(False, f"label {label} is outside the bucket range "
                                  f"[{bucket_range.floor}, {bucket_range.ceiling}]")
    return MacDecision(True, "label dominates the session level and lies in the bucket range")


def check_spill(found: Label | None, label: Label, bucket_range: LabelRange | None) -> MacDecision:
    """Content marked above the object's label (or the bucket's ceiling) is a spill."""
    if found is None:
        return MacDecision(True, "no marking found")
    if not label.dominates(found):
        return MacDecision(False, f"content marked {found} exceeds the object label {label}")
    if bucket_range is not None and not bucket_range.ceiling.dominates(found):
        return MacDecision(False, f"content marked {found} exceeds the bucket ceiling {bucket_range.ceiling}")
    return MacDecision(True, "markings within the object label")


@dataclass(frozen=True)
class Subject:
    """What MAC knows of one request's caller, computed once and compared in O(1).

    ``read``: the level reads must be dominated by (the session level; None = system
    high, reads anything). ``write``: the level every write's label must dominate.
    A *trusted subject* (the platform root, as in Bell-LaPadula) is exempt from the
    no-write-down rule unless it chose a session level, but never from no-read-up
    once a clearance is configured for it.
    """

    clearance: Label | None
    read: Label | None
    write: Label

    def can_read(self, label: Label) -> bool:
        return self.read is None or self.read.dominates(label)

    def describe(self) -> str:
        return "system high" if self.read is None else self.read.banner()


def subject_for(clearance: Label | None, requested: Label | None, *, trusted: bool,
                floor: Label) -> Subject:
    """The Subject of a caller with ``clearance`` (None: system high) asking to run at
    ``requested`` (None: at its clearance). PermissionError if the clearance does not
    dominate the requested session level."""
    if requested is not None:
        if clearance is not None and not clearance.dominates(requested):
            raise PermissionError(f"session level {requested} exceeds the clearance")
        return Subject(clearance, requested, requested)
    write = floor if trusted or clearance is None else clearance
    return Subject(clearance, clearance, write)
