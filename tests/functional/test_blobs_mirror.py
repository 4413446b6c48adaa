"""`vallum serve --blobs local:/A,local:/B` (and local + SeaweedFS) through boto3: every
acknowledged body is on both copies; a deleted disk, a corrupted or truncated copy and an
upstream that went away leave every read served (byte for byte) from the other copy;
`vallum blobs verify` reports each damaged copy and `--repair` heals it; two bad copies
are an error, never wrong bytes; writes need both copies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tests.support.integrity import flip, truncate
from tests.support.seaweed import seaweed
from tests.support.server import start_server, stop_server
from tests.support.sse import CHUNK, KEY_A, KEY_B, TlsServer, ssec
from vallum.cli.main import app

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs the server's disks")


def copies(disk: Path) -> dict[str, Path]:
    return {p.name: p for p in (disk / "blobs").rglob("*") if p.is_file()}


def verify(data_dir: Path, blobs: str, *args: str, env: dict | None = None) -> tuple[int, dict]:
    r = CliRunner().invoke(app, ["blobs", "verify", "--data-dir", str(data_dir), "--blobs", blobs,
                                 "--json", "--rate", "0", "--restart", *args], env=env)
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


@pytest.fixture
def mirrored(tmp_path):
    disks = (tmp_path / "disk1", tmp_path / "disk2")
    for d in disks:
        d.mkdir()
    spec = f"local:{disks[0]},local:{disks[1]}"
    srv = start_server(tmp_path / "data", "--blobs", spec)
    try:
        yield srv, disks, spec
    finally:
        stop_server(srv)


def test_a_lost_disk_leaves_every_read_served_and_refuses_writes(mirrored):
    srv, (disk1, disk2), spec = mirrored
    s3 = srv.client()
    bucket = "mirror-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    bodies = {f"obj-{i}": os.urandom(150_000 + i * 40_000) for i in range(5)}
    bodies["large"] = os.urandom(9 * 1024 * 1024 + 3)
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    one, two = copies(disk1), copies(disk2)
    assert len(one) == len(bodies) and one.keys() == two.keys()
    for blob_id, path in one.items():
        assert path.read_bytes() == two[blob_id].read_bytes()     # the same ciphertext on both
    assert not (srv.data_dir / "blobs").exists()                 # bodies only on the two disks

    shutil.rmtree(disk1)                                          # the whole disk is gone
    for key, body in bodies.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    got = s3.get_object(Bucket=bucket, Key="large", Range="bytes=5000000-5000099")["Body"].read()
    assert got == bodies["large"][5_000_000:5_000_100]
    assert s3.head_object(Bucket=bucket, Key="large")["ContentLength"] == len(bodies["large"])
    with pytest.raises(ClientError) as exc:                        # one copy is not enough to ack
        s3.put_object(Bucket=bucket, Key="new", Body=os.urandom(100_000))
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert set(copies(disk2)) == set(two)                         # nothing half-written left


@pytest.mark.parametrize("damage", ["delete-disk", "rot"])
def test_verify_reports_each_damaged_copy_and_repair_heals_it(mirrored, damage):
    srv, (disk1, disk2), spec = mirrored
    s3 = srv.client()
    bucket = "heal-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    bodies = {f"key-name-{i}": os.urandom(100_000 + i) for i in range(4)}
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="tiny", Body=b"inline: no blob, no copies")
    code, clean = verify(srv.data_dir, spec)
    assert code == 0 and clean["findings"] == [] and clean["complete"]

    one, two = copies(disk1), copies(disk2)
    if damage == "delete-disk":
        shutil.rmtree(disk1 / "blobs")
        (disk1 / "blobs").mkdir(mode=0o700)
        expect = {(b, f"local:{disk1}", "missing") for b in one}
    else:
        ids = sorted(one)
        flip(one[ids[0]], 2000)            # copies on each disk, of different blobs
        truncate(two[ids[1]], 1)
        two[ids[2]].unlink()
        two[ids[2]].symlink_to(two[ids[2]])    # a copy the disk cannot read (ELOOP)
        expect = {(ids[0], f"local:{disk1}", "corrupt"), (ids[1], f"local:{disk2}", "corrupt"),
                  (ids[2], f"local:{disk2}", "unreadable")}
    for key, body in bodies.items():        # every read is served from the whole copy
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    raw_journal = (srv.data_dir / "mirror-damage.jsonl").read_text()
    assert bucket not in raw_journal and not any(k in raw_journal for k in bodies)   # ids only
    assert (srv.data_dir / "mirror-damage.jsonl").stat().st_mode & 0o777 == 0o600
    journal = [json.loads(line) for line in raw_journal.splitlines()]
    # Readers try disk 1 first: they pass over (and record) its damage; disk 2's is the scrub's.
    assert {(e["blob_id"], e["copy"], e["problem"]) for e in journal} == {
        e for e in expect if e[1] == f"local:{disk1}"}

    with urllib.request.urlopen(srv.endpoint + "/-/metrics", timeout=5) as r:  # noqa: S310
        counted = sum(float(line.split()[1]) for line in r.read().decode().splitlines()
                      if line.startswith("vallum_blob_copy_damage_total{"))
    assert counted == len(journal)

    code, report = verify(srv.data_dir, spec)
    assert code == 1
    assert {(f["blob_id"], f["copy"], f["problem"]) for f in report["findings"]} == expect
    assert not any(f["repaired"] for f in report["findings"])

    code, healed = verify(srv.data_dir, spec, "--repair")
    assert code == 0 and all(f["repaired"] for f in healed["findings"])
    assert {(f["blob_id"], f["copy"]) for f in healed["findings"]} == {(b, c) for b, c, _ in expect}
    one, two = copies(disk1), copies(disk2)
    assert one.keys() == two.keys() and len(one) == len(bodies)
    for blob_id in one:
        assert one[blob_id].read_bytes() == two[blob_id].read_bytes()
        assert one[blob_id].stat().st_mode & 0o777 == 0o600
    code, after = verify(srv.data_dir, spec)
    assert code == 0 and after["findings"] == []
    for key, body in bodies.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_two_bad_copies_are_an_error_never_wrong_bytes_and_cannot_be_repaired(mirrored):
    srv, (disk1, disk2), spec = mirrored
    s3 = srv.client()
    bucket = "worst-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doomed", Body=os.urandom(300_000))
    (blob_id, one), = copies(disk1).items()
    flip(one, 500)
    copies(disk2)[blob_id].unlink()
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="doomed")["Body"].read()
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert exc.value.response["Error"]["Code"] == "InternalError"
    code, report = verify(srv.data_dir, spec, "--repair")
    assert code == 1
    assert {(f["copy"], f["problem"], f["repaired"]) for f in report["findings"]} == {
        (f"local:{disk1}", "corrupt", False), (f"local:{disk2}", "missing", False)}


def test_a_write_needs_both_copies(mirrored):
    """Disk 2 refuses new blobs: the PUT fails, nothing is acknowledged and nothing is
    left on disk 1; reads of older objects still succeed."""
    srv, (disk1, disk2), _ = mirrored
    s3 = srv.client()
    bucket = "half-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="before", Body=b"b" * 200_000)
    before = set(copies(disk1))
    os.rmdir(disk2 / "tmp")
    (disk2 / "tmp").write_bytes(b"not a directory")
    try:
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="after", Body=os.urandom(200_000))
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert set(copies(disk1)) == before
        assert not list((disk1 / "tmp").iterdir())
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket=bucket, Key="after")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert s3.get_object(Bucket=bucket, Key="before")["Body"].read() == b"b" * 200_000
    finally:
        (disk2 / "tmp").unlink()
        (disk2 / "tmp").mkdir(mode=0o700)


@pytest.mark.parametrize("blobs,code,why", [
    ("local:relative/dir", 2, "absolute path"),
    ("local:/x,local:/x", 2, "different places"),
    ("local:/x,local:/x/y", 2, "inside"),
    ("local:/a,local:/b,local:/c", 2, "at most 2"),
    ("local:/a,s3://bkt/p@http://AKID:HIDDENSECRET@127.0.0.1:1", 2, "credentials do not belong"),
    ("local:/nonexistent-vallum-disk,local:/tmp", 1, "no such directory"),
])
def test_bad_mirror_values_refuse_to_start(tmp_path, blobs, code, why):
    """Malformed values stop `vallum serve` before it starts (exit 2); a copy whose
    directory does not exist (an unmounted disk) stops its start-up (exit 1). One line,
    no traceback, never the secret."""
    done = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "d"),
                           "--address", "127.0.0.1:1", "--blobs", blobs],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert why in done.stderr and "Traceback" not in done.stderr
    assert "HIDDENSECRET" not in done.stderr + done.stdout
    assert not Path("/nonexistent-vallum-disk").exists()


def test_a_local_and_upstream_mirror_survives_either_side(tmp_path):
    """local + SeaweedFS: with the upstream stopped, reads come from the disk and writes
    get 503 (nothing acknowledged); with the local copy gone, reads come from the upstream;
    verify --repair puts the local copy back."""
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "seaweed").mkdir()
    with seaweed(tmp_path / "seaweed") as up:
        spec = f"local:{disk},{up.spec('mirror/')}"
        srv = start_server(tmp_path / "data", "--blobs", spec,
                           env=up.env() | {"VALLUM_BLOBS_ATTEMPTS": "2"})
        try:
            s3 = srv.client()
            s3.create_bucket(Bucket="both")
            bodies = {f"o{i}": os.urandom(120_000 * (i + 1)) for i in range(3)}
            for key, body in bodies.items():
                s3.put_object(Bucket="both", Key=key, Body=body)
            local = copies(disk)
            remote = {k.rpartition("/")[2]: v for k, v in up.objects("mirror/").items()}
            assert set(local) == set(remote) and len(local) == 3
            assert all(local[b].read_bytes() == remote[b] for b in local)

            up.pause()
            try:
                for key, body in bodies.items():
                    assert s3.get_object(Bucket="both", Key=key)["Body"].read() == body
                with pytest.raises(ClientError) as exc:
                    s3.put_object(Bucket="both", Key="while-down", Body=os.urandom(100_000))
                assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
                assert exc.value.response["Error"]["Code"] == "ServiceUnavailable"
                # verify needs every copy reachable to start: exit 1 with the reason, no report.
                r = CliRunner().invoke(app, ["blobs", "verify", "--data-dir", str(srv.data_dir),
                                             "--blobs", spec, "--repair"],
                                       env=up.env() | {"VALLUM_BLOBS_ATTEMPTS": "1"})
                assert r.exit_code == 1 and "upstream HeadBucket failed" in r.output, r.output
                assert up.server.secret_key not in r.output
            finally:
                up.resume()
            with pytest.raises(ClientError) as exc:
                s3.head_object(Bucket="both", Key="while-down")
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            assert set(copies(disk)) == set(local)          # the half-written copy was removed

            shutil.rmtree(disk / "blobs")
            (disk / "blobs").mkdir(mode=0o700)
            for key, body in bodies.items():
                assert s3.get_object(Bucket="both", Key=key)["Body"].read() == body
            code, report = verify(srv.data_dir, spec, "--repair", env=up.env())
            assert code == 0 and len(report["findings"]) == 3
            assert all(f["problem"] == "missing" and f["repaired"] for f in report["findings"])
            assert {b: p.read_bytes() for b, p in copies(disk).items()} == {
                k.rpartition("/")[2]: v for k, v in up.objects("mirror/").items()}
        finally:
            stop_server(srv)


def test_sse_c_objects_on_a_mirror_survive_a_damaged_copy_and_heal(tmp_path):
    """SSE-C bodies (sealed under the customer's key, which the gateway does not keep):
    a flipped byte fails authentication on disk 1 and the GET continues from disk 2; a
    truncated copy is found by verify (length: SSE-C cannot be authenticated without the
    key) and healed; without the key nothing is served."""
    disks = (tmp_path / "disk1", tmp_path / "disk2")
    for d in disks:
        d.mkdir()
    spec = f"local:{disks[0]},local:{disks[1]}"
    srv = TlsServer(tmp_path / "tls", env={"VALLUM_BLOBS": spec})
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="ssec-mirror")
        flipped, cut = os.urandom(5 * CHUNK + 9), os.urandom(3 * CHUNK + 1)
        s3.put_object(Bucket="ssec-mirror", Key="flipped", Body=flipped, **ssec(KEY_A))
        (flip_id,) = copies(disks[0])
        s3.put_object(Bucket="ssec-mirror", Key="cut", Body=cut, **ssec(KEY_A))
        (cut_id,) = set(copies(disks[0])) - {flip_id}
        flip(copies(disks[0])[flip_id], 4 * CHUNK)
        truncate(copies(disks[0])[cut_id], 5)
        assert s3.get_object(Bucket="ssec-mirror", Key="flipped", **ssec(KEY_A))["Body"].read() == flipped
        assert s3.get_object(Bucket="ssec-mirror", Key="cut", **ssec(KEY_A))["Body"].read() == cut
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket="ssec-mirror", Key="cut", **ssec(KEY_B))
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

        code, report = verify(srv.data_dir, spec, "--repair")
        assert code == 0 and report["length_only"] == 2
        assert {(f["blob_id"], f["copy"], f["repaired"]) for f in report["findings"]} == {
            (cut_id, f"local:{disks[0]}", True)}
        assert copies(disks[0])[cut_id].read_bytes() == copies(disks[1])[cut_id].read_bytes()
    finally:
        srv.stop()
