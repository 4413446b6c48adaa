"""The ASGI application object uvicorn imports (settings arrive through the environment).

Each HTTP request's ``receive`` carries the body-read deadline (server/limits.py)."""

from __future__ import annotations

from typing import Any

from vallum.server import limits
from vallum.server.app import Gateway


class GatewayApp:
    def __init__(self) -> None:
        self.gateway = Gateway()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            receive = limits.timed_receive(receive, limits.current().body_timeout)
        await self.gateway(scope, receive, send)


app = GatewayApp()
