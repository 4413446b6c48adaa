"""A webhook receiver on 127.0.0.1 (http.server in a thread) that records every POST and
answers with a status the test sets (500 to play a target that is down)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def signed_ok(secret: str, body: bytes, header: str, tolerance: float = 300.0) -> bool:
    """Check X-Vallum-Signature as a receiver would, written independently of the server."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in fields or "v1" not in fields or not fields["t"].isdigit():
        return False
    want = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return abs(time.time() - int(fields["t"])) <= tolerance and hmac.compare_digest(want, fields["v1"])


class Receiver:
    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.delay = 0.0                # seconds to wait before answering (a slow target)
        self.failed = 0                 # POSTs answered with a non-2xx status
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:       # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                time.sleep(outer.delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                headers["x-arrived"] = repr(time.time())     # when it arrived (latency)
                with outer.lock:
                    status = outer.status
                    if status == 200:
                        outer.posts.append((headers, body))
                    else:
                        outer.failed += 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def records(self) -> list[dict]:
        with self.lock:
            return [r for _, body in self.posts for r in json.loads(body)["Records"]]

    def wait(self, n: int, timeout: float = 30.0) -> list[dict]:
        """The records received once at least ``n`` arrived (or all at the deadline)."""
        deadline = time.monotonic() + timeout
        while len(self.records()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.records()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
