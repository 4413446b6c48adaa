"""One audit record per HTTP request, built from the gateway's request and response.

Every record says who did what: ``principal`` (the access key id; when no request was
built, e.g. authentication failed, the key id the request CLAIMED, with
``principal_claimed``), ``source_identity`` (a federated session's external identity),
``account``, ``action`` (the IAM action name), ``target`` (the resource ARN), ``decision`` and the deciding ``rule``: one shape for every API. Admin, STS
and compute handlers put their attribution in ``Request.audit`` (before authentication,
the API's ``attribution``); it is merged over what the front door can see. Decision:
``request.decision`` (set where a handler refused, e.g. MAC) wins, then the handler's
attribution, then deny for 401/403, else allow.
"""

from __future__ import annotations

from typing import Any

from vallum.iam import certauth
from vallum.iam.gate import VERSIONED_ACTIONS, credential_of
from vallum.s3 import errors
from vallum.s3.handlers.registry import action_of, resource_arn
from vallum.s3.router import route
from vallum.security.audit.log import AuditLog

_REFUSALS = ("mac:", "sse-c:", "spill:", "rate-limit:")
_ATTRIBUTION = ("principal", "account", "action", "target", "decision", "rule")


async def record(services: Any, scope: dict[str, Any], request: Any, request_id: str,
                 operation: str, response: Any, error: str = "", *,
                 attribution: dict[str, Any] | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
    """Append the request's record durably (raises AuditError: the caller fails closed).
    A no-op when the services have no audit log. ``attribution``: what a request refused
    before it was authenticated asked for, as its API names it; ``headers``: the request's
    headers as the front door decoded them (else decoded from the scope)."""
    log: AuditLog | None = services.audit if services is not None else None
    if log is None:
        return
    client = scope.get("client") or ("", 0)
    body = response.body
    sent = len(body) if isinstance(body, bytes) else (response.length or 0)
    status = response.status
    who = _from_request(request) if request is not None else _from_scope(services, scope, operation,
                                                                        headers)
    endpoint = who.pop("endpoint", None)
    extra = request.audit if request is not None else attribution
    if extra:
        who.update({k: extra[k] for k in _ATTRIBUTION if extra.get(k) is not None})
    explicit = request.decision if request is not None else None
    rule = (request.decision_reason if request is not None else None) or who.get("rule")
    authz_rule = None
    if explicit:
        decision = explicit
    elif extra and extra.get("decision"):
        decision = extra["decision"]
    elif _is_refusal(rule):
        decision = "deny"                   # MAC refusals answer 404/503/204 as if absent
    else:
        decision = "deny" if status in (401, 403) else "allow"
    if decision == "deny" and not explicit and error and not _is_refusal(rule):
        # Refused after authorization allowed (spill, object lock...): the allowing rule
        # did not decide; name the refusal and keep the rule that had allowed.
        stage = "authentication" if request is None else "refused"
        rule, authz_rule = f"{stage}: {error}", rule
    await log.append({
        "type": "request",
        "request_id": request_id,
        "principal": who.get("principal"),
        "principal_claimed": who.get("principal_claimed", False),
        "source_identity": getattr(getattr(request, "caller", None), "source_identity", None),
        "account": who.get("account"),
        "action": who.get("action"),
        "target": who.get("target"),
        "decision": decision,
        "rule": rule,
        "authz_rule": authz_rule,
        "source_ip": client[0],
        "secure": scope.get("scheme") == "https",
        "client_certificate": _certificate(request, scope),
        "method": scope.get("method"),
        "operation": operation,
        "bucket": getattr(endpoint, "bucket", None),
        "key": getattr(endpoint, "key", None),
        "version": (getattr(endpoint, "query", None) or {}).get("versionId"),
        "label": getattr(request, "audit_label", None) or response.headers.get("x-vallum-classification"),
        "status": status,
        "error": error or None,
        "bytes_in": getattr(getattr(request, "body", None), "length", None) or 0,
        "bytes_out": sent,
    })


def _certificate(request: Any, scope: dict[str, Any]) -> str | None:
    """The record's ``client_certificate``: the connection's client certificate as
    ``cert:SUBJECT#SERIAL`` (iam/certauth.py; ``refused `` before it when it did not
    verify), so every request of a certificate session names its external identity,
    refusals included (the connection's verdict, when no Request was built)."""
    found = getattr(request, "client_certificate", None)
    if found is None:
        verdict = (scope.get("extensions") or {}).get(certauth.TLS_EXTENSION, {}).get("verdict")
        found = verdict[0] if verdict else None
    if isinstance(found, certauth.ClientCertificate):
        return found.identity()
    if isinstance(found, certauth.CertificateError):
        return f"refused cert:{found.claimed}"
    return None


def _is_refusal(rule: str | None) -> bool:
    """A rule a refusing check recorded (MAC, SSE-C, spill), as opposed to an IAM reason."""
    return bool(rule and rule.startswith(_REFUSALS) and rule != "mac: allowed")


def _from_request(request: Any) -> dict[str, Any]:
    """Attribution of a request that got through authentication: the key id that signed
    it and its account, whatever the API; the action and target of an S3 request (other
    APIs name theirs in ``request.audit``)."""
    endpoint = request.endpoint
    caller = getattr(request, "caller", None)
    account = None if caller is None or caller.anonymous else caller.account
    if request.api != "s3":
        return {"principal": request.principal, "account": account}
    action = action_of(endpoint.name)
    if "versionId" in endpoint.query:
        action = VERSIONED_ACTIONS.get(action, action)
    services = request.services
    scoped = getattr(services, "caller", None)
    return {"endpoint": endpoint, "principal": request.principal,
            "account": getattr(scoped, "account", None) or getattr(services, "tenant", None)
            or account, "action": action, "target": resource_arn(endpoint.bucket, endpoint.key)}


def _from_scope(services: Any, scope: dict[str, Any], operation: str,
                headers: list[tuple[str, str]] | None) -> dict[str, Any]:
    """Attribution when no Request was built (authentication or the body failed, or the
    path is public). The key id is the one the request claims (never verified here); an
    S3 request is routed to name what it asked for (other APIs say it in ``attribution``)."""
    if headers is None:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                   for k, v in scope.get("headers", ())]
    query = scope.get("query_string", b"").decode("latin-1")
    claimed, _ = credential_of(headers, query)
    out: dict[str, Any] = {"principal": claimed, "principal_claimed": claimed is not None}
    path = scope.get("path", "")
    if operation == "unknown" and not path.startswith("/-/"):
        try:                    # what the refused request asked for (routing is pure parsing)
            endpoint = route(scope.get("method", ""), dict(headers).get("host", ""),
                             (scope.get("raw_path") or path.encode()).decode("latin-1"), query,
                             domain=services.config.domain,
                             copy_source=any(k == "x-amz-copy-source" for k, _ in headers))
        except (errors.S3Error, ValueError, AttributeError):
            return out
        out["endpoint"] = endpoint
        out["action"] = action_of(endpoint.name)
        out["target"] = resource_arn(endpoint.bucket, endpoint.key)
    return out
