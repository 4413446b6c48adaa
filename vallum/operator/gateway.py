"""The operator inside a gateway process: refuse contained callers, feed one event per request.

Enabled by ``VALLUM_OPERATOR=observe|contain`` (the default mode; per-account modes
in ``<data_dir>/operator/modes.json`` override it). Disabled, both hooks cost one
global lookup. Enabled, ``admit`` is three truth tests while nobody is contained, and
``observe`` only appends the request's event (a named tuple, built in C) to a queue;
the detector (signals, rules, learning, containment decisions) runs over the queue in
batches, at most BATCH events and MAX_DELAY seconds late, on the event loop after the
responses have left (measured in docs/operator.md).
Alerts and actions are appended to the operator journal and counted in Prometheus.

A suspension is applied three ways: in this process at once (the very next request
is refused), in the IAM store (the key becomes Inactive; every gateway re-reads
keys when the IAM generation moves), and in the action journal, which every
gateway polls once a second (this also covers STS session keys, which have no
IAM row).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from vallum.iam.gate import credential_of
from vallum.metrics import REGISTRY
from vallum.operator import journal, sinks
from vallum.operator.alerts import Alert
from vallum.operator.containment import Action, Containment
from vallum.operator.detector import CHUNK, MAX_DELAY, Detector
from vallum.operator.events import RequestEvent, label_index
from vallum.s3 import errors

log = logging.getLogger("vallum.operator")
ENV = "VALLUM_OPERATOR"
POLL_EVERY = 1.0
# Requests are queued and handed to the detector in batches: at most BATCH at a time, and
# none waits more than MAX_DELAY seconds (the containment test's copier gets ~10 more
# objects out per 50 ms of delay at one client's pace) ...
BATCH = 256
# ... and processed CHUNK at a time (detector.py; the replay batches the same way), one
# loop turn each, so the event loop never stalls for a whole batch (256 requests at 11-18
# us each, cache-cold, held it for up to ~4 ms).

ALERTS = Counter("vallum_operator_alerts_total", "Operator alerts by kind", ["kind"], registry=REGISTRY)
ACTIONS = Counter("vallum_operator_actions_total", "Operator containment actions", ["action"],
                  registry=REGISTRY)


class Hook:
    def __init__(self, data_dir: Path, iam: Any, default_mode: str, root_key: str = "") -> None:
        self.dir = journal.directory(data_dir)
        self.data_dir = Path(data_dir)
        self.iam = iam
        self.root_key = root_key
        self.pid = os.getpid()
        self.detector = Detector()
        self.policy = Containment(default_mode=default_mode, sink=self._record,
                                  suspender=self._suspend_key)
        self._env_default = default_mode
        self._offset = 0
        self._modes_mtime = -1.0
        self._next_poll = 0.0
        self._pending: list[RequestEvent] = []
        self._draining = False
        try:
            journal.announce(self.data_dir, self.pid, default_mode)
        except OSError as exc:          # status then cannot tell; the gateway still runs
            log.warning("operator could not record its mode: %s", exc)
        try:
            self.sinks = sinks.from_env(os.environ)
        except ValueError as exc:       # a bad sink setting must not take the gateway down
            log.error("operator sink not started: %s", exc)
            self.sinks = []
        self.poll(force=True)

    # -- journal ---------------------------------------------------------------
    def _record(self, action: Action) -> None:
        ACTIONS.labels(action.action).inc()
        journal.append(self.dir / journal.ACTIONS, {**action.to_dict(), "pid": self.pid})
        log.warning("operator %s %s: %s", action.action, action.entity, action.reason)

    def _suspend_key(self, key: str, suspend: bool) -> None:
        if self.iam is None or key.startswith("ASIA"):
            return                      # session keys: the journal carries the suspension
        try:
            self.iam.directory.set_key_status(key, "Inactive" if suspend else "Active")
        except Exception:  # noqa: BLE001 - an unknown key still stays suspended locally
            log.warning("operator could not change IAM status of %s", key)

    def poll(self, force: bool = False) -> None:
        """Apply actions other processes journalled, and re-read per-account modes."""
        now = time.monotonic()
        if not force and now < self._next_poll:
            return
        self._next_poll = now + POLL_EVERY
        records, self._offset = journal.read(self.dir / journal.ACTIONS, self._offset)
        for rec in records:
            if rec.get("pid") != self.pid or force:
                fields = {k: rec[k] for k in Action.__dataclass_fields__ if k in rec}
                self.policy.apply(Action(**fields))
        try:
            mtime = (self.dir / journal.MODES).stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime != self._modes_mtime:
            self._modes_mtime = mtime
            modes = journal.load_modes(self.data_dir)
            self.policy.default_mode = modes["default"] or self._env_default
            self.policy.modes = modes["accounts"]

    # -- per request ---------------------------------------------------------------
    def admit(self, request: Any) -> None:
        if time.monotonic() >= self._next_poll:
            self.poll()
        policy = self.policy
        if not (policy.suspended or policy.throttled or policy.blocked):
            return                      # nobody contained: nothing to look up
        verdict = policy.admit(request.principal, request.source_ip, time.time())
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
        if request is not None:
            endpoint = request.endpoint
            cl = request.headers.get("content-length")
            principal = request.principal or ""
            banner = request.audit_label
            item = _new(RequestEvent, (
                time.time(), principal,
                getattr(request.services, "tenant", None) or ("root" if principal == self.root_key else ""),
                request.source_ip, operation, endpoint.bucket or "", endpoint.key or "",
                response.status, error, int(cl) if cl and cl.isdigit() else 0, bytes_out,
                _level(banner) if banner else -1))
        elif operation in ("admin", "reserved"):
            return
        else:   # refused before a Request existed (bad signature, unknown key)
            item = self._refused(scope, operation, response.status, error, bytes_out)
        pending = self._pending
        pending.append(item)
        if self._draining:
            return                      # the drain under way reaches this one too
        if len(pending) >= BATCH:
            self._drain()
        elif len(pending) == 1:
            try:
                asyncio.get_running_loop().call_later(MAX_DELAY, self._drain)
            except RuntimeError:        # no event loop (called from a plain thread): no batching
                self.flush()

    def _drain(self) -> None:
        """Run the detector over the oldest CHUNK queued requests, and come back on the next
        loop turn for the rest; requests queued meanwhile join the same drain, in order."""
        pending = self._pending
        items = pending[:CHUNK]
        del pending[:CHUNK]
        self._process(items)
        self._draining = bool(pending)
        if pending:
            asyncio.get_running_loop().call_soon(self._drain)

    def flush(self) -> None:
        """Run the detector over every queued request, oldest first."""
        pending, self._pending = self._pending, []
        self._process(pending)

    def _process(self, pending: list[RequestEvent]) -> None:
        if not pending:
            return
        try:
            alerts = self.detector.observe_batch(pending)
        except Exception:  # noqa: BLE001 - the operator must never break the gateway
            log.exception("operator failed to observe %d requests", len(pending))
            return
        for alert in alerts:
            self._alert(alert)

    def _refused(self, scope: dict[str, Any], operation: str, status: int, error: str,
                 bytes_out: int) -> RequestEvent:
        """The event of a request refused before a Request existed: the key it claimed,
        read from the raw headers or query."""
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        akid = credential_of(headers, scope.get("query_string", b"").decode("latin-1"))[0] or ""
        source = (scope.get("client") or ("", 0))[0]
        return RequestEvent(time.time(), akid, "root" if akid == self.root_key else "", source,
                            operation, "", "", status, error, 0, bytes_out)

    def _alert(self, alert: Alert) -> None:
        ALERTS.labels(alert.kind).inc()
        journal.append(self.dir / journal.ALERTS, alert.to_dict())
        log.warning("operator alert %s on %s: %s", alert.kind, alert.entity, alert.reason)
        record = alert.to_dict()
        for sink in self.sinks:         # enqueue only: a slow receiver never delays a request
            sink.submit(record)
        if alert.entity == self.root_key:
            return                      # never lock the platform root out: alert only
        self.policy.on_alert(alert)


_new = tuple.__new__


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
    return _hook


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
