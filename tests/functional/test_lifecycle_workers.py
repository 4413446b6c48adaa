"""The lifecycle worker with two gateway processes on one data directory (`--workers 2`):
sweeps never overlap (the lease), each key is expired once, and the delete markers it adds
are stamped with the worker's (test) clock."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.support.lifecycle import DAY, sweep_at
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's test clock and data directory")
KEYS = 40


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("lc2") / "data", "--test-clock", "--workers", "2")
    yield srv
    stop_server(srv)


def _sweeps(server) -> list[tuple[int, float, float]]:
    path = server.data_dir / "test-clock-offset.sweeps"
    if not path.exists():
        return []
    return [(int(p), float(a), float(b)) for p, a, b in
            (line.split() for line in path.read_text().splitlines() if line.strip())]


def test_two_gateways_sweep_one_at_a_time_with_the_test_clock(two):
    c3 = two.client()
    bucket = "lc2-" + uuid.uuid4().hex[:12]
    c3.create_bucket(Bucket=bucket)
    c3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(KEYS):
        c3.put_object(Bucket=bucket, Key=f"logs/{i:03}", Body=b"x")
    c3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}}]})
    before = len(_sweeps(two))
    offset = 3 * DAY
    sweep_at(two, offset)
    deadline = time.monotonic() + 10           # let both processes try several more sweeps
    while time.monotonic() < deadline and len(_sweeps(two)) < before + 6:
        time.sleep(0.1)
    sweeps = _sweeps(two)
    assert len(sweeps) >= before + 2
    # Both processes run a worker (two pids take turns over time, the lease serialises them) ...
    spans = sorted((start, end) for _, start, end in sweeps)
    for (_, prev_end), (start, _) in zip(spans, spans[1:]):
        assert start >= prev_end, "two lifecycle sweeps overlapped"
    # ... and each key was expired exactly once: one delete marker, the version kept beneath.
    listing = c3.list_object_versions(Bucket=bucket)
    markers = listing.get("DeleteMarkers", [])
    assert sorted(m["Key"] for m in markers) == [f"logs/{i:03}" for i in range(KEYS)]
    assert len(listing["Versions"]) == KEYS
    # The markers carry the worker's clock: three days ahead, not the wall time.
    for m in markers:
        assert m["LastModified"].timestamp() > time.time() + offset - 600
