"""Which objects the principal a trigger, cron job or array job runs as may learn about.

Why: compute turns objects into events, tasks, names, counts and sizes, and those reach
code and API answers of the principal the work runs as. What that principal may not
read must not exist for it (DESIGN.md, security model): MAC first (its fixed session
level must dominate the object's label), then IAM (it must be allowed s3:GetObject on
the key, bucket policy included). Anything unresolvable is refused (never fails open).
"""

from __future__ import annotations

import logging
from typing import Any

from vallum import authz
from vallum.compute import levels
from vallum.compute.revocations import TEMP_PREFIX
from vallum.compute.spec import SpecError
from vallum.iam.identity import parsed
from vallum.security.mac.labels import Label

log = logging.getLogger("vallum.compute")


def runs_as(iam: Any, doc: dict[str, Any]) -> Any | None:
    """The principal a stored principal doc (credentials.principal_doc) stands for, with
    its current policies; None when it no longer exists (nothing is then visible)."""
    if iam is None:
        return None
    ids = iam.identities
    ids.refresh()
    if doc.get("root"):
        return ids.root_principal()
    if doc.get("role"):
        return ids.role_principal(doc.get("account", ""), doc["role"])
    if doc.get("user") and doc.get("access_key"):
        if not doc["access_key"].startswith(TEMP_PREFIX):
            hit = ids.key(doc["access_key"])
            if hit is None or hit[1] != "Active":
                return None        # the submitter's key was disabled or deleted
        return ids.user_principal(doc["access_key"], doc.get("account", ""), doc["user"])
    return None


class Viewer:
    """One principal doc's view of objects, caching its principal and bucket contexts."""

    def __init__(self, services: Any, doc: dict[str, Any]) -> None:
        self.services = services
        self.doc = doc
        try:
            self.level: Label | None = levels.label(doc.get("level"))
        except SpecError:         # an unparsable stored level sees nothing
            self.level = None
        self.principal = runs_as(getattr(services, "iam", None), doc)
        self._ctx: dict[str, authz.Context | None] = {}

    async def _context(self, bucket: str) -> authz.Context | None:
        if bucket not in self._ctx:
            rec = await self.services.meta.get_bucket(bucket)
            ctx = None
            if rec is not None:
                ctx = authz.Context(resource_owner=rec.owner)
                if rec.config.get("policy"):
                    ctx.bucket_policy = parsed(rec.config["policy"], "resource")
            self._ctx[bucket] = ctx
        return self._ctx[bucket]

    def mac(self, label_text: str | None) -> bool:
        """No read up: the level dominates the label (an unknown label is refused)."""
        if self.level is None or label_text is None:
            return False
        try:
            return self.level.dominates(levels.label(label_text))
        except SpecError:         # an unparsable label: refused
            return False

    async def may_read(self, bucket: str, key: str, label_text: str | None) -> bool:
        if not self.mac(label_text) or self.principal is None:
            return False
        ctx = await self._context(bucket)
        if ctx is None:
            return False
        return authz.decide(self.principal, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}",
                            ctx).allowed
