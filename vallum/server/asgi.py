"""The ASGI application object uvicorn imports (settings arrive through the environment)."""

from vallum.server.app import Gateway

app = Gateway()
