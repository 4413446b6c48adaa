"""The in-gateway hook: requests are queued on the request path and reach the detector
in batches within MAX_DELAY, and containment still refuses a copier within a few dozen
requests. Real Request / Endpoint / Headers objects, a real journal in tmp_path."""

import asyncio
import json

import pytest

from vallum.operator import gateway
from vallum.s3 import errors
from vallum.s3.router import Endpoint
from vallum.server.http import Headers, Request, Response

KEY = "AKIAGATEWAYTEST00001"


def request(key: str, op: str = "GetObject", principal: str = KEY, length: str = "0",
            source: str = "10.1.2.3") -> Request:
    headers = Headers([("host", "127.0.0.1"), ("content-length", length)])
    return Request(method="GET", endpoint=Endpoint(op, "data", key), headers=headers, body=None,
                   request_id="r1", auth=None, principal=principal, source_ip=source, secure=False)


def hook(tmp_path, mode: str = "observe") -> gateway.Hook:
    return gateway.Hook(tmp_path, None, mode, root_key="ROOTKEY")


def test_observe_only_queues_then_flushes_within_max_delay(tmp_path):
    h = hook(tmp_path)

    async def main():
        h.observe({}, request("a/1"), "GetObject", Response(200, {}, b"x" * 100), "")
        h.observe({}, request("a/2", "PutObject", length="7"), "PutObject", Response(200), "")
        assert len(h._pending) == 2 and KEY not in h.detector.signals.principals
        await asyncio.sleep(gateway.MAX_DELAY * 4)
        assert h._pending == []
        w = h.detector.signals.principals[KEY]
        assert w.value("requests") == 2 and w.value("bytes_out") == 100 and w.value("bytes_in") == 7

    asyncio.run(main())


def test_a_full_batch_is_processed_at_once(tmp_path):
    h = hook(tmp_path)

    async def main():
        for i in range(gateway.BATCH):
            h.observe({}, request(f"k/{i}"), "GetObject", Response(200, {}, b"x"), "")
        assert h._pending == []
        assert h.detector.signals.principals[KEY].value("keys") == gateway.BATCH

    asyncio.run(main())


def test_without_an_event_loop_each_request_is_processed_directly(tmp_path):
    h = hook(tmp_path)
    h.observe({}, request("k/1"), "GetObject", Response(200, {}, b"x"), "")
    assert h._pending == [] and h.detector.signals.principals[KEY].value("requests") == 1


def test_admin_requests_are_not_observed(tmp_path):
    h = hook(tmp_path)
    h.observe({"headers": []}, None, "admin", Response(200), "")
    assert h._pending == [] and not h.detector.signals.addresses


def test_contain_refuses_a_copier_despite_the_queue(tmp_path):
    """64 KiB objects from 20 folders read as fast as the loop goes: suspended (the alert
    is far past its bar) before 100 objects have left, although alerts come from the
    queue up to MAX_DELAY late."""
    h = hook(tmp_path, "contain")
    body = b"x" * 65536

    async def main():
        copied = refused = 0
        for i in range(1000):
            req = request(f"team{i % 20:02d}/obj-{i:04d}")
            try:
                h.admit(req)
            except errors.AccessDenied:
                return copied
            except errors.SlowDown as exc:
                refused += 1
                h.observe({}, req, "GetObject", Response(503), exc.code)
            else:
                copied += 1
                h.observe({}, req, "GetObject", Response(200, {}, body), "")
            await asyncio.sleep(0.001)      # a client round trip: lets the flush timer run
        pytest.fail(f"never suspended ({copied} copied, {refused} throttled)")

    copied = asyncio.run(main())
    assert copied < 100, copied
    actions = [json.loads(line) for line in (tmp_path / "operator" / "actions.jsonl").read_text().splitlines()]
    assert actions[-1]["action"] == "suspend" and len(actions) <= 2
    assert all(a["entity"] == KEY and a["kind"] == "exfiltration" for a in actions)


def test_failed_sign_ins_are_parsed_when_flushed(tmp_path):
    """A request refused before authentication has no Request: the hook queues the raw
    scope and reads the claimed key only when the batch is processed."""
    h = hook(tmp_path)

    async def main():
        for i in range(6):
            scope = {"headers": [(b"Authorization", f"AWS4-HMAC-SHA256 Credential=AKBAD{i}/x/y".encode())],
                     "query_string": b"", "client": ("203.0.113.9", 5000)}
            h.observe(scope, None, "ListBuckets", Response(403), "InvalidAccessKeyId")
        assert h._pending[0][1] is None
        h.flush()

    asyncio.run(main())
    w = h.detector.signals.addresses["203.0.113.9"]
    assert w.value("auth_failures") == 6 and w.value("failed_keys") == 6
    alerts = [json.loads(line) for line in (tmp_path / "operator" / "alerts.jsonl").read_text().splitlines()]
    assert [(a["kind"], a["entity"]) for a in alerts] == [("credential_stuffing", "203.0.113.9")]
