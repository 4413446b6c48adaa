"""Entropy of written bodies: ciphertext replacing a key's text feeds the destruction
detector, judged against the key's own habit; the sample is the first 4 KiB the
request already read."""

import asyncio
import os

from vallum.http import Headers, Request, Response
from vallum.operator import gateway
from vallum.operator.detector import Detector
from vallum.operator.request_events import RequestEvent
from vallum.operator.simulate import START
from vallum.s3.body import HEAD_BYTES, Body
from vallum.s3.router import Endpoint

TEXT = b"Minutes of the weekly engineering review, item 4: hull survey schedule.\n" * 80
KEY = "AKIAWRITER0000000001"


def put(ts: float, key: str, opaque: int, who: str = KEY) -> RequestEvent:
    return RequestEvent(ts, who, "acct1", "10.3.0.7", "PutObject", "docs", key, 200, "",
                        50_000, 0, -1, opaque)


def history(who: str, opaque: int, minutes: int = 240) -> list[RequestEvent]:
    """Two writes a minute on two mornings, all of one kind."""
    out = []
    for m in range(minutes):
        day = START + (m // 120) * 86400 + 9 * 3600
        base = day + (m % 120) * 60
        out += [put(base + 5, f"notes/{m}-a", opaque, who), put(base + 35, f"notes/{m}-b", opaque, who)]
    return out


def burst(who: str, n: int = 15) -> list[RequestEvent]:
    base = START + 3 * 86400 + 10 * 3600
    return [put(base + i * 2.0, f"notes/{i}-a", 1, who) for i in range(n)]


def kinds(det: Detector, events: list[RequestEvent]) -> list[str]:
    return [a.kind for a in det.observe_batch(events)]


def test_opaque_tells_ciphertext_from_text_on_the_first_4_kib():
    assert gateway.opaque(os.urandom(4096)) == 1
    assert gateway.opaque(TEXT[:4096]) == 0
    assert gateway.opaque(os.urandom(100)) == -1                    # too short to tell
    assert gateway.opaque(b"") == -1


def test_ciphertext_replacing_a_text_writers_data_is_destruction():
    det = Detector()
    kinds(det, history(KEY, 0))
    found = kinds(det, burst(KEY))
    assert "destruction" in found


def test_a_key_that_always_writes_archives_is_not_judged_on_entropy():
    det = Detector()
    kinds(det, history(KEY, 1))
    assert "destruction" not in kinds(det, burst(KEY))


def test_a_key_with_no_history_is_not_judged_on_entropy():
    det = Detector()
    assert "destruction" not in kinds(det, burst("AKIANEWCOMER00000001"))


def test_the_gateway_samples_what_the_request_already_read(tmp_path):
    """A PUT's body streams through Body.chunks once; its first HEAD_BYTES are kept for
    the hook (no second read), and the event says whether they compress."""
    def receive_of(payload: bytes):
        parts = [payload[i:i + 1000] for i in range(0, len(payload), 1000)]

        async def receive():
            data = parts.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(parts)}
        return receive

    h = gateway.Hook(tmp_path, None, "observe", root_key="ROOT", sinks_from_env=False)
    for payload in (os.urandom(10_000), TEXT):
        headers = Headers([("host", "127.0.0.1"), ("content-length", str(len(payload)))])
        body = Body(receive_of(payload), headers, None)

        async def drain(body=body):
            return b"".join([c async for c in body.chunks()])
        assert asyncio.run(drain()) == payload
        assert body.head == payload[:HEAD_BYTES]
        req = Request(method="PUT", endpoint=Endpoint("PutObject", "docs", "k"), headers=headers,
                      body=body, request_id="r", auth=None, principal=KEY, source_ip="10.3.0.7",
                      secure=False)
        h.observe({}, req, "PutObject", Response(200), "")
    w = h.detector.signals.principals[KEY]
    assert w.value("opaque_writes") == 1 and w.value("writes") == 2
    h.close()
