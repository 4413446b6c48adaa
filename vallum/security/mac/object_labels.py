"""Labels of objects and buckets as stored in metadata records.

- Object label: ``ObjectRecord.extra["label"]``, canonical banner text; sent by the
  client in ``x-vallum-classification`` on PUT, returned on GET/HEAD; default: the
  bucket's floor (or the lowest level).
- Bucket range: ``BucketRecord.config["label-range"]``, JSON ``{"floor": banner,
  "ceiling": banner}``; absent means any label.
"""

from __future__ import annotations

import json
from typing import Any

from vallum.security.mac.labels import Label, LabelError, lowest, parse
from vallum.security.mac.rules import LabelRange, check_write
from vallum.security.spill.guard import SpillGuard

HEADER = "x-vallum-classification"
# BucketRecord.config key: the read level of whoever last set the lifecycle rules
# (SYSTEM_HIGH for a trusted subject); absent (rules set before levels were kept): lowest.
LIFECYCLE_LEVEL = "lifecycle-level"
SYSTEM_HIGH = "*"


def bucket_range(config: dict[str, Any]) -> LabelRange | None:
    raw = config.get("label-range")
    if not raw:
        return None
    doc = json.loads(raw)
    return LabelRange(parse(doc["floor"]), parse(doc["ceiling"]))


def range_config(floor: str, ceiling: str) -> str:
    """The value to store in BucketRecord.config["label-range"] (validated)."""
    r = LabelRange(parse(floor), parse(ceiling))
    return json.dumps({"floor": r.floor.banner(), "ceiling": r.ceiling.banner()})


def object_label(extra: dict[str, Any]) -> Label | None:
    text = extra.get("label")
    return parse(text) if text else None


def lifecycle_level(read: Label | None) -> str:
    """What to store under LIFECYCLE_LEVEL for a setter reading at ``read`` (None: any)."""
    return SYSTEM_HIGH if read is None else read.banner()


def lifecycle_may_touch(bucket_config: dict[str, Any], extra: dict[str, Any]) -> bool:
    """May the bucket's lifecycle rules expire or abort this version or upload?

    A rule is a delete its setter schedules: it acts only on what that setter could read
    and delete itself, so a low user's rule cannot destroy objects MAC hides from it."""
    level = bucket_config.get(LIFECYCLE_LEVEL) or lowest().banner()
    if level == SYSTEM_HIGH:
        return True
    return parse(level).dominates(object_label(extra) or lowest())


def guard_for_put(bucket_config: dict[str, Any], header: str | None, context: str = "",
                  session: Label | None = None) -> SpillGuard:
    """The label a PUT will carry and the spill guard that scans its body.

    Raises LabelError (malformed header: InvalidArgument) or PermissionError (label
    outside the bucket range or below the session level: AccessDenied)."""
    rng = bucket_range(bucket_config)
    if header is None:
        label = rng.floor if rng else lowest()
    else:
        label = parse(header)
    decision = check_write(session or lowest(), label, rng)
    if not decision.allowed:
        raise PermissionError(decision.reason)
    return SpillGuard(label, rng, context)


__all__ = ["HEADER", "LIFECYCLE_LEVEL", "LabelError", "bucket_range", "guard_for_put",
           "lifecycle_level", "lifecycle_may_touch", "object_label", "range_config"]
