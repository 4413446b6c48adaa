"""The ASGI application object uvicorn imports (settings arrive through the environment).

Each HTTP request's ``receive`` carries the body-read deadline (server/connection_limits.py)."""

from __future__ import annotations

from typing import Any

from vallum.server import connection_limits
from vallum.server.app import Gateway


class GatewayApp:
    def __init__(self) -> None:
        self.gateway = Gateway()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            receive = connection_limits.timed_receive(receive, connection_limits.current().body_timeout)
        await self.gateway(scope, receive, send)


app = GatewayApp()
