"""What a caller may ask for: the platform limits lowered by its account's quota.

One object shared by job submission, function definition and cron, so every path
checks the same ceiling; only the platform root changes an account's quota.
"""

from __future__ import annotations

from typing import Any

from vallum.compute import quotas
from vallum.compute.db import ComputeStore
from vallum.compute.spec import Quota, SpecError


class CallerLimits:
    def __init__(self, db: ComputeStore, platform: Quota) -> None:
        self.db = db
        self.platform = platform

    def for_account(self, account: str) -> Quota:
        """The platform limits lowered by the account's quota (what its callers may ask)."""
        return quotas.effective(self.db.reader(), self.platform, account)

    def doc(self, principal: Any, account: str) -> dict[str, Any]:
        if not (principal.is_root or principal.account == account):
            raise SpecError(f"no quota for account {account}", "NoSuchAccount", 404)
        conn = self.db.reader()
        return {"account": account, "platform": self.platform.doc(),
                "quota": quotas.account_limits(conn, account),
                "effective": quotas.effective(conn, self.platform, account).doc()}

    async def put(self, principal: Any, account: str, doc: Any) -> dict[str, Any]:
        """Set an account's quota (the platform root only: tenants share the host)."""
        if not principal.is_root:
            raise SpecError("only the platform root sets account quotas", "AccessDenied", 403)
        limits = quotas.parse(doc)
        await self.db.write(lambda c: quotas.put(c, account, limits))
        return self.doc(principal, account)
