"""One audit record per HTTP request, built from the gateway's request and response."""

from __future__ import annotations

from typing import Any

from vallum.security.audit import AuditLog


async def record(services: Any, scope: dict[str, Any], request: Any, request_id: str,
                 operation: str, response: Any) -> None:
    """Append the request's record durably (raises AuditError: the caller fails closed).
    A no-op when the services have no audit log."""
    log: AuditLog | None = services.audit if services is not None else None
    if log is None:
        return
    client = scope.get("client") or ("", 0)
    endpoint = getattr(request, "endpoint", None)
    body = response.body
    sent = len(body) if isinstance(body, bytes) else (response.length or 0)
    status = response.status
    await log.append({
        "type": "request",
        "request_id": request_id,
        "principal": getattr(request, "principal", None),
        "account": getattr(getattr(request, "services", None), "tenant", None),
        "source_ip": client[0],
        "secure": scope.get("scheme") == "https",
        "method": scope.get("method"),
        "operation": operation,
        "bucket": getattr(endpoint, "bucket", None),
        "key": getattr(endpoint, "key", None),
        "version": (getattr(endpoint, "query", None) or {}).get("versionId"),
        "label": getattr(request, "audit_label", None) or response.headers.get("x-vallum-classification"),
        "decision": getattr(request, "decision", None) or ("deny" if status == 403 else "allow"),
        "rule": getattr(request, "decision_reason", None),
        "status": status,
        "bytes_in": getattr(getattr(request, "body", None), "length", None) or 0,
        "bytes_out": sent,
    })
