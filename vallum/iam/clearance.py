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

A credential may also be bound to a **session level** at minting (one key per level, so
stock S3 clients that cannot send ``x-vallum-session-level`` work at a chosen level, as
separate logins per network do): it must be dominated by its holder's clearance and by the
minter's; every request signed with it runs at that level (fixed: no header changes it),
and the credential's clearance is capped at it, so nothing reachable through the
credential (reads, downgrades, compute) exceeds it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from vallum.iam.directory import IAMError
from vallum.security.mac.labels import Label, LabelError, lowest, parse

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


@dataclass(frozen=True)
class Bounds:
    """What an access key's minting recorded: the minter's clearance (None: the root) and
    the session level the key is bound to (None: it runs at its holder's clearance)."""

    ceiling: str | None = None
    session_level: str | None = None


def issued_level(caller, holder_clearance: str | None, requested: object) -> str | None:
    """The canonical session level to bind a new credential to (None: none asked).

    IAMError (ValidationError) if malformed or above the holder's clearance;
    ClearanceDenied if above the minter's (``caller``, a Principal) own clearance."""
    if requested is None or requested == "":
        return None
    if not isinstance(requested, str):
        raise IAMError("session_level is a label, e.g. SECRET//NOFORN")
    try:
        level = parse(requested)
    except LabelError as exc:
        raise IAMError(f"invalid session level: {exc}") from None
    if not label(holder_clearance).dominates(level):
        raise IAMError(f"session level {level} is above the holder's clearance "
                       f"{label(holder_clearance)}")
    if not may_take_on(caller, level.banner()):
        raise ClearanceDenied(f"session level {level} is above your own clearance")
    return level.banner()


def bound(principal, bounds: Bounds | None):
    """``principal`` as a credential with ``bounds`` makes it: its clearance capped by the
    minting ceiling and by the bound session level, which it then runs at (fixed)."""
    if bounds is None:
        return principal
    cleared = capped(principal.clearance, bounds.ceiling)
    if bounds.session_level is not None:
        # Above a clearance lowered since minting: subject_for refuses every request.
        return replace(principal, clearance=capped(cleared, bounds.session_level),
                       session_level=bounds.session_level, level_fixed=True)
    if cleared == principal.clearance:
        return principal
    level = principal.session_level if label(cleared).dominates(
        label(principal.session_level)) else None
    return replace(principal, clearance=cleared, session_level=level)
