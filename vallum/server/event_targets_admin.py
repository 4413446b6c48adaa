"""Admin API calls for event targets (``POST /-/admin/v1/<Action>``), docs/events.md.

- ``PutNotificationTarget {name, type, endpoint, subject?, token?, ceiling?, max_attempts?,
  backoff_s?, timeout_s?}``: create or replace a target of the caller's account; a new
  webhook's signing secret is in the answer, once.
- ``ListNotificationTargets``, ``DeleteNotificationTarget {name}``,
  ``ListEventDeadLetters {target?, limit?}``.

Each needs ``vallum:<Action>`` on ``arn:vallum:sqs:REGION:ACCOUNT:NAME`` (``...:*`` for
the lists); an account's admin holds it. A caller acts in its own account only, the root
included (a target belongs to whoever registers it, with a ceiling capped by that
registrant's clearance).
"""

from __future__ import annotations

from typing import Any

from vallum import authz
from vallum.compute.spec import SpecError
from vallum.iam.directory import IAMError
from vallum.iam.principal import Principal
from vallum.s3 import errors

ACTIONS = frozenset({"PutNotificationTarget", "ListNotificationTargets",
                     "DeleteNotificationTarget", "ListEventDeadLetters"})


class TargetError(IAMError):
    """A refused target call, with the code the store chose (admin.py answers it as JSON)."""

    def __init__(self, exc: SpecError) -> None:
        super().__init__(exc.message)
        self.code, self.status = exc.code, exc.status


async def handle(services, principal: Principal, name: str, args: dict[str, Any],
                 audit: dict[str, Any]) -> dict[str, Any]:
    compute = getattr(services, "compute", None)
    if compute is None:
        raise errors.InvalidRequest("event targets need compute running on this gateway")
    if args.get("account") not in (None, "", principal.account):
        raise errors.AccessDenied("Event targets are registered in the caller's own account.")
    store = compute.event_targets
    target_name = args.get("name") if name in ("PutNotificationTarget",
                                               "DeleteNotificationTarget") else None
    if target_name is not None and not isinstance(target_name, str):
        raise TargetError(SpecError("name must be a string"))
    resource = f"arn:vallum:sqs:{store.region}:{principal.account}:{target_name or '*'}"
    audit.update(action=f"vallum:{name}", target=resource)
    decision = authz.decide(principal, f"vallum:{name}", resource)
    audit["rule"] = decision.reason
    if not decision.allowed:
        raise errors.AccessDenied(f"not authorized to perform vallum:{name} on {resource}")
    try:
        if name == "PutNotificationTarget":
            return await store.put(principal, {k: v for k, v in args.items() if k != "account"})
        if name == "ListNotificationTargets":
            return {"targets": store.targets(principal.account)}
        if name == "DeleteNotificationTarget":
            if not target_name:
                raise SpecError("missing required field: name")
            return await store.delete(principal.account, target_name)
        limit = args.get("limit", 100)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise SpecError("limit must be an integer")
        target = args.get("target")
        if target is not None and not isinstance(target, str):
            raise SpecError("target must be a target ARN")
        return {"dead_letters": store.dead_letters(principal, target, limit)}
    except SpecError as exc:
        raise TargetError(exc) from None
