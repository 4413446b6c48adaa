"""Witnesses: every signed checkpoint leaves the box, and anchors verify against truncation."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from typer.testing import CliRunner

from vallum.cli.main import app
from vallum.security.audit import log as audit
from vallum.security.audit.checkpoint import line_hash
from vallum.security.audit.witness import Witness
from vallum.security.crypto import primitives as crypto


def run_sessions(data_dir, witness, sessions=1, n=12):
    async def main():
        for _ in range(sessions):
            log = audit.AuditLog(data_dir, checkpoint_every=5, witness=witness)
            await log.open()
            for i in range(n):
                await log.append({"i": i})
            await log.close()

    asyncio.run(main())
    return audit.log_path(data_dir)


def checkpoint_lines(path):
    return [x for x in path.read_bytes().rstrip(b"\0").splitlines() if json.loads(x)["type"] == "checkpoint"]


def test_file_witness_gets_every_checkpoint_and_catches_a_cut_back(tmp_path):
    data, out = tmp_path / "data", tmp_path / "elsewhere" / "witness.jsonl"
    out.parent.mkdir()
    path = run_sessions(data, Witness(f"file:{out}", data), sessions=2, n=3)
    sent = [json.loads(x) for x in out.read_bytes().splitlines()]
    cps = checkpoint_lines(path)
    assert [(m["seq"], m["hash"]) for m in sent] == [(json.loads(c)["seq"], line_hash(c)) for c in cps]
    assert sent[-1]["seal"] and out.stat().st_mode & 0o777 == 0o600
    pub = crypto.ed25519_public((data / "audit" / audit.KEY_FILE).read_bytes()).hex()
    ok = CliRunner().invoke(app, ["audit", "verify", "--log", str(path), "--public-key", pub, "--witness", str(out)])
    assert ok.exit_code == 0, ok.output
    # The attacker cuts the second session away: the log is sealed again, at the first seal.
    lines = path.read_bytes().rstrip(b"\0").splitlines(keepends=True)
    first_seal = next(i for i, x in enumerate(lines) if json.loads(x).get("seal"))
    path.write_bytes(b"".join(lines[:first_seal + 1]))
    bad = CliRunner().invoke(app, ["audit", "verify", "--log", str(path), "--public-key", pub, "--witness", str(out)])
    assert bad.exit_code == 1 and "cut" in bad.output, bad.output


def test_file_witness_inside_the_data_dir_is_refused(tmp_path):
    with pytest.raises(ValueError, match="outside the data directory"):
        Witness(f"file:{tmp_path}/audit/witness.jsonl", tmp_path)
    with pytest.raises(ValueError):
        Witness("relative/witness.jsonl", tmp_path)


def test_syslog_unix_witness(tmp_path):
    addr = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(addr)
        sink.settimeout(5)
        path = run_sessions(tmp_path / "data", Witness(f"syslog:unix:{addr}"))
        got = [sink.recv(65536) for _ in checkpoint_lines(path)]
    assert all(m.startswith(b"<85>1 ") and b" vallum-audit " in m for m in got)
    bodies = [json.loads(m[m.index(b"{"):]) for m in got]
    assert [b["hash"] for b in bodies] == [line_hash(c) for c in checkpoint_lines(path)]


def test_syslog_udp_witness_on_loopback(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        port = sink.getsockname()[1]
        path = run_sessions(tmp_path / "data", Witness(f"syslog:udp:127.0.0.1:{port}"), n=2)
        got = sink.recv(65536)
    assert json.loads(got[got.index(b"{"):])["hash"] == line_hash(checkpoint_lines(path)[-1])


def test_http_witness_posts_each_checkpoint(tmp_path):
    received: list[bytes] = []
    done = threading.Event()

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        path = run_sessions(tmp_path / "data", Witness(f"http://127.0.0.1:{httpd.server_port}/witness"), n=2)
        assert done.wait(10)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert json.loads(received[0])["hash"] == line_hash(checkpoint_lines(path)[-1])


def test_timer_checkpoint_signs_a_quiet_tail(tmp_path):
    """A gateway that gets one request and then nothing still signs it, without closing."""
    async def main():
        log = audit.AuditLog(tmp_path, checkpoint_every=1000, checkpoint_seconds=0.05)
        await log.open()
        await log.append({"i": 1})
        for _ in range(100):
            await asyncio.sleep(0.02)
            if b'"reason":"timer"' in audit.log_path(tmp_path).read_bytes():
                break
        pub = crypto.ed25519_public((tmp_path / "audit" / audit.KEY_FILE).read_bytes())
        result = audit.verify(audit.log_path(tmp_path), pub)
        await log.close()
        return result

    result = asyncio.run(main())
    assert result.checkpoints == 1 and "without a shutdown seal" in result.reason, result
