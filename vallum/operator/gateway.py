"""The operator inside a gateway process: refuse contained callers, feed one event per request.

Enabled by ``VALLUM_OPERATOR=observe|contain`` (the default mode; per-account modes
in ``<data_dir>/operator/modes.json`` override it). Disabled, both hooks cost one
global lookup. Enabled, ``observe`` costs the signal update and rule checks, O(1)
per request (measured in docs/operator.md); alerts and actions are appended to the
operator journal and counted in Prometheus.

A suspension is applied three ways: in this process at once (the very next request
is refused), in the IAM store (the key becomes Inactive; every gateway re-reads
keys when the IAM generation moves), and in the action journal, which every
gateway polls once a second (this also covers STS session keys, which have no
IAM row).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from vallum.iam.gate import credential_of
from vallum.operator import journal, sinks
from vallum.operator.alerts import Alert
from vallum.operator.containment import Action, Containment
from vallum.operator.detector import Detector
from vallum.operator.events import RequestEvent
from vallum.s3 import errors
from vallum.server.metrics import REGISTRY

log = logging.getLogger("vallum.operator")
ENV = "VALLUM_OPERATOR"
POLL_EVERY = 1.0

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
        self.poll()
        akid = request.principal
        verdict = self.policy.admit(akid, request.source_ip, time.time())
        if verdict is None:
            return
        if verdict == "throttled" or verdict == "blocked":
            raise errors.SlowDown("Request rate limited by the operator; retry later.")
        raise errors.AccessDenied("The access key is suspended by the operator.")

    def observe(self, scope: dict[str, Any], request: Any, operation: str, response: Any,
                error: str) -> None:
        if request is not None:
            akid = request.principal or ""
            services = request.services
            account = getattr(services, "tenant", None) or ""
            bucket, key = request.endpoint.bucket or "", request.endpoint.key or ""
            source = request.source_ip
            bytes_in = int(request.headers.get("content-length", "0") or 0) \
                if request.headers.get("content-length", "").isdigit() else 0
        else:
            if operation in ("admin", "reserved"):
                return
            headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
            akid = credential_of(headers, scope.get("query_string", b"").decode("latin-1"))[0] or ""
            account, bucket, key, bytes_in = "", "", "", 0
            source = (scope.get("client") or ("", 0))[0]
        if akid == self.root_key:
            account = account or "root"
        body = response.body
        bytes_out = len(body) if isinstance(body, bytes) else (response.length or 0)
        ev = RequestEvent(time.time(), akid, account, source, operation, bucket, key,
                          response.status, error, bytes_in, bytes_out)
        for alert in self.detector.observe(ev):
            self._alert(alert)

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
