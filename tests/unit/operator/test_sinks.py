"""Alert sinks against real local receivers: an HTTP server and a UDP syslog socket."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vallum.operator import journal
from vallum.operator.sinks import SyslogSink, WebhookSink, from_env, parse_syslog_address


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first ``fail`` POSTs with 500."""

    def __init__(self, fail: int = 0, delay: float = 0.0) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.attempts += 1
                if delay:
                    time.sleep(delay)
                if outer.attempts <= fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(cond, timeout=15.0):   # generous: the test machine is shared
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


ALERT = {"kind": "exfiltration", "entity": "AKIAEXAMPLE", "score": 1.7, "reason": "read a lot"}


def test_webhook_posts_each_alert_as_json():
    rx = Receiver()
    sink = WebhookSink(rx.url)
    try:
        assert sink.submit(ALERT) and sink.submit({**ALERT, "entity": "AKIAOTHER"})
        assert wait_for(lambda: len(rx.bodies) == 2)
        assert rx.bodies[0] == ALERT and rx.bodies[1]["entity"] == "AKIAOTHER"
        # The receiver has the body before the sink has counted its answer.
        assert wait_for(lambda: sink.sent == 2) and sink.failed == 0
    finally:
        sink.close()
        rx.close()


def test_webhook_retries_a_bounded_number_of_times():
    rx = Receiver(fail=2)
    sink = WebhookSink(rx.url, retries=3, backoff=0.01)
    try:
        sink.submit(ALERT)
        assert wait_for(lambda: rx.bodies == [ALERT]) and rx.attempts == 3
    finally:
        sink.close()
        rx.close()
    rx = Receiver(fail=100)
    sink = WebhookSink(rx.url, retries=2, backoff=0.01)
    try:
        sink.submit(ALERT)
        assert wait_for(lambda: sink.failed == 1)
        assert rx.attempts == 3 and rx.bodies == []          # 1 try + 2 retries, then it gives up
    finally:
        sink.close()
        rx.close()


def test_webhook_never_blocks_the_caller_and_drops_when_full():
    rx = Receiver(delay=1.0)                                 # a slow receiver
    sink = WebhookSink(rx.url, queue_size=3, retries=0)
    try:
        started = time.perf_counter()
        results = [sink.submit({**ALERT, "n": i}) for i in range(20)]
        assert time.perf_counter() - started < 0.2
        assert results.count(False) == sink.dropped >= 16
    finally:
        sink.close(timeout=0.1)
        rx.close()


def test_webhook_rejects_non_http_urls():
    with pytest.raises(ValueError):
        WebhookSink("file:///etc/passwd")


def test_syslog_sink_sends_one_json_line_per_alert():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    sink = SyslogSink(f"udp://127.0.0.1:{sock.getsockname()[1]}")
    try:
        sink.submit(ALERT)
        data = sock.recv(65536).decode()
    finally:
        sink.close()
        sock.close()
    assert data.startswith("<")                              # <priority> header
    assert json.loads(data.split("vallum-operator: ", 1)[1].rstrip("\x00")) == ALERT


def test_sink_configuration():
    assert parse_syslog_address("udp://127.0.0.1:514") == ("127.0.0.1", 514)
    assert parse_syslog_address("/dev/log") == "/dev/log"
    with pytest.raises(ValueError):
        parse_syslog_address("nonsense")
    assert from_env({}) == []
    sinks = from_env({"VALLUM_OPERATOR_SYSLOG": "udp://127.0.0.1:9"})
    assert [type(s).__name__ for s in sinks] == ["SyslogSink"]
    sinks[0].close()


def test_admin_alerts_are_filtered_by_account(tmp_path):
    d = journal.directory(tmp_path)
    for i, (kind, acct) in enumerate([("exfiltration", "a1"), ("enumeration", "a2"),
                                      ("credential_stuffing", ""), ("exfiltration", "a2")]):
        journal.append(d / journal.ALERTS, {"ts": 100.0 + i, "kind": kind, "account": acct})
    everything = journal.alerts_for(tmp_path, None, {})
    assert everything["count"] == 4
    mine = journal.alerts_for(tmp_path, "a2", {"limit": 1})
    assert mine["count"] == 2 and mine["alerts"] == [{"ts": 103.0, "kind": "exfiltration", "account": "a2"}]
    assert journal.alerts_for(tmp_path, None, {"kind": "exfiltration", "since": 101})["count"] == 1
