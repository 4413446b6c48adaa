"""The in-gateway hook: requests are queued on the request path and reach the detector
in batches within MAX_DELAY, and containment still refuses a copier within a few dozen
requests. Real Request / Endpoint / Headers objects, a real journal in tmp_path."""

import asyncio
import json
import time
from types import SimpleNamespace

import pytest

from vallum.http import Headers, Request, Response
from vallum.operator import gateway
from vallum.s3 import errors
from vallum.s3.router import Endpoint

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


def test_a_full_batch_is_processed_at_once_in_chunks_that_yield_to_the_loop(tmp_path):
    """A full batch starts at once, CHUNK requests per loop turn: other callbacks run
    between chunks (the loop never stalls for the whole batch) and order is kept."""
    h = hook(tmp_path)

    async def main():
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        for i in range(gateway.BATCH - 1):
            h.observe({}, request(f"k/{i}"), "GetObject", Response(200, {}, b"x"), "")
        loop.call_soon(lambda: seen.append(len(h._pending)))   # runs after the first chunk
        h.observe({}, request("k/last"), "GetObject", Response(200, {}, b"x"), "")
        assert len(h._pending) == gateway.BATCH - gateway.CHUNK
        for _ in range(gateway.BATCH // gateway.CHUNK + 1):
            await asyncio.sleep(0)
        assert h._pending == [] and not h._draining
        assert 0 < seen[0] < gateway.BATCH                       # it ran mid-batch
        w = h.detector.signals.principals[KEY]
        assert w.value("keys") == gateway.BATCH
        # requests queued during a drain join it, behind the ones before them
        for i in range(gateway.BATCH):
            h.observe({}, request(f"m/{i}"), "GetObject", Response(200, {}, b"x"), "")
        h.observe({}, request("m/extra"), "GetObject", Response(200, {}, b"x"), "")
        for _ in range(gateway.BATCH // gateway.CHUNK + 2):
            await asyncio.sleep(0)
        assert h._pending == [] and w.value("keys") == 2 * gateway.BATCH + 1

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


def test_failed_sign_ins_are_counted_by_the_key_they_claimed(tmp_path):
    """A request refused before authentication has no Request: the hook reads the claimed
    key from the raw headers, and the address window counts the failures."""
    h = hook(tmp_path)

    async def main():
        for i in range(6):
            scope = {"headers": [(b"Authorization", f"AWS4-HMAC-SHA256 Credential=AKBAD{i}/x/y".encode())],
                     "query_string": b"", "client": ("203.0.113.9", 5000)}
            h.observe(scope, None, "ListBuckets", Response(403), "InvalidAccessKeyId")
        assert [e.principal for e in h._pending] == [f"AKBAD{i}" for i in range(6)]
        assert {e.source for e in h._pending} == {"203.0.113.9"}
        h.flush()

    asyncio.run(main())
    w = h.detector.signals.addresses["203.0.113.9"]
    assert w.value("auth_failures") == 6 and w.value("failed_keys") == 6
    alerts = [json.loads(line) for line in (tmp_path / "operator" / "alerts.jsonl").read_text().splitlines()]
    assert [(a["kind"], a["entity"]) for a in alerts] == [("credential_stuffing", "203.0.113.9")]


# -- label climbing on live traffic ----------------------------------------------------------
# The MAC handlers note the label of the object read as request.audit_label (its banner);
# the hook must carry it to the detector, as the replay carries RequestEvent.label.
# These tests run in simulated time: the hook's clock (gateway.time) is replaced by one the
# test moves, so a 40-minute baseline takes milliseconds. Without an event loop each request
# reaches the detector at once, through the same tuple -> event path as a batch.

from vallum.operator.abuse_rules import Tuning  # noqa: E402
from vallum.security.mac.labels import parse as parse_label  # noqa: E402

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 86400 + 10 * 3600    # 10:00 UTC
BANNERS = [parse_label(t).banner() for t in
           ("UNCLASSIFIED", "CUI", "CONFIDENTIAL", "SECRET//NOFORN", "TOP SECRET//SI/TK//NOFORN")]
OTHER = "AKIAGATEWAYTEST00002"


class Clock:
    """The hook's wall clock, moved by the test (monotonic stays real: journal polling)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock(T0)
    monkeypatch.setattr(gateway, "time", SimpleNamespace(time=c.time, monotonic=time.monotonic))
    return c


def labelled(key: str, level: int | None, principal: str = KEY) -> Request:
    req = request(key, principal=principal)
    req.audit_label = None if level is None else BANNERS[level]
    return req


def read(h: gateway.Hook, req: Request) -> bool:
    """One GET through the hook as the app does it: admit, then observe. False if refused."""
    try:
        h.admit(req)
    except (errors.AccessDenied, errors.SlowDown) as exc:
        h.observe({}, req, "GetObject", Response(exc.status), exc.code)
        return False
    h.observe({}, req, "GetObject", Response(200, {}, b"x" * 1000), "")
    return True


def baseline(h: gateway.Hook, clock: Clock, minutes: int, level: int | None,
             principal: str = KEY, per_minute: int = 3) -> None:
    """``minutes`` active minutes of ordinary reads, all at one label level."""
    for m in range(minutes):
        for i in range(per_minute):
            clock.now = T0 + m * 60 + i * 15
            assert read(h, labelled(f"docs/m{m}-{i}", level, principal))


def climb(h: gateway.Hook, clock: Clock, start: float, levels=(1, 1, 2, 2, 3, 3, 4, 4)) -> int:
    """Reads of ever-higher labels, 10 s apart; how many were served before a refusal."""
    served = 0
    for i, level in enumerate(levels):
        clock.now = start + 10 * i
        if not read(h, labelled(f"vault/c{i}", level)):
            return served
        served += 1
    return served


def alerts_of(tmp_path) -> list[dict]:
    path = tmp_path / "operator" / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def actions_of(tmp_path) -> list[dict]:
    path = tmp_path / "operator" / "actions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_queued_event_carries_the_level_of_the_label_read(tmp_path):
    h = hook(tmp_path)

    async def main():
        h.observe({}, labelled("a/1", 3), "GetObject", Response(200, {}, b"x"), "")
        h.observe({}, labelled("a/2", None), "GetObject", Response(200, {}, b"x"), "")
        assert [e.label for e in h._pending] == [3, -1]
        h.flush()

    asyncio.run(main())
    w = h.detector.signals.principals[KEY]
    assert w.value("label3") == 1 and w.value("reads") == 2


def test_a_key_reading_ever_higher_labels_through_the_hook_raises_label_climbing(tmp_path, clock):
    """40 minutes of UNCLASSIFIED reads, then CUI, CONFIDENTIAL, SECRET, TOP SECRET: the
    alert fires once four reads over two levels above its habit have gone through."""
    assert Tuning().min_samples < 40
    h = hook(tmp_path)
    baseline(h, clock, 40, 0)
    assert h.detector.principals[KEY].profile.usual_label() == 0
    assert not [a for a in alerts_of(tmp_path) if a["kind"] == "label_climbing"]
    assert climb(h, clock, T0 + 40 * 60 + 30) == 8            # observe mode: alert only
    found = [a for a in alerts_of(tmp_path) if a["kind"] == "label_climbing"]
    assert len(found) == 1 and found[0]["entity"] == KEY
    assert found[0]["features"]["usual_level"] == "UNCLASSIFIED"
    assert found[0]["features"]["reads_above_usual"] == 4 and found[0]["features"]["levels_above"] == 2
    assert actions_of(tmp_path) == []


def test_the_same_climb_without_labels_is_not_label_climbing(tmp_path, clock):
    """The contrast that shows the alert above comes from the label the hook now carries."""
    h = hook(tmp_path)
    baseline(h, clock, 40, 0)
    assert climb(h, clock, T0 + 40 * 60 + 30, levels=(None,) * 8) == 8
    assert not [a for a in alerts_of(tmp_path) if a["kind"] == "label_climbing"]


def test_contain_suspends_the_climber_and_never_touches_single_label_traffic(tmp_path, clock):
    """In contain mode label climbing suspends the key at once (containment.SUSPEND_AT_ONCE):
    the read after the alert is refused. A second key reading SECRET objects all along, a
    high but constant level, from its first minute to long after, is never contained."""
    h = hook(tmp_path, "contain")
    for m in range(40):                                  # both keys build their baselines
        for i in range(3):
            clock.now = T0 + m * 60 + i * 15
            assert read(h, labelled(f"docs/m{m}-{i}", 0))
            clock.now += 5
            assert read(h, labelled(f"intel/m{m}-{i}", 3, OTHER))
    assert actions_of(tmp_path) == []
    served = climb(h, clock, T0 + 40 * 60 + 30)
    assert served == 4, served                           # the 5th read, after the alert, refused
    actions = actions_of(tmp_path)
    assert [(a["action"], a["entity"], a["kind"]) for a in actions] == [("suspend", KEY, "label_climbing")]
    assert KEY in h.policy.suspended
    with pytest.raises(errors.AccessDenied):             # refused on its next request, any label
        h.admit(labelled("docs/again", 0))
    for m in range(40, 100):                             # the other key keeps working for an hour
        for i in range(3):
            clock.now = T0 + m * 60 + 45 + i * 4
            assert read(h, labelled(f"intel/m{m}-{i}", 3, OTHER))
    assert OTHER not in h.policy.suspended and OTHER not in h.policy.throttled
    assert all(a["entity"] != OTHER for a in actions_of(tmp_path))
    assert all(a["entity"] != OTHER for a in alerts_of(tmp_path) if a["kind"] == "label_climbing")
