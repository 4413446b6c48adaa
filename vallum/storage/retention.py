"""Object lock (WORM): the single place that decides whether a version may go or change.

Every path that removes a version permanently (DeleteObject with versionId,
DeleteObjects, lifecycle expiry, overwrite of a null version) and every change
of a version's retention asks here first. The functions are pure: the caller
passes the version's lock state, the time, and whether the request asked for a
governance bypass *and* is permitted to make one (``may_bypass`` is the
s3:BypassGovernanceRetention decision of the access layer; it is never inferred
here). Storage code does not know S3 errors, so a refusal is a reason string.

Lock state lives in ``ObjectRecord.extra`` (and ``UploadRecord.extra`` until the
upload completes) as ``{"retention": {"mode": ..., "until": epoch}, "legal_hold": bool}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"
MODES = (GOVERNANCE, COMPLIANCE)

RETENTION_KEY = "retention"
LEGAL_HOLD_KEY = "legal_hold"


@dataclass(frozen=True)
class Lock:
    """The lock state of one version."""

    mode: str | None = None          # GOVERNANCE | COMPLIANCE | None
    until: float | None = None       # retain-until, epoch seconds
    legal_hold: bool = False

    def retained(self, now: float) -> bool:
        return self.mode is not None and self.until is not None and now < self.until


def lock_of(extra: dict[str, Any]) -> Lock:
    """The lock state stored in a record's ``extra``."""
    ret = extra.get(RETENTION_KEY) or {}
    mode = ret.get("mode")
    until = ret.get("until")
    return Lock(mode if mode in MODES else None, float(until) if until is not None else None,
                bool(extra.get(LEGAL_HOLD_KEY, False)))


def store_retention(extra: dict[str, Any], mode: str | None, until: float | None) -> None:
    """Write a retention into ``extra`` (mode None removes it)."""
    if mode is not None and until is not None:
        extra[RETENTION_KEY] = {"mode": mode, "until": until}
    else:
        extra.pop(RETENTION_KEY, None)


def why_not_remove(lock: Lock, now: float, *, bypass_requested: bool, may_bypass: bool) -> str | None:
    """None if the version may be deleted or overwritten now, else the reason it may not.

    Legal hold: never (it must be lifted first). COMPLIANCE: not before it expires,
    not by anyone. GOVERNANCE: only when the request asks for the bypass *and* the
    caller is permitted to bypass.
    """
    if lock.legal_hold:
        return "the object version is under a legal hold"
    if not lock.retained(now):
        return None
    if lock.mode == COMPLIANCE:
        return "the object version is locked in COMPLIANCE mode until its retain-until date"
    if bypass_requested and may_bypass:
        return None
    if bypass_requested:
        return "the caller is not permitted to bypass GOVERNANCE retention"
    return "the object version is locked in GOVERNANCE mode"


def why_not_change(current: Lock, mode: str | None, until: float | None, now: float, *,
                   bypass_requested: bool, may_bypass: bool) -> str | None:
    """None if a version's retention may become (mode, until), else the reason it may not.

    Extending (or keeping) a retention is always allowed; so is GOVERNANCE ->
    COMPLIANCE. Shortening, removing, or COMPLIANCE -> GOVERNANCE is refused under
    an active COMPLIANCE retention, and needs the permitted bypass under GOVERNANCE.
    """
    if not current.retained(now):
        return None
    assert current.until is not None
    weakens = (mode is None or until is None or until < current.until
               or (current.mode == COMPLIANCE and mode != COMPLIANCE))
    if not weakens:
        return None
    if current.mode == COMPLIANCE:
        return "a COMPLIANCE retention can only be extended, never shortened or removed"
    if bypass_requested and may_bypass:
        return None
    return "shortening or removing a GOVERNANCE retention requires the governance bypass"
