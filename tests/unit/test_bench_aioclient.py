"""The bench's light client signs exactly as botocore does, and frames replies correctly."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from unittest import mock

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench import aioclient, stages

NOW = dt.datetime(2026, 12, 8, 1, 2, 3, tzinfo=dt.timezone.utc)


def _botocore_auth(method: str, path: str, query: str, body: bytes) -> str:
    req = AWSRequest(method=method, url=f"http://127.0.0.1:9000{path}{'?' + query if query else ''}",
                     data=body, headers={})
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(Credentials("AKID", "secret/key+x"), "s3", "us-east-1").add_auth(req)
    return req.headers["Authorization"]


def _ours(method: str, path: str, query: dict[str, str] | None, body: bytes) -> str:
    signer = aioclient.Signer("AKID", "secret/key+x")
    cpath, cquery = aioclient.canonical_path(path), aioclient.canonical_query(query)
    lines = signer.headers(method, cpath, cquery, "127.0.0.1:9000",
                           hashlib.sha256(body).hexdigest(), now=NOW.timestamp())
    return next(v for k, _, v in (ln.partition(": ") for ln in lines.split("\r\n")) if k == "Authorization")


def test_signature_matches_botocore() -> None:
    for method, path, query, body in (
        ("PUT", "/bench/small/0000001", None, b"x" * 4096),
        ("GET", "/bench/a b/ü~", None, b""),
        ("GET", "/bench", {"list-type": "2", "prefix": "a/b c", "max-keys": "1000"}, b""),
    ):
        cquery = aioclient.canonical_query(query)
        assert _ours(method, path, query, body) == _botocore_auth(
            method, aioclient.canonical_path(path), cquery, body)


def test_signature_changes_with_secret() -> None:
    a = _ours("GET", "/b/k", None, b"")
    signer = aioclient.Signer("AKID", "other")
    b = signer.headers("GET", "/b/k", "", "127.0.0.1:9000", aioclient.EMPTY_SHA256, now=NOW.timestamp())
    assert a.split("Signature=")[1] not in b


def _reply(raw: bytes, head_only: bool = False) -> aioclient.Reply:
    async def go() -> aioclient.Reply:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        try:
            return await aioclient._read_reply(reader, head_only)
        except aioclient._Close as done:
            return done.reply
    return asyncio.run(go())


def test_reply_framing() -> None:
    assert _reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA") == aioclient.Reply(200, b"abc", 3)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    assert _reply(chunked).body == b"abcde"
    assert _reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", head_only=True).nbytes == 0
    assert _reply(b"HTTP/1.1 204 No Content\r\n\r\n").status == 204
    assert _reply(b"HTTP/1.1 500 X\r\nConnection: close\r\n\r\nboom").body == b"boom"


def test_bad_status_line_is_an_error() -> None:
    try:
        _reply(b"SSH-2.0-OpenSSH\r\n\r\n")
    except aioclient.ProtocolError:
        return
    raise AssertionError("a non-HTTP reply must not be accepted")


def test_stage_classification() -> None:
    root = "serve (vallum/cli/serve.py:156);run (uvicorn/main.py:643)"
    thread = "Thread._bootstrap (threading.py:1002)"
    raw = "\n".join([
        f"process 1:\"x\";thread (11): MainThread;{root};Gateway.http (vallum/server/app.py:194);"
        "verify (vallum/s3/sigv4.py:80) 5",
        f"thread (11): MainThread;{root};Gateway.http (vallum/server/app.py:194);"
        "get (vallum/meta/sqlite.py:12);x (sqlalchemy/a.py:1) 3",
        f"thread (11): MainThread;{root} 7",
        f"thread (11): MainThread;{root};send_response (vallum/server/app.py:283);"
        "RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:549) 5",
        f"thread (12): Thread-1;{thread};_run (vallum/batching.py:121) 6",
        f"thread (12): Thread-1;{thread};_run (vallum/batching.py:121);"
        "_commit (vallum/security/audit/log.py:300) 2",
    ])
    got = stages.classify(raw)
    assert got[11][0] == {"authenticate": 5, "metadata": 3, "runtime": 7, "send": 5}
    assert got[12][0] == {"commit hand-over": 6, "audit": 2}
    # Each thread's CPU is split by its own samples; a thread never sampled is set apart.
    spent = stages.budget(got, {11: 0.020, 12: 0.008, 13: 0.001}, requests=1000)
    assert {k: round(v, 6) for k, v in spent.items()} == {"authenticate": 5.0, "metadata": 3.0, "audit": 2.0, "commit hand-over": 6.0,
                     "send": 5.0, "runtime": 7.0, "no GIL samples": 1.0}


def test_a_sync_weighs_nothing_beside_work() -> None:
    line = next(i for i, text in enumerate(open("vallum/security/audit/log.py"), 1)
                if "os.fdatasync(fd)" in text)
    raw = (f"thread (5): T;_write_batch (vallum/security/audit/log.py:{line}) 90\n"
           "thread (5): T;_encode (vallum/security/audit/log.py:1) 10\n"
           f"thread (6): U;_write_batch (vallum/security/audit/log.py:{line}) 9\n")
    got = stages.classify(raw)
    assert got[5] == ({"audit": 10}, {"audit": 90})
    assert {k: round(v, 6) for k, v in stages.budget(got, {5: 0.001, 6: 0.002}, 100).items()} \
        == {"audit": 30.0}
