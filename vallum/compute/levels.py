"""The MAC session level a job (or function) runs at: fixed at submit, carried by its credentials.

Why fixed: a task is untrusted code acting for its owner. It reads and writes at one
level for its whole life (no read up, no write down), so its temporary credentials
carry that level and the gateway refuses any request that asks for another. The
level is the one asked for (``level`` in the spec, or the ``x-vallum-session-level``
header of the submit request) when the owner's clearance dominates it; otherwise the
owner's default (a role's session level, else the clearance). The platform root's
system-high clearance is never handed to code: a root job without a level runs at
the lowest level.
"""

from __future__ import annotations

import json
import os
from typing import Any

from vallum.compute.spec import SpecError
from vallum.security.mac.labels import Label, LabelError, lowest, parse

ROOT_CLEARANCE_ENV = "VALLUM_ROOT_CLEARANCE"
SESSION_HEADER = "x-vallum-session-level"


def label(text: str | None, what: str = "level") -> Label:
    """A label from its text; SpecError (400) when malformed; None text: the lowest."""
    if not text:
        return lowest()
    try:
        return parse(text)
    except LabelError as exc:
        raise SpecError(f"{what}: invalid security label {text!r}: {exc}") from None


def _clearance(principal: Any) -> Label | None:
    """The owner's clearance; None: system high (the root without VALLUM_ROOT_CLEARANCE)."""
    if principal.is_root:
        text = os.environ.get(ROOT_CLEARANCE_ENV, "").strip()
        return label(text, ROOT_CLEARANCE_ENV) if text else None
    return label(principal.clearance, "clearance")


def job_level(principal: Any, requested: str | None) -> str:
    """The canonical banner a job of ``principal`` runs at; SpecError when refused."""
    fixed = getattr(principal, "level_fixed", False)
    want = requested or principal.session_level
    if fixed and want and label(want) != label(principal.session_level):
        raise SpecError(f"level: these credentials are fixed at {principal.session_level}",
                        "AccessDenied", 403)
    clearance = _clearance(principal)
    if want:
        lvl = label(want)
        if clearance is not None and not clearance.dominates(lvl):
            raise SpecError(f"level: session level {lvl.banner()} exceeds your clearance",
                            "AccessDenied", 403)
        return lvl.banner()
    if clearance is None or principal.is_root:
        return lowest().banner()
    return clearance.banner()


def bucket_range(bucket: Any) -> tuple[Label, Label] | None:
    raw = bucket.config.get("label-range")
    if not raw:
        return None
    doc = json.loads(raw)
    return label(doc["floor"]), label(doc["ceiling"])


def object_label(record: Any) -> Label:
    """A stored version's label (unlabelled legacy data: the lowest)."""
    return label((record.extra or {}).get("label"))


def output_label(level: str, bucket: Any, what: str = "output") -> str:
    """The label a task's outputs get: its level raised to the bucket floor; refused (403)
    when that lies above the bucket's ceiling (the job could never write there)."""
    lvl = label(level)
    rng = bucket_range(bucket)
    if rng is None:
        return lvl.banner()
    floor, ceiling = rng
    out = lvl.join(floor)
    if not ceiling.dominates(out):
        raise SpecError(f"{what}: level {lvl.banner()} is above the ceiling {ceiling.banner()} "
                        f"of bucket {bucket.name!r}", "AccessDenied", 403)
    return out.banner()


def reader_level(principal: Any, requested: str | None) -> Label | None:
    """The level a caller sees compute metadata (jobs, tasks, logs, functions, triggers)
    at: its session level, as for a job it would submit; None: everything (the platform
    root without VALLUM_ROOT_CLEARANCE and no level asked for)."""
    if principal.is_root and not requested and _clearance(principal) is None:
        return None
    return label(job_level(principal, requested))


def sees(reader: Label | None, level: str | None) -> bool:
    """May a reader at ``reader`` see something made at ``level`` (None: the lowest)?"""
    return reader is None or reader.dominates(label(level))
