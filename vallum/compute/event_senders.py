"""Sending one event document to a target: a signed webhook POST or a NATS publish.

Why signed: a webhook receiver must tell our POSTs from anyone's, and an old POST
replayed from a log from a fresh one. ``X-Vallum-Signature: t=<unix>,v1=<hex>`` is
HMAC-SHA256 under the target's secret over ``"<t>." + body`` (the scheme Stripe's
webhooks use): the receiver recomputes it, compares in constant time and refuses a
``t`` too far from its clock. NATS publishes are confirmed by a flush (a PING answered
after the message: the server has it) before the delivery counts as sent; connections
last one delivery round, so a broker restarted in between is never written to through a
dead socket (nats-py's flush returns without a round trip once its read loop has ended).
Errors name the failure, never the URL, token or secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("vallum.events")
SIGNATURE_HEADER = "X-Vallum-Signature"
WEBHOOK_THREADS = 8
_POOL = ThreadPoolExecutor(WEBHOOK_THREADS, thread_name_prefix="vallum-webhook")


class SendError(Exception):
    """A target did not take a delivery; the message is safe to store and show."""


def signature(secret: str, body: bytes, when: int) -> str:
    mac = hmac.new(secret.encode(), f"{when}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={when},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance: float = 300.0) -> bool:
    """The receiver's check (documented in docs/events.md; the tests use it too)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        when = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    want = signature(secret, body, when).split("v1=", 1)[1]
    return abs(now - when) <= tolerance and hmac.compare_digest(want, given)


class Senders:
    """One NATS connection per target for a round of deliveries; webhook POSTs run on
    their own few threads (a slow receiver cannot take the threads object I/O uses)."""

    def __init__(self) -> None:
        self._nats: dict[str, Any] = {}

    async def send(self, target: dict[str, Any], delivery_id: int, body: bytes) -> None:
        if target["kind"] == "webhook":
            await self._post(target, delivery_id, body)
        else:
            await self._publish(target, delivery_id, body)

    async def _post(self, target: dict[str, Any], delivery_id: int, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "vallum-events",
                   SIGNATURE_HEADER: signature(target["secret"], body, int(time.time())),
                   "X-Vallum-Target": target["arn"], "X-Vallum-Delivery": str(delivery_id)}
        loop = asyncio.get_running_loop()
        status = await loop.run_in_executor(_POOL, _post, target["endpoint"], body, headers,
                                            target["timeout_s"])
        if not 200 <= status < 300:
            raise SendError(f"HTTP {status}")

    async def _publish(self, target: dict[str, Any], delivery_id: int, body: bytes) -> None:
        import nats  # only gateways with a NATS target load the client
        from nats.errors import Error as NatsError
        arn = target["arn"]
        try:
            nc: Any = self._nats.get(arn)
            if nc is not None and not _alive(nc):
                await self._drop(arn)
                nc = None
            if nc is None:
                # One try (nats-py's 0 means "forever"), bounded by the target's timeout.
                nc = await asyncio.wait_for(nats.connect(
                    target["endpoint"], token=target["secret"] or None,
                    connect_timeout=target["timeout_s"], allow_reconnect=False,
                    max_reconnect_attempts=1, reconnect_time_wait=0.05, error_cb=_quiet,
                    disconnected_cb=_none, closed_cb=_none, name="vallum-events"),
                    target["timeout_s"])
                self._nats[arn] = nc
            await nc.publish(target["subject"], body,
                             headers={"Nats-Msg-Id": f"{arn}:{delivery_id}"})
            if not _alive(nc):
                raise SendError("NATS: connection lost")
            await nc.flush(timeout=target["timeout_s"])
            if not _alive(nc):
                raise SendError("NATS: connection lost")
        except SendError:
            await self._drop(arn)
            raise
        except (NatsError, OSError, asyncio.TimeoutError) as exc:
            await self._drop(arn)
            raise SendError(f"NATS: {type(exc).__name__}") from None

    async def _drop(self, arn: str) -> None:
        nc = self._nats.pop(arn, None)
        if nc is not None:
            try:
                await nc.close()
            except Exception:        # a broken connection may fail to close; it is gone anyway
                log.debug("closing the NATS connection of %s failed", arn)

    async def end_round(self) -> None:
        for arn in list(self._nats):
            await self._drop(arn)

    async def close(self) -> None:
        await self.end_round()


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One POST, no redirects followed, TLS verified against the system's trust store;
    the answer's status (its body is read, bounded, and dropped)."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(64 * 1024)
        return resp.status
    except TimeoutError:
        raise SendError(f"no answer within {timeout}s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise SendError(f"connection failed: {type(exc).__name__}") from None
    finally:
        conn.close()


def _alive(nc: Any) -> bool:
    """Connected, with its read loop running (the loop is what confirms a flush)."""
    reader = getattr(nc, "_reading_task", None)
    return bool(nc.is_connected) and reader is not None and not reader.done()


async def _quiet(exc: Exception) -> None:
    log.debug("NATS: %s", type(exc).__name__)


async def _none() -> None:
    return None
