"""Who may mint or take on a credential that carries a clearance.

Why: clearances are set by the platform root only, so no discretionary administrator
may reach a clearance through a credential path instead (creating, rotating or
re-enabling another user's key, assuming a cleared role). Two rules close the class:

- **at minting**: a caller other than the platform root may mint, rotate, re-enable or
  assume a credential only when its own clearance dominates the credential's;
- **for the credential's life**: every key and role session records the clearance of
  who minted it (its *ceiling*); the credential's clearance is the meet of its owner's
  current clearance and that ceiling, so raising a user's clearance later does not
  raise keys an uncleared administrator minted earlier. ``None`` means no ceiling
  (minted by the platform root, or before ceilings were recorded).
"""

from __future__ import annotations

import functools

from vallum.iam.directory import IAMError
from vallum.security.labels import Label, LabelError, lowest, parse

LOWEST = lowest()


class ClearanceDenied(IAMError):
    """The caller's clearance does not dominate the credential's."""

    code, status = "AccessDenied", 403


@functools.lru_cache(maxsize=1024)
def label(text: str | None) -> Label:
    """The label of stored clearance text; none (or unreadable) is the lowest level."""
    if not text:
        return LOWEST
    try:
        return parse(text)
    except LabelError:
        return LOWEST            # fail closed: a clearance that cannot be read grants nothing


def ceiling_of(caller) -> str | None:
    """The ceiling a credential minted by ``caller`` (a Principal) carries; None: root."""
    if caller.is_root:
        return None
    return label(caller.clearance).banner()


def may_take_on(caller, clearance: str | None) -> bool:
    """Whether ``caller`` may mint or assume a credential cleared at ``clearance``."""
    return caller.is_root or label(caller.clearance).dominates(label(clearance))


def require(caller, clearance: str | None, what: str) -> None:
    """Raise ClearanceDenied unless ``caller`` may take on ``clearance`` for ``what``."""
    if not may_take_on(caller, clearance):
        raise ClearanceDenied(f"not authorized to {what}: the credential's clearance is not "
                              "dominated by yours (clearances are set by the platform root)")


def capped(clearance: str | None, ceiling: str | None) -> str | None:
    """The clearance a credential carries: its owner's, capped by its minting ceiling."""
    if ceiling is None or not clearance:
        return clearance
    mine, cap = label(clearance), label(ceiling)
    if cap.dominates(mine):
        return clearance
    met = mine.meet(cap)
    return None if met == LOWEST else met.banner()
