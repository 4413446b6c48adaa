"""The paired stage's batch really sends every key to both servers (two real gateways)."""

import shutil
import tempfile
from pathlib import Path

from bench import servers, workloads


def test_a_paired_batch_sends_every_key_to_both_servers():
    base = Path(tempfile.mkdtemp(prefix="paired-test-"))
    try:
        a, b = (servers.start("vallum-plain", base) for _ in range(2))
        eps = tuple(workloads.Endpoint(s.endpoint, s.access_key, s.secret_key) for s in (a, b))
        for ep in eps:
            workloads.create_bucket(ep, "paired")
        put = workloads.paired_ops(eps, "paired", "PUT", "k/", 40, 512, 4, 1, (a.pid, b.pid))
        get = workloads.paired_ops(eps, "paired", "GET", "k/", 40, 512, 4, 1, (a.pid, b.pid))
        for batch in put + get:           # a GET of a key one server never got would fail
            assert batch.errors == 0 and batch.count == 40 and batch.server_cpu_pct > 0
        assert put[0].seconds == put[1].seconds          # one window for both
        for ep in eps:
            listed = workloads.boto3_client(ep).list_objects_v2(Bucket="paired")
            assert listed["KeyCount"] == 40
    finally:
        servers.stop_all()
        shutil.rmtree(base, ignore_errors=True)
