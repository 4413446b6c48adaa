"""Slow and greedy clients cannot exhaust the gateway (server/connection_limits.py).

One gateway with small limits: 2 s to send headers, 2 s between body parts, 8
connections per source, 24 in all. Sources are distinct loopback addresses.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from contextlib import ExitStack

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.server import start_server, stop_server

PER_SOURCE, TOTAL, TIMEOUT = 8, 24, 2.0


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("slow") / "data",
                       "--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT),
                       "--max-connections-per-source", str(PER_SOURCE),
                       "--max-connections", str(TOTAL))
    try:
        srv.client().create_bucket(Bucket="slow")
        yield srv
    finally:
        stop_server(srv)


def connect(srv, source: str) -> socket.socket:
    port = int(srv.endpoint.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes (or resets) the connection within ``within`` seconds."""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if sock.recv(4096) == b"":        # an answer before the close is read past
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        pass
    return False


def slowloris(srv, source: str, n: int, stack: ExitStack) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = stack.enter_context(connect(srv, source))
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ")   # and never finish
        socks.append(s)
    return socks


def request_from(srv, source: str) -> int:
    sock = connect(srv, source)
    with sock:
        sock.sendall(b"GET /-/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        sock.settimeout(10)
        return int(sock.recv(4096).split(b" ", 2)[1])


def test_slowloris_from_one_source_does_not_stop_another_client(guarded):
    with ExitStack() as stack:
        held = slowloris(guarded, "127.0.0.2", PER_SOURCE, stack)
        extra = slowloris(guarded, "127.0.0.2", 4, stack)       # over the per-source cap
        for s in extra:
            assert closed_by_server(s, within=5.0)
        assert request_from(guarded, "127.0.0.3") == 200        # someone else is served
        for s in held:                                          # cut at the header timeout
            assert closed_by_server(s, within=TIMEOUT + 10)
        assert request_from(guarded, "127.0.0.2") == 200        # and the source may come back
    with urllib.request.urlopen(guarded.endpoint + "/-/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'vallum_connections_dropped_total{reason="per_source"}' in text
    assert 'vallum_connections_dropped_total{reason="header_timeout"}' in text


@pytest.mark.parametrize("first", [False, True], ids=["first-request", "after-a-request"])
def test_headers_trickled_line_by_line_are_cut_at_the_deadline(guarded, first):
    """Sending something all the time does not extend the header deadline, on a new
    connection or on one that was already served a request."""
    with connect(guarded, "127.0.0.4") as s:
        if first:
            s.sendall(b"GET /-/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        cut = False
        while time.monotonic() - started < TIMEOUT + 10:
            try:
                s.sendall(b"X-Drip: a\r\n")
            except OSError:
                cut = True
                break
            s.settimeout(0.5)
            try:
                if s.recv(4096) == b"":
                    cut = True
                    break
            except TimeoutError:
                pass
        assert cut


def test_total_cap_holds_across_sources(guarded):
    with ExitStack() as stack:
        held = []
        for i in range(TOTAL):
            held += slowloris(guarded, f"127.0.1.{i % 6 + 1}", 1, stack)
        late = slowloris(guarded, "127.0.2.1", 1, stack)[0]
        assert closed_by_server(late, within=5.0)
    # The held ones are gone with the stack: the gateway serves again.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if request_from(guarded, "127.0.2.2") == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gateway did not recover after the held connections closed")


def test_stalled_body_upload_is_cut_with_request_timeout_and_stores_nothing(guarded):
    payload = b"z" * (1024 * 1024)
    url = f"{guarded.endpoint}/slow/stalled"
    req = AWSRequest("PUT", url, data=payload, headers={"Content-Length": str(len(payload))})
    S3SigV4Auth(Credentials(guarded.access_key, guarded.secret_key), "s3", guarded.region).add_auth(req)
    with connect(guarded, "127.0.0.5") as s:
        head = [b"PUT /slow/stalled HTTP/1.1", b"Host: " + guarded.endpoint.removeprefix("http://").encode()]
        head += [f"{k}: {v}".encode() for k, v in req.headers.items() if k.lower() != "host"]
        s.sendall(b"\r\n".join(head) + b"\r\n\r\n" + payload[:100_000])   # then stall
        s.settimeout(TIMEOUT + 10)
        answer = b""
        while b"</Error>" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"<Code>RequestTimeout</Code>" in answer
    with pytest.raises(ClientError) as err:
        guarded.client().head_object(Bucket="slow", Key="stalled")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert list((guarded.data_dir / "tmp").iterdir()) == []        # the partial blob is gone
