"""uvicorn's httptools protocol, sending a response's head together with its first body bytes.

Why: uvicorn writes the status line and headers as soon as the application starts
the response, and the body in a second write. On loopback each write is a syscall
that wakes the client, so every small GET cost two segments and two wake-ups on
both sides. Holding the head until the first body write (or the end of the
response) halves that without touching the HTTP logic, which stays uvicorn's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vallum.iam.certauth import TLS_EXTENSION

_INTERIM = b"HTTP/1.1 1"          # 100 Continue and other interim answers go out at once


class _HeadHolder:
    """Transport stand-in for one request/response cycle: keeps the head back one write."""

    __slots__ = ("_transport", "_held", "_passed")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._passed = False          # the head has gone out: every write passes straight on

    def write(self, data: bytes) -> None:
        if self._passed:
            self._transport.write(data)
        elif self._held is None:
            if data.startswith(_INTERIM):
                self._transport.write(data)
            else:
                self._held = bytes(data)
        else:
            self._passed = True
            self._transport.write(self._held + data)
            self._held = None

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)
        self._passed = True

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """Every cycle writes through a `_HeadHolder`, flushed when its response completes."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle is before:     # an upgrade request: no new cycle was made
            return
        holder = _HeadHolder(self.transport)
        cycle.transport = holder                 # type: ignore[assignment]
        done = cycle.on_response

        def on_response() -> None:               # a HEAD or empty body: the head goes alone
            holder.flush()
            done()

        cycle.on_response = on_response

    def shutdown(self) -> None:
        """At server shutdown an idle TLS connection is dropped, not closed: a TLS close
        waits for the client's close_notify, which an idle pooled client never sends, so
        SIGTERM hung for the whole graceful-shutdown timeout (30 s). No request is in
        flight on an idle connection, so nothing is lost; busy ones finish as before."""
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_extra_info("ssl_object") is not None:
            self.transport.abort()
            return
        super().shutdown()


class ClientCertProtocol(CoalescingHttpToolsProtocol):
    """Puts the client certificate a TLS connection presented (DER) into every request's
    scope: uvicorn's scope carries none. One dict per connection, shared by its requests,
    so a verdict on the certificate (iam/certauth.py) is made once per connection."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self._tls = {"client_cert": der}

    def on_headers_complete(self) -> None:
        if self._tls is not None:
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
            extensions[TLS_EXTENSION] = self._tls
        super().on_headers_complete()
