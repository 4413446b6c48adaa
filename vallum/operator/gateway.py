"""The operator inside a gateway process: refuse contained callers, feed one event per request.

Enabled by ``VALLUM_OPERATOR=observe|contain`` (the default mode; per-account modes
in ``<data_dir>/operator/modes.json`` override it). Disabled, both hooks cost one
global lookup. Enabled, ``admit`` is three truth tests while nobody is contained, and
``observe`` only appends the request's event (a named tuple, built in C) to a queue;
the decision path (live.py: signals, rules, learning, containment, shared state) runs
over the queue in batches, at most BATCH events and MAX_DELAY seconds late, on the
event loop after the responses have left (measured in docs/operator.md).
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import zlib
from functools import lru_cache
from typing import Any

from vallum.iam.gate import credential_of
from vallum.operator.live import BATCH, CHUNK, MAX_DELAY, Live
from vallum.operator.request_events import WRITE_OPS, RequestEvent, label_index
from vallum.s3 import errors

__all__ = ["BATCH", "CHUNK", "MAX_DELAY", "Hook", "admit", "current", "observe"]

log = logging.getLogger("vallum.operator")
ENV = "VALLUM_OPERATOR"
MIN_SAMPLE = 256        # bytes: below this a body's compressibility says little
OPAQUE_RATIO = 0.97     # zlib output at least this share of its input: incompressible


class Hook(Live):
    """The live path, fed from the request frame (server/app.py)."""

    def admit(self, request: Any) -> None:
        if time.monotonic() >= self._next_poll:
            self.poll()
        policy = self.policy
        if not (policy.suspended or policy.throttled or policy.blocked):
            return                      # nobody contained: nothing to look up
        now = time.time()
        verdict = policy.admit(request.principal, request.source_ip, now)
        person = subject_of(request)
        if verdict is None and person != request.principal:
            verdict = policy.admit(person, request.source_ip, now)    # every session of the person
        if verdict is None:
            return
        if verdict == "throttled" or verdict == "blocked":
            raise errors.SlowDown("Request rate limited by the operator; retry later.")
        raise errors.AccessDenied("The access key is suspended by the operator.")

    def observe(self, scope: dict[str, Any], request: Any, operation: str, response: Any,
                error: str) -> None:
        """Queue the request's event for the detector; O(1), one tuple built in C. The
        detector runs on the queue every MAX_DELAY seconds (or every BATCH events,
        whichever comes first), after the responses have left.

        The event's label is the level of the object's label as the MAC handlers noted it
        (``request.audit_label``, the banner, None when no label was involved), so label
        climbing sees live traffic exactly as the replay sees its events."""
        body = response.body
        bytes_out = len(body) if body.__class__ is bytes else (response.length or 0)
        if request is not None and request.api == "s3":
            endpoint = request.endpoint
            cl = request.headers.get("content-length")
            principal = subject_of(request)
            banner = request.audit_label
            head = getattr(request.body, "head", None) if operation in WRITE_OPS else None
            item = _new(RequestEvent, (
                time.time(), principal,
                getattr(request.services, "tenant", None) or ("root" if principal == self.root_key else ""),
                request.source_ip, operation, endpoint.bucket or "", endpoint.key or "",
                response.status, error, int(cl) if cl and cl.isdigit() else 0, bytes_out,
                _level(banner) if banner else -1, opaque(head) if head else -1))
        elif request is not None:         # admin, STS, compute: what their handler attributed
            if not request.audit.get("action"):
                return
            item = self._api_event(scope, request.audit, response.status, error, bytes_out)
        elif operation == "reserved" or not error:
            return      # nothing attributed: a health check, or a call refused before routing
        else:   # refused before a Request existed (bad signature, unknown key)
            item = self._refused(scope, operation, response.status, error, bytes_out)
        self._enqueue(item)

    def _api_event(self, scope: dict[str, Any], audit: dict[str, Any], status: int, error: str,
                   bytes_out: int) -> RequestEvent:
        """The event of an admin, STS or compute call, from the attribution its handler
        gave the audit record: the action ('vallum:CreateAccessKey' -> CreateAccessKey,
        'sts:AssumeRole' -> AssumeRole), its target as the key, the caller and its account;
        a refused sign-in keeps its code (credential stuffing counts it), any other refusal
        is AccessDenied (privilege probing counts it)."""
        base = self._refused(scope, "", status, error, bytes_out)
        op = str(audit.get("action", "")).rpartition(":")[2] or "unknown"
        rule = str(audit.get("rule") or "")
        if rule.startswith("authentication: "):
            error = rule.partition(": ")[2]
        elif audit.get("decision") == "deny" or status == 403:
            error = error or "AccessDenied"
        elif status >= 400:
            error = error or f"Error{status}"
        principal = str(audit.get("principal") or base.principal)
        return base._replace(principal=principal, account=str(audit.get("account") or base.account),
                             operation=op, key=str(audit.get("target") or ""), error=error,
                             status=status)

    def _refused(self, scope: dict[str, Any], operation: str, status: int, error: str,
                 bytes_out: int) -> RequestEvent:
        """The event of a request refused before a Request existed: the key it claimed,
        read from the raw headers or query."""
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        akid = credential_of(headers, scope.get("query_string", b"").decode("latin-1"))[0] or ""
        source = (scope.get("client") or ("", 0))[0]
        return RequestEvent(time.time(), akid, "root" if akid == self.root_key else "", source,
                            operation, "", "", status, error, 0, bytes_out)


_new = tuple.__new__


def subject_of(request: Any) -> str:
    """Whom the detector follows: a federated session's external identity (the OIDC subject,
    LDAP DN or certificate its temporary keys were minted for) within the session's account,
    ``ACCOUNT:IDENTITY``, so baselines and containment follow the person across sessions;
    otherwise the access key. The account is part of it because an identity is only as
    unique as its issuer: another tenant may register a provider with the same URL and mint
    the same subject, and must neither blend into nor be contained with this one."""
    caller = getattr(request, "caller", None)
    person = getattr(caller, "source_identity", None)
    if person:
        return f"{getattr(caller, 'account', '')}:{person}"
    return request.principal or ""


def opaque(head: bytes) -> int:
    """1 when a written body's first 4 KiB (at most) do not compress, as ciphertext does not
    (nor do archives and media: the detector judges it against the key's own habit); 0 when
    they do; -1 when too short to tell. One zlib pass at its fastest level over what the
    request already read: no extra read, a bounded cost."""
    if len(head) < MIN_SAMPLE:
        return -1
    return 1 if len(zlib.compress(head, 1)) >= OPAQUE_RATIO * len(head) else 0


@lru_cache(maxsize=1024)
def _level(banner: str | None) -> int:
    """label_index() memoised: a gateway sees the same few banners over and over."""
    return label_index(banner)


_hook: Hook | None = None
_checked = False


def current(services: Any) -> Hook | None:
    """This process's hook, built on first use; None when the operator is off."""
    global _hook, _checked
    if _checked:
        return _hook
    if services is None:
        return None
    _checked = True
    mode = os.environ.get(ENV, "off").strip().lower()
    if mode in ("observe", "contain"):
        root = getattr(services, "root", None)
        _hook = Hook(services.config.data_dir, services.iam, mode,
                     getattr(root, "access_key", "") or "")
        atexit.register(_hook.close)        # the last baselines saved, the detector lock given up
    return _hook


def shutdown() -> None:
    """At the gateway's shutdown (its lifespan; atexit covers other exits): decide on
    what is queued, save the baselines, give up the detector lock."""
    if _hook is not None:
        _hook.close()


def admit(services: Any, request: Any) -> None:
    hook = _hook if _checked else current(services)
    if hook is not None:
        hook.admit(request)


def observe(services: Any, scope: dict[str, Any], request: Any, operation: str, response: Any,
            error: str) -> None:
    hook = _hook if _checked else current(services)
    if hook is None:
        return
    try:
        hook.observe(scope, request, operation, response, error)
    except Exception:  # noqa: BLE001 - the operator must never break the request path
        log.exception("operator failed to observe a request")
