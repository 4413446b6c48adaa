"""Faults of the upstream blob store, through a real gateway and boto3.

- The upstream engine's own replication: SeaweedFS with every volume on two volume
  servers (``-defaultReplication=001``); one volume server killed, every read through
  Vallum still succeeds byte for byte, and `vallum blobs verify` finds every blob whole.
- The upstream stopped mid-download: the bytes sent are the object's, the cut is a cut
  (never wrong or extra bytes), the next GET is a clean 503, and after the upstream comes
  back the object reads whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
import uuid

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from typer.testing import CliRunner

from tests.support.seaweed import replicated_seaweed, seaweed
from tests.support.server import start_server, stop_server
from vallum.cli.main import app

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="starts its own upstream and gateway")
MiB = 1024 * 1024


def volume_files(url: str) -> dict[int, tuple[int, str]]:
    """Volume id -> (file count, replica placement) as one volume server reports them."""
    with urllib.request.urlopen(f"{url}/status", timeout=5) as resp:  # noqa: S310
        doc = json.load(resp)
    out = {}
    for v in doc.get("Volumes") or []:
        rp = v.get("ReplicaPlacement") or {}
        out[int(v["Id"])] = (int(v.get("FileCount", 0)), f"{rp.get('dc', rp.get('DiffDataCenterCount', 0))}"
                             f"{rp.get('rack', rp.get('DiffRackCount', 0))}{rp.get('node', rp.get('SameRackCount', 0))}")
    return out


def test_one_of_two_replicating_volume_servers_killed_reads_still_succeed(tmp_path):
    with replicated_seaweed(tmp_path) as cluster:
        srv = start_server(tmp_path / "data", "--blobs", cluster.spec("rep/"),
                           env=cluster.env() | {"VALLUM_BLOBS_ATTEMPTS": "3"})
        try:
            s3 = srv.client()
            s3.create_bucket(Bucket="replicated")
            bodies = {f"small-{i}": os.urandom(100_000 + i) for i in range(6)}
            bodies["large"] = os.urandom(20 * MiB + 11)        # a multipart upload upstream
            for key, body in bodies.items():
                s3.put_object(Bucket="replicated", Key=key, Body=body)

            # Every volume holding data is on both servers with the same files: replication 001.
            one, two = (volume_files(v.endpoint) for v in cluster.volumes)
            used = {vid for vid, (count, _) in one.items() if count} | {
                vid for vid, (count, _) in two.items() if count}
            assert used
            for vid in used:
                assert one.get(vid) == two.get(vid), (vid, one.get(vid), two.get(vid))
                assert one[vid][1] == "001"

            cluster.kill_volume(0)
            for key, body in bodies.items():
                got = s3.get_object(Bucket="replicated", Key=key)["Body"].read()
                assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key
            got = s3.get_object(Bucket="replicated", Key="large",
                                Range="bytes=10000000-10000999")["Body"].read()
            assert got == bodies["large"][10_000_000:10_001_000]

            r = CliRunner().invoke(app, ["blobs", "verify", "--data-dir", str(srv.data_dir), "--blobs",
                                         cluster.spec("rep/"), "--json", "--rate", "0", "--restart"],
                                   env=cluster.env())
            assert r.exit_code == 0, r.output
            report = json.loads(r.stdout)
            assert report["complete"] and report["findings"] == []
            assert report["bytes"] == sum(len(b) for b in bodies.values())
        finally:
            stop_server(srv)


def test_upstream_stopped_mid_download_cuts_cleanly_then_503_then_whole(tmp_path):
    (tmp_path / "up").mkdir()
    with seaweed(tmp_path / "up") as up:
        srv = start_server(tmp_path / "data", "--blobs", up.spec("dl/"),
                           env=up.env() | {"VALLUM_BLOBS_ATTEMPTS": "2"})
        try:
            s3 = srv.client()
            s3.create_bucket(Bucket="download")
            body = os.urandom(64 * MiB)
            s3.put_object(Bucket="download", Key="big", Body=body)
            slow = srv.client(read_timeout=120)
            stream = slow.get_object(Bucket="download", Key="big")["Body"]
            head = stream.read(4 * MiB)
            assert head == body[:4 * MiB]
            up.pause()
            try:
                rest = b""
                with pytest.raises((BotoCoreError, OSError)):
                    while chunk := stream.read(MiB):
                        rest += chunk
                    raise AssertionError("the whole body arrived from a stopped upstream")
                got = head + rest
                assert len(got) < len(body) and got == body[:len(got)]   # a prefix, never wrong bytes
                with pytest.raises(ClientError) as exc:
                    s3.get_object(Bucket="download", Key="big")
                assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
                assert exc.value.response["Error"]["Code"] == "ServiceUnavailable"
            finally:
                up.resume()
            assert s3.get_object(Bucket="download", Key="big")["Body"].read() == body
            key = "k-" + uuid.uuid4().hex
            s3.put_object(Bucket="download", Key=key, Body=b"after")
            assert s3.get_object(Bucket="download", Key=key)["Body"].read() == b"after"
        finally:
            stop_server(srv)
