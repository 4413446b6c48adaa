"""The local pool sized by the predictive controller (`vallum serve --compute local:MIN-MAX`):
it grows while a queue builds up and shrinks back to MIN when idle."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from tests.support.compute import client_of
from tests.support.server import start_server, stop_server
from vallum.compute.executors import LocalPool, make_executor
from vallum.compute.sandbox import Sandbox


@pytest.fixture(scope="module")
def sized(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("sized") / "data", "--compute", "local:1-3",
                       env={"VALLUM_COMPUTE_SCALE_INTERVAL": "0.3"})
    yield srv
    stop_server(srv)


def slots(server) -> int:
    with urllib.request.urlopen(server.endpoint + "/-/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(float(re.search(r"^vallum_compute_pool_slots (\S+)$", text, re.M).group(1)))


def peak(jobs: list[dict]) -> int:
    steps = sorted([(j["started"], 1) for j in jobs] + [(j["finished"], -1) for j in jobs],
                   key=lambda s: (s[0], s[1]))
    cur = best = 0
    for _, step in steps:
        cur += step
        best = max(best, cur)
    return best


def test_pool_grows_under_a_queue_and_shrinks_when_idle(sized):
    api = client_of(sized)
    s3 = sized.client()
    s3.create_bucket(Bucket="sizing")
    assert slots(sized) == 1                          # starts at MIN
    ids = [api.submit({"runtime": "command", "command": ["sleep", "1"],
                       "output": "s3://sizing/o/"})["id"] for _ in range(9)]
    seen = {1}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen.add(slots(sized))
        if all(api.job(i)["state"] == "SUCCEEDED" for i in ids):
            break
        time.sleep(0.1)
    jobs = [api.job(i) for i in ids]
    assert all(j["state"] == "SUCCEEDED" for j in jobs)
    assert max(seen) == 3, seen                       # grew to MAX, never past it
    assert peak(jobs) >= 2                            # and ran more than MIN at once
    deadline = time.monotonic() + 30
    while slots(sized) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slots(sized) == 1                          # idle: back to MIN


def test_local_pool_resize_and_bounds(tmp_path):
    pool = make_executor("local:2-5", Sandbox("rlimits"), tmp_path)
    assert isinstance(pool, LocalPool) and pool.capacity == 2 and pool.sizer is not None
    pool.resize(9)
    assert pool.capacity == 5
    pool.resize(0)
    assert pool.capacity == 2
    assert make_executor("local:3", Sandbox("rlimits"), tmp_path).capacity == 3
    for bad in ("local:5-2", "local:x", "local:0-3"):
        with pytest.raises(ValueError):
            make_executor(bad, Sandbox("rlimits"), tmp_path)
